//! The file name compiled into `co_filename`, as compileall derives it from
//! `-d`, `-s` and `-p` (the rules changed in 3.9 and in 3.13).

/// What compileall was told about `co_filename` for one run.
#[derive(Debug, Clone, Default)]
pub struct DfileRules {
    /// `-d`: for a file argument, dfile = join(ddir, basename); for a
    /// directory argument it becomes stripdir = the directory, prependdir = ddir.
    pub ddir: Option<Vec<u8>>,
    pub stripdir: Option<Vec<u8>>,
    pub prependdir: Option<Vec<u8>>,
    /// Target (major, minor): stripdir semantics differ before/after 3.13,
    /// and 3.8 has no -s/-p.
    pub version: (u32, u32),
}

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dfile {
    /// No dfile: co_filename is the path as given.
    Unset,
    /// co_filename is this path.
    Set(Vec<u8>),
    /// 3.13+: stripdir was not a prefix. compileall prints this warning line
    /// on stdout (when quiet < 2) and leaves dfile unset.
    Warn(String),
    /// Stripping removed every component: compileall dies with a TypeError.
    /// Carries the message to report.
    Error(String),
}

impl DfileRules {
    /// dfile for `fullname`, reached from the command-line argument `dir_arg`
    /// (`None` when `fullname` itself was a file argument).
    pub fn dfile_for(&self, fullname: &[u8], dir_arg: Option<&[u8]>) -> Dfile {
        todo!("{fullname:?} {dir_arg:?}")
    }
}

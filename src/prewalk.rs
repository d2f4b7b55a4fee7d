//! The walk before the run: every directory argument's listings and
//! candidate files in compileall's order, with their depth below the
//! argument, so the target interpreter can start while the tree is walked.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::discover::{Event, Keep, walk_dir};

/// One thing to report, in compileall's order. A run holds one per file
/// and directory of its trees until it ends (182,000 on five copies of the
/// stdlib), so it is kept small: 32 bytes and the path.
pub struct Item {
    pub path: Box<Path>,
    /// Levels below the argument it came from (0: the argument itself).
    pub depth: u32,
    /// Index of the FILE|DIR argument it was found under; `None` for a file
    /// argument.
    dir_arg: Option<u32>,
    pub kind: ItemKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Listing,
    CantList,
    File,
}

/// The FILE|DIR arguments walked before the target was known.
pub struct Prewalk {
    items: Vec<Item>,
    /// The depth it was walked to.
    pub limit: i64,
}

impl Prewalk {
    pub fn new(paths: &[PathBuf], limit: i64, keep: Keep, threads: usize) -> Prewalk {
        let mut items = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            if path.is_file() {
                items.push(Item {
                    kind: ItemKind::File,
                    path: path.clone().into_boxed_path(),
                    depth: 0,
                    dir_arg: None,
                });
            } else {
                walk(path, limit, i, keep, threads, &mut items);
            }
        }
        Prewalk { items, limit }
    }

    /// The items compileall would meet with `maxlevels`: directories listed
    /// down to that depth, files one level further.
    pub fn items(self, maxlevels: i64) -> Vec<Item> {
        if maxlevels >= self.limit {
            return self.items;
        }
        self.items.into_iter().filter(|item| item.within(maxlevels)).collect()
    }
}

impl Item {
    /// Whether a walk to `maxlevels` meets this item: a directory is listed
    /// down to that depth, and the files of the deepest listed one are met.
    pub fn within(&self, maxlevels: i64) -> bool {
        let (max, depth) = (maxlevels.max(0), i64::from(self.depth));
        match self.kind {
            ItemKind::File => self.dir_arg.is_none() || depth <= max.saturating_add(1),
            ItemKind::Listing | ItemKind::CantList => depth <= max,
        }
    }

    /// Index of the FILE|DIR argument it was found under; `None` for a file
    /// argument.
    pub fn dir_arg(&self) -> Option<usize> {
        self.dir_arg.map(|arg| arg as usize)
    }
}

/// compileall's walk of one directory argument, as items with their depth.
/// `threads` list directories ahead (`walk_dir`).
pub fn walk(dir: &Path, maxlevels: i64, arg: usize, keep: Keep, threads: usize, items: &mut Vec<Item>) {
    let mut events = Vec::new();
    walk_dir(dir, maxlevels, keep, threads, &mut events);
    let root = dir.as_os_str().as_bytes();
    let arg = u32::try_from(arg).expect("fewer than 2^32 arguments");
    items.extend(events.into_iter().map(|event| {
        let (kind, path) = match event {
            Event::Listing(p) => (ItemKind::Listing, p),
            Event::CantList(p) => (ItemKind::CantList, p),
            Event::File(p) => (ItemKind::File, p),
        };
        let depth = depth_below(root, path.as_os_str().as_bytes());
        Item {
            kind,
            path: path.into_boxed_path(),
            depth,
            dir_arg: Some(arg),
        }
    }));
}

/// How many names `os.path.join` added to `root` to build `path` (names
/// never contain `/`; the first join adds a `/` unless `root` ends with one).
/// A path is at most `PATH_MAX` (4096) bytes, so the count fits.
fn depth_below(root: &[u8], path: &[u8]) -> u32 {
    let added = &path[root.len().min(path.len())..];
    if added.is_empty() {
        return 0;
    }
    let added = added.strip_prefix(b"/").unwrap_or(added);
    let names = 1 + added.iter().filter(|&&b| b == b'/').count();
    u32::try_from(names).unwrap_or(u32::MAX)
}

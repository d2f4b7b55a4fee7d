//! compileall's `-i FILE`: the list of paths to compile, one per line.

use std::io::Read;
use std::path::PathBuf;

/// Why the `-i` list gave no paths.
pub enum FileListError {
    /// compileall prints `Error reading file list FILE` and exits 1.
    Unreadable,
    /// compileall (3.10+) dies with UnicodeDecodeError and exits 1.
    NotUtf8,
}

/// compileall's `-i`: the list is read as UTF-8 text with universal
/// newlines, and each line stripped of whitespace as `str.strip()` strips it;
/// an empty line stays as the argument `''`.
pub fn read_file_list(list: &std::ffi::OsStr) -> Result<Vec<PathBuf>, FileListError> {
    let mut data = Vec::new();
    let read = if list == "-" {
        std::io::stdin().lock().read_to_end(&mut data)
    } else {
        std::fs::File::open(list).and_then(|mut f| f.read_to_end(&mut data))
    };
    read.map_err(|_| FileListError::Unreadable)?;
    let text = std::str::from_utf8(&data).map_err(|_| FileListError::NotUtf8)?;
    Ok(python_text_lines(text)
        .map(|l| PathBuf::from(l.trim_matches(is_python_space)))
        .collect())
}

/// Lines as Python's text-mode iteration yields them: `\r\n`, `\r` and `\n`
/// all end a line.
fn python_text_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).map_or(rest.len(), |i| i);
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

/// `str.isspace()`: Unicode White_Space plus the ASCII separators
/// U+001C..U+001F that Python also counts.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

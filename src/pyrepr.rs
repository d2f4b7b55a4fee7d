//! How Python shows things: `repr()` of a path string, `str` ordering of file
//! names, and the text of an `OSError`. Paths are raw bytes here; Python sees
//! them through surrogateescape (an undecodable byte b is the code point
//! U+DC00+b).

use std::cmp::Ordering;
use std::io;

/// `repr(os.fsdecode(path))` as CPython prints it, e.g. `'t/a.py'`,
/// `"it's.py"`, `'bad\udcffname.py'`.
pub fn repr_path(path: &[u8]) -> String {
    todo!("{path:?}")
}

/// Python `str` ordering of two file names decoded with surrogateescape
/// (code-point order, not byte order).
pub fn str_order(a: &[u8], b: &[u8]) -> Ordering {
    todo!("{a:?} {b:?}")
}

/// `str(exc)` prefixed by the class name, as compileall prints an OSError:
/// `PermissionError: [Errno 13] Permission denied: 't/x.py'`, or with two
/// file names `… : 'a' -> 'b'`. Errors without an errno print as
/// `OSError: <text>`.
pub fn os_error_text(err: &io::Error, filename: Option<&[u8]>, filename2: Option<&[u8]>) -> String {
    todo!("{err} {filename:?} {filename2:?}")
}

//! How deep a marshalled code object nests, counted the way CPython's
//! `marshal` counts. `marshal.dumps` refuses past 2,000 levels (`ValueError:
//! object too deeply nested to marshal`) and `marshal.loads` likewise
//! (`recursion limit exceeded`), so a body deeper than that is one CPython
//! could never have written and can never load. serc has no such limit:
//! its pyc for ~1,000 nested `lambda`s (two levels each: a code object and
//! its constants tuple) would fail at import.
//!
//! Both sides of CPython's marshal add one level per object, singletons and
//! back-references included, so the depth of the byte stream read here is
//! the depth `marshal.dumps` counted while writing it.

/// `MAX_MARSHAL_STACK_DEPTH` of CPython 3.8-3.15 on every platform but
/// Windows (1,000) and iOS (1,500).
pub const MAX_DEPTH: usize = 2000;

/// What a walk over marshal data found, when it is not a body CPython loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unloadable {
    /// An object lies deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The bytes are not marshal data of a version these targets read.
    Malformed { offset: usize, what: &'static str },
}

/// Checks that `body` is one marshalled object, nested at most
/// [`MAX_DEPTH`] levels deep, with nothing after it.
pub fn check(body: &[u8]) -> Result<(), Unloadable> {
    let mut reader = Reader { bytes: body, at: 0 };
    reader.object(1)?;
    if reader.at != body.len() {
        return Err(reader.malformed("bytes after the object"));
    }
    Ok(())
}

/// The reference flag marshal sets on an object's type byte.
const FLAG_REF: u8 = 0x80;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    /// Skips the object at the cursor and everything inside it; `depth` is
    /// its own level (the outermost object is at level 1). Recursion is
    /// bounded by [`MAX_DEPTH`].
    fn object(&mut self, depth: usize) -> Result<(), Unloadable> {
        if depth > MAX_DEPTH {
            return Err(Unloadable::TooDeep);
        }
        let kind = self.take(1, "a type byte")?[0] & !FLAG_REF;
        match kind {
            // NULL, None, False, True, StopIteration, Ellipsis.
            b'0' | b'N' | b'F' | b'T' | b'S' | b'.' => {}
            // int32, back-reference index.
            b'i' | b'r' => self.skip(4, "a 32-bit value")?,
            b'I' | b'g' => self.skip(8, "a 64-bit value")?,
            b'y' => self.skip(16, "two doubles")?,
            // Floats and complex numbers as text (marshal version 0).
            b'f' => self.short_string()?,
            b'x' => {
                self.short_string()?;
                self.short_string()?;
            }
            // A long: a signed count of 15-bit digits, two bytes each.
            b'l' => {
                let digits = self.int32("a digit count")?.unsigned_abs() as usize;
                self.skip(2 * digits, "the digits of a long")?;
            }
            // bytes, str (UTF-8, interned or not), ASCII str.
            b's' | b'u' | b't' | b'a' | b'A' => {
                let len = self.size("a length")?;
                self.skip(len, "the bytes of a string")?;
            }
            b'z' | b'Z' => self.short_string()?,
            b')' => {
                let items = usize::from(self.take(1, "a tuple size")?[0]);
                self.objects(items, depth)?;
            }
            // tuple, list, set, frozenset.
            b'(' | b'[' | b'<' | b'>' => {
                let items = self.size("a size")?;
                self.objects(items, depth)?;
            }
            // Keys and values until a NULL key (counted as an object too).
            b'{' => loop {
                if self.peek("a dict key")? & !FLAG_REF == b'0' {
                    return self.object(depth + 1);
                }
                self.objects(2, depth)?;
            },
            // start, stop, step (marshal version 5, 3.14+).
            b':' => self.objects(3, depth)?,
            b'c' => self.code(depth)?,
            _ => {
                self.at -= 1;
                return Err(self.malformed("an unknown type byte"));
            }
        }
        Ok(())
    }

    /// A code object of 3.11 and later: five int32 counts and flags,
    /// bytecode, constants, names, local names and kinds, file name, name,
    /// qualified name, first line (int32), line table, exception table.
    fn code(&mut self, depth: usize) -> Result<(), Unloadable> {
        self.skip(5 * 4, "a code object's counts")?;
        self.objects(8, depth)?;
        self.skip(4, "a code object's first line")?;
        self.objects(2, depth)
    }

    /// `count` objects one level below `depth`.
    fn objects(&mut self, count: usize, depth: usize) -> Result<(), Unloadable> {
        for _ in 0..count {
            self.object(depth + 1)?;
        }
        Ok(())
    }

    fn short_string(&mut self) -> Result<(), Unloadable> {
        let len = usize::from(self.take(1, "a short length")?[0]);
        self.skip(len, "the bytes of a short string")
    }

    fn int32(&mut self, what: &'static str) -> Result<i32, Unloadable> {
        let bytes = self.take(4, what)?;
        Ok(i32::from_le_bytes(bytes.try_into().expect("took 4 bytes")))
    }

    /// A size: an int32 that marshal refuses to read when negative.
    fn size(&mut self, what: &'static str) -> Result<usize, Unloadable> {
        let value = self.int32(what)?;
        usize::try_from(value).map_err(|_| {
            self.at -= 4;
            self.malformed("a negative size")
        })
    }

    fn peek(&self, what: &'static str) -> Result<u8, Unloadable> {
        self.bytes.get(self.at).copied().ok_or(self.malformed(what))
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&[u8], Unloadable> {
        let start = self.at;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(self.malformed(what))?;
        self.at = end;
        Ok(&self.bytes[start..end])
    }

    fn skip(&mut self, len: usize, what: &'static str) -> Result<(), Unloadable> {
        self.take(len, what).map(drop)
    }

    fn malformed(&self, what: &'static str) -> Unloadable {
        Unloadable::Malformed { offset: self.at, what }
    }
}

#[cfg(test)]
mod tests;

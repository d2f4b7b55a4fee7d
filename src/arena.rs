//! A bump arena for one native compile at a time on each thread.
//!
//! serc allocates per AST node and per instruction and frees nearly all of
//! it when the compile ends. Through mimalloc each allocation takes a block
//! off a free list whose next pointer has mostly gone cold since it was
//! freed: in perf, `mi_malloc` took 12% of native's samples, 89% of them on
//! that one load (docs/native-cpu.md). Inside [`scope`] the binary's
//! allocator (`allocator.rs`) takes blocks from this thread's chunk instead,
//! in address order, and a later scope starts the chunk over from its first
//! byte, so the memory a compile writes is the memory the last one wrote.
//!
//! Soundness rests on one count. Each chunk counts the blocks handed out in
//! it and the blocks given back (by its own thread, or by any other through
//! an atomic in the chunk's header). A scope rewinds its thread's chunk only
//! when every block of it came back; otherwise something outlived its
//! compile (a lazily built static, a thread-local registration) and the
//! chunk is left to it for good, the thread taking a fresh one. Blocks that
//! do not fit go to mimalloc, and so does every allocation outside a scope.
//! Memory is reserved once, inaccessible, and a chunk made writable when a
//! thread takes it; without the reservation (an `mmap` refused) compiles
//! simply allocate from mimalloc.
//!
//! The library's unit tests run on the system allocator, which never asks
//! here: there, [`scope`] only keeps its books.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One thread's arena: 97% of the corpus's compiles fit (the others take
/// the rest from mimalloc), and two of them stay well inside a last-level
/// cache (32 MiB on the bench machine). 64 MiB chunks measured no faster
/// and cost 33 MB more peak memory (docs/native-cpu.md).
const CHUNK: usize = 4 << 20;
/// Chunks reserved: one per compiling thread, plus those left to blocks
/// that outlived their compile. When they run out, threads compile
/// through mimalloc.
const CHUNKS: usize = 1024;
/// Bytes at a chunk's start holding its [`Header`] (a cache line).
const HEADER: usize = 64;

/// The reservation's bounds; `usize::MAX..0` (nothing inside) until made.
static START: AtomicUsize = AtomicUsize::new(usize::MAX);
static END: AtomicUsize = AtomicUsize::new(0);
static RESERVE: Once = Once::new();
/// Chunks handed out so far.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// At the start of each chunk: blocks of it given back by other threads.
#[repr(C, align(64))]
struct Header {
    foreign_frees: AtomicUsize,
}

/// The books of this thread's current chunk.
struct Books {
    /// Inside a scope: allocations come from the chunk.
    serving: Cell<bool>,
    /// The chunk's first byte; 0 before the first scope, `usize::MAX` when
    /// no chunk could be had.
    chunk: Cell<usize>,
    /// Where the next block may start.
    next: Cell<usize>,
    /// Blocks handed out, and given back by this thread.
    allocs: Cell<usize>,
    frees: Cell<usize>,
}

thread_local! {
    static BOOKS: Books = const {
        Books {
            serving: Cell::new(false),
            chunk: Cell::new(0),
            next: Cell::new(0),
            allocs: Cell::new(0),
            frees: Cell::new(0),
        }
    };
}

/// Run `work` with this thread's allocations served from its arena.
/// Whatever `work` returns may keep arena blocks; they are counted until
/// given back, however long that takes and on whichever thread.
pub fn scope<R>(work: impl FnOnce() -> R) -> R {
    let serving = BOOKS.with(|books| !books.serving.get() && books.open());
    if !serving {
        return work();
    }
    // Closes the scope even when `work` unwinds.
    struct Close;
    impl Drop for Close {
        fn drop(&mut self) {
            BOOKS.with(|books| books.serving.set(false));
        }
    }
    let _close = Close;
    work()
}

impl Books {
    /// Make the chunk ready for a compile: rewound if every block came
    /// back, a fresh one otherwise. False when there is no chunk to use.
    fn open(&self) -> bool {
        let mut chunk = self.chunk.get();
        if chunk == usize::MAX {
            return false;
        }
        if chunk != 0 {
            // SAFETY: `chunk` is the start of a chunk this thread took,
            // writable and never unmapped.
            let header = unsafe { &*(chunk as *const Header) };
            let back = self.frees.get() + header.foreign_frees.load(Ordering::Acquire);
            if back == self.allocs.get() {
                // Nothing of it is in use, so no other thread can touch the
                // header until this thread hands out a block again.
                header.foreign_frees.store(0, Ordering::Relaxed);
            } else {
                chunk = 0;
            }
        }
        if chunk == 0 {
            chunk = take_chunk();
            self.chunk.set(chunk);
            if chunk == usize::MAX {
                return false;
            }
        }
        self.allocs.set(0);
        self.frees.set(0);
        self.next.set(chunk + HEADER);
        self.serving.set(true);
        true
    }
}

/// A block for `size` bytes at `align` from this thread's arena, or null
/// when no scope is open here or the chunk is full (then mimalloc serves).
#[inline]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    BOOKS.with(|books| {
        if !books.serving.get() {
            return std::ptr::null_mut();
        }
        let start = books.next.get().next_multiple_of(align);
        let end = start + size;
        if end > books.chunk.get() + CHUNK {
            return std::ptr::null_mut();
        }
        books.next.set(end);
        books.allocs.set(books.allocs.get() + 1);
        start as *mut u8
    })
}

/// Whether `ptr` is an arena block (and must go back through [`free`]).
#[inline]
pub fn owns(ptr: *mut u8) -> bool {
    let at = ptr as usize;
    at >= START.load(Ordering::Relaxed) && at < END.load(Ordering::Relaxed)
}

/// Give back an arena block of `size` bytes, on any thread.
#[inline]
pub fn free(ptr: *mut u8, size: usize) {
    let at = ptr as usize;
    let chunk = at & !(CHUNK - 1);
    let local = BOOKS.with(|books| {
        if books.chunk.get() != chunk {
            return false;
        }
        books.frees.set(books.frees.get() + 1);
        // The last block handed out: its bytes can serve the next one.
        if books.serving.get() && at + size == books.next.get() {
            books.next.set(at);
        }
        true
    });
    if !local {
        // SAFETY: every chunk starts with its header, and chunks are never
        // unmapped.
        let header = unsafe { &*(chunk as *const Header) };
        header.foreign_frees.fetch_add(1, Ordering::Release);
    }
}

/// Grow or shrink the last block handed out where it is: true if `ptr`
/// (of `old` bytes) now holds `new` bytes.
#[inline]
pub fn resize_in_place(ptr: *mut u8, old: usize, new: usize) -> bool {
    let at = ptr as usize;
    BOOKS.with(|books| {
        if !books.serving.get() || at + old != books.next.get() || at + new > books.chunk.get() + CHUNK {
            return false;
        }
        books.next.set(at + new);
        true
    })
}

/// A chunk's first byte, made writable, or `usize::MAX` if none is left.
fn take_chunk() -> usize {
    RESERVE.call_once(reserve);
    let start = START.load(Ordering::Relaxed);
    if start == usize::MAX {
        return usize::MAX;
    }
    let index = TAKEN.fetch_add(1, Ordering::Relaxed);
    if index >= CHUNKS {
        return usize::MAX;
    }
    let chunk = start + index * CHUNK;
    // SAFETY: the range is inside the reservation and was never handed out
    // (each index is taken once).
    let made = unsafe { libc::mprotect(chunk as *mut libc::c_void, CHUNK, libc::PROT_READ | libc::PROT_WRITE) };
    if made != 0 {
        return usize::MAX;
    }
    // A fresh mapping reads as zeros: the header's count starts at 0.
    chunk
}

/// Reserve the address space of every chunk, inaccessible until taken (so
/// nothing is committed until then).
fn reserve() {
    let len = CHUNK * CHUNKS;
    // SAFETY: a new anonymous mapping, touching nothing that exists.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len + CHUNK,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return;
    }
    // Chunks aligned to their size, so a block's chunk is its address
    // rounded down.
    let start = (base as usize).next_multiple_of(CHUNK);
    END.store(start + len, Ordering::Relaxed);
    START.store(start, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block inside a scope, asserted to come from the arena.
    fn block(size: usize, align: usize) -> usize {
        let at = alloc(size, align);
        assert!(!at.is_null() && owns(at), "{size} bytes at {align} not from the arena");
        assert_eq!(at as usize % align, 0);
        at as usize
    }

    /// Where a new scope's first block of `size` bytes lies (given back
    /// before the scope ends).
    fn first_block_of_a_scope(size: usize) -> usize {
        scope(|| {
            let at = block(size, 8);
            free(at as *mut u8, size);
            at
        })
    }

    #[test]
    fn outside_a_scope_nothing_comes_from_the_arena() {
        assert!(alloc(16, 8).is_null());
        scope(|| block(16, 8));
        assert!(alloc(16, 8).is_null());
        let unwound = std::panic::catch_unwind(|| scope(|| panic!("inside")));
        assert!(unwound.is_err());
        assert!(alloc(16, 8).is_null(), "a scope left by a panic is closed");
    }

    #[test]
    fn a_scope_starts_over_once_every_block_came_back() {
        let first = scope(|| {
            let a = block(100, 8);
            let b = block(24, 16);
            assert!(b >= a + 100, "blocks do not overlap");
            free(a as *mut u8, 100);
            free(b as *mut u8, 24);
            a
        });
        let again = first_block_of_a_scope(100);
        assert_eq!(first, again);
    }

    #[test]
    fn a_block_still_in_use_keeps_its_chunk_forever() {
        let kept = scope(|| block(64, 8));
        let next = first_block_of_a_scope(64);
        assert_ne!(kept & !(CHUNK - 1), next & !(CHUNK - 1), "a fresh chunk");
        free(kept as *mut u8, 64);
        let after = first_block_of_a_scope(64);
        assert_eq!(after, next, "the fresh chunk stays; the old one is not rewound");
    }

    #[test]
    fn a_block_given_back_on_another_thread_counts() {
        let at = scope(|| block(48, 8));
        std::thread::spawn(move || free(at as *mut u8, 48))
            .join()
            .expect("the freeing thread");
        let again = first_block_of_a_scope(48);
        assert_eq!(at, again, "rewound: the other thread's free was counted");
    }

    #[test]
    fn the_last_block_is_reused_and_resized_in_place() {
        scope(|| {
            let a = block(40, 8);
            let b = block(40, 8);
            assert!(resize_in_place(b as *mut u8, 40, 4000), "the last block grows");
            assert!(!resize_in_place(a as *mut u8, 40, 80), "an earlier one does not");
            assert_eq!(block(1, 1), b + 4000);
            free((b + 4000) as *mut u8, 1);
            free(b as *mut u8, 4000);
            assert_eq!(block(8, 8), b, "the freed last block serves the next");
        });
    }

    #[test]
    fn what_does_not_fit_is_left_to_the_other_allocator() {
        scope(|| {
            assert!(alloc(CHUNK, 8).is_null());
            block(CHUNK / 2, 4096);
            assert!(alloc(CHUNK / 2, 8).is_null());
        });
    }
}

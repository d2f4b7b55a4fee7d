//! The binary's global allocator. A module of the binary, not of the
//! library (whose unit tests run on the system allocator);
//! `examples/serc_floor.rs` includes it by path. Inside
//! `precompyle::arena::scope` (a native compile) blocks come from the
//! thread's arena first.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use precompyle::arena;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

/// mimalloc, through its plain entry points wherever they give the
/// alignment asked for. The `mimalloc` crate's allocator calls the aligned
/// ones for every layout, which check the alignment again on each call
/// (callgrind, 291 corpus files, `-j1`: `mi_malloc_aligned` took 60.2 M of
/// 1,825.3 M instructions; the plain calls save 26.7 M; docs/native-cpu.md).
pub struct Mimalloc;

/// mimalloc returns every block of at least this many bytes aligned to it
/// (`MI_MAX_ALIGN_SIZE`; its own aligned calls take the plain path under
/// the same rule: alignment at most this and at most the size).
const PLAIN_ALIGN: usize = 16;

fn plain(align: usize, size: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every block goes back to where it came from: the arena (whose
// blocks `arena::owns` recognises, on any thread) or mimalloc. The arena
// aligns each block as asked; for mimalloc a plain call is made only where
// it guarantees the alignment (`plain`), otherwise its aligned call is.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = arena::alloc(layout.size(), layout.align());
        if !block.is_null() {
            return block;
        }
        // SAFETY: mimalloc's allocation calls accept any size.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = arena::alloc(layout.size(), layout.align());
        if !block.is_null() {
            // SAFETY: the block holds `layout.size()` bytes. A rewound
            // arena holds the last compile's bytes, so zero them.
            unsafe { block.write_bytes(0, layout.size()) };
            return block;
        }
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if arena::owns(ptr) {
            arena::free(ptr, layout.size());
            return;
        }
        // SAFETY: `ptr` came from this allocator, not from the arena: from
        // mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if arena::owns(ptr) {
            // SAFETY: `realloc`'s own contract, and `ptr` is an arena block.
            return unsafe { self.move_arena_block(ptr, layout, new_size) };
        }
        // SAFETY: `ptr` came from this allocator. A block mimalloc keeps in
        // place was allocated with `layout`'s alignment; one it moves is
        // new, and `plain` holds for its size.
        unsafe {
            if plain(layout.align(), new_size) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

impl Mimalloc {
    /// `realloc` of an arena block: in place when it is the last one handed
    /// out (or shrinks), otherwise copied into a new block (from the arena
    /// while a scope is open, else from mimalloc) and given back.
    ///
    /// # Safety
    /// As `GlobalAlloc::realloc`, and `ptr` is an arena block.
    unsafe fn move_arena_block(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_size = layout.size();
        if arena::resize_in_place(ptr, old_size, new_size) || new_size <= old_size {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow, so the layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_size` is larger than `old_size`, so not zero.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks hold at least `old_size` bytes and are
            // distinct (the arena's old one is still counted as in use).
            unsafe { std::ptr::copy_nonoverlapping(ptr, moved, old_size) };
            arena::free(ptr, old_size);
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to 1,100 bytes (and a few larger) with every alignment up to
    /// 4 KiB: the pointer is aligned, and what was written survives a grow
    /// and a shrink, through the plain and the aligned calls alike.
    #[test]
    fn every_layout_is_aligned_and_keeps_its_bytes() {
        check_every_layout();
    }

    /// The same, every block from the arena (a scope is open).
    #[test]
    fn every_layout_is_aligned_and_keeps_its_bytes_in_the_arena() {
        arena::scope(|| {
            assert!(arena::owns(Box::into_raw(Box::new(7_u64)).cast()), "the arena serves");
            check_every_layout();
        });
    }

    fn check_every_layout() {
        let sizes = (1..=1100).chain([4095, 4096, 65_536, 1 << 20]);
        for size in sizes {
            for shift in 0..=12 {
                let layout = Layout::from_size_align(size, 1 << shift).expect("a valid layout");
                // SAFETY: the layout's size is not zero; each block is freed
                // once, with the layout it has at that point.
                unsafe {
                    let zeroed = Mimalloc.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % layout.align(), 0, "alloc_zeroed {layout:?}");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|&b| b == 0));
                    Mimalloc.dealloc(zeroed, layout);

                    let block = Mimalloc.alloc(layout);
                    assert_eq!(block as usize % layout.align(), 0, "alloc {layout:?}");
                    for i in 0..size {
                        block.add(i).write(i as u8);
                    }
                    let grown = Mimalloc.realloc(block, layout, size * 3);
                    assert_eq!(grown as usize % layout.align(), 0, "grow {layout:?}");
                    let shrunk_size = size.div_ceil(3);
                    let grown_layout = Layout::from_size_align(size * 3, layout.align()).expect("a valid layout");
                    let shrunk = Mimalloc.realloc(grown, grown_layout, shrunk_size);
                    assert_eq!(shrunk as usize % layout.align(), 0, "shrink {layout:?}");
                    for i in 0..shrunk_size {
                        assert_eq!(shrunk.add(i).read(), i as u8, "byte {i} of {layout:?}");
                    }
                    Mimalloc.dealloc(
                        shrunk,
                        Layout::from_size_align(shrunk_size, layout.align()).expect("a valid layout"),
                    );
                }
            }
        }
    }

    /// An arena block that is not the last one moves when it grows, and
    /// keeps its bytes; outside a scope it moves to mimalloc.
    #[test]
    fn an_arena_block_moves_when_it_grows() {
        let (first, second) = arena::scope(|| {
            let mut first: Vec<u32> = (0..100).collect();
            let second: Vec<u32> = (0..100).rev().collect();
            let before = first.as_ptr();
            first.reserve(10_000);
            assert_ne!(before, first.as_ptr(), "moved");
            assert!(arena::owns(first.as_ptr().cast_mut().cast()));
            (first, second)
        });
        let mut second = second;
        second.reserve(10_000);
        assert!(
            !arena::owns(second.as_ptr().cast_mut().cast()),
            "outside a scope: mimalloc"
        );
        assert!(first.iter().copied().eq(0..100));
        assert!(second.iter().copied().eq((0..100).rev()));
    }

    /// Blocks made inside scopes outlive them, cross threads and are freed
    /// there while both threads keep opening scopes: none is overwritten.
    #[test]
    fn blocks_that_outlive_their_scope_are_never_reused() {
        let (to_other, from_main) = std::sync::mpsc::channel::<Vec<u64>>();
        let checker = std::thread::spawn(move || {
            let mut seen = 0;
            for block in from_main {
                arena::scope(|| {
                    let scratch = vec![u64::MAX; block.len()];
                    assert!(
                        block.iter().all(|&word| word == block.len() as u64),
                        "a block was overwritten"
                    );
                    drop(scratch);
                });
                seen += 1;
            }
            seen
        });
        let mut kept = Vec::new();
        for round in 1..=300_u64 {
            let (sent, held) = arena::scope(|| (vec![round; round as usize], vec![round; 7]));
            to_other.send(sent).expect("the checker is running");
            kept.push((round, held));
            arena::scope(|| drop(vec![0_u64; 512]));
            if round % 3 == 0 {
                kept.clear();
            }
        }
        for (round, held) in &kept {
            assert!(held.iter().all(|word| word == round), "a held block was overwritten");
        }
        drop(to_other);
        assert_eq!(checker.join().expect("the checker"), 300);
    }
}

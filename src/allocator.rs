//! The binary's global allocator. A module of the binary, not of the
//! library (whose unit tests run on the system allocator);
//! `examples/serc_floor.rs` includes it by path.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

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

// SAFETY: every block comes from mimalloc and goes back to it; a plain
// call is made only where mimalloc guarantees the alignment (`plain`),
// otherwise its aligned call is.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
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
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to 1,100 bytes (and a few larger) with every alignment up to
    /// 4 KiB: the pointer is aligned, and what was written survives a grow
    /// and a shrink, through the plain and the aligned calls alike.
    #[test]
    fn every_layout_is_aligned_and_keeps_its_bytes() {
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
}

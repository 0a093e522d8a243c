//! A global allocator that puts large allocations on transparent huge pages.
//!
//! A state of a million keys is a hash table of a hundred megabytes or more, probed at random:
//! with 4 KiB pages nearly every probe misses the TLB, and restoring it faults in every page.
//! Linux gives 2 MiB pages to memory that asks for them (`madvise(MADV_HUGEPAGE)`, honoured in
//! the kernel's default `madvise` mode). [`HugePages`] wraps the system allocator: allocations
//! of [`THRESHOLD`] bytes or more are aligned to 2 MiB and advised; everything else is the
//! system allocator's business, untouched. Measured on restoring 1M keys: docs/performance.md.
//!
//! The `cairn` binary installs it; an application embedding the library opts in with
//! `#[global_allocator] static A: cairn::alloc::HugePages = cairn::alloc::HugePages;`.
//!
//! [`keep_freed_memory`] tells glibc's allocator to keep what a job frees for its next batch
//! instead of handing it back to the kernel and faulting it in again (the `cairn` binary calls
//! it first thing).

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations of at least this many bytes go on huge pages.
pub const THRESHOLD: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// The system allocator, with large allocations on transparent huge pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct HugePages;

/// The layout a large allocation is made with (2 MiB aligned); `None` for small ones.
fn huge(layout: Layout) -> Option<Layout> {
    if layout.size() < THRESHOLD {
        return None;
    }
    Layout::from_size_align(layout.size(), layout.align().max(HUGE_PAGE)).ok()
}

fn advise(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() {
        // SAFETY: `ptr..ptr + size` is memory this allocator just handed out, and `ptr` is
        // 2 MiB (so page) aligned. The advice changes no contents; if the kernel refuses it,
        // the memory simply stays on small pages.
        unsafe {
            libc::madvise(ptr.cast(), size, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, size);
}

/// Below this size glibc's `malloc` serves blocks from its heaps, not from fresh mappings.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of a heap up to this size stays with the process.
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Keep freed memory for reuse (glibc only; elsewhere a no-op that returns `true`).
///
/// A job allocates and frees the same large buffers every batch (a batch's events, the
/// guest's output lifted from its memory, the writes of a call): glibc hands a freed block at
/// the top of a heap back to the kernel once it passes its trim threshold, and serves a block
/// over its dynamic mmap threshold from a fresh mapping, so the next batch faulted the same
/// pages in again — 44,800 page faults in a 1M-event window job, 3,300 after this
/// (docs/performance.md). Fixed thresholds ([`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`]) stop both;
/// the cost is that up to [`TRIM_THRESHOLD`] of freed memory per heap stays resident. Call it
/// before starting threads. Returns whether glibc took both settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes the allocator's tuning parameters; both values are
        // in the ranges glibc documents (the mmap threshold at most HEAP_MAX_SIZE / 2).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    true
}

// SAFETY: every allocation is made and freed by `System` with the same layout (`huge` maps a
// layout to the same enlarged alignment every time), and `realloc` goes through `alloc` and
// `dealloc` whenever either side is large.
unsafe impl GlobalAlloc for HugePages {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match huge(layout) {
            None => unsafe { System.alloc(layout) },
            Some(h) => {
                let p = unsafe { System.alloc(h) };
                advise(p, h.size());
                p
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match huge(layout) {
            None => unsafe { System.alloc_zeroed(layout) },
            Some(h) => {
                // Advised before it is zeroed: `System.alloc_zeroed` at this alignment writes
                // the zeros itself, which faulted every page in as a small one before the
                // advice came (a restore's decompression buffer: tens of thousands of faults).
                let p = unsafe { System.alloc(h) };
                advise(p, h.size());
                if !p.is_null() {
                    // SAFETY: `p` is valid for `h.size()` bytes, just allocated.
                    unsafe { std::ptr::write_bytes(p, 0, h.size()) };
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, huge(layout).unwrap_or(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        if huge(layout).is_none() && huge(new_layout).is_none() {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_blocks_round_trip_through_realloc() {
        let a = HugePages;
        for (from, to) in [
            (16, 64),
            (64, THRESHOLD + 5),
            (THRESHOLD + 5, 3 * THRESHOLD),
            (3 * THRESHOLD, 100),
        ] {
            let layout = Layout::from_size_align(from, 8).expect("layout");
            // SAFETY: a fresh block of `from` bytes, written, grown or shrunk, read, freed with
            // its current layout.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                for i in 0..from.min(4096) {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, to);
                assert!(!q.is_null());
                if to >= THRESHOLD {
                    assert_eq!(q as usize % HUGE_PAGE, 0, "large blocks are 2 MiB aligned");
                }
                for i in 0..from.min(to).min(4096) {
                    assert_eq!(*q.add(i), (i % 251) as u8);
                }
                a.dealloc(q, Layout::from_size_align(to, 8).expect("layout"));
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_where_a_freed_one_was_written() {
        let a = HugePages;
        for size in [100, THRESHOLD + 5] {
            let layout = Layout::from_size_align(size, 8).expect("layout");
            // SAFETY: fresh blocks of `size` bytes, written or read within, freed with their layout.
            unsafe {
                let p = a.alloc(layout);
                std::ptr::write_bytes(p, 0xAB, size);
                a.dealloc(p, layout);
                let q = a.alloc_zeroed(layout);
                assert!(!q.is_null());
                assert!(
                    std::slice::from_raw_parts(q, size).iter().all(|&b| b == 0),
                    "{size} bytes"
                );
                a.dealloc(q, layout);
            }
        }
    }
}

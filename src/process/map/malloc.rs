//! Keeps big row buffers from piling up in glibc's heap.
//!
//! glibc serves blocks over 128 KiB with mmap and unmaps them when freed,
//! but the first such free raises that threshold to the block's size, and
//! from then on 1 MiB rows come from the per-thread heaps (an arena per
//! busy thread: row mode has three threads per worker), which keep freed
//! memory. Measured with 32 workers and 1 MiB rows: peak RSS 85 MiB with
//! the moving threshold, 37 MiB with it fixed at 128 KiB.

/// Fixes glibc's mmap threshold at its default 128 KiB (for the process:
/// harmless elsewhere, where blocks that big are rare).
pub fn keep_big_blocks_out_of_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `M_MMAP_THRESHOLD` in glibc's malloc.h.
        const M_MMAP_THRESHOLD: i32 = -3;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes a setting of the allocator; glibc
        // takes its lock for it, so it is safe to call at any time.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

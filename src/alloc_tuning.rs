//! glibc `malloc` settings for the tensor workload (issue 13).
//!
//! Why: every convolution of a batch allocates buffers of 1–60 MB (its output, the im2col
//! columns, the gradient). glibc serves blocks above its mmap threshold with a fresh `mmap` and
//! returns the top of the heap to the kernel once more than the trim threshold is free, so each
//! pass of Integrated Gradients page-faulted its buffers in again: `perf record` on
//! `cxr-viewer bench` put 17 % of the IG time in the page-fault handler, and the process spent
//! 10.8 s of a 26 s run in the kernel. With the mmap threshold fixed at glibc's maximum (32 MiB)
//! and trimming only beyond 1 GiB free, freed buffers are handed out again from the heap: the
//! kernel time fell to 2.8 s and IG (32 steps) from 8.3 s to 7.1 s in the same run
//! (docs/performance-log.md). Peak memory is unchanged; the price is that up to 1 GiB already used may stay
//! mapped after an analysis instead of going back to the system at once.
//!
//! One arena for all threads (`M_ARENA_MAX` = 1): the network passes run on rayon's pool threads
//! (`model::on_compute_pool`), and a pass may land on either of them. With glibc's per-thread
//! arenas each pool thread then kept its own freed working set under the 1 GiB trim threshold:
//! `cxr-viewer bench` peaked at 1 318 MiB instead of 754 MiB. With one arena it peaks at 775 MiB
//! at the same speed (a few large allocations per convolution, so the shared lock is not
//! contended).
//!
//! This is the one place outside the 12-bit JPEG decoder that calls C: `mallopt` only changes
//! numbers inside glibc's allocator and takes no pointers. Other platforms keep their defaults.

/// Applies the settings; call once, first thing in `main`, before threads start.
#[allow(unsafe_code)]
pub fn tune_for_tensors() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` with these parameters adjusts allocator thresholds and touches no memory
    // of ours; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

//! How the process's allocator treats the large, short-lived tensors of the model.
//!
//! burn's flex backend allocates and frees buffers of tens of MB on every decode (a lookup's
//! gathered features are 6000 rows × 25 pixels × C channels). glibc serves any block above its
//! mmap threshold (32 MB at most) with a fresh mapping and unmaps it on free, so each such
//! tensor costs page faults and the kernel zeroing new pages: `perf` put a quarter of a
//! 256-pixel prediction there. Keeping blocks up to 256 MB on the heap, and up to 512 MB of
//! freed memory before giving it back, lets them be reused: decoding N = 50 samples took
//! 42 ms instead of 104–115 ms (`cxr-review bench --size 256`, 2-core CPU, see
//! `assets/README.md`).

/// Raise glibc's mmap and trim thresholds; elsewhere (musl, macOS, Windows) nothing changes.
/// Call once, before the model runs. Returns whether the allocator took both settings.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters and returns 0 for a value it refuses.
    unsafe {
        // Older glibc refuses mmap thresholds above 32 MB: then take 32 MB.
        let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1
            || libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1;
        mmap && libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_both_thresholds() {
        // A refused setting would leave the decoder's page-fault cost in place.
        assert!(super::keep_freed_memory());
    }
}

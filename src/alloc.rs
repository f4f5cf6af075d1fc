//! Allocator settings for the `dbmazz` binary.
//!
//! dbmazz uses the system allocator (glibc malloc), tuned first thing in `main`.
//! Measured with `dbmazz-bench` (a 1M-row catch-up), glibc's defaults let RSS
//! grow far beyond the live heap: every thread that frees multi-megabyte buffers
//! (decoded chunks, Stream Load bodies) gets its own arena, and the dynamic mmap
//! threshold moves those buffers into arenas that are rarely trimmed. Two arenas
//! and a fixed mmap threshold keep large buffers in their own mappings, returned
//! to the system when freed.

/// Buffers at least this large are mapped individually and unmapped when freed.
const MMAP_THRESHOLD: i32 = 128 * 1024;
/// Arenas shared by all threads.
const ARENA_MAX: i32 = 2;
/// Free memory at the top of an arena beyond this is returned to the system.
const TRIM_THRESHOLD: i32 = 1024 * 1024;

/// Applies the settings; call first thing in `main`, before threads start.
pub fn tune() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

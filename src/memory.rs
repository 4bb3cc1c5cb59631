//! Giving freed memory back to the system.
//!
//! Why: glibc's allocator keeps what a program frees for its next
//! allocations; after a large transient peak (parsing a config of 30,000
//! services, compiling zones) RSS would stay at the peak although the memory
//! is free. `malloc_trim` returns every free page it can.

/// Return the allocator's free pages to the system (glibc only; a no-op
/// elsewhere). Cheap enough for start-up and reloads, not for a hot path.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

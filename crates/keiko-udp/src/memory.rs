//! Giving freed heap memory back to the system.

/// Returns the free memory of every malloc arena to the system
/// (`malloc_trim(0)`): pages inside the heaps that only freed chunks
/// occupy, not only the heaps' tops, which is all that `free` gives back.
/// A burst of connections leaves such pages behind: allocations that
/// outlive it (a run queue grown for it, say) pin the heap's top.
///
/// Walks every arena under its lock, so it is for after a burst, not for
/// every request. Does nothing where the C library is not glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only rearranges the
    // allocator's free lists under its own locks; it is safe to call from
    // any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

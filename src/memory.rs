//! Giving freed memory back to the system, and the helper threads of
//! start-up work (each thread's allocator arena keeps what it frees).
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

/// Whether a second thread can run beside this one: the start's large
/// steps (a zone's parse, sort and compile) split their work in two only
/// then, and otherwise run as they always did.
pub fn two_cores() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// `make()`'s result, made on a thread of its own and copied to this one.
///
/// Why: a parse that builds a large value (a config of 30,000 services)
/// leaves its garbage interleaved with what it keeps, and the allocator
/// cannot give back pages that hold both. Made in another thread's arena,
/// its garbage given back there, and copied out, the whole arena is free
/// once the original is dropped, and returned to the system. Costs the
/// copy (at 30,000 services about 0.3 s on top of a 1 s parse). If no
/// thread can be started it is made here; a panic in `make` is this
/// thread's panic.
pub fn made_apart<T, E, F>(make: F) -> Result<T, E>
where
    T: Clone + Send,
    E: Send,
    F: FnOnce() -> Result<T, E> + Send,
{
    let mut make = Some(make);
    let made = std::thread::scope(|s| {
        let make = &mut make;
        std::thread::Builder::new()
            .name("made-apart".into())
            .spawn_scoped(s, move || {
                let made = (make.take().expect("made once"))();
                // Its garbage is free now: give it back before the copy is
                // made, so that the copy does not add to it.
                release_free_memory();
                made
            })
            .map(|h| h.join())
    });
    match made {
        Ok(Ok(result)) => result.map(|original| {
            let copy = T::clone(&original);
            drop(original);
            copy
        }),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => (make.take().expect("not started"))(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_value_made_apart_is_the_value_made_here() {
        let v: Result<Vec<String>, ()> =
            super::made_apart(|| Ok((0..1000).map(|i| i.to_string()).collect()));
        assert_eq!(v.unwrap()[999], "999");
        let e: Result<u8, String> = super::made_apart(|| Err("bad line 3".into()));
        assert_eq!(e.unwrap_err(), "bad line 3");
    }
}

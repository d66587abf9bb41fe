//! The thread pool behind long arrays. It starts on first use; when the OS refuses the
//! threads (e.g. under a memory limit), work runs on the calling thread instead of panicking.

use std::sync::OnceLock;

/// Arrays at least this long are evaluated on all cores.
pub const PARALLEL_MIN_LEN: usize = 1 << 15;

/// Whether work of `len` elements should run on the pool (long enough, and the pool runs).
pub fn parallel(len: usize) -> bool {
    static STARTED: OnceLock<bool> = OnceLock::new();
    // This library's copy of rayon has no other user, so an error is a failure to start the
    // threads; rayon cannot retry it, so neither is the pool asked again.
    len >= PARALLEL_MIN_LEN && *STARTED.get_or_init(|| rayon::ThreadPoolBuilder::new().build_global().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_work_stays_on_the_calling_thread() {
        assert!(!parallel(PARALLEL_MIN_LEN - 1));
        assert!(parallel(PARALLEL_MIN_LEN), "the pool starts where threads are allowed");
    }
}

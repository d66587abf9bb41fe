//! One object, several threads: a compiled object keeps its state behind a lock, which a
//! caller waits for with the GIL released, so calls from several threads run one at a time.
//! A call that re-enters the object from inside one of its own calls on the same thread
//! (a `func` stepping its own `Stepper`) is a `RuntimeError` naming the object, not a deadlock.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;

/// A value shared by every thread that uses the object `name`.
pub struct Guarded<T> {
    name: &'static str,
    state: Mutex<T>,
    /// The thread holding the lock (see `thread_key`), or 0.
    owner: AtomicUsize,
}

/// The locked value; dropping it lets the next thread in.
pub struct Guard<'a, T> {
    inner: MutexGuard<'a, T>,
    owner: &'a AtomicUsize,
}

/// A non-zero number unique to the calling thread among live threads: its Python thread
/// state (cheaper than a thread-local of this library's own).
fn thread_key(_py: Python<'_>) -> usize {
    // SAFETY: the token proves the thread is attached, so it has a current thread state.
    unsafe { pyo3::ffi::PyThreadState_Get() as usize }
}

impl<T> Guarded<T> {
    pub fn new(name: &'static str, value: T) -> Self {
        Guarded { name, state: Mutex::new(value), owner: AtomicUsize::new(0) }
    }

    /// The value, once no other thread uses it (waiting with the GIL released).
    pub fn lock(&self, py: Python<'_>) -> PyResult<Guard<'_, T>> {
        let me = thread_key(py);
        let inner = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Only the holder stores its own key, and clears it before unlocking.
                if self.owner.load(Ordering::Relaxed) == me {
                    return Err(PyRuntimeError::new_err(format!(
                        "{}: used again from inside one of its own calls on the same thread \
                         (e.g. its func calls back into it)",
                        self.name
                    )));
                }
                self.state.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner)
            }
        };
        self.owner.store(me, Ordering::Relaxed);
        Ok(Guard { inner, owner: &self.owner })
    }

    /// The value if no call is using it now: for the garbage collector, which must not wait.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.owner.store(0, Ordering::Relaxed);
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

//! One object, several threads: a compiled object keeps its state behind a lock, which a
//! caller waits for with the GIL released, so calls from several threads run one at a time.
//! A call that re-enters the object from inside one of its own calls on the same thread
//! (a `func` stepping its own `Stepper`) is a `RuntimeError` naming the object, not a deadlock.
//!
//! Most calls are short and pure Rust: they run no Python code and keep the GIL from start to
//! end, so the GIL alone already serializes them. Those go through [`Guarded::with`], which
//! only checks that no [`Guard`] is out (one flag, no atomic read-modify-write). A call that
//! runs Python code or releases the GIL while it uses the state takes the lock ([`Guarded::lock`]),
//! and the flag sends every other caller to the lock until it is done. (The GIL is always
//! there: the module is built for the stable ABI, which free-threaded CPython can't load.)

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use pyo3::marker::Ungil;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;

use super::error::Class;

/// A value shared by every thread that uses the object `name`.
pub struct Guarded<T> {
    name: &'static str,
    lock: Mutex<()>,
    /// Set, with the GIL held, while a `Guard` is out; only the lock's holder changes it.
    busy: AtomicBool,
    /// The thread holding the lock (see `thread_key`), or 0.
    owner: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached by the holder of `lock` (a `Guard`, with `busy` set) or,
// while `busy` is clear, by a `with` call that holds the GIL and doesn't release it.
unsafe impl<T: Send> Sync for Guarded<T> {}

/// The locked value; dropping it lets the next caller in. It lives within one GIL scope
/// (`'py`), so it is dropped with the GIL held, as `busy` requires.
pub struct Guard<'a, 'py, T> {
    guarded: &'a Guarded<T>,
    _lock: MutexGuard<'a, ()>,
    _attached: PhantomData<Python<'py>>,
}

/// The value as the garbage collector sees it (see [`Guarded::try_lock`]).
pub struct Peek<'a, T> {
    guarded: &'a Guarded<T>,
    _lock: MutexGuard<'a, ()>,
}

/// A non-zero number unique to the calling thread among live threads: its Python thread
/// state (cheaper than a thread-local of this library's own).
fn thread_key(_py: Python<'_>) -> usize {
    // SAFETY: the token proves the thread is attached, so it has a current thread state.
    unsafe { pyo3::ffi::PyThreadState_Get() as usize }
}

impl<T> Guarded<T> {
    pub fn new(name: &'static str, value: T) -> Self {
        Guarded {
            name,
            lock: Mutex::new(()),
            busy: AtomicBool::new(false),
            owner: AtomicUsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// `f(value)` for a call that runs no Python code and keeps the GIL throughout (`f` can't
    /// hold a GIL token, see `Ungil`): without locking when no `Guard` is out, else once the
    /// lock is free (or the re-entrancy error of `lock`).
    #[inline]
    pub fn with<'py, R>(&self, py: Python<'py>, f: impl FnOnce(&mut T) -> R + Ungil) -> PyResult<R> {
        if !self.busy.load(Ordering::Relaxed) {
            // SAFETY: the GIL is held (`py`) and `f` can't release it or run Python code, so no
            // other thread runs until `f` returns; with `busy` clear, no `Guard` is out.
            return Ok(f(unsafe { &mut *self.value.get() }));
        }
        let mut guard = self.lock(py)?;
        Ok(f(&mut guard))
    }

    /// The value, once no other thread uses it (waiting with the GIL released), for a call that
    /// may run Python code or release the GIL while it holds the value.
    pub fn lock<'a, 'py>(&'a self, py: Python<'py>) -> PyResult<Guard<'a, 'py, T>> {
        let me = thread_key(py);
        let lock = match self.lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Only the holder stores its own key, and clears it before unlocking.
                if self.owner.load(Ordering::Relaxed) == me {
                    return Err(Class::Reentrant.err(format!(
                        "{}: used again from inside one of its own calls on the same thread \
                         (e.g. its func calls back into it)",
                        self.name
                    )));
                }
                self.lock.lock_py_attached(py).unwrap_or_else(PoisonError::into_inner)
            }
        };
        // With the GIL held (re-acquired by `lock_py_attached`): before any use of the value.
        self.owner.store(me, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
        Ok(Guard { guarded: self, _lock: lock, _attached: PhantomData })
    }

    /// The value if no call is using it now: for the garbage collector, which must not wait.
    pub fn try_lock(&self) -> Option<Peek<'_, T>> {
        let lock = match self.lock.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(Peek { guarded: self, _lock: lock })
    }
}

impl<T> Drop for Guard<'_, '_, T> {
    fn drop(&mut self) {
        // Before the lock is released (the fields drop after this).
        self.guarded.owner.store(0, Ordering::Relaxed);
        self.guarded.busy.store(false, Ordering::Relaxed);
    }
}

impl<T> Deref for Guard<'_, '_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock and `busy` keeps `with` out.
        unsafe { &*self.guarded.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, '_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.guarded.value.get() }
    }
}

impl<T> Deref for Peek<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the collector runs with the GIL held and this holds the lock, so neither a
        // `Guard` nor a `with` call (which runs no Python code, so no collection) is using it.
        unsafe { &*self.guarded.value.get() }
    }
}

impl<T> DerefMut for Peek<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.guarded.value.get() }
    }
}

//! A step's per-group numbers, without an allocation for the usual few param groups.

use std::mem::MaybeUninit;

/// Up to this many param groups, a step's per-group numbers live on the stack.
pub const INLINE: usize = 16;

/// Numbers, one per param group: on the stack up to [`INLINE`] groups (no allocation on the
/// hot path), on the heap beyond. Made once per step and filled in place ([`PerGroup::resize`]);
/// the stack slots past the length are never written nor read (nothing to initialise).
#[derive(Clone)]
pub struct PerGroup<T: Copy> {
    inline: [MaybeUninit<T>; INLINE],
    heap: Vec<T>,
    len: usize,
}

impl<T: Copy> PerGroup<T> {
    /// None yet.
    #[inline(always)]
    pub fn new(_x: T) -> Self {
        PerGroup { inline: [MaybeUninit::uninit(); INLINE], heap: Vec::new(), len: 0 }
    }

    /// A copy of `xs`.
    pub fn from_slice(xs: &[T]) -> Self
    where
        T: Default,
    {
        let mut out = PerGroup::filled(xs.len(), T::default());
        out.as_mut_slice().copy_from_slice(xs);
        out
    }

    /// `len` numbers, each `x`.
    #[inline(always)]
    pub fn filled(len: usize, x: T) -> Self {
        let mut out = PerGroup::new(x);
        out.resize(len, x);
        out
    }

    /// `len` numbers, each `x`.
    #[inline(always)]
    pub fn resize(&mut self, len: usize, x: T) {
        if len > INLINE {
            self.heap = vec![x; len];
        } else {
            self.inline[..len].fill(MaybeUninit::new(x));
        }
        self.len = len;
    }

    /// None, keeping what the heap holds for the numbers pushed next.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.heap.clear();
        self.len = 0;
    }

    /// `x` after the numbers there are.
    #[inline(always)]
    pub fn push(&mut self, x: T) {
        if self.len < INLINE {
            self.inline[self.len] = MaybeUninit::new(x);
        } else {
            if self.len == INLINE {
                // SAFETY: the `INLINE` stack slots are written.
                let inline = unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast::<T>(), INLINE) };
                self.heap.extend_from_slice(inline);
            }
            self.heap.push(x);
        }
        self.len += 1;
    }

    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        if self.len > INLINE {
            &self.heap
        } else {
            // SAFETY: `resize` wrote the first `len` stack slots.
            unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast::<T>(), self.len) }
        }
    }

    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if self.len > INLINE {
            &mut self.heap
        } else {
            // SAFETY: `resize` wrote the first `len` stack slots.
            unsafe { std::slice::from_raw_parts_mut(self.inline.as_mut_ptr().cast::<T>(), self.len) }
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for PerGroup<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<T: Copy + PartialEq> PartialEq for PerGroup<T> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_hold_the_same_numbers() {
        for n in [0, 3, INLINE, INLINE + 1, 40] {
            let want: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut p = PerGroup::filled(n, 0.0);
            for (i, x) in p.as_mut_slice().iter_mut().enumerate() {
                *x = i as f64;
            }
            assert_eq!(p.len(), n);
            assert_eq!(p.as_slice(), want.as_slice());
            // pushed, twice over the same storage
            for _ in 0..2 {
                p.clear();
                for &x in &want {
                    p.push(x);
                }
                assert_eq!(p.as_slice(), want.as_slice());
            }
        }
    }
}

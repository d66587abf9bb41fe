//! A step's per-group numbers, without an allocation for the usual few param groups.

use smallvec::SmallVec;

/// Up to this many param groups, a step's per-group numbers live on the stack.
pub const INLINE: usize = 16;

/// Numbers, one per param group: on the stack up to [`INLINE`] groups (no allocation on the
/// hot path), on the heap beyond. Made once per step and filled in place ([`PerGroup::resize`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PerGroup<T: Copy>(SmallVec<[T; INLINE]>);

impl<T: Copy> Default for PerGroup<T> {
    fn default() -> Self {
        PerGroup(SmallVec::new())
    }
}

impl<T: Copy> PerGroup<T> {
    /// None yet.
    #[inline(always)]
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of `xs`.
    pub fn from_slice(xs: &[T]) -> Self {
        PerGroup(SmallVec::from_slice(xs))
    }

    /// `len` numbers, each `x`.
    #[inline(always)]
    pub fn filled(len: usize, x: T) -> Self {
        PerGroup(SmallVec::from_elem(x, len))
    }

    /// `len` numbers, each `x` (whatever it held before).
    #[inline(always)]
    pub fn resize(&mut self, len: usize, x: T) {
        self.0.clear();
        self.0.resize(len, x);
    }

    /// None, keeping the room it has.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// One more number at the end.
    #[inline(always)]
    pub fn push(&mut self, x: T) {
        self.0.push(x);
    }

    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.0
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_hold_the_same_numbers() {
        for n in [0, 3, INLINE, INLINE + 1, 40] {
            let mut p = PerGroup::filled(n, 0.0);
            for (i, x) in p.as_mut_slice().iter_mut().enumerate() {
                *x = i as f64;
            }
            assert_eq!(p.len(), n);
            assert_eq!(p.as_slice(), (0..n).map(|i| i as f64).collect::<Vec<_>>().as_slice());
            p.resize(2, 7.0);
            assert_eq!(p.as_slice(), &[7.0, 7.0]);
        }
    }
}

//! `Stepper`: steps an annealing shape from `start` to `end` over `n_iter` iterations.

use super::alloc;
use super::anneal::Anneal;
use super::error::{CoreError, Result};

/// fastai v1's `Stepper`, for one value or one value per layer group (`start.len()`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stepper {
    pub start: Vec<f64>,
    pub end: Vec<f64>,
    pub n_iter: u64,
    pub n: u64,
    pub anneal: Anneal,
}

impl Stepper {
    /// A stepper at `n = 0`; `n_iter` below 1 counts as 1, as in fastai.
    pub fn new(start: Vec<f64>, end: Vec<f64>, n_iter: u64, anneal: Anneal) -> Result<Self> {
        if start.len() != end.len() {
            return Err(CoreError::Shape {
                msg: format!("vals: start has {} values but end has {}", start.len(), end.len()),
            });
        }
        for (&s, &e) in start.iter().zip(&end) {
            anneal.check_ends(s, e).map_err(|e| CoreError::value("vals", e.to_string()))?;
        }
        Ok(Stepper { start, end, n_iter: n_iter.max(1), n: 0, anneal })
    }

    /// The fraction of the schedule reached after `n` steps.
    #[inline]
    pub fn pct_at(&self, n: u64) -> f64 {
        n as f64 / self.n_iter as f64
    }

    #[inline]
    pub fn is_done(&self) -> bool {
        self.n >= self.n_iter
    }

    /// Sets the step count, e.g. to resume mid-schedule.
    pub fn set_n(&mut self, n: u64) {
        self.n = n;
    }

    /// The step count `i` steps from now; an error past `2**64 - 1` (`n` never wraps).
    #[inline]
    pub fn n_after(&self, i: u64) -> Result<u64> {
        self.n.checked_add(i).ok_or_else(|| CoreError::value("n", "cannot go past 2**64 - 1 steps"))
    }

    /// Advances one step and returns the first (or only) value; on error it does not advance.
    #[inline]
    pub fn step_first(&mut self) -> Result<f64> {
        let next = self.n_after(1)?;
        let v = self.anneal.eval(self.start[0], self.end[0], self.pct_at(next))?;
        self.n = next;
        Ok(v)
    }

    /// Advances one step and appends the value of every group to `out`; on error it does not advance.
    pub fn step_into(&mut self, out: &mut Vec<f64>) -> Result<()> {
        let next = self.n_after(1)?;
        self.values_at(next, out)?;
        self.n = next;
        Ok(())
    }

    /// The values of every group after `n` steps, appended to `out`.
    fn values_at(&self, n: u64, out: &mut Vec<f64>) -> Result<()> {
        let pct = self.pct_at(n);
        for (&s, &e) in self.start.iter().zip(&self.end) {
            out.push(self.anneal.eval(s, e, pct)?);
        }
        Ok(())
    }

    /// The next `k` values of every group (row-major, `k × groups`), without stepping.
    pub fn peek(&self, k: usize) -> Result<Vec<f64>> {
        let len = k.checked_mul(self.start.len()).ok_or_else(|| CoreError::value("k", "too many values"))?;
        let mut out = alloc::with_capacity("k", len)?;
        for i in 1..=k as u64 {
            self.values_at(self.n_after(i)?, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_like_fastai() {
        let mut s = Stepper::new(vec![1.0], vec![0.0], 4, Anneal::Linear).unwrap();
        let vals: Vec<f64> = (0..4).map(|_| s.step_first().unwrap()).collect();
        assert_eq!(vals, [0.75, 0.5, 0.25, 0.0]);
        assert!(s.is_done());
    }

    #[test]
    fn n_iter_below_one_counts_as_one() {
        let mut s = Stepper::new(vec![1.0], vec![3.0], 0, Anneal::Linear).unwrap();
        assert_eq!(s.n_iter, 1);
        assert_eq!(s.step_first().unwrap(), 3.0);
    }

    #[test]
    fn peek_matches_steps_for_groups() {
        let mut s = Stepper::new(vec![1.0, 2.0], vec![0.0, 0.5], 10, Anneal::Cos).unwrap();
        let preview = s.peek(10).unwrap();
        let mut stepped = Vec::new();
        while !s.is_done() {
            s.step_into(&mut stepped).unwrap();
        }
        assert_eq!(preview, stepped);
    }

    #[test]
    fn n_never_wraps() {
        let mut s = Stepper::new(vec![1.0], vec![0.0], 4, Anneal::Linear).unwrap();
        s.set_n(u64::MAX);
        assert_eq!(s.step_first().unwrap_err().arg(), Some("n"));
        assert_eq!(s.peek(1).unwrap_err().arg(), Some("n"));
        assert_eq!(s.n, u64::MAX);
    }

    #[test]
    fn bad_vals_are_named() {
        assert_eq!(Stepper::new(vec![0.0], vec![1.0], 3, Anneal::Exp).unwrap_err().arg(), Some("vals"));
        assert!(matches!(Stepper::new(vec![0.0], vec![], 3, Anneal::Linear), Err(CoreError::Shape { .. })));
    }
}

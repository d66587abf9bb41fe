//! `SmoothenValue`: the debiased exponential moving average fastai smooths losses with.

use super::error::{finite, CoreError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct SmoothenValue {
    pub beta: f64,
    pub n: u64,
    pub mov_avg: f64,
    pub smooth: f64,
    /// Set once `1 - beta**n` has rounded to 1: it stays 1 for every larger `n`, so `pow`
    /// (the bulk of the cost of a step) can be skipped with bit-identical results.
    debiased: bool,
}

impl SmoothenValue {
    /// A smoother with no values yet; `beta` must lie in [0, 1).
    pub fn new(beta: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&beta) {
            return Err(CoreError::value("beta", format!("expected a number in [0, 1), got {beta:?}")));
        }
        Ok(SmoothenValue { beta, n: 0, mov_avg: 0.0, smooth: 0.0, debiased: false })
    }

    /// `n += 1; mov_avg = beta*mov_avg + (1-beta)*v; smooth = mov_avg / (1 - beta**n)`.
    #[inline]
    pub fn add_value(&mut self, value: f64) -> Result<f64> {
        finite("value", value)?;
        self.n = self.next_n()?;
        self.mov_avg = self.beta * self.mov_avg + (1.0 - self.beta) * value;
        if self.debiased {
            self.smooth = self.mov_avg / 1.0;
        } else {
            let bias = 1.0 - self.beta.powf(self.n as f64);
            self.debiased = bias == 1.0;
            self.smooth = self.mov_avg / bias;
        }
        Ok(self.smooth)
    }

    /// The step count after one more value; an error past `2**64 - 1` (`n` never wraps).
    pub fn next_n(&self) -> Result<u64> {
        self.n.checked_add(1).ok_or_else(|| CoreError::value("n", "cannot count past 2**64 - 1 values"))
    }

    /// A smoother restored from a state: `beta` as `new` checks it, the averages finite.
    pub fn restore(beta: f64, n: u64, mov_avg: f64, smooth: f64) -> Result<Self> {
        let mut s = SmoothenValue::new(beta)?;
        s.set_n(n);
        s.mov_avg = finite("mov_avg", mov_avg)?;
        s.smooth = finite("smooth", smooth)?;
        Ok(s)
    }

    /// Sets the step count (when restoring a state); `n` may only go forward from a settled bias.
    pub fn set_n(&mut self, n: u64) {
        self.n = n;
        self.debiased = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_is_unbiased() {
        let mut s = SmoothenValue::new(0.98).unwrap();
        assert!((s.add_value(3.0).unwrap() - 3.0).abs() < 1e-14);
        assert!((s.add_value(3.0).unwrap() - 3.0).abs() < 1e-14);
        assert_eq!(s.n, 2);
    }

    #[test]
    fn skipping_the_settled_bias_changes_no_bit() {
        let mut s = SmoothenValue::new(0.9).unwrap();
        let (mut n, mut mov_avg) = (0u64, 0.0f64);
        for i in 0..2000 {
            let v = (i as f64).sin();
            n += 1;
            mov_avg = 0.9 * mov_avg + (1.0 - 0.9) * v;
            let expected = mov_avg / (1.0 - 0.9f64.powf(n as f64));
            assert_eq!(s.add_value(v).unwrap().to_bits(), expected.to_bits());
        }
        assert!(s.debiased);
    }

    #[test]
    fn rejects_bad_beta_and_values() {
        assert_eq!(SmoothenValue::new(1.0).unwrap_err().arg(), Some("beta"));
        assert_eq!(SmoothenValue::new(-0.1).unwrap_err().arg(), Some("beta"));
        assert_eq!(SmoothenValue::new(f64::NAN).unwrap_err().arg(), Some("beta"));
        let mut s = SmoothenValue::new(0.0).unwrap();
        assert_eq!(s.add_value(f64::NAN).unwrap_err().arg(), Some("value"));
        assert_eq!(s.n, 0, "a rejected value leaves the state alone");
        assert_eq!(s.add_value(2.5).unwrap(), 2.5);
        assert_eq!(SmoothenValue::restore(0.9, 1, f64::NAN, 1.0).unwrap_err().arg(), Some("mov_avg"));
        assert_eq!(SmoothenValue::restore(0.9, 1, 1.0, f64::INFINITY).unwrap_err().arg(), Some("smooth"));
        assert_eq!(SmoothenValue::restore(1.5, 1, 1.0, 1.0).unwrap_err().arg(), Some("beta"));
        let mut full = SmoothenValue::restore(0.9, u64::MAX, 1.0, 1.0).unwrap();
        assert_eq!(full.add_value(1.0).unwrap_err().arg(), Some("n"));
        assert_eq!(full.n, u64::MAX);
    }
}

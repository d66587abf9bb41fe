//! `SmoothenValue`: the debiased exponential moving average fastai smooths losses with.

use super::error::{finite, CoreError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Smoother {
    pub beta: f64,
    pub n: u64,
    pub mov_avg: f64,
    pub smooth: f64,
}

impl Smoother {
    /// A smoother with no values yet; `beta` must lie in [0, 1).
    pub fn new(beta: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&beta) {
            return Err(CoreError::value("beta", format!("must be in [0, 1), got {beta}")));
        }
        Ok(Smoother { beta, n: 0, mov_avg: 0.0, smooth: 0.0 })
    }

    /// `n += 1; mov_avg = beta*mov_avg + (1-beta)*v; smooth = mov_avg / (1 - beta**n)`.
    #[inline]
    pub fn add_value(&mut self, value: f64) -> Result<f64> {
        finite("value", value)?;
        self.n += 1;
        self.mov_avg = self.beta * self.mov_avg + (1.0 - self.beta) * value;
        self.smooth = self.mov_avg / (1.0 - self.beta.powf(self.n as f64));
        Ok(self.smooth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_is_unbiased() {
        let mut s = Smoother::new(0.98).unwrap();
        assert!((s.add_value(3.0).unwrap() - 3.0).abs() < 1e-14);
        assert!((s.add_value(3.0).unwrap() - 3.0).abs() < 1e-14);
        assert_eq!(s.n, 2);
    }

    #[test]
    fn rejects_bad_beta_and_values() {
        assert_eq!(Smoother::new(1.0).unwrap_err().arg(), Some("beta"));
        assert_eq!(Smoother::new(-0.1).unwrap_err().arg(), Some("beta"));
        assert_eq!(Smoother::new(f64::NAN).unwrap_err().arg(), Some("beta"));
        let mut s = Smoother::new(0.0).unwrap();
        assert_eq!(s.add_value(f64::NAN).unwrap_err().arg(), Some("value"));
        assert_eq!(s.n, 0, "a rejected value leaves the state alone");
        assert_eq!(s.add_value(2.5).unwrap(), 2.5);
    }
}

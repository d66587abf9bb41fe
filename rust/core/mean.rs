//! Exact accumulation: the weighted mean behind `AverageMetric`.
//!
//! Sums are kept as Shewchuk expansions (non-overlapping partials, as `math.fsum` does), and
//! each product `value * weight` enters as its exact two-term split, so the sum is exact and
//! rounds once, however many batches and however large the cancellations. (A product below
//! about 1e-291 cannot be split exactly: its rounding error is smaller than any float.)

use super::error::{finite, CoreError, Result};

/// An exact running sum of floats; `value()` is the correctly rounded total.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    partials: Vec<f64>,
}

impl ExactSum {
    /// Rebuilds a sum from the partials `partials()` returned.
    pub fn from_partials(partials: Vec<f64>) -> Self {
        ExactSum { partials }
    }

    pub fn partials(&self) -> &[f64] {
        &self.partials
    }

    /// Adds `x` exactly (Shewchuk's grow-expansion). `x` must be finite.
    pub fn add(&mut self, mut x: f64) {
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// Adds every partial of `other`, which keeps the sum exact.
    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.partials {
            self.add(p);
        }
    }

    /// The exact sum rounded once to the nearest float (ties to even), as `math.fsum`.
    pub fn value(&self) -> f64 {
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else { return 0.0 };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even correctly when the rest of the partials push past the halfway.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

/// The weighted mean of values, exact to float64 rounding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightedMean {
    pub sum: ExactSum,
    pub total_weight: ExactSum,
    pub count: u64,
}

impl WeightedMean {
    /// Adds `value` with `weight` (finite, non-negative); a bad pair leaves the mean alone.
    pub fn add(&mut self, value: f64, weight: f64) -> Result<()> {
        finite("value", value)?;
        if !(weight >= 0.0 && weight.is_finite()) {
            return Err(CoreError::value("weight", format!("must be finite and non-negative, got {weight}")));
        }
        let product = value * weight;
        if !product.is_finite() {
            return Err(CoreError::value("value", format!("value * weight overflows float64 ({value} * {weight})")));
        }
        self.sum.add(product);
        let error = value.mul_add(weight, -product);
        if error != 0.0 {
            self.sum.add(error);
        }
        self.total_weight.add(weight);
        self.count += 1;
        Ok(())
    }

    /// Adds pairs of values and weights; all are checked before any is added.
    pub fn extend(&mut self, values: &[f64], weights: Option<&[f64]>) -> Result<()> {
        if let Some(w) = weights {
            if w.len() != values.len() {
                return Err(CoreError::Shape {
                    msg: format!("weights has {} elements but values has {}", w.len(), values.len()),
                });
            }
        }
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let mut probe = WeightedMean::default();
        for (i, &v) in values.iter().enumerate() {
            probe.add(v, weight(i))?;
        }
        self.merge(&probe);
        Ok(())
    }

    /// Combines the partial sums of another accumulator (e.g. from another worker).
    pub fn merge(&mut self, other: &WeightedMean) {
        self.sum.merge(&other.sum);
        self.total_weight.merge(&other.total_weight);
        self.count += other.count;
    }

    pub fn mean(&self) -> Result<f64> {
        let total = self.total_weight.value();
        if total == 0.0 {
            let msg = if self.count == 0 {
                "the mean of an empty WeightedMean is undefined"
            } else {
                "the mean is undefined: the total weight is 0"
            };
            return Err(CoreError::Empty { msg: msg.into() });
        }
        Ok(self.sum.value() / total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_under_cancellation() {
        let mut s = ExactSum::default();
        for x in [1e100, 1.0, -1e100, 1e-100, 3.0] {
            s.add(x);
        }
        assert_eq!(s.value(), 4.0);
    }

    #[test]
    fn rounds_like_fsum() {
        // fsum([1, 1e-16, 1e-16]) == 1.0000000000000002 (naive summation gives 1.0).
        let mut s = ExactSum::default();
        for x in [1.0, 1e-16, 1e-16] {
            s.add(x);
        }
        assert_eq!(s.value(), 1.0000000000000002);
    }

    #[test]
    fn weighted_mean_and_merge() {
        let mut a = WeightedMean::default();
        a.add(1.0, 3.0).unwrap();
        let mut b = WeightedMean::default();
        b.extend(&[2.0, 4.0], Some(&[1.0, 0.0])).unwrap();
        a.merge(&b);
        assert_eq!(a.mean().unwrap(), 5.0 / 4.0);
        assert_eq!(a.count, 3);
    }

    #[test]
    fn products_are_exact() {
        let mut m = WeightedMean::default();
        let v = 0.1f64;
        m.add(v, 3.0).unwrap();
        m.add(-0.3, 1.0).unwrap();
        // 0.1*3 - 0.3 is not 0 in floats: the exact value is the product's rounding error.
        assert_eq!(m.sum.value(), v.mul_add(3.0, -0.3));
    }

    #[test]
    fn bad_input() {
        let mut m = WeightedMean::default();
        assert!(matches!(m.mean(), Err(CoreError::Empty { .. })));
        assert_eq!(m.add(f64::NAN, 1.0).unwrap_err().arg(), Some("value"));
        assert_eq!(m.add(1.0, -1.0).unwrap_err().arg(), Some("weight"));
        assert_eq!(m.add(1.0, f64::NAN).unwrap_err().arg(), Some("weight"));
        assert_eq!(m.extend(&[1.0, f64::INFINITY], None).unwrap_err().arg(), Some("value"));
        assert_eq!(m.count, 0, "rejected input leaves the mean alone");
        m.add(1.0, 0.0).unwrap();
        assert!(matches!(m.mean(), Err(CoreError::Empty { .. })));
    }
}

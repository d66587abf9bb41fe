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

/// Below this magnitude, neither an addend nor the running sum can overflow a grow step.
const SAFE: f64 = f64::MAX / 4.0;

/// The most partials a sum of finite floats can have (one per bit of the float64 range).
pub const MAX_PARTIALS: usize = 2100;

impl ExactSum {
    /// The exact sum of `values` (finite), e.g. partials a `partials()` returned; an error
    /// naming `arg` when one is not finite or the sum overflows.
    pub fn from_values(arg: &'static str, values: &[f64]) -> Result<Self> {
        let mut s = ExactSum::default();
        for &x in values {
            finite(arg, x)?;
            s.add_or(arg, x)?;
        }
        Ok(s)
    }

    pub fn partials(&self) -> &[f64] {
        &self.partials
    }

    /// Adds `x` (finite) exactly, or leaves the sum unchanged when it would overflow float64,
    /// as `math.fsum` raises rather than returning inf or NaN.
    /// Returns whether `x` was added.
    #[must_use]
    pub fn checked_add(&mut self, x: f64) -> bool {
        if self.is_safe_for(x) {
            self.grow(x);
            return true;
        }
        let mut trial = self.clone();
        trial.grow(x);
        let fits = trial.partials.iter().all(|p| p.is_finite()) && trial.value().is_finite();
        if fits {
            *self = trial;
        }
        fits
    }

    /// `checked_add`, with the overflow as an error naming `arg`.
    fn add_or(&mut self, arg: &'static str, x: f64) -> Result<()> {
        if x == 0.0 || self.checked_add(x) {
            Ok(())
        } else {
            Err(overflow(arg))
        }
    }

    /// True when adding `x` cannot overflow: every intermediate of a grow step is bounded by
    /// `|x|` plus the sum of the partials' magnitudes, at most a hair over the top one's.
    #[inline]
    fn is_safe_for(&self, x: f64) -> bool {
        x.abs() < SAFE && self.partials.last().is_none_or(|p| p.abs() < SAFE)
    }

    /// Shewchuk's grow-expansion: adds `x` exactly. Intermediates may overflow; callers check.
    fn grow(&mut self, mut x: f64) {
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

fn overflow(arg: &'static str) -> CoreError {
    let what = if arg == "weight" { "the total weight" } else { "the weighted sum" };
    CoreError::value(arg, format!("{what} overflows float64"))
}

/// The weighted mean of values, exact to float64 rounding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightedMean {
    pub sum: ExactSum,
    pub total_weight: ExactSum,
    pub count: u64,
}

impl WeightedMean {
    /// A mean from its parts (a restored state), checked as `add` checks what it adds.
    pub fn from_parts(sum: &[f64], total_weight: &[f64], count: u64) -> Result<Self> {
        let m = WeightedMean {
            sum: ExactSum::from_values("sum", sum)?,
            total_weight: ExactSum::from_values("total_weight", total_weight)?,
            count,
        };
        let total = m.total_weight.value();
        if total < 0.0 {
            return Err(CoreError::value("total_weight", format!("expected a non-negative number, got {total:?}")));
        }
        Ok(m)
    }

    /// Adds `value` with `weight` (finite, non-negative); a bad pair, or one that would
    /// overflow the sums, leaves the mean alone.
    pub fn add(&mut self, value: f64, weight: f64) -> Result<()> {
        finite("value", value)?;
        if !(weight >= 0.0 && weight.is_finite()) {
            return Err(CoreError::value("weight", format!("expected a finite non-negative number, got {weight:?}")));
        }
        let product = value * weight;
        if !product.is_finite() {
            return Err(CoreError::value(
                "value",
                format!("value * weight overflows float64 ({value:?} * {weight:?})"),
            ));
        }
        let count = self.count.checked_add(1).ok_or_else(|| CoreError::value("count", "more than 2**64 - 1 values"))?;
        let error = value.mul_add(weight, -product);
        if self.sum.is_safe_for(product) && self.total_weight.is_safe_for(weight) {
            self.sum.grow(product);
            if error != 0.0 {
                self.sum.grow(error);
            }
            self.total_weight.grow(weight);
        } else {
            let (mut sum, mut total) = (self.sum.clone(), self.total_weight.clone());
            sum.add_or("value", product)?;
            sum.add_or("value", error)?;
            total.add_or("weight", weight)?;
            (self.sum, self.total_weight) = (sum, total);
        }
        self.count = count;
        Ok(())
    }

    /// Adds pairs of values and weights (1 each when `weights` is `None`), in any layout;
    /// all are checked before any is added.
    pub fn extend_pairs(&mut self, pairs: impl Iterator<Item = (f64, f64)>) -> Result<()> {
        let mut probe = WeightedMean::default();
        for (v, w) in pairs {
            probe.add(v, w)?;
        }
        self.merge(&probe)
    }

    /// Adds pairs of values and weights; all are checked before any is added.
    pub fn extend(&mut self, values: &[f64], weights: Option<&[f64]>) -> Result<()> {
        match weights {
            Some(w) if w.len() != values.len() => Err(CoreError::Shape {
                msg: format!("weights has {} elements but values has {}", w.len(), values.len()),
            }),
            Some(w) => self.extend_pairs(values.iter().copied().zip(w.iter().copied())),
            None => self.extend_pairs(values.iter().map(|&v| (v, 1.0))),
        }
    }

    /// Combines the partial sums of another accumulator (e.g. from another worker); when
    /// the sums would overflow, neither changes.
    pub fn merge(&mut self, other: &WeightedMean) -> Result<()> {
        let count = self
            .count
            .checked_add(other.count)
            .ok_or_else(|| CoreError::value("count", "more than 2**64 - 1 values"))?;
        let (mut sum, mut total) = (self.sum.clone(), self.total_weight.clone());
        for &p in other.sum.partials() {
            sum.add_or("value", p)?;
        }
        for &p in other.total_weight.partials() {
            total.add_or("weight", p)?;
        }
        *self = WeightedMean { sum, total_weight: total, count };
        Ok(())
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
            assert!(s.checked_add(x));
        }
        assert_eq!(s.value(), 4.0);
    }

    #[test]
    fn rounds_like_fsum() {
        // fsum([1, 1e-16, 1e-16]) == 1.0000000000000002 (naive summation gives 1.0).
        let mut s = ExactSum::default();
        for x in [1.0, 1e-16, 1e-16] {
            assert!(s.checked_add(x));
        }
        assert_eq!(s.value(), 1.0000000000000002);
    }

    #[test]
    fn weighted_mean_and_merge() {
        let mut a = WeightedMean::default();
        a.add(1.0, 3.0).unwrap();
        let mut b = WeightedMean::default();
        b.extend(&[2.0, 4.0], Some(&[1.0, 0.0])).unwrap();
        a.merge(&b).unwrap();
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

    #[test]
    fn overflow_is_an_error_and_changes_nothing() {
        let mut m = WeightedMean::default();
        m.add(1.7e308, 1.0).unwrap();
        let before = m.clone();
        assert_eq!(m.add(1.7e308, 1.0).unwrap_err().arg(), Some("value"));
        assert_eq!(m, before);
        m.add(-1.7e308, 1.0).unwrap();
        assert_eq!(m.sum.value(), 0.0, "large values that cancel are still exact");
        let mut w = WeightedMean::default();
        w.add(1.0, 1.7e308).unwrap();
        assert_eq!(w.add(0.0, 1.7e308).unwrap_err().arg(), Some("weight"));
        let mut big = WeightedMean::default();
        big.add(1.7e308, 1.0).unwrap();
        assert_eq!(m.merge(&big).map(drop), Ok(()));
        assert!(m.merge(&big).is_err());
        assert_eq!(m.count, 3, "a refused merge changes nothing");
        assert!(m.extend(&[1.0, 1.7e308], None).is_err());
        assert_eq!(m.count, 3);
    }

    #[test]
    fn restored_parts_are_checked_and_renormalized() {
        assert_eq!(WeightedMean::from_parts(&[1.0], &[-1.0], 1).unwrap_err().arg(), Some("total_weight"));
        assert_eq!(WeightedMean::from_parts(&[f64::NAN], &[1.0], 1).unwrap_err().arg(), Some("sum"));
        assert_eq!(WeightedMean::from_parts(&[1.7e308, 1.7e308], &[1.0], 1).unwrap_err().arg(), Some("sum"));
        let m = WeightedMean::from_parts(&[1.0, 1e100, 1.0, -1e100], &[2.0], 2).unwrap();
        assert_eq!(m.sum.value(), 2.0);
        assert_eq!(m.mean().unwrap(), 1.0);
    }

    #[test]
    fn count_does_not_wrap() {
        let mut m = WeightedMean::from_parts(&[], &[], u64::MAX).unwrap();
        assert_eq!(m.add(1.0, 1.0).unwrap_err().arg(), Some("count"));
    }
}

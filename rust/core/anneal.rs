//! The annealing shapes `f(start, end, pct)` of fastai v1, pct going 0 → 1.
//!
//! Each formula is written in exactly the order of operations of its Python definition,
//! so that a scalar result is bit-for-bit what CPython's `math` module gives (both end in
//! the same libm `cos`/`pow`; Rust does not contract `a*b+c` into an FMA).

use std::f64::consts::PI;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

use super::error::{finite, CoreError, Result};
use super::{alloc, pool};

/// A built-in annealing shape. A Python callable is the slow path, handled by the bindings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anneal {
    No,
    Linear,
    Exp,
    Cos,
    Poly(f64),
}

impl Anneal {
    /// A polynomial shape of the given degree; the degree must be finite.
    pub fn poly(degree: f64) -> Result<Self> {
        Ok(Anneal::Poly(finite("degree", degree)?))
    }

    /// The name of the Python function of this shape, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Anneal::No => "annealing_no",
            Anneal::Linear => "annealing_linear",
            Anneal::Exp => "annealing_exp",
            Anneal::Cos => "annealing_cos",
            Anneal::Poly(_) => "annealing_poly",
        }
    }

    /// The formula alone, unchecked: callers have validated the arguments.
    #[inline]
    pub fn value(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::No => start,
            Anneal::Linear => start + pct * (end - start),
            Anneal::Exp => start * (end / start).powf(pct),
            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
            Anneal::Poly(degree) => end + (start - end) * (1.0 - pct).powf(degree),
        }
    }

    /// Checks that `start` and `end` are valid for this shape (at any pct).
    #[inline]
    pub fn check_ends(self, start: f64, end: f64) -> Result<()> {
        finite("start", start)?;
        finite("end", end)?;
        if self == Anneal::Exp {
            if start == 0.0 {
                return Err(CoreError::value("start", "annealing_exp needs a non-zero start"));
            }
            if (start < 0.0) != (end < 0.0) && end != 0.0 {
                return Err(CoreError::value(
                    "end",
                    format!("annealing_exp needs start and end of the same sign, got start={start:?}, end={end:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks `pct` for this shape, given valid ends.
    #[inline]
    pub fn check_pct(self, pct: f64) -> Result<()> {
        finite("pct", pct)?;
        if let Anneal::Poly(degree) = self {
            if pct > 1.0 && degree.fract() != 0.0 {
                return Err(CoreError::value(
                    "pct",
                    format!(
                        "expected a number <= 1 for annealing_poly of fractional degree {degree:?} (1 - pct < 0), got {pct:?}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The checked value: bad arguments and results that overflow float64 are errors.
    #[inline]
    pub fn eval(self, start: f64, end: f64, pct: f64) -> Result<f64> {
        self.check_ends(start, end)?;
        self.check_pct(pct)?;
        let v = self.value(start, end, pct);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(CoreError::Overflow {
                msg: format!("{}(start={start:?}, end={end:?}, pct={pct:?}) overflows float64", self.name()),
            })
        }
    }

    /// Elementwise `eval` over arrays broadcast together (NumPy rules), on all cores when
    /// the result is long. Every element equals the scalar `eval` of its arguments.
    pub fn eval_array(self, start: ArrayViewD<f64>, end: ArrayViewD<f64>, pct: ArrayViewD<f64>) -> Result<ArrayD<f64>> {
        let shape = broadcast_shape("start, end and pct", &[start.shape(), end.shape(), pct.shape()])?;
        let len = alloc::element_count("pct", &shape)?;
        let dim = IxDyn(&shape);
        let (Some(s), Some(e), Some(p)) =
            (start.broadcast(dim.clone()), end.broadcast(dim.clone()), pct.broadcast(dim))
        else {
            unreachable!("the shapes were checked to broadcast")
        };
        let mut out = ArrayD::from_shape_vec(IxDyn(&shape), alloc::zeros("pct", len)?).expect("len is the shape's");
        let zip = Zip::from(&mut out).and(&s).and(&e).and(&p);
        let one = |o: &mut f64, &s: &f64, &e: &f64, &p: &f64| *o = self.eval(s, e, p).unwrap_or(f64::NAN);
        if pool::parallel(len) {
            zip.par_for_each(one)
        } else {
            zip.for_each(one)
        }
        // Valid arguments never give NaN, so a NaN marks the first bad element: find its error.
        if out.iter().any(|v| v.is_nan()) {
            let mut first = Ok(());
            Zip::from(&s).and(&e).and(&p).for_each(|&s, &e, &p| {
                if first.is_ok() {
                    first = self.eval(s, e, p).map(drop);
                }
            });
            first?;
        }
        Ok(out)
    }
}

/// The NumPy broadcast of several shapes, or an error naming the arguments (`what`).
pub fn broadcast_shape(what: &str, shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let ndim = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; ndim];
    for shape in shapes {
        for (i, &d) in shape.iter().rev().enumerate() {
            let o = &mut out[ndim - 1 - i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(CoreError::Shape {
                    msg: format!("{what} have shapes {shapes:?} that do not broadcast together"),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr0, arr1};

    const ALL: [Anneal; 5] = [Anneal::No, Anneal::Linear, Anneal::Exp, Anneal::Cos, Anneal::Poly(2.0)];

    #[test]
    fn endpoints() {
        for a in ALL {
            assert_eq!(a.eval(2.0, 0.01, 0.0).unwrap(), 2.0, "{a:?} at 0");
        }
        assert_eq!(Anneal::Linear.eval(2.0, 0.5, 1.0).unwrap(), 0.5);
        assert_eq!(Anneal::Cos.eval(2.0, 0.5, 1.0).unwrap(), 0.5);
        assert_eq!(Anneal::Poly(0.8).eval(2.0, 0.5, 1.0).unwrap(), 0.5);
        assert!((Anneal::Exp.eval(2.0, 0.5, 1.0).unwrap() - 0.5).abs() < 1e-15);
        assert_eq!(Anneal::No.eval(2.0, 0.5, 1.0).unwrap(), 2.0);
    }

    #[test]
    fn formulas() {
        assert_eq!(Anneal::Linear.eval(1.0, 3.0, 0.25).unwrap(), 1.5);
        assert_eq!(Anneal::Cos.eval(1.0, 0.0, 0.5).unwrap(), 0.0 + 0.5 * ((PI * 0.5).cos() + 1.0));
        assert_eq!(Anneal::Exp.eval(1.0, 100.0, 0.5).unwrap(), 100f64.powf(0.5));
        assert_eq!(Anneal::Poly(2.0).eval(1.0, 0.0, 0.5).unwrap(), 0.25);
        assert_eq!(Anneal::Exp.eval(-1.0, -4.0, 0.5).unwrap(), -2.0);
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let arg = |r: Result<f64>| r.unwrap_err().arg();
        assert_eq!(arg(Anneal::Cos.eval(f64::NAN, 1.0, 0.5)), Some("start"));
        assert_eq!(arg(Anneal::Cos.eval(1.0, f64::INFINITY, 0.5)), Some("end"));
        assert_eq!(arg(Anneal::Linear.eval(1.0, 2.0, f64::NAN)), Some("pct"));
        assert_eq!(arg(Anneal::Exp.eval(0.0, 1.0, 0.5)), Some("start"));
        assert_eq!(arg(Anneal::Exp.eval(1.0, -1.0, 0.5)), Some("end"));
        assert_eq!(arg(Anneal::Poly(0.5).eval(1.0, 0.0, 1.5)), Some("pct"));
        let overflow = Anneal::Exp.eval(1e300, 1e-300, -2.0).unwrap_err();
        assert_eq!(overflow.to_string(), "annealing_exp(start=1e300, end=1e-300, pct=-2.0) overflows float64");
        assert!(Anneal::Poly(2.0).eval(1.0, 0.0, 1.5).is_ok(), "integral degrees take 1 - pct < 0");
        assert_eq!(Anneal::poly(f64::NAN).unwrap_err().arg(), Some("degree"));
    }

    #[test]
    fn arrays_broadcast_and_match_scalars() {
        let pct = ndarray::Array::linspace(0.0, 1.0, 100_001).into_dyn();
        let out = Anneal::Cos.eval_array(arr0(2.0).view().into_dyn(), arr0(0.1).view().into_dyn(), pct.view()).unwrap();
        for (p, v) in pct.iter().zip(out.iter()) {
            assert_eq!(*v, Anneal::Cos.eval(2.0, 0.1, *p).unwrap());
        }
        let groups = arr1(&[1.0, 2.0, 3.0]).into_dyn();
        let out =
            Anneal::Linear.eval_array(groups.view(), arr0(0.0).view().into_dyn(), arr0(0.5).view().into_dyn()).unwrap();
        assert_eq!(out.as_slice().unwrap(), &[0.5, 1.0, 1.5]);
    }

    #[test]
    fn arrays_report_the_bad_element_and_shape() {
        let pct = arr1(&[0.0, f64::NAN]).into_dyn();
        let err =
            Anneal::Cos.eval_array(arr0(1.0).view().into_dyn(), arr0(0.0).view().into_dyn(), pct.view()).unwrap_err();
        assert_eq!(err.arg(), Some("pct"));
        let two = arr1(&[1.0, 2.0]).into_dyn();
        let three = arr1(&[1.0, 2.0, 3.0]).into_dyn();
        let err = Anneal::Cos.eval_array(two.view(), three.view(), arr0(0.5).view().into_dyn()).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }));
    }
}

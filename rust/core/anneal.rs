//! The annealing shapes `f(start, end, pct)` of fastai v1, pct going 0 → 1.
//!
//! Each formula is written in exactly the order of operations of its Python definition,
//! so that a scalar result is bit-for-bit what CPython's `math` module gives (both end in
//! the same libm `cos`/`pow`; Rust does not contract `a*b+c` into an FMA).

use std::f64::consts::PI;

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use rayon::prelude::*;

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
        let single = |a: &ArrayViewD<f64>| if a.len() == 1 { a.iter().next().copied() } else { None };
        let ok = match (single(&start), single(&end), p.as_slice(), out.as_slice_mut()) {
            // The common case (one start and end, pct contiguous): the ends are checked once
            // and the shape is chosen once, outside a plain loop over slices.
            (Some(s), Some(e), Some(p), Some(o)) => self.check_ends(s, e).is_ok() && self.fill(s, e, p, o),
            _ => {
                let zip = Zip::from(&mut out).and(&s).and(&e).and(&p);
                let one = |o: &mut f64, &s: &f64, &e: &f64, &p: &f64| *o = self.eval(s, e, p).unwrap_or(f64::NAN);
                if pool::parallel(len) {
                    zip.par_for_each(one)
                } else {
                    zip.for_each(one)
                }
                // Valid arguments never give NaN, so a NaN marks a bad element.
                !out.iter().any(|v| v.is_nan())
            }
        };
        if !ok {
            // Report the first bad element's error.
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

    /// `out[i] = value(start, end, pct[i])` for valid ends, on all cores when long; true when
    /// every element is valid (a finite pct and a finite value: for valid ends, exactly when
    /// `eval` is `Ok`, since a fractional degree's `(1 - pct)^degree` is NaN for pct > 1).
    fn fill(self, start: f64, end: f64, pct: &[f64], out: &mut [f64]) -> bool {
        #[inline(always)]
        fn run(pct: &[f64], out: &mut [f64], f: impl Fn(f64) -> f64 + Sync) -> bool {
            let chunk = |p: &[f64], o: &mut [f64]| {
                let mut ok = true;
                for (o, &p) in o.iter_mut().zip(p) {
                    *o = f(p);
                    ok &= p.is_finite() & o.is_finite();
                }
                ok
            };
            const CHUNK: usize = 1 << 14;
            if pool::parallel(out.len()) {
                pct.par_chunks(CHUNK)
                    .zip(out.par_chunks_mut(CHUNK))
                    .map(|(p, o)| chunk(p, o))
                    .reduce(|| true, |a, b| a & b)
            } else {
                chunk(pct, out)
            }
        }
        // Each arm names its shape as a constant, so each loop is specialised to one formula.
        match self {
            Anneal::No => run(pct, out, |_| start),
            Anneal::Linear => run(pct, out, |p| Anneal::Linear.value(start, end, p)),
            Anneal::Exp => run(pct, out, |p| Anneal::Exp.value(start, end, p)),
            Anneal::Cos => run(pct, out, |p| Anneal::Cos.value(start, end, p)),
            Anneal::Poly(degree) => run(pct, out, |p| Anneal::Poly(degree).value(start, end, p)),
        }
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

    #[test]
    fn long_arrays_reject_what_scalars_reject() {
        // Long enough for the pool; one bad element near the end.
        let n = 1 << 16;
        let one = |x: f64| arr0(x).view().into_dyn().to_owned();
        let check = |shape: Anneal, start: f64, end: f64, bad: f64| {
            let mut pct = ndarray::Array::linspace(0.0, 1.0, n).into_dyn();
            pct[[n - 3]] = bad;
            let scalar = shape.eval(start, end, bad).unwrap_err();
            let array = shape.eval_array(one(start).view(), one(end).view(), pct.view()).unwrap_err();
            assert_eq!(array.to_string(), scalar.to_string(), "{shape:?} at {bad}");
        };
        check(Anneal::No, 1.0, 0.0, f64::NAN);
        check(Anneal::Cos, 1.0, 0.0, f64::INFINITY);
        check(Anneal::Poly(0.5), 1.0, 0.0, 1.5);
        check(Anneal::Linear, 1e308, -1e307, 20.0);
        check(Anneal::Exp, 1e300, 1e-300, -2.0);
        let empty = ndarray::Array::<f64, _>::zeros(0).into_dyn();
        let bad_start = Anneal::Exp.eval_array(one(0.0).view(), one(1.0).view(), empty.view()).unwrap();
        assert_eq!(bad_start.len(), 0, "nothing to evaluate, as NumPy has it");
        let err = Anneal::Exp.eval_array(one(0.0).view(), one(1.0).view(), arr1(&[0.5]).into_dyn().view()).unwrap_err();
        assert_eq!(err.arg(), Some("start"));
    }
}

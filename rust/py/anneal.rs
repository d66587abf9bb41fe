//! The annealing functions: scalars straight through the core, arrays on all cores with the
//! GIL released, tensors through the plain-Python formula.

use ndarray::{arr0, ArrayViewD};
use numpy::IntoPyArray;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyFloat, PyString, PyTuple};

use super::convert::{as_number, classify, real, reference, Arg};
use crate::core::Anneal;

/// `f(start, end, pct)` for a built-in shape, whatever the argument types.
pub fn apply<'py>(
    anneal: Anneal,
    start: &Bound<'py, PyAny>,
    end: &Bound<'py, PyAny>,
    pct: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = start.py();
    if let (Some(s), Some(e), Some(p)) = (as_number(start), as_number(end), as_number(pct)) {
        return Ok(PyFloat::new(py, anneal.eval(s, e, p)?).into_any());
    }
    let args = [classify("start", start)?, classify("end", end)?, classify("pct", pct)?];
    if args.iter().any(|a| matches!(a, Arg::Tensor)) {
        let (name, extra) = python_name(anneal);
        let mut args = vec![PyString::new(py, name).into_any(), start.clone(), end.clone(), pct.clone()];
        args.extend(extra.map(|d| PyFloat::new(py, d).into_any()));
        let args = PyTuple::new(py, args)?;
        return reference(py)?.getattr(intern!(py, "checked"))?.call1(args);
    }
    if let [Arg::Scalar(s), Arg::Scalar(e), Arg::Scalar(p)] = args {
        return Ok(PyFloat::new(py, anneal.eval(s, e, p)?).into_any());
    }
    let scalars: Vec<_> = args.iter().map(|a| if let Arg::Scalar(v) = a { arr0(*v) } else { arr0(0.0) }).collect();
    let view = |i: usize| -> ArrayViewD<'_, f64> {
        match &args[i] {
            Arg::Array(a) => a.as_array(),
            _ => scalars[i].view().into_dyn(),
        }
    };
    let (s, e, p) = (view(0), view(1), view(2));
    let out = py.detach(|| anneal.eval_array(s, e, p))?;
    Ok(out.into_pyarray(py).into_any())
}

/// The name of the plain-Python twin of a shape, and the degree it also takes.
fn python_name(anneal: Anneal) -> (&'static str, Option<f64>) {
    match anneal {
        Anneal::No => ("annealing_no", None),
        Anneal::Linear => ("annealing_linear", None),
        Anneal::Exp => ("annealing_exp", None),
        Anneal::Cos => ("annealing_cos", None),
        Anneal::Poly(d) => ("do_annealing_poly", Some(d)),
    }
}

/// Defines the Python function `$name(start, end, pct)` of a built-in shape.
macro_rules! shape_function {
    ($name:ident, $shape:expr, $doc:literal) => {
        #[doc = $doc]
        #[pyfunction]
        pub fn $name<'py>(
            start: &Bound<'py, PyAny>,
            end: &Bound<'py, PyAny>,
            pct: &Bound<'py, PyAny>,
        ) -> PyResult<Bound<'py, PyAny>> {
            apply($shape, start, end, pct)
        }
    };
}

shape_function!(
    annealing_no,
    Anneal::No,
    "No annealing: always `start`.

>>> annealing_no(0.1, 0.0, 0.7)
0.1"
);
shape_function!(
    annealing_linear,
    Anneal::Linear,
    "Linearly anneal from `start` to `end` as pct goes from 0.0 to 1.0.

>>> annealing_linear(1.0, 0.0, 0.25)
0.75
>>> annealing_linear(np.array([1.0, 2.0]), 0.0, 0.5)   # arrays: every element, on all cores
array([0.5, 1. ])"
);
shape_function!(
    annealing_exp,
    Anneal::Exp,
    "Exponentially anneal from `start` to `end` as pct goes from 0.0 to 1.0.

>>> round(annealing_exp(1.0, 0.01, 0.5), 12)               # start * (end/start)**pct
0.1"
);
shape_function!(
    annealing_cos,
    Anneal::Cos,
    "Cosine anneal from `start` to `end` as pct goes from 0.0 to 1.0.

>>> annealing_cos(1.0, 0.0, 0.5)
0.5
>>> annealing_cos(1.0, 0.0, np.linspace(0, 1, 5)).round(4)
array([1.    , 0.8536, 0.5   , 0.1464, 0.    ])"
);

/// Helper for `annealing_poly`: `end + (start-end) * (1-pct)**degree`.
///
/// >>> do_annealing_poly(1.0, 0.0, 0.5, 2.0)
/// 0.25
#[pyfunction]
pub fn do_annealing_poly<'py>(
    start: &Bound<'py, PyAny>,
    end: &Bound<'py, PyAny>,
    pct: &Bound<'py, PyAny>,
    degree: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    apply(Anneal::poly(real("degree", degree)?)?, start, end, pct)
}

/// Anneal polynomially from `start` to `end` as pct goes from 0.0 to 1.0: the callable
/// `annealing_poly(degree)` returns.
#[pyclass(module = "fastcb._core", name = "AnnealPoly", frozen)]
pub struct AnnealPoly {
    degree: f64,
}

#[pymethods]
impl AnnealPoly {
    #[new]
    fn new(degree: &Bound<'_, PyAny>) -> PyResult<Self> {
        let degree = real("degree", degree)?;
        Anneal::poly(degree)?;
        Ok(AnnealPoly { degree })
    }

    #[getter]
    fn degree(&self) -> f64 {
        self.degree
    }

    fn __call__<'py>(
        &self,
        start: &Bound<'py, PyAny>,
        end: &Bound<'py, PyAny>,
        pct: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        apply(Anneal::Poly(self.degree), start, end, pct)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (f64,))> {
        Ok((slf.get_type().into_any(), (slf.get().degree,)))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<AnnealPoly>().is_ok_and(|o| o.get().degree == self.degree)
    }

    fn __hash__(&self) -> u64 {
        self.degree.to_bits()
    }

    fn __repr__(&self) -> String {
        format!("annealing_poly({:?})", self.degree)
    }
}

/// Anneal polynomially from `start` to `end` as pct goes from 0.0 to 1.0.
///
/// >>> f = annealing_poly(2.0)
/// >>> f(1.0, 0.0, 0.5), f
/// (0.25, annealing_poly(2.0))
#[pyfunction]
pub fn annealing_poly(degree: &Bound<'_, PyAny>) -> PyResult<AnnealPoly> {
    AnnealPoly::new(degree)
}

/// The built-in functions' objects, so a `Stepper` given one runs the shape in Rust.
static BUILTINS: PyOnceLock<Vec<(Py<PyAny>, Anneal)>> = PyOnceLock::new();

/// The compiled shape behind `func`, if it is a built-in one.
pub fn builtin_shape(func: &Bound<'_, PyAny>) -> Option<Anneal> {
    if let Ok(poly) = func.cast::<AnnealPoly>() {
        return Some(Anneal::Poly(poly.get().degree));
    }
    let builtins = BUILTINS.get(func.py())?;
    builtins.iter().find(|(f, _)| f.bind(func.py()).is(func)).map(|(_, a)| *a)
}

/// The built-in function object of a shape (`annealing_no`, say), for `Stepper.func`.
pub fn builtin_function(py: Python<'_>, anneal: Anneal) -> Option<Bound<'_, PyAny>> {
    BUILTINS.get(py)?.iter().find(|(_, a)| *a == anneal).map(|(f, _)| f.bind(py).clone())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let shapes = [
        (wrap_pyfunction!(annealing_no, m)?, Anneal::No),
        (wrap_pyfunction!(annealing_linear, m)?, Anneal::Linear),
        (wrap_pyfunction!(annealing_exp, m)?, Anneal::Exp),
        (wrap_pyfunction!(annealing_cos, m)?, Anneal::Cos),
    ];
    let mut builtins = Vec::new();
    for (f, anneal) in shapes {
        m.add_function(f.clone())?;
        builtins.push((f.into_any().unbind(), anneal));
    }
    let _ = BUILTINS.set(py, builtins);
    m.add_function(wrap_pyfunction!(do_annealing_poly, m)?)?;
    m.add_function(wrap_pyfunction!(annealing_poly, m)?)?;
    m.add_class::<AnnealPoly>()?;
    Ok(())
}

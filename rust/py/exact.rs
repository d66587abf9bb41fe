//! Exact Python numbers for the compiled scheduler steps: only what torch's own arithmetic
//! would treat as a plain float or int. Anything else (a tensor, a NumPy scalar, a float
//! where torch needs an int) fails extraction, and torch's own code path runs instead.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

fn not_plain() -> PyErr {
    PyTypeError::new_err("not a plain float or int")
}

/// An exact `float` or `int` (not a `bool`, not a subclass), as `f64`.
#[derive(Clone, Copy)]
pub struct Num(pub f64);

impl<'a, 'py> FromPyObject<'a, 'py> for Num {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(f) = obj.cast_exact::<PyFloat>() {
            return Ok(Num(f.value()));
        }
        if obj.is_exact_instance_of::<PyInt>() {
            // Python converts an int to the nearest double in mixed arithmetic, as `as` does.
            return Ok(Num(obj.extract::<i64>()? as f64));
        }
        Err(not_plain())
    }
}

/// An exact `int` that fits `i64`.
#[derive(Clone, Copy)]
pub struct Int(pub i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Int {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_exact_instance_of::<PyInt>() {
            return Ok(Int(obj.extract()?));
        }
        Err(not_plain())
    }
}

/// A step count: an exact `int`, or an exact `float` holding an integer below 2**53 (where
/// every operation of transformers' formulas gives the same value for `10` and `10.0`).
#[derive(Clone, Copy)]
pub struct Steps(pub i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Steps {
    type Error = PyErr;

    #[inline]
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_exact_instance_of::<PyInt>() {
            return Ok(Steps(obj.extract()?));
        }
        if let Ok(f) = obj.cast_exact::<PyFloat>() {
            let v = f.value();
            if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                return Ok(Steps(v as i64));
            }
        }
        Err(not_plain())
    }
}

//! Argument conversion: Python numbers, NumPy arrays and torch tensors into the core's terms.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use super::error::{arg_error, type_error, Class};

/// One argument of an annealing function, sorted by the path that computes it.
pub enum Arg<'py> {
    Scalar(f64),
    Array(PyReadonlyArrayDyn<'py, f64>),
    /// A torch tensor: computed by the plain-Python formula, on its own device.
    Tensor,
}

static NUMPY_GENERIC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NUMPY_ASARRAY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static REFERENCE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static TORCH_TENSOR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A Python float or int, without calling `__float__` (which would sync a GPU tensor).
#[inline]
pub fn as_number(x: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(f) = x.cast::<PyFloat>() {
        return Some(f.value());
    }
    if x.is_instance_of::<PyInt>() {
        return x.extract::<f64>().ok();
    }
    None
}

/// A real number (anything `float()` takes but text), with errors naming the argument.
#[inline]
pub fn real(name: &str, x: &Bound<'_, PyAny>) -> PyResult<f64> {
    if let Some(v) = as_number(x) {
        return Ok(v);
    }
    match x.extract::<f64>() {
        Ok(v) => Ok(v),
        Err(_) if x.is_instance_of::<PyInt>() => Err(too_large_int(name)),
        Err(_) => Err(type_error(format!("{name}: expected a real number, got {}", type_name(x)))),
    }
}

/// An optional real number (an argument with a default: `None` when not given).
#[inline]
pub fn opt_real(name: &str, x: Option<&Bound<'_, PyAny>>) -> PyResult<Option<f64>> {
    x.map(|x| real(name, x)).transpose()
}

/// A count: a non-negative integer below 2**64, with errors naming the argument.
#[inline]
pub fn count(name: &str, x: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(n) = x.extract::<u64>() {
        return Ok(n);
    }
    let Ok(i) = x.call_method0("__index__") else {
        return Err(type_error(format!("{name}: expected an integer, got {}", type_name(x))));
    };
    let negative = i.lt(0)?;
    Err(arg_error(if negative {
        format!("{name}: expected a non-negative integer, got {i}")
    } else {
        format!("{name}: expected an integer below 2**64, got {i}")
    }))
}

/// A list or tuple of real numbers, copied into memory reserved fallibly.
pub fn float_vec(name: &'static str, x: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let len = if let Ok(l) = x.cast::<PyList>() {
        l.len()
    } else if let Ok(t) = x.cast::<PyTuple>() {
        t.len()
    } else {
        let a = float_array(name, x)?;
        let mut v = crate::core::alloc::with_capacity(name, a.len()?)?;
        v.extend(a.as_array().iter());
        return Ok(v);
    };
    let mut v = crate::core::alloc::with_capacity(name, len)?;
    for item in x.try_iter()? {
        v.push(real(name, &item?)?);
    }
    Ok(v)
}

/// A `str`, with an error naming the argument.
pub fn text(name: &str, x: &Bound<'_, PyAny>) -> PyResult<String> {
    match x.cast::<PyString>() {
        Ok(s) => Ok(s.to_str()?.to_owned()),
        Err(_) => Err(type_error(format!("{name}: expected a str, got {}", type_name(x)))),
    }
}

/// A `dict` (a state), with an error naming the argument.
pub fn dict<'py>(name: &str, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    match x.cast::<PyDict>() {
        Ok(d) => Ok(d.clone()),
        Err(_) => Err(type_error(format!("{name}: expected a dict, got {}", type_name(x)))),
    }
}

/// An instance of the compiled class `T`, with an error naming the argument.
pub fn instance<'py, T: pyo3::PyTypeInfo>(name: &str, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, T>> {
    match x.cast::<T>() {
        Ok(v) => Ok(v.clone()),
        Err(_) => {
            let class = T::type_object(x.py()).name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            Err(type_error(format!("{name}: expected a {class}, got {}", type_name(x))))
        }
    }
}

/// The name of `x`'s type, for messages.
pub fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// True for a torch tensor (torch is only looked at once the caller has imported it).
pub fn is_tensor(x: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = x.py();
    if let Some(tensor) = TORCH_TENSOR.get(py) {
        return x.is_instance(tensor.bind(py));
    }
    let Ok(torch) = py.import("sys")?.getattr("modules")?.get_item("torch") else { return Ok(false) };
    let tensor = TORCH_TENSOR
        .get_or_try_init(py, || -> PyResult<_> { Ok(torch.getattr("Tensor")?.cast_into::<PyType>()?.unbind()) })?;
    x.is_instance(tensor.bind(py))
}

/// `numpy.asarray(x, dtype=float64)`, with an error naming the argument.
pub fn float_array<'py>(name: &str, x: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    if let Ok(a) = x.cast::<PyArrayDyn<f64>>() {
        return Ok(a.readonly());
    }
    let py = x.py();
    let asarray = NUMPY_ASARRAY.get_or_try_init(py, || py.import("numpy")?.getattr("asarray").map(Bound::unbind))?;
    let converted = asarray
        .bind(py)
        .call1((x, "float64"))
        .map_err(|e| type_error(format!("{name}: expected an array of floats, got {} ({e})", type_name(x))))?;
    Ok(converted.cast_into::<PyArrayDyn<f64>>()?.readonly())
}

/// Sorts an argument into a scalar, a float64 array, or a tensor; anything else is a TypeError.
pub fn classify<'py>(name: &str, x: &Bound<'py, PyAny>) -> PyResult<Arg<'py>> {
    if let Some(v) = as_number(x) {
        return Ok(Arg::Scalar(v));
    }
    if x.is_instance_of::<PyInt>() {
        return Err(too_large_int(name));
    }
    let py = x.py();
    let generic = NUMPY_GENERIC.import(py, "numpy", "generic")?;
    if x.is_instance(generic)? {
        let v = x.extract::<f64>().map_err(|_| not_numeric(name, x))?;
        return Ok(Arg::Scalar(v));
    }
    if x.is_instance_of::<numpy::PyUntypedArray>() || x.is_instance_of::<PyList>() || x.is_instance_of::<PyTuple>() {
        return Ok(Arg::Array(float_array(name, x)?));
    }
    if is_tensor(x)? {
        return Ok(Arg::Tensor);
    }
    Err(not_numeric(name, x))
}

/// An int that `float()` refuses (OverflowError): a bad value, not a bad type.
fn too_large_int(name: &str) -> PyErr {
    arg_error(format!("{name}: expected a number within float64's range, got an int too large for one"))
}

fn not_numeric(name: &str, x: &Bound<'_, PyAny>) -> PyErr {
    type_error(format!("{name}: expected a number, a NumPy array or a torch tensor, got {}", type_name(x)))
}

/// The plain-Python formulas (`fastcb.reference`), for tensors and other objects.
pub fn reference(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    Ok(REFERENCE.get_or_try_init(py, || py.import("fastcb.reference").map(Bound::unbind))?.bind(py))
}

/// `state[key]`, or a `StateError` naming the missing key.
pub fn get<'py>(state: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    state.get_item(key)?.ok_or_else(|| Class::State.err(format!("state: missing key {key:?}")))
}

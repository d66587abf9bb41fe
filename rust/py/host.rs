//! `cpu_scalars`: one-number CPU tensors as a float64 array, each read by torch's `item()`
//! (the fast path of `fastcb._utils.host_floats`).
//!
//! The loop keeps one 0-dim loss tensor per training batch and reads them all once per
//! epoch. On an accelerator that read is one `stack` and one transfer (reading each would
//! wait for the device each time). On the CPU there is nothing to wait for, and torch's
//! `stack` (a view and its dispatch per tensor, then a copy) costs about twice what `item()`
//! costs per tensor. So here, when every item is exactly a `torch.Tensor` on the CPU, each
//! is read with its own `item()`: the number torch gives, converted to float64 as
//! `.double()` converts it. Anything else, and anything `item()` refuses (more than one
//! element), answers `None`: the caller runs torch's path for the whole list.
//!
//! (Reading the element at `data_ptr()` instead would take more: the five attributes it must
//! check first, the dtype and negative-view bit among them, each cost a torch getter about
//! as dear as a quarter of `item()`.)

use numpy::{IntoPyArray, PyArray1};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyType};

static TENSOR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The value of `v` when it is exactly a CPU tensor whose `item()` is a real number.
fn read(tensor: &Bound<'_, PyType>, v: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    let py = v.py();
    if !v.is_exact_instance(tensor) || !v.getattr(intern!(py, "is_cpu"))?.is_truthy()? {
        return Ok(None);
    }
    let x = v.call_method0(intern!(py, "item"))?;
    if let Ok(f) = x.cast_exact::<PyFloat>() {
        return Ok(Some(f.value()));
    }
    // An integer dtype's value, correctly rounded as the C cast of `.double()` rounds it; a
    // bool's, 0 or 1. (A complex number is left to torch's path.)
    if x.is_exact_instance_of::<PyInt>() || x.is_exact_instance_of::<PyBool>() {
        return Ok(Some(x.extract::<f64>()?));
    }
    Ok(None)
}

/// `cpu_scalars(values)`: the list `values` as a float64 array when each item is exactly a
/// `torch.Tensor` on the CPU holding one real number (its `item()`, as `.double()` converts
/// it); `None` otherwise. The caller checks first that no torch function or dispatch mode is
/// active (each `item()` would show it a host read).
#[pyfunction]
fn cpu_scalars<'py>(values: &Bound<'py, PyList>) -> PyResult<Option<Bound<'py, PyArray1<f64>>>> {
    let py = values.py();
    let tensor = TENSOR
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("torch")?.getattr("Tensor")?.cast_into::<PyType>()?.unbind())
        })?
        .bind(py);
    let mut out = Vec::with_capacity(values.len());
    for v in values.iter() {
        match read(tensor, &v) {
            Ok(Some(x)) => out.push(x),
            Ok(None) | Err(_) => return Ok(None),
        }
    }
    Ok(Some(out.into_pyarray(py)))
}

/// Adds `cpu_scalars` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cpu_scalars, m)?)
}

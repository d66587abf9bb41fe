//! The one mapping from the core's errors to Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::PyErr;

use crate::core::CoreError;

impl From<CoreError> for PyErr {
    /// Every core error is a `ValueError`; its message starts with the argument at fault.
    fn from(err: CoreError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

static STATE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A refused `load_state_dict`: `fastcb.errors.StateError` (a `ValueError`) with the message
/// of `err` (the check that failed, kept as its cause), starting with `state: `.
pub fn state_error(py: Python<'_>, err: PyErr) -> PyErr {
    let value = err.value(py);
    let msg = match value.getattr("args").and_then(|a| a.get_item(0)) {
        Ok(m) => m.to_string(),
        Err(_) => value.to_string(),
    };
    let msg = if msg.starts_with("state") { msg } else { format!("state: {msg}") };
    match STATE_ERROR.import(py, "fastcb.errors", "StateError") {
        Ok(cls) => {
            let e = PyErr::from_type(cls.clone(), msg);
            e.set_cause(py, Some(err));
            e
        }
        Err(_) => err,
    }
}

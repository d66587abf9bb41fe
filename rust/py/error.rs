//! The one mapping from the core's errors to Python exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::core::CoreError;

impl From<CoreError> for PyErr {
    /// Every core error is a `ValueError`; its message starts with the argument at fault.
    fn from(err: CoreError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

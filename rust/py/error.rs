//! The one mapping from the core's errors, and the bindings' own, to the exception classes
//! of `fastcb.errors` (each also the built-in it refines, so `except ValueError` still works).

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::PyErr;

use crate::core::CoreError;

/// A class of `fastcb.errors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `ArgumentError` (a `ValueError`): an argument out of its domain.
    Argument,
    /// `ArgumentTypeError` (a `TypeError`): an argument of a type that can't be used.
    ArgumentType,
    /// `ScheduleError` (a `ValueError`): a bad argument of a `Schedule`.
    Schedule,
    /// `ShapeError` (a `ValueError`): array shapes that don't fit together.
    Shape,
    /// `EmptyAccumulatorError` (a `ValueError`): a mean of nothing.
    EmptyAccumulator,
    /// `StateError` (a `ValueError`): a state that doesn't fit its object.
    State,
    /// `ReentrantCallError` (a `RuntimeError`): an object used from inside its own call.
    Reentrant,
}

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Argument => "ArgumentError",
            Class::ArgumentType => "ArgumentTypeError",
            Class::Schedule => "ScheduleError",
            Class::Shape => "ShapeError",
            Class::EmptyAccumulator => "EmptyAccumulatorError",
            Class::State => "StateError",
            Class::Reentrant => "ReentrantCallError",
        }
    }

    /// The error of this class with the message `msg` (which starts with the argument's name).
    pub fn err(self, msg: impl Into<String>) -> PyErr {
        let msg = msg.into();
        Python::attach(|py| {
            let cls = ERRORS
                .get_or_try_init(py, || py.import("fastcb.errors").map(Bound::unbind))
                .and_then(|m| m.bind(py).getattr(self.name()));
            match cls {
                Ok(cls) => cls.call1((msg,)).map_or_else(|e| e, PyErr::from_value),
                // Only if fastcb.errors can't be imported (a broken install): the built-in base.
                Err(_) => match self {
                    Class::ArgumentType => PyTypeError::new_err(msg),
                    Class::Reentrant => PyRuntimeError::new_err(msg),
                    _ => PyValueError::new_err(msg),
                },
            }
        })
    }
}

/// `ArgumentError(msg)`.
pub fn arg_error(msg: impl Into<String>) -> PyErr {
    Class::Argument.err(msg)
}

/// `ArgumentTypeError(msg)`.
pub fn type_error(msg: impl Into<String>) -> PyErr {
    Class::ArgumentType.err(msg)
}

impl From<CoreError> for PyErr {
    /// The class follows the variant; the message starts with the argument at fault.
    fn from(err: CoreError) -> PyErr {
        let class = match &err {
            CoreError::Value { .. } | CoreError::Overflow { .. } => Class::Argument,
            CoreError::Schedule { .. } => Class::Schedule,
            CoreError::Shape { .. } => Class::Shape,
            CoreError::Empty { .. } => Class::EmptyAccumulator,
        };
        class.err(err.to_string())
    }
}

/// A refused `load_state_dict`: `StateError` with the message of `err` (the check that
/// failed, kept as its cause), starting with `state: `.
pub fn state_error(py: Python<'_>, err: PyErr) -> PyErr {
    let value = err.value(py);
    let msg = match value.getattr("args").and_then(|a| a.get_item(0)) {
        Ok(m) => m.to_string(),
        Err(_) => value.to_string(),
    };
    let msg = if msg.starts_with("state") { msg } else { format!("state: {msg}") };
    let e = Class::State.err(msg);
    e.set_cause(py, Some(err));
    e
}

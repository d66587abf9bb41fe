//! Bindings of transformers' schedule factors (`HfFactor`).

use pyo3::exceptions::{PyTypeError, PyValueError, PyZeroDivisionError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::IntoPyObjectExt;

use crate::core::hf_sched::{FactorError, HfFactor as CoreFactor, WsdShape};

fn factor_spec<'py>(py: Python<'py>, f: &CoreFactor) -> PyResult<Bound<'py, PyAny>> {
    match *f {
        CoreFactor::Constant => ("constant",).into_bound_py_any(py),
        CoreFactor::ConstantWarmup { warmup } => ("constant_warmup", warmup).into_bound_py_any(py),
        CoreFactor::Linear { warmup, total } => ("linear", warmup, total).into_bound_py_any(py),
        CoreFactor::Cosine { warmup, total, cycles } => ("cosine", warmup, total, cycles).into_bound_py_any(py),
        CoreFactor::HardRestarts { warmup, total, cycles } => {
            ("hard_restarts", warmup, total, cycles).into_bound_py_any(py)
        }
        CoreFactor::Polynomial { warmup, total, lr_end, power, lr_init } => {
            ("polynomial", warmup, total, lr_end, power, lr_init).into_bound_py_any(py)
        }
        CoreFactor::InverseSqrt { warmup, timescale } => ("inverse_sqrt", warmup, timescale).into_bound_py_any(py),
        CoreFactor::Wsd { warmup, stable, decay, up, down, min_ratio, cycles } => {
            ("wsd", warmup, stable, decay, up.name(), down.name(), min_ratio, cycles).into_bound_py_any(py)
        }
    }
}

fn factor_from_spec(spec: &Bound<'_, PyTuple>) -> PyResult<CoreFactor> {
    let kind: String = spec.get_item(0)?.extract()?;
    let n = spec.len();
    let int = |i: usize, name: &str| -> PyResult<i64> {
        spec.get_item(i)?.extract().map_err(|_| PyTypeError::new_err(format!("{name}: must be an integer")))
    };
    let float = |i: usize, name: &str| -> PyResult<f64> {
        let v: f64 =
            spec.get_item(i)?.extract().map_err(|_| PyTypeError::new_err(format!("{name}: must be a number")))?;
        crate::core::error::finite(name_static(name), v).map_err(PyErr::from)
    };
    let wsd_shape = |i: usize, name: &str| -> PyResult<WsdShape> {
        let s: String = spec.get_item(i)?.extract()?;
        WsdShape::parse(&s).ok_or_else(|| {
            PyValueError::new_err(format!("Unknown {name} type: {s}, expected 'linear', 'cosine' or '1-sqrt'"))
        })
    };
    let arity = |k: usize| -> PyResult<()> {
        if n == k {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!("spec: {kind} takes {} parameters, got {}", k - 1, n - 1)))
        }
    };
    Ok(match kind.as_str() {
        "constant" => {
            arity(1)?;
            CoreFactor::Constant
        }
        "constant_warmup" => {
            arity(2)?;
            CoreFactor::ConstantWarmup { warmup: int(1, "num_warmup_steps")? }
        }
        "linear" => {
            arity(3)?;
            CoreFactor::Linear { warmup: int(1, "num_warmup_steps")?, total: int(2, "num_training_steps")? }
        }
        "cosine" | "hard_restarts" => {
            arity(4)?;
            let (warmup, total, cycles) =
                (int(1, "num_warmup_steps")?, int(2, "num_training_steps")?, float(3, "num_cycles")?);
            if kind == "cosine" {
                CoreFactor::Cosine { warmup, total, cycles }
            } else {
                CoreFactor::HardRestarts { warmup, total, cycles }
            }
        }
        "polynomial" => {
            arity(6)?;
            CoreFactor::Polynomial {
                warmup: int(1, "num_warmup_steps")?,
                total: int(2, "num_training_steps")?,
                lr_end: float(3, "lr_end")?,
                power: float(4, "power")?,
                lr_init: float(5, "lr_init")?,
            }
        }
        "inverse_sqrt" => {
            arity(3)?;
            CoreFactor::InverseSqrt { warmup: int(1, "num_warmup_steps")?, timescale: int(2, "timescale")? }
        }
        "wsd" => {
            arity(8)?;
            CoreFactor::Wsd {
                warmup: int(1, "num_warmup_steps")?,
                stable: int(2, "num_stable_steps")?,
                decay: int(3, "num_decay_steps")?,
                up: wsd_shape(4, "warmup")?,
                down: wsd_shape(5, "decay")?,
                min_ratio: float(6, "min_lr_ratio")?,
                cycles: float(7, "num_cycles")?,
            }
        }
        _ => return Err(PyValueError::new_err(format!("spec: unknown factor {kind:?}"))),
    })
}

/// The argument names the factors check, as the `'static` names errors carry.
fn name_static(name: &str) -> &'static str {
    ["num_cycles", "lr_end", "power", "lr_init", "min_lr_ratio"].into_iter().find(|n| *n == name).unwrap_or("value")
}

fn factor_error(e: FactorError) -> PyErr {
    match e {
        FactorError::ZeroDivision => PyZeroDivisionError::new_err("float division by zero"),
        FactorError::Domain => PyValueError::new_err("math domain error"),
    }
}

/// The multiplicative factor of one of transformers' schedule factories, as a picklable
/// callable of the step: `lr = base_lr * factor(step)`.
#[pyclass(module = "fastcb._core", name = "HfFactor", frozen)]
pub struct HfFactor(pub CoreFactor);

#[pymethods]
impl HfFactor {
    /// `HfFactor(kind, *params)`; see `spec` for the kinds and their parameters.
    #[new]
    #[pyo3(signature = (*spec))]
    fn new(spec: &Bound<'_, PyTuple>) -> PyResult<Self> {
        if spec.is_empty() {
            return Err(PyTypeError::new_err("HfFactor needs a kind"));
        }
        Ok(HfFactor(factor_from_spec(spec)?))
    }

    /// `(kind, *params)`: `constant`, `constant_warmup(w)`, `linear(w, total)`,
    /// `cosine(w, total, cycles)`, `hard_restarts(w, total, cycles)`,
    /// `polynomial(w, total, lr_end, power, lr_init)`, `inverse_sqrt(w, timescale)`,
    /// `wsd(w, stable, decay, warmup_type, decay_type, min_lr_ratio, cycles)`.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        factor_spec(py, &self.0)
    }

    /// The factor at `step`.
    fn __call__(&self, step: i64) -> PyResult<f64> {
        self.0.value(step).map_err(factor_error)
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        (slf.get_type(), factor_spec(py, &slf.get().0)?).into_bound_py_any(py)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<HfFactor>().map(|o| o.get().0 == self.0).unwrap_or(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("HfFactor{}", factor_spec(py, &self.0)?.repr()?))
    }
}

/// Adds `HfFactor` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<HfFactor>()
}

//! `SmoothenValue`: numbers are smoothed in Rust; a tensor is smoothed with its own
//! arithmetic, on its own device, so reading the loss never waits for the GPU.

use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat};

use super::convert::{as_number, is_tensor};
use crate::core::smooth::Smoother;

/// The moving average of a value, debiased like Adam's (fastai v1's `SmoothenValue`).
#[pyclass(module = "fastcb._core", name = "SmoothenValue", subclass)]
pub struct SmoothenValue {
    core: Smoother,
    /// `smooth` once a tensor was added: from then on, arithmetic is the tensor's.
    tensor: Option<Py<PyAny>>,
}

impl SmoothenValue {
    /// One tensor op per step: with `s = mov_avg / (1 - beta**n)`, the seed's two updates
    /// are `s_n = lerp(s_{n-1}, value, (1-beta) / (1-beta**n))`. `mov_avg` is derived from
    /// `smooth` when read. The op is out of place: callers keep the tensors they were given.
    fn add_tensor(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let (beta, n) = (self.core.beta, self.core.n + 1);
        let weight = (1.0 - beta) / (1.0 - beta.powf(n as f64));
        let smooth = match &self.tensor {
            Some(s) => {
                let s = s.bind(py);
                // lerp needs matching dtypes and devices; anything else takes the operators.
                match s.call_method1(intern!(py, "lerp"), (value, weight)) {
                    Ok(v) => v,
                    Err(_) => s.add(value.sub(s)?.mul(weight)?)?,
                }
            }
            None => {
                let s = PyFloat::new(py, self.core.smooth);
                s.add(value.sub(&s)?.mul(weight)?)?
            }
        };
        self.core.set_n(n);
        self.tensor = Some(smooth.unbind());
        Ok(())
    }
}

#[pymethods]
impl SmoothenValue {
    #[new]
    fn new(beta: f64) -> PyResult<Self> {
        Ok(SmoothenValue { core: Smoother::new(beta)?, tensor: None })
    }

    /// Adds `value` to the average: a number, or a tensor kept on its device.
    fn add_value(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.tensor.is_none() {
            if let Some(v) = as_number(value) {
                self.core.add_value(v)?;
                return Ok(());
            }
        }
        if is_tensor(value)? || (self.tensor.is_some() && as_number(value).is_some()) {
            return self.add_tensor(value);
        }
        match value.extract::<f64>() {
            Ok(v) if self.tensor.is_none() => Ok(self.core.add_value(v).map(drop)?),
            _ => Err(PyTypeError::new_err(format!(
                "value: expected a number or a torch tensor, got {}",
                value.get_type().name()?
            ))),
        }
    }

    #[getter]
    fn beta(&self) -> f64 {
        self.core.beta
    }

    #[getter]
    fn n(&self) -> u64 {
        self.core.n
    }

    /// The moving average before debiasing (for tensors, derived from `smooth` when read).
    #[getter]
    fn mov_avg<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.tensor {
            Some(s) => s.bind(py).mul(1.0 - self.core.beta.powf(self.core.n as f64)),
            None => Ok(PyFloat::new(py, self.core.mov_avg).into_any()),
        }
    }

    /// The debiased moving average: a float, or a tensor on the device of the values.
    #[getter]
    fn smooth(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.tensor {
            Some(s) => s.clone_ref(py),
            None => PyFloat::new(py, self.core.smooth).into_any().unbind(),
        }
    }

    /// `{'beta', 'n', 'mov_avg', 'smooth'}`.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("beta", self.core.beta)?;
        d.set_item("n", self.core.n)?;
        d.set_item("mov_avg", self.mov_avg(py)?)?;
        d.set_item("smooth", self.smooth(py))?;
        Ok(d)
    }

    /// Restores a `state_dict()`.
    fn load_state_dict(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let get = |k: &str| state.get_item(k)?.ok_or_else(|| PyKeyError::new_err(format!("state: missing key {k:?}")));
        let mut core = Smoother::new(get("beta")?.extract()?)?;
        core.set_n(get("n")?.extract()?);
        let smooth = get("smooth")?;
        let tensor = match as_number(&smooth) {
            Some(s) => {
                (core.mov_avg, core.smooth) = (get("mov_avg")?.extract()?, s);
                None
            }
            None => Some(smooth.unbind()),
        };
        *self = SmoothenValue { core, tensor };
        Ok(())
    }

    fn __getnewargs__(&self) -> (f64,) {
        (self.core.beta,)
    }

    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.state_dict(py)
    }

    fn __setstate__(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        self.load_state_dict(state)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "SmoothenValue(beta={:?}, n={}, smooth={})",
            self.core.beta,
            self.core.n,
            self.smooth(py).bind(py).repr()?
        ))
    }
}

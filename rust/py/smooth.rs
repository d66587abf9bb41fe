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
    /// `(mov_avg, smooth)` once a tensor was added: from then on, arithmetic is the tensor's.
    tensors: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl SmoothenValue {
    /// One tensor op per step once the bias has settled: `mov_avg.lerp(value, 1 - beta)`
    /// (`beta*mov_avg + (1-beta)*value`), then `/ (1 - beta**n)` only while that is not 1.
    fn add_tensor(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let (beta, n) = (self.core.beta, self.core.n + 1);
        let weight = 1.0 - beta;
        let mov_avg = match &self.tensors {
            Some((m, _)) => {
                let m = m.bind(py);
                // lerp needs matching dtypes and devices; anything else takes the operators.
                match m.call_method1(intern!(py, "lerp"), (value, weight)) {
                    Ok(v) => v,
                    Err(_) => PyFloat::new(py, beta).mul(m)?.add(PyFloat::new(py, weight).mul(value)?)?,
                }
            }
            None if self.core.mov_avg == 0.0 => value.mul(weight)?,
            None => PyFloat::new(py, beta * self.core.mov_avg).add(value.mul(weight)?)?,
        };
        let bias = 1.0 - beta.powf(n as f64);
        let smooth = if bias == 1.0 { mov_avg.clone() } else { mov_avg.div(bias)? };
        self.core.set_n(n);
        self.tensors = Some((mov_avg.unbind(), smooth.unbind()));
        Ok(())
    }
}

#[pymethods]
impl SmoothenValue {
    #[new]
    fn new(beta: f64) -> PyResult<Self> {
        Ok(SmoothenValue { core: Smoother::new(beta)?, tensors: None })
    }

    /// Adds `value` to the average: a number, or a tensor kept on its device.
    fn add_value(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.tensors.is_none() {
            if let Some(v) = as_number(value) {
                self.core.add_value(v)?;
                return Ok(());
            }
        }
        if is_tensor(value)? || (self.tensors.is_some() && as_number(value).is_some()) {
            return self.add_tensor(value);
        }
        match value.extract::<f64>() {
            Ok(v) if self.tensors.is_none() => Ok(self.core.add_value(v).map(drop)?),
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

    #[getter]
    fn mov_avg(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.tensors {
            Some((m, _)) => m.clone_ref(py),
            None => PyFloat::new(py, self.core.mov_avg).into_any().unbind(),
        }
    }

    #[getter]
    fn smooth(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.tensors {
            Some((_, s)) => s.clone_ref(py),
            None => PyFloat::new(py, self.core.smooth).into_any().unbind(),
        }
    }

    /// `{'beta', 'n', 'mov_avg', 'smooth'}`.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("beta", self.core.beta)?;
        d.set_item("n", self.core.n)?;
        d.set_item("mov_avg", self.mov_avg(py))?;
        d.set_item("smooth", self.smooth(py))?;
        Ok(d)
    }

    /// Restores a `state_dict()`.
    fn load_state_dict(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let get = |k: &str| state.get_item(k)?.ok_or_else(|| PyKeyError::new_err(format!("state: missing key {k:?}")));
        let mut core = Smoother::new(get("beta")?.extract()?)?;
        core.set_n(get("n")?.extract()?);
        let (mov_avg, smooth) = (get("mov_avg")?, get("smooth")?);
        let tensors = match (as_number(&mov_avg), as_number(&smooth)) {
            (Some(m), Some(s)) => {
                (core.mov_avg, core.smooth) = (m, s);
                None
            }
            _ => Some((mov_avg.unbind(), smooth.unbind())),
        };
        *self = SmoothenValue { core, tensors };
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

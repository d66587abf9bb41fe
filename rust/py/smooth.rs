//! `SmoothenValue`: numbers are smoothed in Rust; a tensor is smoothed with its own
//! arithmetic, on its own device, so reading the loss never waits for the GPU.

use pyo3::gc::PyVisit;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat};
use pyo3::PyTraverseError;

use super::convert::{as_number, count, dict, get, is_tensor, real, type_name};
use super::error::{arg_error, state_error, type_error};
use super::guard::Guarded;
use crate::core::error::CoreError;
use crate::core::smooth::SmoothenValue as CoreSmoothenValue;

struct State {
    core: CoreSmoothenValue,
    /// `smooth` once a tensor was added: from then on, arithmetic is the tensor's.
    tensor: Option<Py<PyAny>>,
}

/// The moving average of a value, debiased like Adam's (fastai v1's `SmoothenValue`).
/// Safe to share between threads: calls run one at a time.
///
/// >>> s = SmoothenValue(0.9)
/// >>> s.add_value(1.0)
/// >>> s.add_value(2.0)
/// >>> s.n, round(s.smooth, 6)        # (0.9*0.1 + 0.1*2) / (1 - 0.9**2)
/// (2, 1.526316)
#[pyclass(module = "fastcb._core", name = "SmoothenValue", subclass, frozen)]
pub struct SmoothenValue(Guarded<State>);

impl State {
    /// One tensor op per step: with `s = mov_avg / (1 - beta**n)`, the seed's two updates
    /// are `s_n = lerp(s_{n-1}, value, (1-beta) / (1-beta**n))`. `mov_avg` is derived from
    /// `smooth` when read. The op is out of place: callers keep the tensors they were given.
    fn add_tensor(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        let (beta, n) = (self.core.beta, self.core.next_n()?);
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

    fn mov_avg<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.tensor {
            Some(s) => s.bind(py).mul(1.0 - self.core.beta.powf(self.core.n as f64)),
            None => Ok(PyFloat::new(py, self.core.mov_avg).into_any()),
        }
    }

    fn smooth(&self, py: Python<'_>) -> Py<PyAny> {
        match &self.tensor {
            Some(s) => s.clone_ref(py),
            None => PyFloat::new(py, self.core.smooth).into_any().unbind(),
        }
    }
}

/// Whether every element of the tensor `t` is finite (waits for its device: restoring only).
fn all_finite(t: &Bound<'_, PyAny>) -> PyResult<bool> {
    let torch = t.py().import("torch")?;
    torch.call_method1("isfinite", (t,))?.call_method0("all")?.is_truthy()
}

/// The state `state` describes, checked as the constructor and `add_value` check.
fn restore(state: &Bound<'_, PyDict>) -> PyResult<State> {
    let beta = real("state: beta", &get(state, "beta")?)?;
    let n = count("state: n", &get(state, "n")?)?;
    let (smooth, mov_avg) = (get(state, "smooth")?, get(state, "mov_avg")?);
    if is_tensor(&smooth)? {
        if !all_finite(&smooth)? {
            return Err(arg_error("state: smooth: expected a finite number, got a tensor holding NaN or inf"));
        }
        let core = CoreSmoothenValue::restore(beta, n, 0.0, 0.0)?;
        return Ok(State { core, tensor: Some(smooth.unbind()) });
    }
    let s = as_number(&smooth).ok_or_else(|| {
        type_error(format!("state: smooth: expected a number or a torch tensor, got {}", type_name(&smooth)))
    })?;
    let m = real("state: mov_avg", &mov_avg)?;
    Ok(State { core: CoreSmoothenValue::restore(beta, n, m, s)?, tensor: None })
}

#[pymethods]
impl SmoothenValue {
    #[new]
    fn new(beta: &Bound<'_, PyAny>) -> PyResult<Self> {
        let core = CoreSmoothenValue::new(real("beta", beta)?)?;
        Ok(SmoothenValue(Guarded::new("SmoothenValue", State { core, tensor: None })))
    }

    /// Adds `value` to the average: a number, or a tensor kept on its device.
    fn add_value(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = value.py();
        // A number into a float average: pure Rust, serialized by the GIL alone.
        if let Some(v) = as_number(value) {
            let added = self.0.with(py, |st| st.tensor.is_none().then(|| st.core.add_value(v)))?;
            if let Some(added) = added {
                return Ok(added.map(drop)?);
            }
        }
        let mut st = self.0.lock(py)?;
        if is_tensor(value)? || (st.tensor.is_some() && as_number(value).is_some()) {
            return st.add_tensor(value);
        }
        match value.extract::<f64>() {
            Ok(v) if st.tensor.is_none() => Ok(st.core.add_value(v).map(drop)?),
            _ => {
                Err(type_error(format!("value: expected a number or a torch tensor, got {}", value.get_type().name()?)))
            }
        }
    }

    /// Adds the numbers `values` in order, as one `add_value` each would, and returns the
    /// smoothed value after each (an epoch's losses in one call). All or nothing: a value that
    /// isn't finite is an error naming it and adds none of them.
    fn add_values(&self, py: Python<'_>, values: Vec<f64>) -> PyResult<Vec<f64>> {
        let added = self.0.with(py, |st| {
            st.tensor.is_none().then(|| {
                let mut core = st.core.clone();
                let out = values.iter().map(|&v| core.add_value(v)).collect::<Result<Vec<f64>, CoreError>>();
                if out.is_ok() {
                    st.core = core;
                }
                out
            })
        })?;
        match added {
            Some(out) => Ok(out?),
            None => Err(type_error("values: this average holds a tensor; add to it with add_value".to_string())),
        }
    }

    #[getter]
    fn beta(&self, py: Python<'_>) -> PyResult<f64> {
        self.0.with(py, |st| st.core.beta)
    }

    #[getter]
    fn n(&self, py: Python<'_>) -> PyResult<u64> {
        self.0.with(py, |st| st.core.n)
    }

    /// The moving average before debiasing (for tensors, derived from `smooth` when read).
    #[getter]
    fn mov_avg<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.0.lock(py)?.mov_avg(py)
    }

    /// The debiased moving average: a float, or a tensor on the device of the values.
    #[getter]
    fn smooth(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.0.lock(py)?.smooth(py))
    }

    /// `{'beta', 'n', 'mov_avg', 'smooth'}`.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.0.lock(py)?;
        let d = PyDict::new(py);
        d.set_item("beta", st.core.beta)?;
        d.set_item("n", st.core.n)?;
        d.set_item("mov_avg", st.mov_avg(py)?)?;
        d.set_item("smooth", st.smooth(py))?;
        Ok(d)
    }

    /// Restores a `state_dict()`, checked as the constructor and `add_value` check their
    /// arguments (`beta` in [0, 1), `n` a count, `mov_avg` and `smooth` finite numbers, or
    /// `smooth` a finite tensor); a refused state is a `StateError` and changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let restored = restore(&dict("state", state)?).map_err(|e| state_error(py, e))?;
        let old = std::mem::replace(&mut *self.0.lock(py)?, restored);
        drop(old); // outside the lock: dropping a tensor may run Python code
        Ok(())
    }

    fn __getnewargs__(&self, py: Python<'_>) -> PyResult<(f64,)> {
        Ok((self.0.lock(py)?.core.beta,))
    }

    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.state_dict(py)
    }

    fn __setstate__(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        self.load_state_dict(py, state)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // A call in progress holds the lock: its references are then not reported, which
        // only keeps the objects alive until a later collection.
        if let Some(st) = self.0.try_lock() {
            visit.call(&st.tensor)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let tensor = self.0.try_lock().and_then(|mut st| st.tensor.take());
        drop(tensor);
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let st = self.0.lock(py)?;
        Ok(format!(
            "SmoothenValue(beta={:?}, n={}, smooth={})",
            st.core.beta,
            st.core.n,
            st.smooth(py).bind(py).repr()?
        ))
    }
}

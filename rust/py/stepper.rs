//! `Stepper` (alias `Scheduler`): a built-in shape over numbers or arrays runs in Rust;
//! anything else (a user's callable, tensor values) is called back with `(start, end, pct)`.

use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};

use super::anneal::{builtin_function, builtin_shape};
use super::convert::{classify, float_array, Arg};
use crate::core::{self, Anneal};

/// How the values of a stepper are computed.
#[derive(Clone)]
enum Kind {
    /// One number, in Rust.
    Scalar,
    /// One value per element of an array of this shape, in Rust.
    Array(Vec<usize>),
    /// `func(start, end, pct)` called back in Python.
    Python,
}

/// Steps `func` from `start` to `end` over `n_iter` iterations (fastai v1's `Stepper`).
#[pyclass(module = "fastcb._core", name = "Stepper", subclass)]
pub struct Stepper {
    core: core::Stepper,
    kind: Kind,
    start: Py<PyAny>,
    end: Py<PyAny>,
    func: Py<PyAny>,
}

impl Stepper {
    fn build(start: &Bound<'_, PyAny>, end: &Bound<'_, PyAny>, n_iter: i64, func: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err("func: must be callable"));
        }
        let compiled = match builtin_shape(func) {
            Some(anneal) => Some((anneal, values(start)?, values(end)?)),
            None => None,
        };
        let (kind, core) = match compiled {
            Some((anneal, Some((s, s_shape)), Some((e, e_shape)))) => {
                let shape = crate::core::anneal::broadcast_shape("vals: start and end", &[&s_shape, &e_shape])?;
                let n: usize = shape.iter().product();
                let (s, e) = (broadcast(s, n), broadcast(e, n));
                let kind = if s_shape.is_empty() && e_shape.is_empty() { Kind::Scalar } else { Kind::Array(shape) };
                (kind, core::Stepper::new(s, e, n_iter, anneal)?)
            }
            _ => (Kind::Python, core::Stepper::new(vec![], vec![], n_iter, Anneal::No)?),
        };
        Ok(Stepper {
            core,
            kind,
            start: start.clone().unbind(),
            end: end.clone().unbind(),
            func: func.clone().unbind(),
        })
    }

    fn to_py<'py>(&self, py: Python<'py>, vals: Vec<f64>, rows: Option<usize>) -> PyResult<Bound<'py, PyAny>> {
        let mut shape: Vec<usize> = rows.into_iter().collect();
        match &self.kind {
            Kind::Scalar if rows.is_none() => return Ok(PyFloat::new(py, vals[0]).into_any()),
            Kind::Array(s) => shape.extend(s),
            _ => {}
        }
        Ok(vals.into_pyarray(py).reshape(shape)?.into_any())
    }

    fn call_func<'py>(&self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyAny>> {
        self.func.bind(py).call1((self.start.bind(py), self.end.bind(py), self.core.pct_at(n)))
    }
}

/// The values of a number or array, flattened, with their shape; `None` for a tensor.
fn values(x: &Bound<'_, PyAny>) -> PyResult<Option<(Vec<f64>, Vec<usize>)>> {
    Ok(match classify("vals", x)? {
        Arg::Scalar(v) => Some((vec![v], vec![])),
        Arg::Array(a) => {
            let a = a.as_array();
            Some((a.iter().copied().collect(), a.shape().to_vec()))
        }
        Arg::Tensor => None,
    })
}

fn broadcast(v: Vec<f64>, n: usize) -> Vec<f64> {
    if v.len() == n {
        v
    } else {
        vec![v[0]; n]
    }
}

/// fastai's split of `vals`: a tuple is `(start, end)`, anything else is `start` with end 0.
fn split_vals<'py>(vals: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, bool)> {
    let py = vals.py();
    if let Ok(t) = vals.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "vals: a tuple must be (start, end), got {} items",
                t.len()
            )));
        }
        return Ok((t.get_item(0)?, t.get_item(1)?, true));
    }
    Ok((vals.clone(), PyFloat::new(py, 0.0).into_any(), false))
}

#[pymethods]
impl Stepper {
    #[new]
    #[pyo3(signature = (vals, n_iter, func = None))]
    fn new(vals: &Bound<'_, PyAny>, n_iter: i64, func: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let py = vals.py();
        let (start, end, is_pair) = split_vals(vals)?;
        let default = if is_pair { Anneal::Linear } else { Anneal::No };
        let func = match func {
            Some(f) if !f.is_none() => f.clone(),
            _ => builtin_function(py, default).expect("the module registered its functions"),
        };
        Stepper::build(&start, &end, n_iter, &func)
    }

    /// Advances one step and returns `func(start, end, n/n_iter)`.
    fn step<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.kind {
            Kind::Scalar => Ok(PyFloat::new(py, self.core.step_first()?).into_any()),
            Kind::Array(_) => {
                let mut out = Vec::with_capacity(self.core.start.len());
                self.core.step_into(&mut out)?;
                self.to_py(py, out, None)
            }
            Kind::Python => {
                let v = self.call_func(py, self.core.n + 1)?;
                self.core.n += 1;
                Ok(v)
            }
        }
    }

    /// The next `k` values as an array (`k` rows; one column per group), without stepping.
    fn peek<'py>(&self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyAny>> {
        match self.kind {
            Kind::Python => {
                let vals = (1..=k as u64).map(|i| self.call_func(py, self.core.n + i)).collect::<PyResult<Vec<_>>>()?;
                Ok(float_array("func", &PyList::new(py, vals)?.into_any())?
                    .as_array()
                    .to_owned()
                    .into_pyarray(py)
                    .into_any())
            }
            _ => {
                let vals = py.detach(|| self.core.peek(k))?;
                self.to_py(py, vals, Some(k))
            }
        }
    }

    /// Whether the schedule is complete (`n >= n_iter`).
    #[getter]
    fn is_done(&self) -> bool {
        self.core.is_done()
    }

    #[getter]
    fn n(&self) -> u64 {
        self.core.n
    }

    #[setter]
    fn set_n(&mut self, n: u64) {
        self.core.set_n(n);
    }

    #[getter]
    fn n_iter(&self) -> u64 {
        self.core.n_iter
    }

    #[getter]
    fn start(&self, py: Python<'_>) -> Py<PyAny> {
        self.start.clone_ref(py)
    }

    #[getter]
    fn end(&self, py: Python<'_>) -> Py<PyAny> {
        self.end.clone_ref(py)
    }

    #[getter]
    fn func(&self, py: Python<'_>) -> Py<PyAny> {
        self.func.clone_ref(py)
    }

    /// Goes back to the start of the schedule.
    fn restart(&mut self) {
        self.core.set_n(0);
    }

    /// `{'start', 'end', 'n_iter', 'n'}`: everything but `func`, as torch schedulers do.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("start", self.start.bind(py))?;
        d.set_item("end", self.end.bind(py))?;
        d.set_item("n_iter", self.core.n_iter)?;
        d.set_item("n", self.core.n)?;
        Ok(d)
    }

    /// Restores a `state_dict()`, so the schedule continues with identical values.
    fn load_state_dict(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let get = |k: &str| state.get_item(k)?.ok_or_else(|| PyKeyError::new_err(format!("state: missing key {k:?}")));
        let n: u64 = get("n")?.extract()?;
        let mut restored =
            Stepper::build(&get("start")?, &get("end")?, get("n_iter")?.extract()?, self.func.bind(state.py()))?;
        restored.core.set_n(n);
        *self = restored;
        Ok(())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.borrow();
        let vals = PyTuple::new(py, [me.start.bind(py), me.end.bind(py)])?;
        let args = (vals, me.core.n_iter, me.func.bind(py)).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any(), me.core.n.into_pyobject(py)?.into_any()])
    }

    fn __setstate__(&mut self, n: u64) {
        self.core.set_n(n);
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = |o: &Py<PyAny>| -> PyResult<String> {
            let o = o.bind(py);
            Ok(match o.getattr("__name__") {
                Ok(n) => n.to_string(),
                Err(_) => o.repr()?.to_string(),
            })
        };
        Ok(format!(
            "Stepper(vals=({}, {}), n_iter={}, func={}, n={})",
            self.start.bind(py).repr()?,
            self.end.bind(py).repr()?,
            self.core.n_iter,
            name(&self.func)?,
            self.core.n
        ))
    }
}

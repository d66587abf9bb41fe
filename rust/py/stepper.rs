//! `Stepper` (alias `Scheduler`): a built-in shape over numbers or arrays runs in Rust;
//! anything else (a user's callable, tensor values) is called back with `(start, end, pct)`.

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyTuple};
use pyo3::PyTraverseError;

use super::anneal::{builtin_function, builtin_shape};
use super::convert::{classify, count, dict, float_array, get, type_name, Arg};
use super::error::{arg_error, state_error, type_error, Class};
use super::guard::Guarded;
use crate::core::{self, alloc, Anneal};

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

struct State {
    core: core::Stepper,
    kind: Kind,
    start: Py<PyAny>,
    end: Py<PyAny>,
    func: Py<PyAny>,
}

/// Steps `func` from `start` to `end` over `n_iter` iterations (fastai v1's `Stepper`).
/// `n_iter` below 1 counts as 1, as in fastai (`max(1, n_iter)`). Safe to share between
/// threads: calls run one at a time.
///
/// >>> s = Stepper((1.0, 0.0), 4, annealing_cos)
/// >>> s.step(), s.step()
/// (0.8535533905932737, 0.5)
/// >>> s.n, s.is_done
/// (2, False)
/// >>> s.peek(2)                        # the next two values, without stepping
/// array([0.14644661, 0.        ])
/// >>> Stepper(0.1, 10).step()          # one value: constant (fastai's annealing_no)
/// 0.1
#[pyclass(module = "fastcb._core", name = "Stepper", subclass, frozen)]
pub struct Stepper {
    /// Held by every call that changes the state, for its whole length: steps run one at a
    /// time, and `func` may read its own stepper (which needs only `state`) but not step it.
    calls: Guarded<()>,
    /// Held briefly, never while Python code of the user's runs.
    state: Guarded<State>,
}

/// The values of a compiled step, made Python objects once the state is let go.
enum Compiled {
    Scalar(f64),
    Array(Vec<f64>, Vec<usize>),
}

/// What a Python `func` is called with, taken out of the state so the call runs unlocked.
struct Call {
    func: Py<PyAny>,
    start: Py<PyAny>,
    end: Py<PyAny>,
    n: u64,
    n_iter: u64,
}

impl Call {
    /// `func(start, end, pct)` `i` steps after `n`.
    fn at<'py>(&self, py: Python<'py>, i: u64) -> PyResult<Bound<'py, PyAny>> {
        let n = self.n.checked_add(i).ok_or_else(|| arg_error("n: cannot go past 2**64 - 1 steps"))?;
        self.func.bind(py).call1((self.start.bind(py), self.end.bind(py), n as f64 / self.n_iter as f64))
    }

    /// The next `k` values, stacked: the whole block is reserved (or refused, naming `k`)
    /// once the first value's shape is known, before `func` runs again.
    fn peek<'py>(&self, py: Python<'py>, k: u64) -> PyResult<Bound<'py, PyAny>> {
        if k == 0 {
            return Ok(Vec::<f64>::new().into_pyarray(py).into_any());
        }
        let first = float_array("func", &self.at(py, 1)?)?;
        let shape = first.shape().to_vec();
        let rows = usize::try_from(k).map_err(|_| arg_error(format!("k: {k} is too large")))?;
        let mut full = vec![rows];
        full.extend(&shape);
        let len = alloc::element_count("k", &full)?;
        let mut out = alloc::with_capacity("k", len)?;
        out.extend(first.as_array().iter());
        for i in 2..=k {
            let v = float_array("func", &self.at(py, i)?)?;
            if v.shape() != shape.as_slice() {
                return Err(Class::Shape
                    .err(format!("func: returned shape {:?} at step {i} of peek but {shape:?} at step 1", v.shape())));
            }
            out.extend(v.as_array().iter());
        }
        let arr = ArrayD::from_shape_vec(IxDyn(&full), out).expect("the length is the shape's");
        Ok(arr.into_pyarray(py).into_any())
    }
}

/// `n_iter`: an integer; below 1 it counts as 1, as in fastai.
fn n_iter(x: &Bound<'_, PyAny>) -> PyResult<u64> {
    if x.is_instance_of::<pyo3::types::PyInt>() && x.lt(1)? {
        return Ok(1);
    }
    count("n_iter", x)
}

impl State {
    fn build(start: &Bound<'_, PyAny>, end: &Bound<'_, PyAny>, n_iter: u64, func: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !func.is_callable() {
            return Err(type_error(format!("func: expected a callable, got {}", type_name(func))));
        }
        let compiled = match builtin_shape(func) {
            Some(anneal) => Some((anneal, values(start)?, values(end)?)),
            None => None,
        };
        let (kind, core) = match compiled {
            Some((anneal, Some((s, s_shape)), Some((e, e_shape)))) => {
                let shape = crate::core::anneal::broadcast_shape("vals: start and end", &[&s_shape, &e_shape])?;
                let n = alloc::element_count("vals", &shape)?;
                let (s, e) = (broadcast(s, n)?, broadcast(e, n)?);
                let kind = if s_shape.is_empty() && e_shape.is_empty() { Kind::Scalar } else { Kind::Array(shape) };
                (kind, core::Stepper::new(s, e, n_iter, anneal)?)
            }
            _ => (Kind::Python, core::Stepper::new(vec![], vec![], n_iter, Anneal::No)?),
        };
        Ok(State { core, kind, start: start.clone().unbind(), end: end.clone().unbind(), func: func.clone().unbind() })
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

    fn call(&self, py: Python<'_>) -> Call {
        Call {
            func: self.func.clone_ref(py),
            start: self.start.clone_ref(py),
            end: self.end.clone_ref(py),
            n: self.core.n,
            n_iter: self.core.n_iter,
        }
    }

    /// `(start, end, func)`, new references.
    fn objects(&self, py: Python<'_>) -> [Py<PyAny>; 3] {
        [self.start.clone_ref(py), self.end.clone_ref(py), self.func.clone_ref(py)]
    }
}

/// The values of a number or array, flattened, with their shape; `None` for a tensor.
fn values(x: &Bound<'_, PyAny>) -> PyResult<Option<(Vec<f64>, Vec<usize>)>> {
    Ok(match classify("vals", x)? {
        Arg::Scalar(v) => Some((vec![v], vec![])),
        Arg::Array(a) => {
            let a = a.as_array();
            let mut v = alloc::with_capacity("vals", a.len())?;
            v.extend(a.iter());
            Some((v, a.shape().to_vec()))
        }
        Arg::Tensor => None,
    })
}

/// `v` (one value, or `n`) as `n` values.
fn broadcast(v: Vec<f64>, n: usize) -> PyResult<Vec<f64>> {
    if v.len() == n {
        return Ok(v);
    }
    let mut out = alloc::with_capacity("vals", n)?;
    out.resize(n, v[0]);
    Ok(out)
}

/// fastai's split of `vals`: a tuple is `(start, end)`, anything else is `start` with end 0.
fn split_vals<'py>(vals: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, bool)> {
    let py = vals.py();
    if let Ok(t) = vals.cast::<PyTuple>() {
        if t.len() != 2 {
            return Err(arg_error(format!("vals: expected a (start, end) tuple, got {} items", t.len())));
        }
        return Ok((t.get_item(0)?, t.get_item(1)?, true));
    }
    Ok((vals.clone(), PyFloat::new(py, 0.0).into_any(), false))
}

impl Stepper {
    /// Whether `step` computes one number in Rust (not an array, not a Python `func`).
    pub(super) fn is_scalar(&self, py: Python<'_>) -> PyResult<bool> {
        self.state.with(py, |st| matches!(st.kind, Kind::Scalar))
    }

    /// `step()` of a scalar stepper, as an `f64`; `None`, without stepping, for any other kind.
    pub(super) fn step_scalar(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let stepped = self.state.with(py, |st| match st.kind {
            Kind::Scalar => st.core.step_first().map(Some),
            _ => Ok(None),
        })?;
        Ok(stepped?)
    }

    /// Whether the next step ends the schedule (`n + 1 >= n_iter`; true past `2**64 - 1`).
    pub(super) fn ends_next(&self, py: Python<'_>) -> PyResult<bool> {
        self.state.with(py, |st| st.core.n_after(1).map_or(true, |n| n >= st.core.n_iter))
    }

    /// `is_done`, for the bindings.
    pub(super) fn done(&self, py: Python<'_>) -> PyResult<bool> {
        self.state.with(py, |st| st.core.is_done())
    }
}

#[pymethods]
impl Stepper {
    #[new]
    #[pyo3(signature = (vals, n_iter, func = None))]
    fn new(vals: &Bound<'_, PyAny>, n_iter: &Bound<'_, PyAny>, func: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let py = vals.py();
        let (start, end, is_pair) = split_vals(vals)?;
        let default = if is_pair { Anneal::Linear } else { Anneal::No };
        let func = match func {
            Some(f) if !f.is_none() => f.clone(),
            _ => builtin_function(py, default).expect("the module registered its functions"),
        };
        let state = State::build(&start, &end, self::n_iter(n_iter)?, &func)?;
        Ok(Stepper { calls: Guarded::new("Stepper", ()), state: Guarded::new("Stepper", state) })
    }

    /// Advances one step and returns `func(start, end, n/n_iter)`.
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // A compiled step runs Python code of no one's: the GIL alone serializes it (`kind`
        // only changes under `calls`, by `load_state_dict`).
        let compiled = self.state.with(py, |st| -> Result<_, core::CoreError> {
            Ok(match &st.kind {
                Kind::Scalar => Some(Compiled::Scalar(st.core.step_first()?)),
                Kind::Array(shape) => {
                    let mut out = alloc::with_capacity("vals", st.core.start.len())?;
                    st.core.step_into(&mut out)?;
                    Some(Compiled::Array(out, shape.clone()))
                }
                Kind::Python => None,
            })
        })??;
        match compiled {
            Some(Compiled::Scalar(v)) => return Ok(PyFloat::new(py, v).into_any()),
            Some(Compiled::Array(vals, shape)) => return Ok(vals.into_pyarray(py).reshape(shape)?.into_any()),
            None => {}
        }
        let _calls = self.calls.lock(py)?;
        let st = self.state.lock(py)?;
        if !matches!(st.kind, Kind::Python) {
            drop(st);
            drop(_calls);
            return self.step(py);
        }
        let (call, next) = (st.call(py), st.core.n_after(1)?);
        drop(st);
        let v = call.at(py, 1)?;
        // No one else changed the state meanwhile: that needs `calls`, which this holds.
        self.state.lock(py)?.core.n = next;
        Ok(v)
    }

    /// The next `k` values as an array (`k` rows; one column per group), without stepping.
    fn peek<'py>(&self, py: Python<'py>, k: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let k = count("k", k)?;
        let st = self.state.lock(py)?;
        match st.kind {
            Kind::Python => {
                let call = st.call(py);
                drop(st);
                call.peek(py, k)
            }
            _ => {
                let k = usize::try_from(k).map_err(|_| arg_error(format!("k: {k} is too large")))?;
                let core = &st.core;
                let vals = py.detach(|| core.peek(k))?;
                st.to_py(py, vals, Some(k))
            }
        }
    }

    /// Whether the schedule is complete (`n >= n_iter`).
    #[getter]
    fn is_done(&self, py: Python<'_>) -> PyResult<bool> {
        self.state.with(py, |st| st.core.is_done())
    }

    /// The number of steps taken: an integer in [0, 2**64).
    #[getter]
    fn n(&self, py: Python<'_>) -> PyResult<u64> {
        self.state.with(py, |st| st.core.n)
    }

    #[setter]
    fn set_n(&self, py: Python<'_>, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.ok_or_else(|| type_error("n: cannot be deleted"))?;
        let n = count("n", n)?;
        let _calls = self.calls.lock(py)?;
        self.state.lock(py)?.core.set_n(n);
        Ok(())
    }

    #[getter]
    fn n_iter(&self, py: Python<'_>) -> PyResult<u64> {
        self.state.with(py, |st| st.core.n_iter)
    }

    #[getter]
    fn start(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.lock(py)?.start.clone_ref(py))
    }

    #[getter]
    fn end(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.lock(py)?.end.clone_ref(py))
    }

    #[getter]
    fn func(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.state.lock(py)?.func.clone_ref(py))
    }

    /// Goes back to the start of the schedule.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        let _calls = self.calls.lock(py)?;
        self.state.lock(py)?.core.set_n(0);
        Ok(())
    }

    /// `{'start', 'end', 'n_iter', 'n'}`: everything but `func`, as torch schedulers do.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (call, [start, end, _]) = {
            let st = self.state.lock(py)?;
            (st.call(py), st.objects(py))
        };
        let d = PyDict::new(py);
        d.set_item("start", start)?;
        d.set_item("end", end)?;
        d.set_item("n_iter", call.n_iter)?;
        d.set_item("n", call.n)?;
        Ok(d)
    }

    /// Restores a `state_dict()`, so the schedule continues with identical values. It is
    /// checked as the constructor checks its arguments, `n` a count below 2**64; a refused
    /// state is a `StateError` and changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let state = &dict("state", state)?;
        let _calls = self.calls.lock(py)?;
        let func = self.state.lock(py)?.func.clone_ref(py);
        let restored = (|| {
            let n = count("state: n", &get(state, "n")?)?;
            let (start, end, iters) = (get(state, "start")?, get(state, "end")?, get(state, "n_iter")?);
            let mut restored = State::build(&start, &end, n_iter(&iters)?, func.bind(py))?;
            restored.core.set_n(n);
            Ok(restored)
        })()
        .map_err(|e| state_error(py, e))?;
        let old = std::mem::replace(&mut *self.state.lock(py)?, restored);
        drop(old); // outside the lock: dropping Python objects may run Python code
        Ok(())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let (call, [start, end, func]) = {
            let st = slf.get().state.lock(py)?;
            (st.call(py), st.objects(py))
        };
        let vals = PyTuple::new(py, [start, end])?;
        let args = (vals, call.n_iter, func).into_pyobject(py)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any(), call.n.into_pyobject(py)?.into_any()])
    }

    fn __setstate__(&self, py: Python<'_>, n: &Bound<'_, PyAny>) -> PyResult<()> {
        let n = count("state: n", n).map_err(|e| state_error(py, e))?;
        let _calls = self.calls.lock(py)?;
        self.state.lock(py)?.core.set_n(n);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // A call in progress holds the lock: its references are then not reported, which
        // only keeps the objects alive until a later collection.
        if let Some(st) = self.state.try_lock() {
            visit.call(&st.start)?;
            visit.call(&st.end)?;
            visit.call(&st.func)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        Python::attach(|py| {
            let taken = self.state.try_lock().map(|mut st| {
                let st = &mut *st;
                [&mut st.start, &mut st.end, &mut st.func].map(|o| std::mem::replace(o, py.None()))
            });
            drop(taken); // outside the lock: dropping them may run Python code
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (call, [start, end, func]) = {
            let st = self.state.lock(py)?;
            (st.call(py), st.objects(py))
        };
        let name = |o: &Py<PyAny>| -> PyResult<String> {
            let o = o.bind(py);
            Ok(match o.getattr("__name__") {
                Ok(n) => n.to_string(),
                Err(_) => o.repr()?.to_string(),
            })
        };
        Ok(format!(
            "Stepper(vals=({}, {}), n_iter={}, func={}, n={})",
            start.bind(py).repr()?,
            end.bind(py).repr()?,
            call.n_iter,
            name(&func)?,
            call.n
        ))
    }
}

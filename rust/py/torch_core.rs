//! Bindings of the drop-in torch schedulers' compiled steps (issue 4): `TorchCore` steps one
//! scheduler, `SequentialCore` a SequentialLR over compiled schedulers. Both read and write
//! the schedulers' `__dict__` and the optimizer's param groups directly.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyTuple};

use super::convert::as_number;
use super::hf_factor::HfFactor;
use super::shape::parse_shape;
use crate::core::torch_sched::{Cyclic, CyclicMode, OneCycle, Rule, WarmRestarts};

/// Borrowed access to the param groups on the hot path of a step. An owned handle costs
/// a reference-count call into the interpreter to make and another to drop (abi3); a step
/// makes about four per group.
mod borrowed {
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyList, PyString};

    /// `list[i]`, borrowed from `list`; an `IndexError` past the end.
    #[inline]
    pub fn item<'a, 'py>(list: &'a Bound<'py, PyList>, i: usize) -> PyResult<Borrowed<'a, 'py, PyAny>> {
        // SAFETY: attached to the interpreter; `PyList_GetItem` returns a borrowed reference
        // (or NULL with an exception set), valid while `list` holds it: nothing runs
        // Python code between this call and the caller's use of the item.
        unsafe { Borrowed::from_ptr_or_err(list.py(), ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t)) }
    }

    /// `dict.get(key)`, borrowed from `dict`.
    #[inline]
    pub fn get<'a, 'py>(
        dict: Borrowed<'a, 'py, PyDict>,
        key: &Bound<'py, PyString>,
    ) -> PyResult<Option<Borrowed<'a, 'py, PyAny>>> {
        let py = dict.py();
        // SAFETY: as in `item`; NULL without an exception set means "absent".
        let value = unsafe { ffi::PyDict_GetItemWithError(dict.as_ptr(), key.as_ptr()) };
        match unsafe { Borrowed::from_ptr_or_opt(py, value) } {
            Some(v) => Ok(Some(v)),
            None => PyErr::take(py).map_or(Ok(None), Err),
        }
    }
}

/// Where a rule's momentum goes in a param group.
#[derive(Clone, Copy, PartialEq)]
enum MomentumKey {
    Momentum,
    Beta1,
}

fn rule_from_spec(spec: &Bound<'_, PyTuple>) -> PyResult<Rule> {
    let kind: String = spec.get_item(0)?.extract()?;
    let i64_at = |i: usize| -> PyResult<i64> { spec.get_item(i)?.extract() };
    let f64_at = |i: usize| -> PyResult<f64> { spec.get_item(i)?.extract() };
    Ok(match kind.as_str() {
        "lambda" => {
            let factors = spec
                .get_item(1)?
                .try_iter()?
                .map(|f| Ok(f?.cast::<HfFactor>()?.get().0.clone()))
                .collect::<PyResult<_>>()?;
            Rule::Lambda(factors)
        }
        "step" => Rule::Step { step_size: i64_at(1)?, gamma: f64_at(2)? },
        "multistep" => Rule::multi_step(&spec.get_item(1)?.extract::<Vec<i64>>()?, f64_at(2)?),
        "constant" => Rule::Constant { factor: f64_at(1)?, total_iters: i64_at(2)? },
        "linear" => Rule::Linear { start: f64_at(1)?, end: f64_at(2)?, total_iters: i64_at(3)? },
        "exponential" => Rule::Exponential { gamma: f64_at(1)? },
        "polynomial" => Rule::Polynomial { total_iters: i64_at(1)?, power: f64_at(2)? },
        "cosine" => Rule::Cosine { t_max: i64_at(1)?, eta_min: f64_at(2)? },
        "cyclic" => {
            let mode: String = spec.get_item(3)?.extract()?;
            let mode = match mode.as_str() {
                "triangular" => CyclicMode::Triangular,
                "triangular2" => CyclicMode::Triangular2,
                "exp_range" => CyclicMode::ExpRange(f64_at(4)?),
                _ => return Err(PyValueError::new_err("mode: not a built-in CyclicLR mode")),
            };
            Rule::Cyclic(Cyclic {
                total_size: f64_at(1)?,
                step_ratio: f64_at(2)?,
                mode,
                max_lrs: spec.get_item(5)?.extract()?,
                momentums: spec.get_item(6)?.extract()?,
            })
        }
        "onecycle" => {
            let shape = parse_shape(&spec.get_item(3)?.extract::<String>()?, None)?;
            let lr_parts: Vec<Vec<(f64, f64)>> = spec.get_item(4)?.extract()?;
            let mom_parts: Option<Vec<Vec<(f64, f64)>>> = spec.get_item(5)?.extract()?;
            let edges: Vec<f64> = spec.get_item(2)?.extract()?;
            let phases = edges.len().saturating_sub(1);
            if phases == 0
                || lr_parts.iter().any(|p| p.len() != phases)
                || mom_parts.iter().flatten().any(|p| p.len() != phases)
            {
                return Err(PyValueError::new_err("rule: one (start, end) pair per phase and group"));
            }
            Rule::OneCycle(OneCycle::from_phases(i64_at(1)?, edges, shape, lr_parts, mom_parts))
        }
        "warmrestarts" => Rule::WarmRestarts(WarmRestarts { t_mult: i64_at(1)?, eta_min: f64_at(2)? }),
        _ => return Err(PyValueError::new_err(format!("spec: unknown rule {kind:?}"))),
    })
}

/// An exact Python int that fits `i64`, else `None`.
fn exact_int(x: Option<Bound<'_, PyAny>>) -> Option<i64> {
    let x = x?;
    if x.is_exact_instance_of::<PyInt>() {
        x.extract().ok()
    } else {
        None
    }
}

/// Where a regular step starts from, as the scheduler's `__dict__` says.
#[derive(Clone, Copy)]
enum Position {
    /// `last_epoch` and `_step_count`: every class but CosineAnnealingWarmRestarts.
    Epoch { last: i64, count: i64 },
    /// CosineAnnealingWarmRestarts: `last_epoch`, `T_cur` and `T_i`.
    Restart { last: i64, t_cur: i64, t_i: i64 },
}

/// The compiled `step()` of a drop-in torch scheduler. It reads and writes the scheduler's
/// own attributes (`last_epoch`, `_step_count`, `_last_lr`, `base_lrs`, …) in its
/// `__dict__`, so torch's machinery (SequentialLR, `state_dict`, `step(epoch)`) sees
/// exactly what torch's own step would leave there.
#[pyclass(module = "fastcb._core", name = "TorchCore")]
pub struct TorchCore {
    rule: Rule,
    state: Py<PyDict>,
    momentum: Option<MomentumKey>,
    n_groups: usize,
    /// The param-group dicts the rule's per-group values were read from (OneCycleLR).
    groups: Option<Vec<Py<PyAny>>>,
    base_obj: Option<Py<PyAny>>,
    base: Vec<f64>,
    /// Scratch space of a step: the groups' learning rates and momenta.
    lrs: Vec<f64>,
    moms: Vec<f64>,
    stale: bool,
    /// What calling the core does when the compiled step can't: the scheduler's own step.
    fallback: Option<Py<PyAny>>,
}

impl TorchCore {
    /// The position before this step; `None` for the first steps (torch's own step runs
    /// them: it warns about the call order) and for attributes that are not plain ints.
    fn position(&self, d: &Bound<'_, PyDict>) -> PyResult<Option<Position>> {
        let py = d.py();
        let Some(last) = exact_int(d.get_item(intern!(py, "last_epoch"))?) else { return Ok(None) };
        if matches!(self.rule, Rule::WarmRestarts(_)) {
            let t_cur = exact_int(d.get_item(intern!(py, "T_cur"))?);
            let t_i = exact_int(d.get_item(intern!(py, "T_i"))?);
            return Ok(match (t_cur, t_i) {
                (Some(t_cur), Some(t_i)) if last >= 0 => Some(Position::Restart { last, t_cur, t_i }),
                _ => None,
            });
        }
        Ok(match exact_int(d.get_item(intern!(py, "_step_count"))?) {
            Some(count) if count >= 2 => Some(Position::Epoch { last, count }),
            _ => None,
        })
    }

    /// `optimizer.param_groups`, when it is a list of the groups this core knows the base
    /// learning rates of.
    fn param_groups<'py>(&mut self, d: &Bound<'py, PyDict>) -> PyResult<Option<Bound<'py, PyList>>> {
        let py = d.py();
        let Some(opt) = d.get_item(intern!(py, "optimizer"))? else { return Ok(None) };
        let Ok(groups) = opt.getattr(intern!(py, "param_groups"))?.cast_into::<PyList>() else { return Ok(None) };
        let n = groups.len();
        if n != self.n_groups || !self.refresh_base(d)? || self.base.len() != n {
            return Ok(None);
        }
        Ok(Some(groups))
    }

    /// The base learning rates as floats, re-read when `base_lrs` was reassigned.
    fn refresh_base(&mut self, d: &Bound<'_, PyDict>) -> PyResult<bool> {
        let py = d.py();
        let Some(obj) = d.get_item(intern!(py, "base_lrs"))? else { return Ok(false) };
        if let Some(cached) = &self.base_obj {
            if cached.bind(py).is(&obj) {
                return Ok(true);
            }
        }
        let Ok(list) = obj.cast::<PyList>() else { return Ok(false) };
        let mut base = Vec::with_capacity(list.len());
        for x in list.iter() {
            match as_number(&x) {
                Some(v) => base.push(v),
                None => return Ok(false),
            }
        }
        self.base = base;
        self.base_obj = Some(obj.unbind());
        Ok(true)
    }

    /// Every group's learning rate into `self.lrs`; `false` where one is not a float (a
    /// tensor: torch's step updates it in place) or the groups were replaced (`stale`).
    fn read_lrs(&mut self, groups: &Bound<'_, PyList>) -> PyResult<bool> {
        let py = groups.py();
        let lr_key = intern!(py, "lr");
        self.lrs.clear();
        for i in 0..groups.len() {
            let group = borrowed::item(groups, i)?;
            if let Some(known) = &self.groups {
                if known[i].as_ptr() != group.as_ptr() {
                    self.stale = true;
                    return Ok(false);
                }
            }
            let Ok(group) = group.cast::<PyDict>() else { return Ok(false) };
            let Some(lr) = borrowed::get(group, lr_key)? else { return Ok(false) };
            // Exactly a float: replacing it runs no Python code (no `__del__`).
            let Ok(lr) = lr.cast_exact::<PyFloat>() else { return Ok(false) };
            self.lrs.push(lr.value());
        }
        Ok(true)
    }

    /// The step's learning rates (and momenta) into `self.lrs` (`self.moms`), and the
    /// position after it; `None` where torch's own step must run.
    fn compute(&mut self, pos: Position) -> Option<Position> {
        let (epoch, next) = match pos {
            Position::Epoch { last, count } => {
                self.rule.lrs(last + 1, &mut self.lrs, &self.base)?;
                (last + 1, Position::Epoch { last: last + 1, count: count + 1 })
            }
            Position::Restart { last, t_cur, t_i } => {
                let Rule::WarmRestarts(w) = &self.rule else { return None };
                let (t_cur, t_i) = w.advance(t_cur, t_i)?;
                w.lrs(&self.base, t_cur, t_i, &mut self.lrs)?;
                (last + 1, Position::Restart { last: last + 1, t_cur, t_i })
            }
        };
        if self.momentum.is_some() {
            self.moms.resize(self.lrs.len(), 0.0);
            self.rule.momenta(epoch, &mut self.moms)?;
        }
        Some(next)
    }

    /// Writes the step: the groups' learning rates (and momenta), the position, and
    /// `_last_lr` (a list of the very floats the groups hold, as torch's is).
    fn write<'py>(
        &self,
        d: &Bound<'py, PyDict>,
        groups: &Bound<'py, PyList>,
        next: Position,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = d.py();
        let last_lr = PyList::new(py, &self.lrs)?;
        let lr_key = intern!(py, "lr");
        for g in 0..self.lrs.len() {
            let group = borrowed::item(groups, g)?.cast::<PyDict>()?;
            group.set_item(lr_key, borrowed::item(&last_lr, g)?)?;
            if let Some(key) = self.momentum {
                // Replacing the old momentum may run Python code (a `__del__`): hold the group.
                set_momentum(&group.to_owned(), key, self.moms[g])?;
            }
        }
        match next {
            Position::Epoch { last, count } => {
                d.set_item(intern!(py, "last_epoch"), last)?;
                d.set_item(intern!(py, "_step_count"), count)?;
            }
            Position::Restart { last, t_cur, t_i } => {
                d.set_item(intern!(py, "last_epoch"), last)?;
                d.set_item(intern!(py, "T_cur"), t_cur)?;
                d.set_item(intern!(py, "T_i"), t_i)?;
            }
        }
        d.set_item(intern!(py, "_last_lr"), &last_lr)?;
        Ok(last_lr)
    }

    /// One regular step; the new `_last_lr`, or `None` (changing nothing) where torch's
    /// own step must run.
    fn try_step<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let d = self.state.clone_ref(py).into_bound(py);
        let Some(pos) = self.position(&d)? else { return Ok(None) };
        let Some(groups) = self.param_groups(&d)? else { return Ok(None) };
        if !self.read_lrs(&groups)? {
            return Ok(None);
        }
        let Some(next) = self.compute(pos) else { return Ok(None) };
        self.write(&d, &groups, next).map(Some)
    }
}

/// Sets a group's momentum as torch does: `group["momentum"] = m`, or
/// `group["betas"] = (m, *group["betas"][1:])`.
fn set_momentum(group: &Bound<'_, PyDict>, key: MomentumKey, m: f64) -> PyResult<()> {
    let py = group.py();
    if key == MomentumKey::Momentum {
        return group.set_item(intern!(py, "momentum"), m);
    }
    let betas_key = intern!(py, "betas");
    let m = PyFloat::new(py, m).into_any();
    let betas = match group.get_item(betas_key)? {
        Some(old) => match old.cast::<PyTuple>() {
            Ok(pair) if pair.len() == 2 => PyTuple::new(py, [m, pair.get_item(1)?])?,
            _ => {
                let mut items = vec![m];
                items.extend(old.try_iter()?.skip(1).collect::<PyResult<Vec<_>>>()?);
                PyTuple::new(py, items)?
            }
        },
        None => PyTuple::new(py, [m])?,
    };
    group.set_item(betas_key, betas)
}

#[pymethods]
impl TorchCore {
    /// `TorchCore(state, rule, n_groups, momentum=None, groups=None)`: `state` is the
    /// scheduler's `__dict__`; `rule` a tuple naming the class and its parameters;
    /// `momentum` is `"momentum"` or `"betas"` for classes that cycle it; `groups` the
    /// param groups whose values the rule copied (it falls back when they are replaced).
    #[new]
    #[pyo3(signature = (state, rule, n_groups, momentum = None, groups = None))]
    fn new(
        state: Bound<'_, PyDict>,
        rule: &Bound<'_, PyTuple>,
        n_groups: usize,
        momentum: Option<&str>,
        groups: Option<Vec<Py<PyAny>>>,
    ) -> PyResult<Self> {
        let momentum = match momentum {
            None => None,
            Some("momentum") => Some(MomentumKey::Momentum),
            Some("betas") => Some(MomentumKey::Beta1),
            Some(other) => {
                return Err(PyValueError::new_err(format!("momentum: must be 'momentum' or 'betas', got {other:?}")))
            }
        };
        let rule = rule_from_spec(rule)?;
        if momentum.is_some() && !rule.cycles_momentum() {
            return Err(PyValueError::new_err("momentum: this rule does not cycle the momentum"));
        }
        if groups.as_ref().is_some_and(|g| g.len() != n_groups) {
            return Err(PyValueError::new_err("groups: one per param group"));
        }
        Ok(TorchCore {
            rule,
            state: state.unbind(),
            momentum,
            n_groups,
            groups,
            base_obj: None,
            base: Vec::new(),
            lrs: Vec::new(),
            moms: Vec::new(),
            stale: false,
            fallback: None,
        })
    }

    /// One regular step, all in Rust; `False` (changing nothing) where the Python formula
    /// must run instead: tensor learning rates, the first steps, torch's errors.
    fn step(&mut self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.try_step(py)?.is_some())
    }

    /// Sets what calling the core runs when the compiled step can't (the scheduler's own step).
    fn set_fallback(&mut self, fallback: Py<PyAny>) {
        self.fallback = Some(fallback);
    }

    /// `scheduler.step(...)` itself, installed on the instance: without arguments the
    /// compiled step, else (or when it can't) the fallback with the same arguments. Skips the
    /// Python frame of a `step` method on the hot path.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if args.is_empty() && kwargs.is_none_or(|k| k.is_empty()) && slf.borrow_mut().try_step(py)?.is_some() {
            return Ok(py.None());
        }
        // The borrow is over: the fallback may rebuild the scheduler's core.
        let fallback = slf.borrow().fallback.as_ref().map(|f| f.clone_ref(py));
        match fallback {
            Some(f) => Ok(f.bind(py).call(args, kwargs)?.unbind()),
            None => Err(PyValueError::new_err("step: no fallback set for this TorchCore")),
        }
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.state)?;
        if let Some(b) = &self.base_obj {
            visit.call(b)?;
        }
        for g in self.groups.iter().flatten() {
            visit.call(g)?;
        }
        if let Some(f) = &self.fallback {
            visit.call(f)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.base_obj = None;
        self.groups = None;
        self.fallback = None;
    }

    /// Whether the param groups were replaced since the rule was compiled (recompile).
    #[getter]
    fn stale(&self) -> bool {
        self.stale
    }

    fn __repr__(&self) -> String {
        format!("TorchCore({:?})", self.rule)
    }
}

/// The compiled `step()` of SequentialLR over compiled schedulers: between milestones it
/// steps the current scheduler's `TorchCore`, in Rust; anything else falls back.
#[pyclass(module = "fastcb._core", name = "SequentialCore")]
pub struct SequentialCore {
    state: Py<PyDict>,
    milestones: Vec<i64>,
    /// Each scheduler's core and `__dict__`, `None` for one without a core.
    children: Vec<Option<(Py<TorchCore>, Py<PyDict>)>>,
    /// What calling the core does when the compiled step can't: torch's own step.
    fallback: Option<Py<PyAny>>,
}

#[pymethods]
impl SequentialCore {
    /// `SequentialCore(state, milestones, children)`: `children[i]` is `(core, __dict__)` of
    /// scheduler `i`, or `None`.
    #[new]
    fn new(
        state: Bound<'_, PyDict>,
        milestones: Vec<i64>,
        children: Vec<Option<(Py<TorchCore>, Py<PyDict>)>>,
    ) -> PyResult<Self> {
        if children.len() != milestones.len() + 1 {
            return Err(PyValueError::new_err("milestones: one fewer than the schedulers"));
        }
        Ok(SequentialCore { state: state.unbind(), milestones, children, fallback: None })
    }

    /// One step between milestones, in Rust; `False` (changing nothing) otherwise.
    fn step(&self, py: Python<'_>) -> PyResult<bool> {
        let d = self.state.bind(py);
        let Some(last) = exact_int(d.get_item(intern!(py, "last_epoch"))?) else { return Ok(false) };
        let epoch = last + 1;
        let idx = self.milestones.partition_point(|&m| m <= epoch);
        if idx > 0 && self.milestones[idx - 1] == epoch {
            return Ok(false);
        }
        let Some((core, _)) = &self.children[idx] else { return Ok(false) };
        let Ok(mut core) = core.bind(py).try_borrow_mut() else { return Ok(false) };
        let Some(last_lr) = core.try_step(py)? else { return Ok(false) };
        d.set_item(intern!(py, "last_epoch"), epoch)?;
        d.set_item(intern!(py, "_last_lr"), last_lr)?;
        Ok(true)
    }

    /// Sets what calling the core runs when the compiled step can't (a scheduler's own step).
    fn set_fallback(&mut self, fallback: Py<PyAny>) {
        self.fallback = Some(fallback);
    }

    /// `scheduler.step()` itself, installed on the instance: the compiled step, or else the
    /// fallback. Skips the Python frame of a `step` method on the hot path.
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.step(py)? {
            return Ok(py.None());
        }
        match &self.fallback {
            Some(f) => Ok(f.bind(py).call0()?.unbind()),
            None => Err(PyValueError::new_err("step: no fallback set for this SequentialCore")),
        }
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.state)?;
        for (core, child) in self.children.iter().flatten() {
            visit.call(core)?;
            visit.call(child)?;
        }
        if let Some(f) = &self.fallback {
            visit.call(f)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.children.clear();
        self.fallback = None;
    }
}

/// Adds `TorchCore` and `SequentialCore` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TorchCore>()?;
    m.add_class::<SequentialCore>()?;
    Ok(())
}

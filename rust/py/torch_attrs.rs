//! A torch scheduler's attributes as the compiled rules read them ([`Attrs`]): by torch's
//! names, from the scheduler's `__dict__` and its optimizer's param groups, at every step.
//!
//! Every value must be exactly of the type asked (an exact `int`, `float`, `bool`, `str`,
//! list or dict: nothing that runs Python code to convert); anything else answers `None`
//! and torch's own code runs.

use std::sync::Mutex;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::exact::{Int, Num};
use super::hf_factor::lambda_factor;
use crate::core::hf_sched::HfFactor;
use crate::core::torch_sched::{Attrs, CyclicMode};

/// The Python strings made for the names, keyed by each name's address and length.
type Keys = Vec<((usize, usize), Py<PyString>)>;

/// `name` as a Python string, made once per name (the rules' names are `'static`).
pub fn key<'py>(py: Python<'py>, name: &'static str) -> Bound<'py, PyString> {
    static KEYS: Mutex<Keys> = Mutex::new(Vec::new());
    let id = (name.as_ptr() as usize, name.len());
    {
        let keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, k)) = keys.iter().find(|(i, _)| *i == id) {
            return k.bind(py).clone();
        }
    }
    // Made outside the lock: an allocation may run the collector, and with it Python code.
    let k = PyString::intern(py, name);
    KEYS.lock().unwrap_or_else(|e| e.into_inner()).push((id, k.clone().unbind()));
    k
}

/// A scheduler's `__dict__` and its optimizer's param groups.
pub struct SchedAttrs<'a, 'py> {
    pub dict: &'a Bound<'py, PyDict>,
    pub groups: &'a Bound<'py, PyList>,
}

impl<'py> SchedAttrs<'_, 'py> {
    fn get(&self, name: &'static str) -> Option<Bound<'py, PyAny>> {
        self.dict.get_item(key(self.dict.py(), name)).ok()?
    }

    fn list(&self, name: &'static str) -> Option<Bound<'py, PyList>> {
        self.get(name)?.cast_into_exact::<PyList>().ok()
    }

    fn item(&self, name: &'static str, i: usize, k: &'static str) -> Option<Bound<'py, PyAny>> {
        let record = self.list(name)?.get_item(i).ok()?.cast_into_exact::<PyDict>().ok()?;
        record.get_item(key(self.dict.py(), k)).ok()?
    }
}

/// The index in `options` of `obj`, an exact `str`.
fn choose(obj: Option<Bound<'_, PyAny>>, options: &[&str]) -> Option<usize> {
    let s = obj?.cast_into_exact::<PyString>().ok()?;
    let s = s.to_str().ok()?;
    options.iter().position(|o| *o == s)
}

static CYCLIC_FNS: PyOnceLock<[Py<PyAny>; 3]> = PyOnceLock::new();

/// Which of torch's `CyclicLR` scaling functions `f` is, as torch's `_init_scale_fn` stores it.
fn cyclic_mode(f: &Bound<'_, PyAny>) -> PyResult<Option<CyclicMode>> {
    let py = f.py();
    let fns = CYCLIC_FNS.get_or_try_init(py, || -> PyResult<_> {
        let cls = py.import("torch.optim.lr_scheduler")?.getattr("CyclicLR")?;
        let get = |name: &str| cls.getattr(name).map(Bound::unbind);
        Ok([get("_triangular_scale_fn")?, get("_triangular2_scale_fn")?, get("_exp_range_scale_fn")?])
    })?;
    if f.is(&fns[0]) {
        return Ok(Some(CyclicMode::Triangular));
    }
    if f.is(&fns[1]) {
        return Ok(Some(CyclicMode::Triangular2));
    }
    // `partial(_exp_range_scale_fn, gamma)`
    let Ok(func) = f.getattr(intern!(py, "func")) else { return Ok(None) };
    if !func.is(&fns[2]) {
        return Ok(None);
    }
    let Ok(args) = f.getattr(intern!(py, "args"))?.cast_into::<PyTuple>() else { return Ok(None) };
    if args.len() != 1 || !f.getattr(intern!(py, "keywords"))?.cast_into::<PyDict>().is_ok_and(|k| k.is_empty()) {
        return Ok(None);
    }
    Ok(args.get_item(0)?.extract::<Num>().ok().map(|g| CyclicMode::ExpRange(g.0)))
}

impl Attrs for SchedAttrs<'_, '_> {
    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn int(&self, name: &'static str) -> Option<i64> {
        self.get(name)?.extract::<Int>().ok().map(|i| i.0)
    }

    fn num(&self, name: &'static str) -> Option<f64> {
        self.get(name)?.extract::<Num>().ok().map(|n| n.0)
    }

    fn flag(&self, name: &'static str) -> Option<bool> {
        self.get(name)?.extract::<bool>().ok()
    }

    fn is_none(&self, name: &'static str) -> Option<bool> {
        Some(self.get(name)?.is_none())
    }

    fn nums(&self, name: &'static str) -> Option<Vec<f64>> {
        let list = self.list(name)?;
        list.iter().map(|x| x.extract::<Num>().ok().map(|n| n.0)).collect()
    }

    fn choice(&self, name: &'static str, options: &[&str]) -> Option<usize> {
        choose(self.get(name), options)
    }

    fn count(&self, name: &'static str, k: i64) -> Option<i64> {
        let counter = self.get(name)?.cast_into::<PyDict>().ok()?;
        match counter.get_item(k).ok()? {
            None => Some(0),
            Some(n) => n.extract::<Int>().ok().map(|n| n.0),
        }
    }

    /// One factor per group; a factor shared by consecutive groups is read once.
    fn factors(&self, name: &'static str) -> Option<Vec<HfFactor>> {
        let lambdas = self.list(name)?;
        let mut out: Vec<HfFactor> = Vec::with_capacity(lambdas.len());
        let mut last: Option<Bound<'_, PyAny>> = None;
        for f in lambdas.iter() {
            let factor = match (&last, out.last()) {
                (Some(prev), Some(same)) if prev.is(&f) => same.clone(),
                _ => lambda_factor(&f).ok()??,
            };
            out.push(factor);
            last = Some(f);
        }
        Some(out)
    }

    fn cyclic_scale(&self, name: &'static str) -> Option<CyclicMode> {
        cyclic_mode(&self.get(name)?).ok()?
    }

    fn len(&self, name: &'static str) -> Option<usize> {
        Some(self.list(name)?.len())
    }

    fn item_num(&self, name: &'static str, i: usize, k: &'static str) -> Option<f64> {
        self.item(name, i, k)?.extract::<Num>().ok().map(|n| n.0)
    }

    fn item_choice(&self, name: &'static str, i: usize, k: &'static str, options: &[&'static str]) -> Option<usize> {
        choose(self.item(name, i, k), options)
    }

    fn group_num(&self, g: usize, k: &'static str) -> Option<f64> {
        let group = self.groups.get_item(g).ok()?.cast_into::<PyDict>().ok()?;
        group.get_item(key(self.dict.py(), k)).ok()??.extract::<Num>().ok().map(|n| n.0)
    }
}

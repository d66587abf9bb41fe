//! A torch scheduler's attributes as the compiled rules read them ([`Attrs`]): by torch's
//! names, from the scheduler's `__dict__` and its optimizer's param groups, at every step.
//!
//! Every value must be exactly of the type asked (an exact `int`, `float`, `bool`, `str`,
//! list or dict: nothing that runs Python code to convert); anything else answers `None`
//! and torch's own code runs.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::exact::{Int, Num};
use super::hf_factor::lambda_factor;
use crate::core::hf_sched::HfFactor;
use crate::core::torch_sched::{Attrs, CyclicMode, PerGroup};

/// Slots of the table of the names' Python strings (more than the rules name).
const SLOTS: usize = 256;

/// `(address, length, string)` of each name seen, at the slot its address picks (or the next
/// free one); an address of `0` marks a free slot. Written only while attached to the
/// interpreter (whose lock serialises the writers), the address last, so that a reader never
/// sees a slot's address before its string; plain loads and stores (no thread-local lookup:
/// this runs several times in every step).
static KEYS: [[AtomicUsize; 3]; SLOTS] = [const { [const { AtomicUsize::new(0) }; 3] }; SLOTS];

/// `name` as a Python string, made once per name and kept for the process's life (the names
/// are the rules' `'static` attribute names: a few dozen).
#[inline]
pub fn key<'py>(py: Python<'py>, name: &'static str) -> Borrowed<'static, 'py, PyString> {
    let (addr, len) = (name.as_ptr() as usize, name.len());
    let start = (addr ^ (addr >> 9)) % SLOTS;
    let mut free = None;
    for p in 0..SLOTS {
        let slot = &KEYS[(start + p) % SLOTS];
        let a = slot[0].load(Ordering::Acquire);
        if a == 0 {
            free = Some(slot);
            break;
        }
        if a == addr && slot[1].load(Ordering::Relaxed) == len {
            // SAFETY: attached to the interpreter; a `str` the table holds a reference to
            // for the rest of the process's life.
            return unsafe {
                Borrowed::from_ptr(py, slot[2].load(Ordering::Relaxed) as *mut ffi::PyObject).cast_unchecked()
            };
        }
    }
    // Made before the slot is taken: an allocation may run the collector, and with it
    // Python code (which may take slots of its own). Never released: the table holds it.
    let k = PyString::intern(py, name).into_ptr();
    let slot = free
        .into_iter()
        .chain((0..SLOTS).map(|p| &KEYS[(start + p) % SLOTS]))
        .find(|slot| slot[0].load(Ordering::Acquire) == 0)
        .expect("more attribute names than slots");
    slot[2].store(k as usize, Ordering::Relaxed);
    slot[1].store(len, Ordering::Relaxed);
    slot[0].store(addr, Ordering::Release);
    // SAFETY: attached to the interpreter; `k` is a `str` the table now holds a reference to.
    unsafe { Borrowed::from_ptr(py, k).cast_unchecked() }
}

/// The instance's `__dict__` (`None` if it has none), as `obj.__dict__` gives it.
pub fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    // SAFETY: attached to the interpreter; a new reference to the instance's dict, or NULL
    // with an exception set (no instance dict), which `from_owned_ptr_or_err` takes.
    let d = unsafe {
        Bound::from_owned_ptr_or_err(obj.py(), ffi::PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()))
    };
    d.ok()?.cast_into::<PyDict>().ok()
}

/// Borrowed access on the hot path of a step. An owned handle costs a reference-count call
/// into the interpreter to make and another to drop (abi3).
pub mod borrowed {
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyList};

    /// `list[i]`, borrowed from `list`; an `IndexError` past the end.
    #[inline]
    pub fn item<'a, 'py>(list: &'a Bound<'py, PyList>, i: usize) -> PyResult<Borrowed<'a, 'py, PyAny>> {
        // SAFETY: attached to the interpreter; `PyList_GetItem` returns a borrowed reference
        // (or NULL with an exception set), valid while `list` holds it: nothing runs
        // Python code between this call and the caller's use of the item.
        unsafe { Borrowed::from_ptr_or_err(list.py(), ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t)) }
    }

    /// `dict[key]`, borrowed from `dict`; `None` where absent (a lookup error is cleared:
    /// torch's code, which then runs, meets it again).
    #[inline]
    pub fn get<'a, 'py>(dict: &'a Bound<'py, PyDict>, key: &Bound<'py, PyAny>) -> Option<Borrowed<'a, 'py, PyAny>> {
        let py = dict.py();
        // SAFETY: attached to the interpreter; `PyDict_GetItemWithError` returns a borrowed
        // reference valid while `dict` holds it (nothing runs Python code between this call
        // and the caller's use of it), or NULL, with an exception set on an error.
        unsafe {
            let p = ffi::PyDict_GetItemWithError(dict.as_ptr(), key.as_ptr());
            if p.is_null() {
                if !ffi::PyErr_Occurred().is_null() {
                    ffi::PyErr_Clear();
                }
                return None;
            }
            Some(Borrowed::from_ptr(py, p))
        }
    }
}

/// A scheduler's `__dict__` and its optimizer's param groups, for one step.
pub struct SchedAttrs<'a, 'py> {
    pub dict: &'a Bound<'py, PyDict>,
    /// `(param group, its learning rate)` as the step read them and holds references to
    /// them, each group a dict.
    groups: &'a [(*mut ffi::PyObject, *mut ffi::PyObject)],
    /// The list of records a rule reads several times in a step (OneCycleLR's
    /// `_schedule_phases`), looked up once: `(its name, the list)`.
    records: OnceCell<(&'static str, Option<Bound<'py, PyList>>)>,
}

impl<'a, 'py> SchedAttrs<'a, 'py> {
    /// `groups`: each param group (and its learning rate) as the step read it, a dict it
    /// holds a reference to for as long as this lives.
    pub fn new(dict: &'a Bound<'py, PyDict>, groups: &'a [(*mut ffi::PyObject, *mut ffi::PyObject)]) -> Self {
        SchedAttrs { dict, groups, records: OnceCell::new() }
    }

    fn get(&self, name: &'static str) -> Option<Borrowed<'a, 'py, PyAny>> {
        borrowed::get(self.dict, &key(self.dict.py(), name))
    }

    /// The list attribute `name` (exactly a list), looked up once per step for the first
    /// name asked.
    fn records(&self, name: &'static str) -> Option<Bound<'py, PyList>> {
        let lookup = || self.get(name).and_then(|l| l.to_owned().cast_into_exact::<PyList>().ok());
        let (first, list) = self.records.get_or_init(|| (name, lookup()));
        if std::ptr::eq(*first, name) {
            list.clone()
        } else {
            lookup()
        }
    }

    /// The dict `attr[i]`, where `attr` is a list of dicts.
    fn record(&self, name: &'static str, i: usize) -> Option<Bound<'py, PyDict>> {
        let list = self.records(name)?;
        Some(borrowed::item(&list, i).ok()?.cast_exact::<PyDict>().ok()?.to_owned())
    }

    /// Param group `g`'s number at `k`.
    fn group_at(&self, g: usize, k: &Bound<'py, PyAny>) -> Option<f64> {
        // SAFETY: attached to the interpreter; a dict the step holds a reference to.
        let group = unsafe { Borrowed::from_ptr(self.dict.py(), self.groups.get(g)?.0).cast_unchecked::<PyDict>() };
        borrowed::get(&group, k)?.extract::<Num>().ok().map(|n| n.0)
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
        let v = self.get(name)?;
        // SAFETY: the two singletons, compared by address.
        let (t, f) = unsafe { (ffi::Py_True(), ffi::Py_False()) };
        match v.as_ptr() {
            p if p == t => Some(true),
            p if p == f => Some(false),
            _ => v.extract::<bool>().ok(),
        }
    }

    fn is_none(&self, name: &'static str) -> Option<bool> {
        Some(self.get(name)?.is_none())
    }

    fn nums(&self, name: &'static str, out: &mut PerGroup<f64>) -> Option<()> {
        let list = self.get(name)?;
        let list = list.cast_exact::<PyList>().ok()?;
        out.clear();
        for i in 0..list.len() {
            out.push(borrowed::item(&list, i).ok()?.extract::<Num>().ok()?.0);
        }
        Some(())
    }

    fn choice(&self, name: &'static str, options: &[&str]) -> Option<usize> {
        choose(self.get(name).map(|v| v.to_owned()), options)
    }

    fn count(&self, name: &'static str, k: i64) -> Option<i64> {
        let counter = self.get(name)?.to_owned().cast_into::<PyDict>().ok()?;
        match counter.get_item(k).ok()? {
            None => Some(0),
            Some(n) => n.extract::<Int>().ok().map(|n| n.0),
        }
    }

    /// One factor per group; a factor shared by consecutive groups is read once.
    fn factors(&self, name: &'static str) -> Option<Vec<HfFactor>> {
        let lambdas = self.get(name)?.to_owned().cast_into_exact::<PyList>().ok()?;
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
        cyclic_mode(&self.get(name)?.to_owned()).ok()?
    }

    fn len(&self, name: &'static str) -> Option<usize> {
        Some(self.records(name)?.len())
    }

    fn item_num(&self, name: &'static str, i: usize, k: &'static str) -> Option<f64> {
        let record = self.record(name, i)?;
        borrowed::get(&record, &key(self.dict.py(), k))?.extract::<Num>().ok().map(|n| n.0)
    }

    fn groups_at(
        &self,
        name: &'static str,
        i: usize,
        keys: (&'static str, &'static str),
        out: &mut PerGroup<(f64, f64)>,
    ) -> Option<()> {
        let py = self.dict.py();
        let record = self.record(name, i)?;
        // Owned: a lookup in a group may run Python code (a key's `__eq__`).
        let a = borrowed::get(&record, &key(py, keys.0))?.to_owned();
        let b = borrowed::get(&record, &key(py, keys.1))?.to_owned();
        out.clear();
        for g in 0..self.groups.len() {
            out.push((self.group_at(g, &a)?, self.group_at(g, &b)?));
        }
        Some(())
    }

    fn group_num(&self, g: usize, k: &'static str) -> Option<f64> {
        self.group_at(g, &key(self.dict.py(), k))
    }
}

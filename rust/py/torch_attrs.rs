//! A torch scheduler's attributes as the compiled rules read them ([`Attrs`]): by torch's
//! names, from the scheduler's `__dict__` and its optimizer's param groups, at every step.
//!
//! Every value must be exactly of the type asked (an exact `int`, `float`, `bool`, `str`,
//! list or dict: nothing that runs Python code to convert); anything else answers `None`
//! and torch's own code runs.

use std::cell::RefCell;

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::exact::{Int, Num};
use super::hf_factor::lambda_factor;
use crate::core::hf_sched::HfFactor;
use crate::core::torch_sched::{Attrs, CyclicMode};

/// Slots of the per-thread table of the names' Python strings (more than the rules name).
const SLOTS: usize = 256;

thread_local! {
    /// `(address, length, string)` of each name seen, at the slot its address picks (or
    /// the next free one); `0` marks a free slot.
    static KEYS: RefCell<[(usize, usize, usize); SLOTS]> = const { RefCell::new([(0, 0, 0); SLOTS]) };
}

/// `name` as a Python string, made once per name and thread and kept for the thread's life
/// (the names are the rules' `'static` attribute names: a few dozen).
pub fn key<'py>(py: Python<'py>, name: &'static str) -> Borrowed<'static, 'py, PyString> {
    let id = (name.as_ptr() as usize, name.len());
    let start = (id.0 ^ (id.0 >> 9)) % SLOTS;
    let found = KEYS.with_borrow(|keys| {
        (0..SLOTS).map(|p| keys[(start + p) % SLOTS]).find(|&(a, l, s)| s == 0 || (a, l) == id).map(|(_, _, s)| s)
    });
    let ptr = match found {
        Some(s) if s != 0 => s as *mut ffi::PyObject,
        _ => {
            // Made outside the borrow: an allocation may run the collector, and with it
            // Python code. Never released: the table holds it for the thread's life.
            let k = PyString::intern(py, name).into_ptr();
            KEYS.with_borrow_mut(|keys| {
                let free = (0..SLOTS).map(|p| (start + p) % SLOTS).find(|&i| keys[i].2 == 0);
                let i = free.expect("more attribute names than slots");
                keys[i] = (id.0, id.1, k as usize);
            });
            k
        }
    };
    // SAFETY: attached to the interpreter; `ptr` is a `str` the table holds a reference to
    // for the rest of the thread's life.
    unsafe { Borrowed::from_ptr(py, ptr).cast_unchecked() }
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

/// A scheduler's `__dict__` and its optimizer's param groups.
pub struct SchedAttrs<'a, 'py> {
    pub dict: &'a Bound<'py, PyDict>,
    pub groups: &'a Bound<'py, PyList>,
}

impl<'a, 'py> SchedAttrs<'a, 'py> {
    fn get(&self, name: &'static str) -> Option<Borrowed<'a, 'py, PyAny>> {
        borrowed::get(self.dict, &key(self.dict.py(), name))
    }

    /// `attr[i][k]`, where `attr` is a list of dicts.
    fn item(&self, name: &'static str, i: usize, k: &'static str) -> Option<Bound<'py, PyAny>> {
        let list = self.get(name)?.to_owned().cast_into_exact::<PyList>().ok()?;
        let record = list.get_item(i).ok()?.cast_into_exact::<PyDict>().ok()?;
        borrowed::get(&record, &key(self.dict.py(), k)).map(|v| v.to_owned())
    }

    /// Param group `g`'s number at `k`.
    fn group_at(&self, g: usize, k: &Bound<'py, PyAny>) -> Option<f64> {
        let group = borrowed::item(self.groups, g).ok()?;
        let group = group.cast::<PyDict>().ok()?;
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
        self.get(name)?.extract::<bool>().ok()
    }

    fn is_none(&self, name: &'static str) -> Option<bool> {
        Some(self.get(name)?.is_none())
    }

    fn nums(&self, name: &'static str) -> Option<Vec<f64>> {
        let list = self.get(name)?;
        let list = list.cast_exact::<PyList>().ok()?;
        (0..list.len()).map(|i| borrowed::item(&list, i).ok()?.extract::<Num>().ok().map(|n| n.0)).collect()
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
        Some(self.get(name)?.cast_exact::<PyList>().ok()?.len())
    }

    fn item_num(&self, name: &'static str, i: usize, k: &'static str) -> Option<f64> {
        self.item(name, i, k)?.extract::<Num>().ok().map(|n| n.0)
    }

    fn groups_at(&self, name: &'static str, i: usize, k: &'static str) -> Option<Vec<f64>> {
        let k = self.item(name, i, k)?;
        (0..self.groups.len()).map(|g| self.group_at(g, &k)).collect()
    }

    fn group_num(&self, g: usize, k: &'static str) -> Option<f64> {
        self.group_at(g, &key(self.dict.py(), k))
    }
}

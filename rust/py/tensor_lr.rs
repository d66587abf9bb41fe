//! Tensor learning rates on the compiled scheduler steps, known without reading the tensor.
//!
//! A compiled step writes a tensor learning rate as torch's step does, with `fill_(value)`
//! or, where that is provably the same, in place at `data_ptr()` with `_version` bumped as
//! `fill_` bumps it ([`TensorLr::write`]), and remembers here the value written and the
//! tensor's version counter after the write (keyed by the tensor, held weakly). At the next step, an unchanged `_version` (and
//! `data_ptr()`) says that nothing wrote the tensor since: the remembered value is its value,
//! and the tensor is not read (no device sync, no host read). A tensor not seen before, or
//! written by anything else since, is read once with `item()` when it is a CPU tensor; on
//! another device the caller runs torch's own step. Only 0-dim float32/float64 tensors that
//! need no gradient are taken: anything else runs torch's step.
//!
//! What is known this way is also what lets a step skip work whose result is already there:
//! a `fill_` of the value the tensor provably holds, and a new `clone()` for `_last_lr` where
//! the previous step's clone (made and remembered here, untouched since) holds the same
//! value. torch's own step would do both; what differs is only `_version` (not bumped by a
//! skipped `fill_`) and, for a reused clone, that consecutive `get_last_lr()` lists share that
//! tensor object (see docs/DESIGN.md).
//!
//! A CPU tensor can also be written without its `_version` moving (through `.data`, a NumPy
//! view, DLPack): for one, "known" also means that its memory still holds the remembered value,
//! read where `data_ptr()` points (no copy, no dispatch), so such a write is seen as torch's
//! step would see it. On an accelerator that read would be a sync; there the version decides.

use std::sync::{LazyLock, Mutex, MutexGuard};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString, PyTuple, PyType, PyWeakrefMethods, PyWeakrefReference};

use crate::core::torch_sched::{Kind, Val};
use rustc_hash::FxHashMap;

/// torch's `Tensor` type, the two dtypes taken, the attributes and methods a step reads of
/// a tensor, and the functions a direct write asks.
struct Torch {
    tensor: Py<PyType>,
    float32: Py<PyAny>,
    float64: Py<PyAny>,
    requires_grad: Attr,
    version: Attr,
    dtype: Attr,
    is_cpu: Attr,
    ndim: Attr,
    data_ptr: Method,
    is_neg: Method,
    is_view: Method,
    /// What a direct write needs of torch's private API, `None` where this torch lacks any
    /// of it (every write then goes through `fill_`):
    direct: Option<Direct>,
}

/// An attribute of torch's `Tensor` (a getset descriptor of its C base class), read through
/// its descriptor's `__get__`: the value `tensor.name` gives for an exact `Tensor` (a data
/// descriptor: an instance's `__dict__` cannot shadow it), without the attribute lookup.
struct Attr {
    name: Py<PyString>,
    /// The descriptor and its type's `__get__`; `None` where it has none (then `getattr`).
    descr: Option<(Py<PyAny>, ffi::descrgetfunc)>,
}

impl Attr {
    fn new(tensor: &Bound<'_, PyType>, name: &str) -> PyResult<Attr> {
        let py = tensor.py();
        let descr = tensor.getattr(name)?;
        // SAFETY: attached; `descr`'s type is a live type object.
        let get = unsafe { ffi::PyType_GetSlot(descr.get_type().as_ptr().cast(), ffi::Py_tp_descr_get) };
        // SAFETY: the `tp_descr_get` slot of a type is a `descrgetfunc` (or NULL).
        let get: Option<ffi::descrgetfunc> = unsafe { std::mem::transmute(get) };
        Ok(Attr { name: PyString::intern(py, name).unbind(), descr: get.map(|g| (descr.unbind(), g)) })
    }

    /// `t.name`, for `t` an exact `Tensor`.
    fn of<'py>(&self, t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = t.py();
        let Some((descr, get)) = &self.descr else { return t.getattr(self.name.bind(py)) };
        // SAFETY: attached; `get` is the `__get__` of `descr`'s type, called with an instance
        // and its type (both live); a new reference, or NULL with an exception set.
        unsafe { Bound::from_owned_ptr_or_err(py, get(descr.as_ptr(), t.as_ptr(), t.get_type().as_ptr())) }
    }
}

/// A method of torch's `Tensor`, called as `Tensor.name(t)`: what `t.name()` calls for an
/// exact `Tensor` whose `__dict__` holds no such name (and what it is, where one does).
struct Method(Py<PyAny>);

impl Method {
    fn new(tensor: &Bound<'_, PyType>, name: &str) -> PyResult<Method> {
        Ok(Method(tensor.getattr(name)?.unbind()))
    }

    fn of<'py>(&self, t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: attached; a live callable and argument, the argument list NULL-terminated;
        // a new reference, or NULL with an exception set.
        unsafe {
            Bound::from_owned_ptr_or_err(
                t.py(),
                ffi::PyObject_CallFunctionObjArgs(self.0.as_ptr(), t.as_ptr(), std::ptr::null_mut::<ffi::PyObject>()),
            )
        }
    }
}

/// `torch._C._increment_version` (what an in-place operation does to `_version`), and the
/// functions saying how many torch function modes and torch dispatch modes are active and
/// whether a functorch transform (`vmap`, `grad`) is: anything that would see a `fill_`.
struct Direct {
    increment_version: Py<PyAny>,
    modes: [Py<PyAny>; 3],
}

static TORCH: PyOnceLock<Torch> = PyOnceLock::new();

fn torch(py: Python<'_>) -> PyResult<&Torch> {
    TORCH.get_or_try_init(py, || {
        let torch = py.import("torch")?;
        let c = torch.getattr("_C")?;
        let get = |name: &str| c.getattr(name).map(Bound::unbind);
        let tensor = torch.getattr("Tensor")?.cast_into::<PyType>()?;
        Ok(Torch {
            float32: torch.getattr("float32")?.unbind(),
            float64: torch.getattr("float64")?.unbind(),
            requires_grad: Attr::new(&tensor, "requires_grad")?,
            version: Attr::new(&tensor, "_version")?,
            dtype: Attr::new(&tensor, "dtype")?,
            is_cpu: Attr::new(&tensor, "is_cpu")?,
            ndim: Attr::new(&tensor, "ndim")?,
            data_ptr: Method::new(&tensor, "data_ptr")?,
            is_neg: Method::new(&tensor, "is_neg")?,
            is_view: Method::new(&tensor, "_is_view")?,
            tensor: tensor.unbind(),
            direct: (|| {
                Some(Direct {
                    increment_version: get("_increment_version").ok()?,
                    modes: [
                        get("_len_torch_function_stack").ok()?,
                        get("_len_torch_dispatch_stack").ok()?,
                        get("_are_functorch_transforms_active").ok()?,
                    ],
                })
            })(),
        })
    })
}

/// A tensor remembered: the weak reference that says it is still the same tensor, and what
/// it [`Held`].
struct Shadow {
    tensor: Py<PyWeakrefReference>,
    held: Held,
}

/// What a tensor held when a step last wrote (or read) it. `data` (its `data_ptr()`) changes
/// where `tensor.data = other` swapped its storage, which leaves `_version` as it was.
#[derive(Clone, Copy)]
struct Held {
    version: i64,
    data: i64,
    value: f64,
    kind: Kind,
    /// A copy made for `_last_lr` ([`TensorLr::copy`]), not written since.
    copy: bool,
    /// A one-element CPU tensor: its value can be read at `data`.
    host: bool,
    /// Found not to be a view. A tensor is a view or not for its whole life (neither
    /// `.data = other` nor an in-place operation changes it), so no later write asks again.
    not_view: bool,
    /// Found without the negative bit while its element was at `data`. Only `.data = other`
    /// (or torch's private `_set_neg`) sets the bit on a tensor, and for it to leave the
    /// element where it was takes torch's private API too (`_neg_view`); a tensor whose
    /// `data_ptr()` moved is asked again. (Its value, too, is known by its `_version`,
    /// `data_ptr()` and memory alone: a bit set that way would not be seen there either.)
    not_neg: bool,
}

impl Held {
    /// Whether the tensor provably holds `value` still, given its `_version` and `data_ptr()`
    /// now (and, for a CPU tensor, what its memory holds).
    fn current(&self, version: i64, data: i64) -> bool {
        self.version == version
            && self.data == data
            && (!self.host || in_memory(data, self.kind).to_bits() == self.value.to_bits())
    }
}

/// Keyed by the tensor's address; an entry counts only while its weak reference still
/// points at that same tensor.
struct Shadows {
    /// rustc-hash's hasher: one multiplication and a rotation for an address, where the
    /// default hasher's rounds cost more than the rest of a lookup.
    map: FxHashMap<usize, Shadow>,
    sweep_at: usize,
}

static SHADOWS: LazyLock<Mutex<Shadows>> =
    LazyLock::new(|| Mutex::new(Shadows { map: FxHashMap::default(), sweep_at: 64 }));

fn shadows() -> MutexGuard<'static, Shadows> {
    SHADOWS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A tensor learning rate of a param group (or a base learning rate), probed: what the
/// shadow table knows of it now.
pub struct TensorLr<'py> {
    pub tensor: Bound<'py, PyAny>,
    pub kind: Kind,
    version: i64,
    data: i64,
    /// A 0-dim CPU tensor (see [`Held::host`]).
    host: bool,
    /// The value it provably holds (remembered, and untouched since), if known.
    known: Option<f64>,
    /// Found not to be a view, by this step or an earlier one ([`Held::not_view`]).
    not_view: bool,
    /// Found without the negative bit at this `data` ([`Held::not_neg`]).
    not_neg: bool,
}

/// What a one-element CPU tensor of `kind` whose `data_ptr()` is `data` holds now.
fn in_memory(data: i64, kind: Kind) -> f64 {
    // SAFETY: `data` is the `data_ptr()` just read from a live tensor (the caller holds it)
    // of one element of this dtype on the CPU, so it points at that readable element.
    // Volatile: another thread may write it; any value read then only costs a `fill_`.
    unsafe {
        match kind {
            Kind::F32 => f64::from(std::ptr::read_volatile(data as usize as *const f32)),
            Kind::F64 => std::ptr::read_volatile(data as usize as *const f64),
            Kind::Float => f64::NAN,
        }
    }
}

/// What the table remembers of `t` (whatever has happened to it since).
fn remembered(t: &Bound<'_, PyAny>) -> Option<Held> {
    let s = shadows();
    let e = s.map.get(&(t.as_ptr() as usize))?;
    e.tensor.bind(t.py()).upgrade().is_some_and(|o| o.is(t)).then_some(e.held)
}

/// `t`'s `_version` (`None` for an inference tensor, which has none) and `data_ptr()`.
fn version_and_data(torch: &Torch, t: &Bound<'_, PyAny>) -> PyResult<Option<(i64, i64)>> {
    let Ok(version) = torch.version.of(t).and_then(|v| v.extract::<i64>()) else { return Ok(None) };
    Ok(Some((version, torch.data_ptr.of(t)?.extract()?)))
}

/// `obj` as a tensor learning rate the compiled step can take, or `None`: exactly a torch
/// tensor that needs no gradient (torch's `fill_` of one that does raises: torch's step must
/// run and raise it), with a version counter (an inference tensor has none: torch's step
/// runs, and does what it does), float32 or float64.
pub fn tensor_lr<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<TensorLr<'py>>> {
    let py = obj.py();
    let t = torch(py)?;
    if !obj.is_exact_instance(t.tensor.bind(py)) || t.requires_grad.of(obj)?.is_truthy()? {
        return Ok(None);
    }
    let Some((version, data)) = version_and_data(t, obj)? else { return Ok(None) };
    let seen = remembered(obj);
    let not_view = seen.is_some_and(|h| h.not_view);
    let not_neg = seen.is_some_and(|h| h.not_neg && h.data == data);
    if let Some(h) = seen.filter(|h| h.current(version, data)) {
        return Ok(Some(TensorLr {
            tensor: obj.clone(),
            kind: h.kind,
            version,
            data,
            host: h.host,
            known: Some(h.value),
            not_view,
            not_neg,
        }));
    }
    let dtype = t.dtype.of(obj)?;
    let kind = if dtype.is(&t.float32) {
        Kind::F32
    } else if dtype.is(&t.float64) {
        Kind::F64
    } else {
        return Ok(None);
    };
    let host = t.is_cpu.of(obj)?.is_truthy()? && t.ndim.of(obj)?.extract::<i64>()? == 0;
    Ok(Some(TensorLr { tensor: obj.clone(), kind, version, data, host, known: None, not_view, not_neg }))
}

/// Whether a tensor learning rate may be written in place ([`TensorLr::write`]) now: no
/// torch function mode, no torch dispatch mode and no functorch transform is active (each
/// would see the `fill_`).
pub fn direct_writes(py: Python<'_>) -> PyResult<bool> {
    let Some(direct) = &torch(py)?.direct else { return Ok(false) };
    let [functions, dispatch, functorch] = &direct.modes;
    Ok(functions.bind(py).call0()?.extract::<i64>()? == 0
        && dispatch.bind(py).call0()?.extract::<i64>()? == 0
        && !functorch.bind(py).call0()?.is_truthy()?)
}

fn remember(t: &Bound<'_, PyAny>, held: Held) -> PyResult<()> {
    let key = t.as_ptr() as usize;
    if let Some(entry) = shadows().map.get_mut(&key) {
        if entry.tensor.bind(t.py()).upgrade().is_some_and(|o| o.is(t)) {
            entry.held = held;
            return Ok(());
        }
    }
    // Made before taking the lock: an allocation may run the collector, and with it Python code.
    let tensor = PyWeakrefReference::new(t)?.unbind();
    let mut s = shadows();
    s.map.insert(key, Shadow { tensor, held });
    if s.map.len() > s.sweep_at {
        let py = t.py();
        s.map.retain(|_, e| e.tensor.bind(py).upgrade().is_some());
        s.sweep_at = (2 * s.map.len()).max(64);
    }
    Ok(())
}

/// How a step writes a tensor learning rate its rule gave a value ([`TensorLr::plan`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// It provably holds that value already: nothing to write.
    Skip,
    /// In place at `data_ptr()`, where that is provably what `fill_` does.
    Direct,
    /// With the tensor's `fill_`.
    Fill,
}

/// The tensors a step wrote in place, whose `_version`s are still to be bumped
/// ([`Written::bump`]). Made before the first write: between a write and its bump nothing
/// may make an object the cyclic collector tracks (a collection can run Python code, which
/// would see the new value under the old version); appending only grows the list's array.
pub struct Written<'py> {
    list: Bound<'py, PyList>,
    args: Bound<'py, PyTuple>,
}

impl<'py> Written<'py> {
    pub fn new(py: Python<'py>) -> PyResult<Self> {
        let list = PyList::empty(py);
        let args = PyTuple::new(py, [&list])?;
        Ok(Written { list, args })
    }

    /// Bumps the `_version` of each tensor written in place by one, as the `fill_` each
    /// write stood in for would have, all in one call; then forgets them.
    pub fn bump(&self) -> PyResult<()> {
        let n = self.list.len();
        if n == 0 {
            return Ok(());
        }
        let py = self.list.py();
        if let Some(d) = &torch(py)?.direct {
            d.increment_version.bind(py).call1(&self.args)?;
        }
        // SAFETY: attached; `list` is a list, and deleting its items makes no object.
        if unsafe { ffi::PyList_SetSlice(self.list.as_ptr(), 0, n as ffi::Py_ssize_t, std::ptr::null_mut()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }
}

impl<'py> TensorLr<'py> {
    /// The tensor's value, without reading it when a step wrote it last; `None` where it
    /// would have to be read from a device.
    pub fn value(&self) -> PyResult<Option<Val>> {
        if let Some(x) = self.known {
            return Ok(Some(Val { x, kind: self.kind }));
        }
        let t = &self.tensor;
        let py = t.py();
        if !self.host {
            return Ok(None);
        }
        let x: f64 = t.call_method0(intern!(py, "item"))?.extract()?;
        remember(
            t,
            Held {
                version: self.version,
                data: self.data,
                value: x,
                kind: self.kind,
                copy: false,
                host: true,
                not_view: self.not_view,
                not_neg: self.not_neg,
            },
        )?;
        Ok(Some(Val { x, kind: self.kind }))
    }

    /// Whether the tensor provably holds `x` (as its dtype holds it) already.
    pub fn holds(&self, x: f64) -> bool {
        self.known.is_some_and(|k| k.to_bits() == self.kind.round(x).to_bits())
    }

    /// How `x` is to be written ([`TensorLr::write`]): not at all where the tensor provably
    /// holds it already ([`TensorLr::holds`]); in place where `direct` ([`direct_writes`]:
    /// no mode or transform would see a `fill_`), for a 0-dim CPU tensor (as probed) that is
    /// not a view (its base's autograd state decides what an in-place write may do) and has
    /// no negative bit (its memory would hold `-x`), with `x` within its dtype's range
    /// (beyond it, `fill_` raises); else with `fill_`. Asked of every group before anything
    /// is written: `is_neg()` lets other threads run.
    pub fn plan(&self, x: f64, direct: bool) -> PyResult<Write> {
        if self.holds(x) {
            return Ok(Write::Skip);
        }
        let in_range = match self.kind {
            Kind::F32 => !(x.is_finite() && x.abs() > f64::from(f32::MAX)),
            Kind::F64 => true,
            Kind::Float => false,
        };
        if !(direct && self.host && in_range) {
            return Ok(Write::Fill);
        }
        let t = &self.tensor;
        let torch = torch(t.py())?;
        let plain = (self.not_neg || !torch.is_neg.of(t)?.is_truthy()?)
            && (self.not_view || !torch.is_view.of(t)?.is_truthy()?);
        Ok(if plain { Write::Direct } else { Write::Fill })
    }

    /// Writes `x` as `plan`ned: `tensor.fill_(x)`, as torch's step writes a tensor learning
    /// rate, or, for [`Write::Direct`] where the tensor still is what the plan found
    /// ([`TensorLr::in_place`]), the value rounded as `fill_` rounds it stored at
    /// `data_ptr()`, the tensor added to `written` (made where any plan is
    /// [`Write::Direct`]) for its version bump. Remembers the value written. Returns whether
    /// it wrote.
    pub fn write(&self, x: f64, plan: Write, written: Option<&Written<'py>>) -> PyResult<bool> {
        let t = &self.tensor;
        let py = t.py();
        match (plan, written) {
            (Write::Skip, _) => return Ok(false),
            (Write::Direct, Some(written)) if self.in_place()? => {
                // SAFETY: `in_place` has just read, of this live tensor (the caller holds it),
                // that it is a 0-dim CPU tensor of this dtype whose element is at `data`, with
                // nothing run since. Volatile: another thread may read it.
                unsafe {
                    match self.kind {
                        Kind::F32 => std::ptr::write_volatile(self.data as usize as *mut f32, x as f32),
                        _ => std::ptr::write_volatile(self.data as usize as *mut f64, x),
                    }
                }
                written.list.append(t)?;
            }
            _ => {
                // `fill_` lets other threads run: the in-place writes so far get their versions first.
                if let Some(written) = written {
                    written.bump()?;
                }
                t.call_method1(intern!(py, "fill_"), (x,))?;
            }
        }
        // `fill_` bumps the version by one. (Were it bumped more, by this or by a concurrent
        // write, the next step would see a version it does not know, and read or defer.)
        let held = Held {
            version: self.version + 1,
            data: self.data,
            value: self.kind.round(x),
            kind: self.kind,
            copy: false,
            host: self.host,
            not_view: self.not_view || plan == Write::Direct,
            not_neg: self.not_neg || plan == Write::Direct,
        };
        remember(t, held)?;
        Ok(true)
    }

    /// Whether the tensor is still a 0-dim CPU tensor of this kind's dtype whose element is
    /// at the `data_ptr()` probed (`t.data = other` changes these without moving
    /// `_version`): read just before the write, with nothing in between that could run
    /// Python code or let another thread run, the address last.
    fn in_place(&self) -> PyResult<bool> {
        let t = &self.tensor;
        let torch = torch(t.py())?;
        let dtype = match self.kind {
            Kind::F32 => &torch.float32,
            Kind::F64 => &torch.float64,
            Kind::Float => return Ok(false),
        };
        Ok(torch.dtype.of(t)?.is(dtype)
            && torch.is_cpu.of(t)?.is_truthy()?
            && torch.ndim.of(t)?.extract::<i64>()? == 0
            && torch.data_ptr.of(t)?.extract::<i64>()? == self.data)
    }

    /// A copy of the tensor holding `x`, as torch keeps in `_last_lr`: `previous` (the entry
    /// the last step left there) where it is a copy made here that provably holds `x` still,
    /// else a new `clone()`, remembered when `keep` (the value did not change this step, or
    /// the rule is a step function: the next step may well reuse it).
    pub fn copy(&self, x: f64, previous: Option<Bound<'py, PyAny>>, keep: bool) -> PyResult<Bound<'py, PyAny>> {
        let x = self.kind.round(x);
        let py = self.tensor.py();
        let torch = torch(py)?;
        if let Some(p) = previous {
            // Never the learning rate itself: torch's `_last_lr` holds copies. (What a caller
            // changes of a copy without changing its value, `requires_grad` say, is shared by
            // the lists that share it.)
            // The table is asked first: most copies were never remembered (a value that
            // changes every step), and asking it reads nothing of the tensor.
            let same = |h: &Held| h.copy && h.kind == self.kind && h.value.to_bits() == x.to_bits();
            if !p.is(&self.tensor) && p.is_exact_instance(torch.tensor.bind(py)) {
                if let Some(h) = remembered(&p).filter(same) {
                    if version_and_data(torch, &p)?.is_some_and(|(v, d)| h.current(v, d)) {
                        return Ok(p);
                    }
                }
            }
        }
        let c = self.tensor.call_method0(intern!(py, "clone"))?;
        if keep {
            // (A clone made under inference mode has no version: it is not remembered.)
            if let Some((version, data)) = version_and_data(torch, &c)? {
                let held = Held {
                    version,
                    data,
                    value: x,
                    kind: self.kind,
                    copy: true,
                    host: self.host,
                    not_view: true,
                    not_neg: true,
                };
                remember(&c, held)?;
            }
        }
        Ok(c)
    }
}

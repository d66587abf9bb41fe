//! Tensor learning rates on the compiled scheduler steps, known without reading the tensor.
//!
//! A compiled step writes a tensor learning rate as torch's step does, with `fill_(value)`
//! or, where that is provably the same, in place at `data_ptr()` with `_version` bumped as
//! `fill_` bumps it ([`TensorLr::fill`]), and remembers here the value written and the
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

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType, PyWeakrefMethods, PyWeakrefReference};

use crate::core::torch_sched::{Kind, Val};

/// torch's `Tensor` type, the two dtypes taken, and the functions a direct write asks.
struct Torch {
    tensor: Py<PyType>,
    float32: Py<PyAny>,
    float64: Py<PyAny>,
    /// What a direct write needs of torch's private API, `None` where this torch lacks any
    /// of it (every write then goes through `fill_`):
    direct: Option<Direct>,
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
        Ok(Torch {
            tensor: torch.getattr("Tensor")?.cast_into::<PyType>()?.unbind(),
            float32: torch.getattr("float32")?.unbind(),
            float64: torch.getattr("float64")?.unbind(),
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
}

/// Keyed by the tensor's address; an entry counts only while its weak reference still
/// points at that same tensor.
struct Shadows {
    map: HashMap<usize, Shadow>,
    sweep_at: usize,
}

static SHADOWS: LazyLock<Mutex<Shadows>> = LazyLock::new(|| Mutex::new(Shadows { map: HashMap::new(), sweep_at: 64 }));

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
    /// A 0-dim CPU tensor (see [`Shadow::host`]).
    host: bool,
    /// The value it provably holds (remembered, and untouched since), if known.
    known: Option<f64>,
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

/// What the table says `t` holds, given its `_version` and `data_ptr()` now (and, for a CPU
/// tensor, what its memory holds).
fn lookup(t: &Bound<'_, PyAny>, version: i64, data: i64) -> Option<Held> {
    let h = remembered(t)?;
    if h.version != version || h.data != data || (h.host && in_memory(data, h.kind).to_bits() != h.value.to_bits()) {
        return None;
    }
    Some(h)
}

/// What the table remembers of `t` (whatever has happened to it since).
fn remembered(t: &Bound<'_, PyAny>) -> Option<Held> {
    let s = shadows();
    let e = s.map.get(&(t.as_ptr() as usize))?;
    e.tensor.bind(t.py()).upgrade().is_some_and(|o| o.is(t)).then_some(e.held)
}

fn version(t: &Bound<'_, PyAny>) -> PyResult<i64> {
    t.getattr(intern!(t.py(), "_version"))?.extract()
}

fn data_ptr(t: &Bound<'_, PyAny>) -> PyResult<i64> {
    t.call_method0(intern!(t.py(), "data_ptr"))?.extract()
}

/// Whether `obj` is exactly a torch tensor that needs no gradient (torch's `fill_` of one
/// that does raises: torch's step must run and raise it).
fn plain_tensor(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    Ok(obj.is_exact_instance(torch(py)?.tensor.bind(py)) && !obj.getattr(intern!(py, "requires_grad"))?.is_truthy()?)
}

/// `obj` as a tensor learning rate the compiled step can take, or `None`.
pub fn tensor_lr<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<TensorLr<'py>>> {
    let py = obj.py();
    if !plain_tensor(obj)? {
        return Ok(None);
    }
    // An inference tensor has no version counter: torch's step runs (and does what it does).
    let Ok(version) = version(obj) else { return Ok(None) };
    let data = data_ptr(obj)?;
    if let Some(h) = lookup(obj, version, data) {
        return Ok(Some(TensorLr {
            tensor: obj.clone(),
            kind: h.kind,
            version,
            data,
            host: h.host,
            known: Some(h.value),
        }));
    }
    let t = torch(py)?;
    let dtype = obj.getattr(intern!(py, "dtype"))?;
    let kind = if dtype.is(&t.float32) {
        Kind::F32
    } else if dtype.is(&t.float64) {
        Kind::F64
    } else {
        return Ok(None);
    };
    let host =
        obj.getattr(intern!(py, "is_cpu"))?.is_truthy()? && obj.getattr(intern!(py, "ndim"))?.extract::<i64>()? == 0;
    Ok(Some(TensorLr { tensor: obj.clone(), kind, version, data, host, known: None }))
}

/// Whether a tensor learning rate may be written in place ([`TensorLr::fill`]) now: no
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
            Held { version: self.version, data: self.data, value: x, kind: self.kind, copy: false, host: true },
        )?;
        Ok(Some(Val { x, kind: self.kind }))
    }

    /// Whether the tensor provably holds `x` (as its dtype holds it) already.
    pub fn holds(&self, x: f64) -> bool {
        self.known.is_some_and(|k| k.to_bits() == self.kind.round(x).to_bits())
    }

    /// `tensor.fill_(x)`, as torch's step writes a tensor learning rate, skipped where the
    /// tensor provably holds `x` already ([`TensorLr::holds`]); remembers the value written.
    /// With `direct` (no mode or transform would see the `fill_`: [`direct_writes`]), a
    /// tensor for which it is provably the same ([`TensorLr::writable`]) is written in place
    /// instead: the value, rounded as `fill_` rounds it, at `data_ptr()`, and `_version`
    /// bumped as `fill_` bumps it. Returns whether it wrote.
    pub fn fill(&self, x: f64, direct: bool) -> PyResult<bool> {
        if self.holds(x) {
            return Ok(false);
        }
        let t = &self.tensor;
        let py = t.py();
        let via = match &torch(py)?.direct {
            Some(d) if direct && self.writable(x)? => Some(d),
            _ => None,
        };
        if let Some(d) = via {
            // SAFETY: `writable` has just read, of this live tensor (the caller holds it), that
            // it is a 0-dim CPU tensor of this dtype whose element is at `data`, not
            // written by anyone else since (unchanged `_version` and `data_ptr()`).
            // Volatile: another thread may read it.
            unsafe {
                match self.kind {
                    Kind::F32 => std::ptr::write_volatile(self.data as usize as *mut f32, x as f32),
                    _ => std::ptr::write_volatile(self.data as usize as *mut f64, x),
                }
            }
            d.increment_version.bind(py).call1((PyTuple::new(py, [t])?,))?;
        } else {
            t.call_method1(intern!(py, "fill_"), (x,))?;
        }
        // `fill_` bumps the version by one. (Were it bumped more, by this or by a concurrent
        // write, the next step would see a version it does not know, and read or defer.)
        let value = self.kind.round(x);
        remember(
            t,
            Held { version: self.version + 1, data: self.data, value, kind: self.kind, copy: false, host: self.host },
        )?;
        Ok(true)
    }

    /// Whether writing `x` at `data_ptr()` is provably what `fill_(x)` would do: a 0-dim
    /// CPU tensor of this kind's dtype whose element is still where this step found it
    /// (read now: `t.data = other` changes them and neither
    /// `_version` nor always `data_ptr()`), not a view (whose base may refuse in-place
    /// writes), without the negative bit (its memory holds `-x`), not an inference tensor
    /// (probed already: it has no `_version`), and `x` within the dtype's range (beyond,
    /// `fill_` raises).
    fn writable(&self, x: f64) -> PyResult<bool> {
        let t = &self.tensor;
        let py = t.py();
        let dtype = match self.kind {
            Kind::F32 if x.is_finite() && x.abs() > f64::from(f32::MAX) => return Ok(false),
            Kind::F32 => &torch(py)?.float32,
            Kind::F64 => &torch(py)?.float64,
            Kind::Float => return Ok(false),
        };
        Ok(self.host
            && data_ptr(t)? == self.data
            && t.getattr(intern!(py, "dtype"))?.is(dtype)
            && t.getattr(intern!(py, "is_cpu"))?.is_truthy()?
            && t.getattr(intern!(py, "ndim"))?.extract::<i64>()? == 0
            && !t.call_method0(intern!(py, "_is_view"))?.is_truthy()?
            && !t.call_method0(intern!(py, "is_neg"))?.is_truthy()?)
    }

    /// A copy of the tensor holding `x`, as torch keeps in `_last_lr`: `previous` (the entry
    /// the last step left there) where it is a copy made here that provably holds `x` still,
    /// else a new `clone()`, remembered when `keep` (the value did not change this step, or
    /// the rule is a step function: the next step may well reuse it).
    pub fn copy(&self, x: f64, previous: Option<Bound<'py, PyAny>>, keep: bool) -> PyResult<Bound<'py, PyAny>> {
        let x = self.kind.round(x);
        if let Some(p) = previous {
            // Never the learning rate itself: torch's `_last_lr` holds copies. (What a caller
            // changes of a copy without changing its value, `requires_grad` say, is shared by
            // the lists that share it.)
            // The table is asked first: most copies were never remembered (a value that
            // changes every step), and asking it reads nothing of the tensor.
            let same = |h: Held| h.copy && h.kind == self.kind && h.value.to_bits() == x.to_bits();
            if !p.is(&self.tensor)
                && p.is_exact_instance(torch(p.py())?.tensor.bind(p.py()))
                && remembered(&p).is_some_and(same)
            {
                let (v, d) = (version(&p)?, data_ptr(&p)?);
                if lookup(&p, v, d).is_some_and(same) {
                    return Ok(p);
                }
            }
        }
        let c = self.tensor.call_method0(intern!(self.tensor.py(), "clone"))?;
        if keep {
            let (version, data) = (version(&c)?, data_ptr(&c)?);
            remember(&c, Held { version, data, value: x, kind: self.kind, copy: true, host: self.host })?;
        }
        Ok(c)
    }
}

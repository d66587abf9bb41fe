//! Tensor learning rates on the compiled scheduler steps, known without reading the tensor.
//!
//! A compiled step writes a tensor learning rate with `fill_(value)`, as torch's step does,
//! and remembers here the value written and the tensor's version counter after the write
//! (keyed by the tensor, held weakly). At the next step, an unchanged `_version` says that
//! nothing wrote the tensor since: the remembered value is its value, and the tensor is not
//! read (no device sync, no host read). A tensor not seen before, or written by anything
//! else since, is read once with `item()` when it is a CPU tensor; on another device the
//! caller runs torch's own step. Only 0-dim float32/float64 tensors that need no gradient
//! are taken: anything else runs torch's step.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyType, PyWeakrefMethods, PyWeakrefReference};

use crate::core::torch_sched::{Kind, Val};

/// torch's `Tensor` type and the two dtypes taken.
struct Torch {
    tensor: Py<PyType>,
    float32: Py<PyAny>,
    float64: Py<PyAny>,
}

static TORCH: PyOnceLock<Torch> = PyOnceLock::new();

fn torch(py: Python<'_>) -> PyResult<&Torch> {
    TORCH.get_or_try_init(py, || {
        let torch = py.import("torch")?;
        Ok(Torch {
            tensor: torch.getattr("Tensor")?.cast_into::<PyType>()?.unbind(),
            float32: torch.getattr("float32")?.unbind(),
            float64: torch.getattr("float64")?.unbind(),
        })
    })
}

/// What a tensor held when a step last wrote (or read) it. `data` (its `data_ptr()`) changes
/// where `tensor.data = other` swapped its storage, which leaves `_version` as it was.
struct Shadow {
    tensor: Py<PyWeakrefReference>,
    version: i64,
    data: i64,
    value: f64,
    kind: Kind,
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

/// A tensor learning rate of a param group (or a base learning rate).
pub struct TensorLr<'py> {
    pub tensor: Bound<'py, PyAny>,
    pub kind: Kind,
    /// Its `data_ptr()`, once [`TensorLr::value`] has read it.
    data: Cell<i64>,
}

/// `obj` as a tensor learning rate the compiled step can take, or `None`.
pub fn tensor_lr<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<TensorLr<'py>>> {
    let py = obj.py();
    let t = torch(py)?;
    if !obj.is_exact_instance(t.tensor.bind(py)) {
        return Ok(None);
    }
    let dtype = obj.getattr(intern!(py, "dtype"))?;
    let kind = if dtype.is(&t.float32) {
        Kind::F32
    } else if dtype.is(&t.float64) {
        Kind::F64
    } else {
        return Ok(None);
    };
    if obj.getattr(intern!(py, "requires_grad"))?.is_truthy()? {
        return Ok(None);
    }
    Ok(Some(TensorLr { tensor: obj.clone(), kind, data: Cell::new(0) }))
}

fn version(t: &Bound<'_, PyAny>) -> PyResult<i64> {
    t.getattr(intern!(t.py(), "_version"))?.extract()
}

fn remember(t: &Bound<'_, PyAny>, version: i64, data: i64, value: f64, kind: Kind) -> PyResult<()> {
    let key = t.as_ptr() as usize;
    if let Some(entry) = shadows().map.get_mut(&key) {
        if entry.tensor.bind(t.py()).upgrade().is_some_and(|o| o.is(t)) {
            (entry.version, entry.data, entry.value, entry.kind) = (version, data, value, kind);
            return Ok(());
        }
    }
    // Made before taking the lock: an allocation may run the collector, and with it Python code.
    let tensor = PyWeakrefReference::new(t)?.unbind();
    let mut s = shadows();
    s.map.insert(key, Shadow { tensor, version, data, value, kind });
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
        let t = &self.tensor;
        let py = t.py();
        let now = version(t)?;
        let data: i64 = t.call_method0(intern!(py, "data_ptr"))?.extract()?;
        self.data.set(data);
        {
            let s = shadows();
            if let Some(e) = s.map.get(&(t.as_ptr() as usize)) {
                let same = e.version == now && e.data == data && e.kind == self.kind;
                if same && e.tensor.bind(py).upgrade().is_some_and(|o| o.is(t)) {
                    return Ok(Some(Val { x: e.value, kind: self.kind }));
                }
            }
        }
        if !t.getattr(intern!(py, "is_cpu"))?.is_truthy()? || t.getattr(intern!(py, "ndim"))?.extract::<i64>()? != 0 {
            return Ok(None);
        }
        let x: f64 = t.call_method0(intern!(py, "item"))?.extract()?;
        remember(t, now, data, x, self.kind)?;
        Ok(Some(Val { x, kind: self.kind }))
    }

    /// `tensor.fill_(x)`, as torch's step writes a tensor learning rate; remembers the value
    /// when [`TensorLr::value`] was asked first (and so read the storage written). Otherwise
    /// the version bump makes whatever was remembered stale, as it should.
    pub fn fill(&self, x: f64) -> PyResult<()> {
        let t = &self.tensor;
        t.call_method1(intern!(t.py(), "fill_"), (x,))?;
        if self.data.get() == 0 {
            return Ok(());
        }
        remember(t, version(t)?, self.data.get(), self.kind.round(x), self.kind)
    }

    /// A copy of the tensor, as torch keeps in `_last_lr`.
    pub fn clone_tensor(&self) -> PyResult<Bound<'py, PyAny>> {
        self.tensor.call_method0(intern!(self.tensor.py(), "clone"))
    }
}

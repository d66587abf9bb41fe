//! The compiled steps of the drop-in torch schedulers (`fastcb.lr_scheduler`).
//!
//! Stateless functions of the scheduler object: nothing is cached between steps and nothing
//! is stored on the scheduler. Each step runs the class's rule from the registry
//! (`core::torch_sched::RULES`), which reads its parameters by torch's names from the
//! scheduler's `__dict__` and the optimizer's param groups (`torch_attrs`), computes in Rust,
//! and writes exactly what torch's own step writes. So an in-place edit (`gamma`, `T_max`,
//! `base_lrs[i]`, a group's `max_lr`) is honoured at the next step, and a scheduler holds no
//! reference to itself. A tensor learning rate is written as its `fill_` writes it (its value
//! known, and the write done, as `tensor_lr` describes). Anything a rule can't read (a tensor parameter, a float where
//! torch needs an int, a Python lambda) answers `False`/`None`: torch's code path then runs,
//! unchanged.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple, PyType};

use super::exact::{Int, Num};
use super::tensor_lr::{direct_writes, tensor_lr, TensorLr, Write, Written};
use super::torch_attrs::{borrowed, instance_dict, key, SchedAttrs};
use crate::core::torch_sched::{rule_index, Kind, MomentumKey, PerGroup, Val, Writes, RULES};

/// Counters are kept per rule, and for SequentialLR after them.
const SEQUENTIAL: usize = RULES.len();
const COUNTED: usize = RULES.len() + 1;

/// How many regular steps (and `get_lr` calls) each rule ran compiled: tests assert that no
/// class silently fell back to torch's path.
static STEPS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];
static GET_LRS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];
/// The regular steps run compiled with a tensor learning rate in some group.
static TENSOR_STEPS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];

fn count(counter: &[AtomicU64; COUNTED], i: usize) {
    counter[i].fetch_add(1, Ordering::Relaxed);
}

/// What one step reads and computes, a slot per param group: the base and current learning
/// rates, the groups and learning rates as read, the momenta a rule sets. Made once per
/// step by the caller, filled in place (nothing this size is moved).
struct Numbers {
    base: PerGroup<Val>,
    lrs: PerGroup<Val>,
    /// The learning rates as read (`lrs` before the rule ran; 0 for an unread tensor).
    before: PerGroup<f64>,
    held: Held,
    momenta: PerGroup<f64>,
}

impl Numbers {
    #[inline(always)]
    fn new() -> Self {
        Numbers {
            base: PerGroup::new(),
            lrs: PerGroup::new(),
            before: PerGroup::new(),
            held: Held::new(),
            momenta: PerGroup::new(),
        }
    }
}

/// What one step reads besides the [`Numbers`]: the param groups, and the groups whose
/// learning rate is a tensor.
struct Groups<'py> {
    groups: Bound<'py, PyList>,
    /// `(group, its tensor)` for the groups whose learning rate is a tensor (none
    /// allocated for float groups only).
    tensors: Vec<(usize, TensorLr<'py>)>,
}

impl<'py> Groups<'py> {
    fn has_tensors(&self) -> bool {
        !self.tensors.is_empty()
    }

    fn tensor(&self, group: usize) -> Option<&TensorLr<'py>> {
        self.tensors.iter().find(|(i, _)| *i == group).map(|(_, t)| t)
    }
}

/// Owned references to each group and its learning rate as a step read them, released when
/// dropped: the writes use them (the same objects even where a write runs Python code, a
/// key's `__eq__`), and a learning rate that did not change is handed on as the very object
/// read, without a second lookup.
struct Held {
    /// `(group, its learning rate)`, each group a dict.
    refs: PerGroup<(*mut ffi::PyObject, *mut ffi::PyObject)>,
}

impl Held {
    fn new() -> Self {
        Held { refs: PerGroup::new() }
    }

    /// Holds `group` and `lr`, the next group's.
    #[inline(always)]
    fn hold(&mut self, group: &Bound<'_, PyDict>, lr: &Bound<'_, PyAny>) {
        self.refs.push((group.clone().into_ptr(), lr.clone().into_ptr()));
    }

    /// Group `i` (a dict), as read.
    #[inline(always)]
    fn group<'a, 'py>(&'a self, py: Python<'py>, i: usize) -> Borrowed<'a, 'py, PyDict> {
        // SAFETY: attached to the interpreter; this owns a reference to the group, a dict
        // (checked when read), for as long as it lives.
        unsafe { Borrowed::from_ptr(py, self.refs.as_slice()[i].0).cast_unchecked() }
    }

    /// Nothing held (whatever was, released).
    fn release(&mut self) {
        for &(group, lr) in self.refs.as_slice() {
            // SAFETY: attached to the interpreter (a step runs attached, and so does its
            // unwinding); each is a reference this owns (what its release may run can't
            // reach this).
            unsafe {
                ffi::Py_DECREF(group);
                ffi::Py_DECREF(lr);
            }
        }
        self.refs.clear();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

/// A plain float, or a tensor's value (known without reading it, [`TensorLr::value`]).
fn read_val<'py>(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Option<(Val, Option<TensorLr<'py>>)>> {
    if let Ok(n) = obj.extract::<Num>() {
        return Ok(Some((Val::float(n.0), None)));
    }
    let Some(t) = tensor_lr(&obj.to_owned())? else { return Ok(None) };
    Ok(t.value()?.map(|v| (v, Some(t))))
}

/// `base_lrs`, one per group.
#[inline(always)]
fn read_base(
    d: &Bound<'_, PyDict>,
    groups: &Bound<'_, PyList>,
    tensors: bool,
    base: &mut PerGroup<Val>,
) -> PyResult<bool> {
    let Some(base_list) = borrowed::get(d, intern!(d.py(), "base_lrs")) else { return Ok(false) };
    let Ok(base_list) = base_list.cast::<PyList>() else { return Ok(false) };
    if base_list.len() != groups.len() {
        return Ok(false);
    }
    base.clear();
    for i in 0..groups.len() {
        let b = borrowed::item(&base_list, i)?;
        if let Ok(b) = b.extract::<Num>() {
            base.push(Val::float(b.0));
        } else if !tensors {
            return Ok(false);
        } else {
            let Some((b, _)) = read_val(b)? else { return Ok(false) };
            base.push(b);
        }
    }
    Ok(true)
}

/// The param groups with plain-float (or, `tensors`, tensor) learning rates, their numbers
/// into `nums`, and when `base`, a base learning rate each. Without `current`, a tensor's
/// value is not looked up (`lrs[g]` is then 0 of the tensor's kind).
#[inline(always)]
fn read_groups<'py>(
    d: &Bound<'py, PyDict>,
    tensors: bool,
    base: bool,
    current: bool,
    nums: &mut Numbers,
) -> PyResult<Option<Groups<'py>>> {
    let py = d.py();
    let Some(opt) = borrowed::get(d, intern!(py, "optimizer")) else { return Ok(None) };
    let Ok(groups) = opt.getattr(intern!(py, "param_groups")) else { return Ok(None) };
    let Ok(groups) = groups.cast_into::<PyList>() else { return Ok(None) };
    if base && !read_base(d, &groups, tensors, &mut nums.base)? {
        return Ok(None);
    }
    let lr_key = intern!(py, "lr");
    nums.lrs.clear();
    nums.before.clear();
    nums.held.release();
    let mut tensor_groups = Vec::new();
    for i in 0..groups.len() {
        let group = borrowed::item(&groups, i)?;
        let Ok(group) = group.cast::<PyDict>() else { return Ok(None) };
        let Some(lr) = borrowed::get(&group, lr_key) else { return Ok(None) };
        // Held before anything else runs (a tensor's attributes are Python code).
        nums.held.hold(&group, &lr);
        // Exactly a float: replacing it runs no Python code (no `__del__`).
        if let Ok(lr) = lr.cast_exact::<PyFloat>() {
            let x = lr.value();
            nums.lrs.push(Val::float(x));
            nums.before.push(x);
            continue;
        }
        if !tensors {
            return Ok(None);
        }
        let Some(t) = tensor_lr(&lr.to_owned())? else { return Ok(None) };
        let v = if current {
            let Some(v) = t.value()? else { return Ok(None) };
            v
        } else {
            Val { x: 0.0, kind: t.kind }
        };
        nums.lrs.push(v);
        nums.before.push(v.x);
        tensor_groups.push((i, t));
    }
    Ok(Some(Groups { groups, tensors: tensor_groups }))
}

/// Sets a group's momentum as torch does: `group["momentum"] = m`, or
/// `group["betas"] = (m, *group["betas"][1:])`.
fn set_momentum(group: &Bound<'_, PyDict>, key: MomentumKey, m: f64) -> PyResult<()> {
    let py = group.py();
    let m = PyFloat::new(py, m).into_any();
    if key == MomentumKey::Momentum {
        return put(group, intern!(py, "momentum").as_any(), &m);
    }
    let betas_key = intern!(py, "betas");
    let old = group.get_item(betas_key)?;
    let betas = match old.as_ref().map(|b| b.cast_exact::<PyTuple>()) {
        // Adam's `(beta1, beta2)`: no list to gather the rest in.
        Some(Ok(old)) if old.len() == 2 => PyTuple::new(py, [m, old.get_item(1)?])?,
        _ => {
            let mut items = vec![m];
            if let Some(old) = old {
                items.extend(old.try_iter()?.skip(1).collect::<PyResult<Vec<_>>>()?);
            }
            PyTuple::new(py, items)?
        }
    };
    put(group, betas_key.as_any(), betas.as_any())
}

/// Whether every momentum can be written without running Python code that could fail halfway.
fn momenta_writable(groups: &Bound<'_, PyList>, key: MomentumKey) -> PyResult<bool> {
    if key == MomentumKey::Momentum {
        return Ok(true);
    }
    let py = groups.py();
    for group in groups.iter() {
        let Ok(group) = group.cast_into::<PyDict>() else { return Ok(false) };
        match group.get_item(intern!(py, "betas"))? {
            Some(b) if b.is_exact_instance_of::<PyTuple>() => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// `dict[key] = value`, straight to the interpreter (no conversion, no reference counted).
#[inline]
fn put(dict: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: attached to the interpreter; three live objects the caller holds, `dict` a dict.
    if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(dict.py()))
    }
}

/// A new list of `n` slots, each to be set with [`fill_slot`] before the list is used.
fn slots(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyList>> {
    // SAFETY: attached to the interpreter; a new reference, or NULL with an exception set.
    // A slot not yet set is NULL, which the list's deallocation skips.
    unsafe { Ok(Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n as ffi::Py_ssize_t))?.cast_into_unchecked()) }
}

/// Sets slot `i` (in range) of a list made by [`slots`] to `item`.
#[inline]
fn fill_slot(list: &Bound<'_, PyList>, i: usize, item: Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: attached to the interpreter; `PyList_SetItem` takes the reference `into_ptr`
    // hands over (and releases it on failure).
    if unsafe { ffi::PyList_SetItem(list.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr()) } == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(list.py()))
    }
}

/// Group `i`'s new float learning rate `now` (read as `was`, the object `lr` of `group`,
/// both held by the step): a new float into the group where the value changed, and the
/// group's float into slot `i` of `last_lr` (an unchanged value: the very object read, as
/// torch's step keeps it where its formula hands back `group["lr"]`).
#[inline(always)]
fn write_float(
    py: Python<'_>,
    (group, lr): (*mut ffi::PyObject, *mut ffi::PyObject),
    was: f64,
    now: f64,
    last_lr: &Bound<'_, PyList>,
    i: usize,
) -> PyResult<()> {
    // SAFETY: attached to the interpreter; `group` (a dict) and `lr` are references the
    // step's `Held` owns; `PyList_SetItem` takes the reference to `item` (and releases it on
    // failure).
    unsafe {
        let item = if was.to_bits() == now.to_bits() {
            ffi::Py_INCREF(lr);
            lr
        } else {
            let new = ffi::PyFloat_FromDouble(now);
            if new.is_null() {
                return Err(PyErr::fetch(py));
            }
            if ffi::PyDict_SetItem(group, intern!(py, "lr").as_ptr(), new) != 0 {
                ffi::Py_DECREF(new);
                return Err(PyErr::fetch(py));
            }
            new
        };
        if ffi::PyList_SetItem(last_lr.as_ptr(), i as ffi::Py_ssize_t, item) != 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(())
}

/// The write pass of a step whose every group holds a float: each group's new float
/// ([`write_float`]), then the group's momentum.
#[inline(always)]
fn write_floats(
    py: Python<'_>,
    nums: &Numbers,
    momenta: Option<MomentumKey>,
    last_lr: &Bound<'_, PyList>,
) -> PyResult<()> {
    let (lrs, before, held) = (nums.lrs.as_slice(), nums.before.as_slice(), nums.held.refs.as_slice());
    for (i, ((v, was), &refs)) in lrs.iter().zip(before).zip(held).enumerate() {
        write_float(py, refs, *was, v.x, last_lr, i)?;
        if let Some(key) = momenta {
            set_momentum(&nums.held.group(py, i), key, nums.momenta.as_slice()[i])?;
        }
    }
    Ok(())
}

/// What a compiled step did: whether a group's learning rate is a tensor, and the new
/// `_last_lr`.
struct Stepped<'py> {
    tensors: bool,
    last_lr: Bound<'py, PyList>,
}

/// One regular step of `sched` by rule `r`, all in Rust, or `None` (changing nothing) where
/// torch's own step must run.
fn step_one<'py>(sched: &Bound<'py, PyAny>, r: usize) -> PyResult<Option<Stepped<'py>>> {
    let rule = &RULES[r];
    let py = sched.py();
    let Some(d) = instance_dict(sched) else { return Ok(None) };
    let Some(last) = borrowed::get(&d, intern!(py, "last_epoch")) else { return Ok(None) };
    let Ok(Int(last)) = last.extract::<Int>() else { return Ok(None) };
    let mut step_count = 0;
    if rule.own_step {
        if last < 0 {
            return Ok(None);
        }
    } else {
        // The first steps run torch's: it warns about the call order there.
        let Some(n) = borrowed::get(&d, intern!(py, "_step_count")) else { return Ok(None) };
        match n.extract::<Int>() {
            Ok(Int(n)) if n >= 2 => step_count = n,
            _ => return Ok(None),
        }
    }
    let Some(epoch) = last.checked_add(1) else { return Ok(None) };
    let mut nums = Numbers::new();
    let Some(g) = read_groups(&d, true, rule.base, rule.current, &mut nums)? else { return Ok(None) };
    let attrs = SchedAttrs::new(&d, nums.held.refs.as_slice());
    let Some(done) =
        (rule.apply)(&attrs, epoch, true, nums.lrs.as_mut_slice(), nums.base.as_slice(), &mut nums.momenta)
    else {
        return Ok(None);
    };
    if let Some(key) = done.momenta {
        if !momenta_writable(&g.groups, key)? {
            return Ok(None);
        }
    }
    let (lrs, before) = (nums.lrs.as_slice(), nums.before.as_slice());
    // A float group given a tensor's value: torch would put a tensor in the group.
    if g.has_tensors() && lrs.iter().enumerate().any(|(i, v)| v.kind != Kind::Float && g.tensor(i).is_none()) {
        return Ok(None);
    }
    if !g.has_tensors() && lrs.iter().any(|v| v.kind != Kind::Float) {
        return Ok(None);
    }
    // Everything is read and computed: now write what torch's step writes, in one pass over
    // the groups: a float group's new float (the same object in `_last_lr`; an unchanged
    // value keeps its object, as torch's step keeps it where its formula hands back
    // `group["lr"]`), a tensor's `fill_` (and a copy in `_last_lr`, made below).
    let last_lr = slots(py, lrs.len())?;
    if !g.has_tensors() {
        write_floats(py, &nums, done.momenta, &last_lr)?;
        return finish(&d, r, epoch, step_count, &done.writes, last_lr, false);
    }
    // The modes are asked only where some tensor gets a new value.
    let changed = g.tensors.iter().any(|(i, t)| !t.holds(lrs[*i].x));
    let direct = changed && direct_writes(py)?;
    // How each tensor is written, asked of all of them before anything is written.
    let plans = g.tensors.iter().map(|(i, t)| t.plan(lrs[*i].x, direct)).collect::<PyResult<Vec<_>>>()?;
    // Where none needs its `fill_` (nothing can fail), the tensors are written after the
    // float groups and momenta, all together, so that nothing runs between their writes and
    // their version bump; else each in its group's turn, as torch's step writes them.
    let together = plans.iter().all(|p| *p != Write::Fill);
    let written = if plans.contains(&Write::Direct) { Some(Written::new(py)?) } else { None };
    let mut wrote = vec![false; g.tensors.len()];
    let writes = (|| -> PyResult<()> {
        for (i, (v, was)) in lrs.iter().zip(before).enumerate() {
            match g.tensors.iter().position(|(j, _)| *j == i) {
                Some(k) => {
                    if !together {
                        wrote[k] = g.tensors[k].1.write(v.x, plans[k], written.as_ref())?;
                    }
                }
                None => write_float(py, nums.held.refs.as_slice()[i], *was, v.x, &last_lr, i)?,
            }
            if let Some(key) = done.momenta {
                set_momentum(&nums.held.group(py, i), key, nums.momenta.as_slice()[i])?;
            }
        }
        if together {
            for (k, (i, t)) in g.tensors.iter().enumerate() {
                wrote[k] = t.write(lrs[*i].x, plans[k], written.as_ref())?;
            }
        }
        Ok(())
    })();
    // Whatever failed, what was written in place gets its version bump.
    let bumped = written.as_ref().map_or(Ok(()), Written::bump);
    writes?;
    bumped?;
    if g.has_tensors() {
        let previous =
            borrowed::get(&d, intern!(py, "_last_lr")).and_then(|p| p.to_owned().cast_into_exact::<PyList>().ok());
        let previous = previous.filter(|p| p.len() == lrs.len());
        for ((i, t), wrote) in g.tensors.iter().zip(wrote) {
            let before = previous.as_ref().map(|p| p.get_item(*i)).transpose()?;
            fill_slot(&last_lr, *i, t.copy(lrs[*i].x, before, !wrote || rule.piecewise)?)?;
        }
    }
    finish(&d, r, epoch, step_count, &done.writes, last_lr, true)
}

/// The end of a compiled step of rule `r` to `epoch`, once the groups are written: the
/// scheduler's `last_epoch`, the attributes the rule sets, `_step_count` (to `step_count + 1`,
/// where torch's step counts), `_last_lr`; the step counted (`tensors`: with a tensor lr).
fn finish<'py>(
    d: &Bound<'py, PyDict>,
    r: usize,
    epoch: i64,
    step_count: i64,
    writes: &Writes,
    last_lr: Bound<'py, PyList>,
    tensors: bool,
) -> PyResult<Option<Stepped<'py>>> {
    let py = d.py();
    put(d, intern!(py, "last_epoch").as_any(), epoch.into_pyobject(py)?.as_any())?;
    for &(name, value) in writes.iter().flatten() {
        put(d, key(py, name).as_any(), value.into_pyobject(py)?.as_any())?;
    }
    if !RULES[r].own_step {
        put(d, intern!(py, "_step_count").as_any(), (step_count + 1).into_pyobject(py)?.as_any())?;
    }
    put(d, intern!(py, "_last_lr").as_any(), last_lr.as_any())?;
    count(if tensors { &TENSOR_STEPS } else { &STEPS }, r);
    Ok(Some(Stepped { tensors, last_lr }))
}

/// SequentialLR between milestones: the current scheduler's compiled step.
fn sequential_step(sched: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = sched.py();
    let Some(d) = instance_dict(sched) else { return Ok(false) };
    let Some(last) = borrowed::get(&d, intern!(py, "last_epoch")) else { return Ok(false) };
    let Ok(Int(last)) = last.extract::<Int>() else { return Ok(false) };
    let Some(epoch) = last.checked_add(1) else { return Ok(false) };
    let Some(milestones) = borrowed::get(&d, intern!(py, "_milestones")) else { return Ok(false) };
    let Ok(milestones) = milestones.cast::<PyList>() else { return Ok(false) };
    let Some(schedulers) = borrowed::get(&d, intern!(py, "_schedulers")) else { return Ok(false) };
    let Ok(schedulers) = schedulers.cast::<PyList>() else { return Ok(false) };
    // torch's `bisect_right(milestones, epoch)`, step for step (every milestone it compares
    // an exact int); at a milestone torch's step switches schedulers (its own code runs).
    let milestone =
        |i: usize| -> PyResult<Option<i64>> { Ok(borrowed::item(&milestones, i)?.extract::<Int>().ok().map(|m| m.0)) };
    let (mut lo, mut hi) = (0, milestones.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let Some(m) = milestone(mid)? else { return Ok(false) };
        if epoch < m {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let idx = lo;
    if idx > 0 && milestone(idx - 1)? == Some(epoch) {
        return Ok(false);
    }
    if idx >= schedulers.len() {
        return Ok(false);
    }
    let child = schedulers.get_item(idx)?;
    let r = match class_rule(&child)? {
        Some(r) if r != SEQUENTIAL => r,
        _ => return Ok(false),
    };
    let Some(stepped) = step_one(&child, r)? else { return Ok(false) };
    put(&d, intern!(py, "last_epoch").as_any(), epoch.into_pyobject(py)?.as_any())?;
    put(&d, intern!(py, "_last_lr").as_any(), stepped.last_lr.as_any())?;
    count(if stepped.tensors { &TENSOR_STEPS } else { &STEPS }, SEQUENTIAL);
    Ok(true)
}

/// The rule names as Python strings: the class attribute `_fastcb_rule` is one of these
/// very objects (a literal in the class statement, interned), so a rule is found by address.
static RULE_NAMES: PyOnceLock<[Py<PyString>; COUNTED]> = PyOnceLock::new();

/// fastcb's own compiled classes, exactly, with their rules: `(class address, rule index)`,
/// an address of `0` marking a free slot. Registered when each class is made
/// ([`torch_register_class`], which keeps the class alive for the process's life, so an
/// address is never reused), written while attached to the interpreter (whose lock serialises
/// the writers), the address last. A scheduler of one of these classes finds its rule without
/// an attribute lookup; any other class (a user's subclass) looks `_fastcb_rule` up.
static CLASSES: [[AtomicUsize; 2]; 32] = [const { [const { AtomicUsize::new(0) }; 2] }; 32];

/// The rule a class attribute `_fastcb_rule` names: its index in [`RULES`], [`SEQUENTIAL`],
/// or `None` (torch's code, always; also for a class without one).
fn named_rule(cls: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    let py = cls.py();
    let Ok(rule) = cls.getattr(intern!(py, "_fastcb_rule")) else { return Ok(None) };
    let names = RULE_NAMES.get_or_init(py, || {
        std::array::from_fn(|i| PyString::intern(py, RULES.get(i).map_or("sequential", |r| r.name)).unbind())
    });
    if let Some(i) = names.iter().position(|n| n.is(&rule)) {
        return Ok(Some(i));
    }
    let Ok(rule) = rule.cast_into::<PyString>() else { return Ok(None) };
    let rule = rule.to_str()?;
    Ok(if rule == "sequential" { Some(SEQUENTIAL) } else { rule_index(rule) })
}

/// The rule of the scheduler's class (see [`named_rule`]).
#[inline]
fn class_rule(sched: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    // SAFETY: `sched` is a live object; its type pointer is valid while it is.
    let cls = unsafe { ffi::Py_TYPE(sched.as_ptr()) } as usize;
    for slot in &CLASSES {
        match slot[0].load(Ordering::Acquire) {
            0 => break,
            a if a == cls => return Ok(Some(slot[1].load(Ordering::Relaxed))),
            _ => {}
        }
    }
    named_rule(sched.get_type().as_any())
}

/// `torch_register_class(cls)`: registers one of fastcb's compiled classes (one naming its
/// rule in its class statement) so that its schedulers find the rule without an attribute
/// lookup. The class is kept alive for the process's life; `_fastcb_rule` is read now, once.
#[pyfunction]
fn torch_register_class(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let Some(rule) = named_rule(cls.as_any())? else {
        return Err(pyo3::exceptions::PyValueError::new_err("cls: a class with a compiled rule (_fastcb_rule)"));
    };
    let addr = cls.as_ptr() as usize;
    if CLASSES.iter().any(|slot| slot[0].load(Ordering::Acquire) == addr) {
        return Ok(());
    }
    let Some(slot) = CLASSES.iter().find(|slot| slot[0].load(Ordering::Acquire) == 0) else {
        // Full: the class looks its rule up at each step, as a subclass does.
        return Ok(());
    };
    // Never released: the table's reference keeps the address from being reused.
    let _ = cls.clone().into_ptr();
    slot[1].store(rule, Ordering::Relaxed);
    slot[0].store(addr, Ordering::Release);
    Ok(())
}

/// Whether a call of `step` passed nothing but `epoch=None` (positionally or by name).
///
/// # Safety
/// `args` points at `nargs` valid objects, followed by one per name of `kwnames` (a tuple of
/// `str`, or NULL), as a vectorcall passes them.
unsafe fn no_epoch(args: *const *mut ffi::PyObject, nargs: usize, kwnames: *mut ffi::PyObject) -> bool {
    let given = |i: usize| unsafe { *args.add(i) == ffi::Py_None() };
    if kwnames.is_null() {
        return nargs == 0 || (nargs == 1 && given(0));
    }
    if nargs != 0 || unsafe { ffi::PyTuple_Size(kwnames) } != 1 {
        return false;
    }
    let name = unsafe { ffi::PyTuple_GetItem(kwnames, 0) };
    !name.is_null() && unsafe { ffi::PyUnicode_CompareWithASCIIString(name, c"epoch".as_ptr()) } == 0 && given(0)
}

/// The body of the compiled classes' `step` method: a regular step compiled, anything else
/// (and a step the rule can't take) `self._fastcb_torch_step(*args, **kwargs)`, torch's path.
fn step_method<'py>(
    sched: &Bound<'py, PyAny>,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Bound<'py, PyAny>> {
    let py = sched.py();
    let plain = nargs == 0 && kwnames.is_null();
    // SAFETY: the vectorcall's own arguments.
    if plain || unsafe { no_epoch(args, nargs, kwnames) } {
        let done = match class_rule(sched)? {
            None => false,
            // torch's SequentialLR.step takes no argument at all
            Some(SEQUENTIAL) => plain && sequential_step(sched)?,
            Some(r) => step_one(sched, r)?.is_some(),
        };
        if done {
            return Ok(py.None().into_bound(py));
        }
    }
    let nkw = if kwnames.is_null() { 0 } else { (unsafe { ffi::PyTuple_Size(kwnames) }) as usize };
    // SAFETY: each argument is a valid object the caller holds for the call.
    let arg = |i: usize| unsafe { Borrowed::from_ptr(py, *args.add(i)) };
    let positional = PyTuple::new(py, (0..nargs).map(arg))?;
    let kwargs = PyDict::new(py);
    for k in 0..nkw {
        // SAFETY: `kwnames` is the call's tuple of names, `nkw` long.
        let name = unsafe { Borrowed::from_ptr(py, ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t)) };
        kwargs.set_item(name, arg(nargs + k))?;
    }
    sched.getattr(intern!(py, "_fastcb_torch_step"))?.call(positional, Some(&kwargs))
}

/// `step` as CPython calls a method written in C: no Python frame, no bound-method object.
unsafe extern "C" fn step_trampoline(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a method attached to the interpreter.
    let py = unsafe { Python::assume_attached() };
    let run = std::panic::AssertUnwindSafe(|| {
        // SAFETY: `slf` is the instance the descriptor was called on (type-checked by CPython).
        let sched = unsafe { Borrowed::from_ptr(py, slf) };
        step_method(&sched, args, nargsf as usize & !(1usize << (usize::BITS - 1)), kwnames)
    });
    match std::panic::catch_unwind(run) {
        Ok(Ok(out)) => out.into_ptr(),
        Ok(Err(e)) => {
            e.restore(py);
            std::ptr::null_mut()
        }
        Err(_) => {
            pyo3::panic::PanicException::new_err("fastcb: a compiled scheduler step panicked").restore(py);
            std::ptr::null_mut()
        }
    }
}

/// A method definition CPython reads and never writes, shared by every descriptor made from it.
struct MethodDef(ffi::PyMethodDef);
// SAFETY: never mutated after being made; CPython only reads it, attached to the interpreter.
unsafe impl Sync for MethodDef {}

static STEP_DEF: MethodDef = MethodDef(ffi::PyMethodDef {
    ml_name: c"step".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunctionFastWithKeywords: step_trampoline },
    ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
    ml_doc: c"step($self, /, epoch=None)\n--\n\ntorch's `step()`; a regular step runs compiled.".as_ptr(),
});

/// `torch_step_method(cls)`: the compiled `step` method for `cls` (a descriptor of a method
/// written in C, bound like a function, for instances of `cls`). A regular `step()` runs the
/// rule the instance's class names (`_fastcb_rule`); anything else calls the instance's
/// `_fastcb_torch_step` with the same arguments.
#[pyfunction]
fn torch_step_method<'py>(cls: &Bound<'py, PyType>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    // SAFETY: `STEP_DEF` lives for the whole process; `cls` is a type. A new reference, or NULL
    // with an exception set.
    unsafe {
        let def = std::ptr::addr_of!(STEP_DEF.0).cast_mut();
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_ptr().cast(), def))
    }
}

/// `torch_get_lr(scheduler, rule)`: what torch's `get_lr()` returns at the scheduler's
/// `last_epoch` (setting the momenta, as torch's does), or `None` where torch's must run.
#[pyfunction]
#[pyo3(signature = (scheduler, rule))]
fn torch_get_lr<'py>(
    scheduler: &Bound<'py, PyAny>,
    rule: Option<&Bound<'py, PyString>>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let py = scheduler.py();
    let Some(rule) = rule else { return Ok(None) };
    let Some(r) = rule_index(rule.to_str()?) else { return Ok(None) };
    let rule = &RULES[r];
    let Some(d) = instance_dict(scheduler) else { return Ok(None) };
    let Some(last) = d.get_item(intern!(py, "last_epoch"))? else { return Ok(None) };
    let Ok(Int(epoch)) = last.extract::<Int>() else { return Ok(None) };
    // torch's get_lr gives new tensors for tensor groups: its own code makes them.
    let mut nums = Numbers::new();
    let Some(g) = read_groups(&d, false, rule.base, true, &mut nums)? else { return Ok(None) };
    let attrs = SchedAttrs::new(&d, nums.held.refs.as_slice());
    let Some(done) =
        (rule.apply)(&attrs, epoch, false, nums.lrs.as_mut_slice(), nums.base.as_slice(), &mut nums.momenta)
    else {
        return Ok(None);
    };
    if let Some(key) = done.momenta {
        if !momenta_writable(&g.groups, key)? {
            return Ok(None);
        }
        for (i, m) in nums.momenta.as_slice().iter().enumerate() {
            set_momentum(&nums.held.group(py, i), key, *m)?;
        }
    }
    count(&GET_LRS, r);
    Ok(Some(PyList::new(py, nums.lrs.as_slice().iter().map(|v| v.x))?))
}

/// `{rule: (steps, get_lr calls, steps with tensor learning rates)}` run compiled so far
/// in this process (the first count is of steps with float learning rates only).
#[pyfunction]
fn torch_compiled_counts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    let names = RULES.iter().map(|r| r.name).chain(["sequential"]);
    for (i, name) in names.enumerate() {
        let load = |c: &[AtomicU64; COUNTED]| c[i].load(Ordering::Relaxed);
        out.set_item(name, (load(&STEPS), load(&GET_LRS), load(&TENSOR_STEPS)))?;
    }
    Ok(out)
}

/// Adds the compiled steps to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(torch_get_lr, m)?)?;
    m.add_function(wrap_pyfunction!(torch_step_method, m)?)?;
    m.add_function(wrap_pyfunction!(torch_compiled_counts, m)?)?;
    m.add_function(wrap_pyfunction!(torch_register_class, m)?)?;
    Ok(())
}

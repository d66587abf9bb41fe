//! The compiled steps of the drop-in torch schedulers (`fastcb.lr_scheduler`).
//!
//! Stateless functions of the scheduler object: nothing is cached between steps and nothing
//! is stored on the scheduler. Each step reads the rule's parameters by name from the
//! scheduler's `__dict__` (a named-field spec per rule, below) and the optimizer's param
//! groups, computes in Rust, and writes exactly what torch's own step writes. So an in-place
//! edit (`gamma`, `T_max`, `base_lrs[i]`, a group's `max_lr`) is honoured at the next step,
//! and a scheduler holds no reference to itself. A tensor learning rate is written with its
//! `fill_` (its value known as `tensor_lr` describes). Anything a spec can't read (a tensor
//! parameter, a float where torch needs an int, a Python lambda) answers `False`/`None`: torch's code
//! path then runs, unchanged.
//!
//! Adding a scheduler: its formula in `core::torch_sched`, its spec here (a named-field struct
//! of torch's attribute names implementing [`Spec`]), one entry in [`RULES`], and the Python
//! class naming the rule.

use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyList, PyString, PyTuple};

use super::exact::{Int, Num};
use super::hf_factor::lambda_factor;
use super::tensor_lr::{tensor_lr, TensorLr};
use crate::core::torch_sched::{
    Constant, Cosine, Cyclic, CyclicMode, Exponential, Kind, Linear, MultiStep, Polynomial, ShapeAt, Step, TorchRule,
    Val, WarmRestarts,
};
use crate::core::Anneal;

/// A compiled class's rule applied at `epoch`: the learning rates into `g.lrs` (on entry
/// the current ones) and what else it sets, read from the scheduler's `__dict__` `d`;
/// `None` where torch's own code must run. `advance`: a step, not `get_lr`.
type Apply = fn(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, epoch: i64, advance: bool) -> PyResult<Option<Extra>>;

/// One compiled class, as its Python class names it (`rule="..."`).
struct Rule {
    name: &'static str,
    /// Whether the formula reads `base_lrs` (torch's reads it only then).
    base: bool,
    /// Whether it reads the current learning rates (a chainable form); a closed form only
    /// writes them, so a tensor's value is not needed.
    current: bool,
    apply: Apply,
}

/// The registry: every compiled class, once. A rule whose parameters are plain attributes
/// is `simple::<ItsSpec>`; the others read what torch's code reads, in a function below.
const RULES: [Rule; 11] = [
    Rule { name: "lambda", base: true, current: false, apply: lambda },
    Rule { name: "step", base: false, current: true, apply: simple::<StepSpec> },
    Rule { name: "multistep", base: false, current: true, apply: multistep },
    Rule { name: "constant", base: false, current: true, apply: simple::<ConstantSpec> },
    Rule { name: "linear", base: false, current: true, apply: simple::<LinearSpec> },
    Rule { name: "exponential", base: false, current: true, apply: simple::<ExponentialSpec> },
    Rule { name: "polynomial", base: false, current: true, apply: simple::<PolynomialSpec> },
    Rule { name: "cosine", base: true, current: true, apply: simple::<CosineSpec> },
    Rule { name: "warmrestarts", base: true, current: false, apply: warm_restarts },
    Rule { name: "cyclic", base: true, current: false, apply: cyclic },
    Rule { name: "onecycle", base: false, current: false, apply: one_cycle },
];

/// Counters are kept per rule, and for SequentialLR after them.
const SEQUENTIAL: usize = RULES.len();
const COUNTED: usize = RULES.len() + 1;

/// The index of rule `name` in [`RULES`].
fn rule_index(name: &str) -> Option<usize> {
    RULES.iter().position(|r| r.name == name)
}

/// How many regular steps (and `get_lr` calls) each rule ran compiled: tests assert that no
/// class silently fell back to torch's path.
static STEPS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];
static GET_LRS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];
/// The regular steps run compiled with a tensor learning rate in some group.
static TENSOR_STEPS: [AtomicU64; COUNTED] = [const { AtomicU64::new(0) }; COUNTED];

fn count(counter: &[AtomicU64; COUNTED], i: usize) {
    counter[i].fetch_add(1, Ordering::Relaxed);
}

/// Borrowed access to the param groups on the hot path of a step. An owned handle costs
/// a reference-count call into the interpreter to make and another to drop (abi3).
mod borrowed {
    use pyo3::ffi;
    use pyo3::prelude::*;
    use pyo3::types::PyList;

    /// `list[i]`, borrowed from `list`; an `IndexError` past the end.
    #[inline]
    pub fn item<'a, 'py>(list: &'a Bound<'py, PyList>, i: usize) -> PyResult<Borrowed<'a, 'py, PyAny>> {
        // SAFETY: attached to the interpreter; `PyList_GetItem` returns a borrowed reference
        // (or NULL with an exception set), valid while `list` holds it: nothing runs
        // Python code between this call and the caller's use of the item.
        unsafe { Borrowed::from_ptr_or_err(list.py(), ffi::PyList_GetItem(list.as_ptr(), i as ffi::Py_ssize_t)) }
    }
}

// ---------------------------------------------------------------------------------------
// The named-field specs: what each rule reads from the scheduler's `__dict__`, by torch's
// attribute names.

/// A spec that is all its rule needs: read from the `__dict__`, it gives the core rule.
trait Spec: for<'a, 'py> FromPyObject<'a, 'py> {
    type Rule: TorchRule;
    fn rule(self) -> Self::Rule;
}

/// A rule read from its spec alone, then applied: `None` from either defers to torch.
fn simple<S: Spec>(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, epoch: i64, _advance: bool) -> PyResult<Option<Extra>> {
    let Ok(spec) = d.as_any().extract::<S>() else { return Ok(None) };
    Ok(spec.rule().lrs(epoch, &mut g.lrs, &g.base).map(|()| Extra::default()))
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct StepSpec {
    step_size: Int,
    gamma: Num,
}

impl Spec for StepSpec {
    type Rule = Step;
    fn rule(self) -> Step {
        Step { step_size: self.step_size.0, gamma: self.gamma.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct MultiStepSpec<'py> {
    /// A `Counter` of the milestones.
    milestones: Bound<'py, PyDict>,
    gamma: Num,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ConstantSpec {
    factor: Num,
    total_iters: Int,
}

impl Spec for ConstantSpec {
    type Rule = Constant;
    fn rule(self) -> Constant {
        Constant { factor: self.factor.0, total_iters: self.total_iters.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct LinearSpec {
    start_factor: Num,
    end_factor: Num,
    total_iters: Int,
}

impl Spec for LinearSpec {
    type Rule = Linear;
    fn rule(self) -> Linear {
        Linear { start: self.start_factor.0, end: self.end_factor.0, total_iters: self.total_iters.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ExponentialSpec {
    gamma: Num,
}

impl Spec for ExponentialSpec {
    type Rule = Exponential;
    fn rule(self) -> Exponential {
        Exponential { gamma: self.gamma.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct PolynomialSpec {
    total_iters: Int,
    power: Num,
}

impl Spec for PolynomialSpec {
    type Rule = Polynomial;
    fn rule(self) -> Polynomial {
        Polynomial { total_iters: self.total_iters.0, power: self.power.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CosineSpec {
    #[pyo3(item("T_max"))]
    t_max: Int,
    eta_min: Num,
}

impl Spec for CosineSpec {
    type Rule = Cosine;
    fn rule(self) -> Cosine {
        Cosine { t_max: self.t_max.0, eta_min: self.eta_min.0 }
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct WarmRestartsSpec {
    #[pyo3(item("T_mult"))]
    t_mult: Int,
    eta_min: Num,
    #[pyo3(item("T_cur"))]
    t_cur: Int,
    #[pyo3(item("T_i"))]
    t_i: Int,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CyclicSpec<'py> {
    total_size: Num,
    step_ratio: Num,
    scale_mode: Bound<'py, PyString>,
    #[pyo3(item("_scale_fn_custom"))]
    scale_fn_custom: Bound<'py, PyAny>,
    #[pyo3(item("_scale_fn_ref"))]
    scale_fn_ref: Bound<'py, PyAny>,
    max_lrs: Vec<Num>,
    cycle_momentum: bool,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct MomentaSpec {
    base_momentums: Vec<Num>,
    max_momentums: Vec<Num>,
    use_beta1: bool,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct OneCycleSpec<'py> {
    total_steps: Int,
    #[pyo3(item("_schedule_phases"))]
    phases: Bound<'py, PyList>,
    #[pyo3(item("_anneal_func_type"))]
    anneal: Bound<'py, PyString>,
    cycle_momentum: bool,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct PhaseSpec<'py> {
    end_step: Num,
    start_lr: Bound<'py, PyString>,
    end_lr: Bound<'py, PyString>,
    start_momentum: Bound<'py, PyString>,
    end_momentum: Bound<'py, PyString>,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct SequentialSpec<'py> {
    last_epoch: Int,
    #[pyo3(item("_milestones"))]
    milestones: Vec<Int>,
    #[pyo3(item("_schedulers"))]
    schedulers: Bound<'py, PyList>,
}

// ---------------------------------------------------------------------------------------

/// Where a rule's momentum goes in a param group.
#[derive(Clone, Copy, PartialEq)]
enum MomentumKey {
    Momentum,
    Beta1,
}

impl MomentumKey {
    fn new(use_beta1: bool) -> Self {
        if use_beta1 {
            MomentumKey::Beta1
        } else {
            MomentumKey::Momentum
        }
    }
}

/// What one step reads: the param groups, their base and current learning rates, and
/// the groups whose learning rate is a tensor.
struct Groups<'py> {
    groups: Bound<'py, PyList>,
    base: Vec<Val>,
    lrs: Vec<Val>,
    /// `(group, its tensor)` for the groups whose learning rate is a tensor (none
    /// allocated for float groups only).
    tensors: Vec<(usize, TensorLr<'py>)>,
}

impl Groups<'_> {
    fn has_tensors(&self) -> bool {
        !self.tensors.is_empty()
    }

    fn tensor(&self, group: usize) -> Option<&TensorLr<'_>> {
        self.tensors.iter().find(|(i, _)| *i == group).map(|(_, t)| t)
    }
}

/// What a rule computes beside the learning rates (now in `Groups::lrs`).
#[derive(Default)]
struct Extra {
    momenta: Option<(MomentumKey, Vec<f64>)>,
    /// CosineAnnealingWarmRestarts' `(T_cur, T_i)` after the step.
    restart: Option<(i64, i64)>,
}

/// The scheduler's `__dict__`.
fn instance_dict<'py>(sched: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    let py = sched.py();
    // SAFETY: attached to the interpreter; a new reference to the instance's dict, or NULL
    // with an exception set (no instance dict), which `from_owned_ptr_or_err` takes.
    let d =
        unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyObject_GenericGetDict(sched.as_ptr(), std::ptr::null_mut())) };
    d.ok()?.cast_into::<PyDict>().ok()
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
fn read_base(d: &Bound<'_, PyDict>, groups: &Bound<'_, PyList>, tensors: bool) -> PyResult<Option<Vec<Val>>> {
    let Some(base_list) = d.get_item(intern!(d.py(), "base_lrs"))? else { return Ok(None) };
    let Ok(base_list) = base_list.cast_into::<PyList>() else { return Ok(None) };
    if base_list.len() != groups.len() {
        return Ok(None);
    }
    let mut base = Vec::with_capacity(groups.len());
    for i in 0..base_list.len() {
        let b = borrowed::item(&base_list, i)?;
        if let Ok(b) = b.extract::<Num>() {
            base.push(Val::float(b.0));
        } else if !tensors {
            return Ok(None);
        } else {
            let Some((b, _)) = read_val(b)? else { return Ok(None) };
            base.push(b);
        }
    }
    Ok(Some(base))
}

/// The param groups with plain-float (or, `tensors`, tensor) learning rates, and when
/// `base`, a base learning rate each. Without `current`, a tensor's value is not looked up
/// (`lrs[g]` is then 0 of the tensor's kind).
fn read_groups<'py>(d: &Bound<'py, PyDict>, tensors: bool, base: bool, current: bool) -> PyResult<Option<Groups<'py>>> {
    let py = d.py();
    let Some(opt) = d.get_item(intern!(py, "optimizer"))? else { return Ok(None) };
    let Ok(groups) = opt.getattr(intern!(py, "param_groups")) else { return Ok(None) };
    let Ok(groups) = groups.cast_into::<PyList>() else { return Ok(None) };
    let base = if base { read_base(d, &groups, tensors)? } else { Some(Vec::new()) };
    let Some(base) = base else { return Ok(None) };
    let lr_key = intern!(py, "lr");
    let mut lrs = Vec::with_capacity(groups.len());
    let mut held = Vec::new();
    for i in 0..groups.len() {
        let Ok(group) = borrowed::item(&groups, i)?.cast::<PyDict>() else { return Ok(None) };
        let Some(lr) = group.get_item(lr_key)? else { return Ok(None) };
        // Exactly a float: replacing it runs no Python code (no `__del__`).
        if let Ok(lr) = lr.cast_exact::<PyFloat>() {
            lrs.push(Val::float(lr.value()));
            continue;
        }
        if !tensors {
            return Ok(None);
        }
        let Some(t) = tensor_lr(&lr)? else { return Ok(None) };
        if current {
            let Some(v) = t.value()? else { return Ok(None) };
            lrs.push(v);
        } else {
            lrs.push(Val { x: 0.0, kind: t.kind });
        }
        held.push((i, t));
    }
    Ok(Some(Groups { groups, base, lrs, tensors: held }))
}

/// A float-valued key of a param group.
fn group_num(group: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> Option<f64> {
    group.get_item(key).ok()??.extract::<Num>().ok().map(|n| n.0)
}

static CYCLIC_FNS: PyOnceLock<[Py<PyAny>; 3]> = PyOnceLock::new();

/// CyclicLR's scaling policy, from the function torch's `_init_scale_fn` stored.
fn cyclic_mode(spec: &CyclicSpec<'_>) -> PyResult<Option<CyclicMode>> {
    let py = spec.scale_fn_ref.py();
    if !spec.scale_fn_custom.is_none() {
        return Ok(None);
    }
    let fns = CYCLIC_FNS.get_or_try_init(py, || -> PyResult<_> {
        let cls = py.import("torch.optim.lr_scheduler")?.getattr("CyclicLR")?;
        let get = |name: &str| cls.getattr(name).map(Bound::unbind);
        Ok([get("_triangular_scale_fn")?, get("_triangular2_scale_fn")?, get("_exp_range_scale_fn")?])
    })?;
    let f = &spec.scale_fn_ref;
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

/// MultiStepLR: torch's `lr * gamma ** milestones[last_epoch]` (a `Counter`) at a milestone.
fn multistep(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, epoch: i64, _advance: bool) -> PyResult<Option<Extra>> {
    let Ok(s) = d.as_any().extract::<MultiStepSpec<'_>>() else { return Ok(None) };
    let hits = match s.milestones.get_item(epoch)? {
        None => 0,
        Some(n) => match n.extract::<Int>() {
            Ok(n) => n.0,
            Err(_) => return Ok(None),
        },
    };
    Ok(MultiStep { hits, gamma: s.gamma.0 }.lrs(epoch, &mut g.lrs, &g.base).map(|()| Extra::default()))
}

/// LambdaLR over transformers' factors (`lr_lambdas`, read by `hf_factor`), one per group.
fn lambda(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, epoch: i64, _advance: bool) -> PyResult<Option<Extra>> {
    let Some(lambdas) = d.get_item(intern!(d.py(), "lr_lambdas"))? else { return Ok(None) };
    let Ok(lambdas) = lambdas.cast_into::<PyList>() else { return Ok(None) };
    if lambdas.len() != g.lrs.len() {
        return Ok(None);
    }
    let mut last: Option<(*mut pyo3::ffi::PyObject, f64)> = None;
    for i in 0..lambdas.len() {
        let f = lambdas.get_item(i)?;
        let value = match last {
            Some((ptr, v)) if ptr == f.as_ptr() => v,
            _ => {
                let Some(factor) = lambda_factor(&f)? else { return Ok(None) };
                let Ok(v) = factor.value(epoch) else { return Ok(None) };
                v
            }
        };
        last = Some((f.as_ptr(), value));
        g.lrs[i] = g.base[i] * value;
    }
    Ok(all_finite_vals(&g.lrs).then(Extra::default))
}

/// CosineAnnealingWarmRestarts: its position `(T_cur, T_i)` moves at a step.
fn warm_restarts(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, _epoch: i64, advance: bool) -> PyResult<Option<Extra>> {
    let Ok(s) = d.as_any().extract::<WarmRestartsSpec>() else { return Ok(None) };
    let w = WarmRestarts { t_mult: s.t_mult.0, eta_min: s.eta_min.0 };
    let (t_cur, t_i) = if advance {
        let Some(next) = w.advance(s.t_cur.0, s.t_i.0) else { return Ok(None) };
        next
    } else {
        (s.t_cur.0, s.t_i.0)
    };
    if t_i == 0 || w.lrs(&g.base, t_cur, t_i, &mut g.lrs).is_none() {
        return Ok(None);
    }
    Ok(Some(Extra { restart: Some((t_cur, t_i)), ..Extra::default() }))
}

/// CyclicLR with a built-in scaling policy, and its momentum cycle.
fn cyclic(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, epoch: i64, _advance: bool) -> PyResult<Option<Extra>> {
    let dict = d.as_any();
    let Ok(s) = dict.extract::<CyclicSpec<'_>>() else { return Ok(None) };
    let Some(mode) = cyclic_mode(&s)? else { return Ok(None) };
    let by_cycle = match s.scale_mode.to_str()? {
        "cycle" => true,
        "iterations" => false,
        _ => return Ok(None),
    };
    let mut momentums = None;
    let mut key = MomentumKey::Momentum;
    if s.cycle_momentum {
        let Ok(m) = dict.extract::<MomentaSpec>() else { return Ok(None) };
        key = MomentumKey::new(m.use_beta1);
        momentums = Some(m.base_momentums.iter().zip(&m.max_momentums).map(|(b, x)| (b.0, x.0)).collect());
    }
    let rule = Cyclic {
        total_size: s.total_size.0,
        step_ratio: s.step_ratio.0,
        mode,
        by_cycle,
        max_lrs: s.max_lrs.iter().map(|m| m.0).collect(),
        momentums,
    };
    if rule.lrs(epoch, &mut g.lrs, &g.base).is_none() {
        return Ok(None);
    }
    let mut extra = Extra::default();
    if s.cycle_momentum {
        let mut moms = vec![0.0; g.lrs.len()];
        if rule.momenta(epoch, &mut moms).is_none() {
            return Ok(None);
        }
        extra.momenta = Some((key, moms));
    }
    Ok(Some(extra))
}

fn all_finite(values: &[f64]) -> bool {
    values.iter().all(|v| v.is_finite())
}

fn all_finite_vals(values: &[Val]) -> bool {
    values.iter().all(|v| v.x.is_finite())
}

/// OneCycleLR: the phase of `step` from `_schedule_phases`, then every group's values from
/// the keys the phase names (`initial_lr`, `max_lr`, `min_lr`, momenta), read at this step.
fn one_cycle(d: &Bound<'_, PyDict>, g: &mut Groups<'_>, step: i64, _advance: bool) -> PyResult<Option<Extra>> {
    let py = d.py();
    let Ok(s) = d.as_any().extract::<OneCycleSpec<'_>>() else { return Ok(None) };
    if step > s.total_steps.0 {
        return Ok(None);
    }
    let shape = match s.anneal.to_str()? {
        "cos" => Anneal::Cos,
        "linear" => Anneal::Linear,
        _ => return Ok(None),
    };
    let n = s.phases.len();
    let mut start = 0.0;
    let mut found = None;
    for i in 0..n {
        let Ok(phase) = s.phases.get_item(i)?.extract::<PhaseSpec<'_>>() else { return Ok(None) };
        let end = phase.end_step.0;
        if step as f64 <= end || i == n - 1 {
            found = Some((phase, start, end));
            break;
        }
        start = end;
    }
    let Some((phase, start, end)) = found else { return Ok(None) };
    if end - start == 0.0 {
        return Ok(None);
    }
    let at = ShapeAt::new(shape, (step as f64 - start) / (end - start));
    let mut extra = Extra::default();
    let mut moms = Vec::new();
    if s.cycle_momentum {
        let Some(beta1) = d.get_item(intern!(py, "use_beta1"))? else { return Ok(None) };
        let Ok(beta1) = beta1.extract::<bool>() else { return Ok(None) };
        extra.momenta = Some((MomentumKey::new(beta1), Vec::new()));
    }
    for i in 0..g.lrs.len() {
        let Ok(group) = g.groups.get_item(i)?.cast_into::<PyDict>() else { return Ok(None) };
        let (Some(a), Some(b)) = (group_num(&group, &phase.start_lr), group_num(&group, &phase.end_lr)) else {
            return Ok(None);
        };
        g.lrs[i] = Val::float(at.value(a, b));
        if s.cycle_momentum {
            let (Some(a), Some(b)) = (group_num(&group, &phase.start_momentum), group_num(&group, &phase.end_momentum))
            else {
                return Ok(None);
            };
            moms.push(at.value(a, b));
        }
    }
    if !all_finite_vals(&g.lrs) || !all_finite(&moms) {
        return Ok(None);
    }
    if let Some((_, m)) = &mut extra.momenta {
        *m = moms;
    }
    Ok(Some(extra))
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
    let mut items = vec![m];
    if let Some(old) = group.get_item(betas_key)? {
        items.extend(old.try_iter()?.skip(1).collect::<PyResult<Vec<_>>>()?);
    }
    group.set_item(betas_key, PyTuple::new(py, items)?)
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

/// One regular step of `sched` by `rule`, all in Rust: whether a group's learning rate is a
/// tensor, or `None` (changing nothing) where torch's own step must run.
fn step_one(sched: &Bound<'_, PyAny>, r: usize) -> PyResult<Option<bool>> {
    let rule = &RULES[r];
    let py = sched.py();
    let Some(d) = instance_dict(sched) else { return Ok(None) };
    let Some(last) = d.get_item(intern!(py, "last_epoch"))? else { return Ok(None) };
    let Ok(Int(last)) = last.extract::<Int>() else { return Ok(None) };
    let restarts = rule.name == "warmrestarts";
    let mut step_count = 0;
    if restarts {
        if last < 0 {
            return Ok(None);
        }
    } else {
        // The first steps run torch's: it warns about the call order there.
        let Some(n) = d.get_item(intern!(py, "_step_count"))? else { return Ok(None) };
        match n.extract::<Int>() {
            Ok(Int(n)) if n >= 2 => step_count = n,
            _ => return Ok(None),
        }
    }
    let Some(epoch) = last.checked_add(1) else { return Ok(None) };
    let Some(mut g) = read_groups(&d, true, rule.base, rule.current)? else { return Ok(None) };
    let Some(extra) = (rule.apply)(&d, &mut g, epoch, true)? else { return Ok(None) };
    if let Some((key, _)) = &extra.momenta {
        if !momenta_writable(&g.groups, *key)? {
            return Ok(None);
        }
    }
    // A float group given a tensor's value: torch would put a tensor in the group.
    if g.lrs.iter().enumerate().any(|(i, v)| v.kind != Kind::Float && g.tensor(i).is_none()) {
        return Ok(None);
    }
    // Everything is read and computed: now write what torch's step writes: a float group's
    // new float (the same object in `_last_lr`), a tensor's `fill_` (and a copy in `_last_lr`).
    let last_lr = PyList::new(py, g.lrs.iter().map(|v| v.x))?;
    let lr_key = intern!(py, "lr");
    for i in 0..g.lrs.len() {
        let group = g.groups.get_item(i)?.cast_into::<PyDict>()?;
        match g.tensor(i) {
            None => group.set_item(lr_key, borrowed::item(&last_lr, i)?)?,
            Some(t) => t.fill(g.lrs[i].x)?,
        }
        if let Some((key, moms)) = &extra.momenta {
            set_momentum(&group, *key, moms[i])?;
        }
    }
    for (i, t) in &g.tensors {
        last_lr.set_item(*i, t.clone_tensor()?)?;
    }
    let tensors = g.has_tensors();
    d.set_item(intern!(py, "last_epoch"), epoch)?;
    match extra.restart {
        Some((t_cur, t_i)) => {
            d.set_item(intern!(py, "T_cur"), t_cur)?;
            d.set_item(intern!(py, "T_i"), t_i)?;
        }
        None => d.set_item(intern!(py, "_step_count"), step_count + 1)?,
    }
    d.set_item(intern!(py, "_last_lr"), last_lr)?;
    count(if tensors { &TENSOR_STEPS } else { &STEPS }, r);
    Ok(Some(tensors))
}

/// SequentialLR between milestones: the current scheduler's compiled step.
fn sequential_step(sched: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = sched.py();
    let Some(d) = instance_dict(sched) else { return Ok(false) };
    let Ok(s) = d.as_any().extract::<SequentialSpec<'_>>() else { return Ok(false) };
    let Some(epoch) = s.last_epoch.0.checked_add(1) else { return Ok(false) };
    let idx = s.milestones.partition_point(|m| m.0 <= epoch);
    if (idx > 0 && s.milestones[idx - 1].0 == epoch) || idx >= s.schedulers.len() {
        return Ok(false);
    }
    let child = s.schedulers.get_item(idx)?;
    let Ok(rule) = child.getattr(intern!(py, "_fastcb_rule")) else { return Ok(false) };
    let Ok(rule) = rule.cast_into::<PyString>() else { return Ok(false) };
    let Some(r) = rule_index(rule.to_str()?) else { return Ok(false) };
    let Some(tensors) = step_one(&child, r)? else { return Ok(false) };
    let Some(child_dict) = instance_dict(&child) else { return Ok(false) };
    d.set_item(intern!(py, "last_epoch"), epoch)?;
    if let Some(last_lr) = child_dict.get_item(intern!(py, "_last_lr"))? {
        d.set_item(intern!(py, "_last_lr"), last_lr)?;
    }
    count(if tensors { &TENSOR_STEPS } else { &STEPS }, SEQUENTIAL);
    Ok(true)
}

/// `torch_step(scheduler, rule)`: one regular step of the scheduler, in Rust. `False`
/// (changing nothing) where torch's own step must run: `rule` is `None`, the first steps,
/// tensor learning rates it cannot know ([`tensor_lr`]), parameters that are not plain
/// numbers, torch's errors.
#[pyfunction]
#[pyo3(signature = (scheduler, rule))]
fn torch_step(scheduler: &Bound<'_, PyAny>, rule: Option<&Bound<'_, PyString>>) -> PyResult<bool> {
    let Some(rule) = rule else { return Ok(false) };
    let rule = rule.to_str()?;
    if rule == "sequential" {
        return sequential_step(scheduler);
    }
    let Some(r) = rule_index(rule) else { return Ok(false) };
    Ok(step_one(scheduler, r)?.is_some())
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
    let Some(mut g) = read_groups(&d, false, rule.base, true)? else { return Ok(None) };
    if rule.name == "cosine" && epoch > 0 {
        // torch's CosineAnnealingLR uses its closed form while `_step_count` is 1 (a resumed
        // first step; and always under Ignite's wrapper, which never calls `step`).
        let Some(n) = d.get_item(intern!(py, "_step_count"))? else { return Ok(None) };
        let Ok(Int(n)) = n.extract::<Int>() else { return Ok(None) };
        if n == 1 {
            let Ok(s) = d.as_any().extract::<CosineSpec>() else { return Ok(None) };
            let (t_max, eta_min) = (s.t_max.0 as f64, s.eta_min.0);
            let wave = 1.0 + (epoch as f64 * std::f64::consts::PI / t_max).cos();
            for (lr, &b) in g.lrs.iter_mut().zip(&g.base) {
                *lr = eta_min + (b - eta_min) * wave / 2.0;
            }
            if !all_finite_vals(&g.lrs) {
                return Ok(None);
            }
            count(&GET_LRS, r);
            return Ok(Some(PyList::new(py, g.lrs.iter().map(|v| v.x))?));
        }
    }
    let Some(extra) = (rule.apply)(&d, &mut g, epoch, false)? else { return Ok(None) };
    if let Some((key, moms)) = &extra.momenta {
        if !momenta_writable(&g.groups, *key)? {
            return Ok(None);
        }
        for (i, m) in moms.iter().enumerate() {
            set_momentum(&g.groups.get_item(i)?.cast_into::<PyDict>()?, *key, *m)?;
        }
    }
    count(&GET_LRS, r);
    Ok(Some(PyList::new(py, g.lrs.iter().map(|v| v.x))?))
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
    m.add_function(wrap_pyfunction!(torch_step, m)?)?;
    m.add_function(wrap_pyfunction!(torch_get_lr, m)?)?;
    m.add_function(wrap_pyfunction!(torch_compiled_counts, m)?)?;
    Ok(())
}

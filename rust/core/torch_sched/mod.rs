//! The formulas of `torch.optim.lr_scheduler`, in torch's exact order of operations: one
//! file per scheduler class, each a [`TorchRule`], all listed once in [`RULES`].
//!
//! Torch computes many schedules recursively ("chainable"): the next learning rate is the
//! current one times a factor. Mirroring each recurrence operation for operation gives the
//! same floats as torch, step after step, instead of a closed form that drifts from it.
//! Every rule is the regular step of its class (not the constructor's initial step); `None`
//! means "torch would raise here, or the arithmetic leaves the finite floats": the caller
//! then defers to the Python formula, which raises torch's error.
//!
//! A rule reads its parameters by torch's attribute names through [`Attrs`] (the bindings
//! implement it over the scheduler's `__dict__` and its optimizer's param groups), so this
//! module knows torch's names and arithmetic but nothing of Python.
//!
//! Adding a scheduler: a file here with its parameters as a struct implementing
//! [`TorchRule`] (its `read` names the attributes torch's `get_lr` reads), and one entry in
//! [`RULES`].

mod constant;
mod cosine;
mod cyclic;
mod exponential;
mod lambda;
mod linear;
mod multistep;
mod one_cycle;
mod per_group;
mod polynomial;
mod step;
mod value;
mod warm_restarts;

pub use constant::Constant;
pub use cosine::Cosine;
pub use cyclic::{CycleMomentum, Cyclic, CyclicMode};
pub use exponential::Exponential;
pub use lambda::Lambda;
pub use linear::Linear;
pub use multistep::MultiStep;
pub use one_cycle::{OneCycle, ShapeAt};
pub use per_group::{PerGroup, INLINE};
pub use polynomial::Polynomial;
pub use step::Step;
pub use value::{Kind, Val};
pub use warm_restarts::WarmRestarts;

use crate::core::hf_sched::HfFactor;

/// A torch scheduler's attributes (and its optimizer's param groups), read by torch's
/// names. Every method answers `None` where the attribute is missing or not exactly of the
/// type asked (an exact `int`, an exact `float` or `int` for a number, ...): the rule then
/// defers to torch's own code, which reads whatever is there.
pub trait Attrs {
    /// How many param groups the optimizer has.
    fn groups(&self) -> usize;
    /// An `int` attribute.
    fn int(&self, name: &'static str) -> Option<i64>;
    /// A number (`float` or `int`) attribute.
    fn num(&self, name: &'static str) -> Option<f64>;
    /// A `bool` attribute.
    fn flag(&self, name: &'static str) -> Option<bool>;
    /// Whether the attribute is `None`.
    fn is_none(&self, name: &'static str) -> Option<bool>;
    /// A list of numbers, one per param group, into `out`.
    fn nums(&self, name: &'static str, out: &mut PerGroup<f64>) -> Option<()>;
    /// The index in `options` of a `str` attribute's value.
    fn choice(&self, name: &'static str, options: &[&str]) -> Option<usize>;
    /// `attr[key]` of a `Counter` of ints (0 where `key` is absent).
    fn count(&self, name: &'static str, key: i64) -> Option<i64>;
    /// A list of transformers' schedule factors (`functools.partial`s), one per group.
    fn factors(&self, name: &'static str) -> Option<Vec<HfFactor>>;
    /// Which of torch's built-in `CyclicLR` scaling functions the attribute is.
    fn cyclic_scale(&self, name: &'static str) -> Option<CyclicMode>;
    /// The length of a list attribute.
    fn len(&self, name: &'static str) -> Option<usize>;
    /// A number at `key` of the dict `attr[i]`.
    fn item_num(&self, name: &'static str, i: usize, key: &'static str) -> Option<f64>;
    /// Every param group's pair of numbers at the keys that `attr[i][keys.0]` and
    /// `attr[i][keys.1]` hold (torch's OneCycleLR: `(group[phase["start_lr"]],
    /// group[phase["end_lr"]])`), read group by group in that order, into `out`.
    fn groups_at(
        &self,
        name: &'static str,
        i: usize,
        keys: (&'static str, &'static str),
        out: &mut PerGroup<(f64, f64)>,
    ) -> Option<()>;
    /// A number at `key` of param group `g`.
    fn group_num(&self, g: usize, key: &'static str) -> Option<f64>;
}

/// Where a rule's momentum goes in a param group: `group["momentum"] = m`, or
/// `group["betas"] = (m, *group["betas"][1:])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MomentumKey {
    Momentum,
    Beta1,
}

impl MomentumKey {
    /// The key of torch's `use_beta1`.
    pub fn new(use_beta1: bool) -> Self {
        if use_beta1 {
            MomentumKey::Beta1
        } else {
            MomentumKey::Momentum
        }
    }
}

/// One torch scheduler class's regular step (and `get_lr`).
pub trait TorchRule: Sized {
    /// The rule's name: the Python class names it (`rule="..."`), the counters are keyed by it.
    const NAME: &'static str;
    /// Whether the formula reads `base_lrs` (torch's reads it only then).
    const BASE: bool = false;
    /// Whether it reads the current learning rates (a chainable form); a closed form only
    /// writes them, so a tensor's value is not needed.
    const CURRENT: bool = true;
    /// torch's class has its own `step` (no `_step_count`, no ordering warnings), whose
    /// state the rule advances through [`TorchRule::writes`].
    const OWN_STEP: bool = false;
    /// The learning rates stay put for many steps after each change (a step function): a
    /// hint that a copy of a new value is worth remembering for the steps that follow.
    const PIECEWISE: bool = false;

    /// The rule at `epoch`, read from `attrs`; `advance`: for a step (else for `get_lr` at
    /// the current epoch). `None` where torch's own code must run.
    fn read(attrs: &dyn Attrs, epoch: i64, advance: bool) -> Option<Self>;

    /// Every group's learning rate after a regular step to `epoch`, as torch's `get_lr`
    /// computes it: on entry `lrs[g]` is group `g`'s current learning rate, `base[g]` its
    /// base learning rate, each a Python float or a tensor's value ([`Val`]: torch's
    /// tensor arithmetic is followed where one is a tensor); on return `lrs` holds the new
    /// ones. What depends on the epoch alone is computed once for all groups, which changes
    /// no bit: torch evaluates that part first, for each group alike. `None` (with `lrs` in
    /// any state) where torch would raise or a value leaves the finite floats.
    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()>;

    /// Where the momenta go, for the classes that set them.
    fn momentum_key(&self) -> Option<MomentumKey> {
        None
    }

    /// Every group's momentum at `epoch` into `out`, for the classes that set them.
    fn momenta(&self, _epoch: i64, _out: &mut [f64]) -> Option<()> {
        None
    }

    /// The integer attributes a step sets besides `last_epoch` (and `_step_count`).
    fn writes(&self) -> Writes {
        [None; 2]
    }
}

/// The integer attributes a step sets besides `last_epoch` (and `_step_count`): at most two
/// (CosineAnnealingWarmRestarts' `T_cur` and `T_i`), without an allocation.
pub type Writes = [Option<(&'static str, i64)>; 2];

/// What a rule's step computed besides the learning rates (and the momenta).
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Where the momenta go, when the rule set them.
    pub momenta: Option<MomentumKey>,
    pub writes: Writes,
}

/// A rule's step at `epoch` (see [`TorchRule`]): the learning rates into `lrs`, the momenta
/// (for a rule that sets them) into `momenta`, the rest returned.
pub type Apply = fn(
    attrs: &dyn Attrs,
    epoch: i64,
    advance: bool,
    lrs: &mut [Val],
    base: &[Val],
    momenta: &mut PerGroup<f64>,
) -> Option<Outcome>;

fn apply<R: TorchRule>(
    attrs: &dyn Attrs,
    epoch: i64,
    advance: bool,
    lrs: &mut [Val],
    base: &[Val],
    momenta: &mut PerGroup<f64>,
) -> Option<Outcome> {
    let rule = R::read(attrs, epoch, advance)?;
    rule.lrs(epoch, lrs, base)?;
    let key = rule.momentum_key();
    if key.is_some() {
        momenta.resize(lrs.len(), 0.0);
        rule.momenta(epoch, momenta.as_mut_slice())?;
    }
    Some(Outcome { momenta: key, writes: rule.writes() })
}

/// A [`TorchRule`] as a registry entry.
#[derive(Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub base: bool,
    pub current: bool,
    pub own_step: bool,
    pub piecewise: bool,
    pub apply: Apply,
}

impl Rule {
    pub const fn of<R: TorchRule>() -> Rule {
        Rule {
            name: R::NAME,
            base: R::BASE,
            current: R::CURRENT,
            own_step: R::OWN_STEP,
            piecewise: R::PIECEWISE,
            apply: apply::<R>,
        }
    }
}

/// The registry: every compiled torch class, once.
pub const RULES: [Rule; 11] = [
    Rule::of::<Lambda>(),
    Rule::of::<Step>(),
    Rule::of::<MultiStep>(),
    Rule::of::<Constant>(),
    Rule::of::<Linear>(),
    Rule::of::<Exponential>(),
    Rule::of::<Polynomial>(),
    Rule::of::<Cosine>(),
    Rule::of::<WarmRestarts>(),
    Rule::of::<Cyclic>(),
    Rule::of::<OneCycle>(),
];

/// The index of rule `name` in [`RULES`].
pub fn rule_index(name: &str) -> Option<usize> {
    RULES.iter().position(|r| r.name == name)
}

/// Python's integer `%` (floored), `None` for a zero divisor.
#[inline]
pub(crate) fn floor_mod(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

/// Torch's chainable `lr * factor`, for every group.
#[inline]
fn scale(lrs: &mut [Val], factor: f64) {
    for lr in lrs {
        *lr = *lr * factor;
    }
}

/// `Some(())` when every value is finite.
#[inline]
fn all_finite(values: &[Val]) -> Option<()> {
    values.iter().all(|v| v.x.is_finite()).then_some(())
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;
    use crate::core::anneal::Anneal;
    use crate::core::hf_sched::HfFactor;
    use crate::core::schedule::Schedule;
    use std::collections::HashMap;

    /// An attribute value of the test schedulers.
    #[derive(Clone, Debug)]
    enum V {
        Int(i64),
        Num(f64),
        Flag(bool),
        Text(&'static str),
        Records(Vec<HashMap<&'static str, V>>),
    }

    /// A scheduler's attributes and its param groups, as plain maps.
    struct Map {
        attrs: HashMap<&'static str, V>,
        groups: Vec<HashMap<&'static str, f64>>,
    }

    fn choose(v: Option<&V>, options: &[&str]) -> Option<usize> {
        match v? {
            V::Text(t) => options.iter().position(|o| o == t),
            _ => None,
        }
    }

    impl Attrs for Map {
        fn groups(&self) -> usize {
            self.groups.len()
        }
        fn int(&self, name: &'static str) -> Option<i64> {
            match self.attrs.get(name)? {
                V::Int(i) => Some(*i),
                _ => None,
            }
        }
        fn num(&self, name: &'static str) -> Option<f64> {
            match self.attrs.get(name)? {
                V::Int(i) => Some(*i as f64),
                V::Num(x) => Some(*x),
                _ => None,
            }
        }
        fn flag(&self, name: &'static str) -> Option<bool> {
            match self.attrs.get(name)? {
                V::Flag(b) => Some(*b),
                _ => None,
            }
        }
        fn is_none(&self, name: &'static str) -> Option<bool> {
            Some(!self.attrs.contains_key(name))
        }
        fn nums(&self, _name: &'static str, _out: &mut PerGroup<f64>) -> Option<()> {
            None
        }
        fn choice(&self, name: &'static str, options: &[&str]) -> Option<usize> {
            choose(self.attrs.get(name), options)
        }
        fn count(&self, _name: &'static str, _key: i64) -> Option<i64> {
            None
        }
        fn factors(&self, _name: &'static str) -> Option<Vec<HfFactor>> {
            None
        }
        fn cyclic_scale(&self, _name: &'static str) -> Option<CyclicMode> {
            None
        }
        fn len(&self, name: &'static str) -> Option<usize> {
            match self.attrs.get(name)? {
                V::Records(r) => Some(r.len()),
                _ => None,
            }
        }
        fn item_num(&self, name: &'static str, i: usize, key: &'static str) -> Option<f64> {
            match self.attrs.get(name)? {
                V::Records(r) => match r.get(i)?.get(key)? {
                    V::Num(x) => Some(*x),
                    _ => None,
                },
                _ => None,
            }
        }
        fn groups_at(
            &self,
            name: &'static str,
            i: usize,
            keys: (&'static str, &'static str),
            out: &mut PerGroup<(f64, f64)>,
        ) -> Option<()> {
            let V::Records(r) = self.attrs.get(name)? else { return None };
            let (V::Text(a), V::Text(b)) = (r.get(i)?.get(keys.0)?, r.get(i)?.get(keys.1)?) else { return None };
            out.resize(self.groups(), (0.0, 0.0));
            for (g, slot) in out.as_mut_slice().iter_mut().enumerate() {
                *slot = (self.group_num(g, a)?, self.group_num(g, b)?);
            }
            Some(())
        }
        fn group_num(&self, g: usize, key: &'static str) -> Option<f64> {
            self.groups.get(g)?.get(key).copied()
        }
    }

    /// Group 0's learning rate after a step to `epoch` from `lr` (base `base`).
    fn lr(rule: &impl TorchRule, epoch: i64, lr: f64, base: f64) -> Option<f64> {
        let mut lrs = [Val::float(lr)];
        rule.lrs(epoch, &mut lrs, &[Val::float(base)])?;
        Some(lrs[0].x)
    }

    fn momentum(rule: &impl TorchRule, epoch: i64) -> Option<f64> {
        rule.momentum_key()?;
        let mut out = [0.0];
        rule.momenta(epoch, &mut out)?;
        Some(out[0])
    }

    /// Runs a chainable rule from `lr0` over `n` steps (epochs 1..=n).
    fn run(rule: &impl TorchRule, lr0: f64, n: i64) -> Vec<f64> {
        let mut x = lr0;
        (1..=n)
            .map(|e| {
                x = lr(rule, e, x, lr0).unwrap();
                x
            })
            .collect()
    }

    #[test]
    fn step_and_multistep() {
        let lrs = run(&Step { step_size: 3, gamma: 0.5 }, 1.0, 7);
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
        let milestones = [2, 4, 4];
        let mut x = 1.0;
        let lrs: Vec<f64> = (1..=5)
            .map(|e| {
                let hits = milestones.iter().filter(|&&m| m == e).count() as i64;
                x = lr(&MultiStep { hits, gamma: 0.5 }, e, x, 1.0).unwrap();
                x
            })
            .collect();
        assert_eq!(lrs, vec![1.0, 0.5, 0.5, 0.125, 0.125]);
        assert_eq!(lr(&Step { step_size: 0, gamma: 0.5 }, 1, 1.0, 1.0), None);
    }

    #[test]
    fn cosine_follows_the_closed_form_closely() {
        let lrs = run(&Cosine { t_max: 100, eta_min: 0.1, closed: false }, 1.0, 300);
        for (i, lr) in lrs.iter().enumerate() {
            let e = (i + 1) as f64;
            let closed = 0.1 + 0.9 * (1.0 + (PI * e / 100.0).cos()) / 2.0;
            assert!((lr - closed).abs() < 1e-12, "epoch {e}: {lr} vs {closed}");
        }
    }

    fn steps_as_if_alone(rule: &impl TorchRule, one_group: &impl TorchRule) {
        let base = [0.3, 0.1, 0.02].map(Val::float);
        let mut all = base;
        let mut alone = base;
        for e in 1..30 {
            rule.lrs(e, &mut all, &base).unwrap();
            for g in 0..3 {
                alone[g] = Val::float(lr(one_group, e, alone[g].x, base[g].x).unwrap());
            }
            assert_eq!(all, alone, "at {e}");
        }
    }

    #[test]
    fn groups_step_as_if_alone() {
        let factor = HfFactor::Cosine { warmup: 3, total: 20, cycles: 0.5, min_rate: 0.0 };
        let cosine = Cosine { t_max: 7, eta_min: 0.01, closed: false };
        steps_as_if_alone(&cosine, &cosine);
        steps_as_if_alone(&Exponential { gamma: 0.9 }, &Exponential { gamma: 0.9 });
        steps_as_if_alone(&Lambda(vec![factor.clone(); 3]), &Lambda(vec![factor]));
    }

    #[test]
    fn linear_and_polynomial_reach_their_ends() {
        let lrs = run(&Linear { start: 0.25, end: 1.0, total_iters: 4 }, 0.25, 6);
        assert!((lrs[3] - 1.0).abs() < 1e-15 && lrs[5] == lrs[3]);
        let lrs = run(&Polynomial { total_iters: 4, power: 2.0 }, 1.0, 5);
        assert_eq!(lrs[3], 0.0);
        assert!((lrs[1] - 0.25).abs() < 1e-15);
        assert_eq!(run(&Constant { factor: 0.5, total_iters: 2 }, 0.5, 3), vec![0.5, 1.0, 1.0]);
    }

    /// torch's OneCycleLR attributes for `points[g] = (initial_lr, max_lr, min_lr)` and
    /// `moms[g] = (max_momentum, base_momentum)`, as its constructor builds them.
    fn one_cycle_attrs(
        total: i64,
        pct: f64,
        three: bool,
        cos: bool,
        points: &[(f64, f64, f64)],
        moms: &[(f64, f64)],
    ) -> Map {
        let phase = |end: f64, lr: (&'static str, &'static str), mom: (&'static str, &'static str)| {
            let mut p = HashMap::new();
            p.insert("end_step", V::Num(end));
            p.insert("start_lr", V::Text(lr.0));
            p.insert("end_lr", V::Text(lr.1));
            p.insert("start_momentum", V::Text(mom.0));
            p.insert("end_momentum", V::Text(mom.1));
            p
        };
        let t = total as f64;
        let phases = if three {
            vec![
                phase(pct * t - 1.0, ("initial_lr", "max_lr"), ("max_momentum", "base_momentum")),
                phase(2.0 * pct * t - 2.0, ("max_lr", "initial_lr"), ("base_momentum", "max_momentum")),
                phase(t - 1.0, ("initial_lr", "min_lr"), ("max_momentum", "max_momentum")),
            ]
        } else {
            vec![
                phase(pct * t - 1.0, ("initial_lr", "max_lr"), ("max_momentum", "base_momentum")),
                phase(t - 1.0, ("max_lr", "min_lr"), ("base_momentum", "max_momentum")),
            ]
        };
        let groups = points
            .iter()
            .zip(moms)
            .map(|(&(i, x, m), &(mx, mb))| {
                HashMap::from([
                    ("initial_lr", i),
                    ("max_lr", x),
                    ("min_lr", m),
                    ("max_momentum", mx),
                    ("base_momentum", mb),
                ])
            })
            .collect();
        Map {
            attrs: HashMap::from([
                ("total_steps", V::Int(total)),
                ("_anneal_func_type", V::Text(if cos { "cos" } else { "linear" })),
                ("_schedule_phases", V::Records(phases)),
                ("cycle_momentum", V::Flag(true)),
                ("use_beta1", V::Flag(false)),
            ]),
            groups,
        }
    }

    fn one_cycle_at(a: &Map, e: i64) -> Option<(Vec<f64>, Vec<f64>)> {
        let n = a.groups();
        let mut lrs = vec![Val::float(0.0); n];
        let mut moms = PerGroup::new();
        let out = (RULES[rule_index("onecycle")?].apply)(a, e, true, &mut lrs, &[], &mut moms)?;
        let key = out.momenta?;
        assert_eq!(key, MomentumKey::Momentum);
        Some((lrs.iter().map(|v| v.x).collect(), moms.as_slice().to_vec()))
    }

    #[test]
    fn one_cycle_phases_and_end() {
        let a = one_cycle_attrs(100, 0.3, false, true, &[(0.04, 1.0, 4e-6)], &[(0.95, 0.85)]);
        assert!((one_cycle_at(&a, 0).unwrap().0[0] - 0.04).abs() < 1e-16);
        assert_eq!(one_cycle_at(&a, 29), Some((vec![1.0], vec![0.85])));
        assert!((one_cycle_at(&a, 99).unwrap().0[0] - 4e-6).abs() < 1e-18);
        assert!(one_cycle_at(&a, 100).is_some());
        assert_eq!(one_cycle_at(&a, 101), None);
    }

    #[test]
    fn one_cycle_is_its_joined_schedules_bit_for_bit() {
        for (shape, three_phase) in [(Anneal::Cos, false), (Anneal::Cos, true), (Anneal::Linear, true)] {
            let (total, pct) = (137, 0.3);
            let points = [(0.04, 1.0, 4e-6), (0.004, 0.1, 4e-7)];
            let moms = [(0.95, 0.85), (0.9, 0.8)];
            let a = one_cycle_attrs(total, pct, three_phase, shape == Anneal::Cos, &points, &moms);
            let t = total as f64;
            let mut edges = vec![0.0, pct * t - 1.0];
            if three_phase {
                edges.push(2.0 * pct * t - 2.0);
            }
            edges.push(t - 1.0);
            let join = |parts: &[(f64, f64)]| {
                let parts = parts.iter().map(|&(start, end)| Schedule::Anneal { shape, start, end }).collect();
                Schedule::join_unchecked(edges.clone(), parts)
            };
            for g in 0..2 {
                let (init, max, min) = points[g];
                let (mmax, mbase) = moms[g];
                let (lr, mom) = if three_phase {
                    (
                        join(&[(init, max), (max, init), (init, min)]),
                        join(&[(mmax, mbase), (mbase, mmax), (mmax, mmax)]),
                    )
                } else {
                    (join(&[(init, max), (max, min)]), join(&[(mmax, mbase), (mbase, mmax)]))
                };
                for e in 0..=total {
                    let (lrs, ms) = one_cycle_at(&a, e).unwrap();
                    assert_eq!(lrs[g].to_bits(), lr.value(e as f64).to_bits());
                    assert_eq!(ms[g].to_bits(), mom.value(e as f64).to_bits());
                }
            }
        }
    }

    #[test]
    fn shape_at_is_the_annealing_shape_bit_for_bit() {
        for shape in [Anneal::No, Anneal::Linear, Anneal::Cos, Anneal::Exp, Anneal::Poly(2.5)] {
            for k in 0..=200 {
                let pct = k as f64 / 173.0;
                for (start, end) in [(1.0, 1e-4), (0.3, 0.95), (2.5e-3, 7.0)] {
                    let want = shape.value(start, end, pct);
                    assert_eq!(ShapeAt::new(shape, pct).value(start, end).to_bits(), want.to_bits());
                }
            }
        }
    }

    #[test]
    fn cyclic_triangle() {
        let rule = Cyclic {
            total_size: 4.0,
            step_ratio: 0.5,
            mode: CyclicMode::Triangular2,
            by_cycle: true,
            max_lrs: PerGroup::from_slice(&[1.0]),
            momentum: Some(CycleMomentum {
                key: MomentumKey::Momentum,
                base: PerGroup::from_slice(&[0.8]),
                max: PerGroup::from_slice(&[0.9]),
            }),
        };
        assert_eq!(lr(&rule, 2, 0.0, 0.0), Some(1.0));
        assert_eq!(lr(&rule, 6, 0.0, 0.0), Some(0.5));
        assert_eq!(momentum(&rule, 2), Some(0.8));
    }

    #[test]
    fn warm_restarts_advance_and_write_their_position() {
        assert_eq!(WarmRestarts::advance(2, 9, 10), Some((0, 20)));
        assert_eq!(WarmRestarts::advance(2, 3, 10), Some((4, 10)));
        let a = Map {
            attrs: HashMap::from([
                ("T_mult", V::Int(2)),
                ("T_cur", V::Int(9)),
                ("T_i", V::Int(10)),
                ("eta_min", V::Num(0.0)),
            ]),
            groups: vec![HashMap::new(); 2],
        };
        let mut out = [Val::float(0.0); 2];
        let rule = &RULES[rule_index("warmrestarts").unwrap()];
        let done = (rule.apply)(&a, 0, true, &mut out, &[1.0, 0.5].map(Val::float), &mut PerGroup::new()).unwrap();
        assert_eq!(out, [1.0, 0.5].map(Val::float));
        assert_eq!(done.writes, [Some(("T_cur", 0)), Some(("T_i", 20))]);
        // get_lr at the current position moves nothing
        let done = (rule.apply)(&a, 0, false, &mut out, &[1.0, 0.5].map(Val::float), &mut PerGroup::new()).unwrap();
        assert_eq!(done.writes, [Some(("T_cur", 9)), Some(("T_i", 10))]);
    }

    #[test]
    fn rules_read_torch_attribute_names_and_defer_on_anything_else() {
        let attrs =
            |pairs: &[(&'static str, V)]| Map { attrs: pairs.iter().cloned().collect(), groups: vec![HashMap::new()] };
        let step = &RULES[rule_index("step").unwrap()];
        let mut lrs = [Val::float(1.0)];
        let a = attrs(&[("step_size", V::Int(2)), ("gamma", V::Num(0.5))]);
        assert!((step.apply)(&a, 2, true, &mut lrs, &[], &mut PerGroup::new()).is_some());
        assert_eq!(lrs[0].x, 0.5);
        // a float step size (torch would raise on it) or a missing gamma: torch's code runs
        let a = attrs(&[("step_size", V::Num(2.0)), ("gamma", V::Num(0.5))]);
        assert!((step.apply)(&a, 2, true, &mut lrs, &[], &mut PerGroup::new()).is_none());
        assert!(
            (step.apply)(&attrs(&[("step_size", V::Int(2))]), 2, true, &mut lrs, &[], &mut PerGroup::new()).is_none()
        );
        let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), RULES.len(), "one entry per rule");
    }
}

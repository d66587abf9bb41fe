//! OneCycleLR: annealing phases joined over the step number.

use std::f64::consts::PI;

use super::{all_finite, Attrs, MomentumKey, PerGroup, TorchRule, Val};
use crate::core::anneal::Anneal;

/// An annealing shape at one `pct`, shared by every `(start, end)` pair of a step.
///
/// `value(start, end)` equals `shape.value(start, end, pct)` bit for bit; what depends on
/// `pct` only (the cosine of [`Anneal::Cos`], the power of [`Anneal::Poly`]) is computed once,
/// when the shape is placed, instead of once per pair (and no math call is left in `value`
/// for the compiler to hoist out of a loop over the pairs, where it would run whatever the shape).
#[derive(Debug, Clone, Copy)]
pub enum ShapeAt {
    /// `cos(pi * pct) + 1`, the part of the cosine shape that depends on `pct` only.
    Cos(f64),
    /// `pct`.
    Linear(f64),
    /// `(1 - pct) ** degree`.
    Poly(f64),
    Other(Anneal, f64),
}

impl ShapeAt {
    pub fn new(shape: Anneal, pct: f64) -> Self {
        match shape {
            Anneal::Cos => ShapeAt::Cos((PI * pct).cos() + 1.0),
            Anneal::Linear => ShapeAt::Linear(pct),
            Anneal::Poly(degree) => ShapeAt::Poly(pow(1.0 - pct, degree)),
            other => ShapeAt::Other(other, pct),
        }
    }

    /// The shape's value from `start` to `end` at the placed `pct`.
    #[inline]
    pub fn value(self, start: f64, end: f64) -> f64 {
        match self {
            ShapeAt::Cos(c) => end + (start - end) / 2.0 * c,
            ShapeAt::Linear(pct) => start + pct * (end - start),
            ShapeAt::Poly(f) => end + (start - end) * f,
            ShapeAt::Other(shape, pct) => shape.value(start, end, pct),
        }
    }
}

/// `x ** y`, not inlined: the compiler may run an inlined `powf` whatever the branch it is in
/// (a math intrinsic it takes as free of effects), here at every step whatever the shape.
#[inline(never)]
fn pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}

/// OneCycleLR at one step: torch's `_schedule_phases` give the phase of the step and name
/// the param-group keys its `(start, end)` values are read from (`initial_lr`, `max_lr`,
/// `min_lr`, the momenta), read at every step; the annealing shape is placed once for all
/// groups (the phase, its `pct` and the shape's cosine).
#[derive(Debug, Clone)]
pub struct OneCycle {
    pub at: ShapeAt,
    /// Per group, the learning rate's `(start, end)` in the step's phase.
    pub lrs: PerGroup<(f64, f64)>,
    /// Where the momentum goes, when it is cycled, and per group its `(start, end)`.
    pub momentum: Option<MomentumKey>,
    pub momenta: PerGroup<(f64, f64)>,
}

const PHASES: &str = "_schedule_phases";

impl TorchRule for OneCycle {
    const NAME: &'static str = "onecycle";
    const CURRENT: bool = false;

    fn read(a: &dyn Attrs, step: i64, _advance: bool) -> Option<Self> {
        if step > a.int("total_steps")? {
            return None;
        }
        let shape = [Anneal::Cos, Anneal::Linear][a.choice("_anneal_func_type", &["cos", "linear"])?];
        let n = a.len(PHASES)?;
        let mut start = 0.0;
        let mut found = None;
        for i in 0..n {
            let end = a.item_num(PHASES, i, "end_step")?;
            if step as f64 <= end || i == n - 1 {
                found = Some((i, end));
                break;
            }
            start = end;
        }
        let (i, end) = found?;
        if end - start == 0.0 {
            return None;
        }
        let at = ShapeAt::new(shape, (step as f64 - start) / (end - start));
        let (mut lrs, mut momenta) = (PerGroup::new(), PerGroup::new());
        a.groups_at(PHASES, i, ("start_lr", "end_lr"), &mut lrs)?;
        let momentum = if a.flag("cycle_momentum")? {
            a.groups_at(PHASES, i, ("start_momentum", "end_momentum"), &mut momenta)?;
            Some(MomentumKey::new(a.flag("use_beta1")?))
        } else {
            None
        };
        Some(OneCycle { at, lrs, momentum, momenta })
    }

    fn lrs(&self, _step: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if self.lrs.len() != lrs.len() {
            return None;
        }
        for (lr, &(start, end)) in lrs.iter_mut().zip(self.lrs.as_slice()) {
            *lr = Val::float(self.at.value(start, end));
        }
        all_finite(lrs)
    }

    fn momentum_key(&self) -> Option<MomentumKey> {
        self.momentum
    }

    fn momenta(&self, _step: i64, out: &mut [f64]) -> Option<()> {
        self.momentum?;
        if self.momenta.len() != out.len() {
            return None;
        }
        for (m, &(start, end)) in out.iter_mut().zip(self.momenta.as_slice()) {
            *m = self.at.value(start, end);
        }
        out.iter().all(|m| m.is_finite()).then_some(())
    }
}

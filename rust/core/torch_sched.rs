//! The formulas of `torch.optim.lr_scheduler`, in torch's exact order of operations.
//!
//! Torch computes many schedules recursively ("chainable"): the next learning rate is the
//! current one times a factor. Mirroring each recurrence operation for operation gives the
//! same floats as torch, step after step, instead of a closed form that drifts from it.
//! Every function here is the regular step of its class (not the constructor's initial
//! step); `None` means "torch would raise here, or the arithmetic leaves the finite
//! floats": the caller then defers to the Python formula, which raises torch's error.

use std::f64::consts::PI;

use super::anneal::Anneal;
use super::hf_sched::HfFactor;
use super::schedule::Schedule;

/// Python's integer `%` (floored), `None` for a zero divisor.
#[inline]
fn floor_mod(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

/// CyclicLR's built-in scaling policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CyclicMode {
    Triangular,
    Triangular2,
    ExpRange(f64),
}

/// CyclicLR's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Cyclic {
    pub total_size: f64,
    pub step_ratio: f64,
    pub mode: CyclicMode,
    /// torch's `scale_mode == "cycle"`: the scale function takes the cycle, else the epoch.
    pub by_cycle: bool,
    pub max_lrs: Vec<f64>,
    /// `(base_momentum, max_momentum)` per group, when momentum is cycled.
    pub momentums: Option<Vec<(f64, f64)>>,
}

impl Cyclic {
    /// `(scale_factor, scale)` at `epoch`, shared by every group.
    fn factors(&self, epoch: i64) -> (f64, f64) {
        let ratio = epoch as f64 / self.total_size;
        let cycle = (1.0 + ratio).floor();
        let x = 1.0 + ratio - cycle;
        let scale_factor = if x <= self.step_ratio { x / self.step_ratio } else { (x - 1.0) / (self.step_ratio - 1.0) };
        let arg = if self.by_cycle { cycle } else { epoch as f64 };
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(arg - 1.0),
            CyclicMode::ExpRange(gamma) => gamma.powf(arg),
        };
        (scale_factor, scale)
    }
}

/// An annealing shape at one `pct`, shared by every `(start, end)` pair of a step.
///
/// `value(start, end)` equals `shape.value(start, end, pct)` bit for bit; the cosine of
/// [`Anneal::Cos`] is computed once, when the shape is placed, instead of once per pair.
#[derive(Debug, Clone, Copy)]
pub enum ShapeAt {
    /// `cos(pi * pct) + 1`, the part of the cosine shape that depends on `pct` only.
    Cos(f64),
    Other(Anneal, f64),
}

impl ShapeAt {
    pub fn new(shape: Anneal, pct: f64) -> Self {
        match shape {
            Anneal::Cos => ShapeAt::Cos((PI * pct).cos() + 1.0),
            other => ShapeAt::Other(other, pct),
        }
    }

    /// The shape's value from `start` to `end` at the placed `pct`.
    #[inline]
    pub fn value(self, start: f64, end: f64) -> f64 {
        match self {
            ShapeAt::Cos(c) => end + (start - end) / 2.0 * c,
            ShapeAt::Other(shape, pct) => shape.value(start, end, pct),
        }
    }
}

/// OneCycleLR: per group, the learning rate (and momentum) as annealing phases joined at
/// `edges` over the step number: the [`Schedule::Join`] of [`Schedule::Anneal`] parts that
/// torch's phase table describes, evaluated for every group at once (the phase, its
/// `pct` and the shape's cosine are found once per step).
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycle {
    pub total_steps: i64,
    /// Phase `i` covers steps up to `edges[i + 1]` (the last phase everything after).
    pub edges: Vec<f64>,
    pub shape: Anneal,
    /// `lrs[g][i]`: group `g`'s `(start, end)` learning rate in phase `i`.
    pub lrs: Vec<Vec<(f64, f64)>>,
    /// `momentums[g][i]`: the same for the momentum, when it is cycled.
    pub momentums: Option<Vec<Vec<(f64, f64)>>>,
}

impl OneCycle {
    /// The phases of torch's OneCycleLR. `points[g]` is `(initial_lr, max_lr, min_lr)`,
    /// `moms[g]` is `(max_momentum, base_momentum)`.
    pub fn new(
        total_steps: i64,
        pct_start: f64,
        three_phase: bool,
        shape: Anneal,
        points: &[(f64, f64, f64)],
        moms: Option<&[(f64, f64)]>,
    ) -> Self {
        let total = total_steps as f64;
        let mut edges = vec![0.0, pct_start * total - 1.0];
        if three_phase {
            edges.push(2.0 * pct_start * total - 2.0);
        }
        edges.push(total - 1.0);
        let lrs =
            points
                .iter()
                .map(|&(init, max, min)| {
                    if three_phase {
                        vec![(init, max), (max, init), (init, min)]
                    } else {
                        vec![(init, max), (max, min)]
                    }
                })
                .collect();
        let momentums = moms.map(|moms| {
            moms.iter()
                .map(|&(max, base)| {
                    if three_phase {
                        vec![(max, base), (base, max), (max, max)]
                    } else {
                        vec![(max, base), (base, max)]
                    }
                })
                .collect()
        });
        OneCycle { total_steps, edges, shape, lrs, momentums }
    }

    /// From torch's phase table: phase `i` ends at `edges[i + 1]` (`edges[0]` is 0) and
    /// anneals group `g` from `lr_parts[g][i].0` to `lr_parts[g][i].1` (momentum alike).
    /// Every group has one pair per phase (the caller checks).
    pub fn from_phases(
        total_steps: i64,
        edges: Vec<f64>,
        shape: Anneal,
        lr_parts: Vec<Vec<(f64, f64)>>,
        mom_parts: Option<Vec<Vec<(f64, f64)>>>,
    ) -> Self {
        OneCycle { total_steps, edges, shape, lrs: lr_parts, momentums: mom_parts }
    }

    /// The phase of `step` and the shape placed at its `pct`, as [`Schedule::Join`] finds them.
    fn at(&self, step: i64) -> (usize, ShapeAt) {
        let pos = step as f64;
        let last = self.edges.len() - 2;
        let i = (0..last).find(|&i| pos <= self.edges[i + 1]).unwrap_or(last);
        let (lo, hi) = (self.edges[i], self.edges[i + 1]);
        (i, ShapeAt::new(self.shape, (pos - lo) / (hi - lo)))
    }

    /// Group `g`'s schedule as a composable [`Schedule`] (what `lrs` computes, one group at a time).
    pub fn schedule(&self, parts: &[(f64, f64)]) -> Schedule {
        let parts = parts.iter().map(|&(start, end)| Schedule::Anneal { shape: self.shape, start, end }).collect();
        Schedule::join_unchecked(self.edges.clone(), parts)
    }
}

/// CosineAnnealingWarmRestarts' parameters; its position is `(T_cur, T_i)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmRestarts {
    pub t_mult: i64,
    pub eta_min: f64,
}

impl WarmRestarts {
    /// `(T_cur, T_i)` after one regular step.
    pub fn advance(&self, t_cur: i64, t_i: i64) -> Option<(i64, i64)> {
        let t_cur = t_cur + 1;
        if t_cur >= t_i {
            Some((floor_mod(t_cur, t_i)?, t_i.checked_mul(self.t_mult)?))
        } else {
            Some((t_cur, t_i))
        }
    }

    /// Every group's learning rate at `(T_cur, T_i)` into `out`, from the base rates
    /// (the cosine once for all); `None` where one leaves the finite floats.
    pub fn lrs(&self, base: &[f64], t_cur: i64, t_i: i64, out: &mut [f64]) -> Option<()> {
        let wave = 1.0 + (PI * t_cur as f64 / t_i as f64).cos();
        for (lr, &b) in out.iter_mut().zip(base) {
            *lr = self.eta_min + (b - self.eta_min) * wave / 2.0;
        }
        all_finite(out)
    }
}

/// Torch's chainable `lr * factor`, for every group.
#[inline]
fn scale(lrs: &mut [f64], factor: f64) {
    for lr in lrs {
        *lr *= factor;
    }
}

/// `Some(())` when every value is finite.
#[inline]
fn all_finite(values: &[f64]) -> Option<()> {
    values.iter().all(|v| v.is_finite()).then_some(())
}

/// One torch scheduler class, compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// LambdaLR over compiled factors, one per group.
    Lambda(Vec<HfFactor>),
    Step {
        step_size: i64,
        gamma: f64,
    },
    /// `(milestone, gamma ** count)` pairs, sorted.
    MultiStep(Vec<(i64, f64)>),
    Constant {
        factor: f64,
        total_iters: i64,
    },
    Linear {
        start: f64,
        end: f64,
        total_iters: i64,
    },
    Exponential {
        gamma: f64,
    },
    Polynomial {
        total_iters: i64,
        power: f64,
    },
    Cosine {
        t_max: i64,
        eta_min: f64,
    },
    Cyclic(Cyclic),
    OneCycle(OneCycle),
    WarmRestarts(WarmRestarts),
}

impl Rule {
    /// MultiStepLR's rule from its milestones (repeats count) and gamma.
    pub fn multi_step(milestones: &[i64], gamma: f64) -> Self {
        let mut sorted = milestones.to_vec();
        sorted.sort_unstable();
        let mut out: Vec<(i64, f64)> = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let j = sorted[i..].iter().take_while(|&&m| m == sorted[i]).count();
            out.push((sorted[i], gamma.powf(j as f64)));
            i += j;
        }
        Rule::MultiStep(out)
    }

    /// Every group's learning rate after a regular step to `epoch`, as torch's `get_lr`
    /// computes it: on entry `lrs[g]` is group `g`'s current learning rate, `base[g]` its
    /// base learning rate; on return `lrs` holds the new ones. What depends on the epoch
    /// alone (a cosine, a factor) is computed once for all groups, which changes no bit:
    /// torch evaluates that part first, for each group alike. `None` (with `lrs` in any
    /// state) where torch would raise or a value leaves the finite floats.
    pub fn lrs(&self, epoch: i64, lrs: &mut [f64], base: &[f64]) -> Option<()> {
        let e = epoch;
        match self {
            Rule::Lambda(factors) => {
                if factors.len() != lrs.len() {
                    return None;
                }
                let mut last: Option<(&HfFactor, f64)> = None;
                for ((lr, &b), f) in lrs.iter_mut().zip(base).zip(factors) {
                    let value = match last {
                        Some((prev, v)) if prev == f => v,
                        _ => f.value(e).ok()?,
                    };
                    last = Some((f, value));
                    *lr = b * value;
                }
            }
            Rule::Step { step_size, gamma } => {
                if e != 0 && floor_mod(e, *step_size)? == 0 {
                    scale(lrs, *gamma);
                }
            }
            Rule::MultiStep(milestones) => {
                if let Ok(i) = milestones.binary_search_by_key(&e, |m| m.0) {
                    scale(lrs, milestones[i].1);
                }
            }
            Rule::Constant { factor, total_iters } => {
                if e == 0 {
                    scale(lrs, *factor);
                } else if e == *total_iters {
                    scale(lrs, 1.0 / factor);
                }
            }
            Rule::Linear { start, end, total_iters } => {
                if e == 0 {
                    scale(lrs, *start);
                } else if e <= *total_iters {
                    scale(lrs, 1.0 + (end - start) / (*total_iters as f64 * start + (e - 1) as f64 * (end - start)));
                }
            }
            Rule::Exponential { gamma } => scale(lrs, *gamma),
            Rule::Polynomial { total_iters, power } => {
                if e <= *total_iters {
                    let t = *total_iters as f64;
                    if t == 0.0 {
                        return None;
                    }
                    let num = 1.0 - e as f64 / t;
                    let den = 1.0 - (e - 1) as f64 / t;
                    if den == 0.0 || (num == 0.0 && *power < 0.0) {
                        return None;
                    }
                    scale(lrs, (num / den).powf(*power));
                }
            }
            Rule::Cosine { t_max, eta_min } => {
                let t = *t_max;
                if floor_mod(e - 1 - t, t.checked_mul(2)?)? == 0 {
                    let wave = 1.0 - (PI / t as f64).cos();
                    for (lr, &b) in lrs.iter_mut().zip(base) {
                        *lr += (b - eta_min) * wave / 2.0;
                    }
                } else {
                    let tf = t as f64;
                    let den = 1.0 + (PI * (e - 1) as f64 / tf).cos();
                    if den == 0.0 {
                        return None;
                    }
                    let ratio = (1.0 + (PI * e as f64 / tf).cos()) / den;
                    for lr in lrs.iter_mut() {
                        *lr = ratio * (*lr - eta_min) + eta_min;
                    }
                }
            }
            Rule::Cyclic(c) => {
                if c.max_lrs.len() != lrs.len() {
                    return None;
                }
                let (scale_factor, scale) = c.factors(e);
                for ((lr, &b), &max) in lrs.iter_mut().zip(base).zip(&c.max_lrs) {
                    *lr = b + (max - b) * scale_factor * scale;
                }
            }
            Rule::OneCycle(o) => {
                if e > o.total_steps || o.lrs.len() != lrs.len() {
                    return None;
                }
                let (phase, at) = o.at(e);
                for (lr, parts) in lrs.iter_mut().zip(&o.lrs) {
                    let (start, end) = parts[phase];
                    *lr = at.value(start, end);
                }
            }
            Rule::WarmRestarts(_) => return None,
        }
        all_finite(lrs)
    }

    /// Every group's momentum at `epoch` into `out`, for the classes that cycle it.
    pub fn momenta(&self, epoch: i64, out: &mut [f64]) -> Option<()> {
        match self {
            Rule::Cyclic(c) => {
                let moms = c.momentums.as_ref()?;
                if moms.len() != out.len() {
                    return None;
                }
                let (scale_factor, scale) = c.factors(epoch);
                for (m, &(base, max)) in out.iter_mut().zip(moms) {
                    *m = max - (max - base) * scale_factor * scale;
                }
            }
            Rule::OneCycle(o) => {
                let moms = o.momentums.as_ref()?;
                if moms.len() != out.len() {
                    return None;
                }
                let (phase, at) = o.at(epoch);
                for (m, parts) in out.iter_mut().zip(moms) {
                    let (start, end) = parts[phase];
                    *m = at.value(start, end);
                }
            }
            _ => return None,
        }
        all_finite(out)
    }

    /// Whether this rule sets a momentum as well as the learning rate.
    pub fn cycles_momentum(&self) -> bool {
        match self {
            Rule::Cyclic(c) => c.momentums.is_some(),
            Rule::OneCycle(o) => o.momentums.is_some(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group 0's learning rate after a step to `epoch` from `lr` (base `base`).
    fn lr(rule: &Rule, epoch: i64, lr: f64, base: f64) -> Option<f64> {
        let mut lrs = [lr];
        rule.lrs(epoch, &mut lrs, &[base])?;
        Some(lrs[0])
    }

    fn momentum(rule: &Rule, epoch: i64) -> Option<f64> {
        let mut out = [0.0];
        rule.momenta(epoch, &mut out)?;
        Some(out[0])
    }

    /// Runs a chainable rule from `lr0` over `n` steps (epochs 1..=n).
    fn run(rule: &Rule, lr0: f64, n: i64) -> Vec<f64> {
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
        let lrs = run(&Rule::Step { step_size: 3, gamma: 0.5 }, 1.0, 7);
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
        let lrs = run(&Rule::multi_step(&[2, 4, 4], 0.5), 1.0, 5);
        assert_eq!(lrs, vec![1.0, 0.5, 0.5, 0.125, 0.125]);
        assert_eq!(lr(&Rule::Step { step_size: 0, gamma: 0.5 }, 1, 1.0, 1.0), None);
    }

    #[test]
    fn cosine_follows_the_closed_form_closely() {
        let rule = Rule::Cosine { t_max: 100, eta_min: 0.1 };
        let lrs = run(&rule, 1.0, 300);
        for (i, lr) in lrs.iter().enumerate() {
            let e = (i + 1) as f64;
            let closed = 0.1 + 0.9 * (1.0 + (PI * e / 100.0).cos()) / 2.0;
            assert!((lr - closed).abs() < 1e-12, "epoch {e}: {lr} vs {closed}");
        }
    }

    #[test]
    fn groups_step_as_if_alone() {
        let factor = HfFactor::Cosine { warmup: 3, total: 20, cycles: 0.5, min_rate: 0.0 };
        let rules = [
            (Rule::Cosine { t_max: 7, eta_min: 0.01 }, Rule::Cosine { t_max: 7, eta_min: 0.01 }),
            (Rule::Exponential { gamma: 0.9 }, Rule::Exponential { gamma: 0.9 }),
            (Rule::Lambda(vec![factor.clone(); 3]), Rule::Lambda(vec![factor])),
        ];
        let base = [0.3, 0.1, 0.02];
        for (rule, one_group) in &rules {
            let mut all = base;
            let mut alone = base;
            for e in 1..30 {
                rule.lrs(e, &mut all, &base).unwrap();
                for g in 0..3 {
                    alone[g] = lr(one_group, e, alone[g], base[g]).unwrap();
                }
                assert_eq!(all, alone, "{rule:?} at {e}");
            }
        }
    }

    #[test]
    fn linear_and_polynomial_reach_their_ends() {
        let lrs = run(&Rule::Linear { start: 0.25, end: 1.0, total_iters: 4 }, 0.25, 6);
        assert!((lrs[3] - 1.0).abs() < 1e-15 && lrs[5] == lrs[3]);
        let lrs = run(&Rule::Polynomial { total_iters: 4, power: 2.0 }, 1.0, 5);
        assert_eq!(lrs[3], 0.0);
        assert!((lrs[1] - 0.25).abs() < 1e-15);
    }

    #[test]
    fn one_cycle_phases_and_end() {
        let o = OneCycle::new(100, 0.3, false, Anneal::Cos, &[(0.04, 1.0, 4e-6)], Some(&[(0.95, 0.85)]));
        let rule = Rule::OneCycle(o);
        assert!((lr(&rule, 0, 0.0, 0.0).unwrap() - 0.04).abs() < 1e-16);
        assert_eq!(lr(&rule, 29, 0.0, 0.0), Some(1.0));
        assert_eq!(momentum(&rule, 29), Some(0.85));
        assert!((lr(&rule, 99, 0.0, 0.0).unwrap() - 4e-6).abs() < 1e-18);
        assert!(lr(&rule, 100, 0.0, 0.0).is_some());
        assert_eq!(lr(&rule, 101, 0.0, 0.0), None);
    }

    #[test]
    fn one_cycle_is_its_joined_schedules_bit_for_bit() {
        for (shape, three_phase) in [(Anneal::Cos, false), (Anneal::Cos, true), (Anneal::Linear, true)] {
            let points = [(0.04, 1.0, 4e-6), (0.004, 0.1, 4e-7)];
            let moms = [(0.95, 0.85), (0.9, 0.8)];
            let o = OneCycle::new(137, 0.3, three_phase, shape, &points, Some(&moms));
            let lr_scheds: Vec<Schedule> = o.lrs.iter().map(|p| o.schedule(p)).collect();
            let mom_scheds: Vec<Schedule> = o.momentums.iter().flatten().map(|p| o.schedule(p)).collect();
            let rule = Rule::OneCycle(o);
            for e in 0..=137 {
                let (mut lrs, mut moms) = ([0.0; 2], [0.0; 2]);
                rule.lrs(e, &mut lrs, &[0.0; 2]).unwrap();
                rule.momenta(e, &mut moms).unwrap();
                for g in 0..2 {
                    assert_eq!(lrs[g].to_bits(), lr_scheds[g].value(e as f64).to_bits());
                    assert_eq!(moms[g].to_bits(), mom_scheds[g].value(e as f64).to_bits());
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
        let c = Cyclic {
            total_size: 4.0,
            step_ratio: 0.5,
            mode: CyclicMode::Triangular2,
            by_cycle: true,
            max_lrs: vec![1.0],
            momentums: Some(vec![(0.8, 0.9)]),
        };
        let rule = Rule::Cyclic(c);
        assert_eq!(lr(&rule, 2, 0.0, 0.0), Some(1.0));
        assert_eq!(lr(&rule, 6, 0.0, 0.0), Some(0.5));
        assert_eq!(momentum(&rule, 2), Some(0.8));
    }

    #[test]
    fn warm_restarts_advance() {
        let w = WarmRestarts { t_mult: 2, eta_min: 0.0 };
        assert_eq!(w.advance(9, 10), Some((0, 20)));
        assert_eq!(w.advance(3, 10), Some((4, 10)));
        let mut out = [0.0; 2];
        w.lrs(&[1.0, 0.5], 0, 10, &mut out).unwrap();
        assert_eq!(out, [1.0, 0.5]);
    }
}

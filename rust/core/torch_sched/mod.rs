//! The formulas of `torch.optim.lr_scheduler`, in torch's exact order of operations: one
//! file per scheduler class, each a [`TorchRule`].
//!
//! Torch computes many schedules recursively ("chainable"): the next learning rate is the
//! current one times a factor. Mirroring each recurrence operation for operation gives the
//! same floats as torch, step after step, instead of a closed form that drifts from it.
//! Every rule is the regular step of its class (not the constructor's initial step); `None`
//! means "torch would raise here, or the arithmetic leaves the finite floats": the caller
//! then defers to the Python formula, which raises torch's error.
//!
//! Adding a scheduler: a file here with its parameters as a struct implementing
//! [`TorchRule`], and its spec in the bindings (`py/torch_core.rs`).

mod constant;
mod cosine;
mod cyclic;
mod exponential;
mod lambda;
mod linear;
mod multistep;
mod one_cycle;
mod polynomial;
mod step;
mod value;
mod warm_restarts;

pub use constant::Constant;
pub use cosine::Cosine;
pub use cyclic::{Cyclic, CyclicMode};
pub use exponential::Exponential;
pub use lambda::Lambda;
pub use linear::Linear;
pub use multistep::MultiStep;
pub use one_cycle::{OneCycle, ShapeAt};
pub use polynomial::Polynomial;
pub use step::Step;
pub use value::{Kind, Val};
pub use warm_restarts::WarmRestarts;

/// One torch scheduler class's regular step.
pub trait TorchRule {
    /// Every group's learning rate after a regular step to `epoch`, as torch's `get_lr`
    /// computes it: on entry `lrs[g]` is group `g`'s current learning rate, `base[g]` its
    /// base learning rate, each a Python float or a tensor's value ([`Val`]: torch's
    /// tensor arithmetic is followed where one is a tensor); on return `lrs` holds the new ones. What depends on the epoch
    /// alone is computed once for all groups, which changes no bit: torch evaluates that
    /// part first, for each group alike. `None` (with `lrs` in any state) where torch would
    /// raise or a value leaves the finite floats.
    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()>;

    /// Every group's momentum at `epoch` into `out`, for the classes that cycle it.
    fn momenta(&self, _epoch: i64, _out: &mut [f64]) -> Option<()> {
        None
    }
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

    /// Group 0's learning rate after a step to `epoch` from `lr` (base `base`).
    fn lr(rule: &impl TorchRule, epoch: i64, lr: f64, base: f64) -> Option<f64> {
        let mut lrs = [Val::float(lr)];
        rule.lrs(epoch, &mut lrs, &[Val::float(base)])?;
        Some(lrs[0].x)
    }

    fn momentum(rule: &impl TorchRule, epoch: i64) -> Option<f64> {
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
        let lrs = run(&Cosine { t_max: 100, eta_min: 0.1 }, 1.0, 300);
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
        steps_as_if_alone(&Cosine { t_max: 7, eta_min: 0.01 }, &Cosine { t_max: 7, eta_min: 0.01 });
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

    #[test]
    fn one_cycle_phases_and_end() {
        let rule = OneCycle::new(100, 0.3, false, Anneal::Cos, &[(0.04, 1.0, 4e-6)], Some(&[(0.95, 0.85)]));
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
            let rule = OneCycle::new(137, 0.3, three_phase, shape, &points, Some(&moms));
            let lr_scheds: Vec<Schedule> = rule.lrs.iter().map(|p| rule.schedule(p)).collect();
            let mom_scheds: Vec<Schedule> = rule.momentums.iter().flatten().map(|p| rule.schedule(p)).collect();
            for e in 0..=137 {
                let (mut lrs, mut moms) = ([Val::float(0.0); 2], [0.0; 2]);
                rule.lrs(e, &mut lrs, &[Val::float(0.0); 2]).unwrap();
                rule.momenta(e, &mut moms).unwrap();
                for g in 0..2 {
                    assert_eq!(lrs[g].x.to_bits(), lr_scheds[g].value(e as f64).to_bits());
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
        let rule = Cyclic {
            total_size: 4.0,
            step_ratio: 0.5,
            mode: CyclicMode::Triangular2,
            by_cycle: true,
            max_lrs: vec![1.0],
            momentums: Some(vec![(0.8, 0.9)]),
        };
        assert_eq!(lr(&rule, 2, 0.0, 0.0), Some(1.0));
        assert_eq!(lr(&rule, 6, 0.0, 0.0), Some(0.5));
        assert_eq!(momentum(&rule, 2), Some(0.8));
    }

    #[test]
    fn warm_restarts_advance() {
        let w = WarmRestarts { t_mult: 2, eta_min: 0.0 };
        assert_eq!(w.advance(9, 10), Some((0, 20)));
        assert_eq!(w.advance(3, 10), Some((4, 10)));
        let mut out = [Val::float(0.0); 2];
        w.lrs(&[1.0, 0.5].map(Val::float), 0, 10, &mut out).unwrap();
        assert_eq!(out, [1.0, 0.5].map(Val::float));
    }
}

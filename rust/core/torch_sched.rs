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
        let scale = match self.mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange(gamma) => gamma.powf(epoch as f64),
        };
        (scale_factor, scale)
    }
}

/// OneCycleLR: per group, the learning rate (and momentum) as joined annealing phases over
/// the step number, built from the composable [`Schedule`].
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycle {
    pub total_steps: i64,
    pub lrs: Vec<Schedule>,
    pub momentums: Option<Vec<Schedule>>,
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
        let join = |ends: &[(f64, f64)]| {
            let parts = ends.iter().map(|&(start, end)| Schedule::Anneal { shape, start, end }).collect();
            Schedule::join_unchecked(edges.clone(), parts)
        };
        let lrs = points
            .iter()
            .map(|&(init, max, min)| {
                if three_phase {
                    join(&[(init, max), (max, init), (init, min)])
                } else {
                    join(&[(init, max), (max, min)])
                }
            })
            .collect();
        let momentums = moms.map(|moms| {
            moms.iter()
                .map(|&(max, base)| {
                    if three_phase {
                        join(&[(max, base), (base, max), (max, max)])
                    } else {
                        join(&[(max, base), (base, max)])
                    }
                })
                .collect()
        });
        OneCycle { total_steps, lrs, momentums }
    }
}

impl OneCycle {
    /// From torch's phase table: phase `i` ends at `edges[i + 1]` (`edges[0]` is 0) and
    /// anneals group `g` from `lr_parts[g][i].0` to `lr_parts[g][i].1` (momentum alike).
    pub fn from_phases(
        total_steps: i64,
        edges: Vec<f64>,
        shape: Anneal,
        lr_parts: &[Vec<(f64, f64)>],
        mom_parts: Option<&[Vec<(f64, f64)>]>,
    ) -> Self {
        let join = |ends: &Vec<(f64, f64)>| {
            let parts = ends.iter().map(|&(start, end)| Schedule::Anneal { shape, start, end }).collect();
            Schedule::join_unchecked(edges.clone(), parts)
        };
        OneCycle {
            total_steps,
            lrs: lr_parts.iter().map(join).collect(),
            momentums: mom_parts.map(|m| m.iter().map(join).collect()),
        }
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

    /// The learning rate of a group at `(T_cur, T_i)`.
    pub fn lr(&self, base: f64, t_cur: i64, t_i: i64) -> f64 {
        self.eta_min + (base - self.eta_min) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
    }
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

    /// The learning rate of group `g` after a regular step to `epoch`, from its current
    /// learning rate `lr` and base learning rate `base`, as torch's `get_lr` computes it.
    pub fn lr(&self, epoch: i64, g: usize, lr: f64, base: f64) -> Option<f64> {
        let e = epoch;
        let out = match self {
            Rule::Lambda(factors) => base * factors.get(g)?.value(e).ok()?,
            Rule::Step { step_size, gamma } => {
                if e == 0 || floor_mod(e, *step_size)? != 0 {
                    lr
                } else {
                    lr * gamma
                }
            }
            Rule::MultiStep(milestones) => match milestones.binary_search_by_key(&e, |m| m.0) {
                Ok(i) => lr * milestones[i].1,
                Err(_) => lr,
            },
            Rule::Constant { factor, total_iters } => {
                if e == 0 {
                    lr * factor
                } else if e != *total_iters {
                    lr
                } else {
                    lr * (1.0 / factor)
                }
            }
            Rule::Linear { start, end, total_iters } => {
                if e == 0 {
                    lr * start
                } else if e > *total_iters {
                    lr
                } else {
                    lr * (1.0 + (end - start) / (*total_iters as f64 * start + (e - 1) as f64 * (end - start)))
                }
            }
            Rule::Exponential { gamma } => lr * gamma,
            Rule::Polynomial { total_iters, power } => {
                if e > *total_iters {
                    lr
                } else {
                    let t = *total_iters as f64;
                    if t == 0.0 {
                        return None;
                    }
                    let num = 1.0 - e as f64 / t;
                    let den = 1.0 - (e - 1) as f64 / t;
                    if den == 0.0 || (num == 0.0 && *power < 0.0) {
                        return None;
                    }
                    lr * (num / den).powf(*power)
                }
            }
            Rule::Cosine { t_max, eta_min } => {
                let t = *t_max;
                if floor_mod(e - 1 - t, t.checked_mul(2)?)? == 0 {
                    lr + (base - eta_min) * (1.0 - (PI / t as f64).cos()) / 2.0
                } else {
                    let tf = t as f64;
                    let den = 1.0 + (PI * (e - 1) as f64 / tf).cos();
                    if den == 0.0 {
                        return None;
                    }
                    (1.0 + (PI * e as f64 / tf).cos()) / den * (lr - eta_min) + eta_min
                }
            }
            Rule::Cyclic(c) => {
                let (scale_factor, scale) = c.factors(e);
                base + (c.max_lrs.get(g)? - base) * scale_factor * scale
            }
            Rule::OneCycle(o) => {
                if e > o.total_steps {
                    return None;
                }
                o.lrs.get(g)?.value(e as f64)
            }
            Rule::WarmRestarts(_) => return None,
        };
        out.is_finite().then_some(out)
    }

    /// The momentum of group `g` at `epoch`, for the classes that cycle it.
    pub fn momentum(&self, epoch: i64, g: usize) -> Option<f64> {
        let out = match self {
            Rule::Cyclic(c) => {
                let (base, max) = *c.momentums.as_ref()?.get(g)?;
                let (scale_factor, scale) = c.factors(epoch);
                max - (max - base) * scale_factor * scale
            }
            Rule::OneCycle(o) => o.momentums.as_ref()?.get(g)?.value(epoch as f64),
            _ => return None,
        };
        out.is_finite().then_some(out)
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

    /// Runs a chainable rule from `lr0` over `n` steps (epochs 1..=n).
    fn run(rule: &Rule, lr0: f64, n: i64) -> Vec<f64> {
        let mut lr = lr0;
        (1..=n)
            .map(|e| {
                lr = rule.lr(e, 0, lr, lr0).unwrap();
                lr
            })
            .collect()
    }

    #[test]
    fn step_and_multistep() {
        let lrs = run(&Rule::Step { step_size: 3, gamma: 0.5 }, 1.0, 7);
        assert_eq!(lrs, vec![1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]);
        let lrs = run(&Rule::multi_step(&[2, 4, 4], 0.5), 1.0, 5);
        assert_eq!(lrs, vec![1.0, 0.5, 0.5, 0.125, 0.125]);
        assert_eq!(Rule::Step { step_size: 0, gamma: 0.5 }.lr(1, 0, 1.0, 1.0), None);
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
        assert!((rule.lr(0, 0, 0.0, 0.0).unwrap() - 0.04).abs() < 1e-16);
        assert_eq!(rule.lr(29, 0, 0.0, 0.0), Some(1.0));
        assert_eq!(rule.momentum(29, 0), Some(0.85));
        assert!((rule.lr(99, 0, 0.0, 0.0).unwrap() - 4e-6).abs() < 1e-18);
        assert!(rule.lr(100, 0, 0.0, 0.0).is_some());
        assert_eq!(rule.lr(101, 0, 0.0, 0.0), None);
    }

    #[test]
    fn cyclic_triangle() {
        let c = Cyclic {
            total_size: 4.0,
            step_ratio: 0.5,
            mode: CyclicMode::Triangular2,
            max_lrs: vec![1.0],
            momentums: Some(vec![(0.8, 0.9)]),
        };
        let rule = Rule::Cyclic(c);
        assert_eq!(rule.lr(2, 0, 0.0, 0.0), Some(1.0));
        assert_eq!(rule.lr(6, 0, 0.0, 0.0), Some(0.5));
        assert_eq!(rule.momentum(2, 0), Some(0.8));
    }

    #[test]
    fn warm_restarts_advance() {
        let w = WarmRestarts { t_mult: 2, eta_min: 0.0 };
        assert_eq!(w.advance(9, 10), Some((0, 20)));
        assert_eq!(w.advance(3, 10), Some((4, 10)));
        assert_eq!(w.lr(1.0, 0, 10), 1.0);
    }
}

//! OneCycleLR: annealing phases joined over the step number.

use std::f64::consts::PI;

use super::{all_finite, TorchRule, Val};
use crate::core::anneal::Anneal;
use crate::core::schedule::Schedule;

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

impl TorchRule for OneCycle {
    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if epoch > self.total_steps || self.lrs.len() != lrs.len() {
            return None;
        }
        let (phase, at) = self.at(epoch);
        for (lr, parts) in lrs.iter_mut().zip(&self.lrs) {
            let (start, end) = parts[phase];
            *lr = Val::float(at.value(start, end));
        }
        all_finite(lrs)
    }

    fn momenta(&self, epoch: i64, out: &mut [f64]) -> Option<()> {
        let moms = self.momentums.as_ref()?;
        if moms.len() != out.len() {
            return None;
        }
        let (phase, at) = self.at(epoch);
        for (m, parts) in out.iter_mut().zip(moms) {
            let (start, end) = parts[phase];
            *m = at.value(start, end);
        }
        out.iter().all(|m| m.is_finite()).then_some(())
    }
}

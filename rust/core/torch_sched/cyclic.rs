//! CyclicLR (and its momentum cycle), for the built-in scaling policies.

use super::{all_finite, Attrs, MomentumKey, PerGroup, TorchRule, Val};

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
    pub max_lrs: PerGroup<f64>,
    /// `(base_momentum, max_momentum)` per group and where they go, when momentum is cycled.
    pub momentums: Option<(MomentumKey, PerGroup<(f64, f64)>)>,
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

impl TorchRule for Cyclic {
    const NAME: &'static str = "cyclic";
    const BASE: bool = true;
    const CURRENT: bool = false;

    /// The built-in scaling policies only: a custom `scale_fn` is a Python callable.
    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        if !a.is_none("_scale_fn_custom")? {
            return None;
        }
        let momentums = if a.flag("cycle_momentum")? {
            let (base, max) = (a.nums("base_momentums")?, a.nums("max_momentums")?);
            let mut pairs = PerGroup::filled(base.len().min(max.len()), (0.0, 0.0));
            for (pair, (&b, &m)) in pairs.as_mut_slice().iter_mut().zip(base.as_slice().iter().zip(max.as_slice())) {
                *pair = (b, m);
            }
            Some((MomentumKey::new(a.flag("use_beta1")?), pairs))
        } else {
            None
        };
        Some(Cyclic {
            total_size: a.num("total_size")?,
            step_ratio: a.num("step_ratio")?,
            mode: a.cyclic_scale("_scale_fn_ref")?,
            by_cycle: a.choice("scale_mode", &["cycle", "iterations"])? == 0,
            max_lrs: a.nums("max_lrs")?,
            momentums,
        })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()> {
        if self.max_lrs.len() != lrs.len() {
            return None;
        }
        let (scale_factor, scale) = self.factors(epoch);
        for ((lr, &b), &max) in lrs.iter_mut().zip(base).zip(self.max_lrs.as_slice()) {
            *lr = b + (max - b) * scale_factor * scale;
        }
        all_finite(lrs)
    }

    fn momentum_key(&self) -> Option<MomentumKey> {
        self.momentums.as_ref().map(|(key, _)| *key)
    }

    fn momenta(&self, epoch: i64, out: &mut [f64]) -> Option<()> {
        let (_, moms) = self.momentums.as_ref()?;
        if moms.len() != out.len() {
            return None;
        }
        let (scale_factor, scale) = self.factors(epoch);
        for (m, &(base, max)) in out.iter_mut().zip(moms.as_slice()) {
            *m = max - (max - base) * scale_factor * scale;
        }
        out.iter().all(|m| m.is_finite()).then_some(())
    }
}

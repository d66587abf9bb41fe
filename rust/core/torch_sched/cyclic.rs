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
    /// The momentum cycle, when momentum is cycled.
    pub momentum: Option<CycleMomentum>,
}

/// CyclicLR's momentum cycle: where the momenta go, and per group the base and the max.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleMomentum {
    pub key: MomentumKey,
    pub base: PerGroup<f64>,
    pub max: PerGroup<f64>,
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
        let momentum = if a.flag("cycle_momentum")? {
            let (mut base, mut max) = (PerGroup::new(), PerGroup::new());
            a.nums("base_momentums", &mut base)?;
            a.nums("max_momentums", &mut max)?;
            Some(CycleMomentum { key: MomentumKey::new(a.flag("use_beta1")?), base, max })
        } else {
            None
        };
        let mut max_lrs = PerGroup::new();
        a.nums("max_lrs", &mut max_lrs)?;
        Some(Cyclic {
            total_size: a.num("total_size")?,
            step_ratio: a.num("step_ratio")?,
            mode: a.cyclic_scale("_scale_fn_ref")?,
            by_cycle: a.choice("scale_mode", &["cycle", "iterations"])? == 0,
            max_lrs,
            momentum,
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
        self.momentum.as_ref().map(|m| m.key)
    }

    fn momenta(&self, epoch: i64, out: &mut [f64]) -> Option<()> {
        let cycle = self.momentum.as_ref()?;
        // torch zips the two lists: a length other than the groups' is torch's error to raise
        let (base, max) = (cycle.base.as_slice(), cycle.max.as_slice());
        if base.len() != out.len() || max.len() != out.len() {
            return None;
        }
        let (scale_factor, scale) = self.factors(epoch);
        for (m, (&base, &max)) in out.iter_mut().zip(base.iter().zip(max)) {
            *m = max - (max - base) * scale_factor * scale;
        }
        out.iter().all(|m| m.is_finite()).then_some(())
    }
}

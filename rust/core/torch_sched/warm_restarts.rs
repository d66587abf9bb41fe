//! CosineAnnealingWarmRestarts (SGDR): its position is `(T_cur, T_i)`, not the epoch.

use std::f64::consts::PI;

use super::{all_finite, floor_mod, Attrs, TorchRule, Val, Writes};

/// CosineAnnealingWarmRestarts at the position `(t_cur, t_i)` of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmRestarts {
    pub t_mult: i64,
    pub eta_min: f64,
    pub t_cur: i64,
    pub t_i: i64,
}

impl WarmRestarts {
    /// `(T_cur, T_i)` after one regular step from `(t_cur, t_i)`.
    pub fn advance(t_mult: i64, t_cur: i64, t_i: i64) -> Option<(i64, i64)> {
        let t_cur = t_cur.checked_add(1)?;
        if t_cur >= t_i {
            Some((floor_mod(t_cur, t_i)?, t_i.checked_mul(t_mult)?))
        } else {
            Some((t_cur, t_i))
        }
    }
}

impl TorchRule for WarmRestarts {
    const NAME: &'static str = "warmrestarts";
    const BASE: bool = true;
    const CURRENT: bool = false;
    const OWN_STEP: bool = true;

    fn read(a: &dyn Attrs, _epoch: i64, advance: bool) -> Option<Self> {
        let (t_mult, t_cur, t_i) = (a.int("T_mult")?, a.int("T_cur")?, a.int("T_i")?);
        let (t_cur, t_i) = if advance { Self::advance(t_mult, t_cur, t_i)? } else { (t_cur, t_i) };
        (t_i != 0).then_some(())?;
        Some(WarmRestarts { t_mult, eta_min: a.num("eta_min")?, t_cur, t_i })
    }

    /// From the base rates, the cosine once for all groups.
    fn lrs(&self, _epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()> {
        let wave = 1.0 + (PI * self.t_cur as f64 / self.t_i as f64).cos();
        for (lr, &b) in lrs.iter_mut().zip(base) {
            *lr = self.eta_min + (b - self.eta_min) * wave / 2.0;
        }
        all_finite(lrs)
    }

    fn writes(&self) -> Writes {
        [Some(("T_cur", self.t_cur)), Some(("T_i", self.t_i))]
    }
}

//! CosineAnnealingWarmRestarts (SGDR): its position is `(T_cur, T_i)`, not the epoch.

use std::f64::consts::PI;

use super::{all_finite, floor_mod, Val};

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
    pub fn lrs(&self, base: &[Val], t_cur: i64, t_i: i64, out: &mut [Val]) -> Option<()> {
        let wave = 1.0 + (PI * t_cur as f64 / t_i as f64).cos();
        for (lr, &b) in out.iter_mut().zip(base) {
            *lr = self.eta_min + (b - self.eta_min) * wave / 2.0;
        }
        all_finite(out)
    }
}

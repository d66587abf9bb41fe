//! CosineAnnealingLR, in torch's recursive form (and its closed form where torch uses it).

use std::f64::consts::PI;

use super::{all_finite, floor_mod, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosine {
    pub t_max: i64,
    pub eta_min: f64,
    /// torch's `get_lr` takes the closed form while `_step_count` is 1 (a resumed first
    /// step; and always under Ignite's wrapper, which never calls `step`).
    pub closed: bool,
}

impl TorchRule for Cosine {
    const NAME: &'static str = "cosine";
    const BASE: bool = true;

    fn read(a: &dyn Attrs, epoch: i64, advance: bool) -> Option<Self> {
        let closed = !advance && epoch > 0 && a.int("_step_count")? == 1;
        Some(Cosine { t_max: a.int("T_max")?, eta_min: a.num("eta_min")?, closed })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()> {
        let (t, eta_min) = (self.t_max, self.eta_min);
        if self.closed {
            let wave = 1.0 + (epoch as f64 * PI / t as f64).cos();
            for (lr, &b) in lrs.iter_mut().zip(base) {
                *lr = eta_min + (b - eta_min) * wave / 2.0;
            }
        } else if floor_mod(epoch - 1 - t, t.checked_mul(2)?)? == 0 {
            let wave = 1.0 - (PI / t as f64).cos();
            for (lr, &b) in lrs.iter_mut().zip(base) {
                *lr = *lr + (b - eta_min) * wave / 2.0;
            }
        } else {
            let tf = t as f64;
            let den = 1.0 + (PI * (epoch - 1) as f64 / tf).cos();
            if den == 0.0 {
                return None;
            }
            let ratio = (1.0 + (PI * epoch as f64 / tf).cos()) / den;
            for lr in lrs.iter_mut() {
                *lr = ratio * (*lr - eta_min) + eta_min;
            }
        }
        all_finite(lrs)
    }
}

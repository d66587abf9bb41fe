//! CosineAnnealingLR, in torch's recursive form.

use std::f64::consts::PI;

use super::{all_finite, floor_mod, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cosine {
    pub t_max: i64,
    pub eta_min: f64,
}

impl TorchRule for Cosine {
    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()> {
        let (t, eta_min) = (self.t_max, self.eta_min);
        if floor_mod(epoch - 1 - t, t.checked_mul(2)?)? == 0 {
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

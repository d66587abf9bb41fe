//! PolynomialLR: `lr *= ((1 - e/T) / (1 - (e-1)/T)) ** power` until `total_iters`.

use super::{all_finite, scale, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    pub total_iters: i64,
    pub power: f64,
}

impl TorchRule for Polynomial {
    const NAME: &'static str = "polynomial";

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Polynomial { total_iters: a.int("total_iters")?, power: a.num("power")? })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if epoch <= self.total_iters {
            let t = self.total_iters as f64;
            if t == 0.0 {
                return None;
            }
            let num = 1.0 - epoch as f64 / t;
            let den = 1.0 - (epoch - 1) as f64 / t;
            if den == 0.0 || (num == 0.0 && self.power < 0.0) {
                return None;
            }
            scale(lrs, (num / den).powf(self.power));
        }
        all_finite(lrs)
    }
}

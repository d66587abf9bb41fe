//! ConstantLR: `lr * factor` until `total_iters`, then back.

use super::{all_finite, scale, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    pub factor: f64,
    pub total_iters: i64,
}

impl TorchRule for Constant {
    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if epoch == 0 {
            scale(lrs, self.factor);
        } else if epoch == self.total_iters {
            scale(lrs, 1.0 / self.factor);
        }
        all_finite(lrs)
    }
}

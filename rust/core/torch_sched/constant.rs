//! ConstantLR: `lr * factor` until `total_iters`, then back.

use super::{all_finite, scale, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constant {
    pub factor: f64,
    pub total_iters: i64,
}

impl TorchRule for Constant {
    const NAME: &'static str = "constant";

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Constant { factor: a.num("factor")?, total_iters: a.int("total_iters")? })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if epoch == 0 {
            scale(lrs, self.factor);
        } else if epoch == self.total_iters {
            scale(lrs, 1.0 / self.factor);
        }
        all_finite(lrs)
    }
}

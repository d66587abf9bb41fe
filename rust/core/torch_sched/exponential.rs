//! ExponentialLR: `lr *= gamma` every epoch.

use super::{all_finite, scale, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    pub gamma: f64,
}

impl TorchRule for Exponential {
    fn lrs(&self, _epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        scale(lrs, self.gamma);
        all_finite(lrs)
    }
}

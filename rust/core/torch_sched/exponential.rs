//! ExponentialLR: `lr *= gamma` every epoch.

use super::{all_finite, scale, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    pub gamma: f64,
}

impl TorchRule for Exponential {
    const NAME: &'static str = "exponential";

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Exponential { gamma: a.num("gamma")? })
    }

    fn lrs(&self, _epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        scale(lrs, self.gamma);
        all_finite(lrs)
    }
}

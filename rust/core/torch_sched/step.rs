//! StepLR: `lr *= gamma` every `step_size` epochs.

use super::{all_finite, floor_mod, scale, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub step_size: i64,
    pub gamma: f64,
}

impl TorchRule for Step {
    const NAME: &'static str = "step";
    const PIECEWISE: bool = true;

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Step { step_size: a.int("step_size")?, gamma: a.num("gamma")? })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if epoch != 0 && floor_mod(epoch, self.step_size)? == 0 {
            scale(lrs, self.gamma);
        }
        all_finite(lrs)
    }
}

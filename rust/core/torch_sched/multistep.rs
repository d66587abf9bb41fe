//! MultiStepLR: `lr *= gamma ** milestones[epoch]` at a milestone.

use super::{all_finite, scale, Attrs, TorchRule, Val};

/// The rule at one epoch: `hits` is how often the epoch is a milestone (torch's `Counter`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultiStep {
    pub hits: i64,
    pub gamma: f64,
}

impl TorchRule for MultiStep {
    const NAME: &'static str = "multistep";
    const PIECEWISE: bool = true;

    fn read(a: &dyn Attrs, epoch: i64, _advance: bool) -> Option<Self> {
        Some(MultiStep { hits: a.count("milestones", epoch)?, gamma: a.num("gamma")? })
    }

    fn lrs(&self, _epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        if self.hits != 0 {
            scale(lrs, self.gamma.powf(self.hits as f64));
        }
        all_finite(lrs)
    }
}

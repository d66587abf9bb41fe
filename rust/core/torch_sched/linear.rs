//! LinearLR: a linear factor from `start` to `end` over `total_iters`, chained.

use super::{all_finite, scale, Attrs, TorchRule, Val};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    pub start: f64,
    pub end: f64,
    pub total_iters: i64,
}

impl TorchRule for Linear {
    const NAME: &'static str = "linear";

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Linear { start: a.num("start_factor")?, end: a.num("end_factor")?, total_iters: a.int("total_iters")? })
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], _base: &[Val]) -> Option<()> {
        let Linear { start, end, total_iters } = *self;
        if epoch == 0 {
            scale(lrs, start);
        } else if epoch <= total_iters {
            scale(lrs, 1.0 + (end - start) / (total_iters as f64 * start + (epoch - 1) as f64 * (end - start)));
        }
        all_finite(lrs)
    }
}

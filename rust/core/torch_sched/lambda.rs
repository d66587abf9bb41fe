//! LambdaLR over transformers' factors: `base_lr * factor(epoch)`, one factor per group.

use super::{all_finite, Attrs, TorchRule, Val};
use crate::core::hf_sched::HfFactor;

#[derive(Debug, Clone, PartialEq)]
pub struct Lambda(pub Vec<HfFactor>);

impl TorchRule for Lambda {
    const NAME: &'static str = "lambda";
    const BASE: bool = true;
    const CURRENT: bool = false;

    fn read(a: &dyn Attrs, _epoch: i64, _advance: bool) -> Option<Self> {
        Some(Lambda(a.factors("lr_lambdas")?))
    }

    fn lrs(&self, epoch: i64, lrs: &mut [Val], base: &[Val]) -> Option<()> {
        if self.0.len() != lrs.len() {
            return None;
        }
        let mut last: Option<(&HfFactor, f64)> = None;
        for ((lr, &b), f) in lrs.iter_mut().zip(base).zip(&self.0) {
            let value = match last {
                Some((prev, v)) if prev == f => v,
                _ => f.value(epoch).ok()?,
            };
            last = Some((f, value));
            *lr = b * value;
        }
        all_finite(lrs)
    }
}

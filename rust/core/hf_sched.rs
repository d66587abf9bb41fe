//! The multiplicative factors of Hugging Face transformers' schedule factories
//! (`transformers.optimization`), in transformers' exact order of operations, so that
//! `base_lr * factor(step)` equals what its `LambdaLR` gives, bit for bit.

use std::f64::consts::PI;

/// How a factor can fail where Python would raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorError {
    /// Python's `ZeroDivisionError` (a zero-length phase, a zero timescale, …).
    ZeroDivision,
    /// Python's `ValueError: math domain error` (`sqrt` of a negative number).
    Domain,
}

/// The warm-up and decay shapes of `get_wsd_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsdShape {
    Linear,
    Cosine,
    OneMinusSqrt,
}

impl WsdShape {
    /// The shape named as transformers names it: `linear`, `cosine` or `1-sqrt`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(WsdShape::Linear),
            "cosine" => Some(WsdShape::Cosine),
            "1-sqrt" => Some(WsdShape::OneMinusSqrt),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WsdShape::Linear => "linear",
            WsdShape::Cosine => "cosine",
            WsdShape::OneMinusSqrt => "1-sqrt",
        }
    }
}

/// One factory's factor as a function of the step.
#[derive(Debug, Clone, PartialEq)]
pub enum HfFactor {
    Constant,
    ConstantWarmup {
        warmup: i64,
    },
    Linear {
        warmup: i64,
        total: i64,
    },
    /// `min_rate`: transformers' `min_lr_rate` (0 for `get_cosine_schedule_with_warmup`).
    Cosine {
        warmup: i64,
        total: i64,
        cycles: f64,
        min_rate: f64,
    },
    /// `get_cosine_with_min_lr_schedule_with_warmup_lr_rate`: all in floats, warm-up from
    /// `warmup_rate` (or from `1 / warmup` when it is `None`).
    CosineLrRate {
        warmup: f64,
        total: f64,
        cycles: f64,
        min_rate: f64,
        warmup_rate: Option<f64>,
    },
    HardRestarts {
        warmup: i64,
        total: i64,
        cycles: f64,
    },
    Polynomial {
        warmup: i64,
        total: i64,
        lr_end: f64,
        power: f64,
        lr_init: f64,
    },
    InverseSqrt {
        warmup: i64,
        timescale: i64,
    },
    Wsd {
        warmup: i64,
        stable: i64,
        decay: i64,
        up: WsdShape,
        down: WsdShape,
        min_ratio: f64,
        cycles: f64,
    },
}

type Out = std::result::Result<f64, FactorError>;

/// Python's `max(0.0, x)`: the first argument unless the second is greater.
#[inline]
fn max0(x: f64) -> f64 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Python's `max(a, x)`: `a` unless `x` is greater.
#[inline]
fn pymax(a: f64, x: f64) -> f64 {
    if x > a {
        x
    } else {
        a
    }
}

/// Python's float `%`: the result takes the sign of the divisor.
#[inline]
fn py_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else if r == 0.0 {
        0.0f64.copysign(b)
    } else {
        r
    }
}

#[inline]
fn div(a: f64, b: f64) -> Out {
    if b == 0.0 {
        Err(FactorError::ZeroDivision)
    } else {
        Ok(a / b)
    }
}

#[inline]
fn sqrt(x: f64) -> Out {
    if x < 0.0 {
        Err(FactorError::Domain)
    } else {
        Ok(x.sqrt())
    }
}

/// Python's `int / int`: correctly rounded, as `f64` division is for integers below 2^53.
#[inline]
fn true_div(a: i64, b: i64) -> Out {
    div(a as f64, b as f64)
}

/// `float(step) / float(max(1, warmup))`, the linear warm-up shared by the factories.
#[inline]
fn warmup_ramp(step: i64, warmup: i64) -> f64 {
    step as f64 / warmup.max(1) as f64
}

impl HfFactor {
    /// The factor at `step` (the scheduler's `last_epoch`).
    pub fn value(&self, step: i64) -> Out {
        match *self {
            HfFactor::Constant => Ok(1.0),
            HfFactor::ConstantWarmup { warmup } => {
                if step < warmup {
                    // `float(max(1.0, warmup))`
                    Ok(step as f64 / (warmup as f64).max(1.0))
                } else {
                    Ok(1.0)
                }
            }
            HfFactor::Linear { warmup, total } => {
                if step < warmup {
                    return Ok(warmup_ramp(step, warmup));
                }
                Ok(max0((total - step) as f64 / (total - warmup).max(1) as f64))
            }
            HfFactor::Cosine { warmup, total, cycles, min_rate } => {
                if step < warmup {
                    return Ok(warmup_ramp(step, warmup));
                }
                let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                let factor = 0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos());
                Ok(max0(factor * (1.0 - min_rate) + min_rate))
            }
            HfFactor::CosineLrRate { warmup, total, cycles, min_rate, warmup_rate } => {
                let step = step as f64;
                if step < warmup {
                    return Ok(match warmup_rate {
                        None => (step + 1.0) / pymax(1.0, warmup),
                        Some(r) => r + (1.0 - r) * step / pymax(1.0, warmup - 1.0),
                    });
                }
                let progress = (step - warmup + 1.0) / pymax(1.0, total - warmup);
                let factor = 0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos());
                Ok(max0(factor * (1.0 - min_rate) + min_rate))
            }
            HfFactor::HardRestarts { warmup, total, cycles } => {
                if step < warmup {
                    return Ok(warmup_ramp(step, warmup));
                }
                let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                if progress >= 1.0 {
                    return Ok(0.0);
                }
                Ok(max0(0.5 * (1.0 + (PI * py_mod(cycles * progress, 1.0)).cos())))
            }
            HfFactor::Polynomial { warmup, total, lr_end, power, lr_init } => {
                if step < warmup {
                    Ok(warmup_ramp(step, warmup))
                } else if step > total {
                    div(lr_end, lr_init)
                } else {
                    let range = lr_init - lr_end;
                    let remaining = 1.0 - true_div(step - warmup, total - warmup)?;
                    if remaining == 0.0 && power < 0.0 {
                        return Err(FactorError::ZeroDivision);
                    }
                    let decay = range * remaining.powf(power) + lr_end;
                    div(decay, lr_init)
                }
            }
            HfFactor::InverseSqrt { warmup, timescale } => {
                if step < warmup {
                    return Ok(warmup_ramp(step, warmup));
                }
                let shift = timescale - warmup;
                div(1.0, sqrt(true_div(step + shift, timescale)?)?)
            }
            HfFactor::Wsd { warmup, stable, decay, up, down, min_ratio, cycles } => {
                if step < warmup {
                    let progress = warmup_ramp(step, warmup);
                    let factor = match up {
                        WsdShape::Linear => progress,
                        WsdShape::Cosine => 0.5 * (1.0 - (PI * progress).cos()),
                        WsdShape::OneMinusSqrt => 1.0 - sqrt(1.0 - progress)?,
                    };
                    return Ok(max0(factor * (1.0 - min_ratio) + min_ratio));
                }
                if step < warmup + stable {
                    return Ok(1.0);
                }
                if step < warmup + stable + decay {
                    let progress = (step - warmup - stable) as f64 / decay.max(1) as f64;
                    let factor = match down {
                        WsdShape::Linear => 1.0 - progress,
                        WsdShape::Cosine => 0.5 * (1.0 + (PI * cycles * 2.0 * progress).cos()),
                        WsdShape::OneMinusSqrt => 1.0 - sqrt(progress)?,
                    };
                    return Ok(max0(factor * (1.0 - min_ratio) + min_ratio));
                }
                Ok(min_ratio)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let lin = HfFactor::Linear { warmup: 10, total: 110 };
        assert_eq!(lin.value(0), Ok(0.0));
        assert_eq!(lin.value(5), Ok(0.5));
        assert_eq!(lin.value(60), Ok(0.5));
        assert_eq!(lin.value(200), Ok(0.0));
        let cos = HfFactor::Cosine { warmup: 0, total: 100, cycles: 0.5, min_rate: 0.0 };
        assert_eq!(cos.value(0), Ok(1.0));
        assert_eq!(cos.value(100), Ok(0.0));
        let hard = HfFactor::HardRestarts { warmup: 0, total: 100, cycles: 2.0 };
        assert_eq!(hard.value(50), Ok(1.0));
        assert_eq!(hard.value(100), Ok(0.0));
        assert_eq!(HfFactor::ConstantWarmup { warmup: 0 }.value(0), Ok(1.0));
    }

    #[test]
    fn polynomial_and_inverse_sqrt() {
        let poly = HfFactor::Polynomial { warmup: 0, total: 10, lr_end: 0.0, power: 2.0, lr_init: 1.0 };
        assert_eq!(poly.value(5), Ok(0.25));
        assert_eq!(poly.value(11), Ok(0.0));
        let isq = HfFactor::InverseSqrt { warmup: 4, timescale: 4 };
        assert_eq!(isq.value(16), Ok(0.5));
        assert_eq!(HfFactor::InverseSqrt { warmup: 0, timescale: 0 }.value(1), Err(FactorError::ZeroDivision));
        assert_eq!(HfFactor::InverseSqrt { warmup: 0, timescale: -1 }.value(2), Err(FactorError::Domain));
    }

    #[test]
    fn wsd_stages() {
        let wsd = HfFactor::Wsd {
            warmup: 10,
            stable: 10,
            decay: 10,
            up: WsdShape::Linear,
            down: WsdShape::Linear,
            min_ratio: 0.1,
            cycles: 0.5,
        };
        assert_eq!(wsd.value(0), Ok(0.1));
        assert_eq!(wsd.value(15), Ok(1.0));
        assert_eq!(wsd.value(30), Ok(0.1));
        assert_eq!(WsdShape::parse("1-sqrt"), Some(WsdShape::OneMinusSqrt));
    }

    #[test]
    fn python_modulo() {
        assert_eq!(py_mod(2.5, 1.0), 0.5);
        assert_eq!(py_mod(-0.25, 1.0), 0.75);
        assert_eq!(py_mod(0.25, -1.0), -0.75);
    }
}

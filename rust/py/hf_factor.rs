//! transformers' schedule factors as fastcb's `LambdaLR` holds them: a `functools.partial`
//! of one of fastcb's copies of transformers' lambdas (each tagged `_fastcb_factor = kind`),
//! or the bare constant lambda. Its keywords are read by name into the core's `HfFactor` at
//! every step, so an edited partial is honoured; anything unknown runs the Python lambda.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use super::exact::{Num, Steps};
use crate::core::hf_sched::{HfFactor, WsdShape};

static PARTIAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ConstantWarmup {
    num_warmup_steps: Steps,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Linear {
    num_warmup_steps: Steps,
    num_training_steps: Steps,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Cosine {
    num_warmup_steps: Steps,
    num_training_steps: Steps,
    num_cycles: Num,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CosineLrRate {
    num_warmup_steps: Steps,
    num_training_steps: Steps,
    num_cycles: Num,
}

/// An optional keyword: `Some(None)` where it is absent or `None`, `None` where it is not a
/// plain number. (Looked up without raising: a derived `#[pyo3(default)]` field costs a
/// `KeyError` made and dropped at every step where the keyword is absent.)
fn optional(kw: &Bound<'_, PyDict>, name: &Bound<'_, PyString>) -> Option<Option<f64>> {
    match kw.get_item(name).ok()? {
        None => Some(None),
        Some(v) if v.is_none() => Some(None),
        Some(v) => Some(Some(v.extract::<Num>().ok()?.0)),
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct HardRestarts {
    num_warmup_steps: Steps,
    num_training_steps: Steps,
    num_cycles: Num,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Polynomial {
    num_warmup_steps: Steps,
    num_training_steps: Steps,
    lr_end: Num,
    power: Num,
    lr_init: Num,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct InverseSqrt {
    num_warmup_steps: Steps,
    timescale: Steps,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Wsd {
    num_warmup_steps: Steps,
    num_stable_steps: Steps,
    num_decay_steps: Steps,
    warmup_type: String,
    decay_type: String,
    min_lr_ratio: Num,
    num_cycles: Num,
}

/// The factor `kind` with keyword arguments `kw`; `None` where they are not plain numbers.
fn factor(kind: &str, kw: &Bound<'_, PyDict>) -> Option<HfFactor> {
    let py = kw.py();
    let min_lr_rate = || optional(kw, intern!(py, "min_lr_rate"));
    let kw = kw.as_any();
    Some(match kind {
        "constant_warmup" => {
            let s: ConstantWarmup = kw.extract().ok()?;
            HfFactor::ConstantWarmup { warmup: s.num_warmup_steps.0 }
        }
        "linear" => {
            let s: Linear = kw.extract().ok()?;
            HfFactor::Linear { warmup: s.num_warmup_steps.0, total: s.num_training_steps.0 }
        }
        "cosine" => {
            let s: Cosine = kw.extract().ok()?;
            HfFactor::Cosine {
                warmup: s.num_warmup_steps.0,
                total: s.num_training_steps.0,
                cycles: s.num_cycles.0,
                min_rate: min_lr_rate()?.unwrap_or(0.0),
            }
        }
        "cosine_lr_rate" => {
            let s: CosineLrRate = kw.extract().ok()?;
            let warmup_rate = optional(kw.cast::<PyDict>().ok()?, intern!(py, "warmup_lr_rate"))?;
            HfFactor::CosineLrRate {
                warmup: s.num_warmup_steps.0 as f64,
                total: s.num_training_steps.0 as f64,
                cycles: s.num_cycles.0,
                min_rate: min_lr_rate()?.unwrap_or(0.0),
                warmup_rate,
            }
        }
        "hard_restarts" => {
            let s: HardRestarts = kw.extract().ok()?;
            HfFactor::HardRestarts {
                warmup: s.num_warmup_steps.0,
                total: s.num_training_steps.0,
                cycles: s.num_cycles.0,
            }
        }
        "polynomial" => {
            let s: Polynomial = kw.extract().ok()?;
            HfFactor::Polynomial {
                warmup: s.num_warmup_steps.0,
                total: s.num_training_steps.0,
                lr_end: s.lr_end.0,
                power: s.power.0,
                lr_init: s.lr_init.0,
            }
        }
        "inverse_sqrt" => {
            let s: InverseSqrt = kw.extract().ok()?;
            HfFactor::InverseSqrt { warmup: s.num_warmup_steps.0, timescale: s.timescale.0 }
        }
        "wsd" => {
            let s: Wsd = kw.extract().ok()?;
            HfFactor::Wsd {
                warmup: s.num_warmup_steps.0,
                stable: s.num_stable_steps.0,
                decay: s.num_decay_steps.0,
                up: WsdShape::parse(&s.warmup_type)?,
                down: WsdShape::parse(&s.decay_type)?,
                min_ratio: s.min_lr_ratio.0,
                cycles: s.num_cycles.0,
            }
        }
        _ => return None,
    })
}

/// The compiled factor of one `lr_lambdas` entry, or `None` (the Python lambda must run).
pub fn lambda_factor(f: &Bound<'_, PyAny>) -> PyResult<Option<HfFactor>> {
    let py = f.py();
    let partial = PARTIAL.import(py, "functools", "partial")?;
    if !f.is_exact_instance(partial) {
        // transformers' constant schedule is a bare function returning 1.
        let Ok(kind) = f.getattr(intern!(py, "_fastcb_factor")) else { return Ok(None) };
        let constant = kind.cast::<PyString>().ok().is_some_and(|k| k.to_str().is_ok_and(|s| s == "constant"));
        return Ok(constant.then_some(HfFactor::Constant));
    }
    let Ok(args) = f.getattr(intern!(py, "args"))?.cast_into::<PyTuple>() else { return Ok(None) };
    if !args.is_empty() {
        return Ok(None);
    }
    let Ok(kind) = f.getattr(intern!(py, "func"))?.getattr(intern!(py, "_fastcb_factor")) else { return Ok(None) };
    let Ok(kind) = kind.cast_into::<PyString>() else { return Ok(None) };
    let Ok(kw) = f.getattr(intern!(py, "keywords"))?.cast_into::<PyDict>() else { return Ok(None) };
    Ok(factor(kind.to_str()?, &kw))
}

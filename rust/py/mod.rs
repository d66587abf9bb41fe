//! The bindings: the only code that knows PyO3. Each submodule wraps one core module.

mod anneal;
mod convert;
mod error;
mod exact;
mod guard;
mod hf_factor;
mod host;
mod hyper;
mod mean;
mod schedule;
mod shape;
mod smooth;
mod stepper;
mod tensor_lr;
mod torch_attrs;
mod torch_core;

use pyo3::prelude::*;

/// fastcb's compiled core.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    anneal::register(m)?;
    m.add_class::<stepper::Stepper>()?;
    m.add_class::<smooth::SmoothenValue>()?;
    m.add_class::<mean::WeightedMean>()?;
    schedule::register(m)?;
    shape::register(m)?;
    host::register(m)?;
    torch_core::register(m)?;
    hyper::register(m)?;
    Ok(())
}

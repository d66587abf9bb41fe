//! The compiled core's math: plain Rust, no Python types. The bindings in `py/` wrap it.

pub mod alloc;
pub mod anneal;
pub mod error;
pub mod fastmath;
pub mod hf_sched;
pub mod mean;
pub mod pool;
pub mod schedule;
pub mod smooth;
pub mod stepper;
pub mod torch_sched;

pub use anneal::Anneal;
pub use error::{CoreError, Result};
pub use stepper::Stepper;

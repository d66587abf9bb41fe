//! fastcb's compiled core. `core` is the math, free of Python; `py` is the one bindings layer.

pub mod core;

#[cfg(feature = "python")]
mod py;

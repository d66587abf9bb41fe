//! Annealing shapes by name, as the bindings read and write them.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::error::Class;
use crate::core::Anneal;

/// The shapes' names: the one table the bindings, the CLI and `fastcb.testing` read
/// (`fastcb._core.SHAPES`).
pub const SHAPES: [&str; 5] = ["no", "linear", "exp", "cos", "poly"];

/// A shape by name: `no`, `linear`, `exp`, `cos`, or `poly` with its degree.
pub fn parse_shape(name: &str, degree: Option<f64>) -> PyResult<Anneal> {
    Ok(match (name, degree) {
        ("no", _) => Anneal::No,
        ("linear", _) => Anneal::Linear,
        ("exp", _) => Anneal::Exp,
        ("cos", _) => Anneal::Cos,
        ("poly", Some(d)) => Anneal::poly(d).map_err(|e| Class::Schedule.err(e.to_string()))?,
        ("poly", None) => return Err(Class::Schedule.err("degree: annealing 'poly' needs a degree")),
        _ => {
            let names: Vec<String> = SHAPES.iter().map(|s| format!("'{s}'")).collect();
            return Err(Class::Schedule.err(format!("shape: expected one of {}, got {name:?}", names.join(", "))));
        }
    })
}

/// The name (and degree) of a shape, as `parse_shape` reads it.
pub fn shape_name(shape: Anneal) -> (&'static str, Option<f64>) {
    match shape {
        Anneal::No => ("no", None),
        Anneal::Linear => ("linear", None),
        Anneal::Exp => ("exp", None),
        Anneal::Cos => ("cos", None),
        Anneal::Poly(d) => ("poly", Some(d)),
    }
}

/// Adds `SHAPES` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SHAPES", PyTuple::new(m.py(), SHAPES)?)
}

//! `WeightedMean`: the exact accumulator behind `AverageMetric`.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::float_array;
use crate::core::mean::{self, ExactSum};

/// A weighted mean whose sums are exact to float64 rounding, however many values.
#[pyclass(module = "fastcb._core", name = "WeightedMean", subclass)]
#[derive(Clone, Default)]
pub struct WeightedMean(mean::WeightedMean);

#[pymethods]
impl WeightedMean {
    #[new]
    fn new() -> Self {
        WeightedMean::default()
    }

    /// Adds one value with its weight (finite and non-negative).
    #[pyo3(signature = (value, weight = 1.0))]
    fn add(&mut self, value: f64, weight: f64) -> PyResult<()> {
        Ok(self.0.add(value, weight)?)
    }

    /// Adds many values (and their weights, 1 each by default); all or none are added.
    #[pyo3(signature = (values, weights = None))]
    fn extend(
        &mut self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let values = float_array("values", values)?;
        let weights = weights.map(|w| float_array("weights", w)).transpose()?;
        let (v, w) = (values.as_array(), weights.as_ref().map(|w| w.as_array()));
        if let Some(w) = &w {
            if w.shape() != v.shape() {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "weights: shape {:?} does not match the shape {:?} of values",
                    w.shape(),
                    v.shape()
                )));
            }
        }
        let inner = &mut self.0;
        // Contiguous arrays are read in place; others are copied in their logical order first.
        let contiguous = (v.as_slice(), w.as_ref().map(|w| w.as_slice()));
        if let (Some(vs), None | Some(Some(_))) = contiguous {
            let ws = contiguous.1.flatten();
            return Ok(py.detach(|| inner.extend(vs, ws))?);
        }
        let (v, w) = (v.iter().copied().collect::<Vec<_>>(), w.map(|w| w.iter().copied().collect::<Vec<_>>()));
        Ok(py.detach(|| inner.extend(&v, w.as_deref()))?)
    }

    /// Adds the sums of another accumulator (e.g. a worker's partial sums).
    fn merge(&mut self, other: PyRef<'_, WeightedMean>) {
        self.0.merge(&other.0);
    }

    /// Forgets every value.
    fn reset(&mut self) {
        self.0 = mean::WeightedMean::default();
    }

    /// The weighted mean; a ValueError when nothing (or only zero weight) was added.
    #[getter]
    fn mean(&self) -> PyResult<f64> {
        Ok(self.0.mean()?)
    }

    /// The weighted sum, rounded once.
    #[getter]
    fn sum(&self) -> f64 {
        self.0.sum.value()
    }

    #[getter]
    fn total_weight(&self) -> f64 {
        self.0.total_weight.value()
    }

    /// How many values were added.
    #[getter]
    fn count(&self) -> u64 {
        self.0.count
    }

    /// The exact state: the partials of both sums, and the count.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("sum", self.0.sum.partials().to_vec())?;
        d.set_item("total_weight", self.0.total_weight.partials().to_vec())?;
        d.set_item("count", self.0.count)?;
        Ok(d)
    }

    fn load_state_dict(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        let get = |k: &str| state.get_item(k)?.ok_or_else(|| PyKeyError::new_err(format!("state: missing key {k:?}")));
        let partials = |k: &str| -> PyResult<ExactSum> {
            let p: Vec<f64> = get(k)?.extract()?;
            if p.iter().any(|x| !x.is_finite()) {
                return Err(pyo3::exceptions::PyValueError::new_err(format!("state: {k} has non-finite partials")));
            }
            Ok(ExactSum::from_partials(p))
        };
        self.0 = mean::WeightedMean {
            sum: partials("sum")?,
            total_weight: partials("total_weight")?,
            count: get("count")?.extract()?,
        };
        Ok(())
    }

    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.state_dict(py)
    }

    fn __setstate__(&mut self, state: &Bound<'_, PyDict>) -> PyResult<()> {
        self.load_state_dict(state)
    }

    fn __copy__(&self) -> Self {
        self.clone()
    }

    fn __repr__(&self) -> String {
        match self.0.mean() {
            Ok(m) => {
                format!("WeightedMean(mean={m:?}, total_weight={:?}, count={})", self.total_weight(), self.0.count)
            }
            Err(_) => format!("WeightedMean(count={})", self.0.count),
        }
    }
}

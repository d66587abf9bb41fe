//! `WeightedMean`: the exact accumulator behind `AverageMetric`.

use numpy::ndarray::ArrayViewD;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::convert::{count, dict, float_array, get, instance, real, type_name};
use super::error::{arg_error, state_error, type_error, Class};
use super::guard::Guarded;
use crate::core::mean::{self, MAX_PARTIALS};

/// A weighted mean whose sums are exact to float64 rounding, however many values.
/// Safe to share between threads: calls run one at a time.
///
/// >>> m = WeightedMean()
/// >>> m.add(2.0, weight=3.0)
/// >>> m.extend([4.0, 6.0])
/// >>> m.mean, m.count, m.total_weight
/// (3.2, 3, 5.0)
/// >>> m.extend([1e100, 1.0, -1e100])  # exact sums: nothing is lost to rounding
/// >>> m.sum
/// 17.0
#[pyclass(module = "fastcb._core", name = "WeightedMean", subclass, frozen)]
pub struct WeightedMean(Guarded<mean::WeightedMean>);

impl WeightedMean {
    fn wrap(inner: mean::WeightedMean) -> Self {
        WeightedMean(Guarded::new("WeightedMean", inner))
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<mean::WeightedMean> {
        self.0.with(py, |m| m.clone())
    }
}

/// Adds every pair of `values` and `weights` (same shape) without copying either.
fn extend_views(m: &mut mean::WeightedMean, v: ArrayViewD<'_, f64>, w: Option<ArrayViewD<'_, f64>>) -> PyResult<()> {
    // Contiguous arrays are read as slices (the fastest loop); others element by element.
    let result = match (v.as_slice(), &w) {
        (Some(vs), None) => m.extend(vs, None),
        (Some(vs), Some(w)) if w.as_slice().is_some() => m.extend(vs, w.as_slice()),
        (_, None) => m.extend_pairs(v.iter().map(|&x| (x, 1.0))),
        (_, Some(w)) => m.extend_pairs(v.iter().copied().zip(w.iter().copied())),
    };
    Ok(result?)
}

/// The partials of a saved sum: a list or tuple of at most `MAX_PARTIALS` floats.
fn partials(state: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<f64>> {
    let x = get(state, key)?;
    let len = if let Ok(l) = x.cast::<PyList>() {
        l.len()
    } else if let Ok(t) = x.cast::<PyTuple>() {
        t.len()
    } else {
        return Err(type_error(format!("state: {key}: expected a list of floats, got {}", type_name(&x))));
    };
    if len > MAX_PARTIALS {
        return Err(arg_error(format!("state: {key} has {len} partials; a sum of floats has at most {MAX_PARTIALS}")));
    }
    x.try_iter()?.map(|p| real(&format!("state: {key}"), &p?)).collect()
}

#[pymethods]
impl WeightedMean {
    #[new]
    fn new() -> Self {
        WeightedMean::wrap(mean::WeightedMean::default())
    }

    /// Adds one value with its weight (finite and non-negative). A sum that would overflow
    /// float64 is a ValueError (as `math.fsum` raises), and nothing is added.
    #[pyo3(signature = (value, weight = None), text_signature = "(self, value, weight=1.0)")]
    fn add(&self, py: Python<'_>, value: &Bound<'_, PyAny>, weight: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let value = real("value", value)?;
        let weight = match weight {
            Some(w) => real("weight", w)?,
            None => 1.0,
        };
        Ok(self.0.with(py, |m| m.add(value, weight))??)
    }

    /// Adds many values (and their weights, 1 each by default); all or none are added.
    #[pyo3(signature = (values, weights = None))]
    fn extend(&self, py: Python<'_>, values: &Bound<'_, PyAny>, weights: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let values = float_array("values", values)?;
        let weights = weights.filter(|w| !w.is_none()).map(|w| float_array("weights", w)).transpose()?;
        let (v, w) = (values.as_array(), weights.as_ref().map(|w| w.as_array()));
        if let Some(w) = &w {
            if w.shape() != v.shape() {
                return Err(Class::Shape.err(format!(
                    "weights: shape {:?} does not match the shape {:?} of values",
                    w.shape(),
                    v.shape()
                )));
            }
        }
        let mut inner = self.0.lock(py)?;
        let inner = &mut *inner;
        py.detach(|| extend_views(inner, v, w))
    }

    /// Adds the sums of another accumulator (e.g. a worker's partial sums); when the sums
    /// would overflow, a ValueError and nothing is added.
    fn merge(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        let other = instance::<WeightedMean>("other", other)?.get().snapshot(py)?;
        Ok(self.0.with(py, |m| m.merge(&other))??)
    }

    /// Forgets every value.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.0.with(py, |m| *m = mean::WeightedMean::default())
    }

    /// The weighted mean; a ValueError when nothing (or only zero weight) was added.
    #[getter]
    fn mean(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.0.with(py, |m| m.mean())??)
    }

    /// The weighted sum, rounded once.
    #[getter]
    fn sum(&self, py: Python<'_>) -> PyResult<f64> {
        self.0.with(py, |m| m.sum.value())
    }

    /// The sum of the weights, rounded once.
    #[getter]
    fn total_weight(&self, py: Python<'_>) -> PyResult<f64> {
        self.0.with(py, |m| m.total_weight.value())
    }

    /// How many values were added.
    #[getter]
    fn count(&self, py: Python<'_>) -> PyResult<u64> {
        self.0.with(py, |m| m.count)
    }

    /// The exact state: the partials of both sums, and the count.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.snapshot(py)?;
        let d = PyDict::new(py);
        d.set_item("sum", m.sum.partials())?;
        d.set_item("total_weight", m.total_weight.partials())?;
        d.set_item("count", m.count)?;
        Ok(d)
    }

    /// Restores a `state_dict()`, checked as `add` checks its arguments (finite sums, a
    /// non-negative total weight, a count below 2**64); a refused state is a `StateError`
    /// and changes nothing.
    fn load_state_dict(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let state = &dict("state", state)?;
        let restored = (|| {
            let (sum, total) = (partials(state, "sum")?, partials(state, "total_weight")?);
            let n = count("state: count", &get(state, "count")?)?;
            Ok(mean::WeightedMean::from_parts(&sum, &total, n)?)
        })()
        .map_err(|e| state_error(py, e))?;
        self.0.with(py, |m| *m = restored)
    }

    fn __getstate__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.state_dict(py)
    }

    fn __setstate__(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        self.load_state_dict(py, state)
    }

    fn __copy__(&self, py: Python<'_>) -> PyResult<Self> {
        Ok(WeightedMean::wrap(self.snapshot(py)?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.snapshot(py)?;
        Ok(match m.mean() {
            Ok(mean) => {
                format!("WeightedMean(mean={mean:?}, total_weight={:?}, count={})", m.total_weight.value(), m.count)
            }
            Err(_) => format!("WeightedMean(count={})", m.count),
        })
    }
}

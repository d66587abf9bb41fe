//! Bindings of the composable `Schedule`s. The transformers factors are in
//! `hf_factor`, the compiled steps of the drop-in torch schedulers in `torch_core`.

use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyTuple};
use pyo3::IntoPyObjectExt;

use super::convert::{as_number, count, float_array, float_vec, instance, is_tensor, opt_real, real, text, type_name};
use super::error::{arg_error, type_error, Class};
use super::shape::{parse_shape, shape_name};
use crate::core::schedule::Schedule as CoreSchedule;

// ---------------------------------------------------------------------------------------
// Schedule

/// A schedule as nested tuples of names and numbers (its pickled form).
fn to_spec<'py>(py: Python<'py>, s: &CoreSchedule) -> PyResult<Bound<'py, PyAny>> {
    match s {
        CoreSchedule::Anneal { shape, start, end } => {
            let (name, degree) = shape_name(*shape);
            ("anneal", name, degree, *start, *end).into_bound_py_any(py)
        }
        CoreSchedule::Join { edges, parts, earlier } => {
            let parts = parts.iter().map(|p| to_spec(py, p)).collect::<PyResult<Vec<_>>>()?;
            if *earlier {
                ("join", edges.clone(), parts, "earlier").into_bound_py_any(py)
            } else {
                ("join", edges.clone(), parts).into_bound_py_any(py)
            }
        }
        CoreSchedule::Power { start, end, power } => ("power", *start, *end, *power).into_bound_py_any(py),
        CoreSchedule::Restarts { period, mult, inner } => {
            ("restarts", *period, *mult, to_spec(py, inner)?).into_bound_py_any(py)
        }
    }
}

fn from_spec(spec: &Bound<'_, PyAny>) -> PyResult<CoreSchedule> {
    let bad = || Class::Schedule.err("spec: not a schedule spec (see Schedule.spec)");
    let t = spec.cast::<PyTuple>().map_err(|_| bad())?;
    let kind: String = t.get_item(0)?.extract().map_err(|_| bad())?;
    Ok(match kind.as_str() {
        "anneal" => {
            let (_, name, degree, start, end): (String, String, Option<f64>, f64, f64) =
                t.extract().map_err(|_| bad())?;
            CoreSchedule::anneal(parse_shape(&name, degree)?, start, end)?
        }
        "join" => {
            let edges = float_vec("edges", &t.get_item(1)?)?;
            let parts = t.get_item(2)?.try_iter()?.map(|p| from_spec(&p?)).collect::<PyResult<Vec<_>>>()?;
            let tie: Option<String> =
                if t.len() > 3 { Some(t.get_item(3)?.extract().map_err(|_| bad())?) } else { None };
            match (CoreSchedule::join(edges, parts)?, tie.as_deref()) {
                (j, None | Some("later")) => j,
                (CoreSchedule::Join { edges, parts, .. }, Some("earlier")) => {
                    CoreSchedule::join_unchecked(edges, parts)
                }
                _ => return Err(bad()),
            }
        }
        "power" => {
            let (_, start, end, power): (String, f64, f64, f64) = t.extract().map_err(|_| bad())?;
            CoreSchedule::power(start, end, power)?
        }
        "restarts" => {
            let (period, mult): (f64, f64) = (t.get_item(1)?.extract()?, t.get_item(2)?.extract()?);
            CoreSchedule::restarts(period, mult, from_spec(&t.get_item(3)?)?)?
        }
        _ => return Err(bad()),
    })
}

fn schedules(scheds: &Bound<'_, PyAny>) -> PyResult<Vec<CoreSchedule>> {
    scheds
        .try_iter()?
        .map(|s| {
            let s = s?;
            let s = s
                .cast::<Schedule>()
                .map_err(|_| type_error(format!("scheds: expected Schedule items, got a {}", type_name(&s))))?;
            Ok(s.get().0.clone())
        })
        .collect()
}

/// The shape named by the argument `name` (`default` when not given).
fn up_down(name: &str, x: Option<&Bound<'_, PyAny>>, default: &str) -> PyResult<crate::core::Anneal> {
    match x {
        Some(x) => parse_shape(&text(name, x)?, None).map_err(|e| Class::Schedule.err(format!("{name}: {e}"))),
        None => parse_shape(default, None),
    }
}

/// A schedule: a pure function of position, evaluated at a number or a whole array in one call.
///
/// >>> s = Schedule.one_cycle(1.0)      # built from parts: anneal, join, restarts, ...
/// >>> round(s(0.0), 12), s(0.3), s(1.0)
/// (0.04, 1.0, 4e-06)
/// >>> s.sample(4).round(4)             # the values at 0, 1/4, 2/4, 3/4
/// array([0.04  , 0.9357, 0.8117, 0.2831])
/// >>> Schedule.from_spec(s.spec) == s
/// True
#[pyclass(module = "fastcb._core", name = "Schedule", frozen)]
pub struct Schedule(pub CoreSchedule);

#[pymethods]
impl Schedule {
    /// An annealing shape (`no`, `linear`, `exp`, `cos`, `poly`) from `start` at 0 to `end` at 1.
    #[staticmethod]
    #[pyo3(signature = (shape, start, end, degree = None))]
    fn anneal(
        shape: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        degree: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let degree = opt_real("degree", degree)?;
        let (start, end) = (real("start", start)?, real("end", end)?);
        Ok(Schedule(CoreSchedule::anneal(parse_shape(&text("shape", shape)?, degree)?, start, end)?))
    }

    /// fastai v2's `SchedPoly`: `start + (end - start) * pos**power`.
    #[staticmethod]
    fn power(start: &Bound<'_, PyAny>, end: &Bound<'_, PyAny>, power: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (start, end, power) = (real("start", start)?, real("end", end)?, real("power", power)?);
        Ok(Schedule(CoreSchedule::power(start, end, power)?))
    }

    /// A constant value.
    #[staticmethod]
    fn constant(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Schedule(CoreSchedule::constant(real("value", value)?)?))
    }

    /// Schedules joined at `edges` (strictly increasing, one more than the schedules); each
    /// sees its own span as 0 → 1, and a position at an edge belongs to the later one.
    #[staticmethod]
    fn join(edges: &Bound<'_, PyAny>, scheds: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Schedule(CoreSchedule::join(float_vec("edges", edges)?, schedules(scheds)?)?))
    }

    /// fastai v2's `combine_scheds`: schedule `i` runs over the fraction `pcts[i]` of 0 → 1,
    /// a position at a join going to the later schedule.
    #[staticmethod]
    fn combine(pcts: &Bound<'_, PyAny>, scheds: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Schedule(CoreSchedule::combine(&float_vec("pcts", pcts)?, schedules(scheds)?)?))
    }

    /// `inner` restarted every cycle (SGDR); cycle `k` lasts `period * mult**k`.
    #[staticmethod]
    #[pyo3(signature = (period, inner, mult = None))]
    fn restarts(
        period: &Bound<'_, PyAny>,
        inner: &Bound<'_, PyAny>,
        mult: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mult = opt_real("mult", mult)?.unwrap_or(1.0);
        Ok(Schedule(CoreSchedule::restarts(
            real("period", period)?,
            mult,
            instance::<Schedule>("inner", inner)?.get().0.clone(),
        )?))
    }

    /// Warm-up from `start` to `peak` over the fraction `warmup`, then decay to `end`.
    #[staticmethod]
    #[pyo3(signature = (warmup, start, peak, end, up = None, down = None), text_signature = "(warmup, start, peak, end, up='linear', down='cos')")]
    fn warmup_decay(
        warmup: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        peak: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        up: Option<&Bound<'_, PyAny>>,
        down: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (warmup, start) = (real("warmup", warmup)?, real("start", start)?);
        let (peak, end) = (real("peak", peak)?, real("end", end)?);
        let (up, down) = (up_down("up", up, "linear")?, up_down("down", down, "cos")?);
        Ok(Schedule(CoreSchedule::warmup_decay(warmup, start, peak, end, up, down)?))
    }

    /// fastai v1's one-cycle: cosine from `lr_max/div_factor` up to `lr_max` over `pct_start`,
    /// then cosine down to `lr_max/final_div` (default `div_factor * 1e4`).
    #[staticmethod]
    #[pyo3(signature = (lr_max, pct_start = None, div_factor = None, final_div = None))]
    fn one_cycle(
        lr_max: &Bound<'_, PyAny>,
        pct_start: Option<&Bound<'_, PyAny>>,
        div_factor: Option<&Bound<'_, PyAny>>,
        final_div: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let lr_max = real("lr_max", lr_max)?;
        let pct_start = opt_real("pct_start", pct_start)?.unwrap_or(0.3);
        let div_factor = opt_real("div_factor", div_factor)?.unwrap_or(25.0);
        let final_div = opt_real("final_div", final_div)?.unwrap_or(div_factor * 1e4);
        Ok(Schedule(CoreSchedule::one_cycle(lr_max, pct_start, div_factor, final_div)?))
    }

    /// Warmup-stable-decay over 0 → 1: warm-up over `warmup`, stable, decay over `decay`.
    #[staticmethod]
    #[pyo3(signature = (warmup, decay, start, peak, end, up = None, down = None), text_signature = "(warmup, decay, start, peak, end, up='linear', down='cos')")]
    fn wsd(
        warmup: &Bound<'_, PyAny>,
        decay: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        peak: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        up: Option<&Bound<'_, PyAny>>,
        down: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (warmup, decay, start) = (real("warmup", warmup)?, real("decay", decay)?, real("start", start)?);
        let (peak, end) = (real("peak", peak)?, real("end", end)?);
        let (up, down) = (up_down("up", up, "linear")?, up_down("down", down, "cos")?);
        Ok(Schedule(CoreSchedule::wsd(warmup, decay, start, peak, end, up, down)?))
    }

    /// SGDR over steps: cosine from `max` to `min` over `period` steps, then restarts with
    /// periods growing by `mult`.
    #[staticmethod]
    #[pyo3(signature = (max, min, period, mult = None))]
    fn sgdr(
        max: &Bound<'_, PyAny>,
        min: &Bound<'_, PyAny>,
        period: &Bound<'_, PyAny>,
        mult: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mult = opt_real("mult", mult)?.unwrap_or(1.0);
        let (max, min, period) = (real("max", max)?, real("min", min)?, real("period", period)?);
        Ok(Schedule(CoreSchedule::sgdr(max, min, period, mult)?))
    }

    /// The schedule described by `spec` (the nested tuples of `Schedule.spec`).
    #[staticmethod]
    fn from_spec(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Schedule(from_spec(spec)?))
    }

    /// The schedule as nested tuples: `("anneal", shape, degree, start, end)`, `("power", start, end, power)`,
    /// `("join", edges, parts)` (`("join", edges, parts, "earlier")` when a position at an edge
    /// goes to the earlier part, as in torch's `OneCycleLR`) or `("restarts", period, mult, inner)`.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_spec(py, &self.0)
    }

    /// The value at `pos` (a number), or the values at every position of an array; on a torch
    /// tensor, a tensor computed with torch operations on its device (`fastcb.device_schedule`).
    fn __call__<'py>(slf: &Bound<'py, Self>, pos: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        if let Some(p) = as_number(pos) {
            return Ok(PyFloat::new(py, this.0.eval(p)?).into_any());
        }
        if is_tensor(pos)? {
            return py.import("fastcb.device_schedule")?.getattr("evaluate")?.call1((slf, pos));
        }
        let arr = float_array("pos", pos)?;
        let view = arr.as_array();
        let shape = view.shape().to_vec();
        let flat: Vec<f64> = match view.as_slice() {
            Some(s) => py.detach(|| this.0.eval_slice(s))?,
            None => {
                let mut owned = crate::core::alloc::with_capacity("pos", view.len())?;
                owned.extend(view.iter());
                py.detach(|| this.0.eval_slice(&owned))?
            }
        };
        Ok(numpy::ndarray::Array::from_shape_vec(shape, flat)
            .map_err(|e| Class::Shape.err(format!("pos: {e}")))?
            .into_pyarray(py)
            .into_any())
    }

    /// The whole schedule over `n` steps: the values at `i / n` for `i` in `0..n`.
    fn sample<'py>(&self, py: Python<'py>, n: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let n = usize::try_from(count("n", n)?).map_err(|_| arg_error("n: too large"))?;
        let out = py.detach(|| self.0.sample(n))?;
        Ok(out.into_pyarray(py).into_any())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let ctor = slf.get_type().getattr("from_spec")?;
        (ctor, (slf.get().spec(py)?,)).into_bound_py_any(py)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Schedule>().map(|o| o.get().0 == self.0).unwrap_or(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Schedule.from_spec({})", to_spec(py, &self.0)?.repr()?))
    }
}

/// Adds `Schedule` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Schedule>()
}

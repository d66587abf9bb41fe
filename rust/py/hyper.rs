//! An `OptimWrapper`'s learning rate and momentum as a training batch reads and writes them,
//! straight in its optimizer's param groups: the Recorder's read (and record), the one-cycle
//! write, and the one-cycle step (both `Stepper`s stepped and written in one call).
//!
//! Each takes the wrapper's `__dict__` and handles only the plain case, which it checks whole
//! before changing anything: every param group a dict holding an exact `float` lr and an exact
//! `float` momentum (`momentum`, or `betas` an exact pair whose first item is a float). Anything
//! else answers `None`, having changed nothing, and `OptimWrapper`'s Python code runs instead
//! (the general case: tensors, per-group values, the setters' rules and errors). Replacing an
//! exact float, or a pair whose second item the new pair keeps, runs no Python code.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyTuple, PyType};

use super::stepper::Stepper;
use super::torch_attrs::{borrowed, instance_dict};

/// The momentum key of the wrapper `d` (`_momentum_key`: `momentum` if true, else `betas[0]`),
/// when it has a momentum (`_mom` is not None); `None` otherwise.
fn momentum_key(d: &Bound<'_, PyDict>) -> Option<bool> {
    let py = d.py();
    let mom = borrowed::get(d, intern!(py, "_mom"))?;
    if mom.is_none() {
        return None;
    }
    let key = borrowed::get(d, intern!(py, "_momentum_key"))?;
    Some(key.cast::<PyBool>().ok()?.is_true())
}

/// The optimizer's param groups (`d["opt"].param_groups`), an exact list.
fn param_groups<'py>(d: &Bound<'py, PyDict>) -> Option<Bound<'py, PyList>> {
    let py = d.py();
    let opt = borrowed::get(d, intern!(py, "opt"))?.to_owned();
    opt.getattr(intern!(py, "param_groups")).ok()?.cast_into_exact::<PyList>().ok()
}

/// Whether `group` holds plain floats where the write goes: an exact float `lr`, and an exact
/// float `momentum` (`by_momentum`) or an exact pair `betas` whose first item is an exact float.
fn plain(group: &Bound<'_, PyDict>, by_momentum: bool) -> bool {
    let py = group.py();
    let is_float = |v: Option<Borrowed<'_, '_, PyAny>>| v.is_some_and(|v| v.is_exact_instance_of::<PyFloat>());
    if !is_float(borrowed::get(group, intern!(py, "lr"))) {
        return false;
    }
    if by_momentum {
        return is_float(borrowed::get(group, intern!(py, "momentum")));
    }
    match borrowed::get(group, intern!(py, "betas")) {
        Some(b) => match b.cast_exact::<PyTuple>() {
            Ok(t) if t.len() == 2 => t.get_borrowed_item(0).is_ok_and(|m| m.is_exact_instance_of::<PyFloat>()),
            _ => false,
        },
        None => false,
    }
}

/// The param groups of `d` and its momentum key when every group is `plain`.
fn plain_groups<'py>(d: &Bound<'py, PyDict>) -> PyResult<Option<(Bound<'py, PyList>, bool)>> {
    let Some(by_momentum) = momentum_key(d) else { return Ok(None) };
    let Some(groups) = param_groups(d) else { return Ok(None) };
    for i in 0..groups.len() {
        let group = borrowed::item(&groups, i)?;
        match group.cast::<PyDict>() {
            Ok(g) if plain(&g, by_momentum) => {}
            _ => return Ok(None),
        }
    }
    Ok(Some((groups, by_momentum)))
}

/// Writes `lr` and `mom` into every group (all `plain`, checked by the caller).
fn write(
    groups: &Bound<'_, PyList>,
    by_momentum: bool,
    lr: &Bound<'_, PyFloat>,
    mom: &Bound<'_, PyFloat>,
) -> PyResult<()> {
    let py = groups.py();
    for i in 0..groups.len() {
        let group = borrowed::item(groups, i)?;
        let group = group.cast::<PyDict>()?;
        group.set_item(intern!(py, "lr"), lr)?;
        if by_momentum {
            group.set_item(intern!(py, "momentum"), mom)?;
        } else {
            let key = intern!(py, "betas");
            let betas = borrowed::get(&group, key).expect("checked: every group has a pair `betas`");
            let betas = betas.cast::<PyTuple>()?;
            let second = betas.get_borrowed_item(1)?;
            let pair = PyTuple::new(py, [mom.as_any().as_borrowed(), second])?;
            group.set_item(key, pair)?;
        }
    }
    Ok(())
}

/// `OptimWrapper.set_lr_mom(lr, mom)`'s plain case: `lr` and `mom` written into every param
/// group of the wrapper whose `__dict__` is `d`. False, changing nothing, when a group isn't
/// plain floats or the wrapper has no momentum (the setters then run).
#[pyfunction]
fn write_lr_mom(d: &Bound<'_, PyDict>, lr: &Bound<'_, PyFloat>, mom: &Bound<'_, PyFloat>) -> PyResult<bool> {
    let Some((groups, by_momentum)) = plain_groups(d)? else { return Ok(false) };
    write(&groups, by_momentum, lr, mom)?;
    Ok(true)
}

/// One batch of a one-cycle phase on an `OptimWrapper`: `set_lr_mom(lr.step(), mom.step())`,
/// both steppers compiled scalar `Stepper`s (exactly), then `lr.is_done`. `None`, stepping
/// nothing and writing nothing, where that isn't the plain case (the Python path then runs).
/// A step that fails raises as `lr.step()` or `mom.step()` would, before anything is written.
#[pyfunction]
fn step_lr_mom(lr: &Bound<'_, PyAny>, mom: &Bound<'_, PyAny>, d: &Bound<'_, PyDict>) -> PyResult<Option<bool>> {
    let py = d.py();
    let (Ok(lr), Ok(mom)) = (lr.cast_exact::<Stepper>(), mom.cast_exact::<Stepper>()) else { return Ok(None) };
    if lr.is(mom) {
        return Ok(None);
    }
    let Some((groups, by_momentum)) = plain_groups(d)? else { return Ok(None) };
    // No Python code runs from these checks to the write: the kinds can't change meanwhile.
    let (lr, mom) = (lr.get(), mom.get());
    if !lr.is_scalar(py)? || !mom.is_scalar(py)? {
        return Ok(None);
    }
    let changed = || pyo3::exceptions::PyRuntimeError::new_err("step_lr_mom: a stepper changed kind while stepped");
    let lr_value = lr.step_scalar(py)?.ok_or_else(changed)?;
    let mom_value = mom.step_scalar(py)?.ok_or_else(changed)?;
    write(&groups, by_momentum, &PyFloat::new(py, lr_value), &PyFloat::new(py, mom_value))?;
    Ok(Some(lr.done(py)?))
}

/// `(lr, mom)` of the last layer group's param group of the wrapper whose `__dict__` is `d`
/// (`mom` `None` when the wrapper has no momentum), when that group holds plain floats.
fn last_lr_mom<'py>(d: &Bound<'py, PyDict>) -> PyResult<Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    let py = d.py();
    let Some(paired) = borrowed::get(d, intern!(py, "paired")) else { return Ok(None) };
    let Ok(paired) = paired.cast::<PyBool>().map(|b| b.is_true()) else { return Ok(None) };
    let Some(has_mom) = borrowed::get(d, intern!(py, "_mom")).map(|m| !m.is_none()) else { return Ok(None) };
    let by_momentum = if has_mom {
        let Some(key) = borrowed::get(d, intern!(py, "_momentum_key")) else { return Ok(None) };
        let Ok(key) = key.cast::<PyBool>().map(|b| b.is_true()) else { return Ok(None) };
        Some(key)
    } else {
        None
    };
    let Some(groups) = param_groups(d) else { return Ok(None) };
    let back = if paired { 2 } else { 1 };
    if groups.len() < back {
        return Ok(None);
    }
    let group = borrowed::item(&groups, groups.len() - back)?;
    let Ok(group) = group.cast::<PyDict>() else { return Ok(None) };
    let Some(lr) = borrowed::get(&group, intern!(py, "lr")) else { return Ok(None) };
    if !lr.is_exact_instance_of::<PyFloat>() {
        return Ok(None);
    }
    let mom = match by_momentum {
        None => py.None().into_bound(py),
        Some(true) => match borrowed::get(&group, intern!(py, "momentum")) {
            Some(m) if m.is_exact_instance_of::<PyFloat>() => m.to_owned(),
            _ => return Ok(None),
        },
        Some(false) => {
            let Some(betas) = borrowed::get(&group, intern!(py, "betas")) else { return Ok(None) };
            let Ok(betas) = betas.cast_exact::<PyTuple>() else { return Ok(None) };
            match betas.get_borrowed_item(0) {
                Ok(m) if betas.len() == 2 && m.is_exact_instance_of::<PyFloat>() => m.to_owned(),
                _ => return Ok(None),
            }
        }
    };
    Ok(Some((lr.to_owned(), mom)))
}

/// The instance dict of `obj` when it is an exact dict (`None` otherwise): the writes here go
/// straight to the dict, so a subclass's own `__setitem__` must get the Python path.
fn exact_instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    instance_dict(obj).filter(|d| d.is_exact_instance_of::<PyDict>())
}

/// `Recorder.on_batch_begin(train)` of the Recorder `cb`, whose Python method is `hook`:
/// the lr and mom appended by `record_lr_mom` when `train` is True, `cb.opt` is exactly of
/// the class `wrapper` (`OptimWrapper`) and the plain case holds; else `hook(train)`, which
/// then does everything (nothing was changed before).
#[pyfunction]
fn recorder_batch_begin<'py>(
    cb: &Bound<'py, PyAny>,
    hook: &Bound<'py, PyAny>,
    wrapper: &Bound<'py, PyType>,
    train: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cb.py();
    if train.is(PyBool::new(py, true)) {
        if let Some(d) = exact_instance_dict(cb) {
            let got = (|| {
                let opt = borrowed::get(&d, intern!(py, "opt"))?.to_owned();
                if !opt.get_type().is(wrapper) {
                    return None;
                }
                let lrs = borrowed::get(&d, intern!(py, "lrs"))?.to_owned().cast_into_exact::<PyList>().ok()?;
                let moms = borrowed::get(&d, intern!(py, "moms"))?.to_owned().cast_into_exact::<PyList>().ok()?;
                Some((exact_instance_dict(&opt)?, lrs, moms))
            })();
            if let Some((od, lrs, moms)) = got {
                if let Some((lr, mom)) = last_lr_mom(&od)? {
                    lrs.append(lr)?;
                    moms.append(mom)?;
                    return Ok(py.None().into_bound(py));
                }
            }
        }
    }
    hook.call1((train,))
}

/// `GeneralScheduler.on_batch_end(train)` of the scheduler `cb`, whose Python method is `hook`,
/// for a training batch inside a phase of lr and mom on an `OptimWrapper` (its per-phase entry
/// `(wrapper, wrapper's __dict__, lr, mom, first)` with `first` the lr stepper): `step_lr_mom`,
/// which returns None. Anything else (validation, a schedule on the device, the batch that ends
/// a phase, past the last phase, not the plain case) is `hook(train)`, which then does
/// everything: nothing was changed before.
#[pyfunction]
fn scheduler_batch_end<'py>(
    cb: &Bound<'py, PyAny>,
    hook: &Bound<'py, PyAny>,
    train: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = cb.py();
    if train.is(PyBool::new(py, true)) {
        let entry = (|| {
            let d = exact_instance_dict(cb)?;
            if !borrowed::get(&d, intern!(py, "_run"))?.is_none() {
                return None;
            }
            let idx = borrowed::get(&d, intern!(py, "idx_s"))?;
            if !idx.is_exact_instance_of::<PyInt>() {
                return None;
            }
            let idx: usize = idx.extract().ok()?;
            let setters = borrowed::get(&d, intern!(py, "_setters"))?.to_owned().cast_into_exact::<PyList>().ok()?;
            if idx >= setters.len() {
                return None;
            }
            let entry = setters.get_item(idx).ok()?.cast_into_exact::<PyTuple>().ok()?;
            (entry.len() == 5).then_some(entry)
        })();
        if let Some(entry) = entry {
            let (lr, mom, first) = (entry.get_item(2)?, entry.get_item(3)?, entry.get_item(4)?);
            let ends = match lr.cast_exact::<Stepper>() {
                Ok(s) => s.get().ends_next(py)?,
                Err(_) => true,
            };
            if first.is(&lr) && !ends {
                if let Ok(od) = entry.get_item(1)?.cast_into_exact::<PyDict>() {
                    if step_lr_mom(&lr, &mom, &od)?.is_some() {
                        return Ok(py.None().into_bound(py));
                    }
                }
            }
        }
    }
    hook.call1((train,))
}

/// `OptimWrapper.lr_mom()`'s plain case for the wrapper whose `__dict__` is `d`: `(lr, mom)` of
/// the last layer group's param group when its lr is an exact float and its momentum (if the
/// wrapper has one) too. `None` otherwise: the Python method reads the host copies then.
#[pyfunction]
fn read_lr_mom<'py>(d: &Bound<'py, PyDict>) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some((lr, mom)) = last_lr_mom(d)? else { return Ok(None) };
    Ok(Some(PyTuple::new(d.py(), [lr, mom])?))
}

/// The Recorder's per-batch record: `lrs.append(lr)`, `moms.append(mom)` with `read_lr_mom(d)`'s
/// values; False, appending nothing, where that is `None`.
#[pyfunction]
fn record_lr_mom(d: &Bound<'_, PyDict>, lrs: &Bound<'_, PyList>, moms: &Bound<'_, PyList>) -> PyResult<bool> {
    let Some((lr, mom)) = last_lr_mom(d)? else { return Ok(false) };
    lrs.append(lr)?;
    moms.append(mom)?;
    Ok(true)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(write_lr_mom, m)?)?;
    m.add_function(wrap_pyfunction!(step_lr_mom, m)?)?;
    m.add_function(wrap_pyfunction!(read_lr_mom, m)?)?;
    m.add_function(wrap_pyfunction!(record_lr_mom, m)?)?;
    m.add_function(wrap_pyfunction!(recorder_batch_begin, m)?)?;
    m.add_function(wrap_pyfunction!(scheduler_batch_end, m)?)?;
    Ok(())
}

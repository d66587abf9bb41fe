//! Composable schedules: pure functions of position, in the style of fastai v2 and optax.
//!
//! A [`Schedule`] maps a position (a fraction of training, or a step number: the caller
//! picks the unit) to a value. The building blocks are the annealing shapes of
//! [`Anneal`], parts joined at edges ([`Schedule::join`], [`Schedule::combine`]) and
//! restarts ([`Schedule::restarts`]); warm-up + decay, one-cycle, SGDR and
//! warmup-stable-decay are built from them. Evaluation is a scalar call or a whole array
//! in one call (on all cores when the array is long); every element of an array equals
//! the scalar value at its position.
//!
//! Evaluation uses the vectorizable `cos_pi` (within about 1 ulp of libm's `cos(π·x)`), so
//! a whole schedule runs in SIMD; the drop-in torch schedulers step with [`Schedule::value`]
//! instead, libm's arithmetic exactly as torch's Python computes it.

use rayon::prelude::*;

use super::alloc;
use super::anneal::Anneal;
use super::error::{CoreError, Result};
use super::fastmath::cos_pi;

/// `Ok(x)` when `x` is finite, else a schedule's error naming `arg`.
#[inline]
fn finite(arg: &'static str, x: f64) -> Result<f64> {
    super::error::finite(arg, x).map_err(CoreError::in_schedule)
}

/// A schedule: a pure function of position.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// `shape(start, end, pct)` at `pct = pos`; `pos` outside `[0, 1]` extrapolates.
    Anneal { shape: Anneal, start: f64, end: f64 },
    /// Part `i` covers positions from `edges[i]` up to `edges[i + 1]` (the first part also
    /// everything before, the last everything after), and sees
    /// `pct = (pos - edges[i]) / (edges[i + 1] - edges[i])`. A position exactly at an inner
    /// edge goes to the later part (fastai v2's `combine_scheds`), or to the earlier one
    /// when `earlier` (torch's `OneCycleLR`, whose edges may coincide).
    Join { edges: Vec<f64>, parts: Vec<Schedule>, earlier: bool },
    /// fastai v2's `SchedPoly`: `start + (end - start) * pos^power`.
    Power { start: f64, end: f64, power: f64 },
    /// SGDR restarts: cycles of length `period`, `period * mult`, …; the inner schedule
    /// sees the fraction of the current cycle, in `[0, 1)`.
    Restarts { period: f64, mult: f64, inner: Box<Schedule> },
}

impl Schedule {
    /// A constant value.
    pub fn constant(value: f64) -> Result<Self> {
        Ok(Schedule::Anneal { shape: Anneal::No, start: finite("value", value)?, end: value })
    }

    /// An annealing shape from `start` (pos 0) to `end` (pos 1).
    pub fn anneal(shape: Anneal, start: f64, end: f64) -> Result<Self> {
        shape.check_ends(start, end).map_err(CoreError::in_schedule)?;
        Ok(Schedule::Anneal { shape, start, end })
    }

    /// Parts joined at `edges` (one more edge than parts, strictly increasing).
    pub fn join(edges: Vec<f64>, parts: Vec<Schedule>) -> Result<Self> {
        if parts.is_empty() {
            return Err(CoreError::schedule("scheds", "needs at least one schedule"));
        }
        if edges.len() != parts.len() + 1 {
            return Err(CoreError::schedule(
                "edges",
                format!("needs one more edge than schedules: {} edges for {} schedules", edges.len(), parts.len()),
            ));
        }
        for &e in &edges {
            finite("edges", e)?;
        }
        if edges.windows(2).any(|w| w[1] <= w[0]) {
            return Err(CoreError::schedule("edges", format!("expected strictly increasing edges, got {edges:?}")));
        }
        Ok(Schedule::Join { edges, parts, earlier: false })
    }

    /// `join` without checks, a position at an edge going to the earlier part: torch's
    /// OneCycleLR, whose edges may coincide.
    pub fn join_unchecked(edges: Vec<f64>, parts: Vec<Schedule>) -> Self {
        Schedule::Join { edges, parts, earlier: true }
    }

    /// fastai v2's `SchedPoly`: `start + (end - start) * pos^power` (fastai v1's
    /// `annealing_poly` is the [`Anneal::Poly`] shape, a different formula).
    pub fn power(start: f64, end: f64, power: f64) -> Result<Self> {
        finite("start", start)?;
        finite("end", end)?;
        finite("power", power)?;
        Ok(Schedule::Power { start, end, power })
    }

    /// fastai v2's `combine_scheds`: part `i` takes the fraction `pcts[i]` of `[0, 1]`.
    pub fn combine(pcts: &[f64], parts: Vec<Schedule>) -> Result<Self> {
        if pcts.len() != parts.len() {
            return Err(CoreError::schedule(
                "pcts",
                format!("needs one fraction per schedule: {} fractions for {} schedules", pcts.len(), parts.len()),
            ));
        }
        for &p in pcts {
            if finite("pcts", p)? <= 0.0 {
                return Err(CoreError::schedule("pcts", format!("expected positive fractions, got {pcts:?}")));
            }
        }
        let total: f64 = pcts.iter().sum();
        if (total - 1.0).abs() > 1e-9 {
            return Err(CoreError::schedule(
                "pcts",
                format!("expected fractions that sum to 1, got {pcts:?} (sum {total})"),
            ));
        }
        let mut edges = Vec::with_capacity(pcts.len() + 1);
        let mut acc = 0.0;
        edges.push(0.0);
        for &p in &pcts[..pcts.len() - 1] {
            acc += p;
            edges.push(acc);
        }
        edges.push(1.0);
        Self::join(edges, parts)
    }

    /// SGDR: `inner` restarted every cycle; cycle `k` is `period * mult^k` long.
    pub fn restarts(period: f64, mult: f64, inner: Schedule) -> Result<Self> {
        if finite("period", period)? <= 0.0 {
            return Err(CoreError::schedule("period", format!("expected a positive number, got {period}")));
        }
        if finite("mult", mult)? < 1.0 {
            return Err(CoreError::schedule("mult", format!("expected a number >= 1, got {mult}")));
        }
        Ok(Schedule::Restarts { period, mult, inner: Box::new(inner) })
    }

    /// Warm-up from `start` to `peak` over the fraction `warmup` of `[0, 1]`, then decay to `end`.
    pub fn warmup_decay(warmup: f64, start: f64, peak: f64, end: f64, up: Anneal, down: Anneal) -> Result<Self> {
        if finite("warmup", warmup)? == 0.0 {
            return Self::anneal(down, peak, end);
        }
        if !(warmup > 0.0 && warmup < 1.0) {
            return Err(CoreError::schedule("warmup", format!("expected a number in [0, 1), got {warmup}")));
        }
        Self::combine(&[warmup, 1.0 - warmup], vec![Self::anneal(up, start, peak)?, Self::anneal(down, peak, end)?])
    }

    /// fastai's one-cycle: cosine from `max/div` up to `max` over `pct_start`, then cosine
    /// down to `max/div_final`.
    pub fn one_cycle(max: f64, pct_start: f64, div: f64, div_final: f64) -> Result<Self> {
        finite("lr_max", max)?;
        for (name, d) in [("div_factor", div), ("final_div", div_final)] {
            if finite(name, d)? <= 0.0 {
                return Err(CoreError::schedule(name, format!("expected a positive number, got {d}")));
            }
        }
        if finite("pct_start", pct_start)? <= 0.0 || pct_start >= 1.0 {
            return Err(CoreError::schedule("pct_start", format!("expected a number in (0, 1), got {pct_start}")));
        }
        Self::warmup_decay(pct_start, max / div, max, max / div_final, Anneal::Cos, Anneal::Cos)
    }

    /// Warmup-stable-decay: `up` from `start` to `peak` over `warmup`, `peak` until
    /// `1 - decay`, then `down` to `end` (fractions of `[0, 1]`).
    pub fn wsd(warmup: f64, decay: f64, start: f64, peak: f64, end: f64, up: Anneal, down: Anneal) -> Result<Self> {
        let (w, d) = (finite("warmup", warmup)?, finite("decay", decay)?);
        if !(0.0..1.0).contains(&w) {
            return Err(CoreError::schedule("warmup", format!("expected a number in [0, 1), got {w}")));
        }
        if !(d > 0.0 && w + d <= 1.0) {
            return Err(CoreError::schedule(
                "decay",
                format!("expected a number in (0, 1 - warmup], got {d} with warmup {w}"),
            ));
        }
        let mut pcts = Vec::new();
        let mut parts = Vec::new();
        if w > 0.0 {
            pcts.push(w);
            parts.push(Self::anneal(up, start, peak)?);
        }
        let stable = 1.0 - w - d;
        if stable > 0.0 {
            pcts.push(stable);
            parts.push(Self::constant(peak)?);
        }
        pcts.push(d);
        parts.push(Self::anneal(down, peak, end)?);
        let total: f64 = pcts.iter().sum();
        let last = pcts.len() - 1;
        pcts[last] += 1.0 - total;
        Self::combine(&pcts, parts)
    }

    /// SGDR (cosine with warm restarts) over positions in steps: cosine from `max` to `min`
    /// over `period` steps, restarting with periods growing by `mult`.
    pub fn sgdr(max: f64, min: f64, period: f64, mult: f64) -> Result<Self> {
        Self::restarts(period, mult, Self::anneal(Anneal::Cos, max, min)?)
    }

    /// The value at `pos` with libm's `cos(π·pct)`: the exact arithmetic of torch's and
    /// Python's formulas (the drop-in schedulers step with this), unchecked.
    pub fn value(&self, pos: f64) -> f64 {
        self.value_by(pos, &|shape, start, end, pct| shape.value(start, end, pct))
    }

    /// The value at `pos` with the vectorizable [`cos_pi`]: what `eval`, `eval_slice` and
    /// `sample` return, so a scalar equals the element of an array at the same position.
    pub fn value_fast(&self, pos: f64) -> f64 {
        self.value_by(pos, &shape_value_fast)
    }

    fn value_by(&self, pos: f64, shape_value: &impl Fn(Anneal, f64, f64, f64) -> f64) -> f64 {
        match self {
            Schedule::Anneal { shape, start, end } => shape_value(*shape, *start, *end, pos),
            Schedule::Power { start, end, power } => power_value(*start, *end, *power, pos),
            Schedule::Join { edges, parts, earlier } => {
                let i = part_index(edges, pos, *earlier);
                parts[i].value_by((pos - edges[i]) / (edges[i + 1] - edges[i]), shape_value)
            }
            Schedule::Restarts { period, mult, inner } => inner.value_by(cycle_pct(pos, *period, *mult), shape_value),
        }
    }

    /// The checked value at `pos`: a non-finite position or result is an error.
    pub fn eval(&self, pos: f64) -> Result<f64> {
        finite("pos", pos)?;
        self.check_pos(pos)?;
        let v = self.value_fast(pos);
        if v.is_finite() {
            Ok(v)
        } else {
            Err(CoreError::schedule("pos", format!("the schedule has no finite value at {pos}")))
        }
    }

    /// Annealing shapes of fractional degree are only defined up to the end of their part.
    fn check_pos(&self, pos: f64) -> Result<()> {
        match self {
            Schedule::Anneal { shape, .. } => shape.check_pct(pos),
            Schedule::Power { power, .. } => {
                if pos < 0.0 && power.fract() != 0.0 {
                    return Err(CoreError::schedule(
                        "pct",
                        format!("expected a position >= 0 for SchedPoly of fractional power {power}, got {pos}"),
                    ));
                }
                Ok(())
            }
            Schedule::Join { edges, parts, earlier } => {
                let i = part_index(edges, pos, *earlier);
                parts[i].check_pos((pos - edges[i]) / (edges[i + 1] - edges[i]))
            }
            Schedule::Restarts { .. } => Ok(()),
        }
    }

    /// The values at every position in one call, on all cores for long inputs.
    pub fn eval_slice(&self, pos: &[f64]) -> Result<Vec<f64>> {
        let mut out = alloc::zeros("pos", pos.len())?;
        let ok = for_chunks(&mut out, |chunk, first| {
            let mut ok = true;
            for (o, &p) in chunk.iter_mut().zip(&pos[first..]) {
                *o = self.value_fast(p);
                ok &= o.is_finite();
            }
            ok
        });
        if !ok {
            for &p in pos {
                self.eval(p)?;
            }
        }
        Ok(out)
    }

    /// The values at the `n` positions `i / n` (a whole schedule of `n` steps, from 0): on
    /// all cores, each part of a join in one vectorized loop.
    pub fn sample(&self, n: usize) -> Result<Vec<f64>> {
        let mut out = alloc::zeros("n", n)?;
        let steps = n as f64;
        if !for_chunks(&mut out, |chunk, first| self.fill_steps(chunk, first, steps)) {
            for i in 0..n {
                self.eval(i as f64 / steps)?;
            }
        }
        Ok(out)
    }

    /// `out[j] = value_fast((first + j) / n)`; false if any value is not finite. The loops
    /// are compiled for AVX-512 and AVX2 as well, chosen at run time: Rust never fuses a
    /// multiply-add on its own, so every instruction set gives the same bits.
    fn fill_steps(&self, out: &mut [f64], first: usize, n: f64) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has just been checked to support the enabled features.
                return unsafe { self.fill_steps_avx512(out, first, n) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { self.fill_steps_avx2(out, first, n) };
            }
        }
        self.fill_steps_generic(out, first, n)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn fill_steps_avx512(&self, out: &mut [f64], first: usize, n: f64) -> bool {
        self.fill_steps_generic(out, first, n)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_steps_avx2(&self, out: &mut [f64], first: usize, n: f64) -> bool {
        self.fill_steps_generic(out, first, n)
    }

    #[inline(always)]
    fn fill_steps_generic(&self, out: &mut [f64], first: usize, n: f64) -> bool {
        match self {
            Schedule::Anneal { shape, start, end } => fill_shape(out, first, n, *shape, *start, *end, |p| p),
            Schedule::Join { edges, parts, earlier } => {
                let mut ok = true;
                let (mut lo, stop) = (first, first + out.len());
                for (i, part) in parts.iter().enumerate() {
                    // Positions grow with the index, so part i is a contiguous run of steps.
                    let hi = if i + 1 == parts.len() {
                        stop
                    } else {
                        first_step_in_next(lo, stop, edges[i + 1], *earlier, |j| j as f64 / n)
                    };
                    let run = &mut out[lo - first..hi - first];
                    let (a, w) = (edges[i], edges[i + 1] - edges[i]);
                    ok &= match part {
                        Schedule::Anneal { shape, start, end } => {
                            fill_shape(run, lo, n, *shape, *start, *end, |p| (p - a) / w)
                        }
                        _ => fill(run, lo, n, |p| part.value_fast((p - a) / w)),
                    };
                    lo = hi;
                }
                ok
            }
            Schedule::Restarts { .. } | Schedule::Power { .. } => fill(out, first, n, |p| self.value_fast(p)),
        }
    }
}

/// The part of a join that `pos` falls in: the first whose end edge is after it (at or
/// after it, if `earlier`).
fn part_index(edges: &[f64], pos: f64, earlier: bool) -> usize {
    let last = edges.len() - 2;
    if earlier {
        (0..last).find(|&i| pos <= edges[i + 1]).unwrap_or(last)
    } else {
        (0..last).find(|&i| pos < edges[i + 1]).unwrap_or(last)
    }
}

/// fastai v2's `SchedPoly` formula.
#[inline(always)]
fn power_value(start: f64, end: f64, power: f64, pos: f64) -> f64 {
    start + (end - start) * pos.powf(power)
}

/// The first step in `lo..stop` whose position belongs to the part after `edge` (`stop` if
/// none): at or past it, or past it if `earlier`; positions grow with the step.
fn first_step_in_next(mut lo: usize, mut stop: usize, edge: f64, earlier: bool, pos: impl Fn(usize) -> f64) -> usize {
    while lo < stop {
        let mid = lo + (stop - lo) / 2;
        let p = pos(mid);
        if p < edge || (earlier && p == edge) {
            lo = mid + 1;
        } else {
            stop = mid;
        }
    }
    lo
}

/// `shape(start, end, pct)`, with [`cos_pi`] for the cosine.
#[inline(always)]
fn shape_value_fast(shape: Anneal, start: f64, end: f64, pct: f64) -> f64 {
    match shape {
        Anneal::Cos => end + (start - end) / 2.0 * (cos_pi(pct) + 1.0),
        other => other.value(start, end, pct),
    }
}

/// Fills `out` with a shape at the steps `first..`, the shape chosen once, outside the loop.
#[inline(always)]
fn fill_shape(
    out: &mut [f64],
    first: usize,
    n: f64,
    shape: Anneal,
    start: f64,
    end: f64,
    pct: impl Fn(f64) -> f64,
) -> bool {
    match shape {
        Anneal::Cos => fill(out, first, n, |p| end + (start - end) / 2.0 * (cos_pi(pct(p)) + 1.0)),
        Anneal::Linear => fill(out, first, n, |p| Anneal::Linear.value(start, end, pct(p))),
        other => fill(out, first, n, |p| other.value(start, end, pct(p))),
    }
}

/// `out[j] = f((first + j) / n)`, a loop simple enough to vectorize; false if any is not finite.
#[inline(always)]
fn fill(out: &mut [f64], first: usize, n: f64, f: impl Fn(f64) -> f64) -> bool {
    debug_assert!(out.len() <= i32::MAX as usize);
    let base = first as f64;
    let mut ok = true;
    for (j, o) in out.iter_mut().enumerate() {
        // `j as i32` converts in SIMD (there is no packed u64 -> f64 before AVX-512); the sum
        // of two integers below 2^53 is exact, so this is `(first + j) as f64`.
        *o = f((base + j as i32 as f64) / n);
        ok &= o.is_finite();
    }
    ok
}

/// Runs `fill(chunk, index of its first element)` over chunks of `out`, on all cores when
/// `out` is long; true if every call returned true.
fn for_chunks(out: &mut [f64], fill: impl Fn(&mut [f64], usize) -> bool + Sync) -> bool {
    const CHUNK: usize = 1 << 14;
    if super::pool::parallel(out.len()) {
        out.par_chunks_mut(CHUNK).enumerate().map(|(k, c)| fill(c, k * CHUNK)).reduce(|| true, |a, b| a & b)
    } else {
        out.chunks_mut(CHUNK).enumerate().all(|(k, c)| fill(c, k * CHUNK))
    }
}

/// The fraction of the current SGDR cycle at `pos`: cycles of `period`, `period*mult`, ….
pub fn cycle_pct(pos: f64, period: f64, mult: f64) -> f64 {
    if pos < 0.0 {
        return pos / period;
    }
    if mult == 1.0 {
        return (pos % period) / period;
    }
    // Cycle n starts at period * (mult^n - 1) / (mult - 1).
    let mut n = ((pos / period * (mult - 1.0) + 1.0).ln() / mult.ln()).floor();
    let start = |n: f64| period * (mult.powf(n) - 1.0) / (mult - 1.0);
    // Guard the logarithm's rounding at cycle boundaries.
    if start(n) > pos {
        n -= 1.0;
    } else if start(n + 1.0) <= pos {
        n += 1.0;
    }
    (pos - start(n)) / (period * mult.powf(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn cos(start: f64, end: f64) -> Schedule {
        Schedule::anneal(Anneal::Cos, start, end).unwrap()
    }

    #[test]
    fn anneal_is_the_shape() {
        let s = cos(1.0, 0.0);
        for p in [0.0, 0.25, 0.5, 1.0] {
            assert_eq!(s.eval(p).unwrap(), Anneal::Cos.value(1.0, 0.0, p));
        }
        assert_eq!(Schedule::constant(3.0).unwrap().eval(0.7).unwrap(), 3.0);
    }

    #[test]
    fn combine_joins_at_boundaries() {
        let s = Schedule::combine(&[0.25, 0.75], vec![cos(0.1, 1.0), cos(1.0, 0.0)]).unwrap();
        assert_eq!(s.eval(0.0).unwrap(), Anneal::Cos.value(0.1, 1.0, 0.0));
        assert_eq!(s.eval(0.25).unwrap(), 1.0);
        assert_eq!(s.eval(1.0).unwrap(), 0.0);
        assert_eq!(s.eval(0.125).unwrap(), Anneal::Cos.value(0.1, 1.0, 0.5));
        assert_eq!(s.eval(0.625).unwrap(), Anneal::Cos.value(1.0, 0.0, 0.5));
    }

    #[test]
    fn one_cycle_matches_fastai() {
        let s = Schedule::one_cycle(1.0, 0.3, 25.0, 25e4).unwrap();
        assert!((s.eval(0.0).unwrap() - 1.0 / 25.0).abs() < 1e-16);
        assert!((s.eval(0.3).unwrap() - 1.0).abs() < 1e-15);
        assert!((s.eval(1.0).unwrap() - 1.0 / 25e4).abs() < 1e-18);
    }

    #[test]
    fn wsd_has_three_stages() {
        let s = Schedule::wsd(0.1, 0.2, 0.0, 1.0, 0.1, Anneal::Linear, Anneal::Cos).unwrap();
        assert_eq!(s.eval(0.05).unwrap(), 0.5);
        assert_eq!(s.eval(0.5).unwrap(), 1.0);
        assert!((s.eval(1.0).unwrap() - 0.1).abs() < 1e-15);
        let no_warmup = Schedule::wsd(0.0, 0.5, 0.0, 1.0, 0.0, Anneal::Linear, Anneal::Linear).unwrap();
        assert_eq!(no_warmup.eval(0.75).unwrap(), 0.5);
    }

    #[test]
    fn sgdr_restarts() {
        let s = Schedule::sgdr(1.0, 0.0, 10.0, 2.0).unwrap();
        assert_eq!(s.eval(0.0).unwrap(), 1.0);
        assert_eq!(s.eval(10.0).unwrap(), 1.0);
        assert_eq!(s.eval(30.0).unwrap(), 1.0);
        assert_eq!(s.eval(20.0).unwrap(), 0.5 * ((PI * 0.5).cos() + 1.0));
        let flat = Schedule::sgdr(1.0, 0.0, 4.0, 1.0).unwrap();
        assert_eq!(flat.eval(6.0).unwrap(), flat.eval(2.0).unwrap());
        for k in 0..20 {
            let start = 10.0 * (2f64.powi(k) - 1.0);
            assert_eq!(cycle_pct(start, 10.0, 2.0), 0.0, "cycle {k}");
        }
    }

    #[test]
    fn arrays_equal_scalars() {
        let s = Schedule::one_cycle(0.5, 0.25, 10.0, 1e4).unwrap();
        let n = 100_003;
        let all = s.sample(n).unwrap();
        for (i, v) in all.iter().enumerate() {
            assert_eq!(*v, s.eval(i as f64 / n as f64).unwrap());
        }
        let pos: Vec<f64> = (0..1000).map(|i| i as f64 / 999.0).collect();
        let vals = s.eval_slice(&pos).unwrap();
        assert_eq!(vals[999], s.eval(1.0).unwrap());
    }

    #[test]
    fn bad_arguments_name_themselves() {
        let arg = |r: Result<Schedule>| r.unwrap_err().arg();
        assert_eq!(arg(Schedule::combine(&[0.5, 0.4], vec![cos(1.0, 0.0), cos(1.0, 0.0)])), Some("pcts"));
        assert_eq!(arg(Schedule::combine(&[0.5], vec![cos(1.0, 0.0), cos(1.0, 0.0)])), Some("pcts"));
        assert_eq!(arg(Schedule::join(vec![0.0, 0.0], vec![cos(1.0, 0.0)])), Some("edges"));
        assert_eq!(arg(Schedule::join(vec![0.0], vec![])), Some("scheds"));
        assert_eq!(arg(Schedule::one_cycle(1.0, 1.5, 25.0, 1e4)), Some("pct_start"));
        assert_eq!(arg(Schedule::one_cycle(1.0, 0.3, 0.0, 1e4)), Some("div_factor"));
        assert_eq!(arg(Schedule::sgdr(1.0, 0.0, 0.0, 1.0)), Some("period"));
        assert_eq!(arg(Schedule::sgdr(1.0, 0.0, 1.0, 0.5)), Some("mult"));
        assert_eq!(arg(Schedule::anneal(Anneal::Exp, 0.0, 1.0)), Some("start"));
        // the bindings raise ScheduleError for these, however deep the check that failed
        assert!(matches!(Schedule::anneal(Anneal::Exp, 0.0, 1.0), Err(CoreError::Schedule { .. })));
        assert!(matches!(Schedule::constant(f64::NAN), Err(CoreError::Schedule { .. })));
        assert_eq!(arg(Schedule::wsd(0.5, 0.6, 0.0, 1.0, 0.0, Anneal::Linear, Anneal::Cos)), Some("decay"));
        assert_eq!(cos(1.0, 0.0).eval(f64::NAN).unwrap_err().arg(), Some("pos"));
        let frac = Schedule::anneal(Anneal::Poly(0.5), 1.0, 0.0).unwrap();
        assert_eq!(frac.eval(1.5).unwrap_err().arg(), Some("pct"));
        assert_eq!(frac.eval_slice(&[0.5, 2.0]).unwrap_err().arg(), Some("pct"));
    }

    #[test]
    fn a_position_at_an_inner_edge_goes_to_the_later_part() {
        // fastai v2's SGDR: each cycle restarts at its maximum, never at the previous minimum.
        let s = Schedule::combine(&[0.25, 0.75], vec![cos(1.0, 0.0), cos(1.0, 0.0)]).unwrap();
        assert_eq!(s.eval(0.25).unwrap(), 1.0);
        assert_eq!(s.eval(1.0).unwrap(), 0.0);
        assert_eq!(s.sample(4).unwrap()[1], 1.0, "the sampled path takes the same part");
        let torch = Schedule::join_unchecked(vec![0.0, 1.0, 2.0], vec![cos(1.0, 0.0), cos(1.0, 0.0)]);
        assert_eq!(torch.eval(1.0).unwrap(), 0.0);
        assert_eq!(
            torch.sample(4).unwrap(),
            vec![1.0, torch.eval(0.25).unwrap(), torch.eval(0.5).unwrap(), torch.eval(0.75).unwrap()]
        );
        let join = Schedule::join(vec![0.0, 2.0, 4.0], vec![cos(1.0, 0.0), cos(3.0, 0.0)]).unwrap();
        let pos: Vec<f64> = (0..8).map(|i| i as f64 / 2.0).collect();
        let vals = join.eval_slice(&pos).unwrap();
        assert_eq!(vals[4], 3.0);
        for (p, v) in pos.iter().zip(&vals) {
            assert_eq!(*v, join.eval(*p).unwrap());
        }
    }

    #[test]
    fn power_is_fastai_v2_sched_poly() {
        let s = Schedule::power(1.0, 0.0, 2.0).unwrap();
        assert_eq!(s.eval(0.5).unwrap(), 0.75);
        assert_eq!(s.eval(0.0).unwrap(), 1.0);
        assert_eq!(s.eval(1.0).unwrap(), 0.0);
        let n = 1000;
        let all = s.sample(n).unwrap();
        for (i, v) in all.iter().enumerate() {
            assert_eq!(*v, 1.0 - (i as f64 / n as f64).powf(2.0));
        }
        let frac = Schedule::power(1.0, 0.0, 0.5).unwrap();
        assert_eq!(frac.eval(-0.5).unwrap_err().arg(), Some("pct"));
        assert_eq!(Schedule::power(1.0, 0.0, f64::NAN).unwrap_err().arg(), Some("power"));
    }
}

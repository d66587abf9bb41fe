//! `cos(π·x)` without branches, so that loops over whole schedules vectorize.
//!
//! libm's `cos` is one opaque call per element; this kernel is straight-line arithmetic the
//! compiler turns into SIMD. It is accurate to about 1 ulp of the true `cos(π·x)` (libm's
//! `cos(π*x)` is itself off by up to |sin|·ulp(π·x) from rounding `π*x` first), and exact
//! at the points schedules land on: `cos_pi(0) = 1`, `cos_pi(1) = -1`, `cos_pi(0.5) = 0`.

/// `cos(π·x)` for finite `x`; `|x| ≥ 2^51` (far outside any schedule) is read as `x = 0`.
#[inline(always)]
pub fn cos_pi(x: f64) -> f64 {
    // Round-to-nearest of x/2 by the 1.5·2^52 trick (no libm call, so it vectorizes).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const HUGE: f64 = 2_251_799_813_685_248.0; // 2^51
    let k = (x * 0.5 + ROUND) - ROUND;
    // Reduce by the period 2 and evenness: r = |x - 2k| in [0, 1], computed exactly.
    let r = if x.abs() < HUGE { (x - 2.0 * k).abs() } else { 0.0 };
    // cos(π r) = -cos(π (1 - r)): fold to b in [0, 1/2].
    let flip = r > 0.5;
    let b = if flip { 1.0 - r } else { r };
    // On [0, 1/4] use the cosine series in b; on (1/4, 1/2] the sine series in 1/2 - b (exact).
    let c = 0.5 - b;
    let v = if b <= 0.25 { cos_series(b * b) } else { c * sin_series(c * c) };
    if flip {
        -v
    } else {
        v
    }
}

/// `cos(π·b)` as a series in `z = b²`, for `b` in [0, 1/4] (truncation below 1e-18).
#[inline(always)]
fn cos_series(z: f64) -> f64 {
    const C: [f64; 9] = [
        1.0,
        -4.934802200544679,
        4.0587121264167685,
        -1.3352627688545895,
        0.2353306303588932,
        -0.02580689139001406,
        0.0019295743094039231,
        -0.0001046381049248457,
        4.303069587032947e-06,
    ];
    horner(&C, z)
}

/// `sin(π·c) / c` as a series in `z = c²`, for `c` in [0, 1/4].
#[inline(always)]
fn sin_series(z: f64) -> f64 {
    const S: [f64; 9] = [
        std::f64::consts::PI,
        -5.16771278004997,
        2.5501640398773455,
        -0.5992645293207921,
        0.08214588661112823,
        -0.0073704309457143504,
        0.00046630280576761255,
        -2.1915353447830217e-05,
        7.952054001475513e-07,
    ];
    horner(&S, z)
}

#[inline(always)]
fn horner(coefs: &[f64; 9], z: f64) -> f64 {
    coefs.iter().rev().fold(0.0, |acc, &c| acc * z + c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn exact_where_schedules_land() {
        assert_eq!(cos_pi(0.0), 1.0);
        assert_eq!(cos_pi(1.0), -1.0);
        assert_eq!(cos_pi(-1.0), -1.0);
        assert_eq!(cos_pi(2.0), 1.0);
        assert_eq!(cos_pi(0.5), 0.0);
        assert_eq!(cos_pi(1.5), 0.0);
    }

    #[test]
    fn agrees_with_libm_within_its_own_rounding() {
        // libm sees the rounded argument fl(π·x): allow |sin(πx)|·ulp(πx) plus 1 ulp.
        let n = 200_000;
        for i in 0..=n {
            let x = -3.0 + 6.0 * i as f64 / n as f64;
            let (ours, libm) = (cos_pi(x), (PI * x).cos());
            let tol = 2.5e-16 + (PI * x).abs() * f64::EPSILON;
            assert!((ours - libm).abs() <= tol, "x = {x}: {ours} vs {libm}");
        }
    }

    #[test]
    fn symmetric_and_bounded() {
        for i in 0..10_000 {
            let x = i as f64 / 9_999.0;
            let v = cos_pi(x);
            assert!((-1.0..=1.0).contains(&v));
            assert_eq!(v, cos_pi(-x));
            if x >= 0.5 {
                assert_eq!(v, -cos_pi(1.0 - x), "x = {x}: 1 - x is exact here");
            }
        }
    }
}

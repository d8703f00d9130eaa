//! Deterministic `pow` and `sin` for the per-tube hot loops, written with
//! the four basic operations and bit operations only (no fused multiply–add,
//! no platform libm), so native and wasm32 builds give the same bits. They are faster than the
//! general `libm` routines because they serve a restricted domain and fall
//! back to `libm` outside it:
//!
//! * `pow_pos(x, y)` for finite positive normal `x` and results within
//!   [1e-300, 1e300]: x^y = exp(y · ln x) with ln x carried as a
//!   double-double (Dekker's exact product, no FMA), error a few ulp;
//! * `sin(x)` for |x| <= 8 (phase differences lie in (−2π, 2π)): Cody–Waite
//!   reduction by π/2 in three parts and Taylor polynomials on [−π/4, π/4],
//!   error about one ulp.

/// ln 2 rounded to 32 significant bits.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10; // ln 2 − LN2_HI
const INV_LN2: f64 = core::f64::consts::LOG2_E;
/// 1.5 · 2^52: adding and subtracting it rounds a small double to an integer
/// (round to nearest even), the same on every IEEE 754 machine.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// Veltkamp split of a double into a 26-bit high part and the rest.
#[inline(always)]
fn split(a: f64) -> (f64, f64) {
    let c = 134_217_729.0 * a; // 2^27 + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

/// a·b = p + e exactly (Dekker), without fused multiply–add.
#[inline(always)]
fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    let e = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
    (p, e)
}

/// Bits of 1.0, of ROUND, and the mantissa mask.
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
const ROUND_BITS: u64 = 0x4338_0000_0000_0000;
const MANT: u64 = 0x000f_ffff_ffff_ffff;

/// x^y without branches (so that loops over many x vectorise), or NaN where
/// x is not a positive normal double or the result would leave
/// [1e-300, 1e300]: ln x as a double-double, times y with Dekker's exact
/// product, then exp.
#[inline(always)]
fn pow_core(x: f64, y: f64) -> f64 {
    // ln x: x = m·2^e with m in [√½, √2); e·ln2 + 2·atanh((m−1)/(m+1)).
    let bits = x.to_bits();
    let m0 = f64::from_bits((bits & MANT) | ONE_BITS);
    let big = m0 > core::f64::consts::SQRT_2;
    let m = if big { m0 * 0.5 } else { m0 };
    // The biased exponent as a double, exactly (2^52 + e − 2^52).
    let eb = f64::from_bits(0x4330_0000_0000_0000 | ((bits >> 52) & 0x7ff)) - 4_503_599_627_370_496.0;
    let ef = (eb - 1023.0) + if big { 1.0 } else { 0.0 };
    // s = (m−1)/(m+1); m−1 is exact (Sterbenz).
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 2·atanh(s) = 2s + 2s³/3 + 2s⁵/5 + … (|s| <= 0.1716, s² <= 0.0295: the
    // first omitted term is below 3e-17 of 2s).
    let mut p = 2.0 / 21.0;
    p = p * s2 + 2.0 / 19.0;
    p = p * s2 + 2.0 / 17.0;
    p = p * s2 + 2.0 / 15.0;
    p = p * s2 + 2.0 / 13.0;
    p = p * s2 + 2.0 / 11.0;
    p = p * s2 + 2.0 / 9.0;
    p = p * s2 + 2.0 / 7.0;
    p = p * s2 + 2.0 / 5.0;
    p = p * s2 + 2.0 / 3.0;
    let lm_tail = s * s2 * p;
    // e·LN2_HI is exact (|e| < 2^11, LN2_HI has 32 bits); 2s is exact; add
    // them with an error-free sum (Fast2Sum, larger operand first).
    let a = ef * LN2_HI;
    let b = 2.0 * s;
    let sum = a + b;
    let err = if a.abs() >= b.abs() { (a - sum) + b } else { (b - sum) + a };
    let lo = err + (lm_tail + ef * LN2_LO);
    let lh = sum + lo;
    let ll = lo - (lh - sum);
    // y · ln x as hi + lo.
    let (ph, pe) = two_prod(y, lh);
    let t = pe + y * ll;
    let hi = ph + t;
    let lo = t - (hi - ph);
    // exp(hi + lo): k = round(hi / ln2), r = hi + lo − k·ln2 (k·LN2_HI exact).
    let kx = hi * INV_LN2 + ROUND;
    let k = kx - ROUND;
    let r = ((hi - k * LN2_HI) + lo) - k * LN2_LO;
    // Taylor series of exp on |r| <= 0.35 (+ a little): degree 13.
    let mut q = 1.0 / 6_227_020_800.0;
    q = q * r + 1.0 / 479_001_600.0;
    q = q * r + 1.0 / 39_916_800.0;
    q = q * r + 1.0 / 3_628_800.0;
    q = q * r + 1.0 / 362_880.0;
    q = q * r + 1.0 / 40_320.0;
    q = q * r + 1.0 / 5_040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    let e = 1.0 + (r + r * r * q);
    // 2^k from the integer held in the low bits of kx.
    let scale = f64::from_bits(kx.to_bits().wrapping_sub(ROUND_BITS).wrapping_add(1023) << 52);
    let ok = (f64::MIN_POSITIVE..=f64::MAX).contains(&x) && hi.abs() <= 690.0;
    if ok {
        e * scale
    } else {
        f64::NAN
    }
}

/// x^y (see the module notes); outside the fast domain, `libm::pow`.
#[inline]
pub fn pow_pos(x: f64, y: f64) -> f64 {
    let v = if y.is_finite() { pow_core(x, y) } else { f64::NAN };
    if v.is_nan() {
        libm::pow(x, y)
    } else {
        v
    }
}

/// `xs[i] = pow_pos(xs[i], y)` for every i, bit for bit, in a loop that
/// vectorises (the rare slow cases are redone one by one afterwards); on
/// x86_64 with AVX2 (checked at run time) four lanes at a time. Lanes do the
/// scalar operations, so the vector width never changes a bit.
pub fn pow_pos_all(xs: &mut [f64], y: f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { pow_pos_all_avx2(xs, y) };
        }
    }
    pow_pos_all_impl(xs, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pow_pos_all_avx2(xs: &mut [f64], y: f64) {
    pow_pos_all_impl(xs, y)
}

#[inline(always)]
fn pow_pos_all_impl(xs: &mut [f64], y: f64) {
    if y.is_finite() {
        let mut fast = [0.0f64; 8];
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            for (o, &x) in fast.iter_mut().zip(c.iter()) {
                *o = pow_core(x, y);
            }
            for (x, &v) in c.iter_mut().zip(&fast) {
                *x = if v.is_nan() { libm::pow(*x, y) } else { v };
            }
        }
        for x in chunks.into_remainder() {
            *x = pow_pos(*x, y);
        }
    } else {
        for x in xs.iter_mut() {
            *x = libm::pow(*x, y);
        }
    }
}

// π/2 = PIO2_1 + PIO2_2 + PIO2_3 (the first two have 33 bits, so k·part is
// exact for |k| < 2^20).
const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
const PIO2_2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
const PIO2_3: f64 = f64::from_bits(0x3ba3_198a_2e03_7073);
const FRAC_2_PI: f64 = core::f64::consts::FRAC_2_PI;

#[inline(always)]
fn sin_poly(r: f64) -> f64 {
    let z = r * r;
    let mut p = -1.0 / 1_307_674_368_000.0; // −1/15!
    p = p * z + 1.0 / 6_227_020_800.0;
    p = p * z - 1.0 / 39_916_800.0;
    p = p * z + 1.0 / 362_880.0;
    p = p * z - 1.0 / 5_040.0;
    p = p * z + 1.0 / 120.0;
    p = p * z - 1.0 / 6.0;
    r + r * z * p
}

#[inline(always)]
fn cos_poly(r: f64) -> f64 {
    let z = r * r;
    let mut p = 1.0 / 20_922_789_888_000.0; // 1/16!
    p = p * z - 1.0 / 87_178_291_200.0;
    p = p * z + 1.0 / 479_001_600.0;
    p = p * z - 1.0 / 3_628_800.0;
    p = p * z + 1.0 / 40_320.0;
    p = p * z - 1.0 / 720.0;
    p = p * z + 1.0 / 24.0;
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    w + (((1.0 - w) - hz) + z * z * p)
}

/// sin x without branches, or NaN unless |x| <= 8.
#[inline(always)]
fn sin_core(x: f64) -> f64 {
    let kx = x * FRAC_2_PI + ROUND;
    let k = kx - ROUND;
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3;
    // Quadrant = k mod 4, from the low bits of kx (two's complement).
    let quadrant = kx.to_bits() & 3;
    let (sp, cp) = (sin_poly(r), cos_poly(r));
    let v = if quadrant & 1 == 0 { sp } else { cp };
    let v = if quadrant & 2 == 0 { v } else { -v };
    if x.abs() <= 8.0 {
        v
    } else {
        f64::NAN
    }
}

/// sin x; |x| <= 8 takes the fast path, anything else `libm::sin`.
#[inline]
pub fn sin(x: f64) -> f64 {
    let v = sin_core(x);
    if v.is_nan() {
        libm::sin(x)
    } else {
        v
    }
}

/// `xs[i] = sin(xs[i])` for every i, bit for bit, in a loop that vectorises
/// (AVX2 chosen at run time on x86_64, as for `pow_pos_all`).
pub fn sin_all(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { sin_all_avx2(xs) };
        }
    }
    sin_all_impl(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sin_all_avx2(xs: &mut [f64]) {
    sin_all_impl(xs)
}

#[inline(always)]
fn sin_all_impl(xs: &mut [f64]) {
    let mut fast = [0.0f64; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        for (o, &x) in fast.iter_mut().zip(c.iter()) {
            *o = sin_core(x);
        }
        for (x, &v) in c.iter_mut().zip(&fast) {
            *x = if v.is_nan() { libm::sin(*x) } else { v };
        }
    }
    for x in chunks.into_remainder() {
        *x = sin(*x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs() / f64::EPSILON
    }

    #[test]
    fn pow_matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        let mut x = 1e-150f64;
        while x < 1e150 {
            for y in [1.8, 1.0, 0.5, 2.0, 3.7, 0.1] {
                let got = pow_pos(x, y);
                let want = libm::pow(x, y);
                worst = worst.max(ulps(got, want));
            }
            x *= 1.37;
        }
        assert!(worst < 8.0, "worst error {worst} ulp");
        assert_eq!(pow_pos(1.0, 1.8), 1.0);
        assert_eq!(pow_pos(4.0, 0.5), 2.0);
        // Outside the fast domain: libm's answer, exactly.
        assert_eq!(pow_pos(0.0, 1.8), 0.0);
        assert_eq!(pow_pos(1e-310, 1.8), libm::pow(1e-310, 1.8));
        assert_eq!(pow_pos(1e-200, 1.8), libm::pow(1e-200, 1.8));
    }

    #[test]
    fn sin_matches_libm_to_about_one_ulp() {
        let mut worst = 0.0f64;
        for i in -80_000..=80_000 {
            let x = i as f64 * 1e-4 + 1e-9;
            let (got, want) = (sin(x), libm::sin(x));
            // Absolute error relative to the function's scale near zeros.
            worst = worst.max((got - want).abs() / f64::EPSILON);
        }
        assert!(worst <= 2.0, "worst error {worst} eps");
        assert_eq!(sin(0.0), 0.0);
        assert_eq!(sin(100.0), libm::sin(100.0));
    }

    #[test]
    fn batches_give_the_scalar_bits() {
        let mut xs: Vec<f64> = (0..1000).map(|i| libm::pow(1.09, i as f64 - 700.0) * (1.0 + 0.1 * (i % 7) as f64)).collect();
        xs.extend([0.0, 1e-310, f64::INFINITY, f64::NAN, 1e-320, 1.0]);
        let mut batch = xs.clone();
        pow_pos_all(&mut batch, 1.8);
        for (x, b) in xs.iter().zip(&batch) {
            assert_eq!(pow_pos(*x, 1.8).to_bits(), b.to_bits(), "{x}");
        }
        let mut ys: Vec<f64> = (0..1003).map(|i| (i as f64 - 500.0) * 0.0173).collect();
        ys.extend([9.0, -8.5, f64::NAN]);
        let mut batch = ys.clone();
        sin_all(&mut batch);
        for (x, b) in ys.iter().zip(&batch) {
            assert_eq!(sin(*x).to_bits(), b.to_bits(), "{x}");
        }
    }
}

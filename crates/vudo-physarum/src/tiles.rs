//! Register-tiled dense kernels of the supernodal factorization, with one
//! implementation per instruction set: AVX2 (x86_64, chosen at run time),
//! wasm `simd128`, and plain scalar code. Each lane performs exactly the
//! scalar sequence of IEEE operations (a separate multiply, then an add or
//! subtract, terms in ascending order; never a fused multiply–add), so all
//! three give the same bits.
//!
//! A tile is up to 8 rows × 4 columns held in registers; `acc[q][r]` is row r
//! of column q.

pub type Tile = [[f64; 8]; 4];

/// Rows per tile of the vector kernel selected by `avx`.
#[inline(always)]
pub const fn rows(avx: bool) -> usize {
    if avx {
        8
    } else {
        4
    }
}

/// acc[q][r] = Σ_k a[at + k·stride + r] · t[4k + q], summed from +0 in
/// ascending k, for the `rows(avx)` rows r (or one row when `one`).
#[inline(always)]
pub fn sum(avx: bool, one: bool, a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    if one {
        return sum_scalar::<1>(a, at, stride, nk, t, acc);
    }
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: `avx` is only true inside functions compiled for AVX2 that
        // run after `is_x86_feature_detected!("avx2")`.
        return unsafe { sum_avx2(a, at, stride, nk, t, acc) };
    }
    let _ = avx;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    sum_simd128(a, at, stride, nk, t, acc);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    sum_scalar::<4>(a, at, stride, nk, t, acc);
}

/// For the columns q < w: acc[q][r] = b[(k0+q)·nr + i + r] − Σ_{j<k0}
/// b[j·nr + i + r] · t[4j + q], subtracted in ascending j, then stored back
/// (the whole tile: rows above a column's diagonal are scratch, never read).
#[inline(always)]
pub fn panel(avx: bool, one: bool, b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64]) {
    if one {
        return panel_scalar::<1>(b, i, nr, k0, w, t);
    }
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: as in `sum`.
        return unsafe { panel_avx2(b, i, nr, k0, w, t) };
    }
    let _ = avx;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    panel_simd128(b, i, nr, k0, w, t);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    panel_scalar::<4>(b, i, nr, k0, w, t);
}

#[inline(always)]
fn sum_scalar<const R: usize>(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    *acc = [[0.0; 8]; 4];
    for (k, tk) in t.chunks_exact(4).enumerate().take(nk) {
        let x = &a[at + k * stride..at + k * stride + R];
        for q in 0..4 {
            for r in 0..R {
                acc[q][r] = acc[q][r] + x[r] * tk[q];
            }
        }
    }
}

#[inline(always)]
fn panel_scalar<const R: usize>(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64]) {
    let mut acc = [[0.0f64; R]; 4];
    for q in 0..w {
        acc[q].copy_from_slice(&b[(k0 + q) * nr + i..(k0 + q) * nr + i + R]);
    }
    for (j, tj) in t.chunks_exact(4).enumerate().take(k0) {
        let x = &b[j * nr + i..j * nr + i + R];
        for q in 0..4 {
            for r in 0..R {
                acc[q][r] = acc[q][r] - x[r] * tj[q];
            }
        }
    }
    for q in 0..w {
        b[(k0 + q) * nr + i..(k0 + q) * nr + i + R].copy_from_slice(&acc[q]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    use core::arch::x86_64::*;
    if nk == 0 {
        *acc = [[0.0; 8]; 4];
        return;
    }
    // Every load below stays inside these bounds.
    assert!(at + (nk - 1) * stride + 8 <= a.len() && 4 * nk <= t.len());
    let (pa, pt) = (a.as_ptr().add(at), t.as_ptr());
    let mut c = [_mm256_setzero_pd(); 8];
    for k in 0..nk {
        let lo = _mm256_loadu_pd(pa.add(k * stride));
        let hi = _mm256_loadu_pd(pa.add(k * stride + 4));
        for q in 0..4 {
            let tq = _mm256_broadcast_sd(&*pt.add(4 * k + q));
            c[2 * q] = _mm256_add_pd(c[2 * q], _mm256_mul_pd(lo, tq));
            c[2 * q + 1] = _mm256_add_pd(c[2 * q + 1], _mm256_mul_pd(hi, tq));
        }
    }
    for q in 0..4 {
        _mm256_storeu_pd(acc[q].as_mut_ptr(), c[2 * q]);
        _mm256_storeu_pd(acc[q].as_mut_ptr().add(4), c[2 * q + 1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn panel_avx2(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64]) {
    use core::arch::x86_64::*;
    // Every load and store below stays inside these bounds.
    assert!(w <= 4 && (k0 + w - 1) * nr + i + 8 <= b.len() && i + 8 <= nr && 4 * k0 <= t.len());
    let (pb, pt) = (b.as_mut_ptr(), t.as_ptr());
    let mut c = [_mm256_setzero_pd(); 8];
    for q in 0..w {
        c[2 * q] = _mm256_loadu_pd(pb.add((k0 + q) * nr + i));
        c[2 * q + 1] = _mm256_loadu_pd(pb.add((k0 + q) * nr + i + 4));
    }
    for j in 0..k0 {
        let lo = _mm256_loadu_pd(pb.add(j * nr + i));
        let hi = _mm256_loadu_pd(pb.add(j * nr + i + 4));
        for q in 0..4 {
            let tq = _mm256_broadcast_sd(&*pt.add(4 * j + q));
            c[2 * q] = _mm256_sub_pd(c[2 * q], _mm256_mul_pd(lo, tq));
            c[2 * q + 1] = _mm256_sub_pd(c[2 * q + 1], _mm256_mul_pd(hi, tq));
        }
    }
    for q in 0..w {
        _mm256_storeu_pd(pb.add((k0 + q) * nr + i), c[2 * q]);
        _mm256_storeu_pd(pb.add((k0 + q) * nr + i + 4), c[2 * q + 1]);
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn sum_simd128(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    use core::arch::wasm32::*;
    *acc = [[0.0; 8]; 4];
    if nk == 0 {
        return;
    }
    // Every load below stays inside these bounds.
    assert!(at + (nk - 1) * stride + 4 <= a.len() && 4 * nk <= t.len());
    let mut c = [f64x2_splat(0.0); 8];
    for k in 0..nk {
        // SAFETY: in bounds by the assertion above (unaligned loads are allowed).
        let (lo, hi) = unsafe {
            let p = a.as_ptr().add(at + k * stride);
            (v128_load(p as *const v128), v128_load(p.add(2) as *const v128))
        };
        for q in 0..4 {
            // SAFETY: 4k + q < 4·nk <= t.len().
            let tq = f64x2_splat(unsafe { *t.get_unchecked(4 * k + q) });
            c[2 * q] = f64x2_add(c[2 * q], f64x2_mul(lo, tq));
            c[2 * q + 1] = f64x2_add(c[2 * q + 1], f64x2_mul(hi, tq));
        }
    }
    for q in 0..4 {
        acc[q][0] = f64x2_extract_lane::<0>(c[2 * q]);
        acc[q][1] = f64x2_extract_lane::<1>(c[2 * q]);
        acc[q][2] = f64x2_extract_lane::<0>(c[2 * q + 1]);
        acc[q][3] = f64x2_extract_lane::<1>(c[2 * q + 1]);
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn panel_simd128(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64]) {
    use core::arch::wasm32::*;
    // Every load and store below stays inside these bounds.
    assert!(w <= 4 && (k0 + w - 1) * nr + i + 4 <= b.len() && i + 4 <= nr && 4 * k0 <= t.len());
    let pb = b.as_mut_ptr();
    let mut c = [f64x2_splat(0.0); 8];
    // SAFETY (all blocks below): offsets are within the asserted bounds.
    for q in 0..w {
        unsafe {
            c[2 * q] = v128_load(pb.add((k0 + q) * nr + i) as *const v128);
            c[2 * q + 1] = v128_load(pb.add((k0 + q) * nr + i + 2) as *const v128);
        }
    }
    for j in 0..k0 {
        let (lo, hi) = unsafe { (v128_load(pb.add(j * nr + i) as *const v128), v128_load(pb.add(j * nr + i + 2) as *const v128)) };
        for q in 0..4 {
            let tq = f64x2_splat(unsafe { *t.get_unchecked(4 * j + q) });
            c[2 * q] = f64x2_sub(c[2 * q], f64x2_mul(lo, tq));
            c[2 * q + 1] = f64x2_sub(c[2 * q + 1], f64x2_mul(hi, tq));
        }
    }
    for q in 0..w {
        unsafe {
            v128_store(pb.add((k0 + q) * nr + i) as *mut v128, c[2 * q]);
            v128_store(pb.add((k0 + q) * nr + i + 2) as *mut v128, c[2 * q + 1]);
        }
    }
}

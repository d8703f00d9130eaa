//! Register-tiled dense kernels of the supernodal factorization, with one
//! implementation per instruction set: AVX2 (x86_64, chosen at run time),
//! wasm `simd128`, and plain scalar code. Each lane performs exactly the
//! scalar sequence of IEEE operations (a separate multiply, then an add or
//! subtract, terms in ascending order; never a fused multiply–add), so all
//! three give the same bits.
//!
//! A tile is up to 8 rows × 4 columns held in registers; `acc[q][r]` is row r
//! of column q. The widest kernel that fits the rows left is used (AVX2: 8
//! or 4 rows, and the last 1–7 rows in one tile whose last vector is masked;
//! simd128: 4 or 2, then single rows; scalar: 4, then single rows). Rows are
//! independent, so how they are grouped never changes a bit.

pub type Tile = [[f64; 8]; 4];

/// acc[q][r] = Σ_k a[at + k·stride + r] · t[4k + q], summed from +0 in
/// ascending k, for as many rows r as the widest kernel takes out of
/// `avail` (>= 1); returns that number of rows.
#[allow(clippy::too_many_arguments)] // a tile is described by its operands and their layout
#[inline(always)]
pub fn sum(avx: bool, avail: usize, a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) -> usize {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: `avx` is only true inside functions compiled for AVX2 that
        // run after `is_x86_feature_detected!("avx2")`.
        unsafe {
            return match avail {
                8.. => {
                    sum_avx2::<2, false>(a, at, stride, nk, t, acc, 4);
                    8
                }
                5..=7 => {
                    sum_avx2::<2, true>(a, at, stride, nk, t, acc, avail - 4);
                    avail
                }
                4 => {
                    sum_avx2::<1, false>(a, at, stride, nk, t, acc, 4);
                    4
                }
                _ => {
                    sum_avx2::<1, true>(a, at, stride, nk, t, acc, avail);
                    avail
                }
            };
        }
    }
    let _ = avx;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        if avail >= 4 {
            sum_simd128::<2>(a, at, stride, nk, t, acc);
            return 4;
        }
        if avail >= 2 {
            sum_simd128::<1>(a, at, stride, nk, t, acc);
            return 2;
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    if avail >= 4 {
        sum_scalar::<4>(a, at, stride, nk, t, acc);
        return 4;
    }
    sum_scalar::<1>(a, at, stride, nk, t, acc);
    1
}

/// How a panel's own columns are finished below its diagonal block: column
/// q first subtracts `b[k0+p] · t[p][q]` for p < q (ascending, b[k0+p]
/// already finished), then is multiplied by `inv[q]`. With `t[p][q]` =
/// L(k0+q, k0+p)·d_p and `inv[q]` = 1/d_q these are the column-by-column
/// LDLᵀ steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Finish {
    pub t: [[f64; 4]; 4],
    pub inv: [f64; 4],
}

/// For the columns q < w: acc[q][r] = b[(k0+q)·nr + i + r] − Σ_{j<k0}
/// b[j·nr + i + r] · t[4j + q], subtracted in ascending j, then (with
/// `fin`) finished as `Finish` says, and stored back, for as many rows as
/// the widest kernel takes out of `end − i`; returns that number of rows.
#[allow(clippy::too_many_arguments)] // a tile is described by its operands and their layout
#[inline(always)]
pub fn panel(avx: bool, b: &mut [f64], i: usize, end: usize, nr: usize, k0: usize, w: usize, t: &[f64], fin: Option<&Finish>) -> usize {
    assert!(i < end && end <= nr);
    let avail = end - i;
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: as in `sum`.
        unsafe {
            return match avail {
                8.. => {
                    panel_avx2::<2, false>(b, i, nr, k0, w, t, fin, 4);
                    8
                }
                5..=7 => {
                    panel_avx2::<2, true>(b, i, nr, k0, w, t, fin, avail - 4);
                    avail
                }
                4 => {
                    panel_avx2::<1, false>(b, i, nr, k0, w, t, fin, 4);
                    4
                }
                _ => {
                    panel_avx2::<1, true>(b, i, nr, k0, w, t, fin, avail);
                    avail
                }
            };
        }
    }
    let _ = avx;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        if avail >= 4 {
            panel_simd128::<2>(b, i, nr, k0, w, t, fin);
            return 4;
        }
        if avail >= 2 {
            panel_simd128::<1>(b, i, nr, k0, w, t, fin);
            return 2;
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    if avail >= 4 {
        panel_scalar::<4>(b, i, nr, k0, w, t, fin);
        return 4;
    }
    panel_scalar::<1>(b, i, nr, k0, w, t, fin);
    1
}

#[inline(always)]
fn sum_scalar<const R: usize>(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    *acc = [[0.0; 8]; 4];
    for (k, tk) in t.chunks_exact(4).enumerate().take(nk) {
        let x = &a[at + k * stride..at + k * stride + R];
        for q in 0..4 {
            for r in 0..R {
                acc[q][r] += x[r] * tk[q];
            }
        }
    }
}

#[allow(clippy::too_many_arguments)] // `panel`'s operands
#[inline(always)]
fn panel_scalar<const R: usize>(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64], fin: Option<&Finish>) {
    let mut acc = [[0.0f64; R]; 4];
    for q in 0..w {
        acc[q].copy_from_slice(&b[(k0 + q) * nr + i..(k0 + q) * nr + i + R]);
    }
    for (j, tj) in t.chunks_exact(4).enumerate().take(k0) {
        let x = &b[j * nr + i..j * nr + i + R];
        for q in 0..4 {
            for r in 0..R {
                acc[q][r] -= x[r] * tj[q];
            }
        }
    }
    if let Some(fin) = fin {
        for q in 0..w {
            for p in 0..q {
                for r in 0..R {
                    acc[q][r] -= acc[p][r] * fin.t[p][q];
                }
            }
            for r in 0..R {
                acc[q][r] *= fin.inv[q];
            }
        }
    }
    for q in 0..w {
        b[(k0 + q) * nr + i..(k0 + q) * nr + i + R].copy_from_slice(&acc[q]);
    }
}

/// Lanes `0..tail` of a four-lane AVX2 mask (the sign bit selects a lane).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes(tail: usize) -> core::arch::x86_64::__m256i {
    use core::arch::x86_64::*;
    _mm256_cmpgt_epi64(_mm256_set1_epi64x(tail as i64), _mm256_setr_epi64x(0, 1, 2, 3))
}

/// `sum` over 4·(V−1) + `tail` rows (V vectors of four per column; with
/// MASK the last one loads only its first `tail` lanes, the others stay 0).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)] // `sum`'s operands and the tail
#[inline] // (a hint: inlined, the tiles of an update run ~2 % faster)
unsafe fn sum_avx2<const V: usize, const MASK: bool>(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile, tail: usize) {
    use core::arch::x86_64::*;
    if nk == 0 {
        *acc = [[0.0; 8]; 4];
        return;
    }
    // Every load below stays inside these bounds (a masked load touches
    // only its selected lanes).
    assert!((1..=2).contains(&V) && (1..=4).contains(&tail) && (MASK || tail == 4));
    assert!(at + (nk - 1) * stride + 4 * (V - 1) + tail <= a.len() && 4 * nk <= t.len());
    let (pa, pt) = (a.as_ptr().add(at), t.as_ptr());
    let mask = lanes(tail);
    let mut c = [_mm256_setzero_pd(); 8];
    for k in 0..nk {
        let mut x = [_mm256_setzero_pd(); 2];
        for v in 0..V {
            x[v] = if MASK && v == V - 1 {
                _mm256_maskload_pd(pa.add(k * stride + 4 * v), mask)
            } else {
                _mm256_loadu_pd(pa.add(k * stride + 4 * v))
            };
        }
        for q in 0..4 {
            let tq = _mm256_broadcast_sd(&*pt.add(4 * k + q));
            for v in 0..V {
                c[V * q + v] = _mm256_add_pd(c[V * q + v], _mm256_mul_pd(x[v], tq));
            }
        }
    }
    for q in 0..4 {
        for v in 0..V {
            _mm256_storeu_pd(acc[q].as_mut_ptr().add(4 * v), c[V * q + v]);
        }
    }
}

/// `panel` over 4·(V−1) + `tail` rows (with MASK the last vector of each
/// column loads and stores only its first `tail` lanes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)] // `panel`'s operands and the tail
unsafe fn panel_avx2<const V: usize, const MASK: bool>(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64], fin: Option<&Finish>, tail: usize) {
    use core::arch::x86_64::*;
    // Every load and store below stays inside these bounds.
    assert!((1..=2).contains(&V) && (1..=4).contains(&tail) && (MASK || tail == 4));
    assert!((1..=4).contains(&w) && (k0 + w - 1) * nr + i + 4 * (V - 1) + tail <= b.len());
    assert!(i + 4 * (V - 1) + tail <= nr && 4 * k0 <= t.len());
    let (pb, pt) = (b.as_mut_ptr(), t.as_ptr());
    let mask = lanes(tail);
    macro_rules! load {
        ($p:expr, $v:expr) => {
            if MASK && $v == V - 1 {
                _mm256_maskload_pd($p, mask)
            } else {
                _mm256_loadu_pd($p)
            }
        };
    }
    let mut c = [_mm256_setzero_pd(); 8];
    for q in 0..w {
        for v in 0..V {
            c[V * q + v] = load!(pb.add((k0 + q) * nr + i + 4 * v), v);
        }
    }
    for j in 0..k0 {
        let mut x = [_mm256_setzero_pd(); 2];
        for v in 0..V {
            x[v] = load!(pb.add(j * nr + i + 4 * v), v);
        }
        for q in 0..4 {
            let tq = _mm256_broadcast_sd(&*pt.add(4 * j + q));
            for v in 0..V {
                c[V * q + v] = _mm256_sub_pd(c[V * q + v], _mm256_mul_pd(x[v], tq));
            }
        }
    }
    if let Some(fin) = fin {
        for q in 0..w {
            for p in 0..q {
                let tpq = _mm256_set1_pd(fin.t[p][q]);
                for v in 0..V {
                    c[V * q + v] = _mm256_sub_pd(c[V * q + v], _mm256_mul_pd(c[V * p + v], tpq));
                }
            }
            let inv = _mm256_set1_pd(fin.inv[q]);
            for v in 0..V {
                c[V * q + v] = _mm256_mul_pd(c[V * q + v], inv);
            }
        }
    }
    for q in 0..w {
        for v in 0..V {
            let p = pb.add((k0 + q) * nr + i + 4 * v);
            if MASK && v == V - 1 {
                _mm256_maskstore_pd(p, mask, c[V * q + v]);
            } else {
                _mm256_storeu_pd(p, c[V * q + v]);
            }
        }
    }
}

/// `sum` over 2·V rows (V vectors of two per column).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn sum_simd128<const V: usize>(a: &[f64], at: usize, stride: usize, nk: usize, t: &[f64], acc: &mut Tile) {
    use core::arch::wasm32::*;
    *acc = [[0.0; 8]; 4];
    if nk == 0 {
        return;
    }
    // Every load below stays inside these bounds.
    assert!(V <= 2 && at + (nk - 1) * stride + 2 * V <= a.len() && 4 * nk <= t.len());
    let mut c = [f64x2_splat(0.0); 8];
    for k in 0..nk {
        let mut x = [f64x2_splat(0.0); 2];
        for v in 0..V {
            // SAFETY: in bounds by the assertion above (unaligned loads are allowed).
            x[v] = unsafe { v128_load(a.as_ptr().add(at + k * stride + 2 * v) as *const v128) };
        }
        // SAFETY: 4k + 4 <= 4·nk <= t.len() (asserted above).
        let tq = unsafe { splat4(t, 4 * k) };
        for q in 0..4 {
            for v in 0..V {
                c[V * q + v] = f64x2_add(c[V * q + v], f64x2_mul(x[v], tq[q]));
            }
        }
    }
    for q in 0..4 {
        for v in 0..V {
            acc[q][2 * v] = f64x2_extract_lane::<0>(c[V * q + v]);
            acc[q][2 * v + 1] = f64x2_extract_lane::<1>(c[V * q + v]);
        }
    }
}

/// t[at + q] in both lanes, for q < 4 (two loads and four shuffles rather
/// than four scalar loads and splats).
///
/// # Safety
/// `at + 4 <= t.len()`. The callers assert it once for their whole loop, so
/// the tile's inner loop carries no bounds check.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn splat4(t: &[f64], at: usize) -> [core::arch::wasm32::v128; 4] {
    use core::arch::wasm32::*;
    debug_assert!(at + 4 <= t.len());
    // SAFETY: in bounds by the caller's contract (unaligned loads are allowed).
    let (a, b) = unsafe { (v128_load(t.as_ptr().add(at) as *const v128), v128_load(t.as_ptr().add(at + 2) as *const v128)) };
    [i64x2_shuffle::<0, 0>(a, a), i64x2_shuffle::<1, 1>(a, a), i64x2_shuffle::<0, 0>(b, b), i64x2_shuffle::<1, 1>(b, b)]
}

/// `panel` over 2·V rows.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
#[allow(clippy::too_many_arguments)] // `panel`'s operands
fn panel_simd128<const V: usize>(b: &mut [f64], i: usize, nr: usize, k0: usize, w: usize, t: &[f64], fin: Option<&Finish>) {
    use core::arch::wasm32::*;
    // Every load and store below stays inside these bounds.
    assert!(V <= 2 && (1..=4).contains(&w) && (k0 + w - 1) * nr + i + 2 * V <= b.len());
    assert!(i + 2 * V <= nr && 4 * k0 <= t.len());
    let pb = b.as_mut_ptr();
    let mut c = [f64x2_splat(0.0); 8];
    // SAFETY (every unsafe block below): the offsets are within the asserted bounds.
    for q in 0..w {
        for v in 0..V {
            c[V * q + v] = unsafe { v128_load(pb.add((k0 + q) * nr + i + 2 * v) as *const v128) };
        }
    }
    for j in 0..k0 {
        let mut x = [f64x2_splat(0.0); 2];
        for v in 0..V {
            x[v] = unsafe { v128_load(pb.add(j * nr + i + 2 * v) as *const v128) };
        }
        // SAFETY: 4j + 4 <= 4·k0 <= t.len() (asserted above).
        let tq = unsafe { splat4(t, 4 * j) };
        for q in 0..4 {
            for v in 0..V {
                c[V * q + v] = f64x2_sub(c[V * q + v], f64x2_mul(x[v], tq[q]));
            }
        }
    }
    if let Some(fin) = fin {
        for q in 0..w {
            for p in 0..q {
                let tpq = f64x2_splat(fin.t[p][q]);
                for v in 0..V {
                    c[V * q + v] = f64x2_sub(c[V * q + v], f64x2_mul(c[V * p + v], tpq));
                }
            }
            let inv = f64x2_splat(fin.inv[q]);
            for v in 0..V {
                c[V * q + v] = f64x2_mul(c[V * q + v], inv);
            }
        }
    }
    for q in 0..w {
        for v in 0..V {
            unsafe { v128_store(pb.add((k0 + q) * nr + i + 2 * v) as *mut v128, c[V * q + v]) };
        }
    }
}

//! Kirchhoff pressure solve: the weighted graph Laplacian system
//! `Σ_j w_ij (p_i − p_j) = b_i` with `w_ij = D_ij / L_ij`, solved by conjugate
//! gradients, warm-started from the previous pressures. The preconditioner is
//! Jacobi, zero-fill incomplete Cholesky IC(0), or (default) relaxed modified
//! IC(0) on the grounded Laplacian with the graph's own sparsity, rebuilt each
//! solve (only + − * /, so bit-identical on native and wasm32); a non-positive
//! pivot falls back MIC → IC → Jacobi. The Laplacian is singular (constants are in its null space on each
//! connected component), so one "ground" cell per component is pinned to p = 0
//! (its row becomes the identity); the remaining system is SPD. The caller makes
//! `b` sum to zero on every component so the pinned row is consistent.
//!
//! The matrix product never assembles A: it walks the tube list, which keeps
//! memory O(E) and the summation order fixed (bit-reproducible).

use crate::cholesky::Cholesky;

/// Outcome of one solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SolveStats {
    pub iterations: u32,
    /// max_i |b_i − (A p)_i| at exit.
    pub residual: f64,
    pub converged: bool,
    /// Multiply–add pairs spent in the Cholesky factorization (0 on the CG paths).
    pub factor_flops: f64,
}

/// y = A x over alive tubes (`w[t] == 0` for dead tubes); grounded rows are identity.
fn apply(ends: &[u32], w: &[f64], grounded: &[u8], x: &[f64], y: &mut [f64]) {
    for v in y.iter_mut() {
        *v = 0.0;
    }
    for (t, &wt) in w.iter().enumerate() {
        if wt == 0.0 {
            continue;
        }
        let a = ends[2 * t] as usize;
        let b = ends[2 * t + 1] as usize;
        let d = wt * (x[a] - x[b]);
        y[a] += d;
        y[b] -= d;
    }
    for (i, g) in grounded.iter().enumerate() {
        if *g != 0 {
            y[i] = x[i];
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        s += a[i] * b[i];
    }
    s
}

fn max_abs(a: &[f64]) -> f64 {
    let mut m = 0.0f64;
    for v in a {
        let v = v.abs();
        if v > m {
            m = v;
        }
    }
    m
}

/// Preconditioner choice for the conjugate-gradient solve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precond {
    /// Diagonal (Jacobi) scaling.
    Jacobi,
    /// Zero-fill incomplete Cholesky `L D Lᵀ` with the graph's own sparsity.
    Ic0,
    /// Relaxed modified IC(0): dropped fill is moved to the diagonal (factor
    /// `MIC_OMEGA`), which keeps row sums and removes most of the small
    /// eigenvalues that slow CG on lattice-like graphs.
    Mic0,
    /// Complete sparse `L D Lᵀ` factorization (fill-reducing ordering,
    /// analysis reused while the pattern holds; see `cholesky`): the solve is
    /// direct, refined (x += A⁻¹ r) until the true residual is within the
    /// tolerance: one solve per step, rarely two.
    Cholesky,
}

/// Relaxation of the modified incomplete Cholesky (1 = fully modified).
pub const MIC_OMEGA: f64 = 0.99;

/// Reusable work vectors, so a step does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    diag: Vec<f64>,
    /// Incomplete factor, stored by columns of the unit lower factor `L`:
    /// column k holds the rows `i > k` (ascending) in `col[ptr[k]..ptr[k+1]]`
    /// with values `lval`; `piv[k]` is the pivot `D_k` (grounded rows: 1, and
    /// they have no entries).
    ptr: Vec<u32>,
    col: Vec<u32>,
    lval: Vec<f64>,
    piv: Vec<f64>,
    fill: Vec<u32>,
    /// Sparse Cholesky factor (kept across solves: its analysis is reused).
    pub chol: Cholesky,
}

impl Workspace {
    /// Bytes held by the solver's vectors.
    pub fn memory_bytes(&self) -> usize {
        8 * (self.r.capacity() + self.z.capacity() + self.p.capacity() + self.ap.capacity() + self.diag.capacity())
            + 8 * (self.lval.capacity() + self.piv.capacity())
            + 4 * (self.ptr.capacity() + self.col.capacity() + self.fill.capacity())
            + self.chol.memory_bytes()
    }
}

/// The tubes that enter the reduced Laplacian, in tube order, as
/// `(lower cell, higher cell, weight)`: alive (w > 0), not self-loops, and
/// touching no grounded cell.
fn reduced_tubes<'a>(ends: &'a [u32], w: &'a [f64], grounded: &'a [u8]) -> impl Iterator<Item = (usize, usize, f64)> + 'a {
    w.iter().enumerate().filter_map(move |(t, &wt)| {
        let (a, b) = (ends[2 * t] as usize, ends[2 * t + 1] as usize);
        if wt == 0.0 || a == b || grounded[a] != 0 || grounded[b] != 0 {
            return None;
        }
        Some(if a < b { (a, b, wt) } else { (b, a, wt) })
    })
}

/// Build the strictly-upper pattern of the reduced (grounded rows/columns
/// removed) Laplacian: for each cell k, the cells i > k joined to it by a tube
/// with w > 0, ascending, duplicate tubes summed (in tube order). Values are
/// stored as the positive weights w_ki (the matrix entry is −w_ki).
fn build_upper(ends: &[u32], w: &[f64], grounded: &[u8], n: usize, ws: &mut Workspace) {
    ws.ptr.clear();
    ws.ptr.resize(n + 1, 0);
    for (lo, _, _) in reduced_tubes(ends, w, grounded) {
        ws.ptr[lo + 1] += 1;
    }
    for k in 0..n {
        ws.ptr[k + 1] += ws.ptr[k];
    }
    let nnz = ws.ptr[n] as usize;
    ws.col.clear();
    ws.col.resize(nnz, 0);
    ws.lval.clear();
    ws.lval.resize(nnz, 0.0);
    ws.fill.clear();
    ws.fill.extend_from_slice(&ws.ptr[..n]);
    for (lo, hi, wt) in reduced_tubes(ends, w, grounded) {
        let q = ws.fill[lo] as usize;
        ws.col[q] = hi as u32;
        ws.lval[q] = wt;
        ws.fill[lo] += 1;
    }
    // Sort each row by column (stable insertion sort) and merge duplicates,
    // compacting in place; rewrite ptr.
    let mut out = 0usize;
    let mut start = 0usize;
    for k in 0..n {
        let end = ws.ptr[k + 1] as usize;
        for q in start + 1..end {
            let (c, v) = (ws.col[q], ws.lval[q]);
            let mut m = q;
            while m > start && ws.col[m - 1] > c {
                ws.col[m] = ws.col[m - 1];
                ws.lval[m] = ws.lval[m - 1];
                m -= 1;
            }
            ws.col[m] = c;
            ws.lval[m] = v;
        }
        let row_out = out;
        for q in start..end {
            if out > row_out && ws.col[out - 1] == ws.col[q] {
                ws.lval[out - 1] += ws.lval[q];
            } else {
                ws.col[out] = ws.col[q];
                ws.lval[out] = ws.lval[q];
                out += 1;
            }
        }
        ws.ptr[k] = row_out as u32;
        start = end;
    }
    ws.ptr[n] = out as u32;
    ws.col.truncate(out);
    ws.lval.truncate(out);
}

/// Right-looking zero-fill (modified) incomplete factorization `A ≈ L D Lᵀ` of
/// the reduced Laplacian. `ws.diag` holds the diagonal of A (1 on grounded
/// rows). On entry `lval` holds the weights from `build_upper`; on exit it holds
/// L. Returns false on a non-positive / tiny / non-finite pivot (caller falls
/// back to Jacobi).
fn factor(n: usize, omega: f64, ws: &mut Workspace) -> bool {
    ws.piv.clear();
    ws.piv.extend_from_slice(&ws.diag);
    // lval currently holds w_ki > 0 (entry a_ki = −w_ki). Work with a_ki directly.
    for v in ws.lval.iter_mut() {
        *v = -*v;
    }
    for k in 0..n {
        let dk = ws.piv[k];
        if !(dk > 1e-13 * ws.diag[k]) || !dk.is_finite() {
            return false;
        }
        let (s, e) = (ws.ptr[k] as usize, ws.ptr[k + 1] as usize);
        // Column k of L: l_ik = a'_ki / d_k; Schur update of the trailing block.
        for q in s..e {
            let i = ws.col[q] as usize;
            let aik = ws.lval[q];
            ws.piv[i] -= aik * aik / dk;
            // Pairs (i, m) with i < m, both neighbours of k.
            for q2 in q + 1..e {
                let m = ws.col[q2] as usize;
                let f = aik * ws.lval[q2] / dk;
                // Entry (i, m) lives in row i of the upper pattern.
                let (si, ei) = (ws.ptr[i] as usize, ws.ptr[i + 1] as usize);
                let mut found = false;
                for q3 in si..ei {
                    let c = ws.col[q3] as usize;
                    if c == m {
                        ws.lval[q3] -= f;
                        found = true;
                        break;
                    }
                    if c > m {
                        break;
                    }
                }
                if !found && omega != 0.0 {
                    // Dropped fill −f: keep row sums by moving it to the diagonal.
                    ws.piv[i] -= omega * f;
                    ws.piv[m] -= omega * f;
                }
            }
        }
        for q in s..e {
            ws.lval[q] /= dk;
        }
    }
    true
}

/// z = (L D Lᵀ)⁻¹ r.
fn apply_ic(ws: &mut Workspace, n: usize) {
    let z = &mut ws.z;
    z.copy_from_slice(&ws.r);
    for k in 0..n {
        let zk = z[k];
        if zk != 0.0 {
            for q in ws.ptr[k] as usize..ws.ptr[k + 1] as usize {
                z[ws.col[q] as usize] -= ws.lval[q] * zk;
            }
        }
    }
    for k in 0..n {
        z[k] /= ws.piv[k];
    }
    for k in (0..n).rev() {
        let mut s = z[k];
        for q in ws.ptr[k] as usize..ws.ptr[k + 1] as usize {
            s -= ws.lval[q] * z[ws.col[q] as usize];
        }
        z[k] = s;
    }
}

/// Solve `A x = b` in place (x holds the warm start of the iterative
/// paths; the Cholesky path solves for x from scratch). Stops when the true
/// residual max-norm is <= `tol_abs` or after `max_iter` iterations.
#[allow(clippy::too_many_arguments)] // the CG kernel takes the system and its workspace explicitly
pub fn solve(
    ends: &[u32],
    w: &[f64],
    grounded: &[u8],
    b: &[f64],
    x: &mut [f64],
    tol_abs: f64,
    max_iter: usize,
    precond: Precond,
    ws: &mut Workspace,
) -> SolveStats {
    let n = x.len();
    // Every element of r, z, p and ap is written before it is read: no clearing.
    for v in [&mut ws.r, &mut ws.z, &mut ws.p, &mut ws.ap] {
        v.resize(n, 0.0);
    }
    for i in 0..n {
        if grounded[i] != 0 {
            x[i] = 0.0;
        }
    }
    // The diagonal (Jacobi and the incomplete factorizations; the Cholesky
    // path assembles its own and needs this one only if it falls back).
    let diagonal = |ws: &mut Workspace| {
        ws.diag.clear();
        ws.diag.resize(n, 0.0);
        for (t, &wt) in w.iter().enumerate() {
            ws.diag[ends[2 * t] as usize] += wt;
            ws.diag[ends[2 * t + 1] as usize] += wt;
        }
        for i in 0..n {
            if grounded[i] != 0 || ws.diag[i] == 0.0 {
                ws.diag[i] = 1.0;
            }
        }
    };
    if precond != Precond::Cholesky {
        diagonal(ws);
    }
    // Build the preconditioner lazily: only if CG has to iterate at all.
    #[derive(Clone, Copy, PartialEq)]
    enum Active {
        Pending,
        Jacobi,
        Ic,
        Chol,
    }
    let mut factor_flops = 0.0;
    let mut active = if precond == Precond::Jacobi { Active::Jacobi } else { Active::Pending };
    // Returns the active preconditioner, and whether z already holds the
    // preconditioned residual (the Cholesky factorization solves as it goes).
    let mut setup = |ws: &mut Workspace| {
        if active != Active::Pending {
            return (active, false);
        }
        if precond == Precond::Cholesky {
            let Workspace { r, z, chol, .. } = ws;
            let ok = chol.factor_solve(ends, w, grounded, r, z);
            factor_flops = chol.stats.flops;
            if ok {
                active = Active::Chol;
                return (active, true);
            }
            // A non-positive pivot (should not happen on an SPD system): MIC(0) CG.
            diagonal(ws);
        }
        build_upper(ends, w, grounded, n, ws);
        let omega = if precond == Precond::Ic0 { 0.0 } else { MIC_OMEGA };
        let mut ok = factor(n, omega, ws);
        if !ok && omega != 0.0 {
            // Modified factorization broke down: retry plain IC(0).
            build_upper(ends, w, grounded, n, ws);
            ok = factor(n, 0.0, ws);
        }
        active = if ok { Active::Ic } else { Active::Jacobi };
        (active, false)
    };
    let precondition = |ws: &mut Workspace, how: Active| match how {
        Active::Chol => {
            let Workspace { r, z, chol, .. } = ws;
            chol.solve(r, z);
        }
        Active::Ic => apply_ic(ws, n),
        _ => {
            for i in 0..n {
                ws.z[i] = ws.r[i] / ws.diag[i];
            }
        }
    };
    let true_residual = |x: &[f64], r: &mut [f64], ap: &mut [f64]| {
        apply(ends, w, grounded, x, ap);
        for i in 0..n {
            r[i] = if grounded[i] != 0 { 0.0 } else { b[i] - ap[i] };
        }
        max_abs(r)
    };
    // A direct solve needs no warm start: it solves for x itself (r = b,
    // x = 0), which saves a pass over the tubes; the true residual after it
    // decides about refinement as usual. The iterative paths start from the
    // previous pressures.
    let mut res = if precond == Precond::Cholesky {
        for i in 0..n {
            x[i] = 0.0;
            ws.r[i] = if grounded[i] != 0 { 0.0 } else { b[i] };
        }
        max_abs(&ws.r)
    } else {
        true_residual(x, &mut ws.r, &mut ws.ap)
    };
    let mut iterations = 0usize;
    let mut refine = true;
    // Outer loop: restart from the true residual whenever the recurrence claims
    // convergence but the true residual disagrees (rounding drift).
    'outer: loop {
        if res <= tol_abs {
            return SolveStats { iterations: iterations as u32, residual: res, converged: true, factor_flops };
        }
        if iterations >= max_iter {
            break 'outer;
        }
        let (how, done) = setup(ws);
        if !done {
            precondition(ws, how);
        }
        if how == Active::Chol && refine {
            // A direct solve: z = A⁻¹ r up to rounding, so x + z is the
            // answer; the true residual decides whether to refine again.
            // Refinement that stops halving the residual gives way to CG
            // (with the factor as its preconditioner).
            for i in 0..n {
                x[i] += ws.z[i];
            }
            iterations += 1;
            let before = res;
            res = true_residual(x, &mut ws.r, &mut ws.ap);
            refine = res < 0.5 * before;
            continue 'outer;
        }
        ws.p.copy_from_slice(&ws.z);
        let mut rz = dot(&ws.r, &ws.z);
        while iterations < max_iter {
            apply(ends, w, grounded, &ws.p, &mut ws.ap);
            let pap = dot(&ws.p, &ws.ap);
            if !(pap > 0.0) {
                res = true_residual(x, &mut ws.r, &mut ws.ap);
                if res <= tol_abs {
                    continue 'outer;
                }
                break 'outer;
            }
            let alpha = rz / pap;
            for i in 0..n {
                x[i] += alpha * ws.p[i];
                ws.r[i] -= alpha * ws.ap[i];
            }
            iterations += 1;
            if max_abs(&ws.r) <= 0.5 * tol_abs {
                res = true_residual(x, &mut ws.r, &mut ws.ap);
                continue 'outer;
            }
            precondition(ws, how);
            let rz_new = dot(&ws.r, &ws.z);
            let beta = rz_new / rz;
            rz = rz_new;
            for i in 0..n {
                ws.p[i] = ws.z[i] + beta * ws.p[i];
            }
        }
        res = true_residual(x, &mut ws.r, &mut ws.ap);
        break 'outer;
    }
    SolveStats { iterations: iterations as u32, residual: res, converged: res <= tol_abs, factor_flops }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditioners_agree_on_a_heterogeneous_grid_with_triangles() {
        // 12x12 grid plus diagonals (fill-prone triangles), duplicate tubes, dead
        // tubes and conductivities over 8 orders of magnitude.
        let s = 12usize;
        let mut ends = Vec::new();
        for y in 0..s {
            for x in 0..s {
                let v = (y * s + x) as u32;
                if x + 1 < s { ends.extend([v, v + 1]); }
                if y + 1 < s { ends.extend([v, v + s as u32]); }
                if x + 1 < s && y + 1 < s && (x + y) % 3 == 0 { ends.extend([v + s as u32 + 1, v]); }
            }
        }
        ends.extend([0u32, 1, 5, 6]);
        let nt = ends.len() / 2;
        let w: Vec<f64> = (0..nt)
            .map(|t| if t % 17 == 3 { 0.0 } else { libm::pow(10.0, ((t * 7919) % 9) as f64 - 4.0) })
            .collect();
        let n = s * s;
        let mut grounded = vec![0u8; n];
        grounded[n - 1] = 1;
        let mut b = vec![0.0; n];
        b[0] = 1.0;
        b[n / 2] = 0.5;
        b[n - 1] = -1.5;
        let mut sols = Vec::new();
        for pc in [Precond::Jacobi, Precond::Ic0, Precond::Mic0, Precond::Cholesky] {
            let mut x = vec![0.0; n];
            let st = solve(&ends, &w, &grounded, &b, &mut x, 1e-10, 100_000, pc, &mut Workspace::default());
            assert!(st.converged, "{pc:?} {st:?}");
            sols.push((x, st.iterations));
        }
        assert!(sols[2].1 < sols[0].1, "mic {} vs jacobi {}", sols[2].1, sols[0].1);
        for (x, _) in &sols[1..] {
            for i in 0..n {
                assert!((x[i] - sols[0].0[i]).abs() <= 1e-6 * (1.0 + sols[0].0[i].abs()));
            }
        }
    }

    #[test]
    fn path_of_three_resistors() {
        // 0 -(w=1)- 1 -(w=2)- 2, inject 1 at 0, drain at 2 (grounded).
        let ends = [0u32, 1, 1, 2];
        let w = [1.0, 2.0];
        let grounded = [0u8, 0, 1];
        let b = [1.0, 0.0, -1.0];
        let mut x = [0.0; 3];
        let st = solve(&ends, &w, &grounded, &b, &mut x, 1e-14, 100, Precond::Mic0, &mut Workspace::default());
        assert!(st.converged);
        assert!((x[1] - 0.5).abs() < 1e-13);
        assert!((x[0] - 1.5).abs() < 1e-13);
        // Warm start from the solution converges in zero iterations.
        let st2 = solve(&ends, &w, &grounded, &b, &mut x, 1e-12, 100, Precond::Mic0, &mut Workspace::default());
        assert_eq!(st2.iterations, 0);
    }

    #[test]
    fn the_direct_path_ignores_a_wrong_warm_start() {
        // The same circuit from a garbage start: one direct solve, exact.
        let ends = [0u32, 1, 1, 2];
        let (w, grounded, b) = ([1.0, 2.0], [0u8, 0, 1], [1.0, 0.0, -1.0]);
        let mut x = [1e6, -3e5, 7.0];
        let st = solve(&ends, &w, &grounded, &b, &mut x, 1e-14, 100, Precond::Cholesky, &mut Workspace::default());
        assert!(st.converged && st.iterations == 1, "{st:?}");
        assert_eq!(x, [1.5, 0.5, 0.0]);
    }
}

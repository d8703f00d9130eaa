//! Kirchhoff pressure solve: the weighted graph Laplacian system
//! `Σ_j w_ij (p_i − p_j) = b_i` with `w_ij = D_ij / L_ij`, solved by conjugate
//! gradients with a Jacobi preconditioner, warm-started from the previous
//! pressures. The Laplacian is singular (constants are in its null space on each
//! connected component), so one "ground" cell per component is pinned to p = 0
//! (its row becomes the identity); the remaining system is SPD. The caller makes
//! `b` sum to zero on every component so the pinned row is consistent.
//!
//! The matrix is never assembled: the product walks the tube list, which keeps
//! memory O(E) and the summation order fixed (bit-reproducible).

/// Outcome of one solve.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SolveStats {
    pub iterations: u32,
    /// max_i |b_i − (A p)_i| at exit.
    pub residual: f64,
    pub converged: bool,
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

/// Reusable work vectors, so a step does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    r: Vec<f64>,
    z: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    diag: Vec<f64>,
}

/// Solve `A x = b` in place (x holds the warm start). Stops when the true
/// residual max-norm is <= `tol_abs` or after `max_iter` iterations.
pub fn solve(
    ends: &[u32],
    w: &[f64],
    grounded: &[u8],
    b: &[f64],
    x: &mut [f64],
    tol_abs: f64,
    max_iter: usize,
    ws: &mut Workspace,
) -> SolveStats {
    let n = x.len();
    for v in [&mut ws.r, &mut ws.z, &mut ws.p, &mut ws.ap, &mut ws.diag] {
        v.clear();
        v.resize(n, 0.0);
    }
    for (t, &wt) in w.iter().enumerate() {
        ws.diag[ends[2 * t] as usize] += wt;
        ws.diag[ends[2 * t + 1] as usize] += wt;
    }
    for i in 0..n {
        if grounded[i] != 0 {
            x[i] = 0.0;
            ws.diag[i] = 1.0;
        } else if ws.diag[i] == 0.0 {
            ws.diag[i] = 1.0;
        }
    }
    let true_residual = |x: &[f64], r: &mut [f64], ap: &mut [f64]| {
        apply(ends, w, grounded, x, ap);
        for i in 0..n {
            r[i] = if grounded[i] != 0 { 0.0 } else { b[i] - ap[i] };
        }
        max_abs(r)
    };
    let mut res = true_residual(x, &mut ws.r, &mut ws.ap);
    let mut iterations = 0usize;
    // Outer loop: restart from the true residual whenever the recurrence claims
    // convergence but the true residual disagrees (rounding drift).
    'outer: loop {
        if res <= tol_abs {
            return SolveStats { iterations: iterations as u32, residual: res, converged: true };
        }
        if iterations >= max_iter {
            break 'outer;
        }
        for i in 0..n {
            ws.z[i] = ws.r[i] / ws.diag[i];
            ws.p[i] = ws.z[i];
        }
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
            for i in 0..n {
                ws.z[i] = ws.r[i] / ws.diag[i];
            }
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
    SolveStats { iterations: iterations as u32, residual: res, converged: res <= tol_abs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_of_three_resistors() {
        // 0 -(w=1)- 1 -(w=2)- 2, inject 1 at 0, drain at 2 (grounded).
        let ends = [0u32, 1, 1, 2];
        let w = [1.0, 2.0];
        let grounded = [0u8, 0, 1];
        let b = [1.0, 0.0, -1.0];
        let mut x = [0.0; 3];
        let st = solve(&ends, &w, &grounded, &b, &mut x, 1e-14, 100, &mut Workspace::default());
        assert!(st.converged);
        assert!((x[1] - 0.5).abs() < 1e-13);
        assert!((x[0] - 1.5).abs() < 1e-13);
        // Warm start from the solution converges in zero iterations.
        let st2 = solve(&ends, &w, &grounded, &b, &mut x, 1e-12, 100, &mut Workspace::default());
        assert_eq!(st2.iterations, 0);
    }
}

//! Theory of operation
//! ===================
//!
//! The organism is a graph of cells joined by tubes. Each tube (i, j) has a
//! length L_ij and a conductivity D_ij = r_ij⁴ (Hagen–Poiseuille; the seed's
//! `tube.thickness` is the radius r). One `step()` is:
//!
//! 1. **compute_flow** (Tero et al. 2007). The food scheme chooses which food
//!    cells inject and drain the total flux I0 this step (right-hand side b).
//!    Pressures solve Kirchhoff's law Σ_j (D_ij/L_ij)(p_i − p_j) = b_i, a sparse
//!    SPD system once one cell per connected component is grounded; by default
//!    it is solved by a sparse Cholesky factorization of the compacted system
//!    (`cholesky`; CG with Jacobi / IC(0) / MIC(0) stays selectable, `solver`,
//!    warm-started from the previous pressures). The
//!    flux through a tube is Q_ij = (D_ij/L_ij)(p_i − p_j); the Kirchhoff
//!    residual max_i |Σ_j Q_ij − b_i| / I0 is recorded.
//! 2. **adapt_tubes**: dD/dt = growth_rate·f(|Q|) − decay·D with a power-law or
//!    sigmoid f; thin tubes are pruned (see `adaptation`). Tube age advances.
//! 3. **explore**: frontier tips extend or fuse with a seeded RNG (`growth`).
//! 4. nutrients are carried along the flow, and **synchronize_oscillations**
//!    couples neighbouring phases (Kuramoto, weighted by D).
//!
//! Everything is deterministic for a given seed: a hand-written SplitMix64, fixed
//! iteration orders (arrays, never hash maps), no fused multiply-add, and
//! transcendental functions written in Rust (`fastmath` for the per-tube `pow`
//! and `sin`, the `libm` crate for the rest), so native and wasm32 builds agree
//! bit for bit.

use crate::adaptation;
use crate::compact::Compact;
use crate::food;
use crate::graph::Network;
use crate::growth;
use crate::params::Params;
use crate::rng::Rng;
use crate::solver::{self, SolveStats, Workspace};

/// The seed's `PhysarumDynamics` trait.
pub trait PhysarumDynamics {
    fn compute_flow(&mut self) -> SolveStats;
    fn adapt_tubes(&mut self) -> usize;
    fn explore(&mut self) -> usize;
    fn synchronize_oscillations(&mut self);
    fn step(&mut self);
}

/// A running simulation: the network plus parameters, RNG and solver state.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub net: Network,
    pub params: Params,
    rng: Rng,
    ws: Workspace,
    scratch: crate::graph::Scratch,
    /// The flow problem on the compact network, and its per-step vectors.
    compact: Compact,
    b: Vec<f64>,
    w: Vec<f64>,
    x: Vec<f64>,
    net_out: Vec<f64>,
    comp: Vec<u32>,
    has_ground: Vec<u8>,
    grounded: Vec<u8>,
    /// Per compact tube: does it carry weight (w > 0)? As of the last time
    /// components and grounds were computed; 2 = unknown. While this set and
    /// the compact network are unchanged, so are components and grounds.
    carrying: Vec<u8>,
    pub steps: u64,
    pub last_stats: SolveStats,
    /// Kirchhoff residual of the last step, relative to I0.
    pub last_residual: f64,
    /// Largest Kirchhoff residual seen over all steps, relative to I0.
    pub max_residual: f64,
    pub total_cg_iterations: u64,
    /// Multiply–add pairs spent in Cholesky factorizations over all steps.
    pub total_factor_flops: f64,
    /// Largest `memory_bytes()` seen after a step.
    pub peak_memory_bytes: usize,
    pub last_source: i64,
}

impl Simulation {
    pub fn new(params: Params, seed: u64) -> Result<Simulation, String> {
        params.validate()?;
        Ok(Simulation {
            net: Network::default(),
            params,
            rng: Rng::new(seed),
            ws: Workspace::default(),
            scratch: crate::graph::Scratch::default(),
            compact: Compact::default(),
            b: Vec::new(),
            w: Vec::new(),
            x: Vec::new(),
            net_out: Vec::new(),
            comp: Vec::new(),
            has_ground: Vec::new(),
            grounded: Vec::new(),
            carrying: Vec::new(),
            steps: 0,
            last_stats: SolveStats::default(),
            last_residual: 0.0,
            max_residual: 0.0,
            total_cg_iterations: 0,
            total_factor_flops: 0.0,
            peak_memory_bytes: 0,
            last_source: -1,
        })
    }

    pub fn add_node(&mut self, x: f64, y: f64, z: f64) -> Result<u32, String> {
        let id = self.net.add_cell(x, y, z)?;
        self.net.phase[id as usize] = growth::TWO_PI * self.rng.next_f64();
        Ok(id)
    }

    pub fn add_edge(&mut self, a: u32, b: u32, length: f64) -> Result<u32, String> {
        let d0 = self.params.initial_conductivity;
        self.net.add_tube(a, b, length, d0)
    }

    pub fn set_food(&mut self, food: &[u32]) -> Result<(), String> {
        self.net.set_food(food)
    }

    pub fn set_params(&mut self, params: Params) -> Result<(), String> {
        params.validate()?;
        self.params = params;
        Ok(())
    }

    /// Carry nutrients one step along the current flows.
    pub fn transport_nutrients(&mut self) {
        growth::transport_nutrients(&mut self.net, &self.params, &mut self.scratch);
    }

    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    pub fn radius(&self) -> Vec<f64> {
        self.net.conductivity.iter().map(|&d| crate::graph::radius_of_conductivity(d)).collect()
    }

    pub fn order_parameter(&self) -> f64 {
        growth::order_parameter(&self.net)
    }

    /// Bytes held by the simulation: the network's arrays plus the solver's
    /// (vector capacities; the allocator's own overhead is not included).
    pub fn memory_bytes(&self) -> usize {
        self.net.memory_bytes()
            + self.ws.memory_bytes()
            + self.compact.memory_bytes()
            + self.scratch.memory_bytes()
            + 8 * (self.b.capacity() + self.w.capacity() + self.x.capacity() + self.net_out.capacity())
            + 4 * self.comp.capacity()
            + self.grounded.capacity()
            + self.has_ground.capacity()
            + self.carrying.capacity()
    }

    /// The sparse Cholesky factor's size and cost, and analyses done so far.
    pub fn factor_stats(&self) -> (crate::cholesky::FactorStats, u64) {
        (self.ws.chol.stats, self.ws.chol.analyses)
    }

    /// Store the flows Q = w (p_a − p_b) of the solved pressures and return
    /// the Kirchhoff residual max_i |Σ_j Q_ij − b_i| / I0 of what was stored
    /// (over the compact cells; every other cell has no alive tube and b = 0),
    /// in one pass over the tubes.
    fn store_flows(&mut self) -> f64 {
        let cp = &self.compact;
        let net_out = &mut self.net_out;
        net_out.clear();
        net_out.resize(cp.cells.len(), 0.0);
        for (k, &t) in cp.tubes.iter().enumerate() {
            let t = t as usize;
            let (a, b) = (cp.ends[2 * k] as usize, cp.ends[2 * k + 1] as usize);
            let q = self.w[k] * (self.x[a] - self.x[b]);
            self.net.flow[t] = q;
            if self.net.alive[t] == 0 {
                continue;
            }
            net_out[a] += q;
            net_out[b] -= q;
        }
        let mut m = 0.0f64;
        for i in 0..net_out.len() {
            let r = (net_out[i] - self.b[i]).abs();
            if r > m {
                m = r;
            }
        }
        m / self.params.i0
    }
}

impl PhysarumDynamics for Simulation {
    fn compute_flow(&mut self) -> SolveStats {
        let net = &mut self.net;
        let refreshed = self.compact.refresh(net);
        if refreshed {
            // Tubes and cells outside the compact set carry nothing.
            let mut inside = vec![0u8; net.n_cells()];
            for &c in &self.compact.cells {
                inside[c as usize] = 1;
            }
            for (c, &i) in inside.iter().enumerate() {
                if i == 0 {
                    net.pressure[c] = 0.0;
                }
            }
            for t in 0..net.n_tubes() {
                if net.alive[t] == 0 {
                    net.flow[t] = 0.0;
                }
            }
        }
        let cp = &self.compact;
        let n = cp.cells.len();
        let nt = cp.tubes.len();
        if refreshed {
            // The factorization knows its cells across renumberings by their network ids.
            self.ws.chol.set_cell_ids(&cp.cells);
        }
        // Weights w = D/L of the compact tubes still alive; note whether the
        // set of tubes carrying weight changed.
        let mut changed = refreshed || self.carrying.len() != nt;
        if changed {
            self.carrying.clear();
            self.carrying.resize(nt, 2);
        }
        self.w.resize(nt, 0.0);
        for (k, &t) in cp.tubes.iter().enumerate() {
            let t = t as usize;
            let wt = if net.alive[t] != 0 && net.conductivity[t] > 0.0 { net.conductivity[t] / net.length[t] } else { 0.0 };
            self.w[k] = wt;
            let c = u8::from(wt > 0.0);
            if self.carrying[k] != c {
                self.carrying[k] = c;
                changed = true;
            }
        }
        let comp = &mut self.comp;
        if changed {
            cp.components(&self.w, comp);
            // Ground one cell per component: the first food cell in it, else
            // its lowest cell (compact ids follow cell ids).
            self.grounded.clear();
            self.grounded.resize(n, 0);
            self.has_ground.clear();
            self.has_ground.resize(n, 0);
            for &f in &cp.food {
                let c = comp[f as usize] as usize;
                if self.has_ground[c] == 0 {
                    self.has_ground[c] = 1;
                    self.grounded[f as usize] = 1;
                }
            }
            for i in 0..n {
                let c = comp[i] as usize;
                if self.has_ground[c] == 0 {
                    self.has_ground[c] = 1;
                    self.grounded[i] = 1;
                }
            }
        }
        let comp = &self.comp;
        self.b.clear();
        self.b.resize(n, 0.0);
        let scheme = self.params.effective_scheme(net.food.len());
        let src = food::fill_sources(scheme, &cp.food, self.params.i0, &mut self.rng, &mut self.b);
        self.last_source = src.map_or(-1, |s| cp.cells[s as usize] as i64);
        food::balance_components(comp, &cp.food, &mut self.b);
        self.x.clear();
        self.x.extend(cp.cells.iter().map(|&c| net.pressure[c as usize]));
        let stats = solver::solve(
            &cp.ends,
            &self.w,
            &self.grounded,
            &self.b,
            &mut self.x,
            self.params.cg_tol * self.params.i0,
            self.params.cg_max_iter,
            self.params.cg_precond,
            &mut self.ws,
        );
        for (k, &c) in cp.cells.iter().enumerate() {
            net.pressure[c as usize] = self.x[k];
        }
        self.last_stats = stats;
        self.total_cg_iterations += stats.iterations as u64;
        self.total_factor_flops += stats.factor_flops;
        self.last_residual = self.store_flows();
        if self.last_residual > self.max_residual {
            self.max_residual = self.last_residual;
        }
        stats
    }

    fn adapt_tubes(&mut self) -> usize {
        adaptation::adapt(&mut self.net, &self.params, &mut self.scratch)
    }

    fn explore(&mut self) -> usize {
        growth::explore(&mut self.net, &self.params, &mut self.rng)
    }

    fn synchronize_oscillations(&mut self) {
        growth::synchronize(&mut self.net, &self.params, &mut self.scratch)
    }

    fn step(&mut self) {
        self.compute_flow();
        self.adapt_tubes();
        self.explore();
        self.transport_nutrients();
        self.synchronize_oscillations();
        // Pressures array must cover cells added by exploration (add_cell does).
        self.steps += 1;
        self.peak_memory_bytes = self.peak_memory_bytes.max(self.memory_bytes());
    }
}

//! `NativePhysarum`: the native build of the Physarum kernel (crate
//! `vudo-physarum`), with the same operations as the wasm C-ABI so tests can
//! compare native and wasm results bit for bit. Steps run with the GIL released.

use pyo3::prelude::*;

use vudo_physarum::{Params, Simulation};

use crate::errors::CoreFailure;

fn invalid(msg: String) -> CoreFailure {
    CoreFailure::InvalidArgument(msg)
}

/// One Physarum simulation (native code).
#[pyclass(module = "vudo._core")]
pub struct NativePhysarum {
    sim: Simulation,
}

#[pymethods]
impl NativePhysarum {
    #[new]
    fn new(params: Vec<f64>, seed: u64) -> Result<Self, CoreFailure> {
        let p = Params::from_slice(&params).map_err(invalid)?;
        Ok(NativePhysarum { sim: Simulation::new(p, seed).map_err(invalid)? })
    }

    fn set_params(&mut self, params: Vec<f64>) -> Result<(), CoreFailure> {
        let p = Params::from_slice(&params).map_err(invalid)?;
        self.sim.set_params(p).map_err(invalid)
    }

    #[pyo3(signature = (x, y, z=0.0))]
    fn add_node(&mut self, x: f64, y: f64, z: f64) -> Result<u32, CoreFailure> {
        self.sim.add_node(x, y, z).map_err(invalid)
    }

    /// Add cells from a flat list [x0, y0, z0, x1, ...]; returns the first id.
    fn add_nodes(&mut self, xyz: Vec<f64>) -> Result<u32, CoreFailure> {
        if xyz.len() % 3 != 0 {
            return Err(invalid(format!("xyz must hold 3 values per cell, got {}", xyz.len())));
        }
        let first = self.sim.net.n_cells() as u32;
        for c in xyz.chunks_exact(3) {
            self.sim.add_node(c[0], c[1], c[2]).map_err(invalid)?;
        }
        Ok(first)
    }

    #[pyo3(signature = (a, b, length=f64::NAN))]
    fn add_edge(&mut self, a: u32, b: u32, length: f64) -> Result<u32, CoreFailure> {
        self.sim.add_edge(a, b, length).map_err(invalid)
    }

    /// Add tubes from a flat endpoint list [a0, b0, a1, b1, ...] and optional
    /// lengths (None = Euclidean); returns the first tube id.
    #[pyo3(signature = (ends, lengths=None))]
    fn add_edges(&mut self, ends: Vec<u32>, lengths: Option<Vec<f64>>) -> Result<u32, CoreFailure> {
        if ends.len() % 2 != 0 {
            return Err(invalid(format!("ends must hold 2 values per tube, got {}", ends.len())));
        }
        let n = ends.len() / 2;
        if let Some(l) = &lengths {
            if l.len() != n {
                return Err(invalid(format!("lengths has {} entries for {n} tubes", l.len())));
            }
        }
        let first = self.sim.net.n_tubes() as u32;
        for k in 0..n {
            let len = lengths.as_ref().map_or(f64::NAN, |l| l[k]);
            self.sim.add_edge(ends[2 * k], ends[2 * k + 1], len).map_err(invalid)?;
        }
        Ok(first)
    }

    fn set_food(&mut self, ids: Vec<u32>) -> Result<(), CoreFailure> {
        self.sim.set_food(&ids).map_err(invalid)
    }

    #[pyo3(signature = (n=1))]
    fn step(&mut self, py: Python<'_>, n: u64) {
        let sim = &mut self.sim;
        py.detach(|| sim.run(n));
    }

    #[getter]
    fn node_count(&self) -> usize {
        self.sim.net.n_cells()
    }
    #[getter]
    fn edge_count(&self) -> usize {
        self.sim.net.n_tubes()
    }
    #[getter]
    fn alive_count(&self) -> usize {
        self.sim.net.n_alive()
    }
    #[getter]
    fn steps(&self) -> u64 {
        self.sim.steps
    }
    #[getter]
    fn residual(&self) -> f64 {
        self.sim.last_residual
    }
    #[getter]
    fn max_residual(&self) -> f64 {
        self.sim.max_residual
    }
    #[getter]
    fn last_cg_iterations(&self) -> u32 {
        self.sim.last_stats.iterations
    }
    #[getter]
    fn total_cg_iterations(&self) -> u64 {
        self.sim.total_cg_iterations
    }
    #[getter]
    fn converged(&self) -> bool {
        self.sim.last_stats.converged
    }
    /// Off-diagonal entries of the current sparse Cholesky factor (0 before the first factorization).
    #[getter]
    fn factor_nnz(&self) -> u64 {
        self.sim.factor_stats().0.nnz_l as u64
    }
    /// Unknowns of the current sparse Cholesky factor.
    #[getter]
    fn factor_n(&self) -> u64 {
        self.sim.factor_stats().0.n as u64
    }
    /// Symbolic analyses (orderings) done so far by the Cholesky solver.
    #[getter]
    fn analyses(&self) -> u64 {
        self.sim.factor_stats().1
    }
    /// Multiply-add pairs spent in Cholesky factorizations over all steps.
    #[getter]
    fn total_factor_flops(&self) -> f64 {
        self.sim.total_factor_flops
    }
    /// Bytes held by the simulation's arrays now (network + solver).
    #[getter]
    fn memory_bytes(&self) -> u64 {
        self.sim.memory_bytes() as u64
    }
    /// Largest memory_bytes seen after a step.
    #[getter]
    fn peak_memory_bytes(&self) -> u64 {
        self.sim.peak_memory_bytes as u64
    }
    /// Bytes held by the network's own arrays (cells, tubes, food).
    #[getter]
    fn graph_bytes(&self) -> u64 {
        self.sim.net.memory_bytes() as u64
    }
    #[getter]
    fn total_length(&self) -> f64 {
        self.sim.net.total_length()
    }
    #[getter]
    fn order_parameter(&self) -> f64 {
        self.sim.order_parameter()
    }
    #[getter]
    fn last_source(&self) -> i64 {
        self.sim.last_source
    }

    /// Flat endpoints [a0, b0, a1, b1, ...].
    fn edge_ends(&self) -> Vec<u32> {
        self.sim.net.ends.clone()
    }
    fn edge_length(&self) -> Vec<f64> {
        self.sim.net.length.clone()
    }
    fn conductivity(&self) -> Vec<f64> {
        self.sim.net.conductivity.clone()
    }
    fn radius(&self) -> Vec<f64> {
        self.sim.radius()
    }
    fn flow(&self) -> Vec<f64> {
        self.sim.net.flow.clone()
    }
    fn age(&self) -> Vec<f64> {
        self.sim.net.age.clone()
    }
    fn alive(&self) -> Vec<bool> {
        self.sim.net.alive.iter().map(|&a| a != 0).collect()
    }
    fn pressure(&self) -> Vec<f64> {
        self.sim.net.pressure.clone()
    }
    /// Flat positions [x0, y0, z0, x1, ...].
    fn positions(&self) -> Vec<f64> {
        self.sim.net.position.clone()
    }
    fn phase(&self) -> Vec<f64> {
        self.sim.net.phase.clone()
    }
    fn nutrient(&self) -> Vec<f64> {
        self.sim.net.nutrient.clone()
    }
    fn food(&self) -> Vec<u32> {
        self.sim.net.food.clone()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativePhysarum>()?;
    Ok(())
}

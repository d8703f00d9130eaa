//! The C-ABI of the kernel (see `ABI.md`). Every function takes plain integers,
//! doubles and pointers into linear memory; a simulation is an opaque handle
//! (a pointer) created by `px_new` and destroyed by `px_free_sim`. Functions that
//! can fail return a negative value (or a null handle) and leave a message
//! readable through `px_error_ptr` / `px_error_len`.

use std::cell::RefCell;

use crate::dynamics::Simulation;
use crate::params::Params;

/// What a handle points to: the simulation and a scratch buffer for derived arrays.
pub struct Handle {
    pub sim: Simulation,
    radius: Vec<f64>,
}

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn set_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend_from_slice(msg.as_bytes());
    });
}

/// Pointer to the UTF-8 text of the last error (valid until the next error).
#[no_mangle]
pub extern "C" fn px_error_ptr() -> *const u8 {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Length in bytes of the last error message (0 if none).
#[no_mangle]
pub extern "C" fn px_error_len() -> u32 {
    LAST_ERROR.with(|e| e.borrow().len() as u32)
}

/// ABI version; bumped on any incompatible change.
#[no_mangle]
pub extern "C" fn px_abi_version() -> u32 {
    2
}

/// Allocate `n_bytes` (8-byte aligned) of linear memory for the host to fill.
#[no_mangle]
pub extern "C" fn px_alloc(n_bytes: u32) -> *mut u8 {
    let words = (n_bytes as usize).div_ceil(8).max(1);
    let mut v: Vec<u64> = vec![0; words];
    let p = v.as_mut_ptr() as *mut u8;
    std::mem::forget(v);
    p
}

/// Release a buffer from `px_alloc`; `n_bytes` must be the size passed to it.
///
/// # Safety
/// `ptr` must come from `px_alloc(n_bytes)` and not be freed twice.
#[no_mangle]
pub unsafe extern "C" fn px_free(ptr: *mut u8, n_bytes: u32) {
    if ptr.is_null() {
        return;
    }
    let words = (n_bytes as usize).div_ceil(8).max(1);
    drop(Vec::from_raw_parts(ptr as *mut u64, words, words));
}

unsafe fn slice<'a, T>(ptr: *const T, n: u32) -> &'a [T] {
    if n == 0 || ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, n as usize)
    }
}

unsafe fn handle<'a>(h: *mut Handle) -> Option<&'a mut Handle> {
    if h.is_null() {
        set_error("null simulation handle");
        None
    } else {
        Some(&mut *h)
    }
}

/// Create a simulation from `n_params` doubles (layout in ABI.md) and a seed.
/// Returns a handle, or null on invalid parameters.
///
/// # Safety
/// `params` must point to `n_params` readable doubles (or be null with 0).
#[no_mangle]
pub unsafe extern "C" fn px_new(params: *const f64, n_params: u32, seed: u64) -> *mut Handle {
    let p = match Params::from_slice(slice(params, n_params)) {
        Ok(p) => p,
        Err(e) => {
            set_error(&e);
            return std::ptr::null_mut();
        }
    };
    match Simulation::new(p, seed) {
        Ok(sim) => Box::into_raw(Box::new(Handle { sim, radius: Vec::new() })),
        Err(e) => {
            set_error(&e);
            std::ptr::null_mut()
        }
    }
}

/// Destroy a simulation.
///
/// # Safety
/// `h` must come from `px_new` and not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn px_free_sim(h: *mut Handle) {
    if !h.is_null() {
        drop(Box::from_raw(h));
    }
}

/// Replace the parameters (missing slots take defaults, not the current values).
/// Returns 0, or -1 on invalid parameters.
///
/// # Safety
/// As `px_new`; `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_set_params(h: *mut Handle, params: *const f64, n_params: u32) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    match Params::from_slice(slice(params, n_params)).and_then(|p| h.sim.set_params(p)) {
        Ok(()) => 0,
        Err(e) => {
            set_error(&e);
            -1
        }
    }
}

fn id_or_error(r: Result<u32, String>) -> i32 {
    match r {
        Ok(id) if id <= i32::MAX as u32 => id as i32,
        Ok(_) => {
            set_error("id overflow");
            -1
        }
        Err(e) => {
            set_error(&e);
            -1
        }
    }
}

/// Add a cell at (x, y, z); returns its id or -1.
///
/// # Safety
/// `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_add_node(h: *mut Handle, x: f64, y: f64, z: f64) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    id_or_error(h.sim.add_node(x, y, z))
}

/// Add `n` cells from `xyz` (3·n doubles); returns the first new id or -1.
///
/// # Safety
/// `xyz` must point to 3·n readable doubles; `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_add_nodes(h: *mut Handle, xyz: *const f64, n: u32) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    let first = h.sim.net.n_cells() as u32;
    let v = slice(xyz, n.saturating_mul(3));
    for c in v.chunks_exact(3) {
        if let Err(e) = h.sim.add_node(c[0], c[1], c[2]) {
            set_error(&e);
            return -1;
        }
    }
    id_or_error(Ok(first))
}

/// Add a tube between cells a and b; `length <= 0` or NaN = Euclidean. Returns
/// the tube id or -1.
///
/// # Safety
/// `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_add_edge(h: *mut Handle, a: u32, b: u32, length: f64) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    id_or_error(h.sim.add_edge(a, b, length))
}

/// Add `n` tubes: `ab` holds 2·n u32 endpoints, `lengths` n doubles or null
/// (all Euclidean). Returns the first new tube id or -1 (tubes before the bad
/// one are kept).
///
/// # Safety
/// Pointers must cover the stated sizes; `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_add_edges(h: *mut Handle, ab: *const u32, lengths: *const f64, n: u32) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    let first = h.sim.net.n_tubes() as u32;
    let ab = slice(ab, n.saturating_mul(2));
    let lens = slice(lengths, if lengths.is_null() { 0 } else { n });
    for k in 0..n as usize {
        let len = lens.get(k).copied().unwrap_or(f64::NAN);
        if let Err(e) = h.sim.add_edge(ab[2 * k], ab[2 * k + 1], len) {
            set_error(&e);
            return -1;
        }
    }
    id_or_error(Ok(first))
}

/// Declare the food sources (replaces any previous set). Returns 0 or -1.
///
/// # Safety
/// `ids` must point to n readable u32; `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_set_food(h: *mut Handle, ids: *const u32, n: u32) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    match h.sim.set_food(slice(ids, n)) {
        Ok(()) => 0,
        Err(e) => {
            set_error(&e);
            -1
        }
    }
}

/// Advance `n` steps. Returns 0, or -1 for a null handle.
///
/// # Safety
/// `h` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn px_step(h: *mut Handle, n: u32) -> i32 {
    let Some(h) = handle(h) else { return -1 };
    h.sim.run(n as u64);
    0
}

macro_rules! scalar_getter {
    ($(#[$m:meta])* $name:ident -> $t:ty, $default:expr, |$s:ident| $body:expr) => {
        $(#[$m])*
        ///
        /// # Safety
        /// `h` must be a live handle (null returns the default).
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: *mut Handle) -> $t {
            match handle(h) {
                Some(h) => {
                    let $s = &h.sim;
                    $body
                }
                None => $default,
            }
        }
    };
}

scalar_getter!(/// Number of cells.
    px_node_count -> u32, 0, |s| s.net.n_cells() as u32);
scalar_getter!(/// Number of tubes ever created (alive or pruned).
    px_edge_count -> u32, 0, |s| s.net.n_tubes() as u32);
scalar_getter!(/// Number of alive tubes.
    px_alive_count -> u32, 0, |s| s.net.n_alive() as u32);
scalar_getter!(/// Number of food sources.
    px_food_count -> u32, 0, |s| s.net.food.len() as u32);
scalar_getter!(/// Steps taken so far.
    px_steps -> f64, -1.0, |s| s.steps as f64);
scalar_getter!(/// Kirchhoff residual of the last step, max_i |Σ_j Q_ij − b_i| / I0.
    px_residual -> f64, f64::NAN, |s| s.last_residual);
scalar_getter!(/// Largest Kirchhoff residual over all steps so far.
    px_max_residual -> f64, f64::NAN, |s| s.max_residual);
scalar_getter!(/// CG iterations of the last step.
    px_last_cg_iterations -> u32, 0, |s| s.last_stats.iterations);
scalar_getter!(/// CG iterations summed over all steps.
    px_total_cg_iterations -> f64, 0.0, |s| s.total_cg_iterations as f64);
scalar_getter!(/// 1 if the last solve reached the tolerance, else 0.
    px_converged -> i32, 0, |s| s.last_stats.converged as i32);
scalar_getter!(/// Total length of alive tubes.
    px_total_length -> f64, f64::NAN, |s| s.net.total_length());
scalar_getter!(/// Kuramoto order parameter of the phases (1 = synchronised).
    px_order_parameter -> f64, f64::NAN, |s| s.order_parameter());
scalar_getter!(/// Food cell that was the source in the last step, or -1.
    px_last_source -> i32, -1, |s| s.last_source as i32);
scalar_getter!(/// Off-diagonal entries of the current sparse Cholesky factor (0 before the first factorization).
    px_factor_nnz -> f64, 0.0, |s| s.factor_stats().0.nnz_l as f64);
scalar_getter!(/// Unknowns of the current sparse Cholesky factor.
    px_factor_n -> f64, 0.0, |s| s.factor_stats().0.n as f64);
scalar_getter!(/// Symbolic analyses (orderings) done so far by the Cholesky solver.
    px_analyses -> f64, 0.0, |s| s.factor_stats().1 as f64);
scalar_getter!(/// Multiply–add pairs spent in Cholesky factorizations over all steps.
    px_total_factor_flops -> f64, 0.0, |s| s.total_factor_flops);
scalar_getter!(/// Bytes held by the simulation's arrays now (network + solver).
    px_memory_bytes -> f64, 0.0, |s| s.memory_bytes() as f64);
scalar_getter!(/// Largest `px_memory_bytes` seen after a step.
    px_peak_memory_bytes -> f64, 0.0, |s| s.peak_memory_bytes as f64);
scalar_getter!(/// Bytes held by the network's own arrays (cells, tubes, food).
    px_graph_bytes -> f64, 0.0, |s| s.net.memory_bytes() as f64);

macro_rules! array_getter {
    ($(#[$m:meta])* $name:ident -> $t:ty, |$s:ident| $body:expr) => {
        $(#[$m])*
        /// Valid until the next call that mutates the simulation.
        ///
        /// # Safety
        /// `h` must be a live handle (null returns null).
        #[no_mangle]
        pub unsafe extern "C" fn $name(h: *mut Handle) -> *const $t {
            match handle(h) {
                Some(h) => {
                    let $s = &h.sim;
                    $body.as_ptr()
                }
                None => std::ptr::null(),
            }
        }
    };
}

array_getter!(/// Tube endpoints: 2·edge_count u32 (a0, b0, a1, b1, ...).
    px_edge_ends -> u32, |s| s.net.ends);
array_getter!(/// Tube lengths: edge_count f64.
    px_edge_length -> f64, |s| s.net.length);
array_getter!(/// Conductivity D per tube (0 when pruned): edge_count f64.
    px_conductivity -> f64, |s| s.net.conductivity);
array_getter!(/// Flux Q per tube from the last solve (positive a → b): edge_count f64.
    px_flow -> f64, |s| s.net.flow);
array_getter!(/// Tube age: edge_count f64.
    px_age -> f64, |s| s.net.age);
array_getter!(/// Alive flag per tube: edge_count u8.
    px_alive -> u8, |s| s.net.alive);
array_getter!(/// Pressure per cell: node_count f64.
    px_pressure -> f64, |s| s.net.pressure);
array_getter!(/// Cell positions: 3·node_count f64.
    px_positions -> f64, |s| s.net.position);
array_getter!(/// Oscillation phase per cell in [0, 2π): node_count f64.
    px_phase -> f64, |s| s.net.phase);
array_getter!(/// Nutrient level per cell in [0, 1]: node_count f64.
    px_nutrient -> f64, |s| s.net.nutrient);
array_getter!(/// Food cell ids: food_count u32.
    px_food -> u32, |s| s.net.food);

/// Tube radius r = D^(1/4) (the seed's `tube.thickness`): edge_count f64,
/// computed into a scratch buffer owned by the handle.
///
/// # Safety
/// `h` must be a live handle (null returns null).
#[no_mangle]
pub unsafe extern "C" fn px_radius(h: *mut Handle) -> *const f64 {
    let Some(h) = handle(h) else { return std::ptr::null() };
    h.radius = h.sim.radius();
    h.radius.as_ptr()
}

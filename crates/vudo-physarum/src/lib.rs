//! The Physarum polycephalum kernel: the adaptive tube-network model of Tero et
//! al. (2007, 2010) with the seed's `PhysarumCell` / `TubularNetwork` genes and
//! `PhysarumDynamics` trait. Pure Rust; `abi` exports a plain C-ABI so that the
//! same code compiles to one wasm32 module (browser + wasmtime) and is linked
//! natively by the PyO3 layer. `spirit` (with its wasm glue `spirit_wasm`)
//! makes that module a VUDO spirit too (spirit ABI v1).

pub mod abi;
pub mod adaptation;
pub mod cholesky;
pub mod compact;
pub mod dynamics;
pub mod fastmath;
pub mod food;
pub mod graph;
pub mod growth;
pub mod ordering;
pub mod params;
pub mod rng;
pub mod solver;
pub mod spirit;
#[cfg(target_arch = "wasm32")]
pub mod spirit_wasm;
pub mod tiles;

pub use dynamics::{PhysarumDynamics, Simulation};
pub use graph::Network;
pub use params::{Model, Params, Scheme};

#[cfg(test)]
mod tests;

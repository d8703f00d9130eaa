//! `vudo._core`: the private extension module.
//!
//! Thin on purpose: each submodule converts Python arguments, calls a pure
//! engine crate with the GIL released, and converts results back. Errors
//! become Python exceptions in exactly one place (`errors.rs`).

use pyo3::prelude::*;

mod errors;
mod gossip;
mod identity;
mod ledger;
mod links;
mod physarum;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    identity::register(m)?;
    gossip::register(m)?;
    links::register(m)?;
    physarum::register(m)?;
    ledger::register(m)?;
    Ok(())
}

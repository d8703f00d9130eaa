//! The one place where engine errors become Python exceptions.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use vudo_gossip::GossipError;
use vudo_ledger::LedgerError;
use vudo_links::LinksError;

create_exception!(_core, CoreError, PyException, "Base class of every error raised by the Rust engines.");
create_exception!(_core, EngineStoppedError, CoreError, "The engine was shut down; create a new one.");
create_exception!(
    _core,
    LedgerFailure,
    CoreError,
    "The credit ledger refused or could not complete an operation; `code` says why (insufficient_funds, \
     invalid_signature, id_conflict, overflow, memo_too_long, no_leader, not_leader, ...)."
);

/// Every failure the extension can report, whichever engine it came from.
pub enum CoreFailure {
    AddressInUse(String),
    InvalidArgument(String),
    Stopped(String),
    /// A ledger failure with its machine-readable code.
    Ledger { code: &'static str, message: String },
    Other(String),
}

impl From<LedgerError> for CoreFailure {
    fn from(err: LedgerError) -> Self {
        match err {
            LedgerError::InvalidArgument(msg) => CoreFailure::InvalidArgument(msg),
            LedgerError::Stopped => CoreFailure::Stopped(err.to_string()),
            other => CoreFailure::Ledger { code: other.code(), message: other.to_string() },
        }
    }
}

impl From<GossipError> for CoreFailure {
    fn from(err: GossipError) -> Self {
        let msg = err.to_string();
        match err {
            GossipError::AddressInUse(_) => CoreFailure::AddressInUse(msg),
            GossipError::InvalidConfig(_) | GossipError::InvalidKey(_) | GossipError::OpenGossip => {
                CoreFailure::InvalidArgument(msg)
            }
            GossipError::Stopped => CoreFailure::Stopped(msg),
            GossipError::Bind(..) | GossipError::Shutdown(_) => CoreFailure::Other(msg),
        }
    }
}

impl From<LinksError> for CoreFailure {
    fn from(err: LinksError) -> Self {
        let msg = err.to_string();
        match err {
            LinksError::AddressInUse(_) => CoreFailure::AddressInUse(msg),
            LinksError::InvalidConfig(_) | LinksError::InvalidArgument(_) => CoreFailure::InvalidArgument(msg),
            LinksError::Stopped => CoreFailure::Stopped(msg),
            LinksError::Listen(..) => CoreFailure::Other(msg),
        }
    }
}

impl From<CoreFailure> for PyErr {
    fn from(failure: CoreFailure) -> PyErr {
        Python::attach(|py| match failure {
            CoreFailure::AddressInUse(msg) => new_err(py, "AddressInUseError", msg),
            CoreFailure::InvalidArgument(msg) => new_err(py, "InvalidArgumentError", msg),
            CoreFailure::Stopped(msg) => EngineStoppedError::new_err(msg),
            CoreFailure::Ledger { code, message } => {
                let err = LedgerFailure::new_err(message);
                // `code` is the machine-readable reason; setting an attribute cannot fail here.
                let _ = err.value(py).setattr("code", code);
                err
            }
            CoreFailure::Other(msg) => CoreError::new_err(msg),
        })
    }
}

/// Build one of the multiply-inheriting exceptions registered by [`register`].
fn new_err(py: Python<'_>, name: &str, msg: String) -> PyErr {
    let lookup = || -> PyResult<PyErr> {
        let module = py.import("vudo._core")?;
        let cls = module.getattr(name)?;
        Ok(PyErr::from_value(cls.call1((msg.clone(),))?))
    };
    lookup().unwrap_or_else(|_| CoreError::new_err(msg.clone()))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("EngineStoppedError", py.get_type::<EngineStoppedError>())?;
    m.add("LedgerFailure", py.get_type::<LedgerFailure>())?;
    // AddressInUseError(CoreError, OSError) and InvalidArgumentError(CoreError, ValueError)
    // need two bases, which create_exception! cannot express; build them with type().
    let builtins = py.import("builtins")?;
    let type_fn = builtins.getattr("type")?;
    for (name, extra, doc) in [
        ("AddressInUseError", py.get_type::<PyOSError>().into_any(), "A socket address the node wants to bind is taken by another process."),
        ("InvalidArgumentError", py.get_type::<PyValueError>().into_any(), "The caller passed a value the engine cannot accept (local error)."),
    ] {
        let bases = PyTuple::new(py, [py.get_type::<CoreError>().into_any(), extra])?;
        let ns = pyo3::types::PyDict::new(py);
        ns.set_item("__doc__", doc)?;
        ns.set_item("__module__", "vudo._core")?;
        let cls = type_fn.call1((name, bases, ns))?;
        m.add(name, cls)?;
    }
    Ok(())
}

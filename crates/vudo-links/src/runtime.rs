//! The one tokio runtime that drives every link engine of this process.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub(crate) fn get() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vudo-links")
            .enable_all()
            .build()
            .expect("cannot start the links runtime (out of threads?)")
    })
}

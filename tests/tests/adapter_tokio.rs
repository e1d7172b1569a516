//! The adapter behaviour suite on gearman-tokio.

mod adapter_common;

use adapter_common::async_impl::{AsyncAdapter, Exec};
use std::sync::OnceLock;

struct Tokio;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

impl Exec for Tokio {
    type Rt = gearman_tokio::TokioRuntime;
    type Connector = gearman_tokio::TokioConnector;
    fn rt() -> Self::Rt {
        gearman_tokio::TokioRuntime
    }
    fn connector() -> Self::Connector {
        gearman_tokio::TokioConnector
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        runtime().block_on(f)
    }
}

adapter_suite!(AsyncAdapter<Tokio>);

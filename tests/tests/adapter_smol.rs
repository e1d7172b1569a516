//! The adapter behaviour suite on gearman-async-std, driven from smol.

mod adapter_common;

use adapter_common::async_impl::{AsyncAdapter, Exec};

struct Smol;

impl Exec for Smol {
    type Rt = gearman_async_std::AsyncIoRuntime;
    type Connector = gearman_async_std::AsyncIoConnector;
    fn rt() -> Self::Rt {
        gearman_async_std::AsyncIoRuntime
    }
    fn connector() -> Self::Connector {
        gearman_async_std::AsyncIoConnector
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        smol::block_on(f)
    }
}

adapter_suite!(AsyncAdapter<Smol>);

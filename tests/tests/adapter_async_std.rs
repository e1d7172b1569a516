//! The adapter behaviour suite on gearman-async-std, driven from async-std.

mod adapter_common;

use adapter_common::async_impl::{AsyncAdapter, Exec};

struct AsyncStd;

impl Exec for AsyncStd {
    type Rt = gearman_async_std::AsyncIoRuntime;
    type Connector = gearman_async_std::AsyncIoConnector;
    fn rt() -> Self::Rt {
        gearman_async_std::AsyncIoRuntime
    }
    fn connector() -> Self::Connector {
        gearman_async_std::AsyncIoConnector
    }
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        async_std::task::block_on(f)
    }
}

adapter_suite!(AsyncAdapter<AsyncStd>);

//! Serve `reverse` forever (works the same under smol: `smol::block_on`).
fn main() {
    let worker = gearman_async_std::worker()
        .server(server())
        .concurrency(4)
        .sync_function("reverse", |job| {
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .build();
    async_std::task::block_on(worker.run());
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

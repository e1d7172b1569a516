//! Serve `reverse` until Ctrl-C: `cargo run -p gearman-tokio --example worker`.
#[tokio::main]
async fn main() {
    let worker = gearman_tokio::worker()
        .server(server())
        .concurrency(4)
        .function("reverse", |job| async move {
            job.status(1, 1);
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .build();
    let stop = worker.shutdown_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.shutdown();
    });
    worker.run().await;
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

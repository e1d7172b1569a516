//! Serve `reverse` on the current thread.
fn main() {
    gearman_blocking::Worker::new([server()])
        .function("reverse", None, |job| {
            job.status(1, 1);
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .run();
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

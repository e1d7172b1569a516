//! Serve `reverse`, four jobs at a time (a thread and a connection each), until killed.
fn main() {
    gearman_blocking::worker()
        .server(server())
        .concurrency(4)
        .function("reverse", |job| {
            job.status(1, 1);
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .build()
        .run();
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

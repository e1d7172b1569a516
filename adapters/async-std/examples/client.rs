//! Reverse a string (works the same under smol: `smol::block_on`).
fn main() -> Result<(), gearman_async_std::Error> {
    async_std::task::block_on(async {
        let client = gearman_async_std::client().server(server()).build();
        let job = gearman_async_std::Job::new("reverse", "hello");
        let result = client.run(job).await?;
        println!("{}", String::from_utf8_lossy(&result));
        Ok(())
    })
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

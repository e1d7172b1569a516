//! Reverse a string with a blocking foreground job.
fn main() -> Result<(), gearman_blocking::Error> {
    let mut client = gearman_blocking::client().server(server()).build();
    let result = client.run(gearman_blocking::Job::new("reverse", "hello"))?;
    println!("{}", String::from_utf8_lossy(&result));
    Ok(())
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

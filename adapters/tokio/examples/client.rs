//! Reverse a string with a foreground job: `cargo run -p gearman-tokio --example client`.
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), gearman_tokio::Error> {
    let client = gearman_tokio::client().server(server()).build();
    let mut job = client
        .submit(gearman_tokio::Job::new("reverse", "hello"))
        .await?;
    while let Some(event) = job.next().await {
        println!("{:?}", event?);
    }
    Ok(())
}

/// The job server: `GEARMAN_SERVER` (`host:port`), else the default port on this host.
fn server() -> String {
    std::env::var("GEARMAN_SERVER").unwrap_or_else(|_| "127.0.0.1:4730".into())
}

//! Reverse a string with a foreground job: `cargo run -p gearman-tokio --example client`.
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), gearman_tokio::Error> {
    let client = gearman_tokio::client().server("127.0.0.1:4730").build();
    let mut job = client
        .submit(gearman_tokio::Job::new("reverse", "hello"))
        .await?;
    while let Some(event) = job.next().await {
        println!("{:?}", event?);
    }
    Ok(())
}

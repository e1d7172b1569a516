//! Reverse a string (works the same under smol: `smol::block_on`).
fn main() -> Result<(), gearman_async_std::Error> {
    async_std::task::block_on(async {
        let client = gearman_async_std::client().server("127.0.0.1:4730").build();
        let job = gearman_async_std::Job::new("reverse", "hello");
        let result = client.run(job).await?;
        println!("{}", String::from_utf8_lossy(&result));
        Ok(())
    })
}

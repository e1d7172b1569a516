//! Serve `reverse` forever (works the same under smol: `smol::block_on`).
fn main() {
    let worker = gearman_async_std::worker()
        .server("127.0.0.1:4730")
        .concurrency(4)
        .sync_function("reverse", |job| {
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .build();
    async_std::task::block_on(worker.run());
}

//! Serve `reverse` on the current thread.
fn main() {
    gearman_blocking::Worker::new(["127.0.0.1:4730"])
        .function("reverse", None, |job| {
            job.status(1, 1);
            Ok(job
                .job
                .data
                .iter()
                .rev()
                .copied()
                .collect::<Vec<u8>>()
                .into())
        })
        .work();
}

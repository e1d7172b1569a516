//! Reverse a string with a blocking foreground job.
fn main() -> Result<(), gearman_blocking::Error> {
    let mut client = gearman_blocking::Client::new(["127.0.0.1:4730"]);
    let result = client.run(gearman_blocking::Job::new("reverse", "hello"))?;
    println!("{}", String::from_utf8_lossy(&result));
    Ok(())
}

//! gearmand-rs built from this tree for the adapter suite: the same server and command line
//! as `server/src/main.rs`, as a binary of this crate so `cargo test -p gearman-tests`
//! always has a current one (`CARGO_BIN_EXE_gearmand-rs-under-test`).

use clap::Parser;

fn main() {
    let args = gearman_server::cli::Args::parse();
    if let Err(e) = gearman_server::run(args) {
        eprintln!("gearmand-rs: {e}");
        std::process::exit(1);
    }
}

//! `gearmand-rs`: parse the command line, run the server, exit with a clear message on error.

use clap::Parser;
use gearman_server::cli::Args;

fn main() {
    let args = Args::parse();
    if let Err(e) = gearman_server::run(args) {
        eprintln!("gearmand-rs: {e}");
        std::process::exit(1);
    }
}

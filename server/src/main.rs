//! `gearmand-rs`: parse the command line, run the server, exit with a clear message on error.

use clap::error::ErrorKind;
use clap::Parser;
use gearman_server::cli::Args;

/// Exit status for a bad command line (as clap and sysexits' EX_USAGE-style tools use).
const EXIT_USAGE: i32 = 2;
/// Exit status when the server cannot start or fails while running.
const EXIT_FAILURE: i32 = 1;

fn main() {
    let argv = match gearman_server::config_file::expand(std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("gearmand-rs: {e}");
            std::process::exit(EXIT_USAGE);
        }
    };
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // clap's message spans several lines (usage, tips); scripts and service logs
            // read better with the one line that says what is wrong.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let what = first.strip_prefix("error: ").unwrap_or(first);
            // It may quote a configuration file's token, and such a file holds passwords.
            let what = gearman_server::store::redact_secrets(what);
            eprintln!("gearmand-rs: {what} (see gearmand-rs --help)");
            std::process::exit(EXIT_USAGE);
        }
    };
    if let Err(e) = gearman_server::run(args) {
        eprintln!(
            "gearmand-rs: {}",
            gearman_server::store::redact_secrets(&e.to_string())
        );
        std::process::exit(EXIT_FAILURE);
    }
}

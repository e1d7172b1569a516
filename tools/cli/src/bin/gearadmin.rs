//! `gearadmin-rs`: gearmand's `gearadmin` on gearman-rs. Same flags, same output, and when
//! several operations are asked for, gearadmin's order.

use bytes::Bytes;
use clap::{CommandFactory, Parser};
use gearman_blocking::admin::{AdminCalls, AdminClient, AdminCommand, AdminError};
use gearman_cli::{parse_args, server_addr, tls_settings};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Administer a Gearman job server.
#[derive(Parser, Debug)]
#[command(name = "gearadmin-rs", version, disable_help_flag = true)]
struct Args {
    /// Options related to the program.
    #[arg(long)]
    help: bool,
    /// Connect to the host.
    #[arg(short = 'h', long, default_value = "localhost")]
    host: String,
    /// Port number to use for connection.
    #[arg(short, long, default_value_t = 4730)]
    port: u16,
    /// Fetch the version number for the server.
    #[arg(long)]
    server_version: bool,
    /// Fetch the verbose setting for the server.
    #[arg(long)]
    server_verbose: bool,
    /// Create the function from the server.
    #[arg(long)]
    create_function: Option<String>,
    /// Remove a given job from the server's queue.
    #[arg(long)]
    cancel_job: Option<String>,
    /// Drop the function from the server.
    #[arg(long)]
    drop_function: Option<String>,
    /// Show unique IDs of jobs on the server.
    #[arg(long)]
    show_unique_jobs: bool,
    /// Show all jobs on the server.
    #[arg(long)]
    show_jobs: bool,
    /// Get Process ID for the server.
    #[arg(long)]
    getpid: bool,
    /// Status for the server.
    #[arg(long)]
    status: bool,
    /// Queued jobs status by priority.
    #[arg(long)]
    priority_status: bool,
    /// Workers for the server.
    #[arg(long)]
    workers: bool,
    /// Enable SSL connections: TLS with the CA in GEARMAND_CA_CERTIFICATE (else the system
    /// roots) and the client certificate in GEARMAN_CLIENT_PEM/GEARMAN_CLIENT_KEY, if set.
    #[arg(short = 'S', long)]
    ssl: bool,
}

impl Args {
    /// The operations asked for, in the order gearadmin 1.1.20 runs them.
    fn operations(&self) -> Vec<AdminCommand> {
        let arg = |s: &Option<String>| s.as_ref().map(|s| Bytes::from(s.clone()));
        let mut ops = Vec::new();
        if self.getpid {
            ops.push(AdminCommand::Getpid);
        }
        if let Some(f) = arg(&self.create_function) {
            ops.push(AdminCommand::CreateFunction(f));
        }
        if let Some(f) = arg(&self.drop_function) {
            ops.push(AdminCommand::DropFunction(f));
        }
        if self.show_jobs {
            ops.push(AdminCommand::ShowJobs);
        }
        if self.show_unique_jobs {
            ops.push(AdminCommand::ShowUniqueJobs);
        }
        if let Some(h) = arg(&self.cancel_job) {
            ops.push(AdminCommand::CancelJob(h));
        }
        if self.server_verbose {
            ops.push(AdminCommand::Verbose);
        }
        if self.server_version {
            ops.push(AdminCommand::Version);
        }
        if self.workers {
            ops.push(AdminCommand::Workers);
        }
        if self.priority_status {
            ops.push(AdminCommand::PriorityStatus);
        }
        if self.status {
            ops.push(AdminCommand::Status);
        }
        ops
    }
}

/// What gearadmin prints for one reply: listings as they are, `OK VALUE` as the value,
/// `OK` as is; `ERR ...` goes to stderr as `Error: ...` (CRLF kept, as gearadmin does).
fn print_reply(reply: &[u8], out: &mut impl Write, err: &mut impl Write) -> std::io::Result<()> {
    if let Some(text) = reply.strip_prefix(b"ERR ") {
        // gearadmin keeps the line's CRLF here.
        err.write_all(b"Error: ")?;
        return err.write_all(text);
    }
    let line = reply.strip_suffix(b"\n").unwrap_or(reply);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(value) = line.strip_prefix(b"OK ") {
        out.write_all(value)?;
        return out.write_all(b"\n");
    }
    if line == b"OK" {
        return out.write_all(b"OK\n");
    }
    out.write_all(reply)
}

fn main() -> ExitCode {
    let args: Args = match parse_args() {
        Ok(args) => args,
        Err(status) => return status,
    };
    let ops = args.operations();
    if args.help || ops.is_empty() {
        if !args.help {
            println!("No option execution operation given.\n");
        }
        println!("{}", Args::command().render_help());
        // As gearadmin: asking for help succeeds, giving nothing to do does not.
        return ExitCode::from(if args.help { 0 } else { 1 });
    }
    let mut admin =
        AdminClient::new(server_addr(&args.host, args.port)).timeout(Duration::from_secs(30));
    match tls_settings(args.ssl) {
        Ok(Some(tls)) => admin = admin.tls(tls),
        Ok(None) => {}
        Err(e) => {
            eprintln!("Error: TLS settings: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = admin.connect() {
        eprintln!("Error: Error connecting to {}.\n", args.host);
        if args.ssl {
            // gearadmin's line stays as it is; the TLS reason follows it.
            eprintln!("Error: {e}");
        }
        return ExitCode::from(1);
    }
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for op in ops {
        let printed = match admin.raw(&op) {
            Ok(reply) => print_reply(&reply, &mut out, &mut err),
            Err(AdminError::Reply(e)) => writeln!(err, "Error: {e}"),
            Err(e) => {
                let _ = writeln!(err, "Error: {e}");
                return ExitCode::from(1);
            }
        };
        if printed.and_then(|()| out.flush()).is_err() {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

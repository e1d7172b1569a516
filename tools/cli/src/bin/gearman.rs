//! `gearman-rs`: gearmand's `gearman` tool on gearman-rs. Client mode runs jobs and prints
//! their results; worker mode (`-w`) serves functions by piping each job through a
//! command.

use bytes::Bytes;
use clap::{CommandFactory, Parser};
use gearman_blocking::{ClientTls, Error, Job, JobContext, JobEvent, Priority, WorkError, Worker};
use gearman_cli::{parse_args, server_addr, tls_settings};
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Run Gearman jobs, or serve them with a command.
#[derive(Parser, Debug)]
#[command(
    name = "gearman-rs",
    version,
    disable_help_flag = true,
    override_usage = "gearman-rs [options] [<data>]\n       gearman-rs -w [options] [<command> [<args> ...]]"
)]
struct Args {
    /// Function name to use for jobs (can give many).
    #[arg(short = 'f', value_name = "function")]
    functions: Vec<String>,
    /// Job server host (can give many; `host:port` too).
    #[arg(short = 'h', value_name = "host")]
    hosts: Vec<String>,
    /// Print this help menu.
    #[arg(short = 'H')]
    help: bool,
    /// Print diagnostic information to stderr.
    #[arg(short = 'v')]
    verbose: bool,
    /// Job server port.
    #[arg(short = 'p', value_name = "port", default_value_t = 4730)]
    port: u16,
    /// Timeout in milliseconds.
    #[arg(short = 't', value_name = "timeout")]
    timeout: Option<u64>,
    /// Create a pidfile for the process.
    #[arg(short = 'i', value_name = "pidfile")]
    pidfile: Option<std::path::PathBuf>,
    /// Enable SSL connections: TLS with the CA in GEARMAND_CA_CERTIFICATE (else the system
    /// roots) and the client certificate in GEARMAN_CLIENT_PEM/GEARMAN_CLIENT_KEY, if set;
    /// the server's certificate must be for the host given.
    #[arg(short = 'S')]
    ssl: bool,
    /// Run jobs in the background.
    #[arg(short = 'b')]
    background: bool,
    /// Run jobs as high priority.
    #[arg(short = 'I')]
    high: bool,
    /// Run jobs as low priority.
    #[arg(short = 'L')]
    low: bool,
    /// Run one job per line (worker: send a data packet per output line; not supported).
    #[arg(short = 'n')]
    per_line: bool,
    /// Same as -n, but strip off the newline.
    #[arg(short = 'N')]
    per_line_stripped: bool,
    /// Prefix all output lines with functions names.
    #[arg(short = 'P')]
    prefix: bool,
    /// Send job without reading from standard input.
    #[arg(short = 's')]
    no_stdin: bool,
    /// Unique key to use for job.
    #[arg(short = 'u', value_name = "unique")]
    unique: Option<String>,
    /// Number of jobs for worker to run before exiting (0: no limit, as gearman).
    #[arg(short = 'c', value_name = "count")]
    count: Option<u64>,
    /// Run in worker mode.
    #[arg(short = 'w')]
    worker: bool,
    /// Client: workloads, one job each. Worker: the command (and its arguments) each job
    /// is piped through.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

impl Args {
    fn servers(&self) -> Vec<String> {
        let hosts = if self.hosts.is_empty() {
            vec!["localhost".to_owned()]
        } else {
            self.hosts.clone()
        };
        hosts.iter().map(|h| server_addr(h, self.port)).collect()
    }

    /// The workloads, as the C tool takes them: arguments, else stdin lines (`-n`/`-N`),
    /// else nothing (`-s`), else all of stdin.
    fn workloads(&self) -> std::io::Result<Vec<Bytes>> {
        if !self.rest.is_empty() {
            return Ok(self.rest.iter().map(|a| Bytes::from(a.clone())).collect());
        }
        if self.no_stdin {
            return Ok(vec![Bytes::new()]);
        }
        let mut input = Vec::new();
        std::io::stdin().lock().read_to_end(&mut input)?;
        if !(self.per_line || self.per_line_stripped) {
            return Ok(vec![input.into()]);
        }
        Ok(input
            .split_inclusive(|&b| b == b'\n')
            .map(|line| match self.per_line_stripped {
                true => Bytes::copy_from_slice(line.strip_suffix(b"\n").unwrap_or(line)),
                false => Bytes::copy_from_slice(line),
            })
            .collect())
    }
}

fn main() -> ExitCode {
    let args: Args = match parse_args() {
        Ok(args) => args,
        Err(status) => return status,
    };
    if args.help {
        println!("{}", Args::command().render_help());
        return ExitCode::SUCCESS;
    }
    if args.functions.is_empty() {
        eprintln!("gearman-rs: Error in usage(No Functions were provided).");
        return ExitCode::from(1);
    }
    let tls = match tls_settings(args.ssl) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("gearman-rs: TLS settings: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &args.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("gearman-rs: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if args.worker {
        work(&args, tls)
    } else {
        run_client(&args, tls)
    }
}

/// Writes `data`, after `FUNCTION: ` with `-P`, and flushes.
fn print(prefix: Option<&str>, data: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Some(function) = prefix {
        let _ = write!(out, "{function}: ");
    }
    let _ = out.write_all(data);
    let _ = out.flush();
}

fn run_client(args: &Args, tls: Option<ClientTls>) -> ExitCode {
    let workloads = match args.workloads() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("gearman-rs: reading standard input: {e}");
            return ExitCode::from(1);
        }
    };
    let priority = match (args.high, args.low) {
        (true, _) => Priority::High,
        (_, true) => Priority::Low,
        _ => Priority::Normal,
    };
    let client = gearman_blocking::client().servers(args.servers());
    let mut client = match tls {
        Some(tls) => client.tls(tls).build(),
        None => client.build(),
    };
    let mut failed = false;
    for data in workloads {
        for function in &args.functions {
            let mut job = Job::new(function.clone(), data.clone()).priority(priority);
            if let Some(unique) = &args.unique {
                job = job.unique(unique.clone());
            }
            if let Some(ms) = args.timeout {
                job = job.timeout(Duration::from_millis(ms));
            }
            let prefix = args.prefix.then_some(function.as_str());
            let result = if args.background {
                client.submit_background(job).map(|handle| {
                    if args.verbose {
                        eprintln!("Task created: {}", String::from_utf8_lossy(&handle));
                    }
                })
            } else {
                client
                    .run_with(job, |event| {
                        if let JobEvent::Data(data) = event {
                            print(prefix, data);
                        }
                    })
                    .map(|result| print(prefix, &result))
            };
            match result {
                Ok(()) => {}
                Err(Error::JobFailed | Error::JobException(_)) => {
                    eprintln!("Job failed");
                    failed = true;
                }
                Err(e) => {
                    eprintln!("gearman-rs: {function}: {e}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `command` with `data` on its stdin; returns whether it succeeded and its stdout.
fn pipe_through(command: &[String], data: &Bytes) -> std::io::Result<(bool, Vec<u8>)> {
    let (program, args) = command
        .split_first()
        .ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or(std::io::ErrorKind::BrokenPipe)?;
    let data = data.clone();
    // Written from another thread: a command that answers before reading all its input
    // must not deadlock against us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let output = child.wait_with_output()?;
    let _ = writer.join();
    Ok((output.status.success(), output.stdout))
}

/// Sends the worker library's warnings to stderr: it keeps retrying a server it cannot
/// reach and says why only through `tracing`.
fn show_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

fn work(args: &Args, tls: Option<ClientTls>) -> ExitCode {
    show_warnings();
    let command = Arc::new(args.rest.clone());
    // gearman's worker counts down only from a positive -c: 0 serves without limit.
    let limit = args.count.filter(|&n| n > 0);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(OnceLock::new());
    let mut worker = Worker::new(args.servers());
    if let Some(tls) = tls {
        worker = worker.tls(tls);
    }
    for function in &args.functions {
        let (command, done, stop) = (command.clone(), done.clone(), stop.clone());
        worker = worker.function(function.clone(), move |job: &mut JobContext<'_>| {
            let data = job.data().clone();
            let result = if command.is_empty() {
                print(None, &data);
                Ok(Bytes::new())
            } else {
                match pipe_through(&command, &data) {
                    Ok((true, output)) => Ok(output.into()),
                    Ok((false, output)) => {
                        if !output.is_empty() {
                            job.send_data(output);
                        }
                        Err(WorkError::Fail)
                    }
                    Err(e) => {
                        eprintln!("gearman-rs: cannot run {}: {e}", command.join(" "));
                        Err(WorkError::Fail)
                    }
                }
            };
            let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
            if limit.is_some_and(|n| finished >= n) {
                if let Some(stop) = stop.get() {
                    gearman_blocking::WorkerHandle::shutdown(stop);
                }
            }
            result
        });
    }
    let _ = stop.set(worker.handle());
    worker.run();
    ExitCode::SUCCESS
}

//! `gearman-bench`: a load generator for Gearman job servers.
//!
//! It drives the wire with gearman-core's codec (no client library in between), so the
//! figures are the server's: foreground jobs one at a time or pipelined with a window per
//! client, batches, background submit-then-drain, with N clients, M echo workers keeping
//! several GRAB_JOBs in flight, and mixed payload sizes. It prints the rate and
//! p50/p90/p99/p999 latency (or `--json`), and with `--compare` runs the same load against
//! gearmand and gearmand-rs, one after the other on free loopback ports, and prints both
//! with the ratio.
//!
//! ```text
//! gearman-bench -p 4730 --mode pipe -c 4 -w 4 -n 10000
//! gearman-bench --compare --mode bg -c 4 -w 4 -n 50000
//! gearman-bench --memory --memory-jobs 1000000 --memory-conns 5000
//! ```

mod cpu;
mod load;
mod memory;
mod report;
mod server;
mod stop;
mod wire;

use clap::Parser;
use gearman_core::Limits;
use gearman_tls::ClientTls;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use load::{Counters, Mode, Plan};
use report::{Comparison, Report};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stop::Stop;
use wire::Tls;

/// The largest `--size`: the tool reads packets up to gearman-core's default limit
/// (64 MiB), and a job's packet also holds its function name, unique and handle.
const MAX_SIZE: usize = Limits::DEFAULT_MAX_BODY - 1024;

/// Load generator for Gearman job servers.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 4730)]
    port: u16,
    /// Load kind: fg (one job at a time, or --window), pipe (pipelined fg), batch, bg,
    /// connect (a fresh connection per ECHO).
    #[arg(short, long, value_enum, default_value_t = Mode::Fg)]
    mode: Mode,
    /// Client connections.
    #[arg(short, long, default_value_t = 4)]
    clients: usize,
    /// Worker connections.
    #[arg(short, long, default_value_t = 4)]
    workers: usize,
    /// Jobs per client.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    jobs: u64,
    /// Submissions in flight per client [default: 1 for fg, 64 for pipe and bg; at most
    /// --jobs].
    #[arg(long)]
    window: Option<usize>,
    /// GRAB_JOBs in flight per worker [default: 64 for pipe, else 1].
    #[arg(long)]
    grabs: Option<usize>,
    /// Jobs per batch (batch mode).
    #[arg(short, long, default_value_t = 100)]
    batch: usize,
    /// Payload size in bytes; several (comma separated) are used in turn (at most 64 MiB
    /// less 1 KiB: the largest packet the tool reads).
    #[arg(short, long, value_delimiter = ',', default_value = "64")]
    size: Vec<usize>,
    /// Function name the load runs on.
    #[arg(short, long, default_value = "gearman_bench_echo")]
    function: String,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Runtime threads for the tool (1: everything on one thread, leaving the other cores
    /// to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Start gearmand and gearmand-rs on free ports, run the load against each, print both
    /// and the ratio ours/gearmand (--host/--port are ignored).
    #[arg(long)]
    compare: bool,
    /// The reference server for --compare.
    #[arg(long, default_value = "/usr/sbin/gearmand")]
    gearmand: PathBuf,
    /// Our server for --compare [default: gearmand-rs next to this binary].
    #[arg(long)]
    ours: Option<PathBuf>,
    /// Extra arguments for gearmand (one per flag, repeatable).
    #[arg(long, allow_hyphen_values = true)]
    gearmand_arg: Vec<String>,
    /// Extra arguments for gearmand-rs (one per flag, repeatable).
    #[arg(long, allow_hyphen_values = true)]
    ours_arg: Vec<String>,
    /// With --compare: run the pair this many times, alternating, and add the median ratio
    /// of each figure (the machine's noise shows in the spread).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// The server's process id, to report its CPU time per job (--compare knows it).
    #[arg(long)]
    server_pid: Option<u32>,
    /// TLS on every connection (gearmand-rs --ssl; gearmand 1.1.20 has none, so not with
    /// --compare). The server's certificate is verified for --host.
    #[arg(long)]
    ssl: bool,
    /// The CA to verify the server with [default: the system roots].
    #[arg(long, requires = "ssl")]
    ssl_ca_file: Option<PathBuf>,
    /// A client certificate to present (with --ssl-key).
    #[arg(long, requires_all = ["ssl", "ssl_key"])]
    ssl_certificate: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, requires = "ssl_certificate")]
    ssl_key: Option<PathBuf>,
    /// Instead of a load, measure both servers' RSS per queued background job (empty and
    /// `--unique-len` uniques, payload = the first --size) and per idle and half-sent
    /// connection, each on a fresh server, and print both with the ratio.
    #[arg(long)]
    memory: bool,
    /// Background jobs queued for each job figure of --memory.
    #[arg(long, default_value_t = 1_000_000)]
    memory_jobs: u64,
    /// Connections opened for each connection figure of --memory.
    #[arg(long, default_value_t = 5_000)]
    memory_conns: usize,
    /// Unique length for the second job figure of --memory.
    #[arg(long, default_value_t = 16)]
    unique_len: usize,
}

impl Args {
    /// The TLS settings from --ssl and its files.
    fn tls(&self) -> Result<Option<Tls>, String> {
        if !self.ssl {
            return Ok(None);
        }
        if self.compare {
            return Err("--ssl cannot go with --compare: gearmand 1.1.20 has no TLS".into());
        }
        let mut builder = ClientTls::builder();
        builder = match &self.ssl_ca_file {
            Some(ca) => builder.ca_file(ca),
            None => builder.system_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.ssl_certificate, &self.ssl_key) {
            builder = builder.client_certificate(cert, key);
        }
        let settings = builder.build().map_err(|e| format!("TLS settings: {e}"))?;
        Tls::new(&settings, &self.host).map(Some)
    }

    fn plan(&self, addr: String) -> Result<Plan, String> {
        if self.clients == 0 || self.jobs == 0 || self.size.is_empty() {
            return Err("--clients, --jobs and --size must be at least 1".into());
        }
        if self.workers == 0 {
            return Err("--workers must be at least 1".into());
        }
        // Every job counted twice (bg: submitted, then drained) must fit the counters.
        let total = (self.jobs)
            .checked_mul(self.clients as u64)
            .filter(|total| total.checked_mul(2).is_some())
            .ok_or("--jobs times --clients is too large")?;
        if let Some(size) = self.size.iter().find(|&&s| s > MAX_SIZE) {
            return Err(format!(
                "--size {size} is over the largest, {MAX_SIZE} bytes"
            ));
        }
        // More in flight than there are jobs is the same as all of them in flight; capped
        // here so that a huge value asks for no memory the run cannot use.
        let per_client = usize::try_from(self.jobs).unwrap_or(usize::MAX);
        let every_job = usize::try_from(total).unwrap_or(usize::MAX);
        let pipelined = matches!(self.mode, Mode::Pipe | Mode::Bg);
        let window = self.window.unwrap_or(if pipelined { 64 } else { 1 });
        let grabs = (self.grabs).unwrap_or(if self.mode == Mode::Pipe { 64 } else { 1 });
        Ok(Plan {
            tls: self.tls()?,
            addr,
            mode: self.mode,
            clients: self.clients,
            workers: self.workers,
            jobs: self.jobs,
            window: window.clamp(1, per_client),
            grabs: grabs.clamp(1, every_job),
            batch: self.batch.clamp(1, per_client),
            sizes: self.size.clone(),
            function: self.function.clone(),
            timeout: Duration::from_secs(self.timeout),
        })
    }
}

/// Runs one plan with a progress bar that appears on stderr once the run passes a second;
/// with the server's process id, its CPU time per job is in the report.
fn run_with_progress(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    plan: &Plan,
    server_pid: Option<u32>,
    interrupt: &Stop,
) -> Report {
    let server_before = server_pid.and_then(|pid| cpu::process_cpu(pid).ok());
    let tool_before = cpu::own_cpu().unwrap_or_default();
    let counters = Arc::new(Counters::default());
    // For bg the bar counts submissions and then drained jobs.
    let background = plan.mode == Mode::Bg;
    let total = plan.total() * if background { 2 } else { 1 };
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} jobs {per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let ticker = {
        let (bar, counters) = (bar.clone(), counters.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut shown = false;
            while !bar.is_finished() {
                std::thread::sleep(Duration::from_millis(100));
                if !shown && start.elapsed() >= Duration::from_secs(1) {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                    shown = true;
                }
                let drained = if background {
                    counters.worked.load(Ordering::Relaxed)
                } else {
                    0
                };
                bar.set_position(counters.answered.load(Ordering::Relaxed) + drained);
            }
        })
    };
    let outcome = runtime.block_on(load::run(plan, counters, interrupt));
    let tool_after = cpu::own_cpu().unwrap_or_default();
    let server_after = server_pid.and_then(|pid| cpu::process_cpu(pid).ok());
    bar.finish_and_clear();
    let _ = ticker.join();
    let mut report = Report::new(label, plan, &outcome);
    // Per job answered: a run that stopped early did only those.
    let jobs = plan.total() - outcome.unanswered;
    report.tool_cpu_us = cpu::per_job_us(tool_before, tool_after, jobs);
    report.server_cpu_us = server_before
        .zip(server_after)
        .map(|(before, after)| cpu::per_job_us(before, after, jobs));
    report
}

fn ours_default() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("gearmand-rs"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/gearmand-rs"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(&args) {
        Ok(Finished::Answered) => ExitCode::SUCCESS,
        Ok(Finished::Failed) => ExitCode::from(1),
        Ok(Finished::Interrupted(status)) => ExitCode::from(status),
        Err(e) => {
            eprintln!("gearman-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// How a run (or a comparison) ended.
enum Finished {
    /// Every job was answered right.
    Answered,
    /// Some job failed or was never answered.
    Failed,
    /// SIGINT or SIGTERM stopped it; the exit status is 128 + the signal's number.
    Interrupted(u8),
}

/// Stops the runs on SIGINT or SIGTERM, so the summary says what was done until then
/// (and `--compare`'s servers are stopped); a second signal exits at once. Returns the
/// stop and the exit status the signal asks for (0 while none came).
fn on_signals(runtime: &tokio::runtime::Runtime) -> Result<(Stop, Arc<AtomicU8>), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let _entered = runtime.enter();
    let listen = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
    let (mut int, mut term) = (
        listen(SignalKind::interrupt())?,
        listen(SignalKind::terminate())?,
    );
    let (interrupt, status) = (Stop::new(), Arc::new(AtomicU8::new(0)));
    let (stop, signalled) = (interrupt.clone(), status.clone());
    runtime.spawn(async move {
        loop {
            let (name, code) = tokio::select! {
                _ = int.recv() => ("SIGINT", 130),
                _ = term.recv() => ("SIGTERM", 143),
            };
            if signalled.swap(code, Ordering::Relaxed) != 0 {
                std::process::exit(code.into());
            }
            stop.stop(format!("interrupted ({name})"));
        }
    });
    Ok((interrupt, status))
}

fn real_main(args: &Args) -> Result<Finished, String> {
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if args.memory {
        return memory_main(args);
    }
    let (interrupt, signal_status) = on_signals(&runtime)?;
    let finished = |ok: bool| match signal_status.load(Ordering::Relaxed) {
        0 if ok => Finished::Answered,
        0 => Finished::Failed,
        status => Finished::Interrupted(status),
    };
    if !args.compare {
        let plan = args.plan(format!("{}:{}", args.host, args.port))?;
        let report = run_with_progress(&runtime, &plan.addr, &plan, args.server_pid, &interrupt);
        print_json_or(args.json, &report, Report::text)?;
        return Ok(finished(report.ok()));
    }
    let ours = args.ours.clone().unwrap_or_else(ours_default);
    let run_on = |label: &str, binary: &PathBuf, extra: &[String]| {
        let server = server::Server::start(binary, extra)?;
        let plan = args.plan(format!("127.0.0.1:{}", server.port))?;
        let pid = Some(server.pid());
        Ok::<_, String>(run_with_progress(&runtime, label, &plan, pid, &interrupt))
    };
    let mut comparisons = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let reference = run_on("gearmand", &args.gearmand, &args.gearmand_arg)?;
        if interrupt.reason().is_some() {
            // Interrupted before gearmand-rs ran: there is nothing to compare.
            print_json_or(args.json, &reference, Report::text)?;
            return Ok(finished(false));
        }
        let ours_report = run_on("gearmand-rs", &ours, &args.ours_arg)?;
        comparisons.push(Comparison::new(reference, ours_report));
        if interrupt.reason().is_some() {
            break;
        }
    }
    let all_ok = comparisons.iter().all(|c| c.reference.ok() && c.ours.ok());
    match comparisons.as_slice() {
        [one] => print_json_or(args.json, one, Comparison::text)?,
        runs if args.json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "runs": runs,
                "median_ratio": report::median_ratios(runs),
            }))
            .map_err(|e| e.to_string())?
        ),
        runs => {
            for c in runs {
                print!("{}", c.text());
            }
            print!("{}", report::median_text(runs));
        }
    }
    Ok(finished(all_ok))
}

/// Prints `value` as JSON with `--json`, else as `text` gives it.
fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl Fn(&T) -> String,
) -> Result<(), String> {
    if json {
        let pretty = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        println!("{pretty}");
    } else {
        print!("{}", text(value));
    }
    Ok(())
}

fn memory_main(args: &Args) -> Result<Finished, String> {
    let plan = memory::MemoryPlan {
        jobs: args.memory_jobs.max(1),
        payload: args.size.first().copied().unwrap_or(64),
        unique_len: args.unique_len,
        conns: args.memory_conns.max(1),
        function: args.function.clone(),
    };
    let ours = args.ours.clone().unwrap_or_else(ours_default);
    let reference = memory::measure("gearmand", &args.gearmand, &args.gearmand_arg, &plan)?;
    let ours = memory::measure("gearmand-rs", &ours, &args.ours_arg, &plan)?;
    let comparison = memory::MemoryComparison {
        plan,
        reference,
        ours,
    };
    print_json_or(args.json, &comparison, memory::MemoryComparison::text)?;
    Ok(Finished::Answered)
}

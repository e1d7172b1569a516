//! The client side of the admin text protocol: the line to send for an
//! [`AdminCommand`], where its reply ends, and the reply parsed into typed values.
//!
//! Replies from gearmand 1.1.20 and gearmand-rs parse alike. Listing lines are split from
//! the right, as monitoring tools do, so a function name or job handle containing tabs
//! keeps them; `workers` lines take IPv6 peers (`12 ::1 - : f`) as they come.
//!
//! ```
//! use gearman_core::admin_reply::{parse_reply, request_line, AdminReply, ReplyReader};
//! use gearman_core::proto::admin::AdminCommand;
//!
//! let command = AdminCommand::Status;
//! assert_eq!(request_line(&command).unwrap(), b"status\r\n");
//! let reply = b"resize\t3\t1\t2\n.\nleft over";
//! let len = ReplyReader::new(&command).poll(reply).unwrap();
//! let AdminReply::Status(rows) = parse_reply(&command, &reply[..len]).unwrap() else {
//!     unreachable!()
//! };
//! assert_eq!((rows[0].function.as_ref(), rows[0].total, rows[0].workers), (&b"resize"[..], 3, 2));
//! ```

use crate::proto::admin::AdminCommand;
pub use crate::server::Outcome;
use bytes::Bytes;
use std::fmt;

/// One `status` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionStatus {
    /// Function name.
    pub function: Bytes,
    /// Jobs queued or running.
    pub total: u64,
    /// Jobs running.
    pub running: u64,
    /// Workers registered for it.
    pub workers: u64,
}

/// One `prioritystatus` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityStatus {
    /// Function name.
    pub function: Bytes,
    /// Queued (not running) jobs at high, normal and low priority.
    pub queued: [u64; 3],
    /// Workers registered for it.
    pub workers: u64,
}

/// One `workers` row: a connection, with the functions it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The server's descriptor number for the connection.
    pub fd: i64,
    /// Peer address as the server prints it (IPv4 or IPv6 text, no port).
    pub ip: String,
    /// Client id (`-` when none was set).
    pub client_id: Bytes,
    /// Registered functions, duplicates included.
    pub functions: Vec<Bytes>,
}

/// One `show jobs` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    /// Job handle.
    pub handle: Bytes,
    /// Times it was retried after a worker was lost.
    pub retries: u64,
    /// Abandoned or cancelled: skipped when a worker next reaches it.
    pub ignore: bool,
    /// Held by the persistent queue.
    pub queued: bool,
}

/// A `show result` reply: the kept result of a background job (gearmand-rs
/// `--keep-results`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    /// The job's handle.
    pub handle: Bytes,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended, Unix seconds.
    pub finished_unix: i64,
    /// The WORK_COMPLETE or WORK_EXCEPTION data (empty for WORK_FAIL).
    pub data: Bytes,
}

/// A parsed admin reply.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminReply {
    /// `status`.
    Status(Vec<FunctionStatus>),
    /// `prioritystatus`.
    PriorityStatus(Vec<PriorityStatus>),
    /// `workers`.
    Workers(Vec<WorkerInfo>),
    /// `show jobs`.
    Jobs(Vec<JobInfo>),
    /// `show unique jobs` (an empty entry is a job without a unique id).
    UniqueJobs(Vec<Bytes>),
    /// `OK` alone (cancel job, create/drop function, maxqueue, shutdown).
    Ok,
    /// `OK VALUE` (version, verbose).
    Value(String),
    /// `getpid`.
    Pid(u32),
    /// `show result` (gearmand-rs).
    Result(JobResult),
}

/// A reply that is an error or cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminReplyError {
    /// The server answered `ERR CODE TEXT`.
    Server {
        /// First word after `ERR`, e.g. `UNKNOWN_JOB`.
        code: String,
        /// The rest of the line (may be empty; gearmand writes `+` for spaces).
        text: String,
    },
    /// A line that does not have the reply's shape.
    Malformed {
        /// The offending line (lossy UTF-8).
        line: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The command cannot be sent as an admin line (an argument is empty or contains a
    /// space or line break, or the command is [`AdminCommand::Invalid`]).
    Unsendable(&'static str),
}

impl fmt::Display for AdminReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminReplyError::Server { code, text } if text.is_empty() => write!(f, "{code}"),
            AdminReplyError::Server { code, text } => write!(f, "{code} {text}"),
            AdminReplyError::Malformed { line, expected } => {
                write!(
                    f,
                    "malformed admin reply line {line:?}: expected {expected}"
                )
            }
            AdminReplyError::Unsendable(why) => write!(f, "cannot send admin command: {why}"),
        }
    }
}

impl std::error::Error for AdminReplyError {}

fn argument(name: &Bytes) -> Result<&[u8], AdminReplyError> {
    if name.is_empty() {
        return Err(AdminReplyError::Unsendable("empty argument"));
    }
    if name.iter().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0)) {
        return Err(AdminReplyError::Unsendable(
            "argument contains a space, NUL or line break",
        ));
    }
    Ok(name)
}

/// The line to send for `command`, CRLF included (as gearadmin sends it; `create
/// function` needs the CR, see gearmand's LF quirk).
pub fn request_line(command: &AdminCommand) -> Result<Vec<u8>, AdminReplyError> {
    let mut line = Vec::with_capacity(32);
    let mut with = |word: &[u8], arg: &Bytes| -> Result<(), AdminReplyError> {
        line.extend_from_slice(word);
        line.extend_from_slice(argument(arg)?);
        Ok(())
    };
    match command {
        AdminCommand::Status => line.extend_from_slice(b"status"),
        AdminCommand::PriorityStatus => line.extend_from_slice(b"prioritystatus"),
        AdminCommand::Workers => line.extend_from_slice(b"workers"),
        AdminCommand::Version => line.extend_from_slice(b"version"),
        AdminCommand::Getpid => line.extend_from_slice(b"getpid"),
        AdminCommand::Verbose => line.extend_from_slice(b"verbose"),
        AdminCommand::ShowJobs => line.extend_from_slice(b"show jobs"),
        AdminCommand::ShowUniqueJobs => line.extend_from_slice(b"show unique jobs"),
        AdminCommand::CancelJob(handle) => with(b"cancel job ", handle)?,
        AdminCommand::ShowDead => line.extend_from_slice(b"show dead"),
        AdminCommand::ShowSchedules => line.extend_from_slice(b"show schedules"),
        AdminCommand::RetryDead(which) => with(b"retry dead ", which)?,
        AdminCommand::DropDead(which) => with(b"drop dead ", which)?,
        AdminCommand::ShowResult(handle) => with(b"show result ", handle)?,
        AdminCommand::ShowResultUnique { function, unique } => {
            with(b"show result unique ", function)?;
            with(b" ", unique)?;
        }
        AdminCommand::CreateFunction(name) => with(b"create function ", name)?,
        AdminCommand::DropFunction(name) => with(b"drop function ", name)?,
        AdminCommand::MaxQueue { function, limits } => {
            with(b"maxqueue ", function)?;
            let [high, normal, low] = limits;
            line.extend_from_slice(format!(" {high} {normal} {low}").as_bytes());
        }
        AdminCommand::Shutdown { graceful } => line.extend_from_slice(if *graceful {
            b"shutdown graceful"
        } else {
            b"shutdown"
        }),
        AdminCommand::Invalid(_) => {
            return Err(AdminReplyError::Unsendable("not a valid admin command"))
        }
    }
    line.extend_from_slice(b"\r\n");
    Ok(line)
}

/// Whether `command` is answered with a listing ended by a `.` line.
pub fn is_listing(command: &AdminCommand) -> bool {
    matches!(
        command,
        AdminCommand::Status
            | AdminCommand::PriorityStatus
            | AdminCommand::Workers
            | AdminCommand::ShowJobs
            | AdminCommand::ShowUniqueJobs
            | AdminCommand::ShowDead
            | AdminCommand::ShowSchedules
    )
}

/// Finds where a reply ends in a growing buffer, scanning each byte once.
#[derive(Clone, Debug)]
pub struct ReplyReader {
    listing: bool,
    /// Bytes already scanned: the complete lines seen so far.
    scanned: usize,
}

impl ReplyReader {
    /// A reader for the reply to `command`.
    pub fn new(command: &AdminCommand) -> ReplyReader {
        ReplyReader {
            listing: is_listing(command),
            scanned: 0,
        }
    }

    /// The length of the complete reply at the front of `buf` (the same buffer, grown,
    /// on every call), or `None` while it is incomplete.
    pub fn poll(&mut self, buf: &[u8]) -> Option<usize> {
        while let Some(rest) = buf.get(self.scanned..) {
            let newline = rest.iter().position(|&b| b == b'\n')?;
            let line = trim_line(rest.get(..newline).unwrap_or_default());
            let first = self.scanned == 0;
            self.scanned += newline + 1;
            // A listing command answered with an ERR line (no tab: listing rows for status,
            // prioritystatus and show jobs always have tabs, workers rows start with a number).
            let error_line = first && line.starts_with(b"ERR") && !line.contains(&b'\t');
            if !self.listing || line == b"." || error_line {
                return Some(self.scanned);
            }
        }
        None
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn lossy(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn malformed(line: &[u8], expected: &'static str) -> AdminReplyError {
    AdminReplyError::Malformed {
        line: lossy(line),
        expected,
    }
}

/// The `ERR` line as an error, if `line` is one.
fn server_error(line: &[u8]) -> Option<AdminReplyError> {
    let rest = line.strip_prefix(b"ERR")?;
    if !(rest.is_empty() || rest.starts_with(b" ")) {
        return None;
    }
    let rest = lossy(rest.strip_prefix(b" ").unwrap_or(rest));
    let (code, text) = rest.split_once(' ').unwrap_or((&rest, ""));
    Some(AdminReplyError::Server {
        code: code.to_owned(),
        text: text.to_owned(),
    })
}

/// Splits `line` into a name and exactly `N` numeric columns taken from the right.
fn columns<const N: usize>(
    line: &[u8],
    expected: &'static str,
) -> Result<(Bytes, [u64; N]), AdminReplyError> {
    let mut numbers = [0u64; N];
    let mut rest = line;
    for slot in numbers.iter_mut().rev() {
        let tab = rest
            .iter()
            .rposition(|&b| b == b'\t')
            .ok_or_else(|| malformed(line, expected))?;
        let text = std::str::from_utf8(rest.get(tab + 1..).unwrap_or_default())
            .map_err(|_| malformed(line, expected))?;
        *slot = text.parse().map_err(|_| malformed(line, expected))?;
        rest = rest.get(..tab).unwrap_or_default();
    }
    Ok((Bytes::copy_from_slice(rest), numbers))
}

fn flag(n: u64, line: &[u8]) -> Result<bool, AdminReplyError> {
    match n {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(malformed(line, "HANDLE\\tRETRIES\\t0|1\\t0|1")),
    }
}

/// Parses one `workers` line: `FD IP ID : FUNC FUNC...`.
fn worker_line(line: &[u8]) -> Result<WorkerInfo, AdminReplyError> {
    const SHAPE: &str = "FD IP ID : FUNCTIONS";
    let mut fields = line.splitn(3, |&b| b == b' ');
    let fd = fields
        .next()
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| malformed(line, SHAPE))?;
    let ip = fields
        .next()
        .and_then(|f| std::str::from_utf8(f).ok())
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| malformed(line, SHAPE))?
        .to_owned();
    let rest = fields.next().ok_or_else(|| malformed(line, SHAPE))?;
    // The id ends at the first " :" that ends the line or is followed by a space.
    let colon = (0..rest.len())
        .find(|&i| {
            rest.get(i..i + 2) == Some(b" :") && matches!(rest.get(i + 2), None | Some(b' '))
        })
        .ok_or_else(|| malformed(line, SHAPE))?;
    let client_id = Bytes::copy_from_slice(rest.get(..colon).unwrap_or_default());
    let functions = rest
        .get(colon + 2..)
        .unwrap_or_default()
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .map(Bytes::copy_from_slice)
        .collect();
    Ok(WorkerInfo {
        fd,
        ip,
        client_id,
        functions,
    })
}

/// Parses a complete reply (as delimited by [`ReplyReader`]) to `command`.
pub fn parse_reply(command: &AdminCommand, reply: &[u8]) -> Result<AdminReply, AdminReplyError> {
    let mut lines: Vec<&[u8]> = reply
        .split_inclusive(|&b| b == b'\n')
        .map(trim_line)
        .collect();
    let first = lines.first().copied().unwrap_or_default();
    if is_listing(command) {
        if !first.contains(&b'\t') {
            if let Some(e) = server_error(first) {
                return Err(e);
            }
        }
        match lines.pop() {
            Some(b".") => {}
            other => {
                return Err(malformed(
                    other.unwrap_or_default(),
                    "a listing ended by a \".\" line",
                ))
            }
        }
        return Ok(match command {
            AdminCommand::Status => AdminReply::Status(
                lines
                    .iter()
                    .map(|l| {
                        let (function, [total, running, workers]) =
                            columns(l, "NAME\\tTOTAL\\tRUNNING\\tWORKERS")?;
                        Ok(FunctionStatus {
                            function,
                            total,
                            running,
                            workers,
                        })
                    })
                    .collect::<Result<_, AdminReplyError>>()?,
            ),
            AdminCommand::PriorityStatus => AdminReply::PriorityStatus(
                lines
                    .iter()
                    .map(|l| {
                        let (function, [high, normal, low, workers]) =
                            columns(l, "NAME\\tHIGH\\tNORMAL\\tLOW\\tWORKERS")?;
                        Ok(PriorityStatus {
                            function,
                            queued: [high, normal, low],
                            workers,
                        })
                    })
                    .collect::<Result<_, AdminReplyError>>()?,
            ),
            AdminCommand::Workers => AdminReply::Workers(
                lines
                    .iter()
                    .map(|l| worker_line(l))
                    .collect::<Result<_, _>>()?,
            ),
            AdminCommand::ShowJobs => AdminReply::Jobs(
                lines
                    .iter()
                    .map(|l| {
                        let (handle, [retries, ignore, queued]) =
                            columns(l, "HANDLE\\tRETRIES\\tIGNORE\\tQUEUED")?;
                        Ok(JobInfo {
                            handle,
                            retries,
                            ignore: flag(ignore, l)?,
                            queued: flag(queued, l)?,
                        })
                    })
                    .collect::<Result<_, AdminReplyError>>()?,
            ),
            _ => AdminReply::UniqueJobs(lines.iter().map(|l| Bytes::copy_from_slice(l)).collect()),
        });
    }
    if lines.len() != 1 {
        return Err(malformed(reply, "one reply line"));
    }
    if let Some(e) = server_error(first) {
        return Err(e);
    }
    let value = match first {
        b"OK" => None,
        _ => Some(
            first
                .strip_prefix(b"OK ")
                .ok_or_else(|| malformed(first, "OK or ERR"))?,
        ),
    };
    match (command, value) {
        (AdminCommand::ShowResult(_) | AdminCommand::ShowResultUnique { .. }, value) => value
            .and_then(job_result)
            .map(AdminReply::Result)
            .ok_or_else(|| malformed(first, "OK OUTCOME FINISHED_UNIX HANDLE BASE64DATA|-")),
        (AdminCommand::Getpid, Some(pid)) => std::str::from_utf8(pid)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .map(AdminReply::Pid)
            .ok_or_else(|| malformed(first, "OK PID")),
        (AdminCommand::Getpid | AdminCommand::Version | AdminCommand::Verbose, None) => {
            Err(malformed(first, "OK VALUE"))
        }
        (_, Some(value)) => Ok(AdminReply::Value(lossy(value))),
        (_, None) => Ok(AdminReply::Ok),
    }
}

/// `OUTCOME FINISHED_UNIX HANDLE DATA` after the `OK ` of a `show result` reply.
fn job_result(value: &[u8]) -> Option<JobResult> {
    use base64::Engine as _;
    let mut fields = value.split(|&b| b == b' ');
    let outcome = Outcome::from_name(fields.next()?)?;
    let finished_unix = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let handle = Bytes::copy_from_slice(fields.next()?);
    let data = match fields.next()? {
        b"-" => Bytes::new(),
        text => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        ),
    };
    if fields.next().is_some() || handle.is_empty() {
        return None;
    }
    Some(JobResult {
        handle,
        outcome,
        finished_unix,
        data,
    })
}

/// Largest admin reply an admin client accepts (a `show jobs` of a million jobs is ~30 MB).
pub const MAX_REPLY: usize = 256 * 1024 * 1024;

/// What an admin client call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// Connecting, writing or reading failed (a timeout is `TimedOut`, a closed
    /// connection `UnexpectedEof`).
    Io(std::io::Error),
    /// The server answered `ERR`, or the reply could not be read.
    Reply(AdminReplyError),
    /// The reply grew past [`MAX_REPLY`] without ending.
    TooLong,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Io(e) => write!(f, "admin connection: {e}"),
            AdminError::Reply(e) => e.fmt(f),
            AdminError::TooLong => write!(f, "admin reply longer than {MAX_REPLY} bytes"),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Io(e) => Some(e),
            AdminError::Reply(e) => Some(e),
            AdminError::TooLong => None,
        }
    }
}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> Self {
        AdminError::Io(e)
    }
}

impl From<AdminReplyError> for AdminError {
    fn from(e: AdminReplyError) -> Self {
        AdminError::Reply(e)
    }
}

/// Collects the reply to one command from the bytes an adapter reads: the sans-IO half of
/// an admin client call.
#[derive(Debug)]
pub struct AdminExchange {
    reader: ReplyReader,
    buf: Vec<u8>,
}

impl AdminExchange {
    /// Starts waiting for the reply to `command`.
    pub fn new(command: &AdminCommand) -> AdminExchange {
        AdminExchange {
            reader: ReplyReader::new(command),
            buf: Vec::new(),
        }
    }

    /// Takes bytes read from the connection; returns the whole reply once it is complete
    /// (bytes after it, which a one-command-at-a-time client never gets, are dropped).
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Option<Bytes>, AdminError> {
        self.buf.extend_from_slice(bytes);
        match self.reader.poll(&self.buf) {
            Some(len) => {
                self.buf.truncate(len);
                Ok(Some(Bytes::from(std::mem::take(&mut self.buf))))
            }
            None if self.buf.len() > MAX_REPLY => Err(AdminError::TooLong),
            None => Ok(None),
        }
    }
}

/// The typed value of a reply that must be `want` (the variant `parse_reply` gives for
/// the command sent).
pub fn expect_reply<T>(
    reply: AdminReply,
    want: impl FnOnce(AdminReply) -> Option<T>,
) -> Result<T, AdminError> {
    let shown = format!("{reply:?}");
    want(reply).ok_or(AdminError::Reply(AdminReplyError::Malformed {
        line: shown,
        expected: "the reply kind of the command sent",
    }))
}

/// The typed admin calls of a blocking admin client, written once over its one
/// transport method ([`AdminCalls::raw`]). The async adapters have the same methods,
/// `async`.
pub trait AdminCalls {
    /// Sends `command` and returns the reply exactly as the server wrote it.
    fn raw(&mut self, command: &AdminCommand) -> Result<Bytes, AdminError>;

    /// Sends `command` and parses the reply.
    fn command(&mut self, command: &AdminCommand) -> Result<AdminReply, AdminError> {
        let reply = self.raw(command)?;
        Ok(parse_reply(command, &reply)?)
    }

    /// `status`: every function with its queued+running total, running jobs and workers.
    fn status(&mut self) -> Result<Vec<FunctionStatus>, AdminError> {
        expect_reply(self.command(&AdminCommand::Status)?, |r| match r {
            AdminReply::Status(rows) => Some(rows),
            _ => None,
        })
    }

    /// `prioritystatus`: queued jobs per priority and workers, per function.
    fn priority_status(&mut self) -> Result<Vec<PriorityStatus>, AdminError> {
        expect_reply(self.command(&AdminCommand::PriorityStatus)?, |r| match r {
            AdminReply::PriorityStatus(rows) => Some(rows),
            _ => None,
        })
    }

    /// `workers`: every connection with its id and registered functions.
    fn workers(&mut self) -> Result<Vec<WorkerInfo>, AdminError> {
        expect_reply(self.command(&AdminCommand::Workers)?, |r| match r {
            AdminReply::Workers(rows) => Some(rows),
            _ => None,
        })
    }

    /// `show jobs`: every job's handle, retries and flags.
    fn show_jobs(&mut self) -> Result<Vec<JobInfo>, AdminError> {
        expect_reply(self.command(&AdminCommand::ShowJobs)?, |r| match r {
            AdminReply::Jobs(rows) => Some(rows),
            _ => None,
        })
    }

    /// `show unique jobs`: every job's unique id (empty when it has none).
    fn show_unique_jobs(&mut self) -> Result<Vec<Bytes>, AdminError> {
        expect_reply(self.command(&AdminCommand::ShowUniqueJobs)?, |r| match r {
            AdminReply::UniqueJobs(rows) => Some(rows),
            _ => None,
        })
    }

    /// `cancel job HANDLE` (`ERR UNKNOWN_JOB` comes back as [`AdminError::Reply`]).
    fn cancel_job(&mut self, handle: impl Into<Bytes>) -> Result<(), AdminError> {
        expect_ok(self.command(&AdminCommand::CancelJob(handle.into()))?)
    }

    /// `create function NAME`.
    fn create_function(&mut self, name: impl Into<Bytes>) -> Result<(), AdminError> {
        expect_ok(self.command(&AdminCommand::CreateFunction(name.into()))?)
    }

    /// `drop function NAME`.
    fn drop_function(&mut self, name: impl Into<Bytes>) -> Result<(), AdminError> {
        expect_ok(self.command(&AdminCommand::DropFunction(name.into()))?)
    }

    /// `maxqueue NAME HIGH NORMAL LOW` (0 = unlimited).
    fn max_queue(
        &mut self,
        function: impl Into<Bytes>,
        limits: [u32; 3],
    ) -> Result<(), AdminError> {
        let function = function.into();
        expect_ok(self.command(&AdminCommand::MaxQueue { function, limits })?)
    }

    /// `shutdown` or `shutdown graceful` (gearmand-rs; gearmand 1.1.20 refuses it).
    fn shutdown(&mut self, graceful: bool) -> Result<(), AdminError> {
        expect_ok(self.command(&AdminCommand::Shutdown { graceful })?)
    }

    /// `show result HANDLE` (gearmand-rs with `--keep-results`): the kept result of the
    /// background job that had `handle`. `ERR UNKNOWN_JOB` (none kept, or expired) and
    /// `ERR RESULTS_NOT_KEPT` come back as [`AdminError::Reply`].
    fn result(&mut self, handle: impl Into<Bytes>) -> Result<JobResult, AdminError> {
        expect_result(self.command(&AdminCommand::ShowResult(handle.into()))?)
    }

    /// `show result unique FUNCTION UNIQUE` (gearmand-rs with `--keep-results`): the
    /// latest kept result of a background job of `function` submitted with `unique`.
    fn result_by_unique(
        &mut self,
        function: impl Into<Bytes>,
        unique: impl Into<Bytes>,
    ) -> Result<JobResult, AdminError> {
        let (function, unique) = (function.into(), unique.into());
        expect_result(self.command(&AdminCommand::ShowResultUnique { function, unique })?)
    }

    /// `getpid`: the server's process id.
    fn getpid(&mut self) -> Result<u32, AdminError> {
        expect_reply(self.command(&AdminCommand::Getpid)?, |r| match r {
            AdminReply::Pid(pid) => Some(pid),
            _ => None,
        })
    }

    /// `version`: the server's version string.
    fn version(&mut self) -> Result<String, AdminError> {
        expect_value(self.command(&AdminCommand::Version)?)
    }

    /// `verbose`: the server's log level name.
    fn verbose(&mut self) -> Result<String, AdminError> {
        expect_value(self.command(&AdminCommand::Verbose)?)
    }
}

/// A plain `OK` reply.
pub fn expect_ok(reply: AdminReply) -> Result<(), AdminError> {
    expect_reply(reply, |r| matches!(r, AdminReply::Ok).then_some(()))
}

/// A `show result` reply.
pub fn expect_result(reply: AdminReply) -> Result<JobResult, AdminError> {
    expect_reply(reply, |r| match r {
        AdminReply::Result(r) => Some(r),
        _ => None,
    })
}

/// An `OK VALUE` reply.
pub fn expect_value(reply: AdminReply) -> Result<String, AdminError> {
    expect_reply(reply, |r| match r {
        AdminReply::Value(v) => Some(v),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(command: &AdminCommand, reply: &[u8]) -> Result<AdminReply, AdminReplyError> {
        let len = ReplyReader::new(command)
            .poll(reply)
            .expect("complete reply");
        assert_eq!(len, reply.len(), "the reply ends where the test says");
        parse_reply(command, reply)
    }

    #[test]
    fn status_parses_from_the_right_so_names_keep_their_tabs() {
        let reply = read(&AdminCommand::Status, b"a\tb\t5\t2\t1\nplain\t0\t0\t0\n.\n").unwrap();
        assert_eq!(
            reply,
            AdminReply::Status(vec![
                FunctionStatus {
                    function: Bytes::from_static(b"a\tb"),
                    total: 5,
                    running: 2,
                    workers: 1
                },
                FunctionStatus {
                    function: Bytes::from_static(b"plain"),
                    total: 0,
                    running: 0,
                    workers: 0
                },
            ])
        );
        assert_eq!(
            read(&AdminCommand::Status, b".\n"),
            Ok(AdminReply::Status(vec![]))
        );
    }

    #[test]
    fn priority_status_and_show_jobs() {
        assert_eq!(
            read(&AdminCommand::PriorityStatus, b"f\t1\t2\t3\t4\n.\n"),
            Ok(AdminReply::PriorityStatus(vec![PriorityStatus {
                function: Bytes::from_static(b"f"),
                queued: [1, 2, 3],
                workers: 4
            }]))
        );
        assert_eq!(
            read(&AdminCommand::ShowJobs, b"H:host:1\t0\t1\t0\n.\n"),
            Ok(AdminReply::Jobs(vec![JobInfo {
                handle: Bytes::from_static(b"H:host:1"),
                retries: 0,
                ignore: true,
                queued: false
            }]))
        );
        assert!(matches!(
            read(&AdminCommand::ShowJobs, b"H:host:1\t0\t2\t0\n.\n"),
            Err(AdminReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn workers_lines_with_ipv4_ipv6_ids_and_no_functions() {
        let reply = read(
            &AdminCommand::Workers,
            b"37 127.0.0.1 - :\n12 ::1 my id : f g f\n9 fe80::1%eth0 x :\n.\n",
        )
        .unwrap();
        let AdminReply::Workers(rows) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(rows[0].fd, 37);
        assert_eq!(rows[0].ip, "127.0.0.1");
        assert_eq!(rows[0].client_id, "-");
        assert!(rows[0].functions.is_empty());
        assert_eq!(rows[1].ip, "::1");
        assert_eq!(rows[1].client_id, "my id");
        assert_eq!(rows[1].functions, vec!["f", "g", "f"]);
        assert_eq!(rows[2].ip, "fe80::1%eth0");
        assert!(matches!(
            read(&AdminCommand::Workers, b"x 127.0.0.1 - :\n.\n"),
            Err(AdminReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn unique_jobs_keep_empty_entries() {
        assert_eq!(
            read(&AdminCommand::ShowUniqueJobs, b"u1\n\nu3\n.\n"),
            Ok(AdminReply::UniqueJobs(vec![
                Bytes::from_static(b"u1"),
                Bytes::new(),
                Bytes::from_static(b"u3")
            ]))
        );
    }

    #[test]
    fn one_line_replies() {
        assert_eq!(
            read(&AdminCommand::Getpid, b"OK 4242\n"),
            Ok(AdminReply::Pid(4242))
        );
        assert_eq!(
            read(&AdminCommand::Version, b"OK 1.1.20+ds\n"),
            Ok(AdminReply::Value("1.1.20+ds".into()))
        );
        assert_eq!(
            read(&AdminCommand::Verbose, b"OK ERROR\n"),
            Ok(AdminReply::Value("ERROR".into()))
        );
        let cancel = AdminCommand::CancelJob(Bytes::from_static(b"H:x:1"));
        assert_eq!(read(&cancel, b"OK\r\n"), Ok(AdminReply::Ok));
        assert_eq!(
            read(&cancel, b"ERR UNKNOWN_JOB\r\n"),
            Err(AdminReplyError::Server {
                code: "UNKNOWN_JOB".into(),
                text: String::new()
            })
        );
        let drop = AdminCommand::DropFunction(Bytes::from_static(b"f"));
        assert_eq!(
            read(&drop, b"ERR function not found\r\n")
                .unwrap_err()
                .to_string(),
            "function not found"
        );
        assert!(matches!(
            read(&AdminCommand::Getpid, b"OK nope\n"),
            Err(AdminReplyError::Malformed { .. })
        ));
    }

    #[test]
    fn show_result_lines_and_replies() {
        let by_handle = AdminCommand::ShowResult(Bytes::from_static(b"H:x:7"));
        let by_unique = AdminCommand::ShowResultUnique {
            function: Bytes::from_static(b"f"),
            unique: Bytes::from_static(b"u"),
        };
        assert_eq!(request_line(&by_handle).unwrap(), b"show result H:x:7\r\n");
        assert_eq!(
            request_line(&by_unique).unwrap(),
            b"show result unique f u\r\n"
        );
        assert_eq!(
            AdminCommand::parse(b"show result unique f u\r\n"),
            Ok(by_unique.clone())
        );
        assert_eq!(
            AdminCommand::parse(b"show result H:x:7\n"),
            Ok(by_handle.clone())
        );
        assert_eq!(
            read(&by_handle, b"OK complete 1700000000 H:x:7 aGk=\n"),
            Ok(AdminReply::Result(JobResult {
                handle: Bytes::from_static(b"H:x:7"),
                outcome: Outcome::Complete,
                finished_unix: 1_700_000_000,
                data: Bytes::from_static(b"hi"),
            }))
        );
        let AdminReply::Result(failed) = read(&by_unique, b"OK fail 5 H:x:8 -\n").unwrap() else {
            panic!()
        };
        assert_eq!((failed.outcome, failed.data.len()), (Outcome::Fail, 0));
        for bad in [
            &b"OK done 5 H:x:8 -\n"[..],
            b"OK fail x H:x:8 -\n",
            b"OK fail 5 H:x:8\n",
            b"OK fail 5 H:x:8 !!\n",
            b"OK fail 5 H:x:8 - extra\n",
        ] {
            assert!(
                matches!(
                    read(&by_handle, bad),
                    Err(AdminReplyError::Malformed { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            read(&by_handle, b"ERR UNKNOWN_JOB\r\n"),
            Err(AdminReplyError::Server {
                code: "UNKNOWN_JOB".into(),
                text: String::new()
            })
        );
    }

    #[test]
    fn a_listing_command_answered_with_err_ends_at_that_line() {
        let mut reader = ReplyReader::new(&AdminCommand::PriorityStatus);
        let reply = b"ERR UNKNOWN_COMMAND Unknown+server+commandprioritystatus\r\n";
        assert_eq!(reader.poll(reply), Some(reply.len()));
        assert_eq!(
            parse_reply(&AdminCommand::PriorityStatus, reply),
            Err(AdminReplyError::Server {
                code: "UNKNOWN_COMMAND".into(),
                text: "Unknown+server+commandprioritystatus".into()
            })
        );
    }

    #[test]
    fn the_reader_resumes_and_waits_for_the_dot() {
        let mut reader = ReplyReader::new(&AdminCommand::Status);
        let whole = b"f\t1\t0\t1\ng\t0\t0\t0\n.\nnext";
        for cut in 0..whole.len() - 4 {
            assert_eq!(reader.poll(&whole[..cut]), None, "cut at {cut}");
        }
        assert_eq!(reader.poll(whole), Some(whole.len() - 4));
        let mut line = ReplyReader::new(&AdminCommand::Getpid);
        assert_eq!(line.poll(b"OK 1"), None);
        assert_eq!(line.poll(b"OK 1\nmore"), Some(5));
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            request_line(&AdminCommand::ShowUniqueJobs).unwrap(),
            b"show unique jobs\r\n"
        );
        assert_eq!(
            request_line(&AdminCommand::MaxQueue {
                function: Bytes::from_static(b"f\tg"),
                limits: [1, 2, 3]
            })
            .unwrap(),
            b"maxqueue f\tg 1 2 3\r\n"
        );
        for bad in [&b""[..], b"a b", b"a\nb", b"a\r"] {
            assert!(matches!(
                request_line(&AdminCommand::CreateFunction(Bytes::copy_from_slice(bad))),
                Err(AdminReplyError::Unsendable(_))
            ));
        }
    }

    #[test]
    fn gearmand_rs_renderers_round_trip() {
        use crate::proto::admin::render;
        let mut out = Vec::new();
        render::status_line(&mut out, b"f\tx", 3, 1, 2);
        render::end_list(&mut out);
        assert_eq!(
            read(&AdminCommand::Status, &out),
            Ok(AdminReply::Status(vec![FunctionStatus {
                function: Bytes::from_static(b"f\tx"),
                total: 3,
                running: 1,
                workers: 2
            }]))
        );
        let mut out = Vec::new();
        render::workers_line(&mut out, 5, "::1", b"-", [&b"a"[..], b"b"]);
        render::end_list(&mut out);
        let AdminReply::Workers(rows) = read(&AdminCommand::Workers, &out).unwrap() else {
            panic!()
        };
        assert_eq!((rows[0].ip.as_str(), rows[0].functions.len()), ("::1", 2));
    }
}

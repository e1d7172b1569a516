//! The admin text protocol: command lines in, gearmand 1.1.20's exact reply bytes out.
//!
//! Tokenising follows gearmand: single spaces separate tokens, further spaces after a
//! separator are skipped, leading spaces make an empty first token, at most five tokens
//! (a sixth closes the connection), command words compare case-insensitively.

use super::error::DecodeError;
use bytes::Bytes;
use std::io::Write as _;

/// Most tokens a line may have; one more closes the connection, as in gearmand.
pub const MAX_TOKENS: usize = 5;

/// A parsed admin command line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminCommand {
    /// `status`
    Status,
    /// `prioritystatus`
    PriorityStatus,
    /// `workers`
    Workers,
    /// `version`
    Version,
    /// `getpid`
    Getpid,
    /// `verbose`
    Verbose,
    /// `show jobs`
    ShowJobs,
    /// `show unique jobs`
    ShowUniqueJobs,
    /// `cancel job HANDLE`
    CancelJob(Bytes),
    /// `create function NAME`
    CreateFunction(Bytes),
    /// `drop function NAME`
    DropFunction(Bytes),
    /// `maxqueue NAME [N | H N | H N L]`: per-priority limits, high/normal/low, 0 = none.
    MaxQueue {
        /// Function name.
        function: Bytes,
        /// Limits for high, normal, low.
        limits: [u32; 3],
    },
    /// `shutdown [graceful]`, as gearmand had it until 2016 (OMD's init script still stops
    /// the server with it): `OK`, then stop now, or stop accepting and let running jobs
    /// finish. Any other argument is `INVALID_ARGUMENTS`.
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// `show dead` (gearmand-rs): the dead letters, one line each.
    ShowDead,
    /// `show schedules` (gearmand-rs): the SUBMIT_JOB_SCHED schedules, one line each.
    ShowSchedules,
    /// `retry dead HANDLE|FUNCTION` (gearmand-rs): re-queue matching dead letters.
    RetryDead(Bytes),
    /// `drop dead HANDLE|FUNCTION` (gearmand-rs): forget matching dead letters.
    DropDead(Bytes),
    /// `show result HANDLE` (gearmand-rs, with `--keep-results`): the kept result of the
    /// background job that had this handle.
    ShowResult(Bytes),
    /// `show result unique FUNCTION UNIQUE` (gearmand-rs, with `--keep-results`): the
    /// latest kept result of a background job of FUNCTION submitted with UNIQUE.
    ShowResultUnique {
        /// Function name.
        function: Bytes,
        /// Unique id as submitted.
        unique: Bytes,
    },
    /// A line gearmand answers with an `ERR` line.
    Invalid(AdminError),
}

/// An admin line that gets an `ERR` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// `ERR UNKNOWN_COMMAND Unknown+server+command<word>`
    UnknownCommand(Bytes),
    /// `ERR UNKNOWN_ERROR`
    UnknownError,
    /// `ERR UNKNOWN_SHOW_ARGUMENTS`
    UnknownShowArguments,
    /// `ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+<word>`
    InvalidArguments(Bytes),
}

impl AdminError {
    /// Appends the reply line, CRLF included.
    pub fn render(&self, out: &mut Vec<u8>) {
        match self {
            AdminError::UnknownCommand(word) => {
                out.extend_from_slice(b"ERR UNKNOWN_COMMAND Unknown+server+command");
                out.extend_from_slice(word);
            }
            AdminError::UnknownError => out.extend_from_slice(b"ERR UNKNOWN_ERROR"),
            AdminError::UnknownShowArguments => {
                out.extend_from_slice(b"ERR UNKNOWN_SHOW_ARGUMENTS")
            }
            AdminError::InvalidArguments(word) => {
                out.extend_from_slice(
                    b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+",
                );
                out.extend_from_slice(word);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn tokens(line: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut out = Vec::with_capacity(MAX_TOKENS);
    for (i, tok) in line.split(|&b| b == b' ').enumerate() {
        if i > 0 && tok.is_empty() {
            continue;
        }
        if out.len() == MAX_TOKENS {
            return Err(DecodeError::AdminTooManyTokens);
        }
        out.push(tok);
    }
    Ok(out)
}

/// A `maxqueue` number exactly as gearmand 1.1.20 derives it: glibc `atoi` (leading
/// whitespace, optional sign, digits up to the first non-digit, i.e. `(int) strtol(..)` with
/// strtol saturating at the i64 range), and a negative `int` becomes 0. So junk is 0,
/// `-3` is 0, `2147483648` is 0 (it wraps negative) and `4294967297` is 1.
fn maxqueue_number(b: &[u8]) -> u32 {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(b.len());
    let rest = b.get(start..).unwrap_or_default();
    let (negative, digits) = match rest.split_first() {
        Some((b'-', tail)) => (true, tail),
        Some((b'+', tail)) => (false, tail),
        _ => (false, rest),
    };
    let mut magnitude: i64 = 0;
    let mut overflow = false;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        match magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(d - b'0')))
        {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
    }
    let long = match (negative, overflow) {
        (false, false) => magnitude,
        (true, false) => -magnitude,
        (false, true) => i64::MAX,
        (true, true) => i64::MIN,
    };
    // The C cast to int keeps the low 32 bits.
    let int = long as i32;
    u32::try_from(int).unwrap_or(0)
}

/// Finds the end of the admin line at the front of `buf`: `Ok(Some(len))` with `len`
/// counting the `\n`, `Ok(None)` while no newline has arrived yet, and
/// [`DecodeError::AdminLineTooLong`] (fatal) once `max` bytes (see
/// [`Limits::max_admin_line`](crate::Limits::max_admin_line), newline included) have
/// arrived without one. Only the first `max` bytes are ever searched.
pub fn find_line(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    let window = buf.get(..max.min(buf.len())).unwrap_or_default();
    match window.iter().position(|&b| b == b'\n') {
        Some(newline) => Ok(Some(newline + 1)),
        None if !buf.is_empty() && buf.len() >= max => Err(DecodeError::AdminLineTooLong { max }),
        None => Ok(None),
    }
}

impl AdminCommand {
    /// Parses one line; `line` may end in `\n` or `\r\n` (either is stripped).
    /// Only a line with more than five tokens is an error, and a fatal one.
    pub fn parse(line: &[u8]) -> Result<AdminCommand, DecodeError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let toks = tokens(line)?;
        let word = toks.first().copied().unwrap_or_default();
        let arg = |i: usize| Bytes::copy_from_slice(toks.get(i).copied().unwrap_or_default());
        let is = |i: usize, w: &str| {
            toks.get(i)
                .is_some_and(|t| t.eq_ignore_ascii_case(w.as_bytes()))
        };
        let word_bytes = Bytes::copy_from_slice(word);
        let lower = word.to_ascii_lowercase();
        Ok(match lower.as_slice() {
            b"status" => AdminCommand::Status,
            b"prioritystatus" => AdminCommand::PriorityStatus,
            b"workers" => AdminCommand::Workers,
            b"version" => AdminCommand::Version,
            b"getpid" => AdminCommand::Getpid,
            b"verbose" => AdminCommand::Verbose,
            b"shutdown" => match toks.len() {
                0 | 1 => AdminCommand::Shutdown { graceful: false },
                2 if is(1, "graceful") => AdminCommand::Shutdown { graceful: true },
                _ => AdminCommand::Invalid(AdminError::InvalidArguments(word_bytes)),
            },
            b"show" => match toks.len() {
                0 | 1 => AdminCommand::Invalid(AdminError::UnknownCommand(word_bytes)),
                2 if is(1, "jobs") => AdminCommand::ShowJobs,
                3 if is(1, "unique") && is(2, "jobs") => AdminCommand::ShowUniqueJobs,
                2 if is(1, "dead") => AdminCommand::ShowDead,
                2 if is(1, "schedules") => AdminCommand::ShowSchedules,
                3 if is(1, "result") => AdminCommand::ShowResult(arg(2)),
                5 if is(1, "result") && is(2, "unique") => AdminCommand::ShowResultUnique {
                    function: arg(3),
                    unique: arg(4),
                },
                _ => AdminCommand::Invalid(AdminError::UnknownShowArguments),
            },
            b"cancel" => match toks.len() {
                0..=2 => AdminCommand::Invalid(AdminError::UnknownCommand(word_bytes)),
                3 if is(1, "job") => AdminCommand::CancelJob(arg(2)),
                _ => AdminCommand::Invalid(AdminError::UnknownError),
            },
            b"create" if toks.len() == 3 && is(1, "function") => {
                AdminCommand::CreateFunction(arg(2))
            }
            b"drop" if toks.len() == 3 && is(1, "function") => AdminCommand::DropFunction(arg(2)),
            b"drop" if toks.len() == 3 && is(1, "dead") => AdminCommand::DropDead(arg(2)),
            b"retry" if toks.len() == 3 && is(1, "dead") => AdminCommand::RetryDead(arg(2)),
            b"retry" => AdminCommand::Invalid(AdminError::InvalidArguments(word_bytes)),
            b"create" | b"drop" => AdminCommand::Invalid(AdminError::InvalidArguments(word_bytes)),
            b"maxqueue" => {
                let n = |i: usize| toks.get(i).map_or(0, |t| maxqueue_number(t));
                let limits = match toks.len() {
                    0 | 1 => {
                        return Ok(AdminCommand::Invalid(AdminError::InvalidArguments(
                            word_bytes,
                        )))
                    }
                    2 => [0; 3],
                    3 => [n(2); 3],
                    4 => [n(2), n(3), 0],
                    _ => [n(2), n(3), n(4)],
                };
                AdminCommand::MaxQueue {
                    function: arg(1),
                    limits,
                }
            }
            _ => AdminCommand::Invalid(AdminError::UnknownCommand(word_bytes)),
        })
    }
}

/// Renderers for replies, byte-for-byte as gearmand 1.1.20 writes them.
pub mod render {
    use super::*;

    /// `OK\r\n`
    pub fn ok(out: &mut Vec<u8>) {
        out.extend_from_slice(b"OK\r\n");
    }

    /// A free-form `ERR <code> <text>\r\n` (used by `drop function`).
    pub fn err(out: &mut Vec<u8>, text: &str) {
        out.extend_from_slice(b"ERR ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// `OK <value>\n` for `version`, `getpid`, `verbose` (LF only, as gearmand).
    pub fn ok_value(out: &mut Vec<u8>, value: &str) {
        out.extend_from_slice(b"OK ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }

    /// The `.` line that ends every listing.
    pub fn end_list(out: &mut Vec<u8>) {
        out.extend_from_slice(b".\n");
    }

    /// One `status` line: `NAME\tTOTAL\tRUNNING\tWORKERS\n`.
    pub fn status_line(out: &mut Vec<u8>, name: &[u8], total: u64, running: u64, workers: u64) {
        out.extend_from_slice(name);
        let _ = writeln!(out, "\t{total}\t{running}\t{workers}");
    }

    /// One `prioritystatus` line: `NAME\tHIGH\tNORMAL\tLOW\tWORKERS\n`.
    pub fn priority_status_line(out: &mut Vec<u8>, name: &[u8], queued: [u64; 3], workers: u64) {
        out.extend_from_slice(name);
        let _ = writeln!(
            out,
            "\t{}\t{}\t{}\t{workers}",
            queued[0], queued[1], queued[2]
        );
    }

    /// One `workers` line: `FD IP ID : FUNC FUNC...\n`.
    pub fn workers_line<'a>(
        out: &mut Vec<u8>,
        fd: u64,
        ip: &str,
        id: &[u8],
        functions: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let _ = write!(out, "{fd} {ip} ");
        out.extend_from_slice(id);
        out.extend_from_slice(b" :");
        for f in functions {
            out.push(b' ');
            out.extend_from_slice(f);
        }
        out.push(b'\n');
    }

    /// One `show jobs` line: `HANDLE\tRETRIES\tIGNORE\tQUEUED\n`.
    pub fn show_jobs_line(
        out: &mut Vec<u8>,
        handle: &[u8],
        retries: u64,
        ignore: bool,
        queued: bool,
    ) {
        out.extend_from_slice(handle);
        let _ = writeln!(
            out,
            "\t{retries}\t{}\t{}",
            u8::from(ignore),
            u8::from(queued)
        );
    }

    /// One `show unique jobs` line: `UNIQUE\n`.
    pub fn show_unique_line(out: &mut Vec<u8>, unique: &[u8]) {
        out.extend_from_slice(unique);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_err(line: &[u8]) -> Vec<u8> {
        match AdminCommand::parse(line).unwrap() {
            AdminCommand::Invalid(e) => {
                let mut v = Vec::new();
                e.render(&mut v);
                v
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gearmand_error_lines() {
        assert_eq!(
            render_err(b"foo\r\n"),
            b"ERR UNKNOWN_COMMAND Unknown+server+commandfoo\r\n"
        );
        assert_eq!(
            render_err(b"\r\n"),
            b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"
        );
        assert_eq!(
            render_err(b"  status\n"),
            b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"
        );
        assert_eq!(
            render_err(b"cancel job\r\n"),
            b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"
        );
        assert_eq!(render_err(b"cancel X Y\r\n"), b"ERR UNKNOWN_ERROR\r\n");
        assert_eq!(
            render_err(b"show foo\r\n"),
            b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
        );
        assert_eq!(
            render_err(b"show jobs x\r\n"),
            b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
        );
        assert_eq!(
            render_err(b"create function a b\r\n"),
            &b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n"[..]
        );
    }

    #[test]
    fn maxqueue_numbers_follow_gearmand_atoi() {
        for (text, want) in [
            (&b"5"[..], 5u32),
            (b"007", 7),
            (b"\t7", 7),
            (b"+4", 4),
            (b"12abc", 12),
            (b"abc", 0),
            (b"", 0),
            (b"-3", 0),
            (b"-", 0),
            (b"2147483647", 2_147_483_647),
            (b"2147483648", 0),
            (b"4294967297", 1),
            (b"-4294967295", 1),
            (b"99999999999999999999", 0),
            (b"-99999999999999999999", 0),
        ] {
            assert_eq!(
                maxqueue_number(text),
                want,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn find_line_is_bounded() {
        assert_eq!(find_line(b"", 8), Ok(None));
        assert_eq!(find_line(b"status", 8), Ok(None));
        assert_eq!(find_line(b"status\r\nworkers\n", 8), Ok(Some(8)));
        assert_eq!(find_line(b"status\n", 7), Ok(Some(7)));
        assert_eq!(
            find_line(b"statuss\n", 7),
            Err(DecodeError::AdminLineTooLong { max: 7 })
        );
        assert_eq!(
            find_line(b"1234567", 7),
            Err(DecodeError::AdminLineTooLong { max: 7 })
        );
        assert_eq!(find_line(b"123456", 7), Ok(None));
    }

    #[test]
    fn commands() {
        assert_eq!(
            AdminCommand::parse(b"STATUS extra args\n"),
            Ok(AdminCommand::Status)
        );
        assert_eq!(
            AdminCommand::parse(b"show  unique jobs\r\n"),
            Ok(AdminCommand::ShowUniqueJobs)
        );
        assert_eq!(
            AdminCommand::parse(b"maxqueue f 1 2\r\n"),
            Ok(AdminCommand::MaxQueue {
                function: Bytes::from_static(b"f"),
                limits: [1, 2, 0]
            })
        );
        assert_eq!(
            AdminCommand::parse(b"maxqueue f -3\r\n"),
            Ok(AdminCommand::MaxQueue {
                function: Bytes::from_static(b"f"),
                limits: [0; 3]
            })
        );
        assert_eq!(
            AdminCommand::parse(b"create function fooA\n"),
            Ok(AdminCommand::CreateFunction(Bytes::from_static(b"fooA")))
        );
        assert_eq!(
            AdminCommand::parse(b"a b c d e f\r\n"),
            Err(DecodeError::AdminTooManyTokens)
        );
    }
}

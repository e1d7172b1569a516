//! The admin text protocol: command lines in, gearmand 1.1.20's exact reply bytes out.
//!
//! Tokenising follows gearmand: single spaces separate tokens, further spaces after a
//! separator are skipped, leading spaces make an empty first token, at most five tokens
//! (a sixth closes the connection), command words compare case-insensitively.

use crate::error::DecodeError;
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
    /// `shutdown [graceful]`: removed from gearmand in 2016; servers answer as 1.1.20 does.
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
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

/// C `atoi` as gearmand's `maxqueue` uses it: leading digits (after an optional sign),
/// anything else 0; negative clamps to 0 as gearmand does.
fn atoi_nonneg(b: &[u8]) -> u32 {
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, b.get(1..).unwrap_or_default()),
        Some(b'+') => (false, b.get(1..).unwrap_or_default()),
        _ => (false, b),
    };
    let mut n: u64 = 0;
    for d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = (n * 10 + u64::from(d - b'0')).min(u64::from(u32::MAX));
    }
    if neg {
        0
    } else {
        n as u32
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
            b"shutdown" => AdminCommand::Shutdown {
                graceful: is(1, "graceful"),
            },
            b"show" => match toks.len() {
                0 | 1 => AdminCommand::Invalid(AdminError::UnknownCommand(word_bytes)),
                2 if is(1, "jobs") => AdminCommand::ShowJobs,
                3 if is(1, "unique") && is(2, "jobs") => AdminCommand::ShowUniqueJobs,
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
            b"create" | b"drop" => AdminCommand::Invalid(AdminError::InvalidArguments(word_bytes)),
            b"maxqueue" => {
                let n = |i: usize| toks.get(i).map_or(0, |t| atoi_nonneg(t));
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

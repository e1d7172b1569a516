//! Structured logs with `tracing`, to stderr, a file, or nowhere, and to syslog with
//! `--syslog`.

use crate::cli::Settings;
use crate::StartError;
use nix::syslog::{openlog, syslog, Facility, LogFlags, Priority, Severity};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The `--log-file` being written and its path, for [`reopen`] (SIGHUP, as gearmand: after
/// logrotate has moved it away).
static LOG_FILE: OnceLock<(PathBuf, Arc<Mutex<std::fs::File>>)> = OnceLock::new();

fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Reopens `--log-file` (nothing to do when logging to stderr, nowhere or syslog only);
/// when it cannot be opened, logging carries on into the old file and says why.
pub(crate) fn reopen() {
    let Some((path, file)) = LOG_FILE.get() else {
        return;
    };
    match open_log(path) {
        Ok(new) => {
            *file.lock().unwrap_or_else(|p| p.into_inner()) = new;
            tracing::info!("SIGHUP: log file {} reopened", path.display());
        }
        Err(e) => tracing::error!(
            "SIGHUP: cannot reopen log file {}: {e}; still writing to the old one",
            path.display()
        ),
    }
}

/// The `--log-file` writer: the shared file [`reopen`] swaps.
struct SharedFile(Arc<Mutex<std::fs::File>>);

impl SharedFile {
    fn file(&self) -> std::sync::MutexGuard<'_, std::fs::File> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for &SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file().write(buf)
    }

    // The fmt layer writes each event whole with one `write_all`.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file().write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file().flush()
    }
}

impl<'a> MakeWriter<'a> for SharedFile {
    type Writer = &'a SharedFile;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Keeps logging alive for the life of the process.
pub(crate) struct LogGuard;

fn filter(level: &str) -> LevelFilter {
    match level {
        "FATAL" | "ALERT" | "CRITICAL" | "ERROR" => LevelFilter::ERROR,
        "WARNING" => LevelFilter::WARN,
        "NOTICE" | "INFO" => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    }
}

/// One log line on its way to syslog, sent when tracing drops the writer.
pub(crate) struct SyslogLine {
    severity: Severity,
    line: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim_end();
        if !text.is_empty() {
            let _ = syslog(Priority::new(self.severity, Facility::LOG_DAEMON), text);
        }
    }
}

/// Makes a [`SyslogLine`] per event, at the event's severity.
struct SyslogWriter;

impl<'a> MakeWriter<'a> for SyslogWriter {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            severity: Severity::LOG_INFO,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        let severity = match *meta.level() {
            Level::ERROR => Severity::LOG_ERR,
            Level::WARN => Severity::LOG_WARNING,
            Level::INFO => Severity::LOG_INFO,
            _ => Severity::LOG_DEBUG,
        };
        SyslogLine {
            severity,
            line: Vec::new(),
        }
    }
}

pub(crate) fn init(settings: &Settings) -> Result<LogGuard, StartError> {
    let level = filter(settings.level);
    let destination = match settings.log_file.as_str() {
        "none" => None,
        "stderr" => Some(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr)
                .boxed(),
        ),
        path => {
            let file = open_log(path.as_ref())
                .map_err(|e| StartError(format!("cannot open log file {path}: {e}")))?;
            let file = Arc::new(Mutex::new(file));
            let _ = LOG_FILE.set((PathBuf::from(path), file.clone()));
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(SharedFile(file))
                    .boxed(),
            )
        }
    };
    let syslog_layer = if settings.syslog {
        openlog(
            Some(c"gearmand-rs"),
            LogFlags::LOG_PID,
            Facility::LOG_DAEMON,
        )
        .map_err(|e| StartError(format!("cannot open syslog: {e}")))?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .without_time()
                .with_level(false)
                .with_writer(SyslogWriter),
        )
    } else {
        None
    };
    let _ = tracing_subscriber::registry()
        .with(destination.with_filter(level))
        .with(syslog_layer.with_filter(level))
        .try_init();
    Ok(LogGuard)
}

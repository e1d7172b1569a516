//! Structured logs with `tracing`, to stderr, a file, or nowhere, and to syslog with
//! `--syslog`.

use crate::cli::Settings;
use crate::StartError;
use nix::syslog::{openlog, syslog, Facility, LogFlags, Priority, Severity};
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

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
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| StartError(format!("cannot open log file {path}: {e}")))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(Mutex::new(file))
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

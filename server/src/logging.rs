//! Structured logs with `tracing`, to stderr, a file, or nowhere.

use crate::cli::Settings;
use crate::StartError;
use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing_subscriber::filter::LevelFilter;

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

pub(crate) fn init(settings: &Settings) -> Result<LogGuard, StartError> {
    let level = filter(settings.level);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    match settings.log_file.as_str() {
        "none" => {}
        "stderr" => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
        path => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| StartError(format!("cannot open log file {path}: {e}")))?;
            let _ = builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .try_init();
        }
    }
    Ok(LogGuard)
}

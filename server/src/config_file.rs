//! gearmand's `--config-file`: more flags as tokens separated by spaces and line breaks.
//!
//! As in gearmand, `/etc/gearmand.conf` is read when it exists and no other file is named,
//! a named file that cannot be read is an error, and flags given on the command line win
//! over the file's (the file's tokens go first, and the last of a repeated flag wins).

use crate::StartError;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The file gearmand reads when `--config-file` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/gearmand.conf";

/// The file named by `--config-file FILE`, `--config-file=FILE` or `@FILE`, if any.
fn named_file(args: &[OsString]) -> Option<PathBuf> {
    let mut named = None;
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--config-file" {
            named = iter.next().map(PathBuf::from);
        } else if let Some(path) = text.strip_prefix("--config-file=") {
            named = Some(PathBuf::from(path));
        } else if let Some(path) = text.strip_prefix('@').filter(|p| !p.is_empty()) {
            named = Some(PathBuf::from(path));
        }
    }
    named
}

/// Splits a configuration file into tokens as gearmand does (on ' ', '\n' and '\r').
/// A line starting with `#` is a comment (gearmand ignores the words of such a line
/// unless one looks like a flag).
pub fn tokens(text: &str) -> Vec<OsString> {
    text.split('\n')
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split([' ', '\r']))
        .filter(|t| !t.is_empty())
        .map(OsString::from)
        .collect()
}

/// The command line with the configuration file's flags put before the given ones.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, StartError> {
    expand_with_default(args, Path::new(DEFAULT_CONFIG_FILE))
}

fn expand_with_default(args: Vec<OsString>, default: &Path) -> Result<Vec<OsString>, StartError> {
    let (path, required) = match named_file(&args) {
        Some(path) => (path, true),
        None => (default.to_path_buf(), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) if !required => return Ok(args),
        Err(e) => {
            return Err(StartError(format!(
                "cannot read configuration file {}: {e}",
                path.display()
            )))
        }
    };
    let mut out: Vec<OsString> = args.first().cloned().into_iter().collect();
    out.extend(tokens(&text));
    // `@FILE` is not a flag clap knows: it has been read.
    out.extend(
        args.into_iter()
            .skip(1)
            .filter(|a| !(a.to_string_lossy().starts_with('@') && a != OsStr::new("@"))),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_tokens_come_first_and_at_name_is_consumed() {
        let tmp = tempfile::Builder::new()
            .prefix("gearmand-rs-conf-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let file = dir.join("g.conf");
        std::fs::write(&file, "--port 4800\r\n  -L 127.0.0.1\n--verbose=INFO\n").unwrap();
        let named = format!("@{}", file.display());
        let got = expand(os(&["g", &named, "-p", "4900"])).unwrap();
        assert_eq!(
            got,
            os(&[
                "g",
                "--port",
                "4800",
                "-L",
                "127.0.0.1",
                "--verbose=INFO",
                "-p",
                "4900"
            ])
        );
        let flag = format!("--config-file={}", file.display());
        assert_eq!(expand(os(&["g", &flag])).unwrap().len(), 7);
        let missing = expand(os(&["g", "--config-file", "/nonexistent/g.conf"]));
        assert!(missing.unwrap_err().0.contains("/nonexistent/g.conf"));
        // The default file is optional.
        let none = expand_with_default(os(&["g", "-p", "1"]), &dir.join("absent.conf"));
        assert_eq!(none.unwrap(), os(&["g", "-p", "1"]));
        let default = expand_with_default(os(&["g"]), &file).unwrap();
        assert_eq!(default.len(), 6);
    }
}

//! Values that must never reach a log (passwords, connection strings).

use std::fmt;
use std::str::FromStr;

/// A value that must never reach a log: `Debug` and `Display` print `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `text` with the passwords it may hold replaced by `***`: a libpq `password=` field and
/// the password of a `scheme://user:password@host` URL (for messages that quote what
/// the user gave, such as a command-line error naming a configuration file's token).
pub fn redact_secrets(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let lower = rest.to_ascii_lowercase();
        let field = lower.find("password=").map(|i| (i, i + "password=".len()));
        // The first URL holding a password: `user:` then `***` up to the `@`.
        let url = lower.match_indices("://").find_map(|(i, _)| {
            let authority = &rest[i + 3..];
            let end = authority
                .find(|c: char| ends(c) || c == '/')
                .unwrap_or(authority.len());
            let at = authority[..end].rfind('@')?;
            let colon = authority[..at].find(':')?;
            Some((i + 3 + colon, i + 3 + colon + 1, i + 3 + at))
        });
        let next = match (field, url) {
            (Some((at, from)), Some((u, ..))) if at < u => Some((from, None)),
            (_, Some((_, from, to))) => Some((from, Some(to))),
            (Some((_, from)), None) => Some((from, None)),
            (None, None) => None,
        };
        let Some((from, to)) = next else {
            out.push_str(rest);
            break;
        };
        let to = to.unwrap_or_else(|| rest[from..].find(ends).map_or(rest.len(), |n| from + n));
        out.push_str(&rest[..from]);
        out.push_str("***");
        rest = &rest[to..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_secrets;

    #[test]
    fn passwords_in_conninfo_and_urls_are_replaced() {
        let cases = [
            (
                "unexpected argument 'password=hunter2' found",
                "unexpected argument 'password=***' found",
            ),
            (
                "host=db PASSWORD=s3cret user=app",
                "host=db PASSWORD=*** user=app",
            ),
            (
                "bad 'postgres://app:hunter2@db:5432/q' here",
                "bad 'postgres://app:***@db:5432/q' here",
            ),
            ("redis://:pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
            ("http://host:4730/path@x", "http://host:4730/path@x"),
            (
                "a http://h/ then redis://u:pw@h",
                "a http://h/ then redis://u:***@h",
            ),
            ("no secrets here", "no secrets here"),
            ("password=a password=b", "password=*** password=***"),
        ];
        for (given, want) in cases {
            assert_eq!(redact_secrets(given), want, "{given}");
        }
    }
}

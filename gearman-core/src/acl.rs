//! Permissions by identity: the ACL file format, its parser, and the check the server
//! machine makes before it acts on a request. Pure: the server reads the file and works out
//! who a peer is (certificate names, Unix uid); this module only parses and matches.
//!
//! # File format
//!
//! One grant per line, `IDENTITY PERMISSION [PATTERN...]`, fields separated by spaces or
//! tabs (a CR counts as a space, so CRLF files read the same); `#` starts a comment; blank lines are ignored. Grants only add: a peer may do what
//! any line matching it grants, and nothing else.
//!
//! Identities:
//! * `cn:NAME`: a TLS peer whose certificate subject common name is NAME;
//! * `san:NAME`: a TLS peer whose certificate has NAME among its subject alternative names
//!   (DNS names, IP addresses and e-mail addresses as text);
//! * `uid:N`: a peer on a Unix socket running as user id N;
//! * `anonymous`: a plaintext TCP peer, or a TLS peer that sent no certificate;
//! * `*`: every peer.
//!
//! Permissions:
//! * `submit PATTERN...`: submit jobs (every SUBMIT_JOB kind, SUBMIT_REDUCE_JOB*) to a
//!   function whose name matches one of the patterns (for a reduce job, the reducer too);
//! * `register PATTERN...`: CAN_DO / CAN_DO_TIMEOUT for a matching function;
//! * `admin-read`: the admin commands that only read (status, workers, show jobs,
//!   version, getpid, verbose...);
//! * `admin-write`: the admin commands that change state (cancel job, create/drop
//!   function, maxqueue, shutdown). It does not imply `admin-read`.
//!
//! Patterns match whole function names: `*` matches any run of bytes, `?` one byte, every
//! other byte itself.
//!
//! ```
//! use gearman_core::acl::{Acl, Identity, Permission};
//!
//! let acl = Acl::parse("cn:web submit resize_* thumb\nanonymous admin-read\n")?;
//! let web = acl.grants_for(&Identity::certificate(Some("web".into()), vec![]));
//! assert!(web.allows(Permission::Submit, b"resize_png"));
//! assert!(!web.allows(Permission::Register, b"resize_png"));
//! assert!(acl.grants_for(&Identity::Anonymous).allows(Permission::AdminRead, b""));
//! # Ok::<(), gearman_core::acl::AclError>(())
//! ```

use crate::proto::admin::AdminCommand;
use std::fmt;

/// Longest ACL file accepted, so a wrong path (a log, a device) is refused quickly.
pub const MAX_ACL_BYTES: usize = 1024 * 1024;

/// Who a peer is, as the server established it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A plaintext TCP peer, or a TLS peer without a certificate.
    Anonymous,
    /// A TLS peer whose certificate chained to the server's CA.
    Certificate {
        /// The subject's common name, if it has one.
        common_name: Option<String>,
        /// Subject alternative names as text (DNS names, IP addresses, e-mail addresses).
        alt_names: Vec<String>,
    },
    /// A peer on a Unix socket, by its user id.
    Unix {
        /// The peer's effective uid.
        uid: u32,
    },
}

impl Identity {
    /// A certificate identity.
    pub fn certificate(common_name: Option<String>, alt_names: Vec<String>) -> Identity {
        Identity::Certificate {
            common_name,
            alt_names,
        }
    }
}

impl fmt::Display for Identity {
    /// The form a log line or refusal names the peer by: `anonymous`, `cn:NAME` (or
    /// `san:NAME` without a common name), `uid:N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::Certificate {
                common_name: Some(cn),
                ..
            } => write!(f, "cn:{cn}"),
            Identity::Certificate { alt_names, .. } => match alt_names.first() {
                Some(san) => write!(f, "san:{san}"),
                None => f.write_str("certificate"),
            },
            Identity::Unix { uid } => write!(f, "uid:{uid}"),
        }
    }
}

/// Something a request needs to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Submitting jobs to a function.
    Submit,
    /// Registering as a worker for a function.
    Register,
    /// Admin commands that read.
    AdminRead,
    /// Admin commands that change state.
    AdminWrite,
}

impl Permission {
    /// The name used in the file and in refusals.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Submit => "submit",
            Permission::Register => "register",
            Permission::AdminRead => "admin-read",
            Permission::AdminWrite => "admin-write",
        }
    }

    /// The permission an admin command needs; `None` for a line that is answered with an
    /// error anyway (it reveals and changes nothing).
    pub fn for_admin(command: &AdminCommand) -> Option<Permission> {
        match command {
            AdminCommand::Status
            | AdminCommand::PriorityStatus
            | AdminCommand::Workers
            | AdminCommand::Version
            | AdminCommand::Getpid
            | AdminCommand::Verbose
            | AdminCommand::ShowJobs
            | AdminCommand::ShowUniqueJobs
            | AdminCommand::ShowDead
            | AdminCommand::ShowSchedules
            | AdminCommand::ShowResult(_)
            | AdminCommand::ShowResultUnique { .. } => Some(Permission::AdminRead),
            AdminCommand::CancelJob(_)
            | AdminCommand::CreateFunction(_)
            | AdminCommand::DropFunction(_)
            | AdminCommand::MaxQueue { .. }
            | AdminCommand::Shutdown { .. }
            | AdminCommand::RetryDead(_)
            | AdminCommand::DropDead(_) => Some(Permission::AdminWrite),
            AdminCommand::Invalid(_) => None,
        }
    }

    fn takes_patterns(self) -> bool {
        matches!(self, Permission::Submit | Permission::Register)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The identity a line of the file applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Subject {
    Anyone,
    Anonymous,
    CommonName(String),
    AltName(String),
    Uid(u32),
}

impl Subject {
    fn matches(&self, who: &Identity) -> bool {
        match (self, who) {
            (Subject::Anyone, _) => true,
            (Subject::Anonymous, Identity::Anonymous) => true,
            (
                Subject::CommonName(name),
                Identity::Certificate {
                    common_name: Some(cn),
                    ..
                },
            ) => name == cn,
            (Subject::AltName(name), Identity::Certificate { alt_names, .. }) => {
                alt_names.iter().any(|san| san == name)
            }
            (Subject::Uid(want), Identity::Unix { uid }) => want == uid,
            _ => false,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Anyone => f.write_str("*"),
            Subject::Anonymous => f.write_str("anonymous"),
            Subject::CommonName(n) => write!(f, "cn:{n}"),
            Subject::AltName(n) => write!(f, "san:{n}"),
            Subject::Uid(u) => write!(f, "uid:{u}"),
        }
    }
}

/// A function-name pattern: `*` any run, `?` one byte, the rest literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(Box<[u8]>);

impl Pattern {
    /// A pattern from its text.
    pub fn new(text: &str) -> Pattern {
        Pattern(text.as_bytes().into())
    }

    /// Whether `name` matches as a whole. Linear in `name` per star (the classic
    /// backtrack-to-last-star walk), never exponential.
    pub fn matches(&self, name: &[u8]) -> bool {
        let pat = &self.0[..];
        let (mut p, mut n) = (0usize, 0usize);
        // Position after the last star, and where in `name` that star's run ends for now.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match (pat.get(p), name.get(n)) {
                (Some(b'*'), _) => {
                    p += 1;
                    star = Some((p, n));
                }
                (Some(&c), Some(&b)) if c == b'?' || c == b => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((after, run_end)) => {
                        p = after;
                        n = run_end + 1;
                        star = Some((after, run_end + 1));
                    }
                    None => return false,
                },
            }
        }
        pat.get(p..).unwrap_or_default().iter().all(|&c| c == b'*')
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Built from a &str, so always UTF-8.
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// One line of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    subject: Subject,
    permission: Permission,
    patterns: Vec<Pattern>,
}

/// A parsed ACL file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
}

/// Why an ACL file was refused: the line and what is wrong with it, on one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclError {
    /// 1-based line number (0 when the file as a whole is wrong).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for AclError {}

/// Shows a token from the file safely on one line.
fn quoted(token: &str) -> String {
    let shown: String = token.chars().take(64).collect();
    format!("{:?}", shown)
}

fn parse_subject(token: &str) -> Result<Subject, String> {
    if token == "*" {
        return Ok(Subject::Anyone);
    }
    if token == "anonymous" {
        return Ok(Subject::Anonymous);
    }
    let nonempty = |name: &str, what: &str| {
        if name.is_empty() {
            Err(format!("{what} needs a name after the colon"))
        } else {
            Ok(name.to_string())
        }
    };
    if let Some(name) = token.strip_prefix("cn:") {
        return nonempty(name, "cn:").map(Subject::CommonName);
    }
    if let Some(name) = token.strip_prefix("san:") {
        return nonempty(name, "san:").map(Subject::AltName);
    }
    if let Some(uid) = token.strip_prefix("uid:") {
        return uid
            .parse()
            .map(Subject::Uid)
            .map_err(|_| format!("uid:{} is not a user id (a number)", quoted(uid)));
    }
    Err(format!(
        "unknown identity {} (expected cn:NAME, san:NAME, uid:N, anonymous or *)",
        quoted(token)
    ))
}

fn parse_permission(token: &str) -> Result<Permission, String> {
    match token {
        "submit" => Ok(Permission::Submit),
        "register" => Ok(Permission::Register),
        "admin-read" => Ok(Permission::AdminRead),
        "admin-write" => Ok(Permission::AdminWrite),
        _ => Err(format!(
            "unknown permission {} (expected submit, register, admin-read or admin-write)",
            quoted(token)
        )),
    }
}

fn parse_rule(line: &str) -> Result<Option<Rule>, String> {
    let content = line.split('#').next().unwrap_or_default();
    let mut fields = content.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
    let Some(subject) = fields.next() else {
        return Ok(None);
    };
    let subject = parse_subject(subject)?;
    let permission = match fields.next() {
        Some(p) => parse_permission(p)?,
        None => {
            return Err(format!(
                "{} has no permission after it",
                quoted(&subject.to_string())
            ))
        }
    };
    let patterns: Vec<Pattern> = fields.map(Pattern::new).collect();
    match (permission.takes_patterns(), patterns.is_empty()) {
        (true, true) => Err(format!(
            "{permission} needs at least one function pattern (use * for every function)"
        )),
        (false, false) => Err(format!("{permission} takes no function pattern")),
        _ => Ok(Some(Rule {
            subject,
            permission,
            patterns,
        })),
    }
}

impl Acl {
    /// Parses a whole file; the first bad line is the error.
    pub fn parse(text: &str) -> Result<Acl, AclError> {
        if text.len() > MAX_ACL_BYTES {
            return Err(AclError {
                line: 0,
                message: format!("larger than {MAX_ACL_BYTES} bytes"),
            });
        }
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            match parse_rule(line) {
                Ok(Some(rule)) => rules.push(rule),
                Ok(None) => {}
                Err(message) => {
                    return Err(AclError {
                        line: index + 1,
                        message,
                    })
                }
            }
        }
        Ok(Acl { rules })
    }

    /// Parses file contents given as bytes (they must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Acl, AclError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Acl::parse(text),
            Err(e) => Err(AclError {
                line: bytes
                    .get(..e.valid_up_to())
                    .map_or(0, |ok| 1 + ok.iter().filter(|&&b| b == b'\n').count()),
                message: "not UTF-8 text".into(),
            }),
        }
    }

    /// Number of grants in the file.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the file grants nothing (every request is then refused).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Everything the file grants `who`, gathered once per connection.
    pub fn grants_for(&self, who: &Identity) -> Grants {
        let mut grants = Grants::default();
        for rule in self.rules.iter().filter(|r| r.subject.matches(who)) {
            match rule.permission {
                Permission::Submit => grants.submit.extend(rule.patterns.iter().cloned()),
                Permission::Register => grants.register.extend(rule.patterns.iter().cloned()),
                Permission::AdminRead => grants.admin_read = true,
                Permission::AdminWrite => grants.admin_write = true,
            }
        }
        grants
    }
}

impl fmt::Display for Acl {
    /// The file in canonical form (one grant per line, single spaces), which parses back
    /// to the same rules.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            write!(f, "{} {}", rule.subject, rule.permission)?;
            for p in &rule.patterns {
                write!(f, " {p}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// What one peer may do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    submit: Vec<Pattern>,
    register: Vec<Pattern>,
    admin_read: bool,
    admin_write: bool,
}

impl Grants {
    /// Whether `permission` is granted; `function` is the function name for `Submit` and
    /// `Register` and ignored for the admin permissions.
    pub fn allows(&self, permission: Permission, function: &[u8]) -> bool {
        match permission {
            Permission::Submit => self.submit.iter().any(|p| p.matches(function)),
            Permission::Register => self.register.iter().any(|p| p.matches(function)),
            Permission::AdminRead => self.admin_read,
            Permission::AdminWrite => self.admin_write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str) -> Identity {
        Identity::certificate(Some(cn.into()), vec![])
    }

    #[test]
    fn patterns_match_whole_names() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("resize_*", "resize_png", true),
            ("resize_*", "resize_", true),
            ("resize_*", "xresize_png", false),
            ("*_png", "resize_png", true),
            ("*_png", "resize_jpg", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a*b*c", "abcbc", true),
            ("r?v", "rev", true),
            ("r?v", "rv", false),
            ("reverse", "reverse", true),
            ("reverse", "reverse2", false),
            ("reverse", "revers", false),
            ("**a", "a", true),
            ("a*", "b", false),
            ("", "", true),
            ("", "a", false),
        ];
        for &(pat, name, want) in cases {
            assert_eq!(
                Pattern::new(pat).matches(name.as_bytes()),
                want,
                "{pat:?} vs {name:?}"
            );
        }
    }

    #[test]
    fn pathological_pattern_stays_fast_and_correct() {
        let name = vec![b'a'; 10_000];
        let pat = Pattern::new(&"a*".repeat(50));
        assert!(pat.matches(&name));
        let miss = Pattern::new(&format!("{}b", "*a".repeat(20)));
        assert!(!miss.matches(&name));
    }

    #[test]
    fn identities_match_their_own_lines_only() {
        let acl = Acl::parse(
            "cn:alice submit a*\n\
             san:bob.example.com submit b*\n\
             uid:1000 submit u*\n\
             anonymous submit zz_anon\n\
             * admin-read\n",
        )
        .unwrap();
        let alice = acl.grants_for(&cert("alice"));
        assert!(alice.allows(Permission::Submit, b"abc"));
        assert!(!alice.allows(Permission::Submit, b"bcd"));
        assert!(alice.allows(Permission::AdminRead, b""));
        let bob = acl.grants_for(&Identity::certificate(
            Some("other".into()),
            vec!["x.example.com".into(), "bob.example.com".into()],
        ));
        assert!(bob.allows(Permission::Submit, b"bcd"));
        assert!(!bob.allows(Permission::Submit, b"abc"));
        let uid = acl.grants_for(&Identity::Unix { uid: 1000 });
        assert!(uid.allows(Permission::Submit, b"u1"));
        assert!(!acl
            .grants_for(&Identity::Unix { uid: 1001 })
            .allows(Permission::Submit, b"u1"));
        let anon = acl.grants_for(&Identity::Anonymous);
        assert!(anon.allows(Permission::Submit, b"zz_anon"));
        assert!(!anon.allows(Permission::Submit, b"abc"));
        assert!(!anon.allows(Permission::AdminWrite, b""));
        // A certificate holder is not anonymous, and a CN is not a SAN.
        assert!(!alice.allows(Permission::Submit, b"zz_anon"));
        let cn_as_san = acl.grants_for(&Identity::certificate(None, vec!["alice".into()]));
        assert!(!cn_as_san.allows(Permission::Submit, b"abc"));
    }

    #[test]
    fn permissions_are_separate() {
        let acl = Acl::parse("cn:w register work_*\ncn:op admin-write\n").unwrap();
        let w = acl.grants_for(&cert("w"));
        assert!(w.allows(Permission::Register, b"work_1"));
        assert!(!w.allows(Permission::Submit, b"work_1"));
        let op = acl.grants_for(&cert("op"));
        assert!(op.allows(Permission::AdminWrite, b""));
        assert!(!op.allows(Permission::AdminRead, b""));
        let nobody = acl.grants_for(&cert("nobody"));
        for p in [
            Permission::Submit,
            Permission::Register,
            Permission::AdminRead,
            Permission::AdminWrite,
        ] {
            assert!(!nobody.allows(p, b"work_1"), "{p}");
        }
    }

    #[test]
    fn comments_blanks_tabs_and_several_patterns() {
        let acl = Acl::parse(
            "# header\n\n   \t\ncn:a\tsubmit  x  y* # trailing\n\r\nanonymous admin-read\r\n",
        )
        .unwrap();
        assert_eq!(acl.len(), 2);
        let a = acl.grants_for(&cert("a"));
        assert!(a.allows(Permission::Submit, b"x"));
        assert!(a.allows(Permission::Submit, b"yes"));
        assert!(!a.allows(Permission::Submit, b"z"));
    }

    #[test]
    fn bad_lines_are_one_line_errors_with_their_number() {
        let cases = [
            ("bob submit x", 1, "unknown identity \"bob\""),
            ("\ncn: submit x", 2, "cn: needs a name"),
            ("uid:me admin-read", 1, "is not a user id"),
            ("cn:a sumbit x", 1, "unknown permission \"sumbit\""),
            ("cn:a", 1, "has no permission"),
            ("cn:a submit", 1, "needs at least one function pattern"),
            (
                "cn:a register # none",
                1,
                "needs at least one function pattern",
            ),
            ("cn:a admin-read x", 1, "takes no function pattern"),
        ];
        for (text, line, want) in cases {
            let err = Acl::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            let shown = err.to_string();
            assert!(shown.contains(want), "{text:?}: {shown}");
            assert!(!shown.contains('\n'), "{shown}");
            assert!(shown.starts_with(&format!("line {line}: ")), "{shown}");
        }
    }

    #[test]
    fn control_characters_and_long_tokens_stay_on_one_line() {
        let err = Acl::parse(&format!("cn:a\x0b{} x", "p".repeat(500))).unwrap_err();
        let shown = err.to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\x0b'),
            "{shown:?}"
        );
        assert!(shown.len() < 200, "{shown}");
    }

    #[test]
    fn non_utf8_and_oversized_files_are_refused() {
        let err = Acl::parse_bytes(b"cn:a admin-read\ncn:\xff admin-read\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("UTF-8"));
        let big = "#".repeat(MAX_ACL_BYTES + 1);
        assert!(Acl::parse(&big).unwrap_err().to_string().contains("larger"));
    }

    #[test]
    fn empty_file_grants_nothing() {
        let acl = Acl::parse("# nothing\n").unwrap();
        assert!(acl.is_empty());
        assert!(!acl
            .grants_for(&Identity::Anonymous)
            .allows(Permission::AdminRead, b""));
    }

    #[test]
    fn canonical_form_parses_back() {
        let acl = Acl::parse("cn:a\tsubmit x  y*\n* admin-read # c\nuid:7 register *\n").unwrap();
        let text = acl.to_string();
        assert_eq!(text, "cn:a submit x y*\n* admin-read\nuid:7 register *\n");
        assert_eq!(Acl::parse(&text).unwrap(), acl);
        // A stray CR is a separator, never part of a pattern.
        let cr = Acl::parse("cn:a submit x\r\r\n").unwrap();
        assert_eq!(cr.to_string(), "cn:a submit x\n");
    }

    #[test]
    fn admin_commands_need_read_or_write() {
        use crate::proto::admin::AdminError;
        use bytes::Bytes;
        assert_eq!(
            Permission::for_admin(&AdminCommand::Status),
            Some(Permission::AdminRead)
        );
        assert_eq!(
            Permission::for_admin(&AdminCommand::ShowJobs),
            Some(Permission::AdminRead)
        );
        assert_eq!(
            Permission::for_admin(&AdminCommand::CancelJob(Bytes::from_static(b"H:x:1"))),
            Some(Permission::AdminWrite)
        );
        assert_eq!(
            Permission::for_admin(&AdminCommand::Shutdown { graceful: true }),
            Some(Permission::AdminWrite)
        );
        assert_eq!(
            Permission::for_admin(&AdminCommand::Invalid(AdminError::UnknownError)),
            None
        );
    }

    #[test]
    fn identities_display_for_logs() {
        assert_eq!(Identity::Anonymous.to_string(), "anonymous");
        assert_eq!(cert("w1").to_string(), "cn:w1");
        assert_eq!(
            Identity::certificate(None, vec!["h.example".into()]).to_string(),
            "san:h.example"
        );
        assert_eq!(Identity::Unix { uid: 0 }.to_string(), "uid:0");
    }
}

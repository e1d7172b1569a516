//! --acl-file over real sockets: for each permission one identity allowed and one refused,
//! over TLS (certificate common names) and over plaintext (anonymous); a refusal names the
//! permission, leaves the connection usable and is logged with the identity; SIGHUP
//! reloads the file, and a bad file on reload keeps the rules in force.

mod common;

use common::BINARY;
use gearman_core::proto::{Priority, Request, Response, SubmitJob, SubmitMode};
use gearman_tests::certs::TestPki;
use gearman_tests::tls::{client_tls, Probe, TlsServer};
use gearman_tests::Conn;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RULES: &str = "\
# the probe that tells the test server is up
cn:probe admin-read
cn:submitter submit acl_*
cn:worker register acl_*
cn:reader admin-read
cn:operator admin-write
anonymous submit anon_*
anonymous register anon_*
";

struct Fixture {
    pki: TestPki,
    server: TlsServer,
    acl: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Fixture {
    fn start(label: &str) -> Fixture {
        Fixture::start_with(label, RULES)
    }

    fn start_with(label: &str, rules: &str) -> Fixture {
        let pki = TestPki::generate(label);
        let acl = pki.path("acl");
        let log = pki.path("log");
        std::fs::write(&acl, rules).unwrap();
        let probe = client_tls(&pki.ca, Some(&pki.client("probe")));
        let (acl_arg, log_arg) = (acl.display().to_string(), log.display().to_string());
        let server = TlsServer::start(
            Path::new(BINARY),
            &pki,
            None,
            &[
                "--acl-file",
                &acl_arg,
                "--log-file",
                &log_arg,
                "--verbose",
                "INFO",
            ],
            Probe::Tls(&probe),
        );
        Fixture {
            pki,
            server,
            acl,
            log,
        }
    }

    fn as_cn(&self, cn: &str) -> Conn {
        self.server
            .conn(&client_tls(&self.pki.ca, Some(&self.pki.client(cn))))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.server.process.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) until the log holds `text`.
    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log_text().contains(text) {
            assert!(
                Instant::now() < deadline,
                "log never said {text:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn submit(conn: &mut Conn, function: &'static str) -> Response {
    conn.send(Request::Submit(SubmitJob {
        function: function.into(),
        unique: "".into(),
        mode: SubmitMode::Background(Priority::Normal),
        data: "x".into(),
    }));
    conn.recv()
}

fn assert_denied(reply: Response, permission: &str, identity: &str) {
    match reply {
        Response::Error { code, text } => {
            assert_eq!(code, "PERMISSION_DENIED");
            let text = String::from_utf8_lossy(&text);
            assert!(
                text.starts_with(&format!("{permission} not permitted for {identity}")),
                "{text}"
            );
        }
        other => panic!("expected PERMISSION_DENIED, got {other:?}"),
    }
}

fn assert_usable(conn: &mut Conn) {
    conn.send(Request::Echo {
        data: "still".into(),
    });
    assert_eq!(
        conn.recv(),
        Response::EchoRes {
            data: "still".into()
        }
    );
}

/// Registered workers of `function` per the admin `status` (read as cn:reader).
fn workers_of(f: &Fixture, function: &str) -> String {
    let status = f.as_cn("reader").admin("status\n");
    status
        .lines()
        .find(|l| l.starts_with(&format!("{function}\t")))
        .map_or("none".into(), |l| {
            l.rsplit('\t').next().unwrap().to_string()
        })
}

#[test]
fn submit_allowed_and_refused_over_tls_and_plaintext() {
    let f = Fixture::start("acl-submit");
    let mut submitter = f.as_cn("submitter");
    assert!(matches!(
        submit(&mut submitter, "acl_job"),
        Response::JobCreated { .. }
    ));
    assert_denied(submit(&mut submitter, "anon_job"), "submit", "cn:submitter");
    assert_usable(&mut submitter);
    let mut worker = f.as_cn("worker");
    assert_denied(submit(&mut worker, "acl_job"), "submit", "cn:worker");
    assert_usable(&mut worker);
    let mut plain = f.server.plain();
    assert!(matches!(
        submit(&mut plain, "anon_job"),
        Response::JobCreated { .. }
    ));
    assert_denied(submit(&mut plain, "acl_job"), "submit", "anonymous");
    assert_usable(&mut plain);
    f.wait_for_log("refused: submit \"acl_job\" for cn:worker");
    f.wait_for_log("refused: submit \"acl_job\" for anonymous");
}

#[test]
fn register_allowed_and_refused_over_tls_and_plaintext() {
    let f = Fixture::start("acl-register");
    let mut worker = f.as_cn("worker");
    worker.send(Request::CanDo {
        function: "acl_work".into(),
    });
    assert_usable(&mut worker);
    assert_eq!(workers_of(&f, "acl_work"), "1");
    let mut submitter = f.as_cn("submitter");
    submitter.send(Request::CanDo {
        function: "acl_other".into(),
    });
    assert_denied(submitter.recv(), "register", "cn:submitter");
    assert_usable(&mut submitter);
    assert_eq!(workers_of(&f, "acl_other"), "none");
    let mut plain = f.server.plain();
    plain.send(Request::CanDoTimeout {
        function: "anon_work".into(),
        timeout_ms: 1000,
    });
    assert_usable(&mut plain);
    assert_eq!(workers_of(&f, "anon_work"), "1");
    plain.send(Request::CanDo {
        function: "acl_work".into(),
    });
    assert_denied(plain.recv(), "register", "anonymous");
    assert_eq!(workers_of(&f, "acl_work"), "1");
    f.wait_for_log("refused: register \"acl_work\" for anonymous");
}

#[test]
fn admin_read_and_write_allowed_and_refused_then_sighup_reloads() {
    let f = Fixture::start("acl-admin");
    // admin-read: the reader may, the operator (write only) may not.
    assert!(f.as_cn("reader").admin("status\n").ends_with(".\n"));
    let mut operator = f.as_cn("operator");
    assert_eq!(
        operator.admin("workers\n"),
        "ERR PERMISSION_DENIED admin-read+not+permitted+for+cn:operator\r\n"
    );
    // admin-write: the operator may, the reader may not.
    assert_eq!(
        operator.admin("create function made_by_operator\n"),
        "OK\r\n"
    );
    let mut reader = f.as_cn("reader");
    assert_eq!(
        reader.admin("drop function made_by_operator\n"),
        "ERR PERMISSION_DENIED admin-write+not+permitted+for+cn:reader\r\n"
    );
    assert!(reader.admin("status\n").contains("made_by_operator\t"));
    // Plaintext peers are anonymous: refused both until the file says otherwise.
    let mut plain = f.server.plain();
    assert_eq!(
        plain.admin("status\n"),
        "ERR PERMISSION_DENIED admin-read+not+permitted+for+anonymous\r\n"
    );
    assert_eq!(
        plain.admin("maxqueue anon_q 5\n"),
        "ERR PERMISSION_DENIED admin-write+not+permitted+for+anonymous\r\n"
    );
    f.wait_for_log("refused: admin-write \"\" for anonymous");

    // SIGHUP: the new file applies to open connections too.
    std::fs::write(
        &f.acl,
        format!("{RULES}anonymous admin-read\nanonymous admin-write\n"),
    )
    .unwrap();
    f.hangup();
    f.wait_for_log("ACL");
    f.wait_for_log("reloaded, 9 grant(s)");
    assert!(plain.admin("status\n").ends_with(".\n"));
    assert_eq!(plain.admin("drop function made_by_operator\n"), "OK\r\n");

    // A bad file on reload keeps the rules in force, and the log says why.
    std::fs::write(&f.acl, "anonymous admin-reed\n").unwrap();
    f.hangup();
    f.wait_for_log("keeping the previous ACL: ACL file");
    assert!(
        f.log_text()
            .contains("line 1: unknown permission \"admin-reed\""),
        "{}",
        f.log_text()
    );
    assert!(plain.admin("status\n").ends_with(".\n"));
    assert!(matches!(
        submit(&mut plain, "anon_job"),
        Response::JobCreated { .. }
    ));
    assert_denied(submit(&mut plain, "acl_job"), "submit", "anonymous");
    // A missing file too.
    std::fs::remove_file(&f.acl).unwrap();
    f.hangup();
    f.wait_for_log("No such file");
    assert!(plain.admin("status\n").ends_with(".\n"));
}

/// `san:NAME` grants match a DNS or IP subject alternative name of the peer's verified
/// certificate, whatever its common name; a common name equal to NAME is not a SAN.
#[test]
fn san_identities_match_the_certificates_alternative_names() {
    let f = Fixture::start_with(
        "acl-san",
        "cn:probe admin-read\n\
         san:img.example submit san_*\n\
         san:img.example register san_*\n\
         san:10.9.8.7 admin-read\n",
    );
    let as_sans = |cn: &str, sans: &[&str]| {
        f.server.conn(&client_tls(
            &f.pki.ca,
            Some(&f.pki.client_with_sans(cn, sans)),
        ))
    };
    // A DNS alternative name, under an unrelated common name.
    let mut dns = as_sans("frontend-7", &["other.example", "img.example"]);
    assert!(matches!(
        submit(&mut dns, "san_job"),
        Response::JobCreated { .. }
    ));
    dns.send(Request::CanDo {
        function: "san_work".into(),
    });
    assert_usable(&mut dns);
    assert_denied(submit(&mut dns, "acl_job"), "submit", "cn:frontend-7");
    assert_usable(&mut dns);
    // An IP alternative name.
    let mut ip = as_sans("monitor", &["10.9.8.7"]);
    let status = ip.admin("status\n");
    assert!(status.contains("san_work\t0\t0\t1\n"), "{status:?}");
    // The name as common name only: not a SAN, refused.
    let mut cn_only = f.as_cn("img.example");
    assert_denied(submit(&mut cn_only, "san_job"), "submit", "cn:img.example");
    cn_only.send(Request::CanDo {
        function: "san_other".into(),
    });
    assert_denied(cn_only.recv(), "register", "cn:img.example");
    assert_eq!(
        cn_only.admin("status\n"),
        "ERR PERMISSION_DENIED admin-read+not+permitted+for+cn:img.example\r\n"
    );
    f.wait_for_log("refused: submit \"san_job\" for cn:img.example");
}

#[test]
fn a_bad_acl_file_is_a_one_line_start_error() {
    let pki = TestPki::generate("acl-bad");
    let acl = pki.path("acl");
    std::fs::write(&acl, "cn:ok admin-read\nuid:root admin-write\n").unwrap();
    for (file, want) in [
        (
            acl.clone(),
            format!(
                "ACL file {}: line 2: uid:\"root\" is not a user id",
                acl.display()
            ),
        ),
        (
            pki.path("missing"),
            format!("ACL file {}: No such file", pki.path("missing").display()),
        ),
    ] {
        let out = Command::new(BINARY)
            .args(["-L", "127.0.0.1", "-p", "0", "--acl-file"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&want), "{stderr}");
    }
}

#[test]
fn without_an_acl_file_everything_is_allowed() {
    let pki = TestPki::generate("acl-none");
    let tls = client_tls(&pki.ca, Some(&pki.client("anyone")));
    let server = TlsServer::start(Path::new(BINARY), &pki, None, &[], Probe::Tls(&tls));
    let mut conn = server.conn(&tls);
    assert!(matches!(
        submit(&mut conn, "whatever"),
        Response::JobCreated { .. }
    ));
    let mut plain = server.plain();
    assert_eq!(plain.admin("create function f\n"), "OK\r\n");
    assert!(plain.admin("status\n").ends_with(".\n"));
}

/// Waits (bounded) until the file at `log` has a line holding `text`, and returns it.
fn log_line(log: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = all.lines().find(|l| l.contains(text)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "log never said {text:?}:\n{all}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file that grants nothing (empty, or only comments) parses, but refuses every request:
/// a warning says so at start and on reload (logged at --verbose WARNING, so not INFO).
#[test]
fn an_acl_that_grants_nothing_is_a_warning_at_start_and_on_reload() {
    let dir = gearman_tests::temp_dir("acl-nothing");
    let (acl, log) = (dir.path().join("acl"), dir.path().join("log"));
    let (acl_arg, log_arg) = (acl.display().to_string(), log.display().to_string());
    let args = [
        "--acl-file",
        &acl_arg,
        "--log-file",
        &log_arg,
        "--verbose",
        "WARNING",
    ];

    // On reload: started with a grant (the start probe's admin `getpid` needs it).
    std::fs::write(&acl, "anonymous admin-read\n").unwrap();
    let server = common::Server::start(&args);
    let mut conn = server.conn();
    assert!(conn.admin("status\n").ends_with(".\n"));
    std::fs::write(&acl, "# no rules yet\n\n   # nor here\n").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let line = log_line(&log, "grants nothing");
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(&format!("SIGHUP: ACL {acl_arg} reloaded"))
            && line.contains("will be refused"),
        "{line}"
    );
    // As the warning says.
    assert_eq!(
        conn.admin("status\n"),
        "ERR PERMISSION_DENIED admin-read+not+permitted+for+anonymous\r\n"
    );
    drop(server);

    // At start: an empty file (the probe would be refused, so the log tells it is up).
    std::fs::write(&acl, "").unwrap();
    std::fs::remove_file(&log).unwrap();
    let port = gearman_tests::free_port();
    let child = Command::new(BINARY)
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed when dropped.
    let _server = gearman_tests::ServerProcess { port, child };
    let line = log_line(&log, "grants nothing");
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        line.contains(&format!("ACL {acl_arg} grants nothing")) && line.contains("will be refused"),
        "{line}"
    );
}

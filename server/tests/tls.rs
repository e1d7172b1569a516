//! gearmand-rs over TLS on real sockets: jobs and admin, client certificates, and every
//! refusal the issue lists (plaintext on a TLS port, expired, another CA, wrong name, no
//! client certificate under --ssl-verify-client, a stalled handshake), each while the
//! server keeps serving others. Certificates come from `gearman_tests::certs`.

mod common;

use common::BINARY;
use gearman_core::proto::{Request, Response};
use gearman_tests::certs::TestPki;
use gearman_tests::tls::{client_tls, Probe, TlsServer};
use gearman_tests::{run_job, Conn};
use gearman_tls::ClientTls;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start(pki: &TestPki, extra: &[&str], probe: Probe<'_>) -> TlsServer {
    TlsServer::start(Path::new(BINARY), pki, None, extra, probe)
}

/// The handshake error text of a refused connection (server refusals under TLS 1.3 show
/// at the first read, so one echo is tried too).
fn refusal(port: u16, tls: &ClientTls, name: &str) -> String {
    match Conn::tls(port, tls, name) {
        Err(e) => e.to_string(),
        Ok(mut conn) => {
            conn.send(Request::Echo { data: "hi".into() });
            match conn.recv_within(Duration::from_secs(5)) {
                Some(reply) => panic!("expected a refusal, got {reply:?}"),
                None => "closed after the handshake".into(),
            }
        }
    }
}

#[test]
fn jobs_and_admin_over_tls_with_and_without_client_certificates() {
    let pki = TestPki::generate("jobs");
    let with_cert = client_tls(&pki.ca, Some(&pki.client("alice")));
    let without = client_tls(&pki.ca, None);
    let server = start(&pki, &[], Probe::Tls(&with_cert));
    let mut client = server.conn(&without);
    let mut worker = server.conn(&with_cert);
    run_job(&mut client, &mut worker, "tls_echo");
    let status = client.admin("status\n");
    assert!(status.starts_with("tls_echo\t0\t0\t1\n"), "{status:?}");
    // The plaintext listener serves the same job server.
    let status = server.plain().admin("workers\n");
    assert!(status.contains(" : tls_echo"), "{status:?}");
}

#[test]
fn plaintext_client_on_a_tls_port_is_told_and_others_are_served() {
    let pki = TestPki::generate("plain");
    let tls = client_tls(&pki.ca, None);
    let server = start(&pki, &[], Probe::Tls(&tls));
    let mut plain = Conn::new(server.port());
    plain.send(Request::Echo { data: "hi".into() });
    match plain.recv() {
        Response::Error { code, text } => {
            assert_eq!(code, "TLS_REQUIRED");
            assert!(String::from_utf8_lossy(&text).contains("TLS"), "{text:?}");
        }
        other => panic!("expected ERROR TLS_REQUIRED, got {other:?}"),
    }
    assert_eq!(
        plain.recv_within(Duration::from_secs(2)),
        None,
        "then closed"
    );
    let mut admin = Conn::new(server.port());
    let line = admin.admin("status\n");
    assert!(line.starts_with("ERR TLS_REQUIRED "), "{line:?}");
    server.conn(&tls).echo_ok();
}

#[test]
fn client_refuses_expired_foreign_and_misnamed_server_certificates() {
    let pki = TestPki::generate("servercerts");
    let tls = client_tls(&pki.ca, None);
    for (server_cert, want) in [
        (pki.expired_server(), "expired"),
        (pki.foreign_server(), "UnknownIssuer"),
        (pki.misnamed_server(), "not valid for name"),
    ] {
        let server = TlsServer::start(
            Path::new(BINARY),
            &pki,
            Some(&server_cert),
            &[],
            Probe::Plain,
        );
        let why = refusal(server.port(), &tls, "127.0.0.1");
        assert!(why.contains(want), "{server_cert:?}: {why}");
        // The server is still up and serving.
        assert!(server.plain().admin("getpid\n").starts_with("OK "));
    }
    // The misnamed certificate passes when the name checked is its own, or when name
    // checks are off (what Python gear does); its CA is still checked.
    let server = TlsServer::start(
        Path::new(BINARY),
        &pki,
        Some(&pki.misnamed_server()),
        &[],
        Probe::Plain,
    );
    Conn::tls(server.port(), &tls, "elsewhere.example")
        .unwrap()
        .echo_ok();
    let skip = ClientTls::builder()
        .ca_file(&pki.ca)
        .danger_skip_server_name()
        .build()
        .unwrap();
    Conn::tls(server.port(), &skip, "127.0.0.1")
        .unwrap()
        .echo_ok();
    let skip_other_ca = ClientTls::builder()
        .ca_file(pki.other_ca())
        .danger_skip_server_name()
        .build()
        .unwrap();
    assert!(refusal(server.port(), &skip_other_ca, "127.0.0.1").contains("UnknownIssuer"));
}

#[test]
fn verify_client_refuses_missing_expired_and_foreign_client_certificates() {
    let pki = TestPki::generate("verify");
    let good = client_tls(&pki.ca, Some(&pki.client("alice")));
    let server = start(&pki, &["--ssl-verify-client"], Probe::Tls(&good));
    for (what, tls) in [
        ("none", client_tls(&pki.ca, None)),
        (
            "expired",
            client_tls(&pki.ca, Some(&pki.expired_client("old"))),
        ),
        (
            "foreign",
            client_tls(&pki.ca, Some(&pki.foreign_client("mallory"))),
        ),
    ] {
        let why = refusal(server.port(), &tls, "127.0.0.1");
        assert!(
            why.contains("alert") || why.contains("closed"),
            "{what}: {why}"
        );
        server.conn(&good).echo_ok();
    }
}

#[test]
fn offered_client_certificates_are_verified_without_verify_client() {
    let pki = TestPki::generate("optional");
    let anonymous = client_tls(&pki.ca, None);
    let server = start(&pki, &[], Probe::Tls(&anonymous));
    server.conn(&anonymous).echo_ok();
    server
        .conn(&client_tls(&pki.ca, Some(&pki.client("alice"))))
        .echo_ok();
    let foreign = client_tls(&pki.ca, Some(&pki.foreign_client("mallory")));
    let why = refusal(server.port(), &foreign, "127.0.0.1");
    assert!(why.contains("alert") || why.contains("closed"), "{why}");
}

#[test]
fn stalled_handshake_is_dropped_at_the_timeout_while_others_are_served() {
    let pki = TestPki::generate("stall");
    let tls = client_tls(&pki.ca, None);
    let server = start(&pki, &["--ssl-handshake-timeout", "1.5"], Probe::Tls(&tls));
    // A TLS record header promising a ClientHello that never comes.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01])
        .unwrap();
    let started = Instant::now();
    // Meanwhile full handshakes and jobs go through at once.
    for _ in 0..5 {
        let mut conn = server.conn(&tls);
        conn.echo_ok();
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "others waited for the stalled peer"
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = matches!(stalled.read(&mut buf), Ok(0) | Err(_));
    let waited = started.elapsed();
    assert!(closed, "the stalled peer was not dropped");
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(5),
        "dropped after {waited:?}, expected at the 1.5 s timeout"
    );
    server.conn(&tls).echo_ok();
}

#[test]
fn bad_or_missing_certificates_are_one_line_start_errors() {
    let pki = TestPki::generate("badfiles");
    let not_pem = pki.path("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let other = pki.client("other");
    let s = |p: &Path| p.display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--ssl-certificate".into(),
                "/nonexistent/cert.pem".into(),
                "--ssl-key".into(),
                s(&pki.server.key),
            ],
            "certificate /nonexistent/cert.pem: No such file".into(),
        ),
        (
            vec![
                "--ssl-certificate".into(),
                s(&not_pem),
                "--ssl-key".into(),
                s(&pki.server.key),
            ],
            format!("certificate {}: no PEM certificate", s(&not_pem)),
        ),
        (
            vec![
                "--ssl-certificate".into(),
                s(&pki.server.cert),
                "--ssl-key".into(),
                s(&not_pem),
            ],
            format!("key {}: no PEM private key", s(&not_pem)),
        ),
        (
            vec![
                "--ssl-certificate".into(),
                s(&pki.server.cert),
                "--ssl-key".into(),
                s(&other.key),
            ],
            format!(
                "certificate {} with key {}",
                s(&pki.server.cert),
                s(&other.key)
            ),
        ),
        (
            vec![
                "--ssl-certificate".into(),
                s(&pki.server.cert),
                "--ssl-key".into(),
                s(&pki.server.key),
                "--ssl-ca-file".into(),
                s(&not_pem),
            ],
            format!("CA file {}: no PEM certificate", s(&not_pem)),
        ),
        (
            vec![
                "--ssl-certificate".into(),
                s(&pki.server.cert),
                "--ssl-key".into(),
                s(&pki.server.key),
                "--ssl-verify-client".into(),
            ],
            "needs a CA file".into(),
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BINARY)
            .args(["-L", "127.0.0.1", "-p", "0", "--ssl"])
            .args(&args)
            .env_remove("GEARMAND_CA_CERTIFICATE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
}

#[test]
fn server_files_default_from_gearmand_environment_variables() {
    let pki = TestPki::generate("env");
    let tls = client_tls(&pki.ca, Some(&pki.client("alice")));
    let port = gearman_tests::free_port();
    let mut child = Command::new(BINARY)
        .args([
            "-L",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--log-file",
            "none",
            "--ssl",
            "--ssl-verify-client",
        ])
        .env("GEARMAND_SERVER_PEM", &pki.server.cert)
        .env("GEARMAND_SERVER_KEY", &pki.server.key)
        .env("GEARMAND_CA_CERTIFICATE", &pki.ca)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = gearman_tests::tls::tls_admin_pid(port, &tls) {
            break pid;
        }
        assert!(Instant::now() < deadline, "no TLS server on {port}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(pid, child.id());
}

/// `openssl s_client`, a TLS peer no one here wrote, reads a raw admin `status`.
#[test]
fn openssl_s_client_reads_admin_status() {
    let pki = TestPki::generate("openssl");
    let client = pki.client("operator");
    let tls = client_tls(&pki.ca, Some(&client));
    let server = start(&pki, &["--ssl-verify-client"], Probe::Tls(&tls));
    let mut worker = server.conn(&tls);
    worker.send(Request::CanDo {
        function: "via_openssl".into(),
    });
    worker.echo_ok();
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .arg("-CAfile")
        .arg(&pki.ca)
        .arg("-cert")
        .arg(&client.cert)
        .arg("-key")
        .arg(&client.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is required (.ci/install-20-tls.sh)");
    child.stdin.take().unwrap().write_all(b"status\n").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("\n.\n") {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = reader.join().unwrap();
    assert_eq!(seen, "via_openssl\t0\t0\t1\n.\n");
}

const PYTHON_GEAR_TLS: &str = r#"
import sys, threading, time, gear
port, key, cert, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
worker = gear.Worker('py-tls-worker')
worker.addServer('127.0.0.1', port, ssl_key=key, ssl_cert=cert, ssl_ca=ca)
worker.waitForServer()
worker.registerFunction('py_tls_double')
def work():
    job = worker.getJob()
    job.sendWorkComplete(job.arguments * 2)
threading.Thread(target=work, daemon=True).start()
client = gear.Client('py-tls-client')
client.addServer('127.0.0.1', port, ssl_key=key, ssl_cert=cert, ssl_ca=ca)
client.waitForServer()
job = gear.Job(b'py_tls_double', b'tls')
client.submitJob(job)
deadline = time.time() + 20
while not job.complete and time.time() < deadline:
    time.sleep(0.01)
print(b''.join(job.data).decode())
worker.shutdown(); client.shutdown()
"#;

/// Python `gear` (a TLS peer no one here wrote) as client and worker, with and without
/// --ssl-verify-client. gear always presents a client certificate, uses TLS 1.2, and
/// verifies the server against its CA without a name check.
#[test]
fn python_gear_client_and_worker_over_tls() {
    let pki = TestPki::generate("gear");
    let cert = pki.client("gear");
    let tls = client_tls(&pki.ca, Some(&cert));
    for extra in [&[][..], &["--ssl-verify-client"][..]] {
        let server = start(&pki, extra, Probe::Tls(&tls));
        let args = [
            server.port().to_string(),
            cert.key.display().to_string(),
            cert.cert.display().to_string(),
            pki.ca.display().to_string(),
        ];
        let mut argv = vec!["-c", PYTHON_GEAR_TLS];
        argv.extend(args.iter().map(String::as_str));
        let out = gearman_tests::run("python3", &argv, b"", Duration::from_secs(30));
        assert_eq!(
            gearman_tests::stdout(&out).trim(),
            "tlstls",
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

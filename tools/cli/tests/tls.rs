//! `-S` on gearman-rs and gearadmin-rs: TLS with gearmand's client variables
//! (`GEARMAND_CA_CERTIFICATE`, `GEARMAN_CLIENT_PEM`, `GEARMAN_CLIENT_KEY`) against
//! gearmand-rs `--ssl --ssl-verify-client`: a worker and a client run a job and gearadmin
//! reads status, all over TLS; a missing client certificate and a server from another CA
//! are refused with the reason. Certificates come from `gearman_tests::certs`.

use gearman_tests::certs::{CertFiles, TestPki};
use gearman_tests::tls::{client_tls, Probe, TlsServer};
use gearman_tests::{gearmand_rs_binary, run};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const GEARMAN_RS: &str = env!("CARGO_BIN_EXE_gearman-rs");
const GEARADMIN_RS: &str = env!("CARGO_BIN_EXE_gearadmin-rs");
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `tool ARGS` with exactly these of gearmand's variables set (through `env`).
fn with_env(tool: &str, ca: &Path, cert: Option<&CertFiles>, args: &[&str]) -> Output {
    let mut argv = vec![
        "-u".to_string(),
        "GEARMAN_CLIENT_PEM".into(),
        "-u".into(),
        "GEARMAN_CLIENT_KEY".into(),
        format!("GEARMAND_CA_CERTIFICATE={}", ca.display()),
    ];
    if let Some(c) = cert {
        argv.push(format!("GEARMAN_CLIENT_PEM={}", c.cert.display()));
        argv.push(format!("GEARMAN_CLIENT_KEY={}", c.key.display()));
    }
    argv.push(tool.into());
    argv.extend(args.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run("env", &argv, b"", LIMIT)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Waits (bounded) until `function` has a worker, as the plaintext listener reports.
fn wait_for_worker(server: &TlsServer, function: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = format!("{function}\t");
    while Instant::now() < deadline {
        let status = server.plain().admin("status\n");
        if status
            .lines()
            .any(|l| l.starts_with(&line) && !l.ends_with("\t0"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no worker for {function} within 10 s");
}

#[test]
fn ssl_flag_uses_gearmands_client_variables() {
    let pki = TestPki::generate("cli");
    let alice = pki.client("alice");
    let server = TlsServer::start(
        &gearmand_rs_binary(),
        &pki,
        None,
        &["--ssl-verify-client"],
        Probe::Tls(&client_tls(&pki.ca, Some(&alice))),
    );
    let port = server.port().to_string();
    let base = ["-S", "-h", "127.0.0.1", "-p", port.as_str()];
    let (ca, worker_cert) = (pki.ca.clone(), alice.clone());
    let worker_args: Vec<String> = base
        .iter()
        .chain(&["-w", "-f", "upper", "-c", "1", "--", "tr", "a-z", "A-Z"])
        .map(|s| s.to_string())
        .collect();
    let worker = std::thread::spawn(move || {
        let args: Vec<&str> = worker_args.iter().map(String::as_str).collect();
        with_env(GEARMAN_RS, &ca, Some(&worker_cert), &args)
    });
    wait_for_worker(&server, "upper");

    let status = with_env(
        GEARADMIN_RS,
        &pki.ca,
        Some(&alice),
        &[&base[..], &["--status"]].concat(),
    );
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("upper\t0\t0\t1"),
        "{}",
        text(&status.stdout)
    );

    let client = with_env(
        GEARMAN_RS,
        &pki.ca,
        Some(&alice),
        &[&base[..], &["-f", "upper", "hello"]].concat(),
    );
    assert!(client.status.success(), "{}", text(&client.stderr));
    assert_eq!(text(&client.stdout), "HELLO");
    let worker = worker.join().expect("worker thread");
    assert!(worker.status.success(), "worker: {}", text(&worker.stderr));

    // No client certificate: refused, and the reason is printed.
    let refused = with_env(
        GEARMAN_RS,
        &pki.ca,
        None,
        &[&base[..], &["-f", "upper", "x"]].concat(),
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("CertificateRequired"),
        "{}",
        text(&refused.stderr)
    );
    let refused = with_env(
        GEARADMIN_RS,
        &pki.ca,
        None,
        &[&base[..], &["--status"]].concat(),
    );
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.starts_with("Error: Error connecting to 127.0.0.1.\n"),
        "{stderr}"
    );
    assert!(stderr.contains("CertificateRequired"), "{stderr}");
    // Trusting another CA: the server's certificate is refused.
    let other = pki.other_ca();
    let refused = with_env(
        GEARMAN_RS,
        &other,
        Some(&alice),
        &[&base[..], &["-f", "upper", "x"]].concat(),
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("UnknownIssuer"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn ssl_flag_with_a_bad_variable_is_a_one_line_error() {
    let out = run(
        "env",
        &[
            "-u",
            "GEARMAN_CLIENT_KEY",
            "GEARMAN_CLIENT_PEM=/nonexistent.pem",
            GEARMAN_RS,
            "-S",
            "-f",
            "f",
            "x",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "gearman-rs: TLS settings: GEARMAN_CLIENT_PEM is set but GEARMAN_CLIENT_KEY is not\n"
    );
}

//! Interop scenarios with real Gearman peers, written once and run against any server:
//! `server/tests/interop_peers.rs` runs them on gearmand-rs, and
//! `tests/tests/interop_gearmand.rs` on the C gearmand 1.1.20, which shows each scenario
//! states behaviour gearmand shares (a scenario that only our server passes would be
//! testing our quirks, not compatibility).
//!
//! Every peer must be installed (.ci/run does it); a missing peer fails the scenario.

use crate::{run, stdout, temp_dir, wait_for_workers, Peer, ServerProcess, TempDir};
use std::time::Duration;

/// Time limit for one peer program.
const LIMIT: Duration = Duration::from_secs(30);

/// The `gearman` CLI as worker (`-w`) and as client, foreground and background.
pub fn gearman_cli_client_and_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    let _worker = Peer::spawn("gearman", &["-p", &port, "-w", "-f", "rev", "--", "rev"]);
    wait_for_workers(server, "rev", 1);
    for word in ["hello", "gearman"] {
        let out = run(
            "gearman",
            &["-p", &port, "-f", "rev"],
            word.as_bytes(),
            LIMIT,
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out).trim(), word.chars().rev().collect::<String>());
    }
    // Background submission through the CLI, picked up by the same worker.
    let out = run("gearman", &["-p", &port, "-b", "-f", "rev"], b"bg", LIMIT);
    assert!(out.status.success(), "{out:?}");
}

/// gearadmin's --status, --workers, --server-version, --getpid and --priority-status, and
/// the `maxqueue` text command. `version` is what the server should report.
pub fn gearadmin_reads_admin_replies(server: &ServerProcess, version: &str) {
    let port = server.port.to_string();
    let _worker = Peer::spawn("gearman", &["-p", &port, "-w", "-f", "adm", "--", "cat"]);
    wait_for_workers(server, "adm", 1);
    let status = stdout(&run("gearadmin", &["-p", &port, "--status"], b"", LIMIT));
    assert_eq!(status, "adm\t0\t0\t1\n.\n");
    let workers = stdout(&run("gearadmin", &["-p", &port, "--workers"], b"", LIMIT));
    // `FD IP CLIENT_ID : FUNCTIONS`, one line per connection (gearadmin's own is listed too).
    let worker_line = workers.lines().find(|l| l.ends_with(" : adm"));
    let fields: Vec<&str> = worker_line
        .and_then(|l| l.strip_suffix(" : adm"))
        .map(|l| l.split(' ').collect())
        .unwrap_or_default();
    assert!(
        matches!(fields.as_slice(), [fd, "127.0.0.1", id]
            if fd.parse::<u64>().is_ok() && !id.is_empty()),
        "{workers}"
    );
    assert!(workers.ends_with(".\n"));
    let reported = stdout(&run(
        "gearadmin",
        &["-p", &port, "--server-version"],
        b"",
        LIMIT,
    ));
    assert_eq!(reported.trim(), version);
    let pid = stdout(&run("gearadmin", &["-p", &port, "--getpid"], b"", LIMIT));
    assert_eq!(pid.trim(), server.child.id().to_string());
    // maxqueue has no gearadmin flag; scripts send it as text.
    assert_eq!(server.conn().admin("maxqueue adm 1\r\n"), "OK\r\n");
    let prio = stdout(&run(
        "gearadmin",
        &["-p", &port, "--priority-status"],
        b"",
        LIMIT,
    ));
    assert_eq!(prio, "adm\t0\t0\t0\t1\n.\n");
}

fn gearadmin(server: &ServerProcess, args: &[&str]) -> String {
    let port = server.port.to_string();
    let mut all = vec!["-p", port.as_str()];
    all.extend_from_slice(args);
    let out = run("gearadmin", &all, b"", LIMIT);
    assert!(out.status.success(), "gearadmin {args:?}: {out:?}");
    // gearadmin prints replies on stdout and `Error: ...` for ERR replies on stderr.
    stdout(&out) + &String::from_utf8_lossy(&out.stderr)
}

/// gearadmin's --show-jobs, --show-unique-jobs, --cancel-job, --create-function,
/// --drop-function and --server-verbose, with queued background jobs. `level` is the
/// server's default verbose level.
pub fn gearadmin_manages_jobs_and_functions(server: &ServerProcess, level: &str) {
    let port = server.port.to_string();
    for unique in ["u1", "u2"] {
        let out = run(
            "gearman",
            &["-p", &port, "-b", "-f", "adm_bg", "-u", unique],
            b"x",
            LIMIT,
        );
        assert!(out.status.success(), "{out:?}");
    }
    assert!(gearadmin(server, &["--status"]).contains("adm_bg\t2\t0\t0\n"));
    let uniques = gearadmin(server, &["--show-unique-jobs"]);
    let mut listed: Vec<&str> = uniques.lines().collect();
    listed.sort_unstable();
    assert_eq!(listed, [".", "u1", "u2"], "{uniques}");
    // HANDLE RETRIES IGNORE QUEUED; background jobs are held by the (builtin) queue module.
    let jobs = gearadmin(server, &["--show-jobs"]);
    let handles: Vec<&str> = jobs
        .lines()
        .filter(|l| *l != ".")
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(
                f.len() == 4 && f[0].starts_with("H:") && f[1] == "0" && f[2] == "0" && f[3] == "1",
                "{jobs}"
            );
            f[0]
        })
        .collect();
    assert_eq!(handles.len(), 2, "{jobs}");
    assert!(jobs.ends_with(".\n"), "{jobs}");
    assert_eq!(
        gearadmin(server, &["--cancel-job", handles[0]]).trim(),
        "OK"
    );
    // The cancelled job is gone or listed as ignored (gearmand keeps it, and counts it in
    // `status`, until a worker's grab reaches it); the other is untouched.
    let after = gearadmin(server, &["--show-jobs"]);
    assert!(
        after.contains(&format!("{}\t0\t0\t", handles[1])),
        "{after}"
    );
    assert!(
        !after.contains(&format!("{}\t0\t0\t", handles[0])),
        "{after}"
    );
    assert!(gearadmin(server, &["--cancel-job", "H:none:1"]).contains("UNKNOWN_JOB"));
    assert_eq!(
        gearadmin(server, &["--create-function", "adm_new"]).trim(),
        "OK"
    );
    assert!(gearadmin(server, &["--status"]).contains("adm_new\t0\t0\t0\n"));
    assert_eq!(
        gearadmin(server, &["--drop-function", "adm_new"]).trim(),
        "OK"
    );
    assert!(!gearadmin(server, &["--status"]).contains("adm_new"));
    assert!(gearadmin(server, &["--drop-function", "adm_none"]).contains("function not found"));
    assert_eq!(gearadmin(server, &["--server-verbose"]).trim(), level);
}

const PHP_WORKER: &str = r#"
$w = new GearmanWorker();
$w->addServer('127.0.0.1', (int)$argv[1]);
$w->addFunction('php_rev', function ($job) { return strrev($job->workload()); });
$w->addFunction('php_chatty', function ($job) {
    $job->sendStatus(1, 2);
    $job->sendData('d1');
    $job->sendWarning('w1');
    return 'done';
});
$w->addFunction('php_fail', function ($job) { $job->sendFail(); return ''; });
$w->addFunction('php_exc', function ($job) { $job->sendException('boom'); return ''; });
$w->addFunction('php_slow', function ($job) { usleep(300000); return 'slow'; });
while ($w->work());
"#;

const PHP_CLIENT: &str = r#"
$c = new GearmanClient();
$c->addServer('127.0.0.1', (int)$argv[1]);
$c->setTimeout(20000);
echo 'normal=', $c->doNormal('php_rev', 'abc'), "\n";
echo 'high=', $c->doHigh('php_rev', 'def'), "\n";
echo 'low=', $c->doLow('php_rev', 'ghi'), "\n";
$h = $c->doBackground('php_slow', 'x');
echo 'bg=', $c->returnCode() == GEARMAN_SUCCESS ? 'ok' : 'bad', "\n";
$st = $c->jobStatus($h);
echo 'status_known=', $st[0] ? 1 : 0, "\n";
$log = [];
$c->setStatusCallback(function ($t) use (&$log) { $log[] = 'status:' . $t->taskNumerator() . '/' . $t->taskDenominator(); });
$c->setDataCallback(function ($t) use (&$log) { $log[] = 'data:' . $t->data(); });
$c->setWarningCallback(function ($t) use (&$log) { $log[] = 'warning:' . $t->data(); });
$c->setCompleteCallback(function ($t) use (&$log) { $log[] = 'complete:' . $t->functionName() . ':' . $t->data(); });
$c->setFailCallback(function ($t) use (&$log) { $log[] = 'fail:' . $t->functionName(); });
$c->setExceptionCallback(function ($t) use (&$log) { $log[] = 'exception:' . $t->data(); });
$c->addTask('php_chatty', 'x');
$c->addTask('php_fail', 'x');
$c->addTask('php_exc', 'x');
$c->runTasks();
sort($log);
echo implode(',', $log), "\n";
"#;

/// `script` written to a file in a directory of its own; the directory is removed when the
/// returned [`TempDir`] is dropped.
fn php(script: &str, label: &str) -> (TempDir, String) {
    let dir = temp_dir(&format!("php-{label}"));
    let path = dir.path().join("script.php");
    std::fs::write(&path, format!("<?php\n{script}")).unwrap();
    (dir, path.to_string_lossy().into_owned())
}

/// PHP pecl-gearman: doNormal/doHigh/doLow, doBackground + jobStatus, and addTask/runTasks
/// with status, data, warning, complete, fail and exception callbacks.
pub fn php_pecl_client_and_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    // The scripts' directories outlive the PHP processes (locals drop in reverse order).
    let (_worker_dir, worker_script) = php(PHP_WORKER, "w");
    let _worker = Peer::spawn("php", &[&worker_script, &port]);
    wait_for_workers(server, "php_exc", 1);
    let (_client_dir, client_script) = php(PHP_CLIENT, "c");
    let out = run("php", &[&client_script, &port], b"", LIMIT);
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "normal=cba",
            "high=fed",
            "low=ihg",
            "bg=ok",
            "status_known=1",
            "complete:php_chatty:done,data:d1,exception:boom,fail:php_fail,status:1/2,warning:w1",
        ],
        "{text}"
    );
    // PECL enables the exceptions option, so php_exc reaches only the exception callback
    // (gearmand 1.1.20 gives the same line for these scripts).
}

const PERL_WORKER: &str = r#"
use strict; use Gearman::Worker;
my $w = Gearman::Worker->new(job_servers => ["127.0.0.1:$ARGV[0]"]);
$w->register_function(perl_up => sub { uc $_[0]->arg });
$w->work while 1;
"#;

const PERL_CLIENT: &str = r#"
use strict; use Gearman::Client;
my $c = Gearman::Client->new(job_servers => ["127.0.0.1:$ARGV[0]"]);
my $r = $c->do_task(perl_up => "hello perl", { timeout => 20 });
print $r ? $$r : "no result", "\n";
"#;

/// Perl Gearman::Client and Gearman::Worker.
pub fn perl_gearman_client_and_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    let _worker = Peer::spawn("perl", &["-e", PERL_WORKER, &port]);
    wait_for_workers(server, "perl_up", 1);
    let out = run("perl", &["-e", PERL_CLIENT, &port], b"", LIMIT);
    assert_eq!(stdout(&out).trim(), "HELLO PERL", "{out:?}");
}

const PYTHON: &str = r#"
import sys, threading, gear
port = int(sys.argv[1])
worker = gear.Worker('py-worker')
worker.addServer('127.0.0.1', port)
worker.waitForServer()
worker.registerFunction('py_double')
def work():
    job = worker.getJob()
    job.sendWorkComplete(job.arguments * 2)
threading.Thread(target=work, daemon=True).start()
client = gear.Client('py-client')
client.addServer('127.0.0.1', port)
client.waitForServer()
job = gear.Job(b'py_double', b'ab')
client.submitJob(job)
import time
deadline = time.time() + 20
while not job.complete and time.time() < deadline:
    time.sleep(0.01)
print(b''.join(job.data).decode())
worker.shutdown(); client.shutdown()
"#;

/// Python `gear` client and worker.
pub fn python_gear_client_and_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    let out = run("python3", &["-c", PYTHON, &port], b"", LIMIT);
    assert_eq!(stdout(&out).trim(), "abab", "{out:?}");
}

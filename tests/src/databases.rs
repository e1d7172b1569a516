//! Throwaway PostgreSQL and Redis servers for the durable queue tests: each on a free
//! 127.0.0.1 port with a temporary data directory, stopped and removed on drop.
//!
//! They come from Debian's `postgresql` and `redis-server` packages
//! (`.ci/install-20-postgres-redis.sh`); a missing program panics, so a test that needs a
//! database fails instead of skipping. PostgreSQL refuses to run as root: when the tests run
//! as root, the cluster belongs to the `postgres` user and runs under `runuser`.

use crate::{free_port, temp_dir, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres` (Debian keeps them out of PATH).
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is required (no /usr/lib/postgresql/*/bin/initdb): run \
             .ci/install-20-postgres-redis.sh"
        )
    })
}

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0"
}

/// A PostgreSQL cluster of its own, stopped (immediately) and deleted on drop.
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Removed when the struct is dropped, after `Drop::drop` has stopped the cluster.
    dir: TempDir,
    bin: PathBuf,
    /// `Some(user)` when the cluster runs as another user (the tests run as root).
    run_as: Option<&'static str>,
}

impl Postgres {
    /// The database user the cluster was created with (trust authentication on loopback).
    pub const USER: &'static str = "gearman";

    /// initdb, then start it on a free port (retrying on another port if a parallel test
    /// took that one first).
    pub fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = temp_dir("pg");
        let run_as = running_as_root().then_some("postgres");
        if let Some(user) = run_as {
            let path = dir.path();
            let status = output(Command::new("chown").args(["-R", user, &path.to_string_lossy()]));
            assert!(
                status.status.success(),
                "chown {}: {status:?}",
                path.display()
            );
        }
        let mut pg = Postgres {
            port: 0,
            dir,
            bin,
            run_as,
        };
        let data = pg.data_dir();
        let init = pg.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                Self::USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        );
        assert!(init.status.success(), "initdb failed: {}", describe(&init));
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.try_start() {
                Ok(()) => return pg,
                Err(why) => last = why,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => output(
                Command::new("runuser")
                    .args(["-u", user, "--"])
                    .arg(&path)
                    .args(args),
            ),
            None => output(Command::new(&path).args(args)),
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.data_dir();
        // fsync off: these clusters are thrown away, and the tests are about gearmand-rs's
        // acknowledgements, which PostgreSQL gives after its commit either way.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "20",
                "start",
            ],
        );
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        Err(format!("{}\n{log}", describe(&out)))
    }

    /// Starts it again after [`Postgres::stop`], on the same port and data.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.try_start() {
                Ok(()) => return,
                Err(why) if Instant::now() >= deadline => panic!("PostgreSQL restart: {why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops it at once (`pg_ctl stop -m immediate`: connections are cut, as in a crash).
    pub fn stop(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop: {}", describe(&out));
    }

    /// A libpq connection string for it (gearmand's `--libpq-conninfo` format).
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} dbname=postgres",
            self.port,
            Self::USER
        )
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let out = output(
            Command::new(&psql)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(self.conninfo())
                .args(["-c", sql]),
        );
        assert!(out.status.success(), "psql {sql:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ],
        );
        // The directory goes with `self.dir`.
    }
}

/// A `redis-server` of its own with the append-only file on, killed and deleted on drop.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Removed when the struct is dropped, after `Drop::drop` has killed the server.
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port (retrying on another port if a parallel test took it).
    pub fn start() -> Redis {
        let mut redis = Redis {
            port: 0,
            dir: temp_dir("redis"),
            child: None,
        };
        let mut last = String::new();
        for _ in 0..5 {
            redis.port = free_port();
            match redis.try_start() {
                Ok(()) => return redis,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn try_start(&mut self) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server is required ({e}): run .ci/install-20-postgres-redis.sh")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server exited with {status}: {log}"));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server did not answer on {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it (SIGKILL); [`Redis::restart`] starts it again on the same port and data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Redis::kill`].
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.try_start() {
                Ok(()) => return,
                Err(why) if Instant::now() >= deadline => panic!("redis restart: {why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Runs a command with `redis-cli` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = output(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(args),
        );
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The data directory (holds the append-only file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        // The directory goes with `self.dir`.
    }
}

/// Whether a Redis server answers PING on 127.0.0.1:`port`.
fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn describe(out: &Output) -> String {
    format!(
        "{}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

//! Starts a job server for a test: C gearmand 1.1.20 by default, or our gearmand-rs when
//! `GEARMAN_TEST_SERVER=rs` (path from `GEARMANDRS_BIN`, else target/{debug,release}).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process listening on 127.0.0.1, killed on drop.
pub struct TestServer {
    child: Child,
    pub port: u16,
    _dir: PathBuf,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

fn binary() -> (PathBuf, bool) {
    if std::env::var("GEARMAN_TEST_SERVER").as_deref() == Ok("rs") {
        let path = std::env::var_os("GEARMANDRS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
                let target =
                    std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
                ["debug", "release"]
                    .iter()
                    .map(|p| target.join(p).join("gearmand-rs"))
                    .find(|p| p.exists())
                    .expect("GEARMAN_TEST_SERVER=rs but no gearmand-rs binary found")
            });
        (path, true)
    } else {
        let path = PathBuf::from("/usr/sbin/gearmand");
        assert!(
            path.exists(),
            "/usr/sbin/gearmand (C gearmand 1.1.20) is required"
        );
        (path, false)
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> TestServer {
        let (bin, _ours) = binary();
        let dir = std::env::temp_dir().join(format!("gearman-test-{}-{port}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg("--log-file=none")
            .arg("--threads=1")
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the job server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "job server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TestServer {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

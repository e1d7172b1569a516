//! A Unix-socket front for a TCP job server, so the adapters' Unix transport runs against
//! gearmand 1.1.20 (which has no Unix listener) as well as gearmand-rs. Each accepted
//! connection is copied both ways to a fresh TCP connection; dropping the relay stops
//! accepting and removes the socket file.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct UnixRelay {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl UnixRelay {
    /// Listens on a fresh socket path and relays to `tcp` (`host:port`).
    pub fn to(tcp: String) -> UnixRelay {
        let path = std::env::temp_dir().join(format!("{}.sock", super::fresh_tag("relay")));
        let listener = UnixListener::bind(&path).expect("bind unix socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((unix, _)) => relay(unix, &tcp),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("unix accept: {e}"),
                }
            }
        });
        UnixRelay { path, stop }
    }

    /// The address the adapters take: `unix:/path`.
    pub fn addr(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

impl Drop for UnixRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn relay(unix: UnixStream, tcp: &str) {
    unix.set_nonblocking(false).expect("blocking unix stream");
    let tcp = TcpStream::connect(tcp).expect("relay connects to the server");
    tcp.set_nodelay(true).expect("nodelay");
    let (unix2, tcp2) = (
        unix.try_clone().expect("clone"),
        tcp.try_clone().expect("clone"),
    );
    std::thread::spawn(move || copy(unix, tcp, |t| t.shutdown(Shutdown::Write)));
    std::thread::spawn(move || copy(tcp2, unix2, |u| u.shutdown(Shutdown::Write)));
}

/// Copies until `from` ends or fails, then closes `to`'s write side.
fn copy<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W) -> std::io::Result<()>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = close(&to);
}

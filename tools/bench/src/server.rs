//! Starting a job server on a free loopback port for `--compare`, and stopping it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process listening on 127.0.0.1:`port`, killed on drop.
pub(crate) struct Server {
    /// Its port.
    pub(crate) port: u16,
    child: Child,
}

impl Server {
    /// Starts `binary -L 127.0.0.1 -p PORT --log-file none EXTRA...` (both gearmand and
    /// gearmand-rs take these flags) and waits up to 10 s until the admin `getpid` on the
    /// port names our child.
    pub(crate) fn start(binary: &Path, extra: &[String]) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
            .port();
        let mut command = Command::new(binary);
        command
            .args([
                "-L",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--log-file",
                "none",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group: a Ctrl-C at the terminal reaches only this tool, which
            // stops the run, reports, then stops the server.
            .process_group(0);
        // SAFETY: the closure calls only prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(die_with_parent);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut server = Server { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin_pid(port) != Some(server.child.id()) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{} exited with {status}", binary.display()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not listen on {port} within 10 s",
                    binary.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// For `pre_exec`: SIGKILL the server when this tool dies, however it dies (SIGKILL
/// included), so no server is left listening. Tied to the thread that started it: the
/// servers are started from the main thread, which lives as long as the tool.
fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn admin_pid(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"getpid\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.trim().strip_prefix("OK ")?.parse().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

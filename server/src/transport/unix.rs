//! Unix domain socket listeners (`-L unix:/path`, `--unix-socket PATH`).
//!
//! Binding replaces a stale socket file (one nobody accepts on any more, left by a server
//! that was killed) but refuses a live socket or a file that is not a socket. The file's
//! mode (`--unix-socket-mode`) is set before the socket listens, so no one connects under a
//! looser mode. The file is removed when the listener is dropped (at exit), if it is still
//! the one we bound. Peers are identified by their uid (`SO_PEERCRED`).

use super::{Accepted, BoxFuture, ListenAddr, Listener, Peer, Stream};
use crate::StartError;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes on Linux, with
/// the terminating NUL).
const MAX_PATH_BYTES: usize = 107;

/// The socket file we created; dropping it removes the file unless another server has
/// replaced it since.
struct SocketFile {
    path: PathBuf,
    /// (device, inode) of our file.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("cannot remove socket file {}: {e}", self.path.display());
            }
        }
    }
}

/// A bound, listening Unix socket, not yet registered with a runtime.
pub(crate) struct BoundUnix {
    socket: std::os::unix::net::UnixListener,
    file: SocketFile,
}

impl BoundUnix {
    /// Binds `path`, sets the file's permission bits to `mode` when given (otherwise the
    /// umask decides), then listens. Errors are one line naming the path.
    pub(crate) fn bind(path: &Path, backlog: u32, mode: Option<u32>) -> Result<Self, StartError> {
        let fail = |what: &dyn std::fmt::Display| {
            StartError(format!("cannot listen on unix:{}: {what}", path.display()))
        };
        let len = path.as_os_str().len();
        if len == 0 {
            return Err(fail(&"the socket path is empty"));
        }
        if len > MAX_PATH_BYTES {
            return Err(fail(&format!(
                "the path is {len} bytes, longer than the {MAX_PATH_BYTES} a Unix socket address holds"
            )));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(fail(&format!("directory {} does not exist", dir.display())));
            }
        }
        remove_stale(path).map_err(|e| fail(&e))?;
        let addr = SockAddr::unix(path).map_err(|e| fail(&e))?;
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| fail(&e))?;
        socket.bind(&addr).map_err(|e| fail(&e))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| fail(&e))?;
        // From here on the guard removes the file again should anything fail.
        let file = SocketFile {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        };
        if let Some(mode) = mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| fail(&format_args!("cannot set mode {mode:o}: {e}")))?;
        }
        socket
            .listen(i32::try_from(backlog).unwrap_or(i32::MAX))
            .map_err(|e| fail(&e))?;
        socket.set_nonblocking(true).map_err(|e| fail(&e))?;
        Ok(BoundUnix {
            socket: socket.into(),
            file,
        })
    }

    /// Registers the socket with the runtime (inside it).
    pub(crate) fn into_listener(self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            inner: tokio::net::UnixListener::from_std(self.socket)?,
            file: self.file,
        })
    }
}

/// Removes `path` if it is a socket nobody listens on; refuses a live socket or any other
/// kind of file.
fn remove_stale(path: &Path) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Err("the file exists and is not a socket (refusing to replace it)".into());
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err("address in use: another server is listening on it".into()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("replacing stale socket file {}", path.display());
            std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket: {e}"))
        }
        Err(e) => Err(format!("the socket file exists and cannot be checked: {e}")),
    }
}

/// A listening Unix socket that removes its file when dropped.
pub(crate) struct UnixListener {
    inner: tokio::net::UnixListener,
    file: SocketFile,
}

impl Listener for UnixListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, _) = self.inner.accept().await?;
            let uid = stream.peer_cred().ok().map(|c| c.uid());
            Ok(Accepted::new(Stream::Unix(stream), Peer::Unix { uid }))
        })
    }

    fn local_addr(&self) -> ListenAddr {
        ListenAddr::Unix(self.file.path.clone())
    }
}

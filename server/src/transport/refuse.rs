//! Turning a connection away with a reason the peer can read: an ERROR packet for a binary
//! Gearman client, an `ERR` line for an admin client, told apart by the first byte.

use super::Stream;
use bytes::Bytes;
use gearman_core::proto::{Packet, Response};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a refused peer gets to send its first bytes, and to read the refusal.
const PATIENCE: Duration = Duration::from_millis(500);

/// The refusal `code` / `text` in the dialect of a peer whose first byte is `first`: a
/// binary request (`\0REQ`) gets an ERROR packet, an admin line an `ERR` line (spaces as
/// `+`, as gearmand writes them). `None` when the byte is neither.
pub(crate) fn gearman_refusal(first: u8, code: &str, text: &str) -> Option<Vec<u8>> {
    match first {
        0 => Some(binary(code, text)),
        b if b.is_ascii_alphabetic() => {
            Some(format!("ERR {code} {}\r\n", text.replace(' ', "+")).into_bytes())
        }
        _ => None,
    }
}

/// An ERROR packet.
fn binary(code: &str, text: &str) -> Vec<u8> {
    let code = Bytes::copy_from_slice(code.as_bytes());
    let text = Bytes::copy_from_slice(text.as_bytes());
    Response::Error { code, text }.to_bytes().to_vec()
}

/// Answers `stream` with the refusal and closes it, in a task of its own (bounded in time).
pub(crate) fn spawn_refusal(stream: Stream, code: &'static str, text: String) {
    tokio::spawn(async move {
        match stream {
            Stream::Tcp(s) => refuse(s, code, &text).await,
            #[cfg(unix)]
            Stream::Unix(s) => refuse(s, code, &text).await,
            Stream::Other(s) => refuse(s, code, &text).await,
        }
    });
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, code: &str, text: &str) {
    let mut buf = [0u8; 512];
    // Gearman peers speak first; silence gets the binary form.
    let first = match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => buf[0],
        _ => 0,
    };
    let reply = gearman_refusal(first, code, text).unwrap_or_else(|| binary(code, text));
    let sent = async {
        stream.write_all(&reply).await?;
        stream.shutdown().await
    };
    if tokio::time::timeout(PATIENCE, sent).await.is_err() {
        return;
    }
    // Read what the peer still sends until it closes: closing with unread input would
    // reset the connection and could discard the refusal before the peer reads it.
    let _ = tokio::time::timeout(PATIENCE, async {
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

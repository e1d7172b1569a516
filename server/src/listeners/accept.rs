//! One accept task per listener: each connection goes to the core task, through a TLS
//! handshake first on a TLS listener. The handshake runs in the connection's own task, so a
//! slow or stalled peer holds up nobody else.

use crate::core_channel::ToCore;
use crate::log_limit::{repeats_note, LogLimiter};
use crate::tls::TlsListener;
use crate::transport::Listener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Failed accepts (out of descriptors, mostly) are logged once per interval.
static ACCEPT_FAILED: LogLimiter = LogLimiter::new(Duration::from_secs(10));

/// How long the accept loop waits after a failed accept instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Starts accepting on `listener`. Aborting the task drops the listener, which stops
/// listening (and removes a Unix socket file).
pub(crate) fn spawn(
    mut listener: Box<dyn Listener>,
    tls: Option<Arc<TlsListener>>,
    to_core: mpsc::Sender<ToCore>,
) -> JoinHandle<()> {
    let kind = if tls.is_some() { "TLS" } else { "plaintext" };
    tracing::info!("listening on {} ({kind})", listener.local_addr());
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok(accepted) => match &tls {
                    None => {
                        if to_core.send(ToCore::Accepted(accepted)).await.is_err() {
                            return;
                        }
                    }
                    Some(tls) => {
                        let (tls, to_core) = (tls.clone(), to_core.clone());
                        tokio::spawn(async move {
                            if let Some(done) = tls.handshake(accepted).await {
                                let _ = to_core.send(ToCore::Accepted(done)).await;
                            }
                        });
                    }
                },
                Err(e) => {
                    if let Some(repeats) = ACCEPT_FAILED.check() {
                        tracing::warn!("accept failed: {e}{}", repeats_note(repeats));
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}

//! The admin client on this runtime: gearmand's text protocol (`status`, `workers`,
//! `show jobs`, ...) with typed replies. See [`gearman_async::admin`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), gearman_async_std::admin::AdminError> {
//! let mut admin = gearman_async_std::admin::client("127.0.0.1:4730");
//! for row in admin.status().await? {
//!     println!("{:?}: {} queued, {} workers", row.function, row.total, row.workers);
//! }
//! # Ok(()) }
//! ```

pub use gearman_async::admin::*;

/// An admin client on this runtime.
pub type AdminClient = gearman_async::admin::AdminClient<crate::AsyncIoRuntime>;

/// An admin client for the server at `addr` (`host:port`, `[v6]:port` or `unix:/path`),
/// connecting on first use.
pub fn client(addr: impl Into<String>) -> AdminClient {
    AdminClient::new(crate::AsyncIoRuntime, crate::AsyncIoConnector, addr)
}

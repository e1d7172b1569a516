//! Builder methods every adapter's client and worker builders share, written once so the
//! names, arguments and docs cannot drift apart (`gearman-blocking` mirrors the async
//! builders).

/// The client builder methods that only fill in options: expands inside an `impl` of a
/// builder with `addrs: Vec<String>`, `options: ClientOptions` and
/// `connector: Arc<dyn $connector>` fields.
#[doc(hidden)]
#[macro_export]
macro_rules! __client_builder_methods {
    ($connector:path) => {
        /// Adds a server (`host:port`, `[v6]:port` or `unix:/path`, see
        /// [`ServerAddr`]($crate::ServerAddr)); the first added is tried first.
        /// A malformed address fails like an unreachable server.
        pub fn server(mut self, addr: impl Into<String>) -> Self {
            self.addrs.push(addr.into());
            self
        }

        /// Adds several servers, in order (see [`server`](Self::server)).
        pub fn servers<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
            self.addrs.extend(addrs.into_iter().map(Into::into));
            self
        }

        /// Replaces the connector (how a stream to a server is opened: TLS plugs in here).
        pub fn connector(mut self, connector: impl $connector + 'static) -> Self {
            self.connector = std::sync::Arc::new(connector);
            self
        }

        /// How to pick a server per submission.
        pub fn selection(mut self, selection: $crate::Selection) -> Self {
            self.options.selection = selection;
            self
        }

        /// Default timeout for every call.
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.timeout = Some(timeout);
            self
        }

        /// Sets the id shown by the admin `workers` command.
        pub fn client_id(mut self, id: impl Into<::bytes::Bytes>) -> Self {
            self.options.config.client_id = Some(id.into());
            self
        }

        /// Turns on the `exceptions` option on every connection.
        pub fn exceptions(mut self, on: bool) -> Self {
            self.options.config.exceptions = on;
            self
        }

        /// Sets the reconnect backoff.
        pub fn backoff(mut self, backoff: $crate::Backoff) -> Self {
            self.options.backoff = backoff;
            self
        }
    };
}

/// The worker builder methods that only fill in options: expands inside an `impl` of a
/// builder with a `servers: Vec<String>` field, a `connector: Arc<dyn $connector>` field,
/// and the paths of its `WorkerConfig` and `Backoff`.
#[doc(hidden)]
#[macro_export]
macro_rules! __worker_builder_methods {
    ($connector:path, $($config:ident).+, $($backoff:ident).+) => {
        /// Adds a server (`host:port`, `[v6]:port` or `unix:/path`, see
        /// [`ServerAddr`]($crate::ServerAddr)); the worker serves every server.
        pub fn server(mut self, addr: impl Into<String>) -> Self {
            self.servers.push(addr.into());
            self
        }

        /// Adds several servers (see [`server`](Self::server)).
        pub fn servers<S: Into<String>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
            self.servers.extend(addrs.into_iter().map(Into::into));
            self
        }

        /// Replaces the connector (how a stream to a server is opened: TLS plugs in here).
        pub fn connector(mut self, connector: impl $connector + 'static) -> Self {
            self.connector = std::sync::Arc::new(connector);
            self
        }

        /// The grab packet (default GRAB_JOB_ALL, like libgearman).
        pub fn grab_mode(mut self, mode: $crate::GrabMode) -> Self {
            self.$($config).+.grab_mode = mode;
            self
        }

        /// Sets the id shown by the admin `workers` command.
        pub fn client_id(mut self, id: impl Into<::bytes::Bytes>) -> Self {
            self.$($config).+.client_id = Some(id.into());
            self
        }

        /// Sets the reconnect backoff.
        pub fn backoff(mut self, backoff: $crate::Backoff) -> Self {
            self.$($backoff).+ = backoff;
            self
        }
    };
}

/// The blocking builders' `tls` method (client, worker, admin client): expands inside an
/// `impl` with a `connector(impl Connector)` method, under the expanding crate's `tls`
/// feature.
#[doc(hidden)]
#[macro_export]
macro_rules! __blocking_tls_method {
    () => {
        /// Connects over TLS with these settings (TCP or Unix sockets, rustls'
        /// `StreamOwned`; replaces the connector): each server's certificate is verified,
        /// and its name too unless the settings say otherwise. A refused handshake is the
        /// connect error, with the reason.
        /// `gearman-blocking`'s crate docs have an example.
        #[cfg(feature = "tls")]
        pub fn tls(self, tls: $crate::ClientTls) -> Self {
            self.connector($crate::blocking::TlsConnector::new(tls))
        }
    };
}

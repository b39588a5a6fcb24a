//! A demo web service for ninsho: server-rendered pages that walk through
//! every journey of the seed documents (sign-up with email and phone,
//! two-step sign-in by SMS, voice, email, authenticator, recovery code and
//! one-time link, settings, the contact check) so people can click through
//! them before reading the API.
//!
//! The embedded setup needs nothing installed: SQLite in a local file and a
//! recording gateway whose messages show on the DEVELOPMENT ONLY inbox page.
//! `main.rs` only calls [`Config::from_env`] and [`start`].
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod clock;
mod config;
mod pages;
mod setup;
mod web;

use std::net::SocketAddr;

pub use clock::OffsetClock;
pub use config::{Config, GatewayChoice, StoreChoice};

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A setting read from the environment is not usable.
    #[error("configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory or key file could not be read or written.
    #[error("data directory")]
    Io(#[from] std::io::Error),
    /// The store could not be opened or migrated.
    #[error("store")]
    Store(#[source] ninsho::store::StoreError),
    /// The SQL driver failed while connecting.
    #[error("database connection")]
    Database(#[from] sqlx::Error),
    /// A key in the key file was refused.
    #[error("keys")]
    Key(#[from] ninsho::hash::KeyError),
    /// ninsho refused the service configuration.
    #[error("ninsho setup")]
    Ninsho(#[from] ninsho::Error),
    /// The server task ended with an error or panicked.
    #[error("server task")]
    Server(String),
}

/// A running demo server.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The address the server listens on (with the real port when the
    /// configuration asked for port 0).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets requests in flight finish and
    /// waits for the server task to end.
    ///
    /// # Errors
    /// [`DemoError::Server`] when the server failed or panicked.
    pub async fn stop(self) -> Result<(), DemoError> {
        // The receiver is gone only when the server already ended; its
        // result is in the task either way.
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DemoError::Server(e.to_string())),
            Err(e) => Err(DemoError::Server(e.to_string())),
        }
    }
}

/// Opens the store, builds the ninsho service, binds the listener and
/// serves the demo in a background task.
///
/// # Errors
/// [`DemoError`] when any of those steps fails.
pub async fn start(config: Config) -> Result<Running, DemoError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DemoError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let state = setup::build(&config, addr).await?;
    let app = web::router(state);
    let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        })
        .await
    });
    Ok(Running {
        addr,
        shutdown,
        task,
    })
}

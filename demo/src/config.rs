//! What the demo runs with, read from the environment (see demo/README.md).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::DemoError;

/// Where ninsho keeps its records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreChoice {
    /// SQLite in `ninsho.sqlite3` inside the data directory (the default).
    Sqlite,
    /// The in-memory store: everything is gone on restart.
    Memory,
    /// PostgreSQL at this URL.
    Postgres(String),
    /// Redis at this URL.
    Redis(String),
}

/// How messages leave the demo: each channel not configured for real is
/// captured by the recording gateway and shown on the dev inbox page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayChoice {
    /// Everything captured in memory (the default).
    Recording,
    /// Real delivery where configured, the recording gateway elsewhere.
    Real {
        /// Email over SMTP, when `NINSHO_DEMO_SMTP_HOST` is set.
        smtp: Option<SmtpSettings>,
        /// SMS and voice through Twilio, when `TWILIO_ACCOUNT_SID` is set.
        twilio: Option<TwilioSettings>,
    },
}

/// SMTP settings read from the environment.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// `NINSHO_DEMO_SMTP_HOST`.
    pub host: String,
    /// `NINSHO_DEMO_SMTP_PORT` (default: the TLS mode's port).
    pub port: Option<u16>,
    /// `NINSHO_DEMO_SMTP_USER` and `NINSHO_DEMO_SMTP_PASSWORD`.
    pub credentials: Option<(String, String)>,
    /// `NINSHO_DEMO_SMTP_FROM`.
    pub from: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Twilio settings read from the environment.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TwilioSettings {
    /// `TWILIO_ACCOUNT_SID`.
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`.
    pub auth_token: String,
    /// `TWILIO_FROM`: the sending number, also the caller of voice calls.
    pub from: String,
}

impl std::fmt::Debug for TwilioSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioSettings")
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The demo's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where ninsho keeps its records.
    pub store: StoreChoice,
    /// How messages are sent.
    pub gateway: GatewayChoice,
    /// Whether the DEVELOPMENT ONLY pages (`/dev/…`) exist.
    pub dev_tools: bool,
    /// Directory of the SQLite file and the demo's key file.
    pub data_dir: PathBuf,
}

impl Config {
    /// Reads `NINSHO_DEMO_LISTEN`, `NINSHO_DEMO_STORE`, `NINSHO_DEMO_DATA_DIR`
    /// and `NINSHO_DEMO_DEV_TOOLS`. With none set: 127.0.0.1:3000, SQLite in
    /// `./ninsho-demo-data`, the recording gateway and dev tools on.
    ///
    /// # Errors
    /// [`DemoError::Config`] naming the variable that could not be read.
    pub fn from_env() -> Result<Self, DemoError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = match var("NINSHO_DEMO_LISTEN") {
            Some(text) => text.parse().map_err(|_| {
                DemoError::Config(format!("NINSHO_DEMO_LISTEN: not an address: {text}"))
            })?,
            None => SocketAddr::from((Ipv4Addr::LOCALHOST, 3000)),
        };
        let store = match var("NINSHO_DEMO_STORE").as_deref() {
            None | Some("sqlite") => StoreChoice::Sqlite,
            Some("memory") => StoreChoice::Memory,
            Some("postgres") => StoreChoice::Postgres(var("NINSHO_PG_URL").ok_or_else(|| {
                DemoError::Config("NINSHO_DEMO_STORE=postgres needs NINSHO_PG_URL".into())
            })?),
            Some("redis") => StoreChoice::Redis(var("NINSHO_REDIS_URL").ok_or_else(|| {
                DemoError::Config("NINSHO_DEMO_STORE=redis needs NINSHO_REDIS_URL".into())
            })?),
            Some(other) => {
                return Err(DemoError::Config(format!(
                    "NINSHO_DEMO_STORE: expected sqlite, memory, postgres or redis, got {other}"
                )));
            }
        };
        // On by default only on a loopback address: the inbox shows every
        // code and link, so on a reachable address they must be asked for.
        let dev_tools = match var("NINSHO_DEMO_DEV_TOOLS").as_deref() {
            None => listen.ip().is_loopback(),
            Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            Some(other) => {
                return Err(DemoError::Config(format!(
                    "NINSHO_DEMO_DEV_TOOLS: expected 1 or 0, got {other}"
                )));
            }
        };
        let smtp = match var("NINSHO_DEMO_SMTP_HOST") {
            None => None,
            Some(host) => Some(SmtpSettings {
                host,
                port: match var("NINSHO_DEMO_SMTP_PORT") {
                    None => None,
                    Some(p) => Some(p.parse().map_err(|_| {
                        DemoError::Config(format!("NINSHO_DEMO_SMTP_PORT: not a port: {p}"))
                    })?),
                },
                credentials: var("NINSHO_DEMO_SMTP_USER").zip(var("NINSHO_DEMO_SMTP_PASSWORD")),
                from: var("NINSHO_DEMO_SMTP_FROM").ok_or_else(|| {
                    DemoError::Config("NINSHO_DEMO_SMTP_HOST needs NINSHO_DEMO_SMTP_FROM".into())
                })?,
            }),
        };
        let twilio = match var("TWILIO_ACCOUNT_SID") {
            None => None,
            Some(account_sid) => Some(TwilioSettings {
                account_sid,
                auth_token: var("TWILIO_AUTH_TOKEN").ok_or_else(|| {
                    DemoError::Config("TWILIO_ACCOUNT_SID needs TWILIO_AUTH_TOKEN".into())
                })?,
                from: var("TWILIO_FROM").ok_or_else(|| {
                    DemoError::Config("TWILIO_ACCOUNT_SID needs TWILIO_FROM".into())
                })?,
            }),
        };
        let gateway = if smtp.is_none() && twilio.is_none() {
            GatewayChoice::Recording
        } else {
            GatewayChoice::Real { smtp, twilio }
        };
        let data_dir = var("NINSHO_DEMO_DATA_DIR")
            .map_or_else(|| PathBuf::from("ninsho-demo-data"), PathBuf::from);
        Ok(Self {
            listen,
            store,
            gateway,
            dev_tools,
            data_dir,
        })
    }

    /// The settings for tests: a free loopback port, SQLite in `data_dir`,
    /// the recording gateway and dev tools on.
    #[must_use]
    pub fn for_tests(data_dir: &Path) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store: StoreChoice::Sqlite,
            gateway: GatewayChoice::Recording,
            dev_tools: true,
            data_dir: data_dir.to_path_buf(),
        }
    }
}

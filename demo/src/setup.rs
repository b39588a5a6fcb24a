//! Opens the store, reads or creates the demo's keys and builds the
//! ninsho service the pages use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use ninsho::device::DevicePolicy;
use ninsho::gateway::{
    DeliveryError, Gateway, Message, Receipt, RecordingGateway, SmtpGateway, SmtpTls,
    TwilioGateway, TwilioSender,
};
use ninsho::prelude::*;
use ninsho::store::Store;
use ninsho::store::{MemoryStore, PgStore, RedisStore, SqliteStore};
use ninsho::web::DeviceCookie;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::DemoError;
use crate::clock::OffsetClock;
use crate::config::{Config, GatewayChoice, StoreChoice};

/// Everything a request handler needs.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) service: TwoFactor,
    pub(crate) inbox: RecordingGateway,
    pub(crate) clock: OffsetClock,
    pub(crate) dev_tools: bool,
    /// The "don't ask again on this device" cookie, as ninsho::web writes
    /// it; its lifetime is the service's device policy.
    pub(crate) device_cookie: DeviceCookie,
    /// The demo's own accounts by username. Kept in memory: the password
    /// part is the demo's, not ninsho's.
    pub(crate) users: Arc<Mutex<HashMap<String, DemoUser>>>,
    /// Whether `/dev/gateway` made the recording gateway refuse SMS (the
    /// gateway keeps its scripted failures but does not list them).
    pub(crate) sms_refused: Arc<AtomicBool>,
}

/// One demo account.
#[derive(Debug, Clone)]
pub(crate) struct DemoUser {
    /// ninsho's account id: random and never reused, so a username taken
    /// again (after a restart forgot the users) can never reach the old
    /// account's records in ninsho's store.
    pub(crate) account: String,
    /// The password's argon2 PHC string.
    pub(crate) password_hash: String,
}

pub(crate) async fn build(config: &Config, addr: SocketAddr) -> Result<AppState, DemoError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store: Arc<dyn Store> = match &config.store {
        StoreChoice::Sqlite => {
            let options = SqliteConnectOptions::new()
                .filename(config.data_dir.join("ninsho.sqlite3"))
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(options).await?;
            let store = SqliteStore::new(pool);
            store.migrate().await.map_err(DemoError::Store)?;
            Arc::new(store)
        }
        StoreChoice::Memory => Arc::new(MemoryStore::new()),
        StoreChoice::Postgres(url) => {
            let pool = PgPoolOptions::new().connect(url).await?;
            let store = PgStore::new(pool);
            store.migrate().await.map_err(DemoError::Store)?;
            Arc::new(store)
        }
        StoreChoice::Redis(url) => {
            // The demo keeps its users in memory and forgets them when it
            // stops, so a Redis that forgets its data loses nothing the demo
            // still knows: it accepts a server without persistence, and
            // marks the store initialised at every start. A real service
            // does neither (see `RedisStore`'s docs): its server keeps the
            // data, and the store is initialised once, on purpose.
            let store = RedisStore::builder("ninsho-demo")
                .dangerously_allow_volatile_server()
                .connect(url)
                .await
                .map_err(|e| DemoError::Store(e.into()))?;
            store.initialise().await.map_err(DemoError::Store)?;
            Arc::new(store)
        }
    };
    let (hash_key, seal_key) = keys(&config.data_dir)?;
    let inbox = RecordingGateway::new();
    let gateway = gateway(&config.gateway, &inbox)?;
    let clock = OffsetClock::new();
    let service = TwoFactor::builder(
        "ninsho demo",
        store,
        gateway,
        KeyedHasher::new(HashKey::new(KeyId(1), &hash_key)?),
        Arc::new(AeadSealer::new(SealKey::new(KeyId(1), &seal_key)?)),
    )
    .origin(addr.ip().to_string())
    .link_base(format!("http://{addr}/link/"))
    .clock(Arc::new(clock.clone()))
    .events(Arc::new(ninsho::events::TracingEvents::new()))
    .confirm_masked_contacts(true)
    .email_as_second_factor(true)
    .build()?;
    Ok(AppState {
        service,
        inbox,
        clock,
        dev_tools: config.dev_tools,
        device_cookie: DeviceCookie::new(&DevicePolicy::default()),
        users: Arc::new(Mutex::new(HashMap::new())),
        sms_refused: Arc::new(AtomicBool::new(false)),
    })
}

/// The hashing and sealing keys, 32 random bytes each, kept in
/// `keys.bin` in the data directory so records stay readable across
/// restarts. A real service keeps them in its secret manager.
fn keys(dir: &Path) -> Result<([u8; 32], [u8; 32]), DemoError> {
    let path = dir.join("keys.bin");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 64 => bytes,
        _ => {
            let mut bytes = vec![0u8; 64];
            getrandom::fill(&mut bytes)
                .map_err(|e| DemoError::Config(format!("no randomness: {e}")))?;
            std::fs::write(&path, &bytes)?;
            bytes
        }
    };
    let mut hash = [0u8; 32];
    let mut seal = [0u8; 32];
    hash.copy_from_slice(&bytes[..32]);
    seal.copy_from_slice(&bytes[32..]);
    Ok((hash, seal))
}

impl AppState {
    /// The demo clock's time, for what the phone page shows.
    pub(crate) fn clock_now(&self) -> String {
        use ninsho::Clock;
        let now = self.clock.now();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute()
        )
    }
}

/// The gateway: real adapters for the channels configured, the recording
/// gateway (the dev inbox) for the rest.
fn gateway(
    choice: &GatewayChoice,
    inbox: &RecordingGateway,
) -> Result<Arc<dyn Gateway>, DemoError> {
    let GatewayChoice::Real { smtp, twilio } = choice else {
        return Ok(Arc::new(inbox.clone()));
    };
    let email: Arc<dyn Gateway> = match smtp {
        None => Arc::new(inbox.clone()),
        Some(s) => {
            let mut builder = SmtpGateway::builder(s.host.clone())
                .tls(SmtpTls::StartTls)
                .from(s.from.clone(), "ninsho demo");
            if let Some(port) = s.port {
                builder = builder.port(port);
            }
            if let Some((user, password)) = &s.credentials {
                builder =
                    builder.credentials(user.clone(), ninsho::SecretString::new(password.clone()));
            }
            Arc::new(
                builder
                    .build()
                    .map_err(|e| DemoError::Config(format!("SMTP: {e}")))?,
            )
        }
    };
    let phone: Arc<dyn Gateway> = match twilio {
        None => Arc::new(inbox.clone()),
        Some(t) => Arc::new(
            TwilioGateway::builder(
                t.account_sid.clone(),
                t.auth_token.clone(),
                TwilioSender::From(t.from.clone()),
            )
            .caller(t.from.clone())
            .build()
            .map_err(|e| DemoError::Config(format!("Twilio: {e}")))?,
        ),
    };
    Ok(Arc::new(ByChannel { email, phone }))
}

/// Sends email one way and SMS and voice another.
#[derive(Debug)]
struct ByChannel {
    email: Arc<dyn Gateway>,
    phone: Arc<dyn Gateway>,
}

#[async_trait::async_trait]
impl Gateway for ByChannel {
    async fn send(&self, message: &Message) -> Result<Receipt, DeliveryError> {
        match message.channel {
            Channel::Email => self.email.send(message).await,
            _ => self.phone.send(message).await,
        }
    }
}

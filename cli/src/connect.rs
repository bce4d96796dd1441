//! From the connection options to a started client.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use webpubsub_client::log::{self, Level};
use webpubsub_client::{Client, ClientOptions, Credential, Event, Protocol, RetryPolicy};

use crate::args::{Connection, ProtocolArg};
use crate::Failure;

/// Routes the library's log to stderr: `-v` lifecycle, `-vv` everything.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => Level::Info,
        _ => Level::Verbose,
    };
    log::set_logger(
        Some(Arc::new(|level: Level, msg: &str| {
            eprintln!("[wps {}] {msg}", level.as_str());
        })),
        level,
    );
}

/// A client access URL minted from `--connection-string` for `--hub`, `--user`, `--role`,
/// `--minutes` and the given groups.
pub fn mint_url(conn: &Connection, groups: &[String]) -> Result<String, Failure> {
    let cs = conn.connection_string.as_deref().ok_or_else(|| {
        Failure::Usage(
            "a connection string is needed (--connection-string or WPS_CONNECTION_STRING)".into(),
        )
    })?;
    let hub = conn
        .hub
        .as_deref()
        .ok_or_else(|| Failure::Usage("--hub is needed with a connection string".into()))?;
    Ok(Minter::new(cs, hub, conn)?.mint(groups))
}

/// Everything needed to mint a token, owned, so a credential provider can keep it.
struct Minter {
    endpoint: String,
    key: String,
    hub: String,
    user: Option<String>,
    roles: Vec<String>,
    ttl: Duration,
}

impl Minter {
    fn new(cs: &str, hub: &str, conn: &Connection) -> Result<Minter, Failure> {
        let (endpoint, key) = webpubsub_emulator::parse_connection_string(cs);
        if endpoint.is_empty() || key.is_empty() {
            return Err(Failure::Usage(
                "the connection string needs Endpoint=... and AccessKey=...".into(),
            ));
        }
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Failure::Usage(format!(
                "the connection string's endpoint must start with http:// or https:// (got {endpoint})"
            )));
        }
        if hub.trim().is_empty() {
            return Err(Failure::Usage("--hub is empty".into()));
        }
        Ok(Minter {
            endpoint,
            key,
            hub: hub.to_string(),
            user: conn.user.clone(),
            roles: conn.roles.clone(),
            ttl: Duration::from_secs(conn.minutes.saturating_mul(60)),
        })
    }

    fn mint(&self, groups: &[String]) -> String {
        let roles: Vec<&str> = self.roles.iter().map(String::as_str).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        webpubsub_emulator::client_access_url_for(
            &self.endpoint,
            &self.key,
            &self.hub,
            self.user.as_deref(),
            &roles,
            &groups,
            self.ttl,
        )
    }
}

fn credential(conn: &Connection) -> Result<Credential, Failure> {
    if let Some(url) = conn.url.as_ref().filter(|u| !u.is_empty()) {
        return Ok(Credential::Url(url.clone()));
    }
    if conn.connection_string.as_deref().unwrap_or("").is_empty() {
        return Err(Failure::Usage(
            "no connection: give --url (or WPS_CLIENT_URL), or --connection-string (or WPS_CONNECTION_STRING) with --hub".into(),
        ));
    }
    let hub = conn
        .hub
        .as_deref()
        .ok_or_else(|| Failure::Usage("--hub is needed with a connection string".into()))?;
    let minter = Minter::new(conn.connection_string.as_deref().unwrap_or(""), hub, conn)?;
    // A fresh token for every connection, so reconnects outlive the token's lifetime.
    Ok(Credential::Provider(Arc::new(move || Ok(minter.mint(&[])))))
}

fn options(conn: &Connection) -> ClientOptions {
    ClientOptions {
        protocol: match conn.protocol {
            ProtocolArg::JsonReliable => Protocol::JsonReliable,
            ProtocolArg::Json => Protocol::Json,
            ProtocolArg::ProtobufReliable => Protocol::ProtobufReliable,
            ProtocolArg::Protobuf => Protocol::Protobuf,
        },
        message_retry: RetryPolicy {
            max_retries: conn.retries,
            ..RetryPolicy::message_default()
        },
        ca_file: conn.ca_file.clone(),
        proxy: conn.proxy.clone(),
        user_agent: Some(format!("wps/{}", env!("CARGO_PKG_VERSION"))),
        ..ClientOptions::default()
    }
}

/// A client for the connection options, not started yet.
pub fn client(conn: &Connection) -> Result<(Client, UnboundedReceiver<Event>), Failure> {
    client_with(conn, |_| {})
}

/// A client for the connection options with `adjust` applied to its options, not started yet.
pub fn client_with(
    conn: &Connection,
    adjust: impl FnOnce(&mut ClientOptions),
) -> Result<(Client, UnboundedReceiver<Event>), Failure> {
    let mut opts = options(conn);
    adjust(&mut opts);
    Ok(Client::with_channel(credential(conn)?, opts))
}

/// Starts `client`; a failed start is a connection failure.
pub async fn start(client: &Client) -> Result<(), Failure> {
    client
        .start()
        .await
        .map_err(|e| Failure::Connection(e.to_string()))
}

/// Creates and starts a client.
pub async fn connect(conn: &Connection) -> Result<(Client, UnboundedReceiver<Event>), Failure> {
    let (client, events) = client(conn)?;
    start(&client).await?;
    Ok((client, events))
}

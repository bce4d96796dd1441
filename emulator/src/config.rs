//! Emulator configuration shared by the CLI and the in-process API.

use std::path::PathBuf;
use std::time::Duration;

/// Development access key used when none is given. It is public: never use it for anything
/// reachable from outside the machine.
pub const DEFAULT_ACCESS_KEY: &str = "wps-emulator-development-access-key-0123456789";

/// How the emulator listens and where it forwards upstream events.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind; `0` picks a free port.
    pub port: u16,
    /// Access key: HMAC-SHA256 key (its UTF-8 bytes) for every JWT and `ce-signature`.
    pub access_key: String,
    /// Upstream event handler URL template (`{hub}` and `{event}` are substituted).
    pub upstream: Option<String>,
    /// Time a client has to send a request's head (line and headers); also how long an idle
    /// keep-alive connection stays open. The connection is closed when it elapses.
    pub header_read_timeout: Duration,
    /// Time a client has to send a REST request's body once its head arrived (`408` after it).
    pub body_read_timeout: Duration,
    /// Connections accepted but not yet authenticated (no valid access token, REST token or
    /// reconnection token seen yet) at any one time; beyond it the listener stops accepting
    /// until one authenticates, times out or closes.
    pub max_pending_handshakes: usize,
    /// Serve `https://` and `wss://` instead of plain HTTP (default: plain).
    pub tls: Option<TlsFiles>,
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain (its own certificate first).
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// When set, every client must present a certificate signed by one of these CAs
    /// (mutual TLS); connections without one, or with another, fail the TLS handshake.
    pub client_ca_file: Option<PathBuf>,
}

/// Default of [`Config::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Config::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`Config::max_pending_handshakes`].
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 256;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_string(),
            port: 0,
            access_key: DEFAULT_ACCESS_KEY.to_string(),
            upstream: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            tls: None,
        }
    }
}

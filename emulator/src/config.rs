//! Emulator configuration shared by the CLI and the in-process API.

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_string(),
            port: 0,
            access_key: DEFAULT_ACCESS_KEY.to_string(),
            upstream: None,
        }
    }
}

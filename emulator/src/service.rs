//! State shared by every endpoint of one emulator instance.

use crate::config::Config;
use crate::deadline::Deadline;
use crate::hub::Hubs;
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;

/// How long a dropped reliable session stays recoverable.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(30);

/// Environment variable shortening the recovery window (milliseconds), for tests only.
pub const RECOVERY_WINDOW_ENV: &str = "WPS_EMULATOR_RECOVERY_WINDOW_MS";

/// Bounds on what one client may make the emulator hold or wait for.
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_pending_handshakes: usize,
}

pub struct Service {
    pub access_key: String,
    /// `http://host:port`
    pub endpoint: String,
    pub hubs: Hubs,
    pub upstream: Option<Arc<Upstream>>,
    pub recovery_window: Duration,
    pub limits: Limits,
    /// Set by a restart with downtime: until then client and REST requests get 503.
    pub down: Deadline,
}

impl Service {
    /// The service for `config`, reachable at `endpoint` (`http://host:port`).
    pub fn new(config: &Config, endpoint: &str) -> Service {
        let access_key = config.access_key.as_str();
        let upstream = config
            .upstream
            .as_deref()
            .map(|t| Arc::new(Upstream::new(t, access_key, &config.host)));
        Service {
            access_key: access_key.to_string(),
            endpoint: endpoint.to_string(),
            hubs: Hubs::new(upstream.clone()),
            upstream,
            recovery_window: std::env::var(RECOVERY_WINDOW_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
                .unwrap_or(RECOVERY_WINDOW),
            limits: Limits {
                header_read_timeout: config.header_read_timeout,
                body_read_timeout: config.body_read_timeout,
                max_pending_handshakes: config.max_pending_handshakes,
            },
            down: Deadline::default(),
        }
    }
}

//! State shared by every endpoint of one emulator instance.

use crate::hub::Hubs;
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;

/// How long a dropped reliable session stays recoverable.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(30);

/// Environment variable shortening the recovery window (milliseconds), for tests only.
pub const RECOVERY_WINDOW_ENV: &str = "WPS_EMULATOR_RECOVERY_WINDOW_MS";

pub struct Service {
    pub access_key: String,
    /// `http://host:port`
    pub endpoint: String,
    pub hubs: Hubs,
    pub upstream: Option<Arc<Upstream>>,
    pub recovery_window: Duration,
}

impl Service {
    pub fn new(access_key: &str, endpoint: &str, upstream: Option<&str>, origin: &str) -> Service {
        let upstream = upstream.map(|t| Arc::new(Upstream::new(t, access_key, origin)));
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
        }
    }
}

//! State shared by every endpoint of one emulator instance.

use crate::hub::Hubs;
use crate::upstream::Upstream;
use std::sync::Arc;
use std::time::Duration;

/// How long a dropped reliable session stays recoverable.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(30);

pub struct Service {
    pub access_key: String,
    /// `http://host:port`
    pub endpoint: String,
    pub hubs: Hubs,
    pub upstream: Option<Arc<Upstream>>,
}

impl Service {
    pub fn new(access_key: &str, endpoint: &str, upstream: Option<&str>, origin: &str) -> Service {
        let upstream = upstream.map(|t| Arc::new(Upstream::new(t, access_key, origin)));
        Service {
            access_key: access_key.to_string(),
            endpoint: endpoint.to_string(),
            hubs: Hubs::new(upstream.clone()),
            upstream,
        }
    }
}

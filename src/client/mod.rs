//! The client engine and its public API.

pub mod event;
pub mod options;
pub mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::protocol::Payload;

pub use event::{ClientId, Event, EventHandler};
pub use options::{ClientOptions, Protocol};
pub use retry::{RetryMode, RetryPolicy};

/// Where the client access URL comes from.
#[derive(Clone)]
pub enum Credential {
    /// A fixed client access URL (`ws://` or `wss://`, with `access_token`).
    Url(String),
    /// Called for every new connection (start, reconnect) to get a fresh client access URL.
    Provider(Arc<dyn Fn() -> Result<String, String> + Send + Sync>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Url(u) => f.debug_tuple("Url").field(&crate::log::redact(u)).finish(),
            Credential::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// Per-send options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// The ack id to use; `None` allocates a new one. Reuse an id from an error to retry
    /// idempotently.
    pub ack_id: Option<u64>,
    /// Do not deliver the message back to this connection (send-to-group only).
    pub no_echo: bool,
    /// No ack on the wire; resolves once the frame is written to the socket.
    pub fire_and_forget: bool,
}

/// A successful acked operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOk {
    /// The ack id the operation used (0 for fire-and-forget).
    pub ack_id: u64,
    /// The service had already processed this ack id (`Duplicate`): the operation took effect
    /// once, earlier.
    pub duplicated: bool,
}

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A Web PubSub client. Cheap to clone; all clones drive the same connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    id: ClientId,
    next_ack_id: AtomicU64,
    #[allow(dead_code)]
    credential: Credential,
    #[allow(dead_code)]
    options: ClientOptions,
    #[allow(dead_code)]
    handler: Arc<dyn EventHandler>,
}

impl Client {
    /// A client that reports events to `handler`. Nothing connects until [`Client::start`].
    pub fn new(
        credential: Credential,
        options: ClientOptions,
        handler: Arc<dyn EventHandler>,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                id: ClientId(NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed)),
                next_ack_id: AtomicU64::new(1),
                credential,
                options,
                handler,
            }),
        }
    }

    /// A client whose events arrive on the returned channel.
    pub fn with_channel(
        credential: Credential,
        options: ClientOptions,
    ) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = Client::new(credential, options, Arc::new(event::ChannelHandler(tx)));
        (client, rx)
    }

    /// This client's id (as passed to the event handler).
    pub fn id(&self) -> ClientId {
        self.inner.id
    }

    /// Connects; resolves when the socket is open and the `connected` message arrived.
    pub async fn start(&self) -> Result<(), Error> {
        Err(Error::NotConnected { ack_id: None })
    }

    /// Stops: cancels recovery, reconnects and pending operations, closes with 1000, then
    /// reports `Disconnected` and `Stopped`. Idempotent.
    pub async fn stop(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Whether a connection is currently established (not recovering).
    pub fn is_connected(&self) -> bool {
        false
    }

    /// The current connection id, if connected.
    pub fn connection_id(&self) -> Option<String> {
        None
    }

    /// Allocates a fresh ack id.
    pub fn next_ack_id(&self) -> u64 {
        self.inner.next_ack_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Joins a group; acked.
    pub async fn join_group(&self, group: &str, ack_id: Option<u64>) -> Result<AckOk, Error> {
        let _ = (group, ack_id);
        Err(Error::NotConnected { ack_id: None })
    }

    /// Leaves a group; acked.
    pub async fn leave_group(&self, group: &str, ack_id: Option<u64>) -> Result<AckOk, Error> {
        let _ = (group, ack_id);
        Err(Error::NotConnected { ack_id: None })
    }

    /// Sends a message to a group.
    pub async fn send_to_group(
        &self,
        group: &str,
        payload: Payload,
        opts: SendOptions,
    ) -> Result<AckOk, Error> {
        let _ = (group, payload, opts);
        Err(Error::NotConnected { ack_id: None })
    }

    /// Sends a custom event to the upstream.
    pub async fn send_event(
        &self,
        event: &str,
        payload: Payload,
        opts: SendOptions,
    ) -> Result<AckOk, Error> {
        let _ = (event, payload, opts);
        Err(Error::NotConnected { ack_id: None })
    }

    /// Invokes an upstream event and waits for its response.
    pub async fn invoke_event(
        &self,
        event: &str,
        payload: Payload,
        timeout: Option<Duration>,
    ) -> Result<Payload, Error> {
        let _ = (event, payload, timeout);
        Err(Error::NotConnected { ack_id: None })
    }
}

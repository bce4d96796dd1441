//! Client options and their documented defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::retry::RetryPolicy;
pub use super::transport::ClientCert;

/// The WebSocket subprotocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `json.reliable.webpubsub.azure.v1`: sequence ids, recovery after drops.
    #[default]
    JsonReliable,
    /// `json.webpubsub.azure.v1`: no recovery; a drop means a new connection.
    Json,
    /// `protobuf.reliable.webpubsub.azure.v1`: binary frames, recovery like `JsonReliable`.
    /// No `fromUserId` on messages and no `invoke`.
    ProtobufReliable,
    /// `protobuf.webpubsub.azure.v1`.
    Protobuf,
}

impl Protocol {
    /// Whether the protocol supports recovery.
    pub fn is_reliable(self) -> bool {
        matches!(self, Protocol::JsonReliable | Protocol::ProtobufReliable)
    }

    /// The codec speaking this protocol.
    pub fn codec(self) -> crate::protocol::AnyCodec {
        use crate::protocol::{AnyCodec, JsonCodec, ProtobufCodec};
        match self {
            Protocol::JsonReliable => AnyCodec::Json(JsonCodec::new(true)),
            Protocol::Json => AnyCodec::Json(JsonCodec::new(false)),
            Protocol::ProtobufReliable => AnyCodec::Protobuf(ProtobufCodec::new(true)),
            Protocol::Protobuf => AnyCodec::Protobuf(ProtobufCodec::new(false)),
        }
    }
}

/// Everything configurable about a client. `Default::default()` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Subprotocol (default `JsonReliable`).
    pub protocol: Protocol,
    /// Open a new connection when a connection is lost and cannot be recovered (default true).
    pub auto_reconnect: bool,
    /// Join the previously joined groups again on a new connection (default true).
    pub auto_rejoin_groups: bool,
    /// How long one attempt of an operation waits for its ack (default 30 s).
    pub ack_timeout: Duration,
    /// Retries of join/leave/send operations, always with the same ack id
    /// (default 3 retries, exponential from 0.8 s, at most 120 s).
    pub message_retry: RetryPolicy,
    /// Retries of new connections after a loss (default unlimited, exponential 1 s .. 30 s).
    /// `max_retries: u32::MAX` means unlimited.
    pub reconnect_retry: RetryPolicy,
    /// Reconnect jitter in percent, 0..=100 (default 0: the delays of `reconnect_retry`
    /// exactly, as the official clients). With p > 0 every reconnect delay is shortened by a
    /// random share of up to p % of it (uniform over `[d*(1-p/100), d]`), and the immediate
    /// reconnect after the loss of a working connection waits a random
    /// `[0, delay*p/100]`, so many clients dropped together spread their reconnects.
    pub reconnect_jitter_percent: u32,
    /// How long to keep trying to recover a dropped reliable connection (default 30 s).
    pub recovery_timeout: Duration,
    /// Delay between recovery attempts (default 1 s). A recovered connection that worked and
    /// drops again before it has been usable for 5 s is recovered at once up to three times
    /// per episode; after that, attempts are this far apart again.
    pub recovery_interval: Duration,
    /// Period of `ping` messages (default 20 s; zero turns keep-alive off).
    pub keep_alive_interval: Duration,
    /// A connection with no inbound frame for this long is considered dead (default 120 s).
    pub keep_alive_timeout: Duration,
    /// Period of `sequenceAck` messages when something new arrived (default 1 s).
    pub sequence_ack_interval: Duration,
    /// Largest frame this client sends (default 1 MiB, the service's limit for client
    /// messages): larger ones are rejected with `PayloadTooLarge` before anything is sent.
    pub max_message_size: usize,
    /// Largest message accepted from the service (default 2 MiB). The service may wrap a
    /// message of its 1 MB maximum in a larger frame (group and user names, base64 of binary
    /// data sent through REST), so this is deliberately above `max_message_size`. A larger
    /// inbound message ends the session: it is reported (the `Disconnected` reason says so)
    /// and the client reconnects without recovery, since recovery would replay the message.
    pub max_inbound_message_size: usize,
    /// How many bytes are read from the network at once (default 4 KiB), into a per-thread
    /// scratch buffer; a connection keeps only bytes it has not used yet, so idle connections
    /// hold no read buffer. Larger reads take big bursts with fewer system calls. Messages
    /// larger than this are still read whole.
    pub read_buffer_size: usize,
    /// Bytes buffered before a write reaches the socket (default 16 KiB); each batch of
    /// operations is flushed anyway.
    pub write_buffer_size: usize,
    /// Proxy, `SCHEME://[user:password@]host[:port]` with SCHEME `http` (CONNECT), `https`
    /// (CONNECT over TLS to the proxy), `socks5` (names resolved here) or `socks5h` (names
    /// resolved by the proxy). `None` uses `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` and
    /// `NO_PROXY` (upper or lower case) from the environment (never for loopback hosts);
    /// `Some("")` means no proxy.
    pub proxy: Option<String>,
    /// Fire-and-forget frames that may be accepted but not yet written (default 1024). With
    /// N > 0 a fire-and-forget send made while connected resolves as soon as its frame is in
    /// the engine's ordered send queue, until N frames are pending, after which sends wait for
    /// the writes again (back-pressure). Queued frames go out after a recovery and before the
    /// close on `stop`; a frame in a write that fails is lost, as one in the socket's buffer
    /// would be. With 0 a fire-and-forget send resolves once its frame is written to the socket.
    pub fire_and_forget_buffer: usize,
    /// Application name and version put in front of the library's own `User-Agent`
    /// (`webpubsub-client/<version> (<os>; <arch>)`) on every connection, e.g. `"gateway/2.1"`.
    /// Printable ASCII only.
    pub user_agent: Option<String>,
    /// Extra PEM root certificates for `wss://`, added to the system store.
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate and key for mutual TLS on `wss://` (default none), loaded and
    /// checked with [`ClientCert::load`].
    pub client_cert: Option<std::sync::Arc<ClientCert>>,
    /// How long `start` waits for the connection (socket open and `connected`) (default 30 s).
    pub start_timeout: Duration,
    /// How long one WebSocket connect attempt (TCP, TLS, upgrade) may take (default 30 s).
    pub connect_timeout: Duration,
    /// How long one call of a [`Credential::Provider`](crate::client::Credential) may take
    /// (default 10 s), counted from when a provider thread takes it. Provider calls of all
    /// clients share a few threads (waiting for one is bounded by `connect_timeout`); a call
    /// that does not return in time fails that connection attempt with `Error::UrlProvider`
    /// (the reconnect policy decides what follows) and its late answer is dropped.
    pub url_provider_timeout: Duration,
    /// The offline queue (default `None`: off). With limits, acked operations (sends, events,
    /// joins, leaves) made while no connection is usable, including before `start` and before
    /// the first connection, wait in order with their ack ids and are sent once connected;
    /// their acks then complete them. Fire-and-forget sends made then wait in the same queue,
    /// in the same order, and complete once written on the new connection. At most `max_messages` operations and `max_bytes`
    /// payload bytes wait; an operation that finds no room waits for it up to `ack_timeout`
    /// and then fails with `QueueFull` (the C API's `_async` calls fail at once). `stop`
    /// fails what is still queued with `Stopped`. Without it, operations made before `start`
    /// fail with `NotConnected`, as in the official clients.
    pub offline_queue: Option<super::offline::OfflineQueue>,
    /// Group streams this client publishes: payload bytes written and not yet acknowledged by
    /// the service, per stream (default 1 MiB). A write that would go beyond waits for acks
    /// (back-pressure); a single fragment larger than the limit is accepted when nothing else
    /// is unacknowledged. The fragments are kept for replay after a recovery and after a
    /// `streamNack`.
    pub stream_buffer: usize,
    /// Group streams this client receives: ignore a stream first seen after its first
    /// fragment (default false: deliver it from where it was first seen).
    pub stream_from_start_only: bool,
    /// Group streams this client receives: a stream with no frame for this long ends with
    /// the client's own `IdleTimeout` terminal frame (default 300 s).
    pub stream_idle_timeout: Duration,
    /// Group streams this client receives: how many are tracked at once (default 4096). A
    /// new stream beyond the limit ends the least recently active one with the client's own
    /// `TooManyStreams` terminal frame.
    pub max_receive_streams: usize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            protocol: Protocol::JsonReliable,
            auto_reconnect: true,
            auto_rejoin_groups: true,
            ack_timeout: Duration::from_secs(30),
            message_retry: RetryPolicy::message_default(),
            reconnect_retry: RetryPolicy::reconnect_default(),
            reconnect_jitter_percent: 0,
            recovery_timeout: Duration::from_secs(30),
            recovery_interval: Duration::from_secs(1),
            keep_alive_interval: Duration::from_secs(20),
            keep_alive_timeout: Duration::from_secs(120),
            sequence_ack_interval: Duration::from_secs(1),
            max_message_size: 1 << 20,
            max_inbound_message_size: 2 << 20,
            read_buffer_size: 4 * 1024,
            write_buffer_size: 16 * 1024,
            fire_and_forget_buffer: 1024,
            proxy: None,
            ca_file: None,
            client_cert: None,
            user_agent: None,
            start_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            url_provider_timeout: Duration::from_secs(10),
            offline_queue: None,
            stream_buffer: 1 << 20,
            stream_from_start_only: false,
            stream_idle_timeout: Duration::from_secs(300),
            max_receive_streams: 4096,
        }
    }
}

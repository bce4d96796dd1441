//! A native Azure Web PubSub client.
//!
//! [`Client`] speaks the `json.reliable.webpubsub.azure.v1` (default) or
//! `json.webpubsub.azure.v1` subprotocol: it connects with a client access URL, recovers
//! dropped reliable connections without losing or duplicating messages, reconnects and rejoins
//! groups when recovery is impossible, and retries operations idempotently with the same ack id.
//!
//! Layers: [`protocol`] (pure codecs), [`client`] (one engine task per client on the shared
//! [`runtime`]), and the C surface built on top of this API.

pub mod client;
pub mod error;
pub mod ffi;
pub mod log;
pub mod protocol;
pub mod runtime;

pub use client::{
    AckOk, Client, ClientId, ClientOptions, ConnectionState, Credential, Event, EventHandler,
    Protocol, RetryMode, RetryPolicy, SendOptions,
};
pub use error::Error;
pub use protocol::{DataType, Payload};

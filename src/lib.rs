//! A native Azure Web PubSub client.
//!
//! [`Client`] speaks the `json.reliable.webpubsub.azure.v1` (default) or
//! `json.webpubsub.azure.v1` subprotocol: it connects with a client access URL, recovers
//! dropped reliable connections without losing or duplicating messages, reconnects and rejoins
//! groups when recovery is impossible, and retries operations idempotently with the same ack id.
//!
//! ```no_run
//! use std::sync::Arc;
//! use webpubsub_client::{Client, ClientOptions, Credential, Event, Payload, SendOptions};
//!
//! # async fn demo() -> Result<(), webpubsub_client::Error> {
//! let url = "wss://example.webpubsub.azure.com/client/hubs/chat?access_token=...".to_string();
//! let (client, mut events) = Client::with_channel(Credential::Url(url), ClientOptions::default());
//! client.start().await?; // resolves once the service sent `connected`
//! client.join_group("room", None).await?;
//! client
//!     .send_to_group("room", Payload::text("hello"), SendOptions::default())
//!     .await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::GroupMessage { group, message, .. } = event {
//!         println!("{group}: {:?}", message.as_str());
//!         break;
//!     }
//! }
//! client.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Layers: [`protocol`] (pure codecs), [`client`] (one engine task per client on the shared
//! [`runtime`]), and the C surface built on top of this API.

pub mod client;
pub mod error;
pub mod ffi;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
pub mod protocol;
pub mod runtime;

pub use client::{
    AckOk, Backlog, Client, ClientCert, ClientId, ClientOptions, ConnectionState, Credential,
    Event, EventHandler, GroupStream, OfflineQueue, Protocol, RetryMode, RetryPolicy, SendOptions,
    StreamOptions, MAX_ACK_ID,
};
pub use error::Error;
pub use protocol::{DataType, Payload, StreamError};

//! The C ABI of `libwebpubsub_client` (`wps_*`), a thin shell over the Rust [`crate::Client`].
//!
//! Every exported function checks its arguments, converts them, calls the Rust API and maps the
//! error to a `wps_result`; no panic crosses the boundary. One module per concept:
//!
//! - [`error`]: result codes, names, retryability, thread-local last error;
//! - `macros`: the panic boundary and argument checks;
//! - [`handle`]: the registry behind opaque `wps_client *` handles (fork-aware);
//! - [`options`]: the `wps_options` builder;
//! - [`client`]: create, start, stop, free, state;
//! - [`callback`]: registering event callbacks;
//! - [`ops`]: join/leave/send, blocking and `_async`; [`invoke`]: upstream request/response;
//! - [`stream`]: group streams (`wps_stream_*`); [`group_state`]: group state;
//! - [`event`]: the `wps_event` struct;
//! - [`dispatch`], `pool` and [`poll`]: event delivery on shared threads or the caller's thread;
//!   `pending`: accepted async operations and the order of completions around `STOPPED`;
//!   `waits`: who waits for whom during teardown (so that frees never wait in a cycle);
//! - [`provider`]: the URL provider callback; [`stats`]: `wps_client_get_stats`;
//! - [`log`], [`version`].
//!
//! The header `include/webpubsub_client.h` is generated from these files by cbindgen
//! (`scripts/gen-header.sh`); `docs/C-API.md` describes the conventions for users.

#![allow(non_camel_case_types)]

pub(crate) mod macros;

mod blocking;
pub mod callback;
pub mod client;
pub mod dispatch;
mod entry;
pub mod error;
pub mod event;
pub mod group_state;
pub mod handle;
pub mod invoke;
pub mod log;
pub mod ops;
pub mod options;
mod pending;
pub mod poll;
mod pool;
pub mod provider;
pub mod stats;
pub mod stream;
pub mod version;
mod waits;

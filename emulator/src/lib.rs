//! A local Azure Web PubSub service emulator.
//!
//! Serves the client WebSocket endpoint (`json.webpubsub.azure.v1`,
//! `json.reliable.webpubsub.azure.v1`, the two protobuf subprotocols, simple WebSocket
//! clients), the data-plane REST API used by server SDKs, upstream CloudEvents, and a
//! fault-injection API for tests. Start it in process with [`Emulator::start`] or run the
//! `wps-emulator` binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! let emu = webpubsub_emulator::Emulator::start(Default::default()).await?;
//! let url = emu.client_access_url("hub", Some("user1"), &["webpubsub.joinLeaveGroup"], &[], Duration::from_secs(3600));
//! // ... connect a client to `url`, inspect `emu.connections("hub")`, inject faults ...
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Every method is safe to call from any thread; the server runs on the tokio runtime that
//! called [`Emulator::start`]. Dropping an [`Emulator`] stops it like [`Emulator::shutdown`]
//! without waiting.

mod ack_ids;
mod auth;
mod config;
mod connection;
mod deadline;
mod dispatch;
mod faults;
mod fields;
mod filter;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod group_state;
mod hub;
mod protobuf;
mod protocol;
mod rest;
mod roles;
mod router;
mod server;
mod service;
mod session;
mod streams;
mod tls;
mod transport;
mod upstream;

pub use config::{
    Config, TlsFiles, DEFAULT_ACCESS_KEY, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_MAX_PENDING_HANDSHAKES,
};
pub use faults::ConnectionInfo;

use service::Service;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running emulator.
pub struct Emulator {
    svc: Arc<Service>,
    port: u16,
    host: String,
    /// `http` or `https`.
    scheme: &'static str,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `config.host:config.port` and serves on the current tokio runtime.
    pub async fn start(config: Config) -> std::io::Result<Emulator> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await?;
        let port = listener.local_addr()?.port();
        let host = config.host.clone();
        let endpoint = format!("{scheme}://{}:{port}", url_host(&host));
        let svc = Arc::new(Service::new(&config, &endpoint));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, svc.clone(), tls, stopped));
        log::info!("listening on {endpoint}");
        Ok(Emulator {
            svc,
            port,
            host,
            scheme,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://HOST:PORT` (`https://` with TLS)
    pub fn endpoint(&self) -> String {
        format!("{}://{}:{}", self.scheme, url_host(&self.host), self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn access_key(&self) -> &str {
        &self.svc.access_key
    }

    /// `Endpoint=http://HOST:PORT;AccessKey=KEY;Version=1.0;`
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint={};AccessKey={};Version=1.0;",
            self.endpoint(),
            self.svc.access_key
        )
    }

    /// `ws://HOST:PORT/client/hubs/{hub}?access_token=JWT` (`wss://` with TLS) with the given
    /// identity.
    pub fn client_access_url(
        &self,
        hub: &str,
        user_id: Option<&str>,
        roles: &[&str],
        groups: &[&str],
        ttl: Duration,
    ) -> String {
        client_access_url_for(
            &self.endpoint(),
            &self.svc.access_key,
            hub,
            user_id,
            roles,
            groups,
            ttl,
        )
    }

    /// Bearer JWT (`aud` = `url`) for REST and fault-injection calls.
    pub fn rest_token(&self, url: &str) -> String {
        auth::rest_token(&self.svc.access_key, url)
    }

    /// Connections of a hub (live or within their recovery window).
    pub fn connections(&self, hub: &str) -> Vec<ConnectionInfo> {
        faults::connections(&self.svc, hub)
    }

    /// Names of the hubs that currently hold state: a hub exists from its first authenticated
    /// connection until its last session ends.
    pub fn hubs(&self) -> Vec<String> {
        let mut names: Vec<String> = self.svc.hubs.all().iter().map(|h| h.name.clone()).collect();
        names.sort();
        names
    }

    /// Cuts the connection's TCP stream without a close frame; a reliable session stays
    /// recoverable. False when the connection is unknown.
    pub fn drop_connection(&self, hub: &str, connection_id: &str) -> bool {
        faults::drop_connection(&self.svc, hub, connection_id)
    }

    /// Sends a close frame with `code` and `reason`. False when the connection is unknown or
    /// `code` may not be sent on the wire (only 1000-1003, 1007-1013 and 3000-4999 may).
    pub fn close_connection(
        &self,
        hub: &str,
        connection_id: &str,
        code: u16,
        reason: &str,
    ) -> bool {
        faults::close_connection(&self.svc, hub, connection_id, code, reason)
    }

    /// Forgets the session and cuts its transport: the next recovery attempt gets 1008.
    pub fn expire_connection(&self, hub: &str, connection_id: &str) -> bool {
        faults::expire_connection(&self.svc, hub, connection_id)
    }

    /// Stops reading from and writing to the connection's socket for `duration` without
    /// closing it, like a network stall: frames for it are held in order and sent afterwards;
    /// its frames wait in the socket. A stall that already lasts longer is kept. False when the
    /// connection is unknown or `duration` is not between 1 ms and 600 s.
    pub fn stall_connection(&self, hub: &str, connection_id: &str, duration: Duration) -> bool {
        faults::stall_connection(&self.svc, hub, connection_id, duration)
    }

    /// Adds `delay` to every frame sent to the connection from now on (order and throughput
    /// kept), until set back to zero; a transport that replaces this one (recovery) starts
    /// without it. False when the connection is unknown or `delay` exceeds 600 s.
    pub fn delay_connection(&self, hub: &str, connection_id: &str, delay: Duration) -> bool {
        faults::delay_connection(&self.svc, hub, connection_id, delay)
    }

    /// Restarts the service as after a crash: every connection is cut without a close frame
    /// and every session forgotten (groups, ack ids, replay buffers), so recoveries get 1008
    /// and clients reconnect with new connection ids. The listener stays open: they may do so
    /// at once.
    pub fn restart(&self) {
        faults::restart(&self.svc, Duration::ZERO);
    }

    /// [`Emulator::restart`], then client and REST requests get `503` for `down` (the fault
    /// API keeps working). False, and nothing done, when `down` exceeds 600 s.
    pub fn restart_with_downtime(&self, down: Duration) -> bool {
        faults::restart(&self.svc, down)
    }

    /// Stops accepting, cuts every connection and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        faults::end_all(&self.svc, "Emulator shutting down.");
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The endpoint and access key of a connection string such as [`Emulator::connection_string`]
/// prints (`Endpoint=...;AccessKey=...;`, keys in any case); empty when absent.
pub fn parse_connection_string(s: &str) -> (String, String) {
    let mut endpoint = String::new();
    let mut key = String::new();
    for part in s.split(';') {
        if let Some((k, v)) = part.split_once('=') {
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = v.trim().to_string(),
                "accesskey" => key = v.trim().to_string(),
                _ => {}
            }
        }
    }
    (endpoint, key)
}

/// Client access URL for an emulator running elsewhere (`endpoint` = `http://HOST:PORT`).
pub fn client_access_url_for(
    endpoint: &str,
    access_key: &str,
    hub: &str,
    user_id: Option<&str>,
    roles: &[&str],
    groups: &[&str],
    ttl: Duration,
) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    let token = auth::client_token(access_key, endpoint, hub, user_id, roles, groups, ttl);
    let ws = match endpoint.strip_prefix("https") {
        Some(rest) => format!("wss{rest}"),
        None => format!("ws{}", endpoint.strip_prefix("http").unwrap_or(endpoint)),
    };
    format!("{ws}/client/hubs/{hub}?access_token={token}")
}

/// A deterministic xorshift generator for randomized unit tests (failures reproduce): each
/// call returns a number below its argument.
#[cfg(test)]
fn test_rng(seed: u64) -> impl FnMut(usize) -> usize {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    }
}

fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

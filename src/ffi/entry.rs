//! What the C surface keeps per client, the helpers every exported call goes through, and
//! the teardown behind `wps_client_free`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::client::{Client, ClientId, Event, EventHandler};

use super::blocking::{spawn_op, wait, Closing, Completion};
use super::dispatch::EventQueue;
use super::error::{
    fail_with, report, wps_result, Failure, WPS_ERR_PANIC, WPS_ERR_TIMEOUT, WPS_ERR_UNAUTHORIZED,
};
use super::event::{Completed, OwnedEvent};
use super::handle::{self, wps_client};
use super::macros::{panic_message, try_ffi};
use super::provider::ProviderCell;

/// Everything the C surface keeps for one client.
pub(crate) struct ClientEntry {
    pub(crate) id: u64,
    pub client: Client,
    pub queue: Arc<EventQueue>,
    pub rt: Handle,
    pub closing: Closing,
    pub(crate) poisoned: AtomicBool,
    pub(crate) provider: Option<Arc<ProviderCell>>,
    pub(crate) shutdown_timeout: Duration,
    pub start_timeout: Duration,
    pub max_message_size: usize,
    /// A hint added to 401 failures when the URL has no `access_token`.
    pub(crate) unauthorized_hint: Option<&'static str>,
}

/// Forwards engine events into the client's queue (never blocks).
pub(crate) struct QueueHandler(pub(crate) Arc<EventQueue>);

impl EventHandler for QueueHandler {
    fn on_event(&self, _client: &ClientId, event: Event) {
        self.0.push_event(OwnedEvent::from_engine(event));
    }
}

impl ClientEntry {
    /// Runs `f` against the client behind `c`, mapping lookup failures and poisoning the
    /// client if `f` panics.
    pub fn with(
        c: *const wps_client,
        f: impl FnOnce(&Arc<ClientEntry>) -> Result<(), Failure>,
    ) -> wps_result {
        let entry = try_ffi!(handle::lookup(c));
        if entry.poisoned.load(Ordering::Acquire) {
            return fail_with(
                WPS_ERR_PANIC,
                "the client is poisoned by an earlier panic; free it",
            );
        }
        match catch_unwind(AssertUnwindSafe(|| f(&entry))) {
            Ok(outcome) => report(outcome),
            Err(payload) => {
                entry.poisoned.store(true, Ordering::Release);
                let text = format!(
                    "panic (client poisoned): {}",
                    panic_message(payload.as_ref())
                );
                super::log::emit_error(&text);
                fail_with(WPS_ERR_PANIC, text)
            }
        }
    }

    /// Blocks on an engine future (see `blocking::wait`).
    pub fn wait<T: Send + 'static>(
        &self,
        what: &'static str,
        limit: Option<Duration>,
        fut: impl std::future::Future<Output = Result<T, Failure>> + Send + 'static,
    ) -> Result<T, Failure> {
        wait(&self.rt, &self.closing, what, limit, fut)
    }

    /// Starts an async operation (see `blocking::spawn_op`).
    pub fn spawn_op(
        &self,
        completion: Completion,
        fut: impl std::future::Future<Output = Result<Completed, Failure>> + Send + 'static,
    ) {
        spawn_op(&self.rt, &self.closing, &self.queue, completion, fut)
    }

    fn explain(&self, mut failure: Failure) -> Failure {
        if failure.code == WPS_ERR_UNAUTHORIZED {
            if let Some(hint) = self.unauthorized_hint {
                failure.message.push_str(hint);
            }
        }
        failure
    }

    /// The start future: connects, bounded by `limit`; on timeout the attempt is stopped.
    pub(crate) fn start_future(
        self: &Arc<Self>,
        limit: Duration,
    ) -> impl std::future::Future<Output = Result<(), Failure>> + Send + 'static {
        let client = self.client.clone();
        let entry = self.clone();
        async move {
            match tokio::time::timeout(limit, client.start()).await {
                Ok(outcome) => outcome.map_err(|e| entry.explain(Failure::from(e))),
                Err(_) => {
                    let c = client.clone();
                    tokio::spawn(async move {
                        let _ = c.stop().await;
                    });
                    Err(Failure::new(
                        WPS_ERR_TIMEOUT,
                        format!("not connected within {} ms", limit.as_millis()),
                    ))
                }
            }
        }
    }

    pub(crate) fn stop_future(
        &self,
        limit: Duration,
    ) -> impl std::future::Future<Output = Result<(), Failure>> + Send + 'static {
        let client = self.client.clone();
        async move {
            match tokio::time::timeout(limit, client.stop()).await {
                Ok(outcome) => outcome.map_err(Failure::from),
                Err(_) => Err(Failure::new(
                    WPS_ERR_TIMEOUT,
                    format!(
                        "not stopped within {} ms (still stopping)",
                        limit.as_millis()
                    ),
                )),
            }
        }
    }
}

pub(crate) fn start_limit(entry: &ClientEntry, timeout_ms: u32) -> Duration {
    if timeout_ms == 0 {
        entry.start_timeout
    } else {
        Duration::from_millis(u64::from(timeout_ms))
    }
}

pub(crate) fn stop_limit(entry: &ClientEntry, timeout_ms: u32) -> Duration {
    if timeout_ms == 0 {
        entry.shutdown_timeout
    } else {
        Duration::from_millis(u64::from(timeout_ms))
    }
}

/// Tears a client down: cancels blocked calls and pending operations, stops the connection
/// (bounded by the shutdown timeout), delivers what is still queued (completions with
/// `WPS_ERR_CANCELLED`, `WPS_EVENT_STOPPED`) and runs every `user_data_free` once.
pub(crate) fn teardown(entry: Arc<ClientEntry>) {
    entry.closing.close();
    if let Some(p) = &entry.provider {
        p.revoke();
    }
    let client = entry.client.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    entry.rt.spawn(async move {
        let _ = client.stop().await;
        let _ = tx.send(());
    });
    if rx.recv_timeout(entry.shutdown_timeout).is_err() {
        crate::wps_log!(
            Warning,
            "client {}: stop did not finish within the shutdown timeout",
            entry.id
        );
    }
    if !entry
        .queue
        .wait_ops_done(Instant::now() + Duration::from_secs(2))
    {
        crate::wps_log!(
            Warning,
            "client {}: some operation completions were not delivered",
            entry.id
        );
    }
    entry.queue.claim();
    entry.queue.deliver_remaining_and_close();
}

//! What the C surface keeps per client, the helpers every exported call goes through, and
//! the teardown behind `wps_client_free`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::client::{Client, ClientId, Event, EventHandler};

use super::blocking::{on_engine_thread, run_detached, spawn_op, wait, Closing, CompletionGuard};
use super::dispatch::EventQueue;
use super::error::{
    fail_with, report, wps_result, Failure, WPS_ERR_INVALID_HANDLE, WPS_ERR_PANIC, WPS_ERR_TIMEOUT,
    WPS_ERR_UNAUTHORIZED,
};
use super::event::{Completed, OwnedEvent};
use super::handle::{self, wps_client};
use super::macros::{record_panic, try_ffi};
use super::pending::Completion;
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

    fn backlog(&self) -> Option<Arc<crate::client::Backlog>> {
        self.0.backlog()
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
        if entry.closing.is_closed() {
            // Looked up just before a concurrent wps_client_free unregistered it.
            return fail_with(WPS_ERR_INVALID_HANDLE, "the client is being freed");
        }
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
                record_panic("a call on this client (now poisoned)", payload);
                WPS_ERR_PANIC
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

    /// Records an accepted async operation whose completion is delivered by its owner.
    pub fn begin_completion(&self, completion: Completion) -> Result<CompletionGuard, Failure> {
        CompletionGuard::begin(&self.queue, completion)
    }

    /// Starts an async operation (see `blocking::spawn_op`).
    pub fn spawn_op(
        &self,
        completion: Completion,
        fut: impl std::future::Future<Output = Result<Completed, Failure>> + Send + 'static,
    ) -> Result<(), Failure> {
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

/// Frees a client whose handle was just unregistered: from now on it accepts no operation,
/// registration or drainer, blocked calls return `WPS_ERR_CANCELLED` and its URL provider is not
/// called again. Then tears it down (see [`teardown`]) on the calling thread, or, inside one of
/// its own callbacks, right after that callback returns.
pub(crate) fn free(entry: Arc<ClientEntry>) {
    entry.queue.begin_close();
    entry.closing.close();
    if let Some(p) = &entry.provider {
        p.revoke();
    }
    if entry.queue.drained_here() {
        let deferred = entry.clone();
        entry
            .queue
            .defer_after_callback(Box::new(move || teardown(deferred)));
    } else if on_engine_thread() {
        // The log callback on a runtime thread: waiting here would stall the engine task that
        // called it, so the teardown runs on a thread of its own.
        let spare = entry.clone();
        let spawned = std::thread::Builder::new()
            .name("wps-free".into())
            .spawn(move || teardown(spare));
        if spawned.is_err() {
            teardown(entry);
        }
    } else {
        teardown(entry);
    }
}

/// Tears a client down within its shutdown timeout: stops the connection, lets a running URL
/// provider call return, completes every accepted operation (`WPS_ERR_CANCELLED` unless it
/// finished), then, as owner of the event queue, delivers what is still owed (completions,
/// `WPS_EVENT_DISCONNECTED`, `WPS_EVENT_STOPPED`) and runs every `user_data_free` once.
///
/// What it cannot wait for within the timeout is handed over instead of waited for: a provider
/// call still running runs the provider's destructor when it returns; a callback still running
/// on another thread (or one whose thread waits for this one) finishes the teardown on its
/// thread when it returns.
pub(crate) fn teardown(entry: Arc<ClientEntry>) {
    let deadline = Instant::now() + entry.shutdown_timeout;
    let client = entry.client.clone();
    let stopped = run_detached(&entry.rt, Some(entry.shutdown_timeout), async move {
        let _ = client.stop().await;
    });
    if stopped.is_err() {
        crate::wps_log!(
            Warning,
            "client {}: stop did not finish within the shutdown timeout",
            entry.id
        );
    }
    if let Some(p) = &entry.provider {
        p.wait_idle(deadline);
    }
    entry.queue.finish_ops(deadline);
    let queue = entry.queue.clone();
    entry.queue.claim(
        deadline,
        Box::new(move || queue.deliver_remaining_and_close(deadline)),
    );
}

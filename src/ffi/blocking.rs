//! Running engine futures for C callers: blocking calls wait on a std channel (never
//! `block_on` on a runtime thread), async calls report exactly one completion.

use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use futures_util::task::noop_waker_ref;
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::dispatch::{EventQueue, Item, Target};
use super::error::{Failure, WPS_ERR_INTERNAL, WPS_ERR_TIMEOUT};
use super::event::{cancelled, Completed, OwnedEvent};
use super::handle::globals;
use super::pool::BlockingSection;

/// Blocks SIGPIPE on the calling (library-owned) thread; the host's disposition is untouched.
pub(crate) fn block_sigpipe() {
    // SAFETY: plain libc calls on a zeroed, locally owned sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Cancellation shared by every operation of one client: set when the client is freed.
#[derive(Clone)]
pub(crate) struct Closing {
    tx: Arc<watch::Sender<bool>>,
}

impl Closing {
    pub fn new() -> Closing {
        Closing {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    pub fn close(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the client was freed.
    fn is_closed(&self) -> bool {
        *self.tx.borrow()
    }

    /// Runs `fut` unless the client is closed first.
    fn guard<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, Failure>> + Send + 'static,
    ) -> impl Future<Output = Result<T, Failure>> + Send + 'static
    where
        T: Send + 'static,
    {
        let mut rx = self.tx.subscribe();
        async move {
            tokio::select! {
                r = fut => r,
                _ = rx.wait_for(|closed| *closed) => Err(cancelled(what)),
            }
        }
    }
}

fn timed_out(what: &str, limit: Duration) -> Failure {
    Failure::new(
        WPS_ERR_TIMEOUT,
        format!("{what} did not finish within {} ms", limit.as_millis()),
    )
}

/// Runs `fut` with the shared runtime and waits for it on the calling thread, at most `limit`.
/// Never blocks a runtime worker in `block_on`.
pub(crate) fn wait<T: Send + 'static>(
    rt: &Handle,
    closing: &Closing,
    what: &'static str,
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> Result<T, Failure> {
    if closing.is_closed() {
        return Err(cancelled(what));
    }
    // Many calls finish without waiting (a fire-and-forget send queued behind others): poll
    // once right here, which spares them the runtime entry and parking of `block_on`.
    let mut fut = Box::pin(fut);
    {
        let _context = rt.enter();
        let mut cx = Context::from_waker(noop_waker_ref());
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
    }
    let fut = closing.guard(what, fut);
    let _section = BlockingSection::enter(&globals().pool);
    if Handle::try_current().is_err() {
        // An application (or callback pool) thread: drive the future right here while the
        // runtime's threads do the I/O; this saves a task and two thread hand-offs per call.
        return rt.block_on(async move {
            match limit {
                None => fut.await,
                Some(d) => tokio::time::timeout(d, fut)
                    .await
                    .unwrap_or_else(|_| Err(timed_out(what, d))),
            }
        });
    }
    // Inside the runtime's context (a URL provider or log callback calling back in), where
    // block_on is not allowed: run the future as a task and wait for its result.
    let (tx, rx) = mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    let gone = || {
        Failure::new(
            WPS_ERR_INTERNAL,
            format!("{what}: the runtime dropped the operation"),
        )
    };
    match limit {
        None => rx.recv().unwrap_or_else(|_| Err(gone())),
        Some(d) => match rx.recv_timeout(d) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out(what, d)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        },
    }
}

/// Describes the completion an async operation owes.
pub(crate) struct Completion {
    pub op: u32,
    pub what: &'static str,
    pub group: Option<String>,
    pub ack_id: u64,
    pub op_context: usize,
    pub target: Target,
}

impl Completion {
    /// The completion of one async call: to `on_complete` when given, else to the callback
    /// registered for `WPS_EVENT_ACK`.
    pub fn new(
        op: u32,
        what: &'static str,
        group: Option<String>,
        ack_id: u64,
        on_complete: super::dispatch::wps_event_fn,
        op_context: *mut std::ffi::c_void,
    ) -> Completion {
        Completion {
            op,
            what,
            group,
            ack_id,
            op_context: op_context as usize,
            target: on_complete.map_or(Target::Registered, Target::Completion),
        }
    }
}

/// Delivers the completion exactly once: with the outcome, or as cancelled if the task is
/// dropped before it finished (runtime shut down).
struct CompletionGuard {
    queue: Arc<EventQueue>,
    completion: Option<Completion>,
}

impl CompletionGuard {
    fn complete(mut self, outcome: Result<Completed, Failure>) {
        if let Some(c) = self.completion.take() {
            deliver(&self.queue, c, outcome);
        }
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            let what = c.what;
            deliver(&self.queue, c, Err(cancelled(what)));
        }
    }
}

fn deliver(queue: &Arc<EventQueue>, c: Completion, outcome: Result<Completed, Failure>) {
    let event = OwnedEvent::completion(c.op, c.group.as_deref(), c.ack_id, c.op_context, outcome);
    queue.finish_op(Item {
        event,
        target: c.target,
    });
}

/// Starts `fut`; its outcome is queued as the operation's completion.
///
/// The future is polled once right here, inside the runtime's context, so that the engine
/// command it issues is queued before this call returns: operations started one after the
/// other from one thread reach the engine (and the service) in that order. What remains is
/// spawned as a task.
pub(crate) fn spawn_op(
    rt: &Handle,
    closing: &Closing,
    queue: &Arc<EventQueue>,
    completion: Completion,
    fut: impl Future<Output = Result<Completed, Failure>> + Send + 'static,
) {
    queue.begin_op();
    let guard = CompletionGuard {
        queue: queue.clone(),
        completion: Some(completion),
    };
    let what = guard.completion.as_ref().map_or("operation", |c| c.what);
    let fut = closing.guard(what, fut);
    let mut task = Box::pin(async move {
        let outcome = fut.await;
        guard.complete(outcome);
    });
    let _context = rt.enter();
    let mut cx = Context::from_waker(noop_waker_ref());
    // Futures may be polled with a different waker each time; the task's own waker takes over
    // from the next poll on.
    if task.as_mut().poll(&mut cx).is_pending() {
        rt.spawn(task);
    }
}

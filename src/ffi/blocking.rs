//! Running engine futures for C callers: blocking calls wait on a std channel (never
//! `block_on` on a runtime thread), async calls report exactly one completion.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Context;
use std::time::{Duration, Instant};

use futures_util::task::noop_waker_ref;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::dispatch::EventQueue;
use super::error::{Failure, WPS_ERR_INTERNAL, WPS_ERR_INVALID_STATE, WPS_ERR_TIMEOUT};
use super::event::{cancelled, Completed};
use super::handle::globals;
use super::pending::Completion;
use super::pool::BlockingSection;
use super::provider::in_provider_call;

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
/// A flag and a `Notify` rather than a watch channel, whose waiter lists cost every client
/// about 300 bytes.
#[derive(Clone)]
pub(crate) struct Closing {
    inner: Arc<ClosingInner>,
}

struct ClosingInner {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    pub fn new() -> Closing {
        Closing {
            inner: Arc::new(ClosingInner {
                closed: AtomicBool::new(false),
                notify: Notify::new(),
            }),
        }
    }

    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether the client was freed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Resolves once the client is freed.
    async fn closed(inner: Arc<ClosingInner>) {
        loop {
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read: a close in between still wakes this waiter.
            notified.as_mut().enable();
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
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
        let inner = self.inner.clone();
        async move {
            tokio::select! {
                r = fut => r,
                _ = Closing::closed(inner) => Err(cancelled(what)),
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

/// One result handed from a runtime task to a waiting thread. Waiting needs only a mutex and a
/// condition variable, no thread-local state, so it also works during thread and process exit.
struct Slot<T> {
    value: Mutex<SlotState<T>>,
    filled: Condvar,
}

enum SlotState<T> {
    Empty,
    Full(T),
    /// The sending side was dropped without a value (the task was dropped).
    Gone,
}

/// The sending side of a [`Slot`]; marks it gone if dropped unsent.
struct SlotSender<T>(Option<Arc<Slot<T>>>);

impl<T> SlotSender<T> {
    fn send(mut self, value: T) {
        if let Some(slot) = self.0.take() {
            slot.set(SlotState::Full(value));
        }
    }
}

impl<T> Drop for SlotSender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            slot.set(SlotState::Gone);
        }
    }
}

impl<T> Slot<T> {
    fn new() -> (Arc<Slot<T>>, SlotSender<T>) {
        let slot = Arc::new(Slot {
            value: Mutex::new(SlotState::Empty),
            filled: Condvar::new(),
        });
        (slot.clone(), SlotSender(Some(slot)))
    }

    fn set(&self, state: SlotState<T>) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.filled.notify_all();
    }

    /// The value; `Err(true)` if the sender is gone, `Err(false)` at `deadline`.
    fn take(&self, deadline: Option<Instant>) -> Result<T, bool> {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::replace(&mut *value, SlotState::Empty) {
                SlotState::Full(v) => return Ok(v),
                SlotState::Gone => return Err(true),
                SlotState::Empty => {}
            }
            value = match deadline {
                None => self.filled.wait(value).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(false);
                    }
                    self.filled
                        .wait_timeout(value, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// Runs `fut` on the shared runtime and returns its result, waiting at most `limit` (the
/// runtime keeps running it after a timeout, which the future itself bounds).
pub(crate) fn run_detached<T: Send + 'static>(
    rt: &Handle,
    limit: Option<Duration>,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, bool> {
    let (slot, sender) = Slot::new();
    rt.spawn(async move { sender.send(fut.await) });
    slot.take(limit.map(|d| Instant::now() + d))
}

/// Where the calling thread stands with respect to tokio's thread-local runtime context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RuntimeContext {
    /// No runtime entered: an application or callback thread; `block_on` works.
    Outside,
    /// Inside some runtime's context, where `block_on` is not allowed.
    Inside,
    /// The thread's storage is already destroyed (an `atexit` handler or a thread-local
    /// destructor): neither entering the runtime nor polling here is possible.
    Exiting,
}

fn runtime_context() -> RuntimeContext {
    match Handle::try_current() {
        Ok(_) => RuntimeContext::Inside,
        Err(e) if e.is_thread_local_destroyed() => RuntimeContext::Exiting,
        Err(_) => RuntimeContext::Outside,
    }
}

/// Whether the calling thread is one of the library's runtime threads outside a URL provider
/// call: user code there (the log callback) runs inside an engine task, which a blocking call
/// would wait for.
pub(crate) fn on_engine_thread() -> bool {
    crate::runtime::on_runtime_thread() && !in_provider_call()
}

/// Refuses a call that would wait on one of the library's runtime threads.
pub(crate) fn refuse_on_engine_thread(what: &str) -> Result<(), Failure> {
    if on_engine_thread() {
        return Err(Failure::new(
            WPS_ERR_INVALID_STATE,
            format!(
                "{what} would block one of the library's runtime threads (the log callback \
                 runs there); call it from another thread, or use the _async variant"
            ),
        ));
    }
    Ok(())
}

/// Runs `fut` with the shared runtime and waits for it on the calling thread, at most `limit`.
/// Never blocks a runtime worker in `block_on`; refused on the library's runtime threads
/// (except inside a URL provider call).
pub(crate) fn wait<T: Send + 'static>(
    rt: &Handle,
    closing: &Closing,
    what: &'static str,
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T, Failure>> + Send + 'static,
) -> Result<T, Failure> {
    refuse_on_engine_thread(what)?;
    if closing.is_closed() {
        return Err(cancelled(what));
    }
    let context = runtime_context();
    let mut fut = Box::pin(fut);
    if context != RuntimeContext::Exiting {
        // Many calls finish without waiting (a fire-and-forget send queued behind others):
        // poll once right here, which spares them the runtime entry and parking of `block_on`.
        let _context = rt.enter();
        let mut cx = Context::from_waker(noop_waker_ref());
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
    }
    let fut = closing.guard(what, fut);
    let _section = BlockingSection::enter(&globals().pool);
    if context == RuntimeContext::Outside {
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
    // Inside a runtime's context (a URL provider calling back in, or a host application's own
    // runtime), where block_on is not allowed, or at thread exit: run the future as a task and
    // wait for its result.
    match run_detached(rt, limit, fut) {
        Ok(r) => r,
        Err(false) => Err(timed_out(what, limit.unwrap_or_default())),
        Err(true) => Err(Failure::new(
            WPS_ERR_INTERNAL,
            format!("{what}: the runtime dropped the operation"),
        )),
    }
}

/// Queues the operation's completion exactly once: with the outcome, or as cancelled if the
/// task is dropped before it finished (runtime shut down).
/// The completion an accepted operation owes: delivered once by `complete`, or as cancelled
/// when dropped without it.
pub(crate) struct CompletionGuard {
    queue: Arc<EventQueue>,
    id: u64,
    what: &'static str,
    done: bool,
}

impl CompletionGuard {
    /// Records an accepted operation (refused once the client is being freed).
    pub(crate) fn begin(
        queue: &Arc<EventQueue>,
        completion: Completion,
    ) -> Result<CompletionGuard, Failure> {
        let what = completion.what;
        let id = queue.begin_op(completion)?;
        Ok(CompletionGuard {
            queue: queue.clone(),
            id,
            what,
            done: false,
        })
    }

    /// Queues the operation's completion.
    pub(crate) fn complete(mut self, outcome: Result<Completed, Failure>) {
        self.done = true;
        self.queue.finish_op(self.id, outcome);
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if !self.done {
            self.queue.finish_op(self.id, Err(cancelled(self.what)));
        }
    }
}

/// Starts `fut` if the client still accepts operations (not once it is being freed); its
/// outcome is queued as the operation's completion.
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
) -> Result<(), Failure> {
    let what = completion.what;
    let guard = CompletionGuard::begin(queue, completion)?;
    let fut = closing.guard(what, fut);
    let mut task = Box::pin(async move {
        let outcome = fut.await;
        guard.complete(outcome);
    });
    if runtime_context() != RuntimeContext::Exiting {
        let _context = rt.enter();
        let mut cx = Context::from_waker(noop_waker_ref());
        // Futures may be polled with a different waker each time; the task's own waker takes
        // over from the next poll on.
        if task.as_mut().poll(&mut cx).is_ready() {
            return Ok(());
        }
    }
    rt.spawn(task);
    Ok(())
}

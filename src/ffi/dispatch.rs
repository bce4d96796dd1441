//! Event delivery. Each client's events form a serial queue. In thread mode a small shared pool
//! of "wps-cb" threads drains the queues (at most one pool thread per client at a time, so a
//! client's events are ordered and never concurrent, one thread hop from the engine task). In
//! poll mode the application drains its client's queue with `wps_client_dispatch`, woken by a
//! file descriptor that is readable while events are pending.
//!
//! No internal lock is held while user code runs: the callback pointer is copied out under the
//! lock and called after it is released.
//!
//! Teardown (`wps_client_free`) first marks the queue closing: from then on no operation,
//! registration or drainer is accepted. It then takes the queue over from the thread draining
//! it, or, when it cannot wait for that thread, hands the rest of the teardown to it, to run
//! right after its current callback returns.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{Failure, WPS_ERR_INVALID_HANDLE};
use super::event::{
    wps_event, Completed, OwnedEvent, MAX_EVENT_TYPE, WPS_EVENT_ACK, WPS_EVENT_DISCONNECTED,
    WPS_EVENT_GROUP_MESSAGE, WPS_EVENT_SERVER_MESSAGE, WPS_EVENT_STOPPED,
};
use super::pending::{Completion, Pending};
use super::pool::{Pool, PoolInner};
use super::waits::{begin_wait, ThreadToken};
use crate::client::Backlog;

/// Callbacks run on the library's shared callback threads (default).
pub const WPS_DISPATCH_THREAD: u32 = 1;
/// Callbacks run inside `wps_client_dispatch` on the application's thread.
pub const WPS_DISPATCH_POLL: u32 = 2;

/// An event callback: `user_data` as registered, the event borrowed until the function returns.
#[allow(non_camel_case_types)]
pub type wps_event_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const wps_event)>;

/// Destructor for a callback's `user_data`, called exactly once after its last use.
#[allow(non_camel_case_types)]
pub type wps_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The raw function type behind [`wps_event_fn`].
pub(crate) type EventFn = unsafe extern "C" fn(*mut c_void, *const wps_event);

/// Events per turn a pool thread delivers for one client before letting others run.
const POOL_BATCH: usize = 64;

/// Delivery mode of one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Thread,
    Poll,
}

/// One registered callback; its destructor runs when the last clone is dropped, i.e. after the
/// registration was replaced or removed and no invocation is in flight.
pub(crate) struct Registration {
    func: EventFn,
    user_data: usize,
    free: wps_free_fn,
}

impl Registration {
    pub fn new(func: EventFn, user_data: *mut c_void, free: wps_free_fn) -> Registration {
        Registration {
            func,
            user_data: user_data as usize,
            free,
        }
    }

    /// Gives `user_data` back to the caller: the destructor will not run.
    fn disown(mut self) {
        self.free = None;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the application registered `free` for exactly this user_data; this is the
            // single drop of the registration, after its last invocation returned.
            unsafe { free(self.user_data as *mut c_void) };
        }
    }
}

/// Where a queued item goes.
pub(crate) enum Target {
    /// The callback registered for the event's type.
    Registered,
    /// A per-operation completion function, called with the operation's context.
    Completion(EventFn),
}

pub(crate) struct Item {
    pub event: OwnedEvent,
    pub target: Target,
}

/// Work to run on the draining thread right after the current callback returns.
pub(crate) type Deferred = Box<dyn FnOnce() + Send>;

struct QState {
    events: VecDeque<Item>,
    /// The thread currently running this client's callbacks.
    drainer: Option<ThreadToken>,
    /// Queued on the pool's run queue.
    scheduled: bool,
    /// `wps_client_free` started: no new operation, registration or drainer is accepted.
    closing: bool,
    /// After teardown: nothing is queued or delivered any more.
    closed: bool,
    /// A teardown waits to take over the queue: the drainer stops after the current callback.
    yield_requested: bool,
    /// Accepted `_async` operations and the order of completions around `STOPPED`.
    pending: Pending,
    /// Teardown handed to the drainer, run right after its current callback returns.
    deferred: Option<Deferred>,
    /// Poll mode: readable while `events` is non-empty.
    fd: Option<OwnedFd>,
    /// Threads waiting on the condition variable (a notify without waiters would still cost
    /// a system call).
    waiters: usize,
}

impl QState {
    /// Wakes the threads waiting on `cond`, if any.
    fn notify(&self, cond: &Condvar) {
        if self.waiters > 0 {
            cond.notify_all();
        }
    }
}

/// The callback table, and how many `set_callback` calls are still dropping a replaced
/// registration (running its destructor) outside the lock.
struct Callbacks {
    table: Vec<Option<Arc<Registration>>>,
    replacing: usize,
}

/// A client's event queue and callback table.
pub(crate) struct EventQueue {
    client_id: u64,
    mode: Mode,
    pool: Arc<PoolInner>,
    state: Mutex<QState>,
    cond: Condvar,
    callbacks: Mutex<Callbacks>,
    replaced: Condvar,
    /// The bound on queued messages the engine observes (it stops reading while full).
    backlog: Option<Arc<Backlog>>,
}

/// The payload size a queued item counts in the backlog: messages count, other events
/// (lifecycle, completions) do not.
fn backlog_bytes(item: &Item) -> Option<usize> {
    match item.event.kind {
        WPS_EVENT_SERVER_MESSAGE | WPS_EVENT_GROUP_MESSAGE => {
            Some(item.event.data.as_ref().map_or(0, Vec::len))
        }
        _ => None,
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_event_fd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory-safety preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fd_signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

fn fd_reset(fd: &OwnedFd) {
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64 from an eventfd we own (non-blocking).
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
}

fn freed() -> Failure {
    Failure::new(WPS_ERR_INVALID_HANDLE, "the client is being freed")
}

/// How `claim` ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The calling thread owns the queue now.
    Taken,
    /// The drainer will run the rest of the teardown after its current callback returns.
    HandedOff,
}

impl EventQueue {
    pub fn new(
        client_id: u64,
        mode: Mode,
        pool: &Pool,
        backlog: Option<Arc<Backlog>>,
    ) -> std::io::Result<Arc<EventQueue>> {
        let fd = match mode {
            Mode::Poll => Some(new_event_fd()?),
            Mode::Thread => None,
        };
        Ok(Arc::new(EventQueue {
            client_id,
            mode,
            pool: pool.inner.clone(),
            state: Mutex::new(QState {
                events: VecDeque::new(),
                drainer: None,
                scheduled: false,
                closing: false,
                closed: false,
                yield_requested: false,
                pending: Pending::default(),
                deferred: None,
                fd,
                waiters: 0,
            }),
            cond: Condvar::new(),
            callbacks: Mutex::new(Callbacks {
                table: vec![None; MAX_EVENT_TYPE as usize + 1],
                replacing: 0,
            }),
            replaced: Condvar::new(),
            backlog,
        }))
    }

    /// The backlog the engine observes.
    pub fn backlog(&self) -> Option<Arc<Backlog>> {
        self.backlog.clone()
    }

    /// Counts a message leaving the queue.
    fn left_queue(&self, item: &Item) {
        if let (Some(b), Some(bytes)) = (&self.backlog, backlog_bytes(item)) {
            b.removed(bytes);
        }
    }

    /// Waits on the condition variable (at most `timeout`), counted in `waiters`.
    fn wait<'a>(
        &self,
        mut st: MutexGuard<'a, QState>,
        timeout: Duration,
    ) -> MutexGuard<'a, QState> {
        st.waiters += 1;
        let mut st = self
            .cond
            .wait_timeout(st, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        st.waiters -= 1;
        st
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Poll mode: the descriptor that is readable while events are pending.
    pub fn raw_fd(&self) -> Option<RawFd> {
        lock(&self.state).fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Sets, replaces or (with `None`) removes the callback for `kind`. The replaced
    /// registration's destructor runs once its in-flight invocation (if any) has returned.
    /// Refused once the client is being freed; `reg` is then given back unrun (the caller keeps
    /// its user data).
    pub fn set_callback(&self, kind: u32, reg: Option<Registration>) -> Result<(), Failure> {
        let old = {
            let mut callbacks = lock(&self.callbacks);
            if lock(&self.state).closing {
                drop(callbacks);
                if let Some(reg) = reg {
                    reg.disown();
                }
                return Err(freed());
            }
            let old = std::mem::replace(&mut callbacks.table[kind as usize], reg.map(Arc::new));
            callbacks.replacing += 1;
            old
        };
        // The destructor may run here (no invocation in flight): teardown waits for it.
        drop(old);
        let mut callbacks = lock(&self.callbacks);
        callbacks.replacing -= 1;
        if callbacks.replacing == 0 {
            self.replaced.notify_all();
        }
        Ok(())
    }

    fn enqueue(self: &Arc<Self>, st: &mut QState, item: Item) {
        if st.closed {
            return;
        }
        if st.events.is_empty() {
            if let Some(fd) = &st.fd {
                fd_signal(fd);
            }
        }
        if let (Some(b), Some(bytes)) = (&self.backlog, backlog_bytes(&item)) {
            b.added(bytes);
        }
        st.events.push_back(item);
        match self.mode {
            Mode::Thread => {
                if !st.scheduled && st.drainer.is_none() && !st.closing {
                    st.scheduled = true;
                    self.pool.submit(self.clone());
                }
            }
            Mode::Poll => st.notify(&self.cond),
        }
    }

    /// Queues what the operation bookkeeping released, in order.
    fn enqueue_ready(self: &Arc<Self>, st: &mut QState) {
        while let Some(item) = st.pending.next_ready() {
            self.enqueue(st, item);
        }
    }

    /// Queues an engine event (called from the engine task; never blocks on user code).
    pub fn push_event(self: &Arc<Self>, event: OwnedEvent) {
        let mut st = lock(&self.state);
        let item = Item {
            event,
            target: Target::Registered,
        };
        if let Some(item) = st.pending.event_now(item) {
            self.enqueue(&mut st, item);
        }
        self.enqueue_ready(&mut st);
    }

    /// A blocking start call begins a new session (see `pending`).
    pub fn start_session(&self) {
        lock(&self.state).pending.start_session();
    }

    /// Accepts an `_async` operation; its completion must follow via [`Self::finish_op`] (or
    /// the teardown produces it). Refused once the client is being freed.
    pub fn begin_op(&self, completion: Completion) -> Result<u64, Failure> {
        let mut st = lock(&self.state);
        if st.closing {
            return Err(freed());
        }
        Ok(st.pending.begin(completion))
    }

    /// Queues the completion of operation `id` (ignored if teardown already completed it).
    pub fn finish_op(self: &Arc<Self>, id: u64, outcome: Result<Completed, Failure>) {
        let mut st = lock(&self.state);
        if let Some(item) = st.pending.finish_now(id, outcome) {
            self.enqueue(&mut st, item);
        }
        self.enqueue_ready(&mut st);
        if !st.pending.has_ops() {
            st.notify(&self.cond);
        }
    }

    /// Teardown, first step: refuses new operations, registrations and drainers. Returns
    /// whether this call started the closing.
    pub fn begin_close(&self) -> bool {
        let mut st = lock(&self.state);
        !std::mem::replace(&mut st.closing, true)
    }

    /// Waits until every accepted operation's completion is queued, or until `deadline`; then
    /// completes the rest as cancelled. Afterwards every accepted operation has exactly one
    /// completion queued, before the `STOPPED` it belongs before.
    pub fn finish_ops(self: &Arc<Self>, deadline: Instant) {
        let mut st = lock(&self.state);
        while st.pending.has_ops() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self.wait(st, deadline - now);
        }
        if st.pending.has_ops() {
            crate::wps_log!(
                Warning,
                "client {}: operations still running at teardown complete as cancelled",
                self.client_id
            );
            st.pending.cancel_all();
        }
        self.enqueue_ready(&mut st);
    }

    /// Whether the calling thread drains this queue, i.e. runs inside one of its callbacks (the
    /// drainer runs no other user code). Needs no thread-local storage, so it also answers
    /// during thread and process exit.
    pub fn drained_here(&self) -> bool {
        lock(&self.state).drainer == Some(ThreadToken::current())
    }

    /// Runs `f` right after the callback currently running on this thread returns.
    pub fn defer_after_callback(&self, f: Deferred) {
        lock(&self.state).deferred = Some(f);
    }

    fn deliver(&self, item: Item) {
        let view = item.event.as_ffi();
        match item.target {
            Target::Completion(func) => {
                // SAFETY: `func` was given by the application for this operation together with
                // `op_context`; `view` and the data it points to live until the call returns.
                unsafe { func(item.event.op_context as *mut c_void, &view) };
            }
            Target::Registered => {
                let reg = lock(&self.callbacks)
                    .table
                    .get(item.event.kind as usize)
                    .cloned()
                    .flatten();
                if let Some(reg) = reg {
                    // SAFETY: the application registered `func` with `user_data`; the clone of the
                    // registration keeps its destructor from running during the call; `view`
                    // and its data live until the call returns. No lock is held.
                    unsafe { (reg.func)(reg.user_data as *mut c_void, &view) };
                }
            }
        }
    }

    /// Delivers up to `max` events; the caller must be the drainer. Stops early when a teardown
    /// waits for the queue or was handed to this thread.
    fn run_batch(&self, max: usize) -> usize {
        let mut n = 0;
        loop {
            let item = {
                let mut st = lock(&self.state);
                if n >= max || st.yield_requested || st.closed || st.deferred.is_some() {
                    break;
                }
                let Some(item) = st.events.pop_front() else {
                    break;
                };
                self.left_queue(&item);
                if st.events.is_empty() {
                    if let Some(fd) = &st.fd {
                        fd_reset(fd);
                    }
                }
                item
            };
            self.deliver(item);
            n += 1;
        }
        n
    }

    /// Gives the queue up after a batch (rescheduling on the pool if events are left), or runs
    /// the teardown that was handed to this thread meanwhile.
    fn release(self: &Arc<Self>) {
        let handed = {
            let mut st = lock(&self.state);
            if st.drainer != Some(ThreadToken::current()) {
                return;
            }
            match st.deferred.take() {
                Some(teardown) => Some(teardown),
                None => {
                    st.drainer = None;
                    if st.events.is_empty() && st.events.capacity() > 0 {
                        // A quiet client keeps no queue storage (nor what a burst grew it to);
                        // the next event's allocation costs less than the wake-up it brings.
                        st.events = VecDeque::new();
                    }
                    if self.mode == Mode::Thread
                        && !st.closing
                        && !st.events.is_empty()
                        && !st.scheduled
                    {
                        st.scheduled = true;
                        self.pool.submit(self.clone());
                    }
                    st.notify(&self.cond);
                    None
                }
            }
        };
        if let Some(teardown) = handed {
            // Still the drainer: the teardown owns the queue and closes it.
            teardown();
        }
    }

    /// One pool turn for this client.
    pub(super) fn pool_turn(self: &Arc<Self>) {
        {
            let mut st = lock(&self.state);
            st.scheduled = false;
            if st.drainer.is_some() || st.closing || st.events.is_empty() {
                return;
            }
            st.drainer = Some(ThreadToken::current());
        }
        Draining::new(self).run(POOL_BATCH);
    }

    /// Poll mode: delivers up to `max` pending events (0 = all that are pending) on the calling
    /// thread, waiting up to `timeout` for the first one. Nested calls from inside this
    /// client's callback deliver nothing.
    pub fn dispatch(self: &Arc<Self>, max: usize, timeout: Duration) -> usize {
        if self.drained_here() {
            return 0;
        }
        let deadline = Instant::now() + timeout;
        {
            let mut st = lock(&self.state);
            loop {
                if st.closing {
                    return 0;
                }
                if st.drainer.is_none() && !st.events.is_empty() {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return 0;
                }
                st = self.wait(st, deadline - now);
            }
            st.drainer = Some(ThreadToken::current());
        }
        let max = if max == 0 { usize::MAX } else { max };
        Draining::new(self).run(max)
    }

    /// Teardown: takes the queue over. A callback running on another thread is waited for
    /// until `deadline`, unless that thread waits (through other teardowns) for this one. When
    /// the queue cannot be had in time, `rest` is handed to the draining thread, which runs it
    /// right after its current callback returns; otherwise the caller runs `rest`.
    pub fn claim(&self, deadline: Instant, rest: Deferred) -> Claim {
        let me = ThreadToken::current();
        let mut st = lock(&self.state);
        let Some(drainer) = st.drainer.filter(|d| *d != me) else {
            st.drainer = Some(me);
            drop(st);
            rest();
            return Claim::Taken;
        };
        st.yield_requested = true;
        // Recorded while the queue lock is held, so the drainer cannot have left meanwhile.
        if let Some(_waiting) = begin_wait(drainer) {
            while st.drainer.is_some() {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = self.wait(st, deadline - now);
            }
            if st.drainer.is_none() {
                st.drainer = Some(me);
                drop(st);
                rest();
                return Claim::Taken;
            }
            crate::wps_log!(
                Warning,
                "client {}: a callback still runs at the end of the shutdown timeout; the \
                 teardown finishes on its thread when it returns",
                self.client_id
            );
        }
        st.deferred = Some(rest);
        Claim::HandedOff
    }

    /// Teardown, by the owner of the queue: delivers what is still queued and owed to the
    /// application (operation completions, DISCONNECTED, STOPPED; messages are dropped), then
    /// closes the queue, drops the registrations (running their destructors, after any
    /// `set_callback` still running one has returned, waiting for that until `deadline`) and
    /// closes the poll fd.
    pub fn deliver_remaining_and_close(&self, deadline: Instant) {
        loop {
            let item = {
                let mut st = lock(&self.state);
                match st.events.pop_front() {
                    Some(item) => {
                        self.left_queue(&item);
                        item
                    }
                    None => {
                        st.closed = true;
                        break;
                    }
                }
            };
            if delivered_at_teardown(&item) {
                self.deliver(item);
            }
        }
        let registrations: Vec<_> = {
            let mut callbacks = lock(&self.callbacks);
            while callbacks.replacing > 0 {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                callbacks = self
                    .replaced
                    .wait_timeout(callbacks, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            callbacks.table.iter_mut().map(Option::take).collect()
        };
        drop(registrations);
        let fd = {
            let mut st = lock(&self.state);
            st.drainer = None;
            st.deferred = None;
            st.fd.take()
        };
        drop(fd);
        lock(&self.state).notify(&self.cond);
    }
}

#[cfg(test)]
impl EventQueue {
    /// Frees the queue as `wps_client_free` does, from a thread outside its callbacks.
    pub(crate) fn close_now(self: &Arc<Self>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        self.begin_close();
        self.finish_ops(deadline);
        let q = self.clone();
        let claim = self.claim(
            deadline,
            Box::new(move || q.deliver_remaining_and_close(deadline)),
        );
        assert_eq!(claim, Claim::Taken);
    }
}

/// The current thread drains a queue; releases it when done, also if delivery unwinds.
struct Draining<'a> {
    queue: &'a Arc<EventQueue>,
    released: bool,
}

impl<'a> Draining<'a> {
    fn new(queue: &'a Arc<EventQueue>) -> Draining<'a> {
        Draining {
            queue,
            released: false,
        }
    }

    fn run(mut self, max: usize) -> usize {
        let n = self.queue.run_batch(max);
        self.released = true;
        self.queue.release();
        n
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.queue.release();
        }
    }
}

/// Whether a queued item still reaches the application once the client is being freed.
fn delivered_at_teardown(item: &Item) -> bool {
    matches!(item.target, Target::Completion(_))
        || matches!(
            item.event.kind,
            WPS_EVENT_ACK | WPS_EVENT_DISCONNECTED | WPS_EVENT_STOPPED
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::event::{WPS_EVENT_SERVER_MESSAGE, WPS_OP_SEND_TO_GROUP};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// What the test callback observed.
    #[derive(Default)]
    struct Seen {
        order: Mutex<Vec<u64>>,
        arrived: Condvar,
        running: AtomicBool,
        overlapped: AtomicBool,
        freed: AtomicUsize,
    }

    unsafe extern "C" fn record(user_data: *mut c_void, event: *const wps_event) {
        // SAFETY: the tests register a live `Seen` and the library passes a live event.
        let (seen, event) = unsafe { (&*(user_data as *const Seen), &*event) };
        if seen.running.swap(true, Ordering::SeqCst) {
            seen.overlapped.store(true, Ordering::SeqCst);
        }
        seen.order.lock().unwrap().push(event.sequence_id);
        seen.running.store(false, Ordering::SeqCst);
        seen.arrived.notify_all();
    }

    unsafe extern "C" fn count_free(user_data: *mut c_void) {
        // SAFETY: the tests register a live `Seen`.
        let seen = unsafe { &*(user_data as *const Seen) };
        seen.freed.fetch_add(1, Ordering::SeqCst);
    }

    fn message(seq: u64) -> OwnedEvent {
        OwnedEvent {
            kind: WPS_EVENT_SERVER_MESSAGE,
            sequence_id: seq,
            ..Default::default()
        }
    }

    /// Waits (with a deadline) until `n` events were recorded.
    fn wait_for_count(seen: &Seen, n: usize, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let mut order = seen.order.lock().unwrap();
        while order.len() < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            order = seen.arrived.wait_timeout(order, end - now).unwrap().0;
        }
        true
    }

    #[test]
    fn thread_mode_delivers_in_order_never_concurrently_and_frees_once() {
        let pool = Pool::new();
        let seen = Arc::new(Seen::default());
        let q = EventQueue::new(1, Mode::Thread, &pool, None).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        q.set_callback(
            WPS_EVENT_SERVER_MESSAGE,
            Some(Registration::new(record, ud, Some(count_free))),
        )
        .unwrap();
        for seq in 1..=2000 {
            q.push_event(message(seq));
        }
        assert!(wait_for_count(&seen, 2000, Duration::from_secs(10)));
        assert_eq!(*seen.order.lock().unwrap(), (1..=2000).collect::<Vec<_>>());
        assert!(!seen.overlapped.load(Ordering::SeqCst));
        q.close_now();
        assert_eq!(seen.freed.load(Ordering::SeqCst), 1);
        assert!(
            q.set_callback(
                WPS_EVENT_SERVER_MESSAGE,
                Some(Registration::new(record, ud, Some(count_free)))
            )
            .is_err(),
            "no registration after free"
        );
        assert_eq!(
            seen.freed.load(Ordering::SeqCst),
            1,
            "a refused destructor never runs"
        );
        q.push_event(message(9999));
        assert_eq!(
            seen.order.lock().unwrap().len(),
            2000,
            "nothing after close"
        );
    }

    #[test]
    fn a_drained_queue_keeps_no_storage() {
        let pool = Pool::new();
        let seen = Arc::new(Seen::default());
        let q = EventQueue::new(3, Mode::Poll, &pool, None).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        q.set_callback(
            WPS_EVENT_SERVER_MESSAGE,
            Some(Registration::new(record, ud, None)),
        )
        .unwrap();
        for seq in 1..=500 {
            q.push_event(message(seq));
        }
        assert!(lock(&q.state).events.capacity() >= 500);
        assert_eq!(q.dispatch(0, Duration::from_secs(5)), 500);
        let st = lock(&q.state);
        assert_eq!(st.events.capacity(), 0, "a burst's storage is given back");
        assert_eq!(
            st.pending.ready_capacity(),
            0,
            "events pass the ready list by"
        );
        drop(st);
        q.close_now();
    }

    #[test]
    fn poll_mode_fd_is_readable_exactly_while_events_are_pending() {
        let pool = Pool::new();
        let seen = Arc::new(Seen::default());
        let q = EventQueue::new(2, Mode::Poll, &pool, None).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        q.set_callback(
            WPS_EVENT_SERVER_MESSAGE,
            Some(Registration::new(record, ud, None)),
        )
        .unwrap();
        let fd = q.raw_fd().unwrap();
        let readable = || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable());
        for seq in 1..=3 {
            q.push_event(message(seq));
        }
        assert!(readable());
        assert_eq!(q.dispatch(2, Duration::ZERO), 2);
        assert!(readable(), "one event still pending");
        assert_eq!(q.dispatch(0, Duration::ZERO), 1);
        assert!(!readable());
        assert_eq!(
            q.dispatch(0, Duration::from_millis(20)),
            0,
            "times out with nothing pending"
        );
        assert_eq!(*seen.order.lock().unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn stopped_waits_for_pending_operation_completions() {
        let pool = Pool::new();
        let seen = Arc::new(Seen::default());
        let q = EventQueue::new(3, Mode::Poll, &pool, None).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        for kind in [WPS_EVENT_STOPPED, WPS_EVENT_ACK] {
            q.set_callback(kind, Some(Registration::new(record, ud, None)))
                .unwrap();
        }
        q.start_session();
        q.push_event(OwnedEvent {
            kind: crate::ffi::event::WPS_EVENT_CONNECTED,
            ..Default::default()
        });
        assert_eq!(q.dispatch(0, Duration::ZERO), 1);
        let op = q
            .begin_op(Completion::new(
                WPS_OP_SEND_TO_GROUP,
                "send",
                None,
                0,
                None,
                std::ptr::null_mut(),
            ))
            .unwrap();
        q.push_event(OwnedEvent {
            kind: WPS_EVENT_STOPPED,
            sequence_id: 2,
            ..Default::default()
        });
        assert_eq!(q.dispatch(0, Duration::ZERO), 0, "STOPPED is held back");
        q.finish_op(op, Ok(Completed::Unit));
        assert_eq!(q.dispatch(0, Duration::ZERO), 2);
        assert_eq!(
            *seen.order.lock().unwrap(),
            vec![0, 2],
            "completion (sequence id 0) before STOPPED"
        );
        q.begin_close();
        assert!(q
            .begin_op(Completion::new(
                WPS_OP_SEND_TO_GROUP,
                "send",
                None,
                0,
                None,
                std::ptr::null_mut()
            ))
            .is_err());
    }
}

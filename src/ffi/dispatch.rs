//! Event delivery. Each client's events form a serial queue. In thread mode a small shared pool
//! of "wps-cb" threads drains the queues (at most one pool thread per client at a time, so a
//! client's events are ordered and never concurrent, one thread hop from the engine task). In
//! poll mode the application drains its client's queue with `wps_client_dispatch`, woken by a
//! file descriptor that is readable while events are pending.
//!
//! No internal lock is held while user code runs: the callback pointer is copied out under the
//! lock and called after it is released.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::event::{
    wps_event, OwnedEvent, MAX_EVENT_TYPE, WPS_EVENT_ACK, WPS_EVENT_DISCONNECTED, WPS_EVENT_STOPPED,
};
use super::pool::{Pool, PoolInner};

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
    drainer: Option<ThreadId>,
    /// Queued on the pool's run queue.
    scheduled: bool,
    /// After teardown: nothing is queued or delivered any more.
    closed: bool,
    /// A teardown waits to take over the queue: the drainer stops after the current callback.
    yield_requested: bool,
    /// Accepted `_async` operations whose completion is not queued yet.
    pending_ops: usize,
    /// `STOPPED` held back until every pending operation's completion is queued.
    held_stopped: Option<Item>,
    /// Free requested from inside a callback of this client.
    deferred_free: Option<Deferred>,
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

/// A client's event queue and callback table.
pub(crate) struct EventQueue {
    client_id: u64,
    mode: Mode,
    pool: Arc<PoolInner>,
    state: Mutex<QState>,
    cond: Condvar,
    callbacks: Mutex<Vec<Option<Arc<Registration>>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// Client ids whose callback is running on this thread (innermost last).
    static IN_CALLBACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Whether the current thread is inside a callback of client `client_id`.
pub(crate) fn in_callback_of(client_id: u64) -> bool {
    IN_CALLBACK.with(|v| v.borrow().contains(&client_id))
}

struct CallbackScope;

impl CallbackScope {
    fn enter(client_id: u64) -> CallbackScope {
        IN_CALLBACK.with(|v| v.borrow_mut().push(client_id));
        CallbackScope
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|v| {
            v.borrow_mut().pop();
        });
    }
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

impl EventQueue {
    pub fn new(client_id: u64, mode: Mode, pool: &Pool) -> std::io::Result<Arc<EventQueue>> {
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
                closed: false,
                yield_requested: false,
                pending_ops: 0,
                held_stopped: None,
                deferred_free: None,
                fd,
                waiters: 0,
            }),
            cond: Condvar::new(),
            callbacks: Mutex::new(vec![None; MAX_EVENT_TYPE as usize + 1]),
        }))
    }

    /// Waits on the condition variable (at most `timeout`), counted in `waiters`.
    fn wait<'a>(
        &self,
        mut st: MutexGuard<'a, QState>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, QState> {
        st.waiters += 1;
        let mut st = match timeout {
            None => self.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                self.cond
                    .wait_timeout(st, d)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
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
    pub fn set_callback(&self, kind: u32, reg: Option<Registration>) {
        let old = {
            let mut table = lock(&self.callbacks);
            std::mem::replace(&mut table[kind as usize], reg.map(Arc::new))
        };
        drop(old);
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
        st.events.push_back(item);
        match self.mode {
            Mode::Thread => {
                if !st.scheduled && st.drainer.is_none() {
                    st.scheduled = true;
                    self.pool.submit(self.clone());
                }
            }
            Mode::Poll => st.notify(&self.cond),
        }
    }

    /// Queues an engine event (called from the engine task; never blocks on user code).
    pub fn push_event(self: &Arc<Self>, event: OwnedEvent) {
        let mut st = lock(&self.state);
        let item = Item {
            event,
            target: Target::Registered,
        };
        if item.event.kind == WPS_EVENT_STOPPED && st.pending_ops > 0 {
            st.held_stopped = Some(item);
            return;
        }
        self.enqueue(&mut st, item);
    }

    /// Counts an accepted `_async` operation; its completion must follow via [`Self::finish_op`].
    pub fn begin_op(&self) {
        lock(&self.state).pending_ops += 1;
    }

    /// Queues the completion of an operation counted by [`Self::begin_op`].
    pub fn finish_op(self: &Arc<Self>, item: Item) {
        let mut st = lock(&self.state);
        self.enqueue(&mut st, item);
        st.pending_ops = st.pending_ops.saturating_sub(1);
        if st.pending_ops == 0 {
            if let Some(stopped) = st.held_stopped.take() {
                self.enqueue(&mut st, stopped);
            }
        }
        st.notify(&self.cond);
    }

    /// Waits until every accepted operation's completion is queued, or until `deadline`.
    /// Returns whether all completed.
    pub fn wait_ops_done(&self, deadline: Instant) -> bool {
        let mut st = lock(&self.state);
        while st.pending_ops > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.wait(st, Some(deadline - now));
        }
        // Teardown owns the queue now: the held STOPPED goes last, after every completion.
        if let Some(stopped) = st.held_stopped.take() {
            st.events.push_back(stopped);
        }
        true
    }

    /// Runs `f` right after the callback currently running on this thread returns.
    pub fn defer_after_callback(&self, f: Deferred) {
        lock(&self.state).deferred_free = Some(f);
    }

    fn deliver(&self, item: Item) {
        let view = item.event.as_ffi();
        let _scope = CallbackScope::enter(self.client_id);
        match item.target {
            Target::Completion(func) => {
                // SAFETY: `func` was given by the application for this operation together with
                // `op_context`; `view` and the data it points to live until the call returns.
                unsafe { func(item.event.op_context as *mut c_void, &view) };
            }
            Target::Registered => {
                let reg = lock(&self.callbacks)
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

    /// Delivers up to `max` events; the caller must be the drainer. Returns how many ran, and
    /// whether a deferred free took the queue over (then the caller must not release it).
    fn run_batch(&self, max: usize) -> (usize, bool) {
        let mut n = 0;
        loop {
            let item = {
                let mut st = lock(&self.state);
                if let Some(teardown) = st.deferred_free.take() {
                    // The callback just delivered freed its own client.
                    drop(st);
                    teardown();
                    return (n, true);
                }
                if n >= max || st.yield_requested || st.closed {
                    break;
                }
                let Some(item) = st.events.pop_front() else {
                    break;
                };
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
        (n, false)
    }

    /// Gives the queue up after a batch; reschedules on the pool if events are left.
    fn release(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        if st.drainer != Some(thread::current().id()) {
            return;
        }
        st.drainer = None;
        if self.mode == Mode::Thread && !st.closed && !st.events.is_empty() && !st.scheduled {
            st.scheduled = true;
            self.pool.submit(self.clone());
        }
        st.notify(&self.cond);
    }

    /// One pool turn for this client.
    pub(super) fn pool_turn(self: &Arc<Self>) {
        {
            let mut st = lock(&self.state);
            st.scheduled = false;
            if st.drainer.is_some() || st.closed || st.events.is_empty() {
                return;
            }
            st.drainer = Some(thread::current().id());
        }
        Draining::new(self).run(POOL_BATCH);
    }

    /// Poll mode: delivers up to `max` pending events (0 = all that are pending) on the calling
    /// thread, waiting up to `timeout` for the first one. Nested calls from inside this
    /// client's callback deliver nothing.
    pub fn dispatch(self: &Arc<Self>, max: usize, timeout: Duration) -> usize {
        if in_callback_of(self.client_id) {
            return 0;
        }
        let deadline = Instant::now() + timeout;
        {
            let mut st = lock(&self.state);
            loop {
                if st.closed {
                    return 0;
                }
                if st.drainer.is_none() && !st.events.is_empty() {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return 0;
                }
                st = self.wait(st, Some(deadline - now));
            }
            st.drainer = Some(thread::current().id());
        }
        let max = if max == 0 { usize::MAX } else { max };
        Draining::new(self).run(max)
    }

    /// Teardown: takes the queue over, waiting for an in-flight callback on another thread to
    /// return (not when called from this client's own callback, which already owns it).
    pub fn claim(&self) {
        let me = thread::current().id();
        let mut st = lock(&self.state);
        if st.drainer == Some(me) {
            return;
        }
        st.yield_requested = true;
        while st.drainer.is_some() {
            st = self.wait(st, None);
        }
        st.drainer = Some(me);
    }

    /// Teardown, by the owner of the queue: delivers what is still queued and owed to the
    /// application (operation completions, DISCONNECTED, STOPPED; messages are dropped), then
    /// closes the queue, drops the registrations (running their destructors) and closes the
    /// poll fd.
    pub fn deliver_remaining_and_close(&self) {
        loop {
            let item = {
                let mut st = lock(&self.state);
                match st.events.pop_front() {
                    Some(item) => item,
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
        let registrations: Vec<_> = lock(&self.callbacks).iter_mut().map(Option::take).collect();
        drop(registrations);
        let fd = {
            let mut st = lock(&self.state);
            st.drainer = None;
            st.deferred_free = None;
            st.held_stopped = None;
            st.fd.take()
        };
        drop(fd);
        lock(&self.state).notify(&self.cond);
    }
}

/// The current thread drains a queue; releases it when done, also if delivery unwinds, unless a
/// deferred free took the queue over.
struct Draining<'a> {
    queue: &'a Arc<EventQueue>,
    taken_over: bool,
}

impl<'a> Draining<'a> {
    fn new(queue: &'a Arc<EventQueue>) -> Draining<'a> {
        Draining {
            queue,
            taken_over: false,
        }
    }

    fn run(mut self, max: usize) -> usize {
        let (n, taken_over) = self.queue.run_batch(max);
        self.taken_over = taken_over;
        n
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.taken_over {
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
    use crate::ffi::event::WPS_EVENT_SERVER_MESSAGE;
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
        let q = EventQueue::new(1, Mode::Thread, &pool).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        q.set_callback(
            WPS_EVENT_SERVER_MESSAGE,
            Some(Registration::new(record, ud, Some(count_free))),
        );
        for seq in 1..=2000 {
            q.push_event(message(seq));
        }
        assert!(wait_for_count(&seen, 2000, Duration::from_secs(10)));
        assert_eq!(*seen.order.lock().unwrap(), (1..=2000).collect::<Vec<_>>());
        assert!(!seen.overlapped.load(Ordering::SeqCst));
        q.claim();
        q.deliver_remaining_and_close();
        assert_eq!(seen.freed.load(Ordering::SeqCst), 1);
        q.push_event(message(9999));
        assert_eq!(
            seen.order.lock().unwrap().len(),
            2000,
            "nothing after close"
        );
    }

    #[test]
    fn poll_mode_fd_is_readable_exactly_while_events_are_pending() {
        let pool = Pool::new();
        let seen = Arc::new(Seen::default());
        let q = EventQueue::new(2, Mode::Poll, &pool).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        q.set_callback(
            WPS_EVENT_SERVER_MESSAGE,
            Some(Registration::new(record, ud, None)),
        );
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
        let q = EventQueue::new(3, Mode::Poll, &pool).unwrap();
        let ud = Arc::as_ptr(&seen) as *mut c_void;
        for kind in [WPS_EVENT_STOPPED, WPS_EVENT_ACK] {
            q.set_callback(kind, Some(Registration::new(record, ud, None)));
        }
        q.begin_op();
        q.push_event(OwnedEvent {
            kind: WPS_EVENT_STOPPED,
            sequence_id: 2,
            ..Default::default()
        });
        assert_eq!(q.dispatch(0, Duration::ZERO), 0, "STOPPED is held back");
        q.finish_op(Item {
            event: OwnedEvent {
                kind: WPS_EVENT_ACK,
                sequence_id: 1,
                ..Default::default()
            },
            target: Target::Registered,
        });
        assert_eq!(q.dispatch(0, Duration::ZERO), 2);
        assert_eq!(
            *seen.order.lock().unwrap(),
            vec![1, 2],
            "completion before STOPPED"
        );
    }
}

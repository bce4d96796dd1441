//! The shared callback pool: a few "wps-cb" threads take turns draining clients' event queues
//! (one turn = up to a batch of one client's events, so clients share the threads fairly). The
//! pool starts with two threads and grows to four while callbacks block inside library calls.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::dispatch::{lock, EventQueue};

/// Pool threads started on first use, and the most the pool grows to while callbacks block.
const POOL_MIN_THREADS: usize = 2;
const POOL_MAX_THREADS: usize = 4;

/// How long an idle pool thread keeps looking for work (yielding the CPU between looks) before
/// it sleeps. Events that arrive meanwhile need no wake-up, which on a busy stream saves a
/// futex wake and a context switch per event.
const POOL_SPIN: Duration = Duration::from_micros(50);

thread_local! {
    /// Whether this thread belongs to the callback pool.
    static POOL_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// The shared callback pool.
pub(crate) struct Pool {
    pub(super) inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    run: Mutex<RunQueue>,
    /// Length of the run queue, for idle threads looking for work without the lock.
    queued: AtomicUsize,
    cond: Condvar,
    threads: AtomicUsize,
    blocked: AtomicUsize,
}

/// Clients with events waiting for a pool thread, and how many idle threads are still awake
/// (looking for work) rather than asleep on the condition variable.
struct RunQueue {
    clients: VecDeque<Arc<EventQueue>>,
    awake_idle: usize,
    /// Threads asleep on the condition variable.
    asleep: usize,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                run: Mutex::new(RunQueue {
                    clients: VecDeque::new(),
                    awake_idle: 0,
                    asleep: 0,
                }),
                queued: AtomicUsize::new(0),
                cond: Condvar::new(),
                threads: AtomicUsize::new(0),
                blocked: AtomicUsize::new(0),
            }),
        }
    }
}

impl PoolInner {
    pub(super) fn submit(self: &Arc<Self>, queue: Arc<EventQueue>) {
        {
            let mut run = lock(&self.run);
            run.clients.push_back(queue);
            self.queued.store(run.clients.len(), Ordering::Release);
            // An idle thread that is still awake finds the client by itself. Both sides decide
            // under the lock, so a thread that goes to sleep has seen this client first.
            if run.asleep > 0 && run.awake_idle < run.clients.len() {
                self.cond.notify_one();
            }
        }
        if self.threads.load(Ordering::Relaxed) < POOL_MIN_THREADS {
            self.grow(POOL_MIN_THREADS);
        }
    }

    /// Starts threads until `target` are running (bounded by the pool maximum).
    fn grow(self: &Arc<Self>, target: usize) {
        let target = target.min(POOL_MAX_THREADS);
        loop {
            let n = self.threads.load(Ordering::Relaxed);
            if n >= target {
                return;
            }
            if self
                .threads
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let pool = self.clone();
            let spawned = thread::Builder::new()
                .name("wps-cb".into())
                .stack_size(1 << 20)
                .spawn(move || pool.worker());
            if spawned.is_err() {
                self.threads.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    fn worker(self: Arc<Self>) {
        super::blocking::block_sigpipe();
        let _ = POOL_THREAD.try_with(|p| p.set(true));
        loop {
            let queue = self.next_client();
            // A panic here would be a bug in this module; keep the pool thread alive.
            if catch_unwind(AssertUnwindSafe(|| queue.pool_turn())).is_err() {
                crate::ffi::log::emit_error("panic while delivering events (pool thread kept)");
            }
        }
    }

    /// Takes the next client with events: looks for one for up to [`POOL_SPIN`] while awake,
    /// then sleeps until one is submitted.
    fn next_client(&self) -> Arc<EventQueue> {
        let mut run = lock(&self.run);
        if let Some(q) = self.pop(&mut run) {
            return q;
        }
        if run.awake_idle > 0 {
            // Another idle thread is already looking: sleep right away, leaving the CPU free.
            return self.sleep_until_client(run);
        }
        run.awake_idle += 1;
        drop(run);
        let until = Instant::now() + POOL_SPIN;
        loop {
            if self.queued.load(Ordering::Acquire) > 0 {
                break;
            }
            if Instant::now() >= until {
                break;
            }
            thread::yield_now();
        }
        let mut run = lock(&self.run);
        run.awake_idle -= 1;
        self.sleep_until_client(run)
    }

    /// Sleeps on the condition variable until a client can be taken.
    fn sleep_until_client(&self, mut run: MutexGuard<'_, RunQueue>) -> Arc<EventQueue> {
        loop {
            if let Some(q) = self.pop(&mut run) {
                return q;
            }
            run.asleep += 1;
            run = self.cond.wait(run).unwrap_or_else(|e| e.into_inner());
            run.asleep -= 1;
        }
    }

    /// Pops the next client; wakes another thread when more are waiting than awake threads
    /// can take.
    fn pop(&self, run: &mut RunQueue) -> Option<Arc<EventQueue>> {
        let q = run.clients.pop_front()?;
        self.queued.store(run.clients.len(), Ordering::Release);
        if run.asleep > 0 && run.clients.len() > run.awake_idle {
            self.cond.notify_one();
        }
        Some(q)
    }
}

/// Marks a blocking wait on this thread. On a pool thread, the pool grows (up to its maximum)
/// when every pool thread is blocked, so other clients' events keep flowing.
pub(crate) struct BlockingSection {
    pool: Option<Arc<PoolInner>>,
}

impl BlockingSection {
    pub fn enter(pool: &Pool) -> BlockingSection {
        if !POOL_THREAD.try_with(Cell::get).unwrap_or(false) {
            return BlockingSection { pool: None };
        }
        let inner = pool.inner.clone();
        let blocked = inner.blocked.fetch_add(1, Ordering::AcqRel) + 1;
        if blocked >= inner.threads.load(Ordering::Relaxed) {
            inner.grow(blocked + 1);
        }
        BlockingSection { pool: Some(inner) }
    }
}

impl Drop for BlockingSection {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.blocked.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::dispatch::{Mode, Registration};
    use crate::ffi::event::{wps_event, OwnedEvent, WPS_EVENT_SERVER_MESSAGE};
    use std::ffi::c_void;
    use std::time::Duration;

    /// Events delivered so far, with a condition variable to wait on.
    #[derive(Default)]
    struct Count {
        n: Mutex<usize>,
        changed: Condvar,
    }

    unsafe extern "C" fn count(user_data: *mut c_void, _event: *const wps_event) {
        // SAFETY: the test registers a live `Count`.
        let c = unsafe { &*(user_data as *const Count) };
        *c.n.lock().unwrap() += 1;
        c.changed.notify_all();
    }

    #[test]
    fn events_from_many_producers_reach_sleeping_and_looking_threads() {
        const CLIENTS: usize = 8;
        const PER_CLIENT: usize = 300;
        let pool = Pool::new();
        let counted = Arc::new(Count::default());
        let queues: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let q = EventQueue::new(i as u64 + 100, Mode::Thread, &pool, None).unwrap();
                let ud = Arc::as_ptr(&counted) as *mut c_void;
                q.set_callback(
                    WPS_EVENT_SERVER_MESSAGE,
                    Some(Registration::new(count, ud, None)),
                )
                .unwrap();
                q
            })
            .collect();
        thread::scope(|s| {
            for (i, q) in queues.iter().enumerate() {
                s.spawn(move || {
                    for seq in 0..PER_CLIENT {
                        q.push_event(OwnedEvent {
                            kind: WPS_EVENT_SERVER_MESSAGE,
                            sequence_id: seq as u64,
                            ..Default::default()
                        });
                        // Gaps shorter and longer than the look-for-work window, so threads
                        // are taken both while looking and while asleep.
                        if seq % 50 == i {
                            thread::sleep(Duration::from_micros(200));
                        }
                    }
                });
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = counted.n.lock().unwrap();
        while *n < CLIENTS * PER_CLIENT && Instant::now() < deadline {
            n = counted
                .changed
                .wait_timeout(n, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        assert_eq!(*n, CLIENTS * PER_CLIENT);
        drop(n);
        for q in &queues {
            q.close_now();
        }
    }
}

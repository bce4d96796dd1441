//! The shared callback pool: a few "wps-cb" threads take turns draining clients' event queues
//! (one turn = up to a batch of one client's events, so clients share the threads fairly). The
//! pool starts with two threads and grows to four while callbacks block inside library calls.

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use super::dispatch::{lock, EventQueue};

/// Pool threads started on first use, and the most the pool grows to while callbacks block.
const POOL_MIN_THREADS: usize = 2;
const POOL_MAX_THREADS: usize = 4;

thread_local! {
    /// Whether this thread belongs to the callback pool.
    static POOL_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// The shared callback pool.
pub(crate) struct Pool {
    pub(super) inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    run: Mutex<VecDeque<Arc<EventQueue>>>,
    cond: Condvar,
    threads: AtomicUsize,
    blocked: AtomicUsize,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                run: Mutex::new(VecDeque::new()),
                cond: Condvar::new(),
                threads: AtomicUsize::new(0),
                blocked: AtomicUsize::new(0),
            }),
        }
    }
}

impl PoolInner {
    pub(super) fn submit(self: &Arc<Self>, queue: Arc<EventQueue>) {
        lock(&self.run).push_back(queue);
        self.cond.notify_one();
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
        POOL_THREAD.with(|p| p.set(true));
        loop {
            let queue = {
                let mut run = lock(&self.run);
                loop {
                    if let Some(q) = run.pop_front() {
                        break q;
                    }
                    run = self.cond.wait(run).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A panic here would be a bug in this module; keep the pool thread alive.
            if catch_unwind(AssertUnwindSafe(|| queue.pool_turn())).is_err() {
                crate::ffi::log::emit_error("panic while delivering events (pool thread kept)");
            }
        }
    }
}

/// Marks a blocking wait on this thread. On a pool thread, the pool grows (up to its maximum)
/// when every pool thread is blocked, so other clients' events keep flowing.
pub(crate) struct BlockingSection {
    pool: Option<Arc<PoolInner>>,
}

impl BlockingSection {
    pub fn enter(pool: &Pool) -> BlockingSection {
        if !POOL_THREAD.with(Cell::get) {
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

//! Who waits for whom during teardown. `wps_client_free` may wait for a thread that runs one of
//! the client's callbacks or its URL provider; that thread may itself be inside a
//! `wps_client_free` waiting for the first one (two clients whose callbacks free each other, or
//! longer cycles). Every such wait is recorded here first; a wait that would close a cycle is
//! refused, and the caller hands its remaining teardown to the thread it would have waited for.
//!
//! Threads are named by `pthread_self()`, which needs no thread-local storage and so also works
//! in `atexit` handlers and thread-local destructors.

use std::sync::{Mutex, MutexGuard};

/// A thread, as `pthread_self()` names it (unique among live threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThreadToken(libc::pthread_t);

impl ThreadToken {
    pub fn current() -> ThreadToken {
        // SAFETY: pthread_self has no preconditions and cannot fail.
        ThreadToken(unsafe { libc::pthread_self() })
    }
}

/// Edges `waiter -> awaited`; each thread waits for at most one other at a time.
static WAITS: Mutex<Vec<(ThreadToken, ThreadToken)>> = Mutex::new(Vec::new());

fn edges() -> MutexGuard<'static, Vec<(ThreadToken, ThreadToken)>> {
    WAITS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A recorded wait; removed when dropped.
pub(crate) struct Waiting {
    me: ThreadToken,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        edges().retain(|(waiter, _)| *waiter != self.me);
    }
}

/// Records that the calling thread is about to wait for `awaited`. `None` when `awaited` is the
/// caller or waits (directly or through other threads) for the caller: waiting would deadlock.
pub(crate) fn begin_wait(awaited: ThreadToken) -> Option<Waiting> {
    let me = ThreadToken::current();
    let mut edges = edges();
    let mut at = awaited;
    // The graph never holds a cycle (none is ever added), so the walk ends; the bound is a
    // second guard.
    for _ in 0..=edges.len() {
        if at == me {
            return None;
        }
        match edges.iter().find(|(waiter, _)| *waiter == at) {
            Some((_, next)) => at = *next,
            None => break,
        }
    }
    edges.retain(|(waiter, _)| *waiter != me);
    edges.push((me, awaited));
    Some(Waiting { me })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;

    #[test]
    fn a_wait_that_closes_a_cycle_is_refused() {
        assert!(
            begin_wait(ThreadToken::current()).is_none(),
            "never wait for yourself"
        );
        let main = ThreadToken::current();
        let (to_main, from_helper) = mpsc::channel();
        let (to_helper, from_main) = mpsc::channel::<()>();
        let helper = thread::spawn(move || {
            // The helper waits for the main thread ...
            let waiting = begin_wait(main).expect("no cycle yet");
            to_main.send(ThreadToken::current()).unwrap();
            from_main.recv().unwrap();
            drop(waiting);
        });
        let helper_token = from_helper.recv().unwrap();
        // ... so the main thread must not wait for the helper.
        assert!(begin_wait(helper_token).is_none());
        to_helper.send(()).unwrap();
        helper.join().unwrap();
        // The helper's wait ended: waiting for it is fine again (it no longer exists, but the
        // graph only cares about recorded edges).
        let w = begin_wait(helper_token).expect("edge removed");
        drop(w);
        assert!(!edges().iter().any(|(w, _)| *w == main));
    }
}

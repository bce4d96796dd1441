//! The engine task's command inbox: an unbounded queue from the client handles to the engine
//! that holds no memory while it is empty.
//!
//! Most clients are idle most of the time, so an empty inbox must cost only its small shared
//! header: the queue's storage is allocated when commands arrive and released when the engine
//! finds the inbox empty and goes to sleep.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::client::command::Command;

struct State {
    items: VecDeque<Command>,
    /// The engine task's waker while it waits for a command.
    waker: Option<Waker>,
    /// The sending side was dropped (every client handle is gone).
    sender_gone: bool,
    /// The receiving side was dropped (the engine task ended).
    receiver_gone: bool,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned queue is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new inbox: the handles' sending side and the engine's receiving side.
pub(crate) fn inbox() -> (InboxSender, Inbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
    });
    (
        InboxSender {
            shared: shared.clone(),
        },
        Inbox {
            shared,
            batch: VecDeque::new(),
        },
    )
}

/// The sending side, owned by the client handles.
pub(crate) struct InboxSender {
    shared: Arc<Shared>,
}

impl InboxSender {
    /// Queues `cmd`; gives it back if the engine task is gone.
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Command> {
        let waker = {
            let mut state = self.shared.lock();
            if state.receiver_gone {
                return Err(cmd);
            }
            state.items.push_back(cmd);
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The receiving side, owned by the engine task.
pub(crate) struct Inbox {
    shared: Arc<Shared>,
    /// Commands moved out of the shared queue in one step, handed out one by one.
    batch: VecDeque<Command>,
}

/// Why [`Inbox::try_recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// No command is waiting.
    Empty,
    /// No command is waiting and the sending side is gone.
    Disconnected,
}

impl Inbox {
    /// The next command without waiting.
    pub(crate) fn try_recv(&mut self) -> Result<Command, TryRecvError> {
        if let Some(cmd) = self.batch.pop_front() {
            return Ok(cmd);
        }
        let mut state = self.shared.lock();
        if state.items.is_empty() {
            return Err(if state.sender_gone {
                TryRecvError::Disconnected
            } else {
                TryRecvError::Empty
            });
        }
        // Take everything queued at once (one lock per batch, not per command); the
        // sending side gets the empty storage of the previous batch back.
        std::mem::swap(&mut self.batch, &mut state.items);
        drop(state);
        self.batch.pop_front().ok_or(TryRecvError::Empty)
    }

    /// Polls for the next command; `Ready(None)` once the sending side is gone and
    /// everything queued was received.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        if let Some(cmd) = self.batch.pop_front() {
            return Poll::Ready(Some(cmd));
        }
        let mut state = self.shared.lock();
        if !state.items.is_empty() {
            std::mem::swap(&mut self.batch, &mut state.items);
            drop(state);
            return Poll::Ready(self.batch.pop_front());
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        // Going to sleep with nothing queued: give the storage back.
        if state.items.capacity() > 0 {
            state.items = VecDeque::new();
        }
        if self.batch.capacity() > 0 {
            self.batch = VecDeque::new();
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next command; `None` once the sending side is gone and everything
    /// queued was received.
    pub(crate) async fn recv(&mut self) -> Option<Command> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Whether the sending side is gone and nothing is left to receive.
    pub(crate) fn is_closed(&self) -> bool {
        self.batch.is_empty() && {
            let state = self.shared.lock();
            state.sender_gone && state.items.is_empty()
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            state.waker = None;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: dropping a command answers its caller.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountWaker(AtomicUsize);
    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn stop_cmd() -> Command {
        Command::Stop(tokio::sync::oneshot::channel().0)
    }

    #[test]
    fn delivers_in_order_wakes_once_and_frees_storage_when_idle() {
        let (tx, mut rx) = inbox();
        let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        for _ in 0..10 {
            tx.send(stop_cmd()).ok().unwrap();
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        for _ in 0..10 {
            assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(Some(_))));
        }
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Empty));
        assert!(rx.poll_recv(&mut cx).is_pending());
        assert_eq!(rx.batch.capacity(), 0);
        assert_eq!(rx.shared.lock().items.capacity(), 0);
        assert!(!rx.is_closed());
        drop(tx);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert!(rx.is_closed());
        assert!(matches!(rx.poll_recv(&mut cx), Poll::Ready(None)));
        assert_eq!(rx.try_recv().err(), Some(TryRecvError::Disconnected));
    }

    #[test]
    fn queued_commands_outlive_the_sender_and_sends_fail_without_receiver() {
        let (tx, mut rx) = inbox();
        tx.send(stop_cmd()).ok().unwrap();
        drop(tx);
        assert!(!rx.is_closed());
        assert!(rx.try_recv().is_ok());
        assert!(rx.is_closed());
        let (tx, rx) = inbox();
        drop(rx);
        assert!(tx.send(stop_cmd()).is_err());
    }

    #[test]
    fn works_across_threads() {
        let (tx, mut rx) = inbox();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let producer = std::thread::spawn(move || {
            for _ in 0..10_000 {
                tx.send(stop_cmd()).ok().unwrap();
            }
        });
        let n = rt.block_on(async {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        producer.join().unwrap();
        assert_eq!(n, 10_000);
    }
}

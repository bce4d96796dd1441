//! The threads that run URL provider calls.
//!
//! A provider may block (an HTTP call to a token service, a Python function waiting for the
//! GIL), so it cannot run on the runtime's I/O threads. Running each call on the runtime's
//! blocking pool would cost a thread per slow call (up to 512), which contradicts "many
//! clients cost no more threads than one". Instead every provider call of the process runs on
//! [`PROVIDER_THREADS`] shared threads, started on first use, taking jobs from a bounded queue
//! ([`QUEUE_CAPACITY`]). The engine waits for a thread at most its `connect_timeout`, then
//! for the answer at most its `url_provider_timeout`; a call that does not return in time
//! fails that attempt, and its late answer is dropped on the provider thread when it finally
//! comes (the job owns everything it touches). A job whose engine stopped waiting before a
//! thread took it is dropped without calling the provider.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::Error;

/// Threads running provider calls, shared by every client of the process.
pub const PROVIDER_THREADS: usize = 4;
/// Provider calls waiting for a thread; past that an attempt fails at once.
pub const QUEUE_CAPACITY: usize = 4096;

/// What a provider call gives: the URL or the provider's error, or `Err` if it panicked.
pub(crate) type Outcome = std::thread::Result<Result<String, String>>;

type Provider = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

struct Job {
    provider: Provider,
    started: oneshot::Sender<()>,
    reply: oneshot::Sender<Outcome>,
}

/// A queued call: `started` fires when a thread begins it, `result` carries its answer.
pub(crate) struct Submitted {
    pub started: oneshot::Receiver<()>,
    pub result: oneshot::Receiver<Outcome>,
}

/// The queue into the pool, with the process id it was made in (threads do not survive a fork).
static POOL: Mutex<Option<(u32, SyncSender<Job>)>> = Mutex::new(None);

fn worker(jobs: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // The engine gave up on this call already (timeout or stop): do not run it.
        if job.reply.is_closed() {
            continue;
        }
        let _ = job.started.send(());
        let provider = job.provider;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| provider()));
        // A closed receiver means the engine stopped waiting: the late answer is dropped here.
        let _ = job.reply.send(outcome);
    }
}

fn sender() -> Result<SyncSender<Job>, Error> {
    let pid = crate::runtime::current_pid();
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((p, tx)) = pool.as_ref() {
        if *p == pid {
            return Ok(tx.clone());
        }
    }
    let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_CAPACITY);
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..PROVIDER_THREADS {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("wps-provider-{i}"))
            .spawn(move || worker(rx));
        if spawned.is_ok() {
            started += 1;
        }
    }
    if started == 0 {
        return Err(Error::UrlProvider(
            "cannot start a thread for the URL provider".into(),
        ));
    }
    *pool = Some((pid, tx.clone()));
    Ok(tx)
}

/// Queues a call of `provider`. Fails at once when [`QUEUE_CAPACITY`] calls are already
/// waiting.
pub(crate) fn submit(provider: Provider) -> Result<Submitted, Error> {
    let (reply, result) = oneshot::channel();
    let (started_tx, started) = oneshot::channel();
    let job = Job {
        provider,
        started: started_tx,
        reply,
    };
    match sender()?.try_send(job) {
        Ok(()) => Ok(Submitted { started, result }),
        Err(TrySendError::Full(_)) => Err(Error::UrlProvider(format!(
            "{QUEUE_CAPACITY} URL provider calls are already waiting for a thread"
        ))),
        Err(TrySendError::Disconnected(_)) => Err(Error::UrlProvider(
            "the URL provider threads are gone".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn calls_run_on_the_shared_threads_and_late_answers_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let names = Arc::new(Mutex::new(Vec::new()));
        let n = names.clone();
        let provider: Provider = Arc::new(move || {
            n.lock()
                .unwrap()
                .push(std::thread::current().name().unwrap_or("").to_owned());
            Ok("ws://x/y".into())
        });
        let out = rt.block_on(submit(provider).unwrap().result).unwrap();
        assert_eq!(out.unwrap(), Ok("ws://x/y".into()));
        assert!(names.lock().unwrap()[0].starts_with("wps-provider-"));

        // A call whose receiver is gone is dropped without running it, or its answer is.
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let provider: Provider = Arc::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
            Ok("late".into())
        });
        drop(submit(provider.clone()).unwrap());
        // The pool stays usable afterwards.
        let out = rt.block_on(submit(provider).unwrap().result).unwrap();
        assert_eq!(out.unwrap(), Ok("late".into()));

        let panicking: Provider = Arc::new(|| panic!("provider panic"));
        let call = submit(panicking).unwrap();
        rt.block_on(call.started).unwrap();
        assert!(rt.block_on(call.result).unwrap().is_err());
    }
}

//! The one shared tokio runtime serving every client of the process.
//!
//! Created lazily on first use with `WPS_RUNTIME_THREADS` worker threads (default 2) named
//! `wps-rt`. Fork-aware: a child process inherits the runtime's memory but not its threads, so
//! when the process id changed the old runtime is leaked (dropping it would wait for threads
//! that do not exist) and a new one is built.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use tokio::runtime::{Builder, Handle, Runtime};

struct Shared {
    pid: u32,
    runtime: Runtime,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// Default number of worker threads.
pub const DEFAULT_THREADS: usize = 2;

/// The process id, cached (0 = not known yet); a fork child handler clears it.
static PID: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn forget_pid_in_child() {
    PID.store(0, Ordering::Relaxed);
}

/// The current process id, without a system call per use.
pub fn current_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    ATFORK.call_once(|| {
        // SAFETY: registers a plain function with no captured state; the child handler only
        // stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::pthread_atfork(None, None, Some(forget_pid_in_child));
        }
    });
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// Blocks SIGPIPE on the calling thread: a peer reset during a (vectored) write must not kill
/// a C host that keeps the default disposition.
fn block_sigpipe() {
    // SAFETY: plain libc calls on a zeroed, locally owned sigset_t; only this thread's mask
    // changes.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

thread_local! {
    /// Set on the shared runtime's own threads (workers and blocking pool).
    static RUNTIME_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the shared runtime's threads (a worker, or a blocking
/// pool thread).
pub fn on_runtime_thread() -> bool {
    RUNTIME_THREAD.try_with(|t| t.get()).unwrap_or(false)
}

fn runtime_thread_start() {
    block_sigpipe();
    let _ = RUNTIME_THREAD.try_with(|t| t.set(true));
}

/// True when the process forked since `pid` was recorded (objects from then are unusable).
pub fn forked_since(pid: u32) -> bool {
    pid != current_pid()
}

fn worker_threads() -> usize {
    std::env::var("WPS_RUNTIME_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=256).contains(n))
        .unwrap_or(DEFAULT_THREADS)
}

/// A handle to the shared runtime, creating (or, after a fork, re-creating) it.
pub fn handle() -> Handle {
    let mut guard = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    let pid = current_pid();
    if let Some(shared) = guard.as_ref() {
        if shared.pid == pid {
            return shared.runtime.handle().clone();
        }
    }
    if let Some(old) = guard.take() {
        // The old runtime's threads were not copied into this (forked) process.
        std::mem::forget(old);
        crate::log::log(
            crate::log::Level::Info,
            format_args!("process forked: building a new runtime"),
        );
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .thread_name("wps-rt")
        .on_thread_start(runtime_thread_start)
        .enable_all()
        .build()
        .expect("failed to build the tokio runtime (cannot create threads?)");
    let handle = runtime.handle().clone();
    *guard = Some(Shared { pid, runtime });
    handle
}

/// The pid the shared runtime was built in, if it exists.
pub fn runtime_pid() -> Option<u32> {
    SHARED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|s| s.pid)
}

/// Runs `future` on the shared runtime and blocks the calling thread until it completes.
///
/// Must not be called from a runtime thread (the caller's thread would block a worker).
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = handle();
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => handle.block_on(future),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            // Inside a multi-thread runtime: let it move its other tasks off this thread.
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                let _ = tx.send(future.await);
            });
            tokio::task::block_in_place(|| rx.recv().expect("shared runtime task lost"))
        }
        Ok(_) => {
            // A current-thread runtime cannot block in place: wait on a helper thread.
            std::thread::scope(|s| {
                s.spawn(|| handle.block_on(future))
                    .join()
                    .expect("block_on helper thread panicked")
            })
        }
    }
}

/// Spawns `future` on the shared runtime.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_futures_and_names_threads() {
        let name = block_on(async {
            tokio::task::spawn(async { std::thread::current().name().map(str::to_owned) })
                .await
                .unwrap()
        });
        assert_eq!(name.as_deref(), Some("wps-rt"));
        assert_eq!(runtime_pid(), Some(current_pid()));
        assert!(!forked_since(current_pid()));
        assert_eq!(current_pid(), std::process::id());
        // Runtime threads have SIGPIPE blocked.
        let blocked = block_on(async {
            tokio::task::spawn(async {
                // SAFETY: reads this thread's signal mask into a zeroed local set.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
                    libc::sigismember(&set, libc::SIGPIPE) == 1
                }
            })
            .await
            .unwrap()
        });
        assert!(blocked);
    }

    #[test]
    fn block_on_works_inside_other_runtimes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let v = rt.block_on(async { block_on(async { 7 }) });
        assert_eq!(v, 7);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let v = rt.block_on(async { tokio::spawn(async { block_on(async { 8 }) }).await.unwrap() });
        assert_eq!(v, 8);
    }
}

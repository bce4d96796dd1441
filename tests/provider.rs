//! URL providers run on a few shared threads with a timeout, not one blocking thread each.
//! One test per process state: it counts the process's threads, so it runs alone in this
//! binary.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use webpubsub_client::client::PROVIDER_THREADS;
use webpubsub_client::{Client, ClientOptions, Credential, Error, Event};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Samples the thread count until told to stop; returns the largest count seen.
fn sampler() -> (Arc<AtomicBool>, std::thread::JoinHandle<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = std::thread::spawn(move || {
        let mut max = 0;
        while !s.load(Ordering::Relaxed) {
            max = max.max(threads());
            std::thread::park_timeout(Duration::from_millis(2));
        }
        max
    });
    (stop, h)
}

/// A gate the hung provider waits on, opened at the end of the test.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_providers_share_a_few_threads_and_a_hung_one_times_out() {
    let emu = Arc::new(emulator().await);

    // 1. Forty clients whose providers take 150 ms each.
    let base = {
        // One client first, so the shared runtime exists before the baseline is taken.
        let (c, _ev, _) = connected(url(&emu, None, ROLES), fast_options()).await;
        c.stop().await.unwrap();
        threads()
    };
    let (stop_sampling, sampling) = sampler();
    let base = base + 1; // the sampler itself
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (emu, running, max_running) = (emu.clone(), running.clone(), max_running.clone());
        let provider = Arc::new(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            max_running.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(url(&emu, None, ROLES))
        });
        // Forty 150 ms calls on four threads take 1.5 s: time waiting for a thread does not
        // count against the provider timeout.
        let opts = ClientOptions {
            start_timeout: Duration::from_secs(20),
            url_provider_timeout: Duration::from_millis(400),
            ..fast_options()
        };
        clients.push(Client::with_channel(Credential::Provider(provider), opts).0);
    }
    let started = Instant::now();
    let results = futures_util::future::join_all(clients.iter().map(|c| c.start())).await;
    let elapsed = started.elapsed();
    stop_sampling.store(true, Ordering::Relaxed);
    let max_threads = sampling.join().unwrap();
    for r in results {
        r.unwrap();
    }
    for c in &clients {
        c.stop().await.unwrap();
    }
    let extra = max_threads.saturating_sub(base);
    println!(
        "40 slow providers: {extra} extra threads (base {base}, max {max_threads}), \
         at most {} calls at once, all started in {elapsed:?}",
        max_running.load(Ordering::SeqCst)
    );
    assert!(
        extra <= PROVIDER_THREADS,
        "{extra} extra threads for 40 slow providers (bound {PROVIDER_THREADS})"
    );
    assert!(max_running.load(Ordering::SeqCst) <= PROVIDER_THREADS);

    // 2. A provider that hangs: start fails within the timeout with a provider error.
    let gate = Arc::new(Gate::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let concurrent = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicBool::new(false));
    let hang_from = Arc::new(AtomicUsize::new(0)); // calls numbered >= this hang until the gate
    let provider = {
        let (emu, gate, calls, concurrent, overlapped, hang_from) = (
            emu.clone(),
            gate.clone(),
            calls.clone(),
            concurrent.clone(),
            overlapped.clone(),
            hang_from.clone(),
        );
        Arc::new(move || {
            if concurrent.fetch_add(1, Ordering::SeqCst) > 0 {
                overlapped.store(true, Ordering::SeqCst);
            }
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n >= hang_from.load(Ordering::SeqCst) {
                gate.wait();
            }
            concurrent.fetch_sub(1, Ordering::SeqCst);
            Ok(url(&emu, None, ROLES))
        })
    };
    hang_from.store(usize::MAX, Ordering::SeqCst);
    let timeout = Duration::from_millis(300);
    let opts = ClientOptions {
        url_provider_timeout: timeout,
        ..fast_options()
    };
    let (c, rx) = Client::with_channel(Credential::Provider(provider), opts);
    let mut ev = Events { rx };
    c.start().await.unwrap();
    let id = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    // From now on the provider hangs; the connection is lost without recovery.
    hang_from.store(calls.load(Ordering::SeqCst), Ordering::SeqCst);
    assert!(emu.expire_connection(HUB, &id));
    // Recovery is refused (1008): the session is lost, then the connection is gone.
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::SessionLost { .. }));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    // The client keeps retrying: each attempt waits at most the timeout for the hung call.
    assert!(
        ev.none_for(timeout * 3).await.is_none(),
        "no connection while the provider hangs"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        hang_from.load(Ordering::SeqCst) + 1,
        "one hung call, never a second one beside it"
    );
    gate.release();
    match ev.next().await {
        Event::Connected { connection_id, .. } => assert_ne!(connection_id, id),
        other => panic!("{other:?}"),
    }
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "the provider was called concurrently for one client"
    );
    c.stop().await.unwrap();

    // 3. A hung provider fails start with a provider error within the timeout.
    let gate = Arc::new(Gate::default());
    let g = gate.clone();
    let hung = Arc::new(move || {
        g.wait();
        Ok("ws://127.0.0.1:1/client/hubs/x".to_owned())
    });
    let opts = ClientOptions {
        url_provider_timeout: timeout,
        reconnect_retry: webpubsub_client::RetryPolicy {
            max_retries: 0,
            ..fast_options().reconnect_retry
        },
        ..fast_options()
    };
    let (c, _rx) = Client::with_channel(Credential::Provider(hung), opts);
    let t0 = Instant::now();
    let e = c.start().await.unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::UrlProvider(_)), "{e:?}");
    assert!(
        e.to_string().contains("did not return within 300 ms"),
        "{e}"
    );
    assert!(took < timeout + Duration::from_secs(2), "{took:?}");
    gate.release();
    drop(c);
}

/// The figure for the documentation: threads of 1,000 clients whose providers each take
/// 20 ms, all starting at once. Run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn thousand_clients_with_slow_providers() {
    let emu = Arc::new(emulator().await);
    let (c, _ev, _) = connected(url(&emu, None, ROLES), fast_options()).await;
    c.stop().await.unwrap();
    let base = threads() + 1;
    let (stop_sampling, sampling) = sampler();
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let emu = emu.clone();
        let provider = Arc::new(move || {
            std::thread::sleep(Duration::from_millis(20));
            Ok(url(&emu, None, ROLES))
        });
        let opts = ClientOptions {
            start_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(60),
            ..fast_options()
        };
        clients.push(Client::with_channel(Credential::Provider(provider), opts).0);
    }
    let t0 = Instant::now();
    let results = futures_util::future::join_all(clients.iter().map(|c| c.start())).await;
    let elapsed = t0.elapsed();
    stop_sampling.store(true, Ordering::Relaxed);
    let max = sampling.join().unwrap();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!(
        "1000 clients, 20 ms providers: {ok} connected in {elapsed:?}, {} extra threads at most",
        max.saturating_sub(base)
    );
    assert_eq!(ok, 1000);
    assert!(max.saturating_sub(base) <= PROVIDER_THREADS);
    for c in &clients {
        c.stop().await.unwrap();
    }
}

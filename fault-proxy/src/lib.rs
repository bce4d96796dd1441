//! `wps-fault-proxy`: a TCP proxy for tests that puts network faults between clients and a
//! service (here: Web PubSub clients and `wps-emulator`), switchable while connections run.
//!
//! Faults, per direction ([`Faults`]): latency with jitter, a bandwidth limit, slicing of
//! writes into small delayed pieces, a blackhole (a half-open connection), a reset (RST) or a
//! close (FIN) after N bytes, and a slow close; for the whole proxy: refusing new connections,
//! and resetting or closing every live connection at once. Randomness (jitter, slice sizes)
//! comes from a seeded generator, so a schedule replays the same way.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wps_fault_proxy::{Direction, FaultProxy, Faults};
//! let proxy = FaultProxy::start("127.0.0.1:8080".parse().unwrap(), 1).await?;
//! // point clients at proxy.addr() instead of 127.0.0.1:8080, then:
//! proxy.set(Direction::Both, Faults { latency_ms: 10, jitter_ms: 5, ..Faults::default() });
//! proxy.reset_all();
//! # Ok(()) }
//! ```
//!
//! The same controls are an HTTP API ([`control`]) of the `wps-fault-proxy` command.
//!
//! Written for this project rather than taken from `noxious` (the Rust port of Toxiproxy): that
//! crate has no reset-peer fault, which is the fault reliable clients most need testing
//! against, and it is driven through a separate server process, where tests here need the
//! proxy in process and the command both.

pub mod control;
mod faults;
mod pump;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Direction, FaultSet, Faults, Rng};
use pump::{pump, Cut};

/// How long connecting to the upstream may take before the client's connection is reset.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters since the proxy started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    pub(crate) bytes_upstream: AtomicU64,
    pub(crate) bytes_downstream: AtomicU64,
    pub(crate) bytes_dropped: AtomicU64,
    resets: AtomicU64,
    closes: AtomicU64,
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Connections accepted (including refused ones).
    pub accepted: u64,
    /// Connections reset at once because `refuse` was set, or the upstream was unreachable.
    pub refused: u64,
    /// Connections open now.
    pub live: u64,
    /// Bytes forwarded client to service.
    pub bytes_upstream: u64,
    /// Bytes forwarded service to client.
    pub bytes_downstream: u64,
    /// Bytes a blackhole discarded.
    pub bytes_dropped: u64,
    /// Connections ended with a reset by a fault (or by a peer's reset).
    pub resets: u64,
    /// Connections ended with a close by a fault.
    pub closes: u64,
}

pub(crate) struct Shared {
    upstream: SocketAddr,
    /// The faults, and how often they changed (byte limits count from the last change).
    faults: Mutex<(FaultSet, u64)>,
    /// Woken whenever a counter changes.
    changed: tokio::sync::Notify,
    rng: Mutex<Rng>,
    live: Mutex<HashMap<u64, Arc<watch::Sender<Cut>>>>,
    next_id: AtomicU64,
    pub(crate) stats: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent: nothing panics while holding these locks.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The faults of `direction` and the generation of the fault set.
    pub(crate) fn faults(&self, direction: Direction) -> (Faults, u64) {
        let f = lock(&self.faults);
        (f.0.get(direction), f.1)
    }

    fn update(&self, f: impl FnOnce(&mut FaultSet)) {
        let mut faults = lock(&self.faults);
        f(&mut faults.0);
        faults.1 += 1;
    }

    /// Adds to a counter and wakes those waiting for a change.
    pub(crate) fn count(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, Rng> {
        lock(&self.rng)
    }

    fn cut_all(&self, cut: Cut) -> usize {
        let live = lock(&self.live);
        for c in live.values() {
            c.send_replace(cut);
        }
        live.len()
    }
}

/// A running proxy: listens on [`FaultProxy::addr`] and forwards each connection to the
/// upstream address through the current faults.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free port of 127.0.0.1 in front of `upstream`; `seed` drives the randomness.
    pub async fn start(upstream: SocketAddr, seed: u64) -> io::Result<FaultProxy> {
        FaultProxy::bind(
            "127.0.0.1:0".parse().expect("a valid address"),
            upstream,
            seed,
        )
        .await
    }

    /// A proxy listening on `listen` in front of `upstream`.
    pub async fn bind(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new((FaultSet::default(), 0)),
            changed: tokio::sync::Notify::new(),
            rng: Mutex::new(Rng::new(seed)),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replaces the faults of `direction` (both for [`Direction::Both`]); live connections
    /// apply them from their next chunk on.
    pub fn set(&self, direction: Direction, faults: Faults) {
        self.shared.update(|f| f.set(direction, faults));
    }

    /// Replaces every fault.
    pub fn set_all(&self, set: FaultSet) {
        self.shared.update(|f| *f = set);
    }

    /// Makes new connections fail (reset at once) or work again.
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.update(|f| f.refuse = refuse);
    }

    /// The faults in force.
    pub fn faults(&self) -> FaultSet {
        lock(&self.shared.faults).0
    }

    /// Waits until the counters satisfy `done`, at most `limit`; returns them either way
    /// (`Err` on timeout), for tests that wait on traffic without polling.
    pub async fn wait_for(
        &self,
        limit: Duration,
        mut done: impl FnMut(&Stats) -> bool,
    ) -> Result<Stats, Stats> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let stats = self.stats();
            if done(&stats) {
                return Ok(stats);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(self.stats());
            }
        }
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set_all(FaultSet::default());
    }

    /// Resets (RST) every live connection; returns how many.
    pub fn reset_all(&self) -> usize {
        self.shared.cut_all(Cut::Reset)
    }

    /// Closes (FIN) every live connection; returns how many.
    pub fn close_all(&self) -> usize {
        self.shared.cut_all(Cut::Close)
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.stats;
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            live: lock(&self.shared.live).len() as u64,
            bytes_upstream: c.bytes_upstream.load(Ordering::Relaxed),
            bytes_downstream: c.bytes_downstream.load(Ordering::Relaxed),
            bytes_dropped: c.bytes_dropped.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
            closes: c.closes.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting and resets every live connection.
    pub fn shutdown(&self) {
        self.accept.abort();
        self.reset_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((c, _)) => c,
            Err(_) => {
                // Out of descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.count(&shared.stats.accepted, 1);
        tokio::spawn(connection(shared.clone(), client));
    }
}

/// Ends a socket with a reset: closing with a zero linger time sends RST instead of FIN.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

async fn connection(shared: Arc<Shared>, client: TcpStream) {
    let refuse = lock(&shared.faults).0.refuse;
    let upstream = if refuse {
        None
    } else {
        tokio::time::timeout(
            UPSTREAM_CONNECT_TIMEOUT,
            TcpStream::connect(shared.upstream),
        )
        .await
        .ok()
        .and_then(Result::ok)
    };
    let Some(server) = upstream else {
        shared.count(&shared.stats.refused, 1);
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client, server) = (Arc::new(client), Arc::new(server));
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let cut = Arc::new(watch::channel(Cut::None).0);
    let mut cut_rx = cut.subscribe();
    lock(&shared.live).insert(id, cut.clone());
    let up = tokio::spawn(pump(
        shared.clone(),
        Direction::Upstream,
        client.clone(),
        server.clone(),
        cut.clone(),
    ));
    let down = tokio::spawn(pump(
        shared.clone(),
        Direction::Downstream,
        server.clone(),
        client.clone(),
        cut.clone(),
    ));
    let (up_abort, down_abort) = (up.abort_handle(), down.abort_handle());
    let ended = tokio::select! {
        _ = async { let _ = tokio::join!(up, down); } => Cut::None,
        c = cut_rx.wait_for(|c| *c != Cut::None) => c.map(|c| *c).unwrap_or(Cut::Reset),
    };
    up_abort.abort();
    down_abort.abort();
    match ended {
        Cut::Reset => {
            shared.count(&shared.stats.resets, 1);
            reset(&client);
            reset(&server);
        }
        Cut::Close => {
            shared.count(&shared.stats.closes, 1);
            for s in [&client, &server] {
                let _ = socket2::SockRef::from(&**s).shutdown(std::net::Shutdown::Both);
            }
        }
        Cut::None => {}
    }
    lock(&shared.live).remove(&id);
    shared.changed.notify_waiters();
}

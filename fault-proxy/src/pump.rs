//! Moving bytes one way through a connection's faults: a reader that applies the byte-count
//! faults and stamps each chunk with its release time, and a writer that waits for it and
//! applies slicing and the bandwidth limit. A bounded channel between them keeps latency from
//! limiting throughput while still pushing back on a sender that outruns the limit.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::faults::{chunk_delay, Direction};
use crate::Shared;

/// How a connection is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Not cut.
    None,
    /// FIN both ways.
    Close,
    /// RST both ways.
    Reset,
}

/// Chunks in flight between reader and writer of one direction.
const CHUNKS_IN_FLIGHT: usize = 256;
/// Bytes read at once.
const READ_SIZE: usize = 16 * 1024;
/// How far the bandwidth limit's schedule may run ahead of the clock before the writer waits:
/// a token bucket holding this much time's worth of bytes. The timer fires on whole
/// milliseconds, so a writer that waited for every piece would pass about a thousand pieces a
/// second whatever the limit, throttling a peer that writes small frames one at a time far
/// below the bandwidth it was given.
const BANDWIDTH_BURST: Duration = Duration::from_millis(2);

enum Item {
    Data {
        release: Instant,
        bytes: Vec<u8>,
    },
    /// The source ended its stream.
    Eof {
        release: Instant,
    },
    /// A byte limit was reached: cut once everything before it is written.
    Cut(Cut),
}

/// Moves `src`'s bytes to `dst` until the stream ends or the connection is cut.
pub(crate) async fn pump(
    shared: Arc<Shared>,
    direction: Direction,
    src: Arc<TcpStream>,
    dst: Arc<TcpStream>,
    cut: Arc<watch::Sender<Cut>>,
) {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let counter = match direction {
        Direction::Downstream => &shared.stats.bytes_downstream,
        _ => &shared.stats.bytes_upstream,
    };
    let reading = async {
        if read_side(&shared, direction, &src, tx).await.is_err() {
            // The source failed (e.g. its peer reset it): the other side learns by a reset.
            cut.send_replace(Cut::Reset);
        }
    };
    let writing = async {
        match write_side(&shared, direction, &dst, rx, counter).await {
            Ok(None) => {}
            Ok(Some(c)) => {
                cut.send_replace(c);
            }
            Err(_) => {
                cut.send_replace(Cut::Reset);
            }
        }
    };
    tokio::join!(reading, writing);
}

async fn read_side(
    shared: &Shared,
    direction: Direction,
    src: &TcpStream,
    tx: mpsc::Sender<Item>,
) -> io::Result<()> {
    // Bytes passed since the faults last changed.
    let mut passed: u64 = 0;
    let mut generation = None;
    let mut last_release = Instant::now();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        src.readable().await?;
        let n = match src.try_read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let (faults, current) = shared.faults(direction);
        if generation != Some(current) {
            generation = Some(current);
            passed = 0;
        }
        let now = Instant::now();
        let release = (now + chunk_delay(&faults, &mut shared.rng())).max(last_release);
        last_release = release;
        if n == 0 {
            let _ = tx.send(Item::Eof { release }).await;
            return Ok(());
        }
        if faults.blackhole {
            shared.count(&shared.stats.bytes_dropped, n as u64);
            continue;
        }
        // The tightest byte limit decides how much of this chunk still passes.
        let limits = [
            (faults.reset_after_bytes, Cut::Reset),
            (faults.limit_bytes, Cut::Close),
        ];
        let cut_at = limits
            .iter()
            .filter_map(|&(limit, kind)| limit.map(|l| (l, kind)))
            .filter(|&(limit, _)| passed + n as u64 > limit)
            .min_by_key(|&(limit, _)| limit);
        let allowed = match cut_at {
            Some((limit, _)) => limit.saturating_sub(passed) as usize,
            None => n,
        };
        if allowed > 0 {
            let bytes = buf[..allowed].to_vec();
            if tx.send(Item::Data { release, bytes }).await.is_err() {
                return Ok(());
            }
        }
        passed += allowed as u64;
        if let Some((_, kind)) = cut_at {
            let _ = tx.send(Item::Cut(kind)).await;
            return Ok(());
        }
    }
}

/// Writes what the reader passes on; returns the cut the reader asked for, if any.
async fn write_side(
    shared: &Shared,
    direction: Direction,
    dst: &TcpStream,
    mut rx: mpsc::Receiver<Item>,
    counter: &AtomicU64,
) -> io::Result<Option<Cut>> {
    // When the bandwidth limit lets the next byte go.
    let mut next_free = Instant::now();
    while let Some(item) = rx.recv().await {
        match item {
            Item::Data { release, bytes } => {
                tokio::time::sleep_until(release).await;
                let (faults, _) = shared.faults(direction);
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let piece = if faults.slice_bytes > 0 {
                        let size = shared
                            .rng()
                            .around(faults.slice_bytes, faults.slice_variation)
                            .max(1);
                        rest.len().min(size as usize)
                    } else {
                        rest.len()
                    };
                    if faults.bandwidth_bytes_per_sec > 0 {
                        // Over any interval T at most bandwidth × (T + BANDWIDTH_BURST) bytes pass.
                        if let Some(wait_until) = next_free.checked_sub(BANDWIDTH_BURST) {
                            tokio::time::sleep_until(wait_until).await;
                        }
                        let cost = Duration::from_secs_f64(
                            piece as f64 / faults.bandwidth_bytes_per_sec as f64,
                        );
                        next_free = next_free.max(Instant::now()) + cost;
                    }
                    write_all(dst, &rest[..piece]).await?;
                    shared.count(counter, piece as u64);
                    rest = &rest[piece..];
                    if faults.slice_bytes > 0 && faults.slice_delay_us > 0 && !rest.is_empty() {
                        tokio::time::sleep(Duration::from_micros(faults.slice_delay_us)).await;
                    }
                }
            }
            Item::Eof { release } => {
                tokio::time::sleep_until(release).await;
                let slow = shared.faults(direction).0.slow_close_ms;
                tokio::time::sleep(Duration::from_millis(slow)).await;
                // The peer may be gone already; the other direction reports that.
                let _ = socket2::SockRef::from(dst).shutdown(Shutdown::Write);
                return Ok(None);
            }
            Item::Cut(kind) => return Ok(Some(kind)),
        }
    }
    Ok(None)
}

async fn write_all(dst: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        dst.writable().await?;
        match dst.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

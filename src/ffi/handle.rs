//! The handle registry. A `wps_client *` is an opaque token that is never dereferenced: it
//! encodes a registry id, the fork generation it was created in and a check value over both,
//! and is looked up in a global sharded table. Freed, unknown or forged handles (whose check
//! value does not match) yield `WPS_ERR_INVALID_HANDLE`; a valid handle of an earlier fork
//! generation, inherited by a forked child, `WPS_ERR_FORKED`. Nothing is ever touched through
//! them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Once, RwLock};

use super::client::ClientEntry;
use super::error::{Failure, WPS_ERR_FORKED, WPS_ERR_INVALID_HANDLE, WPS_ERR_NULL_ARG};
use super::pool::Pool;

/// An opaque client handle. Never dereferenced by the library or the application.
pub struct wps_client {
    _private: [u8; 0],
}

/// An opaque group stream handle (see `wps_stream_open`), a token of the same kind as
/// `wps_client`, kept in its own table.
pub struct wps_stream {
    _private: [u8; 0],
}

const SHARDS: usize = 16;

/// Handle layout, low to high bits: registry id, fork generation (modulo its width), check;
/// together exactly a pointer's width.
#[cfg(target_pointer_width = "64")]
const LAYOUT: (u32, u32, u32) = (40, 8, 16);
#[cfg(not(target_pointer_width = "64"))]
const LAYOUT: (u32, u32, u32) = (22, 4, 6);
const ID_BITS: u32 = LAYOUT.0;
const GEN_BITS: u32 = LAYOUT.1;
const CHECK_BITS: u32 = LAYOUT.2;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const CHECK_MASK: u64 = (1 << CHECK_BITS) - 1;

/// Incremented in the child after every `fork()`.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
}

fn install_fork_handler() {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only increments an atomic, which is
        // async-signal-safe and valid in the child of a multi-threaded process.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// Process-wide state of one fork generation: a forked child gets fresh state and leaks the
/// parent's (whose locks and threads may be in any state in the child).
pub(crate) struct Globals {
    generation: u64,
    next_id: AtomicU64,
    shards: [RwLock<HashMap<u64, Arc<ClientEntry>>>; SHARDS],
    streams: RwLock<HashMap<u64, Arc<super::stream::StreamEntry>>>,
    pub pool: Pool,
}

static GLOBALS: AtomicPtr<Globals> = AtomicPtr::new(std::ptr::null_mut());

/// The current generation's globals, created on first use (and again after a fork).
pub(crate) fn globals() -> &'static Globals {
    install_fork_handler();
    let generation = FORK_GENERATION.load(Ordering::Acquire);
    loop {
        let current = GLOBALS.load(Ordering::Acquire);
        // SAFETY: GLOBALS only ever holds pointers from Box::leak, never freed.
        if let Some(g) = unsafe { current.as_ref() } {
            if g.generation == generation {
                return g;
            }
        }
        let fresh = Box::into_raw(Box::new(Globals {
            generation,
            next_id: AtomicU64::new(1),
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            streams: RwLock::new(HashMap::new()),
            pool: Pool::new(),
        }));
        match GLOBALS.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The previous generation's globals are leaked on purpose (see above).
            Ok(_) => continue,
            Err(_) => {
                // SAFETY: `fresh` was never published; we still own it.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

fn shard(g: &Globals, id: u64) -> &RwLock<HashMap<u64, Arc<ClientEntry>>> {
    &g.shards[(id as usize) % SHARDS]
}

/// A fresh registry id (never 0; reused within a generation only after 2^ID_BITS ids).
pub(crate) fn allocate_id() -> u64 {
    let g = globals();
    let id = g.next_id.fetch_add(1, Ordering::Relaxed) & ID_MASK;
    if id == 0 {
        g.next_id.fetch_add(1, Ordering::Relaxed) & ID_MASK
    } else {
        id
    }
}

/// Publishes `entry` and returns its handle.
pub(crate) fn register(entry: Arc<ClientEntry>) -> *mut wps_client {
    let g = globals();
    let id = entry.id;
    shard(g, id)
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, entry);
    encode(id, g.generation) as usize as *mut wps_client
}

/// The check value of an id and generation: a garbage value matches it with a chance of one in
/// 2^CHECK_BITS.
fn check_value(id: u64, generation: u64) -> u64 {
    let x = (id | (generation & GEN_MASK) << ID_BITS) ^ 0x5157_5053_4841_4e44;
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - CHECK_BITS)) & CHECK_MASK
}

fn encode(id: u64, generation: u64) -> u64 {
    (check_value(id, generation) << (ID_BITS + GEN_BITS))
        | (generation & GEN_MASK) << ID_BITS
        | (id & ID_MASK)
}

fn not_a_handle() -> Failure {
    Failure::new(
        WPS_ERR_INVALID_HANDLE,
        "not a client handle (freed, unknown or garbage)",
    )
}

/// The registry id of a handle of the current generation.
fn decode(handle: *const wps_client) -> Result<u64, Failure> {
    if handle.is_null() {
        return Err(Failure::new(WPS_ERR_NULL_ARG, "client is NULL"));
    }
    decode_raw(
        handle as usize as u64,
        FORK_GENERATION.load(Ordering::Acquire),
    )
}

/// Publishes a stream and returns its handle.
pub(crate) fn register_stream(entry: Arc<super::stream::StreamEntry>) -> *mut wps_stream {
    let g = globals();
    let id = allocate_id();
    g.streams
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, entry);
    encode(id, g.generation) as usize as *mut wps_stream
}

fn decode_stream(handle: *const wps_stream) -> Result<u64, Failure> {
    if handle.is_null() {
        return Err(Failure::new(WPS_ERR_NULL_ARG, "stream is NULL"));
    }
    decode_raw(
        handle as usize as u64,
        FORK_GENERATION.load(Ordering::Acquire),
    )
}

fn decode_raw(raw: u64, current: u64) -> Result<u64, Failure> {
    let id = raw & ID_MASK;
    let generation = (raw >> ID_BITS) & GEN_MASK;
    let check = (raw >> (ID_BITS + GEN_BITS)) & CHECK_MASK;
    if id == 0 || check != check_value(id, generation) {
        return Err(not_a_handle());
    }
    // How many forks ago the handle was made; more forks than this process has seen means it
    // is no handle of this process's history.
    let age = current.wrapping_sub(generation) & GEN_MASK;
    if age == 0 {
        return Ok(id);
    }
    if age > current {
        return Err(not_a_handle());
    }
    Err(Failure::new(
        WPS_ERR_FORKED,
        "the client was created before fork(); create a new client in this process",
    ))
}

/// Looks a handle up: the entry, or why not.
pub(crate) fn lookup(handle: *const wps_client) -> Result<Arc<ClientEntry>, Failure> {
    let id = decode(handle)?;
    let g = globals();
    let found = shard(g, id)
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    found.ok_or_else(|| {
        Failure::new(
            WPS_ERR_INVALID_HANDLE,
            "the client handle was freed or is unknown",
        )
    })
}

fn stream_gone() -> Failure {
    Failure::new(
        WPS_ERR_INVALID_HANDLE,
        "the stream handle was freed or is unknown",
    )
}

/// Looks a stream handle up.
pub(crate) fn lookup_stream(
    handle: *const wps_stream,
) -> Result<Arc<super::stream::StreamEntry>, Failure> {
    let id = decode_stream(handle)?;
    let found = globals()
        .streams
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned();
    found.ok_or_else(stream_gone)
}

/// Removes a stream handle; later lookups fail.
pub(crate) fn unregister_stream(
    handle: *const wps_stream,
) -> Result<Arc<super::stream::StreamEntry>, Failure> {
    let id = decode_stream(handle)?;
    let removed = globals()
        .streams
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    removed.ok_or_else(stream_gone)
}

/// Removes a handle; later lookups fail. Returns the entry if it was registered.
pub(crate) fn unregister(handle: *const wps_client) -> Result<Arc<ClientEntry>, Failure> {
    let id = decode(handle)?;
    let g = globals();
    let removed = shard(g, id)
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    removed.ok_or_else(|| {
        Failure::new(
            WPS_ERR_INVALID_HANDLE,
            "the client handle was freed or is unknown",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_invalid_handle_and_only_earlier_generations_are_forked() {
        let h = encode(42, 3);
        assert_eq!(decode_raw(h, 3), Ok(42));
        assert_eq!(decode_raw(h, 5).unwrap_err().code, WPS_ERR_FORKED);
        // A generation this process has not reached yet is not one of its handles.
        assert_eq!(decode_raw(h, 2).unwrap_err().code, WPS_ERR_INVALID_HANDLE);
        assert_eq!(
            decode_raw(encode(7, 1), 0).unwrap_err().code,
            WPS_ERR_INVALID_HANDLE
        );
        for garbage in [
            u64::from(u32::MAX),
            usize::MAX as u64,
            1,
            0x1000,
            h ^ 1 << ID_BITS,
        ] {
            assert_eq!(
                decode_raw(garbage, 0).unwrap_err().code,
                WPS_ERR_INVALID_HANDLE,
                "{garbage:#x}"
            );
        }
    }
}

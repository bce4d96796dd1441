//! The handle registry. A `wps_client *` is an opaque token that is never dereferenced: it
//! encodes a registry id (and the fork generation it was created in) and is looked up in a
//! global sharded table. Freed, unknown or forged handles yield `WPS_ERR_INVALID_HANDLE`,
//! inherited handles in a forked child `WPS_ERR_FORKED`; nothing is ever touched through them.

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

const SHARDS: usize = 16;

#[cfg(target_pointer_width = "64")]
const GEN_SHIFT: u32 = 48;
#[cfg(not(target_pointer_width = "64"))]
const GEN_SHIFT: u32 = 26;
const ID_MASK: u64 = (1 << GEN_SHIFT) - 1;
const GEN_MASK: u64 = (usize::MAX as u64) >> GEN_SHIFT;

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

/// A fresh registry id (never 0, never reused within a generation).
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
    (((g.generation & GEN_MASK) << GEN_SHIFT) | id) as usize as *mut wps_client
}

fn decode(handle: *const wps_client) -> Result<u64, Failure> {
    if handle.is_null() {
        return Err(Failure::new(WPS_ERR_NULL_ARG, "client is NULL"));
    }
    let raw = handle as usize as u64;
    let generation = FORK_GENERATION.load(Ordering::Acquire);
    if (raw >> GEN_SHIFT) & GEN_MASK != generation & GEN_MASK {
        return Err(Failure::new(
            WPS_ERR_FORKED,
            "the client was created before fork(); create a new client in this process",
        ));
    }
    Ok(raw & ID_MASK)
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

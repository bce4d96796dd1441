//! `wps_client_get_stats`: a snapshot of a client's counters and state.

use crate::client::ConnectionState;

use super::error::{fail_with, wps_result, WPS_ERR_INVALID_ARG, WPS_ERR_NULL_ARG, WPS_OK};
use super::handle::{self, wps_client};
use super::macros::{ffi_fn, try_ffi};

/// Stopped: never started, or stopped (also after the client gave up reconnecting).
pub const WPS_STATE_STOPPED: u32 = 1;
/// Opening a new connection.
pub const WPS_STATE_CONNECTING: u32 = 2;
/// Connected: operations are sent at once.
pub const WPS_STATE_CONNECTED: u32 = 3;
/// Recovering a dropped reliable connection (same connection id).
pub const WPS_STATE_RECOVERING: u32 = 4;
/// The connection was lost and not recovered; waiting before the next connection attempt.
pub const WPS_STATE_RECONNECTING: u32 = 5;
/// A stop is in progress.
pub const WPS_STATE_STOPPING: u32 = 6;

/// A snapshot of a client's counters (see `wps_client_get_stats`).
///
/// Versioning: the caller sets `struct_size` to `sizeof(wps_stats)` of the header it compiled
/// against; the library fills in at most that many bytes and leaves the rest untouched, so a
/// program built against an older header keeps working with a newer library. New fields are
/// only ever appended. Counters only grow during the client's life (they survive stop and
/// start); `queued_messages`, `queued_bytes`, `inflight_acks` and `last_ping_rtt_us` are current
/// values.
#[repr(C)]
pub struct wps_stats {
    /// `sizeof(wps_stats)` as the caller knows it; set by the caller.
    pub struct_size: u32,
    /// `WPS_STATE_*`.
    pub state: u32,
    /// Operation frames written to the socket (sends to groups, events, joins, leaves, invokes,
    /// and the engine's rejoins), each resend included; pings and sequence acks are not counted.
    pub messages_sent: u64,
    /// Group and server messages delivered (duplicates dropped by sequence id are not).
    pub messages_received: u64,
    /// Bytes of the frames counted in `messages_sent`.
    pub bytes_sent: u64,
    /// Bytes of every data frame read from the socket.
    pub bytes_received: u64,
    /// Acked operations that succeeded (`Duplicate` included).
    pub acks_ok: u64,
    /// Acked operations that failed for good (after their retries).
    pub acks_failed: u64,
    /// Retries of acked operations with the same ack id.
    pub retries: u64,
    /// Acked operations the service answered with `Duplicate` (also in `acks_ok`).
    pub duplicates: u64,
    /// New connections (`WPS_EVENT_CONNECTED`).
    pub connects: u64,
    /// Successful recoveries (`WPS_EVENT_RECOVERED`).
    pub recoveries: u64,
    /// Reliable sessions lost without recovery (`WPS_EVENT_SESSION_LOST`).
    pub session_losses: u64,
    /// Operations waiting for a usable connection.
    pub queued_messages: u64,
    /// Frame bytes of the operations in `queued_messages`.
    pub queued_bytes: u64,
    /// Acked operations started and not yet completed (queued, in flight or between retries).
    pub inflight_acks: u64,
    /// Round-trip time of the last answered ping in microseconds; 0 when unknown.
    pub last_ping_rtt_us: u64,
}

/// The `WPS_STATE_*` value of an engine state.
pub(crate) fn state_code(s: ConnectionState) -> u32 {
    match s {
        ConnectionState::Stopped => WPS_STATE_STOPPED,
        ConnectionState::Connecting => WPS_STATE_CONNECTING,
        ConnectionState::Connected => WPS_STATE_CONNECTED,
        ConnectionState::Recovering => WPS_STATE_RECOVERING,
        ConnectionState::Disconnected => WPS_STATE_RECONNECTING,
        ConnectionState::Stopping => WPS_STATE_STOPPING,
    }
}

/// Fills `*out` with a snapshot of the client's counters and state. The counters are kept
/// with atomics (no lock is taken, here or on any send or receive path).
///
/// Ownership: `out` is the caller's; set `out->struct_size = sizeof(wps_stats)` first. At most
/// `struct_size` bytes are written; `struct_size` itself is left as the caller set it.
/// Thread-safety: any thread. Callback context: may be called from any callback.
/// Errors: `WPS_ERR_NULL_ARG`, `WPS_ERR_INVALID_HANDLE`, `WPS_ERR_FORKED`,
/// `WPS_ERR_INVALID_ARG` (`struct_size` smaller than the first two fields, 8 bytes).
///
/// # Safety
/// `out` is NULL or points to at least `out->struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn wps_client_get_stats(
    c: *mut wps_client,
    out: *mut wps_stats,
) -> wps_result {
    ffi_fn!("wps_client_get_stats", {
        if out.is_null() {
            return fail_with(WPS_ERR_NULL_ARG, "out is NULL");
        }
        // SAFETY: `out` is non-NULL and, per the contract, points to at least `struct_size`
        // writable bytes, of which the first four are `struct_size`.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read_unaligned() } as usize;
        if size < 8 {
            return fail_with(
                WPS_ERR_INVALID_ARG,
                format!("out->struct_size is {size}; set it to sizeof(wps_stats)"),
            );
        }
        let entry = try_ffi!(handle::lookup(c));
        let s = entry.client.stats();
        let snapshot = wps_stats {
            struct_size: size as u32,
            state: state_code(s.state),
            messages_sent: s.messages_sent,
            messages_received: s.messages_received,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            acks_ok: s.acks_ok,
            acks_failed: s.acks_failed,
            retries: s.retries,
            duplicates: s.duplicates,
            connects: s.connects,
            recoveries: s.recoveries,
            session_losses: s.session_losses,
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            inflight_acks: s.inflight_acks,
            last_ping_rtt_us: s.last_ping_rtt_us,
        };
        let n = size.min(std::mem::size_of::<wps_stats>());
        // SAFETY: the caller provides `size` >= `n` writable bytes at `out`; `snapshot` is a
        // live local of `size_of::<wps_stats>()` >= `n` bytes; the regions cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                std::ptr::addr_of!(snapshot).cast::<u8>(),
                out.cast::<u8>(),
                n,
            )
        };
        WPS_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_two_words_then_u64_counters() {
        assert_eq!(std::mem::size_of::<wps_stats>(), 8 + 15 * 8);
        assert_eq!(std::mem::offset_of!(wps_stats, messages_sent), 8);
    }
}

//! The process-wide log callback, mapped onto the library's logger.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::log::{self as engine_log, Level};

use super::error::{to_cstring, wps_result, Failure, WPS_ERR_INVALID_ARG, WPS_OK};
use super::macros::{ffi_fn, try_ffi};

/// Logging off.
pub const WPS_LOG_OFF: u32 = 0;
/// Failures.
pub const WPS_LOG_ERROR: u32 = 1;
/// Unexpected but handled situations (drops, retries).
pub const WPS_LOG_WARNING: u32 = 2;
/// Lifecycle: connect, recovery, reconnect, stop.
pub const WPS_LOG_INFO: u32 = 3;
/// Everything, including frames.
pub const WPS_LOG_VERBOSE: u32 = 4;

/// Receives one log line: `level` is `WPS_LOG_*`, `message` is NUL-terminated UTF-8 borrowed
/// until the function returns (access tokens are already redacted). Called from any library
/// thread, possibly concurrently, including the runtime's threads inside the engine's own tasks;
/// keep it short and do not block. Calls that would wait (the blocking operations,
/// `wps_client_dispatch` with a timeout) return `WPS_ERR_INVALID_STATE` there instead of
/// stalling the engine; `_async` operations work.
#[allow(non_camel_case_types)]
pub type wps_log_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>;

fn level_from(level: u32) -> Result<Option<Level>, Failure> {
    Ok(match level {
        WPS_LOG_OFF => None,
        WPS_LOG_ERROR => Some(Level::Error),
        WPS_LOG_WARNING => Some(Level::Warning),
        WPS_LOG_INFO => Some(Level::Info),
        WPS_LOG_VERBOSE => Some(Level::Verbose),
        other => {
            return Err(Failure::new(
                WPS_ERR_INVALID_ARG,
                format!("unknown log level {other}"),
            ))
        }
    })
}

fn level_code(level: Level) -> u32 {
    match level {
        Level::Error => WPS_LOG_ERROR,
        Level::Warning => WPS_LOG_WARNING,
        Level::Info => WPS_LOG_INFO,
        Level::Verbose => WPS_LOG_VERBOSE,
    }
}

/// Installs the process-wide log callback for messages at `max_level` (`WPS_LOG_*`) and more
/// severe; `log_fn` NULL or `WPS_LOG_OFF` turns logging off (including the stderr logging that
/// `AZURE_LOG_LEVEL` / `WPS_LOG` enable when no callback is set).
///
/// Ownership: `user_data` is passed back verbatim; keep it valid until logging is turned off or
/// replaced. Turning it off or replacing it returns only once calls of the previous callback
/// on other threads have returned (it waits at most 5 s), so the previous `user_data` may be
/// released right after.
/// Thread-safety: any thread. Callback context: may be called from any callback (not from the
/// log callback itself).
/// Errors: `WPS_ERR_INVALID_ARG` (unknown level).
#[no_mangle]
pub extern "C" fn wps_set_log_callback(
    log_fn: wps_log_fn,
    user_data: *mut c_void,
    max_level: u32,
) -> wps_result {
    ffi_fn!("wps_set_log_callback", {
        let level = try_ffi!(level_from(max_level));
        match (log_fn, level) {
            (Some(f), Some(level)) => {
                let ud = user_data as usize;
                let sink: engine_log::LogFn = Arc::new(move |lvl: Level, msg: &str| {
                    let text = to_cstring(msg);
                    // SAFETY: the application registered `f` with `ud`; `text` lives until the
                    // call returns.
                    unsafe { f(ud as *mut c_void, level_code(lvl), text.as_ptr()) };
                });
                engine_log::set_logger(Some(sink), level);
            }
            _ => engine_log::set_logger(None, Level::Error),
        }
        WPS_OK
    })
}

/// Logs an error from the C surface itself (e.g. a caught panic).
pub(crate) fn emit_error(text: &str) {
    engine_log::log(Level::Error, format_args!("{text}"));
}

//! The URL provider: a C function asked for a fresh client access URL for every new connection.
//!
//! The provider writes into a library-owned buffer, so no allocation crosses the boundary:
//! it returns `WPS_OK` after writing a NUL-terminated URL, or `WPS_ERR_BUFFER_TOO_SMALL` with the
//! needed size (the library retries once with a buffer that large), or any other code to fail
//! the connection attempt.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::dispatch::wps_free_fn;
use super::error::{wps_result, WPS_ERR_BUFFER_TOO_SMALL, WPS_OK};
use super::waits::{begin_wait, ThreadToken};

/// Writes a client access URL into `buf` (capacity `cap` bytes, including the NUL).
///
/// Return `WPS_OK` after writing a NUL-terminated URL; or set `*out_len` to the needed size
/// (including the NUL) and return `WPS_ERR_BUFFER_TOO_SMALL`; or return any other `WPS_ERR_*`
/// code to fail this connection attempt (the reconnect policy decides what happens next).
/// Called on a library thread that may block (never concurrently for one client); never
/// called after `wps_client_free` returned.
#[allow(non_camel_case_types)]
pub type wps_url_provider_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        buf: *mut c_char,
        cap: usize,
        out_len: *mut usize,
    ) -> wps_result,
>;

type ProviderFn = unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut usize) -> wps_result;

const FIRST_CAPACITY: usize = 2048;
/// URLs longer than this are rejected (a JWT-bearing URL is a few hundred bytes).
const MAX_CAPACITY: usize = 64 * 1024;

struct State {
    /// The threads running the provider right now (one, except when a call abandoned by a
    /// stop is still running after a new start).
    in_flight: Vec<ThreadToken>,
    revoked: bool,
}

/// A provider that can be revoked: after `revoke` returns it is never called again. Its user
/// data destructor runs once, after the last call returned.
pub(crate) struct ProviderCell {
    func: ProviderFn,
    user_data: usize,
    user_data_free: Mutex<wps_free_fn>,
    state: Mutex<State>,
    idle: Condvar,
}

thread_local! {
    /// URL provider calls running on this thread (providers run on the shared provider threads,
    /// where, unlike on the runtime's workers, blocking calls are allowed).
    static IN_PROVIDER_CALL: Cell<u32> = const { Cell::new(0) };
}

/// Whether the calling thread is inside a URL provider call.
pub(crate) fn in_provider_call() -> bool {
    IN_PROVIDER_CALL.try_with(Cell::get).unwrap_or(0) > 0
}

impl ProviderCell {
    pub fn new(
        func: ProviderFn,
        user_data: *mut c_void,
        user_data_free: wps_free_fn,
    ) -> Arc<ProviderCell> {
        Arc::new(ProviderCell {
            func,
            user_data: user_data as usize,
            user_data_free: Mutex::new(user_data_free),
            state: Mutex::new(State {
                in_flight: Vec::new(),
                revoked: false,
            }),
            idle: Condvar::new(),
        })
    }

    /// Asks the provider for a URL.
    pub fn call(&self) -> Result<String, String> {
        {
            let mut st = self.lock();
            if st.revoked {
                return Err("the client was freed".into());
            }
            st.in_flight.push(ThreadToken::current());
        }
        let _ = IN_PROVIDER_CALL.try_with(|n| n.set(n.get() + 1));
        let outcome = self.invoke();
        let _ = IN_PROVIDER_CALL.try_with(|n| n.set(n.get() - 1));
        let mut st = self.lock();
        let me = ThreadToken::current();
        if let Some(i) = st.in_flight.iter().position(|t| *t == me) {
            st.in_flight.swap_remove(i);
        }
        let finish_revoke = st.revoked && st.in_flight.is_empty();
        self.idle.notify_all();
        drop(st);
        if finish_revoke {
            // Revoked while this call ran: the destructor was left to this call (unless a
            // teardown saw it return first; it runs only once either way).
            self.run_user_data_free();
        }
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn invoke(&self) -> Result<String, String> {
        let mut cap = FIRST_CAPACITY;
        for _ in 0..2 {
            let mut buf = vec![0u8; cap];
            let mut needed: usize = 0;
            // SAFETY: `buf` has `cap` writable bytes and `needed` is a live usize; the
            // application registered `func` with `user_data` for exactly this call.
            let rc = unsafe {
                (self.func)(
                    self.user_data as *mut c_void,
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut needed,
                )
            };
            match rc {
                WPS_OK => {
                    let url = CStr::from_bytes_until_nul(&buf)
                        .map_err(|_| "the URL provider wrote no NUL terminator".to_owned())?;
                    let url = url
                        .to_str()
                        .map_err(|_| "the URL provider wrote invalid UTF-8".to_owned())?;
                    if url.is_empty() {
                        return Err("the URL provider returned an empty URL".into());
                    }
                    return Ok(url.to_owned());
                }
                WPS_ERR_BUFFER_TOO_SMALL if needed > cap && needed <= MAX_CAPACITY => cap = needed,
                WPS_ERR_BUFFER_TOO_SMALL => {
                    return Err(format!(
                        "the URL provider needs {needed} bytes (limit {MAX_CAPACITY})"
                    ))
                }
                other => {
                    return Err(format!(
                        "the URL provider failed with {} ({other})",
                        name_of(other)
                    ))
                }
            }
        }
        Err("the URL provider kept reporting a too small buffer".into())
    }

    /// Stops further calls (a call in progress finishes). Never waits.
    pub fn revoke(&self) {
        self.lock().revoked = true;
    }

    /// After [`Self::revoke`]: waits until a call in progress on another thread returns, at
    /// most until `deadline`, then runs the user data destructor. A call that is still running
    /// then (or that runs on this thread, or on a thread that waits for this one) runs the
    /// destructor itself when it returns, possibly after `wps_client_free` returned.
    pub fn wait_idle(&self, deadline: Instant) {
        let mut st = self.lock();
        let own = st.in_flight.contains(&ThreadToken::current());
        while let Some(&caller) = st.in_flight.first() {
            let Some(_waiting) = (!own).then(|| begin_wait(caller)).flatten() else {
                return;
            };
            while st.in_flight.contains(&caller) {
                let now = Instant::now();
                if now >= deadline {
                    crate::wps_log!(
                        Warning,
                        "the URL provider is still running at the end of the shutdown \
                         timeout; its user data is released when it returns"
                    );
                    return;
                }
                st = self
                    .idle
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        drop(st);
        self.run_user_data_free();
    }

    /// Drops the destructor without running it (creation failed; the caller keeps user_data).
    pub fn forget_user_data_free(&self) {
        self.user_data_free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn run_user_data_free(&self) {
        let free = self
            .user_data_free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(free) = free {
            // SAFETY: the application registered `free` for this user_data; `take` makes this
            // the only call, and the provider is revoked with no call in flight.
            unsafe { free(self.user_data as *mut c_void) };
        }
    }
}

fn name_of(code: wps_result) -> String {
    let p = super::error::wps_result_name(code);
    // SAFETY: wps_result_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "wss://example.invalid/client/hubs/h?access_token=abc";

    unsafe extern "C" fn long_url(
        _: *mut c_void,
        buf: *mut c_char,
        cap: usize,
        out_len: *mut usize,
    ) -> wps_result {
        let url = format!("{LONG}{}\0", "x".repeat(3000));
        if cap < url.len() {
            // SAFETY: out_len is a live usize per the provider contract.
            unsafe { *out_len = url.len() };
            return WPS_ERR_BUFFER_TOO_SMALL;
        }
        // SAFETY: buf has cap >= url.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(url.as_ptr(), buf.cast(), url.len()) };
        WPS_OK
    }

    unsafe extern "C" fn failing(
        _: *mut c_void,
        _: *mut c_char,
        _: usize,
        _: *mut usize,
    ) -> wps_result {
        super::super::error::WPS_ERR_UNAUTHORIZED
    }

    #[test]
    fn a_long_url_is_fetched_with_a_second_bigger_buffer() {
        let cell = ProviderCell::new(long_url, std::ptr::null_mut(), None);
        let url = cell.call().unwrap();
        assert!(url.starts_with(LONG) && url.len() == LONG.len() + 3000);
    }

    #[test]
    fn failures_and_revocation_are_errors() {
        let cell = ProviderCell::new(failing, std::ptr::null_mut(), None);
        assert!(cell.call().unwrap_err().contains("WPS_ERR_UNAUTHORIZED"));
        cell.revoke();
        cell.wait_idle(Instant::now());
        assert!(cell.call().unwrap_err().contains("freed"));
    }
}

//! The panic boundary and argument checks every exported function goes through, so each
//! `extern "C"` body stays a thin shell: check arguments, convert, call the Rust API, map the error.

use std::any::Any;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{fail_with, Failure, WPS_ERR_INVALID_UTF8, WPS_ERR_NULL_ARG, WPS_ERR_PANIC};

/// What an exported function returns when a panic is caught inside it.
pub(crate) trait PanicDefault {
    fn panic_default() -> Self;
}

impl PanicDefault for i32 {
    fn panic_default() -> i32 {
        WPS_ERR_PANIC
    }
}

impl PanicDefault for () {
    fn panic_default() {}
}

impl PanicDefault for bool {
    fn panic_default() -> bool {
        false
    }
}

impl PanicDefault for u32 {
    fn panic_default() -> u32 {
        0
    }
}

impl PanicDefault for usize {
    fn panic_default() -> usize {
        0
    }
}

impl<T> PanicDefault for *const T {
    fn panic_default() -> *const T {
        std::ptr::null()
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Records a caught panic as this thread's last error (when the thread's storage still exists)
/// and logs it. Never unwinds: it may run where thread-local storage is already destroyed
/// (`atexit` handlers, thread-local destructors), so a failure in here is swallowed, and the
/// payload of such a second panic is leaked rather than dropped.
pub(crate) fn record_panic(context: &str, payload: Box<dyn Any + Send>) {
    let reported = catch_unwind(AssertUnwindSafe(move || {
        let text = format!("panic in {context}: {}", panic_message(payload.as_ref()));
        drop(payload);
        crate::ffi::log::emit_error(&text);
        fail_with(WPS_ERR_PANIC, text);
    }));
    if let Err(second) = reported {
        std::mem::forget(second);
    }
}

/// Runs `body`, turning a panic into the return type's panic default and recording the panic
/// text as this thread's last error. Nothing ever unwinds into C, and this function itself
/// cannot panic.
pub(crate) fn boundary<R: PanicDefault>(name: &str, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            record_panic(name, payload);
            R::panic_default()
        }
    }
}

/// Wraps an exported function body in the panic boundary:
/// `ffi_fn!("wps_x", { ... })`.
macro_rules! ffi_fn {
    ($name:literal, $body:block) => {
        $crate::ffi::macros::boundary($name, || $body)
    };
}

/// Unwraps `Result<T, Failure>`, returning the recorded error code on failure.
macro_rules! try_ffi {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(f) => return $crate::ffi::error::fail(f),
        }
    };
}

/// Returns `WPS_ERR_NULL_ARG` (with a message naming the argument) if the pointer is NULL.
macro_rules! non_null {
    ($p:expr, $name:literal) => {
        if $p.is_null() {
            return $crate::ffi::error::fail_with(
                $crate::ffi::error::WPS_ERR_NULL_ARG,
                concat!($name, " is NULL"),
            );
        }
    };
}

pub(crate) use {ffi_fn, non_null, try_ffi};

/// Borrows a NUL-terminated UTF-8 argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::new(WPS_ERR_NULL_ARG, format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|e| {
        Failure::new(
            WPS_ERR_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// Borrows a `(data, len)` payload argument; NULL is accepted only with `len == 0`.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that stay valid for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    data: *const u8,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    if data.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Failure::new(
            WPS_ERR_NULL_ARG,
            format!("{name} is NULL but its length is {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Failure::new(
            super::error::WPS_ERR_INVALID_ARG,
            format!("{name} length {len} is too large"),
        ));
    }
    // SAFETY: non-NULL, `len` readable bytes per this function's contract, len <= isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Writes `value` through an optional out pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable per this function's contract.
        unsafe { out.write(value) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::error::wps_last_error_message;

    #[test]
    fn a_panic_becomes_an_error_code_with_its_message() {
        let r: i32 = boundary("wps_test", || panic!("boom"));
        assert_eq!(r, WPS_ERR_PANIC);
        // SAFETY: the last error message is a valid NUL-terminated string after a failure.
        let msg = unsafe { CStr::from_ptr(wps_last_error_message()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }

    #[test]
    fn invalid_utf8_is_rejected_with_its_position() {
        let bad = b"ab\xffc\0";
        // SAFETY: a NUL-terminated byte string literal.
        let err = unsafe { str_arg(bad.as_ptr().cast(), "group") }.unwrap_err();
        assert_eq!(err.code, WPS_ERR_INVALID_UTF8);
        assert!(err.message.contains("byte 2"));
        // SAFETY: NULL is allowed by the contract.
        let err = unsafe { str_arg(std::ptr::null(), "group") }.unwrap_err();
        assert_eq!(err.code, WPS_ERR_NULL_ARG);
    }

    #[test]
    fn null_payload_is_fine_only_when_empty() {
        // SAFETY: NULL is allowed by the contract.
        assert!(unsafe { bytes_arg(std::ptr::null(), 0, "data") }
            .unwrap()
            .is_empty());
        // SAFETY: NULL is allowed by the contract.
        assert_eq!(
            unsafe { bytes_arg(std::ptr::null(), 3, "data") }
                .unwrap_err()
                .code,
            WPS_ERR_NULL_ARG
        );
    }
}

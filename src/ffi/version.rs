//! Library version, matching `Cargo.toml` and the header's `WPS_VERSION_*` macros.

use std::ffi::c_char;

const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < bytes.len() {
        n = n * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    n
}

pub(crate) const MAJOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MAJOR"));
pub(crate) const MINOR: u32 = parse_u32(env!("CARGO_PKG_VERSION_MINOR"));
pub(crate) const PATCH: u32 = parse_u32(env!("CARGO_PKG_VERSION_PATCH"));

/// `"major.minor.patch"`, the same text as the header's `WPS_VERSION_STRING`.
const VERSION_STRING: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as `(major << 16) | (minor << 8) | patch`, equal to the header's
/// `WPS_VERSION_NUMBER` when header and library match.
///
/// Thread-safety: any thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_version_number() -> u32 {
    (MAJOR << 16) | (MINOR << 8) | PATCH
}

/// The library version as static text, `"major.minor.patch"` (e.g. `"0.1.0"`): equal to the
/// header's `WPS_VERSION_STRING` when header and library match.
///
/// Ownership: static; never free it. Never returns NULL.
/// Thread-safety: any thread. Callback context: may be called from any callback.
#[no_mangle]
pub extern "C" fn wps_version_string() -> *const c_char {
    VERSION_STRING.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_and_string_match_the_package_version() {
        let n = wps_version_number();
        let text = format!("{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff);
        assert_eq!(text, env!("CARGO_PKG_VERSION"));
        // SAFETY: static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(wps_version_string()) };
        assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}

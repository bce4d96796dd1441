//! The WebSocket upgrade (RFC 6455 §4.1) on an open stream.
//!
//! Done here rather than by tungstenite's handshake, whose fixed 4 KiB read buffer would stay
//! with the connection as its frame buffer for its whole life: the response head is read into
//! a short-lived buffer, and only the bytes after it are handed to the WebSocket layer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::{generate_request, Request, Response};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::stream::Stream;
use crate::error::Error;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Sends the upgrade request and checks the response; returns the bytes that followed the
/// response head (the first frames, if they arrived with it).
pub async fn upgrade(
    stream: &mut Stream,
    request: Request,
    subprotocol: &str,
) -> Result<Vec<u8>, Error> {
    let (head, key) = generate_request(request).map_err(|e| Error::InvalidUrl(format!("{e}")))?;
    stream.write_all(&head).await.map_err(io_error)?;
    stream.flush().await.map_err(io_error)?;
    let mut received = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io_error)?;
        if n == 0 {
            return Err(Error::connection(
                "the server closed the connection during the handshake",
            ));
        }
        received.extend_from_slice(&chunk[..n]);
        if let Some(size) = check_response(&received, &key, subprotocol)? {
            return Ok(received.split_off(size));
        }
    }
}

/// Checks the bytes received so far: `Ok(None)` while the response head is incomplete,
/// `Ok(Some(len))` with the head's length once it is complete and accepts the upgrade.
pub(crate) fn check_response(
    received: &[u8],
    key: &str,
    subprotocol: &str,
) -> Result<Option<usize>, Error> {
    match Response::try_parse(received) {
        Err(e) => Err(Error::connection(format!("handshake failed: {e}"))),
        Ok(None) if received.len() > MAX_HEAD => Err(Error::connection(format!(
            "handshake failed: the response head is longer than {MAX_HEAD} bytes"
        ))),
        Ok(None) => Ok(None),
        Ok(Some((size, response))) => {
            verify(&response, key, subprotocol)?;
            Ok(Some(size))
        }
    }
}

/// The checks of RFC 6455 §4.1 (as tungstenite makes them), plus the subprotocol echo.
fn verify(response: &Response, key: &str, subprotocol: &str) -> Result<(), Error> {
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::HandshakeRejected {
            status: response.status().as_u16(),
        });
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if !header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(Error::connection(
            "handshake failed: no \"Upgrade: websocket\" header in the response",
        ));
    }
    if !header("Connection").is_some_and(|v| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("Upgrade"))
    }) {
        return Err(Error::connection(
            "handshake failed: no \"Connection: Upgrade\" header in the response",
        ));
    }
    if header("Sec-WebSocket-Accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(Error::connection(
            "handshake failed: Sec-WebSocket-Accept does not match the key",
        ));
    }
    let echoed = header("Sec-WebSocket-Protocol");
    if echoed != Some(subprotocol) {
        return Err(Error::Protocol(format!(
            "the service did not accept subprotocol {subprotocol} (answered {echoed:?})"
        )));
    }
    Ok(())
}

fn io_error(e: std::io::Error) -> Error {
    Error::connection(format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::http;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(None).unwrap()
    }

    #[test]
    fn checks_status_headers_accept_key_and_subprotocol() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let accept = derive_accept_key(key.as_bytes());
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let good = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept.as_str()),
            ("Sec-WebSocket-Protocol", "p1"),
        ];
        assert_eq!(verify(&response(101, &good), key, "p1"), Ok(()));
        assert_eq!(
            verify(&response(401, &good), key, "p1"),
            Err(Error::HandshakeRejected { status: 401 })
        );
        assert!(matches!(
            verify(&response(101, &good), key, "p2"),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            verify(&response(101, &good[..3]), key, "p1"),
            Err(Error::Protocol(_))
        ));
        for skip in 0..3 {
            let mut h = good.to_vec();
            h.remove(skip);
            assert!(
                matches!(
                    verify(&response(101, &h), key, "p1"),
                    Err(Error::Connection { .. })
                ),
                "without {:?}",
                good[skip]
            );
        }
        let mut wrong = good;
        wrong[2].1 = "x";
        assert!(verify(&response(101, &wrong), key, "p1").is_err());
        let mut listed = good;
        listed[1].1 = "keep-alive, Upgrade";
        assert_eq!(verify(&response(101, &listed), key, "p1"), Ok(()));
    }
}

//! Opening the WebSocket: TCP, optional TLS (rustls with the `ring` provider), the upgrade
//! with the subprotocol header, and mapping of every failure onto a clear [`Error`].

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::proxy::{self, Proxy};
use crate::error::Error;

/// An open client WebSocket. Boxed: the stream is large (over 1 KiB) and is moved through
/// several engine futures, whose states would otherwise each reserve room for it.
pub type Socket = Box<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// Builds the TLS configuration: system roots plus the PEM certificates in `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // Unparseable system certificates are skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let file = std::fs::File::open(path).map_err(|e| {
            Error::InvalidArgument(format!("cannot open CA file {}: {e}", path.display()))
        })?;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
            let cert = cert.map_err(|e| {
                Error::InvalidArgument(format!("bad PEM in CA file {}: {e}", path.display()))
            })?;
            roots.add(cert).map_err(|e| {
                Error::InvalidArgument(format!("bad certificate in {}: {e}", path.display()))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(Error::InvalidArgument(format!(
                "CA file {} contains no certificates",
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::connection(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Socket sizes and limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest inbound message and frame.
    pub max_message_size: usize,
    /// Read buffer per socket.
    pub read_buffer_size: usize,
    /// Bytes buffered before writing.
    pub write_buffer_size: usize,
}

/// Connects to `url` (directly or through `proxy`) requesting `subprotocol`; fails unless the
/// service echoes it.
pub async fn connect(
    url: &url::Url,
    subprotocol: &'static str,
    limits: Limits,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: Option<&Proxy>,
) -> Result<Socket, Error> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl(format!("{e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.max_message_size))
        .read_buffer_size(limits.read_buffer_size.max(1024))
        .write_buffer_size(limits.write_buffer_size);
    let connector = match (url.scheme(), tls) {
        ("wss", Some(cfg)) => Connector::Rustls(cfg),
        ("wss", None) => return Err(Error::connection("wss:// needs a TLS configuration")),
        _ => Connector::Plain,
    };
    let host = url
        .host_str()
        .ok_or_else(|| Error::InvalidUrl("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let target = format!("{host}:{port}");
    let tcp = match proxy {
        Some(p) => proxy::tunnel(p, &target).await?,
        None => TcpStream::connect(&target)
            .await
            .map_err(|e| Error::connection(format!("cannot connect to {target}: {e}")))?,
    };
    // Small frames (acks, pings) must not wait for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let (socket, response) = tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        Some(config),
        Some(connector),
    )
    .await
    .map_err(map_connect_error)?;
    let echoed = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if echoed != Some(subprotocol) {
        return Err(Error::Protocol(format!(
            "the service did not accept subprotocol {subprotocol} (answered {:?})",
            echoed
        )));
    }
    Ok(Box::new(socket))
}

fn map_connect_error(e: WsError) -> Error {
    match e {
        WsError::Http(response) => Error::HandshakeRejected {
            status: response.status().as_u16(),
        },
        WsError::Url(u) => Error::InvalidUrl(u.to_string()),
        WsError::Io(io) => Error::connection(format!("{io}")),
        WsError::Tls(t) => Error::connection(format!("TLS: {t}")),
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            Error::connection("the server closed the connection during the handshake")
        }
        WsError::Protocol(p) => Error::connection(format!("handshake failed: {p}")),
        other => Error::connection(format!("{other}")),
    }
}

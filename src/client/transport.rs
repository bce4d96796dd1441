//! Opening the WebSocket: TCP, optional TLS (rustls with the `ring` provider), the upgrade
//! with the subprotocol header, and mapping of every failure onto a clear [`Error`].

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::proxy::{self, Proxy, Tunnel};
use crate::error::Error;

mod handshake;
mod stream;

use stream::{Io, Stream};

#[cfg(fuzzing)]
pub(crate) use handshake::check_response as check_upgrade_response;

/// An open client WebSocket. Boxed: it is moved through several engine futures, whose states
/// would otherwise each reserve room for it.
pub type Socket = Box<WebSocketStream<Stream>>;

/// The WebSocket layer's own frame buffer, which every connection keeps for its whole life.
/// Reads from the network still happen `read_buffer_size` bytes at a time (see [`Stream`]);
/// larger frames get room for their full length while they are read.
const FRAME_BUFFER: usize = 512;

/// A TLS client certificate chain and its private key (mutual TLS), read from PEM files
/// and checked when loaded.
pub struct ClientCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientCert {
    /// Reads the PEM certificate chain (end-entity certificate first) and the PEM private
    /// key (PKCS#8, PKCS#1 or SEC1), and checks that the key belongs to the certificate.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ClientCert, Error> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                Error::InvalidArgument(format!("cannot read {what} {}: {e}", path.display()))
            })
        };
        let pem = read(cert_file, "client certificate file")?;
        let chain = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "bad PEM in client certificate file {}: {e}",
                    cert_file.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "client certificate file {} contains no certificate",
                cert_file.display()
            )));
        }
        let pem = read(key_file, "client key file")?;
        let key = rustls_pemfile::private_key(&mut &pem[..])
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "bad PEM in client key file {}: {e}",
                    key_file.display()
                ))
            })?
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "client key file {} contains no private key",
                    key_file.display()
                ))
            })?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(
            |e| {
                Error::InvalidArgument(format!(
                    "client key {} does not fit certificate {}: {e}",
                    key_file.display(),
                    cert_file.display()
                ))
            },
        )?;
        Ok(ClientCert {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            chain,
            key,
        })
    }
}

/// What a TLS configuration is built from: the CA file and the client certificate.
type TlsKey = (Option<PathBuf>, Option<Arc<ClientCert>>);

fn same_key(a: &TlsKey, ca_file: Option<&Path>, cert: Option<&Arc<ClientCert>>) -> bool {
    a.0.as_deref() == ca_file
        && match (&a.1, cert) {
            (None, None) => true,
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
}

/// TLS configurations in use, by CA file and client certificate. The system root store is
/// large (hundreds of parsed certificates); clients share one copy instead of each reading
/// and keeping its own.
static TLS_CONFIGS: Mutex<Vec<(TlsKey, Weak<rustls::ClientConfig>)>> = Mutex::new(Vec::new());

/// The TLS configuration for `ca_file` and `client_cert`, shared with every client using
/// the same ones. It is built (the system store and the file read) when no live client
/// holds one.
pub fn shared_tls_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Arc<ClientCert>>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut cache = TLS_CONFIGS.lock().unwrap_or_else(|p| p.into_inner());
    cache.retain(|(_, config)| config.strong_count() > 0);
    let cached = cache
        .iter()
        .find(|(key, _)| same_key(key, ca_file, client_cert))
        .and_then(|(_, config)| config.upgrade());
    if let Some(config) = cached {
        return Ok(config);
    }
    // Built under the lock, so clients connecting at once read the store only once.
    let config = tls_config(ca_file, client_cert.map(|c| &**c))?;
    cache.push((
        (ca_file.map(Path::to_path_buf), client_cert.cloned()),
        Arc::downgrade(&config),
    ));
    Ok(config)
}

/// Builds the TLS configuration: system roots plus the PEM certificates in `ca_file`, and
/// the client certificate when there is one.
pub fn tls_config(
    ca_file: Option<&Path>,
    client_cert: Option<&ClientCert>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
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
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::connection(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|e| {
                Error::InvalidArgument(format!("client certificate {}: {e}", c.cert_file.display()))
            })?,
    };
    Ok(Arc::new(config))
}

/// With TLS 1.3 a server that refuses the client certificate says so with an alert that
/// arrives only when the upgrade response is read: name the cause.
fn explain_tls_alert(e: Error) -> Error {
    let Error::Connection { message, ack_id } = e else {
        return e;
    };
    let hint = if message.contains("alert: CertificateRequired") {
        "; the server requires a TLS client certificate (set one with the client_cert option)"
    } else if [
        "UnknownCA",
        "BadCertificate",
        "CertificateUnknown",
        "UnsupportedCertificate",
    ]
    .iter()
    .any(|a| message.contains(&format!("alert: {a}")))
    {
        "; the server did not accept the TLS client certificate"
    } else if message.contains("alert: CertificateExpired") {
        "; the server found the TLS client certificate expired"
    } else {
        ""
    };
    Error::Connection {
        message: format!("{message}{hint}"),
        ack_id,
    }
}

/// Socket sizes and limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest inbound message and frame.
    pub max_message_size: usize,
    /// Bytes read from the network at once.
    pub read_buffer_size: usize,
    /// Bytes buffered before writing.
    pub write_buffer_size: usize,
}

/// The `User-Agent` header: the application's prefix, if any, then this library with its
/// version, operating system and architecture.
pub fn user_agent(prefix: Option<&str>) -> Result<HeaderValue, Error> {
    let own = concat!("webpubsub-client/", env!("CARGO_PKG_VERSION"));
    let os = std::env::consts::OS;
    let arch = std::env::consts::ARCH;
    let text = match prefix.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => format!("{p} {own} ({os}; {arch})"),
        None => format!("{own} ({os}; {arch})"),
    };
    if !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(Error::InvalidArgument(
            "the user agent must be printable ASCII".into(),
        ));
    }
    HeaderValue::from_str(&text)
        .map_err(|e| Error::InvalidArgument(format!("invalid user agent: {e}")))
}

/// Connects to `url` (directly or through `proxy`, with `proxy_tls` for an `https://` proxy)
/// requesting `subprotocol`; fails unless the service echoes it.
pub async fn connect(
    url: &url::Url,
    subprotocol: &'static str,
    user_agent: HeaderValue,
    limits: Limits,
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: Option<&Proxy>,
    proxy_tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Socket, Error> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl(format!("{e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    request.headers_mut().insert("User-Agent", user_agent);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_size))
        .max_frame_size(Some(limits.max_message_size))
        .read_buffer_size(FRAME_BUFFER)
        .write_buffer_size(limits.write_buffer_size);
    if url.scheme() == "wss" && tls.is_none() {
        return Err(Error::connection("wss:// needs a TLS configuration"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Error::InvalidUrl("the URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let tunnel = match proxy {
        Some(p) => proxy::tunnel(p, host, port, proxy_tls).await?,
        None => {
            let target = format!("{host}:{port}");
            let tcp = TcpStream::connect(&target)
                .await
                .map_err(|e| Error::connection(format!("cannot connect to {target}: {e}")))?;
            // Small frames (acks, pings) must not wait for Nagle's algorithm.
            let _ = tcp.set_nodelay(true);
            Tunnel::Tcp(tcp)
        }
    };
    let io = match tls {
        Some(config) if url.scheme() == "wss" => {
            // IPv6 literals come bracketed from the URL.
            let name = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let name = rustls::pki_types::ServerName::try_from(name)
                .map_err(|e| Error::InvalidUrl(format!("bad TLS server name {host}: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls_error = |e: std::io::Error| Error::connection(format!("TLS: {e}"));
            match tunnel {
                Tunnel::Tcp(tcp) => Io::Tls(Box::new(
                    connector.connect(name, tcp).await.map_err(tls_error)?,
                )),
                Tunnel::Tls(outer) => Io::TlsInTls(Box::new(
                    connector.connect(name, *outer).await.map_err(tls_error)?,
                )),
            }
        }
        _ => match tunnel {
            Tunnel::Tcp(tcp) => Io::Plain(tcp),
            Tunnel::Tls(outer) => Io::Tls(outer),
        },
    };
    let mut stream = Stream::new(io, limits.read_buffer_size);
    let tail = handshake::upgrade(&mut stream, request, subprotocol)
        .await
        .map_err(explain_tls_alert)?;
    let socket =
        WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(config)).await;
    Ok(Box::new(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_library_after_the_application() {
        let own = user_agent(None).unwrap();
        let own = own.to_str().unwrap();
        assert!(own.starts_with(concat!(
            "webpubsub-client/",
            env!("CARGO_PKG_VERSION"),
            " ("
        )));
        assert!(own.contains(std::env::consts::ARCH));
        let app = user_agent(Some("gateway/2.1")).unwrap();
        assert_eq!(app.to_str().unwrap(), format!("gateway/2.1 {own}"));
        assert!(user_agent(Some("bad\r\nX-Injected: 1")).is_err());
        assert!(user_agent(Some("caf\u{e9}")).is_err());
    }

    #[test]
    fn clients_share_one_tls_configuration_per_ca_file() {
        let a = shared_tls_config(None, None).unwrap();
        let b = shared_tls_config(None, None).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the system store is read once");
        // A failure is not cached: the file is tried again on the next connect.
        let missing = Path::new("/nonexistent/wps-ca.pem");
        assert!(shared_tls_config(Some(missing), None).is_err());
        assert!(shared_tls_config(Some(missing), None).is_err());
        // The cache keeps no configuration alive by itself.
        drop((a, b));
        let cache = TLS_CONFIGS.lock().unwrap();
        assert!(cache.iter().all(|(_, config)| config.strong_count() == 0));
    }
}

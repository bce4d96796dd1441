//! Proxies: choosing one (option or environment, `NO_PROXY`) and opening the tunnel through
//! it. Kinds: HTTP CONNECT over plain TCP (`http://`) or over TLS to the proxy (`https://`),
//! and SOCKS5 (RFC 1928) with the target name resolved here (`socks5://`) or by the proxy
//! (`socks5h://`), each with optional credentials (`Basic` for HTTP, RFC 1929 for SOCKS5).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// The protocol spoken to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT over plain TCP.
    Http,
    /// HTTP CONNECT over TLS to the proxy.
    Https,
    /// SOCKS5; `remote_dns`: the proxy resolves the target's name (`socks5h://`).
    Socks5 { remote_dns: bool },
}

/// Where and how to open the tunnel.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The protocol.
    pub kind: ProxyKind,
    /// Host name or address of the proxy (IPv6 without brackets).
    pub host: String,
    /// Port of the proxy.
    pub port: u16,
    /// User name and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

impl Proxy {
    /// Parses `SCHEME://[user:password@]host[:port]` with SCHEME `http` (default when no
    /// scheme is given; port 80), `https` (443), `socks5` or `socks5h` (1080).
    pub fn parse(text: &str) -> Result<Proxy, Error> {
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| Error::InvalidArgument(format!("bad proxy URL: {e}")))?;
        let (kind, default_port) = match url.scheme() {
            "http" => (ProxyKind::Http, 80),
            "https" => (ProxyKind::Https, 443),
            "socks5" => (ProxyKind::Socks5 { remote_dns: false }, 1080),
            "socks5h" => (ProxyKind::Socks5 { remote_dns: true }, 1080),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported proxy scheme {other:?} (use http://, https://, socks5:// or \
                     socks5h://)"
                )))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidArgument("the proxy URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let credentials = (!url.username().is_empty()).then(|| {
            (
                percent_decode(url.username()),
                percent_decode(url.password().unwrap_or("")),
            )
        });
        if let (ProxyKind::Socks5 { .. }, Some((user, pass))) = (kind, &credentials) {
            if user.len() > 255 || pass.len() > 255 {
                return Err(Error::InvalidArgument(
                    "SOCKS5 user names and passwords are at most 255 bytes".into(),
                ));
            }
        }
        Ok(Proxy {
            kind,
            port: url.port().unwrap_or(default_port),
            host,
            credentials,
        })
    }

    /// `host:port` of the proxy, for messages and `connect`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `Proxy-Authorization` value (`Basic ...`) for HTTP proxies with credentials.
    pub fn authorization(&self) -> Option<String> {
        let (user, pass) = self.credentials.as_ref()?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        Some(format!("Basic {token}"))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Whether `host` matches a `NO_PROXY` list (`*`, exact names, `.suffix` or `suffix`).
fn bypassed(host: &str, no_proxy: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| {
            if e == "*" {
                return true;
            }
            let e = e
                .split(':')
                .next()
                .unwrap_or("")
                .trim_start_matches('.')
                .to_string();
            host == e || host.ends_with(&format!(".{e}"))
        })
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The proxy for `url`: the explicit option (an empty string means none), else
/// `HTTPS_PROXY` (wss) / `HTTP_PROXY` (ws) / `ALL_PROXY` (upper or lower case) honouring
/// `NO_PROXY`. Loopback hosts never use a proxy taken from the environment.
pub fn for_url(url: &url::Url, explicit: Option<&str>) -> Result<Option<Proxy>, Error> {
    for_url_with(url, explicit, env_lookup)
}

fn for_url_with(
    url: &url::Url,
    explicit: Option<&str>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>, Error> {
    let host = url.host_str().unwrap_or("");
    if let Some(p) = explicit {
        return if p.trim().is_empty() {
            Ok(None)
        } else {
            Proxy::parse(p.trim()).map(Some)
        };
    }
    if is_loopback(host) {
        return Ok(None);
    }
    let env = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| lookup(n))
            .find(|v| !v.trim().is_empty())
    };
    let configured = if url.scheme() == "wss" {
        env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
    } else {
        env(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
    };
    let Some(p) = configured else {
        return Ok(None);
    };
    if let Some(no) = env(&["NO_PROXY", "no_proxy"]) {
        if bypassed(host, &no) {
            return Ok(None);
        }
    }
    Proxy::parse(p.trim()).map(Some)
}

/// Longest proxy response header accepted.
const MAX_RESPONSE: usize = 16 * 1024;

/// A byte stream to the target through a proxy: plain TCP, or TLS to an `https://` proxy.
pub enum Tunnel {
    /// Over TCP (HTTP and SOCKS5 proxies).
    Tcp(TcpStream),
    /// Over TLS to the proxy.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens a tunnel to `host:port` through `proxy`. `tls` is the configuration for TLS to an
/// `https://` proxy (its certificate is checked like a service's).
pub async fn tunnel(
    proxy: &Proxy,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Tunnel, Error> {
    let address = proxy.address();
    let tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| Error::connection(format!("cannot reach proxy {address}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    match proxy.kind {
        ProxyKind::Http => {
            let mut tcp = tcp;
            http_connect(&mut tcp, proxy, host, port).await?;
            Ok(Tunnel::Tcp(tcp))
        }
        ProxyKind::Https => {
            let config = tls
                .ok_or_else(|| Error::connection("an https:// proxy needs a TLS configuration"))?;
            let name =
                rustls::pki_types::ServerName::try_from(proxy.host.clone()).map_err(|e| {
                    Error::InvalidArgument(format!("bad TLS name for proxy {}: {e}", proxy.host))
                })?;
            let mut tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| Error::connection(format!("TLS to proxy {address}: {e}")))?;
            http_connect(&mut tls, proxy, host, port).await?;
            Ok(Tunnel::Tls(Box::new(tls)))
        }
        ProxyKind::Socks5 { remote_dns } => {
            let mut tcp = tcp;
            let target = if remote_dns {
                SocksTarget::Name(host.to_owned())
            } else {
                SocksTarget::Ip(resolve(host, port).await?)
            };
            socks5_connect(&mut tcp, proxy, &target, port).await?;
            Ok(Tunnel::Tcp(tcp))
        }
    }
}

/// The target's address as this host resolves it (`socks5://`).
async fn resolve(host: &str, port: u16) -> Result<IpAddr, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| Error::connection(format!("cannot resolve {bare}: {e}")))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| Error::connection(format!("{bare} has no address")))
}

/// Sends `CONNECT host:port` and reads the answer head (byte by byte, so no tunnelled byte
/// is consumed).
async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), Error> {
    let target = format!("{host}:{port}");
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())
        .await
        .map_err(|e| Error::connection(format!("proxy write failed: {e}")))?;
    s.flush()
        .await
        .map_err(|e| Error::connection(format!("proxy write failed: {e}")))?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE {
            return Err(Error::connection("the proxy response header is too long"));
        }
        let n = s
            .read(&mut byte)
            .await
            .map_err(|e| Error::connection(format!("proxy read failed: {e}")))?;
        if n == 0 {
            return Err(Error::connection("the proxy closed the connection"));
        }
        head.push(byte[0]);
    }
    check_connect_response(&head)
}

/// The address put in a SOCKS5 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SocksTarget {
    /// Resolved here (`socks5://`).
    Ip(IpAddr),
    /// Resolved by the proxy (`socks5h://`).
    Name(String),
}

/// The greeting: version 5 and the methods offered (no authentication, and user/password
/// when there are credentials).
pub(crate) fn socks5_greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![5, 2, 0x00, 0x02]
    } else {
        vec![5, 1, 0x00]
    }
}

/// The CONNECT request (RFC 1928 §4).
pub(crate) fn socks5_request(target: &SocksTarget, port: u16) -> Result<Vec<u8>, Error> {
    let mut req = vec![5, 1, 0];
    match target {
        SocksTarget::Ip(IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        SocksTarget::Ip(IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        SocksTarget::Name(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = name.parse::<IpAddr>() {
                return socks5_request(&SocksTarget::Ip(ip), port);
            }
            if name.is_empty() || name.len() > 255 {
                return Err(Error::InvalidArgument(format!(
                    "host name {name:?} cannot be sent to a SOCKS5 proxy (1 to 255 bytes)"
                )));
            }
            req.push(3);
            req.push(name.len() as u8);
            req.extend_from_slice(name.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    Ok(req)
}

/// The meaning of a SOCKS5 reply code (RFC 1928 §6).
fn socks5_reply_text(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

async fn socks5_connect(
    s: &mut TcpStream,
    proxy: &Proxy,
    target: &SocksTarget,
    port: u16,
) -> Result<(), Error> {
    let io =
        |e: std::io::Error| Error::connection(format!("SOCKS5 proxy {}: {e}", proxy.address()));
    let request = socks5_request(target, port)?;
    s.write_all(&socks5_greeting(proxy.credentials.is_some()))
        .await
        .map_err(io)?;
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != 5 {
        return Err(Error::connection(format!(
            "{} is not a SOCKS5 proxy (version {})",
            proxy.address(),
            choice[0]
        )));
    }
    match (choice[1], &proxy.credentials) {
        (0x00, _) => {}
        (0x02, Some((user, pass))) => {
            // RFC 1929: version 1, user name, password.
            let mut auth = vec![1, user.len() as u8];
            auth.extend_from_slice(user.as_bytes());
            auth.push(pass.len() as u8);
            auth.extend_from_slice(pass.as_bytes());
            s.write_all(&auth).await.map_err(io)?;
            let mut status = [0u8; 2];
            s.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(Error::connection(format!(
                    "SOCKS5 proxy {} refused the user name and password",
                    proxy.address()
                )));
            }
        }
        (0xFF, _) | (0x02, None) => {
            return Err(Error::connection(format!(
                "SOCKS5 proxy {} requires authentication{}",
                proxy.address(),
                if proxy.credentials.is_some() {
                    " by a method this client does not offer"
                } else {
                    " (put user:password@ in the proxy URL)"
                }
            )))
        }
        (other, _) => {
            return Err(Error::connection(format!(
                "SOCKS5 proxy {} chose method {other}, which was not offered",
                proxy.address()
            )))
        }
    }
    s.write_all(&request).await.map_err(io)?;
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).await.map_err(io)?;
    if reply[0] != 5 {
        return Err(Error::connection("bad SOCKS5 reply version"));
    }
    if reply[1] != 0 {
        return Err(Error::connection(format!(
            "SOCKS5 proxy {} could not connect: {} (code {})",
            proxy.address(),
            socks5_reply_text(reply[1]),
            reply[1]
        )));
    }
    // The bound address, unused: skip it.
    let skip = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0]) + 2
        }
        other => {
            return Err(Error::connection(format!(
                "bad SOCKS5 reply address type {other}"
            )))
        }
    };
    let mut rest = vec![0u8; skip];
    s.read_exact(&mut rest).await.map_err(io)?;
    Ok(())
}

/// Checks the head of the proxy's answer to `CONNECT`: a 2xx status opens the tunnel.
pub(crate) fn check_connect_response(head: &[u8]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(head);
    let status_line = text.lines().next().unwrap_or("").trim();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    if !version.starts_with("HTTP/1.") || !(200..300).contains(&status) {
        return Err(Error::connection(format!(
            "the proxy refused the tunnel: {status_line}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_answers_open_the_tunnel_only_with_a_2xx_status() {
        assert!(check_connect_response(b"HTTP/1.1 200 Connection established\r\n\r\n").is_ok());
        assert!(check_connect_response(b"HTTP/1.0 204 OK\r\n\r\n").is_ok());
        for bad in [
            &b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..],
            b"HTTP/1.1 2000 x\r\n\r\n",
            b"SSH-2.0-OpenSSH 200\r\n\r\n",
            b"\r\n\r\n",
            b"HTTP/1.1 \xff\xfe\r\n\r\n",
        ] {
            assert!(check_connect_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://u%40x:p%3Aw@proxy.local:3128").unwrap();
        assert_eq!(p.address(), "proxy.local:3128");
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!(
            p.authorization(),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("u@x:p:w")
            ))
        );
        assert!(!format!("{p:?}").contains("p:w"), "no password in Debug");
        assert_eq!(Proxy::parse("proxy:8080").unwrap().address(), "proxy:8080");
        assert_eq!(Proxy::parse("http://proxy").unwrap().address(), "proxy:80");
        let p = Proxy::parse("https://proxy").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Https, 443));
        let p = Proxy::parse("socks5://u:p@[::1]").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: false });
        assert_eq!(p.address(), "[::1]:1080");
        assert_eq!(p.credentials, Some(("u".into(), "p".into())));
        let p = Proxy::parse("SOCKS5H://p:9").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        assert!(Proxy::parse("socks4://p:1").is_err());
        assert!(Proxy::parse(&format!("socks5://{}:x@p:1", "u".repeat(256))).is_err());
    }

    #[test]
    fn socks5_requests_carry_the_name_only_for_remote_dns() {
        assert_eq!(socks5_greeting(false), [5, 1, 0]);
        assert_eq!(socks5_greeting(true), [5, 2, 0, 2]);
        let ip = socks5_request(&SocksTarget::Ip("127.0.0.1".parse().unwrap()), 8080).unwrap();
        assert_eq!(ip, [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]);
        let v6 = socks5_request(&SocksTarget::Ip("::1".parse().unwrap()), 1).unwrap();
        assert_eq!(v6[3], 4);
        assert_eq!(v6.len(), 4 + 16 + 2);
        let name = socks5_request(&SocksTarget::Name("svc.example".into()), 443).unwrap();
        assert_eq!(&name[..5], &[5, 1, 0, 3, 11]);
        assert_eq!(&name[5..16], b"svc.example");
        assert_eq!(&name[16..], &[1, 187]);
        // An address literal is sent as an address even with remote DNS.
        let lit = socks5_request(&SocksTarget::Name("[::1]".into()), 1).unwrap();
        assert_eq!(lit[3], 4);
        assert!(socks5_request(&SocksTarget::Name("x".repeat(256)), 1).is_err());
    }

    #[test]
    fn environment_variables_choose_the_proxy() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let wss = url::Url::parse("wss://svc.example/client").unwrap();
        let ws = url::Url::parse("ws://svc.example/client").unwrap();
        let vars: &[(&str, &str)] = &[
            ("https_proxy", "socks5h://s:1"),
            ("HTTP_PROXY", "http://h:2"),
            ("ALL_PROXY", "https://a:3"),
        ];
        let p = for_url_with(&wss, None, env(vars)).unwrap().unwrap();
        assert_eq!(
            (p.kind, p.address()),
            (ProxyKind::Socks5 { remote_dns: true }, "s:1".into())
        );
        let p = for_url_with(&ws, None, env(vars)).unwrap().unwrap();
        assert_eq!(p.address(), "h:2");
        let p = for_url_with(&ws, None, env(&[("all_proxy", "https://a:3")]))
            .unwrap()
            .unwrap();
        assert_eq!((p.kind, p.address()), (ProxyKind::Https, "a:3".into()));
        let bypass: &[(&str, &str)] = &[("ALL_PROXY", "http://a:3"), ("no_proxy", ".example")];
        assert_eq!(for_url_with(&wss, None, env(bypass)).unwrap(), None);
        // The option wins over the environment; "" means no proxy.
        assert_eq!(for_url_with(&wss, Some(""), env(vars)).unwrap(), None);
        let p = for_url_with(&wss, Some("socks5://o:4"), env(vars))
            .unwrap()
            .unwrap();
        assert_eq!(p.address(), "o:4");
        let local = url::Url::parse("ws://127.0.0.1:1/").unwrap();
        assert_eq!(for_url_with(&local, None, env(vars)).unwrap(), None);
    }

    #[test]
    fn no_proxy_and_loopback() {
        assert!(bypassed("a.example.com", "example.com"));
        assert!(bypassed("example.com", ".example.com"));
        assert!(bypassed("x.y", "*"));
        assert!(!bypassed("badexample.com", "example.com"));
        assert!(is_loopback("127.0.0.1") && is_loopback("[::1]") && is_loopback("LOCALHOST"));
        let u = url::Url::parse("ws://127.0.0.1:1/x").unwrap();
        assert_eq!(for_url(&u, None).unwrap(), None);
        assert_eq!(for_url(&u, Some("")).unwrap(), None);
        assert!(for_url(&u, Some("http://p:1")).unwrap().is_some());
    }
}

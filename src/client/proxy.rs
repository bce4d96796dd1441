//! HTTP CONNECT proxies: choosing one (option or environment, `NO_PROXY`) and opening the
//! tunnel through it.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// Where to send the CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `host:port` of the proxy.
    pub address: String,
    /// `Proxy-Authorization` value (`Basic ...`) when the proxy URL has credentials.
    pub authorization: Option<String>,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (port 80 by default; `https://` proxies
    /// are not supported).
    pub fn parse(text: &str) -> Result<Proxy, Error> {
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| Error::InvalidArgument(format!("bad proxy URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Error::InvalidArgument(format!(
                "unsupported proxy scheme {:?} (only http:// CONNECT proxies)",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidArgument("the proxy URL has no host".into()))?;
        let port = url.port().unwrap_or(80);
        let authorization = (!url.username().is_empty()).then(|| {
            let user = percent_decode(url.username());
            let pass = percent_decode(url.password().unwrap_or(""));
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {token}")
        });
        Ok(Proxy {
            address: format!("{host}:{port}"),
            authorization,
        })
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

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

/// The proxy for `url`: the explicit option (an empty string means none), else
/// `HTTPS_PROXY` (wss) / `HTTP_PROXY` (ws) / `ALL_PROXY` honouring `NO_PROXY`. Loopback hosts
/// never use a proxy taken from the environment.
pub fn for_url(url: &url::Url, explicit: Option<&str>) -> Result<Option<Proxy>, Error> {
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

/// Opens a TCP tunnel to `target` (`host:port`) through `proxy`.
pub async fn tunnel(proxy: &Proxy, target: &str) -> Result<TcpStream, Error> {
    let mut tcp = TcpStream::connect(&proxy.address)
        .await
        .map_err(|e| Error::connection(format!("cannot reach proxy {}: {e}", proxy.address)))?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| Error::connection(format!("proxy write failed: {e}")))?;
    // Read byte by byte up to the end of the header, so no tunnelled byte is consumed.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE {
            return Err(Error::connection("the proxy response header is too long"));
        }
        let n = tcp
            .read(&mut byte)
            .await
            .map_err(|e| Error::connection(format!("proxy read failed: {e}")))?;
        if n == 0 {
            return Err(Error::connection("the proxy closed the connection"));
        }
        head.push(byte[0]);
    }
    check_connect_response(&head)?;
    Ok(tcp)
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
        assert_eq!(
            Proxy::parse("http://u%40x:p%3Aw@proxy.local:3128").unwrap(),
            Proxy {
                address: "proxy.local:3128".into(),
                authorization: Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("u@x:p:w")
                )),
            }
        );
        assert_eq!(Proxy::parse("proxy:8080").unwrap().address, "proxy:8080");
        assert_eq!(Proxy::parse("http://proxy").unwrap().address, "proxy:80");
        assert!(Proxy::parse("socks5://p:1").is_err());
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

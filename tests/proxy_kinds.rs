//! Every proxy kind against real proxy software on 127.0.0.1: SOCKS5 through `microsocks`
//! (with RFC 1929 credentials; `socks5h://` lets the proxy resolve the name), HTTP CONNECT
//! through `tinyproxy` (Basic credentials), and an `https://` proxy: `tinyproxy` behind a TLS
//! terminator started by the test (neither Debian proxy serves TLS itself), for both `ws://`
//! and `wss://` (TLS inside TLS) services. `scripts/setup.sh` installs both proxies.

mod common;

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::*;
use common::*;
use tokio::net::{TcpListener, TcpStream};
use webpubsub_client::{ClientOptions, Error, Event, Payload, SendOptions};
use webpubsub_emulator::{Config, Emulator, TlsFiles};

/// A proxy process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `program` and waits (at most 10 s) until it accepts connections on `port`.
async fn spawn_listening(program: &str, args: &[&str], port: u16) -> Proc {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); scripts/setup.sh installs it"));
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{program} does not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proc
}

async fn microsocks() -> (Proc, u16) {
    let port = free_port();
    let p = port.to_string();
    let proc = spawn_listening(
        "microsocks",
        &[
            "-i",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "wps user",
            "-P",
            "s3cr:t@",
        ],
        port,
    )
    .await;
    (proc, port)
}

async fn tinyproxy(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 64\nAllow 127.0.0.1\n\
             BasicAuth wps s3cret\nLogLevel Critical\n"
        ),
    )
    .unwrap();
    let proc = spawn_listening("tinyproxy", &["-d", "-c", conf.to_str().unwrap()], port).await;
    (proc, port)
}

/// A TLS terminator on 127.0.0.1 forwarding to `upstream`: with it a plain HTTP proxy is an
/// `https://` proxy.
async fn tls_terminator(dir: &Path, upstream: u16) -> u16 {
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut &std::fs::read(dir.join("server.pem")).unwrap()[..])
            .collect::<Result<_, _>>()
            .unwrap();
    let key = rustls_pemfile::private_key(&mut &std::fs::read(dir.join("server.key")).unwrap()[..])
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

/// Connects through `proxy`, then sends a group message to itself and receives it.
async fn round_trip(url: String, opts: ClientOptions) {
    let (c, mut ev, _) = connected(url, opts).await;
    c.join_group("g", None).await.unwrap();
    c.send_to_group(
        "g",
        Payload::text("through the proxy"),
        SendOptions::default(),
    )
    .await
    .unwrap();
    match ev.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => {
            assert_eq!(message.as_str(), Some("through the proxy"))
        }
        _ => unreachable!(),
    }
    c.stop().await.unwrap();
}

async fn start_error(url: String, opts: ClientOptions) -> Error {
    let (c, _ev) = client_with(url, opts);
    c.start().await.unwrap_err()
}

fn via(proxy: String) -> ClientOptions {
    ClientOptions {
        proxy: Some(proxy),
        ..fast_options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_through_microsocks() {
    let emu = emulator().await;
    let (_proxy, port) = microsocks().await;
    let good = format!("socks5://wps%20user:s3cr%3At%40@127.0.0.1:{port}");
    round_trip(url(&emu, Some("u"), ROLES), via(good.clone())).await;

    // socks5h: the proxy resolves "localhost" (the request carries the name; see the unit
    // test of the request encoding in proxy.rs).
    let by_name = url(&emu, Some("u"), ROLES).replace("127.0.0.1", "localhost");
    assert!(by_name.starts_with("ws://localhost:"), "{by_name}");
    let remote = format!("socks5h://wps%20user:s3cr%3At%40@127.0.0.1:{port}");
    round_trip(by_name.clone(), via(remote)).await;
    // socks5 with a name: resolved here, sent as an address; works the same.
    round_trip(by_name, via(good)).await;

    // Wrong password, no credentials: refused, and the message says why.
    let e = start_error(
        url(&emu, None, ROLES),
        via(format!("socks5://wps%20user:wrong@127.0.0.1:{port}")),
    )
    .await;
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
    assert!(
        e.to_string().contains("refused the user name and password"),
        "{e}"
    );
    let e = start_error(
        url(&emu, None, ROLES),
        via(format!("socks5://127.0.0.1:{port}")),
    )
    .await;
    assert!(e.to_string().contains("requires authentication"), "{e}");

    // The proxy cannot reach the target: its reply code is reported.
    let closed = free_port();
    let e = start_error(
        format!("ws://127.0.0.1:{closed}/client/hubs/{HUB}?access_token=x"),
        via(format!("socks5://wps%20user:s3cr%3At%40@127.0.0.1:{port}")),
    )
    .await;
    assert!(e.to_string().contains("could not connect"), "{e}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_https_connect_through_tinyproxy() {
    let dir = cert_dir("proxies");
    make_ca(&dir, "ca");
    make_leaf(&dir, "ca", "server", "serverAuth");
    let (_proxy, port) = tinyproxy(&dir).await;
    let emu = emulator().await;

    // http:// with Basic credentials.
    round_trip(
        url(&emu, Some("u"), ROLES),
        via(format!("http://wps:s3cret@127.0.0.1:{port}")),
    )
    .await;
    let e = start_error(
        url(&emu, None, ROLES),
        via(format!("http://wps:wrong@127.0.0.1:{port}")),
    )
    .await;
    // tinyproxy answers 401 where RFC 9110 says 407; either is reported as a refusal.
    let text = e.to_string();
    assert!(
        text.contains("refused the tunnel") && (text.contains("401") || text.contains("407")),
        "{e}"
    );

    // https://: TLS to the proxy, checked against the CA file.
    let tls_port = tls_terminator(&dir, port).await;
    let https = |host: &str| ClientOptions {
        ca_file: Some(dir.join("ca.pem")),
        ..via(format!("https://wps:s3cret@{host}:{tls_port}"))
    };
    round_trip(url(&emu, Some("u"), ROLES), https("localhost")).await;
    round_trip(url(&emu, Some("u"), ROLES), https("127.0.0.1")).await;
    // Without the CA the proxy's certificate is not trusted.
    let e = start_error(
        url(&emu, None, ROLES),
        via(format!("https://wps:s3cret@localhost:{tls_port}")),
    )
    .await;
    assert!(e.to_string().contains("TLS to proxy"), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // wss:// through the https:// proxy: TLS to the service inside TLS to the proxy.
    let wss = Emulator::start(Config {
        tls: Some(TlsFiles {
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
            client_ca_file: None,
        }),
        ..Config::default()
    })
    .await
    .unwrap();
    let wss_url = url(&wss, Some("u"), ROLES);
    assert!(wss_url.starts_with("wss://"));
    round_trip(wss_url, https("localhost")).await;
    wss.shutdown().await;
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! `wss://`: TLS with rustls, extra roots from a CA file, and clear errors when the
//! certificate is not trusted. Certificates are made with the `openssl` command at test time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::*;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use webpubsub_client::{ClientOptions, Error, Event};

/// A CA and a server certificate for localhost/127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wps-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]) && run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wps-tls-{}-{name}", std::process::id()))
}

/// A TLS WebSocket server that sends `connected` to every client.
async fn tls_server(dir: &Path) -> String {
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(dir.join("server.pem")).unwrap(),
    ))
    .collect::<Result<_, _>>()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(dir.join("server.key")).unwrap(),
    ))
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
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                #[allow(clippy::result_large_err)]
                let cb = |req: &Request, mut resp: Response| {
                    if let Some(p) = req.headers().get("Sec-WebSocket-Protocol") {
                        resp.headers_mut()
                            .insert("Sec-WebSocket-Protocol", p.clone());
                    }
                    Ok(resp)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, cb).await {
                    use futures_util::{SinkExt, StreamExt};
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::text(
                            r#"{"type":"system","event":"connected","connectionId":"tls1"}"#,
                        ))
                        .await;
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    format!("wss://localhost:{port}/client/hubs/hub1?access_token=x")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_ca_file_connects_and_untrusted_fails_clearly() {
    let dir = temp_dir("ok");
    if !make_certs(&dir) {
        panic!("openssl could not create test certificates");
    }
    let url = tls_server(&dir).await;

    let opts = ClientOptions {
        ca_file: Some(dir.join("ca.pem")),
        ..fast_options()
    };
    let (c, mut ev) = client_with(url.clone(), opts);
    c.start().await.expect("wss start with the CA file");
    assert!(
        matches!(ev.next().await, Event::Connected { ref connection_id, .. } if connection_id == "tls1")
    );
    c.stop().await.unwrap();

    // Without the CA the server is not trusted.
    let (c, _ev) = client_with(url, fast_options());
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ca_files_are_invalid_arguments() {
    let missing = ClientOptions {
        ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
        ..fast_options()
    };
    let (c, _ev) = client_with(
        "wss://localhost:1/client/hubs/h?access_token=x".into(),
        missing,
    );
    assert!(matches!(c.start().await, Err(Error::InvalidArgument(_))));

    let dir = temp_dir("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let empty = ClientOptions {
        ca_file: Some(dir.join("empty.pem")),
        ..fast_options()
    };
    let (c, _ev) = client_with(
        "wss://localhost:1/client/hubs/h?access_token=x".into(),
        empty,
    );
    let e = c.start().await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(ref m) if m.contains("no certificates")),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_to_a_plain_server_is_a_connection_error() {
    let url = common::mock::MockServer::start()
        .await
        .url
        .replace("ws://", "wss://");
    let (c, _ev) = client_with(url, fast_options());
    assert!(matches!(c.start().await, Err(Error::Connection { .. })));
}

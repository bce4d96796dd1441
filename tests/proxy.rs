//! Connecting through an HTTP CONNECT proxy.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webpubsub_client::{ClientOptions, Error, Event, Payload, SendOptions};

/// A CONNECT proxy on 127.0.0.1 that records each request head and answers with `status`.
async fn proxy(status: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                log.lock().unwrap().push(head.clone());
                if !status.starts_with("200") {
                    let _ = client
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                    return;
                }
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (format!("http://user:s%3Acret@{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_recovers_through_a_connect_proxy() {
    let emu = emulator().await;
    let (proxy_url, seen) = proxy("200").await;
    let opts = ClientOptions {
        proxy: Some(proxy_url),
        ..fast_options()
    };
    let (c, mut ev, id) = connected(url(&emu, Some("u"), ROLES), opts).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].starts_with(&format!("CONNECT 127.0.0.1:{} HTTP/1.1\r\n", emu.port())),
            "{}",
            seen[0]
        );
        // "user:s:cret" in base64
        assert!(
            seen[0].contains("Proxy-Authorization: Basic dXNlcjpzOmNyZXQ="),
            "{}",
            seen[0]
        );
    }
    c.join_group("g", None).await.unwrap();
    assert!(emu.drop_connection(HUB, &id));
    c.send_to_group("g", Payload::text("via proxy"), SendOptions::default())
        .await
        .unwrap();
    match ev.until("group message", is_group_message).await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("via proxy")),
        _ => unreachable!(),
    }
    assert!(
        seen.lock().unwrap().len() >= 2,
        "the recovery went through the proxy too"
    );
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_proxy_is_a_clear_connection_error() {
    let emu = emulator().await;
    let (proxy_url, _) = proxy("407 Proxy Authentication Required").await;
    let opts = ClientOptions {
        proxy: Some(proxy_url),
        ..fast_options()
    };
    let (c, _ev) = client_with(url(&emu, None, ROLES), opts);
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::Connection { .. }), "{e:?}");
    assert!(e.to_string().contains("407"), "{e}");
    let opts = ClientOptions {
        proxy: Some("socks4://127.0.0.1:1".into()),
        ..fast_options()
    };
    let (c, _ev) = client_with(url(&emu, None, ROLES), opts);
    assert!(matches!(c.start().await, Err(Error::InvalidArgument(_))));
    emu.shutdown().await;
}

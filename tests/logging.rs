//! Logging goes to the installed sink and never contains token values.

mod common;

use std::sync::{Arc, Mutex};

use common::mock::MockServer;
use common::*;
use webpubsub_client::log::{set_logger, Level};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_redacted_in_every_log_line() {
    let lines = Arc::new(Mutex::new(Vec::<(Level, String)>::new()));
    let sink = lines.clone();
    set_logger(
        Some(Arc::new(move |level, msg: &str| {
            sink.lock().unwrap().push((level, msg.to_string()))
        })),
        Level::Verbose,
    );
    let mut server = MockServer::start().await;
    let (c, mut ev) = client_with(server.url.clone(), fast_options());
    let start = tokio::spawn({
        let c = c.clone();
        async move { c.start().await }
    });
    let mut conn = server.accept().await;
    conn.connected("conn1", Some("SECRET-RECONNECTION-TOKEN"))
        .await;
    start.await.unwrap().unwrap();
    ev.next().await;
    drop(conn); // recovery logs the recovery URL
    let mut conn = server.accept().await;
    assert!(conn.target.contains("SECRET-RECONNECTION-TOKEN"));
    conn.connected("conn1", None).await;
    c.stop().await.unwrap();
    set_logger(None, Level::Error);

    let lines = lines.lock().unwrap();
    assert!(
        lines
            .iter()
            .any(|(_, l)| l.contains("access_token=REDACTED")),
        "the connect URL is logged, redacted: {lines:?}"
    );
    for (_, l) in lines.iter() {
        assert!(!l.contains("access_token=secret"), "{l}");
        assert!(!l.contains("SECRET-RECONNECTION-TOKEN"), "{l}");
    }
}

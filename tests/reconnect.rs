//! Reconnection when recovery is impossible: Disconnected, new connection, Connected, rejoin.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::mock::{started_client, MockServer};
use common::*;
use webpubsub_client::{
    Client, ClientOptions, Credential, Error, Event, Payload, Protocol, RetryMode, RetryPolicy,
    SendOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_reconnects_with_a_new_id_and_rejoins_groups() {
    let emu = emulator().await;
    let (c, mut ev, first) = connected(url(&emu, Some("u"), ROLES), fast_options()).await;
    c.join_group("a", None).await.unwrap();
    c.join_group("b", None).await.unwrap();
    assert!(emu.expire_connection(HUB, &first));
    // The drop starts a recovery, the service refuses it (1008): the session is lost, and
    // that is reported before the connection's Disconnected.
    match ev.next().await {
        Event::Recovering { connection_id } => assert_eq!(connection_id, first),
        other => panic!("{other:?}"),
    }
    match ev.next().await {
        Event::SessionLost {
            connection_id,
            reason,
            ..
        } => {
            assert_eq!(connection_id, first);
            assert!(reason.contains("1008"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match ev.next().await {
        Event::Disconnected { connection_id, .. } => {
            assert_eq!(connection_id.as_deref(), Some(first.as_str()))
        }
        other => panic!("{other:?}"),
    }
    let second = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    assert_ne!(second, first);
    // Rejoined: once the service has the rejoins, a message to each group arrives on the new
    // connection.
    until_member(&emu, &second, &["a", "b"]).await;
    let (s, _sev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;
    for g in ["a", "b"] {
        s.send_to_group(g, Payload::text(g), SendOptions::default())
            .await
            .unwrap();
        match ev.until("group message", is_group_message).await {
            Event::GroupMessage { group, .. } => assert_eq!(group, g),
            _ => unreachable!(),
        }
    }
    let conns = emu.connections(HUB);
    let me = conns.iter().find(|x| x.connection_id == second).unwrap();
    let mut groups = me.groups.clone();
    groups.sort();
    assert_eq!(groups, vec!["a", "b"]);
    c.stop().await.unwrap();
    s.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_close_reports_its_reason_then_reconnects() {
    let emu = emulator().await;
    let (c, mut ev, first) = connected(url(&emu, Some("u"), ROLES), fast_options()).await;
    assert!(emu.close_connection(HUB, &first, 1000, "maintenance"));
    // 1000 from the service is no reason not to try recovering; the session is gone, so the
    // attempt is refused and the session reported lost.
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::SessionLost { .. }));
    match ev.next().await {
        Event::Disconnected { message, .. } => assert_eq!(message.as_deref(), Some("maintenance")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(ev.next().await, Event::Connected { ref connection_id, .. } if *connection_id != first)
    );
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_1008_skips_recovery_and_opens_a_new_connection() {
    let mut server = MockServer::start().await;
    let (c, mut ev, mut conn) = started_client(&mut server, fast_options(), Some("tok1")).await;
    conn.send(r#"{"type":"system","event":"disconnected","message":"policy"}"#)
        .await;
    conn.close(1008, "no").await;
    // No recovery for 1008: the session is lost at once.
    match ev.next().await {
        Event::SessionLost {
            connection_id,
            last_sequence_id,
            reason,
        } => {
            assert_eq!(connection_id, "conn1");
            assert_eq!(last_sequence_id, 0);
            assert!(
                reason.contains("1008") && reason.contains("policy"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    match ev.next().await {
        Event::Disconnected {
            connection_id,
            message,
        } => {
            assert_eq!(connection_id.as_deref(), Some("conn1"));
            assert_eq!(message.as_deref(), Some("policy"));
        }
        other => panic!("{other:?}"),
    }
    let mut conn = server.accept().await;
    assert!(
        !conn.target.contains("awps_connection_id"),
        "a new connection, not a recovery: {}",
        conn.target
    );
    conn.connected("conn2", Some("tok2")).await;
    assert!(
        matches!(ev.next().await, Event::Connected { ref connection_id, .. } if connection_id == "conn2")
    );
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_reconnect_a_loss_stops_the_client() {
    let emu = emulator().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        auto_reconnect: false,
        ..fast_options()
    };
    let (c, mut ev, id) = connected(url(&emu, Some("u"), ROLES), opts).await;
    assert!(emu.drop_connection(HUB, &id));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    assert!(!c.is_connected());
    // Restart works.
    c.start().await.unwrap();
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reliable_drop_reconnects_without_recovery() {
    let emu = emulator().await;
    let opts = ClientOptions {
        protocol: Protocol::Json,
        ..fast_options()
    };
    let (c, mut ev, id) = connected(url(&emu, Some("u"), ROLES), opts).await;
    assert_eq!(
        emu.connections(HUB)[0].subprotocol.as_deref(),
        Some("json.webpubsub.azure.v1")
    );
    assert!(emu.drop_connection(HUB, &id));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(
        matches!(ev.next().await, Event::Connected { ref connection_id, .. } if *connection_id != id)
    );
    c.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_is_called_per_connection_and_rejoin_failure_is_reported() {
    let emu = Arc::new(emulator().await);
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let emu = emu.clone();
        let calls = calls.clone();
        // First URL may join groups; later ones may not, so the rejoin is Forbidden.
        Arc::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let roles: &[&str] = if n == 0 { ROLES } else { &[] };
            Ok(url(&emu, Some("p"), roles))
        })
    };
    let (c, rx) = Client::with_channel(Credential::Provider(provider), fast_options());
    let mut ev = Events { rx };
    c.start().await.unwrap();
    let first = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    c.join_group("g", None).await.unwrap();
    assert!(emu.expire_connection(HUB, &first));
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::SessionLost { .. }));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    match ev.next().await {
        Event::RejoinGroupFailed { group, error } => {
            assert_eq!(group, "g");
            assert!(
                matches!(error, Error::Ack { ref name, .. } if name == "Forbidden"),
                "{error:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    c.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_provider_fails_start_clearly() {
    let provider = Arc::new(|| Err::<String, String>("no credentials".into()));
    let (c, _rx) = Client::with_channel(Credential::Provider(provider), fast_options());
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::UrlProvider(_)), "{e:?}");
    assert!(e.to_string().contains("no credentials"), "{e}");
    let unusable = Arc::new(|| Ok::<String, String>("ftp://nowhere".into()));
    let (c, _rx) = Client::with_channel(Credential::Provider(unusable), fast_options());
    let e = c.start().await.unwrap_err();
    assert!(matches!(e, Error::UrlProvider(_)), "{e:?}");
    assert!(e.to_string().contains("unusable URL"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_recovery_ends_with_disconnected_then_stopped() {
    let mut server = MockServer::start().await;
    let opts = ClientOptions {
        recovery_timeout: Duration::from_secs(60),
        ..fast_options()
    };
    let (c, mut ev, mut conn) = started_client(&mut server, opts, Some("tok1")).await;
    let pending = tokio::spawn({
        let c = c.clone();
        async move { c.join_group("g", Some(9)).await }
    });
    conn.recv_type("joinGroup").await;
    drop(conn);
    // Each recovery socket opens and is dropped at once, so the client stays in recovery.
    let mut recovering = server.accept().await;
    assert!(recovering.target.contains("awps_connection_id=conn1"));
    drop(recovering);
    recovering = server.accept().await;
    drop(recovering);
    c.stop().await.unwrap();
    assert_eq!(
        pending.await.unwrap(),
        Err(Error::Stopped { ack_id: Some(9) })
    );
    // A stop ends the recovery: neither Recovered nor SessionLost.
    assert!(
        matches!(ev.next().await, Event::Recovering { ref connection_id } if connection_id == "conn1")
    );
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
}

/// A connected client whose credential provider hands out a dead URL after the first one.
/// Returns the emulator, the client, its events, its connection id and the provider calls.
async fn connected_then_unreachable(
    opts: ClientOptions,
) -> (
    Arc<webpubsub_emulator::Emulator>,
    Client,
    Events,
    String,
    Arc<AtomicUsize>,
) {
    let emu = Arc::new(emulator().await);
    let dead = common::mock::dead_port_url().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let emu = emu.clone();
        let calls = calls.clone();
        Arc::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Ok(if n == 0 {
                url(&emu, Some("p"), ROLES)
            } else {
                dead.clone()
            })
        })
    };
    let (c, rx) = Client::with_channel(Credential::Provider(provider), opts);
    let mut ev = Events { rx };
    c.start().await.unwrap();
    let id = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    (emu, c, ev, id, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_reconnect_retries_stop_the_client() {
    let opts = ClientOptions {
        protocol: Protocol::Json,
        reconnect_retry: webpubsub_client::RetryPolicy {
            max_retries: 2,
            ..fast_options().reconnect_retry
        },
        ..fast_options()
    };
    let (emu, c, mut ev, id, calls) = connected_then_unreachable(opts).await;
    assert!(emu.drop_connection(HUB, &id));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    // One initial URL, then the first reconnect attempt and two retries.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(!c.is_connected());
    let e = c.join_group("g", None).await.unwrap_err();
    assert!(matches!(e, Error::NotConnected { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_waiting_to_reconnect_stops_at_once() {
    let opts = ClientOptions {
        protocol: Protocol::Json,
        reconnect_retry: webpubsub_client::RetryPolicy {
            delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            ..fast_options().reconnect_retry
        },
        ..fast_options()
    };
    let (emu, c, mut ev, id, _calls) = connected_then_unreachable(opts).await;
    assert!(emu.drop_connection(HUB, &id));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    // Now backing off for an hour after the failed first attempt.
    tokio::time::timeout(WAIT, c.stop())
        .await
        .expect("stop does not wait for the backoff")
        .unwrap();
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reconnect_keeps_its_messages_in_order_for_subscribers() {
    let emu = emulator().await;
    let (sub, mut sev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;
    sub.join_group("ordered", None).await.unwrap();
    let (publisher, mut pev, first) = connected(url(&emu, Some("p"), ROLES), fast_options()).await;
    const TOTAL: usize = 600;
    const IN_FLIGHT: usize = 64;
    let sender = {
        let p = publisher.clone();
        tokio::spawn(async move {
            let mut window = futures_util::stream::FuturesOrdered::new();
            let mut results = Vec::new();
            for i in 0..TOTAL {
                let p = p.clone();
                window.push_back(async move {
                    p.send_to_group(
                        "ordered",
                        Payload::text(i.to_string()),
                        SendOptions::default(),
                    )
                    .await
                });
                if window.len() == IN_FLIGHT {
                    results.push(futures_util::StreamExt::next(&mut window).await.unwrap());
                }
            }
            while let Some(r) = futures_util::StreamExt::next(&mut window).await {
                results.push(r);
            }
            results
        })
    };
    // Expire the publisher's session mid-stream: it reconnects with a new connection id.
    let mut received = Vec::new();
    while received.len() < TOTAL / 3 {
        if let Event::GroupMessage { message, .. } =
            sev.until("group message", is_group_message).await
        {
            received.push(message.as_str().unwrap().parse::<usize>().unwrap());
        }
    }
    assert!(emu.expire_connection(HUB, &first));
    pev.until("publisher reconnected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    for r in sender.await.unwrap() {
        assert!(r.is_ok(), "{r:?}");
    }
    // A last message marks the end: one publisher's messages arrive in its order.
    publisher
        .send_to_group(
            "ordered",
            Payload::text(TOTAL.to_string()),
            SendOptions::default(),
        )
        .await
        .unwrap();
    loop {
        if let Event::GroupMessage { message, .. } =
            sev.until("group message", is_group_message).await
        {
            let i = message.as_str().unwrap().parse::<usize>().unwrap();
            if i == TOTAL {
                break;
            }
            received.push(i);
        }
    }
    // Every message arrived; a message resent on the new connection may arrive a second time
    // (the service cannot recognise ack ids of the old connection), but never out of order:
    // the first arrivals are 0, 1, 2, ... in publisher order.
    let mut seen = vec![false; TOTAL];
    let mut firsts = Vec::new();
    for &i in &received {
        if !std::mem::replace(&mut seen[i], true) {
            firsts.push(i);
        }
    }
    assert_eq!(
        firsts,
        (0..TOTAL).collect::<Vec<_>>(),
        "first arrivals in order"
    );
    sub.stop().await.unwrap();
    publisher.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_jittered_reconnects_outlast_a_long_outage() {
    // The first URL works, the next 25 point at a closed port, then the emulator again.
    const FAILING: usize = 25;
    let emu = Arc::new(emulator().await);
    let calls = Arc::new(std::sync::Mutex::new(Vec::<tokio::time::Instant>::new()));
    let provider = {
        let (emu, calls) = (emu.clone(), calls.clone());
        Arc::new(move || {
            let mut calls = calls.lock().unwrap();
            calls.push(tokio::time::Instant::now());
            let n = calls.len();
            if (2..2 + FAILING).contains(&n) {
                Ok("ws://127.0.0.1:1/client/hubs/hub1".to_owned())
            } else {
                Ok(url(&emu, None, ROLES))
            }
        })
    };
    let opts = ClientOptions {
        reconnect_retry: RetryPolicy {
            max_retries: u32::MAX,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
            jitter: false,
        },
        reconnect_jitter_percent: 50,
        ..fast_options()
    };
    let (c, rx) = Client::with_channel(Credential::Provider(provider), opts);
    let mut ev = Events { rx };
    c.start().await.unwrap();
    let first = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("{other:?}"),
    };
    assert!(emu.expire_connection(HUB, &first));
    assert!(matches!(ev.next().await, Event::Recovering { .. }));
    assert!(matches!(ev.next().await, Event::SessionLost { .. }));
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    match ev.next().await {
        Event::Connected { connection_id, .. } => assert_ne!(connection_id, first),
        other => panic!("expected a new connection after the outage, got {other:?}"),
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        2 + FAILING,
        "every failed attempt asked for a new URL"
    );
    // Gaps between attempts after the immediate one: jittered over [50, 100] ms.
    let gaps: Vec<Duration> = calls[2..].windows(2).map(|w| w[1] - w[0]).collect();
    let min = *gaps.iter().min().unwrap();
    let max = *gaps.iter().max().unwrap();
    println!("reconnect gaps with 50 % jitter on 100 ms: min {min:?}, max {max:?}");
    assert!(min >= Duration::from_millis(49), "{gaps:?}");
    assert!(
        min < Duration::from_millis(95),
        "no delay was shortened: {gaps:?}"
    );
    assert!(max - min > Duration::from_millis(10), "{gaps:?}");
    c.stop().await.unwrap();
}

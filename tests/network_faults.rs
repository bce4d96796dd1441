//! The client against the emulator through `wps-fault-proxy`: frames that arrive in pieces,
//! resets in the middle of a frame, and half-open connections.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use webpubsub_client::{Client, ClientOptions, Event, Payload, SendOptions};
use webpubsub_emulator::Emulator;
use wps_fault_proxy::{Direction, FaultProxy, Faults};

/// A proxy in front of the emulator, and a client access URL that goes through it.
async fn through_proxy(emu: &Emulator, user: &str, seed: u64) -> (FaultProxy, String) {
    let upstream: SocketAddr = format!("127.0.0.1:{}", emu.port()).parse().unwrap();
    let proxy = FaultProxy::start(upstream, seed).await.unwrap();
    let direct = url(emu, Some(user), ROLES);
    let via = direct.replace(
        &format!("127.0.0.1:{}", emu.port()),
        &proxy.addr().to_string(),
    );
    assert_ne!(via, direct);
    (proxy, via)
}

/// Receives `n` group messages with the given prefix; returns their numbers in arrival order.
async fn receive_numbers(ev: &mut Events, n: usize) -> Vec<usize> {
    let mut got = Vec::new();
    while got.len() < n {
        if let Event::GroupMessage { message, .. } =
            ev.until("group message", is_group_message).await
        {
            got.push(message.as_str().unwrap().parse().unwrap());
        }
    }
    got
}

async fn publish(c: &Client, group: &str, range: std::ops::Range<usize>) {
    for i in range {
        c.send_to_group(group, Payload::text(i.to_string()), SendOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_sliced_into_bytes_with_jitter_arrive_whole_and_in_order() {
    let emu = emulator().await;
    let (proxy, via) = through_proxy(&emu, "sub", 7).await;
    let (sub, mut ev, _) = connected(via, fast_options()).await;
    sub.join_group("sliced", None).await.unwrap();
    proxy.set(
        Direction::Both,
        Faults {
            slice_bytes: 3,
            slice_variation: 2,
            slice_delay_us: 50,
            latency_ms: 2,
            jitter_ms: 2,
            ..Faults::default()
        },
    );
    let (publisher, _pev, _) = connected(url(&emu, Some("pub"), ROLES), fast_options()).await;
    publish(&publisher, "sliced", 0..100).await;
    assert_eq!(
        receive_numbers(&mut ev, 100).await,
        (0..100).collect::<Vec<_>>()
    );
    assert!(sub.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_in_the_middle_of_a_frame_is_recovered_without_loss_or_repeat() {
    let emu = emulator().await;
    let (proxy, via) = through_proxy(&emu, "sub", 11).await;
    let (sub, mut ev, id) = connected(via, fast_options()).await;
    sub.join_group("cut", None).await.unwrap();
    let (publisher, _pev, _) = connected(url(&emu, Some("pub"), ROLES), fast_options()).await;
    publish(&publisher, "cut", 0..20).await;
    let mut got = receive_numbers(&mut ev, 20).await;
    // The next downstream bytes are cut off 37 bytes in: inside the next message's frame
    // (and the first 37 bytes of any recovery attempt's handshake, until cleared).
    proxy.set(
        Direction::Downstream,
        Faults {
            reset_after_bytes: Some(37),
            ..Faults::default()
        },
    );
    publish(&publisher, "cut", 20..60).await;
    proxy
        .wait_for(WAIT, |s| s.resets >= 1)
        .await
        .expect("the reset happened");
    proxy.clear();
    got.extend(receive_numbers(&mut ev, 40).await);
    assert_eq!(
        got,
        (0..60).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    assert_eq!(
        sub.connection_id().as_deref(),
        Some(id.as_str()),
        "recovered, same id"
    );
    assert!(ev
        .drain()
        .iter()
        .all(|e| !matches!(e, Event::Disconnected { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_is_detected_by_keep_alive_and_recovered() {
    let emu = emulator().await;
    let (proxy, via) = through_proxy(&emu, "sub", 3).await;
    let opts = ClientOptions {
        keep_alive_interval: Duration::from_millis(100),
        keep_alive_timeout: Duration::from_millis(600),
        // An attempt swallowed by the blackhole gives up soon; the episode outlasts it.
        connect_timeout: Duration::from_secs(1),
        recovery_timeout: Duration::from_secs(8),
        ..fast_options()
    };
    let (sub, mut ev, id) = connected(via, opts).await;
    sub.join_group("quiet", None).await.unwrap();
    let before = proxy.stats().accepted;
    proxy.set(
        Direction::Both,
        Faults {
            blackhole: true,
            ..Faults::default()
        },
    );
    // Pings go unanswered: the client gives the connection up and tries to recover through
    // the proxy, which swallows those connections too until the blackhole is lifted.
    proxy
        .wait_for(WAIT, |s| s.accepted > before)
        .await
        .expect("a recovery attempt");
    proxy.clear();
    let (publisher, _pev, _) = connected(url(&emu, Some("pub"), ROLES), fast_options()).await;
    publish(&publisher, "quiet", 0..5).await;
    assert_eq!(
        receive_numbers(&mut ev, 5).await,
        (0..5).collect::<Vec<_>>()
    );
    assert_eq!(
        sub.connection_id().as_deref(),
        Some(id.as_str()),
        "recovered, same id"
    );
}

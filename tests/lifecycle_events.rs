//! The recovery and session-lost signals against the emulator: order and fields.

mod common;

use common::*;
use webpubsub_client::{Event, Payload, SendOptions};

/// Sends `n` messages to `group` from `sender` and returns the last sequence id `ev` saw.
async fn receive_n(
    sender: &webpubsub_client::Client,
    ev: &mut Events,
    group: &str,
    n: usize,
) -> u64 {
    let mut last = 0;
    for i in 0..n {
        sender
            .send_to_group(group, Payload::text(i.to_string()), SendOptions::default())
            .await
            .unwrap();
        match ev.until("group message", is_group_message).await {
            Event::GroupMessage { sequence_id, .. } => last = sequence_id.unwrap(),
            _ => unreachable!(),
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_1008_reports_session_lost_with_the_last_sequence_id_before_disconnected() {
    let emu = emulator().await;
    let (c, mut ev, id) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    c.join_group("g", None).await.unwrap();
    let (s, _sev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;
    let last = receive_n(&s, &mut ev, "g", 3).await;
    assert!(last >= 3, "{last}");
    assert!(emu.close_connection(HUB, &id, 1008, "kicked out"));
    // No recovery for 1008: SessionLost, then Disconnected, then a new connection.
    match ev.next().await {
        Event::SessionLost {
            connection_id,
            last_sequence_id,
            reason,
        } => {
            assert_eq!(connection_id, id);
            assert_eq!(last_sequence_id, last);
            assert!(reason.contains("kicked out"), "{reason}");
        }
        other => panic!("expected SessionLost, got {other:?}"),
    }
    match ev.next().await {
        Event::Disconnected { connection_id, .. } => {
            assert_eq!(connection_id.as_deref(), Some(id.as_str()))
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    let second = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("expected Connected, got {other:?}"),
    };
    assert_ne!(second, id);
    c.stop().await.unwrap();
    s.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recovered_drop_gives_one_recovering_recovered_pair() {
    let emu = emulator().await;
    let (c, mut ev, id) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    c.join_group("g", None).await.unwrap();
    let (s, _sev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;
    for round in 0..2 {
        assert!(emu.drop_connection(HUB, &id), "round {round}");
        match ev.next().await {
            Event::Recovering { connection_id } => assert_eq!(connection_id, id),
            other => panic!("round {round}: expected Recovering, got {other:?}"),
        }
        // A message sent during or after the recovery arrives after Recovered, exactly once.
        s.send_to_group(
            "g",
            Payload::text(format!("r{round}")),
            SendOptions::default(),
        )
        .await
        .unwrap();
        match ev.next().await {
            Event::Recovered { connection_id } => assert_eq!(connection_id, id),
            other => panic!("round {round}: expected Recovered, got {other:?}"),
        }
        match ev.next().await {
            Event::GroupMessage { message, .. } => {
                assert_eq!(message.as_str(), Some(format!("r{round}").as_str()))
            }
            other => panic!("round {round}: expected the message, got {other:?}"),
        }
    }
    assert_eq!(c.connection_id().as_deref(), Some(id.as_str()));
    c.stop().await.unwrap();
    // A stop: Disconnected and Stopped only.
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Stopped { .. }));
    s.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recovery_is_recovering_then_session_lost_never_recovered() {
    let emu = emulator().await;
    let (c, mut ev, id) = connected(url(&emu, Some("r"), ROLES), fast_options()).await;
    c.join_group("g", None).await.unwrap();
    let (s, _sev, _) = connected(url(&emu, Some("s"), ROLES), fast_options()).await;
    let last = receive_n(&s, &mut ev, "g", 2).await;
    // The service forgets the session: the recovery socket opens and is refused with 1008.
    assert!(emu.expire_connection(HUB, &id));
    assert!(
        matches!(ev.next().await, Event::Recovering { ref connection_id } if *connection_id == id)
    );
    match ev.next().await {
        Event::SessionLost {
            connection_id,
            last_sequence_id,
            ..
        } => {
            assert_eq!(connection_id, id);
            assert_eq!(last_sequence_id, last);
        }
        other => panic!("expected SessionLost (no Recovered), got {other:?}"),
    }
    assert!(matches!(ev.next().await, Event::Disconnected { .. }));
    assert!(matches!(ev.next().await, Event::Connected { .. }));
    c.stop().await.unwrap();
    s.stop().await.unwrap();
    emu.shutdown().await;
}

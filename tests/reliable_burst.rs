//! The default reliable protocol at full speed: a burst far beyond the service's
//! 1000-message window reaches one subscriber complete, without a 1008 close, because the
//! client acknowledges from its read loop as it reads.

mod common;

use std::time::Duration;

use common::*;
use webpubsub_client::{ClientOptions, Event, Payload, SendOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_message_burst_reaches_a_reliable_subscriber_complete() {
    const BURST: u64 = 20_000;
    let emu = emulator().await;
    // Default options: the reliable JSON subprotocol, default ack cadence.
    let (sub, mut sub_ev, sub_id) =
        connected(url(&emu, Some("sub"), ROLES), ClientOptions::default()).await;
    sub.join_group("g", None).await.unwrap();
    let (publisher, _pub_ev, _) =
        connected(url(&emu, Some("pub"), ROLES), ClientOptions::default()).await;

    let sender = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            let opts = SendOptions {
                fire_and_forget: true,
                no_echo: true,
                ..SendOptions::default()
            };
            for i in 0..BURST {
                publisher
                    .send_to_group("g", Payload::text(i.to_string()), opts)
                    .await
                    .expect("queued");
            }
        }
    });

    let mut next_seq = None;
    for i in 0..BURST {
        match sub_ev.next().await {
            Event::GroupMessage {
                message,
                sequence_id,
                ..
            } => {
                assert_eq!(
                    message.as_str().unwrap(),
                    i.to_string(),
                    "in order, none lost"
                );
                let seq = sequence_id.expect("reliable messages carry sequence ids");
                if let Some(expected) = next_seq {
                    assert_eq!(seq, expected, "no gap, no duplicate");
                }
                next_seq = Some(seq + 1);
            }
            other => panic!("message {i}: expected a group message, got {other:?}"),
        }
    }
    sender.await.unwrap();
    assert_eq!(
        sub.connection_id().as_deref(),
        Some(sub_id.as_str()),
        "never cut off: the same connection throughout"
    );
    assert!(emu
        .connections(HUB)
        .iter()
        .any(|c| c.connection_id == sub_id));
    assert_eq!(sub_ev.none_for(Duration::from_millis(100)).await, None);
    sub.stop().await.unwrap();
    publisher.stop().await.unwrap();
    emu.shutdown().await;
}

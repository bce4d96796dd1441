//! The protobuf subprotocols against the emulator, mixed with JSON clients.

mod common;

use common::*;
use webpubsub_client::{ClientOptions, DataType, Event, Payload, Protocol, SendOptions};

fn protobuf_options(reliable: bool) -> ClientOptions {
    ClientOptions {
        protocol: if reliable {
            Protocol::ProtobufReliable
        } else {
            Protocol::Protobuf
        },
        ..fast_options()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_and_json_clients_exchange_every_data_type() {
    let emu = emulator().await;
    let (pb, mut pb_ev, pb_id) =
        connected(url(&emu, Some("pb"), ROLES), protobuf_options(true)).await;
    let conns = emu.connections(HUB);
    let me = conns.iter().find(|c| c.connection_id == pb_id).unwrap();
    assert_eq!(
        me.subprotocol.as_deref(),
        Some("protobuf.reliable.webpubsub.azure.v1")
    );
    let (js, mut js_ev, _) = connected(url(&emu, Some("js"), ROLES), fast_options()).await;
    pb.join_group("mix", None).await.unwrap();
    js.join_group("mix", None).await.unwrap();

    let payloads = [
        Payload::text("hello ü"),
        Payload::json(r#"{"a":[1,true]}"#),
        Payload::binary(vec![0u8, 1, 255]),
    ];
    for p in payloads {
        // protobuf -> both
        pb.send_to_group("mix", p.clone(), SendOptions::default())
            .await
            .unwrap();
        for (is_pb, ev) in [(true, &mut pb_ev), (false, &mut js_ev)] {
            match ev.until("group message", is_group_message).await {
                Event::GroupMessage {
                    group,
                    message,
                    sequence_id,
                    ..
                } => {
                    assert_eq!(group, "mix");
                    // JSON may reach protobuf clients as `text_data` (Learn) or `json_data`.
                    if is_pb && p.data_type == DataType::Json {
                        assert!(matches!(message.data_type, DataType::Json | DataType::Text));
                    } else {
                        assert_eq!(message.data_type, p.data_type);
                    }
                    assert!(sequence_id.is_some());
                    if p.data_type == DataType::Json {
                        let a: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
                        let b: serde_json::Value = serde_json::from_slice(&p.data).unwrap();
                        assert_eq!(a, b);
                    } else {
                        assert_eq!(message.data, p.data);
                    }
                }
                _ => unreachable!(),
            }
        }
        // json -> protobuf
        js.send_to_group(
            "mix",
            p.clone(),
            SendOptions {
                no_echo: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        match pb_ev.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => {
                if p.data_type == DataType::Json {
                    let a: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
                    let b: serde_json::Value = serde_json::from_slice(&p.data).unwrap();
                    assert_eq!(a, b);
                } else {
                    assert_eq!(message, p);
                }
            }
            _ => unreachable!(),
        }
    }
    pb.stop().await.unwrap();
    js.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_reliable_recovers_after_a_drop() {
    let emu = emulator().await;
    let (pb, mut ev, id) = connected(url(&emu, Some("pb"), ROLES), protobuf_options(true)).await;
    pb.join_group("g", None).await.unwrap();
    assert!(emu.drop_connection(HUB, &id));
    // Acked send across the drop: resent or queued, then acknowledged on the recovered socket.
    pb.send_to_group("g", Payload::text("after drop"), SendOptions::default())
        .await
        .unwrap();
    assert!(
        matches!(ev.next().await, Event::Recovering { ref connection_id } if *connection_id == id)
    );
    assert!(
        matches!(ev.next().await, Event::Recovered { ref connection_id } if *connection_id == id)
    );
    match ev.next().await {
        Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("after drop")),
        other => panic!("expected the message and no other lifecycle event, got {other:?}"),
    }
    assert_eq!(pb.connection_id().as_deref(), Some(id.as_str()));
    pb.stop().await.unwrap();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_forbidden_and_non_reliable() {
    let emu = emulator().await;
    let (pb, _ev, _) = connected(url(&emu, Some("pb"), &[]), protobuf_options(false)).await;
    let e = pb.join_group("g", None).await.unwrap_err();
    assert!(
        matches!(e, webpubsub_client::Error::Ack { ref name, .. } if name == "Forbidden"),
        "{e:?}"
    );
    let e = pb
        .invoke_event("x", Payload::text("y"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, webpubsub_client::Error::InvalidArgument(_)),
        "{e:?}"
    );
    pb.stop().await.unwrap();
    emu.shutdown().await;
}

//! Test vectors decoded from the official C# protobuf client tests (PROTOCOL §5.3).

use super::*;

fn hex(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn upstream_vectors() {
    assert_eq!(
        encode(&Request::JoinGroup {
            group: "group",
            ack_id: None
        })
        .unwrap(),
        hex(&[&[0x32, 0x07, 0x0a, 0x05], b"group"])
    );
    assert_eq!(
        encode(&Request::JoinGroup {
            group: "group",
            ack_id: Some(44133)
        })
        .unwrap(),
        hex(&[
            &[0x32, 0x0b, 0x0a, 0x05],
            b"group",
            &[0x10, 0xe5, 0xd8, 0x02]
        ])
    );
    let text = Payload::text("xzy");
    assert_eq!(
        encode(&Request::SendToGroup {
            group: "group",
            payload: &text,
            ack_id: None,
            no_echo: false
        })
        .unwrap(),
        hex(&[
            &[0x0a, 0x10, 0x0a, 0x05],
            b"group",
            &[0x1a, 0x05, 0x0a, 0x03],
            b"xzy",
            &[0x20, 0x00]
        ])
    );
    assert_eq!(
        encode(&Request::SequenceAck {
            sequence_id: 123456
        })
        .unwrap(),
        vec![0x42, 0x04, 0x08, 0xc0, 0xc4, 0x07]
    );
    assert_eq!(
        encode(&Request::Event {
            event: "event",
            payload: &text,
            ack_id: None
        })
        .unwrap(),
        hex(&[
            &[0x2a, 0x0e, 0x0a, 0x05],
            b"event",
            &[0x12, 0x05, 0x0a, 0x03],
            b"xzy"
        ])
    );
    assert_eq!(encode(&Request::Ping).unwrap(), vec![0x4a, 0x00]);
    assert_eq!(
        encode(&Request::LeaveGroup {
            group: "g",
            ack_id: Some(1)
        })
        .unwrap(),
        vec![0x3a, 0x05, 0x0a, 0x01, b'g', 0x10, 0x01]
    );
}

#[test]
fn payload_kinds_use_their_message_data_field() {
    let cases = [
        (Payload::binary(vec![1, 2]), 0x12u8),
        (
            Payload {
                data_type: DataType::Protobuf,
                data: vec![1, 2],
            },
            0x1a,
        ),
        (Payload::json("[1]"), 0x22),
    ];
    for (p, key) in cases {
        let bytes = encode(&Request::Event {
            event: "e",
            payload: &p,
            ack_id: Some(3),
        })
        .unwrap();
        // event{1:"e", 2:MessageData{key: data}, 3:3}
        let data_at = 2 + 3 + 2; // outer key+len, field 1, key+len of field 2
        assert_eq!(bytes[data_at], key, "{p:?}");
    }
    assert!(encode(&Request::Event {
        event: "e",
        payload: &Payload::json("{"),
        ack_id: None
    })
    .is_err());
    assert!(encode(&Request::Invoke {
        invocation_id: "1",
        event: "e",
        payload: None
    })
    .is_err());
}

#[test]
fn downstream_vectors() {
    assert_eq!(
        decode(&[0x0a, 0x04, 0x08, 0x7b, 0x10, 0x01]).unwrap(),
        Downstream::Ack {
            ack_id: 123,
            success: true,
            error: None
        }
    );
    assert_eq!(
        decode(&hex(&[
            &[0x0a, 0x1a, 0x08, 0x7b, 0x10, 0x00, 0x1a, 0x14, 0x0a, 0x09],
            b"Forbidden",
            &[0x12, 0x07],
            b"message"
        ]))
        .unwrap(),
        Downstream::Ack {
            ack_id: 123,
            success: false,
            error: Some(AckError {
                name: "Forbidden".into(),
                message: "message".into()
            })
        }
    );
    assert_eq!(
        decode(&hex(&[
            &[0x12, 0x1c, 0x0a, 0x05],
            b"group",
            &[0x12, 0x09],
            b"groupName",
            &[0x1a, 0x05, 0x0a, 0x03],
            b"xyz",
            &[0x20, 0xb9, 0x60]
        ]))
        .unwrap(),
        Downstream::GroupMessage {
            group: "groupName".into(),
            from_user_id: None,
            payload: Payload::text("xyz"),
            sequence_id: Some(12345),
            stream: None,
        }
    );
    assert_eq!(
        decode(&hex(&[
            &[0x12, 0x12, 0x0a, 0x06],
            b"server",
            &[0x1a, 0x05, 0x0a, 0x03],
            b"xyz",
            &[0x20, 0xb9, 0x60]
        ]))
        .unwrap(),
        Downstream::ServerMessage {
            payload: Payload::text("xyz"),
            sequence_id: Some(12345)
        }
    );
    assert_eq!(
        decode(&hex(&[
            &[0x1a, 0x19, 0x0a, 0x17, 0x0a, 0x0a],
            b"connection",
            &[0x12, 0x04],
            b"user",
            &[0x1a, 0x03],
            b"rec"
        ]))
        .unwrap(),
        Downstream::Connected {
            connection_id: "connection".into(),
            user_id: Some("user".into()),
            reconnection_token: Some("rec".into()),
        }
    );
    assert_eq!(
        decode(&hex(&[&[0x1a, 0x07, 0x12, 0x05, 0x12, 0x03], b"msg"])).unwrap(),
        Downstream::Disconnected {
            message: Some("msg".into())
        }
    );
    assert_eq!(decode(&[0x22, 0x00]).unwrap(), Downstream::Pong);
}

#[test]
fn unknown_fields_are_skipped_and_truncation_is_an_error() {
    // Unknown top-level field 15 (varint), then a pong.
    assert_eq!(decode(&[0x78, 0x01, 0x22, 0x00]).unwrap(), Downstream::Pong);
    // Unknown message kind only.
    assert_eq!(decode(&[0x2a, 0x00]).unwrap(), Downstream::Ignored);
    for bad in [
        &[0x0a][..],
        &[0x0a, 0x05, 0x08],
        &[0x12, 0x02, 0x1a, 0x09],
        &[0xff; 11],
        &[0x0b],
    ] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
    let codec = ProtobufCodec::new(true);
    assert!(codec.decode(FrameRef::Text("{}")).is_err());
    assert_eq!(codec.subprotocol(), "protobuf.reliable.webpubsub.azure.v1");
}

#[test]
fn round_trip_of_every_data_type_through_a_data_message() {
    for p in [
        Payload::text("t ü"),
        Payload::binary(vec![0, 255]),
        Payload {
            data_type: DataType::Protobuf,
            data: vec![10, 3],
        },
        Payload::json(r#"{"a":1}"#),
    ] {
        let md = message_data(&p).unwrap();
        let mut data = Vec::new();
        put_bytes(&mut data, 1, b"server");
        put_bytes(&mut data, 3, &md);
        let mut frame = Vec::new();
        put_bytes(&mut frame, 2, &data);
        assert_eq!(
            decode(&frame).unwrap(),
            Downstream::ServerMessage {
                payload: p.clone(),
                sequence_id: None
            }
        );
    }
}

#[test]
fn streaming_and_group_state_are_refused_on_protobuf() {
    let p = Payload::text("x");
    for r in [
        Request::StreamStart {
            group: "g",
            stream_id: "s",
            idle_timeout_ms: None,
            no_echo: false,
        },
        Request::StreamData {
            stream_id: "s",
            sequence_id: 1,
            payload: &p,
        },
        Request::StreamKeepAlive { stream_id: "s" },
        Request::StreamEnd {
            stream_id: "s",
            error: None,
        },
        Request::SetGroupState {
            group: "g",
            state_json: None,
            ack_id: Some(1),
        },
        Request::SubscribeGroupState {
            group: "g",
            ack_id: Some(1),
        },
        Request::UnsubscribeGroupState {
            group: "g",
            ack_id: Some(1),
        },
    ] {
        match encode(&r) {
            Err(EncodeError::Unsupported(m)) => assert!(m.contains("protobuf"), "{m}"),
            other => panic!("{r:?}: {other:?}"),
        }
    }
}

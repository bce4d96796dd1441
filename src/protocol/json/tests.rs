//! Test vectors from the protocol reference and the official SDKs' unit tests.

use super::*;
use serde_json::{json, Value};

fn enc(r: Request<'_>) -> Value {
    let text = encode(&r).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn join_and_leave_with_and_without_ack_id() {
    assert_eq!(
        encode(&Request::JoinGroup {
            group: "group",
            ack_id: None
        })
        .unwrap(),
        r#"{"type":"joinGroup","group":"group"}"#
    );
    assert_eq!(
        enc(Request::JoinGroup {
            group: "group",
            ack_id: Some(44133)
        }),
        json!({"type":"joinGroup","group":"group","ackId":44133})
    );
    assert_eq!(
        enc(Request::LeaveGroup {
            group: "group",
            ack_id: Some(12345)
        }),
        json!({"type":"leaveGroup","group":"group","ackId":12345})
    );
    assert_eq!(
        enc(Request::JoinGroup {
            group: "g",
            ack_id: Some(0)
        }),
        json!({"type":"joinGroup","group":"g","ackId":0}),
        "0 is a valid ack id"
    );
    assert_eq!(
        enc(Request::JoinGroup {
            group: "g",
            ack_id: Some(u64::MAX)
        })["ackId"],
        json!(u64::MAX)
    );
}

#[test]
fn send_to_group_each_data_type() {
    let text = Payload::text("xyz");
    assert_eq!(
        enc(Request::SendToGroup {
            group: "group",
            payload: &text,
            ack_id: None,
            no_echo: true
        }),
        json!({"type":"sendToGroup","group":"group","dataType":"text","data":"xyz","noEcho":true})
    );
    let j = Payload::json(r#" {"value":"xyz"} "#);
    assert_eq!(
        enc(Request::SendToGroup {
            group: "group",
            payload: &j,
            ack_id: Some(2),
            no_echo: false
        }),
        json!({"type":"sendToGroup","group":"group","ackId":2,"dataType":"json","data":{"value":"xyz"},"noEcho":false})
    );
    let b = Payload::binary(b"xyz".to_vec());
    assert_eq!(
        enc(Request::SendToGroup {
            group: "group",
            payload: &b,
            ack_id: Some(4),
            no_echo: false
        })["data"],
        json!("eHl6")
    );
    let p = Payload {
        data_type: DataType::Protobuf,
        data: b"xyz".to_vec(),
    };
    let v = enc(Request::SendToGroup {
        group: "group",
        payload: &p,
        ack_id: None,
        no_echo: false,
    });
    assert_eq!(v["dataType"], json!("protobuf"));
    assert_eq!(v["data"], json!("eHl6"));
}

#[test]
fn json_payload_is_spliced_raw() {
    let j = Payload::json(r#"{"b":[1,2.50,"x"],"a":null}"#);
    let text = encode(&Request::Event {
        event: "e",
        payload: &j,
        ack_id: None,
    })
    .unwrap();
    assert_eq!(
        text,
        r#"{"type":"event","event":"e","dataType":"json","data":{"b":[1,2.50,"x"],"a":null}}"#
    );
    for scalar in ["1", "\"s\"", "true", "[]"] {
        assert!(encode(&Request::Event {
            event: "e",
            payload: &Payload::json(scalar),
            ack_id: None
        })
        .is_ok());
    }
}

#[test]
fn invalid_payloads_are_rejected() {
    for bad in ["", "{", "null", "{} {}", "nul"] {
        let p = Payload::json(bad);
        assert!(
            matches!(
                encode(&Request::Event {
                    event: "e",
                    payload: &p,
                    ack_id: None
                }),
                Err(EncodeError::InvalidPayload(_))
            ),
            "{bad:?}"
        );
    }
    let p = Payload {
        data_type: DataType::Text,
        data: vec![0xff, 0xfe],
    };
    assert!(encode(&Request::Event {
        event: "e",
        payload: &p,
        ack_id: None
    })
    .is_err());
}

#[test]
fn strings_are_escaped_once() {
    let t = Payload::text("a\"b\\c\n\u{1}ü😀");
    let v = enc(Request::SendToGroup {
        group: "g\"1",
        payload: &t,
        ack_id: None,
        no_echo: false,
    });
    assert_eq!(v["group"], json!("g\"1"));
    assert_eq!(v["data"], json!("a\"b\\c\n\u{1}ü😀"));
}

#[test]
fn event_sequence_ack_ping_invoke() {
    let j = Payload::json(r#"{"x":1}"#);
    assert_eq!(
        enc(Request::Event {
            event: "ev1",
            payload: &j,
            ack_id: Some(5)
        }),
        json!({"type":"event","event":"ev1","ackId":5,"dataType":"json","data":{"x":1}})
    );
    assert_eq!(
        encode(&Request::SequenceAck {
            sequence_id: 123456
        })
        .unwrap(),
        r#"{"type":"sequenceAck","sequenceId":123456}"#
    );
    assert_eq!(encode(&Request::Ping).unwrap(), r#"{"type":"ping"}"#);
    let t = Payload::text("ping");
    assert_eq!(
        enc(Request::Invoke {
            invocation_id: "1",
            event: "echo",
            payload: Some(&t)
        }),
        json!({"type":"invoke","invocationId":"1","target":"event","event":"echo","dataType":"text","data":"ping"})
    );
    assert_eq!(
        enc(Request::CancelInvocation { invocation_id: "1" }),
        json!({"type":"cancelInvocation","invocationId":"1"})
    );
}

#[test]
fn decodes_acks() {
    assert_eq!(
        decode(r#"{"type":"ack","ackId":123,"success":true}"#).unwrap(),
        Downstream::Ack {
            ack_id: 123,
            success: true,
            error: None
        }
    );
    assert_eq!(
        decode(r#"{"type":"ack","ackId":6,"success":false,"error":{"name":"Forbidden","message":"message"}}"#).unwrap(),
        Downstream::Ack {
            ack_id: 6,
            success: false,
            error: Some(AckError { name: "Forbidden".into(), message: "message".into() })
        }
    );
    assert!(decode(r#"{"type":"ack","success":true}"#).is_err());
}

#[test]
fn decodes_group_and_server_messages() {
    assert_eq!(
        decode(r#"{"sequenceId":12345,"type":"message","from":"group","group":"groupName","fromUserId":"user","dataType":"json","data":{"a": 1}}"#).unwrap(),
        Downstream::GroupMessage {
            group: "groupName".into(),
            from_user_id: Some("user".into()),
            payload: Payload::json(r#"{"a": 1}"#),
            sequence_id: Some(12345),
            stream: None,
        }
    );
    assert_eq!(
        decode(
            r#"{"type":"message","from":"group","group":"g","dataType":"binary","data":"eHl6"}"#
        )
        .unwrap(),
        Downstream::GroupMessage {
            group: "g".into(),
            from_user_id: None,
            payload: Payload::binary(b"xyz".to_vec()),
            sequence_id: None,
            stream: None,
        }
    );
    assert_eq!(
        decode(r#"{"type":"message","from":"server","dataType":"Text","data":"Hello \"World\""}"#)
            .unwrap(),
        Downstream::ServerMessage {
            payload: Payload::text("Hello \"World\""),
            sequence_id: None
        }
    );
    // Absent dataType means json.
    assert_eq!(
        decode(r#"{"type":"message","from":"server","data":[1]}"#).unwrap(),
        Downstream::ServerMessage {
            payload: Payload::json("[1]"),
            sequence_id: None
        }
    );
}

#[test]
fn decodes_system_messages_with_nulls_as_absent() {
    assert_eq!(
        decode(r#"{"type":"system","event":"connected","userId":null,"connectionId":"c1","reconnectionToken":"t"}"#).unwrap(),
        Downstream::Connected { connection_id: "c1".into(), user_id: None, reconnection_token: Some("t".into()) }
    );
    assert_eq!(
        decode(r#"{"type":"system","event":"connected","userId":"u","connectionId":"c1"}"#)
            .unwrap(),
        Downstream::Connected {
            connection_id: "c1".into(),
            user_id: Some("u".into()),
            reconnection_token: None
        }
    );
    assert_eq!(
        decode(r#"{"type":"system","event":"disconnected","message":"Service reload"}"#).unwrap(),
        Downstream::Disconnected {
            message: Some("Service reload".into())
        }
    );
    assert_eq!(
        decode(r#"{"type":"message","from":"group","group":"g","fromUserId":null,"dataType":"text","data":"x","sequenceId":null}"#).unwrap(),
        Downstream::GroupMessage { group: "g".into(), from_user_id: None, payload: Payload::text("x"), sequence_id: None, stream: None }
    );
}

#[test]
fn unknown_things_are_ignored() {
    for text in [
        r#"{"type":"message","from":"somewhere","dataType":"text","data":"x"}"#,
        r#"{"type":"message","from":"server","dataType":"unknown","data":"x"}"#,
        r#"{"type":"system","event":"somethingNew"}"#,
    ] {
        assert_eq!(decode(text).unwrap(), Downstream::Ignored, "{text}");
    }
    assert_eq!(decode(r#"{"type":"pong"}"#).unwrap(), Downstream::Pong);
}

#[test]
fn decodes_invoke_responses() {
    assert_eq!(
        decode(r#"{"type":"invokeResponse","invocationId":"inv-1","success":true,"dataType":"text","data":"pong"}"#).unwrap(),
        Downstream::InvokeResponse { invocation_id: "inv-1".into(), success: true, payload: Some(Payload::text("pong")), error: None }
    );
    assert!(decode(r#"{"type":"invokeResponse","invocationId":"inv-1"}"#).is_err());
}

#[test]
fn malformed_frames_are_errors() {
    for text in [
        "",
        "not json",
        "[]",
        r#"{"no":"type"}"#,
        r#"{"type":"message","from":"group","dataType":"text","data":"x"}"#,
        r#"{"type":"message","from":"server","dataType":"binary","data":"!!"}"#,
        r#"{"type":"message","from":"server","dataType":"text"}"#,
        r#"{"type":"system","event":"connected"}"#,
    ] {
        assert!(decode(text).is_err(), "{text}");
    }
    let codec = JsonCodec::new(true);
    assert!(codec.decode(FrameRef::Binary(&[0xff])).is_err());
    assert_eq!(
        codec
            .decode(FrameRef::Binary(br#"{"type":"pong"}"#))
            .unwrap(),
        Downstream::Pong
    );
    assert_eq!(codec.subprotocol(), "json.reliable.webpubsub.azure.v1");
    assert_eq!(
        JsonCodec::new(false).subprotocol(),
        "json.webpubsub.azure.v1"
    );
}

/// The one-pass reader and serde agree on every message the reader accepts; inputs it leaves
/// to serde still decode (or fail) as serde decides.
#[test]
fn one_pass_reader_agrees_with_serde() {
    let serde_only = decode_with_serde;
    let cases = [
        r#"{"type":"message","from":"group","fromUserId":"u","group":"g","dataType":"text","data":"xxxx","sequenceId":7}"#,
        r#"{"type":"message","from":"group","fromUserId":null,"group":"g","dataType":"text","data":""}"#,
        r#" { "type" : "message" , "from":"server","dataType":"binary","data":"aGVsbG8=" } "#,
        r#"{"type":"message","from":"server","dataType":"json","data":5}"#,
        r#"{"type":"message","from":"server","dataType":"json","data":true}"#,
        r#"{"type":"message","from":"server","dataType":"json","data":"s"}"#,
        r#"{"type":"message","from":"server","dataType":"json","data":{"a":[1,2]}}"#,
        r#"{"type":"message","from":"server","data":null}"#,
        r#"{"type":"message","from":"server","dataType":"text","data":"caf\u00e9 \"q\""}"#,
        r#"{"type":"message","from":"server","dataType":"text","data":"café ✓"}"#,
        r#"{"type":"message","from":"server","dataType":"text","data":5}"#,
        r#"{"type":"message","from":"server","dataType":"weird","data":"x"}"#,
        r#"{"type":"message","from":"group","group":"g","dataType":"protobuf","data":"AQID"}"#,
        r#"{"type":"ack","ackId":1,"success":true}"#,
        r#"{"type":"ack","ackId":18446744073709551615,"success":false,"error":{"name":"Duplicate","message":"m"}}"#,
        r#"{"type":"ack","ackId":18446744073709551616,"success":true}"#,
        r#"{"type":"ack","ackId":01,"success":true}"#,
        r#"{"type":"ack","ackId":1.0,"success":true}"#,
        r#"{"type":"ack","ackId":-1,"success":true}"#,
        r#"{"type":"ack","ackId":1,"success":null,"error":null}"#,
        r#"{"type":"ack","success":true}"#,
        r#"{"type":"ack","ackId":"1"}"#,
        r#"{"type":"system","event":"connected","userId":"u","connectionId":"c","reconnectionToken":"t"}"#,
        r#"{"type":"system","event":"disconnected","message":"bye"}"#,
        r#"{"type":"pong"}"#,
        r#"{"type":"invokeResponse","invocationId":"1","success":true,"dataType":"text","data":"r"}"#,
        r#"{"type":"message","type":"ack"}"#,
        r#"{"type":"message","unknown":"x","other":12,"more":[1]}"#,
        r#"{"type":"message","unknown":"x","unknown":"y","from":"server","data":"1"}"#,
        r#"{"ty\u0070e":"pong"}"#,
        r#"{}"#,
        r#"{"type":"pong",}"#,
        r#"{"type":"pong"} x"#,
        r#"{"type":"pong""#,
        r#"{"type":"po	ng"}"#,
        r#"[1]"#,
        "",
        r#"{"type":"message","from":"group","group":"g","dataType":"text","data":"a\nb"}"#,
        r#"{"type":"message","from":"group","group":"g","dataType":"text","data":"a\\b"}"#,
        r#"{"type":"streamAck","streamId":"s1","expectedSequenceId":2}"#,
        r#"{"type":"streamNack","streamId":"s1","name":"InvalidSequenceId","message":"m","expectedSequenceId":2}"#,
        r#"{"type":"streamAck","streamId":"s1"}"#,
        r#"{"type":"streamAck","streamId":"s1","expectedSequenceId":-2}"#,
        r#"{"type":"streamClosed","streamId":"s1","error":null}"#,
        r#"{"type":"groupStateUpdate","group":"g","items":null}"#,
    ];
    for text in cases {
        assert_eq!(decode(text), serde_only(text), "{text}");
    }
    // The common shapes take the one-pass path.
    assert!(scan::scan(cases[0]).is_some());
    assert!(scan::scan(cases[13]).is_some());
    assert!(scan::scan(cases[6]).is_none());
}

#[test]
fn encodes_stream_frames_as_the_protocol_shows_them() {
    assert_eq!(
        encode(&Request::StreamStart {
            group: "g1",
            stream_id: "s1",
            idle_timeout_ms: Some(15000),
            no_echo: false
        })
        .unwrap(),
        r#"{"type":"sendToGroup","group":"g1","noEcho":false,"stream":{"streamId":"s1","idleTimeoutMs":15000}}"#
    );
    assert_eq!(
        enc(Request::StreamStart {
            group: "g",
            stream_id: "q\"uote",
            idle_timeout_ms: None,
            no_echo: true
        }),
        json!({"type":"sendToGroup","group":"g","noEcho":true,"stream":{"streamId":"q\"uote"}})
    );
    assert_eq!(
        encode(&Request::StreamData {
            stream_id: "s1",
            sequence_id: 1,
            payload: &Payload::text("chunk-1")
        })
        .unwrap(),
        r#"{"type":"streamData","streamId":"s1","streamSequenceId":1,"dataType":"text","data":"chunk-1"}"#
    );
    assert_eq!(
        encode(&Request::StreamKeepAlive { stream_id: "s1" }).unwrap(),
        r#"{"type":"streamData","streamId":"s1"}"#
    );
    assert_eq!(
        encode(&Request::StreamEnd {
            stream_id: "s1",
            error: None
        })
        .unwrap(),
        r#"{"type":"streamEnd","streamId":"s1"}"#
    );
    assert_eq!(
        encode(&Request::StreamEnd {
            stream_id: "s1",
            error: Some(StreamUserError {
                message: Some("detail"),
                user_error_code: Some("app")
            })
        })
        .unwrap(),
        r#"{"type":"streamEnd","streamId":"s1","error":{"message":"detail","userErrorCode":"app"}}"#
    );
    assert_eq!(
        enc(Request::StreamEnd {
            stream_id: "s1",
            error: Some(StreamUserError {
                message: None,
                user_error_code: Some("E1")
            })
        }),
        json!({"type":"streamEnd","streamId":"s1","error":{"userErrorCode":"E1"}})
    );
    assert!(encode(&Request::StreamData {
        stream_id: "s",
        sequence_id: 1,
        payload: &Payload::json("null")
    })
    .is_err());
}

#[test]
fn encodes_group_state_requests() {
    assert_eq!(
        encode(&Request::SetGroupState {
            group: "room",
            state_json: Some(r#" {"status":"typing"} "#),
            ack_id: Some(42)
        })
        .unwrap(),
        r#"{"type":"setGroupState","group":"room","state":{"status":"typing"},"ackId":42}"#
    );
    assert_eq!(
        encode(&Request::SetGroupState {
            group: "room",
            state_json: None,
            ack_id: Some(43)
        })
        .unwrap(),
        r#"{"type":"setGroupState","group":"room","ackId":43}"#
    );
    assert_eq!(
        encode(&Request::SubscribeGroupState {
            group: "room",
            ack_id: Some(44)
        })
        .unwrap(),
        r#"{"type":"subscribeGroupState","group":"room","ackId":44}"#
    );
    assert_eq!(
        encode(&Request::UnsubscribeGroupState {
            group: "room",
            ack_id: Some(45)
        })
        .unwrap(),
        r#"{"type":"unsubscribeGroupState","group":"room","ackId":45}"#
    );
    for bad in ["[1]", r#"{"a":1}"#, "{", "\"s\"", "null"] {
        assert!(
            matches!(
                encode(&Request::SetGroupState {
                    group: "g",
                    state_json: Some(bad),
                    ack_id: None
                }),
                Err(EncodeError::InvalidPayload(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn decodes_stream_control_frames() {
    assert_eq!(
        decode(r#"{"type":"streamAck","streamId":"s1","expectedSequenceId":2}"#).unwrap(),
        Downstream::StreamAck {
            stream_id: "s1".into(),
            expected_sequence_id: 2
        }
    );
    assert_eq!(
        decode(r#"{"type":"streamNack","streamId":"s1","name":"InvalidSequenceId","message":"out of order","expectedSequenceId":2}"#).unwrap(),
        Downstream::StreamNack {
            stream_id: "s1".into(),
            name: "InvalidSequenceId".into(),
            message: Some("out of order".into()),
            expected_sequence_id: 2
        }
    );
    assert_eq!(
        decode(r#"{"type":"streamClosed","streamId":"s1"}"#).unwrap(),
        Downstream::StreamClosed {
            stream_id: "s1".into(),
            error: None
        }
    );
    assert_eq!(
        decode(r#"{"type":"streamClosed","streamId":"stream-s1","error":{"name":"StreamNotFound","message":"stream closed"}}"#).unwrap(),
        Downstream::StreamClosed {
            stream_id: "stream-s1".into(),
            error: Some(AckError {
                name: "StreamNotFound".into(),
                message: "stream closed".into()
            })
        }
    );
    assert!(decode(r#"{"type":"streamAck","streamId":"s1"}"#).is_err());
    assert!(decode(r#"{"type":"streamNack","expectedSequenceId":1}"#).is_err());
    assert!(decode(r#"{"type":"streamClosed"}"#).is_err());
}

#[test]
fn decodes_stream_fragments_and_terminal_frames() {
    let info = |id: &str, seq, end, error| StreamInfo {
        stream_id: id.into(),
        stream_sequence_id: seq,
        end_of_stream: end,
        error,
    };
    let group = |text: &str| match decode(text).unwrap() {
        Downstream::GroupMessage {
            payload,
            stream,
            sequence_id,
            ..
        } => (payload, stream, sequence_id),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        group(
            r#"{"type":"message","from":"group","group":"g1","fromUserId":"u1","dataType":"text","data":"chunk-1","stream":{"streamId":"s1","streamSequenceId":1,"endOfStream":false},"sequenceId":9}"#
        ),
        (
            Payload::text("chunk-1"),
            Some(info("s1", 1, false, None)),
            Some(9)
        )
    );
    assert_eq!(
        group(
            r#"{"type":"message","from":"group","group":"g1","fromUserId":"u1","dataType":"text","data":"final-chunk","stream":{"streamId":"s-err-final","streamSequenceId":1,"endOfStream":true,"error":{"name":"UserError","message":"failed","userErrorCode":"E1"}}}"#
        ),
        (
            Payload::text("final-chunk"),
            Some(info(
                "s-err-final",
                1,
                true,
                Some(StreamError {
                    name: "UserError".into(),
                    message: Some("failed".into()),
                    user_error_code: Some("E1".into())
                })
            )),
            None
        )
    );
    // A terminal frame without a payload still ends the stream.
    assert_eq!(
        group(
            r#"{"type":"message","from":"group","group":"g","stream":{"streamId":"s","streamSequenceId":3,"endOfStream":true}}"#
        ),
        (Payload::text(""), Some(info("s", 3, true, None)), None)
    );
    // Metadata without a string id and a numeric sequence id is not a stream frame.
    for meta in [
        r#"{"streamId":1,"streamSequenceId":1}"#,
        r#"{"streamId":"s","streamSequenceId":"1"}"#,
        r#"{"streamId":"s"}"#,
    ] {
        let text = format!(
            r#"{{"type":"message","from":"group","group":"g","dataType":"text","data":"x","stream":{meta}}}"#
        );
        assert_eq!(group(&text).1, None, "{meta}");
    }
    // A fragment without data is malformed, as any group message.
    assert!(decode(r#"{"type":"message","from":"group","group":"g","stream":{"streamId":"s","streamSequenceId":1}}"#).is_err());
}

#[test]
fn decodes_group_state_frames() {
    assert_eq!(
        decode(r#"{"type":"groupStateSnapshot","group":"room","items":[{"connectionId":"conn1","userId":"user1","state":{"status":"typing"},"updatedAt":20}]}"#).unwrap(),
        Downstream::GroupState {
            group: "room".into(),
            snapshot: true,
            items_json: r#"[{"connectionId":"conn1","userId":"user1","state":{"status":"typing"},"updatedAt":20}]"#.into()
        }
    );
    assert_eq!(
        decode(r#"{"type":"groupStateUpdate","group":"room","items":[]}"#).unwrap(),
        Downstream::GroupState {
            group: "room".into(),
            snapshot: false,
            items_json: "[]".into()
        }
    );
    assert!(decode(r#"{"type":"groupStateUpdate","group":"room","items":{"a":1}}"#).is_err());
    assert!(decode(r#"{"type":"groupStateUpdate","items":[]}"#).is_err());
}

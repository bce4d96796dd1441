//! How received messages are printed.

use base64::Engine;
use serde_json::{json, Value};
use webpubsub_client::{DataType, Event, Payload};

/// The data as one line of text: text and JSON as they are, binary and protobuf as base64.
pub fn data_text(payload: &Payload) -> String {
    match payload.data_type {
        DataType::Text | DataType::Json => String::from_utf8_lossy(&payload.data).into_owned(),
        DataType::Binary | DataType::Protobuf => {
            base64::engine::general_purpose::STANDARD.encode(&payload.data)
        }
    }
}

/// The data as a JSON value: a JSON payload as its value, text as a string, bytes as base64.
fn data_value(payload: &Payload) -> Value {
    if payload.data_type == DataType::Json {
        if let Ok(v) = serde_json::from_slice(&payload.data) {
            return v;
        }
    }
    Value::String(data_text(payload))
}

/// One line of `wps sub --format json`.
pub fn group_message_json(
    group: &str,
    from_user_id: Option<&str>,
    message: &Payload,
    sequence_id: Option<u64>,
) -> String {
    json!({
        "group": group,
        "fromUserId": from_user_id,
        "dataType": message.data_type.as_str(),
        "data": data_value(message),
        "sequenceId": sequence_id,
    })
    .to_string()
}

/// One line describing a received event, for `-vv`.
pub fn event_trace(event: &Event) -> String {
    let opt = |s: &Option<String>| s.as_deref().unwrap_or("-").to_string();
    let seq = |s: &Option<u64>| s.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    match event {
        Event::Connected {
            connection_id,
            user_id,
        } => format!(
            "connected connectionId={connection_id} userId={}",
            opt(user_id)
        ),
        Event::Disconnected {
            connection_id,
            message,
        } => format!(
            "disconnected connectionId={} message={}",
            opt(connection_id),
            opt(message)
        ),
        Event::Stopped { reason } => format!("stopped reason={}", opt(reason)),
        Event::ServerMessage {
            message,
            sequence_id,
        } => format!(
            "serverMessage dataType={} bytes={} sequenceId={}",
            message.data_type.as_str(),
            message.data.len(),
            seq(sequence_id)
        ),
        Event::GroupMessage {
            group,
            from_user_id,
            message,
            sequence_id,
        } => format!(
            "groupMessage group={group} fromUserId={} dataType={} bytes={} sequenceId={}",
            opt(from_user_id),
            message.data_type.as_str(),
            message.data.len(),
            seq(sequence_id)
        ),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_is_base64_and_json_is_a_value() {
        let bin = Payload::binary(vec![0u8, 255]);
        assert_eq!(data_text(&bin), "AP8=");
        let line = group_message_json("g", Some("u"), &Payload::json("{\"a\":1}"), Some(3));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({"group":"g","fromUserId":"u","dataType":"json","data":{"a":1},"sequenceId":3})
        );
        let line = group_message_json("g", None, &bin, None);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["data"], "AP8=");
        assert_eq!(v["fromUserId"], Value::Null);
    }
}

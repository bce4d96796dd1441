//! How received messages are printed.

use base64::Engine;
use serde_json::{json, Value};
use webpubsub_client::{DataType, Event, Payload, StreamError};

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

/// One stream frame as received, for `wps stream --listen --format json`.
pub struct StreamFrame<'a> {
    pub group: &'a str,
    pub from_user_id: Option<&'a str>,
    pub stream_id: &'a str,
    pub stream_sequence_id: u64,
    pub end_of_stream: bool,
    pub message: &'a Payload,
    pub error: Option<&'a StreamError>,
    pub sequence_id: Option<u64>,
}

/// One line of `wps stream --listen --format json`.
pub fn stream_frame_json(f: &StreamFrame<'_>) -> String {
    json!({
        "group": f.group,
        "fromUserId": f.from_user_id,
        "streamId": f.stream_id,
        "streamSequenceId": f.stream_sequence_id,
        "endOfStream": f.end_of_stream,
        "dataType": f.message.data_type.as_str(),
        "data": data_value(f.message),
        "error": f.error.map(|e| json!({
            "name": e.name,
            "message": e.message,
            "userErrorCode": e.user_error_code,
        })),
        "sequenceId": f.sequence_id,
    })
    .to_string()
}

/// One fragment in `wps stream --listen` text output: `[STREAM] DATA`.
pub fn stream_fragment_text(stream_id: &str, message: &Payload) -> String {
    format!("[{stream_id}] {}", data_text(message))
}

/// "1 fragment", "N fragments".
pub fn fragments_text(n: u64) -> String {
    match n {
        1 => "1 fragment".to_string(),
        n => format!("{n} fragments"),
    }
}

/// How a stream ended, in `wps stream --listen` text output: `[STREAM] ended (N fragments)`
/// or `[STREAM] failed: NAME [CODE]: MESSAGE (N fragments)`.
pub fn stream_end_text(stream_id: &str, error: Option<&StreamError>, fragments: u64) -> String {
    let count = fragments_text(fragments);
    match error {
        None => format!("[{stream_id}] ended ({count})"),
        Some(e) => {
            let code = e
                .user_error_code
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let message = e
                .message
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!("[{stream_id}] failed: {}{code}{message} ({count})", e.name)
        }
    }
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
        Event::StreamFrame {
            group,
            from_user_id,
            message,
            sequence_id,
            stream_id,
            stream_sequence_id,
            end_of_stream,
            error,
        } => format!(
            "streamFrame group={group} fromUserId={} streamId={stream_id} streamSequenceId={stream_sequence_id} endOfStream={end_of_stream} dataType={} bytes={} sequenceId={} error={}",
            opt(from_user_id),
            message.data_type.as_str(),
            message.data.len(),
            seq(sequence_id),
            error.as_ref().map(|e| e.name.as_str()).unwrap_or("-")
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

    #[test]
    fn stream_lines() {
        let error = StreamError {
            name: "UserError".into(),
            message: Some("stream failed".into()),
            user_error_code: Some("APP_42".into()),
        };
        let payload = Payload::text("");
        let line = stream_frame_json(&StreamFrame {
            group: "g",
            from_user_id: Some("u"),
            stream_id: "s",
            stream_sequence_id: 3,
            end_of_stream: true,
            message: &payload,
            error: Some(&error),
            sequence_id: None,
        });
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({"group":"g","fromUserId":"u","streamId":"s","streamSequenceId":3,
                   "endOfStream":true,"dataType":"text","data":"",
                   "error":{"name":"UserError","message":"stream failed","userErrorCode":"APP_42"},
                   "sequenceId":null})
        );
        assert_eq!(
            stream_end_text("s", Some(&error), 2),
            "[s] failed: UserError [APP_42]: stream failed (2 fragments)"
        );
        assert_eq!(stream_end_text("s", None, 1), "[s] ended (1 fragment)");
        assert_eq!(
            stream_fragment_text("s", &Payload::binary(vec![0u8, 255])),
            "[s] AP8="
        );
    }
}

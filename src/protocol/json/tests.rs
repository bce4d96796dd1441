use super::*;

#[test]
fn placeholder_decodes_ack() {
    assert_eq!(
        decode(r#"{"type":"ack","ackId":1,"success":true}"#).unwrap(),
        Downstream::Ack {
            ack_id: 1,
            success: true,
            error: None
        }
    );
}

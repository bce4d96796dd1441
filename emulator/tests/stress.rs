//! Many connections doing random valid and invalid things at once: the emulator neither
//! panics nor stalls, and a fresh connection still works afterwards.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

/// Deterministic xorshift so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_frame(rng: &mut Rng) -> Message {
    let group = format!("g{}", rng.below(4));
    let ack = rng.below(50);
    match rng.below(12) {
        0 => Message::text(json!({"type":"joinGroup","group":group,"ackId":ack}).to_string()),
        1 => Message::text(json!({"type":"leaveGroup","group":group,"ackId":ack}).to_string()),
        2 | 3 => Message::text(
            json!({"type":"sendToGroup","group":group,"ackId":ack,"dataType":"text","data":"x","noEcho":rng.below(2)==0})
                .to_string(),
        ),
        4 => Message::text(json!({"type":"sequenceAck","sequenceId":rng.below(1000)}).to_string()),
        5 => Message::text(json!({"type":"ping"}).to_string()),
        6 => Message::text(json!({"type":"event","event":"e","data":{"n":ack}}).to_string()),
        7 => {
            let len = rng.below(64) as usize;
            Message::binary((0..len).map(|_| rng.below(256) as u8).collect::<Vec<u8>>())
        }
        8 => Message::text("{\"type\":"),
        9 => Message::text(json!({"type":"joinGroup","group":7}).to_string()),
        10 => Message::text(json!({"type":"sendToGroup","group":group,"dataType":"binary","data":"AQ=="}).to_string()),
        _ => Message::text(json!({"type":"Ping"}).to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_traffic_never_breaks_the_emulator() {
    let emu = emulator().await;
    let url = emu.client_access_url("h", Some("s"), ROLES, &["g0"], HOUR);
    let mut tasks = Vec::new();
    for seed in 1..=24u64 {
        let url = url.clone();
        let protocol = if seed % 2 == 0 { RELIABLE } else { JSON };
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut ws = connect(&url, protocol).await;
            for _ in 0..200 {
                if ws.send(random_frame(&mut rng)).await.is_err() {
                    // Closed for a protocol violation: reconnect and continue.
                    ws = connect(&url, protocol).await;
                }
                // Drain whatever is ready without blocking.
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout(std::time::Duration::from_millis(0), ws.next()).await
                {
                }
            }
        }));
    }
    for _ in 0..50 {
        assert_eq!(
            post(&emu, "/api/hubs/h/groups/g0/:send", "text/plain", b"rest").await,
            202
        );
    }
    for t in tasks {
        tokio::time::timeout(DEADLINE * 6, t)
            .await
            .expect("task finishes")
            .expect("no panic");
    }
    // A fresh pair of connections still works end to end.
    let (mut a, _) = connect_pubsub(&url, RELIABLE).await;
    let (mut b, _) = connect_pubsub(&url, JSON).await;
    assert_eq!(join(&mut b, "fresh", 1).await["success"], true);
    send(
        &mut a,
        json!({"type":"sendToGroup","group":"fresh","dataType":"text","data":"ok"}),
    )
    .await;
    assert_eq!(
        recv_until(&mut b, |v| v["type"] == "message").await["data"],
        "ok"
    );
    emu.shutdown().await;
}

//! Many connections doing random valid and invalid things at once, while hostile clients
//! flood the handshake and REST surfaces, connections are stalled and delayed, and one client
//! never reads: the emulator neither panics nor stalls nor keeps state for what it refused,
//! and a fresh connection still works afterwards.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use webpubsub_emulator::{Config, Emulator};

const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];
/// Wildcard roles only, so group names go through the pattern matcher.
const PATTERN_ROLES: &[&str] = &[
    "webpubsub.joinLeaveGroups.*-*-*-*-*",
    "webpubsub.sendToGroups.g**",
];
const V: &str = "api-version=2024-12-01";

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

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

fn random_frame(rng: &mut Rng) -> Message {
    let group = format!("g{}", rng.below(4));
    let ack = rng.below(50);
    match rng.below(20) {
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
        // Nesting around the data limit, up to far beyond it.
        11 => {
            let depth = [125, 126, 127, 3000, 100_000][rng.below(5) as usize];
            Message::text(format!(
                r#"{{"type":"sendToGroup","group":"{group}","dataType":"json","data":{}}}"#,
                nested(depth)
            ))
        }
        // Acknowledging ids never sent.
        12 => Message::text(json!({"type":"sequenceAck","sequenceId":u64::MAX}).to_string()),
        // Group names that make a backtracking wildcard matcher explode.
        13 => {
            let hostile = format!("{}.", "-".repeat(200 + rng.below(824) as usize));
            let kind = if rng.below(2) == 0 { "joinGroup" } else { "sendToGroup" };
            Message::text(
                json!({"type":kind,"group":hostile,"ackId":ack,"dataType":"text","data":"x"})
                    .to_string(),
            )
        }
        // Framing violations a well-behaved library only sends when asked to.
        14 => Message::Frame(Frame::message(
            vec![b'{', 0xff, 0xfe],
            OpCode::Data(Data::Text),
            true,
        )),
        15 => Message::Frame(Frame::message(
            b"x".to_vec(),
            OpCode::Data(Data::Reserved(3 + rng.below(5) as u8)),
            true,
        )),
        // Around the 1 MB message limit.
        16 => {
            let len = 1024 * 1024 - 64 + rng.below(128) as usize;
            Message::binary(vec![b' '; len])
        }
        17 => Message::text(json!({"type":"Ping"}).to_string()),
        18 => Message::text(json!({"type":"joinGroup","group":"a-b-c-d-e","ackId":ack}).to_string()),
        _ => Message::text(json!({"type":"ping"}).to_string()),
    }
}

/// Refused handshakes, unfinished requests and hostile REST calls; none of it may leave
/// state behind or stop legitimate clients for longer than the header-read timeout.
async fn hostile_http(emu: &Emulator, seed: u64) {
    let mut rng = Rng(seed);
    let port = emu.port();
    let mut held: Vec<TcpStream> = Vec::new();
    for i in 0..120 {
        let hub = format!("hostile{}", rng.below(1_000_000));
        match rng.below(9) {
            0 => {
                let url = format!("ws://127.0.0.1:{port}/client/hubs/{hub}?access_token=x.y.z");
                assert!(try_connect(&url, &[JSON]).await.is_err());
            }
            1 => {
                let url = format!(
                    "ws://127.0.0.1:{port}/client/hubs/{hub}?awps_connection_id=c{i}&awps_reconnection_token=t"
                );
                expect_recovery_refused(&url, RELIABLE).await;
            }
            2 | 3 => {
                // Silent or with a partial head; at most a few at a time.
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                if rng.below(2) == 0 {
                    let _ = s
                        .write_all(b"GET /client/hubs/h HTTP/1.1\r\nHost: x\r\n")
                        .await;
                }
                held.push(s);
                if held.len() > 6 {
                    held.remove(0);
                }
            }
            4 => {
                let deep = format!("{}userId eq 'u'{}", "(".repeat(3000), ")".repeat(3000));
                let path = format!("/api/hubs/h/:send?filter={}&{V}", enc(&deep));
                assert_eq!(post(emu, &path, "text/plain", b"x").await, 400);
            }
            5 => {
                let minutes = [1, 60, u64::MAX, u64::MAX / 60 + 1, 1 << 40][rng.below(5) as usize];
                let path = format!("/api/hubs/{hub}/:generateToken?minutesToExpire={minutes}&{V}");
                let status = http(emu, "POST", &path, true, None, b"").await.status;
                assert_eq!(
                    status,
                    if minutes < 1 << 30 { 200 } else { 400 },
                    "{minutes}"
                );
            }
            6 => {
                let code = 990 + rng.below(4020);
                let path = format!("/_emulator/hubs/h/connections/nobody/:close?code={code}");
                let sendable = matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999);
                let status = call(emu, "POST", &path).await;
                assert_eq!(status, if sendable { 404 } else { 400 }, "{code}");
            }
            7 => {
                let filter = format!(
                    "userId eq 'u{}' or 'g{}' in groups",
                    rng.below(3),
                    rng.below(4)
                );
                let path = format!("/api/hubs/{hub}/:send?filter={}&{V}", enc(&filter));
                assert_eq!(post(emu, &path, "text/plain", b"x").await, 202);
            }
            _ => {
                let body = json!({"groups":["g9"],"filter": format!("{}userId eq 'u'", "not ".repeat(3000))});
                let path = format!("/api/hubs/h/:addToGroups?{V}");
                let r = http(
                    emu,
                    "POST",
                    &path,
                    true,
                    Some("application/json"),
                    body.to_string().as_bytes(),
                )
                .await;
                assert_eq!(r.status, 400);
            }
        }
    }
}

/// Short stalls and delays on random connections of hub `h` while they send, receive,
/// violate the protocol and get cut: frames held for them must not keep a connection from
/// ending nor the emulator from serving the others.
async fn network_faults(emu: &Emulator, seed: u64) {
    let mut rng = Rng(seed);
    for _ in 0..150 {
        let conns = emu.connections("h");
        if !conns.is_empty() {
            let id = &conns[rng.below(conns.len() as u64) as usize].connection_id;
            let ms = rng.below(40);
            // Either may find the connection gone meanwhile.
            if rng.below(2) == 0 {
                emu.stall_connection("h", id, Duration::from_millis(ms + 1));
            } else {
                emu.delay_connection("h", id, Duration::from_millis(ms));
            }
        }
        // Paces the injector; nothing waits on it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_traffic_never_breaks_the_emulator() {
    // Short timeouts and a small handshake cap, so the hostile sockets exercise both while
    // legitimate clients keep connecting.
    let emu = Emulator::start(Config {
        header_read_timeout: Duration::from_millis(500),
        max_pending_handshakes: 32,
        ..Config::default()
    })
    .await
    .expect("emulator starts");
    let url = emu.client_access_url("h", Some("s"), ROLES, &["g0"], HOUR);
    let pattern_url = emu.client_access_url("h", Some("p"), PATTERN_ROLES, &[], HOUR);
    // A client that never reads: it is cut once its queue reaches its bound.
    let deaf_url = emu.client_access_url("h", Some("d"), ROLES, &["deaf"], HOUR);
    let (_deaf, deaf) = connect_pubsub(&deaf_url, JSON).await;
    let deaf = deaf["connectionId"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for seed in 1..=24u64 {
        let url = if seed % 3 == 0 {
            pattern_url.clone()
        } else {
            url.clone()
        };
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
                    tokio::time::timeout(Duration::from_millis(0), ws.next()).await
                {
                }
            }
        }));
    }
    let emu = std::sync::Arc::new(emu);
    for seed in [11u64, 12] {
        let emu = emu.clone();
        tasks.push(tokio::spawn(async move { hostile_http(&emu, seed).await }));
    }
    {
        let emu = emu.clone();
        tasks.push(tokio::spawn(async move { network_faults(&emu, 13).await }));
    }
    let big = vec![b'x'; 512 * 1024];
    for i in 0..60 {
        assert_eq!(
            post(&emu, "/api/hubs/h/groups/g0/:send", "text/plain", b"rest").await,
            202
        );
        let path = format!("/api/hubs/h/groups/deaf/:send?i={i}");
        assert_eq!(post(&emu, &path, "text/plain", &big).await, 202);
    }
    for t in tasks {
        tokio::time::timeout(DEADLINE * 12, t)
            .await
            .expect("task finishes")
            .expect("no panic");
    }
    eventually("the client that never reads is cut", || {
        emu.connections("h").iter().all(|c| c.connection_id != deaf)
    })
    .await;
    // Nothing that was refused created a hub.
    assert_eq!(emu.hubs(), vec!["h".to_string()]);
    // A fresh pair of connections still works end to end.
    let (mut a, _) = connect_pubsub(&url, RELIABLE).await;
    let (mut b, _) = connect_pubsub(&url, JSON).await;
    assert_eq!(join(&mut b, "fresh", 1).await["success"], true);
    send(
        &mut a,
        json!({"type":"sendToGroup","group":"fresh","dataType":"text","data":"ok"}),
    )
    .await;
    let got: Value = recv_until(&mut b, |v| v["type"] == "message").await;
    assert_eq!(got["data"], "ok");
}

//! Many clients on the one shared runtime: all connect, all receive a group broadcast.

mod common;

use common::*;
use webpubsub_client::{Event, Payload, SendOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_share_the_runtime_and_all_receive() {
    const N: usize = 200;
    let emu = emulator().await;
    let u = url(&emu, Some("many"), ROLES);
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..N {
        let u = u.clone();
        starts.spawn(async move {
            let (c, ev, _) = connected(u, fast_options()).await;
            c.join_group("all", None).await.unwrap();
            (c, ev)
        });
    }
    let mut clients = Vec::new();
    while let Some(r) = starts.join_next().await {
        clients.push(r.unwrap());
    }
    assert_eq!(emu.connections(HUB).len(), N);
    let (sender, _) = &clients[0];
    sender
        .send_to_group("all", Payload::text("hello all"), SendOptions::default())
        .await
        .unwrap();
    for (_, ev) in clients.iter_mut() {
        match ev.until("group message", is_group_message).await {
            Event::GroupMessage { message, .. } => assert_eq!(message.as_str(), Some("hello all")),
            _ => unreachable!(),
        }
    }
    // The client engines run on the shared runtime's 2 "wps-rt" workers, not a thread each.
    let wps_threads = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .map(|n| n.trim() == "wps-rt")
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0);
    assert!(wps_threads <= 2, "{wps_threads} runtime threads");
    for (c, _) in &clients {
        c.stop().await.unwrap();
    }
    emu.shutdown().await;
}

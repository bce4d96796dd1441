//! A handler with a bounded backlog: the engine stops reading at the bound, nothing is lost
//! silently, and the service's cut-off is reported as a lost session once the backlog drains.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use webpubsub_client::{
    Backlog, Client, ClientId, Credential, Event, EventHandler, Payload, SendOptions,
};

/// Keeps every event; messages count in the backlog until the test takes them.
struct Holding {
    backlog: Arc<Backlog>,
    events: Mutex<Vec<Event>>,
    arrived: tokio::sync::Notify,
}

impl EventHandler for Holding {
    fn on_event(&self, _client: &ClientId, event: Event) {
        if let Event::GroupMessage { message, .. } = &event {
            self.backlog.added(message.data.len());
        }
        self.events.lock().unwrap().push(event);
        self.arrived.notify_waiters();
    }

    fn backlog(&self) -> Option<Arc<Backlog>> {
        Some(self.backlog.clone())
    }
}

impl Holding {
    fn messages(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| is_group_message(e))
            .count()
    }

    /// Hands every message held so far to the "application" (out of the backlog).
    fn drain(&self) -> Vec<Event> {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        for e in &events {
            if let Event::GroupMessage { message, .. } = e {
                self.backlog.removed(message.data.len());
            }
        }
        events
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_stops_reading_and_the_cut_off_is_reported_as_session_lost() {
    let emu = emulator().await;
    let holding = Arc::new(Holding {
        backlog: Backlog::new(100, 0),
        events: Mutex::new(Vec::new()),
        arrived: tokio::sync::Notify::new(),
    });
    let c = Client::new(
        Credential::Url(url(&emu, Some("slow"), ROLES)),
        fast_options(),
        holding.clone(),
    );
    c.start().await.unwrap();
    c.join_group("flood", None).await.unwrap();
    let (p, mut pev, _) = connected(url(&emu, Some("fast"), ROLES), fast_options()).await;
    let body = "x".repeat(1024);
    for _ in 0..3000 {
        p.send_to_group(
            "flood",
            Payload::text(body.clone()),
            SendOptions {
                fire_and_forget: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    // The publisher's own marker, after every flood message, tells that the service has
    // handled the whole flood.
    p.join_group("flood", None).await.unwrap();
    p.send_to_group("flood", Payload::text("end"), SendOptions::default())
        .await
        .unwrap();
    pev.until(
        "marker",
        |e| matches!(e, Event::GroupMessage { message, .. } if message.as_str() == Some("end")),
    )
    .await;
    assert_eq!(
        holding.messages(),
        100,
        "the engine stopped reading at the bound"
    );
    assert_eq!(holding.backlog.len().0, 100);
    // The application catches up and reading resumes. A service with flow control held the
    // rest back while the client did not read: then everything arrives, in order. A service
    // that ended the session meanwhile (1008) makes the loss visible: SessionLost, before the
    // connection's Disconnected. Never silent loss.
    const SENT: usize = 3001; // the flood and the marker
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let arrived = holding.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        seen.extend(holding.drain());
        let delivered = seen.iter().filter(|e| is_group_message(e)).count();
        if delivered >= SENT || seen.iter().any(|e| matches!(e, Event::Disconnected { .. })) {
            break;
        }
        tokio::time::timeout_at(deadline, arrived)
            .await
            .expect("every message, or the cut-off, is reported");
    }
    let delivered = seen.iter().filter(|e| is_group_message(e)).count();
    match seen
        .iter()
        .position(|e| matches!(e, Event::Disconnected { .. }))
    {
        None => {
            let ids: Vec<u64> = seen
                .iter()
                .filter_map(|e| match e {
                    Event::GroupMessage { sequence_id, .. } => *sequence_id,
                    _ => None,
                })
                .collect();
            assert_eq!(ids.len(), SENT, "every message arrived once");
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
            assert!(
                !seen.iter().any(|e| matches!(e, Event::SessionLost { .. })),
                "nothing was lost"
            );
        }
        Some(disconnected) => {
            let lost = seen
                .iter()
                .position(|e| matches!(e, Event::SessionLost { .. }))
                .expect("SessionLost");
            assert!(lost < disconnected);
            match &seen[lost] {
                Event::SessionLost {
                    last_sequence_id,
                    reason,
                    ..
                } => {
                    assert!(
                        *last_sequence_id as usize >= delivered,
                        "{last_sequence_id}"
                    );
                    assert!(reason.contains("1008"), "{reason}");
                }
                _ => unreachable!(),
            }
            assert!(
                delivered < SENT,
                "the rest was held by the service, not by the client"
            );
        }
    }
    c.stop().await.unwrap();
    p.stop().await.unwrap();
    emu.shutdown().await;
}

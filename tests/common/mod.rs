//! Helpers shared by the integration tests: an in-process emulator, client construction, and
//! waiting on events with deadlines (never sleeping to synchronise; group membership, which
//! the emulator announces to nobody, is polled until a deadline).
#![allow(dead_code)]

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use webpubsub_client::{Client, ClientOptions, Credential, Event, RetryMode, RetryPolicy};
use webpubsub_emulator::{Config, Emulator};

pub const HUB: &str = "hub1";
pub const WAIT: Duration = Duration::from_secs(10);

pub const ROLES: &[&str] = &["webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"];

pub async fn emulator() -> Emulator {
    Emulator::start(Config::default())
        .await
        .expect("emulator starts")
}

pub fn url(emu: &Emulator, user: Option<&str>, roles: &[&str]) -> String {
    emu.client_access_url(HUB, user, roles, &[], Duration::from_secs(3600))
}

/// Options with short delays so failure paths finish quickly.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        message_retry: RetryPolicy {
            max_retries: 2,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(50),
            jitter: false,
        },
        reconnect_retry: RetryPolicy {
            max_retries: 20,
            mode: RetryMode::Fixed,
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(100),
            jitter: false,
        },
        recovery_interval: Duration::from_millis(100),
        recovery_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(5),
        start_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

pub struct Events {
    pub rx: UnboundedReceiver<Event>,
}

impl Events {
    /// The next event, failing the test after `WAIT`.
    pub async fn next(&mut self) -> Event {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) => panic!("event channel closed"),
            Err(_) => panic!("no event within {WAIT:?}"),
        }
    }

    /// Skips events until one matches; returns it.
    pub async fn until(&mut self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => {}
                Ok(None) => panic!("event channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// Asserts that no event arrives for `d` (used only to check that nothing else happens).
    pub async fn none_for(&mut self, d: Duration) -> Option<Event> {
        tokio::time::timeout(d, self.rx.recv()).await.ok().flatten()
    }

    pub fn drain(&mut self) -> Vec<Event> {
        let mut v = Vec::new();
        while let Ok(e) = self.rx.try_recv() {
            v.push(e);
        }
        v
    }
}

/// Waits until the emulator lists connection `id` of [`HUB`] in each of `groups`, failing the
/// test after `WAIT`. A new connection's rejoins go out after its `Connected` event, so they can
/// still be on their way when that event arrives; the emulator has no event for a join, so
/// its state is looked at every 2 ms.
pub async fn until_member(emu: &Emulator, id: &str, groups: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let joined = emu.connections(HUB).into_iter().any(|c| {
            c.connection_id == id && groups.iter().all(|g| c.groups.iter().any(|x| x == g))
        });
        if joined {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection {id} not in {groups:?} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub fn client_with(url: String, options: ClientOptions) -> (Client, Events) {
    let (c, rx) = Client::with_channel(Credential::Url(url), options);
    (c, Events { rx })
}

/// A started client with its `Connected` event consumed.
pub async fn connected(url: String, options: ClientOptions) -> (Client, Events, String) {
    let (c, mut ev) = client_with(url, options);
    c.start().await.expect("start");
    let id = match ev.next().await {
        Event::Connected { connection_id, .. } => connection_id,
        other => panic!("expected Connected, got {other:?}"),
    };
    (c, ev, id)
}

pub mod certs;
pub mod mock;

pub fn is_group_message(e: &Event) -> bool {
    matches!(e, Event::GroupMessage { .. })
}

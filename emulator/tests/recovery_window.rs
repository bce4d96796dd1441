//! The recovery window: a dropped reliable session is forgotten when it elapses. Runs with a
//! shortened window (its own test binary, so the environment variable affects nothing else).

mod common;
use common::*;
use std::time::Duration;

#[tokio::test]
async fn session_is_forgotten_after_the_recovery_window() {
    std::env::set_var("WPS_EMULATOR_RECOVERY_WINDOW_MS", "300");
    let emu = emulator().await;
    let url = emu.client_access_url("h", None, &[], &["g"], HOUR);
    let (mut ws, connected) = connect_pubsub(&url, RELIABLE).await;
    let id = connected["connectionId"].as_str().unwrap().to_string();
    let recovery = recovery_url(&url, &connected);

    // Within the window: recoverable.
    assert!(emu.drop_connection("h", &id));
    assert_eq!(expect_close(&mut ws).await, 1006);
    let (mut ws, again) = connect_pubsub(&recovery, RELIABLE).await;
    assert_eq!(again["connectionId"], id.as_str());

    // Dropped again and left alone: the session disappears once the window elapses.
    assert!(emu.drop_connection("h", &id));
    assert_eq!(expect_close(&mut ws).await, 1006);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    while emu.connections("h").iter().any(|c| c.connection_id == id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session not forgotten"
        );
        interval.tick().await;
    }
    expect_recovery_refused(&recovery, RELIABLE).await;
    emu.shutdown().await;
}

//! Quickstart of the Rust API: join a group, send a message to it and print what arrives.
//!
//! ```sh
//! cargo run --example quickstart -- "wss://<name>.webpubsub.azure.com/client/hubs/<hub>?access_token=..."
//! ```
//!
//! The client access URL comes from the first argument or `WPS_CLIENT_URL`; its token needs the
//! roles `webpubsub.joinLeaveGroup` and `webpubsub.sendToGroup`.

use std::time::Duration;

use webpubsub_client::{Client, ClientOptions, Credential, Event, Payload, SendOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("WPS_CLIENT_URL").ok())
        .ok_or("usage: quickstart CLIENT_ACCESS_URL (or set WPS_CLIENT_URL)")?;

    let (client, mut events) = Client::with_channel(Credential::Url(url), ClientOptions::default());
    client.start().await?; // returns once the service sent `connected`
    client.join_group("group1", None).await?;
    client
        .send_to_group(
            "group1",
            Payload::text("hello world"),
            SendOptions::default(),
        )
        .await?;

    // Wait (at most 10 s) for our own message to come back through the group.
    let received = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Connected { connection_id, .. } => println!("connected: {connection_id}"),
                Event::GroupMessage { group, message, .. } => {
                    println!(
                        "received from group {group}: {}",
                        message.as_str().unwrap_or("<binary>")
                    );
                    return true;
                }
                _ => {}
            }
        }
        false
    })
    .await;
    client.stop().await?;
    match received {
        Ok(true) => Ok(()),
        _ => Err("no group message within 10 s".into()),
    }
}

//! The Rust API (`webpubsub_client::Client`).

use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use webpubsub_client::{
    Client, ClientId, ClientOptions, Credential, Event, EventHandler, Payload, Protocol,
    SendOptions,
};

use crate::common::{BenchResult, Counter};
use crate::conn::Conn;

struct Deliveries(Arc<Counter>);

impl EventHandler for Deliveries {
    fn on_event(&self, _: &ClientId, event: Event) {
        if let Event::GroupMessage { .. } = event {
            self.0.hit();
        }
    }
}

pub struct ApiConn {
    client: Client,
    received: Arc<Counter>,
}

fn options(ack: bool) -> SendOptions {
    SendOptions {
        fire_and_forget: !ack,
        ..Default::default()
    }
}

impl Conn for ApiConn {
    async fn open(url: &str, reliable: bool) -> BenchResult<Self> {
        let received = Arc::new(Counter::default());
        let options = ClientOptions {
            protocol: if reliable {
                Protocol::JsonReliable
            } else {
                Protocol::Json
            },
            ..Default::default()
        };
        let client = Client::new(
            Credential::Url(url.to_string()),
            options,
            Arc::new(Deliveries(received.clone())),
        );
        client.start().await.map_err(|e| format!("start: {e}"))?;
        Ok(ApiConn { client, received })
    }

    fn received(&self) -> &Counter {
        &self.received
    }

    fn connection_id(&self) -> Option<String> {
        self.client.connection_id()
    }

    async fn join(&self, group: &str) -> BenchResult<()> {
        self.client
            .join_group(group, None)
            .await
            .map(|_| ())
            .map_err(|e| format!("join: {e}"))
    }

    async fn send(&self, group: &str, data: &str, acked: bool) -> BenchResult<()> {
        self.client
            .send_to_group(group, Payload::text(data), options(acked))
            .await
            .map(|_| ())
            .map_err(|e| format!("send: {e}"))
    }

    async fn send_window(
        &self,
        group: &str,
        data: &str,
        count: usize,
        window: usize,
    ) -> BenchResult<()> {
        let mut inflight = FuturesUnordered::new();
        for _ in 0..count {
            if inflight.len() >= window {
                let next: Option<Result<_, webpubsub_client::Error>> = inflight.next().await;
                if let Some(r) = next {
                    r.map_err(|e| format!("send: {e}"))?;
                }
            }
            inflight.push(
                self.client
                    .send_to_group(group, Payload::text(data), options(true)),
            );
        }
        while let Some(r) = inflight.next().await {
            r.map_err(|e| format!("send: {e}"))?;
        }
        Ok(())
    }

    async fn close(self) {
        let _ = self.client.stop().await;
    }
}

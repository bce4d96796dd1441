//! Scenario `stream` with the Rust API: one publisher writes a group stream, one subscriber
//! receives it, both on `json.webpubsub.azure.v1` (see BENCHMARKS.md).

use std::sync::Arc;
use std::time::Instant;

use webpubsub_client::{
    Client, ClientId, ClientOptions, Credential, Event, EventHandler, Payload, Protocol,
    StreamOptions,
};

use crate::common::{emit, env, rate, text_of, BenchResult, Counter, Params, WAIT};

const GROUP: &str = "s";
const WARM_UP: usize = 200;

/// Counts stream fragments (frames before the terminal one) and terminal frames; a stream
/// that ends in error is recorded.
struct Fragments {
    fragments: Arc<Counter>,
    ends: Arc<Counter>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

impl EventHandler for Fragments {
    fn on_event(&self, _: &ClientId, event: Event) {
        if let Event::StreamFrame {
            end_of_stream,
            error,
            message,
            ..
        } = event
        {
            if !end_of_stream || !message.data.is_empty() {
                self.fragments.hit();
            }
            if end_of_stream {
                if let Some(e) = error {
                    *self.failed.lock().unwrap() = Some(e.name);
                }
                self.ends.hit();
            }
        }
    }
}

struct Ignore;

impl EventHandler for Ignore {
    fn on_event(&self, _: &ClientId, _: Event) {}
}

fn client(url: &str, handler: Arc<dyn EventHandler>) -> Client {
    let options = ClientOptions {
        protocol: Protocol::Json,
        ..Default::default()
    };
    Client::new(Credential::Url(url.to_string()), options, handler)
}

async fn publish(publisher: &Client, data: &str, count: usize) -> BenchResult<()> {
    let stream = publisher
        .open_stream(GROUP, StreamOptions::default())
        .await
        .map_err(|e| format!("open stream: {e}"))?;
    for _ in 0..count {
        stream
            .write(Payload::text(data))
            .await
            .map_err(|e| format!("stream write: {e}"))?;
    }
    stream.end().await.map_err(|e| format!("stream end: {e}"))
}

/// Fragments per second from the first write until the subscriber saw the last fragment, for
/// 64-byte and 1 KiB fragments, after a warm-up stream. Each size is measured over
/// `stream_repeat` streams of `stream_count` (`stream1k_count`) fragments one after the other,
/// each waited for to its end: nothing paces a publisher to its subscribers, and a subscriber
/// left more than the service's outbound bound behind (16 MiB in the emulator) is cut off.
pub async fn stream(name: &str, p: &Params) -> BenchResult<()> {
    let url = env("BENCH_URL")?;
    let count_64 = p.usize("stream_count", 20_000)?;
    let count_1k = p.usize("stream1k_count", 10_000)?;
    let repeat = p.usize("stream_repeat", 5)?;

    let fragments = Arc::new(Counter::default());
    let ends = Arc::new(Counter::default());
    let failed = Arc::new(std::sync::Mutex::new(None));
    let sub = client(
        &url,
        Arc::new(Fragments {
            fragments: fragments.clone(),
            ends: ends.clone(),
            failed: failed.clone(),
        }),
    );
    sub.start().await.map_err(|e| format!("start: {e}"))?;
    sub.join_group(GROUP, None)
        .await
        .map_err(|e| format!("join: {e}"))?;
    let publisher = client(&url, Arc::new(Ignore));
    publisher.start().await.map_err(|e| format!("start: {e}"))?;

    let small = text_of(64);
    publish(&publisher, &small, WARM_UP).await?;
    ends.wait_for(1, WAIT, "warm-up stream").await?;

    let mut streams = 1u64;
    for (metric, size, count) in [("stream_64", 64, count_64), ("stream_1k", 1024, count_1k)] {
        let data = text_of(size);
        let mut busy = std::time::Duration::ZERO;
        for _ in 0..repeat {
            let base = fragments.get();
            let t = Instant::now();
            publish(&publisher, &data, count).await?;
            fragments
                .wait_for(base + count as u64, WAIT, metric)
                .await?;
            busy += fragments
                .last_arrival()
                .map_or_else(|| t.elapsed(), |at| at.duration_since(t));
            streams += 1;
            ends.wait_for(streams, WAIT, "the end of the stream")
                .await?;
        }
        emit(name, metric, rate(count * repeat, busy), "fragments/s");
    }
    if let Some(error) = failed.lock().unwrap().take() {
        return Err(format!("a stream ended with {error}"));
    }
    let _ = publisher.stop().await;
    let _ = sub.stop().await;
    Ok(())
}

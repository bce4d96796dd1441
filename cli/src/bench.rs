//! `wps bench pub|sub`: throughput and latency against any endpoint.
//!
//! Each message `bench pub` sends starts with `wpsbench <unix time in ns> `, padded to
//! `--size`, so `bench sub` can measure the delivery latency (exact when both run on one
//! machine; across machines it includes the clocks' offset).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use webpubsub_client::{Client, Event, Payload, SendOptions};

use crate::args::{BenchPubArgs, BenchSubArgs, Connection};
use crate::{connect, Failure};

const MARK: &str = "wpsbench ";

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn message(size: usize) -> String {
    let mut text = format!("{MARK}{} ", unix_nanos());
    if text.len() < size {
        let pad = size - text.len();
        text.push_str(&"x".repeat(pad));
    }
    text
}

/// `p50 .. p90 .. p99 .. max ..` of latencies in milliseconds.
fn summary(mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return "no samples".into();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        at(0.5),
        at(0.9),
        at(0.99),
        ms[ms.len() - 1]
    )
}

fn per_second(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

pub async fn run_pub(conn: &Connection, args: &BenchPubArgs) -> Result<(), Failure> {
    let (client, _events) = connect::connect(conn).await?;
    let result = publish(&client, args).await;
    let _ = client.stop().await;
    let (elapsed, acks) = result?;
    let line = format!(
        "sent {} messages of {} bytes in {:.2} s: {:.0} msgs/s, {:.2} MB/s",
        args.count,
        args.size,
        elapsed.as_secs_f64(),
        per_second(args.count, elapsed),
        per_second(args.count * args.size as u64, elapsed) / 1e6
    );
    if args.fire_and_forget {
        println!("{line}");
    } else {
        println!("{line}; ack latency ms {}", summary(acks));
    }
    Ok(())
}

async fn publish(client: &Client, args: &BenchPubArgs) -> Result<(Duration, Vec<f64>), Failure> {
    let opts = SendOptions {
        fire_and_forget: args.fire_and_forget,
        ..SendOptions::default()
    };
    let mut inflight = JoinSet::new();
    let mut acks = Vec::with_capacity(args.count as usize);
    let start = Instant::now();
    for _ in 0..args.count {
        while inflight.len() >= args.inflight.max(1) {
            if let Some(done) = inflight.join_next().await {
                acks.push(joined(done)?);
            }
        }
        let (client, group) = (client.clone(), args.group.clone());
        let data = Payload::text(message(args.size));
        inflight.spawn(async move {
            let sent = Instant::now();
            client
                .send_to_group(&group, data, opts)
                .await
                .map(|_| sent.elapsed().as_secs_f64() * 1e3)
        });
    }
    while let Some(done) = inflight.join_next().await {
        acks.push(joined(done)?);
    }
    Ok((start.elapsed(), acks))
}

type Sent = Result<Result<f64, webpubsub_client::Error>, tokio::task::JoinError>;

/// The ack latency of a finished send, or why it failed.
fn joined(done: Sent) -> Result<f64, Failure> {
    match done {
        Ok(Ok(ms)) => Ok(ms),
        Ok(Err(e)) => Err(Failure::Operation(format!("send to group: {e}"))),
        Err(e) => Err(Failure::Operation(format!("send task: {e}"))),
    }
}

pub async fn run_sub(conn: &Connection, args: &BenchSubArgs, verbose: u8) -> Result<(), Failure> {
    let (client, mut events) = connect::connect(conn).await?;
    let result = async {
        client
            .join_group(&args.group, None)
            .await
            .map_err(|e| Failure::Operation(format!("join group {}: {e}", args.group)))?;
        if verbose > 0 {
            eprintln!("wps: joined group {}", args.group);
        }
        receive(&mut events, args).await
    }
    .await;
    let _ = client.stop().await;
    let (elapsed, latencies) = result?;
    println!(
        "received {} messages in {:.2} s: {:.0} msgs/s; latency ms {}",
        args.count,
        elapsed.as_secs_f64(),
        per_second(args.count, elapsed),
        summary(latencies)
    );
    Ok(())
}

/// Receives `--count` messages; the time runs from the first one.
async fn receive(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    args: &BenchSubArgs,
) -> Result<(Duration, Vec<f64>), Failure> {
    let mut latencies = Vec::with_capacity(args.count as usize);
    let mut first = None;
    let mut received = 0;
    while received < args.count {
        match events.recv().await {
            Some(Event::GroupMessage { message, .. }) => {
                let now = unix_nanos();
                first.get_or_insert_with(Instant::now);
                received += 1;
                let sent = message
                    .as_str()
                    .and_then(|t| t.strip_prefix(MARK))
                    .and_then(|t| t.split(' ').next())
                    .and_then(|t| t.parse::<u128>().ok());
                if let Some(sent) = sent {
                    latencies.push(now.saturating_sub(sent) as f64 / 1e6);
                }
            }
            Some(Event::Stopped { reason }) => {
                return Err(Failure::Connection(
                    reason.unwrap_or_else(|| "the client stopped".into()),
                ))
            }
            Some(_) => {}
            None => return Err(Failure::Connection("the client stopped".into())),
        }
    }
    Ok((first.map(|f| f.elapsed()).unwrap_or_default(), latencies))
}

//! The three scenarios every bench program runs the same way (see BENCHMARKS.md):
//! `msg` (throughput and round trip), `idle` (memory and threads), `connect` (connect and recovery).

use std::time::{Duration, Instant};

use crate::common::{
    drop_connection, emit, env, instant_ns, percentile, proc_status, rate, text_of, BenchResult,
    Params, WAIT,
};
use crate::conn::Conn;

const GROUP: &str = "g";
const RTT_GROUP: &str = "rtt";
const RECOVERY_GROUP: &str = "rec";
const WARM_UP: usize = 200;

/// Fire-and-forget, acked (blocking and pipelined) throughput, then round-trip latency.
pub async fn msg<C: Conn>(name: &str, p: &Params) -> BenchResult<()> {
    let url = env("BENCH_URL")?;
    let ff_count = p.usize("ff_count", 20_000)?;
    let ff4k_count = p.usize("ff4k_count", 5_000)?;
    let ack_count = p.usize("ack_count", 2_000)?;
    let pipe_count = p.usize("pipe_count", 10_000)?;
    let window = p.usize("window", 256)?;
    let rtt_count = p.usize("rtt_count", 2_000)?;

    let sub = C::open(&url, false).await?;
    sub.join(GROUP).await?;
    let publisher = C::open(&url, false).await?;
    let small = text_of(64);
    let large = text_of(4096);

    publisher.send_burst(GROUP, &small, WARM_UP).await?;
    sub.received()
        .wait_for(WARM_UP as u64, WAIT, "warm-up")
        .await?;

    for (metric, data, count) in [("ff_64", &small, ff_count), ("ff_4k", &large, ff4k_count)] {
        let base = sub.received().get();
        let t = Instant::now();
        publisher.send_burst(GROUP, data, count).await?;
        sub.received()
            .wait_for(base + count as u64, WAIT, metric)
            .await?;
        emit(name, metric, rate(count, t.elapsed()), "msg/s");
    }

    let base = sub.received().get();
    let t = Instant::now();
    for _ in 0..ack_count {
        publisher.send(GROUP, &small, true).await?;
    }
    emit(name, "acked_seq", rate(ack_count, t.elapsed()), "msg/s");
    let t = Instant::now();
    publisher
        .send_window(GROUP, &small, pipe_count, window)
        .await?;
    emit(name, "acked_pipe", rate(pipe_count, t.elapsed()), "msg/s");
    let expected = base + (ack_count + pipe_count) as u64;
    sub.received()
        .wait_for(expected, WAIT, "acked deliveries")
        .await?;

    publisher.join(RTT_GROUP).await?;
    let mut samples = Vec::with_capacity(rtt_count);
    for i in 0..rtt_count {
        let t = Instant::now();
        publisher.send(RTT_GROUP, &small, false).await?;
        publisher
            .received()
            .wait_for(i as u64 + 1, WAIT, "round trip")
            .await?;
        let arrival = publisher
            .received()
            .last_arrival()
            .unwrap_or_else(Instant::now);
        samples.push(arrival.duration_since(t).as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    for (metric, p) in [("rtt_p50", 50.0), ("rtt_p99", 99.0), ("rtt_p999", 99.9)] {
        emit(name, metric, percentile(&samples, p), "us");
    }
    publisher.close().await;
    sub.close().await;
    Ok(())
}

/// RSS and threads with `steps` (e.g. 1,100,1000) connected idle clients.
pub async fn idle<C: Conn>(name: &str, p: &Params) -> BenchResult<()> {
    let url = env("BENCH_URL")?;
    let steps = p.list("steps", &[1, 100, 1000])?;
    let (rss, threads) = proc_status()?;
    emit(name, "rss_kb_0", rss, "KiB");
    emit(name, "threads_0", threads, "threads");
    let mut clients = Vec::new();
    for step in steps {
        while clients.len() < step {
            clients.push(C::open(&url, true).await?);
        }
        let (rss, threads) = proc_status()?;
        emit(name, &format!("rss_kb_{step}"), rss, "KiB");
        emit(name, &format!("threads_{step}"), threads, "threads");
    }
    for c in clients {
        c.close().await;
    }
    Ok(())
}

/// Time to connect a new client, and time to recover after the emulator drops the connection.
pub async fn connect<C: Conn>(name: &str, p: &Params) -> BenchResult<()> {
    let url = env("BENCH_URL")?;
    let connect_count = p.usize("connect_count", 20)?;
    let recover_count = p.usize("recover_count", 5)?;

    let mut samples = Vec::new();
    for _ in 0..connect_count {
        let t = Instant::now();
        let c = C::open(&url, true).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        c.close().await;
    }
    samples.sort_by(f64::total_cmp);
    emit(name, "connect_ms", percentile(&samples, 50.0), "ms");

    let target = C::open(&url, true).await?;
    target.join(RECOVERY_GROUP).await?;
    let sender = C::open(&url, true).await?;
    let small = text_of(64);
    let mut samples = Vec::new();
    for i in 0..recover_count {
        let id = target
            .connection_id()
            .ok_or("the client reports no connection id")?;
        let dropped_ns = drop_connection(&id)?;
        sender.send(RECOVERY_GROUP, &small, true).await?;
        target
            .received()
            .wait_for(i as u64 + 1, Duration::from_secs(30), "recovery")
            .await?;
        let arrival = target
            .received()
            .last_arrival()
            .unwrap_or_else(Instant::now);
        samples.push(instant_ns(arrival).saturating_sub(dropped_ns) as f64 / 1e6);
    }
    samples.sort_by(f64::total_cmp);
    emit(name, "recover_ms", percentile(&samples, 50.0), "ms");
    sender.close().await;
    target.close().await;
    Ok(())
}

/// The default reliable protocol (`json.reliable.webpubsub.azure.v1`): fire-and-forget and
/// acked pipelined delivery to one reliable subscriber, then a 1 -> `fanout` fan-out. Reports
/// delivered msg/s, messages lost and cut-offs (subscribers whose connection id changed: the
/// service closed them, e.g. 1008 when its 1000-message window overflowed). A delivery that
/// stalls is reported as loss after `WAIT`, not as a failure.
pub async fn reliable<C: Conn>(name: &str, p: &Params) -> BenchResult<()> {
    let url = env("BENCH_URL")?;
    let ff_count = p.usize("rel_count", 20_000)?;
    let pipe_count = p.usize("pipe_count", 10_000)?;
    let window = p.usize("window", 256)?;
    let fanout = p.usize("fanout", 100)?;
    let fan_count = p.usize("fan_count", 200)?;

    let sub = C::open(&url, true).await?;
    sub.join(GROUP).await?;
    let first_id = sub.connection_id();
    let publisher = C::open(&url, false).await?;
    let small = text_of(64);
    let mut lost = 0u64;

    let base = sub.received().get();
    let t = Instant::now();
    publisher.send_burst(GROUP, &small, ff_count).await?;
    let complete = sub
        .received()
        .wait_for(base + ff_count as u64, WAIT, "reliable fire-and-forget")
        .await
        .is_ok();
    let got = sub.received().get() - base;
    let elapsed = if complete {
        t.elapsed()
    } else {
        sub.received().last_arrival().unwrap_or_else(Instant::now) - t
    };
    emit(name, "rel_ff_64", rate(got as usize, elapsed), "msg/s");
    lost += ff_count as u64 - got.min(ff_count as u64);

    let base = sub.received().get();
    let t = Instant::now();
    publisher
        .send_window(GROUP, &small, pipe_count, window)
        .await?;
    let complete = sub
        .received()
        .wait_for(base + pipe_count as u64, WAIT, "reliable acked pipelined")
        .await
        .is_ok();
    let got = sub.received().get() - base;
    let elapsed = if complete {
        t.elapsed()
    } else {
        sub.received().last_arrival().unwrap_or_else(Instant::now) - t
    };
    emit(name, "rel_pipe", rate(got as usize, elapsed), "msg/s");
    lost += pipe_count as u64 - got.min(pipe_count as u64);
    let mut cutoffs = u64::from(sub.connection_id() != first_id);
    sub.close().await;

    const FAN_GROUP: &str = "fan";
    let mut subs = Vec::with_capacity(fanout);
    for _ in 0..fanout {
        let s = C::open(&url, true).await?;
        s.join(FAN_GROUP).await?;
        let id = s.connection_id();
        subs.push((s, id));
    }
    let t = Instant::now();
    publisher.send_burst(FAN_GROUP, &small, fan_count).await?;
    let mut delivered = 0u64;
    for (s, _) in &subs {
        let _ = s
            .received()
            .wait_for(fan_count as u64, WAIT, "reliable fan-out")
            .await;
        delivered += s.received().get().min(fan_count as u64);
    }
    emit(
        name,
        "rel_fanout",
        rate(delivered as usize, t.elapsed()),
        "msg/s",
    );
    lost += (fanout * fan_count) as u64 - delivered;
    for (s, id) in subs {
        cutoffs += u64::from(s.connection_id() != id);
        s.close().await;
    }
    emit(name, "rel_lost", lost as f64, "msg");
    emit(name, "rel_cutoffs", cutoffs as f64, "closes");
    publisher.close().await;
    Ok(())
}

//! `wps-bench IMPL SCENARIO [key=value ...]`: one bench program of bench/run.sh.
//! IMPL is `rust` (the `webpubsub_client` Rust API) or `raw` (bare tokio-tungstenite frames).
//! SCENARIO is `msg`, `idle`, `connect`, `reliable` or (`rust` only) `stream`; each prints one
//! JSON line per measurement.

mod api;
mod common;
mod conn;
mod raw;
mod scenarios;
mod stream;

use common::{BenchResult, Params};
use conn::Conn;

async fn run<C: Conn>(name: &str, scenario: &str, p: &Params) -> BenchResult<()> {
    match scenario {
        "msg" => scenarios::msg::<C>(name, p).await,
        "idle" => scenarios::idle::<C>(name, p).await,
        "connect" => scenarios::connect::<C>(name, p).await,
        "reliable" => scenarios::reliable::<C>(name, p).await,
        other => Err(format!(
            "unknown scenario '{other}' (msg, idle, connect, reliable; stream for rust)"
        )),
    }
}

async fn dispatch(args: Vec<String>) -> BenchResult<()> {
    let [implementation, scenario, rest @ ..] = args.as_slice() else {
        return Err("usage: wps-bench rust|raw msg|idle|connect [key=value ...]".into());
    };
    let p = Params::parse(rest)?;
    match implementation.as_str() {
        "rust" if scenario == "stream" => stream::stream("rust", &p).await,
        "rust" => run::<api::ApiConn>("rust", scenario, &p).await,
        "raw" => run::<raw::RawConn>("raw", scenario, &p).await,
        other => Err(format!("unknown implementation '{other}' (rust, raw)")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The Rust API runs on the library's shared runtime; the raw client gets the same shape
    // (2 worker threads) so neither has more threads than the other.
    let result = if args.first().map(String::as_str) == Some("raw") {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(dispatch(args)))
    } else {
        webpubsub_client::runtime::block_on(dispatch(args))
    };
    if let Err(e) = result {
        eprintln!("wps-bench: {e}");
        std::process::exit(1);
    }
}

//! `wps-fault-proxy`: the fault proxy as a command, controlled over HTTP (see the library's
//! `control` module). The first line on stdout is `listen=ADDR control=ADDR`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use wps_fault_proxy::{control, FaultProxy};

/// A TCP proxy that injects network faults, for tests.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address clients connect to (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address connections are forwarded to, e.g. the emulator's 127.0.0.1:8080.
    #[arg(long)]
    upstream: SocketAddr,
    /// Address of the HTTP control API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Seed of the randomness behind jitter and slicing.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let proxy = Arc::new(FaultProxy::bind(args.listen, args.upstream, args.seed).await?);
    let listener = tokio::net::TcpListener::bind(args.control).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "listen={} control={}",
        proxy.addr(),
        listener.local_addr()?
    )?;
    out.flush()?;
    drop(out);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let serve = axum::serve(listener, control::router(proxy.clone()));
    tokio::select! {
        r = serve => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    proxy.shutdown();
    Ok(())
}

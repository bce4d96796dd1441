//! The HTTP/1.1 listener. Bounds what a client can hold before it authenticates: the request
//! head must arrive within the header-read timeout (also the idle limit of a keep-alive
//! connection), and at most `max_pending_handshakes` accepted connections may be waiting to
//! authenticate at once; beyond that the listener stops accepting, so further clients wait in
//! the kernel's backlog instead of taking file descriptors.

use crate::router;
use crate::service::Service;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

/// A connection's place among those not yet authenticated, carried by each of its requests.
/// Authenticating gives the place up; so does closing the connection.
#[derive(Clone)]
pub struct Handshake(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Handshake {
    fn new(permit: OwnedSemaphorePermit) -> Handshake {
        Handshake(Arc::new(Mutex::new(Some(permit))))
    }

    /// A place that counts against nothing (requests that did not come through [`serve`]).
    pub fn none() -> Handshake {
        Handshake(Arc::new(Mutex::new(None)))
    }

    /// The connection presented a valid credential: it no longer counts as pending.
    pub fn authenticated(&self) {
        drop(self.take());
    }

    /// Takes the place out of the connection, so it can outlive the HTTP exchange (a refused
    /// recovery keeps it until its close handshake is over).
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Accepts and serves connections until `stop` fires, then lets the open HTTP exchanges
/// finish (upgraded WebSockets are not waited for; they are ended by the caller).
pub async fn serve(
    listener: TcpListener,
    svc: Arc<Service>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    let pending = Arc::new(Semaphore::new(svc.limits.max_pending_handshakes.max(1)));
    // Every connection task holds a receiver: `closed()` completes once all have ended.
    let (closing, closing_rx) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            p = pending.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of file descriptors or similar: give open connections time to end.
                        log::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        // Small frames (acks, fan-out) must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let handshake = Handshake::new(permit);
        let svc = svc.clone();
        let closing_rx = closing_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, svc, handshake, closing_rx).await,
                Some(acceptor) => {
                    // The TLS handshake counts against the header-read timeout.
                    let accepted =
                        tokio::time::timeout(svc.limits.header_read_timeout, acceptor.accept(tcp))
                            .await;
                    match accepted {
                        Ok(Ok(tls)) => serve_connection(tls, svc, handshake, closing_rx).await,
                        Ok(Err(e)) => log::info!("TLS handshake failed: {e}"),
                        Err(_) => log::info!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(closing_rx);
    let _ = closing.send(true);
    closing.closed().await;
}

/// Serves HTTP/1.1 (and upgrades) on one accepted connection.
async fn serve_connection<I>(
    io: I,
    svc: Arc<Service>,
    handshake: Handshake,
    mut closing_rx: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = svc.limits.header_read_timeout;
    let service = service_fn(move |req: Request<Incoming>| {
        let (svc, handshake) = (svc.clone(), handshake.clone());
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(handshake);
            Ok::<_, Infallible>(router::dispatch(svc, req).await)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                log::debug!("connection ended: {e}");
            }
            return;
        }
        _ = closing_rx.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// Errors that concern only the connection being accepted.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

//! The byte stream under a WebSocket: plain TCP or TLS, reading ahead in large chunks without
//! keeping a buffer per connection while it is idle.
//!
//! The WebSocket layer reads in small pieces (its own buffer is kept small because every
//! connection holds it for its whole life). A small read from the network would cost a system
//! call per piece, so this stream reads a full chunk into a per-thread scratch buffer and keeps
//! only what the caller did not take yet, in an allocation that exists until it is consumed.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Plain TCP, or TLS over TCP (boxed: the TLS state is over 1 KiB and plain connections
/// should not reserve room for it).
pub enum Io {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`, or `ws://` through an `https://` proxy.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `wss://` through an `https://` proxy: TLS to the service inside TLS to the proxy.
    TlsInTls(Box<tokio_rustls::client::TlsStream<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// Bytes read from the network but not yet taken by the reader.
struct Ahead {
    bytes: Box<[u8]>,
    pos: usize,
}

/// A connection's byte stream.
pub struct Stream {
    io: Io,
    /// How much to read from the network at once.
    chunk: usize,
    ahead: Option<Ahead>,
}

thread_local! {
    /// Where network reads land before they are handed out (one per runtime thread).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Stream {
    /// A stream over `io` reading `chunk` bytes at a time (at least 1 KiB).
    pub fn new(io: Io, chunk: usize) -> Stream {
        Stream {
            io,
            chunk: chunk.max(1024),
            ahead: None,
        }
    }

    fn io(&mut self) -> Pin<&mut dyn AsyncReadWrite> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s),
            Io::Tls(s) => Pin::new(&mut **s),
            Io::TlsInTls(s) => Pin::new(&mut **s),
        }
    }
}

/// Both directions of an unpinned byte stream.
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(ahead) = &mut this.ahead {
            let n = out.remaining().min(ahead.bytes.len() - ahead.pos);
            out.put_slice(&ahead.bytes[ahead.pos..ahead.pos + n]);
            ahead.pos += n;
            if ahead.pos == ahead.bytes.len() {
                this.ahead = None;
            }
            return Poll::Ready(Ok(()));
        }
        if out.remaining() >= this.chunk {
            return this.io().poll_read(cx, out);
        }
        let chunk = this.chunk;
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < chunk {
                scratch.resize(chunk, 0);
            }
            let mut buf = ReadBuf::new(&mut scratch[..chunk]);
            match this.io().poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let filled = buf.filled();
            let n = out.remaining().min(filled.len());
            out.put_slice(&filled[..n]);
            if n < filled.len() {
                this.ahead = Some(Ahead {
                    bytes: filled[n..].into(),
                    pos: 0,
                });
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
            Io::TlsInTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

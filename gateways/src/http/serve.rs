//! The listener: accepts TCP connections, optionally wraps them in TLS, and
//! serves the router over HTTP/1.1 and HTTP/2 with hyper, until shutdown.
//!
//! Written against hyper-util rather than `axum::serve` because TLS
//! handshakes must run per connection (a slow handshake must not stall the
//! accept loop) and each request must carry its peer address for rate limits.
//!
//! Connections cost a descriptor each, so they are bounded: a client must
//! send its first bytes (the request line, or HTTP/2's preface) within the
//! header timeout, HTTP/2 connections are pinged and dropped when the peer
//! stops answering, and at most [`MAX_CONNECTIONS`] are open at once, at
//! most [`MAX_PER_ADDRESS`] from one address other than loopback (where a
//! reverse proxy stands for everyone).

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The address a request's connection came in on (this side of it), as a
/// request extension: the DLNA front builds its URLs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// A bound TCP listener, ready to serve.
pub type Listener = TcpListener;

/// How the listener behaves.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS configuration, or `None` for plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Time a client gets to send a request's headers (slowloris guard), and
    /// to finish a TLS handshake.
    pub header_timeout: Duration,
    /// How long in-flight requests may run on after shutdown is asked.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
        }
    }
}

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 16_384;
/// Connections open at once from one address (loopback excepted).
pub const MAX_PER_ADDRESS: usize = 256;
/// HTTP/2's connection preface: hyper's protocol detection reads until the
/// bytes leave it (HTTP/1) or all of it has come (HTTP/2).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Counts open connections, in all and per address.
#[derive(Default)]
struct Census {
    per_addr: Mutex<HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

/// One counted connection; leaving the census when dropped.
struct Seat {
    census: Arc<Census>,
    addr: IpAddr,
}

impl Census {
    fn admit(self: &Arc<Self>, addr: IpAddr) -> Option<Seat> {
        use std::sync::atomic::Ordering;
        if self.total.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let mut per = self.per_addr.lock().unwrap_or_else(|e| e.into_inner());
        let n = per.entry(addr).or_default();
        if *n >= MAX_PER_ADDRESS && !addr.is_loopback() {
            drop(per);
            self.total.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(Seat {
            census: self.clone(),
            addr,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.census
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let mut per = self
            .census
            .per_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.addr);
            }
        }
    }
}

/// A connection that must show which protocol it speaks before a deadline:
/// bytes that leave HTTP/2's preface (then HTTP/1's header timeout takes
/// over) or the whole preface. A client that connects and says nothing, or
/// only part of the preface, is dropped. It holds its seat in the census
/// while it lives.
struct FirstBytes<S> {
    inner: S,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    matched: usize,
    _seat: Seat,
}

impl<S> FirstBytes<S> {
    fn new(inner: S, within: Duration, seat: Seat) -> Self {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            matched: 0,
            _seat: seat,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if let Some(d) = &mut this.deadline
            && d.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.deadline.is_some()
            && let Poll::Ready(Ok(())) = &r
        {
            let new = &buf.filled()[before..];
            let rest = &PREFACE[this.matched..];
            let same = new.iter().zip(rest).take_while(|(a, b)| a == b).count();
            if new.is_empty() || same < new.len().min(rest.len()) {
                this.deadline = None; // closed, or not HTTP/2's preface
            } else {
                this.matched += same;
                if this.matched == PREFACE.len() {
                    this.deadline = None;
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (up to `grace`).
pub async fn serve(
    listener: Listener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = opts.tls.clone().map(TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    // Peers that stop answering pings are dropped.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let census = Arc::new(Census::default());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(seat) = census.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many connections; closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok().map(LocalAddr);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(l) = local {
                req.extensions_mut().insert(l);
            }
            app.clone().oneshot(req)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match &acceptor {
            None => {
                let io = FirstBytes::new(stream, opts.header_timeout, seat);
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let timeout = opts.header_timeout;
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake: {e}"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let io = FirstBytes::new(tls, timeout, seat);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(opts.grace) => tracing::warn!("in-flight requests cut off after the grace period"),
    }
}

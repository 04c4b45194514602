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
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// `0`: connections are served on the caller's runtime. `n > 0`: on `n`
    /// threads of their own, each a single-threaded runtime that is handed
    /// connections (to the least busy) and keeps each for its whole life
    /// (nginx's worker model). A request then never hops between threads: on a busy
    /// file server the work-stealing runtime spent more in futex wake-ups
    /// and cross-core hand-offs than in serving small files.
    pub threads: usize,
    /// Plain-HTTP connections handed over whole, before HTTP starts, to
    /// another server (the overlay's relay at `GET /relay`).
    pub takeover: Option<Takeover>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            threads: 0,
            takeover: None,
        }
    }
}

/// Serves one connection handed over whole (see [`Takeover`]).
pub type TakeoverFn = Arc<
    dyn Fn(tokio::net::TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A hand-over of whole connections: a plain-HTTP connection whose first
/// bytes are `prefix` goes to `handler` with its TCP stream untouched
/// (iroh's relay takes its WebSocket upgrade from the raw stream, which
/// the router's HTTP/1 + HTTP/2 server cannot give it). Every other
/// connection pays one `peek` for it.
#[derive(Clone)]
pub struct Takeover {
    /// The bytes a connection for the other server starts with.
    pub prefix: &'static [u8],
    /// Serves one such connection to its end.
    pub handler: TakeoverFn,
}

impl std::fmt::Debug for Takeover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Takeover")
            .field("prefix", &String::from_utf8_lossy(self.prefix))
            .finish_non_exhaustive()
    }
}

/// Whether the first bytes `stream` received are `prefix`, without
/// reading them. Waits (the caller bounds it) while what came so far is
/// the start of `prefix`.
async fn starts_with(stream: &tokio::net::TcpStream, prefix: &[u8]) -> std::io::Result<bool> {
    let mut buf = [0u8; 32];
    let want = prefix.len().min(buf.len());
    let mut pause = Duration::from_millis(5);
    loop {
        let n = stream.peek(&mut buf[..want]).await?;
        if n == 0 || buf[..n] != prefix[..n] {
            return Ok(false);
        }
        if n == want {
            return Ok(true);
        }
        // A request cut into tiny packets: look again, less and less often
        // (a client that stalls there costs little until the timeout).
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
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
    /// The load count of the worker thread serving it, if any.
    worker: Option<Arc<AtomicUsize>>,
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
            worker: None,
        })
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(load) = &self.worker {
            load.fetch_sub(1, Ordering::Relaxed);
        }
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
    let census = Arc::new(Census::default());
    let ctx = Arc::new(ConnCtx::new(app, &opts));
    let workers: Vec<Worker> = (0..opts.threads)
        .filter_map(|i| Worker::start(i, ctx.clone(), opts.grace))
        .collect();
    if workers.is_empty() {
        if opts.threads > 0 {
            tracing::error!("no HTTP worker thread could start; serving on the main runtime");
        }
        let graceful = GracefulShutdown::new();
        accept_loop(&listener, &census, shutdown, |stream, peer, seat| {
            ctx.spawn(&graceful, stream, peer, seat)
        })
        .await;
        drop(listener);
        return drain(graceful, opts.grace).await;
    }
    accept_loop(&listener, &census, shutdown, |stream, peer, mut seat| {
        // The least busy thread takes the connection for its whole life.
        let w = workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .expect("at least one worker");
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => return tracing::debug!(%peer, "connection not handed over: {e}"),
        };
        w.load.fetch_add(1, Ordering::Relaxed);
        seat.worker = Some(w.load.clone());
        let _ = w.tx.send((stream, peer, seat));
    })
    .await;
    drop(listener);
    let mut done = Vec::new();
    for w in workers {
        drop(w.tx); // the thread drains and ends when its queue closes
        done.push(w.done);
    }
    for d in done {
        let _ = d.await;
    }
}

/// Waits for in-flight connections to finish, at most `grace`.
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::warn!("in-flight requests cut off after the grace period"),
    }
}

/// Accepts connections until `shutdown` completes, admits each through the
/// census and hands it to `take`.
async fn accept_loop(
    listener: &Listener,
    census: &Arc<Census>,
    shutdown: impl Future<Output = ()>,
    mut take: impl FnMut(tokio::net::TcpStream, std::net::SocketAddr, Seat),
) {
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
        take(stream, peer, seat);
    }
}

/// A thread with a single-threaded runtime of its own, serving the
/// connections handed to it.
struct Worker {
    tx: tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, std::net::SocketAddr, Seat)>,
    /// Connections it serves now.
    load: Arc<AtomicUsize>,
    /// Closes when the thread has drained and ended.
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Worker {
    fn start(i: usize, ctx: Arc<ConnCtx>, grace: Duration) -> Option<Worker> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            std::net::TcpStream,
            std::net::SocketAddr,
            Seat,
        )>();
        let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| tracing::error!("HTTP thread {i}: no runtime: {e}"))
            .ok()?;
        std::thread::Builder::new()
            .name(format!("glow-http-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    let graceful = GracefulShutdown::new();
                    while let Some((stream, peer, seat)) = rx.recv().await {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => ctx.spawn(&graceful, stream, peer, seat),
                            Err(e) => tracing::debug!(%peer, "connection not taken: {e}"),
                        }
                    }
                    drain(graceful, grace).await;
                });
                drop(done_tx);
            })
            .map_err(|e| tracing::error!("cannot start HTTP thread {i}: {e}"))
            .ok()?;
        Some(Worker {
            tx,
            load: Arc::new(AtomicUsize::new(0)),
            done,
        })
    }
}

/// What serving one connection needs: the router, hyper's settings, TLS.
struct ConnCtx {
    app: Router,
    builder: Builder<TokioExecutor>,
    acceptor: Option<TlsAcceptor>,
    header_timeout: Duration,
    takeover: Option<Takeover>,
}

impl ConnCtx {
    fn new(app: Router, opts: &ServeOptions) -> Self {
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
        ConnCtx {
            app,
            builder,
            acceptor: opts.tls.clone().map(TlsAcceptor::from),
            header_timeout: opts.header_timeout,
            takeover: opts.takeover.clone(),
        }
    }

    /// Serves one accepted connection on the current runtime, watched by
    /// `graceful`.
    fn spawn(
        self: &Arc<Self>,
        graceful: &GracefulShutdown,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        seat: Seat,
    ) {
        let local = stream.local_addr().ok().map(LocalAddr);
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(l) = local {
                req.extensions_mut().insert(l);
            }
            app.clone().oneshot(req)
        });
        let ctx = self.clone();
        let watcher = graceful.watcher();
        match &self.acceptor {
            None => {
                tokio::spawn(async move {
                    if let Some(t) = &ctx.takeover {
                        match tokio::time::timeout(
                            ctx.header_timeout,
                            starts_with(&stream, t.prefix),
                        )
                        .await
                        {
                            Ok(Ok(false)) => {}
                            Ok(Ok(true)) => {
                                let _seat = seat;
                                return (t.handler)(stream).await;
                            }
                            Ok(Err(e)) => return tracing::debug!(%peer, "connection: {e}"),
                            Err(_) => return tracing::debug!(%peer, "no request in time"),
                        }
                    }
                    let io = FirstBytes::new(stream, ctx.header_timeout, seat);
                    let conn = ctx
                        .builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let timeout = ctx.header_timeout;
                    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake: {e}"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let io = FirstBytes::new(tls, timeout, seat);
                    let conn = ctx
                        .builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, "connection: {e}");
                    }
                });
            }
        }
    }
}

//! The SFTP front: an SSH server (russh) that offers nothing but the `sftp`
//! subsystem, over the fabric. Each user signs in with their password (or
//! an app password) or one of their SSH keys, and sees their folders as the
//! directories of `/`.
//!
//! - [`hostkey`]: the node's ed25519 host key, made once in the data dir.
//! - `ssh`: the SSH side: sign-in, channels, refusing shells, exec and
//!   forwarding.
//! - `engine`: the SFTP v3 protocol (packets decoded with russh-sftp's
//!   types), answered from the fabric with many requests in flight.

mod engine;
mod error;
pub mod hostkey;
mod ssh;

pub use hostkey::HostKey;

use fabric::Fabric;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a connection may stay silent (no requests, no keepalive
/// answers) before it is dropped.
const IDLE: Duration = Duration::from_secs(3600);

/// The SSH server's settings: host key, ciphers, windows and timeouts.
fn config(key: &HostKey) -> russh::server::Config {
    use russh::cipher;
    // The AEAD ciphers OpenSSH prefers (ring's implementations); CTR modes
    // for old clients.
    const CIPHERS: &[cipher::Name] = &[
        cipher::CHACHA20_POLY1305,
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::AES_256_CTR,
        cipher::AES_128_CTR,
    ];
    russh::server::Config {
        server_id: russh::SshId::Standard(Cow::Owned(format!(
            "SSH-2.0-Glow_{}",
            env!("CARGO_PKG_VERSION")
        ))),
        methods: ssh::methods(),
        auth_rejection_time: Duration::from_millis(500),
        // OpenSSH asks with method "none" first: no need to make it wait.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key.private().clone()],
        inactivity_timeout: Some(IDLE),
        keepalive_interval: Some(Duration::from_secs(60)),
        // Big windows keep a fast client from stalling on flow control.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        channel_buffer_size: 256,
        nodelay: true,
        max_auth_attempts: 6,
        preferred: russh::Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            ..russh::Preferred::default()
        },
        ..Default::default()
    }
}

/// Serves SFTP on `listener` until `shutdown` completes; sessions in
/// progress end with the process. A client gets `login_grace` for the SSH
/// handshake and as long again to sign in, then it is dropped (so idle or
/// slow connections cannot pile up).
pub async fn serve(
    listener: TcpListener,
    fabric: Fabric,
    key: HostKey,
    login_grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config(&key));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("sftp accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // A second handle on the socket, to hang up on a client that does
        // not sign in in time whatever state the SSH session is in.
        let Some((tcp, killer)) = tcp
            .into_std()
            .and_then(|t| Ok((t.try_clone()?, t)))
            .and_then(|(killer, t)| Ok((tokio::net::TcpStream::from_std(t)?, killer)))
            .ok()
        else {
            continue;
        };
        let signed_in = Arc::new(AtomicBool::new(false));
        let handler = ssh::Connection::new(fabric.clone(), peer, signed_in.clone());
        let config = config.clone();
        tokio::spawn(async move {
            let started =
                tokio::time::timeout(login_grace, russh::server::run_stream(config, tcp, handler))
                    .await;
            let session = match started {
                Ok(Ok(session)) => session,
                Ok(Err(e)) => return tracing::debug!(%peer, "ssh handshake failed: {e}"),
                Err(_) => return tracing::debug!(%peer, "ssh handshake too slow; dropped"),
            };
            let guard = tokio::spawn(async move {
                tokio::time::sleep(login_grace).await;
                if !signed_in.load(Ordering::Relaxed) {
                    tracing::debug!(%peer, "no sign-in in time; dropped");
                    let _ = killer.shutdown(std::net::Shutdown::Both);
                }
            });
            if let Err(e) = session.await {
                tracing::debug!(%peer, "ssh session ended: {e}");
            }
            guard.abort();
        });
    }
}

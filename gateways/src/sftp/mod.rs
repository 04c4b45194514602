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

use overlay::Fabric;
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
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
/// progress end with the process.
pub async fn serve(
    listener: TcpListener,
    fabric: Fabric,
    key: HostKey,
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
        let handler = ssh::Connection::new(fabric.clone(), peer);
        let config = config.clone();
        tokio::spawn(async move {
            match russh::server::run_stream(config, tcp, handler).await {
                Ok(session) => {
                    if let Err(e) = session.await {
                        tracing::debug!(%peer, "ssh session ended: {e}");
                    }
                }
                Err(e) => tracing::debug!(%peer, "ssh handshake failed: {e}"),
            }
        });
    }
}

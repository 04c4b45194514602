//! The SSH side of the SFTP front: who may sign in (password, app password
//! or a key from the catalog, all rate-limited by the fabric), and which
//! channels are served: session channels carrying the `sftp` subsystem,
//! nothing else. Shells, exec (including legacy `scp -O`), PTYs and port
//! forwarding get a clean refusal.

use super::engine;
use fabric::{Fabric, FabricError, Principal};
use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Session channels one connection may hold open at once.
const MAX_CHANNELS: usize = 8;

/// The sign-in methods offered.
pub(super) fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

/// A rejection that lets the client try again (another key, or the
/// password once more).
fn retry() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(methods()),
        partial_success: false,
    }
}

/// One SSH connection.
pub(super) struct Connection {
    fabric: Fabric,
    peer: SocketAddr,
    who: Option<Principal>,
    /// Set once someone signed in (the login grace timer reads it).
    signed_in: Arc<AtomicBool>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    pub(super) fn new(fabric: Fabric, peer: SocketAddr, signed_in: Arc<AtomicBool>) -> Connection {
        Connection {
            fabric,
            peer,
            who: None,
            signed_in,
            channels: HashMap::new(),
        }
    }

    fn accept(&mut self, who: Principal) -> Auth {
        self.who = Some(who);
        self.signed_in.store(true, Ordering::Relaxed);
        Auth::Accept
    }

    async fn key_belongs(&self, user: &str, key: &russh::keys::PublicKey) -> Option<Principal> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        self.fabric.authenticate_key(user, &fingerprint).await.ok()
    }

    /// Refuses a request on a channel and closes the channel.
    fn refuse(
        &mut self,
        id: ChannelId,
        session: &mut Session,
        why: &str,
    ) -> Result<(), russh::Error> {
        tracing::debug!(peer = %self.peer, "refused: {why}");
        session.channel_failure(id)?;
        session.close(id)?;
        self.channels.remove(&id);
        Ok(())
    }

    /// Answers a shell or command with a one-line reason on stderr and exit
    /// status 1, so that the person at the client sees why.
    fn explain(
        &mut self,
        id: ChannelId,
        session: &mut Session,
        why: &str,
    ) -> Result<(), russh::Error> {
        tracing::debug!(peer = %self.peer, "refused: {why}");
        session.channel_success(id)?;
        session.extended_data(id, 1, format!("glow: {why}\r\n").into_bytes())?;
        session.exit_status_request(id, 1)?;
        session.eof(id)?;
        session.close(id)?;
        self.channels.remove(&id);
        Ok(())
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        match self
            .fabric
            .authenticate(user, password, Some(self.peer.ip()))
            .await
        {
            Ok(who) => {
                tracing::info!(user, peer = %self.peer, "sftp sign-in (password)");
                Ok(self.accept(who))
            }
            Err(FabricError::RateLimited(secs)) => {
                tracing::info!(user, peer = %self.peer, "sftp sign-in refused: rate limited for {secs} s");
                Ok(retry())
            }
            Err(_) => Ok(retry()),
        }
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.key_belongs(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => retry(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.key_belongs(user, key.public_key).await {
            Some(who) => {
                tracing::info!(user, peer = %self.peer, "sftp sign-in (key)");
                self.accept(who)
            }
            None => retry(),
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= MAX_CHANNELS {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(who), "sftp") = (self.who.clone(), name) else {
            return self.refuse(
                id,
                session,
                &format!("no subsystem {name:?} here; only sftp"),
            );
        };
        let Some(channel) = self.channels.remove(&id) else {
            return self.refuse(id, session, "unknown channel");
        };
        session.channel_success(id)?;
        let (fabric, handle) = (self.fabric.clone(), session.handle());
        tokio::spawn(async move {
            let stream = engine::run(channel.into_stream(), fabric, who).await;
            // As sshd does when sftp-server exits: status 0, EOF, close.
            // (`scp` reports a failure without the exit status.)
            let _ = handle.exit_status_request(id, 0).await;
            let _ = handle.eof(id).await;
            let _ = handle.close(id).await;
            drop(stream);
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let why = if data.starts_with(b"scp ") {
            "legacy scp is not served; use `scp` without -O (it speaks SFTP) or `sftp`"
        } else {
            "this server offers SFTP only; no commands"
        };
        self.explain(id, session, why)
    }

    async fn shell_request(
        &mut self,
        id: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.explain(id, session, "this server offers SFTP only; no shell")
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        id: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(id)
    }

    async fn x11_request(
        &mut self,
        id: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(id)
    }

    async fn env_request(
        &mut self,
        id: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(id)
    }

    async fn channel_close(
        &mut self,
        id: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&id);
        Ok(())
    }
}

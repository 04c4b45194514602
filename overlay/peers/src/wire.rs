//! The messages nodes exchange, and how they travel.
//!
//! Every exchange is one QUIC bidirectional stream: the asking side writes
//! one message and finishes its half, the answering side reads it whole
//! (at most [`MAX_MESSAGE`] bytes), writes one answer and finishes. Messages
//! are postcard (serde's compact binary form, the one iroh itself uses);
//! anything that does not decode is an error for that stream only.

use iroh::endpoint::{Connection, RecvStream, SendStream};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The largest message either side reads; a bigger one is refused.
pub const MAX_MESSAGE: usize = 8 << 20;
/// The longest one exchange may take before it is abandoned.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a member asks another member (ALPN [`crate::ALPN`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// "This is me and where I can be reached." Answered with the same.
    Hello(Hello),
    /// "Where can the other members be reached, as far as you know?"
    Members,
    /// "Send me your records numbered after `since`."
    Pull {
        /// The last of the answering node's sequence numbers the asking
        /// node has applied.
        since: u64,
    },
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    /// The answering node's own [`Hello`].
    Hello(Hello),
    /// The members the answering node knows, with where they were reached.
    Members(Vec<MemberAddr>),
    /// Records in the order of the answering node's sequence numbers.
    Records {
        /// At most one batch of them.
        records: Vec<Record>,
        /// More follow: ask again from the last one's sequence.
        more: bool,
    },
    /// The request was understood and refused (the reason is for logs).
    Refused(String),
}

/// A node's name and where it can be reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its friendly name.
    pub name: String,
    /// Its direct UDP addresses.
    pub addrs: Vec<SocketAddr>,
    /// The relay URLs it serves (its HTTP front), for the other members.
    pub relays: Vec<String>,
    /// The relay it can be reached through now (its home relay).
    pub home_relay: Option<String>,
    /// In an answer: where the answering node sees the asking one come
    /// from (its address outside its NAT, for hole punching).
    pub observed: Option<SocketAddr>,
}

/// What a node that holds an invite sends (ALPN [`crate::JOIN_ALPN`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Proof of the invite ([`crate::invite::join_proof`]); the secret
    /// itself never travels.
    pub proof: [u8; 32],
    /// The joining node's name and addresses.
    pub hello: Hello,
}

/// The answer to a [`JoinRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JoinResponse {
    /// The node is a member from now on.
    Welcome(Welcome),
    /// The invite is unknown, used or expired (the reason is for logs).
    Refused(String),
}

/// What a new member is told: who invited it and how to reach everyone.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Welcome {
    /// The inviter's proof that it holds the invite
    /// ([`crate::invite::welcome_proof`]).
    pub proof: [u8; 32],
    /// The inviting node's name.
    pub inviter: String,
    /// Every member the inviter knows of, itself included.
    pub members: Vec<MemberAddr>,
}

/// A member and where it was last reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddr {
    /// Its node id (64 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its last known direct addresses.
    pub addrs: Vec<SocketAddr>,
    /// The relay URLs it serves.
    pub relays: Vec<String>,
    /// The relay it was last reachable through.
    pub home_relay: Option<String>,
}

/// One versioned record (a user, a folder, a share, a member…): opaque to
/// this crate, which only carries it; the layer above gives it meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What it describes ("user", "member", …).
    pub kind: String,
    /// Which one (a user name, a node id…).
    pub key: String,
    /// Its value, in the layer above's own encoding.
    pub value: Vec<u8>,
    /// Its version vector, as `(node id, counter)` pairs.
    pub version: Vec<(String, u64)>,
    /// The node where this value was made.
    pub origin: String,
    /// When, ms since the epoch.
    pub changed_at: i64,
    /// Who made it (a user name, or "system").
    pub changed_by: String,
    /// A deletion.
    pub deleted: bool,
    /// The sending node's sequence number for it.
    pub sequence: u64,
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection or stream broke.
    #[error("connection: {0}")]
    Connection(String),
    /// The other side sent something that is not a message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The exchange took longer than [`EXCHANGE_TIMEOUT`].
    #[error("no answer within {}s", EXCHANGE_TIMEOUT.as_secs())]
    Timeout,
}

fn conn_err(e: impl std::fmt::Display) -> WireError {
    WireError::Connection(e.to_string())
}

/// Asks `question` on a new stream of `conn` and reads the answer.
pub async fn ask<Q: Serialize, A: DeserializeOwned>(
    conn: &Connection,
    question: &Q,
) -> Result<A, WireError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(conn_err)?;
        send_message(&mut send, question).await?;
        read_message(&mut recv).await
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| WireError::Timeout)?
}

/// Reads one whole message from `recv`.
pub async fn read_message<T: DeserializeOwned>(recv: &mut RecvStream) -> Result<T, WireError> {
    let bytes = recv.read_to_end(MAX_MESSAGE).await.map_err(conn_err)?;
    postcard::from_bytes(&bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Writes `message` to `send` and finishes the stream.
pub async fn send_message<T: Serialize>(
    send: &mut SendStream,
    message: &T,
) -> Result<(), WireError> {
    let bytes = postcard::to_allocvec(message).map_err(|e| WireError::Malformed(e.to_string()))?;
    send.write_all(&bytes).await.map_err(conn_err)?;
    send.finish().map_err(conn_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let r = Request::Pull { since: 42 };
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert!(matches!(
            postcard::from_bytes::<Request>(&bytes).unwrap(),
            Request::Pull { since: 42 }
        ));
        for garbage in [&b""[..], b"\xff\xff\xff", b"\x07"] {
            assert!(postcard::from_bytes::<Request>(garbage).is_err());
            assert!(postcard::from_bytes::<JoinRequest>(garbage).is_err());
        }
        // A length that claims more than there is fails, it does not
        // allocate what it claims.
        let huge = [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(postcard::from_bytes::<Response>(&huge).is_err());
    }
}

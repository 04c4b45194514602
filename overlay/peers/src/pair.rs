//! Adding a nearby device from a page, with a code shown on both sides
//! (numeric comparison, as Bluetooth pairing does).
//!
//! A node (A) offers a node heard on its LAN (B) to join its glow, over
//! `glow-pair/1` ([`PAIR_ALPN`]). Both compute a six-digit code from both
//! node ids and one nonce each. A commits to its nonce (sends its BLAKE3
//! hash) before it sees B's, and reveals it only after: a node in the
//! middle (one that answered the LAN's mDNS for B with an id of its own)
//! would see two different pairs of ids, and cannot choose its nonces so
//! that both codes agree but by chance, one in a million. The persons at
//! both devices compare the codes; only once both said they match does A
//! send B an invite, which B redeems with the usual join
//! ([`crate::Peers::join`]), so the invite's checks all still hold.
//!
//! B hears offers only from nodes it hears on its LAN, at most
//! [`MAX_PAIRINGS`] at once, each for at most [`PAIR_TIMEOUT`].
//!
//! The conversation is one QUIC stream of length-prefixed postcard
//! messages (tokio-util's `LengthDelimitedCodec`), at most
//! [`MAX_PAIR_MESSAGE`] bytes each.

use crate::invite::Invite;
use crate::members::{DIAL_TIMEOUT, Standing, short};
use crate::{Host, Peers};
use futures_util::{SinkExt, StreamExt};
use iroh::endpoint::{Connection, RecvStream, SendStream, VarInt};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// The protocol a node offers another to join its glow with (ALPN).
pub const PAIR_ALPN: &[u8] = b"glow-pair/1";
/// How long the persons have to compare the codes and say yes.
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// Offers this node considers at once at most; more are turned away.
pub const MAX_PAIRINGS: usize = 4;
/// The largest message of the conversation.
pub const MAX_PAIR_MESSAGE: usize = 16 * 1024;
/// How long a finished pairing stays listed (so the page can say how it
/// ended).
const KEEP_FINISHED: Duration = Duration::from_secs(60);
/// The time the first messages (before the codes) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One message of a pairing conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum PairMessage {
    /// A to B: "join my glow?", with the hash of A's nonce.
    Offer { name: String, commitment: [u8; 32] },
    /// B to A: B's name and nonce.
    Reply { name: String, nonce: [u8; 32] },
    /// A to B: A's nonce (which must hash to the commitment).
    Reveal { nonce: [u8; 32] },
    /// Either side: its person said the codes match.
    Accept,
    /// Either side: its person said no, or cancelled.
    Decline,
    /// A to B, once both accepted: the invite (its full text).
    Invite(String),
    /// B to A: how the join went.
    Joined(Result<(), String>),
}

/// Where a pairing stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairState {
    /// This side's person has to compare the codes and answer.
    Confirm,
    /// This side said yes; the other device's person has not yet.
    Waiting,
    /// Both said yes: the invite is being redeemed.
    Joining,
    /// It worked (what happened, for the page).
    Done(String),
    /// It did not (why, for the page).
    Failed(String),
}

/// A pairing as the pages show it.
#[derive(Clone, Debug)]
pub struct Pairing {
    /// Its number on this node (for [`Peers::decide`]).
    pub id: u64,
    /// The other node's id.
    pub peer: String,
    /// The name the other node gave.
    pub peer_name: String,
    /// The code both sides show (`"123 456"`).
    pub code: String,
    /// This node offered (it adds the other); otherwise it was offered.
    pub outgoing: bool,
    /// Where it stands.
    pub state: PairState,
}

/// Why an offer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// This node serves no glow (a command's endpoint).
    #[error("this node does not serve the overlay")]
    NoHost,
    /// The node is not heard on this LAN.
    #[error("node {0} is not heard on this network")]
    NotNearby(String),
    /// It is a member already.
    #[error("node {0} is a member already")]
    Member(String),
    /// The conversation failed before the codes.
    #[error("cannot reach node {0}: {1}")]
    Unreachable(String, String),
}

/// One pairing's entry on this node.
struct Entry {
    view: Pairing,
    decide: watch::Sender<Option<bool>>,
    finished: Option<Instant>,
}

/// The pairings of one node.
#[derive(Clone, Default)]
pub(crate) struct Pairings {
    entries: Arc<Mutex<Vec<Entry>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Pairings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.finished.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
        entries
    }

    /// Adds a pairing waiting for this side's answer; `None` when
    /// `incoming` and too many are open, or one with `peer` is.
    fn add(
        &self,
        peer: &str,
        peer_name: String,
        code: String,
        outgoing: bool,
    ) -> Option<(u64, watch::Receiver<Option<bool>>)> {
        let mut entries = self.lock();
        let open = |e: &&Entry| e.finished.is_none();
        if entries.iter().filter(open).any(|e| e.view.peer == peer)
            || (!outgoing && entries.iter().filter(open).count() >= MAX_PAIRINGS)
        {
            return None;
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let (decide, decided) = watch::channel(None);
        entries.push(Entry {
            view: Pairing {
                id,
                peer: peer.to_owned(),
                peer_name,
                code,
                outgoing,
                state: PairState::Confirm,
            },
            decide,
            finished: None,
        });
        Some((id, decided))
    }

    fn set(&self, id: u64, state: PairState) {
        if let Some(e) = self.lock().iter_mut().find(|e| e.view.id == id) {
            if matches!(state, PairState::Done(_) | PairState::Failed(_)) {
                e.finished = Some(Instant::now());
            }
            e.view.state = state;
        }
    }

    fn state(&self, id: u64) -> Option<PairState> {
        self.lock()
            .iter()
            .find(|e| e.view.id == id)
            .map(|e| e.view.state.clone())
    }
}

/// The code both sides show for this pair of ids and nonces.
fn code(offering: &str, offered: &str, a: &[u8; 32], b: &[u8; 32]) -> String {
    let mut h = blake3::Hasher::new_derive_key("glow 2026 pairing code v1");
    for part in [offering.as_bytes(), offered.as_bytes(), a, b] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let n = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    let n = n % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).expect("the OS random source failed");
    n
}

/// One side of the conversation.
struct Talk {
    send: FramedWrite<SendStream, LengthDelimitedCodec>,
    recv: FramedRead<RecvStream, LengthDelimitedCodec>,
}

impl Talk {
    fn new(send: SendStream, recv: RecvStream) -> Talk {
        let codec = || {
            LengthDelimitedCodec::builder()
                .max_frame_length(MAX_PAIR_MESSAGE)
                .new_codec()
        };
        Talk {
            send: FramedWrite::new(send, codec()),
            recv: FramedRead::new(recv, codec()),
        }
    }

    async fn send(&mut self, m: &PairMessage) -> Result<(), String> {
        let bytes = postcard::to_allocvec(m).map_err(|e| e.to_string())?;
        self.send
            .send(bytes::Bytes::from(bytes))
            .await
            .map_err(|e: std::io::Error| e.to_string())
    }

    async fn read(&mut self) -> Result<PairMessage, String> {
        match self.recv.next().await {
            Some(Ok(frame)) => postcard::from_bytes(&frame).map_err(|e| format!("malformed: {e}")),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the other device hung up".into()),
        }
    }

    async fn read_within(&mut self, limit: Duration) -> Result<PairMessage, String> {
        tokio::time::timeout(limit, self.read())
            .await
            .map_err(|_| format!("no answer within {}s", limit.as_secs()))?
    }
}

impl Peers {
    /// Offers node `id` (heard on the LAN) to join this node's glow. Once
    /// both sides show their code, returns the pairing's number; the rest
    /// runs on its own ([`Peers::pairings`], [`Peers::decide`]).
    pub async fn pair(&self, id: &str) -> Result<u64, PairError> {
        let host = self.host.clone().ok_or(PairError::NoHost)?;
        let Some(near) = self.nearby().into_iter().find(|n| n.id == id) else {
            return Err(PairError::NotNearby(short(id).to_owned()));
        };
        if host.standing(id).await == Standing::Member {
            return Err(PairError::Member(short(id).to_owned()));
        }
        let unreachable = |e: String| PairError::Unreachable(short(id).to_owned(), e);
        let conn = self
            .dial(id, &near.addrs, None, PAIR_ALPN)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut talk = Talk::new(send, recv);
        let mine = nonce();
        let opened = async {
            talk.send(&PairMessage::Offer {
                name: self.name.clone(),
                commitment: *blake3::hash(&mine).as_bytes(),
            })
            .await?;
            let PairMessage::Reply { name, nonce } = talk.read_within(HANDSHAKE_TIMEOUT).await?
            else {
                return Err("the other device answered out of turn".to_owned());
            };
            talk.send(&PairMessage::Reveal { nonce: mine }).await?;
            Ok((name, nonce))
        };
        let (name, theirs) = opened.await.map_err(unreachable)?;
        let code = code(&self.id(), id, &mine, &theirs);
        let Some((number, decided)) = self.pairings.add(id, name, code, true) else {
            conn.close(VarInt::from_u32(409), b"already pairing");
            return Err(unreachable("a pairing with it is open already".into()));
        };
        let me = self.clone();
        tokio::spawn(async move {
            let end = me.converse(&mut talk, number, decided, true, &*host).await;
            me.finish(number, end, &conn, &mut talk).await;
        });
        Ok(number)
    }

    /// Serves an offer to join another node's glow.
    pub(crate) async fn serve_pair(&self, conn: Connection, host: Arc<dyn Host>) {
        let from = conn.remote_id().to_string();
        if !self.is_nearby(&from) {
            tracing::info!(node = %short(&from), "pairing offer from a node not heard on the LAN refused");
            conn.close(VarInt::from_u32(403), b"not nearby");
            return;
        }
        let Ok((send, recv)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| ())
            .and_then(|r| r.map_err(|_| ()))
        else {
            return;
        };
        let mut talk = Talk::new(send, recv);
        let mine = nonce();
        let opened = async {
            let PairMessage::Offer { name, commitment } =
                talk.read_within(HANDSHAKE_TIMEOUT).await?
            else {
                return Err("not an offer".to_owned());
            };
            talk.send(&PairMessage::Reply {
                name: self.name.clone(),
                nonce: mine,
            })
            .await?;
            let PairMessage::Reveal { nonce } = talk.read_within(HANDSHAKE_TIMEOUT).await? else {
                return Err("no nonce revealed".to_owned());
            };
            if blake3::hash(&nonce).as_bytes() != &commitment {
                return Err("its nonce does not match its commitment".to_owned());
            }
            Ok((name, nonce))
        };
        let (name, theirs) = match opened.await {
            Ok(v) => v,
            Err(e) => {
                tracing::info!(node = %short(&from), "pairing offer dropped: {e}");
                conn.close(VarInt::from_u32(400), b"bad offer");
                return;
            }
        };
        let code = code(&from, &self.id(), &theirs, &mine);
        let Some((number, decided)) = self.pairings.add(&from, name.clone(), code, false) else {
            tracing::info!(node = %short(&from), "pairing offer turned away: too many open");
            conn.close(VarInt::from_u32(503), b"busy");
            return;
        };
        tracing::info!(node = %short(&from), name = %name, "a nearby node offers to add this one to its glow");
        let end = self
            .converse(&mut talk, number, decided, false, &*host)
            .await;
        self.finish(number, end, &conn, &mut talk).await;
    }

    /// The pairing's conversation once both codes show: the answers of
    /// both persons, then the invite.
    async fn converse(
        &self,
        talk: &mut Talk,
        number: u64,
        mut decided: watch::Receiver<Option<bool>>,
        outgoing: bool,
        host: &dyn Host,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + PAIR_TIMEOUT;
        let (mut mine, mut theirs) = (None::<bool>, None::<bool>);
        while mine != Some(true) || theirs != Some(true) {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = talk.send(&PairMessage::Decline).await;
                    return Err("nobody answered in time".into());
                }
                changed = decided.changed(), if mine.is_none() => {
                    if changed.is_err() { return Err("cancelled".into()); }
                    let yes = *decided.borrow();
                    let Some(yes) = yes else { continue };
                    talk.send(&if yes { PairMessage::Accept } else { PairMessage::Decline }).await?;
                    if !yes {
                        return Err("you said no".into());
                    }
                    mine = Some(true);
                    self.pairings.set(number, PairState::Waiting);
                }
                said = talk.read() => match said? {
                    PairMessage::Accept => theirs = Some(true),
                    PairMessage::Decline => return Err("the other device said no".into()),
                    // B may get the invite as soon as it has accepted
                    // (A sends it once both have).
                    PairMessage::Invite(text) if !outgoing && mine == Some(true) => {
                        return self.redeem_offer(talk, number, &text, host).await;
                    }
                    other => return Err(format!("unexpected message {other:?}")),
                },
            }
        }
        if !outgoing {
            // B: both said yes; the invite comes next.
            self.pairings.set(number, PairState::Joining);
            return match talk.read_within(HANDSHAKE_TIMEOUT).await? {
                PairMessage::Invite(text) => self.redeem_offer(talk, number, &text, host).await,
                other => Err(format!("unexpected message {other:?}")),
            };
        }
        self.pairings.set(number, PairState::Joining);
        let invite = host.invite(PAIR_TIMEOUT).await?;
        talk.send(&PairMessage::Invite(invite.full())).await?;
        match talk
            .read_within(crate::members::LAN_JOIN_WAIT + DIAL_TIMEOUT * 2)
            .await?
        {
            PairMessage::Joined(Ok(())) => Ok("joined this glow".into()),
            PairMessage::Joined(Err(e)) => Err(format!("the other device could not join: {e}")),
            other => Err(format!("unexpected message {other:?}")),
        }
    }

    /// B: redeems the invite A sent, with the usual join.
    async fn redeem_offer(
        &self,
        talk: &mut Talk,
        number: u64,
        text: &str,
        host: &dyn Host,
    ) -> Result<String, String> {
        self.pairings.set(number, PairState::Joining);
        let offering = self
            .pairings
            .lock()
            .iter()
            .find(|e| e.view.id == number)
            .map(|e| e.view.peer.clone())
            .unwrap_or_default();
        let invite = Invite::parse(text).map_err(|e| e.to_string())?;
        // The invite must be the offering node's own: it is the node
        // whose code the person checked.
        let inviter = invite.inviter.map(|k| {
            iroh::EndpointId::from_bytes(&k).map_or_else(|_| String::new(), |id| id.to_string())
        });
        if inviter.as_deref() != Some(offering.as_str()) {
            let _ = talk
                .send(&PairMessage::Joined(Err("not your invite".into())))
                .await;
            return Err("the invite named another node".into());
        }
        let joined = self.join(&invite, host).await.map_err(|e| e.to_string());
        let _ = talk
            .send(&PairMessage::Joined(
                joined.as_ref().map(|_| ()).map_err(Clone::clone),
            ))
            .await;
        joined.map(|_| "joined its glow".into())
    }

    /// Records how pairing `number` ended and hangs up.
    async fn finish(
        &self,
        number: u64,
        end: Result<String, String>,
        conn: &Connection,
        talk: &mut Talk,
    ) {
        let peer = self
            .pairings()
            .into_iter()
            .find(|p| p.id == number)
            .map(|p| p.peer)
            .unwrap_or_default();
        match &end {
            Ok(how) => tracing::info!(node = %short(&peer), "pairing: {how}"),
            Err(why) => tracing::info!(node = %short(&peer), "pairing ended: {why}"),
        }
        self.pairings.set(
            number,
            match end {
                Ok(how) => PairState::Done(how),
                Err(why) => PairState::Failed(why),
            },
        );
        let _ = talk.send.get_mut().finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), talk.send.get_mut().stopped()).await;
        conn.close(VarInt::from_u32(0), b"");
    }

    /// The pairings open now and those that ended in the last minute.
    pub fn pairings(&self) -> Vec<Pairing> {
        self.pairings
            .lock()
            .iter()
            .map(|e| e.view.clone())
            .collect()
    }

    /// This side's person answers pairing `number`: the codes match
    /// (`accept`) or not. `false` if there is no such pairing waiting for
    /// an answer.
    pub fn decide(&self, number: u64, accept: bool) -> bool {
        if self.pairings.state(number) != Some(PairState::Confirm) {
            return false;
        }
        self.pairings
            .lock()
            .iter()
            .find(|e| e.view.id == number)
            .is_some_and(|e| e.decide.send(Some(accept)).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_compute_the_same_six_digit_code_and_any_change_alters_it() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let (na, nb) = ([1u8; 32], [2u8; 32]);
        let c = code(&a, &b, &na, &nb);
        assert_eq!(c.len(), 7);
        assert!(c.chars().all(|ch| ch.is_ascii_digit() || ch == ' '));
        assert_eq!(c, code(&a, &b, &na, &nb));
        // Another node in the middle, or another nonce, gives another
        // code (these particular values do; a collision is 1 in 10^6).
        assert_ne!(c, code(&a, &"c".repeat(64), &na, &nb));
        assert_ne!(c, code(&b, &a, &na, &nb));
        assert_ne!(c, code(&a, &b, &nb, &na));
    }

    #[test]
    fn offers_are_bounded_and_one_per_node() {
        let p = Pairings::default();
        assert!(p.add("n1", "one".into(), "000 001".into(), false).is_some());
        assert!(
            p.add("n1", "one".into(), "000 002".into(), false).is_none(),
            "a second offer from the same node while one is open"
        );
        for i in 2..=MAX_PAIRINGS {
            assert!(
                p.add(&format!("n{i}"), String::new(), String::new(), false)
                    .is_some()
            );
        }
        assert!(p.add("nX", String::new(), String::new(), false).is_none());
        // A finished one makes room.
        p.set(1, PairState::Failed("no".into()));
        assert!(p.add("nX", String::new(), String::new(), false).is_some());
    }

    #[test]
    fn garbage_is_not_a_message() {
        for garbage in [&b""[..], b"\xff\xff\xff", b"\x09"] {
            assert!(postcard::from_bytes::<PairMessage>(garbage).is_err());
        }
    }
}

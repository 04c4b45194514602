//! Invites: what a member hands a new node so it can join.
//!
//! An invite is a random secret of [`SECRET_LEN`] bytes (80 bits: not
//! guessable in its lifetime, and the inviter counts only its digest) in
//! two written forms:
//! - the **code**, the secret alone in base32 groups (`K7QD-M2XA-…`), to
//!   type on a node of the same LAN: the joining node finds the inviter
//!   among the nodes it hears over mDNS;
//! - the **full invite**, `GLOW:` and base32 of the inviter's node id, the
//!   secret and the inviter's addresses, to paste or scan anywhere: it is
//!   all the joining node needs to reach the inviter. Upper-case base32
//!   fits a QR code's compact alphanumeric mode.

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Bytes of an invite's secret.
pub const SECRET_LEN: usize = 10;
/// The full invite's prefix.
pub const PREFIX: &str = "GLOW:";
/// Addresses a full invite carries at most (the invite stays short).
pub const MAX_ADDRS: usize = 8;

/// An invite as the joining node reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The secret.
    pub secret: [u8; SECRET_LEN],
    /// The inviter's node id, when the invite was written in full.
    pub inviter: Option<[u8; 32]>,
    /// Where the inviter listens (full invites only).
    pub addrs: Vec<SocketAddr>,
    /// The relay the inviter can be reached through, if it has one.
    pub relay: Option<String>,
}

/// Why a text is not an invite.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a Glow invite: {0} (paste the code or the GLOW:… line `glow node invite` printed)")]
pub struct BadInvite(&'static str);

impl Invite {
    /// The short code: the secret in base32, in groups of four.
    pub fn code(&self) -> String {
        code_of(&self.secret)
    }

    /// The full invite: `GLOW:` and base32 of the inviter, secret and addresses.
    pub fn full(&self) -> String {
        let mut me = self.clone();
        me.addrs.truncate(MAX_ADDRS);
        let bytes = postcard::to_allocvec(&me).expect("an invite always encodes");
        format!("{PREFIX}{}", BASE32_NOPAD.encode(&bytes))
    }

    /// Reads either written form (case, spaces and dashes do not matter).
    pub fn parse(text: &str) -> Result<Invite, BadInvite> {
        let text: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        if let Some(rest) = text.strip_prefix(PREFIX) {
            let bytes = BASE32_NOPAD
                .decode(rest.as_bytes())
                .map_err(|_| BadInvite("damaged (not base32)"))?;
            let (invite, left): (Invite, _) = postcard::take_from_bytes(&bytes)
                .map_err(|_| BadInvite("damaged (does not decode)"))?;
            if !left.is_empty() || invite.inviter.is_none() {
                return Err(BadInvite("damaged (wrong length)"));
            }
            if invite.addrs.len() > MAX_ADDRS {
                return Err(BadInvite("too many addresses"));
            }
            if invite.relay.as_ref().is_some_and(|r| r.len() > 256) {
                return Err(BadInvite("damaged (relay address)"));
            }
            return Ok(invite);
        }
        let bytes = BASE32_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| BadInvite("a code is 16 letters and digits"))?;
        let secret: [u8; SECRET_LEN] = bytes
            .try_into()
            .map_err(|_| BadInvite("a code is 16 letters and digits"))?;
        Ok(Invite {
            secret,
            inviter: None,
            addrs: Vec::new(),
            relay: None,
        })
    }
}

/// What the inviter keeps of an invite: the BLAKE3 digest of its secret.
pub fn digest(secret: &[u8; SECRET_LEN]) -> [u8; 32] {
    *blake3::hash(secret).as_bytes()
}

/// What a joining node sends instead of the secret: a MAC of both node
/// ids keyed by the invite's digest. A node that is not the inviter (any
/// node on the LAN hears a code's join attempt) learns nothing it could
/// present elsewhere: the proof names the node it was sent to.
pub fn join_proof(digest: &[u8; 32], inviter: &str, joiner: &str) -> [u8; 32] {
    mac(digest, "glow-join", inviter, joiner)
}

/// What the inviter answers with: proof that it holds the invite, so a
/// node that only pretends to be the inviter cannot welcome anyone.
pub fn welcome_proof(digest: &[u8; 32], inviter: &str, joiner: &str) -> [u8; 32] {
    mac(digest, "glow-welcome", inviter, joiner)
}

fn mac(digest: &[u8; 32], label: &str, inviter: &str, joiner: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(digest);
    h.update(label.as_bytes());
    h.update(&[0]);
    h.update(inviter.as_bytes());
    h.update(&[0]);
    h.update(joiner.as_bytes());
    *h.finalize().as_bytes()
}

/// Constant-time comparison of two proofs.
pub fn same_proof(a: &[u8; 32], b: &[u8; 32]) -> bool {
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

/// The short code of `secret`.
pub fn code_of(secret: &[u8; SECRET_LEN]) -> String {
    let text = BASE32_NOPAD.encode(secret);
    text.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Invite {
        Invite {
            secret: [7; SECRET_LEN],
            inviter: Some([9; 32]),
            addrs: vec![
                "192.168.1.20:7410".parse().unwrap(),
                "[fe80::1]:7410".parse().unwrap(),
            ],
            relay: Some("http://203.0.113.7:8080/".into()),
        }
    }

    #[test]
    fn both_forms_read_back() {
        let i = invite();
        let full = i.full();
        assert!(full.starts_with(PREFIX), "{full}");
        assert!(
            full.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ':'),
            "QR alphanumeric: {full}"
        );
        assert_eq!(Invite::parse(&full).unwrap(), i);
        assert_eq!(Invite::parse(&full.to_lowercase()).unwrap(), i);
        let code = i.code();
        assert_eq!(code.len(), 19, "{code}");
        let short = Invite::parse(&code).unwrap();
        assert_eq!(short.secret, i.secret);
        assert_eq!(short.inviter, None);
        assert_eq!(
            Invite::parse(&code.replace('-', " ").to_lowercase()).unwrap(),
            short
        );
    }

    #[test]
    fn proofs_name_both_nodes_and_both_directions() {
        let d = digest(&[7; SECRET_LEN]);
        let p = join_proof(&d, "inviter", "joiner");
        assert!(same_proof(&p, &join_proof(&d, "inviter", "joiner")));
        assert!(!same_proof(&p, &join_proof(&d, "eavesdropper", "joiner")));
        assert!(!same_proof(&p, &join_proof(&d, "inviter", "other")));
        assert!(!same_proof(&p, &welcome_proof(&d, "inviter", "joiner")));
        assert!(!same_proof(
            &p,
            &join_proof(&digest(&[8; SECRET_LEN]), "inviter", "joiner")
        ));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        for text in [
            "",
            "hello",
            "GLOW:",
            "GLOW:AAAA",
            "GLOW:!!!!",
            "AAAA-AAAA-AAAA",
            "AAAA-AAAA-AAAA-AAAA-AAAA",
        ] {
            let e = Invite::parse(text).unwrap_err();
            assert!(e.to_string().contains("not a Glow invite"), "{text}: {e}");
        }
        // A full invite with bytes after it, or cut short, is damaged.
        let full = invite().full();
        assert!(Invite::parse(&full[..full.len() - 8]).is_err());
        assert!(Invite::parse(&format!("{full}AAAAAAAA")).is_err());
    }
}

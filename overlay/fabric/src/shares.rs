//! Share links: capabilities for a file or folder that anyone holding the
//! URL can use, within the link's permission, expiry, password and download
//! limit. The token is 128 random bits; a link's password is argon2-hashed.
//!
//! The catalog keeps only a BLAKE3 digest of each token (a copy of the
//! catalog opens no link), plus the token sealed with ChaCha20-Poly1305
//! under a key in the data dir (`share-links.key`), so that the owner can be
//! shown the URL again.
//!
//! Unlocking a password-protected link yields a *proof*: a keyed BLAKE3 of
//! the token's digest and the password hash under a secret kept in the
//! catalog, so any node or process sharing the catalog can check it, and
//! changing the password invalidates it.
//!
//! Downloads are counted by bytes served: a response counts the fraction of
//! the file it carries (rounded up, in thousandths), so ranges add up to
//! whole downloads and no `Range` header dodges the limit.

use crate::access::{Principal, SharePermission, ShareScope, authorize_namespace};
use crate::auth;
use crate::catalog::{ShareRow, hex, new_id, random_bytes};
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric, blocking};
use crate::path::RelPath;
use crate::resource::{EntryKind, now_ms};
use std::net::IpAddr;

/// What a new share link allows and how long it lives.
#[derive(Clone, Debug)]
pub struct ShareOptions {
    /// Read, upload-only or read-write.
    pub permission: SharePermission,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
    /// A password the visitor must give.
    pub password: Option<String>,
    /// How many downloads it allows.
    pub max_downloads: Option<i64>,
}

/// A share link as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// Id.
    pub id: String,
    /// The secret in the URL: `/s/<token>/` (`None` when this node cannot
    /// unseal it: the link was made with another data dir).
    pub token: Option<String>,
    /// Owner's name.
    pub owner: String,
    /// Folder name.
    pub folder: String,
    /// Folder id.
    pub folder_id: String,
    /// Shared path inside the folder.
    pub path: RelPath,
    /// File or directory.
    pub kind: EntryKind,
    /// What it allows.
    pub permission: SharePermission,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
    /// Whether visitors must give a password.
    pub has_password: bool,
    /// Download limit.
    pub max_downloads: Option<i64>,
    /// Whole downloads so far (bytes served over the file's size).
    pub downloads: i64,
    /// Downloads so far in thousandths (what the limit is checked against).
    pub served_millis: i64,
    /// Opens so far.
    pub uses: i64,
    /// Revoked by its owner.
    pub revoked: bool,
    /// Created, ms since the epoch.
    pub created_at: i64,
}

impl Share {
    /// Why the link no longer works, if it does not.
    pub fn dead_reason(&self, now: i64) -> Option<&'static str> {
        if self.revoked {
            Some("this link was revoked by its owner")
        } else if self.expires_at.is_some_and(|t| t <= now) {
            Some("this link has expired")
        } else if self.permission != SharePermission::Upload
            && self
                .max_downloads
                .is_some_and(|m| self.served_millis >= m.saturating_mul(1000))
        {
            Some("this link has reached its download limit")
        } else {
            None
        }
    }

    /// The address of the shared file or directory.
    pub fn address(&self) -> Address {
        Address::new(self.owner.clone(), self.folder.clone(), self.path.clone())
    }

    /// The principal that acts through this link.
    pub fn principal(&self) -> Principal {
        Principal::Share(ShareScope {
            id: self.id.clone(),
            folder_id: self.folder_id.clone(),
            root: self.path.clone(),
            permission: self.permission,
        })
    }
}

impl Fabric {
    /// Creates a share link for a file or directory `who` may write.
    pub async fn create_share(
        &self,
        who: &Principal,
        addr: &Address,
        opts: ShareOptions,
    ) -> Result<Share> {
        if matches!(who, Principal::Share(_)) {
            return Err(FabricError::Forbidden);
        }
        let folder = self.folder_for(who, addr, crate::Op::Write).await?;
        let entry = self.stat(who, addr).await?;
        if entry.kind == EntryKind::File && opts.permission != SharePermission::Read {
            return Err(FabricError::Invalid(
                "upload and read-write links need a directory".into(),
            ));
        }
        if opts.max_downloads.is_some_and(|m| m < 1) {
            return Err(FabricError::Invalid(
                "a download limit must be at least 1".into(),
            ));
        }
        let password_hash = match opts.password {
            Some(p) if p.is_empty() => {
                return Err(FabricError::Invalid("an empty link password".into()));
            }
            Some(p) => Some(auth::with_argon2(move || auth::hash_password(&p)).await?),
            None => None,
        };
        // 128 random bits, URL-safe.
        let token = base32(&random_bytes::<16>());
        let row = ShareRow {
            id: new_id(),
            token_digest: token_digest(&token),
            token_sealed: Some(seal(&self.inner.link_key, &token)),
            owner_id: folder.owner_id.clone(),
            folder_id: folder.id.clone(),
            path: addr.path.as_str().to_owned(),
            kind: entry.kind.as_str().to_owned(),
            permission: opts.permission.as_str().to_owned(),
            expires_at: opts.expires_at,
            password_hash,
            max_downloads: opts.max_downloads,
            served_millis: 0,
            uses: 0,
            revoked: false,
            created_at: now_ms(),
        };
        self.inner.catalog.insert_share(&row).await?;
        self.publish_share(&row.id, &crate::records::actor_of(who))
            .await?;
        self.share_from_row(row, Some(token)).await
    }

    /// A user's share links, newest first (every user's for the CLI with `None`).
    pub async fn shares(&self, who: &Principal, owner: Option<&str>) -> Result<Vec<Share>> {
        let owner_id = match owner {
            Some(name) => Some(self.namespace(who, name).await?.id),
            None if *who == Principal::System => None,
            None => return Err(FabricError::Forbidden),
        };
        let mut out = Vec::new();
        for row in self.inner.catalog.shares(owner_id.as_deref()).await? {
            let token = row
                .token_sealed
                .as_deref()
                .and_then(|t| unseal(&self.inner.link_key, t));
            out.push(self.share_from_row(row, token).await?);
        }
        Ok(out)
    }

    /// Revokes a link by id or token; only its owner (or the CLI) may.
    pub async fn revoke_share(&self, who: &Principal, id_or_token: &str) -> Result<()> {
        let row = self
            .inner
            .catalog
            .share_by_id_or_digest(id_or_token, &token_digest(id_or_token))
            .await?
            .ok_or(FabricError::NotFound)?;
        authorize_namespace(who, &row.owner_id)?;
        self.inner.catalog.revoke_share(&row.id).await?;
        self.publish_share(&row.id, &crate::records::actor_of(who))
            .await
    }

    /// Looks a link up by token for a visitor: unknown tokens are
    /// [`FabricError::NotFound`], dead links [`FabricError::Gone`]. Counts a use.
    pub async fn open_share(&self, token: &str) -> Result<Share> {
        if token.len() > 64 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FabricError::NotFound);
        }
        let row = self
            .inner
            .catalog
            .share_by_digest(&token_digest(token))
            .await?
            .ok_or(FabricError::NotFound)?;
        let share = self.share_from_row(row, Some(token.to_owned())).await?;
        if let Some(why) = share.dead_reason(now_ms()) {
            return Err(FabricError::Gone(why));
        }
        self.inner.catalog.count_share_use(&share.id).await?;
        Ok(share)
    }

    /// Checks a link's password; returns the proof to keep in a cookie.
    /// Wrong passwords are rate-limited per link and per address.
    pub async fn unlock_share(
        &self,
        share: &Share,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<String> {
        let key = format!("share:{}", share.id);
        // As for sign-ins: a few argon2 runs at a time, the limiter asked
        // once a slot is ours.
        let _slot = auth::argon2_slot().await?;
        self.limiter_ref().check(&key, addr)?;
        let row = self.share_row(share).await?;
        let Some(hash) = row.password_hash.clone() else {
            return Ok(String::new());
        };
        let pw = password.to_owned();
        let h = hash.clone();
        if blocking(move || Ok(auth::verify_password(&pw, &h))).await? {
            Ok(self.share_proof(&row.token_digest, &hash).await?)
        } else {
            self.limiter_ref().fail(&key, addr);
            Err(FabricError::BadCredentials)
        }
    }

    /// True if `proof` unlocks the link (or the link has no password).
    pub async fn share_unlocked(&self, share: &Share, proof: Option<&str>) -> Result<bool> {
        let row = self.share_row(share).await?;
        match (row.password_hash, proof) {
            (None, _) => Ok(true),
            (Some(_), None) => Ok(false),
            (Some(hash), Some(p)) => Ok(constant_time_eq(
                p,
                &self.share_proof(&row.token_digest, &hash).await?,
            )),
        }
    }

    async fn share_row(&self, share: &Share) -> Result<ShareRow> {
        self.inner
            .catalog
            .share_by_id_or_digest(&share.id, "")
            .await?
            .ok_or(FabricError::NotFound)
    }

    /// Counts what a response through a link serves: `served` bytes of a
    /// file of `size` bytes (a whole download when `size` is 0), as
    /// thousandths of a download, rounded up so that no range is free.
    /// [`FabricError::Gone`] once the limit is reached.
    pub async fn count_share_download(&self, share: &Share, served: u64, size: u64) -> Result<()> {
        let millis = if size == 0 {
            1000
        } else {
            (u128::from(served.min(size)) * 1000).div_ceil(u128::from(size)) as i64
        };
        if self
            .inner
            .catalog
            .take_share_download(&share.id, millis.max(1))
            .await?
        {
            Ok(())
        } else {
            Err(FabricError::Gone(
                "this link has reached its download limit",
            ))
        }
    }

    async fn share_proof(&self, digest: &str, password_hash: &str) -> Result<String> {
        let secret = self
            .inner
            .catalog
            .meta_init("share_secret", &hex(&random_bytes::<32>()))
            .await?;
        let key: [u8; 32] = *blake3::hash(secret.as_bytes()).as_bytes();
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(digest.as_bytes());
        h.update(&[0]);
        h.update(password_hash.as_bytes());
        Ok(h.finalize().to_hex().to_string())
    }

    async fn share_from_row(&self, row: ShareRow, token: Option<String>) -> Result<Share> {
        // From the in-memory index: this runs on every visit to a link.
        let folder = self.folder_by_id(&row.folder_id).await?;
        Ok(Share {
            id: row.id,
            token,
            owner: folder.owner.clone(),
            folder: folder.name.clone(),
            folder_id: folder.id.clone(),
            path: RelPath::parse(&row.path)?,
            kind: EntryKind::parse(&row.kind),
            permission: SharePermission::parse(&row.permission).unwrap_or(SharePermission::Read),
            expires_at: row.expires_at,
            has_password: row.password_hash.is_some(),
            max_downloads: row.max_downloads,
            downloads: row.served_millis / 1000,
            served_millis: row.served_millis,
            uses: row.uses,
            revoked: row.revoked,
            created_at: row.created_at,
        })
    }

    /// Replaces the clear tokens of links made before tokens were kept as
    /// digests (run at start-up).
    pub(crate) async fn seal_plain_share_tokens(&self) -> Result<()> {
        let plain = self.inner.catalog.plain_share_tokens().await?;
        for (id, token) in &plain {
            let sealed = seal(&self.inner.link_key, token);
            self.inner
                .catalog
                .set_share_digest(id, &token_digest(token), &sealed)
                .await?;
        }
        if !plain.is_empty() {
            self.inner.catalog.flush_replaced_secrets().await?;
        }
        Ok(())
    }
}

/// The digest under which a token is kept (64 hex digits).
fn token_digest(token: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"glow share token v1\0");
    h.update(token.as_bytes());
    h.finalize().to_hex().to_string()
}

/// Reads the key that seals link tokens from the data dir, making it on
/// first use (readable by the owner only).
pub(crate) fn load_link_key(data_dir: &std::path::Path) -> Result<[u8; 32]> {
    crate::store::local::load_or_make_secret(
        &data_dir.join("share-links.key"),
        "existing links then no longer show their URL",
    )
}

/// Seals a token: hex of nonce, ciphertext and tag (ChaCha20-Poly1305,
/// ring's AEAD).
fn seal(key: &[u8; 32], token: &str) -> String {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"));
    let nonce = random_bytes::<12>();
    let mut data = token.as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
        .expect("sealing a short token");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    hex(&out)
}

/// Opens a sealed token; `None` if it was sealed under another key.
fn unseal(key: &[u8; 32], sealed: &str) -> Option<String> {
    use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
    let bytes = from_hex(sealed)?;
    if bytes.len() < 12 + 16 {
        return None;
    }
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?);
    let (nonce, rest) = bytes.split_at(12);
    let mut data = rest.to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).ok()?,
            Aad::empty(),
            &mut data,
        )
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Lower-case RFC 4648 base32 without padding: URL-safe and easy to read out.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_128_bits() {
        let t = base32(&random_bytes::<16>());
        assert_eq!(t.len(), 26);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn sealed_tokens_open_only_under_their_key() {
        let key = random_bytes::<32>();
        let sealed = seal(&key, "abcdef234567");
        assert_eq!(unseal(&key, &sealed).as_deref(), Some("abcdef234567"));
        assert_ne!(
            seal(&key, "abcdef234567"),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(unseal(&random_bytes::<32>(), &sealed), None);
        assert_eq!(unseal(&key, "zz"), None);
        assert_eq!(unseal(&key, &sealed[..30]), None);
        assert_eq!(token_digest("a").len(), 64);
    }

    #[test]
    fn dead_links_say_why() {
        let mut s = Share {
            id: "i".into(),
            token: Some("t".into()),
            owner: "o".into(),
            folder: "f".into(),
            folder_id: "fi".into(),
            path: RelPath::root(),
            kind: EntryKind::Dir,
            permission: SharePermission::Read,
            expires_at: None,
            has_password: false,
            max_downloads: Some(2),
            downloads: 1,
            served_millis: 1000,
            uses: 0,
            revoked: false,
            created_at: 0,
        };
        assert_eq!(s.dead_reason(10), None);
        s.served_millis = 1999;
        assert_eq!(s.dead_reason(10), None);
        s.served_millis = 2000;
        assert!(s.dead_reason(10).unwrap().contains("download limit"));
        s.served_millis = 0;
        s.expires_at = Some(10);
        assert!(s.dead_reason(10).unwrap().contains("expired"));
        s.revoked = true;
        assert!(s.dead_reason(0).unwrap().contains("revoked"));
    }
}

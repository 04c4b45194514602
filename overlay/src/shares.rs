//! Share links: capabilities for a file or folder that anyone holding the
//! URL can use, within the link's permission, expiry, password and download
//! limit. The token is 128 random bits; a link's password is argon2-hashed.
//!
//! Unlocking a password-protected link yields a *proof*: a keyed BLAKE3 of
//! the token and the password hash under a secret kept in the catalog, so any
//! node or process sharing the catalog can check it, and changing the
//! password invalidates it.

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
    /// The secret in the URL: `/s/<token>/`.
    pub token: String,
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
    /// Downloads so far.
    pub downloads: i64,
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
            && self.max_downloads.is_some_and(|m| self.downloads >= m)
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
            Some(p) => Some(blocking(move || auth::hash_password(&p)).await?),
            None => None,
        };
        let row = ShareRow {
            id: new_id(),
            // 128 random bits, URL-safe.
            token: base32(&random_bytes::<16>()),
            owner_id: folder.owner_id.clone(),
            folder_id: folder.id.clone(),
            path: addr.path.as_str().to_owned(),
            kind: entry.kind.as_str().to_owned(),
            permission: opts.permission.as_str().to_owned(),
            expires_at: opts.expires_at,
            password_hash,
            max_downloads: opts.max_downloads,
            downloads: 0,
            uses: 0,
            revoked: false,
            created_at: now_ms(),
        };
        self.inner.catalog.insert_share(&row).await?;
        self.share_from_row(row).await
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
            out.push(self.share_from_row(row).await?);
        }
        Ok(out)
    }

    /// Revokes a link by id or token; only its owner (or the CLI) may.
    pub async fn revoke_share(&self, who: &Principal, id_or_token: &str) -> Result<()> {
        let row = self
            .inner
            .catalog
            .share_by_id_or_token(id_or_token)
            .await?
            .ok_or(FabricError::NotFound)?;
        authorize_namespace(who, &row.owner_id)?;
        self.inner.catalog.revoke_share(&row.id).await?;
        Ok(())
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
            .share_by_token(token)
            .await?
            .ok_or(FabricError::NotFound)?;
        let share = self.share_from_row(row).await?;
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
        self.limiter_ref().check(&key, addr)?;
        let row = self
            .inner
            .catalog
            .share_by_token(&share.token)
            .await?
            .ok_or(FabricError::NotFound)?;
        let Some(hash) = row.password_hash.clone() else {
            return Ok(String::new());
        };
        let pw = password.to_owned();
        let h = hash.clone();
        if blocking(move || Ok(auth::verify_password(&pw, &h))).await? {
            Ok(self.share_proof(&share.token, &hash).await?)
        } else {
            self.limiter_ref().fail(&key, addr);
            Err(FabricError::BadCredentials)
        }
    }

    /// True if `proof` unlocks the link (or the link has no password).
    pub async fn share_unlocked(&self, share: &Share, proof: Option<&str>) -> Result<bool> {
        let row = self
            .inner
            .catalog
            .share_by_token(&share.token)
            .await?
            .ok_or(FabricError::NotFound)?;
        match (row.password_hash, proof) {
            (None, _) => Ok(true),
            (Some(_), None) => Ok(false),
            (Some(hash), Some(p)) => Ok(constant_time_eq(
                p,
                &self.share_proof(&share.token, &hash).await?,
            )),
        }
    }

    /// Counts one download through a link; [`FabricError::Gone`] once the
    /// limit is reached.
    pub async fn count_share_download(&self, share: &Share) -> Result<()> {
        if self.inner.catalog.take_share_download(&share.id).await? {
            Ok(())
        } else {
            Err(FabricError::Gone(
                "this link has reached its download limit",
            ))
        }
    }

    async fn share_proof(&self, token: &str, password_hash: &str) -> Result<String> {
        let secret = self
            .inner
            .catalog
            .meta_init("share_secret", &hex(&random_bytes::<32>()))
            .await?;
        let key: [u8; 32] = *blake3::hash(secret.as_bytes()).as_bytes();
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(token.as_bytes());
        h.update(&[0]);
        h.update(password_hash.as_bytes());
        Ok(h.finalize().to_hex().to_string())
    }

    async fn share_from_row(&self, row: ShareRow) -> Result<Share> {
        // From the in-memory index: this runs on every visit to a link.
        let folder = self.folder_by_id(&row.folder_id).await?;
        Ok(Share {
            id: row.id,
            token: row.token,
            owner: folder.owner.clone(),
            folder: folder.name.clone(),
            folder_id: folder.id.clone(),
            path: RelPath::parse(&row.path)?,
            kind: EntryKind::parse(&row.kind),
            permission: SharePermission::parse(&row.permission).unwrap_or(SharePermission::Read),
            expires_at: row.expires_at,
            has_password: row.password_hash.is_some(),
            max_downloads: row.max_downloads,
            downloads: row.downloads,
            uses: row.uses,
            revoked: row.revoked,
            created_at: row.created_at,
        })
    }
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
    fn dead_links_say_why() {
        let mut s = Share {
            id: "i".into(),
            token: "t".into(),
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
            uses: 0,
            revoked: false,
            created_at: 0,
        };
        assert_eq!(s.dead_reason(10), None);
        s.downloads = 2;
        assert!(s.dead_reason(10).unwrap().contains("download limit"));
        s.downloads = 0;
        s.expires_at = Some(10);
        assert!(s.dead_reason(10).unwrap().contains("expired"));
        s.revoked = true;
        assert!(s.dead_reason(0).unwrap().contains("revoked"));
    }
}

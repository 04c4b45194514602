//! Tickets: short-lived capabilities to read one file, for devices that
//! cannot sign in — a TV told to play a film fetches it with a ticket.
//!
//! A ticket is `<expiry>-<mac>`: the expiry in Unix seconds (hex) and a keyed
//! BLAKE3 (128 bits, hex) of the expiry, the folder's id and the file's
//! address, under a secret kept in the catalog. Nothing is stored per
//! ticket, so any process on the same catalog (the `glow cast` CLI beside a
//! running server) can issue one, and the server checks it with no lookup.
//! A ticket cannot be revoked before it expires; keep them short.

use crate::access::{Op, Principal, SharePermission, ShareScope};
use crate::catalog::hex;
use crate::error::{FabricError, Result};
use crate::fabric::{Address, Fabric};
use crate::resource::EntryKind;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Fabric {
    /// Issues a ticket to read the file at `addr` for `ttl`; `who` must be
    /// able to read it now.
    pub async fn issue_ticket(
        &self,
        who: &Principal,
        addr: &Address,
        ttl: Duration,
    ) -> Result<String> {
        let folder = self.folder_for(who, addr, Op::Content).await?;
        if self.stat(who, addr).await?.kind != EntryKind::File {
            return Err(FabricError::WrongKind("only files can be played"));
        }
        let expiry = unix_now().saturating_add(ttl.as_secs().max(1));
        let mac = self.ticket_mac(expiry, &folder.id, addr).await?;
        Ok(format!("{expiry:x}-{mac}"))
    }

    /// Checks a ticket for `addr`; the principal it yields may read that
    /// file and nothing else.
    pub async fn open_ticket(&self, ticket: &str, addr: &Address) -> Result<Principal> {
        let bad = || FabricError::NotFound;
        let (expiry, mac) = ticket.split_once('-').ok_or_else(bad)?;
        let expiry = u64::from_str_radix(expiry, 16).map_err(|_| bad())?;
        // From the index only: anyone on the LAN may ask, and a miss must
        // not cost a catalog read.
        let folder = self
            .find_folder(&addr.user, &addr.folder)
            .ok_or(FabricError::NotFound)?;
        let want = self.ticket_mac(expiry, &folder.id, addr).await?;
        if !crate::shares::constant_time_eq(mac, &want) {
            return Err(bad());
        }
        if expiry <= unix_now() {
            return Err(FabricError::Gone("this playback link has expired"));
        }
        Ok(Principal::Share(ShareScope {
            id: "ticket".into(),
            folder_id: folder.id.clone(),
            root: addr.path.clone(),
            permission: SharePermission::Read,
        }))
    }

    async fn ticket_mac(&self, expiry: u64, folder_id: &str, addr: &Address) -> Result<String> {
        // From the data dir's secret, not the catalog: a copy of the
        // catalog must not let anyone mint tickets.
        let key = blake3::derive_key("glow playback tickets v1", &self.inner.link_key);
        let mut h = blake3::Hasher::new_keyed(&key);
        h.update(&expiry.to_le_bytes());
        h.update(folder_id.as_bytes());
        h.update(&[0]);
        h.update(addr.to_string().as_bytes());
        Ok(hex(&h.finalize().as_bytes()[..16]))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! The node's SSH host key: ed25519, generated on first start and kept in
//! the data dir (`ssh_host_ed25519_key`, mode 0600, OpenSSH format), so
//! that clients see the same fingerprint across restarts.

use russh::keys::{Algorithm, HashAlg, PrivateKey, ssh_key::LineEnding};
use std::path::Path;

/// File name of the host key inside the data dir.
pub const FILE_NAME: &str = "ssh_host_ed25519_key";

/// The host key and its fingerprint.
#[derive(Clone)]
pub struct HostKey {
    key: PrivateKey,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl HostKey {
    /// Loads the key from `data_dir`, or makes and saves one.
    pub fn load_or_create(data_dir: &Path) -> Result<HostKey, String> {
        let path = data_dir.join(FILE_NAME);
        if path.exists() {
            let key = PrivateKey::read_openssh_file(&path).map_err(|e| {
                format!(
                    "cannot read the SSH host key {}: {e} (move it away to make a new one)",
                    path.display()
                )
            })?;
            return Ok(HostKey { key });
        }
        let mut key = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519)
            .map_err(|e| format!("cannot make an SSH host key: {e}"))?;
        key.set_comment("glow host key");
        // Written beside, then renamed: a crash never leaves half a key.
        let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        key.write_openssh_file(&tmp, LineEnding::LF)
            .and_then(|_| std::fs::rename(&tmp, &path).map_err(Into::into))
            .map_err(|e| format!("cannot save the SSH host key {}: {e}", path.display()))?;
        Ok(HostKey { key })
    }

    /// `SHA256:…`, as `ssh-keygen -l` and OpenSSH's first-connection prompt
    /// print it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The public half as an OpenSSH line (for `known_hosts`).
    pub fn public_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|_| String::new())
    }

    pub(crate) fn private(&self) -> &PrivateKey {
        &self.key
    }
}

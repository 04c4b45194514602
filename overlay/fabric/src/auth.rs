//! Credentials: password hashing (argon2), app passwords, SSH public keys,
//! sign-in rate limiting and a short-lived cache of verified credentials.
//!
//! The cache matters for speed: HTTP Basic sends the password with every
//! request and argon2 is slow on purpose. Entries are keyed by a keyed BLAKE3
//! of name and password (the key is random per process), so the cache holds no
//! password, and live for [`CACHE_TTL`].

use crate::access::Principal;
use crate::error::{FabricError, Result};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins in a row for one user name from one address before that
/// pair is locked for a while.
pub const MAX_USER_FAILURES: u32 = 5;
/// Failed sign-ins in a row from one address (an IPv6 /64) before it is
/// locked for a while.
pub const MAX_ADDR_FAILURES: u32 = 20;
/// Failures older than this are forgotten.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
const BASE_LOCKOUT: Duration = Duration::from_secs(60);
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// How long verified credentials are trusted without running argon2 again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// Hashes a password into an argon2id PHC string. Blocking (tens of ms).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = crate::catalog::random_bytes::<16>();
    let salt = SaltString::encode_b64(&salt).map_err(|e| FabricError::Invalid(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| FabricError::Invalid(format!("cannot hash password: {e}")))
}

/// Checks a password against a PHC string. Blocking.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random secret of `n` characters from an alphabet without look-alikes.
pub fn random_secret(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = vec![0u8; n];
    for chunk in bytes.chunks_mut(32) {
        let r = crate::catalog::random_bytes::<32>();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    // 256 % 57 bias is below 1 bit over the whole secret; fine for passwords.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// An SSH public key line parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `algorithm base64` without the comment.
    pub public_key: String,
    /// `SHA256:...` as OpenSSH prints it.
    pub fingerprint: String,
    /// The comment, if any.
    pub comment: String,
}

/// Parses one OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn parse_ssh_key(line: &str) -> Result<ParsedKey> {
    let key = ssh_key::PublicKey::from_openssh(line.trim())
        .map_err(|e| FabricError::Invalid(format!("not an OpenSSH public key: {e}")))?;
    let comment = key.comment().to_owned();
    let algorithm = key.algorithm().as_str().to_owned();
    let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let mut bare = key.clone();
    bare.set_comment("");
    let public_key = bare
        .to_openssh()
        .map_err(|e| FabricError::Invalid(format!("cannot encode key: {e}")))?
        .trim()
        .to_owned();
    Ok(ParsedKey {
        algorithm,
        public_key,
        fingerprint,
        comment,
    })
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
enum LimitKey {
    /// One name tried from one address (or network, for IPv6).
    Pair(String, IpAddr),
    /// Anything tried from one address (or network).
    Addr(IpAddr),
    /// One name tried from anywhere.
    User(String),
}

impl LimitKey {
    fn max(&self) -> u32 {
        match self {
            LimitKey::Pair(..) => MAX_USER_FAILURES,
            LimitKey::Addr(_) => MAX_ADDR_FAILURES,
            LimitKey::User(_) => MAX_NAME_FAILURES,
        }
    }
}

/// Where failures are counted for a client address: IPv4 addresses alone,
/// IPv6 ones by their /64 (a single host commonly holds a whole /64, so
/// counting per address would let it try forever).
fn bucket(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[derive(Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failed sign-ins for one name from anywhere before the name is locked
/// for everyone: high enough that one address's guesses (locked at
/// [`MAX_USER_FAILURES`]) never shut the owner out from elsewhere, low
/// enough to stop guessing spread over many addresses.
pub const MAX_NAME_FAILURES: u32 = 100;
/// How many keys the limiter remembers at most; beyond that, keys that are
/// not locked are forgotten first, so fresh names or addresses cannot grow
/// it without bound.
const MAX_KEYS: usize = 100_000;

/// Counts failed sign-ins and locks out what fails too often: a name from
/// one address after [`MAX_USER_FAILURES`], an address after
/// [`MAX_ADDR_FAILURES`], a name from everywhere after
/// [`MAX_NAME_FAILURES`]. Its memory is bounded ([`MAX_KEYS`]).
#[derive(Debug, Default)]
pub struct RateLimiter {
    failures: Mutex<HashMap<LimitKey, Failures>>,
}

impl RateLimiter {
    /// Refuses with [`FabricError::RateLimited`] while `user` or `addr` is locked.
    pub fn check(&self, user: &str, addr: Option<IpAddr>) -> Result<()> {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys(user, addr) {
            if let Some(until) = map.get(&key).and_then(|f| f.locked_until)
                && until > now
            {
                return Err(FabricError::RateLimited((until - now).as_secs().max(1)));
            }
        }
        Ok(())
    }

    /// Counts one failure for `user` and for `addr`.
    pub fn fail(&self, user: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, f| {
                now.duration_since(f.last) < FAILURE_WINDOW
                    && f.locked_until.is_some_and(|t| t > now)
            });
        }
        if map.len() >= MAX_KEYS {
            // Every key is locked: forget them all rather than grow.
            map.clear();
        }
        for key in keys(user, addr) {
            let max = key.max();
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            if now.duration_since(f.last) > FAILURE_WINDOW {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= max {
                let doublings = (f.count - max).min(10);
                let lock = (BASE_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT);
                f.locked_until = Some(now + lock);
            }
        }
    }

    /// Forgets the failures of `user` from `addr` after a successful sign-in.
    pub fn succeed(&self, user: &str, addr: Option<IpAddr>) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = addr {
            map.remove(&LimitKey::Pair(user.to_owned(), bucket(a)));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

fn keys(user: &str, addr: Option<IpAddr>) -> Vec<LimitKey> {
    match addr.map(bucket) {
        Some(a) => vec![
            LimitKey::Pair(user.to_owned(), a),
            LimitKey::Addr(a),
            LimitKey::User(user.to_owned()),
        ],
        // The local CLI (no address): the name alone.
        None => vec![
            LimitKey::Pair(user.to_owned(), IpAddr::from([0, 0, 0, 0])),
            LimitKey::User(user.to_owned()),
        ],
    }
}

/// How many argon2 hashes run at once in this process. Each takes ~19 MiB
/// and a core for tens of milliseconds: unbounded, 200 parallel wrong
/// passwords took 2.4 GiB. Callers queue for a slot instead.
static ARGON2_SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores.clamp(1, 4))
});

/// Waits for a slot to run argon2 in; hold it while hashing.
pub(crate) async fn argon2_slot() -> Result<tokio::sync::SemaphorePermit<'static>> {
    ARGON2_SLOTS
        .acquire()
        .await
        .map_err(|_| FabricError::Io(std::io::Error::other("argon2 slots closed")))
}

/// Runs argon2 work (`f`) on the blocking pool once a slot is free.
pub(crate) async fn with_argon2<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _slot = argon2_slot().await?;
    crate::fabric::blocking(f).await
}

/// Verified credentials, remembered for [`CACHE_TTL`].
#[derive(Debug)]
pub struct CredentialCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache {
            key: crate::catalog::random_bytes(),
            entries: Mutex::default(),
        }
    }
}

impl CredentialCache {
    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(user.as_bytes());
        h.update(&[0]);
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The principal for these credentials if they were verified recently.
    pub fn get(&self, user: &str, password: &str) -> Option<Principal> {
        let d = self.digest(user, password);
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&d)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    /// Remembers verified credentials.
    pub fn put(&self, user: &str, password: &str, who: Principal) {
        let d = self.digest(user, password);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        map.insert(d, (who, Instant::now()));
    }

    /// Forgets everything (after a password change or a user removal).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn limiter_locks_after_the_limit_and_counts_per_user() {
        let l = RateLimiter::default();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_USER_FAILURES - 1 {
            l.fail("alice", Some(addr));
            assert!(l.check("alice", Some(addr)).is_ok());
        }
        l.fail("alice", Some(addr));
        assert!(matches!(
            l.check("alice", Some(addr)),
            Err(FabricError::RateLimited(_))
        ));
        assert!(l.check("bob", Some(addr)).is_ok());
        // Another address may still sign in as alice.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.check("alice", Some(other)).is_ok());
    }

    #[test]
    fn ipv6_addresses_count_by_their_network() {
        let l = RateLimiter::default();
        for i in 0..MAX_ADDR_FAILURES {
            let a: IpAddr = format!("2001:db8::{:x}", i + 1).parse().unwrap();
            l.fail(&format!("user{i}"), Some(a));
        }
        let next: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(l.check("anyone", Some(next)).is_err());
        let elsewhere: IpAddr = "2001:db8:1::1".parse().unwrap();
        assert!(l.check("anyone", Some(elsewhere)).is_ok());
    }

    #[test]
    fn fresh_keys_do_not_grow_the_limiter_without_bound() {
        let l = RateLimiter::default();
        for i in 0..(MAX_KEYS as u32 + 5_000) {
            let a = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            l.fail(&format!("u{i}"), Some(a));
        }
        assert!(l.len() <= MAX_KEYS + 3, "{}", l.len());
    }

    #[test]
    fn ssh_keys_parse_and_garbage_is_refused() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE7x9ln6uZLLkfXM8iatrnAAuytVHeCznU8VlEgx7TvL me@host";
        let k = parse_ssh_key(line).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "me@host");
        assert!(k.fingerprint.starts_with("SHA256:"));
        assert!(parse_ssh_key("ssh-ed25519 notbase64 x").is_err());
        assert!(parse_ssh_key("").is_err());
    }

    #[test]
    fn secrets_are_random_and_sized() {
        let a = random_secret(20);
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_secret(20));
    }
}

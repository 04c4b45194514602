//! The names sync passes between nodes, as types rather than strings:
//! [`NodeId`] (a node's Ed25519 public key, from [`NodeKey`] in the data
//! dir), [`ContentHash`] (a BLAKE3 digest, validated before it names a blob
//! path) and [`VersionVector`] (per-node counters of an entry's changes,
//! compared and merged the way Syncthing does).

use crate::error::{FabricError, Result};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Writes `bytes` as lowercase hex.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// 32 bytes from exactly 64 lowercase or uppercase hex digits.
fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A node's id: its Ed25519 public key. Written as 64 lowercase hex
/// digits, the text form of an iroh endpoint id, so the id in the banner is
/// the one the overlay dials.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// The id of the public key `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> NodeId {
        NodeId(bytes)
    }

    /// The public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 10 hex digits, for logs and narrow tables.
    pub fn short(&self) -> String {
        self.to_string()[..10].to_owned()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = FabricError;
    fn from_str(s: &str) -> Result<NodeId> {
        parse_hex32(s)
            .map(NodeId)
            .ok_or_else(|| FabricError::Invalid("a node id is 64 hex digits".into()))
    }
}

/// This node's key pair, kept in the data dir (`node.key`, the 32-byte
/// Ed25519 seed, readable by its owner only). The overlay's endpoint is
/// made from the same seed, so the node id in version vectors is the id
/// peers dial. The seed never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct NodeKey {
    seed: [u8; 32],
    id: NodeId,
}

/// File name of the node key in the data dir.
pub const NODE_KEY_FILE: &str = "node.key";

impl NodeKey {
    /// Loads the key from `data_dir`, making one on first use. Blocking.
    pub fn load_or_create(data_dir: &Path) -> Result<NodeKey> {
        let seed = crate::store::local::load_or_make_secret(
            &data_dir.join(NODE_KEY_FILE),
            "the node then has a new id, and the other nodes must be told it anew",
        )?;
        Ok(NodeKey::from_seed(seed))
    }

    /// The key pair of `seed`.
    pub fn from_seed(seed: [u8; 32]) -> NodeKey {
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .expect("any 32 bytes are an Ed25519 seed");
        let public: [u8; 32] = ring::signature::KeyPair::public_key(&pair)
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes");
        NodeKey {
            seed,
            id: NodeId(public),
        }
    }

    /// The node's id (its public key).
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The secret seed, for the overlay's endpoint.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The BLAKE3 digest of a file's content, the name of its blob. Only a
/// value of this type reaches a blob path, so a hash read from the catalog
/// or a peer is validated (64 hex digits) before it names a file.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// The digest as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> ContentHash {
        ContentHash(bytes)
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(h: blake3::Hash) -> ContentHash {
        ContentHash(*h.as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl FromStr for ContentHash {
    type Err = FabricError;
    /// Lowercase hex only: blob file names are lowercase, and one spelling
    /// per hash keeps the store and the catalog comparable as text.
    fn from_str(s: &str) -> Result<ContentHash> {
        let bad = || FabricError::Invalid("a content hash is 64 lowercase hex digits".into());
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(bad());
        }
        parse_hex32(s).map(ContentHash).ok_or_else(bad)
    }
}

/// How two version vectors are ordered (Syncthing's `Ordering`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// The same changes.
    Equal,
    /// `self` is older: the other has seen everything it has, and more.
    Before,
    /// `self` is newer.
    After,
    /// Changed independently on different nodes: a conflict.
    Concurrent,
}

/// Per-node change counters of an entry: each node that changes it bumps
/// its own counter. Written `node:counter,node:counter` (node ids sorted),
/// as the catalog keeps it.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct VersionVector(BTreeMap<String, u64>);

impl VersionVector {
    /// The empty vector (an entry no node has changed).
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// Reads the catalog's text form. Parts that are not `node:counter`
    /// are left out (the catalog never writes them; a damaged row must not
    /// stop a scan).
    pub fn parse(text: &str) -> VersionVector {
        let mut v = BTreeMap::new();
        for part in text.split(',') {
            if let Some((node, n)) = part.split_once(':')
                && !node.is_empty()
                && let Ok(n) = n.parse::<u64>()
            {
                let c: &mut u64 = v.entry(node.to_owned()).or_default();
                *c = (*c).max(n);
            }
        }
        VersionVector(v)
    }

    /// The counter of `node` (0 if it never changed the entry).
    pub fn counter(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Records one more change by `node`.
    pub fn bump(&mut self, node: &NodeId) {
        *self.0.entry(node.to_string()).or_default() += 1;
    }

    /// The pointwise maximum: what a node has seen after taking both.
    pub fn merge(&mut self, other: &VersionVector) {
        for (node, &n) in &other.0 {
            let c = self.0.entry(node.clone()).or_default();
            *c = (*c).max(n);
        }
    }

    /// Every `(node, counter)` pair, by node.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(n, c)| (n.as_str(), *c))
    }

    /// How `self` relates to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let (mut less, mut more) = (false, false);
        for node in self.0.keys().chain(other.0.keys()) {
            let (a, b) = (self.counter(node), other.counter(node));
            less |= a < b;
            more |= a > b;
        }
        match (less, more) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }
}

impl FromIterator<(String, u64)> for VersionVector {
    /// Pairs with an empty node are left out; a node named twice keeps its
    /// highest counter.
    fn from_iter<I: IntoIterator<Item = (String, u64)>>(pairs: I) -> VersionVector {
        let mut v = BTreeMap::new();
        for (node, n) in pairs {
            if !node.is_empty() && !node.contains([',', ':']) {
                let c: &mut u64 = v.entry(node).or_default();
                *c = (*c).max(n);
            }
        }
        VersionVector(v)
    }
}

impl fmt::Display for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (node, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{node}:{n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    #[test]
    fn node_ids_read_back_what_they_write() {
        let id = NodeKey::from_seed([7; 32]).id();
        assert_eq!(id.to_string().len(), 64);
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        assert!("zz".parse::<NodeId>().is_err());
        assert!(format!("{:?}", NodeKey::from_seed([7; 32])).contains(&id.short()));
        assert!(!format!("{:?}", NodeKey::from_seed([7; 32])).contains("0707"));
    }

    #[test]
    fn the_node_id_is_the_ed25519_public_key_of_the_seed() {
        // RFC 8032, section 7.1, test 1.
        let seed = parse_hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        assert_eq!(
            NodeKey::from_seed(seed).id().to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn the_node_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(dir.path()).unwrap();
        let b = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        std::fs::write(dir.path().join(NODE_KEY_FILE), b"short").unwrap();
        let e = NodeKey::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is damaged"), "{e}");
    }

    #[test]
    fn content_hashes_refuse_anything_but_64_lowercase_hex_digits() {
        let h = ContentHash::of(b"hello");
        assert_eq!(h.to_string(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(h.to_string().parse::<ContentHash>().unwrap(), h);
        for bad in [
            "",
            "../../etc/passwd",
            &h.to_string()[..63],
            &format!("{h}0"),
            &h.to_string().to_uppercase(),
            &format!("{}/x", &h.to_string()[..62]),
        ] {
            assert!(bad.parse::<ContentHash>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_vectors_order_and_merge() {
        let (a, b) = (node(1), node(2));
        let mut x = VersionVector::new();
        x.bump(&a);
        let mut y = x.clone();
        assert_eq!(x.compare(&y), Causality::Equal);
        y.bump(&b);
        assert_eq!(x.compare(&y), Causality::Before);
        assert_eq!(y.compare(&x), Causality::After);
        x.bump(&a);
        assert_eq!(x.compare(&y), Causality::Concurrent);
        let mut m = x.clone();
        m.merge(&y);
        assert_eq!(m.counter(&a.to_string()), 2);
        assert_eq!(m.counter(&b.to_string()), 1);
        assert_eq!(x.compare(&m), Causality::Before);
        assert_eq!(y.compare(&m), Causality::Before);
    }

    #[test]
    fn version_vectors_keep_the_catalog_text_form() {
        let v = VersionVector::parse("b:4,a:2");
        assert_eq!(v.to_string(), "a:2,b:4");
        assert_eq!(VersionVector::parse("garbage,:3,c:x").to_string(), "");
        assert_eq!(VersionVector::parse("").to_string(), "");
    }

    proptest! {
        #[test]
        fn merge_is_an_upper_bound(xs in proptest::collection::vec((0u8..4, 1u64..5), 0..8),
                                   ys in proptest::collection::vec((0u8..4, 1u64..5), 0..8)) {
            let build = |v: &[(u8, u64)]| {
                let mut vv = VersionVector::new();
                for &(n, k) in v { for _ in 0..k { vv.bump(&node(n)); } }
                vv
            };
            let (x, y) = (build(&xs), build(&ys));
            let mut m = x.clone();
            m.merge(&y);
            prop_assert!(matches!(x.compare(&m), Causality::Before | Causality::Equal));
            prop_assert!(matches!(y.compare(&m), Causality::Before | Causality::Equal));
            prop_assert_eq!(VersionVector::parse(&m.to_string()), m.clone());
            // compare is antisymmetric
            let flip = |c| match c { Causality::Before => Causality::After, Causality::After => Causality::Before, c => c };
            prop_assert_eq!(x.compare(&y), flip(y.compare(&x)));
        }
    }
}

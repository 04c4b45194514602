//! The fabric API on a real temp dir and SQLite catalog: the operations that
//! later fronts (WebDAV MOVE/COPY, SFTP rename) rely on, with the catalog
//! checked against the disk after each.

use fabric::{Address, Fabric, FabricConfig, FabricError, FolderOptions, Principal, RelPath};
use std::path::PathBuf;

struct World {
    _tmp: tempfile::TempDir,
    fabric: Fabric,
    root: PathBuf,
    alice: Principal,
    bob: Principal,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docs");
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    std::fs::write(root.join("d/e/f.txt"), b"deep").unwrap();
    std::fs::write(root.join("a.txt"), b"alpha").unwrap();
    let fabric = Fabric::open(FabricConfig::new(tmp.path().join("data")))
        .await
        .unwrap();
    fabric
        .create_user("alice", "alice-password", false)
        .await
        .unwrap();
    fabric
        .create_user("bob", "bob-password-1", false)
        .await
        .unwrap();
    let folder = fabric
        .add_folder("alice", "docs", &root, FolderOptions::default())
        .await
        .unwrap();
    fabric
        .scan_folder(&std::sync::Arc::new(folder), true, &fabric::NoProgress)
        .await
        .unwrap();
    let alice = fabric
        .authenticate("alice", "alice-password", None)
        .await
        .unwrap();
    let bob = fabric
        .authenticate("bob", "bob-password-1", None)
        .await
        .unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    World {
        _tmp: tmp,
        fabric,
        root,
        alice,
        bob,
    }
}

fn at(path: &str) -> Address {
    Address::new("alice", "docs", RelPath::parse(path).unwrap())
}

async fn assert_in_sync(w: &World) {
    let diffs = w
        .fabric
        .verify_folder(&Principal::System, &at(""))
        .await
        .unwrap();
    assert!(diffs.is_empty(), "catalog and disk differ: {diffs:?}");
}

#[tokio::test]
async fn rename_moves_files_and_trees_and_the_catalog_follows() {
    let w = world().await;
    w.fabric
        .rename(&w.alice, &at("a.txt"), &at("b.txt"), false, "test")
        .await
        .unwrap();
    assert!(!w.root.join("a.txt").exists());
    assert_eq!(std::fs::read(w.root.join("b.txt")).unwrap(), b"alpha");
    assert_in_sync(&w).await;

    w.fabric
        .rename(&w.alice, &at("d"), &at("moved"), false, "test")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(w.root.join("moved/e/f.txt")).unwrap(),
        b"deep"
    );
    assert_in_sync(&w).await;

    let err = w
        .fabric
        .rename(&w.alice, &at("moved"), &at("moved/e/inside"), false, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn rename_over_a_file_needs_overwrite_and_keeps_a_version() {
    let w = world().await;
    std::fs::write(w.root.join("other.txt"), b"other").unwrap();
    w.fabric
        .scan_folder(
            &w.fabric.folders(&w.alice, Some("alice")).await.unwrap()[0],
            false,
            &fabric::NoProgress,
        )
        .await
        .unwrap();
    let err = w
        .fabric
        .rename(&w.alice, &at("a.txt"), &at("other.txt"), false, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::AlreadyExists), "{err:?}");
    w.fabric
        .rename(&w.alice, &at("a.txt"), &at("other.txt"), true, "test")
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.root.join("other.txt")).unwrap(), b"alpha");
    let versions = w.fabric.versions(&w.alice, &at("other.txt")).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].size, 5);
    assert_eq!(versions[0].reason, "overwrite");
    assert_in_sync(&w).await;
}

#[tokio::test]
async fn copy_duplicates_a_tree() {
    let w = world().await;
    w.fabric
        .copy(&w.alice, &at("d"), &at("d2"), false, "test")
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.root.join("d2/e/f.txt")).unwrap(), b"deep");
    assert_eq!(std::fs::read(w.root.join("d/e/f.txt")).unwrap(), b"deep");
    w.fabric
        .copy(&w.alice, &at("a.txt"), &at("d2/a-copy.txt"), false, "test")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(w.root.join("d2/a-copy.txt")).unwrap(),
        b"alpha"
    );
    let err = w
        .fabric
        .copy(&w.alice, &at("a.txt"), &at("d2/a-copy.txt"), false, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::AlreadyExists));
    assert_in_sync(&w).await;
}

#[tokio::test]
async fn deleted_trees_come_back_from_the_trash() {
    let w = world().await;
    let id = w
        .fabric
        .delete(&w.alice, &at("d"), "test")
        .await
        .unwrap()
        .unwrap();
    assert!(!w.root.join("d").exists());
    assert_in_sync(&w).await;
    let trash = w.fabric.trash(&w.alice, "alice").await.unwrap();
    assert_eq!(trash.len(), 1);
    assert_eq!((trash[0].id, trash[0].files, trash[0].size), (id, 1, 4));
    assert!(
        w.fabric.trash(&w.bob, "alice").await.is_err(),
        "bob cannot see alice's trash"
    );
    w.fabric
        .restore_trash(&w.alice, "alice", id, "test")
        .await
        .unwrap();
    assert_eq!(std::fs::read(w.root.join("d/e/f.txt")).unwrap(), b"deep");
    assert!(w.fabric.trash(&w.alice, "alice").await.unwrap().is_empty());
    assert_in_sync(&w).await;

    let id = w
        .fabric
        .delete(&w.alice, &at("a.txt"), "test")
        .await
        .unwrap();
    assert!(id.is_some(), "a real file gets a trash item");
    w.fabric.purge_trash(&w.alice, "alice", id).await.unwrap();
    assert!(w.fabric.trash(&w.alice, "alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn trees_with_names_glow_cannot_keep_are_not_deleted() {
    let w = world().await;
    std::fs::write(w.root.join("d/back\\slash.txt"), b"precious").unwrap();
    let err = w
        .fabric
        .delete(&w.alice, &at("d"), "test")
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::Invalid(_)), "{err:?}");
    assert_eq!(
        std::fs::read(w.root.join("d/back\\slash.txt")).unwrap(),
        b"precious"
    );
    assert!(w.root.join("d/e/f.txt").exists());
}

#[tokio::test]
async fn conditional_writes_check_under_the_lock() {
    use fabric::Precondition;
    let w = world().await;
    let body: &[u8] = b"new";
    let err = w
        .fabric
        .write_if(&w.alice, &at("a.txt"), body, "t", &Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::PreconditionFailed));
    let err = w
        .fabric
        .write_if(&w.alice, &at("none.txt"), body, "t", &Precondition::Exists)
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::PreconditionFailed));
    let etag = w.fabric.stat(&w.alice, &at("a.txt")).await.unwrap().etag();
    let out = w
        .fabric
        .write_if(
            &w.alice,
            &at("a.txt"),
            body,
            "t",
            &Precondition::Etag(etag.clone()),
        )
        .await
        .unwrap();
    assert_ne!(out.entry.etag(), etag);
    // The old validator no longer matches: a lost update is refused.
    let err = w
        .fabric
        .write_if(&w.alice, &at("a.txt"), body, "t", &Precondition::Etag(etag))
        .await
        .unwrap_err();
    assert!(matches!(err, FabricError::PreconditionFailed));
    assert_eq!(std::fs::read(w.root.join("a.txt")).unwrap(), b"new");
    // Nothing is left behind by refused writes.
    let stray = std::fs::read_dir(&w.root)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".glow-tmp"));
    assert!(!stray);
    assert_in_sync(&w).await;
}

#[tokio::test]
async fn other_namespaces_and_bad_targets_are_refused() {
    let w = world().await;
    assert!(matches!(
        w.fabric.stat(&w.bob, &at("a.txt")).await,
        Err(FabricError::NotFound)
    ));
    assert!(matches!(
        w.fabric.delete(&w.bob, &at("a.txt"), "t").await,
        Err(FabricError::NotFound)
    ));
    assert!(
        w.fabric
            .folders(&w.bob, Some("alice"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        w.fabric.mkdir(&w.alice, &at("x/y")).await,
        Err(FabricError::ParentMissing)
    ));
    assert!(matches!(
        w.fabric.mkdir(&w.alice, &at("d")).await,
        Err(FabricError::AlreadyExists)
    ));
    assert!(matches!(
        w.fabric.delete(&w.alice, &at(""), "t").await,
        Err(FabricError::Forbidden)
    ));
    let empty: &[u8] = b"";
    assert!(matches!(
        w.fabric.write(&w.alice, &at(""), empty, "t").await,
        Err(FabricError::WrongKind(_))
    ));
    assert!(matches!(
        w.fabric.write(&w.alice, &at("d"), empty, "t").await,
        Err(FabricError::WrongKind(_))
    ));
    let handle = w
        .fabric
        .open_read_handle(&w.alice, &at("a.txt"))
        .await
        .unwrap();
    assert_eq!(handle.read_at(1, 3).await.unwrap(), &b"lph"[..]);
    assert_eq!(handle.read_at(99, 3).await.unwrap(), &b""[..]);
    assert_in_sync(&w).await;
}

#[tokio::test]
async fn nodes_heard_on_the_lan_are_kept_for_the_node_alone() {
    let w = world().await;
    let sys = Principal::System;
    let other: fabric::NodeId = fabric::NodeKey::from_seed([9; 32]).id();
    let addrs = vec!["10.0.0.2:4000".to_owned()];
    w.fabric
        .node_heard(&sys, other, "nas", &addrs)
        .await
        .unwrap();
    // The node itself is never one of the others.
    w.fabric
        .node_heard(&sys, w.fabric.node_id(), "me", &addrs)
        .await
        .unwrap();
    let nodes = w.fabric.known_nodes(&sys).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].id, nodes[0].name.as_str()), (other, "nas"));
    assert!(nodes[0].nearby);
    assert_eq!(nodes[0].addrs, addrs);

    w.fabric.node_not_nearby(&sys, Some(other)).await.unwrap();
    assert!(!w.fabric.known_nodes(&sys).await.unwrap()[0].nearby);

    // A LAN announcing made-up ids, one after another, fills the table to
    // its bound and no further; a node already known is still heard.
    for i in 0..(fabric::MAX_KNOWN_NODES as u32 + 50) {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let id = fabric::NodeKey::from_seed(seed).id();
        w.fabric.node_heard(&sys, id, "fake", &[]).await.unwrap();
    }
    let all = w.fabric.known_nodes(&sys).await.unwrap();
    assert_eq!(all.len() as i64, fabric::MAX_KNOWN_NODES);
    w.fabric
        .node_heard(&sys, other, "nas", &addrs)
        .await
        .unwrap();
    let all = w.fabric.known_nodes(&sys).await.unwrap();
    assert!(all.iter().any(|n| n.id == other && n.nearby));
    // A member's address is kept even then: a stranger makes room.
    let member = fabric::NodeKey::from_seed([42; 32]).id();
    let reach = fabric::Reach {
        name: "vps".into(),
        addrs: vec!["203.0.113.9:7410".into()],
        ..Default::default()
    };
    w.fabric.member_reached(&member, &reach).await.unwrap();
    let all = w.fabric.known_nodes(&sys).await.unwrap();
    assert_eq!(all.len() as i64, fabric::MAX_KNOWN_NODES);
    assert!(all.iter().any(|n| n.id == member && n.addrs == reach.addrs));

    // Users do not read or write the node's own view of the LAN.
    for who in [&w.alice, &Principal::LanMedia] {
        assert!(matches!(
            w.fabric.known_nodes(who).await,
            Err(FabricError::Forbidden)
        ));
        assert!(matches!(
            w.fabric.node_heard(who, other, "x", &[]).await,
            Err(FabricError::Forbidden)
        ));
    }
}

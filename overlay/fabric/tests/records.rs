//! Shared records between two fabrics on real temp dirs, exchanged by hand
//! the way the overlay does (pull after a cursor, apply): convergence of
//! concurrent changes, deletions, invites and a joining node adopting the
//! glow's accounts.

use fabric::{Fabric, FabricConfig, FabricError, NodeStanding, Principal, SharedRecord};

use std::time::Duration;

const SYS: Principal = Principal::System;

async fn node() -> (tempfile::TempDir, Fabric) {
    let tmp = tempfile::tempdir().unwrap();
    let f = Fabric::open(FabricConfig::new(tmp.path().join("data")))
        .await
        .unwrap();
    (tmp, f)
}

/// Makes `b` a member of `a`'s glow, as an invite and a join do, and lets
/// it adopt `a`'s records.
async fn befriend(a: &Fabric, b: &Fabric) {
    let secret = a
        .create_invite(&SYS, Duration::from_secs(60))
        .await
        .unwrap();
    a.redeem_invite(&SYS, &secret, &b.node_id(), &reach("b"))
        .await
        .unwrap();
    b.joined(&SYS, &a.node_id(), &[]).await.unwrap();
    pull(a, b).await;
}

/// `to` pulls everything new from `from`, as a link does.
async fn pull(from: &Fabric, to: &Fabric) {
    loop {
        let since = to.peer_cursor(&SYS, &from.node_id()).await.unwrap();
        let batch = from.records_since(&SYS, since, 2).await.unwrap();
        let more = batch.len() == 2;
        if batch.is_empty() {
            return;
        }
        to.apply_records(&SYS, &from.node_id(), batch, more)
            .await
            .unwrap();
    }
}

fn reach(name: &str) -> fabric::Reach {
    fabric::Reach {
        name: name.into(),
        addrs: vec!["10.0.0.2:7410".into()],
        relays: vec!["http://10.0.0.2:8080/".into()],
        home_relay: None,
    }
}

async fn signs_in(f: &Fabric, user: &str, password: &str) -> bool {
    f.authenticate(user, password, None).await.is_ok()
}

#[tokio::test]
async fn changes_travel_and_concurrent_ones_converge() {
    let ((_ta, a), (_tb, b)) = (node().await, node().await);
    befriend(&a, &b).await;
    a.create_user("alice", "alice-password-1", false)
        .await
        .unwrap();
    pull(&a, &b).await;
    assert!(signs_in(&b, "alice", "alice-password-1").await);

    // A later change replaces the earlier one on the other node.
    b.set_password("alice", "alice-password-2").await.unwrap();
    pull(&b, &a).await;
    assert!(signs_in(&a, "alice", "alice-password-2").await);
    assert!(!signs_in(&a, "alice", "alice-password-1").await);

    // Both change it before hearing of each other: after both pulls, both
    // hold the same value (the later change), and the loser is in history.
    a.set_password("alice", "from-a-password").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    b.set_password("alice", "from-b-password").await.unwrap();
    pull(&a, &b).await;
    pull(&b, &a).await;
    pull(&a, &b).await;
    for f in [&a, &b] {
        assert!(signs_in(f, "alice", "from-b-password").await);
        assert!(!signs_in(f, "alice", "from-a-password").await);
    }
    // B resolved the conflict (it heard of A's change second): A's value
    // is in its history as the loser; on A it was replaced by the result.
    let changes = b
        .record_changes(&SYS, Some(fabric::USER), 50)
        .await
        .unwrap();
    assert!(
        changes.iter().any(|c| c.key == "alice"
            && !c.current
            && c.reason == "conflict"
            && c.origin == a.node_id().to_string()),
        "{changes:#?}"
    );
    let changes = a
        .record_changes(&SYS, Some(fabric::USER), 50)
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.key == "alice" && !c.current && c.origin == a.node_id().to_string()),
        "{changes:#?}"
    );
    // A deletion travels; the user's sign-in stops on the other node.
    a.remove_user("alice").await.unwrap();
    pull(&a, &b).await;
    assert!(b.user("alice").await.is_err());
}

#[tokio::test]
async fn app_passwords_and_keys_travel_with_their_user() {
    let ((_ta, a), (_tb, b)) = (node().await, node().await);
    befriend(&a, &b).await;
    a.create_user("bob", "bob-password-1", false).await.unwrap();
    let (_, secret) = a.create_app_password("bob", "phone").await.unwrap();
    a.add_ssh_key(
        "bob",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE7x9ln6uZLLkfXM8iatrnAAuytVHeCznU8VlEgx7TvL bob@laptop",
    )
    .await
    .unwrap();
    pull(&a, &b).await;
    assert!(
        signs_in(&b, "bob", &secret).await,
        "the app password works on B"
    );
    assert_eq!(b.ssh_keys("bob").await.unwrap().len(), 1);
    assert_eq!(b.app_passwords("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn records_that_make_no_sense_are_skipped_not_fatal() {
    let ((_ta, a), (_tb, b)) = (node().await, node().await);
    befriend(&a, &b).await;
    a.create_user("admin", "admin-password-1", true)
        .await
        .unwrap();
    let good = a.records_since(&SYS, 0, 100).await.unwrap();
    let mut bad = good[0].clone();
    bad.kind = "user".into();
    bad.key = "mallory".into();
    bad.value = "{not json".into();
    let mut renamed = good[0].clone();
    renamed.key = "eve".into(); // its value names another user
    let mut huge = good[0].clone();
    huge.key = "x".repeat(10_000);
    let mut all: Vec<SharedRecord> = vec![bad, renamed, huge];
    all.extend(good);
    b.apply_records(&SYS, &a.node_id(), all, false)
        .await
        .unwrap();
    assert!(b.user("mallory").await.is_err());
    assert!(b.user("eve").await.is_err());
    assert!(b.peer_cursor(&SYS, &a.node_id()).await.unwrap() > 0);
    // Only the node itself may apply or read records.
    let alice = Principal::User {
        id: "x".into(),
        name: "admin".into(),
    };
    assert!(matches!(
        b.apply_records(&alice, &a.node_id(), vec![], false).await,
        Err(FabricError::Forbidden)
    ));
}

#[tokio::test]
async fn invites_work_once_and_expire_and_a_new_member_adopts_the_glow() {
    let ((_ta, a), (_tb, b), (_tc, c)) = (node().await, node().await, node().await);
    assert!(a.members(&SYS).await.unwrap().is_empty(), "no glow yet");
    let secret = a
        .create_invite(&SYS, Duration::from_secs(60))
        .await
        .unwrap();
    // The first invite formed the glow: A is its first member.
    assert_eq!(a.members(&SYS).await.unwrap().len(), 1);
    assert_eq!(
        a.node_standing(&b.node_id()).await.unwrap(),
        NodeStanding::Stranger
    );
    assert!(matches!(
        a.redeem_invite(&SYS, &[0u8; 10], &b.node_id(), &reach("b"))
            .await,
        Err(FabricError::Forbidden)
    ));
    a.redeem_invite(&SYS, &secret, &b.node_id(), &reach("nas"))
        .await
        .unwrap();
    let members = a.members(&SYS).await.unwrap();
    let nas = members.iter().find(|m| m.id == b.node_id()).unwrap();
    assert_eq!(nas.relays, vec!["http://10.0.0.2:8080/".to_owned()]);
    assert_eq!(
        a.node_standing(&b.node_id()).await.unwrap(),
        NodeStanding::Member
    );
    // Used once: the same secret is refused for another node.
    assert!(matches!(
        a.redeem_invite(&SYS, &secret, &c.node_id(), &reach("c"))
            .await,
        Err(FabricError::Forbidden)
    ));
    // An expired one is refused.
    let short = a
        .create_invite(&SYS, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        a.redeem_invite(&SYS, &short, &c.node_id(), &reach("c"))
            .await,
        Err(FabricError::Forbidden)
    ));

    // B had its own admin (another password) before joining: it adopts
    // the glow's, and serves nothing until it has.
    a.create_user("admin", "glow-admin-password", true)
        .await
        .unwrap();
    b.create_user("admin", "b-own-admin-password", true)
        .await
        .unwrap();
    b.joined(&SYS, &a.node_id(), &[]).await.unwrap();
    assert_eq!(
        b.node_standing(&a.node_id()).await.unwrap(),
        NodeStanding::Member,
        "the inviter counts as a member before its records arrive"
    );
    assert!(b.records_since(&SYS, 0, 100).await.unwrap().is_empty());
    pull(&a, &b).await;
    pull(&b, &a).await;
    for f in [&a, &b] {
        assert!(signs_in(f, "admin", "glow-admin-password").await);
        assert!(!signs_in(f, "admin", "b-own-admin-password").await);
    }
    assert_eq!(b.members(&SYS).await.unwrap().len(), 2);

    // A removes B: B is refused from then on, on every member that hears.
    let removed = a.remove_member(&SYS, "nas").await.unwrap();
    assert!(removed.revoked);
    assert_eq!(
        a.node_standing(&b.node_id()).await.unwrap(),
        NodeStanding::Revoked
    );
    assert!(
        a.remove_member(&SYS, &a.node_id().to_string())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn share_links_travel_to_nodes_with_the_folder_and_their_revocation_too() {
    let ((ta, a), (tb, b), (_tc, c)) = (node().await, node().await, node().await);
    befriend(&a, &b).await;
    befriend(&a, &c).await;
    pull(&a, &b).await;
    for (t, f) in [(&ta, &a), (&tb, &b)] {
        let dir = t.path().join("docs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), b"alpha").unwrap();
        f.create_user("alice", "alice-password-1", false)
            .await
            .unwrap();
        f.add_folder("alice", "docs", &dir, fabric::FolderOptions::default())
            .await
            .unwrap();
    }
    // C has no folder `alice/docs`: the record is kept, no link opens.
    c.create_user("alice", "alice-password-1", false)
        .await
        .unwrap();
    let alice_a = Principal::User {
        id: a.user("alice").await.unwrap().id,
        name: "alice".into(),
    };
    let share = a
        .create_share(
            &alice_a,
            &fabric::Address::parse("alice/docs/a.txt").unwrap(),
            fabric::ShareOptions {
                permission: fabric::SharePermission::Read,
                expires_at: None,
                password: None,
                max_downloads: None,
            },
        )
        .await
        .unwrap();
    let token = share.token.clone().expect("the maker sees the token");
    pull(&a, &b).await;
    pull(&a, &c).await;
    assert!(b.open_share(&token).await.is_ok(), "opens on B");
    assert!(matches!(
        c.open_share(&token).await,
        Err(FabricError::NotFound)
    ));
    // Revoked on B (by its owner there), dead on A.
    let alice_b = Principal::User {
        id: b.user("alice").await.unwrap().id,
        name: "alice".into(),
    };
    b.revoke_share(&alice_b, &share.id).await.unwrap();
    pull(&b, &a).await;
    assert!(matches!(
        a.open_share(&token).await,
        Err(FabricError::Gone(_))
    ));
}

#[tokio::test]
async fn folder_definitions_travel_without_making_a_replica() {
    let ((ta, a), (_tb, b)) = (node().await, node().await);
    befriend(&a, &b).await;
    let dir = ta.path().join("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [&a, &b] {
        f.create_user("alice", "alice-password-1", false)
            .await
            .unwrap();
    }
    a.add_folder("alice", "photos", &dir, fabric::FolderOptions::default())
        .await
        .unwrap();
    pull(&a, &b).await;
    let glow = b.glow_folders(&SYS).await.unwrap();
    assert!(
        glow.iter().any(|g| g.owner == "alice"
            && g.name == "photos"
            && g.origin == a.node_id().to_string()),
        "{glow:?}"
    );
    assert!(
        b.folders(&SYS, None).await.unwrap().is_empty(),
        "a definition makes no replica"
    );
}

//! Versions: overwrites keep the old content, restore brings it back as a
//! new write.

use crate::fixtures::*;
use reqwest::StatusCode;

on_both!(overwrites_are_versioned_and_restorable);

/// The ids listed by `glow versions`, newest first.
fn version_ids(env: &Env, addr: &str) -> Vec<String> {
    env.ok(&["versions", addr])
        .lines()
        .filter(|l| !l.starts_with("no earlier"))
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect()
}

async fn overwrites_are_versioned_and_restorable(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let url = srv.file("hello.txt");
    assert_eq!(
        put_admin(&url, "second").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        put_admin(&url, "third!").await.status(),
        StatusCode::NO_CONTENT
    );
    let listing = env.ok(&["versions", "admin/share/hello.txt"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[0].contains("6 bytes\toverwrite via http by admin"),
        "{listing}"
    );
    assert!(
        lines[1].contains("13 bytes\toverwrite via http by admin"),
        "{listing}"
    );

    let oldest = version_ids(&env, "admin/share/hello.txt").pop().unwrap();
    let out = env.ok(&["restore", "admin/share/hello.txt", &oldest]);
    assert!(out.contains("restored"), "{out}");
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");
    assert_eq!(
        get_admin(&url).await.text().await.unwrap(),
        "hello, world\n"
    );
    let after = env.ok(&["versions", "admin/share/hello.txt"]);
    assert_eq!(after.lines().count(), 3, "{after}");
    assert!(
        after
            .lines()
            .next()
            .unwrap()
            .contains("6 bytes\toverwrite via cli by system"),
        "{after}"
    );

    // Restoring something that is not a version of this file fails cleanly.
    let out = env.run(&["restore", "admin/share/hello.txt", "999999"]);
    assert!(!out.status.success());
    let out = env.run(&["restore", "admin/share/sub/other.txt", &oldest]);
    assert!(!out.status.success());
    assert_eq!(read(&env.share().join("hello.txt")), b"hello, world\n");
}

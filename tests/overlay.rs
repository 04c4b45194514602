//! The network of nodes: two `glow serve` on one LAN (two network
//! namespaces joined by a link, multicast routed on it) find each other
//! over mDNS with no flag beyond turning the overlay on (the tests' own
//! environment turns it off everywhere else).

use crate::fixtures::*;
use crate::lan::Lan;

/// `glow node list` of `env`, run in `ns`.
pub(crate) fn node_list(env: &Env, ns: &str) -> String {
    let out = env.glow_in(ns).args(["node", "list"]).output().unwrap();
    assert!(
        out.status.success(),
        "glow node list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node id a server's banner shows.
pub(crate) fn banner_id(srv: &Server) -> String {
    srv.banner
        .lines()
        .find_map(|l| l.split(" - node ").nth(1))
        .unwrap_or_else(|| panic!("no node id in the banner:\n{}", srv.banner))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn two_nodes_on_a_lan_find_each_other() {
    let lan = Lan::new();
    let (a, b) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let on = ["--overlay", "0.0.0.0:0"];
    let mut srv_a = lan.serve(&a, &[&on[..], &["--name", "laptop"]].concat());
    let mut srv_b = lan.serve_on_client(&b, &[&on[..], &["--name", "nas"]].concat());
    for srv in [&srv_a, &srv_b] {
        assert!(
            srv.banner
                .lines()
                .any(|l| l.trim_start().starts_with("overlay")
                    && l.contains("udp ")
                    && l.contains("mDNS")),
            "{}",
            srv.banner
        );
    }
    let (id_a, id_b) = (banner_id(&srv_a), banner_id(&srv_b));
    assert_ne!(id_a, id_b);

    // Each lists the other as nearby, with its name and an address on the
    // LAN, while it runs.
    for (env, ns, other, name, ip) in [
        (&a, &lan.server_ns, &id_b, "nas", "10.77.0.2:"),
        (&b, &lan.client_ns, &id_a, "laptop", "10.77.0.1:"),
    ] {
        eventually(30, &format!("{ns} hears of {name}"), || {
            let list = node_list(env, ns);
            let ok = list.lines().any(|l| {
                l.starts_with("nearby")
                    && l.contains(other.as_str())
                    && l.contains(name)
                    && l.contains(ip)
            });
            async move { ok }
        })
        .await;
    }
    let list = node_list(&a, &lan.server_ns);
    let this = list.lines().find(|l| l.starts_with("this")).unwrap();
    assert!(this.contains(&id_a) && this.contains("laptop"), "{list}");
    assert_eq!(list.matches(&id_b).count(), 1, "listed once:\n{list}");

    // Garbage on the overlay's UDP port is dropped: the node goes on
    // serving and hearing its neighbour.
    let port: u16 = srv_a
        .banner
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("overlay")?.trim_start();
            let addr = rest.strip_prefix("udp 10.77.0.1:")?;
            addr.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no overlay address on the LAN:\n{}", srv_a.banner));
    lan.client(move || async move {
        let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let target = format!("10.77.0.1:{port}");
        let mut seed = 0x9e37_79b9_u32;
        for i in 0..3000usize {
            let len = [1, 7, 64, 1200, 1500, 9000, 60_000][i % 7];
            let mut buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            // Some look like QUIC long headers (an Initial of version 1).
            if i % 3 == 0 && len > 5 {
                buf[0] = 0xc3;
                buf[1..5].copy_from_slice(&1u32.to_be_bytes());
            }
            let _ = sock.send_to(&buf, &target).await;
        }
    });
    let base = srv_a.base.clone();
    let health = lan.client(move || async move {
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(health, 200);
    assert!(
        node_list(&a, &lan.server_ns)
            .lines()
            .any(|l| l.starts_with("nearby") && l.contains(&id_b)),
        "B is still heard after the garbage"
    );

    // The Devices page shows both to the administrator, and nothing to a
    // user who is not one.
    let added = a.ok(&["user", "add", "bob"]);
    let bob_pw = added
        .split("password: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{added}"))
        .to_owned();
    let base = srv_a.base.clone();
    let (page, api, bob) = lan.client(move || async move {
        let c = client();
        let page = c
            .get(format!("{base}/devices"))
            .header("authorization", admin_basic())
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        let api: serde_json::Value = c
            .get(format!("{base}/api/v1/nodes"))
            .header("authorization", admin_basic())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let bob = c
            .get(format!("{base}/devices"))
            .basic_auth("bob", Some(bob_pw))
            .send()
            .await
            .unwrap()
            .status();
        (page, api, bob)
    });
    assert!(
        page.contains("laptop") && page.contains("nas") && page.contains("nearby"),
        "{page}"
    );
    assert!(page.contains(&id_b[..10]), "{page}");
    // The same list for programs: this node first, then the nearby one.
    let nodes = api.as_array().unwrap_or_else(|| panic!("{api}"));
    assert_eq!(nodes[0]["state"], "this");
    assert_eq!(nodes[0]["id"], id_a.as_str());
    assert!(
        nodes
            .iter()
            .any(|n| n["id"] == id_b.as_str() && n["state"] == "nearby" && n["name"] == "nas"),
        "{api}"
    );
    assert_eq!(bob, 403);

    // A node that stops is not nearby any more after its next start's
    // first look (the list a node keeps is of what it hears now).
    srv_b.terminate();
    srv_a.terminate();
    let stopped = node_list(&a, &lan.server_ns);
    assert!(
        !stopped.lines().any(|l| l.starts_with("nearby")),
        "a stopped node hears no one:\n{stopped}"
    );
    let mut srv_a = lan.serve(&a, &on);
    let list = node_list(&a, &lan.server_ns);
    assert!(
        !list
            .lines()
            .any(|l| l.starts_with("nearby") && l.contains(&id_b)),
        "B is not running:\n{list}"
    );
    assert!(list.contains(&id_b), "but A remembers it:\n{list}");
    srv_a.terminate();
}

/// Runs `glow ARGS` of `env` in `ns`; returns (success, stdout + stderr).
pub(crate) fn glow_in(env: &Env, ns: &str, args: &[&str]) -> (bool, String) {
    let out = env
        .glow_in(ns)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `glow node invite` of `env` in `ns`: (the short code, the full invite).
pub(crate) fn invite(env: &Env, ns: &str, args: &[&str]) -> (String, String) {
    let (ok, out) = glow_in(env, ns, &[&["node", "invite"], args].concat());
    assert!(ok, "glow node invite: {out}");
    let arg = |prefix: &str| {
        out.lines()
            .find_map(|l| {
                let rest = l.trim().strip_prefix("glow node join ")?;
                rest.starts_with(prefix).then(|| rest.to_owned())
            })
            .unwrap_or_else(|| panic!("no {prefix:?} invite in:\n{out}"))
    };
    let full = arg("GLOW:");
    let code = out
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("glow node join ")?;
            (!rest.starts_with("GLOW:")).then(|| rest.to_owned())
        })
        .unwrap_or_else(|| panic!("no code in:\n{out}"));
    (code, full)
}

/// Whether `user` signs in with `password` on the node at `base` (from
/// the other side of the LAN).
fn signs_in(lan: &Lan, base: &str, user: &str, password: &str) -> bool {
    let (base, user, password) = (base.to_owned(), user.to_owned(), password.to_owned());
    lan.client(move || async move {
        client()
            .get(format!("{base}/api/v1/me"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn a_node_joins_with_an_invite_and_members_share_users() {
    let lan = Lan::new();
    let (a, b, c) = (
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
    );
    let on = ["--overlay", "0.0.0.0:0"];
    // Each serves a folder `share` of its own (the same name on both).
    let (share_a, share_b) = (a.share(), b.share());
    let mut srv_a = lan.serve(
        &a,
        &[&on[..], &["--name", "laptop", share_a.to_str().unwrap()]].concat(),
    );
    let mut srv_b = lan.serve_on_client(
        &b,
        &[&on[..], &["--name", "nas", share_b.to_str().unwrap()]].concat(),
    );
    let (id_a, id_b) = (banner_id(&srv_a), banner_id(&srv_b));
    let (sa, sb) = (lan.server_ns.clone(), lan.client_ns.clone());

    // A user that exists only on B before it joins.
    b.add_user("carol", "carol-password-1");

    // A writes an invite; B joins with the short code (found on the LAN).
    let (code, _full) = invite(&a, &sa, &[]);
    assert_eq!(code.len(), 19, "{code}");
    let (ok, out) = glow_in(&b, &sb, &["node", "join", &code]);
    assert!(ok, "join: {out}");
    assert!(out.contains("joined"), "{out}");

    // The same code again (from a third node) is refused, and so is
    // garbage.
    let (ok, out) = glow_in(&c, &sb, &["node", "join", &code]);
    assert!(!ok, "a used invite must be refused: {out}");
    assert!(out.contains("refused"), "{out}");
    let (ok, out) = glow_in(&c, &sb, &["node", "join", "GLOW:AAAA!!"]);
    assert!(!ok && out.contains("not a Glow invite"), "{out}");

    // Each lists the other as a member, with a direct link on the LAN.
    for (env, ns, other) in [(&a, &sa, &id_b), (&b, &sb, &id_a)] {
        eventually(30, &format!("{ns} links to the other member"), || {
            let list = node_list(env, ns);
            let ok = list.lines().any(|l| {
                l.starts_with("member") && l.contains(other.as_str()) && l.contains("local direct")
            });
            async move { ok }
        })
        .await;
    }

    // A user added on A signs in on B; one changed on B signs in with the
    // new password on A; the one B had before joining is the glow's now.
    // (Each is awaited in the catalog first: sign-in attempts that fail
    // while a record travels would trip the rate limiter.)
    a.add_user("alice", "alice-password-1");
    eventually(30, "alice reaches B", || {
        let ok = glow_in(&b, &sb, &["user", "list"]).1.contains("alice");
        async move { ok }
    })
    .await;
    assert!(signs_in(&lan, &srv_b.base, "alice", "alice-password-1"));
    let out = b.run_with_input(
        &["user", "passwd", "alice", "--password-stdin"],
        "alice-password-2\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(30, "alice's new password reaches A", || {
        let changes = glow_in(&a, &sa, &["node", "changes"]).1;
        let ok = changes.lines().any(|l| {
            l.contains(" user ")
                && l.contains(" alice ")
                && l.contains(&id_b[..10])
                && l.ends_with("current")
        });
        async move { ok }
    })
    .await;
    assert!(signs_in(&lan, &srv_a.base, "alice", "alice-password-2"));
    assert!(!signs_in(&lan, &srv_a.base, "alice", "alice-password-1"));
    eventually(30, "carol (made on B before it joined) reaches A", || {
        let ok = glow_in(&a, &sa, &["user", "list"]).1.contains("carol");
        async move { ok }
    })
    .await;
    assert!(signs_in(&lan, &srv_a.base, "carol", "carol-password-1"));

    // The Devices page shows the members and who changed what, where.
    let base = srv_a.base.clone();
    let page = lan.client(move || async move {
        client()
            .get(format!("{base}/devices"))
            .header("authorization", admin_basic())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(page.contains("member, connected"), "{page}");
    assert!(
        page.contains("user alice") && page.contains("<td>nas</td>"),
        "the change to alice made on the nas:\n{page}"
    );

    // A share link made on A opens on B (where the folder of the same
    // name is); revoked on B, it is dead on A too.
    let url = crate::share::share(&a, &srv_a, &["admin/share/hello.txt"], None);
    let token = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let status_of = |base: &str| {
        let url = format!("{base}/s/{token}/");
        lan.client(move || async move {
            client()
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    assert_eq!(status_of(&srv_a.base), 200);
    eventually(30, "the link made on A opens on B", || {
        let ok = status_of(&srv_b.base) == 200;
        async move { ok }
    })
    .await;
    b.ok(&["share", "revoke", &token]);
    assert_eq!(status_of(&srv_b.base), 410);
    eventually(30, "the link revoked on B is dead on A", || {
        let ok = status_of(&srv_a.base) == 410;
        async move { ok }
    })
    .await;

    // An invite that expired is refused, even in full form.
    let (_, full) = invite(&a, &sa, &["--expires", "1s"]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (ok, out) = glow_in(&c, &sb, &["node", "join", &full]);
    assert!(!ok && out.contains("refused"), "an expired invite: {out}");
    assert!(srv_a.logged("join refused"), "the refusals are logged");
    assert!(
        !srv_a.logged(&full[5..20]) && !srv_a.logged(&code),
        "invites are never logged"
    );

    // B is removed on A: A refuses it from then on, and what changes on A
    // no longer reaches B.
    let out = a.ok(&["node", "remove", "nas"]);
    assert!(out.contains("removed"), "{out}");
    eventually(30, "A refuses the removed node", || {
        let ok = srv_a.logged("removed from this glow");
        async move { ok }
    })
    .await;
    a.add_user("dave", "dave-password-1");
    // B pulled every two seconds while it was a member.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    assert!(
        !glow_in(&b, &sb, &["user", "list"]).1.contains("dave"),
        "a removed node gets nothing new"
    );
    let list = node_list(&a, &sa);
    assert!(
        list.lines()
            .any(|l| l.starts_with("removed") && l.contains(&id_b)),
        "{list}"
    );
    srv_b.terminate();
    srv_a.terminate();
}

#[tokio::test]
async fn a_member_that_was_away_catches_up_and_one_that_moved_is_found_again() {
    let lan = Lan::new();
    let (a, b) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let on = ["--overlay", "0.0.0.0:0"];
    let mut srv_a = lan.serve(&a, &[&on[..], &["--name", "laptop"]].concat());
    let srv_b = lan.serve_on_client(&b, &[&on[..], &["--name", "nas"]].concat());
    let id_b = banner_id(&srv_b);
    let (sa, sb) = (lan.server_ns.clone(), lan.client_ns.clone());
    let (code, _) = invite(&a, &sa, &[]);
    let (ok, out) = glow_in(&b, &sb, &["node", "join", &code]);
    assert!(ok, "{out}");
    let linked = |addr: &'static str| {
        let (a, sa, id_b) = (&a, sa.clone(), id_b.clone());
        move || {
            let list = node_list(a, &sa);
            let ok = list.lines().any(|l| {
                l.starts_with("member")
                    && l.contains(&id_b)
                    && l.contains(addr)
                    && l.ends_with("ms")
            });
            async move { ok }
        }
    };
    eventually(30, "A links to B", linked("10.77.0.2:")).await;

    // B dies (kill -9); A changes something while it is away.
    drop(srv_b);
    a.add_user("erin", "erin-password-1");

    // B comes back on another address: it catches up, and A finds it
    // again by itself.
    for args in [
        vec!["-n", &sb, "addr", "flush", "dev", &lan.client_if],
        vec![
            "-n",
            &sb,
            "addr",
            "add",
            "10.77.0.3/24",
            "dev",
            &lan.client_if,
        ],
    ] {
        let st = std::process::Command::new("ip")
            .args(&args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    }
    let mut cmd = b.glow_in(&sb);
    cmd.arg("serve").args([
        "--http",
        "10.77.0.3:0",
        "--no-dlna",
        "--no-sftp",
        "--overlay",
        "0.0.0.0:0",
        "--name",
        "nas",
    ]);
    let mut srv_b = Server::start(cmd);
    eventually(
        30,
        "B catches up with what changed while it was away",
        || {
            let ok = glow_in(&b, &sb, &["user", "list"]).1.contains("erin");
            async move { ok }
        },
    )
    .await;
    eventually(30, "A links to B at its new address", linked("10.77.0.3:")).await;
    srv_b.terminate();
    srv_a.terminate();
}

#[tokio::test]
async fn the_relay_admits_members_only_and_survives_half_open_connections() {
    let lan = Lan::new();
    let (a, stranger) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let mut srv_a = lan.serve(&a, &["--overlay", "0.0.0.0:0", "--name", "laptop"]);
    let id_a = banner_id(&srv_a);
    let relay = format!("{}/", srv_a.base);

    // A stranger handed A's relay (an invite it forged, with no open
    // invite on A) is refused by the relay, and the refusal is logged.
    let mut inviter = [0u8; 32];
    for (i, b) in inviter.iter_mut().enumerate() {
        *b = u8::from_str_radix(&id_a[2 * i..2 * i + 2], 16).unwrap();
    }
    let forged = peers::Invite {
        secret: [7; peers::invite::SECRET_LEN],
        inviter: Some(inviter),
        addrs: Vec::new(),
        relay: Some(relay.clone()),
    };
    let (ok, out) = glow_in(&stranger, &lan.client_ns, &["node", "join", &forged.full()]);
    assert!(!ok, "a forged invite must not join: {out}");
    eventually(20, "A's relay refuses the stranger", || {
        let ok = srv_a.logged("relay refused");
        async move { ok }
    })
    .await;

    // Connections that start like a relay request and stall, or say
    // nothing, hold no one up; a relay request that is not a WebSocket
    // upgrade gets an answer, not a hang.
    let addr = srv_a.base.trim_start_matches("http://").to_owned();
    let (health, bare) = lan.client(move || async move {
        use std::io::Write;
        let mut stalled = Vec::new();
        for i in 0..40 {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /rel").unwrap();
            }
            stalled.push(s);
        }
        let health = client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        let bare = raw_request(&addr, "GET /relay HTTP/1.1\r\nHost: x\r\n\r\n");
        drop(stalled);
        (health, bare)
    });
    assert_eq!(health, 200);
    assert!(
        (400..500).contains(&bare.0),
        "a relay request without an upgrade: {}",
        bare.1
    );
    assert_eq!(
        lan.client({
            let base = srv_a.base.clone();
            move || async move {
                client()
                    .get(format!("{base}/ping"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        }),
        200
    );
    srv_a.terminate();
}

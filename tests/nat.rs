//! The network of nodes across NATs (the lab of `natlab.rs`): a public
//! member relays for nodes behind routers; nodes behind two masquerading
//! routers reach each other through it, then directly; behind two
//! symmetric NATs they stay relayed and still work; a node whose router
//! drops all UDP joins and works through the relay, over HTTP.

use crate::fixtures::*;
use crate::natlab::{Nat, NatLab, PUBLIC_IP};
use crate::overlay::{banner_id, glow_in, invite, node_list};

/// `glow serve` of `env` in `ns` with HTTP on `ip`, the overlay on.
fn serve_in(env: &Env, ns: &str, ip: &str, name: &str) -> Server {
    serve_with(env, ns, ip, name, &[])
}

/// The same, serving the env's `share` directory as `admin/share`.
fn serve_share_in(env: &Env, ns: &str, ip: &str, name: &str) -> Server {
    serve_with(env, ns, ip, name, &[env.share().to_str().unwrap()])
}

pub(crate) fn serve_with(env: &Env, ns: &str, ip: &str, name: &str, dirs: &[&str]) -> Server {
    let mut cmd = env.glow_in(ns);
    cmd.arg("serve")
        .args([
            "--http",
            &format!("{ip}:0"),
            "--no-dlna",
            "--no-sftp",
            "--overlay",
            "0.0.0.0:0",
            "--name",
            name,
        ])
        .args(dirs);
    Server::start(cmd)
}

/// A full invite from `env` (in `ns`) that carries its relay: the public
/// member makes its own relay its home within seconds of starting.
async fn invite_with_relay(env: &Env, ns: &str) -> String {
    let mut full = String::new();
    eventually(30, "the public member has a home relay", || {
        let (ok, out) = glow_in(env, ns, &["node", "invite"]);
        let has = ok && out.contains("through the relay http://");
        if has {
            full = invite(env, ns, &[]).1;
        }
        async move { has }
    })
    .await;
    full
}

/// Joins `env` (in `ns`) with `full`.
fn join(env: &Env, ns: &str, full: &str) {
    let (ok, out) = glow_in(env, ns, &["node", "join", full]);
    assert!(ok, "join in {ns}: {out}");
}

/// The LINK column of `other` in `env`'s node list (in `ns`), once it is
/// a member with a link.
fn link_to(env: &Env, ns: &str, other: &str) -> Option<String> {
    node_list(env, ns)
        .lines()
        .find(|l| l.starts_with("member") && l.contains(other))
        .and_then(|l| {
            let link = l.split_whitespace().rev().take(4).collect::<Vec<_>>();
            // "... wan direct 0.4 ms": the class and the path.
            (link.len() == 4 && link[0] == "ms").then(|| format!("{} {}", link[3], link[2]))
        })
}

/// The public member, and two sites behind `nats` joined to its glow.
async fn two_sites(nats: [Nat; 2]) -> (NatLab, [Env; 3], [Server; 3]) {
    two_sites_mapping(nats, [false, false]).await
}

/// [`two_sites`], with the routers of the sites flagged in `map` mapping
/// ports on request (UPnP, NAT-PMP, PCP), started before the nodes.
async fn two_sites_mapping(nats: [Nat; 2], map: [bool; 2]) -> (NatLab, [Env; 3], [Server; 3]) {
    let lab = NatLab::new(&nats);
    let envs = [
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
    ];
    for (i, on) in map.iter().enumerate() {
        if *on {
            lab.map_ports(i, &envs[i + 1].path("miniupnpd.log"));
        }
    }
    let p = serve_in(&envs[0], &lab.public_ns, PUBLIC_IP, "vps");
    let x1 = serve_in(
        &envs[1],
        &lab.sites[0].host_ns,
        &lab.sites[0].host_ip,
        "laptop",
    );
    let x2 = serve_in(
        &envs[2],
        &lab.sites[1].host_ns,
        &lab.sites[1].host_ip,
        "phone",
    );
    for (i, site) in lab.sites.iter().enumerate() {
        let full = invite_with_relay(&envs[0], &lab.public_ns).await;
        join(&envs[i + 1], &site.host_ns, &full);
    }
    (lab, envs, [p, x1, x2])
}

#[tokio::test]
async fn behind_two_masquerading_routers_members_go_direct() {
    let (lab, envs, srvs) = two_sites([Nat::Masquerade, Nat::Masquerade]).await;
    let (h1, h2) = (&lab.sites[0].host_ns, &lab.sites[1].host_ns);
    let id2 = banner_id(&srvs[2]);
    // They learn of each other from the public member's records, meet
    // through its relay and then find a direct path through both NATs.
    eventually(90, "the laptop reaches the phone directly", || {
        let ok = link_to(&envs[1], h1, &id2).as_deref() == Some("wan direct");
        async move { ok }
    })
    .await;
    // What one changes reaches the other.
    envs[1].add_user("alice", "alice-password-1");
    eventually(30, "alice reaches the phone", || {
        let ok = glow_in(&envs[2], h2, &["user", "list"]).1.contains("alice");
        async move { ok }
    })
    .await;
    drop(srvs);
}

#[tokio::test]
async fn behind_two_symmetric_nats_members_stay_relayed_and_work() {
    let (lab, envs, srvs) = two_sites([Nat::RandomFully, Nat::RandomFully]).await;
    let (h1, h2) = (&lab.sites[0].host_ns, &lab.sites[1].host_ns);
    let id2 = banner_id(&srvs[2]);
    eventually(90, "the laptop reaches the phone", || {
        let ok = link_to(&envs[1], h1, &id2).is_some();
        async move { ok }
    })
    .await;
    envs[1].add_user("alice", "alice-password-1");
    eventually(30, "alice reaches the phone through the relay", || {
        let ok = glow_in(&envs[2], h2, &["user", "list"]).1.contains("alice");
        async move { ok }
    })
    .await;
    assert_eq!(
        link_to(&envs[1], h1, &id2).as_deref(),
        Some("wan relayed"),
        "random ports on both sides leave no direct path to punch:\n{}",
        node_list(&envs[1], h1)
    );
    drop(srvs);
}

#[tokio::test]
async fn a_router_that_maps_ports_lets_members_behind_symmetric_nats_go_direct() {
    // Both routers give every flow a random port (as a carrier NAT does);
    // the laptop's router maps a port on request (UPnP / NAT-PMP / PCP, as
    // home routers do), the phone's does not. The laptop asks for one, and
    // the phone reaches it there: the pair that stays relayed without
    // mapping goes direct.
    let (lab, envs, srvs) =
        two_sites_mapping([Nat::RandomFully, Nat::RandomFully], [true, false]).await;
    let (h1, h2) = (&lab.sites[0].host_ns, &lab.sites[1].host_ns);
    let id1 = banner_id(&srvs[1]);
    let mapped = || std::fs::read_to_string(envs[1].path("miniupnpd.log")).unwrap_or_default();
    eventually(90, "the phone reaches the laptop directly", || {
        let ok = link_to(&envs[2], h2, &id1).as_deref() == Some("wan direct");
        async move { ok }
    })
    .await;
    let log = mapped();
    assert_eq!(
        log.matches("protocol UDP for: iroh-portmap").count(),
        1,
        "the laptop's node (not the join command) asked its router for one mapping:\n{log}"
    );
    envs[2].add_user("alice", "alice-password-1");
    eventually(30, "alice reaches the laptop", || {
        let ok = glow_in(&envs[1], h1, &["user", "list"]).1.contains("alice");
        async move { ok }
    })
    .await;
    drop(srvs);
}

#[tokio::test]
async fn a_node_without_udp_joins_and_works_through_the_relay() {
    let lab = NatLab::new(&[Nat::NoUdp]);
    let (pe, xe) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let p = serve_in(&pe, &lab.public_ns, PUBLIC_IP, "vps");
    let site = &lab.sites[0];
    let x = serve_in(&xe, &site.host_ns, &site.host_ip, "office");
    let full = invite_with_relay(&pe, &lab.public_ns).await;
    join(&xe, &site.host_ns, &full);
    let id_p = banner_id(&p);
    eventually(60, "the office node links to the public one", || {
        let ok = link_to(&xe, &site.host_ns, &id_p).is_some();
        async move { ok }
    })
    .await;
    assert_eq!(
        link_to(&xe, &site.host_ns, &id_p).as_deref(),
        Some("wan relayed")
    );
    pe.add_user("bob", "bob-password-1");
    eventually(30, "bob reaches the office node", || {
        let ok = glow_in(&xe, &site.host_ns, &["user", "list"])
            .1
            .contains("bob");
        async move { ok }
    })
    .await;
    // Removed, it loses the relay too (it reached nothing else).
    pe.ok(&["node", "remove", "office"]);
    eventually(
        30,
        "the public node's relay cuts the removed node off",
        || {
            let ok = p.logged("relay connection cut");
            async move { ok }
        },
    )
    .await;
    drop((p, x));
}

/// The benchmark behind `benches/overlay.sh`: for each pair of NAT types
/// the lab builds, how long until two members behind them are linked
/// (through the public member's relay or directly) and whether, and how
/// soon, the link becomes direct. Prints a matrix; asserts only that
/// every pair is linked (run with `--ignored --nocapture`).
#[tokio::test]
#[ignore = "a benchmark: benches/overlay.sh runs it"]
async fn bench_direct_path_matrix() {
    let kinds = [Nat::FullCone, Nat::Masquerade, Nat::RandomFully];
    let mut pairs = Vec::new();
    for (i, a) in kinds.iter().enumerate() {
        for b in &kinds[i..] {
            pairs.push((*a, *b, false));
        }
    }
    // The hard pairs again, the first router mapping ports (UPnP).
    pairs.push((Nat::RandomFully, Nat::Masquerade, true));
    pairs.push((Nat::RandomFully, Nat::RandomFully, true));
    let mut rows = Vec::new();
    for (a, b, map) in pairs {
        let started = std::time::Instant::now();
        let (lab, envs, srvs) = two_sites_mapping([a, b], [map, false]).await;
        let joined = started.elapsed();
        let (h1, id2) = (lab.sites[0].host_ns.clone(), banner_id(&srvs[2]));
        let t0 = std::time::Instant::now();
        let mut linked = None;
        let mut direct = None;
        while t0.elapsed() < std::time::Duration::from_secs(40) {
            if let Some(l) = link_to(&envs[1], &h1, &id2) {
                let first = *linked.get_or_insert(t0.elapsed());
                if l.ends_with("direct") {
                    direct = Some(t0.elapsed());
                    break;
                }
                if t0.elapsed() - first > std::time::Duration::from_secs(20) {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        rows.push(format!(
            "{:<16} {:<11} joined {:>5.1} s  linked {:>6}  direct {}",
            format!("{}{}", a.name(), if map { "+upnp" } else { "" }),
            b.name(),
            joined.as_secs_f64(),
            linked.map_or("never".into(), |t| format!("{:.1} s", t.as_secs_f64())),
            direct.map_or("no (relayed)".into(), |t| format!(
                "after {:.1} s",
                t.as_secs_f64()
            )),
        ));
        assert!(linked.is_some(), "{} / {} never linked", a.name(), b.name());
        drop((srvs, envs, lab));
    }
    println!("\nNAT pair                      time to join both  link  direct path");
    for r in rows {
        println!("{r}");
    }
}

#[tokio::test]
async fn three_nodes_on_one_lan_share_users_and_links() {
    let mut lab = NatLab::new(&[]);
    let (ns_b, ip_b) = lab.add_host();
    let (ns_c, ip_c) = lab.add_host();
    let ns_a = lab.public_ns.clone();
    let envs = [
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
        Env::new(Backend::Sqlite),
    ];
    let started = std::time::Instant::now();
    let a = serve_share_in(&envs[0], &ns_a, PUBLIC_IP, "laptop");
    let b = serve_share_in(&envs[1], &ns_b, &ip_b, "nas");
    let c = serve_share_in(&envs[2], &ns_c, &ip_c, "phone");
    let ids = [banner_id(&a), banner_id(&b), banner_id(&c)];
    // Discovery: each hears the other two, within 5 s of the start.
    eventually(20, "all three hear each other", || {
        let ok = [(&envs[0], &ns_a), (&envs[1], &ns_b), (&envs[2], &ns_c)]
            .iter()
            .enumerate()
            .all(|(i, (env, ns))| {
                let list = node_list(env, ns);
                ids.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .all(|(_, id)| {
                        list.lines()
                            .any(|l| l.starts_with("nearby") && l.contains(id.as_str()))
                    })
            });
        async move { ok }
    })
    .await;
    let heard = started.elapsed();
    assert!(heard.as_secs_f64() < 5.0 + 3.0, "heard after {heard:?}");

    // B and C join A's glow with codes.
    for (env, ns) in [(&envs[1], &ns_b), (&envs[2], &ns_c)] {
        let (code, _) = invite(&envs[0], &ns_a, &[]);
        let (ok, out) = glow_in(env, ns, &["node", "join", &code]);
        assert!(ok, "{out}");
    }
    // A user added on A signs in on C.
    envs[0].add_user("alice", "alice-password-1");
    eventually(30, "alice reaches C", || {
        let ok = glow_in(&envs[2], &ns_c, &["user", "list"])
            .1
            .contains("alice");
        async move { ok }
    })
    .await;
    let base_c = c.base.clone();
    let signed_in = lab.run_in(&ns_c, move || async move {
        client()
            .get(format!("{base_c}/api/v1/me"))
            .basic_auth("alice", Some("alice-password-1"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(signed_in, 200);

    // A link made on B opens on A; revoked on C, it is dead on A and B.
    let url = crate::share::share(&envs[1], &b, &["admin/share/hello.txt"], None);
    let token = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let status = |base: &str| {
        let url = format!("{base}/s/{token}/");
        lab.run_in(&ns_a, move || async move {
            client()
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    eventually(30, "B's link opens on A", || {
        let ok = status(&a.base) == 200;
        async move { ok }
    })
    .await;
    eventually(30, "C has the link", || {
        let ok = glow_in(&envs[2], &ns_c, &["node", "changes"])
            .1
            .contains(" share ");
        async move { ok }
    })
    .await;
    envs[2].ok(&["share", "revoke", &token]);
    eventually(30, "revoked on C, dead on A and B", || {
        let ok = status(&a.base) == 410 && status(&b.base) == 410;
        async move { ok }
    })
    .await;
    drop((a, b, c));
}

/// The benchmark behind `benches/overlay.sh` (relayed against direct): a
/// 64 MiB file synced between two members behind NATs, once over a direct
/// path (two masquerading routers) and once through the public member's
/// relay (two symmetric NATs). Prints the times and their ratio (run with
/// `--ignored --nocapture`).
#[tokio::test]
#[ignore = "a benchmark: benches/overlay.sh runs it"]
async fn bench_relayed_against_direct_sync() {
    let mut rows = Vec::new();
    for (nats, path) in [
        ([Nat::Masquerade, Nat::Masquerade], "wan direct"),
        ([Nat::RandomFully, Nat::RandomFully], "wan relayed"),
    ] {
        let lab = NatLab::new(&nats);
        let envs = [
            Env::new(Backend::Sqlite),
            Env::new(Backend::Sqlite),
            Env::new(Backend::Sqlite),
        ];
        let p = serve_in(&envs[0], &lab.public_ns, PUBLIC_IP, "vps");
        let (s1, s2) = (&lab.sites[0], &lab.sites[1]);
        let x1 = serve_share_in(&envs[1], &s1.host_ns, &s1.host_ip, "laptop");
        let x2 = serve_share_in(&envs[2], &s2.host_ns, &s2.host_ip, "phone");
        for (i, site) in lab.sites.iter().enumerate() {
            let full = invite_with_relay(&envs[0], &lab.public_ns).await;
            join(&envs[i + 1], &site.host_ns, &full);
        }
        let id1 = banner_id(&x1);
        eventually(90, &format!("the phone's link is {path}"), || {
            let ok = link_to(&envs[2], &s2.host_ns, &id1).as_deref() == Some(path);
            async move { ok }
        })
        .await;
        let data: Vec<u8> = (0..64u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let started = std::time::Instant::now();
        std::fs::write(envs[1].share().join("big.bin"), &data).unwrap();
        let target = envs[2].share().join("big.bin");
        eventually(600, "the file reaches the phone", || {
            let ok = std::fs::metadata(&target).is_ok_and(|m| m.len() == data.len() as u64)
                && std::fs::read(&target).is_ok_and(|got| got == data);
            async move { ok }
        })
        .await;
        let took = started.elapsed().as_secs_f64();
        rows.push((path, took));
        drop((p, x1, x2, envs, lab));
    }
    println!("\n64 MiB synced between two members behind NATs");
    for (path, took) in &rows {
        println!("{path:<12} {took:>6.1} s  {:>6.1} MiB/s", 64.0 / took);
    }
    println!("relayed / direct time: {:.2}x", rows[1].1 / rows[0].1);
}

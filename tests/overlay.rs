//! The network of nodes: two `glow serve` on one LAN (two network
//! namespaces joined by a link, multicast routed on it) find each other
//! over mDNS with no flag beyond turning the overlay on (the tests' own
//! environment turns it off everywhere else).

use crate::fixtures::*;
use crate::lan::Lan;

/// `glow node list` of `env`, run in `ns`.
fn node_list(env: &Env, ns: &str) -> String {
    let out = env.glow_in(ns).args(["node", "list"]).output().unwrap();
    assert!(
        out.status.success(),
        "glow node list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node id a server's banner shows.
fn banner_id(srv: &Server) -> String {
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

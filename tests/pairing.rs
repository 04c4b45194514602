//! Adding a nearby device from the Devices page: both devices show the
//! same code, nothing happens until both persons said yes, and a "no" on
//! either side leaves the device out (two `glow serve` on one LAN, driven
//! over their HTTP APIs as the page's buttons do).

use crate::fixtures::*;
use crate::lan::Lan;
use crate::overlay::{banner_id, glow_in, node_list};
use serde_json::{Value, json};

/// One API call as `user` (from the LAN's client side): status and body.
fn call(
    lan: &Lan,
    base: &str,
    user: (&str, &str),
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (url, user, pw) = (
        format!("{base}{path}"),
        user.0.to_owned(),
        user.1.to_owned(),
    );
    lan.client(move || async move {
        let req = match body {
            Some(b) => client().post(url).json(&b),
            None => client().get(url),
        };
        let r = req.basic_auth(user, Some(pw)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    })
}

const ADMIN: (&str, &str) = ("admin", ADMIN_PW);

/// The one pairing `base` lists with `node`, once it is in `state`.
async fn pairing_in(lan: &Lan, base: &str, node: &str, state: &str) -> Value {
    let mut found = Value::Null;
    eventually(
        30,
        &format!("a pairing with {node} in state {state}"),
        || {
            let (status, list) = call(lan, base, ADMIN, "/api/v1/pairings", None);
            assert_eq!(status, 200, "{list}");
            found = list
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .find(|p| p["node"] == node)
                .cloned()
                .unwrap_or(Value::Null);
            let ok = found["state"] == state;
            async move { ok }
        },
    )
    .await;
    found
}

#[tokio::test]
async fn a_nearby_device_is_added_from_the_page_once_both_sides_confirm_the_code() {
    let lan = Lan::new();
    let (a, b) = (Env::new(Backend::Sqlite), Env::new(Backend::Sqlite));
    let on = ["--overlay", "0.0.0.0:0"];
    let mut srv_a = lan.serve(&a, &[&on[..], &["--name", "laptop"]].concat());
    let mut srv_b = lan.serve_on_client(&b, &[&on[..], &["--name", "nas"]].concat());
    let (id_a, id_b) = (banner_id(&srv_a), banner_id(&srv_b));
    let (base_a, base_b) = (srv_a.base.clone(), srv_b.base.clone());
    a.add_user("bob", "bob-password-1");
    for (env, ns, other) in [(&a, &lan.server_ns, &id_b), (&b, &lan.client_ns, &id_a)] {
        eventually(30, "the other node is heard", || {
            let ok = node_list(env, ns)
                .lines()
                .any(|l| l.starts_with("nearby") && l.contains(other.as_str()));
            async move { ok }
        })
        .await;
    }

    // The Devices page offers "Add" for the nearby node.
    let page = {
        let url = format!("{base_a}/devices");
        lan.client(move || async move {
            let r = get_admin(&url).await;
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        })
    };
    assert!(
        page.contains(&format!("data-action=\"pair\" data-node=\"{id_b}\"")),
        "{page}"
    );

    // Refused: a user who is not an administrator, a node not heard on
    // the LAN, garbage, an answer to no pairing.
    let (status, _) = call(
        &lan,
        &base_a,
        ("bob", "bob-password-1"),
        "/api/v1/pairings",
        Some(json!({ "node": id_b })),
    );
    assert_eq!(status, 403);
    let stranger = "ab".repeat(32);
    let (status, body) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings",
        Some(json!({ "node": stranger })),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not heard"),
        "{body}"
    );
    let (status, _) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings",
        Some(json!({ "node": 12 })),
    );
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings/decide",
        Some(json!({ "id": 999, "accept": true })),
    );
    assert_eq!(status, 404);

    // First offer: the laptop's person confirms, the NAS's says no. The
    // NAS stays out.
    let (status, offered) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings",
        Some(json!({ "node": id_b })),
    );
    assert_eq!(status, 200, "{offered}");
    let code = offered["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 7, "{code}");
    let theirs = pairing_in(&lan, &base_b, &id_a, "confirm").await;
    assert_eq!(theirs["code"], code, "both devices show the same code");
    assert_eq!(theirs["outgoing"], false);
    // The NAS's Devices page shows the offer and the code.
    let page = {
        let url = format!("{base_b}/devices");
        lan.client(move || async move { get_admin(&url).await.text().await.unwrap() })
    };
    assert!(page.contains(&code) && page.contains("laptop"), "{page}");
    let (status, _) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings/decide",
        Some(json!({ "id": offered["id"], "accept": true })),
    );
    assert_eq!(status, 200);
    pairing_in(&lan, &base_a, &id_b, "waiting").await;
    let (status, _) = call(
        &lan,
        &base_b,
        ADMIN,
        "/api/v1/pairings/decide",
        Some(json!({ "id": theirs["id"], "accept": false })),
    );
    assert_eq!(status, 200);
    let ended = pairing_in(&lan, &base_a, &id_b, "failed").await;
    assert!(
        ended["detail"].as_str().unwrap().contains("said no"),
        "{ended}"
    );
    assert!(
        !node_list(&a, &lan.server_ns)
            .lines()
            .any(|l| l.starts_with("member") && l.contains(&id_b)),
        "a declined device is not a member"
    );

    // Second offer: the NAS says yes first, then the laptop; the NAS joins
    // and both list each other as members.
    let (status, offered) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings",
        Some(json!({ "node": id_b })),
    );
    assert_eq!(status, 200, "{offered}");
    let theirs = pairing_in(&lan, &base_b, &id_a, "confirm").await;
    assert_eq!(theirs["code"], offered["code"]);
    let (status, _) = call(
        &lan,
        &base_b,
        ADMIN,
        "/api/v1/pairings/decide",
        Some(json!({ "id": theirs["id"], "accept": true })),
    );
    assert_eq!(status, 200);
    let (status, _) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings/decide",
        Some(json!({ "id": offered["id"], "accept": true })),
    );
    assert_eq!(status, 200);
    pairing_in(&lan, &base_a, &id_b, "done").await;
    pairing_in(&lan, &base_b, &id_a, "done").await;
    for (env, ns, other) in [(&a, &lan.server_ns, &id_b), (&b, &lan.client_ns, &id_a)] {
        eventually(30, "the devices link as members", || {
            let ok = node_list(env, ns)
                .lines()
                .any(|l| l.starts_with("member") && l.contains(other.as_str()));
            async move { ok }
        })
        .await;
    }
    // bob, made on the laptop before, now signs in on the NAS (awaited in
    // its catalog first: failed sign-ins would trip the rate limiter).
    eventually(30, "bob reaches the NAS", || {
        let ok = glow_in(&b, &lan.client_ns, &["user", "list"])
            .1
            .contains("bob");
        async move { ok }
    })
    .await;
    let (status, _) = call(&lan, &base_b, ("bob", "bob-password-1"), "/api/v1/me", None);
    assert_eq!(status, 200);
    // A member is not offered again.
    let (status, body) = call(
        &lan,
        &base_a,
        ADMIN,
        "/api/v1/pairings",
        Some(json!({ "node": id_b })),
    );
    assert_eq!(status, 409, "{body}");
    srv_b.terminate();
    srv_a.terminate();
}

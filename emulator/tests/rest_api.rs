//! REST data plane: sends, filters, group management, closes, permissions, tokens.

mod common;
use common::*;
use serde_json::{json, Value};
use webpubsub_emulator::Emulator;

const V: &str = "api-version=2024-12-01";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn client(
    emu: &webpubsub_emulator::Emulator,
    user: Option<&str>,
    groups: &[&str],
) -> (Ws, String) {
    let url = emu.client_access_url("hub", user, &["webpubsub.joinLeaveGroup"], groups, HOUR);
    let (ws, c) = connect_pubsub(&url, JSON).await;
    (ws, c["connectionId"].as_str().unwrap().to_string())
}

/// `call` for `/api/hubs/hub/{rest}` with the api-version.
async fn op(emu: &Emulator, method: &str, rest: &str) -> u16 {
    call(emu, method, &format!("/api/hubs/hub/{rest}?{V}")).await
}

/// The next data message a connection sees.
async fn next_data(ws: &mut Ws) -> Value {
    recv_until(ws, |v| v["type"] == "message").await
}

#[tokio::test]
async fn send_operations_and_content_types() {
    let emu = emulator().await;
    let (mut a, a_id) = client(&emu, Some("alice"), &["g"]).await;
    let (mut b, _) = client(&emu, Some("bob"), &[]).await;

    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/:send?{V}"),
            "application/json",
            br#"{"hello": "world"}"#
        )
        .await,
        202
    );
    for ws in [&mut a, &mut b] {
        assert_eq!(
            recv_json(ws).await,
            json!({"type":"message","from":"server","dataType":"json","data":{"hello":"world"}})
        );
    }
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/groups/g/:send?{V}"),
        true,
        Some("text/plain; charset=utf-8"),
        b"to group",
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        recv_json(&mut a).await,
        json!({"type":"message","from":"group","group":"g","dataType":"text","data":"to group"})
    );
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/users/{}/:send?{V}", enc("bob")),
            "application/octet-stream",
            &[1, 2, 3]
        )
        .await,
        202
    );
    assert_eq!(recv_json(&mut b).await["data"], "AQID");
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/connections/{a_id}/:send?{V}"),
            "text/plain",
            b"direct"
        )
        .await,
        202
    );
    assert_eq!(recv_json(&mut a).await["data"], "direct");
    // Unknown targets are fire-and-forget.
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/connections/nobody/:send?{V}"),
            "text/plain",
            b"x"
        )
        .await,
        202
    );

    // Invalid JSON body: 400 with an error body and x-ms-error-code.
    let path = format!("/api/hubs/hub/:send?{V}");
    let r = http(
        &emu,
        "POST",
        &path,
        true,
        Some("application/json"),
        b"{nope",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.headers["x-ms-error-code"], "BadRequest");
    assert!(r.json()["message"].is_string());
    // Unauthenticated / wrong audience.
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:send?{V}"),
        false,
        Some("text/plain"),
        b"x",
    )
    .await;
    assert_eq!(r.status, 401);
    let url = format!("{}/api/hubs/hub/:send?{V}", emu.endpoint());
    let token = emu.rest_token(&format!("{}/api/hubs/other/:send", emu.endpoint()));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = hyper::Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 401);
    emu.shutdown().await;
}

#[tokio::test]
async fn excluded_and_filters_select_connections() {
    let emu = emulator().await;
    let (mut a, a_id) = client(&emu, Some("u1"), &["g1"]).await;
    let (mut b, b_id) = client(&emu, Some("u2"), &["g1", "g2"]).await;
    let (mut c, _) = client(&emu, None, &[]).await;

    let cases: Vec<(String, [bool; 3])> = vec![
        (
            format!("excluded={a_id}&excluded={b_id}"),
            [false, false, true],
        ),
        (
            format!("filter={}", enc("userId ne 'u1'")),
            [false, true, true],
        ),
        (
            format!("filter={}", enc("'g2' in groups")),
            [false, true, false],
        ),
        (
            format!(
                "filter={}",
                enc("userId in ('u1','u2') and not('g2' in groups)")
            ),
            [true, false, false],
        ),
        (
            format!(
                "filter={}",
                enc(&format!("connectionId eq '{b_id}' or userId eq null"))
            ),
            [false, true, true],
        ),
    ];
    for (i, (query, expect)) in cases.iter().enumerate() {
        assert_eq!(
            post(
                &emu,
                &format!("/api/hubs/hub/:send?{query}&{V}"),
                "text/plain",
                format!("case{i}").as_bytes()
            )
            .await,
            202,
            "{query}"
        );
        // A marker to everyone shows whether the case message was delivered first.
        assert_eq!(
            post(
                &emu,
                &format!("/api/hubs/hub/:send?{V}"),
                "text/plain",
                b"marker"
            )
            .await,
            202
        );
        for (ws, want) in [&mut a, &mut b, &mut c].into_iter().zip(expect) {
            let first = next_data(ws).await;
            if *want {
                assert_eq!(first["data"], format!("case{i}"), "{query}");
                assert_eq!(next_data(ws).await["data"], "marker");
            } else {
                assert_eq!(first["data"], "marker", "{query}");
            }
        }
    }
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/:send?filter={}&{V}", enc("userId eq")),
            "text/plain",
            b"x"
        )
        .await,
        400
    );
    // Group send honours excluded.
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/groups/g1/:send?excluded={a_id}&{V}"),
            "text/plain",
            b"gx"
        )
        .await,
        202
    );
    assert_eq!(recv_json(&mut b).await["data"], "gx");
    emu.shutdown().await;
}

#[tokio::test]
async fn group_and_user_management() {
    let emu = emulator().await;
    let (_a, a_id) = client(&emu, Some("u1"), &[]).await;
    let (_b, b_id) = client(&emu, Some("u1"), &[]).await;
    let (_c, c_id) = client(&emu, Some("u2"), &[]).await;
    assert_eq!(op(&emu, "HEAD", &format!("connections/{a_id}")).await, 200);
    assert_eq!(op(&emu, "HEAD", "connections/nope").await, 404);
    assert_eq!(op(&emu, "HEAD", "users/u1").await, 200);
    assert_eq!(op(&emu, "HEAD", "users/missing").await, 404);
    assert_eq!(op(&emu, "HEAD", "groups/g").await, 404);

    assert_eq!(
        op(&emu, "PUT", &format!("groups/g/connections/{c_id}")).await,
        200
    );
    assert_eq!(op(&emu, "HEAD", "groups/g").await, 200);
    assert_eq!(op(&emu, "PUT", "groups/g/connections/nope").await, 404);
    assert_eq!(op(&emu, "PUT", "users/u1/groups/g").await, 200);
    let path = format!("/api/hubs/hub/groups/g/connections?{V}&maxpagesize=2");
    let r = http(&emu, "GET", &path, true, None, b"").await;
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let next = page["nextLink"].as_str().expect("nextLink").to_string();
    let next_path = next.strip_prefix(&emu.endpoint()).unwrap();
    let r = http(&emu, "GET", next_path, true, None, b"").await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    assert!(r.json().get("nextLink").is_none());

    assert_eq!(op(&emu, "DELETE", "users/u1/groups/g").await, 204);
    assert_eq!(
        op(&emu, "DELETE", &format!("groups/g/connections/{c_id}")).await,
        204
    );
    assert_eq!(op(&emu, "HEAD", "groups/g").await, 404);

    let body = json!({"groups":["x","y"],"filter":"userId eq 'u1'"}).to_string();
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/:addToGroups?{V}"),
            "application/json",
            body.as_bytes()
        )
        .await,
        200
    );
    let groups_of = |id: &str| {
        emu.connections("hub")
            .into_iter()
            .find(|c| c.connection_id == id)
            .unwrap()
            .groups
    };
    assert_eq!(groups_of(&a_id), vec!["x", "y"]);
    assert_eq!(groups_of(&b_id), vec!["x", "y"]);
    assert!(groups_of(&c_id).is_empty());
    let body = json!({"groups":["x"]}).to_string();
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/:removeFromGroups?{V}"),
            "application/json",
            body.as_bytes()
        )
        .await,
        200
    );
    assert_eq!(groups_of(&a_id), vec!["y"]);
    assert_eq!(
        op(&emu, "DELETE", &format!("connections/{a_id}/groups")).await,
        204
    );
    assert!(groups_of(&a_id).is_empty());
    assert_eq!(op(&emu, "DELETE", "users/u1/groups").await, 204);
    assert!(groups_of(&b_id).is_empty());
    assert_eq!(
        op(&emu, "PUT", &format!("groups/%20%20/connections/{a_id}")).await,
        400
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn close_operations_send_disconnected_then_1000() {
    let emu = emulator().await;
    let url = emu.client_access_url("hub", Some("u1"), &[], &["g"], HOUR);
    let (mut a, ca) = connect_pubsub(&url, RELIABLE).await;
    let a_id = ca["connectionId"].as_str().unwrap();
    assert_eq!(
        call(
            &emu,
            "DELETE",
            &format!("/api/hubs/hub/connections/{a_id}?reason=bye&{V}")
        )
        .await,
        204
    );
    let (frames, code) = frames_until_close(&mut a).await;
    assert_eq!(
        frames,
        vec![json!({"type":"system","event":"disconnected","message":"bye"})]
    );
    assert_eq!(code, 1000);
    // A closed session cannot be recovered.
    expect_recovery_refused(&recovery_url(&url, &ca), RELIABLE).await;

    let (mut g1, _) = connect_pubsub(&url, JSON).await;
    let (mut g2, c2) = connect_pubsub(&url, JSON).await;
    let other = emu.client_access_url("hub", Some("u2"), &[], &[], HOUR);
    let (mut o, _) = connect_pubsub(&other, JSON).await;
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!(
                "/api/hubs/hub/groups/g/:closeConnections?excluded={}&reason=grp&{V}",
                c2["connectionId"].as_str().unwrap()
            )
        )
        .await,
        204
    );
    let (frames, code) = frames_until_close(&mut g1).await;
    assert_eq!((frames[0]["message"].as_str(), code), (Some("grp"), 1000));
    assert_eq!(op(&emu, "POST", "users/u1/:closeConnections").await, 204);
    assert_eq!(frames_until_close(&mut g2).await.1, 1000);
    assert_eq!(
        call(
            &emu,
            "POST",
            &format!("/api/hubs/hub/:closeConnections?reason=all&{V}")
        )
        .await,
        204
    );
    let (frames, code) = frames_until_close(&mut o).await;
    assert_eq!((frames[0]["message"].as_str(), code), (Some("all"), 1000));
    assert!(emu.connections("hub").is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn permissions_grant_revoke_check() {
    let emu = emulator().await;
    let url = emu.client_access_url("hub", None, &[], &[], HOUR);
    let (mut ws, c) = connect_pubsub(&url, JSON).await;
    let id = c["connectionId"].as_str().unwrap();
    // permissions/{perm}/connections/{id} with an optional targetName.
    let perm = |perm: &str, target: Option<&str>| match target {
        Some(t) => format!("permissions/{perm}/connections/{id}?targetName={t}&{V}"),
        None => format!("permissions/{perm}/connections/{id}?{V}"),
    };
    let status = |method: &'static str, path: String| {
        let emu = &emu;
        async move { call(emu, method, &format!("/api/hubs/hub/{path}")).await }
    };
    let g1 = Some("g1");
    assert_eq!(status("HEAD", perm("joinLeaveGroup", g1)).await, 404);
    assert_eq!(join(&mut ws, "g1", 1).await["error"]["name"], "Forbidden");
    assert_eq!(status("PUT", perm("joinLeaveGroup", g1)).await, 200);
    assert_eq!(status("HEAD", perm("joinLeaveGroup", g1)).await, 200);
    assert_eq!(join(&mut ws, "g1", 2).await["success"], true);
    assert_eq!(join(&mut ws, "g2", 3).await["success"], false);
    assert_eq!(status("PUT", perm("sendToGroup", None)).await, 200);
    assert_eq!(status("HEAD", perm("sendToGroup", None)).await, 200);
    assert_eq!(status("DELETE", perm("sendToGroup", None)).await, 204);
    assert_eq!(status("HEAD", perm("sendToGroup", Some("x"))).await, 404);
    assert_eq!(status("PUT", perm("teleport", None)).await, 400);
    let too_long = "x".repeat(1025);
    assert_eq!(
        status("HEAD", perm("sendToGroup", Some(&too_long))).await,
        400
    );
    let missing = format!("permissions/sendToGroup/connections/nope?{V}");
    assert_eq!(status("PUT", missing).await, 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn generate_token_returns_a_usable_client_token() {
    let emu = emulator().await;
    let query = "userId=zed&role=webpubsub.joinLeaveGroup&group=a&group=b&minutesToExpire=5";
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:generateToken?{query}&{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let token = r.json()["token"].as_str().unwrap().to_string();
    let url = format!(
        "ws://127.0.0.1:{}/client/hubs/hub?access_token={token}",
        emu.port()
    );
    let (mut ws, c) = connect_pubsub(&url, RELIABLE).await;
    assert_eq!(c["userId"], "zed");
    assert_eq!(join(&mut ws, "any", 1).await["success"], true);
    let info = emu.connections("hub");
    assert_eq!(info[0].groups, vec!["a", "any", "b"]);
    emu.shutdown().await;
}

#[tokio::test]
async fn percent_encoded_user_and_group_names() {
    let emu = emulator().await;
    let (mut ws, id) = client(&emu, Some("user 1"), &[]).await;
    assert_eq!(op(&emu, "HEAD", "users/user%201").await, 200);
    assert_eq!(
        op(&emu, "PUT", &format!("groups/a%2Fb%20c/connections/{id}")).await,
        200
    );
    assert_eq!(emu.connections("hub")[0].groups, vec!["a/b c"]);
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/groups/a%2Fb%20c/:send?{V}"),
            "text/plain",
            b"slash"
        )
        .await,
        202
    );
    let m = recv_json(&mut ws).await;
    assert_eq!(
        (m["group"].as_str(), m["data"].as_str()),
        (Some("a/b c"), Some("slash"))
    );
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/users/user%201/:send?{V}"),
            "text/plain",
            b"to user"
        )
        .await,
        202
    );
    assert_eq!(recv_json(&mut ws).await["data"], "to user");
    emu.shutdown().await;
}

#[tokio::test]
async fn deeply_nested_filter_is_rejected_with_400() {
    let emu = emulator().await;
    let (mut a, _) = client(&emu, Some("u1"), &[]).await;
    let deep = format!("{}userId eq 'u1'{}", "(".repeat(3000), ")".repeat(3000));
    let started = std::time::Instant::now();
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:send?filter={}&{V}", enc(&deep)),
        true,
        Some("text/plain"),
        b"x",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains("nested"));
    let body = json!({"groups": ["g"], "filter": format!("{}userId eq 'u1'", "not ".repeat(3000))});
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:addToGroups?{V}"),
        true,
        Some("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(started.elapsed() < DEADLINE);
    // The emulator is still serving, and a filter within the limit still selects.
    let ok = format!("{}userId eq 'u1'{}", "(".repeat(10), ")".repeat(10));
    assert_eq!(
        post(
            &emu,
            &format!("/api/hubs/hub/:send?filter={}&{V}", enc(&ok)),
            "text/plain",
            b"still here"
        )
        .await,
        202
    );
    assert_eq!(next_data(&mut a).await["data"], "still here");
    emu.shutdown().await;
}

#[tokio::test]
async fn generate_token_refuses_lifetimes_that_overflow() {
    let emu = emulator().await;
    let token = |minutes: String| {
        let emu = &emu;
        async move {
            let path = format!("/api/hubs/hub/:generateToken?minutesToExpire={minutes}&{V}");
            http(emu, "POST", &path, true, None, b"").await
        }
    };
    // minutesToExpire * 60 overflows u64, or the expiry falls after the year 9999.
    for minutes in [u64::MAX, u64::MAX / 60 + 1, 1 << 60, 10_000_000_000] {
        let r = token(minutes.to_string()).await;
        assert_eq!(r.status, 400, "{minutes}");
        assert!(r.json()["message"].as_str().unwrap().contains("too large"));
    }
    for bad in ["0", "-1", "1.5", "99999999999999999999999"] {
        assert_eq!(token(bad.to_string()).await.status, 400, "{bad}");
    }
    // A century is fine, and the token is not already expired.
    let r = token((100 * 365 * 24 * 60).to_string()).await;
    assert_eq!(r.status, 200);
    let url = format!(
        "ws://127.0.0.1:{}/client/hubs/hub?access_token={}",
        emu.port(),
        r.json()["token"].as_str().unwrap()
    );
    connect_pubsub(&url, JSON).await;
    // So is the in-process API with the longest lifetime there is.
    let url = emu.client_access_url("hub", None, &[], &[], std::time::Duration::MAX);
    connect_pubsub(&url, JSON).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn an_escaped_slash_in_the_audience_does_not_authorize_other_paths() {
    let emu = emulator().await;
    let (_ws, id) = client(&emu, Some("x"), &[]).await;
    let request = |path: String, aud_path: String| {
        let emu = &emu;
        async move {
            let url = format!("{}{path}", emu.endpoint());
            let token = emu.rest_token(&format!("{}{aud_path}", emu.endpoint()));
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            let req = hyper::Request::put(url)
                .header("authorization", format!("Bearer {token}"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            client.request(req).await.unwrap().status().as_u16()
        }
    };
    // A token for user "x/groups/g" (one escaped segment) must not add user "x" to group g.
    let escaped = format!("/api/hubs/hub/users/x%2Fgroups%2Fg/groups/h?{V}");
    let split = format!("/api/hubs/hub/users/x/groups/g?{V}");
    assert_eq!(request(split.clone(), escaped.clone()).await, 401);
    assert_eq!(request(split.clone(), split).await, 200);
    assert_eq!(emu.connections("hub")[0].groups, vec!["g"]);
    assert_eq!(emu.connections("hub")[0].connection_id, id);
    // Equivalent spellings of one path still match.
    let spelled = format!("/api/hubs/hub/users/%78/groups/k?{V}");
    let plain = format!("/api/hubs/hub/users/x/groups/k?{V}");
    assert_eq!(request(spelled, plain).await, 200);
    emu.shutdown().await;
}

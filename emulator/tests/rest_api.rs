//! REST data plane: sends, filters, group management, closes, permissions, tokens.

mod common;
use common::*;
use serde_json::{json, Value};

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

/// The next data message a connection sees.
async fn next_data(ws: &mut Ws) -> Value {
    recv_until(ws, |v| v["type"] == "message").await
}

#[tokio::test]
async fn send_operations_and_content_types() {
    let emu = emulator().await;
    let (mut a, a_id) = client(&emu, Some("alice"), &["g"]).await;
    let (mut b, _) = client(&emu, Some("bob"), &[]).await;

    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:send?{V}"),
        true,
        Some("application/json"),
        br#"{"hello": "world"}"#,
    )
    .await;
    assert_eq!(r.status, 202);
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
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/users/{}/:send?{V}", enc("bob")),
        true,
        Some("application/octet-stream"),
        &[1, 2, 3],
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(recv_json(&mut b).await["data"], "AQID");
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/connections/{a_id}/:send?{V}"),
        true,
        Some("text/plain"),
        b"direct",
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(recv_json(&mut a).await["data"], "direct");
    // Unknown targets are fire-and-forget.
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/connections/nobody/:send?{V}"),
        true,
        Some("text/plain"),
        b"x",
    )
    .await;
    assert_eq!(r.status, 202);

    // Invalid JSON body: 400 with an error body and x-ms-error-code.
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:send?{V}"),
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
        let r = http(
            &emu,
            "POST",
            &format!("/api/hubs/hub/:send?{query}&{V}"),
            true,
            Some("text/plain"),
            format!("case{i}").as_bytes(),
        )
        .await;
        assert_eq!(r.status, 202, "{query}");
        // A marker to everyone shows whether the case message was delivered first.
        let r = http(
            &emu,
            "POST",
            &format!("/api/hubs/hub/:send?{V}"),
            true,
            Some("text/plain"),
            b"marker",
        )
        .await;
        assert_eq!(r.status, 202);
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
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:send?filter={}&{V}", enc("userId eq")),
        true,
        Some("text/plain"),
        b"x",
    )
    .await;
    assert_eq!(r.status, 400);
    // Group send honours excluded.
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/groups/g1/:send?excluded={a_id}&{V}"),
        true,
        Some("text/plain"),
        b"gx",
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(recv_json(&mut b).await["data"], "gx");
    emu.shutdown().await;
}

#[tokio::test]
async fn group_and_user_management() {
    let emu = emulator().await;
    let (_a, a_id) = client(&emu, Some("u1"), &[]).await;
    let (_b, b_id) = client(&emu, Some("u1"), &[]).await;
    let (_c, c_id) = client(&emu, Some("u2"), &[]).await;
    let head = |p: String| {
        let emu = &emu;
        async move {
            http(emu, "HEAD", &format!("{p}?{V}"), true, None, b"")
                .await
                .status
        }
    };
    assert_eq!(head(format!("/api/hubs/hub/connections/{a_id}")).await, 200);
    assert_eq!(head("/api/hubs/hub/connections/nope".into()).await, 404);
    assert_eq!(head("/api/hubs/hub/users/u1".into()).await, 200);
    assert_eq!(head("/api/hubs/hub/users/missing".into()).await, 404);
    assert_eq!(head("/api/hubs/hub/groups/g".into()).await, 404);

    let r = http(
        &emu,
        "PUT",
        &format!("/api/hubs/hub/groups/g/connections/{c_id}?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(head("/api/hubs/hub/groups/g".into()).await, 200);
    let r = http(
        &emu,
        "PUT",
        &format!("/api/hubs/hub/groups/g/connections/nope?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 404);
    let r = http(
        &emu,
        "PUT",
        &format!("/api/hubs/hub/users/u1/groups/g?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = http(
        &emu,
        "GET",
        &format!("/api/hubs/hub/groups/g/connections?{V}&maxpagesize=2"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let page = r.json();
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let next = page["nextLink"].as_str().expect("nextLink").to_string();
    let next_path = next.strip_prefix(&emu.endpoint()).unwrap();
    let r = http(&emu, "GET", next_path, true, None, b"").await;
    assert_eq!(r.json()["value"].as_array().unwrap().len(), 1);
    assert!(r.json().get("nextLink").is_none());

    let r = http(
        &emu,
        "DELETE",
        &format!("/api/hubs/hub/users/u1/groups/g?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    let r = http(
        &emu,
        "DELETE",
        &format!("/api/hubs/hub/groups/g/connections/{c_id}?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(head("/api/hubs/hub/groups/g".into()).await, 404);

    let body = json!({"groups":["x","y"],"filter":"userId eq 'u1'"}).to_string();
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:addToGroups?{V}"),
        true,
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
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
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:removeFromGroups?{V}"),
        true,
        Some("application/json"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(groups_of(&a_id), vec!["y"]);
    let r = http(
        &emu,
        "DELETE",
        &format!("/api/hubs/hub/connections/{a_id}/groups?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(groups_of(&a_id).is_empty());
    let r = http(
        &emu,
        "DELETE",
        &format!("/api/hubs/hub/users/u1/groups?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(groups_of(&b_id).is_empty());
    let r = http(
        &emu,
        "PUT",
        &format!("/api/hubs/hub/groups/%20%20/connections/{a_id}?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 400);
    emu.shutdown().await;
}

#[tokio::test]
async fn close_operations_send_disconnected_then_1000() {
    let emu = emulator().await;
    let url = emu.client_access_url("hub", Some("u1"), &[], &["g"], HOUR);
    let (mut a, ca) = connect_pubsub(&url, RELIABLE).await;
    let a_id = ca["connectionId"].as_str().unwrap();
    let r = http(
        &emu,
        "DELETE",
        &format!("/api/hubs/hub/connections/{a_id}?reason=bye&{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    let (frames, code) = frames_until_close(&mut a).await;
    assert_eq!(
        frames,
        vec![json!({"type":"system","event":"disconnected","message":"bye"})]
    );
    assert_eq!(code, 1000);
    let rec = format!(
        "{url}&awps_connection_id={a_id}&awps_reconnection_token={}",
        ca["reconnectionToken"].as_str().unwrap()
    );
    let (mut r, _) = try_connect(&rec, &[RELIABLE]).await.unwrap();
    assert_eq!(
        expect_close(&mut r).await,
        1008,
        "closed sessions cannot be recovered"
    );

    let (mut g1, _) = connect_pubsub(&url, JSON).await;
    let (mut g2, c2) = connect_pubsub(&url, JSON).await;
    let other = emu.client_access_url("hub", Some("u2"), &[], &[], HOUR);
    let (mut o, _) = connect_pubsub(&other, JSON).await;
    let r = http(
        &emu,
        "POST",
        &format!(
            "/api/hubs/hub/groups/g/:closeConnections?excluded={}&reason=grp&{V}",
            c2["connectionId"].as_str().unwrap()
        ),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    let (frames, code) = frames_until_close(&mut g1).await;
    assert_eq!((frames[0]["message"].as_str(), code), (Some("grp"), 1000));
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/users/u1/:closeConnections?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(frames_until_close(&mut g2).await.1, 1000);
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/:closeConnections?reason=all&{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
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
    let p = |perm: &str, target: &str| {
        format!("/api/hubs/hub/permissions/{perm}/connections/{id}?{target}{V}")
    };
    assert_eq!(
        http(
            &emu,
            "HEAD",
            &p("joinLeaveGroup", "targetName=g1&"),
            true,
            None,
            b""
        )
        .await
        .status,
        404
    );
    assert_eq!(join(&mut ws, "g1", 1).await["error"]["name"], "Forbidden");
    assert_eq!(
        http(
            &emu,
            "PUT",
            &p("joinLeaveGroup", "targetName=g1&"),
            true,
            None,
            b""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        http(
            &emu,
            "HEAD",
            &p("joinLeaveGroup", "targetName=g1&"),
            true,
            None,
            b""
        )
        .await
        .status,
        200
    );
    assert_eq!(join(&mut ws, "g1", 2).await["success"], true);
    assert_eq!(join(&mut ws, "g2", 3).await["success"], false);
    assert_eq!(
        http(&emu, "PUT", &p("sendToGroup", ""), true, None, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        http(&emu, "HEAD", &p("sendToGroup", ""), true, None, b"")
            .await
            .status,
        200
    );
    assert_eq!(
        http(&emu, "DELETE", &p("sendToGroup", ""), true, None, b"")
            .await
            .status,
        204
    );
    assert_eq!(
        http(
            &emu,
            "HEAD",
            &p("sendToGroup", "targetName=x&"),
            true,
            None,
            b""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        http(&emu, "PUT", &p("teleport", ""), true, None, b"")
            .await
            .status,
        400
    );
    let missing = format!("/api/hubs/hub/permissions/sendToGroup/connections/nope?{V}");
    assert_eq!(
        http(&emu, "PUT", &missing, true, None, b"").await.status,
        404
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn generate_token_returns_a_usable_client_token() {
    let emu = emulator().await;
    let r = http(&emu, "POST", &format!("/api/hubs/hub/:generateToken?userId=zed&role=webpubsub.joinLeaveGroup&group=a&group=b&minutesToExpire=5&{V}"), true, None, b"").await;
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
    let r = http(
        &emu,
        "HEAD",
        &format!("/api/hubs/hub/users/user%201?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = http(
        &emu,
        "PUT",
        &format!("/api/hubs/hub/groups/a%2Fb%20c/connections/{id}?{V}"),
        true,
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.connections("hub")[0].groups, vec!["a/b c"]);
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/groups/a%2Fb%20c/:send?{V}"),
        true,
        Some("text/plain"),
        b"slash",
    )
    .await;
    assert_eq!(r.status, 202);
    let m = recv_json(&mut ws).await;
    assert_eq!(
        (m["group"].as_str(), m["data"].as_str()),
        (Some("a/b c"), Some("slash"))
    );
    let r = http(
        &emu,
        "POST",
        &format!("/api/hubs/hub/users/user%201/:send?{V}"),
        true,
        Some("text/plain"),
        b"to user",
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(recv_json(&mut ws).await["data"], "to user");
    emu.shutdown().await;
}

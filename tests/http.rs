//! HTTP behaviour: limits, health, request ids, GraphiQL, error codes on every error.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn oversized_bodies_and_deep_queries_are_refused_before_running() {
    let app = TestApp::spawn_with(|s| s.server.max_body_bytes = 10_000).await;
    let big = format!(
        r#"{{"query":"{{ contacts {{ totalCount }} }}","variables":{{"pad":"{}"}}}}"#,
        "x".repeat(20_000)
    );
    let (status, body) = app.post(Some(&app.key), big.into_bytes()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");

    // Cheap (one row a level) but deeper than the limit of 12.
    let deep = format!(
        "{{ contacts(first: 1) {{ nodes {}{{ id }}{} }} }}",
        "{ company { contacts(first: 1) { nodes ".repeat(5),
        " } } }".repeat(5)
    );
    let (code, message) = app.gql_error(&deep, json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("nested too deep"), "{message}");

    let (code, _) = app.gql_error("{ contacts { nosuchfield } }", json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    let (status, body) = app.post(Some(&app.key), b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Nested connections multiply their cost.
    let costly = "{ companies(first: 100) { nodes { contacts(first: 100) { nodes { email tags company { name } owner { name } } } } } }";
    let (code, message) = app.gql_error(costly, json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("complex"), "{message}");
}

#[tokio::test]
async fn health_readiness_request_ids_and_graphiql() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let health = client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.headers().get("x-request-id").is_some_and(|v| !v.is_empty()));
    let graphiql = client.get(format!("{}/graphql", app.address)).send().await.unwrap();
    assert_eq!(graphiql.status(), StatusCode::OK);
    let page = graphiql.text().await.unwrap();
    assert!(page.contains("/graphiql/graphiql.min.js"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere: {page}"
    );
}

/// GraphiQL's assets come from the binary, with the types browsers insist on, gzipped when the
/// browser accepts it.
#[tokio::test]
async fn graphiql_assets_are_served_by_the_server_itself() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    for (file, content_type) in [
        ("graphiql.min.js", "text/javascript"),
        ("graphiql.min.css", "text/css"),
        ("react.production.min.js", "text/javascript"),
        ("react-dom.production.min.js", "text/javascript"),
    ] {
        let response = client
            .get(format!("{}/graphiql/{file}", app.address))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{file}"
        );
        assert_eq!(response.headers()["content-encoding"], "gzip", "{file}");
    }
    let missing = client
        .get(format!("{}/graphiql/nope.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Parsed documents are kept by their text (`graphql::parsed`): sent again, a query must still
/// be validated, limited and run for this request's operation, variables and key.
#[tokio::test]
async fn a_query_sent_again_is_checked_and_run_afresh() {
    let app = TestApp::spawn().await;
    app.create_contact(json!({ "email": "ada@example.com", "firstName": "Ada" }))
        .await;
    let document = "query Emails($n: Int) { contacts(first: $n) { nodes { email } } } query Names { contacts { nodes { firstName } } }";
    for _ in 0..2 {
        for (operation, expected) in [
            ("Emails", json!({ "email": "ada@example.com" })),
            ("Names", json!({ "firstName": "Ada" })),
        ] {
            let body = json!({ "query": document, "operationName": operation, "variables": { "n": 5 } });
            let (status, body) = app.post(Some(&app.key), serde_json::to_vec(&body).unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["data"]["contacts"]["nodes"][0], expected, "{operation}: {body}");
        }
        // The same text with a variable of the wrong type, and a page over the limit.
        let (code, _) = app
            .gql_error(
                "query Emails($n: Int) { contacts(first: $n) { nodes { email } } }",
                json!({ "n": "five" }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT");
        let (code, _) = app
            .gql_error(
                "query Emails($n: Int) { contacts(first: $n) { nodes { email } } }",
                json!({ "n": 1000 }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT");
        let (code, message) = app.gql_error("{ contacts { nodes { email } ", json!({})).await;
        assert_eq!(code, "BAD_USER_INPUT", "{message}");
        // Another workspace's key sees its own (empty) workspace through the same text.
        let other = app.other_workspace("contacts:read").await;
        let (_, body) = app
            .gql_as(
                Some(&other),
                "query Emails($n: Int) { contacts(first: $n) { nodes { email } } }",
                json!({ "n": 5 }),
            )
            .await;
        assert_eq!(body["data"]["contacts"]["nodes"], json!([]), "{body}");
    }
}

/// Tracking SDKs compress their bodies (RudderStack's gzips by default): gzip and deflate are
/// inflated, and the size limit counts inflated bytes, so a small body that inflates to more
/// than a batch may hold is refused, not expanded.
#[tokio::test]
async fn compressed_tracking_bodies_are_inflated_within_the_limits() {
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use std::io::Write;
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let send = |encoding: &'static str, body: Vec<u8>| {
        let url = format!("{}/v1/batch", app.address);
        let key = key.clone();
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .basic_auth(key, Some(""))
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let batch = |id: &str| {
        serde_json::to_vec(&json!({ "batch": [
            { "type": "identify", "userId": id, "messageId": format!("{id}-1"), "traits": { "email": format!("{id}@example.com") } },
            { "type": "track", "userId": id, "messageId": format!("{id}-2"), "event": "Order Completed" }
        ] }))
        .unwrap()
    };

    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(&batch("gz")).unwrap();
    let (status, body) = send("gzip", gzip.finish().unwrap()).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 2, "{body}");

    // HTTP's `deflate` is the zlib format (RFC 9110), as browsers and SDKs send it.
    let mut deflate = ZlibEncoder::new(Vec::new(), Compression::default());
    deflate.write_all(&batch("df")).unwrap();
    let (status, body) = send("deflate", deflate.finish().unwrap()).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 2, "{body}");

    // 4 MB of padding compresses to a few KB; inflated it passes the 500 KB limit.
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(br#"{"batch": [], "padding": ""#).unwrap();
    bomb.write_all(&vec![b'0'; 4 * 1024 * 1024]).unwrap();
    bomb.write_all(br#""}"#).unwrap();
    let compressed = bomb.finish().unwrap();
    assert!(compressed.len() < 20 * 1024, "{}", compressed.len());
    let (status, body) = send("gzip", compressed).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");

    // A body that says gzip but is not: a clear 400, nothing stored.
    let (status, body) = send("gzip", b"not gzip at all".to_vec()).await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let data = app.gql("{ contacts { totalCount } }", json!({})).await;
    assert_eq!(data["contacts"]["totalCount"], 2);
}

/// analytics.js in a browser on another site: `text/plain` bodies with the write key inside, the
/// one-letter paths, and CORS (a preflight answered, every answer allowing the calling origin).
#[tokio::test]
async fn analytics_js_sends_from_any_origin() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let client = reqwest::Client::new();
    let origin = "https://shop.example.com";

    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/t", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-origin"], origin);
    assert!(
        preflight.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(
        preflight.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Content-Type")
    );

    let post = |path: &'static str, body: serde_json::Value| {
        let request = client
            .post(format!("{}{path}", app.address))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(serde_json::to_vec(&body).unwrap());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let allowed = response.headers().get("access-control-allow-origin").cloned();
            (status, allowed, response.text().await.unwrap())
        }
    };
    for (path, body) in [
        (
            "/v1/p",
            json!({ "writeKey": key, "anonymousId": "browser-1", "messageId": "b-1", "name": "Pricing" }),
        ),
        (
            "/v1/t",
            json!({ "writeKey": key, "anonymousId": "browser-1", "messageId": "b-2", "event": "Order Completed" }),
        ),
        (
            "/v1/i",
            json!({ "writeKey": key, "anonymousId": "browser-1", "userId": "js-1", "messageId": "b-3", "traits": { "email": "js@example.com" } }),
        ),
        (
            "/v1/b",
            json!({ "writeKey": key, "batch": [{ "type": "track", "userId": "js-1", "messageId": "b-4", "event": "Cart Updated" }] }),
        ),
    ] {
        let (status, allowed, text) = post(path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert_eq!(allowed.unwrap(), origin, "{path}");
    }
    let (status, allowed, _) = post("/v1/x", json!({ "writeKey": key })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(allowed.unwrap(), origin);

    let data = app
        .gql(
            "{ contacts(filter: {email: {eq: \"js@example.com\"}}) { nodes { timeline { nodes { type } } } } }",
            json!({}),
        )
        .await;
    let mut types: Vec<String> = data["contacts"]["nodes"][0]["timeline"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["CART_UPDATED", "IDENTIFIED", "ORDER_COMPLETED", "PAGE_VIEWED"],
        "{data}"
    );
}

/// A write key limited to some sites: their browsers send, other sites' browsers are refused
/// (nothing stored), server libraries (no `Origin`) still send; bad origins are user errors.
#[tokio::test]
async fn a_write_key_limited_to_some_sites_refuses_the_others() {
    let app = TestApp::spawn().await;
    let created = app
        .gql(
            r#"mutation { writeKeyCreate(name: "shop", allowedOrigins: ["https://Shop.Example.com/", "http://localhost:3000"]) {
                secret writeKey { id allowedOrigins } userErrors { field code } } }"#,
            json!({}),
        )
        .await;
    let created = &created["writeKeyCreate"];
    assert_eq!(
        created["writeKey"]["allowedOrigins"],
        json!(["https://shop.example.com", "http://localhost:3000"]),
        "{created}"
    );
    let key = created["secret"].as_str().unwrap().to_owned();
    let key_id = created["writeKey"]["id"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let send = |origin: Option<&'static str>, message_id: &'static str| {
        let mut request = client
            .post(format!("{}/v1/t", app.address))
            .header("content-type", "text/plain")
            .body(
                serde_json::to_vec(
                    &json!({ "writeKey": key, "anonymousId": "v1", "event": "Seen", "messageId": message_id }),
                )
                .unwrap(),
            );
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, _) = send(Some("https://shop.example.com"), "m1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(Some("https://evil.example"), "m2").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("origin_not_allowed"), "{body}");
    let (status, _) = send(None, "m3").await;
    assert_eq!(status, StatusCode::OK);
    let events = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(events["events"]["totalCount"], 2, "{events}");

    // Opened to every site: the refused one sends now (the cached key was forgotten).
    let set = app
        .gql(
            r#"mutation($id: ID!) { writeKeySetOrigins(id: $id, allowedOrigins: ["*"]) { writeKey { allowedOrigins } userErrors { field } } }"#,
            json!({ "id": key_id }),
        )
        .await;
    assert_eq!(
        set["writeKeySetOrigins"]["writeKey"]["allowedOrigins"],
        json!(["*"]),
        "{set}"
    );
    let (status, _) = send(Some("https://evil.example"), "m4").await;
    assert_eq!(status, StatusCode::OK);

    for (origins, field) in [
        (json!(["ftp://shop.example.com"]), json!(["allowedOrigins", "0"])),
        (
            json!(["https://ok.example", "https://shop.example.com/path"]),
            json!(["allowedOrigins", "1"]),
        ),
        (json!(["shop.example.com"]), json!(["allowedOrigins", "0"])),
    ] {
        let data = app
            .gql(
                "mutation($o: [String!]!) { writeKeyCreate(name: \"bad\", allowedOrigins: $o) { secret userErrors { field code message } } }",
                json!({ "o": origins }),
            )
            .await;
        let payload = &data["writeKeyCreate"];
        assert_eq!(payload["secret"], json!(null), "{payload}");
        assert_eq!(payload["userErrors"][0]["field"], field, "{payload}");
        assert_eq!(payload["userErrors"][0]["code"], "INVALID", "{payload}");
    }
    let keys = app.gql("{ writeKeys { name } }", json!({})).await;
    assert_eq!(
        keys["writeKeys"].as_array().unwrap().len(),
        1,
        "a refused key is not made: {keys}"
    );
}

//! Credentials and scopes.

use crate::support::{TestApp, codes};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn missing_wrong_and_revoked_keys_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let (status, body) = app.gql_as(None, "{ contacts { totalCount } }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    for key in ["vxk_wrong", "not-even-a-key"] {
        let (status, body) = app.gql_as(Some(key), "{ contacts { totalCount } }", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }

    let data = app
        .gql(r#"mutation { apiKeyCreate(input: {name: "ci", scopes: ["contacts:read"]}) { apiKey { id prefix scopes } secret } }"#, json!({}))
        .await;
    let secret = data["apiKeyCreate"]["secret"].as_str().unwrap().to_owned();
    let id = data["apiKeyCreate"]["apiKey"]["id"].clone();
    assert!(secret.starts_with(data["apiKeyCreate"]["apiKey"]["prefix"].as_str().unwrap()));
    let (status, _) = app
        .gql_as(Some(&secret), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let data = app
        .gql(
            "mutation($id: ID!) { apiKeyRevoke(id: $id) { apiKey { revokedAt } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(data["apiKeyRevoke"]["apiKey"]["revokedAt"].is_string());
    let (status, body) = app
        .gql_as(Some(&secret), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    // Keys are stored hashed: the secret appears nowhere in the table.
    let listed = app.gql("{ apiKeys { prefix scopes revokedAt } }", json!({})).await;
    assert!(!listed.to_string().contains(&secret));
}

#[tokio::test]
async fn scopes_are_enforced_per_field() {
    let app = TestApp::spawn().await;
    let reader = app.key_with("contacts:read").await;
    let (_, body) = app
        .gql_as(
            Some(&reader),
            "{ contacts { totalCount } viewer { scopes } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["contacts"]["totalCount"], 0);
    assert_eq!(body["data"]["viewer"]["scopes"], json!(["contacts:read"]));

    let (_, body) = app
        .gql_as(
            Some(&reader),
            r#"mutation { contactCreate(input: {email: "a@b.co"}) { contact { id } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("contacts:write")
    );
    let (_, body) = app.gql_as(Some(&reader), "{ users { totalCount } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(app.contact_count().await, 0);

    // A key cannot mint a key with scopes it does not hold.
    let admin_only = app.key_with("workspace:admin").await;
    let (_, body) = app
        .gql_as(Some(&admin_only), r#"mutation { apiKeyCreate(input: {name: "x", scopes: ["contacts:write"]}) { secret userErrors { code message } } }"#, json!({}))
        .await;
    assert_eq!(codes(&body["data"]["apiKeyCreate"]), ["INVALID"]);
    assert_eq!(body["data"]["apiKeyCreate"]["secret"], json!(null));
    let (_, body) = app
        .gql_as(Some(&admin_only), r#"mutation { apiKeyCreate(input: {name: "x", scopes: ["contacts:delete"]}) { userErrors { code message } } }"#, json!({}))
        .await;
    assert!(
        body["data"]["apiKeyCreate"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown scope")
    );
}

/// Behind a load balancer: a key revoked through one server is refused by every server at once,
/// though each has just served it (PostgreSQL servers keep live keys in memory).
#[tokio::test]
async fn a_key_revoked_on_one_server_is_refused_by_every_server() {
    let app = TestApp::spawn().await;
    let other = app.another_server().await;
    let data = app
        .gql(
            r#"mutation { apiKeyCreate(input: {name: "lb", scopes: ["contacts:read"]}) { apiKey { id } secret } }"#,
            json!({}),
        )
        .await;
    let secret = data["apiKeyCreate"]["secret"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let status_at = |address: String| {
        let request = client
            .post(format!("{address}/graphql"))
            .bearer_auth(&secret)
            .json(&json!({ "query": "{ contacts { totalCount } }" }));
        async move { request.send().await.expect("request").status() }
    };
    for _ in 0..3 {
        assert_eq!(status_at(app.address.clone()).await, StatusCode::OK);
        assert_eq!(status_at(other.clone()).await, StatusCode::OK);
    }

    app.gql(
        "mutation($id: ID!) { apiKeyRevoke(id: $id) { userErrors { code } } }",
        json!({ "id": data["apiKeyCreate"]["apiKey"]["id"] }),
    )
    .await;
    assert_eq!(status_at(app.address.clone()).await, StatusCode::UNAUTHORIZED);
    // The other server hears of it by notification: a moment, far less than an entry's lifetime.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while status_at(other.clone()).await != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "the other server still accepts the revoked key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The same for write keys, which every tracking call presents: rotated or revoked through one
/// server, the old secret is refused by every server at once, though each has just accepted it.
#[tokio::test]
async fn a_write_key_rotated_or_revoked_on_one_server_is_refused_by_every_server() {
    let app = TestApp::spawn().await;
    let other = app.another_server().await;
    let client = reqwest::Client::new();
    let status_at = |address: String, key: String| {
        let request = client
            .post(format!("{address}/v1/track"))
            .basic_auth(key, Some(""))
            .json(&json!({ "userId": "u", "event": "Ping" }));
        async move { request.send().await.expect("request").status() }
    };
    let refused_everywhere = |key: String| {
        let (app, other) = (app.address.clone(), other.clone());
        async move {
            assert_eq!(status_at(app, key.clone()).await, StatusCode::UNAUTHORIZED);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while status_at(other.clone(), key.clone()).await != StatusCode::UNAUTHORIZED {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the other server still accepts the old write key"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let key = app.write_key().await;
    for _ in 0..3 {
        assert_eq!(status_at(app.address.clone(), key.clone()).await, StatusCode::OK);
        assert_eq!(status_at(other.clone(), key.clone()).await, StatusCode::OK);
    }
    let id = app.gql("{ writeKeys { id } }", json!({})).await["writeKeys"][0]["id"].clone();
    let data = app
        .gql(
            "mutation($id: ID!) { writeKeyRotate(id: $id) { writeKey { id } secret } }",
            json!({ "id": id }),
        )
        .await;
    refused_everywhere(key).await;

    let rotated = data["writeKeyRotate"]["secret"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(status_at(app.address.clone(), rotated.clone()).await, StatusCode::OK);
        assert_eq!(status_at(other.clone(), rotated.clone()).await, StatusCode::OK);
    }
    // A write key is no API key, even once cached.
    let (status, _) = app
        .gql_as(Some(&rotated), "{ contacts { totalCount } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.gql(
        "mutation($id: ID!) { writeKeyRevoke(id: $id) { userErrors { code } } }",
        json!({ "id": data["writeKeyRotate"]["writeKey"]["id"] }),
    )
    .await;
    refused_everywhere(rotated).await;
    let events = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(events["events"]["totalCount"], 12, "every accepted call stored");
}

//! Rate limits: form posts per address for the whole server (every worker) and, on PostgreSQL,
//! for every server; failed authentications per address; tracking calls per write key.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

async fn form_path(app: &TestApp) -> String {
    let data = app
        .gql(
            r#"mutation { formCreate(input: {name: "F", fields: [{key: "email", label: "E-mail", type: EMAIL, mapsTo: "email", required: true}]}) { form { submitPath } } }"#,
            json!({}),
        )
        .await;
    data["formCreate"]["form"]["submitPath"].as_str().unwrap().to_owned()
}

async fn submit(client: &reqwest::Client, address: &str, path: &str, n: usize) -> (usize, usize) {
    let (mut accepted, mut limited) = (0, 0);
    for i in 0..n {
        let response = client
            .post(format!("{address}{path}"))
            .json(&json!({ "email": format!("p{i}-{}@example.com", uuid::Uuid::new_v4().simple()) }))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                limited += 1
            }
            other => panic!("{other}"),
        }
    }
    (accepted, limited)
}

#[tokio::test]
async fn form_posts_are_limited_per_address_across_workers_and_servers() {
    // The default limit (20 a minute), which a second server below has too.
    let app = TestApp::spawn_with(|settings| settings.server.workers = 4).await;
    let path = form_path(&app).await;
    // New connections, so the posts spread over the workers (each had its own limiter before).
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let (accepted, limited) = submit(&client, &app.address, &path, 25).await;
    assert_eq!(
        (accepted, limited),
        (20, 5),
        "one limit for the server, whatever the worker"
    );

    let postgres = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    if postgres {
        // A second server over the same database: the same address is already over its limit.
        let other = app.another_server().await;
        let (accepted, _) = submit(&client, &other, &path, 3).await;
        assert_eq!(accepted, 0, "the limit is shared by every server on PostgreSQL");
    }
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address() {
    let app = TestApp::spawn_with(|settings| settings.limits.failed_auth_per_minute = 5).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, _) = app.gql_as(Some("vxk_wrong"), "{ viewer { scopes } }", json!({})).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // The address is refused for the rest of the window, whatever it sends.
    let (status, body) = app.gql_as(Some(&app.key), "{ viewer { scopes } }", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/track", app.address))
        .basic_auth("vwk_wrong", Some(""))
        .json(&json!({ "userId": "u", "event": "e" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn tracking_calls_are_limited_per_write_key() {
    let app = TestApp::spawn_with(|settings| settings.limits.tracking_calls_per_minute = 3).await;
    let (first, second) = (app.write_key().await, app.write_key().await);
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, _) = app
            .track("/v1/track", &first, json!({ "userId": "u", "event": format!("e{i}") }))
            .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (status, body) = app
        .track("/v1/track", &first, json!({ "userId": "u", "event": "late" }))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let (status, _) = app
        .track("/v1/track", &second, json!({ "userId": "u", "event": "other key" }))
        .await;
    assert_eq!(status, StatusCode::OK, "each key has its own budget");
}

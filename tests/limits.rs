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

    if postgres() {
        // Servers add their counts to the shared one at least once a second: a second server
        // refuses a key the first has spent, once the first has told.
        let other = app
            .another_server_with(|settings| settings.limits.tracking_calls_per_minute = 3)
            .await;
        let third = app.write_key().await;
        let call = |address: String| {
            let client = app.client.clone();
            let third = third.clone();
            async move {
                client
                    .post(format!("{address}/v1/track"))
                    .basic_auth(&third, Some(""))
                    .json(&json!({ "userId": "u", "event": "e" }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        for _ in 0..3 {
            assert_eq!(call(app.address.clone()).await, StatusCode::OK);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(call(app.address.clone()).await, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            call(other).await,
            StatusCode::TOO_MANY_REQUESTS,
            "the count is shared on PostgreSQL"
        );
    }
}

fn postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// Every answer says what it cost and what the key has left: a request must fit at its
/// requested cost and is charged its actual one (the rows it found); a key past its budget is
/// THROTTLED with the time to wait; an operation has at most 20 root fields, aliases counted.
#[tokio::test]
async fn queries_cost_points_from_a_bucket_per_key() {
    let app = TestApp::spawn_with(|settings| {
        settings.limits.query_cost_per_second = 10;
        settings.limits.query_cost_capacity = 300;
    })
    .await;
    let inputs: Vec<_> = (0..3)
        .map(|i| json!({ "email": format!("m{i}@example.com") }))
        .collect();
    app.gql_as(
        Some(&app.key),
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;
    let list = "{ contacts(first: 50) { nodes { id email } pageInfo { hasNextPage } } }";
    let reader = app.key_with("contacts:read").await;
    let (status, body) = app.gql_as(Some(&reader), list, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cost = &body["extensions"]["cost"];
    // contacts 1 + nodes 1 + 50 x (id 1 + email 1) + pageInfo 1 + hasNextPage 1; the page
    // held 3 rows.
    assert_eq!(
        (cost["requested"].as_u64(), cost["actual"].as_u64()),
        (Some(104), Some(1 + 1 + 3 * 2 + 2)),
        "{body}"
    );
    let remaining = cost["remaining"].as_u64().unwrap();
    assert!((285..=290).contains(&remaining), "charged the actual cost: {cost}");
    assert!(cost["resetAt"].as_str().unwrap().starts_with("20"), "{cost}");

    // Counts cost what they read, whatever the rows: 5 x (1 + 25).
    let counts: String = (0..5)
        .map(|i| format!("c{i}: contacts(first: 1) {{ totalCount }} "))
        .collect();
    let counts = format!("{{ {counts} }}");
    for _ in 0..2 {
        let (status, body) = app.gql_as(Some(&reader), &counts, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["extensions"]["cost"]["actual"], 130, "{body}");
    }
    let (status, body) = app.gql_as(Some(&reader), &counts, json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "THROTTLED");
    if postgres() {
        // A second server draws on the same bucket, once the first has told the shared level
        // what it spent (at least once a second).
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let (status, _) = app.gql_as(Some(&reader), &counts, json!({})).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let other = app
            .another_server_with(|settings| {
                settings.limits.query_cost_per_second = 10;
                settings.limits.query_cost_capacity = 300;
            })
            .await;
        let response = app
            .client
            .post(format!("{other}/graphql"))
            .bearer_auth(&reader)
            .json(&json!({ "query": counts }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the bucket is shared on PostgreSQL"
        );
    }
    // Another key of the workspace has its own bucket.
    let other = app.key_with("contacts:read").await;
    let (status, _) = app.gql_as(Some(&other), list, json!({})).await;
    assert_eq!(status, StatusCode::OK);

    let aliases: String = (0..21).map(|i| format!("a{i}: viewer {{ scopes }} ")).collect();
    let (status, body) = app.gql_as(Some(&other), &format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("21 root fields"),
        "{body}"
    );
}

/// The alias attack (thousands of counted, filtered lists in one request) is refused before it
/// runs; the most a request may hold runs beside a normal list, which is answered.
#[tokio::test]
async fn the_alias_attack_is_refused_and_a_list_beside_the_largest_request_is_answered() {
    let app = TestApp::spawn().await;
    let inputs: Vec<_> = (0..300)
        .map(|i| json!({ "email": format!("c{i}@example.com"), "firstName": format!("Zed{i}") }))
        .collect();
    app.gql(
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;
    let alias =
        |i: usize| format!(r#"a{i}: contacts(first: 1, filter: {{firstName: {{contains: "z"}}}}) {{ totalCount }} "#);
    let attack: String = (0..9_900).map(alias).collect();
    let (status, body) = app.gql_as(Some(&app.key), &format!("{{ {attack} }}"), json!({})).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
        "{status} {body}"
    );
    let largest: String = (0..20).map(alias).collect();
    let largest = format!("{{ {largest} }}");
    let list = "{ contacts(first: 50, orderBy: [{createdAt: DESC}]) { nodes { email } } }";
    let (heavy, normal) = tokio::join!(
        app.gql_as(Some(&app.key), &largest, json!({})),
        app.gql_as(Some(&app.key), list, json!({}))
    );
    assert_eq!(heavy.0, StatusCode::OK, "{}", heavy.1);
    assert_eq!(heavy.1["data"]["a19"]["totalCount"], 300);
    assert_eq!(normal.0, StatusCode::OK, "{}", normal.1);
    assert_eq!(normal.1["data"]["contacts"]["nodes"].as_array().unwrap().len(), 50);
}

/// A request past its deadline is answered TIMEOUT, and the server goes on answering.
#[tokio::test]
async fn a_request_past_its_deadline_is_answered_timeout() {
    let app = TestApp::spawn_with(|settings| settings.limits.request_timeout_ms = 1).await;
    let inputs: Vec<_> = (0..200)
        .map(|i| json!({ "email": format!("t{i}@example.com") }))
        .collect();
    app.gql_as(
        Some(&app.key),
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;
    let slow = "{ a: contacts(first: 100) { totalCount nodes { email timeline(first: 20) { nodes { type } } segments { name } } } \
                b: companies(first: 100) { totalCount } }";
    let (status, body) = app.gql_as(Some(&app.key), slow, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    let (status, _) = app.gql_as(Some(&app.key), "{ __typename }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
}

/// The database itself stops a statement at the deadline (PostgreSQL's statement_timeout,
/// SQLite's progress handler), so work nobody awaits does not go on holding a connection, and
/// the connection serves the next statement.
#[tokio::test]
async fn statements_stop_at_the_deadline() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn_with(|settings| settings.limits.request_timeout_ms = 1_500).await;
    let backend = app.db.get_database_backend();
    let endless = match backend {
        sea_orm::DbBackend::Postgres => "SELECT pg_sleep(30)",
        _ => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c"
        }
    };
    let started = std::time::Instant::now();
    let error = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(backend, endless))
        .await
        .expect_err("an endless statement ran to its end");
    let took = started.elapsed();
    assert!(voxtur_store::db::is_past_deadline(&error), "{error}");
    assert!(
        took >= std::time::Duration::from_millis(1_400) && took < std::time::Duration::from_secs(6),
        "{took:?}"
    );
    // A short statement is not affected, and the pool goes on serving.
    for _ in 0..5 {
        app.db
            .query_one_raw(sea_orm::Statement::from_string(backend, "SELECT 1"))
            .await
            .unwrap();
    }
}

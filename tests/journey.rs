//! The contact journey: Segment-compatible ingestion, identity resolution, the timeline.

use crate::support::{TestApp, codes};
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use uuid::Uuid;

const TIMELINE: &str = r#"query($email: String!) { contactByEmail(email: $email) { id anonymous firstSeenAt lastActivityAt
    timeline(first: 50) { nodes { type name source channel campaign properties messageId } } } }"#;

async fn timeline_types(app: &TestApp, email: &str) -> Vec<String> {
    let data = app.gql(TIMELINE, json!({ "email": email })).await;
    data["contactByEmail"]["timeline"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_anonymous_visitor_becomes_a_known_contact_with_its_history() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let t0 = "2026-11-01T10:00:00.000Z";
    let (status, body) = app
        .track("/v1/page", &key, json!({ "anonymousId": "anon-1", "name": "Pricing", "timestamp": t0, "messageId": "m1",
            "context": { "campaign": { "source": "google", "medium": "cpc", "name": "spring" }, "page": { "url": "https://x.com/pricing" } } }))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    app.track("/v1/track", &key, json!({ "anonymousId": "anon-1", "event": "Product Viewed", "properties": { "sku": "SOFA-1" }, "timestamp": "2026-11-01T10:01:00Z" }))
        .await;
    // Not yet a contact: anonymous profiles stay out of the contact list.
    assert_eq!(app.contact_count().await, 0);
    let data = app
        .gql("{ contacts(filter: {anonymous: true}) { totalCount } }", json!({}))
        .await;
    assert_eq!(data["contacts"]["totalCount"], 1);

    let (status, _) = app
        .track("/v1/identify", &key, json!({ "anonymousId": "anon-1", "userId": "u-42", "traits": { "email": "Ann@Example.com", "firstName": "Ann", "plan": "pro" } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    app.track(
        "/v1/track",
        &key,
        json!({ "userId": "u-42", "event": "Order Completed", "properties": { "total": 99.5 } }),
    )
    .await;

    assert_eq!(app.contact_count().await, 1);
    let data = app.gql(TIMELINE, json!({ "email": "ann@example.com" })).await;
    let contact = &data["contactByEmail"];
    assert_eq!(contact["anonymous"], false);
    assert_eq!(contact["firstSeenAt"], "2026-11-01T10:00:00+00:00");
    let nodes = contact["timeline"]["nodes"].as_array().unwrap();
    let types: Vec<&str> = nodes.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["ORDER_COMPLETED", "IDENTIFIED", "PRODUCT_VIEWED", "PAGE_VIEWED"]
    );
    let page = &nodes[3];
    assert_eq!(page["name"], "Pricing");
    assert_eq!(page["channel"], "WEB");
    assert_eq!(page["campaign"], "spring");
    assert_eq!(page["messageId"], "m1");
    assert_eq!(page["properties"]["page"]["url"], "https://x.com/pricing");
    assert_eq!(
        nodes[1]["properties"]["plan"], "pro",
        "traits are kept on the identified event"
    );
    let data = app
        .gql(r#"{ contacts(filter: {anonymous: true}) { totalCount } }"#, json!({}))
        .await;
    assert_eq!(data["contacts"]["totalCount"], 0);
}

#[tokio::test]
async fn identifying_with_a_known_email_merges_the_visitor_into_that_contact() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let known = app
        .create_contact(json!({ "email": "bo@example.com", "firstName": "Bo", "lifecycleStage": "LEAD" }))
        .await;
    app.gql(
        "mutation($id: ID!) { eventRecord(input: {contactId: $id, type: CALL_LOGGED, channel: PHONE, properties: {minutes: 5}}) { userErrors { code } } }",
        json!({ "id": known["id"] }),
    )
    .await;
    for i in 0..3 {
        app.track(
            "/v1/page",
            &key,
            json!({ "anonymousId": "visitor-9", "name": format!("Page {i}") }),
        )
        .await;
    }
    app.track(
        "/v1/identify",
        &key,
        json!({ "anonymousId": "visitor-9", "traits": { "email": "BO@example.com", "lastName": "Berg" } }),
    )
    .await;

    assert_eq!(app.contact_count().await, 1, "no duplicate contact");
    let data = app.gql(TIMELINE, json!({ "email": "bo@example.com" })).await;
    let contact = &data["contactByEmail"];
    assert_eq!(contact["id"], known["id"], "the existing contact wins");
    let types = timeline_types(&app, "bo@example.com").await;
    assert_eq!(
        types.iter().filter(|t| *t == "PAGE_VIEWED").count(),
        3,
        "no event lost: {types:?}"
    );
    assert!(types.contains(&"CALL_LOGGED".to_owned()));
    let data = app
        .gql(
            r#"{ contactByEmail(email: "bo@example.com") { firstName lastName lifecycleStage } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["contactByEmail"],
        json!({ "firstName": "Bo", "lastName": "Berg", "lifecycleStage": "LEAD" })
    );
    // Later events by the anonymous id land on the same contact.
    app.track(
        "/v1/track",
        &key,
        json!({ "anonymousId": "visitor-9", "event": "Cart Viewed" }),
    )
    .await;
    assert!(
        timeline_types(&app, "bo@example.com")
            .await
            .contains(&"CART_UPDATED".to_owned())
    );
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn alias_links_an_old_id_to_a_user() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    app.track(
        "/v1/track",
        &key,
        json!({ "anonymousId": "device-1", "event": "App Opened" }),
    )
    .await;
    app.track(
        "/v1/identify",
        &key,
        json!({ "userId": "cust-7", "traits": { "email": "cy@example.com" } }),
    )
    .await;
    let (status, _) = app
        .track(
            "/v1/alias",
            &key,
            json!({ "previousId": "device-1", "userId": "cust-7" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let types = timeline_types(&app, "cy@example.com").await;
    assert!(types.contains(&"CUSTOM".to_owned()), "{types:?}");
    let data = app
        .gql("{ contacts(filter: {anonymous: true}) { totalCount } }", json!({}))
        .await;
    assert_eq!(data["contacts"]["totalCount"], 0);
    let (status, body) = app.track("/v1/alias", &key, json!({ "userId": "cust-7" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("previousId"));

    // A user id renamed: aliasing the old user id's device to a new user id links the new id
    // to the same contact, which then answers to both.
    let (status, _) = app
        .track(
            "/v1/alias",
            &key,
            json!({ "previousId": "device-1", "userId": "cust-7-renamed" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let identities = entities::contact_identity::Entity::find().all(&app.db).await.unwrap();
    let of = |key: &str| identities.iter().find(|row| row.key == key).map(|row| row.contact_id);
    assert!(of("user:cust-7-renamed").is_some());
    assert_eq!(of("user:cust-7-renamed"), of("user:cust-7"), "{identities:?}");
}

#[tokio::test]
async fn batches_are_idempotent_and_report_bad_messages() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch = json!({ "batch": [
        { "type": "identify", "userId": "u1", "traits": { "email": "dee@example.com" }, "messageId": "b-0" },
        { "type": "track", "userId": "u1", "event": "Signed Up", "messageId": "b-1" },
        { "type": "track", "userId": "u1", "event": "Signed Up", "messageId": "b-1" },
        { "type": "track", "event": "Nobody", "messageId": "b-2" },
        { "type": "track", "userId": "u1", "event": "Later", "timestamp": "2099-01-01T00:00:00Z", "messageId": "b-3" },
        { "type": "track", "userId": "u1", "messageId": "b-4" },
        { "type": "teleport", "userId": "u1" },
        { "type": "page", "userId": "u1", "name": "Home", "timestamp": "2026-11-20T12:00:00.250Z", "messageId": "b-5" }
    ]});
    let (status, body) = app.track("/v1/batch", &key, batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 4);
    assert_eq!(body["stored"], 3, "identified, Signed Up (once), page");
    let rejected: Vec<(i64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_i64().unwrap(), r["error"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert!(rejected[0].1.contains("userId"));
    assert!(rejected[1].1.contains("future"));
    assert!(rejected[2].1.contains("event"));
    assert!(rejected[3].1.contains("teleport"));

    // The client retries the whole batch: nothing is stored twice.
    let (_, body) = app.track("/v1/batch", &key, batch).await;
    assert_eq!(body["stored"], 0);
    assert_eq!(timeline_types(&app, "dee@example.com").await.len(), 3);
    let data = app
        .gql(
            r#"{ events(filter: {types: [CUSTOM], name: {eq: "Signed Up"}}) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["totalCount"], 1);
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn tracking_limits_keys_and_clock_skew() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let big = json!({ "userId": "u", "event": "Big", "properties": { "pad": "x".repeat(33 * 1024) } });
    let (status, body) = app.track("/v1/track", &key, big).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("32 KB"));
    let items: Vec<Value> = (0..40).map(|i| json!({ "type": "track", "userId": "u", "event": "E", "properties": { "pad": "y".repeat(14 * 1024), "i": i } })).collect();
    let (status, body) = app.track("/v1/batch", &key, json!({ "batch": items })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("500 KB"));
    let (status, body) = app.track_raw("/v1/track", &key, b"{\"userId\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_json");
    let (status, _) = app
        .track("/v1/track", "vwk_wrong", json!({ "userId": "u", "event": "E" }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.track("/v1/teleport", &key, json!({ "userId": "u" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.gql("{ events { totalCount } }", json!({})).await["events"]["totalCount"],
        0,
        "nothing stored by bad calls"
    );

    // Rotation: the old key stops, the new one works.
    let data = app.gql("{ writeKeys { id } }", json!({})).await;
    let id = data["writeKeys"][0]["id"].clone();
    let data = app
        .gql(
            "mutation($id: ID!) { writeKeyRotate(id: $id) { secret userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    let rotated = data["writeKeyRotate"]["secret"].as_str().unwrap().to_owned();
    let (status, _) = app
        .track("/v1/track", &key, json!({ "userId": "u", "event": "E" }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The write key may also travel in the body, as Segment allows.
    let (status, _) = app
        .track(
            "/v1/track",
            "",
            json!({ "writeKey": rotated, "userId": "u", "event": "E", "messageId": "skew",
        "timestamp": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T01:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Sent an hour after it happened by the device's clock: it happened an hour before arrival.
    let data = app
        .gql("{ events(first: 1) { nodes { occurredAt receivedAt } } }", json!({}))
        .await;
    let node = &data["events"]["nodes"][0];
    let occurred = chrono::DateTime::parse_from_rfc3339(node["occurredAt"].as_str().unwrap()).unwrap();
    let received = chrono::DateTime::parse_from_rfc3339(node["receivedAt"].as_str().unwrap()).unwrap();
    assert_eq!((received - occurred).num_minutes(), 60);
}

#[tokio::test]
async fn concurrent_batches_for_one_new_visitor_lose_nothing_and_make_one_contact() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let mut tasks = Vec::new();
    for b in 0..8 {
        let batch: Vec<Value> = (0..50)
            .map(|i| json!({ "type": "track", "anonymousId": "same-visitor", "userId": "same-user", "event": "Clicked", "messageId": format!("c-{b}-{i}") }))
            .collect();
        let body = json!({ "batch": batch });
        let app = &app;
        let key = key.clone();
        tasks.push(async move { app.track("/v1/batch", &key, body).await });
    }
    let results = futures_util::future::join_all(tasks).await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK),
        "{results:?}"
    );
    let data = app.gql("{ contacts { totalCount } events { totalCount } anon: contacts(filter: {anonymous: true}) { totalCount } }", json!({})).await;
    assert_eq!(data["contacts"]["totalCount"], 1);
    assert_eq!(data["anon"]["totalCount"], 0);
    assert_eq!(data["events"]["totalCount"], 400);
}

#[tokio::test]
async fn a_batch_retried_while_its_first_copy_is_stored_is_stored_once() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch: Vec<Value> = (0..100)
        .map(|i| {
            json!({ "type": "page", "anonymousId": format!("v{}", i % 20), "name": "Home",
                         "timestamp": format!("2026-11-20T12:00:{:02}.5Z", i % 60), "messageId": format!("r-{i}") })
        })
        .collect();
    let body = json!({ "batch": batch, "sentAt": "2026-11-20T12:01:00Z" });
    let copies = (0..4).map(|_| app.track("/v1/batch", &key, body.clone()));
    let results = futures_util::future::join_all(copies).await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK),
        "{results:?}"
    );
    let stored: i64 = results.iter().map(|(_, body)| body["stored"].as_i64().unwrap()).sum();
    assert_eq!(stored, 100, "each message stored by exactly one copy: {results:?}");
    let data = app
        .gql(
            "{ contacts(filter: {anonymous: true}) { totalCount } events { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["totalCount"], 100);
    assert_eq!(data["contacts"]["totalCount"], 20);
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn concurrent_batches_sharing_new_visitors_all_succeed_and_merge_profiles() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    // Eight batches at once, each touching the same 30 new visitors and 10 new users, some
    // stitched together by identify: every batch races the others for the same new identities.
    let mut tasks = Vec::new();
    for b in 0..8 {
        let batch: Vec<Value> = (0..120)
            .map(|i| {
                let visitor = (i * 7 + b * 3) % 30;
                let mut message = if i % 12 == 0 {
                    json!({ "type": "identify", "anonymousId": format!("v{visitor}"), "userId": format!("u{}", visitor % 10) })
                } else if i % 4 == 0 {
                    json!({ "type": "track", "userId": format!("u{}", visitor % 10), "event": "Clicked" })
                } else {
                    json!({ "type": "page", "anonymousId": format!("v{visitor}"), "name": "Home" })
                };
                message["messageId"] = json!(format!("race-{b}-{i}"));
                message
            })
            .collect();
        let body = json!({ "batch": batch });
        let app = &app;
        let key = key.clone();
        tasks.push(async move { app.track("/v1/batch", &key, body).await });
    }
    let results = futures_util::future::join_all(tasks).await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK),
        "{results:?}"
    );
    let data = app
        .gql(
            "{ events { totalCount } contacts(first: 100) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["totalCount"], 8 * 120, "every message kept");
    // One profile per visitor or user at most, and each identity names exactly one of them.
    let contacts = data["contacts"]["totalCount"].as_i64().unwrap();
    assert!((1..=40).contains(&contacts), "{contacts} contacts");
    let identities: Vec<(String, Uuid)> = entities::contact_identity::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.key, row.contact_id))
        .collect();
    assert_eq!(identities.len(), 40, "30 visitors and 10 users: {identities:?}");
    let live: std::collections::HashSet<Uuid> = entities::contact::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(
        identities.iter().all(|(_, id)| live.contains(id)),
        "no identity names a merged-away profile"
    );
    // A visitor stitched to a user shares the user's profile.
    let of = |key: &str| identities.iter().find(|(k, _)| k == key).map(|(_, id)| *id).unwrap();
    assert_eq!(of("anon:v0"), of("user:u0"));
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn timelines_page_filter_and_batch_across_a_list() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let mut batch = Vec::new();
    for c in 0..12 {
        batch.push(json!({ "type": "identify", "userId": format!("u{c}"), "traits": { "email": format!("t{c}@example.com") }, "timestamp": "2026-01-01T00:00:00Z" }));
        for e in 0..5 {
            let kind = if e % 2 == 0 { "page" } else { "track" };
            batch.push(json!({ "type": kind, "userId": format!("u{c}"), "event": "Custom Thing", "name": "P", "timestamp": format!("2026-01-0{}T00:00:00Z", e + 2) }));
        }
    }
    app.track("/v1/batch", &key, json!({ "batch": batch })).await;

    // Paging one timeline with a filter.
    let query = "query($after: String) { contactByEmail(email: \"t0@example.com\") { timeline(first: 2, after: $after, filter: {types: [PAGE_VIEWED]}) { pageInfo { hasNextPage endCursor } nodes { occurredAt } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app.gql(query, json!({ "after": after })).await;
        let page = &data["contactByEmail"]["timeline"];
        seen.extend(
            page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["occurredAt"].as_str().unwrap().to_owned()),
        );
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(
        seen,
        [
            "2026-01-06T00:00:00+00:00",
            "2026-01-04T00:00:00+00:00",
            "2026-01-02T00:00:00+00:00"
        ]
    );

    // A first page's every edge has its cursor, and paging resumes after any of them.
    let edges = "query($after: String) { contactByEmail(email: \"t0@example.com\") { timeline(first: 4, after: $after) { edges { cursor node { occurredAt } } } } }";
    let first = app.gql(edges, json!({ "after": null })).await;
    let first = first["contactByEmail"]["timeline"]["edges"].as_array().unwrap().clone();
    assert_eq!(first.len(), 4);
    let after_second = app.gql(edges, json!({ "after": first[1]["cursor"] })).await;
    let rest = &after_second["contactByEmail"]["timeline"]["edges"];
    assert_eq!(rest[0]["node"], first[2]["node"], "resumes right after the second edge");
    assert_eq!(rest[1]["node"], first[3]["node"]);

    // A list of contacts with their timelines costs the same statements for 3 or 12 contacts.
    let list = "query($n: Int!) { contacts(first: $n) { nodes { email timeline(first: 3) { nodes { type } } } } }";
    let mut costs = Vec::new();
    for n in [3, 12] {
        let before = app.statements.get();
        let data = app.gql(list, json!({ "n": n })).await;
        costs.push(app.statements.get() - before);
        for node in data["contacts"]["nodes"].as_array().unwrap() {
            assert_eq!(node["timeline"]["nodes"].as_array().unwrap().len(), 3);
        }
    }
    assert!(costs.iter().all(|&c| c <= 3), "key lookup, page, timelines: {costs:?}");

    let (code, message) = app
        .gql_error(
            "{ events(filter: {occurredAt: {gt: \"soon\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT", "{message}");
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn back_office_events_and_manual_merges() {
    let app = TestApp::spawn().await;
    let a = app.create_contact(json!({ "email": "a@example.com", "firstName": "Al", "tags": ["vip"], "consent": { "email": { "status": "GRANTED" } } })).await;
    let b = app
        .create_contact(json!({ "email": "b@example.com", "lastName": "Bell", "lifecycleStage": "CUSTOMER", "tags": ["fair"], "consent": { "email": { "status": "WITHDRAWN" } } }))
        .await;
    let record = "mutation($i: EventRecordInput!) { eventRecord(input: $i) { event { type channel properties } userErrors { code field } } }";
    let data = app.gql(record, json!({ "i": { "contactId": b["id"], "type": "VISIT_LOGGED", "channel": "VISIT", "properties": { "note": "showroom" } } })).await;
    assert_eq!(data["eventRecord"]["event"]["type"], "VISIT_LOGGED");
    for (input, code) in [
        (json!({ "contactId": "nope", "type": "CALL_LOGGED" }), "NOT_FOUND"),
        (json!({ "contactId": a["id"], "type": "CUSTOM" }), "REQUIRED"),
        (
            json!({ "contactId": a["id"], "type": "CALL_LOGGED", "occurredAt": "2099-01-01T00:00:00Z" }),
            "INVALID",
        ),
        (
            json!({ "contactId": a["id"], "type": "CALL_LOGGED", "properties": [1] }),
            "WRONG_TYPE",
        ),
    ] {
        let data = app.gql(record, json!({ "i": input })).await;
        assert_eq!(codes(&data["eventRecord"]), [code], "{input}");
    }

    let merge = "mutation($w: ID!, $l: ID!) { contactMerge(winnerId: $w, loserId: $l) { contact { email firstName lastName lifecycleStage tags consent { email { status } } } eventsMoved userErrors { code } } }";
    let data = app.gql(merge, json!({ "w": a["id"], "l": a["id"] })).await;
    assert_eq!(codes(&data["contactMerge"]), ["INVALID"]);
    let data = app.gql(merge, json!({ "w": a["id"], "l": b["id"] })).await;
    let merged = &data["contactMerge"];
    assert_eq!(merged["eventsMoved"], 1);
    assert_eq!(
        merged["contact"],
        json!({ "email": "a@example.com", "firstName": "Al", "lastName": "Bell", "lifecycleStage": "CUSTOMER", "tags": ["fair", "vip"], "consent": { "email": { "status": "WITHDRAWN" } } })
    );
    assert_eq!(app.contact_count().await, 1);
    assert_eq!(timeline_types(&app, "a@example.com").await, ["VISIT_LOGGED"]);
    let data = app.gql(merge, json!({ "w": a["id"], "l": b["id"] })).await;
    assert_eq!(codes(&data["contactMerge"]), ["NOT_FOUND"]);
    app.assert_tallies_match_events().await;
}

/// Events and identities naming a contact that no longer exists: none may ever be left.
async fn orphans(app: &TestApp) -> (Vec<Uuid>, Vec<String>) {
    let live: std::collections::HashSet<Uuid> = entities::contact::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let events = entities::event::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !live.contains(&e.contact_id))
        .map(|e| e.id)
        .collect();
    let identities = entities::contact_identity::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| !live.contains(&i.contact_id))
        .map(|i| i.key)
        .collect();
    (events, identities)
}

#[tokio::test]
async fn deleting_a_contact_deletes_its_journey_and_its_ids_start_afresh() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch = json!({ "batch": [
        { "type": "page", "anonymousId": "gone-visitor", "name": "Home", "messageId": "g1" },
        { "type": "identify", "anonymousId": "gone-visitor", "userId": "gone-user", "traits": { "email": "gone@example.com" }, "messageId": "g2" },
        { "type": "track", "userId": "gone-user", "event": "Order Completed", "messageId": "g3" },
    ] });
    assert_eq!(app.track("/v1/batch", &key, batch).await.0, StatusCode::OK);
    let data = app.gql(TIMELINE, json!({ "email": "gone@example.com" })).await;
    let id = data["contactByEmail"]["id"].clone();
    let delete = "mutation($id: ID!) { contactDelete(id: $id) { deletedContactId userErrors { code } } }";
    let data = app.gql(delete, json!({ "id": id })).await;
    assert_eq!(data["contactDelete"]["deletedContactId"], id);
    let data = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(data["events"]["totalCount"], 0, "the journey went with the contact");
    assert_eq!(orphans(&app).await, (vec![], vec![]));
    // The same visitor comes back as a new profile, without the deleted history.
    let again = json!({ "type": "page", "anonymousId": "gone-visitor", "name": "Home", "messageId": "g4" });
    assert_eq!(app.track("/v1/page", &key, again).await.0, StatusCode::OK);
    let data = app
        .gql(
            "{ contacts(filter: {anonymous: true}) { totalCount nodes { id } } events { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["totalCount"], 1);
    assert_eq!(data["events"]["totalCount"], 1);
    assert_ne!(
        data["contacts"]["nodes"][0]["id"], id,
        "a deleted contact's id is never given to anyone again"
    );
    // And the new profile is an ordinary one: its later visits and an identify find it.
    let later = json!({ "batch": [
        { "type": "page", "anonymousId": "gone-visitor", "name": "Pricing", "messageId": "g5" },
        { "type": "identify", "anonymousId": "gone-visitor", "userId": "gone-user", "traits": { "email": "back@example.com" }, "messageId": "g6" },
    ] });
    assert_eq!(app.track("/v1/batch", &key, later).await.0, StatusCode::OK);
    assert_eq!(
        journey_of(&app, "back@example.com").await,
        ["PAGE_VIEWED", "PAGE_VIEWED", "IDENTIFIED"]
    );
    assert_eq!(orphans(&app).await, (vec![], vec![]));
}

#[tokio::test]
async fn batches_racing_deletes_and_merges_leave_no_event_or_identity_without_its_contact() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let delete = "mutation($id: ID!) { contactDelete(id: $id) { userErrors { code } } }";
    let merge = "mutation($w: ID!, $l: ID!) { contactMerge(winnerId: $w, loserId: $l) { userErrors { code } } }";
    for round in 0..4 {
        // Twelve known users with history.
        let users: Vec<Value> = (0..12)
            .map(|u| json!({ "type": "identify", "userId": format!("r{round}u{u}"), "traits": { "email": format!("r{round}u{u}@example.com") }, "messageId": format!("seed-{round}-{u}") }))
            .collect();
        assert_eq!(
            app.track("/v1/batch", &key, json!({ "batch": users })).await.0,
            StatusCode::OK
        );
        let filter = json!({ "email": { "startsWith": format!("r{round}u") } });
        let ids = app
            .gql("query($f: ContactFilter) { contacts(first: 20, filter: $f, orderBy: [{email: ASC}]) { nodes { id } } }", json!({ "f": filter }))
            .await["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].clone())
            .collect::<Vec<_>>();
        assert_eq!(ids.len(), 12);
        // Six batches over the same users and visitors (tracks, page views, identify calls that
        // stitch visitors to users) while other requests delete and merge some of those users.
        let batches = (0..6).map(|b| {
            let batch: Vec<Value> = (0..80)
                .map(|i| {
                    let user = (i + b) % 12;
                    let visitor = (i * 5 + b) % 20;
                    let mut m = match i % 5 {
                        0 => json!({ "type": "identify", "userId": format!("r{round}u{user}"), "anonymousId": format!("r{round}v{visitor}") }),
                        1 | 2 => json!({ "type": "track", "userId": format!("r{round}u{user}"), "event": "Clicked" }),
                        _ => json!({ "type": "page", "anonymousId": format!("r{round}v{visitor}"), "name": "Home" }),
                    };
                    m["messageId"] = json!(format!("r-{round}-{b}-{i}"));
                    m
                })
                .collect();
            let app = &app;
            let key = key.clone();
            async move {
                let (status, body) = app.track("/v1/batch", &key, json!({ "batch": batch })).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        });
        let removals = [
            app.gql(delete, json!({ "id": ids[0] })),
            app.gql(delete, json!({ "id": ids[5] })),
            app.gql(delete, json!({ "id": ids[7] })),
            app.gql(delete, json!({ "id": ids[11] })),
            app.gql(merge, json!({ "w": ids[1], "l": ids[2] })),
            app.gql(merge, json!({ "w": ids[3], "l": ids[9] })),
        ];
        let (_, removed) = futures_util::future::join(
            futures_util::future::join_all(batches),
            futures_util::future::join_all(removals),
        )
        .await;
        // Identify calls fuse users that share a visitor, so a contact may be gone by the time
        // its deletion or merge runs: that is "not found", never a failure.
        for data in &removed {
            let payload = data.as_object().unwrap().values().next().unwrap();
            assert!(codes(payload).iter().all(|c| c == "NOT_FOUND"), "{data}");
        }
        assert_eq!(
            orphans(&app).await,
            (vec![], vec![]),
            "nothing points at a removed contact"
        );
    }
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn concurrent_changes_to_one_contact_all_survive() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let define = "mutation($i: CustomFieldDefineInput!) { customFieldDefine(input: $i) { userErrors { code } } }";
    const WRITERS: usize = 6;
    for k in 0..WRITERS {
        let input = json!({ "i": { "objectType": "CONTACT", "key": format!("k{k}"), "label": format!("K{k}"), "type": "TEXT" } });
        assert_eq!(
            codes(&app.gql(define, input).await["customFieldDefine"]),
            Vec::<String>::new()
        );
    }
    let first = json!({ "userId": "u-race", "traits": { "email": "race@example.com" }, "messageId": "r0" });
    assert_eq!(app.track("/v1/identify", &key, first).await.0, StatusCode::OK);
    let id = app.gql(TIMELINE, json!({ "email": "race@example.com" })).await["contactByEmail"]["id"].clone();

    // Each batch reads the contact, then sets its own trait; an API edit changes the stage and
    // the phone meanwhile. Every one of them must be on the row at the end.
    let mut batches = Vec::new();
    for k in 0..WRITERS {
        let mut batch: Vec<Value> = (0..40)
            .map(|i| json!({ "type": "track", "userId": "u-race", "event": "Clicked", "messageId": format!("r-{k}-{i}") }))
            .collect();
        batch.push(json!({ "type": "identify", "userId": "u-race", "traits": { format!("k{k}"): format!("v{k}") }, "messageId": format!("r-{k}-id") }));
        let (app, key) = (&app, key.clone());
        batches.push(async move { app.track("/v1/batch", &key, json!({ "batch": batch })).await.0 });
    }
    let update = "mutation($id: ID!, $input: ContactUpdateInput!) { contactUpdate(id: $id, input: $input) { userErrors { code } } }";
    let edit = app.gql(
        update,
        json!({ "id": id, "input": { "lifecycleStage": "CUSTOMER", "phone": "+1 555 0100" } }),
    );
    let (statuses, edited) = futures_util::future::join(futures_util::future::join_all(batches), edit).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(codes(&edited["contactUpdate"]), Vec::<String>::new());

    let query = "query($id: ID!) { node(id: $id) { ... on Contact { lifecycleStage phone customFields } } }";
    let contact = app.gql(query, json!({ "id": id })).await["node"].clone();
    assert_eq!(contact["lifecycleStage"], "CUSTOMER");
    assert_eq!(contact["phone"], "+1 555 0100");
    for k in 0..WRITERS {
        assert_eq!(contact["customFields"][format!("k{k}")], format!("v{k}"), "{contact}");
    }
}

/// Timeline types of the contact with this email, newest first.
async fn journey_of(app: &TestApp, email: &str) -> Vec<String> {
    let mut types = timeline_types(app, email).await;
    types.reverse();
    types
}

#[tokio::test]
async fn two_users_on_one_device_stay_two_contacts() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let page = |anon: &str, n: usize| json!({ "type": "page", "anonymousId": anon, "name": "Home", "messageId": format!("{anon}-p{n}") });
    let identify = |anon: &str, user: &str, n: usize| json!({ "type": "identify", "anonymousId": anon, "userId": user, "traits": { "email": format!("{user}@example.com") }, "messageId": format!("{anon}-i{n}") });
    // A device's story: a visit, one user logs in, a visit, another user logs in, a visit.
    let story = |device: &str, first: &str, second: &str| {
        [
            page(device, 1),
            identify(device, first, 2),
            page(device, 3),
            identify(device, second, 4),
            page(device, 5),
        ]
    };
    // One call at a time on device "kiosk", then the same story in one batch on device "tablet".
    for message in story("kiosk", "ann", "bob") {
        assert_eq!(
            app.track("/v1/batch", &key, json!({ "batch": [message] })).await.0,
            StatusCode::OK
        );
    }
    let tablet = json!({ "batch": story("tablet", "cat", "dan") });
    assert_eq!(app.track("/v1/batch", &key, tablet).await.0, StatusCode::OK);

    assert_eq!(
        app.contact_count().await,
        4,
        "nobody fused with whoever used the device before"
    );
    for (earlier, later) in [("ann", "bob"), ("cat", "dan")] {
        assert_eq!(
            journey_of(&app, &format!("{earlier}@example.com")).await,
            ["PAGE_VIEWED", "IDENTIFIED", "PAGE_VIEWED"],
            "{earlier} keeps the history from before the device changed hands"
        );
        assert_eq!(
            journey_of(&app, &format!("{later}@example.com")).await,
            ["IDENTIFIED", "PAGE_VIEWED"],
            "the device's later visits are {later}'s"
        );
    }

    // Ann comes back to the kiosk, already known: the device goes back to her, still no merge.
    let back = [identify("kiosk", "ann", 6), page("kiosk", 7)];
    assert_eq!(
        app.track("/v1/batch", &key, json!({ "batch": back })).await.0,
        StatusCode::OK
    );
    assert_eq!(app.contact_count().await, 4);
    assert_eq!(journey_of(&app, "ann@example.com").await.len(), 5);
    assert_eq!(journey_of(&app, "bob@example.com").await.len(), 2);
    app.assert_tallies_match_events().await;
}

/// Sends the batches at once; each must be accepted.
async fn send_at_once(app: &TestApp, key: &str, batches: Vec<Value>) {
    let tasks = batches
        .into_iter()
        .map(|batch| app.track("/v1/batch", key, json!({ "batch": batch })));
    let results = futures_util::future::join_all(tasks).await;
    assert!(
        results.iter().all(|(status, _)| *status == StatusCode::OK),
        "{results:?}"
    );
}

/// The profiles holding a user id, and every identity.
async fn user_profiles(app: &TestApp) -> (Vec<Uuid>, Vec<entities::contact_identity::Model>) {
    let identities = entities::contact_identity::Entity::find().all(&app.db).await.unwrap();
    let mut users: Vec<Uuid> = identities
        .iter()
        .filter(|row| row.key.starts_with("user:"))
        .map(|row| row.contact_id)
        .collect();
    users.sort();
    users.dedup();
    (users, identities)
}

#[tokio::test]
async fn users_logging_in_on_one_new_device_at_once_stay_apart() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    // Eight people log in on the same new device in batches sent at once: every batch claims
    // the device's anonymous id for its own new profile, and all but one lose that race.
    let batches = (0..8)
        .map(|b| {
            json!([
                { "type": "identify", "anonymousId": "shared-device", "userId": format!("u{b}"),
                  "traits": { "email": format!("u{b}@example.com") }, "messageId": format!("i-{b}") },
                { "type": "page", "anonymousId": "shared-device", "name": "Home", "messageId": format!("p-{b}") },
            ])
        })
        .collect();
    send_at_once(&app, &key, batches).await;
    assert_eq!(app.contact_count().await, 8, "nobody fused with another user");
    let (users, identities) = user_profiles(&app).await;
    assert_eq!(users.len(), 8, "each user id on a profile of its own: {identities:?}");
    let device = identities.iter().find(|row| row.key == "anon:shared-device").unwrap();
    assert!(users.contains(&device.contact_id), "the device goes with one of them");
    for b in 0..8 {
        let journey = journey_of(&app, &format!("u{b}@example.com")).await;
        assert_eq!(
            journey.first().map(String::as_str),
            Some("IDENTIFIED"),
            "u{b}: {journey:?}"
        );
        assert!(
            journey.iter().all(|t| t == "IDENTIFIED" || t == "PAGE_VIEWED"),
            "u{b}: {journey:?}"
        );
    }
    let events = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(events["events"]["totalCount"], 16, "every message kept");
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn users_logging_in_at_once_on_a_device_already_seen_stay_apart() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    // The device has visited before: its anonymous profile exists. Then eight people log in on
    // it in batches sent at once, each batch reading that profile before the others commit.
    let visit = json!({ "batch": [{ "type": "page", "anonymousId": "kiosk", "name": "Home", "messageId": "visit" }] });
    assert_eq!(app.track("/v1/batch", &key, visit).await.0, StatusCode::OK);
    let batches = (0..8)
        .map(|b| {
            json!([{ "type": "identify", "anonymousId": "kiosk", "userId": format!("k{b}"),
                     "traits": { "email": format!("k{b}@example.com") }, "messageId": format!("ki-{b}") }])
        })
        .collect();
    send_at_once(&app, &key, batches).await;
    assert_eq!(
        app.contact_count().await,
        8,
        "one contact per user, the visit in one of them"
    );
    let (users, identities) = user_profiles(&app).await;
    assert_eq!(users.len(), 8, "no profile holds two user ids: {identities:?}");
    let events = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(events["events"]["totalCount"], 9, "every message kept");
    app.assert_tallies_match_events().await;
}

const COMPANY_OF: &str =
    r#"query($email: String!) { contactByEmail(email: $email) { company { name domain industry } } }"#;

#[tokio::test]
async fn group_puts_a_contact_in_a_company_found_by_domain_or_else_by_name() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    app.create_company(json!({ "name": "Acme Inc", "domain": "acme.com" }))
        .await;
    let batch = json!([
        { "type": "identify", "userId": "ann", "traits": { "email": "ann@example.com" }, "messageId": "1" },
        // Found by domain whatever the name says.
        { "type": "group", "userId": "ann", "groupId": "g1",
          "traits": { "name": "ACME", "website": "https://www.acme.com/about" }, "messageId": "2" },
        { "type": "identify", "userId": "bob", "traits": { "email": "bob@example.com" }, "messageId": "3" },
        // No domain: found by name, else made with it.
        { "type": "group", "userId": "bob", "groupId": "g2",
          "traits": { "name": "Initech", "industry": "Software" }, "messageId": "4" },
        { "type": "identify", "userId": "cy", "traits": { "email": "cy@example.com" }, "messageId": "5" },
        // The group id alone: the company bob's call made for g2.
        { "type": "group", "userId": "cy", "groupId": "g2", "messageId": "6" },
    ]);
    let (status, body) = app.track("/v1/batch", &key, json!({ "batch": batch })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let company = |email: &'static str| {
        let app = &app;
        async move { app.gql(COMPANY_OF, json!({ "email": email })).await["contactByEmail"]["company"].clone() }
    };
    assert_eq!(
        company("ann@example.com").await,
        json!({ "name": "Acme Inc", "domain": "acme.com", "industry": null })
    );
    let initech = json!({ "name": "Initech", "domain": null, "industry": "Software" });
    assert_eq!(company("bob@example.com").await, initech);
    assert_eq!(company("cy@example.com").await, initech);
    let companies = app.gql("{ companies { totalCount } }", json!({})).await;
    assert_eq!(companies["companies"]["totalCount"], 2, "{companies}");
}

/// `groupId` is the one field the spec requires of a group call: alone, it makes a company known
/// by it (named by the id), which the first traits with a name then name; without it the call
/// is refused.
#[tokio::test]
async fn group_by_group_id_alone_makes_a_company_named_when_traits_arrive() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch = json!([
        { "type": "identify", "userId": "dee", "traits": { "email": "dee@example.com" }, "messageId": "1" },
        { "type": "group", "userId": "dee", "groupId": "acct-42", "messageId": "2",
          "context": { "traits": { "name": "Dee the user" } } },
        { "type": "identify", "userId": "eve", "traits": { "email": "eve@example.com" }, "messageId": "3" },
        { "type": "group", "userId": "eve", "groupId": "acct-42", "messageId": "4" },
    ]);
    let (status, body) = app.track("/v1/batch", &key, json!({ "batch": batch })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    const GROUP_OF: &str =
        r#"query($email: String!) { contactByEmail(email: $email) { company { id name groupId industry } } }"#;
    let company = |email: &'static str| {
        let app = &app;
        async move { app.gql(GROUP_OF, json!({ "email": email })).await["contactByEmail"]["company"].clone() }
    };
    let dee = company("dee@example.com").await;
    assert_eq!(
        dee["name"], "acct-42",
        "named by its id, not by the user's traits: {dee}"
    );
    assert_eq!(dee["groupId"], "acct-42");
    assert_eq!(company("eve@example.com").await["id"], dee["id"]);

    let (status, body) = app
        .track(
            "/v1/group",
            &key,
            json!({ "userId": "dee", "groupId": "acct-42", "traits": { "name": "Globex", "industry": "Energy" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let named = company("eve@example.com").await;
    assert_eq!(
        named,
        json!({ "id": dee["id"], "name": "Globex", "groupId": "acct-42", "industry": "Energy" })
    );
    // A name the company has is kept: later traits do not rename it.
    let (status, _) = app
        .track(
            "/v1/group",
            &key,
            json!({ "userId": "dee", "groupId": "acct-42", "traits": { "name": "Other" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(company("dee@example.com").await["name"], "Globex");
    let companies = app.gql("{ companies { totalCount } }", json!({})).await;
    assert_eq!(companies["companies"]["totalCount"], 1, "{companies}");

    let (status, body) = app
        .track(
            "/v1/group",
            &key,
            json!({ "userId": "dee", "traits": { "name": "No id" } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("groupId"), "{body}");
}

#[tokio::test]
async fn batches_grouping_by_one_new_company_name_at_once_make_it_once() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    // Eight people join the same new company, each in a batch of their own sent at once; the
    // company has a name and no domain, so nothing but the batches' locks keeps it single.
    let batches = (0..8)
        .map(|b| {
            json!([
                { "type": "identify", "userId": format!("u{b}"), "traits": { "email": format!("u{b}@example.com") },
                  "messageId": format!("i-{b}") },
                { "type": "group", "userId": format!("u{b}"), "groupId": "hooli",
                  "traits": { "name": "Hooli" }, "messageId": format!("g-{b}") },
            ])
        })
        .collect();
    send_at_once(&app, &key, batches).await;
    let companies = app.gql("{ companies { totalCount nodes { name } } }", json!({})).await;
    assert_eq!(companies["companies"]["totalCount"], 1, "{companies}");
    for b in 0..8 {
        let data = app
            .gql(COMPANY_OF, json!({ "email": format!("u{b}@example.com") }))
            .await;
        assert_eq!(data["contactByEmail"]["company"]["name"], "Hooli", "u{b}: {data}");
    }
}

/// RudderStack's SDKs send identify traits in `context.traits`: they reach the contact as
/// `traits` do, and the message's own traits win where both name one.
#[tokio::test]
async fn traits_in_the_context_identify_as_traits_do() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let (status, body) = app
        .track(
            "/v1/identify",
            &key,
            json!({ "userId": "r-1", "anonymousId": "a-r1", "messageId": "r-msg-1",
                    "context": { "traits": { "email": "Rudder@Example.com", "firstName": "Context", "lastName": "Stack" }, "library": { "name": "rudder-sdk-python" } },
                    "traits": { "firstName": "Own" } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let data = app
        .gql(
            "{ contacts(filter: {email: {eq: \"rudder@example.com\"}}) { nodes { firstName lastName } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["contacts"]["nodes"],
        json!([{ "firstName": "Own", "lastName": "Stack" }]),
        "{data}"
    );
}

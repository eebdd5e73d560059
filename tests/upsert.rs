//! Bulk upsert: index-aligned results; good rows saved, bad rows reported and not written.

use crate::support::TestApp;
use serde_json::json;

const UPSERT: &str = "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount updatedCount results { index created contact { email firstName tags } userErrors { code field } } userErrors { code field } } }";

#[tokio::test]
async fn upsert_saves_good_rows_and_reports_bad_ones_by_index() {
    let app = TestApp::spawn().await;
    app.create_contact(json!({ "email": "old@example.com", "firstName": "Old", "lastName": "Kept" }))
        .await;
    let inputs = json!([
        { "email": "new@example.com", "firstName": "New", "tags": ["a"] },
        { "email": "OLD@example.com", "firstName": "Updated" },
        { "email": "broken" },
        { "email": "new@EXAMPLE.com", "firstName": "Twice" },
        { "email": "x@example.com", "customFields": { "nope": 1 } },
    ]);
    let data = app.gql(UPSERT, json!({ "i": inputs })).await;
    let payload = &data["contactsUpsert"];
    assert_eq!(payload["createdCount"], 1);
    assert_eq!(payload["updatedCount"], 1);
    let results = payload["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(
        results[0]["contact"],
        json!({ "email": "new@example.com", "firstName": "New", "tags": ["a"] })
    );
    assert_eq!(results[0]["created"], true);
    assert_eq!(results[1]["contact"]["firstName"], "Updated");
    assert_eq!(results[1]["created"], false);
    assert_eq!(
        results[2]["userErrors"],
        json!([{ "code": "INVALID_EMAIL", "field": ["inputs", "2", "email"] }])
    );
    assert_eq!(results[3]["userErrors"][0]["code"], "DUPLICATE_IN_BATCH");
    assert_eq!(
        results[4]["userErrors"],
        json!([{ "code": "UNKNOWN_FIELD", "field": ["inputs", "4", "customFields", "nope"] }])
    );
    assert_eq!(payload["userErrors"].as_array().unwrap().len(), 3);

    let data = app
        .gql(
            r#"{ contactByEmail(email: "old@example.com") { firstName lastName } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["contactByEmail"],
        json!({ "firstName": "Updated", "lastName": "Kept" }),
        "absent fields stay"
    );
    assert_eq!(app.contact_count().await, 2, "only the good rows were written");
}

/// A NUL character or an over-long text in one item is reported at that item; the others are
/// saved (PostgreSQL can store no NUL, so none may reach it).
#[tokio::test]
async fn a_bad_text_in_one_item_never_sinks_the_others() {
    let app = TestApp::spawn().await;
    app.gql(
        r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "plan", label: "Plan", type: TEXT}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;
    let inputs = json!([
        { "email": "first@example.com", "firstName": "First" },
        { "email": "nul\u{0}@example.com" },
        { "email": "name@example.com", "firstName": "a\u{0}b" },
        { "email": "field@example.com", "customFields": { "plan": "gold\u{0}" } },
        { "email": "tag@example.com", "tags": ["a\u{0}"] },
        { "email": "utm@example.com", "utm": { "source": "s\u{0}" }, "source": "web" },
        { "email": "long@example.com", "lastName": "x".repeat(10_000) },
        { "email": "last@example.com", "firstName": "Last" },
    ]);
    let body = serde_json::to_vec(&json!({ "query": UPSERT, "variables": { "i": inputs } })).unwrap();
    let (status, body) = app.post(Some(&app.key), body).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let payload = &body["data"]["contactsUpsert"];
    assert_eq!(payload["createdCount"], 2, "{body}");
    let failed: Vec<(i64, String)> = payload["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["contact"].is_null())
        .map(|r| (r["index"].as_i64().unwrap(), r["userErrors"][0]["field"].to_string()))
        .collect();
    assert_eq!(
        failed,
        [
            (1, r#"["inputs","1","email"]"#.to_owned()),
            (2, r#"["inputs","2","firstName"]"#.to_owned()),
            (3, r#"["inputs","3","customFields","plan"]"#.to_owned()),
            (4, r#"["inputs","4","tags"]"#.to_owned()),
            (5, r#"["inputs","5","utm","source"]"#.to_owned()),
            (6, r#"["inputs","6","lastName"]"#.to_owned()),
        ],
        "{body}"
    );
    assert_eq!(app.contact_count().await, 2);
}

#[tokio::test]
async fn upsert_refuses_more_than_a_thousand() {
    let app = TestApp::spawn().await;
    let inputs: Vec<_> = (0..1001)
        .map(|i| json!({ "email": format!("c{i}@example.com") }))
        .collect();
    let data = app.gql(UPSERT, json!({ "i": inputs })).await;
    assert_eq!(data["contactsUpsert"]["userErrors"][0]["code"], "TOO_MANY");
    assert_eq!(app.contact_count().await, 0);
}

#[tokio::test]
async fn concurrent_upserts_of_the_same_new_emails_all_succeed() {
    let app = TestApp::spawn().await;
    // Six calls at once, each with the same 40 new emails in a different order: they race to
    // create them; every call must end with all 40 saved and none duplicated.
    let mut calls = Vec::new();
    for c in 0..6usize {
        let inputs: Vec<_> = (0..40usize)
            .map(|i| (i * 7 + c * 11) % 40)
            .map(|n| json!({ "email": format!("race{n}@example.com"), "firstName": format!("Call{c}"), "tags": [format!("c{c}")] }))
            .collect();
        let app = &app;
        calls.push(async move { app.gql(UPSERT, json!({ "i": inputs })).await });
    }
    let results = futures_util::future::join_all(calls).await;
    let mut created = 0;
    for data in &results {
        let payload = &data["contactsUpsert"];
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        let (c, u) = (
            payload["createdCount"].as_i64().unwrap(),
            payload["updatedCount"].as_i64().unwrap(),
        );
        assert_eq!(c + u, 40, "{payload}");
        created += c;
    }
    assert_eq!(created, 40, "each email created exactly once");
    assert_eq!(app.contact_count().await, 40);
    // Each contact is wholly one call's version: name and tags from the same call.
    let data = app
        .gql("{ contacts(first: 100) { nodes { firstName tags } } }", json!({}))
        .await;
    for node in data["contacts"]["nodes"].as_array().unwrap() {
        let call = node["firstName"].as_str().unwrap().trim_start_matches("Call");
        assert_eq!(node["tags"], json!([format!("c{call}")]), "{node}");
    }
}

//! Demo data is realistic and valid: it goes through the same services as the API.

use crate::support::TestApp;
use serde_json::json;
use voxtur_core::auth::{ScopeSet, issue_api_key};

#[tokio::test]
async fn demo_workspace_is_full_of_usable_data() {
    let app = TestApp::spawn().await;
    let ws = voxtur_demo::seed(&app.db, "Demo", 120).await.unwrap();
    let key = issue_api_key(&app.db, ws.id, "t", &ScopeSet::all())
        .await
        .unwrap()
        .secret;
    let (_, body) = app
        .gql_as(
            Some(&key),
            r#"{ contacts(first: 100) { totalCount nodes { email company { name } owner { name } customFields } }
                 companies { totalCount } users { totalCount } customFields { key }
                 leads: contacts(filter: {lifecycleStage: {eq: LEAD}}) { totalCount } }"#,
            json!({}),
        )
        .await;
    let data = &body["data"];
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(data["contacts"]["totalCount"], 120);
    assert_eq!(data["companies"]["totalCount"], 12);
    assert_eq!(data["users"]["totalCount"], 5);
    assert_eq!(data["customFields"].as_array().unwrap().len(), 5);
    let nodes = data["contacts"]["nodes"].as_array().unwrap();
    assert!(nodes.iter().filter(|n| !n["company"].is_null()).count() > 50);
    assert!(
        nodes
            .iter()
            .all(|n| !n["owner"].is_null() && n["customFields"]["plan"].is_string())
    );
    let leads = data["leads"]["totalCount"].as_i64().unwrap();
    assert!(leads > 0 && leads < 120);
    // The test's own workspace saw none of it.
    assert_eq!(app.contact_count().await, 0);
}

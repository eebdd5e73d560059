//! Workspace B can never read, change, delete or enumerate workspace A's records.

use crate::support::{TestApp, codes};
use serde_json::json;

#[tokio::test]
async fn another_workspace_cannot_see_or_touch_records() {
    let app = TestApp::spawn().await;
    let company = app
        .create_company(json!({ "name": "Acme", "domain": "acme.com" }))
        .await;
    let contact = app
        .create_contact(json!({ "email": "a@acme.com", "companyId": company }))
        .await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    app.gql(
        r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "plan", label: "Plan", type: TEXT}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;

    let other = app.other_workspace("contacts:write workspace:admin").await;
    let ask = |query: &'static str, vars: serde_json::Value| {
        let other = other.clone();
        let app = &app;
        async move {
            let (_, body) = app.gql_as(Some(&other), query, vars).await;
            assert!(body.get("errors").is_none(), "{body}");
            body["data"].clone()
        }
    };

    // Enumerate.
    let data = ask(
        "{ contacts { totalCount nodes { id } } companies { totalCount } customFields { key } }",
        json!({}),
    )
    .await;
    assert_eq!(data["contacts"]["totalCount"], 0);
    assert_eq!(data["companies"]["totalCount"], 0);
    assert_eq!(data["customFields"], json!([]));
    let data = ask(r#"{ contactByEmail(email: "A@acme.com") { id } }"#, json!({})).await;
    assert_eq!(data["contactByEmail"], json!(null));
    // Filters with A's ids match nothing.
    let data = ask(
        "query($c: ID!) { contacts(filter: {companyId: {eq: $c}}) { totalCount } }",
        json!({ "c": company }),
    )
    .await;
    assert_eq!(data["contacts"]["totalCount"], 0);

    // Read by Node id.
    let data = ask(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
        json!({ "ids": [contact_id, company] }),
    )
    .await;
    assert_eq!(data["nodes"], json!([null, null]));
    let data = ask("query($id: ID!) { node(id: $id) { id } }", json!({ "id": contact_id })).await;
    assert_eq!(data["node"], json!(null));

    // Update and delete answer "not found".
    let data = ask(
        r#"mutation($id: ID!) { contactUpdate(id: $id, input: {firstName: "Mallory"}) { contact { id } userErrors { code } } }"#,
        json!({ "id": contact_id }),
    )
    .await;
    assert_eq!(codes(&data["contactUpdate"]), ["NOT_FOUND"]);
    let data = ask(
        "mutation($id: ID!) { contactDelete(id: $id) { deletedContactId userErrors { code } } }",
        json!({ "id": contact_id }),
    )
    .await;
    assert_eq!(codes(&data["contactDelete"]), ["NOT_FOUND"]);
    let data = ask(
        r#"mutation($id: ID!) { companyUpdate(id: $id, input: {name: "Mine"}) { company { id } userErrors { code } } }"#,
        json!({ "id": company }),
    )
    .await;
    assert_eq!(codes(&data["companyUpdate"]), ["NOT_FOUND"]);
    let data = ask(
        "mutation($id: ID!) { companyDelete(id: $id) { userErrors { code } } }",
        json!({ "id": company }),
    )
    .await;
    assert_eq!(codes(&data["companyDelete"]), ["NOT_FOUND"]);

    // Linking to A's company from B is refused; A's custom field does not exist in B.
    let data = ask(
        r#"mutation($c: ID!) { contactCreate(input: {email: "b@b.com", companyId: $c, customFields: {plan: "x"}}) { contact { id } userErrors { code field } } }"#,
        json!({ "c": company }),
    )
    .await;
    let mut found = codes(&data["contactCreate"]);
    found.sort();
    assert_eq!(found, ["NOT_FOUND", "UNKNOWN_FIELD"]);
    // Upsert on A's email creates B's own contact and leaves A's alone.
    let data = ask(
        r#"mutation { contactsUpsert(inputs: [{email: "a@acme.com", firstName: "Bee"}]) { createdCount updatedCount } }"#,
        json!({}),
    )
    .await;
    assert_eq!(data["contactsUpsert"]["createdCount"], 1);

    // A's records are untouched.
    let data = app
        .gql(
            "query($id: ID!) { node(id: $id) { ... on Contact { email firstName company { name } } } }",
            json!({ "id": contact_id }),
        )
        .await;
    assert_eq!(
        data["node"],
        json!({ "email": "a@acme.com", "firstName": null, "company": { "name": "Acme" } })
    );
    assert_eq!(app.contact_count().await, 1);
}

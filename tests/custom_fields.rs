//! Custom fields: typed definitions, filtering and sorting in SQL.

use crate::support::{TestApp, codes};
use serde_json::json;

const DEFINE: &str = "mutation($i: CustomFieldDefineInput!) { customFieldDefine(input: $i) { customField { key type options } userErrors { code field message } } }";

#[tokio::test]
async fn custom_fields_filter_and_sort_by_type() {
    let app = TestApp::spawn().await;
    for (key, ty, options) in [
        ("nps", "NUMBER", json!(null)),
        ("vip", "BOOLEAN", json!(null)),
        ("renewal", "DATE", json!(null)),
        ("plan", "SINGLE_SELECT", json!(["free", "pro", "enterprise"])),
        ("interests", "MULTI_SELECT", json!(["sofas", "cars", "cameras"])),
        ("note", "TEXT", json!(null)),
    ] {
        let data = app
            .gql(
                DEFINE,
                json!({ "i": { "objectType": "CONTACT", "key": key, "label": key, "type": ty, "options": options } }),
            )
            .await;
        assert_eq!(codes(&data["customFieldDefine"]), Vec::<String>::new(), "{data}");
    }
    let people = [
        (
            "a@x.com",
            json!({ "nps": 9, "vip": true, "renewal": "2026-03-01", "plan": "pro", "interests": ["sofas", "cars"], "note": "Loves 100% wool" }),
        ),
        (
            "b@x.com",
            json!({ "nps": 3.5, "vip": false, "renewal": "2025-12-24", "plan": "free", "interests": ["cameras"] }),
        ),
        (
            "c@x.com",
            json!({ "nps": 10, "plan": "enterprise", "interests": ["cars"] }),
        ),
        ("d@x.com", json!({})),
    ];
    for (email, fields) in people {
        app.create_contact(json!({ "email": email, "customFields": fields }))
            .await;
    }
    let emails = |data: &serde_json::Value| -> Vec<String> {
        data["contacts"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let list =
        "query($f: ContactFilter, $o: [ContactOrderBy!]) { contacts(filter: $f, orderBy: $o) { nodes { email } } }";
    let cases = [
        (
            json!({ "customFields": [{ "key": "nps", "gte": 9 }] }),
            json!([{ "customField": { "key": "nps", "direction": "DESC" } }]),
            vec!["c@x.com", "a@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "nps", "lt": 5 }] }),
            json!([]),
            vec!["b@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "vip", "eq": true }] }),
            json!([]),
            vec!["a@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "renewal", "lt": "2026-01-01" }] }),
            json!([]),
            vec!["b@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "plan", "in": ["pro", "enterprise"] }] }),
            json!([{ "email": "ASC" }]),
            vec!["a@x.com", "c@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "interests", "hasAny": ["cars"] }] }),
            json!([{ "email": "ASC" }]),
            vec!["a@x.com", "c@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "interests", "hasAll": ["cars", "sofas"] }] }),
            json!([]),
            vec!["a@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "note", "contains": "100%" }] }),
            json!([]),
            vec!["a@x.com"],
        ),
        (
            json!({ "customFields": [{ "key": "plan", "isNull": true }] }),
            json!([]),
            vec!["d@x.com"],
        ),
        (
            json!({ "not": { "customFields": [{ "key": "plan", "eq": "free" }] }, "customFields": [{ "key": "plan", "isNull": false }] }),
            json!([{ "email": "DESC" }]),
            vec!["c@x.com", "a@x.com"],
        ),
        // Missing values sort last in both directions; ties break on id in the last key's direction.
        (
            json!(null),
            json!([{ "customField": { "key": "nps", "direction": "ASC" } }]),
            vec!["b@x.com", "a@x.com", "c@x.com", "d@x.com"],
        ),
        (
            json!(null),
            json!([{ "customField": { "key": "renewal", "direction": "DESC" } }]),
            vec!["a@x.com", "b@x.com", "d@x.com", "c@x.com"],
        ),
    ];
    for (filter, order, expected) in cases {
        let data = app.gql(list, json!({ "f": filter, "o": order })).await;
        assert_eq!(emails(&data), expected, "filter {filter} order {order}");
    }

    // Filters that cannot be right are clear errors.
    for (filter, needle) in [
        (
            json!({ "customFields": [{ "key": "colour", "eq": "red" }] }),
            "no custom field `colour`",
        ),
        (
            json!({ "customFields": [{ "key": "nps", "eq": "high" }] }),
            "expects a number",
        ),
        (
            json!({ "customFields": [{ "key": "plan", "eq": "gold" }] }),
            "not an option",
        ),
        (
            json!({ "customFields": [{ "key": "vip", "gt": true }] }),
            "does not apply",
        ),
        (
            json!({ "customFields": [{ "key": "plan", "hasAny": ["pro"] }] }),
            "multi-select",
        ),
    ] {
        let (code, message) = app.gql_error(list, json!({ "f": filter })).await;
        assert_eq!(code, "BAD_USER_INPUT");
        assert!(message.contains(needle), "{message}");
    }
}

#[tokio::test]
async fn definitions_are_validated_and_types_cannot_change() {
    let app = TestApp::spawn().await;
    let define = |input: serde_json::Value| {
        let app = &app;
        async move { app.gql(DEFINE, json!({ "i": input })).await["customFieldDefine"].clone() }
    };
    let bad = [
        (
            json!({ "objectType": "CONTACT", "key": "Bad Key", "label": "x", "type": "TEXT" }),
            "INVALID",
        ),
        (
            json!({ "objectType": "CONTACT", "key": "tier", "label": "Tier", "type": "SINGLE_SELECT" }),
            "REQUIRED",
        ),
        (
            json!({ "objectType": "CONTACT", "key": "age", "label": "Age", "type": "NUMBER", "options": ["1"] }),
            "INVALID",
        ),
    ];
    for (input, code) in bad {
        assert_eq!(codes(&define(input.clone()).await), [code], "{input}");
    }
    let ok = define(json!({ "objectType": "CONTACT", "key": "tier", "label": "Tier", "type": "SINGLE_SELECT", "options": ["gold", "silver"] })).await;
    assert_eq!(ok["customField"]["options"], json!(["gold", "silver"]));
    let changed = define(json!({ "objectType": "CONTACT", "key": "tier", "label": "Tier", "type": "TEXT" })).await;
    assert_eq!(codes(&changed), ["IMMUTABLE"]);
    app.create_contact(json!({ "email": "g@x.com", "customFields": { "tier": "gold" } }))
        .await;
    let removal = define(json!({ "objectType": "CONTACT", "key": "tier", "label": "Tier", "type": "SINGLE_SELECT", "options": ["silver"] })).await;
    assert_eq!(codes(&removal), ["INVALID"]);
    let added = define(json!({ "objectType": "CONTACT", "key": "tier", "label": "Level", "type": "SINGLE_SELECT", "options": ["gold", "bronze"] })).await;
    assert_eq!(
        added["customField"]["options"],
        json!(["gold", "bronze"]),
        "an unused option can go"
    );
    let data = app
        .gql("{ customFields(objectType: CONTACT) { key label type } }", json!({}))
        .await;
    assert_eq!(
        data["customFields"],
        json!([{ "key": "tier", "label": "Level", "type": "SINGLE_SELECT" }])
    );
}

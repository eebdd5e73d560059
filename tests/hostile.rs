//! Hostile input never hurts: every text of every mutation's input given a NUL byte, 10,000
//! characters and 1 MB gets a clear error (or is stored), never a database's message, never a
//! 5xx; one bad tracking message never sinks its batch; public paths with a NUL are not found.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Words of database and driver messages a client must never see.
const INTERNAL_TEXT: [&str; 8] = [
    "varchar",
    "character varying",
    "sqlite",
    "SQL",
    "constraint",
    "violates",
    "at line",
    "syntax",
];

/// Every path to a text in `value`, as (path, replace-at-path) pairs.
fn text_paths(value: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::String(_) => out.push(path),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                text_paths(item, p, out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let mut p = path.clone();
                p.push(key.clone());
                text_paths(item, p, out);
            }
        }
        _ => {}
    }
}

fn replaced(value: &Value, path: &[String], text: &str) -> Value {
    let mut value = value.clone();
    let mut at = &mut value;
    for part in path {
        at = match at {
            Value::Array(items) => &mut items[part.parse::<usize>().unwrap()],
            Value::Object(fields) => fields.get_mut(part).unwrap(),
            _ => unreachable!(),
        };
    }
    *at = Value::String(text.to_owned());
    value
}

fn assert_clear(what: &str, status: StatusCode, body: &Value) {
    assert!(!status.is_server_error(), "{what}: {status} {body}");
    let text = body.to_string();
    for word in INTERNAL_TEXT {
        assert!(
            !text.contains(word),
            "{what}: a database's words reach the client: {text:.600}"
        );
    }
    if let Some(errors) = body["errors"].as_array() {
        for error in errors {
            assert_ne!(error["extensions"]["code"], "INTERNAL", "{what}: {error}");
        }
    }
}

#[tokio::test]
async fn every_text_input_takes_nul_long_and_huge_values_without_harm() {
    let app = TestApp::spawn().await;
    let contact = app.create_contact(json!({ "email": "ann@example.com" })).await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    let cases: Vec<(&str, Value)> = vec![
        (
            "mutation($input: ContactCreateInput!) { contactCreate(input: $input) { userErrors { code field message } } }",
            json!({ "email": "bo@example.com", "firstName": "Bo", "lastName": "B", "phone": "+49 30 1234",
                    "source": "web", "tags": ["vip"], "utm": { "source": "s", "medium": "m", "campaign": "c" } }),
        ),
        (
            "mutation($input: CompanyCreateInput!) { companyCreate(input: $input) { userErrors { code field message } } }",
            json!({ "name": "Acme", "domain": "acme.example", "industry": "Retail" }),
        ),
        (
            "mutation($input: FormInput!) { formCreate(input: $input) { userErrors { code field message } } }",
            json!({ "name": "F", "successMessage": "Thanks", "redirectUrl": "https://example.com/t",
                    "fields": [{ "key": "email", "label": "E-mail", "type": "EMAIL", "mapsTo": "email", "required": true },
                               { "key": "pick", "label": "Pick", "type": "SELECT", "options": ["a", "b"] }],
                    "consents": [{ "channel": "EMAIL", "label": "News by e-mail" }] }),
        ),
        (
            "mutation($input: LandingPageInput!) { landingPageCreate(input: $input) { userErrors { code field message } } }",
            json!({ "slug": "p", "title": "P", "bodyHtml": "<p>x</p>", "css": "body { color: red }" }),
        ),
        (
            "mutation($input: TrackedLinkInput!) { trackedLinkCreate(input: $input) { userErrors { code field message } } }",
            json!({ "targetUrl": "https://example.com/a", "campaign": "c", "utmSource": "s", "utmMedium": "m", "utmCampaign": "c" }),
        ),
        (
            "mutation($input: SegmentCreateInput!) { segmentCreate(input: $input) { userErrors { code field message } } }",
            json!({ "name": "S", "description": "D", "filter": { "firstName": { "contains": "a" } } }),
        ),
        (
            "mutation($input: EventRecordInput!) { eventRecord(input: $input) { userErrors { code field message } } }",
            json!({ "contactId": contact, "type": "CUSTOM", "name": "Called", "campaign": "c", "properties": { "note": "n" } }),
        ),
        (
            "mutation($input: CustomFieldDefineInput!) { customFieldDefine(input: $input) { userErrors { code field message } } }",
            json!({ "objectType": "CONTACT", "key": "plan", "label": "Plan", "type": "SINGLE_SELECT", "options": ["gold"] }),
        ),
        (
            "mutation($input: TeamInput!) { teamCreate(input: $input) { userErrors { code field message } } }",
            json!({ "name": "North" }),
        ),
        (
            "mutation($input: UserCreateInput!) { userCreate(input: $input) { userErrors { code field message } } }",
            json!({ "email": "rep@example.com", "name": "Rep", "role": "SALES" }),
        ),
        (
            "mutation($input: [ContactUpsertInput!]!) { contactsUpsert(inputs: $input) { userErrors { code field message } } }",
            json!([{ "email": "cy@example.com", "firstName": "Cy" }]),
        ),
    ];
    let long = "x".repeat(10_000);
    let huge = "y".repeat(1024 * 1024);
    for (mutation, input) in &cases {
        let mut paths = Vec::new();
        text_paths(input, Vec::new(), &mut paths);
        for path in paths {
            for (label, text) in [
                ("NUL", "a\u{0}b"),
                ("10,000 characters", long.as_str()),
                ("1 MB", huge.as_str()),
            ] {
                let what = format!(
                    "{} at {} with {label}",
                    mutation.split('(').nth(1).unwrap_or(mutation),
                    path.join(".")
                );
                let (status, body) = app
                    .gql_as(
                        Some(&app.key),
                        mutation,
                        json!({ "input": replaced(input, &path, text) }),
                    )
                    .await;
                assert_clear(&what, status, &body);
                if label == "NUL" {
                    // A bulk mutation reports a bad item at its index (and saves the others);
                    // anything else refuses the request.
                    let expected = if mutation.contains("inputs:") {
                        StatusCode::OK
                    } else {
                        StatusCode::BAD_REQUEST
                    };
                    assert_eq!(status, expected, "{what}: {body}");
                    assert!(body.to_string().contains("NUL"), "{what}: {body}");
                }
            }
        }
    }
    // A NUL in the query's own text, and a filter pattern past its limit.
    let (status, body) = app
        .gql_as(
            Some(&app.key),
            r#"{ contacts(filter: {firstName: {eq: "a\u0000b"}}) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .gql_as(
            Some(&app.key),
            "query($p: String!) { contacts(filter: {firstName: {contains: $p}}) { totalCount } }",
            json!({ "p": "z".repeat(60_000) }),
        )
        .await;
    assert_clear("a 60,000-character contains", status, &body);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("longer than 1000"),
        "{body}"
    );
    // The lengths are the domain's: a long campaign is TOO_LONG at its field.
    let (_, body) = app
        .gql_as(
            Some(&app.key),
            "mutation($input: EventRecordInput!) { eventRecord(input: $input) { userErrors { code field message } } }",
            json!({ "input": { "contactId": contact, "type": "CALL_LOGGED", "campaign": "c".repeat(301) } }),
        )
        .await;
    assert_eq!(
        body["data"]["eventRecord"]["userErrors"],
        json!([{ "code": "TOO_LONG", "field": ["input", "campaign"], "message": "campaign is longer than 300 characters" }])
    );
}

#[tokio::test]
async fn one_bad_message_never_sinks_its_batch() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch = json!({ "batch": [
        { "type": "track", "userId": "u1", "event": "Fine", "messageId": "ok-1" },
        { "type": "track", "userId": "u1", "event": "Nul", "properties": { "a": "b\u{0}c" }, "messageId": "bad-1" },
        { "type": "identify", "userId": "u\u{0}2", "messageId": "bad-2" },
        { "type": "track", "userId": "u1", "event": "Ancient", "timestamp": "0001-01-01T00:00:00Z", "messageId": "bad-3" },
        { "type": "track", "userId": "u1", "event": "Skewed", "timestamp": "2026-01-01T00:00:00Z", "sentAt": "9999-12-31T00:00:00Z", "messageId": "bad-4" },
        { "type": "track", "userId": "u1", "event": "Fine too", "messageId": "ok-2" },
    ] });
    let (status, body) = app.track("/v1/batch", &key, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 2, "{body}");
    let rejected: Vec<(i64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_i64().unwrap(), r["error"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4], "{body}");
    assert!(
        rejected[0].1.contains("`properties` contains a NUL character"),
        "{rejected:?}"
    );
    assert!(rejected[2].1.contains("before 2000"), "{rejected:?}");
    assert!(rejected[3].1.contains("before 2000"), "{rejected:?}");
    let events = app.gql("{ events { totalCount } }", json!({})).await;
    assert_eq!(events["events"]["totalCount"], 2);

    // The same rules for a single call, and for the public pages and forms.
    let (status, body) = app
        .track(
            "/v1/track",
            &key,
            json!({ "userId": "u1", "event": "x", "timestamp": "1999-12-31T23:59:59Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/l/a%00b".to_owned(),
        format!("/p/{}/a%00b", app.workspace_id),
        "/p/x/y%00".to_owned(),
    ] {
        let response = client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let form = app
        .gql(
            r#"mutation { formCreate(input: {name: "F", fields: [{key: "email", label: "E-mail", type: EMAIL, mapsTo: "email", required: true}, {key: "note", label: "Note", type: TEXT}]}) { form { submitPath } } }"#,
            json!({}),
        )
        .await;
    let submit = form["formCreate"]["form"]["submitPath"].as_str().unwrap().to_owned();
    let before = app.contact_count().await;
    for body in [
        json!({ "email": "a@example.com", "note": "x\u{0}y" }),
        json!({ "email": "a@example.com", "_page": "/p\u{0}" }),
    ] {
        let response = client
            .post(format!("{}{submit}", app.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{status} {text}"
        );
    }
    assert_eq!(
        app.contact_count().await,
        before,
        "nothing of a refused submission is stored"
    );
}

//! Contact imports from CSV: staged over HTTP, started in GraphQL (dry run, then for real),
//! files as Excel writes them in other locales, every bad input refused with its reason, and
//! the CLI.

use crate::support::{TestApp, codes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const START: &str = "mutation($i: ContactImportStartInput!) { contactImportStart(input: $i) {
    import { id status dryRun } userErrors { code field message } } }";
const STATUS: &str = "query($id: ID!) { contactImport(id: $id) { status totalRows processed created updated skipped
    failed error dryRun errors { row column message } } }";

/// Excel's "CSV UTF-8" in a German locale: a BOM, `;` between cells, a decimal comma.
const GERMAN: &str = "\u{feff}E-Mail-Adresse;Vorname;Nachname;Firma;Tags;Newsletter;Phase;Schuhgröße;Notiz\n\
ann@example.com;Ann;Arbor;Acme GmbH;vip, early;ja;Lead;42,5;eins\n\
bob@example.com;Bob;;Acme GmbH;;nein;Customer;;zwei\n\
not-an-email;Cy;;;;;;;drei\n\
dee@example.com;Dee;;;;;Boss;;vier\n\
eve@example.com;Eve;;;;vielleicht;;groß;fünf\n\
old@example.com;Olde;;;vip;;;;sechs\n";

async fn stage(app: &TestApp, key: Option<&str>, name: &str, body: &[u8]) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/imports/contacts?fileName={name}", app.address))
        .header("content-type", "text/csv")
        .body(body.to_vec());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..200 {
        let data = app.gql(STATUS, json!({ "id": id })).await;
        let import = data["contactImport"].clone();
        if import["status"] != "RUNNING" {
            return import;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import did not finish");
}

#[tokio::test]
async fn a_german_excel_file_imports_after_a_dry_run_and_reports_each_bad_row() {
    let app = TestApp::spawn().await;
    let define = app
        .gql(
            r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "shoe_size", label: "Schuhgröße", type: NUMBER}) { userErrors { code } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(codes(&define["customFieldDefine"]), Vec::<String>::new());
    app.create_contact(json!({ "email": "old@example.com", "firstName": "Old", "lastName": "Timer" }))
        .await;
    let vip = app
        .gql(
            r#"mutation { segmentCreate(input: {name: "VIP", filter: {tags: {hasAny: ["vip"]}}}) { segment { id } } }"#,
            json!({}),
        )
        .await;
    let vip = vip["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned();

    let (status, staged) = stage(&app, Some(&app.key), "kontakte.csv", GERMAN.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{staged}");
    assert_eq!(staged["delimiter"], ";");
    assert_eq!(staged["rows"], 6);
    assert_eq!(
        staged["columns"][0], "E-Mail-Adresse",
        "the BOM is not part of the name"
    );
    let suggested: Vec<(String, String)> = staged["suggestedMapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["column"].as_str().unwrap().to_owned(),
                m["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        suggested,
        [
            ("E-Mail-Adresse", "email"),
            ("Vorname", "firstName"),
            ("Nachname", "lastName"),
            ("Firma", "company"),
            ("Tags", "tags"),
            ("Schuhgröße", "custom:shoe_size"),
        ]
        .map(|(c, f)| (c.to_owned(), f.to_owned()))
    );
    let id = staged["id"].as_str().unwrap().to_owned();
    let mut mapping = staged["suggestedMapping"].as_array().unwrap().clone();
    mapping.push(json!({ "column": "Newsletter", "field": "consent:email" }));
    mapping.push(json!({ "column": "Phase", "field": "lifecycleStage" }));

    // A dry run: everything checked and counted, nothing saved.
    let started = app
        .gql(
            START,
            json!({ "i": { "importId": id, "mapping": mapping, "dryRun": true } }),
        )
        .await;
    assert_eq!(codes(&started["contactImportStart"]), Vec::<String>::new(), "{started}");
    let dry = finished(&app, &id).await;
    assert_eq!(
        (
            dry["status"].as_str(),
            dry["created"].as_i64(),
            dry["updated"].as_i64(),
            dry["failed"].as_i64()
        ),
        (Some("DONE"), Some(2), Some(1), Some(3)),
        "{dry}"
    );
    assert_eq!(app.contact_count().await, 1, "a dry run saves nothing");
    let companies = app.gql("{ companies { totalCount } }", json!({})).await;
    assert_eq!(companies["companies"]["totalCount"], 0);

    // For real, from the same staged file.
    let started = app
        .gql(START, json!({ "i": { "importId": id, "mapping": mapping } }))
        .await;
    assert_eq!(codes(&started["contactImportStart"]), Vec::<String>::new(), "{started}");
    let done = finished(&app, &id).await;
    assert_eq!(
        (
            done["processed"].as_i64(),
            done["created"].as_i64(),
            done["updated"].as_i64(),
            done["skipped"].as_i64(),
            done["failed"].as_i64()
        ),
        (Some(6), Some(2), Some(1), Some(0), Some(3)),
        "{done}"
    );
    assert_eq!(
        done["errors"],
        json!([
            { "row": 3, "column": "E-Mail-Adresse", "message": "`not-an-email` is not a valid email address" },
            { "row": 4, "column": "Phase", "message": "`Boss` is not a lifecycle stage (SUBSCRIBER, LEAD, MARKETING_QUALIFIED, SALES_QUALIFIED, OPPORTUNITY, CUSTOMER, EVANGELIST, OTHER)" },
            { "row": 5, "column": "Schuhgröße", "message": "`groß` is not a number" },
            { "row": 5, "column": "Newsletter", "message": "`vielleicht` is not a consent answer (granted/yes or withdrawn/no)" },
        ]),
        "{done}"
    );
    let ann = app
        .gql(
            r#"{ contactByEmail(email: "ann@example.com") { firstName lastName lifecycleStage tags company { name }
                consent { email { status } } customFields } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        ann["contactByEmail"],
        json!({ "firstName": "Ann", "lastName": "Arbor", "lifecycleStage": "LEAD", "tags": ["early", "vip"],
                "company": { "name": "Acme GmbH" }, "consent": { "email": { "status": "GRANTED" } },
                "customFields": { "shoe_size": 42.5 } })
    );
    let bob = app
        .gql(
            r#"{ contactByEmail(email: "bob@example.com") { company { name } consent { email { status } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        bob["contactByEmail"]["company"]["name"], "Acme GmbH",
        "one company for both rows"
    );
    assert_eq!(bob["contactByEmail"]["consent"]["email"]["status"], "WITHDRAWN");
    let old = app
        .gql(
            r#"{ contactByEmail(email: "old@example.com") { firstName lastName tags } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        old["contactByEmail"],
        json!({ "firstName": "Olde", "lastName": "Timer", "tags": ["vip"] }),
        "updated; the empty cell leaves the last name"
    );
    let members = app
        .gql(
            "query($id: ID!) { segment(id: $id) { memberCount } }",
            json!({ "id": vip }),
        )
        .await;
    assert_eq!(
        members["segment"]["memberCount"], 2,
        "imported contacts move segments: {members}"
    );
}

#[tokio::test]
async fn known_contacts_can_be_skipped_and_tabs_and_quotes_are_read() {
    let app = TestApp::spawn().await;
    app.create_contact(json!({ "email": "known@example.com", "firstName": "Known" }))
        .await;
    let file = "email\tfirst name\tcompany\nknown@example.com\tChanged\t\"Tab\tInc\"\nnew@example.com\t\"Quoted \"\"Q\"\"\"\t\nnul@example.com\tNu\u{0}l\t\n";
    let (status, staged) = stage(&app, Some(&app.key), "tabs.tsv", file.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{staged}");
    assert_eq!(staged["delimiter"], "\t");
    let id = staged["id"].as_str().unwrap().to_owned();
    let started = app
        .gql(
            START,
            json!({ "i": { "importId": id, "onDuplicate": "SKIP", "mapping": [
                { "column": "email", "field": "email" }, { "column": "first name", "field": "firstName" },
                { "column": "company", "field": "company" } ] } }),
        )
        .await;
    assert_eq!(codes(&started["contactImportStart"]), Vec::<String>::new(), "{started}");
    let done = finished(&app, &id).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["created"].as_i64(),
            done["skipped"].as_i64(),
            done["failed"].as_i64()
        ),
        (Some("DONE"), Some(1), Some(1), Some(1)),
        "a NUL in a cell fails its row, not the import: {done}"
    );
    assert_eq!(done["errors"][0]["column"], "first name", "{done}");
    let known = app
        .gql(
            r#"{ contactByEmail(email: "known@example.com") { firstName company { name } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        known["contactByEmail"],
        json!({ "firstName": "Known", "company": null })
    );
    let new = app
        .gql(
            r#"{ contactByEmail(email: "new@example.com") { firstName } }"#,
            json!({}),
        )
        .await;
    assert_eq!(new["contactByEmail"]["firstName"], "Quoted \"Q\"");
}

#[tokio::test]
async fn bad_files_mappings_and_credentials_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    for (body, reason) in [
        (&b"email,name\nb\xe9b@example.com,x\n"[..], "not UTF-8 (line 2)"),
        (b"", "empty"),
        (b"email,name\n", "no rows"),
        (b"email,EMAIL\na,b\n", "names `EMAIL` twice"),
        (b"email,\"unterminated\na,b\n", "row"),
    ] {
        let (status, body) = stage(&app, Some(&app.key), "bad.csv", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    let (status, _) = stage(&app, None, "x.csv", b"email\na@example.com\n").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let reader = app.key_with("contacts:read").await;
    let (status, body) = stage(&app, Some(&reader), "x.csv", b"email\na@example.com\n").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (_, staged) = stage(&app, Some(&app.key), "ok.csv", b"Mail,Plan\na@example.com,gold\n").await;
    let id = staged["id"].as_str().unwrap().to_owned();
    for (mapping, code, field) in [
        (
            json!([{ "column": "Plan", "field": "firstName" }]),
            "REQUIRED",
            json!(["input", "mapping"]),
        ),
        (
            json!([{ "column": "Nope", "field": "email" }]),
            "NOT_FOUND",
            json!(["input", "mapping", "0", "column"]),
        ),
        (
            json!([{ "column": "Mail", "field": "email" }, { "column": "Plan", "field": "plan" }]),
            "INVALID",
            json!(["input", "mapping", "1", "field"]),
        ),
        (
            json!([{ "column": "Mail", "field": "email" }, { "column": "Plan", "field": "custom:plan" }]),
            "UNKNOWN_FIELD",
            json!(["input", "mapping", "1", "field"]),
        ),
        (
            json!([{ "column": "Mail", "field": "email" }, { "column": "Plan", "field": "email" }]),
            "INVALID",
            json!(["input", "mapping", "1", "field"]),
        ),
    ] {
        let data = app
            .gql(START, json!({ "i": { "importId": id, "mapping": mapping } }))
            .await;
        let payload = &data["contactImportStart"];
        assert_eq!(payload["import"], Value::Null, "{payload}");
        assert_eq!(payload["userErrors"][0]["code"], code, "{payload}");
        assert_eq!(payload["userErrors"][0]["field"], field, "{payload}");
    }
    // Another workspace's import does not exist for this one.
    let other = app.other_workspace("contacts:read,contacts:write").await;
    let (_, theirs) = stage(&app, Some(&other), "theirs.csv", b"email\nt@example.com\n").await;
    let data = app
        .gql(
            START,
            json!({ "i": { "importId": theirs["id"], "mapping": [{ "column": "email", "field": "email" }] } }),
        )
        .await;
    assert_eq!(codes(&data["contactImportStart"]), ["NOT_FOUND"]);
    let data = app.gql(STATUS, json!({ "id": theirs["id"] })).await;
    assert_eq!(data["contactImport"], Value::Null);
}

#[tokio::test]
async fn the_cli_imports_a_file_with_a_mapping_or_the_one_the_header_suggests() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contacts.csv");
    std::fs::write(&path, "Email,First Name,Stage\nann@example.com,Ann,lead\nbad,Bo,\n").unwrap();
    let workspace = app.workspace_id.to_string();
    let file = path.to_str().unwrap();
    let (ok, stdout, stderr) = app.cli(&["contacts", "import", file, "--workspace", &workspace, "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("Email=email,First Name=firstName"), "{stderr}");
    assert!(
        stdout.contains("2 rows: 1 would be created, 0 would be updated, 0 skipped, 1 not imported"),
        "{stdout}"
    );
    assert!(
        stdout.contains("row 2 (Email): `bad` is not a valid email address"),
        "{stdout}"
    );
    assert_eq!(app.contact_count().await, 0);
    let (ok, stdout, stderr) = app.cli(&[
        "contacts",
        "import",
        file,
        "--workspace",
        &workspace,
        "--map",
        "Email=email,First Name=firstName,Stage=lifecycleStage",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 rows: 1 created"), "{stdout}");
    let ann = app
        .gql(
            r#"{ contactByEmail(email: "ann@example.com") { firstName lifecycleStage } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        ann["contactByEmail"],
        json!({ "firstName": "Ann", "lifecycleStage": "LEAD" })
    );
    let (ok, _, stderr) = app.cli(&["contacts", "import", file, "--workspace", &workspace, "--map", "Email"]);
    assert!(!ok && stderr.contains("`Email` is not COLUMN=FIELD"), "{stderr}");
}

/// An export carries tags, consent and custom fields as columns (and a BOM for Excel when
/// asked), under the names an import suggests: it imports back as it is.
#[tokio::test]
async fn an_export_with_tags_consent_and_custom_fields_imports_back() {
    let app = TestApp::spawn().await;
    app.gql(
        r#"mutation { a: customFieldDefine(input: {objectType: CONTACT, key: "plan", label: "Plan", type: MULTI_SELECT, options: ["gold", "=cmd"]}) { userErrors { code } }
                     b: customFieldDefine(input: {objectType: CONTACT, key: "seats", label: "Seats", type: NUMBER}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;
    app.create_contact(
        json!({ "email": "ann@example.com", "firstName": "Ann", "tags": ["vip", "early"],
        "consent": { "email": { "status": "GRANTED" } }, "customFields": { "plan": ["gold", "=cmd"], "seats": 12 } }),
    )
    .await;
    app.create_contact(json!({ "email": "bo@example.com" })).await;
    let segment = app
        .gql(
            r#"mutation { segmentCreate(input: {name: "All", filter: {email: {isNull: false}}}) { segment { id } } }"#,
            json!({}),
        )
        .await;
    let segment = segment["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.csv");
    let (ok, _, stderr) = app.cli(&["segment", "export", &segment, "--bom", "-o", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let csv = std::fs::read_to_string(&file).unwrap();
    assert!(csv.starts_with("\u{feff}id,email,first_name,last_name,phone,lifecycle_stage,company,owner_id,tags,consent_email,consent_sms,consent_phone,consent_letter,consent_visit,created_at,last_activity_at,plan,seats\n"), "{csv}");
    let ann = csv.lines().find(|l| l.contains("ann@example.com")).unwrap();
    assert!(
        ann.contains(",early; vip,granted,unknown,unknown,unknown,unknown,"),
        "{ann}"
    );
    assert!(
        ann.ends_with(",gold; =cmd,12"),
        "a list starting with a letter is no formula: {ann}"
    );

    let (status, staged) = stage(&app, Some(&app.key), "all.csv", csv.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{staged}");
    let fields: Vec<&str> = staged["suggestedMapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "email",
            "firstName",
            "lastName",
            "phone",
            "lifecycleStage",
            "company",
            "tags",
            "consent:email",
            "consent:sms",
            "consent:phone",
            "consent:letter",
            "consent:visit",
            "custom:plan",
            "custom:seats"
        ]
    );
    let id = staged["id"].as_str().unwrap().to_owned();
    let data = app
        .gql(
            START,
            json!({ "i": { "importId": id, "mapping": staged["suggestedMapping"] } }),
        )
        .await;
    assert_eq!(codes(&data["contactImportStart"]), Vec::<String>::new(), "{data}");
    let done = finished(&app, &id).await;
    assert_eq!(
        (done["updated"].as_i64(), done["failed"].as_i64()),
        (Some(2), Some(0)),
        "{done}"
    );
    let ann = app
        .gql(
            r#"{ contactByEmail(email: "ann@example.com") { tags consent { email { status } } customFields } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        ann["contactByEmail"],
        json!({ "tags": ["early", "vip"], "consent": { "email": { "status": "GRANTED" } },
                "customFields": { "plan": ["gold", "=cmd"], "seats": 12.0 } })
    );
}

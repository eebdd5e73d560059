//! The one write path: every kind of write moves the dynamic segments that depend on it, at
//! once, whichever entry point it came through (GraphQL, the tracking API, a browser).

use crate::support::{TestApp, codes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const CREATE_SEGMENT: &str = "mutation($input: SegmentCreateInput!) { segmentCreate(input: $input) { segment { id } userErrors { code message } } }";

async fn segment(app: &TestApp, name: &str, filter: Value) -> String {
    let data = app
        .gql(CREATE_SEGMENT, json!({ "input": { "name": name, "filter": filter } }))
        .await;
    assert_eq!(codes(&data["segmentCreate"]), Vec::<String>::new(), "{data}");
    data["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned()
}

async fn member_count(app: &TestApp, id: &str) -> i64 {
    let data = app
        .gql(
            "query($id: ID!) { segment(id: $id) { memberCount } }",
            json!({ "id": id }),
        )
        .await;
    data["segment"]["memberCount"].as_i64().unwrap()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_entry_point_moves_the_segments_that_depend_on_it() {
    let app = TestApp::spawn().await;

    // A contact mutation.
    let by_name = segment(&app, "Named Moved", json!({ "lastName": { "eq": "Moved" } })).await;
    let ann = app.create_contact(json!({ "email": "ann@example.com" })).await;
    assert_eq!(member_count(&app, &by_name).await, 0);
    let data = app
        .gql(
            "mutation($id: ID!) { contactUpdate(id: $id, input: {lastName: \"Moved\"}) { userErrors { code } } }",
            json!({ "id": ann["id"] }),
        )
        .await;
    assert_eq!(codes(&data["contactUpdate"]), Vec::<String>::new());
    assert_eq!(member_count(&app, &by_name).await, 1, "contactUpdate");

    // `eventRecord`.
    let callers = segment(
        &app,
        "Called",
        json!({ "events": [{ "type": "CALL_LOGGED", "atLeast": 1 }] }),
    )
    .await;
    let data = app
        .gql(
            "mutation($id: ID!) { eventRecord(input: {contactId: $id, type: CALL_LOGGED, channel: PHONE}) { userErrors { code } } }",
            json!({ "id": ann["id"] }),
        )
        .await;
    assert_eq!(codes(&data["eventRecord"]), Vec::<String>::new());
    assert_eq!(member_count(&app, &callers).await, 1, "eventRecord");

    // An ingested batch.
    let shoppers = segment(
        &app,
        "Shoppers",
        json!({ "events": [{ "type": "ORDER_COMPLETED", "atLeast": 1 }] }),
    )
    .await;
    let key = app.write_key().await;
    let (status, body) = app
        .track(
            "/v1/batch",
            &key,
            json!({ "batch": [
                { "type": "identify", "userId": "u-1", "traits": { "email": "bo@example.com" }, "messageId": "m-1" },
                { "type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "m-2" }
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(member_count(&app, &shoppers).await, 1, "an ingested batch");

    // A form submission.
    let data = app
        .gql(
            "mutation($i: FormInput!) { formCreate(input: $i) { form { submitPath } userErrors { code } } }",
            json!({ "i": { "name": "Newsletter", "fields": [
                { "key": "email", "label": "Email", "type": "EMAIL", "mapsTo": "email", "required": true }
            ] } }),
        )
        .await;
    assert_eq!(codes(&data["formCreate"]), Vec::<String>::new(), "{data}");
    let submit = format!(
        "{}{}",
        app.address,
        data["formCreate"]["form"]["submitPath"].as_str().unwrap()
    );
    let submitters = segment(
        &app,
        "Submitters",
        json!({ "events": [{ "type": "FORM_SUBMITTED", "atLeast": 1 }] }),
    )
    .await;
    let response = browser()
        .post(&submit)
        .json(&json!({ "email": "cy@example.com" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(member_count(&app, &submitters).await, 1, "a form submission");

    // A landing-page view and a link click, by anonymous visitors.
    let viewers = segment(
        &app,
        "Viewers",
        json!({ "anonymous": true, "events": [{ "type": "PAGE_VIEWED", "atLeast": 1 }] }),
    )
    .await;
    let data = app
        .gql(
            "mutation { landingPageCreate(input: {slug: \"spring\", title: \"Spring\", bodyHtml: \"<p>Hi</p>\"}) { landingPage { path } userErrors { code } } }",
            json!({}),
        )
        .await;
    assert_eq!(codes(&data["landingPageCreate"]), Vec::<String>::new(), "{data}");
    let page = data["landingPageCreate"]["landingPage"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = browser().get(format!("{}{page}", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(member_count(&app, &viewers).await, 1, "a landing-page view");

    let clickers = segment(
        &app,
        "Clickers",
        json!({ "anonymous": true, "events": [{ "type": "LINK_CLICKED", "atLeast": 1 }] }),
    )
    .await;
    let data = app
        .gql(
            "mutation { trackedLinkCreate(input: {targetUrl: \"https://example.com/sofa\"}) { trackedLink { path } userErrors { code } } }",
            json!({}),
        )
        .await;
    let link = data["trackedLinkCreate"]["trackedLink"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = browser().get(format!("{}{link}", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(member_count(&app, &clickers).await, 1, "a link click");

    // A company mutation moves its contacts.
    let company = app.create_company(json!({ "name": "Acme" })).await;
    let renamed = segment(
        &app,
        "At Renamed",
        json!({ "company": { "name": { "eq": "Renamed" } } }),
    )
    .await;
    let data = app
        .gql(
            "mutation($id: ID!, $c: ID!) { contactUpdate(id: $id, input: {companyId: $c}) { userErrors { code } } }",
            json!({ "id": ann["id"], "c": company }),
        )
        .await;
    assert_eq!(codes(&data["contactUpdate"]), Vec::<String>::new());
    assert_eq!(member_count(&app, &renamed).await, 0);
    let data = app
        .gql(
            "mutation($id: ID!) { companyUpdate(id: $id, input: {name: \"Renamed\"}) { userErrors { code } } }",
            json!({ "id": company }),
        )
        .await;
    assert_eq!(codes(&data["companyUpdate"]), Vec::<String>::new(), "{data}");
    assert_eq!(member_count(&app, &renamed).await, 1, "a company update");
    let data = app
        .gql(
            "mutation($id: ID!) { companyDelete(id: $id) { userErrors { code } } }",
            json!({ "id": company }),
        )
        .await;
    assert_eq!(codes(&data["companyDelete"]), Vec::<String>::new(), "{data}");
    assert_eq!(member_count(&app, &renamed).await, 0, "a company deletion");

    // A hand-kept list moves the segments that name it.
    let data = app
        .gql(
            "mutation { segmentCreate(input: {name: \"VIP list\", kind: STATIC}) { segment { id } userErrors { code } } }",
            json!({}),
        )
        .await;
    let list = data["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned();
    let not_vip = segment(
        &app,
        "Called, not VIP",
        json!({ "events": [{ "type": "CALL_LOGGED" }], "segments": { "notIn": [list] } }),
    )
    .await;
    assert_eq!(member_count(&app, &not_vip).await, 1);
    let data = app
        .gql(
            "mutation($id: ID!, $c: ID!) { segmentAddMembers(segmentId: $id, contactIds: [$c]) { userErrors { code } } }",
            json!({ "id": list, "c": ann["id"] }),
        )
        .await;
    assert_eq!(codes(&data["segmentAddMembers"]), Vec::<String>::new(), "{data}");
    assert_eq!(member_count(&app, &not_vip).await, 0, "a list's members");

    // A merge gives the winner the loser's history; a deletion takes the contact out.
    let dee = app.create_contact(json!({ "email": "dee@example.com" })).await;
    let data = app
        .gql(
            "mutation($w: ID!, $l: ID!) { contactMerge(winnerId: $w, loserId: $l) { userErrors { code } } }",
            json!({ "w": dee["id"], "l": ann["id"] }),
        )
        .await;
    assert_eq!(codes(&data["contactMerge"]), Vec::<String>::new(), "{data}");
    let data = app
        .gql(
            "query($id: ID!) { segment(id: $id) { members { nodes { email } } } }",
            json!({ "id": callers }),
        )
        .await;
    assert_eq!(
        data["segment"]["members"]["nodes"],
        json!([{ "email": "dee@example.com" }]),
        "a merge"
    );
    let data = app
        .gql(
            "mutation($id: ID!) { contactDelete(id: $id) { userErrors { code } } }",
            json!({ "id": dee["id"] }),
        )
        .await;
    assert_eq!(codes(&data["contactDelete"]), Vec::<String>::new());
    assert_eq!(member_count(&app, &callers).await, 0, "a deletion");
}

/// A segment saved before filters had a stored format of their own (the client's GraphQL input
/// as JSON, with its nulls, a single value where a list goes, enum and id names) still loads,
/// evaluates, and is shown as its filter.
#[tokio::test]
async fn segments_saved_in_the_previous_format_still_load() {
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
    let app = TestApp::spawn().await;
    let company = app.create_company(json!({ "name": "Acme" })).await;
    app.create_contact(
        json!({ "email": "lead@example.com", "lifecycleStage": "LEAD", "companyId": company, "tags": ["vip"] }),
    )
    .await;
    app.create_contact(json!({ "email": "customer@example.com", "lifecycleStage": "CUSTOMER" }))
        .await;
    let id = segment(&app, "Leads", json!({ "email": { "contains": "nobody" } })).await;
    let uuid = voxtur_core::ids::decode_as(&id, voxtur_core::ids::NodeKind::Segment).unwrap();

    // As the previous release stored it: `in` given one value, explicit nulls, nested `and`.
    let old = json!({
        "and": [
            { "lifecycleStage": { "in": "LEAD", "neq": null } },
            { "companyId": { "in": [company] }, "tags": { "hasAny": "vip" } }
        ],
        "email": { "startsWith": null, "contains": "example" },
        "events": null
    });
    let model = entities::segment::Entity::find_by_id(uuid)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut active = model.into_active_model();
    active.filter = sea_orm::ActiveValue::Set(Some(old.clone()));
    active.update(&app.db).await.unwrap();

    let data = app
        .gql(
            "mutation($id: ID!) { segmentRebuild(id: $id) { segment { memberCount members { nodes { email } } } userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    let rebuilt = &data["segmentRebuild"];
    assert_eq!(codes(rebuilt), Vec::<String>::new(), "{data}");
    assert_eq!(
        rebuilt["segment"]["members"]["nodes"],
        json!([{ "email": "lead@example.com" }]),
        "{data}"
    );
    // Changes keep it current too: it is parsed on every write.
    app.create_contact(
        json!({ "email": "second@example.com", "lifecycleStage": "LEAD", "companyId": company, "tags": ["vip"] }),
    )
    .await;
    assert_eq!(member_count(&app, &id).await, 2);
    let data = app
        .gql("query($id: ID!) { segment(id: $id) { filter } }", json!({ "id": id }))
        .await;
    assert_eq!(data["segment"]["filter"], old);
}

/// Every `userErrors` entry names the argument at fault: values within `input` under it, the
/// operation's other arguments as they are.
#[tokio::test]
async fn user_errors_name_the_argument_at_fault() {
    let app = TestApp::spawn().await;
    let missing_contact = "Q29udGFjdDowMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA";
    let list = app
        .gql(
            "mutation { segmentCreate(input: {name: \"List\", kind: STATIC}) { segment { id } } }",
            json!({}),
        )
        .await["segmentCreate"]["segment"]["id"]
        .clone();
    let company = app.create_company(json!({ "name": "Acme" })).await;
    let cases = [
        (
            "mutation($id: ID!) { contactUpdate(id: $id, input: {firstName: \"A\"}) { userErrors { code field } } }",
            json!({ "id": missing_contact }),
            "contactUpdate",
            json!([{ "code": "NOT_FOUND", "field": ["id"] }]),
        ),
        (
            "mutation($id: ID!) { companyUpdate(id: $id, input: {domain: \"not a domain\"}) { userErrors { code field } } }",
            json!({ "id": company }),
            "companyUpdate",
            json!([{ "code": "INVALID", "field": ["input", "domain"] }]),
        ),
        (
            "mutation { segmentCreate(input: {name: \"\", kind: STATIC}) { userErrors { code field } } }",
            json!({}),
            "segmentCreate",
            json!([{ "code": "REQUIRED", "field": ["input", "name"] }]),
        ),
        (
            "mutation($id: ID!) { segmentAddMembers(segmentId: $id, contactIds: [\"bm9wZQ\"]) { userErrors { code field } } }",
            json!({ "id": list }),
            "segmentAddMembers",
            json!([{ "code": "NOT_FOUND", "field": ["contactIds", "0"] }]),
        ),
        (
            "mutation($id: ID!) { segmentImportEmails(segmentId: $id, csv: \"email\\nnot-an-email\") { userErrors { code field } } }",
            json!({ "id": list }),
            "segmentImportEmails",
            json!([{ "code": "INVALID_EMAIL", "field": ["csv", "2"] }]),
        ),
        (
            "mutation { contactsUpsert(inputs: [{email: \"a@example.com\"}, {email: \"A@example.com\"}]) { userErrors { code field } } }",
            json!({}),
            "contactsUpsert",
            json!([{ "code": "DUPLICATE_IN_BATCH", "field": ["inputs", "1", "email"] }]),
        ),
    ];
    for (query, variables, field, expected) in cases {
        let data = app.gql(query, variables).await;
        assert_eq!(data[field]["userErrors"], expected, "{field}: {data}");
    }
}

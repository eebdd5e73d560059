//! Segments: dynamic membership kept current by changes and events, marketing lists, history,
//! and clear errors for bad definitions.

use crate::support::{TestApp, codes};
use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: SegmentCreateInput!) { segmentCreate(input: $input) { segment { id name kind memberCount } userErrors { code field message } } }";
const UPDATE: &str = "mutation($id: ID!, $input: SegmentUpdateInput!) { segmentUpdate(id: $id, input: $input) { segment { id memberCount } userErrors { code field message } } }";
const MEMBERS: &str = "query($id: ID!) { segment(id: $id) { memberCount members(first: 100, orderBy: [{email: ASC}]) { totalCount nodes { email } } } }";

async fn create_segment(app: &TestApp, input: Value) -> Value {
    let data = app.gql(CREATE, json!({ "input": input })).await;
    data["segmentCreate"].clone()
}

async fn segment_id(app: &TestApp, input: Value) -> String {
    let payload = create_segment(app, input).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["segment"]["id"].as_str().unwrap().to_owned()
}

async fn members(app: &TestApp, id: &str) -> (i64, Vec<String>) {
    let data = app.gql(MEMBERS, json!({ "id": id })).await;
    let segment = &data["segment"];
    let emails: Vec<String> = segment["members"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(segment["members"]["totalCount"], segment["memberCount"], "{segment}");
    (segment["memberCount"].as_i64().unwrap(), emails)
}

/// Time passing for segments' sliding windows, as events made `days` older imitate it: the
/// times the windows were last brought up to date move back as well.
async fn age_window_checks(db: &sea_orm::DatabaseConnection, days: i64) {
    for segment in entities::segment::Entity::find().all(db).await.unwrap() {
        if let Some(checked) = segment.windows_checked_at {
            entities::segment::Entity::update_many()
                .col_expr(
                    entities::segment::Column::WindowsCheckedAt,
                    Expr::value(checked - Duration::days(days)),
                )
                .filter(entities::segment::Column::Id.eq(segment.id))
                .exec(db)
                .await
                .unwrap();
        }
    }
}

async fn update_contact(app: &TestApp, id: &str, input: Value) {
    let data = app
        .gql(
            "mutation($id: ID!, $input: ContactUpdateInput!) { contactUpdate(id: $id, input: $input) { userErrors { code } } }",
            json!({ "id": id, "input": input }),
        )
        .await;
    assert_eq!(data["contactUpdate"]["userErrors"], json!([]));
}

#[tokio::test]
async fn dynamic_segments_follow_contact_changes_and_events() {
    let app = TestApp::spawn().await;
    let a = app
        .create_contact(json!({ "email": "a@example.com", "lifecycleStage": "LEAD", "tags": ["vip"] }))
        .await;
    let b = app
        .create_contact(json!({ "email": "b@example.com", "lifecycleStage": "LEAD" }))
        .await;
    app.create_contact(json!({ "email": "c@example.com", "lifecycleStage": "CUSTOMER" }))
        .await;

    let hot = segment_id(
        &app,
        json!({ "name": "Hot leads", "filter": { "lifecycleStage": { "eq": "LEAD" }, "tags": { "hasAny": ["vip"] } } }),
    )
    .await;
    assert_eq!(members(&app, &hot).await, (1, vec!["a@example.com".to_owned()]));

    // A change to a contact moves it in at once; and out again.
    update_contact(&app, b["id"].as_str().unwrap(), json!({ "tags": ["vip"] })).await;
    assert_eq!(members(&app, &hot).await.0, 2);
    update_contact(&app, a["id"].as_str().unwrap(), json!({ "tags": [] })).await;
    assert_eq!(members(&app, &hot).await, (1, vec!["b@example.com".to_owned()]));

    // Behaviour: at least two page views in the last 30 days, and "never ordered".
    let active = segment_id(
        &app,
        json!({ "name": "Active", "filter": { "events": [{ "type": "PAGE_VIEWED", "atLeast": 2, "withinLastDays": 30 }] } }),
    )
    .await;
    let never = segment_id(
        &app,
        json!({ "name": "Never ordered", "filter": { "events": [{ "type": "ORDER_COMPLETED", "atMost": 0 }] } }),
    )
    .await;
    assert_eq!(members(&app, &active).await.0, 0);
    assert_eq!(members(&app, &never).await.0, 3);
    let key = app.write_key().await;
    let batch = json!({ "batch": [
        { "type": "identify", "userId": "c", "traits": { "email": "c@example.com" } },
        { "type": "page", "userId": "c", "name": "Home" },
        { "type": "page", "userId": "c", "name": "Pricing" },
        { "type": "track", "userId": "c", "event": "Order Completed", "properties": { "total": 120 } },
    ]});
    let (status, _) = app.track("/v1/batch", &key, batch).await;
    assert!(status.is_success());
    // The events moved membership before the ingestion call returned.
    assert_eq!(members(&app, &active).await, (1, vec!["c@example.com".to_owned()]));
    assert_eq!(members(&app, &never).await.0, 2);

    // Property conditions and exact counts.
    let big = segment_id(
        &app,
        json!({ "name": "Big order", "filter": { "events": [{ "type": "ORDER_COMPLETED", "exactly": 1, "properties": [{ "key": "total", "gte": 100 }] }] } }),
    )
    .await;
    assert_eq!(members(&app, &big).await.0, 1);
    let bigger = segment_id(
        &app,
        json!({ "name": "Bigger order", "filter": { "events": [{ "type": "ORDER_COMPLETED", "properties": [{ "key": "total", "gt": 500 }] }] } }),
    )
    .await;
    assert_eq!(members(&app, &bigger).await.0, 0);

    // Membership of other segments, nested with and/or/not.
    let either = segment_id(
        &app,
        json!({ "name": "Hot or active", "filter": { "or": [ { "segments": { "in": [hot] } }, { "segments": { "in": [active] } } ] } }),
    )
    .await;
    assert_eq!(members(&app, &either).await.0, 2);
    let quiet = segment_id(
        &app,
        json!({ "name": "Quiet", "filter": { "not": { "segments": { "in": [either] } } } }),
    )
    .await;
    assert_eq!(members(&app, &quiet).await, (1, vec!["a@example.com".to_owned()]));
    // A change flows through the dependent segments in order.
    update_contact(&app, a["id"].as_str().unwrap(), json!({ "tags": ["vip"] })).await;
    assert_eq!(members(&app, &either).await.0, 3);
    assert_eq!(members(&app, &quiet).await.0, 0);

    // The preview counts the same without saving.
    let preview = app
        .gql(
            "query($f: ContactFilter!) { segmentPreview(filter: $f, first: 1) { totalCount nodes { email } } }",
            json!({ "f": { "events": [{ "type": "ORDER_COMPLETED", "atMost": 0 }] } }),
        )
        .await;
    assert_eq!(preview["segmentPreview"]["totalCount"], 2);
    // A costly filter counts in the page's statement; pages, ends and totals stay right either
    // way, forward, backward and past a cursor.
    let never_ordered = json!({ "events": [{ "type": "ORDER_COMPLETED", "atMost": 0 }] });
    let page = |args: &'static str| {
        let app = &app;
        let filter = never_ordered.clone();
        async move {
            let query = format!(
                "query($f: ContactFilter!) {{ contacts(filter: $f, orderBy: [{{email: ASC}}], {args}) \
                 {{ totalCount nodes {{ email }} pageInfo {{ hasNextPage hasPreviousPage endCursor }} }} }}"
            );
            app.gql(&query, json!({ "f": filter })).await["contacts"].clone()
        }
    };
    let first = page("first: 1").await;
    assert_eq!(first["totalCount"], 2, "{first}");
    assert_eq!(first["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
    let last = page("last: 1").await;
    assert_eq!(last["totalCount"], 2, "{last}");
    assert_eq!(last["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(last["pageInfo"]["hasNextPage"], false);
    assert_ne!(last["nodes"][0]["email"], first["nodes"][0]["email"]);
    let all = page("first: 5").await;
    assert_eq!(all["totalCount"], 2);
    assert_eq!(all["pageInfo"]["hasNextPage"], false);
    assert_eq!(all["nodes"][0], first["nodes"][0]);
    assert_eq!(all["nodes"][1], last["nodes"][0]);
    let rest = app
        .gql(
            "query($f: ContactFilter!, $after: String) { contacts(filter: $f, orderBy: [{email: ASC}], first: 5, after: $after) \
             { totalCount nodes { email } pageInfo { hasNextPage hasPreviousPage } } }",
            json!({ "f": never_ordered, "after": first["pageInfo"]["endCursor"] }),
        )
        .await["contacts"]
        .clone();
    assert_eq!(rest["totalCount"], 2, "{rest}");
    assert_eq!(rest["nodes"], json!([last["nodes"][0]]));
    assert_eq!(rest["pageInfo"]["hasPreviousPage"], true);
    let none = app
        .gql(
            "query($f: ContactFilter!) { contacts(filter: $f, first: 5) { totalCount nodes { email } pageInfo { hasNextPage } } }",
            json!({ "f": { "events": [{ "type": "MEETING_BOOKED" }] } }),
        )
        .await;
    assert_eq!(
        none["contacts"],
        json!({ "totalCount": 0, "nodes": [], "pageInfo": { "hasNextPage": false } })
    );

    // History, the contact's segments, and its timeline.
    let data = app
        .gql(
            "query($id: ID!) { segment(id: $id) { history(first: 10) { totalCount nodes { entered contact { email } } } } }",
            json!({ "id": hot }),
        )
        .await;
    let history: Vec<(bool, String)> = data["segment"]["history"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["entered"].as_bool().unwrap(),
                n["contact"]["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            (true, "a@example.com".to_owned()),
            (false, "a@example.com".to_owned()),
            (true, "b@example.com".to_owned()),
            (true, "a@example.com".to_owned()),
        ],
        "newest first"
    );
    let data = app
        .gql(
            r#"{ contactByEmail(email: "a@example.com") { segments { name } timeline(first: 20, filter: {types: [SEGMENT_ENTERED, SEGMENT_EXITED]}) { nodes { type properties } } } }"#,
            json!({}),
        )
        .await;
    let names: Vec<&str> = data["contactByEmail"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Hot leads", "Hot or active", "Never ordered"]);
    let timeline = data["contactByEmail"]["timeline"]["nodes"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["type"] == "SEGMENT_EXITED" && e["properties"]["segment"] == "Hot leads")
    );
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn sliding_windows_expire_and_rebuild_repairs() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let batch = json!({ "batch": [
        { "type": "identify", "userId": "v", "traits": { "email": "v@example.com" } },
        { "type": "page", "userId": "v", "name": "Home" },
    ]});
    app.track("/v1/batch", &key, batch).await;
    let recent = segment_id(
        &app,
        json!({ "name": "Recent visitors", "filter": { "events": [{ "type": "PAGE_VIEWED", "withinLastDays": 7 }] } }),
    )
    .await;
    let fans = segment_id(
        &app,
        json!({ "name": "Not recent", "filter": { "not": { "segments": { "in": [recent] } } } }),
    )
    .await;
    assert_eq!(members(&app, &recent).await.0, 1);
    assert_eq!(members(&app, &fans).await.0, 0);

    // Eight days pass for that page view.
    entities::event::Entity::update_many()
        .col_expr(
            entities::event::Column::OccurredAt,
            Expr::value(Utc::now() - Duration::days(8)),
        )
        .filter(entities::event::Column::EventType.eq("page_viewed"))
        .exec(&app.db)
        .await
        .unwrap();
    // Events edited behind the API's back: their tallies follow by a rebuild.
    voxtur_core::events::tally::rebuild(&app.db, app.workspace_id)
        .await
        .unwrap();
    age_window_checks(&app.db, 8).await;
    let evaluated = voxtur_core::segments::expire_windows(&app.db).await.unwrap();
    assert_eq!(evaluated, 2, "the windowed segment and the one that names it");
    assert_eq!(members(&app, &recent).await.0, 0);
    assert_eq!(members(&app, &fans).await.0, 1);

    // Membership damaged behind the API's back is repaired by a rebuild.
    entities::segment_member::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    let data = app
        .gql(
            "mutation($id: ID!) { segmentRebuild(id: $id) { enteredCount exitedCount segment { memberCount } userErrors { code } } }",
            json!({ "id": fans }),
        )
        .await;
    assert_eq!(data["segmentRebuild"]["enteredCount"], 1);
    assert_eq!(data["segmentRebuild"]["exitedCount"], 0);

    // So are tallies: the workspace rebuild recomputes them from the events before it
    // re-evaluates, or the visitor's fresh page view would not count.
    let again = json!({ "batch": [{ "type": "page", "userId": "v", "name": "Pricing" }] });
    app.track("/v1/batch", &key, again).await;
    assert_eq!(members(&app, &recent).await.0, 1);
    assert_eq!(members(&app, &fans).await.0, 0);
    app.db.execute_unprepared("DELETE FROM event_tally").await.unwrap();
    let workspace = app.workspace_id.to_string();
    let (ok, stdout, stderr) = app.cli(&["segment", "rebuild", "--workspace", &workspace]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("event tallies recomputed"), "{stdout}");
    assert_eq!(members(&app, &recent).await.0, 1, "{stdout}");
    assert_eq!(members(&app, &fans).await.0, 0, "{stdout}");
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn a_tally_rebuild_holds_off_writers_of_its_own_workspace_only() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let other = voxtur_core::workspaces::create_workspace(&app.db, "Other")
        .await
        .unwrap();
    let other_key = voxtur_core::events::write_keys::issue(&app.db, other.id, "other", None)
        .await
        .unwrap()
        .secret;
    let page = |user: &str| json!({ "batch": [{ "type": "page", "userId": user, "name": "Home" }] });
    app.track("/v1/batch", &key, page("before")).await;

    // A rebuild of this workspace in progress: its transaction is still open.
    let rebuild = voxtur_store::db::begin_write(&app.db).await.unwrap();
    voxtur_core::events::tally::rebuild_in(&rebuild, app.workspace_id)
        .await
        .unwrap();
    let postgres = app.db.get_database_backend() == sea_orm::DbBackend::Postgres;
    if postgres {
        // Another workspace's events and tallies go on (SQLite has one writer for all).
        let (status, _) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            app.track("/v1/batch", &other_key, page("elsewhere")),
        )
        .await
        .expect("another workspace's batch does not wait for this rebuild");
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    // This workspace's batch waits for the rebuild, and then counts on top of it.
    let during = app.track("/v1/batch", &key, page("during"));
    tokio::pin!(during);
    tokio::select! {
        _ = &mut during => panic!("a batch of the rebuilding workspace must wait for it"),
        _ = tokio::time::sleep(std::time::Duration::from_millis(400)) => {}
    }
    sea_orm::TransactionSession::commit(rebuild).await.unwrap();
    assert_eq!(during.await.0, reqwest::StatusCode::OK);
    app.assert_tallies_match_events().await;
    if !postgres {
        app.track("/v1/batch", &other_key, page("elsewhere")).await;
    }
    let count = sea_orm::sea_query::Query::select()
        .expr(Expr::cust("count(*)"))
        .from(sea_orm::sea_query::Alias::new("event_tally"))
        .and_where(sea_orm::sea_query::ExprTrait::eq(
            Expr::col(sea_orm::sea_query::Alias::new("workspace_id")),
            other.id,
        ))
        .to_owned();
    let row = app.db.query_one(&count).await.unwrap().unwrap();
    assert_eq!(
        row.try_get_by_index::<i64>(0).unwrap(),
        1,
        "the other workspace's page view is tallied"
    );
}

/// A tally keeps the latest ten times of each type: counts up to ten in a window read them, and
/// larger ones count events. Around that edge, with page views arriving out of order and
/// retried, both give the answers counting the events by hand gives.
#[tokio::test]
async fn counts_at_the_edge_of_what_tallies_keep() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let identify =
        json!({ "batch": [{ "type": "identify", "userId": "busy", "traits": { "email": "busy@example.com" } }] });
    app.track("/v1/batch", &key, identify).await;
    // Twelve page views in the last 20 days and three older ones, sent newest first in three
    // batches, the second sent twice.
    let days_ago = [1, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 19, 40, 45, 50];
    let views: Vec<Value> = days_ago
        .iter()
        .map(|d| {
            let at = (Utc::now() - Duration::days(*d) - Duration::hours(2)).to_rfc3339();
            json!({ "type": "page", "userId": "busy", "name": "Docs", "timestamp": at, "messageId": format!("view-{d}") })
        })
        .collect();
    for chunk in [&views[..5], &views[5..10], &views[5..10], &views[10..]] {
        let (status, _) = app.track("/v1/batch", &key, json!({ "batch": chunk })).await;
        assert!(status.is_success());
    }
    let count = |condition: Value| {
        let app = &app;
        async move {
            let data = app
                .gql(
                    "query($f: ContactFilter!) { contacts(filter: $f) { totalCount } }",
                    json!({ "f": { "events": [condition] } }),
                )
                .await;
            data["contacts"]["totalCount"].as_i64().unwrap()
        }
    };
    let windowed = |days: i64, n: i64, how: &str| {
        let mut c = json!({ "type": "PAGE_VIEWED", "withinLastDays": days });
        c[how] = json!(n);
        c
    };
    let in_20_days = |n: i64, how: &str| windowed(20, n, how);
    let in_10_days = |n: i64, how: &str| windowed(10, n, how);
    // Twelve in the window: at least 10 (tallies), 11 and 12 (events), not 13; exactly 12
    // (events); at most 9 (tallies) and 10 (events) no, at most 12 yes.
    assert_eq!(count(in_20_days(10, "atLeast")).await, 1);
    assert_eq!(count(in_20_days(11, "atLeast")).await, 1);
    assert_eq!(count(in_20_days(12, "atLeast")).await, 1);
    assert_eq!(count(in_20_days(13, "atLeast")).await, 0);
    assert_eq!(count(in_20_days(12, "exactly")).await, 1);
    assert_eq!(count(in_20_days(9, "exactly")).await, 0);
    assert_eq!(count(in_20_days(9, "atMost")).await, 0);
    assert_eq!(count(in_20_days(10, "atMost")).await, 0);
    assert_eq!(count(in_20_days(12, "atMost")).await, 1);
    // In the last 10 days, six: exactly 6 and at most 6 from tallies, at least 7 not.
    assert_eq!(count(in_10_days(6, "exactly")).await, 1);
    assert_eq!(count(in_10_days(6, "atMost")).await, 1);
    assert_eq!(count(in_10_days(7, "atLeast")).await, 0);
    // Around the third latest (1, 3 and 5 days ago, and 6), which PostgreSQL reads from an index
    // of its own (migration 10): three in 6 days, two in 5, four in 7.
    assert_eq!(count(windowed(6, 3, "atLeast")).await, 1);
    assert_eq!(count(windowed(5, 3, "atLeast")).await, 0);
    assert_eq!(count(windowed(5, 2, "atLeast")).await, 1);
    assert_eq!(count(windowed(6, 4, "atLeast")).await, 0);
    assert_eq!(count(windowed(7, 4, "atLeast")).await, 1);
    assert_eq!(count(windowed(6, 3, "exactly")).await, 1);
    assert_eq!(count(windowed(5, 2, "atMost")).await, 1);
    assert_eq!(count(windowed(6, 2, "atMost")).await, 0);
    // Ever: fifteen, the retried batch counted once.
    assert_eq!(count(json!({ "type": "PAGE_VIEWED", "exactly": 15 })).await, 1);
    assert_eq!(count(json!({ "type": "PAGE_VIEWED", "atLeast": 16 })).await, 0);
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn tallies_keep_the_latest_times_whatever_order_events_arrive_in() {
    let app = TestApp::spawn().await;
    let key = app.write_key().await;
    let view = |days: i64, hours: i64| {
        let at = (Utc::now() - Duration::days(days) - Duration::hours(hours)).to_rfc3339();
        json!({ "type": "page", "userId": "steady", "name": "Docs", "timestamp": at,
                "messageId": format!("steady-{days}-{hours}") })
    };
    // Oldest first, one batch each (every batch newer than all that is stored), then a batch
    // of older ones, one straddling the stored times (sent twice), and one newer than all.
    let mut batches: Vec<Vec<Value>> = (20..32).rev().map(|d| vec![view(d, 0)]).collect();
    batches.extend([
        vec![view(19, 0), view(18, 0)],
        vec![view(60, 0), view(50, 0)],
        vec![view(17, 5), view(3, 0), view(90, 0)],
        vec![view(17, 5), view(3, 0), view(90, 0)],
        vec![view(1, 0), view(0, 1)],
    ]);
    for batch in batches {
        let (status, body) = app.track("/v1/batch", &key, json!({ "batch": batch })).await;
        assert!(status.is_success(), "{body}");
    }
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn marketing_lists_take_members_by_id_filter_and_csv() {
    let app = TestApp::spawn().await;
    let a = app.create_contact(json!({ "email": "a@example.com" })).await;
    let b = app.create_contact(json!({ "email": "b@example.com" })).await;
    app.create_contact(json!({ "email": "c@example.com", "lifecycleStage": "CUSTOMER" }))
        .await;
    let list = segment_id(&app, json!({ "name": "Fair visitors", "kind": "STATIC" })).await;
    let add = "mutation($s: ID!, $ids: [ID!], $f: ContactFilter) { segmentAddMembers(segmentId: $s, contactIds: $ids, filter: $f) { changedCount segment { memberCount } userErrors { code field } } }";
    let remove = "mutation($s: ID!, $ids: [ID!]) { segmentRemoveMembers(segmentId: $s, contactIds: $ids) { changedCount userErrors { code } } }";
    let data = app.gql(add, json!({ "s": list, "ids": [a["id"], b["id"]] })).await;
    assert_eq!(data["segmentAddMembers"]["changedCount"], 2);
    let data = app.gql(add, json!({ "s": list, "ids": [a["id"]] })).await;
    assert_eq!(data["segmentAddMembers"]["changedCount"], 0, "already a member");
    let data = app
        .gql(
            add,
            json!({ "s": list, "f": { "lifecycleStage": { "eq": "CUSTOMER" } } }),
        )
        .await;
    assert_eq!(data["segmentAddMembers"]["segment"]["memberCount"], 3);
    let data = app.gql(remove, json!({ "s": list, "ids": [a["id"]] })).await;
    assert_eq!(data["segmentRemoveMembers"]["changedCount"], 1);
    assert_eq!(
        members(&app, &list).await.1,
        vec!["b@example.com".to_owned(), "c@example.com".to_owned()]
    );

    // CSV: unknown addresses are reported; a malformed one refuses the import.
    let import = "mutation($s: ID!, $csv: String!) { segmentImportEmails(segmentId: $s, csv: $csv) { changedCount unknownEmails userErrors { code field } } }";
    let data = app
        .gql(
            import,
            json!({ "s": list, "csv": "Name,Email\nAnn,A@Example.com\nNo One,nobody@example.com\n" }),
        )
        .await;
    assert_eq!(data["segmentImportEmails"]["changedCount"], 1);
    assert_eq!(
        data["segmentImportEmails"]["unknownEmails"],
        json!(["nobody@example.com"])
    );
    let data = app
        .gql(import, json!({ "s": list, "csv": "email\nnot-an-address\n" }))
        .await;
    assert_eq!(codes(&data["segmentImportEmails"]), vec!["INVALID_EMAIL"]);
    assert_eq!(members(&app, &list).await.0, 3);

    // Bad requests: a dynamic segment, a contact of another workspace, neither ids nor filter.
    let dynamic = segment_id(
        &app,
        json!({ "name": "Dyn", "filter": { "email": { "eq": "a@example.com" } } }),
    )
    .await;
    let data = app.gql(add, json!({ "s": dynamic, "ids": [b["id"]] })).await;
    assert_eq!(codes(&data["segmentAddMembers"]), vec!["INVALID"]);
    let other_key = app.other_workspace("contacts:write").await;
    let (_, body) = app
        .gql_as(
            Some(&other_key),
            "mutation { contactCreate(input: {email: \"x@other.com\"}) { contact { id } } }",
            json!({}),
        )
        .await;
    let foreign = body["data"]["contactCreate"]["contact"]["id"].clone();
    let data = app.gql(add, json!({ "s": list, "ids": [foreign] })).await;
    assert_eq!(codes(&data["segmentAddMembers"]), vec!["NOT_FOUND"]);
    let data = app.gql(add, json!({ "s": list })).await;
    assert_eq!(codes(&data["segmentAddMembers"]), vec!["INVALID"]);
    assert_eq!(members(&app, &list).await.0, 3);
}

#[tokio::test]
async fn bad_segment_definitions_are_user_errors_and_save_nothing() {
    let app = TestApp::spawn().await;
    let first = segment_id(
        &app,
        json!({ "name": "First", "filter": { "lifecycleStage": { "eq": "LEAD" } } }),
    )
    .await;
    let second = segment_id(
        &app,
        json!({ "name": "Second", "filter": { "segments": { "in": [first] } } }),
    )
    .await;

    let data = app
        .gql(
            "mutation($i: CustomFieldDefineInput!) { customFieldDefine(input: $i) { userErrors { code } } }",
            json!({ "i": { "objectType": "CONTACT", "key": "nps", "label": "NPS", "type": "NUMBER" } }),
        )
        .await;
    assert_eq!(data["customFieldDefine"]["userErrors"], json!([]));
    let cases = [
        (
            json!({ "name": "X", "filter": { "customFields": [{ "key": "nope", "eq": 1 }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "customFields": [{ "key": "nps", "gt": "high" }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "ORDER_COMPLETED", "properties": [{ "key": "total", "gt": { "a": 1 } }] }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "PAGE_VIEWED", "withinLastDays": 0 }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "PAGE_VIEWED", "withinLastDays": -3 }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "PAGE_VIEWED", "atLeast": 0 }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "PAGE_VIEWED", "atLeast": 2, "atMost": 5 }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "X", "filter": { "events": [{ "type": "PAGE_VIEWED", "properties": [{ "key": "total" }] }] } }),
            "INVALID",
        ),
        (
            json!({ "name": "First", "filter": { "lifecycleStage": { "eq": "LEAD" } } }),
            "TAKEN",
        ),
        (
            json!({ "name": " ", "filter": { "lifecycleStage": { "eq": "LEAD" } } }),
            "REQUIRED",
        ),
        (json!({ "name": "X" }), "REQUIRED"),
        (
            json!({ "name": "X", "kind": "STATIC", "filter": { "lifecycleStage": { "eq": "LEAD" } } }),
            "INVALID",
        ),
    ];
    for (input, code) in cases {
        let payload = create_segment(&app, input.clone()).await;
        assert_eq!(codes(&payload), vec![code], "{input} -> {payload}");
        assert!(payload["segment"].is_null());
    }

    // A segment of another workspace cannot be named.
    let other_key = app.other_workspace("contacts:write").await;
    let (_, body) = app
        .gql_as(
            Some(&other_key),
            CREATE,
            json!({ "input": { "name": "Theirs", "filter": { "lifecycleStage": { "eq": "LEAD" } } } }),
        )
        .await;
    let theirs = body["data"]["segmentCreate"]["segment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = create_segment(
        &app,
        json!({ "name": "X", "filter": { "segments": { "in": [theirs] } } }),
    )
    .await;
    assert_eq!(codes(&payload), vec!["NOT_FOUND"]);

    // Cycles, direct and through another segment.
    let data = app
        .gql(
            UPDATE,
            json!({ "id": first, "input": { "filter": { "segments": { "in": [second] } } } }),
        )
        .await;
    assert_eq!(codes(&data["segmentUpdate"]), vec!["CYCLE"]);
    let data = app
        .gql(
            UPDATE,
            json!({ "id": first, "input": { "filter": { "segments": { "notIn": [first] } } } }),
        )
        .await;
    assert_eq!(codes(&data["segmentUpdate"]), vec!["CYCLE"]);

    // Deleting a segment another names is refused; nothing above was saved.
    let data = app
        .gql(
            "mutation($id: ID!) { segmentDelete(id: $id) { deletedId userErrors { code } } }",
            json!({ "id": first }),
        )
        .await;
    assert_eq!(codes(&data["segmentDelete"]), vec!["INVALID"]);
    let data = app
        .gql("{ segments { totalCount nodes { name filter } } }", json!({}))
        .await;
    assert_eq!(data["segments"]["totalCount"], 2);
    assert_eq!(
        data["segments"]["nodes"][0]["filter"],
        json!({ "lifecycleStage": { "eq": "LEAD" } })
    );

    // Another workspace sees none of this workspace's segments.
    let (_, body) = app
        .gql_as(Some(&other_key), "{ segments { totalCount } }", json!({}))
        .await;
    assert_eq!(body["data"]["segments"]["totalCount"], 1);
}

#[tokio::test]
async fn members_export_as_csv_through_a_job() {
    let app = TestApp::spawn().await;
    let company = app.create_company(json!({ "name": "Jadran, \"Furniture\"" })).await;
    for (email, first) in [
        ("a@example.com", "Ann"),
        ("b@example.com", "Bo"),
        ("c@example.com", "Cy"),
    ] {
        app.create_contact(
            json!({ "email": email, "firstName": first, "lifecycleStage": "LEAD", "companyId": company }),
        )
        .await;
    }
    app.create_contact(json!({ "email": "d@example.com", "lifecycleStage": "CUSTOMER" }))
        .await;
    let leads = segment_id(
        &app,
        json!({ "name": "Leads", "filter": { "lifecycleStage": { "eq": "LEAD" } } }),
    )
    .await;

    let data = app
        .gql(
            "mutation($s: ID!) { segmentExportStart(segmentId: $s) { job { id total } userErrors { code } } }",
            json!({ "s": leads }),
        )
        .await;
    let job = data["segmentExportStart"]["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["segmentExportStart"]["job"]["total"], 3);
    let mut status = Value::Null;
    for _ in 0..100 {
        let data = app
            .gql(
                "query($id: ID!) { exportJob(id: $id) { status processed progress downloadUrl } }",
                json!({ "id": job }),
            )
            .await;
        status = data["exportJob"].clone();
        if status["status"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "DONE", "{status}");
    assert_eq!(status["processed"], 3);
    assert_eq!(status["progress"], 1.0);
    let url = format!("{}{}", app.address, status["downloadUrl"].as_str().unwrap());
    let client = reqwest::Client::new();
    let response = client.get(&url).bearer_auth(&app.key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("id,email,first_name,last_name"));
    assert!(
        csv.contains(",a@example.com,Ann,,,lead,\"Jadran, \"\"Furniture\"\"\","),
        "{csv}"
    );
    assert!(!csv.contains("d@example.com"));

    // Only with this workspace's credentials.
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let other = app.other_workspace("contacts:read").await;
    assert_eq!(client.get(&url).bearer_auth(&other).send().await.unwrap().status(), 404);
    let data = app
        .gql(
            "mutation($s: ID!) { segmentExportStart(segmentId: $s) { job { id } userErrors { code } } }",
            json!({ "s": "bm90LWEtc2VnbWVudA" }),
        )
        .await;
    assert_eq!(codes(&data["segmentExportStart"]), vec!["NOT_FOUND"]);

    // `voxtur segment export` writes the same pages.
    let page = voxtur_core::segments::export::page(
        &app.db,
        app.workspace_id,
        voxtur_core::ids::decode_as(&async_graphql::ID(leads.clone()), voxtur_core::ids::NodeKind::Segment).unwrap(),
        None,
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(page.0, csv);
    assert_eq!(page.2, 3);

    // The binary itself, to a file and to standard output; a bad id is a clear failure.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.csv");
    let (ok, _, stderr) = app.cli(&["segment", "export", &leads, "-o", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("exported 3 members"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);
    let (ok, stdout, _) = app.cli(&["segment", "export", &leads]);
    assert!(ok);
    assert_eq!(stdout, csv);
    let (ok, stdout, stderr) = app.cli(&["segment", "export", "not-a-segment"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert!(stderr.contains("`not-a-segment` is not a segment id"), "{stderr}");
}

/// Property: after any sequence of creates, updates, deletes, events and time passing, every
/// segment's materialized members are exactly the contacts a plain evaluation of its filter
/// selects. Filters and operations are random (seeded, so a failure replays).
mod property {
    use super::*;
    use std::collections::{BTreeSet, HashMap};
    use uuid::Uuid;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
    }

    const STAGES: [&str; 3] = ["LEAD", "CUSTOMER", "SUBSCRIBER"];
    const TAGS: [&str; 2] = ["vip", "news"];
    const TYPES: [(&str, &str); 2] = [("PAGE_VIEWED", "page_viewed"), ("EMAIL_OPENED", "email_opened")];

    #[derive(Clone, Debug)]
    enum F {
        Stage(&'static str),
        Tag(&'static str),
        NoTag(&'static str),
        /// Event type, comparison (0 at least, 1 at most, 2 exactly), count, window in days, and
        /// whether to say "ever" as a date range since 2000 (counted from events, where the
        /// rest is read from event tallies).
        Did(usize, u8, i64, Option<i64>, bool),
        InSegment(usize),
        And(Vec<F>),
        Or(Vec<F>),
        Not(Box<F>),
    }

    #[derive(Clone, Default)]
    struct Contact {
        stage: &'static str,
        tags: BTreeSet<&'static str>,
        /// Event type index and age in whole days (each event is half a day older still).
        events: Vec<(usize, i64)>,
    }

    fn random_filter(rng: &mut Rng, depth: u32, segments_before: usize) -> F {
        let leaf = depth >= 2 || rng.below(3) > 0;
        if leaf {
            match rng.below(if segments_before > 0 { 5 } else { 4 }) {
                0 => F::Stage(rng.pick(&STAGES)),
                1 => F::Tag(rng.pick(&TAGS)),
                2 => F::NoTag(rng.pick(&TAGS)),
                3 => {
                    let cmp = rng.below(3) as u8;
                    let n = if cmp == 0 {
                        1 + rng.below(3) as i64
                    } else {
                        rng.below(3) as i64
                    };
                    let window = [None, Some(3), Some(7), Some(14)][rng.below(4) as usize];
                    F::Did(
                        rng.below(2) as usize,
                        cmp,
                        n,
                        window,
                        window.is_none() && rng.below(2) == 0,
                    )
                }
                _ => F::InSegment(rng.below(segments_before as u64) as usize),
            }
        } else {
            let parts = (0..2).map(|_| random_filter(rng, depth + 1, segments_before)).collect();
            match rng.below(3) {
                0 => F::And(parts),
                1 => F::Or(parts),
                _ => F::Not(Box::new(random_filter(rng, depth + 1, segments_before))),
            }
        }
    }

    fn to_json(f: &F, segment_ids: &[String]) -> Value {
        match f {
            F::Stage(s) => json!({ "lifecycleStage": { "eq": s } }),
            F::Tag(t) => json!({ "tags": { "hasAny": [t] } }),
            F::NoTag(t) => json!({ "tags": { "hasNone": [t] } }),
            F::Did(t, cmp, n, window, since_2000) => {
                let mut c = json!({ "type": TYPES[*t].0 });
                c[["atLeast", "atMost", "exactly"][*cmp as usize]] = json!(n);
                if let Some(days) = window {
                    c["withinLastDays"] = json!(days);
                }
                if *since_2000 {
                    c["since"] = json!("2000-01-01T00:00:00Z");
                }
                json!({ "events": [c] })
            }
            F::InSegment(i) => json!({ "segments": { "in": [segment_ids[*i]] } }),
            F::And(parts) => json!({ "and": parts.iter().map(|p| to_json(p, segment_ids)).collect::<Vec<_>>() }),
            F::Or(parts) => json!({ "or": parts.iter().map(|p| to_json(p, segment_ids)).collect::<Vec<_>>() }),
            F::Not(inner) => json!({ "not": to_json(inner, segment_ids) }),
        }
    }

    fn eval(f: &F, c: &Contact, filters: &[F]) -> bool {
        match f {
            F::Stage(s) => c.stage == *s,
            F::Tag(t) => c.tags.contains(t),
            F::NoTag(t) => !c.tags.contains(t),
            F::Did(t, cmp, n, window, _) => {
                let count = c
                    .events
                    .iter()
                    .filter(|(ty, age)| ty == t && window.is_none_or(|w| *age < w))
                    .count() as i64;
                match cmp {
                    0 => count >= *n,
                    1 => count <= *n,
                    _ => count == *n,
                }
            }
            F::InSegment(i) => eval(&filters[*i], c, filters),
            F::And(parts) => parts.iter().all(|p| eval(p, c, filters)),
            F::Or(parts) => parts.iter().any(|p| eval(p, c, filters)),
            F::Not(inner) => !eval(inner, c, filters),
        }
    }

    async fn check(app: &TestApp, step: &str, segments: &[(Uuid, String, F)], contacts: &HashMap<Uuid, Contact>) {
        let filters: Vec<F> = segments.iter().map(|s| s.2.clone()).collect();
        for (i, (uuid, id, f)) in segments.iter().enumerate() {
            let stored: BTreeSet<Uuid> = entities::segment_member::Entity::find()
                .filter(entities::segment_member::Column::SegmentId.eq(*uuid))
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.contact_id)
                .collect();
            let expected: BTreeSet<Uuid> = contacts
                .iter()
                .filter(|(_, c)| eval(f, c, &filters))
                .map(|(id, _)| *id)
                .collect();
            assert_eq!(stored, expected, "segment {i} {f:?} after {step}");
            assert_eq!(
                members(app, id).await.0,
                expected.len() as i64,
                "memberCount of segment {i} after {step}"
            );
        }
    }

    #[tokio::test]
    async fn materialized_membership_always_equals_the_filter() {
        for seed in [11u64, 29, 47] {
            run(seed).await;
        }
    }

    async fn run(seed: u64) {
        let app = TestApp::spawn().await;
        let mut rng = Rng(seed);
        let mut contacts: HashMap<Uuid, Contact> = HashMap::new();
        let mut ids: Vec<(Uuid, String)> = Vec::new();
        for n in 0..6 {
            let c = Contact {
                stage: rng.pick(&STAGES),
                tags: TAGS.iter().copied().filter(|_| rng.below(2) == 0).collect(),
                events: Vec::new(),
            };
            let created = app
                .create_contact(
                    json!({ "email": format!("p{n}@example.com"), "lifecycleStage": c.stage, "tags": c.tags }),
                )
                .await;
            let gid = created["id"].as_str().unwrap().to_owned();
            let uuid =
                voxtur_core::ids::decode_as(&async_graphql::ID(gid.clone()), voxtur_core::ids::NodeKind::Contact)
                    .unwrap();
            contacts.insert(uuid, c);
            ids.push((uuid, gid));
        }
        let mut segments: Vec<(Uuid, String, F)> = Vec::new();
        for i in 0..5 {
            let f = random_filter(&mut rng, 0, i);
            let gids: Vec<String> = segments.iter().map(|s| s.1.clone()).collect();
            let id = segment_id(&app, json!({ "name": format!("S{i}"), "filter": to_json(&f, &gids) })).await;
            let uuid = voxtur_core::ids::decode_as(&async_graphql::ID(id.clone()), voxtur_core::ids::NodeKind::Segment)
                .unwrap();
            segments.push((uuid, id, f));
        }
        check(&app, "creating the segments", &segments, &contacts).await;

        for step in 0..30 {
            let (uuid, gid) = ids[rng.below(ids.len() as u64) as usize].clone();
            let what = match rng.below(10) {
                0..=3 => {
                    let t = rng.below(2) as usize;
                    let age = rng.below(20) as i64;
                    let at = Utc::now() - Duration::days(age) - Duration::hours(12);
                    let data = app
                        .gql(
                            "mutation($i: EventRecordInput!) { eventRecord(input: $i) { userErrors { code } } }",
                            json!({ "i": { "contactId": gid, "type": TYPES[t].0, "occurredAt": at.to_rfc3339() } }),
                        )
                        .await;
                    assert_eq!(data["eventRecord"]["userErrors"], json!([]));
                    contacts.get_mut(&uuid).unwrap().events.push((t, age));
                    format!("an event {} {age} days ago", TYPES[t].1)
                }
                4..=6 => {
                    let c = contacts.get_mut(&uuid).unwrap();
                    c.stage = rng.pick(&STAGES);
                    c.tags = TAGS.iter().copied().filter(|_| rng.below(2) == 0).collect();
                    update_contact(&app, &gid, json!({ "lifecycleStage": c.stage, "tags": c.tags })).await;
                    format!("an update to {:?} {:?}", c.stage, c.tags)
                }
                7 | 8 => {
                    // Time passes: every event gets older, and the minute task runs.
                    let days = 1 + rng.below(6) as i64;
                    for e in entities::event::Entity::find().all(&app.db).await.unwrap() {
                        let mut e: entities::event::ActiveModel = e.into();
                        let at = e.occurred_at.take().unwrap() - Duration::days(days);
                        e.occurred_at = sea_orm::Set(at);
                        sea_orm::ActiveModelTrait::update(e, &app.db).await.unwrap();
                    }
                    voxtur_core::events::tally::rebuild(&app.db, app.workspace_id)
                        .await
                        .unwrap();
                    for c in contacts.values_mut() {
                        for e in c.events.iter_mut() {
                            e.1 += days;
                        }
                    }
                    age_window_checks(&app.db, days).await;
                    voxtur_core::segments::expire_windows(&app.db).await.unwrap();
                    format!("{days} days passing")
                }
                _ if ids.len() > 3 => {
                    let data = app
                        .gql(
                            "mutation($id: ID!) { contactDelete(id: $id) { userErrors { code } } }",
                            json!({ "id": gid }),
                        )
                        .await;
                    assert_eq!(data["contactDelete"]["userErrors"], json!([]));
                    contacts.remove(&uuid);
                    ids.retain(|(u, _)| *u != uuid);
                    "a deletion".to_owned()
                }
                _ => continue,
            };
            check(
                &app,
                &format!("step {step}: {what} (seed {seed})"),
                &segments,
                &contacts,
            )
            .await;
        }
    }
}

//! `voxtur demo generate`: realistic, deterministic, bulk-loaded, and usable through the API.

use crate::support::TestApp;
use chrono::{Duration, NaiveDate};
use entities::{contact, event};
use indicatif::ProgressBar;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;
use voxtur_core::auth::{ScopeSet, issue_api_key};
use voxtur_demo::generate::{GenerateOptions, GenerateSummary, generate};

fn options(seed: u64) -> GenerateOptions {
    GenerateOptions {
        workspace_name: format!("Generated {seed}"),
        contacts: 400,
        events_per_contact: 8.0,
        seed,
        until: NaiveDate::from_ymd_opt(2026, 11, 25)
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .unwrap()
            .and_utc(),
    }
}

/// Everything but ids: contacts by e-mail, and each contact's events.
type Fingerprint = Vec<(
    String,
    String,
    serde_json::Value,
    Vec<(String, String, serde_json::Value)>,
)>;

async fn fingerprint(app: &TestApp, workspace_id: Uuid) -> Fingerprint {
    let contacts = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(contact::Column::Email)
        .all(&app.db)
        .await
        .unwrap();
    let events = event::Entity::find()
        .filter(event::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(event::Column::OccurredAt)
        .order_by_asc(event::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    let mut by_contact: HashMap<Uuid, Vec<_>> = HashMap::new();
    for e in events {
        by_contact
            .entry(e.contact_id)
            .or_default()
            .push((e.event_type, e.occurred_at.to_rfc3339(), e.properties));
    }
    contacts
        .into_iter()
        .map(|c| {
            (
                c.email.unwrap(),
                format!("{:?}/{:?}", c.lifecycle_stage, c.last_activity_at),
                c.custom_fields,
                by_contact.remove(&c.id).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn generated_workspaces_are_realistic_deterministic_and_usable() {
    let app = TestApp::spawn().await;
    let hidden = ProgressBar::hidden();
    let first: GenerateSummary = generate(&app.db, &options(5), &hidden).await.unwrap();
    let again = generate(&app.db, &options(5), &hidden).await.unwrap();
    let other = generate(&app.db, &options(6), &hidden).await.unwrap();

    // Same seed, same content (ids aside); another seed, other content.
    let print = fingerprint(&app, first.workspace_id).await;
    assert_eq!(print, fingerprint(&app, again.workspace_id).await);
    assert_ne!(print, fingerprint(&app, other.workspace_id).await);

    // The summary tells the truth, and activity is skewed: quiet contacts and very busy ones.
    assert_eq!(first.contacts, 400);
    assert_eq!(print.len(), 400);
    let events: Vec<usize> = print.iter().map(|c| c.3.len()).collect();
    assert_eq!(events.iter().sum::<usize>() as u64, first.events);
    assert_eq!(*events.iter().max().unwrap() as u64, first.busiest_contact_events);
    assert_eq!(
        events.iter().filter(|&&n| n == 0).count() as u64,
        first.contacts_without_events
    );
    let mean = first.events as f64 / 400.0;
    assert!((5.0..12.0).contains(&mean), "mean events per contact {mean}");
    assert!(first.busiest_contact_events as f64 > 8.0 * mean);
    assert!(first.contacts_without_events > 10);
    let mut sorted = events.clone();
    sorted.sort_unstable();
    assert!(
        (sorted[200] as f64) < mean,
        "the median contact is quieter than the mean"
    );

    // Two years of history, each contact's last activity its latest event.
    let until = options(5).until;
    for (_, stage_and_last, fields, timeline) in &print {
        assert!(fields["plan"].is_string());
        for (_, at, _) in timeline {
            let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
            assert!(at <= until && at >= until - Duration::days(730));
        }
        if let Some((_, last, _)) = timeline.last() {
            let last = chrono::DateTime::parse_from_rfc3339(last).unwrap();
            assert!(stage_and_last.contains(&format!("{:?}", last.with_timezone(&chrono::Utc))));
        }
    }

    // Served by the API like any workspace: filters, relations, custom fields, timelines.
    let key = issue_api_key(&app.db, first.workspace_id, "t", &ScopeSet::all())
        .await
        .unwrap()
        .secret;
    let (_, body) = app
        .gql_as(
            Some(&key),
            r#"{ leads: contacts(first: 50, filter: {lifecycleStage: {eq: LEAD}}, orderBy: [{createdAt: DESC}]) {
                   totalCount nodes { email company { name } owner { name } } }
                 pro: contacts(filter: {customFields: [{key: "plan", eq: "pro"}]}) { totalCount }
                 tagged: contacts(filter: {tags: {hasAny: ["newsletter"]}}) { totalCount }
                 busy: contacts(first: 1, orderBy: [{lastActivityAt: DESC}]) { nodes { timeline(first: 20) { nodes { type occurredAt } } } }
                 companies { totalCount } users { totalCount } }"#,
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");

    // Behaviour conditions read the tallies the generator computed; a date range makes the
    // same question count events, and the answers agree.
    let since = (chrono::Utc::now() - Duration::days(120)).to_rfc3339();
    let (_, counts) = app
        .gql_as(
            Some(&key),
            r#"query($since: DateTime!) {
                 ever: contacts(filter: {events: [{type: PAGE_VIEWED, atLeast: 2}]}) { totalCount }
                 everFromEvents: contacts(filter: {events: [{type: PAGE_VIEWED, atLeast: 2, since: "2000-01-01T00:00:00Z"}]}) { totalCount }
                 recent: contacts(filter: {events: [{type: PAGE_VIEWED, atLeast: 3, withinLastDays: 120}]}) { totalCount }
                 recentFromEvents: contacts(filter: {events: [{type: PAGE_VIEWED, atLeast: 3, since: $since}]}) { totalCount } }"#,
            json!({ "since": since }),
        )
        .await;
    assert!(counts.get("errors").is_none(), "{counts}");
    let count = |name: &str| counts["data"][name]["totalCount"].as_i64().unwrap();
    assert!(count("ever") > 0 && count("recent") > 0, "{counts}");
    assert_eq!(count("ever"), count("everFromEvents"));
    assert_eq!(count("recent"), count("recentFromEvents"));

    let data = &body["data"];
    let leads = data["leads"]["totalCount"].as_i64().unwrap();
    assert!((80..200).contains(&leads), "leads: {leads}");
    let nodes = data["leads"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 50);
    assert!(nodes.iter().any(|n| !n["company"]["name"].is_null()));
    assert!(nodes.iter().any(|n| !n["owner"]["name"].is_null()));
    let pro = data["pro"]["totalCount"].as_i64().unwrap();
    assert!((60..200).contains(&pro), "pro plans: {pro}");
    assert!(data["tagged"]["totalCount"].as_i64().unwrap() > 100);
    assert_eq!(data["companies"]["totalCount"], 20);
    assert_eq!(data["users"]["totalCount"], 5);
    let timeline = data["busy"]["nodes"][0]["timeline"]["nodes"].as_array().unwrap();
    assert!(!timeline.is_empty());
    let times: Vec<&str> = timeline.iter().map(|e| e["occurredAt"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[tokio::test]
async fn impossible_generator_options_are_refused_and_create_nothing() {
    let app = TestApp::spawn().await;
    let mut bad = options(1);
    bad.events_per_contact = -1.0;
    let error = generate(&app.db, &bad, &ProgressBar::hidden()).await.unwrap_err();
    assert!(error.message().contains("--events-per-contact"), "{}", error.message());
    let workspaces = entities::workspace::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(workspaces.len(), 1, "only the test's own workspace");
}

//! Property tests over the inputs the world sends: the tracking message parser, the CSV file
//! reader and the filter compiler take any input and either accept it, keeping their rules, or
//! refuse it with a reason; none panics. (`cargo fuzz` needs a nightly toolchain; these run on
//! stable, in every `cargo test`.)

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value as Json, json};
use voxtur_core::contacts::filter::{ContactFilter, FilterContext};
use voxtur_core::contacts::import::inspect;
use voxtur_core::events::ingest::parse;

/// Keys the inputs use, and some they do not.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "type", "userId", "anonymousId", "previousId", "groupId", "messageId", "event", "name", "timestamp",
            "originalTimestamp", "sentAt", "traits", "context", "properties", "email", "firstName", "lastName",
            "and", "or", "not", "tags", "events", "segments", "lifecycleStage", "customFields", "createdAt",
            "company", "eq", "neq", "in", "contains", "startsWith", "like", "isNull", "gt", "lt", "atLeast",
            "atMost", "withinLastDays", "since", "until", "hasAny", "hasAll", "key", "value", "anonymous",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        "\\PC{0,24}".prop_map(Json::from),
        prop::sample::select(vec![
            "track",
            "identify",
            "page",
            "group",
            "alias",
            "screen",
            "LEAD",
            "CUSTOMER",
            "PAGE_VIEWED",
            "a\u{0}b",
            "2026-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "not a date",
            "%_\\",
            "ann@example.com",
            "",
        ])
        .prop_map(Json::from),
    ]
}

fn value() -> impl Strategy<Value = Json> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Json::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Json> {
    prop::collection::vec((key(), value()), 0..10).prop_map(|pairs| Json::Object(pairs.into_iter().collect()))
}

/// A valid message with random fields laid over it, so that most get past the first checks.
fn message() -> impl Strategy<Value = Json> {
    (
        prop::sample::select(vec!["track", "identify", "page", "group", "alias", "screen"]),
        object(),
    )
        .prop_map(|(kind, extra)| {
            let mut base =
                json!({ "type": kind, "userId": "u1", "previousId": "a1", "groupId": "g1", "event": "Seen" });
            if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
                base.extend(extra.clone());
            }
            base
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_message_is_accepted_within_the_rules_or_refused_with_a_reason(raw in message(), batch_sent in proptest::option::of(0i64..400_000_000_000)) {
        let received = Utc::now();
        let sent = batch_sent.and_then(|s| Utc.timestamp_opt(s, 0).single());
        match parse(raw, None, received, sent) {
            Ok(message) => {
                prop_assert!(message.occurred_at.timestamp() >= 946_684_800, "{:?}", message.occurred_at);
                prop_assert!(message.occurred_at <= received + chrono::Duration::hours(24));
                let texts = [&message.user_id, &message.anonymous_id, &message.event, &message.name, &message.message_id];
                prop_assert!(texts.iter().all(|t| t.as_deref().is_none_or(|t| !t.contains('\0'))));
                prop_assert!(!voxtur_core::values::contains_nul(&message.properties));
                prop_assert!(!voxtur_core::values::contains_nul(&message.traits));
            }
            Err(reason) => prop_assert!(!reason.is_empty()),
        }
    }

    #[test]
    fn a_file_is_read_or_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..512), text in "\\PC{0,300}") {
        for input in [bytes.as_slice(), text.as_bytes()] {
            match inspect(input) {
                Ok(file) => {
                    prop_assert!(!file.columns.is_empty() && file.rows > 0);
                    prop_assert!(file.columns.iter().all(|c| !c.is_empty()));
                    prop_assert!([b',', b';', b'\t'].contains(&file.delimiter));
                }
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
    }

    #[test]
    fn a_filter_compiles_to_sql_or_is_refused(raw in object()) {
        if let Ok(filter) = serde_json::from_value::<ContactFilter>(raw) {
            for backend in [sea_orm::DbBackend::Sqlite, sea_orm::DbBackend::Postgres] {
                let context = FilterContext {
                    backend,
                    workspace_id: uuid::Uuid::nil(),
                    contact_fields: Default::default(),
                    company_fields: Default::default(),
                    now: Utc::now(),
                    scope: None,
                };
                // Either SQL or a clear refusal; never a panic.
                let _ = filter.condition(&context);
            }
        }
    }
}

#[test]
fn the_generators_reach_the_interesting_inputs() {
    // A sanity check that a well-formed message and filter go through the same functions.
    let message = parse(
        json!({ "type": "track", "userId": "u", "event": "e" }),
        None,
        Utc::now(),
        None,
    );
    assert!(message.is_ok());
    let filter: ContactFilter = serde_json::from_value(json!({ "email": { "contains": "a" } })).unwrap();
    let context = FilterContext {
        backend: sea_orm::DbBackend::Postgres,
        workspace_id: uuid::Uuid::nil(),
        contact_fields: Default::default(),
        company_fields: Default::default(),
        now: Utc::now(),
        scope: None,
    };
    assert!(filter.condition(&context).is_ok());
}

//! Scopes follow the data. The served schema is walked from every query root field, through
//! every field a query can take without arguments it cannot fill, into every type that holds
//! guarded data; each scope alone then asks for all of it, and no guarded value may come back to
//! a key whose scopes do not allow its type. A new type with an id must be classified here, and a
//! new path to a guarded type is walked without anyone writing it down.

use crate::support::TestApp;
use async_graphql::parser::types::{BaseType, FieldDefinition, Type, TypeKind, TypeSystemDefinition};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use voxtur_core::auth::{Scope, ScopeSet};

/// Each type holding guarded data, and the scopes of which one reads it.
fn guarded() -> HashMap<&'static str, Vec<Scope>> {
    use Scope::*;
    HashMap::from([
        ("Contact", vec![ContactsRead]),
        ("Company", vec![ContactsRead]),
        ("Event", vec![ContactsRead, AnalyticsRead]),
        ("Segment", vec![ContactsRead]),
        ("SegmentChange", vec![ContactsRead]),
        ("ExportJob", vec![ContactsRead]),
        ("CustomField", vec![ContactsRead]),
        ("ContactImport", vec![ContactsWrite]),
        ("Form", vec![CampaignsRead]),
        ("LandingPage", vec![CampaignsRead]),
        ("TrackedLink", vec![CampaignsRead]),
        ("User", vec![ContactsRead, WorkspaceRead]),
        ("Team", vec![WorkspaceRead]),
        ("ApiKey", vec![WorkspaceAdmin]),
        ("WriteKey", vec![WorkspaceAdmin]),
        ("Job", vec![WorkspaceAdmin]),
        ("Notification", vec![ContactsRead]),
        ("WebhookEndpoint", vec![WorkspaceAdmin]),
        ("WebhookDelivery", vec![WorkspaceAdmin]),
    ])
}

/// Types with an id that any valid key may read.
const OPEN: [&str; 3] = ["Workspace", "Query", "Mutation"];

struct Schema {
    objects: HashMap<String, Vec<FieldDefinition>>,
    /// Interfaces and unions, with the object types they may be.
    abstracts: HashMap<String, Vec<String>>,
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

fn parse(sdl: &str) -> Schema {
    let document = async_graphql::parser::parse_schema(sdl).expect("the served SDL parses");
    let mut objects = HashMap::new();
    let mut abstracts: HashMap<String, Vec<String>> = HashMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = ty.node;
        let name = ty.name.node.to_string();
        match ty.kind {
            TypeKind::Object(object) => {
                for interface in &object.implements {
                    abstracts
                        .entry(interface.node.to_string())
                        .or_default()
                        .push(name.clone());
                }
                objects.insert(name, object.fields.into_iter().map(|f| f.node).collect());
            }
            TypeKind::Union(union) => {
                abstracts.insert(name, union.members.iter().map(|m| m.node.to_string()).collect());
            }
            _ => {}
        }
    }
    Schema { objects, abstracts }
}

/// Values for the required arguments the walk can fill: ids and e-mails it made.
struct Known {
    ids: HashMap<&'static str, String>,
    email: String,
}

impl Schema {
    /// The arguments of a field, or `None` when one is required and unknown. Connections get
    /// a small page.
    fn arguments(&self, field: &FieldDefinition, known: &Known) -> Option<String> {
        let mut given = Vec::new();
        for argument in &field.arguments {
            let argument = &argument.node;
            let name = argument.name.node.as_str();
            let ty = &argument.ty.node;
            let required = !ty.nullable && argument.default_value.is_none();
            let target = named(&field.ty.node);
            let value = match (name, named(ty)) {
                ("first", "Int") => Some("2".to_owned()),
                ("id", "ID") if required => Some(format!("{:?}", known.ids.get(target).or(known.ids.get("Contact"))?)),
                ("ids", "ID") if required => Some(format!("{:?}", known.ids.values().collect::<Vec<_>>())),
                ("email", "String") if required => Some(format!("{:?}", known.email)),
                _ if required => return None,
                _ => None,
            };
            if let Some(value) = value {
                given.push(format!("{name}: {value}"));
            }
        }
        Some(if given.is_empty() {
            String::new()
        } else {
            format!("({})", given.join(", "))
        })
    }

    /// The selection of `type_name` down to `depth` more levels, without a type twice on a path.
    fn selection(&self, type_name: &str, depth: usize, path: &mut Vec<String>, known: &Known) -> Option<String> {
        if let Some(members) = self.abstracts.get(type_name) {
            let parts: Vec<String> = members
                .iter()
                .filter_map(|m| self.selection(m, depth, path, known).map(|s| format!("... on {m} {s}")))
                .collect();
            return Some(format!("{{ __typename {} }}", parts.join(" ")));
        }
        let fields = self.objects.get(type_name)?;
        path.push(type_name.to_owned());
        let mut parts = vec!["__typename".to_owned()];
        for field in fields {
            let field_type = named(&field.ty.node);
            let Some(arguments) = self.arguments(field, known) else {
                continue;
            };
            let name = field.name.node.as_str();
            if self.objects.contains_key(field_type) || self.abstracts.contains_key(field_type) {
                if depth == 0 || path.iter().any(|p| p == field_type) {
                    continue;
                }
                if let Some(inner) = self.selection(field_type, depth - 1, path, known) {
                    parts.push(format!("{name}{arguments} {inner}"));
                }
            } else {
                parts.push(format!("{name}{arguments}"));
            }
        }
        path.pop();
        Some(format!("{{ {} }}", parts.join(" ")))
    }
}

/// Guarded values in `data` that `scopes` may not read, as paths.
fn leaks(
    value: &Value,
    path: &str,
    scopes: &ScopeSet,
    guarded: &HashMap<&str, Vec<Scope>>,
    out: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                leaks(item, &format!("{path}.{i}"), scopes, guarded, out, seen);
            }
        }
        Value::Object(object) => {
            if let Some(type_name) = object.get("__typename").and_then(Value::as_str) {
                let holds_data = object
                    .iter()
                    .any(|(k, v)| k != "__typename" && !v.is_null() && !v.is_object() && !v.is_array());
                if holds_data {
                    seen.insert(type_name.to_owned());
                    if let Some(needed) = guarded.get(type_name)
                        && !needed.iter().any(|s| scopes.allows(*s))
                    {
                        out.push(format!("{path} ({type_name})"));
                    }
                }
            }
            for (key, child) in object {
                leaks(child, &format!("{path}.{key}"), scopes, guarded, out, seen);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn no_scope_reads_data_of_another_whatever_the_path() {
    let app = TestApp::spawn_with(|settings| {
        settings.graphql.max_depth = 64;
        settings.graphql.max_complexity = 10_000_000;
    })
    .await;
    // One record of every kind, linked as they can be.
    let user = app
        .gql(
            r#"mutation { userCreate(input: {email: "rep@example.com", name: "Rep", role: SALES}) { user { id } } }"#,
            json!({}),
        )
        .await;
    let user = user["userCreate"]["user"]["id"].as_str().unwrap().to_owned();
    app.gql(
        "mutation($u: ID!) { teamCreate(input: {name: \"North\", memberIds: [$u]}) { teamId } }",
        json!({ "u": user }),
    )
    .await;
    // An endpoint before the contact, so the contact's creation makes a delivery.
    app.gql(
        r#"mutation { webhookEndpointCreate(input: {url: "http://127.0.0.1:9/hook", eventTypes: ["contact.created"]}) { endpoint { id } } }"#,
        json!({}),
    )
    .await;
    let company = app.create_company(json!({ "name": "Acme" })).await;
    let contact = app
        .create_contact(json!({ "email": "ann@example.com", "companyId": company, "ownerId": user, "tags": ["vip"] }))
        .await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    let write_key = app.write_key().await;
    app.track(
        "/v1/identify",
        &write_key,
        json!({ "userId": "ann", "traits": { "email": "ann@example.com" } }),
    )
    .await;
    let segment = app
        .gql(
            r#"mutation { segmentCreate(input: {name: "All", filter: {email: {isNull: false}}}) { segment { id } } }"#,
            json!({}),
        )
        .await;
    let segment = segment["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned();
    let export = app
        .gql(
            "mutation($s: ID!) { segmentExportStart(segmentId: $s) { job { id } } }",
            json!({ "s": segment }),
        )
        .await;
    let export = export["segmentExportStart"]["job"]["id"].as_str().unwrap().to_owned();
    app.gql(r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "plan", label: "Plan", type: TEXT}) { customField { key } } }"#, json!({}))
        .await;
    let form = app
        .gql(
            r#"mutation { formCreate(input: {name: "F", notifyOwner: true, fields: [{key: "email", label: "E-mail", type: EMAIL, mapsTo: "email", required: true}]}) { form { id submitPath } } }"#,
            json!({}),
        )
        .await;
    // A submission, so the form's owner has a notification.
    let submitted = reqwest::Client::new()
        .post(format!(
            "{}{}",
            app.address,
            form["formCreate"]["form"]["submitPath"].as_str().unwrap()
        ))
        .json(&json!({ "email": "ann@example.com" }))
        .send()
        .await
        .unwrap();
    let status = submitted.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        submitted.text().await.unwrap_or_default()
    );
    let form = form["formCreate"]["form"]["id"].as_str().unwrap().to_owned();
    app.gql(
        "mutation($f: ID!) { landingPageCreate(input: {slug: \"p\", title: \"P\", bodyHtml: \"<p>x</p>\", formId: $f}) { landingPage { id } } }",
        json!({ "f": form }),
    )
    .await;
    app.gql(
        r#"mutation { trackedLinkCreate(input: {targetUrl: "https://example.com"}) { trackedLink { id } } }"#,
        json!({}),
    )
    .await;
    let staged: Value = reqwest::Client::new()
        .post(format!("{}/imports/contacts", app.address))
        .bearer_auth(&app.key)
        .body("email\nbo@example.com\n")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let known = Known {
        ids: HashMap::from([
            ("Contact", contact),
            ("Segment", segment),
            ("ExportJob", export),
            ("ContactImport", staged["id"].as_str().unwrap().to_owned()),
            ("Form", form),
        ]),
        email: "ann@example.com".into(),
    };

    let sdl = voxtur_graphql::builder().finish().sdl();
    let schema = parse(&sdl);
    let guarded = guarded();
    for (name, fields) in &schema.objects {
        if fields.iter().any(|f| f.name.node == "id") {
            assert!(
                guarded.contains_key(name.as_str()) || OPEN.contains(&name.as_str()),
                "`{name}` has an id: say in tests/scopes.rs which scope reads it"
            );
        }
    }
    let root_fields = &schema.objects["Query"];
    let mut queries = Vec::new();
    for field in root_fields {
        let Some(arguments) = schema.arguments(field, &known) else {
            continue;
        };
        let field_type = named(&field.ty.node);
        let name = field.name.node.as_str();
        let selection = schema
            .selection(field_type, 5, &mut vec!["Query".to_owned()], &known)
            .unwrap_or_default();
        queries.push((name.to_owned(), format!("{{ {name}{arguments} {selection} }}")));
    }

    // Every scope alone, and none: nothing it may not read comes back.
    let mut seen_by_all = BTreeSet::new();
    for scope in Scope::ALL.iter().map(|s| s.as_str()).chain(["all"]) {
        let key = if scope == "all" {
            app.key.clone()
        } else {
            app.key_with(scope).await
        };
        let scopes = if scope == "all" {
            ScopeSet::parse(&Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")).unwrap()
        } else {
            ScopeSet::parse(scope).unwrap()
        };
        let mut found = Vec::new();
        for (root, query) in &queries {
            let (status, body) = app.gql_as(Some(&key), query, json!({})).await;
            assert_eq!(status, reqwest::StatusCode::OK, "{root} with {scope}: {body}");
            if let Some(errors) = body["errors"].as_array() {
                for error in errors {
                    let code = error["extensions"]["code"].as_str().unwrap_or_default();
                    assert!(
                        matches!(code, "FORBIDDEN" | "NOT_FOUND"),
                        "{root} with {scope}: an error other than a refusal: {error}"
                    );
                }
            }
            let mut seen = BTreeSet::new();
            leaks(&body["data"], root, &scopes, &guarded, &mut found, &mut seen);
            if scope == "all" {
                seen_by_all.extend(seen);
            }
        }
        assert!(found.is_empty(), "`{scope}` read what it may not: {found:#?}");
    }
    // The walk reached every guarded type (so the test cannot pass by reaching nothing).
    let missed: Vec<&&str> = guarded.keys().filter(|t| !seen_by_all.contains(**t)).collect();
    assert!(missed.is_empty(), "the walk reached no data of {missed:?}");
}

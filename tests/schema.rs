//! The committed `schema.graphql` is what the server serves, and everything in it is described.

use crate::support::TestApp;
use serde_json::json;

#[test]
fn committed_schema_is_current() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema.graphql")).expect("schema.graphql");
    let current = voxtur_graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is stale: run `cargo run -- export-schema -o schema.graphql` and commit it"
    );
}

#[tokio::test]
async fn every_type_field_and_argument_has_a_description() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            "{ __schema { types { name kind description fields { name description args { name description } } inputFields { name description } enumValues { name description } } } }",
            json!({}),
        )
        .await;
    let mut missing = Vec::new();
    for t in data["__schema"]["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        if name.starts_with("__") || t["kind"] == "SCALAR" {
            continue;
        }
        if t["description"].as_str().is_none_or(str::is_empty) {
            missing.push(name.to_owned());
        }
        for list in ["fields", "inputFields", "enumValues"] {
            for f in t[list].as_array().into_iter().flatten() {
                if f["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(format!("{name}.{}", f["name"].as_str().unwrap()));
                }
                for a in f["args"].as_array().into_iter().flatten() {
                    if a["description"].as_str().is_none_or(str::is_empty) {
                        missing.push(format!(
                            "{name}.{}({})",
                            f["name"].as_str().unwrap(),
                            a["name"].as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "undescribed: {missing:?}");
}

/// GraphQL tools open with the standard introspection query (graphql-js's and graphql-core's
/// `getIntrospectionQuery`; this is graphql-core 3.2's, with descriptions). It nests deeper than
/// the API's depth limit, so introspection is counted apart: it passes whatever the limit, and
/// a query as deep through the API is still refused.
#[tokio::test]
async fn the_standard_introspection_query_passes_whatever_the_depth_limit() {
    let app = TestApp::spawn_with(|settings| settings.graphql.max_depth = 6).await;
    let query = include_str!("fixtures/introspection.graphql");
    let (_, body) = app.gql_as(Some(&app.key), query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Contact"), "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

    let deep = "{ contacts { nodes { company { contacts { nodes { company { contacts { nodes { id } } } } } } } } }";
    let (code, message) = app.gql_error(deep, json!({})).await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert!(message.contains("nested too deep"), "{message}");
    // Mixing introspection with API fields keeps the API's limit.
    let mixed = "{ __typename contacts { nodes { company { contacts { nodes { company { contacts { nodes { id } } } } } } } } }";
    let (_, message) = app.gql_error(mixed, json!({})).await;
    assert!(message.contains("nested too deep"), "{message}");
}

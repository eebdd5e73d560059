//! Keyset pagination: complete, stable, and strict about its arguments.

use crate::support::TestApp;
use serde_json::json;
use std::collections::HashSet;

const PAGE: &str = "query($first: Int, $after: String, $last: Int, $before: String, $o: [ContactOrderBy!]) { contacts(first: $first, after: $after, last: $last, before: $before, orderBy: $o) { totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } nodes { email lastName } } }";

/// 25 contacts, `p00@example.com` to `p24@example.com`; duplicate and missing last names
/// exercise ties and NULL handling.
async fn add_people(app: &TestApp) {
    let inputs: Vec<_> = (0..25)
        .map(|i| {
            let last = if i % 5 == 0 {
                json!(null)
            } else {
                json!(format!("Name{}", i % 4))
            };
            json!({ "email": format!("p{i:02}@example.com"), "lastName": last })
        })
        .collect();
    app.gql(
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;
}

#[tokio::test]
async fn pages_walk_the_whole_list_forward_and_backward() {
    let app = TestApp::spawn().await;
    add_people(&app).await;

    for order in [
        json!([{ "lastName": "ASC" }]),
        json!([{ "lastName": "DESC" }, { "email": "ASC" }]),
        json!([{ "createdAt": "DESC" }]),
    ] {
        let mut seen = Vec::new();
        let mut after = json!(null);
        loop {
            let data = app.gql(PAGE, json!({ "first": 10, "after": after, "o": order })).await;
            let page = &data["contacts"];
            assert_eq!(page["totalCount"], 25);
            seen.extend(
                page["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["email"].as_str().unwrap().to_owned()),
            );
            if page["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen.len(), 25, "{order}");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            25,
            "no duplicates for {order}"
        );

        let mut backward = Vec::new();
        let mut before = json!(null);
        loop {
            let data = app.gql(PAGE, json!({ "last": 10, "before": before, "o": order })).await;
            let page = &data["contacts"];
            let mut emails: Vec<String> = page["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["email"].as_str().unwrap().to_owned())
                .collect();
            emails.extend(backward);
            backward = emails;
            if page["pageInfo"]["hasPreviousPage"] == false {
                break;
            }
            before = page["pageInfo"]["startCursor"].clone();
        }
        assert_eq!(backward, seen, "backward paging gives the same order for {order}");

        // Every edge's cursor, when asked for (a page writes only pageInfo's otherwise):
        // continuing after each gives the rest of the list.
        let edges = "query($o: [ContactOrderBy!], $after: String) { contacts(first: 25, after: $after, orderBy: $o) { edges { cursor node { email } } } }";
        let data = app.gql(edges, json!({ "o": order })).await;
        let edges = data["contacts"]["edges"].as_array().unwrap().clone();
        assert_eq!(edges.len(), 25);
        for (i, edge) in edges.iter().enumerate().step_by(6) {
            assert_eq!(edge["node"]["email"], seen[i]);
            let data = app
                .gql(PAGE, json!({ "first": 25, "after": edge["cursor"], "o": order }))
                .await;
            let rest: Vec<_> = data["contacts"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["email"].clone())
                .collect();
            assert_eq!(json!(rest), json!(seen[i + 1..]), "after edge {i} of {order}");
        }
    }
}

/// A behaviour condition is costly to evaluate, so the first page and the total come from one
/// statement (`Total::InPage`) that picks the page among the matches before reading their
/// columns; a query asking for the total alone runs only the count. Either way the answer must be
/// the plain list's.
#[tokio::test]
async fn a_costly_filter_pages_and_counts_as_the_plain_list_does() {
    let app = TestApp::spawn().await;
    add_people(&app).await;
    // Every contact matches: none has ordered.
    let never_ordered = json!({ "events": [{ "type": "ORDER_COMPLETED", "atMost": 0 }] });
    let page = "query($f: ContactFilter, $first: Int, $last: Int, $o: [ContactOrderBy!]) { contacts(filter: $f, first: $first, last: $last, orderBy: $o) { totalCount pageInfo { hasNextPage hasPreviousPage } nodes { email lastName } } }";
    for order in [
        json!([{ "lastName": "ASC" }]),
        json!([{ "lastName": "DESC" }, { "email": "ASC" }]),
        json!([{ "createdAt": "DESC" }]),
    ] {
        for (first, last) in [
            (json!(10), json!(null)),
            (json!(null), json!(10)),
            (json!(30), json!(null)),
        ] {
            let vars = |f: serde_json::Value| json!({ "f": f, "first": first, "last": last, "o": order });
            let costly = app.gql(page, vars(never_ordered.clone())).await;
            let plain = app.gql(page, vars(json!(null))).await;
            assert_eq!(costly, plain, "{order} first {first} last {last}");
            assert_eq!(plain["contacts"]["totalCount"], 25);
        }
    }
    let count = "query($f: ContactFilter) { contacts(filter: $f) { totalCount } }";
    let alone = app.gql(count, json!({ "f": never_ordered })).await;
    assert_eq!(alone, json!({ "contacts": { "totalCount": 25 } }));
    let named = json!({ "events": [{ "type": "ORDER_COMPLETED", "atMost": 0 }], "lastName": { "eq": "Name1" } });
    let alone = app.gql(count, json!({ "f": named })).await;
    assert_eq!(alone["contacts"]["totalCount"], 5, "{alone}");
    let preview = app
        .gql(
            "query($f: ContactFilter!) { segmentPreview(filter: $f) { totalCount } }",
            json!({ "f": named }),
        )
        .await;
    assert_eq!(preview["segmentPreview"]["totalCount"], 5);
}

#[tokio::test]
async fn bad_page_arguments_are_clear_errors() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_contact(json!({ "email": format!("e{i}@example.com") }))
            .await;
    }
    let data = app.gql(PAGE, json!({ "first": 1 })).await;
    let cursor = data["contacts"]["pageInfo"]["endCursor"].clone();
    let company_cursor = {
        app.create_company(json!({ "name": "A" })).await;
        app.create_company(json!({ "name": "B" })).await;
        app.gql("{ companies(first: 1) { pageInfo { endCursor } } }", json!({}))
            .await["companies"]["pageInfo"]["endCursor"]
            .clone()
    };
    let cases = [
        (json!({ "first": 0 }), "between 1 and 100"),
        (json!({ "first": 1000 }), "between 1 and 100"),
        (json!({ "last": -1 }), "between 1 and 100"),
        (json!({ "first": 5, "last": 5 }), "not both"),
        (json!({ "first": 5, "after": "bm90IGEgY3Vyc29y" }), "invalid cursor"),
        (json!({ "first": 5, "after": "%%%" }), "invalid cursor"),
        (
            json!({ "first": 5, "after": company_cursor }),
            "another list or ordering",
        ),
        (
            json!({ "first": 5, "after": cursor, "o": [{ "email": "ASC" }] }),
            "another list or ordering",
        ),
    ];
    for (vars, needle) in cases {
        let (code, message) = app.gql_error(PAGE, vars.clone()).await;
        assert_eq!(code, "BAD_USER_INPUT", "{vars}");
        assert!(message.contains(needle), "{vars}: {message}");
    }
}

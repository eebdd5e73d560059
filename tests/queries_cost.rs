//! A page of contacts with company, owner and tags costs a constant number of SQL statements.

use crate::support::TestApp;
use serde_json::json;

const PAGE: &str = "query($n: Int!) { contacts(first: $n, orderBy: [{createdAt: DESC}]) { totalCount nodes { email tags company { name owner { name } } owner { name } } } }";

#[tokio::test]
async fn a_page_costs_the_same_statements_whatever_its_size() {
    let app = TestApp::spawn().await;
    let owners: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            let data = app
                .gql(
                    "mutation($e: String!) { userCreate(input: {email: $e, name: \"Rep\", role: SALES}) { user { id } } }",
                    json!({ "e": format!("rep{i}@voxtur.dev") }),
                )
                .await;
            ids.push(data["userCreate"]["user"]["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let mut companies = Vec::new();
    for i in 0..10 {
        companies.push(
            app.create_company(json!({ "name": format!("Company {i}"), "ownerId": owners[i % 3] }))
                .await,
        );
    }
    let inputs: Vec<_> = (0..60)
        .map(|i| json!({ "email": format!("c{i}@example.com"), "companyId": companies[i % 10], "ownerId": owners[i % 3], "tags": ["t"] }))
        .collect();
    app.gql(
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;

    let mut costs = Vec::new();
    for size in [5, 50] {
        let before = app.statements.get();
        let data = app.gql(PAGE, json!({ "n": size })).await;
        costs.push(app.statements.get() - before);
        let nodes = data["contacts"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), size);
        assert!(
            nodes
                .iter()
                .all(|n| n["company"]["owner"]["name"] == "Rep" && n["tags"] == json!(["t"]))
        );
    }
    // Key lookup, count, page, companies, tags, users for contact owners and for company owners
    // (two batches when the levels resolve apart, one when they meet): 7. Loaders batch over a
    // 1 ms window, and a list of more than 30 items is polled in rounds (futures' join_all), so
    // on a loaded machine one level may land in two batches: at most 9, any size. One statement
    // per row would cost at least 18 for 5 contacts and 153 for 50.
    assert!(
        costs.iter().all(|&c| c <= 9),
        "statements for 5 and 50 contacts: {costs:?}"
    );

    // Nested connections: companies with their contacts, also constant.
    let nested = "query($n: Int!) { companies(first: $n) { nodes { name contacts(first: 3) { totalCount nodes { email owner { name } } } } } }";
    let mut costs = Vec::new();
    for size in [2, 10] {
        let before = app.statements.get();
        let data = app.gql(nested, json!({ "n": size })).await;
        costs.push(app.statements.get() - before);
        for company in data["companies"]["nodes"].as_array().unwrap() {
            assert_eq!(company["contacts"]["totalCount"], 6);
            assert_eq!(company["contacts"]["nodes"].as_array().unwrap().len(), 3);
        }
    }
    // Key lookup, page, first contacts of every company, their counts, their owners.
    assert!(
        costs.iter().all(|&c| c <= 5),
        "statements for 2 and 10 companies: {costs:?}"
    );
}

/// The planner settings every PostgreSQL connection of the server runs with (`db::connect`
/// says why): a page's joins without Memoize, no parallel workers, room to hash in memory.
#[tokio::test]
async fn postgres_connections_plan_with_the_servers_settings() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let app = TestApp::spawn().await;
    if app.db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let row = app
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_setting('enable_memoize') || ' ' || current_setting('max_parallel_workers_per_gather') \
             || ' ' || current_setting('work_mem')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "off 0 32MB");
}

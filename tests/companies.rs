use crate::support::{TestApp, codes};
use serde_json::json;

#[tokio::test]
async fn companies_validate_and_deleting_one_keeps_its_contacts() {
    let app = TestApp::spawn().await;
    let acme = app.create_company(json!({ "name": "Acme", "domain": "https://www.ACME.com/about", "size": "SIZE_51_200", "industry": "Retail" })).await;
    let data = app
        .gql(
            r#"mutation { companyCreate(input: {name: "Acme 2", domain: "acme.com"}) { company { id } userErrors { code field } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(codes(&data["companyCreate"]), ["TAKEN"]);
    let data = app
        .gql(r#"mutation { companyCreate(input: {name: " ", domain: "not a domain"}) { company { id } userErrors { code } } }"#, json!({}))
        .await;
    assert!(codes(&data["companyCreate"]).contains(&"REQUIRED".to_owned()));

    let contact = app
        .create_contact(json!({ "email": "x@acme.com", "companyId": acme }))
        .await;
    let data = app
        .gql(
            r#"{ companies(filter: {domain: {eq: "ACME.com"}, size: [SIZE_51_200]}) { totalCount nodes { domain size industry } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["companies"]["nodes"],
        json!([{ "domain": "acme.com", "size": "SIZE_51_200", "industry": "Retail" }])
    );
    // `like` is case-sensitive and `ilike` is not, on both backends.
    let data = app
        .gql(
            r#"{ exact: companies(filter: {name: {like: "acm%"}}) { totalCount }
                 loose: companies(filter: {name: {ilike: "acm%"}}) { totalCount }
                 cased: companies(filter: {name: {like: "Acm%"}}) { totalCount }
                 prefix: companies(filter: {name: {startsWith: "ACME"}}) { totalCount } }"#,
            json!({}),
        )
        .await;
    let counts: Vec<_> = ["exact", "loose", "cased", "prefix"]
        .iter()
        .map(|k| data[k]["totalCount"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [0, 1, 1, 1]);
    let data = app
        .gql(
            r#"{ contacts(filter: {company: {industry: {eq: "Retail"}}}) { totalCount } }"#,
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["totalCount"], 1);

    let data = app
        .gql(
            "mutation($id: ID!) { companyDelete(id: $id) { deletedCompanyId userErrors { code } } }",
            json!({ "id": acme }),
        )
        .await;
    assert_eq!(data["companyDelete"]["deletedCompanyId"], acme);
    let data = app
        .gql(
            "query($id: ID!) { node(id: $id) { ... on Contact { email company { id } } } }",
            json!({ "id": contact["id"] }),
        )
        .await;
    assert_eq!(data["node"], json!({ "email": "x@acme.com", "company": null }));
}

#[tokio::test]
async fn a_companys_contacts_page_on_from_any_edge_cursor() {
    let app = TestApp::spawn().await;
    let acme = app.create_company(json!({ "name": "Acme" })).await;
    for n in 0..5 {
        app.create_contact(json!({ "email": format!("c{n}@acme.com"), "companyId": acme }))
            .await;
    }
    let query = "query($id: ID!, $after: String) { node(id: $id) { ... on Company { contacts(first: 4, after: $after) { edges { cursor node { email } } } } } }";
    let first = app.gql(query, json!({ "id": acme, "after": null })).await;
    let first = first["node"]["contacts"]["edges"].as_array().unwrap().clone();
    assert_eq!(first.len(), 4);
    assert!(
        first.iter().all(|e| !e["cursor"].as_str().unwrap().is_empty()),
        "{first:?}"
    );
    let rest = app.gql(query, json!({ "id": acme, "after": first[1]["cursor"] })).await;
    let rest: Vec<&serde_json::Value> = rest["node"]["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["email"])
        .collect();
    assert_eq!(
        rest,
        [
            &first[2]["node"]["email"],
            &first[3]["node"]["email"],
            &json!("c4@acme.com")
        ]
    );
}

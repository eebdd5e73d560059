//! Contact writes and the bad inputs that must change nothing.

use crate::support::{TestApp, codes};
use serde_json::json;

const CREATE: &str = "mutation($input: ContactCreateInput!) { contactCreate(input: $input) { contact { id email firstName lifecycleStage tags consent { email { status doNotContact contactable } } utm { source } customFields } userErrors { code field message } } }";
const UPDATE: &str = "mutation($id: ID!, $input: ContactUpdateInput!) { contactUpdate(id: $id, input: $input) { contact { id email firstName lastName phone tags } userErrors { code field message } } }";

#[tokio::test]
async fn create_update_delete_round_trip() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            CREATE,
            json!({ "input": {
                "email": "  Ann.Lee@Example.COM ", "firstName": "Ann", "lifecycleStage": "LEAD", "tags": ["vip", "newsletter", "vip"],
                "consent": { "email": { "status": "GRANTED" } }, "utm": { "source": "google" }
            }}),
        )
        .await;
    let contact = &data["contactCreate"]["contact"];
    assert_eq!(contact["email"], "ann.lee@example.com");
    assert_eq!(contact["lifecycleStage"], "LEAD");
    assert_eq!(contact["tags"], json!(["newsletter", "vip"]));
    assert_eq!(
        contact["consent"]["email"],
        json!({ "status": "GRANTED", "doNotContact": false, "contactable": true })
    );
    assert_eq!(contact["utm"]["source"], "google");
    let id = contact["id"].as_str().unwrap();

    let data = app
        .gql(
            UPDATE,
            json!({ "id": id, "input": { "lastName": "Lee", "firstName": null, "tags": ["customer"] } }),
        )
        .await;
    let updated = &data["contactUpdate"]["contact"];
    assert_eq!(updated["firstName"], json!(null));
    assert_eq!(updated["lastName"], "Lee");
    assert_eq!(updated["email"], "ann.lee@example.com", "absent fields stay");
    assert_eq!(updated["tags"], json!(["customer"]));

    let data = app
        .gql(
            "mutation($id: ID!) { contactDelete(id: $id) { deletedContactId userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["contactDelete"]["deletedContactId"], id);
    assert_eq!(app.contact_count().await, 0);
    let data = app
        .gql(
            "mutation($id: ID!) { contactDelete(id: $id) { deletedContactId userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(codes(&data["contactDelete"]), ["NOT_FOUND"]);
}

#[tokio::test]
async fn bad_contact_input_is_reported_and_saves_nothing() {
    let app = TestApp::spawn().await;
    let existing = app
        .create_contact(json!({ "email": "taken@example.com", "firstName": "Keep" }))
        .await;
    app.gql(
        r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "plan", label: "Plan", type: SINGLE_SELECT, options: ["free", "pro"]}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;
    app.gql(
        r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "nps", label: "NPS", type: NUMBER}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;

    let cases = [
        (
            json!({ "email": "not-an-email" }),
            "INVALID_EMAIL",
            vec!["input", "email"],
        ),
        (json!({ "email": "ann@nodot" }), "INVALID_EMAIL", vec!["input", "email"]),
        (json!({ "email": "TAKEN@Example.com" }), "TAKEN", vec!["input", "email"]),
        (
            json!({ "email": "n@example.com", "customFields": { "colour": "red" } }),
            "UNKNOWN_FIELD",
            vec!["input", "customFields", "colour"],
        ),
        (
            json!({ "email": "n@example.com", "customFields": { "nps": "ten" } }),
            "WRONG_TYPE",
            vec!["input", "customFields", "nps"],
        ),
        (
            json!({ "email": "n@example.com", "customFields": { "plan": "gold" } }),
            "NOT_AN_OPTION",
            vec!["input", "customFields", "plan"],
        ),
        (
            json!({ "email": "n@example.com", "customFields": ["plan"] }),
            "WRONG_TYPE",
            vec!["input", "customFields"],
        ),
        (
            json!({ "email": "n@example.com", "phone": "call me" }),
            "INVALID",
            vec!["input", "phone"],
        ),
        (
            json!({ "email": "n@example.com", "companyId": "Q29tcGFueTo=" }),
            "NOT_FOUND",
            vec!["input", "companyId"],
        ),
        (
            json!({ "email": "n@example.com", "tags": [""] }),
            "INVALID",
            vec!["input", "tags"],
        ),
    ];
    for (input, code, field) in cases {
        let data = app.gql(CREATE, json!({ "input": input })).await;
        let payload = &data["contactCreate"];
        assert_eq!(payload["contact"], json!(null), "{input}");
        assert_eq!(codes(payload), [code], "{input}: {payload}");
        assert_eq!(payload["userErrors"][0]["field"], json!(field), "{input}");
    }
    assert_eq!(app.contact_count().await, 1);

    // An update to a taken email (case variant) or a bad value changes nothing at all.
    let other = app.create_contact(json!({ "email": "other@example.com" })).await;
    let data = app
        .gql(
            UPDATE,
            json!({ "id": other["id"], "input": { "email": "Taken@EXAMPLE.com", "firstName": "Changed" } }),
        )
        .await;
    assert_eq!(codes(&data["contactUpdate"]), ["TAKEN"]);
    let data = app
        .gql(
            UPDATE,
            json!({ "id": existing["id"], "input": { "firstName": "Changed", "email": "bad" } }),
        )
        .await;
    assert_eq!(codes(&data["contactUpdate"]), ["INVALID_EMAIL"]);
    let data = app
        .gql(
            "query($id: ID!) { node(id: $id) { ... on Contact { firstName email } } }",
            json!({ "id": existing["id"] }),
        )
        .await;
    assert_eq!(
        data["node"],
        json!({ "firstName": "Keep", "email": "taken@example.com" })
    );

    // A Company id where a Contact id is expected is "not found".
    let company = app.create_company(json!({ "name": "Acme" })).await;
    let data = app
        .gql(UPDATE, json!({ "id": company, "input": { "firstName": "X" } }))
        .await;
    assert_eq!(codes(&data["contactUpdate"]), ["NOT_FOUND"]);
    let data = app
        .gql("query($id: ID!) { node(id: $id) { id } }", json!({ "id": "garbage" }))
        .await;
    assert_eq!(data["node"], json!(null));
}

/// A list page fetches its contacts' companies and owners with the page; each contact must get
/// its own, whichever way the query reaches the node, and none where it has none.
#[tokio::test]
async fn list_pages_resolve_each_contacts_company_and_owner() {
    let app = TestApp::spawn().await;
    let mut owners = Vec::new();
    for name in ["Ada", "Grace"] {
        let data = app
            .gql(
                "mutation($e: String!, $n: String!) { userCreate(input: {email: $e, name: $n, role: SALES}) { user { id } } }",
                json!({ "e": format!("{name}@voxtur.dev"), "n": name }),
            )
            .await;
        owners.push(data["userCreate"]["user"]["id"].as_str().unwrap().to_owned());
    }
    let acme = app.create_company(json!({ "name": "Acme" })).await;
    let globex = app
        .create_company(json!({ "name": "Globex", "ownerId": owners[1] }))
        .await;
    let inputs = json!([
        { "email": "a@example.com", "companyId": acme, "ownerId": owners[0] },
        { "email": "b@example.com", "companyId": globex, "ownerId": owners[1] },
        { "email": "c@example.com", "companyId": globex },
        { "email": "d@example.com", "ownerId": owners[0] },
        { "email": "e@example.com" },
    ]);
    app.gql(
        "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
        json!({ "i": inputs }),
    )
    .await;
    let expected = json!([
        { "email": "a@example.com", "company": { "name": "Acme", "owner": null }, "owner": { "name": "Ada" } },
        { "email": "b@example.com", "company": { "name": "Globex", "owner": { "name": "Grace" } }, "owner": { "name": "Grace" } },
        { "email": "c@example.com", "company": { "name": "Globex", "owner": { "name": "Grace" } }, "owner": null },
        { "email": "d@example.com", "company": null, "owner": { "name": "Ada" } },
        { "email": "e@example.com", "company": null, "owner": null },
    ]);
    let fields = "email company { name owner { name } } owner { name }";
    let order = "orderBy: [{email: ASC}]";
    let data = app
        .gql(
            &format!("{{ contacts({order}) {{ nodes {{ {fields} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["nodes"], expected);
    let data = app
        .gql(
            &format!("{{ contacts({order}) {{ edges {{ node {{ {fields} }} }} }} }}"),
            json!({}),
        )
        .await;
    let nodes: Vec<_> = data["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(json!(nodes), expected);
    // Through a filter on the company (a subquery naming its table) and, with `totalCount`,
    // through a behaviour condition (page and count in one statement).
    let data = app
        .gql(
            &format!(
                r#"{{ contacts(filter: {{company: {{name: {{eq: "Globex"}}}}}}, {order}) {{ totalCount nodes {{ {fields} }} }} }}"#
            ),
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["totalCount"], 2);
    assert_eq!(data["contacts"]["nodes"], json!([expected[1], expected[2]]));
    let data = app
        .gql(
            &format!(
                "{{ contacts(filter: {{events: [{{type: PAGE_VIEWED, atMost: 0}}]}}, {order}) {{ totalCount nodes {{ {fields} }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(data["contacts"]["totalCount"], 5);
    assert_eq!(data["contacts"]["nodes"], expected);
    // Only the owners asked for.
    let data = app
        .gql(
            &format!("{{ contacts({order}, first: 2) {{ nodes {{ owner {{ name }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        data["contacts"]["nodes"],
        json!([{ "owner": { "name": "Ada" } }, { "owner": { "name": "Grace" } }])
    );
}

/// A selection of every field of `type_name` that takes no required argument: scalars by name,
/// objects with their own fields, `depth` levels down (objects below that are left out).
async fn every_field(app: &TestApp, type_name: &str, depth: usize) -> Vec<(String, String)> {
    let data = app
        .gql(
            "query($t: String!) { __type(name: $t) { fields { name args { type { kind } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }",
            json!({ "t": type_name }),
        )
        .await;
    let mut out = Vec::new();
    for field in data["__type"]["fields"].as_array().unwrap() {
        let required_args = field["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"]["kind"] == "NON_NULL");
        if required_args {
            continue;
        }
        let mut ty = &field["type"];
        while ty["name"].is_null() {
            ty = &ty["ofType"];
        }
        let name = field["name"].as_str().unwrap().to_owned();
        match ty["kind"].as_str().unwrap() {
            "SCALAR" | "ENUM" => out.push((name.clone(), name)),
            "OBJECT" | "INTERFACE" if depth > 0 => {
                let inner: Vec<String> = Box::pin(every_field(app, ty["name"].as_str().unwrap(), depth - 1))
                    .await
                    .into_iter()
                    .map(|(_, selection)| selection)
                    .collect();
                let inner = if inner.is_empty() {
                    "__typename".to_owned()
                } else {
                    inner.join(" ")
                };
                out.push((name.clone(), format!("{name} {{ {inner} }}")));
            }
            _ => {}
        }
    }
    out
}

/// A page reads only the columns its query asks for (and of the company and owner joined in);
/// every field of a contact, of its company and of its owner must read the same there, asked
/// alone, as through `node`, which reads whole rows. A field whose columns the projection got
/// wrong would read a blank here.
#[tokio::test]
async fn every_field_reads_the_same_from_a_page_as_from_its_node() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            r#"mutation { userCreate(input: {email: "ada@voxtur.dev", name: "Ada", role: SALES}) { user { id } } }"#,
            json!({}),
        )
        .await;
    let owner = data["userCreate"]["user"]["id"].as_str().unwrap().to_owned();
    for object in ["CONTACT", "COMPANY"] {
        let data = app
            .gql(
                "mutation($o: ObjectType!) { customFieldDefine(input: {objectType: $o, key: \"plan\", label: \"Plan\", type: TEXT}) { userErrors { code } } }",
                json!({ "o": object }),
            )
            .await;
        assert_eq!(codes(&data["customFieldDefine"]), Vec::<String>::new(), "{data}");
    }
    let company = app
        .create_company(json!({
            "name": "Acme", "domain": "acme.example", "industry": "Rockets", "size": "SIZE_11_50",
            "ownerId": owner, "customFields": { "plan": "gold" }
        }))
        .await;
    let contact = app
        .create_contact(json!({
            "email": "grace@acme.example", "firstName": "Grace", "lastName": "Hopper", "phone": "+1 555 0100",
            "companyId": company, "ownerId": owner, "lifecycleStage": "MARKETING_QUALIFIED", "tags": ["vip", "beta"],
            "consent": { "email": { "status": "GRANTED" }, "sms": { "status": "WITHDRAWN", "doNotContact": true } },
            "source": "form", "utm": { "source": "google", "medium": "cpc", "campaign": "spring", "term": "crm", "content": "a" },
            "customFields": { "plan": "silver" }
        }))
        .await;
    let id = contact["id"].as_str().unwrap();
    let data = app
        .gql(
            "mutation($id: ID!) { eventRecord(input: {contactId: $id, type: CALL_LOGGED, channel: PHONE}) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(codes(&data["eventRecord"]), Vec::<String>::new(), "{data}");

    let page = |selection: &str| format!("{{ contacts(first: 5) {{ nodes {{ {selection} }} }} }}");
    let fields = every_field(&app, "Contact", 2).await;
    assert!(fields.len() > 20, "{fields:?}");
    for (name, selection) in &fields {
        let from_node = app
            .gql(
                &format!("query($id: ID!) {{ node(id: $id) {{ ... on Contact {{ {selection} }} }} }}"),
                json!({ "id": id }),
            )
            .await;
        let from_page = app.gql(&page(selection), json!({})).await;
        assert_eq!(
            from_page["contacts"]["nodes"][0][name], from_node["node"][name],
            "Contact.{name}"
        );
        assert!(!from_node["node"][name].is_null(), "Contact.{name} is set in this test");
    }
    for (relation, type_name, related_id) in [("company", "Company", &company), ("owner", "User", &owner)] {
        for (name, selection) in every_field(&app, type_name, 1).await {
            let from_node = app
                .gql(
                    &format!("query($id: ID!) {{ node(id: $id) {{ ... on {type_name} {{ {selection} }} }} }}"),
                    json!({ "id": related_id }),
                )
                .await;
            let from_page = app
                .gql(&page(&format!("{relation} {{ {selection} }}")), json!({}))
                .await;
            assert_eq!(
                from_page["contacts"]["nodes"][0][relation][&name], from_node["node"][&name],
                "{type_name}.{name}"
            );
        }
    }
    // Through a fragment, beside a field a fragment on the company asks for.
    let data = app
        .gql(
            "fragment C on Contact { phone company { ...Co } } fragment Co on Company { domain } { contacts { edges { node { ...C } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["contacts"]["edges"][0]["node"],
        json!({ "phone": "+1 555 0100", "company": { "domain": "acme.example" } })
    );
}

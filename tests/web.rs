//! Forms, landing pages and tracked links, driven as a browser and an API client would.

use crate::support::{TestApp, codes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const FORM: &str =
    "mutation($i: FormInput!) { formCreate(input: $i) { form { id submitPath } userErrors { code field message } } }";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn newsletter_form(app: &TestApp, extra: Value) -> (String, String) {
    app.gql(
        r#"mutation { customFieldDefine(input: {objectType: CONTACT, key: "interest", label: "Interest", type: SINGLE_SELECT, options: ["sofas", "cars"]}) { userErrors { code } } }"#,
        json!({}),
    )
    .await;
    let mut input = json!({
        "name": "Newsletter",
        "fields": [
            { "key": "email", "label": "Email", "type": "EMAIL", "mapsTo": "email", "required": true },
            { "key": "first", "label": "First name", "type": "TEXT", "mapsTo": "firstName" },
            { "key": "interest", "label": "Interest", "type": "SELECT", "mapsTo": "custom:interest", "options": ["sofas", "cars"] },
            { "key": "comment", "label": "Comment", "type": "TEXTAREA" }
        ],
        "consents": [{ "channel": "EMAIL", "label": "Send me the newsletter", "required": true }],
        "successMessage": "Welcome aboard",
        "notifyOwner": true
    });
    if let (Some(target), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    let data = app.gql(FORM, json!({ "i": input })).await;
    assert_eq!(codes(&data["formCreate"]), Vec::<String>::new(), "{data}");
    let form = &data["formCreate"]["form"];
    (
        form["id"].as_str().unwrap().to_owned(),
        form["submitPath"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn form_definitions_are_validated() {
    let app = TestApp::spawn().await;
    let email = json!({ "key": "email", "label": "Email", "type": "EMAIL", "mapsTo": "email", "required": true });
    let cases = [
        (
            json!({ "name": "No email", "fields": [{ "key": "n", "label": "Name", "type": "TEXT", "mapsTo": "firstName" }] }),
            "REQUIRED",
        ),
        (
            json!({ "name": "Dup", "fields": [email, { "key": "email", "label": "Again", "type": "TEXT" }] }),
            "INVALID",
        ),
        (
            json!({ "name": "Unknown", "fields": [email, { "key": "x", "label": "X", "type": "TEXT", "mapsTo": "custom:nope" }] }),
            "UNKNOWN_FIELD",
        ),
        (
            json!({ "name": "Bad map", "fields": [email, { "key": "x", "label": "X", "type": "NUMBER", "mapsTo": "phone" }] }),
            "WRONG_TYPE",
        ),
        (
            json!({ "name": "Redirect", "fields": [email], "redirectUrl": "javascript:alert(1)" }),
            "INVALID",
        ),
        (
            json!({ "name": "Select", "fields": [email, { "key": "s", "label": "S", "type": "SELECT" }] }),
            "INVALID",
        ),
    ];
    for (input, code) in cases {
        let data = app.gql(FORM, json!({ "i": input })).await;
        assert!(codes(&data["formCreate"]).contains(&code.to_owned()), "{input}: {data}");
        assert_eq!(data["formCreate"]["form"], Value::Null);
    }
    assert_eq!(app.gql("{ forms { id } }", json!({})).await["forms"], json!([]));
}

#[tokio::test]
async fn a_submission_creates_the_contact_applies_consent_and_records_everything() {
    let app = TestApp::spawn().await;
    let (_, path) = newsletter_form(&app, json!({})).await;
    let url = format!("{}{path}", app.address);
    let client = browser();

    // Field-level errors, and nothing saved.
    for (body, field) in [
        (json!({ "first": "Ann", "consent_email": true }), "email"),
        (json!({ "email": "not-mail", "consent_email": true }), "email"),
        (
            json!({ "email": "ann@example.com", "interest": "boats", "consent_email": true }),
            "interest",
        ),
        (json!({ "email": "ann@example.com" }), "consent_email"),
    ] {
        let response = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json: Value = response.json().await.unwrap();
        assert!(json["errors"][field].is_string(), "{body}: {json}");
    }
    assert_eq!(app.contact_count().await, 0, "no partial contact");

    // The honeypot: answered as success, nothing stored.
    let response = client
        .post(&url)
        .json(&json!({ "email": "bot@example.com", "consent_email": "on", "_hp": "http://spam" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.contact_count().await, 0);

    let response = client
        .post(&url)
        .json(&json!({ "email": "Ann@Example.com", "first": "Ann", "interest": "sofas", "comment": "Blue please", "consent_email": "on" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["message"], "Welcome aboard");
    let data = app
        .gql(
            r#"{ contactByEmail(email: "ann@example.com") { firstName source customFields consent { email { status contactable } }
                 timeline { nodes { type name source properties } } } }"#,
            json!({}),
        )
        .await;
    let contact = &data["contactByEmail"];
    assert_eq!(contact["firstName"], "Ann");
    assert_eq!(contact["source"], "form");
    assert_eq!(contact["customFields"], json!({ "interest": "sofas" }));
    assert_eq!(
        contact["consent"]["email"],
        json!({ "status": "GRANTED", "contactable": true })
    );
    let event = &contact["timeline"]["nodes"][0];
    assert_eq!(
        (event["type"].as_str(), event["name"].as_str(), event["source"].as_str()),
        (Some("FORM_SUBMITTED"), Some("Newsletter"), Some("form"))
    );
    assert_eq!(event["properties"]["values"]["comment"], "Blue please");
    assert_eq!(event["properties"]["values"]["consent_email"], true);

    use sea_orm::EntityTrait;
    let notifications = entities::notification::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(notifications.len(), 1);
    assert_eq!(notifications[0].kind, "form_submitted");

    // The same person again updates the contact rather than duplicating it.
    client
        .post(&url)
        .json(&json!({ "email": "ann@example.com", "first": "Annie", "consent_email": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(app.contact_count().await, 1);

    // Unknown form.
    let response = client
        .post(format!("{}/forms/00000000-0000-0000-0000-000000000000", app.address))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.assert_tallies_match_events().await;
}

#[tokio::test]
async fn browser_posts_redirect_and_are_rate_limited() {
    let app = TestApp::spawn().await;
    let (_, path) = newsletter_form(&app, json!({ "redirectUrl": "https://example.com/thanks" })).await;
    let url = format!("{}{path}", app.address);
    let client = browser();
    let response = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=cy%40example.com&consent_email=on&first=Cy")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "https://example.com/thanks");
    assert_eq!(app.contact_count().await, 1);

    let mut statuses = Vec::new();
    for i in 0..25 {
        let response = client
            .post(&url)
            .json(&json!({ "email": format!("r{i}@example.com"), "consent_email": true }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    let accepted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(app.contact_count().await as usize, 1 + accepted);
}

#[tokio::test]
async fn landing_pages_are_sanitized_served_and_tracked() {
    let app = TestApp::spawn().await;
    let (form_id, _) = newsletter_form(&app, json!({})).await;
    let page = "mutation($i: LandingPageInput!) { landingPageCreate(input: $i) { landingPage { bodyHtml path } userErrors { code field } } }";
    let data = app
        .gql(page, json!({ "i": { "slug": "spring-sale", "title": "Spring <sale>", "formId": form_id,
            "bodyHtml": "<h1 onmouseover=\"x()\">Spring sale</h1><script>document.cookie</script><a href=\"javascript:alert(1)\">go</a>" } }))
        .await;
    let created = &data["landingPageCreate"]["landingPage"];
    let body = created["bodyHtml"].as_str().unwrap();
    assert!(
        body.contains("<h1>Spring sale</h1>")
            && !body.contains("script")
            && !body.contains("javascript:")
            && !body.contains("onmouseover"),
        "{body}"
    );
    for (input, code) in [
        (
            json!({ "slug": "Spring Sale", "title": "x", "bodyHtml": "" }),
            "INVALID",
        ),
        (json!({ "slug": "spring-sale", "title": "x", "bodyHtml": "" }), "TAKEN"),
        (
            json!({ "slug": "other", "title": "x", "bodyHtml": "", "formId": "Rm9ybTo=" }),
            "NOT_FOUND",
        ),
    ] {
        let data = app.gql(page, json!({ "i": input })).await;
        assert_eq!(codes(&data["landingPageCreate"]), [code], "{input}");
    }

    let client = browser();
    let url = format!(
        "{}{}?utm_source=fb&utm_campaign=spring",
        app.address,
        created["path"].as_str().unwrap()
    );
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("vx_anon="));
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Spring &lt;sale&gt;</title>"), "{html}");
    assert!(html.contains(r#"name="consent_email""#) && html.contains(r#"name="_hp""#));
    // A second view with the cookie keeps the same visitor.
    client.get(&url).header("cookie", &cookie).send().await.unwrap();

    // The visitor submits the embedded form: their page views join the new contact.
    let response = client
        .post(format!("{}/forms/{}", app.address, {
            use base64::Engine;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&form_id)
                .unwrap();
            String::from_utf8(raw).unwrap().split_once(':').unwrap().1.to_owned()
        }))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "email=dee%40example.com&consent_email=true&_page={}",
            urlencode(&url)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let data = app
        .gql(
            r#"{ contactByEmail(email: "dee@example.com") { timeline { nodes { type utm { source campaign } } } } }"#,
            json!({}),
        )
        .await;
    let nodes = data["contactByEmail"]["timeline"]["nodes"].as_array().unwrap();
    let types: Vec<&str> = nodes.iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["FORM_SUBMITTED", "PAGE_VIEWED", "PAGE_VIEWED"]);
    assert_eq!(nodes[1]["utm"], json!({ "source": "fb", "campaign": "spring" }));
    assert_eq!(nodes[0]["utm"]["campaign"], "spring", "the form carries the page's UTM");
    assert_eq!(
        app.gql("{ contacts(filter: {anonymous: true}) { totalCount } }", json!({}))
            .await["contacts"]["totalCount"],
        0
    );

    let response = client
        .get(format!("{}/p/{}/nope", app.address, app.workspace_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.assert_tallies_match_events().await;
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn tracked_links_redirect_and_record_clicks() {
    let app = TestApp::spawn().await;
    let create = "mutation($i: TrackedLinkInput!) { trackedLinkCreate(input: $i) { trackedLink { code path targetUrl } userErrors { code field message } } }";
    for target in [
        "javascript:alert(1)",
        "ftp://files.example.com",
        "not a url",
        "/relative",
    ] {
        let data = app.gql(create, json!({ "i": { "targetUrl": target } })).await;
        assert_eq!(codes(&data["trackedLinkCreate"]), ["INVALID"], "{target}");
    }
    let data = app
        .gql(create, json!({ "i": { "targetUrl": "https://shop.example.com/sofa?color=blue", "campaign": "fall-mailing", "utmSource": "newsletter", "utmMedium": "email" } }))
        .await;
    let link = &data["trackedLinkCreate"]["trackedLink"];
    let client = browser();
    let response = client
        .get(format!("{}{}", app.address, link["path"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "https://shop.example.com/sofa?color=blue&utm_source=newsletter&utm_medium=email"
    );
    let data = app.gql("{ events(filter: {types: [LINK_CLICKED]}) { nodes { campaign channel properties contact { anonymous } } } }", json!({})).await;
    let event = &data["events"]["nodes"][0];
    assert_eq!(event["campaign"], "fall-mailing");
    assert_eq!(event["properties"]["code"], link["code"]);
    assert_eq!(event["contact"]["anonymous"], true);

    let response = client.get(format!("{}/l/NOPE1234", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("does not exist"));
    app.assert_tallies_match_events().await;
}

/// A public form cannot plant a formula in a marketer's spreadsheet: exported cells that a
/// spreadsheet would run get a leading `'`; phone numbers and numbers stay as they are.
#[tokio::test]
async fn exports_quote_what_a_spreadsheet_would_run() {
    let app = TestApp::spawn().await;
    let data = app
        .gql(
            FORM,
            json!({ "i": { "name": "Contact us", "fields": [
                { "key": "email", "label": "Email", "type": "EMAIL", "mapsTo": "email", "required": true },
                { "key": "first", "label": "First name", "type": "TEXT", "mapsTo": "firstName" },
                { "key": "phone", "label": "Phone", "type": "PHONE", "mapsTo": "phone" }
            ] } }),
        )
        .await;
    let path = data["formCreate"]["form"]["submitPath"].as_str().unwrap().to_owned();
    let response = browser()
        .post(format!("{}{path}", app.address))
        .json(&json!({ "email": "mallory@example.com", "first": "=HYPERLINK(\"http://evil.example\",\"Click\")", "phone": "+49 30 1234" }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let data = app
        .gql(
            "mutation { segmentCreate(input: {name: \"All\", filter: {email: {isNull: false}}}) { segment { id } } }",
            json!({}),
        )
        .await;
    let id = data["segmentCreate"]["segment"]["id"].as_str().unwrap();
    let segment = voxtur_core::ids::decode_as(id, voxtur_core::ids::NodeKind::Segment).unwrap();
    let (csv, _, rows) =
        voxtur_core::segments::export::page(&app.db, app.workspace_id, segment, None, &Default::default())
            .await
            .unwrap();
    assert_eq!(rows, 1);
    assert!(
        csv.contains(r#""'=HYPERLINK(""http://evil.example"",""Click"")""#),
        "{csv}"
    );
    assert!(csv.contains(",+49 30 1234,"), "{csv}");
}

/// A browser posting a form gets pages back: the landing page again with each problem next to
/// its field and the values kept (escaped), or the thanks; a program keeps JSON. Pages carry
/// the default stylesheet, then the page's own CSS.
#[tokio::test]
async fn browsers_get_pages_back_and_programs_keep_json() {
    let app = TestApp::spawn().await;
    let (form_id, submit_path) = newsletter_form(&app, json!({})).await;
    let data = app
        .gql(
            "mutation($i: LandingPageInput!) { landingPageCreate(input: $i) { landingPage { path css } userErrors { code field } } }",
            json!({ "i": { "slug": "join", "title": "Join", "formId": form_id, "bodyHtml": "<h1>Join us</h1>",
                           "css": "main { max-width: 50rem }" } }),
        )
        .await;
    let page_path = data["landingPageCreate"]["landingPage"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = browser();
    let page = client
        .get(format!("{}{page_path}", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let default_at = page.find(".vx-field{").expect("the default stylesheet");
    let own_at = page.find("main { max-width: 50rem }").expect("the page's CSS");
    assert!(
        default_at < own_at,
        "the page's CSS comes after the default, so it wins"
    );
    assert!(
        page.contains(r#"<label for="vx-email">Email</label><input id="vx-email" type="email""#),
        "{page}"
    );

    let post = |body: String, accept: &'static str| {
        client
            .post(format!("{}{submit_path}", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", accept)
            .body(body)
            .send()
    };
    let html_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let response = post(
        format!(
            "email=not-an-email&first=%22%3E%3Cscript%3Ex()%3C%2Fscript%3E&interest=cars&comment=Hi+there&_page={}",
            urlencode(&format!("{page_path}?utm_source=fb"))
        ),
        html_accept,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let again = response.text().await.unwrap();
    assert!(again.contains("<h1>Join us</h1>"), "the landing page again: {again}");
    assert!(again.contains("main { max-width: 50rem }"));
    assert!(
        again.contains(r#"value="not-an-email" autocomplete="email" required aria-invalid="true" aria-describedby="vx-email-error">"#),
        "{again}"
    );
    assert!(
        again.contains(
            r#"<p class="vx-error" id="vx-email-error">&quot;not-an-email&quot; is not a valid email address</p>"#
        ),
        "people read quotation marks, not the API's backticks: {again}"
    );
    assert!(
        again.contains(r#"<p class="vx-error" id="vx-consent_email-error">"#),
        "the consent's error too"
    );
    assert!(
        again.contains("value=\"&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\""),
        "kept, escaped: {again}"
    );
    assert!(!again.contains("<script>x()"));
    assert!(again.contains(r#"<option value="cars" selected>"#) && again.contains(">Hi there</textarea>"));
    assert_eq!(app.contact_count().await, 0);

    let response = post(
        format!(
            "email=ann%40example.com&consent_email=on&_page={}",
            urlencode(&page_path)
        ),
        html_accept,
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let thanks = response.text().await.unwrap();
    assert!(
        thanks.contains("Welcome aboard") && thanks.contains(&format!(r#"<a href="{page_path}">"#)),
        "{thanks}"
    );
    assert!(
        thanks.contains("<title>Join</title>") && thanks.contains("main { max-width: 50rem }"),
        "thanked in the landing page's look: {thanks}"
    );
    assert_eq!(app.contact_count().await, 1);

    // Not from a landing page: the form on a page of its own. A program asking for JSON: JSON.
    let response = post("email=nope".into(), html_accept).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let alone = response.text().await.unwrap();
    assert!(
        alone.contains("<h1>Newsletter</h1>") && alone.contains("vx-email-error"),
        "{alone}"
    );
    let response = post("email=nope".into(), "application/json").await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["success"], false);
    assert!(json["errors"]["email"].is_string(), "{json}");
    let response = client
        .post(format!("{}/forms/not-a-form", app.address))
        .header("accept", html_accept)
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.text().await.unwrap().contains("<h1>Not found</h1>"));

    let data = app
        .gql(
            "mutation($i: LandingPageInput!) { landingPageCreate(input: $i) { userErrors { code field } } }",
            json!({ "i": { "slug": "evil", "title": "x", "bodyHtml": "", "css": "</style><script>x()</script>" } }),
        )
        .await;
    assert_eq!(
        data["landingPageCreate"]["userErrors"],
        json!([{ "code": "INVALID", "field": ["input", "css"] }])
    );
}

/// Public pages carry a strict policy: no script at all, only their own styles (by hash), the
/// form posted here (and redirected to its target's origin), framed only where the page allows.
#[tokio::test]
async fn public_pages_send_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;
    let (form_id, _) = newsletter_form(&app, json!({ "redirectUrl": "https://thanks.example/ok" })).await;
    let create = "mutation($i: LandingPageInput!) { landingPageCreate(input: $i) { landingPage { path frameAncestors } userErrors { code field } } }";
    let data = app
        .gql(
            create,
            json!({ "i": { "slug": "framed", "title": "Framed", "formId": form_id, "bodyHtml": "<p>Hi</p>",
                           "css": "body { color: navy }", "frameAncestors": ["self", "https://shop.example/"] } }),
        )
        .await;
    let page = &data["landingPageCreate"]["landingPage"];
    assert_eq!(page["frameAncestors"], "'self' https://shop.example", "{data}");
    let response = browser()
        .get(format!("{}{}", app.address, page["path"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
    assert_eq!(
        csp.matches("'sha256-").count(),
        2,
        "the default stylesheet and the page's: {csp}"
    );
    assert!(csp.contains("form-action 'self' https://thanks.example;"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self' https://shop.example;"), "{csp}");
    assert!(!csp.contains("script-src") && !csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "strict-origin-when-cross-origin");
    let html = response.text().await.unwrap();
    assert!(
        !html.contains("style=\""),
        "no inline style attribute (the policy would block it): {html}"
    );

    let missing = browser()
        .get(format!("{}/p/{}/nope", app.address, app.workspace_id))
        .send()
        .await
        .unwrap();
    assert!(
        missing.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    for (ancestors, field) in [
        (json!(["none", "self"]), json!(["input", "frameAncestors", "0"])),
        (json!(["javascript:alert(1)"]), json!(["input", "frameAncestors", "0"])),
        (
            json!(["self", "https://ok.example/path"]),
            json!(["input", "frameAncestors", "1"]),
        ),
    ] {
        let data = app
            .gql(
                create,
                json!({ "i": { "slug": "bad", "title": "B", "bodyHtml": "", "frameAncestors": ancestors } }),
            )
            .await;
        assert_eq!(data["landingPageCreate"]["userErrors"][0]["field"], field, "{data}");
    }
}

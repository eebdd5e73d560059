//! Outbound webhooks against a local receiver: Standard Webhooks headers and signatures
//! (checked here with an HMAC of our own), order per contact, every attempt logged, retries on
//! schedule, the endpoint disabled after its last retry, rotation, timeouts, and bad input.

use crate::support::TestApp;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    Accept,
    Fail,
    Hang,
}

#[derive(Clone)]
struct Received {
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (r, b) = (received.clone(), behaviour.clone());
        let server = HttpServer::new(move || {
            let (r, b) = (r.clone(), b.clone());
            App::new().route(
                "/hook",
                web::post().to(move |req: HttpRequest, body: web::Bytes| {
                    let (r, b) = (r.clone(), b.clone());
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                            .collect();
                        r.lock().unwrap().push(Received {
                            headers,
                            body: body.to_vec(),
                        });
                        let behaviour = *b.lock().unwrap();
                        match behaviour {
                            Behaviour::Accept => HttpResponse::Ok().body("thanks"),
                            Behaviour::Fail => HttpResponse::InternalServerError().body("x".repeat(5_000)),
                            Behaviour::Hang => {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                HttpResponse::Ok().finish()
                            }
                        }
                    }
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received,
            behaviour,
        }
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            if self.all().len() >= n {
                return self.all();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the receiver got {} of {n} requests", self.all().len());
    }
}

/// The Standard Webhooks signature, computed here independently of the server's code.
fn expected_signature(secret: &str, received: &Received) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.{}",
        received.headers["webhook-id"],
        received.headers["webhook-timestamp"],
        String::from_utf8_lossy(&received.body)
    );
    mac.update(signed.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

async fn app() -> TestApp {
    TestApp::spawn().await
}

const CREATE: &str = "mutation($i: WebhookEndpointCreateInput!) { webhookEndpointCreate(input: $i) { endpoint { id url eventTypes enabled } secret userErrors { code field message } } }";

async fn endpoint(app: &TestApp, url: &str, types: Value) -> (String, String) {
    let data = app
        .gql(CREATE, json!({ "i": { "url": url, "eventTypes": types } }))
        .await;
    let created = &data["webhookEndpointCreate"];
    assert_eq!(created["userErrors"], json!([]), "{data}");
    (
        created["endpoint"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn events_are_signed_delivered_in_order_per_contact_and_logged() {
    let app = app().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let (endpoint_id, secret) = endpoint(
        &app,
        &receiver.url,
        json!([
            "contact.created",
            "contact.updated",
            "segment.entered",
            "form.submitted"
        ]),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    app.gql(
        r#"mutation { segmentCreate(input: {name: "Hooked", filter: {email: {contains: "hook"}}}) { segment { id } } }"#,
        json!({}),
    )
    .await;
    let contact = app.create_contact(json!({ "email": "hook@example.com" })).await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    app.gql(
        "mutation($id: ID!) { contactUpdate(id: $id, input: {firstName: \"Ann\"}) { userErrors { code } } }",
        json!({ "id": contact_id }),
    )
    .await;
    let received = receiver.wait_for(3).await;
    let types: Vec<String> = received
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["contact.created", "segment.entered", "contact.updated"]);
    let now = chrono::Utc::now().timestamp();
    for r in &received {
        assert!(r.headers["webhook-id"].starts_with("msg_"), "{:?}", r.headers);
        let timestamp: i64 = r.headers["webhook-timestamp"].parse().unwrap();
        assert!((now - timestamp).abs() < 60);
        assert_eq!(r.headers["webhook-signature"], expected_signature(&secret, r));
        assert_eq!(r.headers["content-type"], "application/json");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["data"]["contactId"], contact_id.as_str(), "{body}");
        assert!(body["timestamp"].as_str().unwrap().starts_with("20"));
    }
    let ids: std::collections::HashSet<&str> = received.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "each message its own id");

    // Every attempt is in the endpoint's log.
    let data = app
        .gql(
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { totalCount nodes { eventType state attemptCount messageId attempts { statusCode latencyMs error responseBody } } } } }",
            json!({ "id": endpoint_id }),
        )
        .await;
    let deliveries = &data["webhookEndpoint"]["deliveries"];
    assert_eq!(deliveries["totalCount"], 3);
    let first = &deliveries["nodes"][2];
    assert_eq!(first["eventType"], "contact.created");
    assert_eq!(first["state"], "DELIVERED");
    assert_eq!(first["attempts"][0]["statusCode"], 200);
    assert_eq!(first["attempts"][0]["responseBody"], "thanks");
}

#[tokio::test]
async fn a_failing_receiver_is_retried_on_schedule_then_its_endpoint_is_disabled() {
    let app = app().await;
    let receiver = Receiver::start(Behaviour::Fail).await;
    let (endpoint_id, _) = endpoint(&app, &receiver.url, json!(["contact.created"])).await;
    let healthy = Receiver::start(Behaviour::Accept).await;
    endpoint(&app, &healthy.url, json!(["contact.created"])).await;
    app.create_contact(json!({ "email": "retry@example.com" })).await;
    receiver.wait_for(1).await;
    healthy.wait_for(1).await;
    let deliveries = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason deliveries { nodes { id state attemptCount nextAttemptAt attempts { statusCode error responseBody } } } } }";
    let data = app.gql(deliveries, json!({ "id": endpoint_id })).await;
    let delivery = &data["webhookEndpoint"]["deliveries"]["nodes"][0];
    assert_eq!(delivery["state"], "PENDING");
    assert_eq!(delivery["attemptCount"], 1);
    assert_eq!(delivery["attempts"][0]["statusCode"], 500);
    assert_eq!(delivery["attempts"][0]["error"], "the receiver answered 500");
    assert_eq!(
        delivery["attempts"][0]["responseBody"].as_str().unwrap().len(),
        1_000,
        "the answer is kept truncated"
    );
    let next: chrono::DateTime<chrono::Utc> = delivery["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let wait = next - chrono::Utc::now();
    assert!(
        wait <= chrono::Duration::seconds(5) && wait > chrono::Duration::seconds(2),
        "{wait}"
    );
    // The second attempt comes after 5 s, and the third is 30 s after it.
    receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = app.gql(deliveries, json!({ "id": endpoint_id })).await;
    let delivery = &data["webhookEndpoint"]["deliveries"]["nodes"][0];
    assert_eq!(delivery["attemptCount"], 2);
    let next: chrono::DateTime<chrono::Utc> = delivery["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    assert!(next - chrono::Utc::now() > chrono::Duration::seconds(20));

    // Three days later: the last attempt fails, and the endpoint is disabled with the reason.
    let delivery_id = delivery["id"].as_str().unwrap().to_owned();
    let uuid = voxtur_core::ids::decode_as(&delivery_id, voxtur_core::ids::NodeKind::WebhookDelivery).unwrap();
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    entities::webhook_delivery::Entity::update_many()
        .col_expr(
            entities::webhook_delivery::Column::Attempts,
            sea_orm::sea_query::Expr::val(14),
        )
        .col_expr(
            entities::webhook_delivery::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::val(voxtur_store::now()),
        )
        .filter(entities::webhook_delivery::Column::Id.eq(uuid))
        .exec(&app.db)
        .await
        .unwrap();
    let retry =
        "mutation($id: ID!) { webhookDeliveryRetry(id: $id) { delivery { state } userErrors { code message } } }";
    app.gql(retry, json!({ "id": delivery_id })).await;
    receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = app.gql(deliveries, json!({ "id": endpoint_id })).await;
    assert_eq!(data["webhookEndpoint"]["enabled"], false, "{data}");
    assert!(
        data["webhookEndpoint"]["disabledReason"]
            .as_str()
            .unwrap()
            .contains("three days"),
        "{data}"
    );
    assert_eq!(data["webhookEndpoint"]["deliveries"]["nodes"][0]["state"], "FAILED");

    // The receiver is fixed; the delivery is retried and the endpoint enabled again.
    *receiver.behaviour.lock().unwrap() = Behaviour::Accept;
    let data = app.gql(retry, json!({ "id": delivery_id })).await;
    assert_eq!(data["webhookDeliveryRetry"]["delivery"]["state"], "PENDING");
    app.gql(
        "mutation($id: ID!) { webhookEndpointUpdate(id: $id, input: {enabled: true}) { endpoint { enabled disabledReason } } }",
        json!({ "id": endpoint_id }),
    )
    .await;
    receiver.wait_for(4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = app.gql(deliveries, json!({ "id": endpoint_id })).await;
    assert_eq!(data["webhookEndpoint"]["deliveries"]["nodes"][0]["state"], "DELIVERED");
    let data = app.gql(retry, json!({ "id": delivery_id })).await;
    assert_eq!(data["webhookDeliveryRetry"]["userErrors"][0]["code"], "WRONG_STATE");
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_without_holding_back_the_others() {
    let app = app().await;
    let hanging = Receiver::start(Behaviour::Hang).await;
    let (hanging_id, _) = endpoint(&app, &hanging.url, json!(["contact.created"])).await;
    let healthy = Receiver::start(Behaviour::Accept).await;
    endpoint(&app, &healthy.url, json!(["contact.created"])).await;
    app.create_contact(json!({ "email": "slow@example.com" })).await;
    healthy.wait_for(1).await;
    hanging.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let data = app
        .gql(
            "query($id: ID!) { webhookEndpoint(id: $id) { deliveries { nodes { state attempts { statusCode error } } } } }",
            json!({ "id": hanging_id }),
        )
        .await;
    let attempt = &data["webhookEndpoint"]["deliveries"]["nodes"][0]["attempts"][0];
    assert_eq!(attempt["statusCode"], Value::Null);
    assert_eq!(attempt["error"], "no answer within 1 s", "{data}");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_for_a_day() {
    let app = app().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let (endpoint_id, old) = endpoint(&app, &receiver.url, json!(["contact.created"])).await;
    let data = app
        .gql(
            "mutation($id: ID!) { webhookSecretRotate(id: $id) { secret endpoint { previousSecretValidUntil } } }",
            json!({ "id": endpoint_id }),
        )
        .await;
    let new = data["webhookSecretRotate"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.create_contact(json!({ "email": "rotate@example.com" })).await;
    let received = receiver.wait_for(1).await;
    let header = &received[0].headers["webhook-signature"];
    let signatures: Vec<&str> = header.split(' ').collect();
    assert_eq!(
        signatures,
        [
            expected_signature(&new, &received[0]),
            expected_signature(&old, &received[0])
        ]
    );
}

#[tokio::test]
async fn bad_endpoints_are_refused_and_endpoints_are_the_workspace_s_own() {
    let app = TestApp::spawn().await;
    let refused = |url: &str, types: Value, address: &str| {
        let app = &app;
        let (url, types, address) = (url.to_owned(), types, address.to_owned());
        async move {
            let body: Value = app
                .client
                .post(format!("{address}/graphql"))
                .bearer_auth(&app.key)
                .json(&json!({ "query": CREATE, "variables": { "i": { "url": url, "eventTypes": types } } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = &body["data"];
            assert_eq!(data["webhookEndpointCreate"]["endpoint"], Value::Null, "{body}");
            data["webhookEndpointCreate"]["userErrors"].clone()
        }
    };
    // The binary with the default settings, which refuse private targets.
    let (mut server, binary) = app.binary(&[]);
    for private in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://localhost:9/hook",
    ] {
        let errors = refused(private, json!(["contact.created"]), &binary).await;
        assert!(errors[0]["message"].as_str().unwrap().contains("private"), "{errors}");
    }
    server.kill().unwrap();
    let _ = server.wait();
    let address = app.address.clone();
    let errors = refused("ftp://example.com/x", json!(["contact.created"]), &address).await;
    assert!(
        errors[0]["message"].as_str().unwrap().contains("http or https"),
        "{errors}"
    );
    assert_eq!(errors[0]["field"], json!(["input", "url"]));
    let errors = refused("not a url", json!(["contact.created"]), &address).await;
    assert_eq!(errors[0]["code"], "INVALID");
    let errors = refused("https://93.184.216.34/hook", json!(["contact.exploded"]), &address).await;
    assert_eq!(errors[0]["code"], "NOT_AN_OPTION");
    assert_eq!(errors[0]["field"], json!(["input", "eventTypes", "0"]));
    let errors = refused("https://93.184.216.34/hook", json!([]), &address).await;
    assert_eq!(errors[0]["code"], "REQUIRED");
    let data = app.gql("{ webhookEndpoints { id } }", json!({})).await;
    assert_eq!(data["webhookEndpoints"], json!([]), "nothing was created");

    let data = app
        .gql(
            CREATE,
            json!({ "i": { "url": "https://93.184.216.34/hook", "eventTypes": ["contact.created"] } }),
        )
        .await;
    let id = data["webhookEndpointCreate"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.other_workspace("workspace:admin").await;
    let (_, body) = app
        .gql_as(
            Some(&other),
            "query($id: ID!) { webhookEndpoint(id: $id) { url } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["webhookEndpoint"], Value::Null);
    let (_, body) = app
        .gql_as(
            Some(&other),
            "mutation($id: ID!) { webhookEndpointDelete(id: $id) { userErrors { code } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["data"]["webhookEndpointDelete"]["userErrors"][0]["code"],
        "NOT_FOUND"
    );
    let reader = app.key_with("contacts:read").await;
    let (_, body) = app
        .gql_as(Some(&reader), "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let data = app
        .gql(
            "mutation($id: ID!) { webhookEndpointDelete(id: $id) { deletedEndpointId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["webhookEndpointDelete"]["deletedEndpointId"], id.as_str());
}

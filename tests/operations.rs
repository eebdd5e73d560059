//! Operations: `GET /metrics` in Prometheus text, protected by a token when one is set.

use crate::support::TestApp;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn metrics_count_requests_jobs_and_ingestion_and_need_the_token_when_set() {
    let app = TestApp::spawn_with(|settings| settings.metrics.token = Some("s3cret-token".into())).await;
    app.gql("{ viewer { scopes } }", json!({})).await;
    let write_key = app.write_key().await;
    app.track("/v1/track", &write_key, json!({ "userId": "u1", "event": "Signed Up" }))
        .await;
    let url = format!("{}/metrics", app.address);
    let refused = app.client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = app.client.get(&url).bearer_auth("s3cret-tokem").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let answer = app.client.get(&url).bearer_auth("s3cret-token").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        answer.headers()
    );
    let text = answer.text().await.unwrap();
    for expected in [
        r#"voxtur_http_requests_total{method="POST",route="/graphql",status="200"}"#,
        r#"voxtur_http_request_duration_seconds_bucket{route="/graphql""#,
        r#"voxtur_job_queue_depth{queue="default",state="available"}"#,
        r#"voxtur_job_oldest_available_age_seconds{queue="webhooks"}"#,
        r#"voxtur_ingested_messages_total{source="#,
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    // Routes are counted by their pattern, never by the raw path (ids would explode the series).
    assert!(text.contains(r#"route="/v1/{kind}""#), "{text}");
    assert!(!text.contains(r#"route="/v1/track""#), "{text}");
}

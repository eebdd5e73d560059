//! `GET /metrics` in the Prometheus text format. The domain counts what it does through the
//! `metrics` facade (jobs run and failed, webhook deliveries by outcome, ingested messages,
//! segment evaluations); this module installs the Prometheus recorder, counts HTTP requests and
//! their latency by route, and reads the job queue's depth and oldest age at each scrape.
//! `[metrics] token` protects the endpoint (`Authorization: Bearer <token>`).

use crate::http::{AppState, error_response};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::Instant;

/// `[metrics]` in the configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// When set, `/metrics` answers only requests bearing it (`Authorization: Bearer <token>`).
    pub token: Option<String>,
}

/// The process's Prometheus recorder (one per process: the `metrics` facade is global).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            Err(error) => {
                // Another recorder was installed first; render an empty registry of our own.
                tracing::warn!(%error, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/metrics", web::get().to(scrape));
}

/// Counts each request by method, route pattern (never the raw path: ids would explode the
/// series) and status, and times it by route.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let response = next.call(req).await?;
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = response.status().as_u16().to_string();
    metrics::counter!("voxtur_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("voxtur_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(response)
}

async fn scrape(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(token) = &state.metrics.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_none_or(|given| !constant_time_eq(given.as_bytes(), token.as_bytes())) {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "the metrics need the configured token: Authorization: Bearer <token>",
            );
        }
    }
    if let Err(error) = read_queue(&state.db).await {
        tracing::warn!(%error, "job queue not read for the metrics");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle().render())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The queue's depth by queue and state, and the age of the oldest due job by queue.
async fn read_queue(db: &sea_orm::DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let backend = db.get_database_backend();
    let age = match backend {
        DbBackend::Postgres => "EXTRACT(EPOCH FROM now() - min(run_at))::float8",
        _ => "(julianday('now') - julianday(min(run_at))) * 86400.0",
    };
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            format!(
                "SELECT queue, state, count(*) AS depth, {age} AS oldest FROM job \
                 WHERE state IN ('scheduled', 'available', 'running', 'discarded') GROUP BY queue, state"
            ),
        ))
        .await?;
    // Every state of every queue seen is reset, so a drained queue reads 0, not its last depth.
    for queue in voxtur_core::jobs::worker::WorkerSettings::default().queues {
        for state in ["scheduled", "available", "running", "discarded"] {
            metrics::gauge!("voxtur_job_queue_depth", "queue" => queue.clone(), "state" => state).set(0.0);
        }
        metrics::gauge!("voxtur_job_oldest_available_age_seconds", "queue" => queue).set(0.0);
    }
    for row in rows {
        let queue: String = row.try_get("", "queue")?;
        let state: String = row.try_get("", "state")?;
        let depth: i64 = row.try_get("", "depth")?;
        metrics::gauge!("voxtur_job_queue_depth", "queue" => queue.clone(), "state" => state.clone()).set(depth as f64);
        if state == "available" {
            let oldest: Option<f64> = row.try_get("", "oldest")?;
            metrics::gauge!("voxtur_job_oldest_available_age_seconds", "queue" => queue)
                .set(oldest.unwrap_or(0.0).max(0.0));
        }
    }
    Ok(())
}

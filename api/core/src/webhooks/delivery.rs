//! Delivering an endpoint's webhooks: one job at a time per endpoint (a lease on the endpoint
//! row), sending its due deliveries oldest first, several at once but never two about the same
//! contact, and a contact's later deliveries held while an earlier one waits for its retry.

use super::{Outgoing, sign, timestamp, transport};
use crate::jobs::{self, JobError, NewJob};
use chrono::{DateTime, Utc};
use entities::{webhook_attempt, webhook_delivery, webhook_endpoint};
use futures_util::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// The wait before each retry, after the first attempt failed: 5 s, 30 s, 2 min, 5 min,
/// 30 min, 1 h, 2 h, 5 h and 10 h six times; about three days in all, after which the
/// delivery fails and its endpoint is disabled.
const RETRY_AFTER_SECS: [u64; 14] = [
    5, 30, 120, 300, 1_800, 3_600, 7_200, 18_000, 36_000, 36_000, 36_000, 36_000, 36_000, 36_000,
];
/// Deliveries looked at in one pass.
const PASS: u64 = 500;
/// Requests in flight to one endpoint at once.
const IN_FLIGHT: usize = 16;
/// How long a delivering job holds its endpoint without renewing.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// The start of a response body kept in the attempt's log.
const BODY_KEPT: usize = 1_000;

/// Queues the job that delivers `endpoint`'s due deliveries, now or `at`.
pub async fn schedule_drain(
    db: &impl ConnectionTrait,
    endpoint: &webhook_endpoint::Model,
    at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let args = serde_json::json!({ "endpointId": endpoint.id.to_string() });
    let mut job = NewJob::new(jobs::WEBHOOKS_DELIVER, endpoint.workspace_id, args).queue(jobs::WEBHOOKS_QUEUE);
    if let Some(at) = at {
        // One timer per endpoint and second.
        job = job
            .at(at)
            .unique(format!("webhook-timer:{}:{}", endpoint.id, at.timestamp()));
    }
    jobs::enqueue(db, job).await?;
    Ok(())
}

/// Takes the endpoint for this job, if no other job holds it.
async fn take(db: &DatabaseConnection, endpoint_id: Uuid) -> Result<bool, DbErr> {
    let now = crate::now();
    let taken = webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::DrainingUntil, Expr::val(now + LEASE))
        .filter(webhook_endpoint::Column::Id.eq(endpoint_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_endpoint::Column::DrainingUntil.is_null())
                .add(webhook_endpoint::Column::DrainingUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

async fn give_back(db: &DatabaseConnection, endpoint_id: Uuid) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(
            webhook_endpoint::Column::DrainingUntil,
            Expr::val(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_endpoint::Column::Id.eq(endpoint_id))
        .exec(db)
        .await?;
    Ok(())
}

async fn pending(db: &DatabaseConnection, endpoint_id: Uuid) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
        // Written into the SQL, so the partial index of pending deliveries serves it.
        .filter(Expr::col(webhook_delivery::Column::State).eq(Expr::cust("'pending'")))
        .order_by_asc(webhook_delivery::Column::CreatedAt)
        .order_by_asc(webhook_delivery::Column::Id)
        .limit(PASS)
        .all(db)
        .await
}

/// The deliveries to send now, in order: due, and not behind an earlier one about the same
/// contact that is waiting or in this pass already. Also when the next waiting one is due.
fn sendable(
    pending: Vec<webhook_delivery::Model>,
    now: DateTime<Utc>,
) -> (Vec<webhook_delivery::Model>, Option<DateTime<Utc>>) {
    let mut held: HashSet<Uuid> = HashSet::new();
    let mut next_due: Option<DateTime<Utc>> = None;
    let mut out = Vec::new();
    for delivery in pending {
        if delivery.contact_id.is_some_and(|contact| held.contains(&contact)) {
            continue;
        }
        if delivery.next_attempt_at > now {
            next_due = Some(next_due.map_or(delivery.next_attempt_at, |at| Ord::min(at, delivery.next_attempt_at)));
            held.extend(delivery.contact_id);
            continue;
        }
        held.extend(delivery.contact_id);
        out.push(delivery);
    }
    (out, next_due)
}

/// The delivering job of one endpoint.
pub async fn run_job(db: DatabaseConnection, job: jobs::Job) -> Result<(), JobError> {
    let endpoint_id = jobs::id_arg(&job, "endpointId")?;
    loop {
        if !take(&db, endpoint_id).await? {
            // Another job holds it; it looks again after giving it back.
            return Ok(());
        }
        let outcome = drain(&db, endpoint_id).await;
        give_back(&db, endpoint_id).await?;
        let next_due = outcome?;
        // What was recorded while this job held the endpoint, whose own job found it taken.
        let now = crate::now();
        let (due, _) = sendable(pending(&db, endpoint_id).await?, now);
        if !due.is_empty() {
            continue;
        }
        if let Some(at) = next_due
            && let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id).one(&db).await?
            && endpoint.enabled
        {
            schedule_drain(&db, &endpoint, Some(at)).await?;
        }
        return Ok(());
    }
}

/// Sends every due delivery of the endpoint; when the next waiting one is due.
async fn drain(db: &DatabaseConnection, endpoint_id: Uuid) -> Result<Option<DateTime<Utc>>, JobError> {
    let Some(transport) = transport() else {
        return Err(JobError::Retry("no webhook transport in this process".into()));
    };
    loop {
        let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id).one(db).await? else {
            return Ok(None);
        };
        if !endpoint.enabled {
            return Ok(None);
        }
        let (batch, next_due) = sendable(pending(db, endpoint_id).await?, crate::now());
        if batch.is_empty() {
            return Ok(next_due);
        }
        let endpoint = &endpoint;
        let results: Vec<Result<(), DbErr>> = futures_util::stream::iter(batch)
            .map(|delivery| async move {
                let started = Instant::now();
                let request = request(endpoint, &delivery);
                let answer = transport.post(request).await;
                record_attempt(db, endpoint, &delivery, answer, started.elapsed()).await
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, DbErr>>()?;
        // Renew the hold on the endpoint between passes.
        take_again(db, endpoint_id).await?;
    }
}

async fn take_again(db: &DatabaseConnection, endpoint_id: Uuid) -> Result<(), DbErr> {
    webhook_endpoint::Entity::update_many()
        .col_expr(webhook_endpoint::Column::DrainingUntil, Expr::val(crate::now() + LEASE))
        .filter(webhook_endpoint::Column::Id.eq(endpoint_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The signed request of a delivery: the Standard Webhooks headers, signed with the current
/// secret and, for a day after a rotation, the previous one too.
fn request(endpoint: &webhook_endpoint::Model, delivery: &webhook_delivery::Model) -> Outgoing {
    let message_id = format!("msg_{}", delivery.id.simple());
    let now = crate::now();
    let timestamp = timestamp(now);
    let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
    let mut signatures = sign(&endpoint.secret, &message_id, timestamp, &body);
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_secret_until)
        && until > now
    {
        signatures.push(' ');
        signatures.push_str(&sign(previous, &message_id, timestamp, &body));
    }
    Outgoing {
        url: endpoint.url.clone(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), message_id),
            ("webhook-timestamp".into(), timestamp.to_string()),
            ("webhook-signature".into(), signatures),
        ],
        body,
    }
}

/// Logs an attempt and moves the delivery on: delivered, retried later, or failed (and its
/// endpoint disabled).
async fn record_attempt(
    db: &DatabaseConnection,
    endpoint: &webhook_endpoint::Model,
    delivery: &webhook_delivery::Model,
    answer: Result<super::Answer, String>,
    latency: Duration,
) -> Result<(), DbErr> {
    let now = crate::now();
    let (status, error, body) = match &answer {
        Ok(answer) if (200..300).contains(&answer.status) => (Some(answer.status as i32), None, Some(&answer.body)),
        Ok(answer) => (
            Some(answer.status as i32),
            Some(format!("the receiver answered {}", answer.status)),
            Some(&answer.body),
        ),
        Err(error) => (None, Some(error.clone()), None),
    };
    let keep = |text: &str| text.chars().take(BODY_KEPT).collect::<String>();
    webhook_attempt::ActiveModel::from(webhook_attempt::Model {
        id: Uuid::now_v7(),
        delivery_id: delivery.id,
        attempted_at: now,
        status_code: status,
        latency_ms: latency.as_millis().min(i32::MAX as u128) as i32,
        error: error.as_deref().map(keep),
        response_body: body.map(|b| keep(b)),
    })
    .reset_all()
    .insert(db)
    .await?;
    let attempts = delivery.attempts + 1;
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::val(attempts))
        .col_expr(webhook_delivery::Column::LastStatus, Expr::val(status))
        .col_expr(
            webhook_delivery::Column::LastError,
            Expr::val(error.as_deref().map(keep)),
        )
        .filter(webhook_delivery::Column::Id.eq(delivery.id));
    let Some(error) = error else {
        metrics::counter!("voxtur_webhook_deliveries_total", "outcome" => "delivered").increment(1);
        update
            .col_expr(webhook_delivery::Column::State, Expr::val(DELIVERED))
            .col_expr(webhook_delivery::Column::DeliveredAt, Expr::val(now))
            .exec(db)
            .await?;
        return Ok(());
    };
    match RETRY_AFTER_SECS.get(delivery.attempts as usize) {
        Some(wait) => {
            metrics::counter!("voxtur_webhook_deliveries_total", "outcome" => "retry").increment(1);
            update = update.col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::val(now + chrono::Duration::seconds(*wait as i64)),
            );
            update.exec(db).await?;
        }
        None => {
            metrics::counter!("voxtur_webhook_deliveries_total", "outcome" => "failed").increment(1);
            update
                .col_expr(webhook_delivery::Column::State, Expr::val(FAILED))
                .exec(db)
                .await?;
            let reason = format!(
                "deliveries failed for about three days; the last attempt: {}",
                keep(&error)
            );
            tracing::warn!(endpoint = %endpoint.id, %reason, "webhook endpoint disabled");
            webhook_endpoint::Entity::update_many()
                .col_expr(webhook_endpoint::Column::Enabled, Expr::val(false))
                .col_expr(webhook_endpoint::Column::DisabledReason, Expr::val(reason))
                .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::val(now))
                .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

/// The minute's safety net: endpoints with due deliveries and no job delivering them (one
/// died; a job found the endpoint taken as its holder finished) get one.
pub async fn sweep(db: DatabaseConnection) -> Result<(), JobError> {
    let now = crate::now();
    let due: Vec<Uuid> = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::EndpointId)
        .distinct()
        .filter(webhook_delivery::Column::State.eq(PENDING))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .into_tuple()
        .all(&db)
        .await?;
    if due.is_empty() {
        return Ok(());
    }
    let idle = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(due))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_endpoint::Column::DrainingUntil.is_null())
                .add(webhook_endpoint::Column::DrainingUntil.lt(now)),
        )
        .all(&db)
        .await?;
    for endpoint in &idle {
        schedule_drain(&db, endpoint, None).await?;
    }
    if !idle.is_empty() {
        jobs::queue::wake();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(n: u128, contact: Option<u128>, due_in_secs: i64, now: DateTime<Utc>) -> webhook_delivery::Model {
        webhook_delivery::Model {
            id: Uuid::from_u128(n),
            workspace_id: Uuid::nil(),
            endpoint_id: Uuid::nil(),
            event_type: "contact.updated".into(),
            contact_id: contact.map(Uuid::from_u128),
            payload: serde_json::json!({}),
            state: PENDING.into(),
            attempts: 0,
            next_attempt_at: now + chrono::Duration::seconds(due_in_secs),
            created_at: now,
            delivered_at: None,
            last_status: None,
            last_error: None,
        }
    }

    #[test]
    fn a_contact_s_deliveries_go_one_at_a_time_and_wait_behind_a_retry() {
        let now = crate::now();
        let pending = vec![
            delivery(1, Some(10), 60, now), // waiting for its retry: holds contact 10
            delivery(2, Some(10), 0, now),  // behind it
            delivery(3, Some(20), 0, now),
            delivery(4, Some(20), 0, now), // behind 3, in the next pass
            delivery(5, None, 0, now),
            delivery(6, None, 0, now),
        ];
        let (send, next_due) = sendable(pending, now);
        let ids: Vec<u128> = send.iter().map(|d| d.id.as_u128()).collect();
        assert_eq!(ids, [3, 5, 6]);
        assert_eq!(next_due, Some(now + chrono::Duration::seconds(60)));
    }

    #[test]
    fn retries_span_about_three_days() {
        let total: u64 = RETRY_AFTER_SECS.iter().sum();
        assert!((2.5 * 86_400.0..3.5 * 86_400.0).contains(&(total as f64)), "{total}");
    }
}

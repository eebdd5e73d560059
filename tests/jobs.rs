//! The durable backbone: the job queue's states, retries, unique keys, leases, fairness and
//! schedules (on queues the test app's own workers do not serve), the workers running jobs,
//! admins steering them, and the outbox surviving a crash between a commit and its follow-up.

use crate::support::TestApp;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use voxtur_core::jobs::{self, NewJob, State, queue, schedule};

async fn job(app: &TestApp, id: Uuid) -> entities::job::Model {
    entities::job::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

fn noop(app: &TestApp, queue: &str) -> NewJob {
    NewJob::new(jobs::NOOP, app.workspace_id, json!({})).queue(queue)
}

#[tokio::test]
async fn a_failed_job_is_retried_with_back_off_then_discarded_and_an_admin_may_retry_it() {
    let app = TestApp::spawn().await;
    let id = jobs::enqueue(&app.db, noop(&app, "t-retry").max_attempts(2))
        .await
        .unwrap()
        .unwrap();
    let (claimed, _) = queue::claim(&app.db, "t-retry", 10, Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    let outcome = queue::fail(&app.db, &claimed[0], "the provider said 503", true)
        .await
        .unwrap();
    let queue::Failed::RetryAt(at) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(at > voxtur_store::now() + chrono::Duration::seconds(15), "{at}");
    assert_eq!(job(&app, id).await.state, "scheduled");
    // Not yet due: nothing to claim; once due, promoted and claimed again.
    assert_eq!(queue::promote_due(&app.db).await.unwrap(), 0);
    entities::job::Entity::update_many()
        .col_expr(
            entities::job::Column::RunAt,
            sea_orm::sea_query::Expr::val(voxtur_store::now()),
        )
        .filter(entities::job::Column::Id.eq(id))
        .exec(&app.db)
        .await
        .unwrap();
    // Promoted here or by the app's own workers, whichever looks first.
    queue::promote_due(&app.db).await.unwrap();
    assert_eq!(job(&app, id).await.state, "available");
    let (claimed, _) = queue::claim(&app.db, "t-retry", 10, Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(claimed[0].attempt, 2);
    let outcome = queue::fail(&app.db, &claimed[0], "503 again", true).await.unwrap();
    assert_eq!(outcome, queue::Failed::Discarded, "out of attempts");
    let discarded = job(&app, id).await;
    assert_eq!(discarded.state, "discarded");
    assert!(discarded.finished_at.is_some());

    // Admins see it, with its errors, and may run it again, once.
    let global = voxtur_core::ids::NodeKind::Job.encode(id);
    let data = app
        .gql(
            r#"{ jobs(filter: {state: DISCARDED, queue: "t-retry"}) { nodes { id kind state attempt maxAttempts errors { attempt message } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        data["jobs"]["nodes"],
        json!([{ "id": global, "kind": "jobs.noop", "state": "DISCARDED", "attempt": 2, "maxAttempts": 2,
                 "errors": [{ "attempt": 1, "message": "the provider said 503" }, { "attempt": 2, "message": "503 again" }] }])
    );
    let retry = "mutation($id: ID!) { jobRetry(id: $id) { job { state attempt } userErrors { code field message } } }";
    let data = app.gql(retry, json!({ "id": global })).await;
    assert_eq!(data["jobRetry"]["job"], json!({ "state": "AVAILABLE", "attempt": 0 }));
    let data = app.gql(retry, json!({ "id": global })).await;
    assert_eq!(data["jobRetry"]["userErrors"][0]["code"], "WRONG_STATE");
    assert!(
        data["jobRetry"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the job is available"),
        "{data}"
    );
    let cancel = "mutation($id: ID!) { jobCancel(id: $id) { job { state } userErrors { code } } }";
    let data = app.gql(cancel, json!({ "id": global })).await;
    assert_eq!(data["jobCancel"]["job"]["state"], "CANCELLED");
    let data = app.gql(cancel, json!({ "id": global })).await;
    assert_eq!(data["jobCancel"]["userErrors"][0]["code"], "WRONG_STATE");
    // Another workspace's admin finds no such job; a key without the admin scope may not ask.
    let other = app.other_workspace("workspace:admin").await;
    let (_, body) = app.gql_as(Some(&other), retry, json!({ "id": global })).await;
    assert_eq!(body["data"]["jobRetry"]["userErrors"][0]["code"], "NOT_FOUND", "{body}");
    let reader = app.key_with("contacts:read").await;
    let (_, body) = app.gql_as(Some(&reader), "{ jobs { nodes { id } } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let data = app.gql(retry, json!({ "id": "nope" })).await;
    assert_eq!(data["jobRetry"]["userErrors"][0]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_unique_key_holds_among_unfinished_jobs_only() {
    let app = TestApp::spawn().await;
    let first = jobs::enqueue(&app.db, noop(&app, "t-unique").unique("sync:acme"))
        .await
        .unwrap();
    assert!(first.is_some());
    let again = jobs::enqueue(&app.db, noop(&app, "t-unique").unique("sync:acme"))
        .await
        .unwrap();
    assert_eq!(again, None, "the same job is not queued twice");
    let (claimed, _) = queue::claim(&app.db, "t-unique", 10, Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(queue::complete(&app.db, &[claimed[0].id]).await.unwrap(), 1);
    let after = jobs::enqueue(&app.db, noop(&app, "t-unique").unique("sync:acme"))
        .await
        .unwrap();
    assert!(after.is_some(), "a finished job does not hold its key");
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_when_its_lease_expires() {
    let app = TestApp::spawn().await;
    let id = jobs::enqueue(&app.db, noop(&app, "t-lease")).await.unwrap().unwrap();
    let last = jobs::enqueue(&app.db, noop(&app, "t-lease").max_attempts(1))
        .await
        .unwrap()
        .unwrap();
    let (claimed, _) = queue::claim(&app.db, "t-lease", 10, Duration::from_millis(500), None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // Held by a worker that died (not this process, whose heartbeat would keep them).
    entities::job::Entity::update_many()
        .col_expr(
            entities::job::Column::LockedBy,
            sea_orm::sea_query::Expr::val("a-worker-that-died"),
        )
        .filter(entities::job::Column::Queue.eq("t-lease"))
        .exec(&app.db)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // This test or the app's own workers rescue them.
    queue::rescue_expired(&app.db).await.unwrap();
    let rescued = job(&app, id).await;
    assert_eq!(rescued.state, "available");
    assert!(
        rescued.errors.to_string().contains("a-worker-that-died"),
        "{}",
        rescued.errors
    );
    assert_eq!(job(&app, last).await.state, "discarded", "out of attempts");
    // A lease kept alive by its heartbeat is not rescued.
    let (claimed, _) = queue::claim(&app.db, "t-lease", 10, Duration::from_secs(60), None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(queue::extend_leases(&app.db, Duration::from_secs(60)).await.unwrap() >= 1);
    assert_eq!(queue::rescue_expired(&app.db).await.unwrap(), 0);
    // A graceful shutdown gives it back, its attempt not counted.
    assert!(queue::release(&app.db).await.unwrap() >= 1);
    let released = job(&app, id).await;
    assert_eq!((released.state.as_str(), released.attempt), ("available", 1));
}

#[tokio::test]
async fn claims_take_turns_between_workspaces() {
    let app = TestApp::spawn().await;
    let busy = NewJob::new(jobs::NOOP, Uuid::from_u128(1), json!({})).queue("t-fair");
    let quiet = NewJob::new(jobs::NOOP, Uuid::from_u128(2), json!({})).queue("t-fair");
    for _ in 0..50 {
        jobs::enqueue(&app.db, busy.clone()).await.unwrap();
    }
    for _ in 0..2 {
        jobs::enqueue(&app.db, quiet.clone()).await.unwrap();
    }
    let lease = Duration::from_secs(60);
    let (first, served) = queue::claim(&app.db, "t-fair", 5, lease, None).await.unwrap();
    assert_eq!((first.len(), served), (5, Some(Uuid::from_u128(1))));
    let (second, served) = queue::claim(&app.db, "t-fair", 5, lease, served).await.unwrap();
    assert_eq!(
        (second.len(), served),
        (2, Some(Uuid::from_u128(2))),
        "the quiet workspace's turn comes after one claim, not after the busy one's 50 jobs"
    );
    let (third, served) = queue::claim(&app.db, "t-fair", 5, lease, served).await.unwrap();
    assert_eq!((third.len(), served), (5, Some(Uuid::from_u128(1))), "and round again");
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_whatever_the_number_of_workers() {
    let app = TestApp::spawn().await;
    let every_second = schedule::Schedule {
        name: "test-every-second".into(),
        cron: "* * * * * *".into(),
        kind: jobs::NOOP.into(),
        args: json!({}),
        queue: "t-cron".into(),
    };
    schedule::ensure(&app.db, std::slice::from_ref(&every_second))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Four workers look at once (and the app's own workers too): the tick fires once.
    let (a, b, c, d) = tokio::join!(
        schedule::fire_due(&app.db),
        schedule::fire_due(&app.db),
        schedule::fire_due(&app.db),
        schedule::fire_due(&app.db)
    );
    let fired: u64 = [a, b, c, d].into_iter().map(|r| r.unwrap()).sum();
    assert!(fired <= 1, "{fired}");
    let stored = entities::job_schedule::Entity::find_by_id("test-every-second".to_owned())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.last_run_at.is_some() && stored.next_run_at > voxtur_store::now() - chrono::Duration::seconds(1));
    let queued = entities::job::Entity::find()
        .filter(entities::job::Column::Queue.eq("t-cron"))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(queued, 1);
    // A cron expression that does not parse is refused with the reason.
    let broken = schedule::Schedule {
        cron: "every day".into(),
        ..every_second
    };
    let error = schedule::ensure(&app.db, &[broken]).await.unwrap_err();
    assert!(error.to_string().contains("not a cron expression"), "{error}");
}

/// The app's workers run what is enqueued: each job once, the system's schedules stored.
#[tokio::test]
async fn workers_run_every_job_once() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(
            jobs::enqueue(&app.db, noop(&app, jobs::DEFAULT_QUEUE))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    queue::wake();
    let done = wait_for(Duration::from_secs(20), || async {
        entities::job::Entity::find()
            .filter(entities::job::Column::Id.is_in(ids.clone()))
            .filter(entities::job::Column::State.eq(State::Completed.as_str()))
            .count(&app.db)
            .await
            .unwrap()
            == 200
    })
    .await;
    assert!(done, "the workers did not run every job");
    let attempts = entities::job::Entity::find()
        .filter(entities::job::Column::Id.is_in(ids))
        .filter(entities::job::Column::Attempt.ne(1))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "each ran once");
    let schedules = entities::job_schedule::Entity::find().all(&app.db).await.unwrap();
    let names: Vec<&str> = schedules.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"segment-windows"), "{names:?}");
}

async fn wait_for<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A server that dies between a write's commit and its follow-up (a fault injected only by
/// tests) loses nothing: the follow-up, recorded with the write, is run by another process's
/// workers once its lease expires, and segment membership is right without any rebuild.
#[tokio::test]
async fn a_crash_between_a_commit_and_its_follow_up_loses_nothing() {
    let app = TestApp::spawn_with(|settings| settings.jobs.lease_secs = 2).await;
    let segment = app
        .gql(
            r#"mutation { segmentCreate(input: {name: "Crash", filter: {email: {contains: "crash"}}}) { segment { id } } }"#,
            json!({}),
        )
        .await;
    let segment = segment["segmentCreate"]["segment"]["id"].as_str().unwrap().to_owned();

    let (mut child, address) = app.binary(&[("VOXTUR__JOBS__LEASE_SECS", "1"), ("VOXTUR_FAULT", "exit-after-commit")]);
    let port = address.rsplit(':').next().unwrap().to_owned();
    let sent = app
        .client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(&app.key)
        .json(&json!({ "query": r#"mutation { contactCreate(input: {email: "crash@example.com"}) { contact { id } } }"# }))
        .send()
        .await;
    assert!(sent.is_err(), "the server answered instead of dying: {sent:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(86), "{status}");

    // The contact was committed, its follow-up not run: not in the segment yet.
    assert!(
        app.gql(r#"{ contactByEmail(email: "crash@example.com") { id } }"#, json!({}))
            .await["contactByEmail"]
            .is_object()
    );
    let members = "query($s: ID!) { segment(id: $s) { memberCount } }";
    let in_segment = app.gql(members, json!({ "s": segment })).await;
    assert_eq!(in_segment["segment"]["memberCount"], 0);
    let follow_ups = entities::job::Entity::find()
        .filter(entities::job::Column::Kind.eq(jobs::FOLLOW_UP))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(follow_ups[0].state, "running", "leased to the process that died");

    // The test app's workers take it over once the dead process's lease expires.
    let joined = wait_for(Duration::from_secs(30), || async {
        app.gql(members, json!({ "s": segment })).await["segment"]["memberCount"] == 1
    })
    .await;
    assert!(joined, "the follow-up of the crashed write never ran");
    let follow_up = job(&app, follow_ups[0].id).await;
    assert_eq!(follow_up.state, "completed");
}

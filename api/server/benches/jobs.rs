//! The job queue's benchmark (see BENCHMARKS.md).
//!
//! cargo bench --bench jobs -- [--backend sqlite|postgres] [--jobs N] [--concurrency C] [--timers N]
//!
//! 1. Throughput: N no-op jobs enqueued (in transactions of 1,000), then run by one process's
//!    workers (C at once); reports enqueued/s and run/s (from the workers' start to the last
//!    completion recorded).
//! 2. Timers: N no-op jobs due 2 s ahead, spread over a second, with the workers idle; reports
//!    how long after its due time each finished (p50, p99, max): the wake-up, the claim, the
//!    run and the recording of its completion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use std::time::{Duration, Instant};
use voxtur::config::Settings;
use voxtur_core::jobs::worker::{WorkerSettings, Workers};
use voxtur_core::jobs::{self, NewJob};

struct Args {
    backend: String,
    jobs: usize,
    concurrency: usize,
    timers: usize,
}

fn args() -> Args {
    let mut args = Args {
        backend: "sqlite".into(),
        jobs: 100_000,
        concurrency: 16,
        timers: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => args.backend = it.next().expect("--backend sqlite|postgres"),
            "--jobs" => args.jobs = it.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            "--concurrency" => args.concurrency = it.next().and_then(|v| v.parse().ok()).expect("--concurrency C"),
            "--timers" => args.timers = it.next().and_then(|v| v.parse().ok()).expect("--timers N"),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

fn main() {
    let args = args();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(args));
}

async fn completed(db: &sea_orm::DatabaseConnection) -> u64 {
    entities::job::Entity::find()
        .filter(entities::job::Column::State.eq("completed"))
        .count(db)
        .await
        .unwrap()
}

async fn run(args: Args) {
    let mut settings = Settings::default();
    settings.log.filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
    voxtur::telemetry::init(&settings.log);
    let dir = tempfile::tempdir().unwrap();
    match args.backend.as_str() {
        "postgres" => {
            let url = std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let admin = Database::connect(&url).await.unwrap();
            admin
                .execute_unprepared("DROP SCHEMA IF EXISTS voxtur_bench_jobs CASCADE; CREATE SCHEMA voxtur_bench_jobs")
                .await
                .unwrap();
            settings.database.url = url;
            settings.database.schema = Some("voxtur_bench_jobs".into());
        }
        _ => settings.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display()),
    }
    settings.jobs = WorkerSettings {
        concurrency: args.concurrency,
        ..WorkerSettings::default()
    };
    let db = voxtur::server::connect_workers(&settings).await.unwrap();
    voxtur_store::db::migrate(&db).await.unwrap();
    let workspace = voxtur_core::workspaces::create_workspace(&db, "Bench").await.unwrap();
    println!(
        "backend: {}, jobs: {}, concurrency: {}",
        args.backend, args.jobs, args.concurrency
    );

    // 1. Throughput.
    let started = Instant::now();
    for chunk in (0..args.jobs).collect::<Vec<_>>().chunks(1_000) {
        let txn = db.begin().await.unwrap();
        for _ in chunk {
            jobs::enqueue(&txn, NewJob::new(jobs::NOOP, workspace.id, serde_json::json!({})))
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
    }
    let enqueued = started.elapsed();
    println!(
        "enqueued {} jobs in {:.2} s: {:.0} jobs/s",
        args.jobs,
        enqueued.as_secs_f64(),
        args.jobs as f64 / enqueued.as_secs_f64()
    );
    let started = Instant::now();
    let workers = Workers::start(db.clone(), settings.jobs.clone());
    let mut told = Instant::now();
    loop {
        let done = completed(&db).await;
        if done >= args.jobs as u64 {
            break;
        }
        if told.elapsed() > Duration::from_secs(5) {
            told = Instant::now();
            eprintln!("{done} of {} completed", args.jobs);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_secs(600), "the jobs did not finish");
    }
    let ran = started.elapsed();
    println!(
        "ran {} jobs in {:.2} s: {:.0} jobs/s",
        args.jobs,
        ran.as_secs_f64(),
        args.jobs as f64 / ran.as_secs_f64()
    );

    // 2. Timers, with the workers idle.
    let due_from = voxtur_store::now() + chrono::Duration::seconds(2);
    let mut ids = Vec::with_capacity(args.timers);
    for i in 0..args.timers {
        let at = due_from + chrono::Duration::milliseconds((i * 1_000 / args.timers.max(1)) as i64);
        let job = NewJob::new(jobs::NOOP, workspace.id, serde_json::json!({})).at(at);
        ids.push(jobs::enqueue(&db, job).await.unwrap().unwrap());
    }
    let all = (args.jobs + args.timers) as u64;
    while completed(&db).await < all {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let timers = entities::job::Entity::find()
        .filter(entities::job::Column::Id.is_in(ids))
        .all(&db)
        .await
        .unwrap();
    let mut late: Vec<f64> = timers
        .iter()
        .map(|job| (job.finished_at.unwrap() - job.run_at).num_microseconds().unwrap() as f64 / 1_000.0)
        .collect();
    late.sort_by(f64::total_cmp);
    let at = |q: f64| late[((late.len() as f64 * q) as usize).min(late.len() - 1)];
    println!(
        "timers: {} due, finished after their due time: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        late.len(),
        at(0.5),
        at(0.99),
        late[late.len() - 1]
    );
    workers.stop(Duration::from_secs(10)).await;
}

//! Journey benchmarks, over HTTP against the real server (see BENCHMARKS.md).
//!
//! cargo bench --bench journey -- [--backend sqlite|postgres] [--batches N] [--concurrency C]
//!                                [--events N] [--visitors N] [--skip-ingest] [--skip-floor]
//!                                [--skip-timeline]
//!
//! 1. Ingestion: N batches of 500 Segment messages sent by C concurrent clients; reports
//!    events/s. The mix: 78% page views by anonymous visitors (a pool of `--visitors`, default
//!    one per 10 messages, so most visitors come back), 20% tracks by 20,000 known users, 2%
//!    identify calls that stitch a visitor to a user (and merge profiles). Also reports CPU a
//!    batch (this process's and the whole machine's), and the floor: the same batches written
//!    straight to the event store: alone, with tallies, with activity times and tallies
//!    (`store_floor`).
//! 2. Timeline: seeds `--events` events (SQL, skewed over 100,000 contacts), then times
//!    `node(id) { timeline(first: 50) }` for a heavy and a typical contact; reports p50 / p99.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The server runs in this process: the same allocator as the `voxtur` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use voxtur::config::Settings;
use voxtur::server::Application;
use voxtur_core::auth::{ScopeSet, issue_api_key};

struct Args {
    backend: String,
    batches: usize,
    concurrency: usize,
    events: u64,
    visitors: Option<u64>,
    ingest: bool,
    floor: bool,
    timeline: bool,
}

fn args() -> Args {
    let mut args = Args {
        backend: "sqlite".into(),
        batches: 200,
        concurrency: 4,
        events: 10_000_000,
        visitors: None,
        ingest: true,
        floor: true,
        timeline: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backend" => args.backend = it.next().expect("--backend sqlite|postgres"),
            "--batches" => args.batches = it.next().and_then(|v| v.parse().ok()).expect("--batches N"),
            "--concurrency" => args.concurrency = it.next().and_then(|v| v.parse().ok()).expect("--concurrency C"),
            "--events" => args.events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            "--visitors" => args.visitors = it.next().and_then(|v| v.parse().ok()),
            "--skip-ingest" => args.ingest = false,
            "--skip-timeline" => args.timeline = false,
            "--skip-floor" => args.floor = false,
            "--bench" => {}
            other => panic!("unknown argument {other}; see the header of benches/journey.rs"),
        }
    }
    args
}

/// A message id as SDKs make them (analytics.js: a random UUID), the same in every run.
fn message_id(run: &str, n: u64) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (run, n).hash(&mut hasher);
    let high = hasher.finish();
    n.hash(&mut hasher);
    uuid::Builder::from_random_bytes(((high as u128) << 64 | hasher.finish() as u128).to_be_bytes())
        .into_uuid()
        .to_string()
}

/// The floor under ingestion: as many 500-event batches as were measured, with the same mix,
/// written straight to the event store by the functions ingestion stores with (no HTTP, no
/// parsing, no identity resolution), over the profiles ingestion made: the event inserts alone,
/// then with tallies, then with the activity times and tallies every stored event updates.
/// Ingestion cannot run faster than the last.
/// What a floor batch writes besides its events.
#[derive(Clone, Copy, Debug)]
enum Step {
    Insert,
    Tallies,
    Activity,
}

async fn store_floor(db: &sea_orm::DatabaseConnection, workspace_id: uuid::Uuid, batches: usize, concurrency: usize) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let contacts: Vec<uuid::Uuid> = entities::contact::Entity::find()
        .select_only()
        .column(entities::contact::Column::Id)
        .filter(entities::contact::Column::WorkspaceId.eq(workspace_id))
        .into_tuple()
        .all(db)
        .await
        .unwrap();
    let steps = [
        ("event inserts", Step::Insert),
        ("event inserts and tallies", Step::Tallies),
        ("event inserts, activity and tallies", Step::Activity),
    ];
    for (label, step) in steps {
        let now = chrono::Utc::now();
        let mut queue: Vec<Vec<entities::event::Model>> = (0..batches)
            .map(|b| {
                (0..500u64)
                    .map(|i| {
                        let n = ((b as u64) * 500 + i).wrapping_mul(2_654_435_761) % 1_000_000;
                        let page = !n.is_multiple_of(5);
                        let utm = |v: &str| page.then(|| v.to_owned());
                        // Later events later, as received messages are.
                        let at = now + chrono::Duration::microseconds((b * 500 + i as usize) as i64);
                        entities::event::Model {
                            id: uuid::Uuid::now_v7(),
                            workspace_id,
                            contact_id: contacts[n as usize % contacts.len()],
                            event_type: if page { "page_viewed" } else { "order_completed" }.into(),
                            name: page.then(|| "Product".into()),
                            occurred_at: at,
                            received_at: at,
                            source: "segment".into(),
                            channel: None,
                            campaign: utm("spring"),
                            utm_source: utm("google"),
                            utm_medium: utm("cpc"),
                            utm_campaign: utm("spring"),
                            utm_term: None,
                            utm_content: None,
                            properties: json!({ "path": format!("/p/{}", n % 300) }),
                            message_id: Some(message_id(&format!("floor-{step:?}"), b as u64 * 500 + i)),
                        }
                    })
                    .collect()
            })
            .collect();
        queue.reverse();
        let cpu_before = CpuTicks::now();
        let started = Instant::now();
        let pool = db.clone();
        drain(queue, concurrency, move |rows| {
            let db = pool.clone();
            async move {
                let txn = voxtur_store::db::begin_write(&db).await.unwrap();
                let stored = voxtur_core::events::insert_events(&txn, rows).await.unwrap();
                match step {
                    Step::Insert => {}
                    Step::Tallies => voxtur_core::events::tally::add(&txn, &stored).await.unwrap(),
                    Step::Activity => voxtur_core::events::record_activity(&txn, &stored).await.unwrap(),
                }
                txn.commit().await.unwrap();
            }
        })
        .await;
        let elapsed = started.elapsed();
        let cpu = CpuTicks::now().since(&cpu_before);
        println!(
            "floor, {label}: {:.0} events/s, CPU a batch: the whole machine {:.1} ms",
            (batches * 500) as f64 / elapsed.as_secs_f64(),
            cpu.machine_ms / batches as f64
        );
    }
}

/// Sends one `/v1/batch` body with the write key; any status but success fails the bench.
async fn post_batch(client: &reqwest::Client, url: String, write_key: &str, body: Vec<u8>) {
    let response = client
        .post(url)
        .basic_auth(write_key, Some(""))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
}

/// Hands `items` to `concurrency` workers, each taking the next from the end of the list as it
/// finishes its last (reverse a list to run it in order).
async fn drain<T, F, Fut>(items: Vec<T>, concurrency: usize, work: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let queue = std::sync::Arc::new(std::sync::Mutex::new(items));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queue, work) = (queue.clone(), work.clone());
            tokio::spawn(async move {
                loop {
                    let Some(item) = queue.lock().unwrap().pop() else { break };
                    work(item).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// CPU time from `/proc` (Linux): this process's, and the whole machine's busy time (PostgreSQL
/// included), in clock ticks.
struct CpuTicks {
    process: u64,
    busy: u64,
    steal: u64,
    total: u64,
}

struct CpuSpent {
    process_ms: f64,
    machine_ms: f64,
    steal_percent: f64,
}

impl CpuTicks {
    fn now() -> CpuTicks {
        // Whitespace-separated numbers after the first word.
        let numbers = |text: &str| -> Vec<u64> {
            text.split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // After the parenthesised command name and the state, utime and stime are the 11th and
        // 12th fields.
        let fields = numbers(stat.rsplit(')').next().unwrap_or_default());
        let process = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu = numbers(machine.lines().next().unwrap_or_default());
        // user nice system idle iowait irq softirq steal
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        CpuTicks {
            process,
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            total: (0..8).map(at).sum(),
        }
    }

    fn since(&self, before: &CpuTicks) -> CpuSpent {
        // Linux's USER_HZ is 100 on every platform it runs on.
        let ms = |ticks: u64| ticks as f64 * 10.0;
        CpuSpent {
            process_ms: ms(self.process - before.process),
            machine_ms: ms(self.busy - before.busy),
            steal_percent: 100.0 * (self.steal - before.steal) as f64 / (self.total - before.total).max(1) as f64,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.log.filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into());
    voxtur::telemetry::init(&settings.log);
    let _dir = tempfile::tempdir().unwrap();
    match args.backend.as_str() {
        "postgres" => {
            let url = std::env::var("BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let admin = Database::connect(&url).await.unwrap();
            admin
                .execute_unprepared("DROP SCHEMA IF EXISTS voxtur_bench CASCADE; CREATE SCHEMA voxtur_bench")
                .await
                .unwrap();
            settings.database.url = url;
            settings.database.schema = Some("voxtur_bench".into());
            settings.database.max_connections = 16;
        }
        _ => settings.database.url = format!("sqlite://{}?mode=rwc", _dir.path().join("bench.db").display()),
    }
    let (db, _) = voxtur_store::db::connect(&settings.database).await.unwrap();
    voxtur_store::db::migrate(&db).await.unwrap();
    let workspace = voxtur_core::workspaces::create_workspace(&db, "Bench").await.unwrap();
    let api_key = issue_api_key(&db, workspace.id, "bench", &ScopeSet::all())
        .await
        .unwrap()
        .secret;
    let write_key = voxtur_core::events::write_keys::issue(&db, workspace.id, "bench", None)
        .await
        .unwrap()
        .secret;
    let app = Application::build(&settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    println!("backend: {}", args.backend);

    if args.ingest {
        // Prebuilt bodies, so the clock measures the server, not JSON building.
        let mut bodies = Vec::with_capacity(args.batches);
        let mut seq = 0u64;
        let epoch = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .to_utc();
        let visitors = args.visitors.unwrap_or((args.batches as u64 * 50).max(1_000));
        for _ in 0..args.batches {
            let mut batch = Vec::with_capacity(500);
            for _ in 0..500 {
                seq += 1;
                let n = seq.wrapping_mul(2_654_435_761) % 1_000_000;
                let mut message = if n.is_multiple_of(50) {
                    json!({ "type": "identify", "userId": format!("user-{}", n % 20_000), "anonymousId": format!("anon-{}", n % visitors),
                            "traits": { "email": format!("person{}@example.com", n % 20_000), "firstName": "Bench" } })
                } else if n.is_multiple_of(5) {
                    json!({ "type": "track", "userId": format!("user-{}", n % 20_000), "event": "Order Completed", "properties": { "total": n % 500 } })
                } else {
                    json!({ "type": "page", "anonymousId": format!("anon-{}", n % visitors), "name": "Product", "properties": { "path": format!("/p/{}", n % 300) },
                            "context": { "campaign": { "source": "google", "medium": "cpc", "name": "spring" } } })
                };
                message["messageId"] = json!(message_id("ingest", seq));
                // Each message stamped when it happened, a millisecond apart, as SDKs do.
                message["timestamp"] = json!((epoch + chrono::Duration::milliseconds(seq as i64)).to_rfc3339());
                batch.push(message);
            }
            let sent_at = epoch + chrono::Duration::milliseconds(seq as i64 + 1_000);
            bodies.push(serde_json::to_vec(&json!({ "batch": batch, "sentAt": sent_at.to_rfc3339() })).unwrap());
        }
        // Warm-up: a tenth of the batches, then ANALYZE as autovacuum would (this machine's
        // PostgreSQL runs with autovacuum off; without statistics the planner scans).
        let warm_up: Vec<Vec<u8>> = bodies.drain(..args.batches / 10).collect();
        for body in warm_up {
            post_batch(&client, format!("{base}/v1/batch"), &write_key, body).await;
        }
        db.execute_unprepared("ANALYZE").await.unwrap();
        if db.get_database_backend() == DbBackend::Postgres {
            // Where pg_stat_statements is loaded, its figures then cover the measured batches
            // (and the floor, unless `--skip-floor`); elsewhere this fails, and that is fine.
            let _ = db.execute_unprepared("SELECT public.pg_stat_statements_reset()").await;
        }
        let measured = bodies.len();
        let cpu_before = CpuTicks::now();
        let started = Instant::now();
        let (sender, url, key) = (client.clone(), format!("{base}/v1/batch"), write_key.clone());
        drain(bodies, args.concurrency, move |body| {
            let (client, url, key) = (sender.clone(), url.clone(), key.clone());
            async move { post_batch(&client, url, &key, body).await }
        })
        .await;
        let elapsed = started.elapsed();
        let cpu = CpuTicks::now().since(&cpu_before);
        let events = (measured * 500) as f64;
        let stored: Value = gql(&client, &base, &api_key, "{ events { totalCount } contacts { totalCount } anon: contacts(filter: {anonymous: true}) { totalCount } }").await;
        println!(
            "ingest: {} batches x 500 = {} messages after {} warm-up batches, concurrency {}, {:.2} s, {:.0} events/s (stored {}, contacts {}, anonymous {})",
            measured,
            events,
            args.batches / 10,
            args.concurrency,
            elapsed.as_secs_f64(),
            events / elapsed.as_secs_f64(),
            stored["events"]["totalCount"],
            stored["contacts"]["totalCount"],
            stored["anon"]["totalCount"]
        );
        // Throughput moves with whatever else the shared machine runs; CPU a batch much less.
        println!(
            "CPU a batch: this process (server and client) {:.1} ms, the whole machine {:.1} ms (steal {:.0}%)",
            cpu.process_ms / measured as f64,
            cpu.machine_ms / measured as f64,
            cpu.steal_percent
        );
        if args.floor {
            store_floor(&db, workspace.id, measured, args.concurrency).await;
        }
    }

    if args.timeline {
        let started = Instant::now();
        seed_events(&db, workspace.id, args.events).await;
        println!(
            "seeded {} events over 100,000 contacts in {:.1} s",
            args.events,
            started.elapsed().as_secs_f64()
        );
        for (label, position) in [("heavy contact", 1), ("typical contact", 50_000)] {
            let id: Value = gql(&client, &base, &api_key, &format!("{{ contacts(first: 1, filter: {{email: {{eq: \"seed{position}@example.com\"}}}}) {{ nodes {{ id }} }} }}")).await;
            let id = id["contacts"]["nodes"][0]["id"].as_str().unwrap().to_owned();
            let query = format!(
                "{{ node(id: \"{id}\") {{ ... on Contact {{ timeline(first: 50) {{ nodes {{ type occurredAt }} pageInfo {{ endCursor }} }} }} }} }}"
            );
            let mut times = Vec::new();
            let mut rows = 0;
            for i in 0..220 {
                let t = Instant::now();
                let data = gql(&client, &base, &api_key, &query).await;
                if i >= 20 {
                    times.push(t.elapsed());
                }
                rows = data["node"]["timeline"]["nodes"].as_array().map_or(0, Vec::len);
            }
            times.sort();
            let count: Value = gql(
                &client,
                &base,
                &api_key,
                &format!("{{ events(filter: {{contactId: \"{id}\"}}) {{ totalCount }} }}"),
            )
            .await;
            println!(
                "timeline page of {rows} ({label}, {} events): p50 {:.2} ms, p99 {:.2} ms (HTTP round trip, 200 requests)",
                count["events"]["totalCount"],
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                percentile(&times, 0.99).as_secs_f64() * 1e3
            );
        }
    }
}

async fn gql(client: &reqwest::Client, base: &str, key: &str, query: &str) -> Value {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// 100,000 contacts (`seed<n>@example.com`) and `events` events, skewed: contact n gets events
/// in proportion to about 1/n, so a few are very active and most are quiet. Two years of time.
async fn seed_events(db: &sea_orm::DatabaseConnection, workspace_id: uuid::Uuid, events: u64) {
    let backend = db.get_database_backend();
    let ws = sea_orm::Value::from(workspace_id);
    let run = |sql: String, values: Vec<sea_orm::Value>| Statement::from_sql_and_values(backend, sql, values);
    match backend {
        DbBackend::Postgres => {
            db.execute_raw(run(
                "INSERT INTO contact (id, workspace_id, email, lifecycle_stage, custom_fields, created_at, updated_at, anonymous)
                 SELECT gen_random_uuid(), $1, 'seed' || n || '@example.com', 'lead', '{}'::jsonb, now(), now(), false FROM generate_series(1, 100000) n"
                    .into(),
                vec![ws.clone()],
            ))
            .await
            .unwrap();
            db.execute_unprepared("DROP TABLE IF EXISTS seed_contact; CREATE TABLE seed_contact AS SELECT split_part(substring(email from 5), '@', 1)::int AS n, id FROM contact WHERE email LIKE 'seed%'; CREATE UNIQUE INDEX ON seed_contact (n)")
                .await
                .unwrap();
            db.execute_raw(run(
                format!(
                    "INSERT INTO event (id, workspace_id, contact_id, event_type, name, occurred_at, received_at, source, properties)
                     SELECT gen_random_uuid(), $1, c.id, (ARRAY['page_viewed','email_opened','email_clicked','form_submitted','order_completed'])[1 + g.i % 5], 'Seed',
                            now() - (random() * interval '730 days'), now(), 'seed', '{{}}'::jsonb
                     FROM (SELECT i, 1 + floor(100000 * power(random(), 3))::int AS n FROM generate_series(1, {events}) i) g
                     JOIN seed_contact c ON c.n = g.n"
                ),
                vec![ws],
            ))
            .await
            .unwrap();
            db.execute_unprepared("ANALYZE").await.unwrap();
        }
        _ => {
            db.execute_raw(run(
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000)
                 INSERT INTO contact (id, workspace_id, email, lifecycle_stage, custom_fields, created_at, updated_at, anonymous,
                    consent_email, consent_sms, consent_phone, consent_letter, consent_visit, dnc_email, dnc_sms, dnc_phone, dnc_letter, dnc_visit)
                 SELECT randomblob(16), ?, 'seed' || n || '@example.com', 'lead', '{}', strftime('%Y-%m-%dT%H:%M:%f+00:00'), strftime('%Y-%m-%dT%H:%M:%f+00:00'), 0,
                    'unknown', 'unknown', 'unknown', 'unknown', 'unknown', 0, 0, 0, 0, 0 FROM s"
                    .into(),
                vec![ws.clone()],
            ))
            .await
            .unwrap();
            db.execute_unprepared("DROP TABLE IF EXISTS seed_contact; CREATE TABLE seed_contact (n INTEGER PRIMARY KEY, id BLOB); INSERT INTO seed_contact SELECT CAST(substr(email, 5, instr(email, '@') - 5) AS INTEGER), id FROM contact WHERE email LIKE 'seed%'")
                .await
                .unwrap();
            // In chunks, so each transaction stays a reasonable size.
            let chunk = 1_000_000u64;
            let mut done = 0;
            while done < events {
                let n = chunk.min(events - done);
                db.execute_raw(run(
                    format!(
                        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
                         INSERT INTO event (id, workspace_id, contact_id, event_type, name, occurred_at, received_at, source, properties)
                         SELECT randomblob(16), ?, (SELECT id FROM seed_contact WHERE n = 1 + 0 * s.i + CAST(100000 * ((abs(random()) % 1000000) / 1000000.0) * ((abs(random()) % 1000000) / 1000000.0) * ((abs(random()) % 1000000) / 1000000.0) AS INTEGER)),
                                CASE i % 5 WHEN 0 THEN 'page_viewed' WHEN 1 THEN 'email_opened' WHEN 2 THEN 'email_clicked' WHEN 3 THEN 'form_submitted' ELSE 'order_completed' END,
                                'Seed', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || (abs(random()) % 63072000) || ' seconds'),
                                strftime('%Y-%m-%dT%H:%M:%f+00:00'), 'seed', '{{}}'
                         FROM s"
                    ),
                    vec![ws.clone()],
                ))
                .await
                .unwrap();
                done += n;
            }
            db.execute_unprepared("ANALYZE").await.unwrap();
        }
    }
}

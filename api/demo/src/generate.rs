//! `voxtur demo generate`: a large, realistic and deterministic workspace for benchmarks.
//!
//! The same seed gives the same content (names, e-mails, stages, tags, custom fields, event
//! counts, types and times); only ids differ between runs, so one database can hold several
//! generated workspaces. Activity is skewed as in real CRMs: per-contact event counts follow a
//! log-normal law (median about a third of the mean, a few contacts with thousands of events),
//! spread over the two years before `until`. Rows are bulk-loaded ([`super::bulk`]): COPY on
//! PostgreSQL, large multi-row INSERTs on SQLite; events are written in time order, as a live
//! system would have stored them.

use super::bulk::BulkWriter;
use super::rng::Rng;
use super::{COMPANIES, FIRST, LAST, SOURCES, TAGS, ascii_fold, define_fields, failed};
use chrono::{DateTime, Duration, TimeZone, Utc};
use entities::enums::{CompanySize, ConsentStatus, LifecycleStage, Role};
use entities::{company, contact, contact_identity, contact_tag, event, workspace};
use indicatif::ProgressBar;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use std::time::Instant;
use uuid::Uuid;
use voxtur_core::error::{ApiError, ApiResult};
use voxtur_core::workspaces;

/// Spread of per-contact activity (log-normal sigma): 1.5 puts the median near a third of the mean
/// and the busiest of a million contacts near 500 times the median.
const ACTIVITY_SIGMA: f64 = 1.5;
const HISTORY_DAYS: i64 = 730;

pub struct GenerateOptions {
    pub workspace_name: String,
    pub contacts: u64,
    /// Mean events per contact.
    pub events_per_contact: f64,
    pub seed: u64,
    /// End of the generated history (events fall in the two years before it).
    pub until: DateTime<Utc>,
}

#[derive(Debug, serde::Serialize)]
pub struct GenerateSummary {
    pub workspace_id: Uuid,
    pub users: u64,
    pub companies: u64,
    pub contacts: u64,
    pub tags: u64,
    pub events: u64,
    pub busiest_contact_events: u64,
    pub contacts_without_events: u64,
    pub seconds: f64,
}

/// Event types with their share (per mille) and channel.
const KINDS: [(&str, u32, Option<&str>); 17] = [
    ("page_viewed", 400, Some("web")),
    ("product_viewed", 80, Some("web")),
    ("email_sent", 120, Some("email")),
    ("email_delivered", 110, Some("email")),
    ("email_opened", 90, Some("email")),
    ("email_clicked", 40, Some("email")),
    ("link_clicked", 30, None),
    ("form_submitted", 30, Some("web")),
    ("cart_updated", 25, Some("web")),
    ("order_completed", 20, Some("web")),
    ("email_bounced", 8, Some("email")),
    ("email_unsubscribed", 4, Some("email")),
    ("meeting_booked", 8, None),
    ("call_logged", 10, Some("phone")),
    ("sms_sent", 10, Some("sms")),
    ("portal_visited", 10, Some("portal")),
    ("custom", 5, None),
];
const STAGES: [(LifecycleStage, u32); 8] = [
    (LifecycleStage::Subscriber, 30),
    (LifecycleStage::Lead, 35),
    (LifecycleStage::MarketingQualified, 10),
    (LifecycleStage::SalesQualified, 6),
    (LifecycleStage::Opportunity, 5),
    (LifecycleStage::Customer, 12),
    (LifecycleStage::Evangelist, 1),
    (LifecycleStage::Other, 1),
];
const TAG_PERCENT: [u64; 8] = [40, 8, 5, 2, 6, 10, 3, 4];
const WEBMAIL: [&str; 4] = ["mail.example", "post.example", "inbox.example", "web.example"];
const PATHS: [&str; 8] = [
    "/",
    "/pricing",
    "/blog/spring-guide",
    "/products",
    "/about",
    "/contact",
    "/webinar",
    "/docs",
];
const SUBJECTS: [&str; 5] = [
    "Spring offers are here",
    "Your monthly digest",
    "Webinar: getting started",
    "We miss you",
    "Your order has shipped",
];
const EMAIL_CAMPAIGNS: [&str; 4] = ["monthly-digest", "spring-sale", "onboarding", "win-back"];
const CUSTOM_EVENTS: [&str; 3] = ["Trial Started", "Webinar Attended", "Quote Requested"];

/// A generated event before expansion: 16 bytes, so ten million sort in memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Planned {
    at_ms: i64,
    contact: u32,
    kind: u8,
}

/// Generates a workspace. On failure the partial workspace is removed.
pub async fn generate(
    db: &DatabaseConnection,
    options: &GenerateOptions,
    progress: &ProgressBar,
) -> ApiResult<GenerateSummary> {
    if options.contacts > u64::from(u32::MAX) || !(0.0..=10_000.0).contains(&options.events_per_contact) {
        return Err(ApiError::bad_input(
            "--contacts must be at most 4,294,967,295 and --events-per-contact between 0 and 10,000",
        ));
    }
    let started = Instant::now();
    let ws = workspaces::create_workspace(db, &options.workspace_name).await?;
    match fill(db, ws.id, options, progress).await {
        Ok(mut summary) => {
            summary.seconds = started.elapsed().as_secs_f64();
            Ok(summary)
        }
        Err(error) => {
            // Cascades to everything the workspace holds but events and identities, which
            // have no foreign key on PostgreSQL (see migration 6).
            let _ = event::Entity::delete_many()
                .filter(event::Column::WorkspaceId.eq(ws.id))
                .exec(db)
                .await;
            let _ = contact_identity::Entity::delete_many()
                .filter(contact_identity::Column::WorkspaceId.eq(ws.id))
                .exec(db)
                .await;
            let _ = workspace::Entity::delete_by_id(ws.id).exec(db).await;
            Err(error)
        }
    }
}

async fn fill(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    options: &GenerateOptions,
    progress: &ProgressBar,
) -> ApiResult<GenerateSummary> {
    let mut rng = Rng::new(options.seed);
    // Ids only: seeded by the workspace too, so two runs of one seed can share a database.
    let mut ids = Rng::new(options.seed ^ workspace_id.as_u64_pair().0 ^ workspace_id.as_u64_pair().1);
    let until = options.until;
    let start = until - Duration::days(HISTORY_DAYS);

    let users = create_users(db, workspace_id, options.contacts, &mut rng).await?;
    define_fields(db, workspace_id).await?;
    let companies = write_companies(db, workspace_id, options.contacts, &users, start, &mut rng, &mut ids).await?;

    progress.set_length(options.contacts);
    progress.set_message("contacts");
    let mean = options.events_per_contact.max(1e-9);
    let mu = mean.ln() - ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0;
    let span_ms = (until - start).num_milliseconds();
    let mut planned: Vec<Planned> =
        Vec::with_capacity((options.contacts as f64 * options.events_per_contact * 1.05) as usize);
    let mut contact_ids: Vec<Uuid> = Vec::with_capacity(options.contacts as usize);
    let mut tags: Vec<(u32, u8)> = Vec::new();
    let mut busiest = 0u64;
    let mut silent = 0u64;
    let mut writer = BulkWriter::<contact::Entity>::begin(db).await.map_err(internal)?;
    for i in 0..options.contacts {
        // Contacts arrive steadily over the two years, in id order as a live system makes them.
        let created_ms =
            start.timestamp_millis() + ((i as f64 + rng.unit()) / options.contacts as f64 * span_ms as f64) as i64;
        let count = if options.events_per_contact == 0.0 {
            0
        } else {
            (mu + ACTIVITY_SIGMA * rng.normal()).exp().round() as u64
        };
        let mut last_ms = None;
        for _ in 0..count {
            let at_ms = created_ms + (rng.unit() * (until.timestamp_millis() - created_ms) as f64) as i64;
            let kind = rng.weighted_index(KINDS.iter().map(|k| k.1)) as u8;
            planned.push(Planned {
                at_ms,
                contact: i as u32,
                kind,
            });
            last_ms = Some(last_ms.map_or(at_ms, |l: i64| l.max(at_ms)));
        }
        busiest = busiest.max(count);
        silent += u64::from(count == 0);
        for (t, percent) in TAG_PERCENT.iter().enumerate() {
            if rng.chance(*percent) {
                tags.push((i as u32, t as u8));
            }
        }
        let created_at = millis(created_ms);
        let row = contact_row(
            workspace_id,
            i,
            created_at,
            last_ms.map(millis),
            &companies,
            &users,
            &mut rng,
            &mut ids,
        );
        contact_ids.push(row.id);
        writer.push(&row).await.map_err(internal)?;
        if i % 1024 == 1023 {
            progress.set_position(i + 1);
        }
    }
    let contacts = writer.finish().await.map_err(internal)?;
    progress.set_position(contacts);

    let mut writer = BulkWriter::<contact_tag::Entity>::begin(db).await.map_err(internal)?;
    for (contact, tag) in &tags {
        writer
            .push(&contact_tag::Model {
                contact_id: contact_ids[*contact as usize],
                tag: TAGS[*tag as usize].to_owned(),
                workspace_id,
            })
            .await
            .map_err(internal)?;
    }
    let tag_rows = writer.finish().await.map_err(internal)?;

    progress.set_message("sorting events");
    planned.sort_unstable();
    progress.set_message("events");
    progress.set_length(planned.len() as u64);
    progress.set_position(0);
    let mut writer = BulkWriter::<event::Entity>::begin(db).await.map_err(internal)?;
    let mut order = 0u64;
    for (n, plan) in planned.iter().enumerate() {
        let row = event_row(
            workspace_id,
            contact_ids[plan.contact as usize],
            plan,
            &mut order,
            &mut rng,
            &mut ids,
        );
        writer.push(&row).await.map_err(internal)?;
        if n % 4096 == 4095 {
            progress.set_position(n as u64 + 1);
        }
    }
    let events = writer.finish().await.map_err(internal)?;
    progress.set_position(events);
    progress.set_message("tallying events");
    voxtur_core::events::tally::rebuild(db, workspace_id)
        .await
        .map_err(internal)?;
    progress.set_message("analyzing");
    // Fresh statistics, as autovacuum would give them later: the planner needs them at once.
    // The tables filled here only (found on the search path): a bare ANALYZE would read every
    // schema of the database.
    for table in ["app_user", "company", "contact", "contact_tag", "event", "event_tally"] {
        db.execute_unprepared(&format!("ANALYZE {table}"))
            .await
            .map_err(internal)?;
    }

    Ok(GenerateSummary {
        workspace_id,
        users: users.len() as u64,
        companies: companies.len() as u64,
        contacts,
        tags: tag_rows,
        events,
        busiest_contact_events: busiest,
        contacts_without_events: silent,
        seconds: 0.0,
    })
}

fn internal(error: DbErr) -> ApiError {
    ApiError::Internal(format!("generating data: {error}").into())
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A v7 id for a time, with random bits from `ids`: ids sort by creation like the server's.
fn time_id(at: DateTime<Utc>, ids: &mut Rng) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &ids.bytes::<10>()).into_uuid()
}

/// Members: an admin, a marketer, an analyst and sales reps (one more per 100,000 contacts).
async fn create_users(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    contacts: u64,
    rng: &mut Rng,
) -> ApiResult<Vec<Uuid>> {
    let count = (5 + contacts / 100_000).min(50);
    let mut users = Vec::new();
    for i in 0..count {
        let role = match i {
            0 => Role::Admin,
            1 => Role::Marketer,
            2 => Role::Analyst,
            _ => Role::Sales,
        };
        let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
        let email = format!("{}.{i}@team.voxtur.example", ascii_fold(&format!("{first}.{last}")));
        let user = workspaces::create_user(db, workspace_id, &email, &format!("{first} {last}"), role)
            .await
            .map_err(failed)?;
        users.push(user.id);
    }
    Ok(users)
}

/// One company per 20 contacts, each with a unique domain.
async fn write_companies(
    db: &DatabaseConnection,
    workspace_id: Uuid,
    contacts: u64,
    users: &[Uuid],
    start: DateTime<Utc>,
    rng: &mut Rng,
    ids: &mut Rng,
) -> ApiResult<Vec<(Uuid, String)>> {
    let count = (contacts / 20).max(1);
    let sizes = [
        (CompanySize::S1To10, 30),
        (CompanySize::S11To50, 30),
        (CompanySize::S51To200, 20),
        (CompanySize::S201To1000, 12),
        (CompanySize::S1001To5000, 6),
        (CompanySize::S5001Plus, 2),
    ];
    let mut writer = BulkWriter::<company::Entity>::begin(db).await.map_err(internal)?;
    let mut companies = Vec::with_capacity(count as usize);
    for i in 0..count {
        let (name, _, industry) = *rng.pick(&COMPANIES);
        let place = *rng.pick(&LAST);
        let domain = format!("{}-{}.example", ascii_fold(place), i + 1);
        let created_at = start + Duration::seconds(rng.below(86_400 * 30) as i64);
        let row = company::Model {
            id: time_id(created_at, ids),
            workspace_id,
            name: format!("{place} {}", name.split_once(' ').map_or(name, |(_, rest)| rest)),
            domain: Some(domain.clone()),
            industry: Some(industry.to_owned()),
            size: Some(*rng.weighted(&sizes)),
            owner_id: Some(users[3 + rng.below(users.len() as u64 - 3) as usize]),
            group_key: None,
            custom_fields: json!({ "annual_revenue": rng.below(50_000) * 1_000 }),
            created_at,
            updated_at: created_at,
        };
        writer.push(&row).await.map_err(internal)?;
        companies.push((row.id, domain));
    }
    writer.finish().await.map_err(internal)?;
    Ok(companies)
}

#[allow(clippy::too_many_arguments)]
fn contact_row(
    workspace_id: Uuid,
    index: u64,
    created_at: DateTime<Utc>,
    last_activity_at: Option<DateTime<Utc>>,
    companies: &[(Uuid, String)],
    users: &[Uuid],
    rng: &mut Rng,
    ids: &mut Rng,
) -> contact::Model {
    let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
    // A few large companies employ many contacts; a quarter of contacts are consumers.
    let company = (!rng.chance(25)).then(|| &companies[(companies.len() as f64 * rng.unit().powi(2)) as usize]);
    let domain = company.map_or_else(|| *rng.pick(&WEBMAIL), |(_, d)| d.as_str());
    let email = format!("{}.{index}@{domain}", ascii_fold(&format!("{first}.{last}")));
    let owner = (!rng.chance(15)).then(|| users[3 + rng.below(users.len() as u64 - 3) as usize]);
    let consent = |rng: &mut Rng, granted: u64, withdrawn: u64| {
        let roll = rng.below(100);
        if roll < granted {
            ConsentStatus::Granted
        } else if roll < granted + withdrawn {
            ConsentStatus::Withdrawn
        } else {
            ConsentStatus::Unknown
        }
    };
    let utm = rng.chance(70).then(|| *rng.pick(&SOURCES));
    let mut custom = serde_json::Map::new();
    custom.insert(
        "plan".into(),
        json!(*rng.weighted(&[("free", 60), ("pro", 30), ("enterprise", 10)])),
    );
    if rng.chance(40) {
        custom.insert("nps".into(), json!(rng.below(11)));
    }
    let interests: Vec<&str> = ["sofas", "parquet", "fridges", "cameras", "cars"]
        .into_iter()
        .filter(|_| rng.chance(20))
        .collect();
    if !interests.is_empty() {
        custom.insert("interests".into(), json!(interests));
    }
    if rng.chance(50) {
        custom.insert(
            "birthday".into(),
            json!(format!(
                "19{:02}-{:02}-{:02}",
                50 + rng.below(50),
                1 + rng.below(12),
                1 + rng.below(28)
            )),
        );
    }
    contact::Model {
        id: time_id(created_at, ids),
        workspace_id,
        email: Some(email),
        first_name: Some(first.to_owned()),
        last_name: Some(last.to_owned()),
        phone: rng
            .chance(60)
            .then(|| format!("+354 {:03} {:04}", rng.below(1000), rng.below(10_000))),
        company_id: company.map(|(id, _)| *id),
        owner_id: owner,
        lifecycle_stage: *rng.weighted(&STAGES),
        consent_email: consent(rng, 65, 10),
        consent_sms: consent(rng, 15, 3),
        consent_phone: consent(rng, 10, 2),
        consent_letter: consent(rng, 5, 1),
        consent_visit: consent(rng, 3, 1),
        dnc_email: rng.chance(2),
        dnc_sms: rng.chance(1),
        dnc_phone: rng.chance(1),
        dnc_letter: false,
        dnc_visit: false,
        source: Some((*rng.weighted(&[("form", 45), ("import", 30), ("api", 15), ("landing_page", 10)])).to_owned()),
        utm_source: utm.map(|u| u.0.to_owned()),
        utm_medium: utm.map(|u| u.1.to_owned()),
        utm_campaign: utm.map(|u| u.2.to_owned()),
        utm_term: None,
        utm_content: None,
        custom_fields: Value::Object(custom),
        created_at,
        updated_at: last_activity_at.unwrap_or(created_at),
        anonymous: false,
        first_seen_at: Some(created_at),
        last_activity_at,
    }
}

fn event_row(
    workspace_id: Uuid,
    contact_id: Uuid,
    plan: &Planned,
    order: &mut u64,
    rng: &mut Rng,
    ids: &mut Rng,
) -> event::Model {
    let (event_type, _, channel) = KINDS[plan.kind as usize];
    let occurred_at = millis(plan.at_ms);
    let mut name = None;
    let mut campaign = None;
    let mut utm = None;
    let properties = match event_type {
        "page_viewed" => {
            utm = rng.chance(30).then(|| *rng.pick(&SOURCES));
            json!({ "path": rng.pick(&PATHS) })
        }
        "product_viewed" => json!({ "sku": format!("SKU-{:04}", rng.below(2_000)), "price": rng.below(2_000) + 9 }),
        "link_clicked" => json!({ "url": format!("https://shop.example{}", rng.pick(&PATHS)) }),
        "form_submitted" => json!({ "form": "Contact us" }),
        "cart_updated" => json!({ "items": 1 + rng.below(5) }),
        "order_completed" => {
            *order += 1;
            json!({ "orderId": format!("ORD-{:07}", order), "total": rng.below(150_000) as f64 / 100.0 + 10.0, "currency": "EUR" })
        }
        "meeting_booked" => json!({ "with": "sales" }),
        "call_logged" => {
            json!({ "durationSeconds": 30 + rng.below(1_200), "outcome": rng.pick(&["connected", "voicemail", "no_answer"]) })
        }
        "sms_sent" => json!({ "text": "Your code is ready" }),
        "portal_visited" => json!({ "section": rng.pick(&["invoices", "orders", "profile"]) }),
        "custom" => {
            name = Some((*rng.pick(&CUSTOM_EVENTS)).to_owned());
            json!({})
        }
        email => {
            let email_campaign = *rng.pick(&EMAIL_CAMPAIGNS);
            campaign = Some(email_campaign.to_owned());
            if email == "email_clicked" {
                utm = Some(("newsletter", "email", email_campaign));
            }
            json!({ "subject": rng.pick(&SUBJECTS) })
        }
    };
    event::Model {
        id: time_id(occurred_at, ids),
        workspace_id,
        contact_id,
        event_type: event_type.to_owned(),
        name,
        occurred_at,
        received_at: occurred_at + Duration::milliseconds(50 + rng.below(2_000) as i64),
        source: "import".to_owned(),
        channel: channel.map(str::to_owned),
        campaign: campaign.or_else(|| utm.map(|u| u.2.to_owned())),
        utm_source: utm.map(|u| u.0.to_owned()),
        utm_medium: utm.map(|u| u.1.to_owned()),
        utm_campaign: utm.map(|u| u.2.to_owned()),
        utm_term: None,
        utm_content: None,
        properties,
        message_id: None,
    }
}

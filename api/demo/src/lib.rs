//! Demo data: a workspace with realistic companies, members, custom fields and contacts, made
//! through the same services the API uses (so it is validated like any other input), and the
//! large generated workspaces of `voxtur demo generate` ([`generate`]) for benchmarks.

use entities::enums::{CompanySize, ConsentStatus, CustomFieldType, LifecycleStage, ObjectType, Role};
use entities::workspace;
use sea_orm::DatabaseConnection;
use uuid::Uuid;
use voxtur_core::Patch;
use voxtur_core::companies::{self, CompanyChanges};
use voxtur_core::contacts::{self, ChannelKind, ContactChanges};
use voxtur_core::custom_fields::{self, DefineInput, FieldSql};
use voxtur_core::error::{ApiError, ApiResult};
use voxtur_core::errors::MutationError;
use voxtur_core::ids::NodeKind;
use voxtur_core::workspaces;

mod bulk;
pub mod generate;
mod rng;

use rng::Rng;

const FIRST: [&str; 24] = [
    "Anna", "Jón", "Guðrún", "Marko", "Jelena", "Luka", "Maja", "Nina", "Stefan", "Sara", "Ivan", "Eva", "Helga",
    "Ólafur", "Katarina", "Milan", "Tina", "Andrej", "Sigrún", "Petra", "Nikola", "Ana", "Einar", "Vesna",
];
const LAST: [&str; 24] = [
    "Jónsdóttir",
    "Sigurðsson",
    "Petrović",
    "Novak",
    "Horvat",
    "Kovačič",
    "Jovanović",
    "Krajnc",
    "Magnússon",
    "Ilić",
    "Zupan",
    "Stefánsdóttir",
    "Nikolić",
    "Vidmar",
    "Gunnarsson",
    "Marković",
    "Potočnik",
    "Einarsdóttir",
    "Đorđević",
    "Kos",
    "Pálsson",
    "Golob",
    "Lukić",
    "Björnsson",
];
const COMPANIES: [(&str, &str, &str); 12] = [
    ("Norðurljós Travel", "nordurljos.is", "Travel"),
    ("Jadran Furniture", "jadranfurniture.rs", "Retail"),
    ("Alpina Parquet", "alpinaparquet.si", "Manufacturing"),
    ("Reykjavík Outdoor", "rvkoutdoor.is", "Retail"),
    ("Dunav Logistics", "dunavlogistics.rs", "Logistics"),
    ("Bled Software", "bledsoftware.si", "Software"),
    ("Geysir Energy", "geysirenergy.is", "Energy"),
    ("Sava Appliances", "savaappliances.si", "Manufacturing"),
    ("Beogradska Banka Digital", "bbdigital.rs", "Finance"),
    ("Hekla Cameras", "heklacameras.is", "Retail"),
    ("Triglav Motors", "triglavmotors.si", "Automotive"),
    ("Novi Sad Analytics", "nsanalytics.rs", "Software"),
];
const TAGS: [&str; 8] = [
    "newsletter",
    "webinar-2026",
    "trade-fair",
    "vip",
    "cart-abandoner",
    "whitepaper",
    "partner",
    "churn-risk",
];
const SOURCES: [(&str, &str, &str); 5] = [
    ("google", "organic", "seo"),
    ("facebook", "paid_social", "spring-sale"),
    ("newsletter", "email", "monthly-digest"),
    ("linkedin", "paid_social", "b2b-leads"),
    ("google", "cpc", "brand-search"),
];

fn failed(error: MutationError) -> ApiError {
    match error {
        MutationError::Api(e) => e,
        MutationError::Invalid(errors) => ApiError::Internal(format!("demo data was refused: {errors:?}").into()),
    }
}

/// Creates a demo workspace with `contacts` contacts and returns it.
pub async fn seed(db: &DatabaseConnection, name: &str, contact_count: usize) -> ApiResult<workspace::Model> {
    let ws = workspaces::create_workspace(db, name).await?;
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);

    let mut owners = Vec::new();
    for (email, name, role) in [
        ("helga@demo.voxtur.dev", "Helga Stefánsdóttir", Role::Admin),
        ("marko@demo.voxtur.dev", "Marko Petrović", Role::Marketer),
        ("tina@demo.voxtur.dev", "Tina Kovačič", Role::Sales),
        ("einar@demo.voxtur.dev", "Einar Pálsson", Role::Sales),
        ("ana@demo.voxtur.dev", "Ana Ilić", Role::Analyst),
    ] {
        let user = workspaces::create_user(db, ws.id, email, name, role)
            .await
            .map_err(failed)?;
        owners.push(NodeKind::User.encode(user.id));
    }

    define_fields(db, ws.id).await?;

    let sizes = [
        CompanySize::S1To10,
        CompanySize::S11To50,
        CompanySize::S51To200,
        CompanySize::S201To1000,
        CompanySize::S1001To5000,
    ];
    let mut company_ids = Vec::new();
    for (name, domain, industry) in COMPANIES {
        let changes = CompanyChanges {
            name: Some(name.into()),
            domain: Patch::Set(domain.into()),
            industry: Patch::Set(industry.into()),
            size: Patch::Set(*rng.pick(&sizes)),
            owner_id: Patch::Set(rng.pick(&owners[1..4]).clone()),
            custom_fields: Some(serde_json::json!({ "annual_revenue": (rng.next_u64() % 50_000) * 1_000 })),
        };
        let company = companies::create(db, ws.id, changes).await.map_err(failed)?;
        company_ids.push((NodeKind::Company.encode(company.id), domain));
    }

    let stages = [
        LifecycleStage::Subscriber,
        LifecycleStage::Subscriber,
        LifecycleStage::Lead,
        LifecycleStage::Lead,
        LifecycleStage::Lead,
        LifecycleStage::MarketingQualified,
        LifecycleStage::SalesQualified,
        LifecycleStage::Opportunity,
        LifecycleStage::Customer,
        LifecycleStage::Evangelist,
    ];
    let mut batch = Vec::new();
    for i in 0..contact_count {
        let first = *rng.pick(&FIRST);
        let last = *rng.pick(&LAST);
        // Most demo contacts work somewhere; a quarter are consumers with a webmail address.
        let company = (!rng.chance(25)).then(|| rng.pick(&company_ids).clone());
        let domain = company.as_ref().map_or("example.com", |(_, d)| d);
        let local = ascii_fold(&format!("{first}.{last}"));
        let (utm_source, utm_medium, utm_campaign) = *rng.pick(&SOURCES);
        let mut tags: Vec<String> = Vec::new();
        for tag in TAGS {
            if rng.chance(15) {
                tags.push(tag.to_owned());
            }
        }
        let email_consent = if rng.chance(70) {
            ConsentStatus::Granted
        } else {
            ConsentStatus::Unknown
        };
        batch.push(ContactChanges {
            email: Patch::Set(format!("{local}.{i}@{domain}")),
            first_name: Patch::Set(first.into()),
            last_name: Patch::Set(last.into()),
            phone: Patch::Set(format!("+354 {:03} {:04}", rng.next_u64() % 1000, rng.next_u64() % 10_000)),
            company_id: company.map_or(Patch::Keep, |(id, _)| Patch::Set(id)),
            owner_id: Patch::Set(rng.pick(&owners[1..4]).clone()),
            lifecycle_stage: Some(*rng.pick(&stages)),
            tags: Some(tags),
            consent: vec![(ChannelKind::Email, Some(email_consent), Some(rng.chance(3)))],
            source: Patch::Set(if rng.chance(60) { "form" } else { "import" }.into()),
            utm_source: Patch::Set(utm_source.into()),
            utm_medium: Patch::Set(utm_medium.into()),
            utm_campaign: Patch::Set(utm_campaign.into()),
            custom_fields: Some(serde_json::json!({
                "plan": *rng.pick(&["free", "pro", "enterprise"]),
                "nps": rng.next_u64() % 11,
                "interests": [*rng.pick(&["sofas", "parquet", "fridges", "cameras", "cars"])],
                "birthday": format!("19{:02}-{:02}-{:02}", 60 + rng.next_u64() % 40, 1 + rng.next_u64() % 12, 1 + rng.next_u64() % 28),
            })),
            ..Default::default()
        });
        if batch.len() == contacts::MAX_UPSERT {
            contacts::upsert(db, ws.id, std::mem::take(&mut batch))
                .await
                .map_err(failed)?;
        }
    }
    if !batch.is_empty() {
        contacts::upsert(db, ws.id, batch).await.map_err(failed)?;
    }
    Ok(ws)
}

/// The custom fields every demo and generated workspace has.
async fn define_fields(db: &DatabaseConnection, workspace_id: Uuid) -> ApiResult<()> {
    for (object_type, key, label, field_type, options) in [
        (
            ObjectType::Contact,
            "plan",
            "Plan",
            CustomFieldType::SingleSelect,
            vec!["free", "pro", "enterprise"],
        ),
        (ObjectType::Contact, "nps", "NPS score", CustomFieldType::Number, vec![]),
        (
            ObjectType::Contact,
            "interests",
            "Interests",
            CustomFieldType::MultiSelect,
            vec!["sofas", "parquet", "fridges", "cameras", "cars"],
        ),
        (
            ObjectType::Contact,
            "birthday",
            "Birthday",
            CustomFieldType::Date,
            vec![],
        ),
        (
            ObjectType::Company,
            "annual_revenue",
            "Annual revenue (EUR)",
            CustomFieldType::Number,
            vec![],
        ),
    ] {
        let table = if object_type == ObjectType::Contact {
            "contact"
        } else {
            "company"
        };
        let input = DefineInput {
            object_type,
            key: key.into(),
            label: label.into(),
            field_type,
            options: Some(options.into_iter().map(str::to_owned).collect()),
        };
        custom_fields::define(
            db,
            workspace_id,
            input,
            FieldSql::custom_fields(db.get_database_backend(), table),
        )
        .await
        .map_err(failed)?;
    }

    Ok(())
}

/// Lower-case ASCII for an e-mail local part: "Guðrún" -> "gudrun".
fn ascii_fold(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            'í' => 'i',
            'ó' | 'ö' => 'o',
            'ú' => 'u',
            'ý' => 'y',
            'ð' | 'đ' => 'd',
            'þ' => 't',
            'č' | 'ć' => 'c',
            'š' => 's',
            'ž' => 'z',
            'æ' => 'a',
            other => other,
        })
        .collect()
}

//! The GraphQL face of contacts: the `Contact` type, the `contacts` list, and mutations.

use crate::companies::Company;
use crate::convert::IntoDomain;
use crate::custom_fields::CustomFieldOrder;
use crate::filters::ContactFilter;
use crate::guards::ScopeGuard;
use crate::projection::{Projectable, Projection, cell, child_fields, connection_nodes, fields};
use crate::relay::NodeId;
use crate::relay::{NodeKind, connection, connection_cost};
use crate::user_error::{UserError, into_payload};
use crate::workspaces::User;
use crate::{OrderDirection, request};
use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, OneofObject, SimpleObject};
use chrono::{DateTime, Utc};
use entities::enums::ObjectType;
use entities::{app_user, company, contact};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryResult, QuerySelect};
use std::sync::Arc;
use uuid::Uuid;
use voxtur_core::auth::Scope;
use voxtur_core::contacts::filter::FilterContext;
use voxtur_core::contacts::{ChannelKind, ContactChanges, UpsertOutcome};
use voxtur_core::custom_fields::{Definitions, FieldSql};
use voxtur_core::error::ApiResult;
use voxtur_core::listing::{Direction, PageArgs, SortSpec, Total, text_key, timestamp_key};

/// Where a contact is in the buying journey.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::LifecycleStage")]
pub enum LifecycleStage {
    /// Signed up for content; not yet a lead.
    Subscriber,
    /// Showed interest beyond subscribing.
    Lead,
    /// Marketing-qualified lead (MQL): engaged enough for marketing to hand over.
    MarketingQualified,
    /// Sales-qualified lead (SQL): accepted by sales as worth pursuing.
    SalesQualified,
    /// Has an open deal.
    Opportunity,
    /// Has bought.
    Customer,
    /// A customer who promotes the company.
    Evangelist,
    /// None of the above.
    Other,
}

/// Whether a contact agreed to be reached on a channel.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "entities::enums::ConsentStatus")]
pub enum ConsentStatus {
    /// Never asked or never answered.
    Unknown,
    /// Agreed.
    Granted,
    /// Agreed once, then withdrew.
    Withdrawn,
}

/// A direct channel to a contact.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "voxtur_core::contacts::Channel")]
pub enum Channel {
    /// Email.
    Email,
    /// Text message.
    Sms,
    /// Phone call.
    Phone,
    /// Postal letter.
    Letter,
    /// In-person visit.
    Visit,
    /// The customer portal ("my pages").
    Portal,
    /// The web site.
    Web,
    /// A mobile app.
    App,
}

impl Channel {
    /// The stored name (`email`).
    pub fn as_str(self) -> &'static str {
        voxtur_core::contacts::Channel::from(self).as_str()
    }

    pub fn parse(text: &str) -> Option<Channel> {
        voxtur_core::contacts::Channel::parse(text).map(Channel::from)
    }
}

/// A person marketing and sales are in touch with.
pub struct Contact(pub contact::Model, pub Related);

impl From<contact::Model> for Contact {
    fn from(model: contact::Model) -> Self {
        Contact(model, Related::default())
    }
}

/// A contact's to-one relations when they were read with its page ([`ContactRow`]);
/// `None` when not fetched, so the resolver goes through its DataLoader.
#[derive(Default, Clone)]
pub struct Related {
    company: Option<Option<Arc<company::Model>>>,
    owner: Option<Option<Arc<app_user::Model>>>,
}

/// Consent and do-not-contact state of one channel.
#[derive(SimpleObject)]
pub struct ChannelConsent {
    /// Consent status.
    pub status: ConsentStatus,
    /// Flagged never to be contacted on this channel, whatever the consent.
    pub do_not_contact: bool,
    /// Consent granted and not flagged: messages may be sent.
    pub contactable: bool,
}

impl ChannelConsent {
    fn new(status: entities::enums::ConsentStatus, do_not_contact: bool) -> Self {
        ChannelConsent {
            status: status.into(),
            do_not_contact,
            contactable: status == entities::enums::ConsentStatus::Granted && !do_not_contact,
        }
    }
}

/// Consent per direct channel.
#[derive(SimpleObject)]
pub struct ContactConsent {
    /// Email.
    pub email: ChannelConsent,
    /// Text message.
    pub sms: ChannelConsent,
    /// Phone call.
    pub phone: ChannelConsent,
    /// Postal letter.
    pub letter: ChannelConsent,
    /// In-person visit.
    pub visit: ChannelConsent,
}

/// UTM parameters: a contact's first touch, or an event's attribution.
#[derive(SimpleObject)]
pub struct Utm {
    /// utm_source.
    pub source: Option<String>,
    /// utm_medium.
    pub medium: Option<String>,
    /// utm_campaign.
    pub campaign: Option<String>,
    /// utm_term.
    pub term: Option<String>,
    /// utm_content.
    pub content: Option<String>,
}

impl Utm {
    /// From the five UTM columns a contact or an event row holds.
    pub fn of(
        source: &Option<String>,
        medium: &Option<String>,
        campaign: &Option<String>,
        term: &Option<String>,
        content: &Option<String>,
    ) -> Utm {
        Utm {
            source: source.clone(),
            medium: medium.clone(),
            campaign: campaign.clone(),
            term: term.clone(),
            content: content.clone(),
        }
    }
}

/// What each field of [`Contact`] reads (see [`Projectable`]).
impl Projectable for contact::Entity {
    const ID: contact::Column = contact::Column::Id;
    const WORKSPACE: contact::Column = contact::Column::WorkspaceId;

    fn columns_of(field: &str) -> Option<&'static [contact::Column]> {
        use contact::Column as C;
        Some(match field {
            "id" | "__typename" | "tags" | "segments" | "timeline" => &[],
            "email" => &[C::Email],
            "firstName" => &[C::FirstName],
            "lastName" => &[C::LastName],
            "displayName" => &[C::FirstName, C::LastName, C::Email],
            "phone" => &[C::Phone],
            "lifecycleStage" => &[C::LifecycleStage],
            "company" => &[C::CompanyId],
            "owner" => &[C::OwnerId],
            "consent" => &[
                C::ConsentEmail,
                C::ConsentSms,
                C::ConsentPhone,
                C::ConsentLetter,
                C::ConsentVisit,
                C::DncEmail,
                C::DncSms,
                C::DncPhone,
                C::DncLetter,
                C::DncVisit,
            ],
            "source" => &[C::Source],
            "utm" => &[C::UtmSource, C::UtmMedium, C::UtmCampaign, C::UtmTerm, C::UtmContent],
            "customFields" => &[C::CustomFields],
            "createdAt" => &[C::CreatedAt],
            "updatedAt" => &[C::UpdatedAt],
            "anonymous" => &[C::Anonymous],
            "firstSeenAt" => &[C::FirstSeenAt],
            "lastActivityAt" => &[C::LastActivityAt],
            _ => return None,
        })
    }

    fn decode(row: &QueryResult, projection: &Projection<Self>) -> Result<contact::Model, DbErr> {
        use contact::Column as C;
        // Every column not projected keeps a new contact's value; the id always is.
        let mut m = voxtur_core::contacts::blank_as(projection.workspace(), Uuid::nil(), chrono::DateTime::UNIX_EPOCH);
        for (i, column) in projection.positions() {
            match column {
                C::Id => m.id = cell(row, i)?,
                C::WorkspaceId => m.workspace_id = cell(row, i)?,
                C::Email => m.email = cell(row, i)?,
                C::FirstName => m.first_name = cell(row, i)?,
                C::LastName => m.last_name = cell(row, i)?,
                C::Phone => m.phone = cell(row, i)?,
                C::CompanyId => m.company_id = cell(row, i)?,
                C::OwnerId => m.owner_id = cell(row, i)?,
                C::LifecycleStage => m.lifecycle_stage = row.try_get_by_index(i)?,
                C::ConsentEmail => m.consent_email = row.try_get_by_index(i)?,
                C::ConsentSms => m.consent_sms = row.try_get_by_index(i)?,
                C::ConsentPhone => m.consent_phone = row.try_get_by_index(i)?,
                C::ConsentLetter => m.consent_letter = row.try_get_by_index(i)?,
                C::ConsentVisit => m.consent_visit = row.try_get_by_index(i)?,
                C::DncEmail => m.dnc_email = cell(row, i)?,
                C::DncSms => m.dnc_sms = cell(row, i)?,
                C::DncPhone => m.dnc_phone = cell(row, i)?,
                C::DncLetter => m.dnc_letter = cell(row, i)?,
                C::DncVisit => m.dnc_visit = cell(row, i)?,
                C::Source => m.source = cell(row, i)?,
                C::UtmSource => m.utm_source = cell(row, i)?,
                C::UtmMedium => m.utm_medium = cell(row, i)?,
                C::UtmCampaign => m.utm_campaign = cell(row, i)?,
                C::UtmTerm => m.utm_term = cell(row, i)?,
                C::UtmContent => m.utm_content = cell(row, i)?,
                C::CustomFields => m.custom_fields = cell(row, i)?,
                C::CreatedAt => m.created_at = cell(row, i)?,
                C::UpdatedAt => m.updated_at = cell(row, i)?,
                C::Anonymous => m.anonymous = cell(row, i)?,
                C::FirstSeenAt => m.first_seen_at = cell(row, i)?,
                C::LastActivityAt => m.last_activity_at = cell(row, i)?,
            }
        }
        Ok(m)
    }
}

/// A person marketing and sales are in touch with.
#[Object(serial)]
impl Contact {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::Contact.id(self.0.id)
    }
    /// Email address, lower-cased; unique in the workspace.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// First name.
    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }
    /// Last name.
    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }
    /// Full name, or the email address when no name is known.
    async fn display_name(&self) -> Option<String> {
        let name = [self.0.first_name.as_deref(), self.0.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if name.is_empty() {
            self.0.email.clone()
        } else {
            Some(name)
        }
    }
    /// Phone number.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// Lifecycle stage.
    async fn lifecycle_stage(&self) -> LifecycleStage {
        self.0.lifecycle_stage.into()
    }
    /// The company the contact works for.
    async fn company(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Company>> {
        if let Some(company) = &self.1.company {
            return Ok(company.as_deref().cloned().map(Company));
        }
        let Some(id) = self.0.company_id else { return Ok(None) };
        let loaders = request(ctx)?.loaders;
        Ok(loaders
            .companies
            .load_one(id)
            .await
            .map_err(crate::loaders::load_failed)?
            .map(Company))
    }
    /// The user responsible for the contact.
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        if let Some(owner) = &self.1.owner {
            return Ok(owner.as_deref().cloned().map(User));
        }
        let Some(id) = self.0.owner_id else { return Ok(None) };
        let loaders = request(ctx)?.loaders;
        Ok(loaders
            .users
            .load_one(id)
            .await
            .map_err(crate::loaders::load_failed)?
            .map(User))
    }
    /// Tags, alphabetically.
    async fn tags(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let loaders = request(ctx)?.loaders;
        Ok(loaders
            .tags
            .load_one(self.0.id)
            .await
            .map_err(crate::loaders::load_failed)?
            .unwrap_or_default())
    }
    /// Segments and marketing lists the contact is in, by name.
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn segments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<crate::segments::Segment>> {
        let loaders = request(ctx)?.loaders;
        Ok(loaders
            .contact_segments
            .load_one(self.0.id)
            .await
            .map_err(crate::loaders::load_failed)?
            .unwrap_or_default()
            .into_iter()
            .map(crate::segments::Segment)
            .collect())
    }
    /// Consent per channel.
    async fn consent(&self) -> ContactConsent {
        let m = &self.0;
        ContactConsent {
            email: ChannelConsent::new(m.consent_email, m.dnc_email),
            sms: ChannelConsent::new(m.consent_sms, m.dnc_sms),
            phone: ChannelConsent::new(m.consent_phone, m.dnc_phone),
            letter: ChannelConsent::new(m.consent_letter, m.dnc_letter),
            visit: ChannelConsent::new(m.consent_visit, m.dnc_visit),
        }
    }
    /// Where the contact came from (e.g. `form`, `import`, `api`).
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// UTM parameters of the first touch.
    async fn utm(&self) -> Utm {
        let m = &self.0;
        Utm::of(
            &m.utm_source,
            &m.utm_medium,
            &m.utm_campaign,
            &m.utm_term,
            &m.utm_content,
        )
    }
    /// Custom field values, as an object of field key to value.
    async fn custom_fields(&self) -> Json<serde_json::Value> {
        Json(self.0.custom_fields.clone())
    }
    /// When the contact was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// True for an anonymous visitor's profile, not yet identified by email or user id.
    async fn anonymous(&self) -> bool {
        self.0.anonymous
    }
    /// Time of the contact's earliest recorded event.
    async fn first_seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.first_seen_at
    }
    /// Time of the contact's latest recorded event.
    async fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_activity_at
    }
    /// Everything the contact did, newest first. Inside a list of contacts the first pages of
    /// all timelines load in one query.
    #[graphql(complexity = "connection_cost(first, None, child_complexity)")]
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Only events matching this.")] filter: Option<crate::filters::TimelineFilter>,
    ) -> async_graphql::Result<crate::events::EventConnection> {
        // Boxed: see "Resolver futures" in docs/ARCHITECTURE.md.
        Box::pin(crate::events::timeline(ctx, &self.0, first, after, filter)).await
    }
    /// When the contact last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

connection!(ContactConnection, ContactEdge, Contact, contact::Model);

/// One sort key for contacts. Give a list for multi-key order; `id` breaks the last ties.
#[derive(OneofObject, Clone, Debug)]
pub enum ContactOrderBy {
    /// Creation time.
    CreatedAt(OrderDirection),
    /// Last change time.
    UpdatedAt(OrderDirection),
    /// Email address (contacts without one sort last).
    Email(OrderDirection),
    /// First name (missing names sort last).
    FirstName(OrderDirection),
    /// Last name (missing names sort last).
    LastName(OrderDirection),
    /// Time of the latest event (contacts without events sort last).
    LastActivityAt(OrderDirection),
    /// A custom field's value (missing values sort last).
    CustomField(CustomFieldOrder),
}

impl ContactOrderBy {
    /// The column the key reads (its cursor holds the value).
    fn column(&self) -> contact::Column {
        use contact::Column as C;
        match self {
            ContactOrderBy::CreatedAt(_) => C::CreatedAt,
            ContactOrderBy::UpdatedAt(_) => C::UpdatedAt,
            ContactOrderBy::Email(_) => C::Email,
            ContactOrderBy::FirstName(_) => C::FirstName,
            ContactOrderBy::LastName(_) => C::LastName,
            ContactOrderBy::LastActivityAt(_) => C::LastActivityAt,
            ContactOrderBy::CustomField(_) => C::CustomFields,
        }
    }
}

const MAX_ORDER_KEYS: usize = 5;

pub(crate) fn sort_spec(
    order: &[ContactOrderBy],
    fields: &Definitions,
    sql: FieldSql,
    list: &'static str,
) -> ApiResult<SortSpec<contact::Model>> {
    use contact::Column as C;
    if order.len() > MAX_ORDER_KEYS {
        return Err(voxtur_core::error::ApiError::bad_input(format!(
            "orderBy takes at most {MAX_ORDER_KEYS} keys"
        )));
    }
    let default = [ContactOrderBy::CreatedAt(OrderDirection::Desc)];
    let order = if order.is_empty() { &default[..] } else { order };
    let mut keys = Vec::with_capacity(order.len());
    for item in order {
        keys.push(match item {
            ContactOrderBy::CreatedAt(d) => {
                timestamp_key::<contact::Model>("createdAt", C::CreatedAt.into_expr(), (*d).into(), |m| &m.created_at)
            }
            ContactOrderBy::UpdatedAt(d) => {
                timestamp_key::<contact::Model>("updatedAt", C::UpdatedAt.into_expr(), (*d).into(), |m| &m.updated_at)
            }
            ContactOrderBy::Email(d) => {
                text_key::<contact::Model>("email", C::Email.into_expr(), (*d).into(), true, |m| m.email.as_deref())
            }
            ContactOrderBy::FirstName(d) => {
                text_key::<contact::Model>("firstName", C::FirstName.into_expr(), (*d).into(), true, |m| {
                    m.first_name.as_deref()
                })
            }
            ContactOrderBy::LastName(d) => {
                text_key::<contact::Model>("lastName", C::LastName.into_expr(), (*d).into(), true, |m| {
                    m.last_name.as_deref()
                })
            }
            ContactOrderBy::LastActivityAt(d) => voxtur_core::listing::key(
                "lastActivityAt",
                C::LastActivityAt.into_expr(),
                (*d).into(),
                voxtur_core::listing::ValueKind::Timestamp,
                true,
                |m: &contact::Model| {
                    m.last_activity_at
                        .as_ref()
                        .map_or(serde_json::Value::Null, voxtur_core::listing::timestamp_json)
                },
            ),
            ContactOrderBy::CustomField(o) => {
                voxtur_core::custom_fields::sort_key(fields, sql, &o.key, o.direction.into(), |m: &contact::Model| {
                    &m.custom_fields
                })?
            }
        });
    }
    Ok(SortSpec {
        list,
        keys,
        id_expr: C::Id.into_expr(),
        id_of: |m| m.id,
    })
}

/// Runs a filtered, sorted, paged contact list for one workspace.
pub(crate) async fn list_contacts(
    ctx: &Context<'_>,
    db: &DatabaseConnection,
    workspace_id: Uuid,
    filter: Option<ContactFilter>,
    order_by: Vec<ContactOrderBy>,
    page: PageArgs,
) -> ApiResult<ContactConnection> {
    let filter: Option<voxtur_core::contacts::filter::ContactFilter> = filter.into_domain();
    let backend = db.get_database_backend();
    let mut filter_ctx = FilterContext::load(db, workspace_id, filter.as_ref()).await?;
    if order_by.iter().any(|o| matches!(o, ContactOrderBy::CustomField(_)))
        && !filter.as_ref().is_some_and(|f| f.uses_custom_fields())
    {
        filter_ctx.contact_fields = Definitions::load(db, workspace_id, ObjectType::Contact).await?;
    }
    let spec = sort_spec(
        &order_by,
        &filter_ctx.contact_fields,
        FieldSql::custom_fields(backend, "contact"),
        "contacts",
    )?;
    let mut select = contact::Entity::find().filter(contact::Column::WorkspaceId.eq(workspace_id));
    if filter.as_ref().is_none_or(|f| f.anonymous.is_none()) {
        select = select.filter(contact::Column::Anonymous.eq(false));
    }
    if let Some(filter) = &filter {
        select = select.filter(filter.condition(&filter_ctx)?);
    }
    let look_ahead = ctx.look_ahead();
    let rows_wanted = ["nodes", "edges", "pageInfo"]
        .iter()
        .any(|f| look_ahead.field(f).exists());
    let total = match (look_ahead.field("totalCount").exists(), &filter) {
        (false, _) => Total::Skip,
        (true, _) if !rows_wanted => Total::Alone,
        (true, Some(filter)) if filter.is_costly() => Total::InPage,
        (true, _) => Total::Count,
    };
    // Only the columns the query asks for, the company and owner joined in when asked for
    // (through the DataLoaders they cost two more statements and a load, a channel and a task
    // per contact: about half of a 50-contact page's CPU; docs/perf-history.md, issue 5).
    let nodes = connection_nodes(&ctx.look_ahead());
    // The sort keys' columns, for the cursors (newest first when none is given).
    let mut sort_columns: Vec<contact::Column> = order_by.iter().map(ContactOrderBy::column).collect();
    sort_columns.push(contact::Column::CreatedAt);
    let contacts = Projection::<contact::Entity>::of(fields(&nodes), &sort_columns, workspace_id);
    let companies = child_fields(&nodes, "company")
        .map(|f| Projection::<company::Entity>::of(f, &[], workspace_id).at(contacts.end()));
    let owner_offset = companies.as_ref().map_or(contacts.end(), Projection::end);
    let owners = child_fields(&nodes, "owner")
        .map(|f| Projection::<app_user::Entity>::of(f, &[], workspace_id).at(owner_offset));
    let project = |select: sea_orm::Select<contact::Entity>| {
        let mut select = contacts.select(select.select_only(), contact::Entity);
        if let Some(companies) = &companies {
            select = join_related(select, companies, COMPANY, contact::Column::CompanyId);
        }
        if let Some(owners) = &owners {
            select = join_related(select, owners, OWNER, contact::Column::OwnerId);
        }
        select
    };
    // A relation not joined stays `None`: its resolver goes through the DataLoader.
    fn joined<E: Projectable>(
        projection: &Option<Projection<E>>,
        row: &QueryResult,
    ) -> Result<Option<Option<Arc<E::Model>>>, DbErr> {
        let Some(projection) = projection else { return Ok(None) };
        Ok(Some(projection.decode_joined(row)?.map(Arc::new)))
    }
    let decode = |row: &QueryResult| -> Result<ContactRow, DbErr> {
        Ok(ContactRow {
            contact: contacts.decode(row)?,
            related: Related {
                company: joined(&companies, row)?,
                owner: joined(&owners, row)?,
            },
        })
    };
    let every_cursor = ctx.look_ahead().field("edges").field("cursor").exists();
    let projected = voxtur_core::listing::Projected {
        project,
        decode,
        every_cursor,
    };
    let page = spec.fetch_projected(db, select, &page, total, projected).await?;
    let related: Vec<Related> = page.rows.iter().map(|(_, row)| row.related.clone()).collect();
    let mut connection: ContactConnection = voxtur_core::listing::Page {
        rows: page
            .rows
            .into_iter()
            .map(|(cursor, row)| (cursor, row.contact))
            .collect(),
        has_next_page: page.has_next_page,
        has_previous_page: page.has_previous_page,
        total_count: page.total_count,
    }
    .into();
    for (edge, related) in connection.edges.iter_mut().zip(related) {
        edge.node.1 = related;
    }
    Ok(connection)
}

/// A row of a contacts page, with its company and owner when the page joined them.
struct ContactRow {
    contact: contact::Model,
    related: Related,
}

const COMPANY: &str = "vx_company";
const OWNER: &str = "vx_owner";

/// `LEFT JOIN <E> AS alias ON alias.id = contact.key AND alias.workspace_id = contact.workspace_id`
/// (aliased: the filter's subqueries may name the tables), selecting the projected columns.
fn join_related<E: Projectable>(
    mut select: sea_orm::Select<contact::Entity>,
    projection: &Projection<E>,
    alias: &str,
    key: contact::Column,
) -> sea_orm::Select<contact::Entity> {
    use sea_orm::QueryTrait;
    use sea_orm::sea_query::{Alias, Condition, Expr, ExprTrait, JoinType};
    let on = Condition::all()
        .add(Expr::col((Alias::new(alias), E::ID)).equals((contact::Entity, key)))
        .add(Expr::col((Alias::new(alias), E::WORKSPACE)).equals((contact::Entity, contact::Column::WorkspaceId)));
    QueryTrait::query(&mut select).join_as(JoinType::LeftJoin, E::default(), Alias::new(alias), on);
    projection.select(select, Alias::new(alias))
}

impl std::borrow::Borrow<contact::Model> for ContactRow {
    fn borrow(&self) -> &contact::Model {
        &self.contact
    }
}

#[derive(Default)]
pub struct ContactQuery;

#[Object]
impl ContactQuery {
    /// Contacts of the workspace: filtered, sorted, paged with keyset cursors.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead)",
        complexity = "connection_cost(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the contacts must meet.")] filter: Option<ContactFilter>,
        #[graphql(desc = "Sort keys, most significant first; default newest first.")] order_by: Option<
            Vec<ContactOrderBy>,
        >,
        #[graphql(desc = "Page size going forward (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Page size going backward (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor to continue before.")] before: Option<String>,
    ) -> async_graphql::Result<ContactConnection> {
        let r = request(ctx)?;
        Ok(list_contacts(
            ctx,
            r.db,
            r.principal.workspace_id,
            filter,
            order_by.unwrap_or_default(),
            PageArgs {
                first,
                after,
                last,
                before,
            },
        )
        .await?)
    }

    /// One contact by email address (case-insensitive).
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn contact_by_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Email address.")] email: String,
    ) -> async_graphql::Result<Option<Contact>> {
        let r = request(ctx)?;
        let Ok(email) = voxtur_core::values::parse_email(&email) else {
            return Ok(None);
        };
        Ok(contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(r.principal.workspace_id))
            .filter(contact::Column::Email.eq(email))
            .one(r.db)
            .await?
            .map(Contact::from))
    }
}

/// Consent changes for one channel; absent fields stay as they are.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ChannelConsentInput {
    /// New consent status.
    pub status: Option<ConsentStatus>,
    /// New do-not-contact flag.
    pub do_not_contact: Option<bool>,
}

/// Consent changes per channel.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ContactConsentInput {
    /// Email.
    pub email: Option<ChannelConsentInput>,
    /// Text message.
    pub sms: Option<ChannelConsentInput>,
    /// Phone call.
    pub phone: Option<ChannelConsentInput>,
    /// Postal letter.
    pub letter: Option<ChannelConsentInput>,
    /// In-person visit.
    pub visit: Option<ChannelConsentInput>,
}

impl ContactConsentInput {
    fn changes(self) -> Vec<(ChannelKind, Option<entities::enums::ConsentStatus>, Option<bool>)> {
        [
            (ChannelKind::Email, self.email),
            (ChannelKind::Sms, self.sms),
            (ChannelKind::Phone, self.phone),
            (ChannelKind::Letter, self.letter),
            (ChannelKind::Visit, self.visit),
        ]
        .into_iter()
        .filter_map(|(channel, input)| input.map(|i| (channel, i.status.map(Into::into), i.do_not_contact)))
        .collect()
    }
}

/// UTM parameters; absent fields stay as they are, `null` clears.
#[derive(InputObject, Clone, Debug, Default)]
pub struct UtmInput {
    /// utm_source.
    pub source: MaybeUndefined<String>,
    /// utm_medium.
    pub medium: MaybeUndefined<String>,
    /// utm_campaign.
    pub campaign: MaybeUndefined<String>,
    /// utm_term.
    pub term: MaybeUndefined<String>,
    /// utm_content.
    pub content: MaybeUndefined<String>,
}

/// Declares a contact input type; `$email` is the email field's type.
macro_rules! contact_input {
    ($name:ident, $doc:literal, $email:ty, $email_doc:literal) => {
        #[doc = $doc]
        #[derive(InputObject, Clone, Debug, Default)]
        pub struct $name {
            #[doc = $email_doc]
            pub email: $email,
            /// First name.
            pub first_name: MaybeUndefined<String>,
            /// Last name.
            pub last_name: MaybeUndefined<String>,
            /// Phone number.
            pub phone: MaybeUndefined<String>,
            /// Id of the contact's company.
            pub company_id: MaybeUndefined<ID>,
            /// Id of the owning user.
            pub owner_id: MaybeUndefined<ID>,
            /// Lifecycle stage (new contacts start as SUBSCRIBER).
            pub lifecycle_stage: Option<LifecycleStage>,
            /// The complete set of tags (replaces the current set).
            pub tags: Option<Vec<String>>,
            /// Consent changes per channel.
            pub consent: Option<ContactConsentInput>,
            /// Where the contact came from.
            pub source: MaybeUndefined<String>,
            /// UTM parameters of the first touch.
            pub utm: Option<UtmInput>,
            /// Custom field values: an object of field key to value; `null` removes a value.
            pub custom_fields: Option<Json<serde_json::Value>>,
        }

        impl $name {
            fn changes_with_email(self, email: MaybeUndefined<String>) -> ContactChanges {
                let utm = self.utm.unwrap_or_default();
                ContactChanges {
                    email: email.into_domain(),
                    first_name: self.first_name.into_domain(),
                    last_name: self.last_name.into_domain(),
                    phone: self.phone.into_domain(),
                    company_id: self.company_id.into_domain(),
                    owner_id: self.owner_id.into_domain(),
                    lifecycle_stage: self.lifecycle_stage.map(Into::into),
                    tags: self.tags,
                    consent: self.consent.map(ContactConsentInput::changes).unwrap_or_default(),
                    source: self.source.into_domain(),
                    utm_source: utm.source.into_domain(),
                    utm_medium: utm.medium.into_domain(),
                    utm_campaign: utm.campaign.into_domain(),
                    utm_term: utm.term.into_domain(),
                    utm_content: utm.content.into_domain(),
                    custom_fields: self.custom_fields.map(|j| j.0),
                }
            }
        }
    };
}

contact_input!(
    ContactCreateInput,
    "Fields of a new contact.",
    Option<String>,
    "Email address (unique in the workspace, case-insensitive)."
);
contact_input!(
    ContactUpdateInput,
    "Changes to a contact: absent fields stay, `null` clears.",
    MaybeUndefined<String>,
    "New email address; `null` removes it."
);
contact_input!(
    ContactUpsertInput,
    "A contact to create, or to update when its email exists.",
    String,
    "Email address: the match key."
);

impl From<ContactCreateInput> for ContactChanges {
    fn from(input: ContactCreateInput) -> Self {
        let email = input
            .email
            .clone()
            .map_or(MaybeUndefined::Undefined, MaybeUndefined::Value);
        input.changes_with_email(email)
    }
}
impl From<ContactUpdateInput> for ContactChanges {
    fn from(input: ContactUpdateInput) -> Self {
        let email = input.email.clone();
        input.changes_with_email(email)
    }
}
impl From<ContactUpsertInput> for ContactChanges {
    fn from(input: ContactUpsertInput) -> Self {
        let email = MaybeUndefined::Value(input.email.clone());
        input.changes_with_email(email)
    }
}

/// Result of `contactCreate`.
#[derive(SimpleObject)]
pub struct ContactCreatePayload {
    /// The new contact, unless there were errors.
    pub contact: Option<Contact>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `contactUpdate`.
#[derive(SimpleObject)]
pub struct ContactUpdatePayload {
    /// The updated contact, unless there were errors.
    pub contact: Option<Contact>,
    /// Validation failures; nothing was saved when this is not empty.
    pub user_errors: Vec<UserError>,
}

/// Result of `contactDelete`.
#[derive(SimpleObject)]
pub struct ContactDeletePayload {
    /// Id of the deleted contact.
    pub deleted_contact_id: Option<ID>,
    /// Why nothing was deleted.
    pub user_errors: Vec<UserError>,
}

/// The fields by which `contactsUpsert` matches existing contacts.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContactMatchKey {
    /// Match on email address, case-insensitively.
    Email,
}

/// Outcome of one input of `contactsUpsert`, at the same index as the input.
#[derive(SimpleObject)]
pub struct ContactUpsertResult {
    /// Position of the input.
    pub index: i32,
    /// The saved contact; null when this input had errors.
    pub contact: Option<Contact>,
    /// True when a new contact was created, false when one was updated or on error.
    pub created: bool,
    /// Why this input was not saved.
    pub user_errors: Vec<UserError>,
}

/// Result of `contactsUpsert`.
#[derive(SimpleObject)]
pub struct ContactsUpsertPayload {
    /// One result per input, in input order.
    pub results: Vec<ContactUpsertResult>,
    /// Contacts created.
    pub created_count: i32,
    /// Contacts updated.
    pub updated_count: i32,
    /// Every input's errors, paths starting `["inputs", index]`.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct ContactMutation;

#[Object]
impl ContactMutation {
    /// Creates a contact.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new contact.")] input: ContactCreateInput,
    ) -> async_graphql::Result<ContactCreatePayload> {
        let r = request(ctx)?;
        let (contact, user_errors) =
            into_payload(voxtur_core::contacts::create(r.db, r.principal.workspace_id, input.into()).await)?;
        Ok(ContactCreatePayload {
            contact: contact.map(Contact::from),
            user_errors,
        })
    }

    /// Changes a contact.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The contact's id.")] id: ID,
        #[graphql(desc = "The changes.")] input: ContactUpdateInput,
    ) -> async_graphql::Result<ContactUpdatePayload> {
        let r = request(ctx)?;
        let (contact, user_errors) =
            into_payload(voxtur_core::contacts::update(r.db, r.principal.workspace_id, &id, input.into()).await)?;
        Ok(ContactUpdatePayload {
            contact: contact.map(Contact::from),
            user_errors,
        })
    }

    /// Deletes a contact and its tags.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contact_delete(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The contact's id.")] id: ID,
    ) -> async_graphql::Result<ContactDeletePayload> {
        let r = request(ctx)?;
        let (deleted, user_errors) =
            into_payload(voxtur_core::contacts::delete(r.db, r.principal.workspace_id, &id).await)?;
        Ok(ContactDeletePayload {
            deleted_contact_id: deleted.map(|uuid| NodeKind::Contact.id(uuid)),
            user_errors,
        })
    }

    /// Creates or updates up to 1,000 contacts matched on email. Valid inputs are saved together
    /// in one transaction; invalid inputs are reported at their index and nothing of them is
    /// written. An email given twice in one call is saved once (the first) and reported at the
    /// later index.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn contacts_upsert(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The contacts, at most 1,000.")] inputs: Vec<ContactUpsertInput>,
        #[graphql(desc = "How to find existing contacts.", default_with = "ContactMatchKey::Email")]
        match_on: ContactMatchKey,
    ) -> async_graphql::Result<ContactsUpsertPayload> {
        let ContactMatchKey::Email = match_on;
        let r = request(ctx)?;
        let changes = inputs.into_iter().map(Into::into).collect();
        let (outcomes, user_errors) =
            into_payload(voxtur_core::contacts::upsert(r.db, r.principal.workspace_id, changes).await)?;
        let mut payload = ContactsUpsertPayload {
            results: Vec::new(),
            created_count: 0,
            updated_count: 0,
            user_errors,
        };
        for (index, outcome) in outcomes.into_iter().flatten().enumerate() {
            let index = index as i32;
            let result = match outcome {
                UpsertOutcome::Created(m) => {
                    payload.created_count += 1;
                    ContactUpsertResult {
                        index,
                        contact: Some(Contact::from(m)),
                        created: true,
                        user_errors: Vec::new(),
                    }
                }
                UpsertOutcome::Updated(m) => {
                    payload.updated_count += 1;
                    ContactUpsertResult {
                        index,
                        contact: Some(Contact::from(m)),
                        created: false,
                        user_errors: Vec::new(),
                    }
                }
                UpsertOutcome::Failed(errors) => {
                    let at = index.to_string();
                    let errors: Vec<UserError> =
                        errors.into_iter().map(|e| UserError::at(e, &["inputs", &at])).collect();
                    payload.user_errors.extend(errors.iter().cloned());
                    ContactUpsertResult {
                        index,
                        contact: None,
                        created: false,
                        user_errors: errors,
                    }
                }
            };
            payload.results.push(result);
        }
        Ok(payload)
    }
}

impl From<OrderDirection> for Direction {
    fn from(d: OrderDirection) -> Self {
        match d {
            OrderDirection::Asc => Direction::Asc,
            OrderDirection::Desc => Direction::Desc,
        }
    }
}

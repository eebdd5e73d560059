//! Segments in GraphQL: lists, previews, members, history, and the mutations that manage them.

use crate::contacts::{Contact, ContactConnection, ContactOrderBy, list_contacts};
use crate::convert::IntoDomain;
use crate::filters::ContactFilter;
use crate::filters::SegmentMembershipFilter;
use crate::guards::ScopeGuard;
use crate::relay::NodeId;
use crate::relay::{NodeKind, connection, connection_cost, decode_as};
use crate::user_error::{UserError, UserErrorCode, into_payload};
use crate::{OrderDirection, request};
use async_graphql::{Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entities::{segment, segment_change};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use voxtur_core::Patch;
use voxtur_core::auth::Scope;
use voxtur_core::error::{ApiError, ApiResult};
use voxtur_core::listing::{PageArgs, SortSpec, timestamp_key};
use voxtur_core::segments::{Evaluation, Members, SegmentChanges};

/// Where an export stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExportStatus {
    /// Still writing pages.
    Running,
    /// Finished: download it at `downloadUrl`.
    Done,
    /// Stopped by an error (see `error`).
    Failed,
}

/// A CSV export of a segment's members, running in the background.
pub struct ExportJob(pub entities::export_job::Model);

/// A CSV export of a segment's members, running in the background.
#[Object(guard = "ScopeGuard(Scope::ContactsRead)")]
impl ExportJob {
    /// Global id.
    async fn id(&self) -> ID {
        NodeKind::ExportJob.id(self.0.id)
    }
    /// Where it stands.
    async fn status(&self) -> ExportStatus {
        match self.0.status.as_str() {
            voxtur_core::segments::export::DONE => ExportStatus::Done,
            voxtur_core::segments::export::FAILED => ExportStatus::Failed,
            _ => ExportStatus::Running,
        }
    }
    /// Members written so far.
    async fn processed(&self) -> i64 {
        self.0.processed
    }
    /// Members when the export started.
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// Share done, 0 to 1.
    async fn progress(&self) -> f64 {
        if self.0.status == voxtur_core::segments::export::DONE {
            1.0
        } else if self.0.total == 0 {
            0.0
        } else {
            (self.0.processed as f64 / self.0.total as f64).min(1.0)
        }
    }
    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Where to download the CSV (with the same API key) once done.
    async fn download_url(&self) -> Option<String> {
        (self.0.status == voxtur_core::segments::export::DONE)
            .then(|| format!("/exports/{}", NodeKind::ExportJob.id(self.0.id).as_str()))
    }
    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it finished.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Result of starting an export.
#[derive(SimpleObject)]
pub struct SegmentExportPayload {
    /// The job; poll `exportJob(id)` for its progress.
    pub job: Option<ExportJob>,
    /// Why nothing was started.
    pub user_errors: Vec<UserError>,
}

/// How a segment's members are decided.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Members are the contacts matching the filter, kept current as contacts change and
    /// events arrive.
    Dynamic,
    /// A marketing list: members are added and removed explicitly.
    Static,
}

/// A segment of contacts (dynamic) or a marketing list (static).
pub struct Segment(pub segment::Model);

/// A segment of contacts (dynamic) or a marketing list (static).
#[Object(guard = "ScopeGuard(Scope::ContactsRead)")]
impl Segment {
    /// Global id.
    pub async fn id(&self) -> ID {
        NodeKind::Segment.id(self.0.id)
    }
    /// Name, unique in the workspace.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What the segment is for.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Dynamic or static.
    async fn kind(&self) -> SegmentKind {
        if self.0.kind == voxtur_core::segments::DYNAMIC {
            SegmentKind::Dynamic
        } else {
            SegmentKind::Static
        }
    }
    /// The filter of a dynamic segment, as given (a `ContactFilter` input in JSON).
    async fn filter(&self) -> Option<Json<serde_json::Value>> {
        self.0.filter.clone().map(Json)
    }
    /// Number of members now.
    async fn member_count(&self) -> i64 {
        self.0.member_count
    }
    /// When membership was last evaluated or changed.
    async fn evaluated_at(&self) -> Option<DateTime<Utc>> {
        self.0.evaluated_at
    }
    /// When the segment was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its definition last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// The members: filtered, sorted and paged like `contacts`.
    #[graphql(complexity = "connection_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Further conditions on the members.")] filter: Option<ContactFilter>,
        #[graphql(desc = "Sort keys, most significant first; default newest first.")] order_by: Option<
            Vec<ContactOrderBy>,
        >,
        #[graphql(desc = "Page size going forward (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Page size going backward (1 to 100).")] last: Option<i32>,
        #[graphql(desc = "Cursor to continue before.")] before: Option<String>,
    ) -> async_graphql::Result<ContactConnection> {
        // Boxed: see "Resolver futures" in docs/ARCHITECTURE.md.
        Box::pin(async move {
            let r = request(ctx)?;
            // Anonymous members (of a segment whose filter asks for them) show with `anonymous: true`.
            let members = ContactFilter {
                segments: Some(SegmentMembershipFilter {
                    in_list: Some(vec![NodeKind::Segment.id(self.0.id)]),
                    not_in: None,
                }),
                anonymous: filter.as_ref().and_then(|f| f.anonymous),
                and: filter.map(|f| vec![f]),
                ..Default::default()
            };
            Ok(list_contacts(
                ctx,
                r.db,
                r.principal.workspace_id,
                Some(members),
                order_by.unwrap_or_default(),
                PageArgs {
                    first,
                    after,
                    last,
                    before,
                },
            )
            .await?)
        })
        .await
    }

    /// Entries and exits, newest first.
    #[graphql(complexity = "connection_cost(first, None, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
        #[graphql(desc = "Only entries (true) or only exits (false).")] entered: Option<bool>,
    ) -> async_graphql::Result<SegmentChangeConnection> {
        // Boxed: see "Resolver futures" in docs/ARCHITECTURE.md.
        Box::pin(async move {
            let r = request(ctx)?;
            let spec = SortSpec {
                list: "segmentHistory",
                keys: vec![timestamp_key::<segment_change::Model>(
                    "at",
                    segment_change::Column::At.into_expr(),
                    OrderDirection::Desc.into(),
                    |m| &m.at,
                )],
                id_expr: segment_change::Column::Id.into_expr(),
                id_of: |m| m.id,
            };
            let mut select = segment_change::Entity::find()
                .filter(segment_change::Column::WorkspaceId.eq(r.principal.workspace_id))
                .filter(segment_change::Column::SegmentId.eq(self.0.id));
            if let Some(entered) = entered {
                select = select.filter(segment_change::Column::Entered.eq(entered));
            }
            let with_total = ctx.look_ahead().field("totalCount").exists();
            Ok(spec
                .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
                .await?
                .into())
        })
        .await
    }
}

/// A contact entering or leaving a segment.
pub struct SegmentChange(pub segment_change::Model);

/// A contact entering or leaving a segment.
#[Object(guard = "ScopeGuard(Scope::ContactsRead)")]
impl SegmentChange {
    /// The contact (null once deleted).
    async fn contact(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Contact>> {
        let r = request(ctx)?;
        Ok(r.loaders
            .contacts
            .load_one(self.0.contact_id)
            .await
            .map_err(|e| ApiError::Internal(e.to_string().into()))?
            .map(Contact::from))
    }
    /// The contact's id (kept after the contact is deleted).
    async fn contact_id(&self) -> ID {
        NodeKind::Contact.id(self.0.contact_id)
    }
    /// True for an entry, false for an exit.
    async fn entered(&self) -> bool {
        self.0.entered
    }
    /// When it happened.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

impl From<segment_change::Model> for SegmentChange {
    fn from(model: segment_change::Model) -> Self {
        SegmentChange(model)
    }
}

impl From<segment::Model> for Segment {
    fn from(model: segment::Model) -> Self {
        Segment(model)
    }
}

connection!(
    SegmentChangeConnection,
    SegmentChangeEdge,
    SegmentChange,
    segment_change::Model
);
connection!(SegmentConnection, SegmentEdge, Segment, segment::Model);

#[derive(Default)]
pub struct SegmentQuery;

#[Object]
impl SegmentQuery {
    /// Segments and marketing lists of the workspace, by name.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead)",
        complexity = "connection_cost(first, None, child_complexity)"
    )]
    async fn segments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this kind.")] kind: Option<SegmentKind>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor to continue after.")] after: Option<String>,
    ) -> async_graphql::Result<SegmentConnection> {
        let r = request(ctx)?;
        let spec = SortSpec {
            list: "segments",
            keys: vec![voxtur_core::listing::text_key::<segment::Model>(
                "name",
                segment::Column::Name.into_expr(),
                OrderDirection::Asc.into(),
                false,
                |m| Some(m.name.as_str()),
            )],
            id_expr: segment::Column::Id.into_expr(),
            id_of: |m| m.id,
        };
        let mut select = segment::Entity::find().filter(segment::Column::WorkspaceId.eq(r.principal.workspace_id));
        if let Some(kind) = kind {
            select = select.filter(segment::Column::Kind.eq(kind_name(kind)));
        }
        let with_total = ctx.look_ahead().field("totalCount").exists();
        Ok(spec
            .fetch(r.db, select, &PageArgs::forward(first, after), with_total)
            .await?
            .into())
    }

    /// One segment by id; null when it does not exist in this workspace.
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn segment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment's id.")] id: ID,
    ) -> async_graphql::Result<Option<Segment>> {
        let r = request(ctx)?;
        let Some(id) = decode_as(&id, NodeKind::Segment) else {
            return Ok(None);
        };
        Ok(voxtur_core::segments::find(r.db, r.principal.workspace_id, id)
            .await?
            .map(Segment))
    }

    /// An export job by id; null when it does not exist in this workspace.
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn export_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's id.")] id: ID,
    ) -> async_graphql::Result<Option<ExportJob>> {
        let r = request(ctx)?;
        let Some(id) = decode_as(&id, NodeKind::ExportJob) else {
            return Ok(None);
        };
        Ok(entities::export_job::Entity::find_by_id(id)
            .filter(entities::export_job::Column::WorkspaceId.eq(r.principal.workspace_id))
            .one(r.db)
            .await?
            .map(ExportJob))
    }

    /// The contacts a filter selects now, without saving a segment: `totalCount` is the count,
    /// `nodes` the first page.
    #[graphql(
        guard = "ScopeGuard(Scope::ContactsRead)",
        complexity = "connection_cost(first, None, child_complexity)"
    )]
    async fn segment_preview(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment filter.")] filter: ContactFilter,
        #[graphql(desc = "Sort keys for the page.")] order_by: Option<Vec<ContactOrderBy>>,
        #[graphql(desc = "Page size (1 to 100, default 20).")] first: Option<i32>,
    ) -> async_graphql::Result<ContactConnection> {
        let r = request(ctx)?;
        Ok(list_contacts(
            ctx,
            r.db,
            r.principal.workspace_id,
            Some(filter),
            order_by.unwrap_or_default(),
            PageArgs::forward(first, None),
        )
        .await?)
    }
}

fn kind_name(kind: SegmentKind) -> &'static str {
    match kind {
        SegmentKind::Dynamic => voxtur_core::segments::DYNAMIC,
        SegmentKind::Static => voxtur_core::segments::STATIC,
    }
}

/// A new segment.
#[derive(InputObject)]
pub struct SegmentCreateInput {
    /// Name, unique in the workspace.
    pub name: String,
    /// What it is for (at most 2,000 characters).
    pub description: Option<String>,
    /// Dynamic (default) or static.
    #[graphql(default_with = "SegmentKind::Dynamic")]
    pub kind: SegmentKind,
    /// The filter members match (dynamic segments only).
    pub filter: Option<ContactFilter>,
}

/// Changes to a segment; omitted fields stay as they are.
#[derive(InputObject)]
pub struct SegmentUpdateInput {
    /// Name, unique in the workspace.
    pub name: Option<String>,
    /// What it is for (null clears it).
    pub description: MaybeUndefined<String>,
    /// A new filter (dynamic segments only); membership is re-evaluated at once.
    pub filter: Option<ContactFilter>,
}

/// Result of creating or changing a segment.
#[derive(SimpleObject)]
pub struct SegmentPayload {
    /// The segment, when saved.
    pub segment: Option<Segment>,
    /// Why nothing was saved.
    pub user_errors: Vec<UserError>,
}

/// Result of deleting a segment.
#[derive(SimpleObject)]
pub struct SegmentDeletePayload {
    /// The deleted segment's id.
    pub deleted_id: Option<ID>,
    /// Why nothing was deleted.
    pub user_errors: Vec<UserError>,
}

/// Result of a full re-evaluation.
#[derive(SimpleObject)]
pub struct SegmentRebuildPayload {
    /// The segment after the rebuild.
    pub segment: Option<Segment>,
    /// Contacts that entered.
    pub entered_count: u64,
    /// Contacts that left.
    pub exited_count: u64,
    /// Why nothing was done.
    pub user_errors: Vec<UserError>,
}

/// Result of adding or removing members of a marketing list.
#[derive(SimpleObject)]
pub struct SegmentMembersPayload {
    /// The segment after the change.
    pub segment: Option<Segment>,
    /// Contacts that entered or left.
    pub changed_count: u64,
    /// Imported e-mail addresses no contact has (not added).
    pub unknown_emails: Vec<String>,
    /// Why nothing was changed.
    pub user_errors: Vec<UserError>,
}

#[derive(Default)]
pub struct SegmentMutation;

fn segment_id(id: &ID, field: &str) -> Result<Uuid, UserError> {
    decode_as(id, NodeKind::Segment).ok_or_else(|| {
        UserError::new(
            &[field],
            UserErrorCode::NotFound,
            format!("`{}` is not a segment id", id.as_str()),
        )
    })
}

/// Members named by ids or by a filter snapshot: exactly one.
fn members(contact_ids: Option<Vec<ID>>, filter: Option<ContactFilter>) -> Result<Members, UserError> {
    match (contact_ids, filter) {
        (Some(ids), None) => ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                decode_as(id, NodeKind::Contact).ok_or_else(|| {
                    UserError::new(
                        &["contactIds", &i.to_string()],
                        UserErrorCode::NotFound,
                        format!("`{}` is not a contact id", id.as_str()),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Members::Ids),
        (None, Some(filter)) => Ok(Members::Filter(Box::new(filter.into_domain()))),
        _ => Err(UserError::new(
            &["contactIds"],
            UserErrorCode::Invalid,
            "give either contactIds or filter",
        )),
    }
}

async fn reload(ctx: &Context<'_>, id: Uuid) -> ApiResult<Option<Segment>> {
    let r = request(ctx)?;
    Ok(voxtur_core::segments::find(r.db, r.principal.workspace_id, id)
        .await?
        .map(Segment))
}

#[Object]
impl SegmentMutation {
    /// Creates a segment; a dynamic one is evaluated before this returns.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment.")] input: SegmentCreateInput,
    ) -> async_graphql::Result<SegmentPayload> {
        let r = request(ctx)?;
        let changes = SegmentChanges {
            name: Some(input.name),
            description: input.description.map_or(Patch::Keep, Patch::Set),
            filter: input.filter.into_domain(),
        };
        let result = voxtur_core::segments::create(
            r.db,
            r.principal.workspace_id,
            input.kind == SegmentKind::Dynamic,
            changes,
        )
        .await;
        let (segment, user_errors) = into_payload(result)?;
        Ok(SegmentPayload {
            segment: segment.map(Segment),
            user_errors,
        })
    }

    /// Changes a segment's name, description or filter.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment's id.")] id: ID,
        #[graphql(desc = "The changes.")] input: SegmentUpdateInput,
    ) -> async_graphql::Result<SegmentPayload> {
        let r = request(ctx)?;
        let id = match segment_id(&id, "id") {
            Ok(id) => id,
            Err(e) => {
                return Ok(SegmentPayload {
                    segment: None,
                    user_errors: vec![e],
                });
            }
        };
        let changes = SegmentChanges {
            name: input.name,
            description: input.description.into_domain(),
            filter: input.filter.into_domain(),
        };
        let (segment, user_errors) =
            into_payload(voxtur_core::segments::update(r.db, r.principal.workspace_id, id, changes).await)?;
        Ok(SegmentPayload {
            segment: segment.map(Segment),
            user_errors,
        })
    }

    /// Deletes a segment with its membership and history.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_delete(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment's id.")] id: ID,
    ) -> async_graphql::Result<SegmentDeletePayload> {
        let r = request(ctx)?;
        let id = match segment_id(&id, "id") {
            Ok(id) => id,
            Err(e) => {
                return Ok(SegmentDeletePayload {
                    deleted_id: None,
                    user_errors: vec![e],
                });
            }
        };
        let (deleted, user_errors) =
            into_payload(voxtur_core::segments::delete(r.db, r.principal.workspace_id, id).await)?;
        Ok(SegmentDeletePayload {
            deleted_id: deleted.map(|id| NodeKind::Segment.id(id)),
            user_errors,
        })
    }

    /// Re-evaluates a dynamic segment for every contact (for repair; membership is otherwise
    /// kept current on its own).
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_rebuild(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment's id.")] id: ID,
    ) -> async_graphql::Result<SegmentRebuildPayload> {
        let r = request(ctx)?;
        let failed = |e: UserError| SegmentRebuildPayload {
            segment: None,
            entered_count: 0,
            exited_count: 0,
            user_errors: vec![e],
        };
        let id = match segment_id(&id, "id") {
            Ok(id) => id,
            Err(e) => return Ok(failed(e)),
        };
        let Some(found) = voxtur_core::segments::find(r.db, r.principal.workspace_id, id).await? else {
            return Ok(failed(UserError::new(
                &["id"],
                UserErrorCode::NotFound,
                "no such segment in this workspace",
            )));
        };
        if found.kind != voxtur_core::segments::DYNAMIC {
            return Ok(failed(UserError::new(
                &["id"],
                UserErrorCode::Invalid,
                "a static segment has nothing to rebuild",
            )));
        }
        let Evaluation { entered, exited } =
            voxtur_core::segments::evaluate(r.db, id, r.principal.workspace_id, None).await?;
        Ok(SegmentRebuildPayload {
            segment: reload(ctx, id).await?,
            entered_count: entered,
            exited_count: exited,
            user_errors: Vec::new(),
        })
    }

    /// Starts a CSV export of a segment's members in the background; follow it with
    /// `exportJob(id)` and download it from its `downloadUrl`.
    #[graphql(guard = "ScopeGuard(Scope::ContactsRead)")]
    async fn segment_export_start(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The segment.")] segment_id: ID,
        #[graphql(
            desc = "Start the file with a UTF-8 byte-order mark, for Excel (which otherwise misreads accents).",
            default = false
        )]
        bom: bool,
    ) -> async_graphql::Result<SegmentExportPayload> {
        let r = request(ctx)?;
        let id = match self::segment_id(&segment_id, "segmentId") {
            Ok(id) => id,
            Err(e) => {
                return Ok(SegmentExportPayload {
                    job: None,
                    user_errors: vec![e],
                });
            }
        };
        let (job, user_errors) =
            into_payload(voxtur_core::segments::export::start(r.db, r.principal.workspace_id, id, bom).await)?;
        Ok(SegmentExportPayload {
            job: job.map(ExportJob),
            user_errors,
        })
    }

    /// Adds contacts to a marketing list, by id (at most 1,000) or as a snapshot of a filter.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_add_members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The static segment.")] segment_id: ID,
        #[graphql(desc = "Contacts to add.")] contact_ids: Option<Vec<ID>>,
        #[graphql(desc = "Or: every contact matching this filter now.")] filter: Option<ContactFilter>,
    ) -> async_graphql::Result<SegmentMembersPayload> {
        self.change_members(ctx, segment_id, contact_ids, filter, true).await
    }

    /// Removes contacts from a marketing list, by id or by filter.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_remove_members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The static segment.")] segment_id: ID,
        #[graphql(desc = "Contacts to remove.")] contact_ids: Option<Vec<ID>>,
        #[graphql(desc = "Or: every member matching this filter.")] filter: Option<ContactFilter>,
    ) -> async_graphql::Result<SegmentMembersPayload> {
        self.change_members(ctx, segment_id, contact_ids, filter, false).await
    }

    /// Adds the contacts with the e-mail addresses of a CSV (a column headed `email`, or the
    /// first column) to a marketing list. Unknown addresses are reported in `unknownEmails`;
    /// a malformed address refuses the whole import.
    #[graphql(guard = "ScopeGuard(Scope::ContactsWrite)")]
    async fn segment_import_emails(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The static segment.")] segment_id: ID,
        #[graphql(desc = "The CSV text.")] csv: String,
    ) -> async_graphql::Result<SegmentMembersPayload> {
        let r = request(ctx)?;
        let id = match self::segment_id(&segment_id, "segmentId") {
            Ok(id) => id,
            Err(e) => return Ok(members_failed(e)),
        };
        let (result, user_errors) =
            into_payload(voxtur_core::segments::import_emails(r.db, r.principal.workspace_id, id, &csv).await)?;
        let (changed, unknown) = result.unwrap_or_default();
        Ok(SegmentMembersPayload {
            segment: if user_errors.is_empty() {
                reload(ctx, id).await?
            } else {
                None
            },
            changed_count: changed,
            unknown_emails: unknown,
            user_errors,
        })
    }
}

fn members_failed(error: UserError) -> SegmentMembersPayload {
    SegmentMembersPayload {
        segment: None,
        changed_count: 0,
        unknown_emails: Vec::new(),
        user_errors: vec![error],
    }
}

impl SegmentMutation {
    async fn change_members(
        &self,
        ctx: &Context<'_>,
        segment_id: ID,
        contact_ids: Option<Vec<ID>>,
        filter: Option<ContactFilter>,
        add: bool,
    ) -> async_graphql::Result<SegmentMembersPayload> {
        let r = request(ctx)?;
        let id = match self::segment_id(&segment_id, "segmentId") {
            Ok(id) => id,
            Err(e) => return Ok(members_failed(e)),
        };
        let members = match members(contact_ids, filter) {
            Ok(m) => m,
            Err(e) => return Ok(members_failed(e)),
        };
        let result = if add {
            voxtur_core::segments::add_members(r.db, r.principal.workspace_id, id, members).await
        } else {
            voxtur_core::segments::remove_members(r.db, r.principal.workspace_id, id, members).await
        };
        let (changed, user_errors) = into_payload(result)?;
        Ok(SegmentMembersPayload {
            segment: if user_errors.is_empty() {
                reload(ctx, id).await?
            } else {
                None
            },
            changed_count: changed.unwrap_or_default(),
            unknown_emails: Vec::new(),
            user_errors,
        })
    }
}

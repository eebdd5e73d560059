//! The segment-membership condition of a contact filter: `contact.id [NOT] IN (SELECT
//! contact_id FROM segment_member ...)`, over the materialized membership.

use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeKind, decode_as};
use crate::listing::filters::check_list;

use entities::{contact, segment_member};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition};
use uuid::Uuid;

/// Membership of segments (dynamic or static).
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMembershipFilter {
    /// In at least one of these segments.
    #[serde(rename = "in")]
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub in_list: Option<Vec<String>>,
    /// In none of these segments.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub not_in: Option<Vec<String>>,
}

fn decode(field: &str, ids: &[String]) -> ApiResult<Vec<Uuid>> {
    check_list(field, ids)?;
    ids.iter()
        .map(|id| {
            decode_as(id, NodeKind::Segment)
                .ok_or_else(|| ApiError::bad_input(format!("`{}` in `{field}` is not a segment id", id.as_str())))
        })
        .collect()
}

impl SegmentMembershipFilter {
    /// Every segment named, for reference checks.
    pub fn segment_ids(&self) -> ApiResult<Vec<Uuid>> {
        let mut ids = decode("segments.in", self.in_list.as_deref().unwrap_or_default())?;
        ids.extend(decode("segments.notIn", self.not_in.as_deref().unwrap_or_default())?);
        Ok(ids)
    }

    pub fn condition(&self, workspace_id: Uuid) -> ApiResult<Condition> {
        let members = |segments: Vec<Uuid>| {
            Query::select()
                .column(segment_member::Column::ContactId)
                .from(segment_member::Entity)
                .and_where(segment_member::Column::WorkspaceId.eq(workspace_id))
                .and_where(segment_member::Column::SegmentId.is_in(segments))
                .to_owned()
        };
        let mut all = Condition::all();
        if let Some(ids) = &self.in_list {
            all = all.add(contact::Column::Id.in_subquery(members(decode("segments.in", ids)?)));
        }
        if let Some(ids) = &self.not_in {
            all = all.add(contact::Column::Id.not_in_subquery(members(decode("segments.notIn", ids)?)));
        }
        Ok(all)
    }
}

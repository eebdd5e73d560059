//! Behaviour conditions of a contact filter ("did T at least N times in the last D days",
//! "never did T"), compiled to one uncorrelated subquery the database runs as a semi-join, never
//! a loop over contacts: `contact.id [NOT] IN (SELECT contact_id FROM event_tally ...)` where the
//! tallies can answer (counts ever, or up to `tally::RECENT` in a sliding window), else
//! `... FROM event ... GROUP BY contact_id HAVING COUNT(*) ...` over the indexed events.

use super::EventType;
use crate::contacts::Channel;
use crate::custom_fields::FieldSql;
use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeKind, decode_as};
use crate::listing::filters::{DateTimeFilter, StringFilter, check_list};

use chrono::{DateTime, Duration, Utc};
use entities::{contact, event};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition, DbBackend};
use uuid::Uuid;

/// Longest window `withinLastDays` accepts (ten years).
const MAX_DAYS: i32 = 3_650;

/// The contact did (or did not) do something: events of one type, optionally narrowed by name,
/// properties and time, counted. Without a count, "at least once"; without a time, "ever".
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct EventCondition {
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The event's name (custom events, page names).
    pub name: Option<String>,
    /// Conditions on the event's properties; every entry must hold for an event to count.
    #[serde(default, deserialize_with = "voxtur_store::json::one_or_many")]
    pub properties: Option<Vec<PropertyCondition>>,
    /// At least this many matching events (1 or more).
    pub at_least: Option<i32>,
    /// At most this many (`atMost: 0` means "never").
    pub at_most: Option<i32>,
    /// Exactly this many (`exactly: 0` means "never").
    pub exactly: Option<i32>,
    /// Only events of the last this many days (1 to 3,650), counted back from the moment the
    /// segment is evaluated: contacts leave as the window passes.
    pub within_last_days: Option<i32>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub until: Option<DateTime<Utc>>,
}

/// A condition on one property of an event (a top-level key of its `properties`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PropertyCondition {
    /// The property's key.
    pub key: String,
    /// Equal to this JSON value.
    pub eq: Option<serde_json::Value>,
    /// Not equal to (events without the property do not match).
    pub neq: Option<serde_json::Value>,
    /// Greater than (numbers or text).
    pub gt: Option<serde_json::Value>,
    /// Greater than or equal to.
    pub gte: Option<serde_json::Value>,
    /// Less than.
    pub lt: Option<serde_json::Value>,
    /// Less than or equal to.
    pub lte: Option<serde_json::Value>,
}

enum Count {
    AtLeast(i64),
    AtMost(i64),
    Exactly(i64),
}

impl EventCondition {
    /// Whether the condition depends on the time of evaluation (a sliding window).
    pub fn is_time_relative(&self) -> bool {
        self.within_last_days.is_some()
    }

    fn count(&self) -> ApiResult<Count> {
        let given = [self.at_least, self.at_most, self.exactly].iter().flatten().count();
        if given > 1 {
            return Err(ApiError::bad_input(
                "events: give at most one of atLeast, atMost and exactly",
            ));
        }
        let non_negative = |name: &str, n: i32| {
            if n < 0 {
                Err(ApiError::bad_input(format!(
                    "events: `{name}` must be 0 or more, not {n}"
                )))
            } else {
                Ok(i64::from(n))
            }
        };
        Ok(match (self.at_least, self.at_most, self.exactly) {
            (Some(n), _, _) if n < 1 => {
                return Err(ApiError::bad_input(format!(
                    "events: `atLeast` must be 1 or more, not {n} (for \"never\" use atMost: 0)"
                )));
            }
            (Some(n), _, _) => Count::AtLeast(i64::from(n)),
            (_, Some(n), _) => Count::AtMost(non_negative("atMost", n)?),
            (_, _, Some(n)) => Count::Exactly(non_negative("exactly", n)?),
            _ => Count::AtLeast(1),
        })
    }

    /// The events that count, as `SELECT contact_id FROM event WHERE ...`.
    fn events(
        &self,
        backend: DbBackend,
        workspace_id: Uuid,
        now: DateTime<Utc>,
        scope: Option<&[Uuid]>,
    ) -> ApiResult<SelectStatement> {
        let mut select = Query::select();
        select
            .column((event::Entity, event::Column::ContactId))
            .from(event::Entity)
            .and_where(event::Column::WorkspaceId.eq(workspace_id))
            .and_where(event::Column::EventType.eq(self.event_type.as_str()));
        if let Some(name) = &self.name {
            select.and_where(event::Column::Name.eq(name.clone()));
        }
        if self.within_last_days.is_some() && (self.since.is_some() || self.until.is_some()) {
            return Err(ApiError::bad_input(
                "events: give either withinLastDays or since/until, not both",
            ));
        }
        if let Some(days) = self.within_last_days {
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(ApiError::bad_input(format!(
                    "events: `withinLastDays` must be between 1 and {MAX_DAYS}, not {days}"
                )));
            }
            select.and_where(event::Column::OccurredAt.gte(now - Duration::days(i64::from(days))));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(ApiError::bad_input("events: `since` must be before `until`"));
        }
        if let Some(since) = self.since {
            select.and_where(event::Column::OccurredAt.gte(since));
        }
        if let Some(until) = self.until {
            select.and_where(event::Column::OccurredAt.lt(until));
        }
        if let Some(properties) = &self.properties {
            check_list("events.properties", properties)?;
            let sql = FieldSql {
                backend,
                table: "event",
                column: "properties",
            };
            for p in properties {
                select.cond_where(p.condition(sql)?);
            }
        }
        if let Some(ids) = scope {
            select.and_where(event::Column::ContactId.is_in(ids.iter().copied()));
        }
        Ok(select.to_owned())
    }

    /// With a sliding window: the contacts with events of its type that left the window between
    /// `from` and `to` (events at or after `from` minus the window and before `to` minus it).
    /// Time passing changes the condition for these contacts and no others.
    pub fn left_window(&self, workspace_id: Uuid, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<SelectStatement> {
        let window = Duration::days(i64::from(self.within_last_days?));
        Some(
            Query::select()
                .distinct()
                .column(event::Column::ContactId)
                .from(event::Entity)
                .and_where(event::Column::WorkspaceId.eq(workspace_id))
                .and_where(event::Column::EventType.eq(self.event_type.as_str()))
                .and_where(event::Column::OccurredAt.gte(from - window))
                .and_where(event::Column::OccurredAt.lt(to - window))
                .to_owned(),
        )
    }

    pub fn condition(
        &self,
        backend: DbBackend,
        workspace_id: Uuid,
        now: DateTime<Utc>,
        scope: Option<&[Uuid]>,
    ) -> ApiResult<Condition> {
        let count = self.count()?;
        let mut events = self.events(backend, workspace_id, now, scope)?;
        if let Some(condition) = self.read_from_tallies(&count, backend, workspace_id, now, scope) {
            return Ok(condition);
        }
        let counted = |events: &mut SelectStatement, having: Expr| {
            events
                .group_by_col((event::Entity, event::Column::ContactId))
                .and_having(having)
                .to_owned()
        };
        let star = || Expr::cust("COUNT(*)");
        Ok(Condition::all().add(match count {
            Count::AtLeast(1) => contact::Column::Id.in_subquery(events),
            Count::AtLeast(n) => contact::Column::Id.in_subquery(counted(&mut events, star().gte(n))),
            Count::AtMost(0) | Count::Exactly(0) => contact::Column::Id.not_in_subquery(events),
            Count::AtMost(n) => contact::Column::Id.not_in_subquery(counted(&mut events, star().gt(n))),
            Count::Exactly(n) => contact::Column::Id.in_subquery(counted(&mut events, star().eq(n))),
        }))
    }
}

impl EventCondition {
    /// The condition read from event tallies (one row per contact and type) instead of from
    /// events, when tallies can answer it: no name, property or date-range narrowing, and a
    /// windowed count within what a tally keeps. None otherwise. Call after `events`, which
    /// checks the window.
    fn read_from_tallies(
        &self,
        count: &Count,
        backend: DbBackend,
        workspace_id: Uuid,
        now: DateTime<Utc>,
        scope: Option<&[Uuid]>,
    ) -> Option<Condition> {
        if self.name.is_some() || self.properties.is_some() || self.since.is_some() || self.until.is_some() {
            return None;
        }
        let tallies = |having: Expr| {
            let mut select = Query::select();
            select
                .column(EventTally::ContactId)
                .from(EventTally::Table)
                .and_where(Expr::col(EventTally::WorkspaceId).eq(workspace_id))
                .and_where(Expr::col(EventTally::EventType).eq(self.event_type.as_str()))
                .and_where(having);
            if let Some(ids) = scope {
                select.and_where(Expr::col(EventTally::ContactId).is_in(ids.iter().copied()));
            }
            select
        };
        let id = || contact::Column::Id;
        let Some(days) = self.within_last_days else {
            let total = || Expr::col(EventTally::Total);
            return Some(Condition::all().add(match *count {
                Count::AtLeast(n) => id().in_subquery(tallies(total().gte(n))),
                Count::AtMost(n) => id().not_in_subquery(tallies(total().gt(n))),
                Count::Exactly(0) => id().not_in_subquery(tallies(total().gt(0))),
                Count::Exactly(n) => id().in_subquery(tallies(total().eq(n))),
            }));
        };
        let since = now - Duration::days(i64::from(days));
        // At least n in the window: the n-th latest is in it, and so is the latest (which the
        // window index ranges over) or, from three on, the third latest (which the dense index
        // ranges over, migration 10).
        let at_least = |n: i64| {
            let nth = match backend {
                DbBackend::Postgres => Expr::cust(format!("recent[{n}]")),
                _ => Expr::cust(format!("json_extract(recent, '$[{}]')", n - 1)),
            };
            let in_window = if n >= DENSE {
                Expr::col(EventTally::ThirdAt).gte(since)
            } else {
                Expr::col(EventTally::LastAt).gte(since)
            };
            tallies(if n == 1 || n == DENSE {
                in_window
            } else {
                in_window.and(nth.gte(since))
            })
        };
        let kept = super::tally::RECENT;
        Some(
            Condition::all().add(match *count {
                Count::AtLeast(n) if n <= kept => id().in_subquery(at_least(n)),
                Count::AtMost(n) | Count::Exactly(n) if n == 0 => id().not_in_subquery(at_least(1)),
                Count::AtMost(n) if n < kept => id().not_in_subquery(at_least(n + 1)),
                Count::Exactly(n) if n < kept => Condition::all()
                    .add(id().in_subquery(at_least(n)))
                    .add(id().not_in_subquery(at_least(n + 1)))
                    .into(),
                _ => return None,
            }),
        )
    }
}

/// The columns of `event_tally` (written by `tally`, read only here: no entity of its own).
#[derive(sea_orm::DeriveIden, Clone, Copy)]
enum EventTally {
    Table,
    ContactId,
    WorkspaceId,
    EventType,
    Total,
    LastAt,
    /// The `DENSE`-th latest time, generated from `recent` and indexed (migration 10).
    ThirdAt,
}

/// The rank of the latest time tallies keep apart as `third_at`.
const DENSE: i64 = 3;

impl PropertyCondition {
    fn condition(&self, sql: FieldSql) -> ApiResult<Condition> {
        let key = self.key.trim();
        if key.is_empty() || key.len() > 100 {
            return Err(ApiError::bad_input(
                "events.properties: `key` must be 1 to 100 characters",
            ));
        }
        let scalar = |op: &str, value: &serde_json::Value| -> ApiResult<sea_orm::Value> {
            match value {
                serde_json::Value::Array(_) | serde_json::Value::Object(_) | serde_json::Value::Null
                    if op != "eq" && op != "neq" =>
                {
                    Err(ApiError::bad_input(format!(
                        "events.properties `{key}`: `{op}` compares numbers or text, not {value}"
                    )))
                }
                _ => Ok(sql.bind(value)),
            }
        };
        let expr = sql.value(key);
        let mut all = Condition::all();
        type Compare = fn(Expr, sea_orm::Value) -> Expr;
        let ops: [(&str, &Option<serde_json::Value>, Compare); 6] = [
            ("eq", &self.eq, |e, v| e.eq(v)),
            ("neq", &self.neq, |e, v| e.ne(v)),
            ("gt", &self.gt, |e, v| e.gt(v)),
            ("gte", &self.gte, |e, v| e.gte(v)),
            ("lt", &self.lt, |e, v| e.lt(v)),
            ("lte", &self.lte, |e, v| e.lte(v)),
        ];
        let mut given = 0;
        for (op, value, compare) in ops {
            if let Some(value) = value {
                given += 1;
                all = all.add(compare(expr.clone(), scalar(op, value)?));
            }
        }
        if given == 0 {
            return Err(ApiError::bad_input(format!(
                "events.properties `{key}`: give an operator (eq, neq, gt, gte, lt, lte)"
            )));
        }
        Ok(all)
    }
}

/// Conditions on a contact's timeline.
#[derive(Default, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimelineFilter {
    /// Only these types.
    pub types: Option<Vec<EventType>>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
}

impl TimelineFilter {
    pub fn condition(&self) -> ApiResult<Condition> {
        let mut all = Condition::all();
        if let Some(types) = &self.types {
            check_list("types", types)?;
            all = all.add(event::Column::EventType.is_in(types.iter().map(|t| t.as_str())));
        }
        if let Some(since) = self.since {
            all = all.add(event::Column::OccurredAt.gte(since));
        }
        if let Some(until) = self.until {
            all = all.add(event::Column::OccurredAt.lt(until));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            return Err(ApiError::bad_input("`since` must be before `until`"));
        }
        Ok(all)
    }
}

/// Conditions on events across the workspace.
#[derive(Default, Clone, Debug)]
pub struct EventFilter {
    /// Only these types.
    pub types: Option<Vec<EventType>>,
    /// Only events of this contact.
    pub contact_id: Option<String>,
    /// When it happened.
    pub occurred_at: Option<DateTimeFilter>,
    /// The custom event's or page's name.
    pub name: Option<StringFilter>,
    /// The source.
    pub source: Option<StringFilter>,
    /// Only these channels.
    pub channels: Option<Vec<Channel>>,
    /// The attributed campaign.
    pub campaign: Option<StringFilter>,
    /// UTM source.
    pub utm_source: Option<StringFilter>,
}

impl EventFilter {
    pub fn condition(&self) -> ApiResult<Condition> {
        let mut all = Condition::all();
        if let Some(types) = &self.types {
            check_list("types", types)?;
            all = all.add(event::Column::EventType.is_in(types.iter().map(|t| t.as_str())));
        }
        if let Some(id) = &self.contact_id {
            all = all.add(match decode_as(id, NodeKind::Contact) {
                Some(uuid) => event::Column::ContactId.eq(uuid),
                None => Expr::cust("1 = 0"),
            });
        }
        if let Some(f) = &self.occurred_at {
            all = all.add(f.condition(event::Column::OccurredAt.into_expr()));
        }
        for (name, filter, column) in [
            ("name", &self.name, event::Column::Name),
            ("source", &self.source, event::Column::Source),
            ("campaign", &self.campaign, event::Column::Campaign),
            ("utmSource", &self.utm_source, event::Column::UtmSource),
        ] {
            if let Some(f) = filter {
                all = all.add(f.condition(name, column.into_expr())?);
            }
        }
        if let Some(channels) = &self.channels {
            all = all.add(event::Column::Channel.is_in(channels.iter().map(|c| c.as_str())));
        }
        Ok(all)
    }
}

//! Filter inputs: the GraphQL face of the domain's filters (`voxtur_core::*::filter`), field
//! for field, with their descriptions. Each converts into its domain value at the edge
//! ([`IntoDomain`]); the domain compiles it to SQL and stores it (segments).

use crate::companies::CompanySize;
use crate::contacts::{Channel, ConsentStatus, LifecycleStage};
use crate::convert::IntoDomain;
use crate::events::EventType;
use async_graphql::{ID, InputObject, Json};
use chrono::{DateTime, Utc};

/// Conditions on a text field.
#[derive(InputObject, Default, Clone, Debug)]
pub struct StringFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Not equal to (rows where the field is null do not match).
    pub neq: Option<String>,
    /// Equal to one of (at most 1,000 values).
    #[graphql(name = "in")]
    pub in_list: Option<Vec<String>>,
    /// Equal to none of (at most 1,000 values).
    pub not_in: Option<Vec<String>>,
    /// SQL LIKE pattern, case-sensitive: `%` any run of characters, `_` one character.
    pub like: Option<String>,
    /// SQL LIKE pattern, case-insensitive.
    pub ilike: Option<String>,
    /// Starts with this text, case-insensitive (wildcards match literally).
    pub starts_with: Option<String>,
    /// Contains this text, case-insensitive (wildcards match literally).
    pub contains: Option<String>,
    /// `true`: the field is empty; `false`: it has a value.
    pub is_null: Option<bool>,
}

impl IntoDomain<voxtur_store::listing::filters::StringFilter> for StringFilter {
    fn into_domain(self) -> voxtur_store::listing::filters::StringFilter {
        voxtur_store::listing::filters::StringFilter {
            eq: self.eq.into_domain(),
            neq: self.neq.into_domain(),
            in_list: self.in_list.into_domain(),
            not_in: self.not_in.into_domain(),
            like: self.like.into_domain(),
            ilike: self.ilike.into_domain(),
            starts_with: self.starts_with.into_domain(),
            contains: self.contains.into_domain(),
            is_null: self.is_null.into_domain(),
        }
    }
}

/// Conditions on a point in time.
#[derive(InputObject, Default, Clone, Debug)]
pub struct DateTimeFilter {
    /// Equal to.
    pub eq: Option<DateTime<Utc>>,
    /// Strictly after.
    pub gt: Option<DateTime<Utc>>,
    /// At or after.
    pub gte: Option<DateTime<Utc>>,
    /// Strictly before.
    pub lt: Option<DateTime<Utc>>,
    /// At or before.
    pub lte: Option<DateTime<Utc>>,
    /// `true`: the field is empty; `false`: it has a value.
    pub is_null: Option<bool>,
}

impl IntoDomain<voxtur_store::listing::filters::DateTimeFilter> for DateTimeFilter {
    fn into_domain(self) -> voxtur_store::listing::filters::DateTimeFilter {
        voxtur_store::listing::filters::DateTimeFilter {
            eq: self.eq.into_domain(),
            gt: self.gt.into_domain(),
            gte: self.gte.into_domain(),
            lt: self.lt.into_domain(),
            lte: self.lte.into_domain(),
            is_null: self.is_null.into_domain(),
        }
    }
}

/// Conditions on a true/false field.
#[derive(InputObject, Default, Clone, Debug)]
pub struct BooleanFilter {
    /// Equal to.
    pub eq: Option<bool>,
}

impl IntoDomain<voxtur_store::listing::filters::BooleanFilter> for BooleanFilter {
    fn into_domain(self) -> voxtur_store::listing::filters::BooleanFilter {
        voxtur_store::listing::filters::BooleanFilter {
            eq: self.eq.into_domain(),
        }
    }
}

/// Conditions on a reference to a record. Ids of another type or workspace match nothing.
#[derive(InputObject, Default, Clone, Debug)]
pub struct IdFilter {
    /// Equal to.
    pub eq: Option<ID>,
    /// One of (at most 1,000 ids).
    #[graphql(name = "in")]
    pub in_list: Option<Vec<ID>>,
    /// `true`: no reference; `false`: has one.
    pub is_null: Option<bool>,
}

impl IntoDomain<voxtur_core::companies::filter::IdFilter> for IdFilter {
    fn into_domain(self) -> voxtur_core::companies::filter::IdFilter {
        voxtur_core::companies::filter::IdFilter {
            eq: self.eq.into_domain(),
            in_list: self.in_list.into_domain(),
            is_null: self.is_null.into_domain(),
        }
    }
}

/// Conditions on companies. All given fields must hold; combine with `and`, `or`, `not`.
#[derive(InputObject, Default, Clone, Debug)]
pub struct CompanyFilter {
    /// All of these filters hold.
    pub and: Option<Vec<CompanyFilter>>,
    /// At least one of these filters holds.
    pub or: Option<Vec<CompanyFilter>>,
    /// This filter does not hold.
    pub not: Option<Box<CompanyFilter>>,
    /// The company's id.
    pub id: Option<IdFilter>,
    /// Name.
    pub name: Option<StringFilter>,
    /// Web domain (stored lower-cased).
    pub domain: Option<StringFilter>,
    /// Industry.
    pub industry: Option<StringFilter>,
    /// Size band is one of these.
    pub size: Option<Vec<CompanySize>>,
    /// The owning user's id.
    pub owner_id: Option<IdFilter>,
    /// When the company was created.
    pub created_at: Option<DateTimeFilter>,
    /// When the company last changed.
    pub updated_at: Option<DateTimeFilter>,
    /// Custom field conditions; every entry must hold.
    pub custom_fields: Option<Vec<CustomFieldFilter>>,
}

impl IntoDomain<voxtur_core::companies::filter::CompanyFilter> for CompanyFilter {
    fn into_domain(self) -> voxtur_core::companies::filter::CompanyFilter {
        voxtur_core::companies::filter::CompanyFilter {
            and: self.and.into_domain(),
            or: self.or.into_domain(),
            not: self.not.into_domain(),
            id: self.id.into_domain(),
            name: self.name.into_domain(),
            domain: self.domain.into_domain(),
            industry: self.industry.into_domain(),
            size: self.size.into_domain(),
            owner_id: self.owner_id.into_domain(),
            created_at: self.created_at.into_domain(),
            updated_at: self.updated_at.into_domain(),
            custom_fields: self.custom_fields.into_domain(),
        }
    }
}

/// Conditions on contacts. All given fields must hold; combine with `and`, `or`, `not`.
#[derive(InputObject, Default, Clone, Debug)]
pub struct ContactFilter {
    /// All of these filters hold.
    pub and: Option<Vec<ContactFilter>>,
    /// At least one of these filters holds.
    pub or: Option<Vec<ContactFilter>>,
    /// This filter does not hold.
    pub not: Option<Box<ContactFilter>>,
    /// The contact's id.
    pub id: Option<IdFilter>,
    /// Email address (stored lower-cased; `eq` and `in` match case-insensitively).
    pub email: Option<StringFilter>,
    /// First name.
    pub first_name: Option<StringFilter>,
    /// Last name.
    pub last_name: Option<StringFilter>,
    /// Phone number.
    pub phone: Option<StringFilter>,
    /// Lifecycle stage.
    pub lifecycle_stage: Option<LifecycleStageFilter>,
    /// The contact's company matches this filter.
    pub company: Option<CompanyFilter>,
    /// The contact's company id (`isNull: true` for contacts without a company).
    pub company_id: Option<IdFilter>,
    /// The owning user's id.
    pub owner_id: Option<IdFilter>,
    /// Tags.
    pub tags: Option<TagFilter>,
    /// Consent per channel; every entry must hold.
    pub consent: Option<Vec<ChannelConsentFilter>>,
    /// Where the contact came from.
    pub source: Option<StringFilter>,
    /// UTM source of the first touch.
    pub utm_source: Option<StringFilter>,
    /// UTM medium of the first touch.
    pub utm_medium: Option<StringFilter>,
    /// UTM campaign of the first touch.
    pub utm_campaign: Option<StringFilter>,
    /// When the contact was created.
    pub created_at: Option<DateTimeFilter>,
    /// When the contact last changed.
    pub updated_at: Option<DateTimeFilter>,
    /// Custom field conditions; every entry must hold.
    pub custom_fields: Option<Vec<CustomFieldFilter>>,
    /// Anonymous visitor profiles. The `contacts` list leaves them out unless this is given
    /// (`true`: only anonymous profiles; `false`: only identified contacts).
    pub anonymous: Option<bool>,
    /// Time of the earliest recorded event.
    pub first_seen_at: Option<DateTimeFilter>,
    /// Time of the latest recorded event.
    pub last_activity_at: Option<DateTimeFilter>,
    /// Behaviour: what the contact did, counted over its events; every entry must hold.
    pub events: Option<Vec<EventCondition>>,
    /// Membership of segments.
    pub segments: Option<SegmentMembershipFilter>,
}

impl IntoDomain<voxtur_core::contacts::filter::ContactFilter> for ContactFilter {
    fn into_domain(self) -> voxtur_core::contacts::filter::ContactFilter {
        voxtur_core::contacts::filter::ContactFilter {
            and: self.and.into_domain(),
            or: self.or.into_domain(),
            not: self.not.into_domain(),
            id: self.id.into_domain(),
            email: self.email.into_domain(),
            first_name: self.first_name.into_domain(),
            last_name: self.last_name.into_domain(),
            phone: self.phone.into_domain(),
            lifecycle_stage: self.lifecycle_stage.into_domain(),
            company: self.company.into_domain(),
            company_id: self.company_id.into_domain(),
            owner_id: self.owner_id.into_domain(),
            tags: self.tags.into_domain(),
            consent: self.consent.into_domain(),
            source: self.source.into_domain(),
            utm_source: self.utm_source.into_domain(),
            utm_medium: self.utm_medium.into_domain(),
            utm_campaign: self.utm_campaign.into_domain(),
            created_at: self.created_at.into_domain(),
            updated_at: self.updated_at.into_domain(),
            custom_fields: self.custom_fields.into_domain(),
            anonymous: self.anonymous.into_domain(),
            first_seen_at: self.first_seen_at.into_domain(),
            last_activity_at: self.last_activity_at.into_domain(),
            events: self.events.into_domain(),
            segments: self.segments.into_domain(),
        }
    }
}

/// Conditions on the lifecycle stage.
#[derive(InputObject, Default, Clone, Debug)]
pub struct LifecycleStageFilter {
    /// Equal to.
    pub eq: Option<LifecycleStage>,
    /// Not equal to.
    pub neq: Option<LifecycleStage>,
    /// One of.
    #[graphql(name = "in")]
    pub in_list: Option<Vec<LifecycleStage>>,
    /// None of.
    pub not_in: Option<Vec<LifecycleStage>>,
}

impl IntoDomain<voxtur_core::contacts::filter::LifecycleStageFilter> for LifecycleStageFilter {
    fn into_domain(self) -> voxtur_core::contacts::filter::LifecycleStageFilter {
        voxtur_core::contacts::filter::LifecycleStageFilter {
            eq: self.eq.into_domain(),
            neq: self.neq.into_domain(),
            in_list: self.in_list.into_domain(),
            not_in: self.not_in.into_domain(),
        }
    }
}

/// Conditions on tags.
#[derive(InputObject, Default, Clone, Debug)]
pub struct TagFilter {
    /// Has at least one of these tags.
    pub has_any: Option<Vec<String>>,
    /// Has every one of these tags.
    pub has_all: Option<Vec<String>>,
    /// Has none of these tags.
    pub has_none: Option<Vec<String>>,
}

impl IntoDomain<voxtur_core::contacts::filter::TagFilter> for TagFilter {
    fn into_domain(self) -> voxtur_core::contacts::filter::TagFilter {
        voxtur_core::contacts::filter::TagFilter {
            has_any: self.has_any.into_domain(),
            has_all: self.has_all.into_domain(),
            has_none: self.has_none.into_domain(),
        }
    }
}

/// Conditions on one channel's consent.
#[derive(InputObject, Clone, Debug)]
pub struct ChannelConsentFilter {
    /// The channel.
    pub channel: Channel,
    /// Consent status is one of these.
    pub status: Option<Vec<ConsentStatus>>,
    /// The do-not-contact flag equals this.
    pub do_not_contact: Option<bool>,
    /// `true`: consent granted and not flagged do-not-contact; `false`: the opposite.
    pub contactable: Option<bool>,
}

impl IntoDomain<voxtur_core::contacts::filter::ChannelConsentFilter> for ChannelConsentFilter {
    fn into_domain(self) -> voxtur_core::contacts::filter::ChannelConsentFilter {
        voxtur_core::contacts::filter::ChannelConsentFilter {
            channel: self.channel.into_domain(),
            status: self.status.into_domain(),
            do_not_contact: self.do_not_contact.into_domain(),
            contactable: self.contactable.into_domain(),
        }
    }
}

/// A condition on one custom field. Values are JSON typed by the field's definition.
#[derive(InputObject, Clone, Debug)]
pub struct CustomFieldFilter {
    /// The custom field's key.
    pub key: String,
    /// Equal to.
    pub eq: Option<serde_json::Value>,
    /// Not equal to (records without a value do not match).
    pub neq: Option<serde_json::Value>,
    /// Greater than (numbers, dates, text).
    pub gt: Option<serde_json::Value>,
    /// Greater than or equal to.
    pub gte: Option<serde_json::Value>,
    /// Less than.
    pub lt: Option<serde_json::Value>,
    /// Less than or equal to.
    pub lte: Option<serde_json::Value>,
    /// Equal to one of (at most 1,000 values).
    #[graphql(name = "in")]
    pub in_list: Option<Vec<serde_json::Value>>,
    /// Text fields: contains this text, case-insensitive.
    pub contains: Option<String>,
    /// Multi-select fields: holds at least one of these options.
    pub has_any: Option<Vec<String>>,
    /// Multi-select fields: holds all of these options.
    pub has_all: Option<Vec<String>>,
    /// `true`: no value; `false`: has a value.
    pub is_null: Option<bool>,
}

impl IntoDomain<voxtur_core::custom_fields::CustomFieldFilter> for CustomFieldFilter {
    fn into_domain(self) -> voxtur_core::custom_fields::CustomFieldFilter {
        voxtur_core::custom_fields::CustomFieldFilter {
            key: self.key.into_domain(),
            eq: self.eq.into_domain(),
            neq: self.neq.into_domain(),
            gt: self.gt.into_domain(),
            gte: self.gte.into_domain(),
            lt: self.lt.into_domain(),
            lte: self.lte.into_domain(),
            in_list: self.in_list.into_domain(),
            contains: self.contains.into_domain(),
            has_any: self.has_any.into_domain(),
            has_all: self.has_all.into_domain(),
            is_null: self.is_null.into_domain(),
        }
    }
}

/// The contact did (or did not) do something: events of one type, optionally narrowed by name,
/// properties and time, counted. Without a count, "at least once"; without a time, "ever".
#[derive(InputObject, Clone, Debug)]
pub struct EventCondition {
    /// The event type.
    #[graphql(name = "type")]
    pub event_type: EventType,
    /// The event's name (custom events, page names).
    pub name: Option<String>,
    /// Conditions on the event's properties; every entry must hold for an event to count.
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

impl IntoDomain<voxtur_core::events::filter::EventCondition> for EventCondition {
    fn into_domain(self) -> voxtur_core::events::filter::EventCondition {
        voxtur_core::events::filter::EventCondition {
            event_type: self.event_type.into_domain(),
            name: self.name.into_domain(),
            properties: self.properties.into_domain(),
            at_least: self.at_least.into_domain(),
            at_most: self.at_most.into_domain(),
            exactly: self.exactly.into_domain(),
            within_last_days: self.within_last_days.into_domain(),
            since: self.since.into_domain(),
            until: self.until.into_domain(),
        }
    }
}

/// A condition on one property of an event (a top-level key of its `properties`).
#[derive(InputObject, Clone, Debug)]
pub struct PropertyCondition {
    /// The property's key.
    pub key: String,
    /// Equal to this JSON value.
    pub eq: Option<Json<serde_json::Value>>,
    /// Not equal to (events without the property do not match).
    pub neq: Option<Json<serde_json::Value>>,
    /// Greater than (numbers or text).
    pub gt: Option<Json<serde_json::Value>>,
    /// Greater than or equal to.
    pub gte: Option<Json<serde_json::Value>>,
    /// Less than.
    pub lt: Option<Json<serde_json::Value>>,
    /// Less than or equal to.
    pub lte: Option<Json<serde_json::Value>>,
}

impl IntoDomain<voxtur_core::events::filter::PropertyCondition> for PropertyCondition {
    fn into_domain(self) -> voxtur_core::events::filter::PropertyCondition {
        voxtur_core::events::filter::PropertyCondition {
            key: self.key.into_domain(),
            eq: self.eq.into_domain(),
            neq: self.neq.into_domain(),
            gt: self.gt.into_domain(),
            gte: self.gte.into_domain(),
            lt: self.lt.into_domain(),
            lte: self.lte.into_domain(),
        }
    }
}

/// Membership of segments (dynamic or static).
#[derive(InputObject, Default, Clone, Debug)]
pub struct SegmentMembershipFilter {
    /// In at least one of these segments.
    #[graphql(name = "in")]
    pub in_list: Option<Vec<ID>>,
    /// In none of these segments.
    pub not_in: Option<Vec<ID>>,
}

impl IntoDomain<voxtur_core::segments::filter::SegmentMembershipFilter> for SegmentMembershipFilter {
    fn into_domain(self) -> voxtur_core::segments::filter::SegmentMembershipFilter {
        voxtur_core::segments::filter::SegmentMembershipFilter {
            in_list: self.in_list.into_domain(),
            not_in: self.not_in.into_domain(),
        }
    }
}

/// Conditions on a contact's timeline.
#[derive(InputObject, Default, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TimelineFilter {
    /// Only these types.
    pub types: Option<Vec<EventType>>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
}

impl IntoDomain<voxtur_core::events::filter::TimelineFilter> for TimelineFilter {
    fn into_domain(self) -> voxtur_core::events::filter::TimelineFilter {
        voxtur_core::events::filter::TimelineFilter {
            types: self.types.into_domain(),
            since: self.since.into_domain(),
            until: self.until.into_domain(),
        }
    }
}

/// Conditions on events across the workspace.
#[derive(InputObject, Default, Clone, Debug)]
pub struct EventFilter {
    /// Only these types.
    pub types: Option<Vec<EventType>>,
    /// Only events of this contact.
    pub contact_id: Option<ID>,
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

impl IntoDomain<voxtur_core::events::filter::EventFilter> for EventFilter {
    fn into_domain(self) -> voxtur_core::events::filter::EventFilter {
        voxtur_core::events::filter::EventFilter {
            types: self.types.into_domain(),
            contact_id: self.contact_id.into_domain(),
            occurred_at: self.occurred_at.into_domain(),
            name: self.name.into_domain(),
            source: self.source.into_domain(),
            channels: self.channels.into_domain(),
            campaign: self.campaign.into_domain(),
            utm_source: self.utm_source.into_domain(),
        }
    }
}

//! Inputs into domain values, at the edge: [`IntoDomain`] converts a GraphQL input type into the
//! domain's own, field for field, through options, lists, boxes and partial updates.

use crate::companies::CompanySize;
use crate::contacts::{Channel, ConsentStatus, LifecycleStage};
use crate::events::EventType;
use async_graphql::{ID, Json, MaybeUndefined};
use chrono::{DateTime, Utc};
use voxtur_core::Patch;

/// Converts a GraphQL input into its domain value, through options, lists and boxes.
pub trait IntoDomain<T> {
    fn into_domain(self) -> T;
}

impl<A: IntoDomain<B>, B> IntoDomain<Option<B>> for Option<A> {
    fn into_domain(self) -> Option<B> {
        self.map(IntoDomain::into_domain)
    }
}

impl<A: IntoDomain<B>, B> IntoDomain<Vec<B>> for Vec<A> {
    fn into_domain(self) -> Vec<B> {
        self.into_iter().map(IntoDomain::into_domain).collect()
    }
}

impl<A: IntoDomain<B>, B> IntoDomain<Patch<B>> for MaybeUndefined<A> {
    fn into_domain(self) -> Patch<B> {
        match self {
            MaybeUndefined::Undefined => Patch::Keep,
            MaybeUndefined::Null => Patch::Clear,
            MaybeUndefined::Value(value) => Patch::Set(value.into_domain()),
        }
    }
}

impl<A: IntoDomain<B>, B> IntoDomain<Box<B>> for Box<A> {
    fn into_domain(self) -> Box<B> {
        Box::new((*self).into_domain())
    }
}

/// Values the GraphQL layer and the domain share as they are.
macro_rules! same {
    ($($t:ty),*) => {$(
        impl IntoDomain<$t> for $t {
            fn into_domain(self) -> $t {
                self
            }
        }
    )*};
}
same!(String, bool, i32, DateTime<Utc>, serde_json::Value);

/// Enums whose GraphQL type mirrors a domain one (`#[graphql(remote)]` gives the `From`).
macro_rules! mirrored {
    ($($gql:ty => $domain:ty),*) => {$(
        impl IntoDomain<$domain> for $gql {
            fn into_domain(self) -> $domain {
                self.into()
            }
        }
    )*};
}
mirrored!(
    LifecycleStage => entities::enums::LifecycleStage,
    ConsentStatus => entities::enums::ConsentStatus,
    CompanySize => entities::enums::CompanySize,
    Channel => voxtur_core::contacts::Channel,
    EventType => voxtur_core::events::EventType
);

impl IntoDomain<String> for ID {
    fn into_domain(self) -> String {
        self.0
    }
}

impl IntoDomain<serde_json::Value> for Json<serde_json::Value> {
    fn into_domain(self) -> serde_json::Value {
        self.0
    }
}

//! The API's names for stored enumerations (`MARKETING_QUALIFIED` for
//! `LifecycleStage::MarketingQualified`), for inputs kept as JSON. The entities' own serde names
//! are theirs; these are the names clients write, derived from the variant's name so no list
//! has to be kept in step by hand.

use sea_orm::Iterable;
use serde::{Deserialize, Deserializer, Serializer};
use std::fmt::Debug;

/// `MarketingQualified` -> `MARKETING_QUALIFIED`.
pub fn api_name<T: Debug>(value: T) -> String {
    let variant = format!("{value:?}");
    let mut name = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub fn parse<T: Iterable + Debug + Copy>(name: &str) -> Option<T> {
    T::iter().find(|v| api_name(*v) == name)
}

fn parse_or_fail<T: Iterable + Debug + Copy, E: serde::de::Error>(name: &str) -> Result<T, E> {
    parse(name).ok_or_else(|| E::custom(format!("`{name}` is not one of the allowed values")))
}

/// `#[serde(with = "crate::names::option")]` on an `Option<Enum>`.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer, T: Debug + Copy>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_some(&api_name(*v)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Iterable + Debug + Copy>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|name| parse_or_fail(&name))
            .transpose()
    }
}

/// `#[serde(with = "crate::names::option_list")]` on an `Option<Vec<Enum>>`; one value reads as
/// a list of one, as GraphQL coerces it.
pub mod option_list {
    use super::*;

    pub fn serialize<S: Serializer, T: Debug + Copy>(value: &Option<Vec<T>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(list) => serializer.collect_seq(list.iter().map(|v| api_name(*v))),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Iterable + Debug + Copy>(
        deserializer: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        let names: Option<Vec<String>> = voxtur_store::json::one_or_many(deserializer)?;
        names
            .map(|names| names.iter().map(|n| parse_or_fail::<T, D::Error>(n)).collect())
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entities::enums::LifecycleStage;

    #[test]
    fn names_are_the_apis() {
        assert_eq!(api_name(LifecycleStage::MarketingQualified), "MARKETING_QUALIFIED");
        assert_eq!(parse::<LifecycleStage>("LEAD"), Some(LifecycleStage::Lead));
        assert_eq!(parse::<LifecycleStage>("Lead"), None);
    }
}

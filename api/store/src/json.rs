//! Conventions of inputs kept as JSON (a segment's filter): they are read as GraphQL reads its
//! inputs, so whatever a client once sent still loads.

use serde::{Deserialize, Deserializer};

/// A list that may be written as a single value: GraphQL coerces `in: "x"` to `in: ["x"]`, so a
/// stored input can hold either. Absent and `null` stay `None`.
pub fn one_or_many<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match Option::<OneOrMany<T>>::deserialize(deserializer)? {
        None => None,
        Some(OneOrMany::Many(list)) => Some(list),
        Some(OneOrMany::One(value)) => Some(vec![value]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Input {
        #[serde(default, deserialize_with = "one_or_many")]
        list: Option<Vec<String>>,
    }

    #[test]
    fn a_list_may_be_one_value_or_absent() {
        let read = |text: &str| serde_json::from_str::<Input>(text).unwrap().list;
        assert_eq!(
            read(r#"{"list": ["a", "b"]}"#),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(read(r#"{"list": "a"}"#), Some(vec!["a".to_owned()]));
        assert_eq!(read(r#"{"list": null}"#), None);
        assert_eq!(read("{}"), None);
    }
}

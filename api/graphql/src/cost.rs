//! What a request costs, before it runs, for the leaky bucket every key draws on (as GitHub and
//! Shopify meter their GraphQL APIs): each field 1; a connection its page size times what each
//! row asks; a `totalCount` [`TOTAL_COUNT`] (it reads every matching row); each behaviour
//! condition of a filter [`BEHAVIOUR_CONDITION`]; a bulk mutation its items. Aliases count
//! fully, and an operation has at most [`MAX_ROOT_FIELDS`] root fields.
//!
//! The schema's own complexity limit (checked by async-graphql) bounds one request; this cost
//! bounds a key's requests over time. It is computed here, from the parsed document, because
//! async-graphql shares its complexity only with schema extensions, and any extension puts
//! every field's resolution through its chain (a third more CPU for a contacts page).

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value};
use std::collections::HashMap;

/// Root fields (aliases included) an operation may have.
pub const MAX_ROOT_FIELDS: usize = 20;
/// What a `totalCount` costs: a count reads every row the filter matches.
pub const TOTAL_COUNT: u64 = 25;
/// What each behaviour condition of a filter costs (`events: [{type, atLeast, withinLastDays}]`):
/// it reads event tallies or events for every contact the rest of the filter leaves.
pub const BEHAVIOUR_CONDITION: u64 = 100;
/// Fragment spreads followed inside one another, at most (validation refuses cycles anyway).
const MAX_FRAGMENT_DEPTH: usize = 16;

/// An operation's cost, and its root fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub points: u64,
    pub root_fields: usize,
}

/// The cost of the operation a request runs; `None` when the document does not say which
/// (validation then reports it).
pub fn of(document: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> Option<Cost> {
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations.values().next()?,
        _ => return None,
    };
    let walker = Walker {
        fragments: &document.fragments,
        variables,
    };
    let OperationDefinition { selection_set, .. } = &operation.node;
    let root_fields = walker.count_fields(&selection_set.node, 0);
    Some(Cost {
        points: walker.cost(&selection_set.node, 0),
        root_fields,
    })
}

struct Walker<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Variables,
}

impl Walker<'_> {
    fn integer(&self, value: &async_graphql::parser::types::Field, name: &str) -> Option<u64> {
        let argument = value.get_argument(name)?;
        let resolved = argument
            .node
            .clone()
            .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()));
        match resolved {
            Ok(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
    }

    fn list_len(&self, field: &async_graphql::parser::types::Field, name: &str) -> Option<u64> {
        let argument = field.get_argument(name)?;
        let resolved = argument
            .node
            .clone()
            .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()));
        match resolved {
            Ok(Value::List(items)) => Some(items.len() as u64),
            Ok(_) => Some(1),
            Err(()) => None,
        }
    }

    /// The behaviour conditions in a field's `filter` (or a segment input's), however nested.
    fn behaviour_conditions(&self, field: &async_graphql::parser::types::Field) -> u64 {
        fn count(value: &Value) -> u64 {
            match value {
                Value::Object(fields) => fields
                    .iter()
                    .map(|(name, value)| match (name.as_str(), value) {
                        ("events", Value::List(conditions)) => conditions.len() as u64,
                        ("events", Value::Object(_)) => 1,
                        _ => count(value),
                    })
                    .sum(),
                Value::List(items) => items.iter().map(count).sum(),
                _ => 0,
            }
        }
        ["filter", "input"]
            .iter()
            .filter_map(|name| field.get_argument(name))
            .filter_map(|argument| {
                argument
                    .node
                    .clone()
                    .into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(()))
                    .ok()
            })
            .map(|value| count(&value))
            .sum()
    }

    fn count_fields(&self, set: &SelectionSet, depth: usize) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) if field.node.name.node.starts_with("__") => 0,
                Selection::Field(_) => 1,
                Selection::InlineFragment(inline) => self.count_fields(&inline.node.selection_set.node, depth),
                Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.count_fields(&f.node.selection_set.node, depth + 1)),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }

    fn cost(&self, set: &SelectionSet, depth: usize) -> u64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    if name.starts_with("__") {
                        return 0;
                    }
                    if name == "totalCount" {
                        return TOTAL_COUNT;
                    }
                    let children = self.cost(&field.selection_set.node, depth);
                    let page = self.integer(field, "first").or_else(|| self.integer(field, "last"));
                    let rows = match (page, field.get_argument("first").or(field.get_argument("last"))) {
                        (Some(n), _) => n.clamp(1, voxtur_store::listing::MAX_PAGE_SIZE as u64),
                        // A connection without a page size gets the default one.
                        (None, _) if is_connection(field) => voxtur_store::listing::DEFAULT_PAGE_SIZE as u64,
                        (None, _) => 1,
                    };
                    // Bulk mutations: each item is a write.
                    let items = self.list_len(field, "inputs").unwrap_or(1);
                    let behaviour = self.behaviour_conditions(field).saturating_mul(BEHAVIOUR_CONDITION);
                    1 + rows.saturating_mul(children).saturating_mul(items.max(1)) + items.saturating_sub(1) + behaviour
                }
                Selection::InlineFragment(inline) => self.cost(&inline.node.selection_set.node, depth),
                Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.cost(&f.node.selection_set.node, depth + 1)),
                Selection::FragmentSpread(_) => 0,
            })
            .fold(0u64, u64::saturating_add)
    }
}

/// A field whose selection reads rows: `nodes` or `edges` among its children.
fn is_connection(field: &async_graphql::parser::types::Field) -> bool {
    field.selection_set.node.items.iter().any(|item| {
        matches!(&item.node, Selection::Field(child) if matches!(child.node.name.node.as_str(), "nodes" | "edges"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str, variables: serde_json::Value) -> Cost {
        let document = async_graphql::parser::parse_query(query).unwrap();
        of(&document, None, &Variables::from_json(variables)).unwrap()
    }

    #[test]
    fn pages_multiply_what_each_row_asks_and_counts_cost_the_database_s_work() {
        let page = cost(
            "{ contacts(first: 50) { nodes { id email company { name } } } }",
            serde_json::json!({}),
        );
        // contacts 1 + 50 x (nodes 1 + id 1 + email 1 + company 1 + name 1)
        assert_eq!(
            page,
            Cost {
                points: 1 + 50 * 5,
                root_fields: 1
            }
        );
        let counted = cost(
            "query($n: Int) { contacts(first: $n) { totalCount } }",
            serde_json::json!({ "n": 1 }),
        );
        assert_eq!(counted.points, 1 + TOTAL_COUNT);
        let aliases = cost(
            "{ a: contacts(first: 1) { totalCount } b: contacts(first: 1) { totalCount } __typename }",
            serde_json::json!({}),
        );
        assert_eq!(
            aliases,
            Cost {
                points: 2 * (1 + TOTAL_COUNT),
                root_fields: 2
            }
        );
    }

    #[test]
    fn behaviour_conditions_cost_what_they_read() {
        let filtered = cost(
            "query($f: ContactFilter) { segmentPreview(filter: $f) { totalCount } }",
            serde_json::json!({ "f": { "and": [{ "events": [{ "type": "PAGE_VIEWED", "atLeast": 3 }, { "type": "FORM_SUBMITTED" }] }] } }),
        );
        assert_eq!(filtered.points, 1 + TOTAL_COUNT + 2 * BEHAVIOUR_CONDITION);
    }

    #[test]
    fn bulk_mutations_cost_their_items_and_fragments_count() {
        let upsert = cost(
            "mutation($i: [ContactUpsertInput!]!) { contactsUpsert(inputs: $i) { createdCount } }",
            serde_json::json!({ "i": [{}, {}, {}] }),
        );
        assert_eq!(upsert.points, 1 + 3 + 2);
        let fragment = cost(
            "query { ...Root } fragment Root on Query { a: viewer { scopes } b: viewer { scopes } }",
            serde_json::json!({}),
        );
        assert_eq!(
            fragment,
            Cost {
                points: 4,
                root_fields: 2
            }
        );
    }
}

/// Leaky buckets of cost points, one per key, in this process: a request adds its cost; the
/// bucket drains `per_second` points a second; a request that would overflow `capacity` is
/// refused until enough has drained.
pub struct Buckets {
    per_second: f64,
    capacity: f64,
    levels: std::sync::Mutex<HashMap<uuid::Uuid, (f64, std::time::Instant)>>,
}

/// A bucket after a request was charged, or how long until it would fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Charge {
    Charged {
        remaining: u64,
        empty_in: std::time::Duration,
    },
    Refused {
        wait: std::time::Duration,
        remaining: u64,
    },
}

impl Buckets {
    pub fn new(per_second: u64, capacity: u64) -> Buckets {
        Buckets {
            per_second: per_second as f64,
            capacity: capacity.max(1) as f64,
            levels: std::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn charge(&self, key: uuid::Uuid, points: u64) -> Charge {
        let now = std::time::Instant::now();
        let Ok(mut levels) = self.levels.lock() else {
            return Charge::Charged {
                remaining: self.capacity as u64,
                empty_in: Default::default(),
            };
        };
        if levels.len() > 100_000 {
            let per_second = self.per_second;
            levels.retain(|_, (level, at)| *level - now.duration_since(*at).as_secs_f64() * per_second > 0.0);
        }
        let (level, at) = levels.entry(key).or_insert((0.0, now));
        let drained = (*level - now.duration_since(*at).as_secs_f64() * self.per_second).max(0.0);
        let points = points as f64;
        if drained + points > self.capacity {
            *level = drained;
            *at = now;
            let wait = (drained + points - self.capacity) / self.per_second;
            return Charge::Refused {
                wait: std::time::Duration::from_secs_f64(wait.min(3600.0)),
                remaining: (self.capacity - drained) as u64,
            };
        }
        *level = drained + points;
        *at = now;
        Charge::Charged {
            remaining: (self.capacity - *level) as u64,
            empty_in: std::time::Duration::from_secs_f64(*level / self.per_second),
        }
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_what_would_overflow_and_drains_over_time() {
        let buckets = Buckets::new(1_000, 2_000);
        let key = uuid::Uuid::nil();
        assert!(matches!(
            buckets.charge(key, 1_500),
            Charge::Charged { remaining: 500, .. }
        ));
        let Charge::Refused { wait, .. } = buckets.charge(key, 1_000) else {
            panic!("overflow allowed")
        };
        assert!(wait.as_millis() > 400 && wait.as_millis() <= 500, "{wait:?}");
        assert!(
            matches!(buckets.charge(uuid::Uuid::max(), 2_000), Charge::Charged { .. }),
            "keys apart"
        );
        std::thread::sleep(std::time::Duration::from_millis(520));
        assert!(matches!(buckets.charge(key, 1_000), Charge::Charged { .. }));
    }
}

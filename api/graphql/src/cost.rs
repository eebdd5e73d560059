//! What a request costs, for the leaky bucket every key draws on (as GitHub and Shopify meter
//! their GraphQL APIs): each field 1; a connection's rows (`nodes`, `edges`) its page size times
//! what each row asks; a `totalCount` [`TOTAL_COUNT`] (it reads every matching row); each
//! behaviour condition of a filter [`BEHAVIOUR_CONDITION`]; a bulk mutation its items. Aliases
//! count fully, and an operation has at most [`MAX_ROOT_FIELDS`] root fields.
//!
//! The cost is computed twice: `requested` before the request runs, from the page sizes asked
//! for (it must fit in the bucket), and `actual` after, from the rows the answer holds (what
//! the bucket is charged): a page of 50 that found 3 contacts costs what 3 cost.
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

/// The requested cost of the operation a request runs; `None` when the document does not say
/// which (validation then reports it).
pub fn of(document: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> Option<Cost> {
    let operation = operation(document, operation_name)?;
    let walker = Walker {
        fragments: &document.fragments,
        variables,
    };
    let OperationDefinition { selection_set, .. } = &operation.node;
    let root_fields = walker.count_fields(&selection_set.node, 0);
    Some(Cost {
        points: walker.cost(&selection_set.node, 0, Rows::Requested { page: None }),
        root_fields,
    })
}

/// The actual cost of an operation that ran, priced by the rows its answer (`data`) holds.
pub fn actual(document: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables, data: &Value) -> u64 {
    let Some(operation) = operation(document, operation_name) else {
        return 0;
    };
    let walker = Walker {
        fragments: &document.fragments,
        variables,
    };
    walker.cost(&operation.node.selection_set.node, 0, Rows::Answered(data))
}

fn operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some(operation),
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations.values().next(),
        _ => None,
    }
}

/// What the walk prices rows by: the page size asked for (of the connection whose selection
/// is being walked, if it is one), or the part of the answer that selection produced.
#[derive(Clone, Copy)]
enum Rows<'v> {
    Requested { page: Option<u64> },
    Answered(&'v Value),
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

    /// Whether a selection is a connection's: its rows (`nodes`, `edges`), count or page info,
    /// fragments followed.
    fn is_connection(&self, set: &SelectionSet, depth: usize) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(child) => matches!(
                child.node.name.node.as_str(),
                "nodes" | "edges" | "totalCount" | "pageInfo"
            ),
            Selection::InlineFragment(inline) => self.is_connection(&inline.node.selection_set.node, depth),
            Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| self.is_connection(&f.node.selection_set.node, depth + 1)),
            Selection::FragmentSpread(_) => false,
        })
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

    fn cost(&self, set: &SelectionSet, depth: usize, rows: Rows<'_>) -> u64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => self.field_cost(&field.node, depth, rows),
                Selection::InlineFragment(inline) => self.cost(&inline.node.selection_set.node, depth, rows),
                Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.cost(&f.node.selection_set.node, depth + 1, rows)),
                Selection::FragmentSpread(_) => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    fn field_cost(&self, field: &async_graphql::parser::types::Field, depth: usize, rows: Rows<'_>) -> u64 {
        let name = field.name.node.as_str();
        if name.starts_with("__") {
            return 0;
        }
        let answer = match rows {
            Rows::Requested { .. } => None,
            Rows::Answered(Value::Object(fields)) => match fields.get(field.response_key().node.as_str()) {
                Some(answer) => Some(answer),
                // Skipped, or on a type the object is not: it did not run.
                None => return 0,
            },
            Rows::Answered(_) => return 0,
        };
        if name == "totalCount" {
            return TOTAL_COUNT;
        }
        // Bulk mutations: each item is a write.
        let items = self.list_len(field, "inputs").unwrap_or(1).max(1);
        let behaviour = self.behaviour_conditions(field).saturating_mul(BEHAVIOUR_CONDITION);
        let own = 1 + (items - 1) + behaviour;
        let children = &field.selection_set.node;
        let below = match (rows, answer) {
            (Rows::Requested { page }, _) => {
                let asked = self
                    .integer(field, "first")
                    .or_else(|| self.integer(field, "last"))
                    .map(|n| n.clamp(1, voxtur_store::listing::MAX_PAGE_SIZE as u64));
                let connection = self.is_connection(children, depth);
                // A connection without a page size gets the default one.
                let own_page = asked.or(connection.then_some(voxtur_store::listing::DEFAULT_PAGE_SIZE as u64));
                let per_row = self.cost(children, depth, Rows::Requested { page: own_page });
                let repeated = match (page, name) {
                    // The rows of the connection above: one of each per row of the page.
                    (Some(page), "nodes" | "edges") => page,
                    // A plain list of rows with a page size of its own.
                    (_, _) if !connection => asked.unwrap_or(1),
                    _ => 1,
                };
                per_row.saturating_mul(repeated).saturating_mul(items)
            }
            (Rows::Answered(_), Some(Value::List(answers))) => answers
                .iter()
                .map(|answer| self.cost(children, depth, Rows::Answered(answer)))
                .fold(0u64, u64::saturating_add),
            (Rows::Answered(_), Some(answer)) => self.cost(children, depth, Rows::Answered(answer)),
            (Rows::Answered(_), None) => 0,
        };
        own.saturating_add(below)
    }
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
        // contacts 1 + nodes 1 + 50 x (id 1 + email 1 + company 1 + name 1)
        assert_eq!(
            page,
            Cost {
                points: 1 + 1 + 50 * 4,
                root_fields: 1
            }
        );
        let counted = cost(
            "query($n: Int) { contacts(first: $n) { totalCount pageInfo { hasNextPage } } }",
            serde_json::json!({ "n": 50 }),
        );
        assert_eq!(counted.points, 1 + TOTAL_COUNT + 2, "a count is not paid per row");
        let spread = cost(
            "{ contacts { ...Page } } fragment Page on ContactConnection { nodes { id } }",
            serde_json::json!({}),
        );
        let default_page = voxtur_store::listing::DEFAULT_PAGE_SIZE as u64;
        assert_eq!(
            spread.points,
            1 + 1 + default_page,
            "rows behind a fragment, at the default page size"
        );
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

    #[test]
    fn the_actual_cost_prices_the_rows_the_answer_holds() {
        let query = "query($f: ContactFilter) { contacts(first: 50, filter: $f) { totalCount nodes { id ... on Contact { email } } } \
                     other: viewer { scopes } }";
        let variables = Variables::from_json(serde_json::json!({ "f": { "events": [{ "type": "PAGE_VIEWED" }] } }));
        let document = async_graphql::parser::parse_query(query).unwrap();
        let requested = of(&document, None, &variables).unwrap().points;
        assert_eq!(requested, 1 + BEHAVIOUR_CONDITION + TOTAL_COUNT + 1 + 50 * 2 + 2);
        let data = Value::from_json(serde_json::json!({
            "contacts": { "totalCount": 3, "nodes": [
                { "id": "a", "email": "a@x" }, { "id": "b", "email": null }, { "id": "c", "email": "c@x" }
            ] },
            "other": { "scopes": ["contacts:read"] },
        }))
        .unwrap();
        assert_eq!(
            actual(&document, None, &variables, &data),
            1 + BEHAVIOUR_CONDITION + TOTAL_COUNT + 1 + 3 * 2 + 2
        );
        let failed = Value::from_json(serde_json::json!({ "contacts": null, "other": { "scopes": [] } })).unwrap();
        assert_eq!(
            actual(&document, None, &variables, &failed),
            1 + BEHAVIOUR_CONDITION + 2,
            "a field that failed costs itself, not its rows"
        );
        assert_eq!(actual(&document, None, &variables, &Value::Null), 0, "nothing ran");
    }
}

//! What a request costs, for the leaky bucket every key draws on (as GitHub and Shopify meter
//! their GraphQL APIs): each field 1; a connection's rows (`nodes`, `edges`) its page size times
//! what each row asks; a `totalCount` [`TOTAL_COUNT`] (it reads every matching row); each
//! behaviour condition of a filter [`BEHAVIOUR_CONDITION`]; a bulk mutation its items. Aliases
//! count fully, and an operation has at most [`MAX_ROOT_FIELDS`] root fields.
//!
//! The cost is computed twice: `requested` before the request runs, from the page sizes asked
//! for (it must fit in the bucket), and `actual` after (what the bucket is charged): the
//! requested cost less what the root fields did not use, a page of 50 that found 3 contacts
//! costing what 3 cost, a root field that failed costing itself only. Pages nested in rows are
//! charged as requested: pricing every row of the answer cost a contacts page a tenth more
//! instructions (docs/perf-history.md, nineteenth session).
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
        points: walker.cost(&selection_set.node, 0, None),
        root_fields,
    })
}

/// The actual cost of an operation that ran and answered `data`, out of its `requested` cost.
pub fn actual(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    data: &Value,
    requested: u64,
) -> u64 {
    let Some(operation) = operation(document, operation_name) else {
        return 0;
    };
    let walker = Walker {
        fragments: &document.fragments,
        variables,
    };
    requested.saturating_sub(walker.unused(&operation.node.selection_set.node, 0, data))
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

    /// What a selection costs; `page` is the page size of the connection it selects from, if
    /// it is one (its `nodes` and `edges` repeat once a row).
    fn cost(&self, set: &SelectionSet, depth: usize, page: Option<u64>) -> u64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => self.field_cost(&field.node, depth, page),
                Selection::InlineFragment(inline) => self.cost(&inline.node.selection_set.node, depth, page),
                Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.cost(&f.node.selection_set.node, depth + 1, page)),
                Selection::FragmentSpread(_) => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// A field's requested cost: itself, its filter's behaviour conditions, its bulk items, and
    /// what it selects (its rows' part once a row of the page).
    fn field_cost(&self, field: &async_graphql::parser::types::Field, depth: usize, page: Option<u64>) -> u64 {
        let name = field.name.node.as_str();
        if name.starts_with("__") {
            return 0;
        }
        if name == "totalCount" {
            return TOTAL_COUNT;
        }
        let own = self.own_cost(field);
        let (per_row, repeated) = self.rows(field, depth, page);
        let items = self.list_len(field, "inputs").unwrap_or(1).max(1);
        own.saturating_add(per_row.saturating_mul(repeated).saturating_mul(items))
    }

    /// A field's cost without what it selects: 1, its behaviour conditions, its bulk items.
    fn own_cost(&self, field: &async_graphql::parser::types::Field) -> u64 {
        let items = self.list_len(field, "inputs").unwrap_or(1).max(1);
        let behaviour = self.behaviour_conditions(field).saturating_mul(BEHAVIOUR_CONDITION);
        1 + (items - 1) + behaviour
    }

    /// What one row of a field's selection costs, and how many rows are asked for.
    fn rows(&self, field: &async_graphql::parser::types::Field, depth: usize, page: Option<u64>) -> (u64, u64) {
        let children = &field.selection_set.node;
        let asked = self.page_size(field);
        let connection = self.is_connection(children, depth);
        // A connection without a page size gets the default one.
        let own_page = asked.or(connection.then_some(voxtur_store::listing::DEFAULT_PAGE_SIZE as u64));
        let per_row = self.cost(children, depth, own_page);
        let repeated = match (page, field.name.node.as_str()) {
            // The rows of the connection above: one of each per row of the page.
            (Some(page), "nodes" | "edges") => page,
            // A plain list of rows with a page size of its own.
            (_, _) if !connection => asked.unwrap_or(1),
            _ => 1,
        };
        (per_row, repeated)
    }

    fn page_size(&self, field: &async_graphql::parser::types::Field) -> Option<u64> {
        self.integer(field, "first")
            .or_else(|| self.integer(field, "last"))
            .map(|n| n.clamp(1, voxtur_store::listing::MAX_PAGE_SIZE as u64))
    }

    /// What the root fields of an answer did not use of their requested cost: the rows a
    /// connection's page did not fill, and all below a field that answered null or not at all.
    fn unused(&self, set: &SelectionSet, depth: usize, data: &Value) -> u64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if field.name.node.starts_with("__") {
                        return 0;
                    }
                    let answer = match data {
                        Value::Object(fields) => fields.get(field.response_key().node.as_str()),
                        _ => None,
                    };
                    match answer {
                        // It did not run: nothing of it is charged.
                        None => self.field_cost(field, depth, None),
                        // It failed or found nothing: only itself is charged.
                        Some(Value::Null) => self.field_cost(field, depth, None).saturating_sub(self.own_cost(field)),
                        Some(answer) => self.unfilled(field, depth, answer),
                    }
                }
                Selection::InlineFragment(inline) => self.unused(&inline.node.selection_set.node, depth, data),
                Selection::FragmentSpread(spread) if depth < MAX_FRAGMENT_DEPTH => self
                    .fragments
                    .get(&spread.node.fragment_name.node)
                    .map_or(0, |f| self.unused(&f.node.selection_set.node, depth + 1, data)),
                Selection::FragmentSpread(_) => 0,
            })
            .fold(0u64, u64::saturating_add)
    }

    /// The rows of a connection's page that its answer did not fill, at their requested cost.
    fn unfilled(&self, field: &async_graphql::parser::types::Field, depth: usize, answer: &Value) -> u64 {
        let children = &field.selection_set.node;
        if !self.is_connection(children, depth) {
            return 0;
        }
        let page = self
            .page_size(field)
            .unwrap_or(voxtur_store::listing::DEFAULT_PAGE_SIZE as u64);
        let Value::Object(answered) = answer else {
            return 0;
        };
        children
            .items
            .iter()
            .filter_map(|item| match &item.node {
                Selection::Field(child) if matches!(child.node.name.node.as_str(), "nodes" | "edges") => {
                    Some(&child.node)
                }
                _ => None,
            })
            .map(|rows| {
                let filled = match answered.get(rows.response_key().node.as_str()) {
                    Some(Value::List(list)) => list.len() as u64,
                    _ => 0,
                };
                let per_row = self.cost(&rows.selection_set.node, depth, None);
                page.saturating_sub(filled).saturating_mul(per_row)
            })
            .fold(0u64, u64::saturating_add)
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
            actual(&document, None, &variables, &data, requested),
            1 + BEHAVIOUR_CONDITION + TOTAL_COUNT + 1 + 3 * 2 + 2
        );
        let failed = Value::from_json(serde_json::json!({ "contacts": null, "other": { "scopes": [] } })).unwrap();
        assert_eq!(
            actual(&document, None, &variables, &failed, requested),
            1 + BEHAVIOUR_CONDITION + 2,
            "a field that failed costs itself, not its rows"
        );
        assert_eq!(
            actual(&document, None, &variables, &Value::Null, requested),
            0,
            "nothing ran"
        );
    }
}

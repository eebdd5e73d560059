//! Relay plumbing: opaque global ids, `PageInfo`, and the connection types.

use async_graphql::{ID, SimpleObject};
use uuid::Uuid;

pub use voxtur_core::ids::{NodeKind, decode_as, decode_id};

/// A record's global id as a GraphQL `ID`.
pub trait NodeId {
    fn id(self, uuid: Uuid) -> ID;
}

impl NodeId for NodeKind {
    fn id(self, uuid: Uuid) -> ID {
        ID(self.encode(uuid))
    }
}

/// Where a page sits in its list.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct PageInfo {
    /// More rows follow this page.
    pub has_next_page: bool,
    /// Rows precede this page.
    pub has_previous_page: bool,
    /// Cursor of the first row of the page.
    pub start_cursor: Option<String>,
    /// Cursor of the last row of the page.
    pub end_cursor: Option<String>,
}

/// Query cost of a connection: its page size times the cost of each node.
pub fn connection_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let size = first
        .or(last)
        .unwrap_or(voxtur_store::listing::DEFAULT_PAGE_SIZE as i32)
        .clamp(1, voxtur_store::listing::MAX_PAGE_SIZE as i32) as usize;
    1 + size * child_complexity
}

/// Declares `<Name>Connection` and `<Name>Edge` for a node type built from a row type.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty, $row:ty) => {
        #[doc = concat!("An edge in a ", stringify!($connection), ".")]
        #[derive(async_graphql::SimpleObject)]
        #[graphql(serial)]
        pub struct $edge {
            /// Opaque position of this row, for `after` / `before`.
            pub cursor: String,
            /// The row.
            pub node: $node,
        }

        #[doc = concat!("A page of ", stringify!($node), " rows (Relay connection, keyset cursors).")]
        pub struct $connection {
            pub edges: Vec<$edge>,
            pub page_info: $crate::relay::PageInfo,
            pub total_count: Option<u64>,
        }

        #[doc = concat!("A page of ", stringify!($node), " rows (Relay connection, keyset cursors).")]
        #[async_graphql::Object(serial)]
        impl $connection {
            /// The rows with their cursors.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            /// The rows, without cursors.
            async fn nodes(&self) -> Vec<&$node> {
                self.edges.iter().map(|e| &e.node).collect()
            }

            /// Where this page sits.
            async fn page_info(&self) -> &$crate::relay::PageInfo {
                &self.page_info
            }

            /// Number of rows matching the filter, across all pages.
            async fn total_count(&self) -> u64 {
                self.total_count.unwrap_or_default()
            }
        }

        impl From<voxtur_store::listing::Page<$row>> for $connection {
            fn from(page: voxtur_store::listing::Page<$row>) -> Self {
                let page_info = $crate::relay::PageInfo {
                    has_next_page: page.has_next_page,
                    has_previous_page: page.has_previous_page,
                    start_cursor: page.rows.first().map(|(c, _)| c.clone()),
                    end_cursor: page.rows.last().map(|(c, _)| c.clone()),
                };
                $connection {
                    edges: page
                        .rows
                        .into_iter()
                        .map(|(cursor, row)| $edge {
                            cursor,
                            node: <$node>::from(row),
                        })
                        .collect(),
                    page_info,
                    total_count: page.total_count,
                }
            }
        }
    };
}
pub(crate) use connection;

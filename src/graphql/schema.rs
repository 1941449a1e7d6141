//! The schema: the root types merged from one file per resource, the limits from
//! `graphql.*` (depth and aliases: [`ShapeLimits`]; complexity; introspection), the `Long`
//! scalar, and what every resolver takes from its context ([`app`], [`principal`]).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    Context, ID, InputValueError, InputValueResult, MergedObject, Response, Scalar, ScalarType, Schema, SchemaBuilder,
    ServerError, ServerResult, Value, Variables,
};
use uuid::Uuid;

use super::error::{Gql, bad_input};
use super::{accounts, dashboard, orders, products, subscriptions};
use crate::auth::Principal;
use crate::auth::resolve::Resolved;
use crate::config::{GraphqlConfig, Mode};
use crate::services::AppState;

/// Every query field.
#[derive(MergedObject, Default)]
pub struct Query(products::ProductQueries, orders::OrderQueries, accounts::AccountQueries, dashboard::DashboardQueries);

/// Every mutation field.
#[derive(MergedObject, Default)]
pub struct Mutation(products::ProductMutations, orders::OrderMutations);

/// The schema served at `/graphql`.
pub type OrderlySchema = Schema<Query, Mutation, subscriptions::Subscription>;

/// The schema with the limits of `config` (introspection as `mode` implies), without data:
/// the router adds the application ([`AppState`]).
pub fn builder(config: &GraphqlConfig, mode: Mode) -> SchemaBuilder<Query, Mutation, subscriptions::Subscription> {
    // Depth is ours (`ShapeLimits`): async-graphql's `limit_depth` counts introspection too,
    // and every standard client's introspection query is deeper than any sane limit.
    let limits = ShapeLimits { max_aliases: config.max_aliases, max_depth: config.max_depth };
    let b = Schema::build(Query::default(), Mutation::default(), subscriptions::Subscription)
        .limit_complexity(config.max_complexity)
        .limit_recursive_depth(64)
        .limit_directives(10)
        .extension(limits);
    if config.introspection_in(mode) { b } else { b.disable_introspection() }
}

/// The schema's SDL, as committed in `schema.graphql` (checked by the test suite).
pub fn sdl() -> String {
    let config = GraphqlConfig::default();
    builder(&config, Mode::Development).finish().sdl()
}

/// The application, put into the schema by the router.
pub fn app<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The caller: resolved once per request (POST) or connection (WebSocket) from its
/// credentials; refused credentials are `UNAUTHENTICATED` for every field that asks.
pub fn principal(ctx: &Context<'_>) -> async_graphql::Result<Principal> {
    match ctx.data_opt::<Resolved>() {
        Some(r) => r.clone().into_result().gql(),
        None => Ok(Principal::anonymous()),
    }
}

/// An `ID` argument as a UUID; `BAD_USER_INPUT` on `field` otherwise.
pub fn uuid(field: &str, id: &ID) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| bad_input(field, "is not an id of this API"))
}

/// A 64-bit signed integer as a JSON number: money in minor units, stock units, event
/// sequence numbers. (GraphQL's `Int` is 32-bit; prices go up to 10^12.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Long(pub i64);

/// A 64-bit signed integer as a JSON number (money in minor units, stock units, `seq`).
#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n.as_i64().map(Long).ok_or_else(|| InputValueError::custom("must be a whole number")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// A small count (line numbers, quantities) as GraphQL `Int`.
pub fn int(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// Refuses a document right after parsing (before validation, before any resolver) with
/// more than `max_aliases` aliased fields (fragment spreads counted where used: aliases let
/// one shallow query ask for the same expensive field many times; async-graphql has no
/// such limit) or nested deeper than `max_depth` outside introspection ([`Shape`]). Also
/// gives every error without a code one (`GRAPHQL_VALIDATION_FAILED`).
#[derive(Debug, Clone, Copy)]
pub struct ShapeLimits {
    pub max_aliases: usize,
    pub max_depth: usize,
}

impl ExtensionFactory for ShapeLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ShapeLimits {
    /// Errors that carry no code come from parsing and validation (the depth and complexity
    /// limits among them): `GRAPHQL_VALIDATION_FAILED`, as Apollo names them.
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for e in &mut response.errors {
            let ext = e.extensions.get_or_insert_with(Default::default);
            if ext.get("code").is_none() {
                ext.set("code", "GRAPHQL_VALIDATION_FAILED");
            }
        }
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let shape = measure(&doc);
        let refuse = |message: String, code: &str, reason: &str, limit: (&str, usize)| {
            let mut err = ServerError::new(message, None);
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", code);
            ext.set("reason", reason);
            ext.set(limit.0, limit.1 as u64);
            err.extensions = Some(ext);
            Err(err)
        };
        if shape.aliases > self.max_aliases {
            let message = format!("the query has more than {} aliases", self.max_aliases);
            return refuse(message, "BAD_USER_INPUT", "too-many-aliases", ("maxAliases", self.max_aliases));
        }
        if shape.depth > self.max_depth {
            let message = format!("the query is nested too deep: at most {} levels", self.max_depth);
            return refuse(message, "GRAPHQL_VALIDATION_FAILED", "too-deep", ("maxDepth", self.max_depth));
        }
        Ok(doc)
    }
}

/// What [`measure`] found in a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Aliased fields, fragments counted where spread (saturating).
    pub aliases: usize,
    /// The deepest field nesting outside introspection (`__schema`, `__type`: bounded by
    /// the schema itself and switched off with `graphql.introspection`). Standard clients'
    /// introspection queries nest about 13 deep, which a depth limit must not refuse.
    pub depth: usize,
}

/// The [`Shape`] of `doc`. Each fragment is measured once (memoized, so nested spreads
/// cannot make this exponential); a fragment cycle (refused by validation later) counts
/// as empty.
pub fn measure(doc: &ExecutableDocument) -> Shape {
    let mut memo = std::collections::HashMap::new();
    let mut total = Shape::default();
    let sets: Vec<&SelectionSet> = match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node.selection_set.node).collect(),
    };
    for set in sets {
        let s = walk(doc, set, &mut memo);
        total.aliases = total.aliases.saturating_add(s.aliases);
        total.depth = total.depth.max(s.depth);
    }
    total
}

fn walk<'d>(
    doc: &'d ExecutableDocument,
    set: &'d SelectionSet,
    memo: &mut std::collections::HashMap<&'d str, Option<Shape>>,
) -> Shape {
    let mut shape = Shape::default();
    for item in &set.items {
        let inner = match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                let mut s = if name == "__schema" || name == "__type" {
                    Shape::default()
                } else {
                    let mut s = walk(doc, &f.node.selection_set.node, memo);
                    s.depth += 1;
                    s
                };
                if f.node.alias.is_some() {
                    s.aliases = s.aliases.saturating_add(1);
                }
                s
            }
            Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, memo),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match memo.get(name) {
                    Some(Some(s)) => *s,
                    // In progress: a cycle.
                    Some(None) => Shape::default(),
                    None => match doc.fragments.get(&spread.node.fragment_name.node) {
                        Some(frag) => {
                            memo.insert(name, None);
                            let s = walk(doc, &frag.node.selection_set.node, memo);
                            memo.insert(name, Some(s));
                            s
                        }
                        None => Shape::default(),
                    },
                }
            }
        };
        shape.aliases = shape.aliases.saturating_add(inner.aliases);
        shape.depth = shape.depth.max(inner.depth);
    }
    shape
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(q: &str) -> usize {
        measure(&async_graphql::parser::parse_query(q).unwrap()).aliases
    }

    fn depth(q: &str) -> usize {
        measure(&async_graphql::parser::parse_query(q).unwrap()).depth
    }

    #[test]
    fn depth_counts_fields_through_fragments_but_not_introspection() {
        assert_eq!(depth("{ me { id } }"), 2);
        assert_eq!(depth("{ orders { edges { ...E } } } fragment E on OrderEdge { node { id } }"), 4);
        assert_eq!(depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"), 0);
        // Nested spreads are measured once each, not once per path.
        let mut q = String::from("{ ...F0 }");
        for i in 0..40 {
            q.push_str(&format!(" fragment F{i} on Query {{ ...F{} ...F{} }}", i + 1, i + 1));
        }
        q.push_str(" fragment F40 on Query { a: me { id } }");
        assert_eq!(depth(&q), 2);
        assert_eq!(aliases(&q), 1 << 40, "computed once per fragment, not in 2^40 walks");
    }

    #[test]
    fn aliases_are_counted_in_fragments_where_they_are_spread() {
        assert_eq!(aliases("{ a: me { id } b: me { id } }"), 2);
        assert_eq!(aliases("{ ...F ...F } fragment F on Query { x: me { id } }"), 2);
        assert_eq!(aliases("{ ... on Query { y: me { z: id } } }"), 2);
        assert_eq!(aliases("{ ...F } fragment F on Query { ...F }"), 0, "a cycle does not loop");
    }
}

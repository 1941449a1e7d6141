//! The schema: the root types merged from one file per resource, the limits from
//! `graphql.*` (depth, complexity, aliases: [`AliasLimit`]; introspection), the `Long`
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
    let b = Schema::build(Query::default(), Mutation::default(), subscriptions::Subscription)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(10)
        .extension(AliasLimit(config.max_aliases));
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

/// Refuses a document with more than `.0` aliased fields (fragment spreads counted where
/// they are used) right after parsing: before validation, before any resolver. Aliases let
/// one shallow query ask for the same expensive field many times. Also gives every error
/// without a code one (`GRAPHQL_VALIDATION_FAILED`).
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
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
        let found = count_aliases(&doc, self.0);
        if found > self.0 {
            let mut err = ServerError::new(format!("the query has more than {} aliases", self.0), None);
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", "BAD_USER_INPUT");
            ext.set("reason", "too-many-aliases");
            ext.set("maxAliases", self.0 as u64);
            err.extensions = Some(ext);
            return Err(err);
        }
        Ok(doc)
    }
}

/// Aliases in `doc`'s operations, fragments expanded where spread; stops counting once
/// past `limit`.
pub fn count_aliases(doc: &ExecutableDocument, limit: usize) -> usize {
    let mut n = 0;
    let mut stack = Vec::new();
    let sets: Vec<&SelectionSet> = match &doc.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => ops.values().map(|op| &op.node.selection_set.node).collect(),
    };
    for set in sets {
        walk(doc, set, limit, &mut n, &mut stack);
    }
    n
}

fn walk<'d>(doc: &'d ExecutableDocument, set: &'d SelectionSet, limit: usize, n: &mut usize, stack: &mut Vec<&'d str>) {
    for item in &set.items {
        if *n > limit {
            return;
        }
        match &item.node {
            Selection::Field(f) => {
                if f.node.alias.is_some() {
                    *n += 1;
                }
                walk(doc, &f.node.selection_set.node, limit, n, stack);
            }
            Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, limit, n, stack),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                // A cycle is refused by validation later; here it only must not loop.
                if stack.contains(&name) {
                    continue;
                }
                if let Some(frag) = doc.fragments.get(&s.node.fragment_name.node) {
                    stack.push(name);
                    walk(doc, &frag.node.selection_set.node, limit, n, stack);
                    stack.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(q: &str) -> usize {
        count_aliases(&async_graphql::parser::parse_query(q).unwrap(), 1000)
    }

    #[test]
    fn aliases_are_counted_in_fragments_where_they_are_spread() {
        assert_eq!(aliases("{ a: me { id } b: me { id } }"), 2);
        assert_eq!(aliases("{ ...F ...F } fragment F on Query { x: me { id } }"), 2);
        assert_eq!(aliases("{ ... on Query { y: me { z: id } } }"), 2);
        assert_eq!(aliases("{ ...F } fragment F on Query { ...F }"), 0, "a cycle does not loop");
    }
}

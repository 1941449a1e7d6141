//! The `graphql` section: limits of the GraphQL endpoint (`/graphql`, src/graphql.rs),
//! checked on the parsed document before any resolver runs. See docs/GRAPHQL.md and
//! docs/OPERATIONS.md, "GraphQL".

use serde::{Deserialize, Serialize};

use super::{ConfigError, Mode};

/// GraphQL limits (env `ORDERLY_GRAPHQL_*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Deepest selection nesting accepted (the operation's root fields are depth 1).
    pub max_depth: usize,
    /// Highest complexity accepted: each field costs 1, a list field costs its page size
    /// (`first`, default 20) times its selection.
    pub max_complexity: usize,
    /// Most aliased fields in one document (aliases multiply work without nesting).
    pub max_aliases: usize,
    /// Whether `__schema`/`__type` queries are answered. Unset: on in development mode, off
    /// in production mode (the SDL is published in the repository as `schema.graphql`).
    pub introspection: Option<bool>,
    /// Adds `extensions.sqlQueries` (database statements the request ran) to each response:
    /// a diagnostic for N+1 hunting and the DataLoader tests. Off by default.
    pub report_sql_queries: bool,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self { max_depth: 10, max_complexity: 500, max_aliases: 30, introspection: None, report_sql_queries: false }
    }
}

impl GraphqlConfig {
    /// Whether introspection is on in `mode` (see [`GraphqlConfig::introspection`]).
    pub fn introspection_in(&self, mode: Mode) -> bool {
        self.introspection.unwrap_or(mode == Mode::Development)
    }

    /// Fails naming the key: every limit must be positive.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for (key, v) in
            [("max_depth", self.max_depth), ("max_complexity", self.max_complexity), ("max_aliases", self.max_aliases)]
        {
            if v == 0 {
                return Err(ConfigError(format!("`graphql.{key}` must be positive")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode};

    #[test]
    fn introspection_follows_the_mode_unless_set() {
        let dev = Config::default();
        assert!(dev.graphql.introspection_in(dev.mode));
        assert!(!dev.graphql.introspection_in(Mode::Production));
        let off = Config::from_pairs([("graphql.introspection", "false".to_string())]).unwrap();
        assert!(!off.graphql.introspection_in(Mode::Development));
    }

    #[test]
    fn a_zero_limit_is_refused_naming_the_key() {
        let err = Config::from_pairs([("graphql.max_aliases", "0".to_string())]).unwrap_err();
        assert!(err.to_string().contains("graphql.max_aliases"), "{err}");
    }
}

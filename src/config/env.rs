//! `ORDERLY_*` environment variables: which ones are configuration keys, how their names map
//! onto dotted keys (by their first word: `ORDERLY_DATABASE_URL` is `database.url`,
//! `ORDERLY_DATA_DIR` is `data_dir`), and what to say about the others.
//!
//! Orchestrators set `ORDERLY_*` variables orderly does not own: Kubernetes injects
//! service links for a Service named `orderly` (`ORDERLY_PORT=tcp://10.0.0.1:8080`,
//! `ORDERLY_SERVICE_HOST`, …). Those are ignored with one warning naming them, never a
//! refusal to start; a likely typo of a real key is pointed out.

use std::collections::BTreeSet;

use figment::providers::Env;

use super::Config;

/// Sections whose keys are reachable as `ORDERLY_<SECTION>_<KEY>`.
pub(super) const SECTIONS: &[&str] = &[
    "http",
    "database",
    "auth",
    "checkout",
    "payments",
    "dashboard",
    "log",
    "flags",
    "idempotency",
    "admin",
    "ratelimit",
    "redis",
    "cache",
    "catalog",
    "grpc",
    "events",
    "nats",
    "realtime",
    "webhooks",
    "storage",
    "graphql",
    "jobs",
    "imports",
];

/// `ORDERLY_*` variables that are not configuration keys but belong to orderly: the CLI's
/// `--config` (`ORDERLY_CONFIG`), `user create-admin`'s password, and the test suite's
/// `ORDERLY_TEST_*`. Lower case, without the prefix.
fn is_reserved(name: &str) -> bool {
    name == "config" || name == "admin_password" || name.starts_with("test_")
}

/// Every configuration key as its environment name without the prefix, lower case:
/// `database_url`, `data_dir`, `http_addr`, …
pub(super) fn known_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Ok(serde_json::Value::Object(top)) = serde_json::to_value(Config::default()) else {
        return names;
    };
    for (key, value) in top {
        match value {
            serde_json::Value::Object(section) if SECTIONS.contains(&key.as_str()) => {
                names.extend(section.keys().map(|k| format!("{key}_{k}")));
            }
            _ => {
                names.insert(key);
            }
        }
    }
    names
}

/// The provider of configuration keys from the environment: only known names, mapped to
/// dotted keys.
pub(super) fn provider() -> Env {
    let known = known_names();
    Env::prefixed("ORDERLY_").filter(move |k| known.contains(&k.as_str().to_ascii_lowercase())).map(|k| {
        let k = k.as_str().to_ascii_lowercase();
        for s in SECTIONS {
            if let Some(rest) = k.strip_prefix(s).and_then(|r| r.strip_prefix('_')) {
                return format!("{s}.{rest}").into();
            }
        }
        k.into()
    })
}

/// One warning about the `ORDERLY_*` variables in `vars` that are neither keys nor
/// reserved, or `None` when there are none. A name within two edits of a known key is
/// suggested as a likely typo.
pub(super) fn unknown_warning(vars: impl IntoIterator<Item = String>) -> Option<String> {
    let known = known_names();
    let mut unknown: Vec<String> = vars
        .into_iter()
        .filter_map(|v| {
            let name = v.strip_prefix("ORDERLY_")?.to_ascii_lowercase();
            (!known.contains(&name) && !is_reserved(&name)).then_some(v)
        })
        .collect();
    if unknown.is_empty() {
        return None;
    }
    unknown.sort();
    let described: Vec<String> = unknown
        .iter()
        .map(|v| {
            let name = v.trim_start_matches("ORDERLY_").to_ascii_lowercase();
            let nearest = known.iter().map(|k| (edit_distance(&name, k), k)).min();
            match nearest {
                Some((d, k)) if d <= 2 => format!("{v} (did you mean ORDERLY_{}?)", k.to_ascii_uppercase()),
                _ => v.clone(),
            }
        })
        .collect();
    Some(format!(
        "ignoring environment variables that are not orderly settings: {} (settings are listed in docs/OPERATIONS.md)",
        described.join(", ")
    ))
}

/// Levenshtein distance, for typo suggestions between short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_an_environment_name() {
        let known = known_names();
        for name in ["database_url", "data_dir", "mode", "http_addr", "grpc_addr", "nats_url", "storage_url"] {
            assert!(known.contains(name), "{name} missing from {known:?}");
        }
    }

    #[test]
    fn orchestrator_variables_are_named_once_and_typos_get_a_suggestion() {
        let vars =
            ["ORDERLY_PORT", "ORDERLY_SERVICE_HOST", "ORDERLY_DATABSE_URL", "ORDERLY_HTTP_ADDR", "ORDERLY_CONFIG"];
        let w = unknown_warning(vars.map(String::from)).unwrap();
        assert!(w.contains("ORDERLY_PORT") && w.contains("ORDERLY_SERVICE_HOST"), "{w}");
        assert!(w.contains("ORDERLY_DATABSE_URL (did you mean ORDERLY_DATABASE_URL?)"), "{w}");
        assert!(!w.contains("ORDERLY_HTTP_ADDR") && !w.contains("ORDERLY_CONFIG"), "{w}");
        assert_eq!(unknown_warning(["ORDERLY_TEST_DATABASE_URL".to_string()]), None);
    }
}

//! The committed SDL (`schema.graphql` at the repository root) is the schema the code
//! builds: a change to the schema shows up in review as a change to that file.
//! Regenerate with `ORDERLY_UPDATE_SCHEMA=1 cargo test --test api graphql::schema`.

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");

#[test]
fn the_committed_sdl_matches_the_schema() {
    let generated = orderly::graphql::sdl();
    if std::env::var("ORDERLY_UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(PATH, &generated).expect("write schema.graphql");
        return;
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    if committed != generated {
        let diff: Vec<String> = diff_lines(&committed, &generated);
        panic!(
            "schema.graphql differs from the schema the code builds:\n{}\n\nIf the change is intended, regenerate it:\n  \
             ORDERLY_UPDATE_SCHEMA=1 cargo test --test api graphql::schema\nand commit schema.graphql.",
            diff.join("\n")
        );
    }
}

/// Lines only in `old` (`-`) or only in `new` (`+`), in order: enough to see what changed.
fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let old_set: std::collections::HashSet<&str> = old.lines().collect();
    let new_set: std::collections::HashSet<&str> = new.lines().collect();
    let mut out: Vec<String> = old.lines().filter(|l| !new_set.contains(l)).map(|l| format!("- {l}")).collect();
    out.extend(new.lines().filter(|l| !old_set.contains(l)).map(|l| format!("+ {l}")));
    out
}

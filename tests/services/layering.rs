//! The rules live in the services: no REST handler decides who may do something or which
//! rate-limit class applies (a rule written in a transport is one the next transport lacks).

/// What deciding access or admission looks like in code.
const DECISIONS: [&str; 8] = [
    "require(",
    "require_staff",
    "require_admin",
    "require_session",
    "authenticated()",
    "is_staff",
    "allow_public",
    ".admit(",
];

#[test]
fn rest_handlers_hold_no_authorization_or_rate_limit_decisions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The plumbing, not handlers: principal.rs resolves who is calling, limits.rs is the
        // route layer (attaches the limits, charges requests that reached no operation, and
        // runs the database breaker), contract.rs documents statuses.
        if ["principal.rs", "limits.rs", "contract.rs"].contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for d in DECISIONS {
                assert!(!code.contains(d), "src/http/{name}:{} decides access in a handler: {line}", n + 1);
            }
        }
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} handler files read");
}

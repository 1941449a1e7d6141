//! GraphiQL is served offline: the page names only this origin's files, under a CSP that
//! allows only this origin; the files are cached for a year.

use super::*;

#[tokio::test]
async fn graphiql_loads_only_from_this_origin() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("http"), "{csp}");
    let page = res.text().await.unwrap();
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//unpkg"), "{page}");
    let scripts: Vec<&str> = page.split("src=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
    assert_eq!(scripts.len(), 4);
    for path in scripts {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        if path.contains("graphiql-") {
            assert!(res.headers()["cache-control"].to_str().unwrap().contains("max-age=31536000"));
        }
        assert!(!res.bytes().await.unwrap().is_empty());
    }
    let res = app.client.get(app.url("/graphql/assets/nope.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

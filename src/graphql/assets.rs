//! GraphiQL, offline: the page and the vendored files of `assets/graphiql/` (graphiql
//! 4.1.2, React 18.3.1; versions and licenses in `assets/graphiql/README.md`), compiled
//! into the binary. The page loads only from this origin (its CSP says so); the file
//! names carry their versions, so they are cached for a year.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The page's CSP: scripts, styles, fonts and connections from this origin only. GraphiQL
/// sets inline styles and its CSS embeds its fonts and icons as `data:` URIs.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>orderly GraphQL</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/graphql/assets/graphiql-4.1.2.min.css">
<style>body{margin:0;height:100vh}#graphiql{height:100vh}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphql/assets/react-18.3.1.production.min.js"></script>
<script src="/graphql/assets/react-dom-18.3.1.production.min.js"></script>
<script src="/graphql/assets/graphiql-4.1.2.min.js"></script>
<script src="/graphql/assets/init-1.js"></script>
</body>
</html>
"#;

/// Starts GraphiQL against this origin: queries over POST, subscriptions over
/// `graphql-transport-ws`. (A file, not an inline script: the CSP allows no inline code.)
const INIT: &str = r#"(function () {
  var ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql';
  var fetcher = GraphiQL.createFetcher({ url: location.origin + '/graphql', subscriptionUrl: ws });
  ReactDOM.createRoot(document.getElementById('graphiql'))
    .render(React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true }));
})();
"#;

/// `(name, content type, bytes)` of each served file.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "graphiql-4.1.2.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    ("graphiql-4.1.2.min.css", "text/css; charset=utf-8", include_bytes!("../../assets/graphiql/graphiql.min.css")),
    (
        "react-18.3.1.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom-18.3.1.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    ("init-1.js", "text/javascript; charset=utf-8", INIT.as_bytes()),
];

/// The GraphiQL page (not cached: it names the current asset versions).
pub fn graphiql_page() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// `GET /graphql/assets/{file}`: a vendored file, cached for a year; 404 otherwise.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, content_type, bytes)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return crate::error::Error::NotFound("asset").into_response();
    };
    let mut res = (StatusCode::OK, *bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    res
}

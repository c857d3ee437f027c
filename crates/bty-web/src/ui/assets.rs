//! `/static/...`: the stylesheet, our small script and the vendored htmx files, compiled into
//! the binary (the server may have no internet, and nothing is fetched from a CDN).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "bty.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/bty.css"),
    ),
    (
        "bty.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/bty.js"),
    ),
    (
        "vendor/htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-2.0.11.min.js"),
    ),
    (
        "vendor/htmx-ext-sse-2.2.4.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/vendor/htmx-ext-sse-2.2.4.min.js"),
    ),
];

pub async fn get(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                // Names carry a version (vendor files) or are requested with ?v=VERSION.
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_external_origins() {
        for (name, _, body) in super::FILES {
            if name.starts_with("vendor/") {
                continue;
            }
            let text = String::from_utf8_lossy(body);
            for bad in ["http://", "https://", "@import", "//cdn"] {
                assert!(!text.contains(bad), "{name} mentions {bad}");
            }
        }
    }
}

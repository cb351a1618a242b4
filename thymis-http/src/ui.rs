//! The embedded dashboard: its files, and `index.html` for every other page path so deep links
//! work (the app routes on the client). API paths that match nothing stay JSON 404s.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// What the dashboard may load: only this origin, plus `data:` images (module icons).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Answers a request no route matched.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let is_api = ["/api", "/auth", "/agent", "/docs"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")));
    if is_api || !(method == Method::GET || method == Method::HEAD) {
        return ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    match find(path) {
        Some(asset) => respond(asset, &headers, path.starts_with("/assets/")),
        // Hashed bundle files that are gone (an old tab after an upgrade) must not get HTML.
        None if path.starts_with("/assets/") => {
            ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response()
        }
        None => match find("/index.html") {
            Some(index) => respond(index, &headers, false),
            None => ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response(),
        },
    }
}

type Asset = (&'static str, &'static str, &'static [u8], &'static [u8]);

fn find(path: &str) -> Option<&'static Asset> {
    assets::ASSETS
        .binary_search_by(|(url, ..)| (*url).cmp(path))
        .ok()
        .map(|index| &assets::ASSETS[index])
}

fn respond(asset: &'static Asset, headers: &HeaderMap, immutable: bool) -> Response {
    let (_, content_type, bytes, gzipped) = *asset;
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let use_gzip = accepts_gzip && !gzipped.is_empty();
    let mut response = if use_gzip { gzipped } else { bytes }.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if use_gzip {
        response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Bundle files have content hashes in their names; index.html must be revalidated.
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

//! A small HTTP/1.1 client for gantry's API in tests.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GETs `path` from `base` (`http://addr`), with an `Authorization` value if given.
pub async fn get(base: &str, path: &str, auth: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    get_with(base, path, &headers).await
}

/// GETs `path` from `base` with these request headers.
pub async fn get_with(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::get(format!("{base}{path}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// GETs JSON, failing the test unless the status is 200.
pub async fn json(base: &str, path: &str) -> serde_json::Value {
    let (status, _, body) = get(base, path, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

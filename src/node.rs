//! What gantry knows about itself: its availability zone, for zone affinity.
//!
//! The zone comes from `[node] zone` when set; otherwise, on ECS, from the task
//! metadata endpoint v4 (`$ECS_CONTAINER_METADATA_URI_V4/task`, field
//! `AvailabilityZone`), which ECS injects into every container on Fargate and on EC2
//! with agent 1.39+. Reading it is one local HTTP GET at start; a failure is logged
//! and zone affinity stays off (calls are balanced over every zone).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The environment variable ECS sets to the container's metadata endpoint.
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";

const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// The task metadata document is a few KiB; anything far bigger is not it.
const METADATA_LIMIT: usize = 1 << 20;

/// Gantry's zone: configured, else from the ECS task metadata endpoint named by
/// `metadata_uri` (normally the value of [`METADATA_ENV`]).
pub async fn zone(configured: Option<&str>, metadata_uri: Option<&str>) -> Option<String> {
    if let Some(zone) = configured {
        return Some(zone.to_string());
    }
    let uri = metadata_uri?;
    match zone_from_metadata(uri).await {
        Ok(zone) => {
            tracing::info!(%zone, "availability zone from the ECS task metadata endpoint");
            Some(zone)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this task's availability zone: zone affinity is off (set [node] zone)");
            None
        }
    }
}

/// Reads `AvailabilityZone` from `<uri>/task`.
pub async fn zone_from_metadata(uri: &str) -> Result<String, String> {
    let url = format!("{}/task", uri.trim_end_matches('/'));
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("{METADATA_ENV}: {url:?} is not a URL: {e}"))?;
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let fetch = async {
        let res = client
            .get(parsed)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = res.status();
        let body = Limited::new(res.into_body(), METADATA_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        Ok(body)
    };
    let body = tokio::time::timeout(METADATA_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("GET {url}: no answer within {METADATA_TIMEOUT:?}"))??;
    zone_of_task_document(&body).map_err(|e| format!("GET {url}: {e}"))
}

/// The zone in a task metadata document.
pub fn zone_of_task_document(body: &[u8]) -> Result<String, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match doc.get("AvailabilityZone").and_then(|z| z.as_str()) {
        Some(z) if !z.trim().is_empty() => Ok(z.to_string()),
        Some(_) => Err("AvailabilityZone is empty".into()),
        None => Err("no AvailabilityZone in the task metadata".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_zone_of_a_task_document() {
        let doc = br#"{"Cluster":"default","TaskARN":"arn:aws:ecs:us-east-1:1:task/default/abc",
            "Family":"gantry","Revision":"3","AvailabilityZone":"us-east-1b","LaunchType":"FARGATE"}"#;
        assert_eq!(zone_of_task_document(doc).unwrap(), "us-east-1b");
        assert!(zone_of_task_document(b"{}")
            .unwrap_err()
            .contains("no AvailabilityZone"));
        assert!(zone_of_task_document(b"<html>")
            .unwrap_err()
            .contains("not JSON"));
        assert!(zone_of_task_document(br#"{"AvailabilityZone":""}"#).is_err());
    }

    #[tokio::test]
    async fn configured_zone_wins_and_a_dead_endpoint_is_no_zone() {
        assert_eq!(
            zone(Some("eu-west-1c"), Some("http://127.0.0.1:9/v4")).await,
            Some("eu-west-1c".into())
        );
        assert_eq!(zone(None, None).await, None);
        // A port nothing listens on: a refused connection.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let uri = format!("http://{closed}/v4");
        assert_eq!(zone(None, Some(&uri)).await, None);
        assert!(zone_from_metadata("not a url").await.is_err());
    }
}

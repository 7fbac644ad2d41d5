//! Version traffic splits: a router's service is a weighted set of services
//! (`…services.rg.weighted.services.<name>.weight`), independent of how many tasks
//! each version runs. New weights move new calls at once; streams in flight finish
//! where they started.

use crate::support;

use std::time::{Duration, Instant};

use support::proto::echo::EchoRequest;
use support::{within, Backend, Gateway, ECHO_RULE};
use tokio_stream::StreamExt;

/// A task of version `version` (service `rg-<version>`), which also carries the
/// router and the weighted service `rg` with these weights.
fn task(version: &str, backend: &Backend, blue: u32, green: u32) -> String {
    format!(
        r#"
[[task]]
id = "{version}-1"
ip = "127.0.0.1"
ports = [{port}]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.rg.rule" = "{rule}"
"traefik.http.routers.rg.service" = "rg"
"traefik.http.services.rg.weighted.services.rg-blue.weight" = "{blue}"
"traefik.http.services.rg.weighted.services.rg-green.weight" = "{green}"
"traefik.http.services.rg-{version}.loadbalancer.server.scheme" = "h2c"
"#,
        port = backend.addr.port(),
        rule = ECHO_RULE,
    )
}

fn tasks(blue: &Backend, green: &Backend, weights: (u32, u32)) -> String {
    task("blue", blue, weights.0, weights.1) + &task("green", green, weights.0, weights.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_split_holds_and_shifting_it_never_cuts_a_stream() {
    let blue = Backend::start("blue").await;
    let green = Backend::start("green").await;
    let gw = Gateway::start(&tasks(&blue, &green, (90, 10))).await;
    let config = gw.gantry.config();
    assert!(config.errors.is_empty(), "{:?}", config.errors);

    // 10,000 calls from 4 clients.
    let by = support::calls_by_backend(&gw, 4, 2_500).await;
    let blue_share = f64::from(by.get("blue").copied().unwrap_or(0)) / 10_000.0;
    eprintln!("split 90/10 over 10,000 calls: {by:?}");
    assert!((0.88..=0.92).contains(&blue_share), "{by:?}");

    // A bidi stream on the old version (blue), kept open across the shift. Streams
    // are split like calls: open them until one lands on blue.
    let mut echo = gw.echo().await;
    let (mut stream, sender) = loop {
        let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(4);
        tx.send(EchoRequest::default()).await.expect("send");
        let mut stream = echo
            .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("bidi")
            .into_inner();
        let first = stream.next().await.expect("a reply").expect("reply");
        if first.backend == "blue" {
            break (stream, tx);
        }
    };

    gw.set_tasks(&tasks(&blue, &green, (0, 100))).await;
    let mut fresh = gw.echo().await;
    for _ in 0..100 {
        let r = fresh
            .unary(EchoRequest::default())
            .await
            .expect("call")
            .into_inner();
        assert_eq!(r.backend, "green", "a new call went to the old version");
    }

    // The old stream goes on for 30 s in all, one message every 250 ms, on blue.
    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(250));
    let mut sent = 0u32;
    while started.elapsed() < Duration::from_secs(30) {
        pace.tick().await;
        sender
            .send(EchoRequest {
                payload: sent.to_le_bytes().to_vec(),
                ..Default::default()
            })
            .await
            .expect("send");
        let reply = within("a reply on the old stream", stream.next())
            .await
            .expect("stream open")
            .expect("reply");
        assert_eq!(reply.backend, "blue");
        assert_eq!(reply.payload, sent.to_le_bytes().to_vec());
        sent += 1;
    }
    drop(sender);
    assert!(stream.next().await.is_none(), "the stream ends cleanly");
    eprintln!("old stream: {sent} messages after the shift, all answered by blue");
    assert!(sent >= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_naming_a_missing_service_is_disabled_and_says_why() {
    let blue = Backend::start("blue").await;
    // rg splits between rg-blue and rg-green, but no task defines rg-green.
    let gw = Gateway::start(&task("blue", &blue, 50, 50)).await;
    let config = gw.gantry.config();
    let rg = &config.services["rg"];
    assert_eq!(rg.status, gantry::dynamic::Status::Disabled);
    assert!(
        rg.errors
            .iter()
            .any(|e| e.contains("\"rg-green\" does not exist")),
        "{:?}",
        rg.errors
    );
    assert_eq!(
        config.routers["rg"].status,
        gantry::dynamic::Status::Disabled
    );
    // The version that exists still has its own service, enabled.
    assert_eq!(
        config.services["rg-blue"].status,
        gantry::dynamic::Status::Enabled
    );
    let mut echo = gw.echo().await;
    let err = echo
        .unary(EchoRequest::default())
        .await
        .expect_err("no route");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
}

//! Retries of answered calls, only where a router asks for them: a server answering
//! a third of its calls UNAVAILABLE costs no call when the router retries (the request
//! body is replayed intact), and fails calls when it does not, or when the method is
//! not one the router lists.

use crate::support;

use support::proto::echo::EchoRequest;
use support::{Backend, Gateway};

/// A task of service `echo` (outlier detection off, so the sick server stays in),
/// with extra router labels.
fn task(id: &str, backend: &Backend, router: &[(&str, &str)]) -> String {
    support::echo_task(id, backend, "", &[("outlier", "false")], router)
}

/// `n` unary calls with a 1,000-byte payload each; how many failed. Every answer
/// must echo its own payload.
async fn failures(gw: &Gateway, n: u32) -> u32 {
    let mut client = gw.echo().await;
    let mut failed = 0;
    for i in 0..n {
        let payload: Vec<u8> = (0..1_000u32).map(|b| (b + i) as u8).collect();
        match client
            .unary(EchoRequest {
                payload: payload.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => assert_eq!(r.into_inner().payload, payload, "call {i}: payload"),
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                failed += 1;
            }
        }
    }
    failed
}

async fn pair(router: &[(&str, &str)]) -> (Gateway, Backend, Backend) {
    let good = Backend::start("good").await;
    let sick = Backend::start("sick").await;
    // A third of its calls: within the retry budget (a fifth of all calls).
    sick.stats().set_fail_every(3);
    let gw = Gateway::start(&(task("good", &good, router) + &task("sick", &sick, router))).await;
    (gw, good, sick)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_router_turns_unavailable_answers_into_successes() {
    let (gw, _good, sick) = pair(&[("retry.attempts", "2")]).await;
    let failed = failures(&gw, 400).await;
    let sick_calls = sick.stats().calls();
    eprintln!("retrying router: {failed} of 400 failed; the sick server saw {sick_calls} calls");
    assert_eq!(failed, 0);
    assert!(
        sick_calls >= 100,
        "the sick server was not tried: {sick_calls}"
    );
    let router = support::api::json(&gw.api_url(), "/api/http/routers/echo").await;
    assert_eq!(router["retry"]["attempts"], 2, "{router}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_or_for_unlisted_methods_the_failures_reach_the_client() {
    let (gw, _good, _sick) = pair(&[]).await;
    let failed = failures(&gw, 400).await;
    eprintln!("no retries: {failed} of 400 failed");
    assert!(failed >= 40, "{failed}");

    let (gw, _good, _sick) = pair(&[("retry.methods", "/gantry.test.Echo/ServerStream")]).await;
    let failed = failures(&gw, 400).await;
    eprintln!("unary not listed: {failed} of 400 failed");
    assert!(failed >= 40, "{failed}");

    // The listed method is retried.
    let (gw, _good, _sick) = pair(&[("retry.methods", "/gantry.test.Echo/Unary")]).await;
    assert_eq!(failures(&gw, 200).await, 0);
}

//! Strategies and active health checks, end to end over real sockets: p2c steering
//! away from a slow server, consistent hashing that keeps keys in place, sticky
//! cookies, and gRPC / call health checks flipping servers DOWN and UP at their
//! thresholds.

use crate::support;

use support::proto::echo::EchoRequest;
use support::{api, http_task, wait_until, Backend, Gateway, DEADLINE};

/// An h2c task of service `echo` with extra load-balancer labels.
fn task(id: &str, backend: &Backend, extra: &[(&str, &str)]) -> String {
    support::echo_task(id, backend, "", extra, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_sends_few_calls_to_a_much_slower_server() {
    let fast = Backend::start("fast").await;
    let slow = Backend::start("slow").await;
    // 25 times slower: a contrast that scheduling delays on a busy 2-core machine (the
    // other tests of this binary run beside it) do not wash out.
    fast.stats().set_unary_delay(2);
    slow.stats().set_unary_delay(50);
    let p2c = [("strategy", "p2c")];
    let gw = Gateway::start(&(task("fast", &fast, &p2c) + &task("slow", &slow, &p2c))).await;
    // 8 clients calling at once, so calls in flight matter too.
    let total = support::calls_by_backend(&gw, 8, 50).await;
    let slow_share = f64::from(total.get("slow").copied().unwrap_or(0)) / 400.0;
    eprintln!("p2c: {total:?}, slow share {slow_share:.3}");
    // Round robin would give it half.
    assert!(slow_share < 0.2, "{total:?}");
    assert!(total.get("fast").copied().unwrap_or(0) > 0);
    let svc = api::json(&gw.api_url(), "/api/http/services/echo").await;
    assert_eq!(svc["loadBalancer"]["strategy"], "p2c");
}

/// Which backend answers each of `keys` (3 calls each, which must agree).
async fn owners(gw: &Gateway, keys: usize) -> Vec<String> {
    let mut client = gw.echo().await;
    let mut out = Vec::with_capacity(keys);
    for k in 0..keys {
        let mut answered = Vec::new();
        for _ in 0..3 {
            let mut req = tonic::Request::new(EchoRequest::default());
            req.metadata_mut().insert(
                "x-tenant-id",
                format!("tenant-{k}").parse().expect("metadata"),
            );
            answered.push(client.unary(req).await.expect("call").into_inner().backend);
        }
        assert!(
            answered.windows(2).all(|w| w[0] == w[1]),
            "key {k} moved: {answered:?}"
        );
        out.push(answered.remove(0));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_keeps_each_key_on_one_server_and_moves_few_when_one_joins() {
    let backends = [
        Backend::start("b0").await,
        Backend::start("b1").await,
        Backend::start("b2").await,
        Backend::start("b3").await,
    ];
    let hash = [("hash.header", "x-tenant-id")];
    let tasks: String = backends.iter().map(|b| task(&b.name, b, &hash)).collect();
    let gw = Gateway::start(&tasks).await;
    const KEYS: usize = 400;
    let before = owners(&gw, KEYS).await;
    for b in &backends {
        assert!(before.contains(&b.name), "{} got no keys", b.name);
    }

    let joining = Backend::start("b4").await;
    gw.set_tasks(&(tasks.clone() + &task("b4", &joining, &hash)))
        .await;
    let after = owners(&gw, KEYS).await;
    let moved: Vec<usize> = (0..KEYS).filter(|&k| before[k] != after[k]).collect();
    eprintln!(
        "hash: {} of {KEYS} keys moved when a 5th server joined",
        moved.len()
    );
    // 1/5 is what a ring moves on average; the new server's share of the ring
    // varies by a few percent with the (random) addresses its points hash from, so
    // the bound leaves room for that. Rehashing by modulo would move about 4/5.
    assert!(
        moved.len() * 10 <= KEYS * 3,
        "{} of {KEYS} keys moved (more than 3/10)",
        moved.len()
    );
    assert!(!moved.is_empty(), "the new server got no keys");
    for k in moved {
        assert_eq!(after[k], "b4", "key {k} moved between old servers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_a_client_on_its_server() {
    let a = Backend::start_http1("a").await;
    let b = Backend::start_http1("b").await;
    let sticky = "\"traefik.http.services.web.loadbalancer.sticky.cookie.name\" = \"pin\"\n\
                  \"traefik.http.services.web.loadbalancer.sticky.cookie.httponly\" = \"true\"\n";
    let task = |id: &str, backend: &Backend| {
        http_task(id, backend.addr.port(), "web", "PathPrefix(`/`)", "") + sticky
    };
    let gw = Gateway::start(&(task("a", &a) + &task("b", &b))).await;
    let (status, headers, _) = api::get_with(&gw.url(), "/", &[]).await;
    assert_eq!(status, 200);
    let first = headers["x-backend"].to_str().unwrap().to_string();
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("pin=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..10 {
        let (_, headers, _) = api::get_with(&gw.url(), "/", &[("cookie", &pair)]).await;
        assert_eq!(headers["x-backend"], first.as_str());
        assert!(!headers.contains_key("set-cookie"));
    }
    // Without the cookie, round robin: the other server too.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let (_, headers, _) = api::get_with(&gw.url(), "/", &[]).await;
        seen.insert(headers["x-backend"].to_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

/// `n` unary calls through `gw`, every one answered by `backend`.
async fn only_to(gw: &Gateway, n: usize, backend: &str) {
    let mut client = gw.echo().await;
    for _ in 0..n {
        let r = client
            .unary(EchoRequest::default())
            .await
            .expect("call")
            .into_inner();
        assert_eq!(r.backend, backend);
    }
}

fn server_health(svc: &serde_json::Value, url: &str) -> String {
    svc["loadBalancer"]["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["url"] == url))
        .map(|s| s["health"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_check_flips_at_its_thresholds() {
    let (a, health_a) = Backend::start_with_health("a").await;
    let (b, _health_b) = Backend::start_with_health("b").await;
    let check = [
        ("healthcheck.mode", "grpc"),
        ("healthcheck.interval", "100ms"),
        ("healthcheck.timeout", "100ms"),
        ("healthcheck.unhealthythreshold", "3"),
        ("healthcheck.healthythreshold", "2"),
    ];
    let gw = Gateway::start(&(task("a", &a, &check) + &task("b", &b, &check))).await;
    let api_url = gw.api_url();
    let a_url = format!("h2c://{}", a.addr);
    let endpoint = |addr| {
        gw.gantry
            .table()
            .endpoints()
            .values()
            .find(|e| e.address() == addr)
            .cloned()
            .expect("endpoint")
    };
    let ea = endpoint(a.addr);
    wait_until("a's first checks", DEADLINE, || {
        ea.check().is_some_and(|c| c.checks() >= 2)
    })
    .await;
    assert_eq!(
        server_health(
            &api::json(&api_url, "/api/http/services/echo").await,
            &a_url
        ),
        "UP"
    );

    health_a
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let check_a = ea.check().expect("a is checked");
    let failures_before = check_a.failures();
    wait_until("a DOWN", DEADLINE, || !ea.is_available()).await;
    // Not before `unhealthythreshold` consecutive failures.
    assert!(
        check_a.failures() - failures_before >= 3,
        "DOWN after {} failures",
        check_a.failures() - failures_before
    );
    let svc = api::json(&api_url, "/api/http/services/echo").await;
    assert_eq!(server_health(&svc, &a_url), "DOWN");
    let reason = svc["loadBalancer"]["servers"][0]["healthReason"].to_string();
    assert!(reason.contains("NOT_SERVING"), "{svc}");
    // Calls go to b only while a is DOWN.
    only_to(&gw, 20, "b").await;

    health_a
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let checks_before = check_a.checks();
    wait_until("a UP", DEADLINE, || ea.is_available()).await;
    assert!(
        check_a.checks() - checks_before >= 2,
        "UP after {} checks",
        check_a.checks() - checks_before
    );

    let (_, _, metrics) = api::get(&api_url, "/metrics", None).await;
    assert!(
        metrics.contains("gantry_health_check_failures_total{service=\"echo\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_check_accepts_the_configured_codes() {
    // An unimplemented method answers UNIMPLEMENTED (12): alive for codes "0,12",
    // a failure for codes "0".
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let path = "/gantry.test.Echo/NoSuchMethod";
    let lenient = [
        ("healthcheck.path", path),
        ("healthcheck.codes", "0,12"),
        ("healthcheck.interval", "100ms"),
        ("healthcheck.unhealthythreshold", "1"),
    ];
    let strict = [
        ("healthcheck.path", path),
        ("healthcheck.codes", "OK"),
        ("healthcheck.interval", "100ms"),
        ("healthcheck.unhealthythreshold", "1"),
    ];
    let tasks = task("a", &a, &lenient)
        .replace("services.echo", "services.lenient")
        .replace("routers.echo", "routers.lenient")
        + &task("b", &b, &strict)
            .replace("services.echo", "services.strict")
            .replace("routers.echo", "routers.strict");
    let gw = Gateway::start(&tasks).await;
    let table = || gw.gantry.table();
    wait_until("b DOWN (UNIMPLEMENTED is not OK)", DEADLINE, || {
        table()
            .endpoints()
            .values()
            .any(|e| e.address() == b.addr && !e.is_available())
    })
    .await;
    let ea = table()
        .endpoints()
        .values()
        .find(|e| e.address() == a.addr)
        .cloned()
        .expect("a");
    wait_until("a checked", DEADLINE, || {
        ea.check().is_some_and(|c| c.checks() >= 3)
    })
    .await;
    assert!(ea.is_available(), "UNIMPLEMENTED accepted by codes 0,12");
    let svc = api::json(&gw.api_url(), "/api/http/services/strict").await;
    assert!(
        svc["loadBalancer"]["servers"][0]["healthReason"]
            .to_string()
            .contains("UNIMPLEMENTED"),
        "{svc}"
    );
    assert_eq!(svc["loadBalancer"]["healthCheck"]["mode"], "call");
    assert_eq!(svc["loadBalancer"]["healthCheck"]["codes"], "0");
}

/// A plain HTTP/1.1 readiness endpoint, apart from the gRPC port: every request is
/// answered with `status`; `seen` counts the requests that carried `x-probe: gantry`.
struct Readiness {
    addr: std::net::SocketAddr,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Readiness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn readiness() -> Readiness {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let status = Arc::new(AtomicU16::new(200));
    let seen = Arc::new(AtomicUsize::new(0));
    let (status2, seen2) = (status.clone(), seen.clone());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (status, seen) = (status2.clone(), seen2.clone());
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    if req.uri().path() == "/ready"
                        && req.headers().get("x-probe").is_some_and(|v| v == "gantry")
                    {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    let code = status.load(Ordering::SeqCst);
                    async move {
                        http::Response::builder()
                            .status(code)
                            .body(http_body_util::Full::new(bytes::Bytes::new()))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Readiness {
        addr,
        status,
        seen,
        task,
    }
}

/// ECS bridge mode: the task's gRPC container port 50051 and its readiness port 8081
/// are published on dynamic host ports; `healthcheck.port=8081` probes the readiness
/// port's host port over HTTP/1.1 with the configured header.
fn bridge_task(id: &str, backend: &Backend, ready: &Readiness) -> String {
    format!(
        r#"
[[task]]
id = "{id}"
ip = "127.0.0.1"
ports = [{{ container = 50051, host = {grpc} }}, {{ container = 8081, host = {health} }}]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.echo.rule" = "{rule}"
"traefik.http.services.echo.loadbalancer.server.port" = "50051"
"traefik.http.services.echo.loadbalancer.server.scheme" = "h2c"
"traefik.http.services.echo.loadbalancer.healthcheck.port" = "8081"
"traefik.http.services.echo.loadbalancer.healthcheck.scheme" = "http"
"traefik.http.services.echo.loadbalancer.healthcheck.path" = "/ready"
"traefik.http.services.echo.loadbalancer.healthcheck.headers.X-Probe" = "gantry"
"traefik.http.services.echo.loadbalancer.healthcheck.interval" = "100ms"
"traefik.http.services.echo.loadbalancer.healthcheck.unhealthythreshold" = "1"
"traefik.http.services.echo.loadbalancer.healthcheck.healthythreshold" = "1"
"#,
        grpc = backend.addr.port(),
        health = ready.addr.port(),
        rule = support::ECHO_RULE.replace('"', "\\\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_port_probes_the_mapped_host_port() {
    use std::sync::atomic::Ordering;
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (ready_a, ready_b) = (readiness().await, readiness().await);
    let gw =
        Gateway::start(&(bridge_task("a", &a, &ready_a) + &bridge_task("b", &b, &ready_b))).await;
    wait_until("both readiness ports probed", DEADLINE, || {
        ready_a.seen.load(Ordering::SeqCst) >= 2 && ready_b.seen.load(Ordering::SeqCst) >= 2
    })
    .await;
    let api_url = gw.api_url();
    let a_url = format!("h2c://{}", a.addr);
    let svc = api::json(&api_url, "/api/http/services/echo").await;
    assert_eq!(server_health(&svc, &a_url), "UP", "{svc}");

    // a's readiness port says no: a goes DOWN though its gRPC port is fine.
    ready_a.status.store(503, Ordering::SeqCst);
    let endpoint = gw
        .gantry
        .table()
        .endpoints()
        .values()
        .find(|e| e.address() == a.addr)
        .cloned()
        .expect("a's endpoint");
    wait_until("a DOWN", DEADLINE, || !endpoint.is_available()).await;
    let svc = api::json(&api_url, "/api/http/services/echo").await;
    assert_eq!(server_health(&svc, &a_url), "DOWN", "{svc}");
    let reason = svc["loadBalancer"]["servers"][0]["healthReason"].to_string();
    assert!(reason.contains("GET /ready: HTTP 503"), "{svc}");
    only_to(&gw, 10, "b").await;
    ready_a.status.store(200, Ordering::SeqCst);
    wait_until("a UP again", DEADLINE, || endpoint.is_available()).await;
}

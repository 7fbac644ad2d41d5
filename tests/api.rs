//! The JSON API, `/metrics`, access logs and API credentials, against a real gantry
//! with real backends: shapes and numbers for a known set of tasks and calls.

use crate::support;

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use support::proto::echo::EchoRequest;
use support::{api, h2c_task, wait_until, Backend, Gateway, DEADLINE, ECHO_RULE};

/// 90 good and 10 UNAVAILABLE unary calls through gantry, on one connection.
async fn hundred_calls_ten_failing(gw: &Gateway) {
    let mut client = gw.echo().await;
    for i in 0..100 {
        let fail = i % 10 == 3;
        let res = client
            .unary(EchoRequest {
                payload: b"0123456789".to_vec(),
                fail_code: if fail { 14 } else { 0 },
                fail_message: "made to fail".into(),
                ..Default::default()
            })
            .await;
        assert_eq!(res.is_err(), fail, "call {i}: {res:?}");
    }
}

fn server<'a>(service: &'a Value, url: &str) -> &'a Value {
    service["loadBalancer"]["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["url"] == url))
        .unwrap_or_else(|| panic!("no server {url} in {service}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_rates_and_shapes_after_known_calls() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    // b has weight 0: it is shown but never called, so every call lands on a.
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1)
        + &h2c_task("task-b", &b, "echo", ECHO_RULE, 0);
    let gw = Gateway::start(&tasks).await;
    let api_url = gw.api_url();
    hundred_calls_ten_failing(&gw).await;

    let a_url = format!("h2c://{}", a.addr);
    let path = "/api/http/services/echo@file";
    wait_until("the server's 100 calls in the API", DEADLINE, || {
        // Checked again below; this only waits for the last call's bookkeeping.
        gw.gantry
            .table()
            .service_stats("echo")
            .is_some_and(|s| s.requests() == 100)
    })
    .await;
    let svc = api::json(&api_url, path).await;
    assert_eq!(svc["name"], "echo@file");
    assert_eq!(svc["provider"], "file");
    assert_eq!(svc["type"], "loadbalancer");
    assert_eq!(svc["usedBy"], serde_json::json!(["echo@file"]));
    assert_eq!(svc["status"], "enabled");
    let s = server(&svc, &a_url);
    assert_eq!(s["taskId"], "task-a");
    assert_eq!(s["weight"], 1);
    assert_eq!(s["health"], "UP");
    assert_eq!(s["connected"], true);
    assert_eq!(s["requests"], 100, "{s}");
    assert_eq!(s["errors"], 10, "{s}");
    assert_eq!(s["errorRate"], 0.1, "{s}");
    assert_eq!(s["inFlight"], 0);
    assert_eq!(
        s["grpcStatus"],
        serde_json::json!({"OK": 90, "UNAVAILABLE": 10})
    );
    let p50 = s["p50Ms"].as_f64().expect("p50");
    let p99 = s["p99Ms"].as_f64().expect("p99");
    assert!(p50 > 0.0 && p50 <= p99 && p99 < 1_000.0, "{s}");
    assert!(s["requestRate"].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(server(&svc, &format!("h2c://{}", b.addr))["requests"], 0);
    assert_eq!(svc["serverStatus"][&a_url], "UP");
    assert_eq!(svc["stats"]["requests"], 100);
    assert_eq!(svc["stats"]["errorRate"], 0.1);

    let routers = api::json(&api_url, "/api/http/routers").await;
    let r = &routers[0];
    assert_eq!(r["name"], "echo@file");
    assert_eq!(r["rule"], ECHO_RULE);
    assert_eq!(r["service"], "echo");
    assert_eq!(r["entryPoints"], serde_json::json!(["web"]));
    assert_eq!(r["using"], serde_json::json!(["web"]));
    assert_eq!(r["status"], "enabled");
    assert_eq!(r["error"], serde_json::json!([]));
    assert_eq!(r["priority"], ECHO_RULE.len());
    assert_eq!(r["stats"]["requests"], 100);
    assert_eq!(r["stats"]["errors"], 10);

    let eps = api::json(&api_url, "/api/entrypoints").await;
    assert_eq!(eps[0]["name"], "web");
    assert_eq!(eps[0]["address"], gw.addr.to_string());
    assert_eq!(eps[0]["stats"]["requests"], 100);

    let overview = api::json(&api_url, "/api/overview").await;
    assert_eq!(overview["http"]["routers"]["total"], 1);
    assert_eq!(overview["http"]["services"]["total"], 1);
    assert_eq!(overview["http"]["servers"]["total"], 2);
    assert_eq!(overview["http"]["servers"]["up"], 2);
    assert_eq!(overview["providers"], serde_json::json!(["file"]));
    assert_eq!(overview["providerStatus"][0]["healthy"], true);
    assert_eq!(overview["stats"]["requests"], 100);
    assert_eq!(overview["errors"], 0);
    assert_eq!(
        overview["features"],
        serde_json::json!({"metrics": "prometheus", "accessLog": false, "auth": false})
    );

    // /metrics agrees, in the Prometheus text format.
    let (status, headers, text) = api::get(&api_url, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics-text"));
    let series = |name: &str, labels: &str| -> f64 {
        let prefix = format!("{name}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .trim()
            .parse()
            .expect("a number")
    };
    let labels = |status: &str| {
        format!("service=\"echo\",server=\"{a_url}\",task=\"task-a\",status=\"{status}\"")
    };
    assert_eq!(series("gantry_server_requests_total", &labels("OK")), 90.0);
    assert_eq!(
        series("gantry_server_requests_total", &labels("UNAVAILABLE")),
        10.0
    );
    let server_labels = format!("service=\"echo\",server=\"{a_url}\",task=\"task-a\"");
    assert_eq!(
        series(
            "gantry_server_request_duration_seconds_count",
            &server_labels
        ),
        100.0
    );
    assert_eq!(
        series(
            "gantry_server_request_duration_seconds_bucket",
            &format!("le=\"+Inf\",{server_labels}")
        ),
        100.0
    );
    assert_eq!(
        series("gantry_server_requests_in_flight", &server_labels),
        0.0
    );
    assert_eq!(
        series(
            "gantry_server_health",
            &format!("{server_labels},state=\"UP\"")
        ),
        1.0
    );
    assert_eq!(series("gantry_upstream_connections", &server_labels), 1.0);
    assert_eq!(
        series(
            "gantry_entrypoint_requests_total",
            "entrypoint=\"web\",status=\"UNAVAILABLE\""
        ),
        10.0
    );
    assert_eq!(
        series(
            "gantry_router_requests_total",
            "router=\"echo\",service=\"echo\",status=\"OK\""
        ),
        90.0
    );
    assert_eq!(
        series(
            "gantry_service_requests_total",
            "service=\"echo\",status=\"OK\""
        ),
        90.0
    );
    assert_eq!(
        series("gantry_provider_refreshes_total", "provider=\"file\""),
        1.0
    );
    assert_eq!(series("gantry_config_errors", ""), 0.0);
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_masks_select_paths_and_refuse_unknown_ones() {
    let a = Backend::start("a").await;
    let gw = Gateway::start(&h2c_task("task-a", &a, "echo", ECHO_RULE, 1)).await;
    let api_url = gw.api_url();

    let svc = api::json(
        &api_url,
        "/api/http/services/echo?fields=name,loadBalancer.servers.url",
    )
    .await;
    assert_eq!(
        svc,
        serde_json::json!({"name": "echo@file", "loadBalancer": {"servers": [{"url": format!("h2c://{}", a.addr)}]}})
    );
    // Nested paths, merged; on a list, applied to each item.
    let routers = api::json(
        &api_url,
        "/api/http/routers?fields=name,stats.requests,stats.errors",
    )
    .await;
    assert_eq!(
        routers,
        serde_json::json!([{"name": "echo@file", "stats": {"requests": 0, "errors": 0}}])
    );
    let overview = api::json(&api_url, "/api/overview?fields=http.servers.up").await;
    assert_eq!(
        overview,
        serde_json::json!({"http": {"servers": {"up": 1}}})
    );
    // A whole list, and a map selected whole.
    let svc = api::json(&api_url, "/api/http/services/echo@file?fields=serverStatus").await;
    assert_eq!(svc.as_object().map(|o| o.len()), Some(1), "{svc}");
    assert_eq!(svc["serverStatus"][format!("h2c://{}", a.addr)], "UP");

    for (query, needle) in [
        (
            "fields=loadBalancer.servers.urll",
            "loadBalancer.servers.urll",
        ),
        ("fields=nmae", "nmae"),
        ("fields=name.first", "name.first"),
        ("fields=serverStatus.x", "serverStatus.x"),
        ("fields=a..b", "a..b"),
        ("fields=", "empty"),
    ] {
        let (status, _, body) =
            api::get(&api_url, &format!("/api/http/services/echo?{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json error");
        let message = v["message"].as_str().expect("message");
        assert!(message.contains(needle), "{query}: {message}");
    }
    let (status, _, body) = api::get(
        &api_url,
        "/api/http/routers?fields=stats.grpcStatus.OK",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_search_filter_page_and_show_label_errors() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let broken = format!(
        r#"
[[task]]
id = "billing-1"
ip = "127.0.0.1"
ports = [{port}]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.billing.rule" = "GRPCServce(`billing.Billing`)"
"traefik.http.services.billing.loadbalancer.server.scheme" = "h2c"
"#,
        port = b.addr.port()
    );
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1)
        + &h2c_task(
            "task-r",
            &a,
            "routes",
            "GRPCService(`routeguide.RouteGuide`)",
            1,
        )
        + &broken;
    let gw = Gateway::start(&tasks).await;
    let api_url = gw.api_url();

    let errors = api::json(&api_url, "/api/errors").await;
    let e = errors
        .as_array()
        .and_then(|e| e.iter().find(|e| e["name"] == "billing"))
        .unwrap_or_else(|| panic!("no error for router billing: {errors}"));
    assert_eq!(e["kind"], "router");
    assert_eq!(e["task"], "billing-1");
    assert_eq!(e["label"], "traefik.http.routers.billing.rule");
    assert!(e["message"].as_str().unwrap().contains("GRPCServce"), "{e}");

    let disabled = api::json(&api_url, "/api/http/routers?status=disabled").await;
    assert_eq!(disabled.as_array().map(Vec::len), Some(1), "{disabled}");
    assert_eq!(disabled[0]["name"], "billing@file");
    assert!(!disabled[0]["error"].as_array().unwrap().is_empty());
    let found = api::json(&api_url, "/api/http/routers?search=ROUTEGUIDE").await;
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["name"], "routes@file");

    let (status, headers, body) =
        api::get(&api_url, "/api/http/routers?per_page=2&page=1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-total-count"], "3");
    assert_eq!(headers["x-next-page"], "2");
    let page1: Value = serde_json::from_str(&body).unwrap();
    let (_, headers, body) = api::get(&api_url, "/api/http/routers?per_page=2&page=2", None).await;
    assert_eq!(headers["x-next-page"], "1");
    let page2: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        page1.as_array().unwrap().len() + page2.as_array().unwrap().len(),
        3
    );
    assert_ne!(page1[0]["name"], page2[0]["name"]);

    for bad in [
        "/api/http/routers?status=sleepy",
        "/api/http/routers?page=0",
        "/api/http/routers?sort=name",
        "/api/errors?status=enabled",
    ] {
        let (status, _, body) = api::get(&api_url, bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _, _) = api::get(&api_url, "/api/http/routers/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let providers = api::json(&api_url, "/api/providers").await;
    assert_eq!(providers[0]["name"], "file");
    assert_eq!(providers[0]["healthy"], true);
    assert_eq!(providers[0]["tasks"], 3);
    assert!(providers[0]["lastRefresh"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backend_turns_down_and_back_up() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1)
        + &h2c_task("task-b", &b, "echo", ECHO_RULE, 1);
    let gw = Gateway::start(&tasks).await;
    let api_url = gw.api_url();
    let b_url = format!("h2c://{}", b.addr);
    let health = |svc: &Value| {
        server(svc, &b_url)["health"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // Never called: the reachability probe connects to it on its own.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while health(&api::json(&api_url, "/api/http/services/echo").await) != "UP"
        || !server(
            &api::json(&api_url, "/api/http/services/echo").await,
            &b_url,
        )["connected"]
            .as_bool()
            .unwrap_or(false)
    {
        assert!(tokio::time::Instant::now() < deadline, "b never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = b.addr;
    let killed = tokio::time::Instant::now();
    b.kill();
    loop {
        let svc = api::json(&api_url, "/api/http/services/echo").await;
        if health(&svc) == "DOWN" {
            let reason = server(&svc, &b_url)["healthReason"]
                .as_str()
                .unwrap_or("")
                .to_string();
            assert!(reason.contains(&addr.to_string()), "{reason}");
            assert_eq!(svc["status"], "warning");
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "b not DOWN 3 s after it stopped: {svc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Calls keep working on a, and none is sent to the dead server.
    let mut client = gw.echo().await;
    for _ in 0..20 {
        client
            .unary(EchoRequest::default())
            .await
            .expect("a call through the healthy server");
    }
    let _b = Backend::start_on("b", addr)
        .await
        .expect("restart b on its port");
    wait_until("b UP again", DEADLINE, || {
        gw.gantry
            .table()
            .endpoints()
            .values()
            .all(|e| e.is_reachable())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_guard_everything_but_ping() {
    let a = Backend::start("a").await;
    let gw = Gateway::start_custom(
        &h2c_task("task-a", &a, "echo", ECHO_RULE, 1),
        "[api.auth]\ntoken = \"s3cret-token\"\nuser = \"oncall\"\npassword = \"pa55\"\n",
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;
    let api_url = gw.api_url();
    let (status, _, body) = api::get(&api_url, "/ping", None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "OK"));
    for path in [
        "/api/overview",
        "/api/http/routers",
        "/metrics",
        "/api/rawdata",
        "/",
    ] {
        let (status, headers, body) = api::get(&api_url, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(headers.contains_key("www-authenticate"), "{path}");
        assert!(!body.contains("s3cret") && !body.contains("pa55"));
        let (status, _, _) = api::get(&api_url, path, Some("Bearer wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _, _) = api::get(&api_url, path, Some("Bearer s3cret-token")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        // oncall:pa55
        let (status, _, _) = api::get(&api_url, path, Some("Basic b25jYWxsOnBhNTU=")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_describe_each_call() {
    let a = Backend::start("a").await;
    let gw = Gateway::start_custom(
        &h2c_task("task-a", &a, "echo", ECHO_RULE, 1),
        "[access_log]\npath = \"access.log\"\n",
        "[providers.file]\npath = \"tasks.toml\"\n",
    )
    .await;
    let log_path = gw.dir().join("access.log");
    let mut client = gw.echo().await;
    let mut req = tonic::Request::new(EchoRequest {
        payload: vec![7; 100],
        ..Default::default()
    });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let reply = client.unary(req).await.expect("call").into_inner();
    // traceparent reaches the server untouched.
    assert_eq!(
        reply.headers.get("traceparent").map(String::as_str),
        Some(traceparent),
        "{:?}",
        reply.headers
    );
    client
        .unary(EchoRequest {
            fail_code: 5,
            ..Default::default()
        })
        .await
        .expect_err("NOT_FOUND");

    wait_until("two access log lines", DEADLINE, || {
        std::fs::read_to_string(&log_path).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let ok = &lines[0];
    assert_eq!(ok["grpcService"], "gantry.test.Echo");
    assert_eq!(ok["grpcMethod"], "Unary");
    assert_eq!(ok["grpcStatus"], 0);
    assert_eq!(ok["status"], "OK");
    assert_eq!(ok["router"], "echo");
    assert_eq!(ok["service"], "echo");
    assert_eq!(ok["task"], "task-a");
    assert_eq!(ok["upstream"], a.addr.to_string());
    assert_eq!(ok["entrypoint"], "web");
    assert_eq!(ok["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(ok["bytesIn"].as_u64().unwrap() >= 100, "{ok}");
    assert!(ok["bytesOut"].as_u64().unwrap() > 0, "{ok}");
    assert!(ok["durationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["grpcStatus"], 5);
    assert_eq!(lines[1]["status"], "NOT_FOUND");
}

/// Middleware definitions are listed in Traefik's shape with who uses them, a broken
/// one shows why, credentials never show, and a router that names middlewares is
/// disabled (gantry does not apply them yet) while the others serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middlewares_are_listed_with_their_users_and_errors() {
    let a = Backend::start("a").await;
    let guarded = format!(
        r#"
[[task]]
id = "orders-1"
ip = "127.0.0.1"
ports = [{port}]
[task.labels]
"traefik.enable" = "true"
"traefik.http.routers.orders.rule" = "GRPCService(`orders.Orders`)"
"traefik.http.routers.orders.middlewares" = "orders-auth,orders-limit"
"traefik.http.middlewares.orders-auth.basicauth.users" = "ops:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"
"traefik.http.middlewares.orders-limit.ratelimit.average" = "50"
"traefik.http.middlewares.orders-limit.ratelimit.burts" = "20"
"traefik.http.services.orders.loadbalancer.server.scheme" = "h2c"
"#,
        port = a.addr.port()
    );
    let tasks = h2c_task("task-a", &a, "echo", ECHO_RULE, 1) + &guarded;
    let gw = Gateway::start(&tasks).await;
    let api_url = gw.api_url();

    let all = api::json(&api_url, "/api/http/middlewares").await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
    let auth = api::json(&api_url, "/api/http/middlewares/orders-auth@file").await;
    assert_eq!(auth["type"], "basicauth", "{auth}");
    assert_eq!(auth["status"], "enabled", "{auth}");
    assert_eq!(auth["usedBy"], serde_json::json!(["orders@file"]), "{auth}");
    assert_eq!(
        auth["options"]["users"], "***",
        "credentials never show: {auth}"
    );
    assert!(!auth.to_string().contains("apr1"), "{auth}");

    let limit = api::json(&api_url, "/api/http/middlewares/orders-limit").await;
    assert_eq!(limit["status"], "disabled", "{limit}");
    let why = limit["error"].to_string();
    assert!(
        why.contains("traefik.http.middlewares.orders-limit.ratelimit.burts"),
        "{why}"
    );
    assert!(why.contains("unknown option \\\"burts\\\""), "{why}");
    let disabled = api::json(&api_url, "/api/http/middlewares?status=disabled").await;
    assert_eq!(disabled.as_array().map(Vec::len), Some(1), "{disabled}");

    let orders = api::json(&api_url, "/api/http/routers/orders@file").await;
    assert_eq!(orders["status"], "disabled", "{orders}");
    assert_eq!(
        orders["middlewares"],
        serde_json::json!(["orders-auth", "orders-limit"]),
        "{orders}"
    );
    let errors = orders["error"].to_string();
    assert!(
        errors.contains("middleware \\\"orders-limit\\\" is disabled"),
        "{errors}"
    );
    let kinds = api::json(&api_url, "/api/errors?status=middleware").await;
    assert_eq!(kinds.as_array().map(Vec::len), Some(1), "{kinds}");
    assert_eq!(kinds[0]["kind"], "middleware");
    assert_eq!(kinds[0]["task"], "orders-1");

    // The router without middlewares serves.
    let mut client = gw.echo().await;
    let answer = client
        .unary(EchoRequest {
            payload: b"hi".to_vec(),
            ..Default::default()
        })
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    let (status, _, _) = api::get(&api_url, "/api/http/middlewares/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

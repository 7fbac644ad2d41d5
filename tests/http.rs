//! Plain HTTP through gantry: HTTP/1.1 and h2c clients, HTTP/1.1 servers, header
//! rewriting, and the router-made 404/502/503.

use crate::support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{api, http_task, routed_task, Backend, Gateway};

/// Status, headers and body (as text) of a response.
async fn read(res: http::Response<hyper::body::Incoming>) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

type H1Client = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

fn h1() -> H1Client {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request over a fresh h2c connection to `addr`, with `uri`'s authority
/// as `:authority` (whatever host it names).
async fn h2c_request(
    addr: std::net::SocketAddr,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).expect("request"))
        .await
        .expect("response");
    read(res).await
}

async fn get(
    client: &H1Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = client
        .request(req.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    read(res).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2c_clients_reach_an_http1_server() {
    let web = Backend::start_http1("web").await;
    let gw = Gateway::start(&http_task(
        "web-1",
        web.addr.port(),
        "web",
        "Host(`app.example`) && PathPrefix(`/app`)",
        "",
    ))
    .await;
    let headers = [("x-forwarded-for", "203.0.113.7"), ("x-request-id", "r-1")];
    let mut h1_headers = headers.to_vec();
    h1_headers.push(("host", "app.example"));
    let via_h1 = get(&h1(), &format!("{}/app/x?y=1", gw.url()), &h1_headers).await;
    let via_h2c = h2c_request(gw.addr, "http://app.example/app/x?y=1", &headers).await;
    for (status, headers, body) in [via_h1, via_h2c] {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "web");
        assert_eq!(headers["x-backend"], "web");
        assert_eq!(headers["x-seen-x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(headers["x-seen-x-forwarded-proto"], "http");
        assert_eq!(headers["x-seen-x-forwarded-host"], "app.example");
        assert_eq!(headers["x-seen-x-request-id"], "r-1");
        assert_eq!(headers["x-seen-host"], "app.example");
        assert_eq!(headers["x-request-uri"], "/app/x?y=1");
    }
    // Another host does not match the rule.
    let (status, _, _) = h2c_request(gw.addr, "http://other.example/app/x", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped() {
    let web = Backend::start_http1("web").await;
    let gw = Gateway::start(&http_task(
        "web-1",
        web.addr.port(),
        "web",
        "PathPrefix(`/`)",
        "",
    ))
    .await;
    let (status, headers, _) = get(
        &h1(),
        &format!("{}/", gw.url()),
        &[
            ("connection", "keep-alive, x-private"),
            ("x-private", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("upgrade", "h2c"),
            ("x-public", "yes"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-x-public"], "yes");
    for dropped in [
        "x-seen-x-private",
        "x-seen-keep-alive",
        "x-seen-proxy-connection",
        "x-seen-te",
        "x-seen-upgrade",
    ] {
        assert!(
            !headers.contains_key(dropped),
            "{dropped} reached the server"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_made_http_errors() {
    let web = Backend::start_http1("web").await;
    // A closed port: take one, then free it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let tasks = http_task("web-1", web.addr.port(), "web", "PathPrefix(`/web`)", "")
        + &http_task("down-1", closed, "down", "PathPrefix(`/down`)", "")
        + &http_task(
            "sick-1",
            web.addr.port(),
            "sick",
            "PathPrefix(`/sick`)",
            "health = \"UNHEALTHY\"",
        );
    let gw = Gateway::start(&tasks).await;
    let client = h1();
    let (status, _, body) = get(&client, &format!("{}/nothing/here", gw.url()), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("no router matches GET /nothing/here"),
        "{body}"
    );
    let (status, _, body) = get(&client, &format!("{}/down", gw.url()), &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("\"down\""), "{body}");
    let (status, _, body) = get(&client, &format!("{}/sick", gw.url()), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"sick\""), "{body}");
    let (status, _, _) = get(&client, &format!("{}/web", gw.url()), &[]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_ping_rawdata_and_the_dashboard() {
    let web = Backend::start_http1("web").await;
    let gw = Gateway::start(&http_task(
        "web-1",
        web.addr.port(),
        "web",
        "PathPrefix(`/`)",
        "",
    ))
    .await;
    let api = format!("http://{}", gw.gantry.api_addr().expect("api address"));
    let client = h1();
    let (status, _, body) = get(&client, &format!("{api}/ping"), &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "OK"));
    let (status, _, body) = get(&client, &format!("{api}/api/rawdata"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let raw: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(raw["routers"]["web"]["rule"], "PathPrefix(`/`)");
    assert_eq!(
        raw["services"]["web"]["servers"][0]["url"],
        format!("http://{}", web.addr)
    );
    // A plain HTTP call is counted by its status class.
    get(&client, &format!("{}/", gw.url()), &[]).await;
    let (status, _, body) = get(&client, &format!("{api}/api/http/services/web"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let svc: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(svc["loadBalancer"]["servers"][0]["requests"], 1, "{svc}");
    assert_eq!(
        svc["loadBalancer"]["servers"][0]["grpcStatus"]["HTTP 2xx"], 1,
        "{svc}"
    );
    // The dashboard's files are embedded and served with a strict CSP.
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) = get(&client, &format!("{api}{path}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'"));
        assert!(!body.is_empty(), "{path}");
    }
}

#[tokio::test]
async fn request_heads_past_max_header_bytes_get_431_on_both_protocols() {
    let backend = Backend::start_http1("pages").await;
    let tasks = http_task("pages", backend.addr.port(), "pages", "PathPrefix(`/`)", "");
    let extra = "[entrypoints.small]\naddress = \"127.0.0.1:0\"\nmax_header_bytes = 8192\n";
    let gw =
        Gateway::start_custom(&tasks, extra, "[providers.file]\npath = \"tasks.toml\"\n").await;
    let small = gw.gantry.entrypoint("small").expect("small");
    let big = "x".repeat(20_000);
    let fine = "x".repeat(2_000);

    let url = format!("http://{small}/a");
    let (status, _, _) = get(&h1(), &url, &[("x-big", &fine)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&h1(), &url, &[("x-big", &big)]).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let (status, _, _) = h2c_request(small, &url, &[("x-big", &fine)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = h2c_request(small, &url, &[("x-big", &big)]).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passhostheader_false_sends_each_servers_own_address() {
    let web = Backend::start_http_any("web").await;
    let rule = "Host(`app.example`)";
    let line = "\"traefik.http.services.{s}.loadbalancer.passhostheader\" = \"false\"\n";
    let tasks = http_task("h1", web.addr.port(), "plain", rule, "")
        + &line.replace("{s}", "plain")
        + &routed_task(
            "h2",
            web.addr.port(),
            "",
            "grpcish",
            "Host(`rpc.example`)",
            "h2c",
        )
        + &line.replace("{s}", "grpcish");
    let gw = Gateway::start(&tasks).await;
    let own = web.addr.to_string();
    // To an HTTP/1.1 server, from HTTP/1.1 and from h2c clients: Host is the server's.
    let (status, headers, _) = get(
        &h1(),
        &format!("{}/x", gw.url()),
        &[("host", "app.example")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-host"], own.as_str());
    assert_eq!(headers["x-seen-x-forwarded-host"], "app.example");
    let (status, headers, _) = h2c_request(gw.addr, "http://app.example/x", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-seen-host"], own.as_str());
    // To an h2c server: the :authority is the server's.
    let (status, headers, _) = h2c_request(gw.addr, "http://rpc.example/y", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-request-uri"], format!("http://{own}/y").as_str());
    assert_eq!(headers["x-seen-x-forwarded-host"], "rpc.example");
    // And by default the client's host is passed.
    let tasks = http_task("h1", web.addr.port(), "plain", rule, "");
    gw.set_tasks(&tasks).await;
    let (_, headers, _) = get(
        &h1(),
        &format!("{}/x", gw.url()),
        &[("host", "app.example")],
    )
    .await;
    assert_eq!(headers["x-seen-host"], "app.example");
}

/// A v1 task served with the labels it had under Traefik 1, one with basic auth gantry
/// does not implement yet: that one gets no route (never served without its auth),
/// and the API says why; the other routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_frontend_with_auth_is_not_served_without_it() {
    let web = Backend::start_http1("web").await;
    let v1 = |id: &str, host: &str, extra: &str| {
        format!(
            "\n[[task]]\nid = \"{id}\"\nip = \"127.0.0.1\"\nports = [{port}]\n[task.labels]\n\
             \"traefik.enable\" = \"true\"\n\"traefik.backend\" = \"{id}\"\n\
             \"traefik.frontend.rule\" = \"Host:{host}\"\n{extra}",
            port = web.addr.port()
        )
    };
    let tasks = v1(
        "open",
        "open.example",
        "\"traefik.docker.network\" = \"proxy\"\n",
    ) + &v1(
        "admin",
        "admin.example",
        "\"traefik.frontend.auth.basic.users\" = \"ops:$apr1$x$y\"\n",
    ) + &v1(
        "office",
        "office.example",
        "\"traefik.frontend.whiteList.sourceRange\" = \"10.0.0.0/8\"\n",
    );
    let gw = Gateway::start(&tasks).await;
    let (status, headers, _) = get(
        &h1(),
        &format!("{}/", gw.url()),
        &[("host", "open.example")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-backend"], "web");
    let (status, _, _) = get(
        &h1(),
        &format!("{}/", gw.url()),
        &[("host", "admin.example")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let errors = api::json(&gw.api_url(), "/api/errors").await;
    let rows = errors.as_array().expect("a list");
    let refused = rows
        .iter()
        .find(|e| e["label"] == "traefik.frontend.auth.basic.users")
        .unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(refused["severity"], "error");
    assert_eq!(refused["kind"], "router");
    assert_eq!(refused["name"], "admin");
    assert_eq!(refused["task"], "admin");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("basic authentication"),
        "{refused}"
    );
    let ignored = rows
        .iter()
        .find(|e| e["label"] == "traefik.docker.network")
        .unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(ignored["severity"], "warning");
    let router = api::json(&gw.api_url(), "/api/http/routers/admin@file").await;
    assert_eq!(router["status"], "disabled", "{router}");
    assert!(
        rows.iter()
            .any(|e| e["label"] == "traefik.frontend.whiteList.sourceRange"
                && e["severity"] == "error"
                && e["name"] == "office"),
        "{errors}"
    );
    let overview = api::json(&gw.api_url(), "/api/overview").await;
    assert_eq!(overview["errors"], 2, "{overview}");
    assert_eq!(overview["warnings"], 1, "{overview}");
}

/// Traefik 1 segments: one frontend and backend per segment, each with its own port
/// and rule, the task-wide labels as defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_segments_route_each_to_its_own_port() {
    let web = Backend::start_http1("web").await;
    let admin = Backend::start_http1("admin").await;
    let tasks = format!(
        r#"
[[task]]
id = "app-1"
ip = "127.0.0.1"
group = "service:app"
ports = [{web}, {admin}]
[task.labels]
"traefik.enable" = "true"
"traefik.frontend.entryPoints" = "web"
"traefik.site.port" = "{web}"
"traefik.site.frontend.rule" = "Host:app.example"
"traefik.ops.port" = "{admin}"
"traefik.ops.frontend.rule" = "Host:app.example;PathPrefix:/admin"
"#,
        web = web.addr.port(),
        admin = admin.addr.port()
    );
    let gw = Gateway::start(&tasks).await;
    let host = [("host", "app.example")];
    let (status, headers, _) = get(&h1(), &format!("{}/", gw.url()), &host).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-backend"], "web");
    let (status, headers, _) = get(&h1(), &format!("{}/admin/x", gw.url()), &host).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-backend"], "admin");
    let routers = api::json(&gw.api_url(), "/api/http/routers").await;
    let names: Vec<&str> = routers
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["ops-service-app-ops@file", "site-service-app-site@file"],
        "{routers}"
    );
}

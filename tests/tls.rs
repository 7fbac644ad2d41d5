//! TLS: termination on an entrypoint (ALPN h2 and http/1.1, SNI, certificates
//! renewed on disk), routers restricted to TLS entrypoints, and servers of scheme
//! https verified against the configured CA (or, per service, not verified, with a
//! warning in the API).

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::support::pki::{self, TestCa};
use crate::support::proto::echo::{echo_client::EchoClient, EchoRequest};
use crate::support::{self, api, echo_task, http_task, within, Backend, Gateway, DEADLINE};

/// `[entrypoints.websecure]` terminating TLS with `certs` (cert, key) pairs.
fn websecure(certs: &[(&Path, &Path)], extra: &str) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| {
            format!(
                "{{ cert = {:?}, key = {:?} }}",
                c.display().to_string(),
                k.display().to_string()
            )
        })
        .collect();
    format!(
        "[entrypoints.websecure]\naddress = \"127.0.0.1:0\"\n[entrypoints.websecure.tls]\ncertificates = [{}]\n{extra}\n",
        list.join(", ")
    )
}

const FILE: &str = "[providers.file]\npath = \"tasks.toml\"\n";

/// An Echo client over TLS to `addr`, trusting `ca` and naming `sni` (tonic offers
/// ALPN h2 only and fails unless the server agrees to it).
async fn echo_tls(addr: SocketAddr, ca: &TestCa, sni: &str) -> EchoClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name(sni);
    let channel = Channel::from_shared(format!("https://{addr}"))
        .expect("url")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connection to gantry");
    EchoClient::new(channel)
}

#[tokio::test]
async fn a_tls_entrypoint_serves_h2_and_http1_by_alpn() {
    let certs = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("gantry test CA");
    let (cert, key) = ca.write_leaf(certs.path(), "site", &["localhost", "api.test"]);
    let grpc = Backend::start("grpc-a").await;
    let web = Backend::start_http1("web-a").await;
    let tasks = format!(
        "{}{}",
        echo_task("grpc", &grpc, "", &[], &[("tls", "true")]),
        http_task("web", web.addr.port(), "pages", "PathPrefix(`/pages`)", "")
    );
    let gw = Gateway::start_custom(&tasks, &websecure(&[(&cert, &key)], ""), FILE).await;
    let secure = gw.gantry.entrypoint("websecure").expect("websecure");

    // h2 by ALPN: a gRPC call through the TLS entrypoint.
    let mut c = echo_tls(secure, &ca, "api.test").await;
    let reply = within("a call over TLS", c.unary(EchoRequest::default()))
        .await
        .expect("call over TLS")
        .into_inner();
    assert_eq!(reply.backend, "grpc-a");

    // The router has tls=true: the plain entrypoint does not serve it.
    let err = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect_err("tls-only router on a plain entrypoint");
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");

    // A client offering both gets h2 (the server's preference).
    let both = pki::client_config(&ca, &[b"http/1.1", b"h2"]);
    let s = pki::connect(secure, "api.test", both)
        .await
        .expect("handshake");
    assert_eq!(pki::alpn(&s).as_deref(), Some("h2"));

    // http/1.1 by ALPN: a plain HTTP request, with X-Forwarded-Proto https.
    let h1 = pki::client_config(&ca, &[b"http/1.1"]);
    let s = pki::connect(secure, "api.test", h1)
        .await
        .expect("handshake");
    assert_eq!(pki::alpn(&s).as_deref(), Some("http/1.1"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .expect("http/1.1 over TLS");
    tokio::spawn(conn);
    let req = http::Request::get("/pages/x")
        .header("host", "api.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = within("an HTTP/1.1 answer", sender.send_request(req))
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-backend"], "web-a");
    assert_eq!(res.headers()["x-seen-x-forwarded-proto"], "https");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"web-a");

    // No ALPN at all: HTTP/1.1 still works (the protocol is read off the bytes).
    let none = pki::client_config(&ca, &[]);
    let s = pki::connect(secure, "api.test", none)
        .await
        .expect("handshake");
    assert_eq!(pki::alpn(&s), None);

    // TLS 1.2 is served too (the oldest version allowed by default).
    let tls12 = pki::client_config_versions(&ca, &[b"h2"], &[&rustls::version::TLS12]);
    let s = pki::connect(secure, "api.test", tls12)
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn min_version_1_3_refuses_tls_1_2() {
    let certs = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("gantry test CA");
    let (cert, key) = ca.write_leaf(certs.path(), "site", &["api.test"]);
    let extra = websecure(&[(&cert, &key)], "min_version = \"1.3\"");
    let gw = Gateway::start_custom("", &extra, FILE).await;
    let secure = gw.gantry.entrypoint("websecure").expect("websecure");
    let tls12 = pki::client_config_versions(&ca, &[b"h2"], &[&rustls::version::TLS12]);
    let e = pki::connect(secure, "api.test", tls12)
        .await
        .expect_err("TLS 1.2 refused");
    assert!(
        e.to_string().contains("ProtocolVersion") || e.to_string().contains("version"),
        "{e}"
    );
    let tls13 = pki::client_config(&ca, &[b"h2"]);
    let s = pki::connect(secure, "api.test", tls13)
        .await
        .expect("TLS 1.3");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let certs = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("gantry test CA");
    let a = ca.write_leaf(certs.path(), "a", &["a.test"]);
    let b = ca.write_leaf(certs.path(), "b", &["b.test"]);
    let w = ca.write_leaf(certs.path(), "w", &["*.wild.test"]);
    let extra = websecure(&[(&a.0, &a.1), (&b.0, &b.1), (&w.0, &w.1)], "");
    let gw = Gateway::start_custom("", &extra, FILE).await;
    let secure = gw.gantry.entrypoint("websecure").expect("websecure");
    let config = pki::client_config(&ca, &[b"h2"]);
    for (sni, want) in [
        ("a.test", "a.test"),
        ("b.test", "b.test"),
        ("x.wild.test", "*.wild.test"),
    ] {
        let s = pki::connect(secure, sni, config.clone())
            .await
            .unwrap_or_else(|e| panic!("handshake for {sni}: {e}"));
        assert_eq!(pki::peer_names(&s), [want], "certificate for {sni}");
    }
    // A name no certificate has gets the first one, which the client refuses.
    let e = pki::connect(secure, "other.test", config.clone())
        .await
        .expect_err("no certificate for other.test");
    assert!(e.to_string().contains("certificate"), "{e}");

    // The API lists each certificate's names.
    let eps = api::json(&gw.api_url(), "/api/entrypoints").await;
    let secure_ep = eps
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "websecure"))
        .expect("websecure in /api/entrypoints");
    let names: Vec<&str> = secure_ep["tls"]["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .flat_map(|c| c["names"].as_array().expect("names").iter())
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(names, ["a.test", "b.test", "*.wild.test"]);
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let certs = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("gantry test CA");
    let (cert, key) = ca.write_leaf(certs.path(), "site", &["old.test", "site.test"]);
    let backend = Backend::start("a").await;
    let tasks = echo_task("a", &backend, "", &[], &[]);
    let extra = websecure(&[(&cert, &key)], "reload_seconds = 1");
    let gw = Gateway::start_custom(&tasks, &extra, FILE).await;
    let secure = gw.gantry.entrypoint("websecure").expect("websecure");
    let config = pki::client_config(&ca, &[b"h2"]);
    let s = pki::connect(secure, "site.test", config.clone())
        .await
        .expect("handshake");
    assert_eq!(pki::peer_names(&s), ["old.test", "site.test"]);
    // A client connected before the renewal keeps its connection.
    let mut before = echo_tls(secure, &ca, "site.test").await;

    ca.write_leaf(certs.path(), "site", &["new.test", "site.test"]);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let s = pki::connect(secure, "site.test", config.clone())
            .await
            .expect("handshake");
        if pki::peer_names(&s) == ["new.test", "site.test"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served within {DEADLINE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let reply = before
        .unary(EchoRequest::default())
        .await
        .expect("a call on a connection from before the renewal")
        .into_inner();
    assert_eq!(reply.backend, "a");
    let mut after = echo_tls(secure, &ca, "site.test").await;
    after
        .unary(EchoRequest::default())
        .await
        .expect("a call on a connection after the renewal");
}

/// An Echo server on 127.0.0.1 speaking TLS with `cert`/`key` (ALPN h2).
async fn tls_backend(
    name: &str,
    cert: &str,
    key: &str,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        .expect("server tls")
        .add_service(support::backend::echo_server(name));
    let task = tokio::spawn(async move {
        let _ = server
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (addr, task)
}

/// A task routing Echo to an https server, with `lb` load balancer labels.
fn https_task(addr: SocketAddr, lb: &[(&str, &str)]) -> String {
    let mut t = support::routed_task(
        "secure",
        addr.port(),
        "",
        "echo",
        support::ECHO_RULE,
        "https",
    );
    for (k, v) in lb {
        t.push_str(&format!(
            "\"traefik.http.services.echo.loadbalancer.{k}\" = \"{v}\"\n"
        ));
    }
    t
}

#[tokio::test]
async fn https_servers_are_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("private CA");
    let ca_path = ca.write_ca(dir.path());
    let (cert, key) = ca.leaf(&["127.0.0.1", "echo.internal"]);
    let (addr, _server) = tls_backend("secure", &cert, &key).await;

    // No CA configured: the system roots do not know this CA; the call fails.
    let gw = Gateway::start_custom(&https_task(addr, &[]), "", FILE).await;
    let err = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect_err("an unknown CA must be refused");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let reason = server_reason(&gw, |r| r.contains("UnknownIssuer")).await;
    assert!(reason.contains("TLS to 127.0.0.1"), "{reason:?}");
    drop(gw);

    // The CA configured: verified by IP address, or by the name the service gives.
    let extra = format!(
        "[upstream.tls]\nca_files = [{:?}]\n",
        ca_path.display().to_string()
    );
    let gw = Gateway::start_custom(&https_task(addr, &[]), &extra, FILE).await;
    let reply = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect("a verified https server")
        .into_inner();
    assert_eq!(reply.backend, "secure");
    gw.set_tasks(&https_task(addr, &[("tls.server_name", "echo.internal")]))
        .await;
    gw.echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect("verified by server_name");
    gw.set_tasks(&https_task(addr, &[("tls.server_name", "other.internal")]))
        .await;
    let err = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect_err("a certificate for another name must be refused");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    let svc = api::json(&gw.api_url(), "/api/http/services/echo@file").await;
    assert!(svc.get("warnings").is_none(), "{svc}");
}

#[tokio::test]
async fn insecure_skip_verify_works_and_is_shown_as_a_warning() {
    let ca = TestCa::new("unknown CA");
    let (cert, key) = ca.leaf(&["127.0.0.1"]);
    let (addr, _server) = tls_backend("secure", &cert, &key).await;
    let gw = Gateway::start_custom(
        &https_task(addr, &[("tls.insecure_skip_verify", "true")]),
        "",
        FILE,
    )
    .await;
    let reply = gw
        .echo()
        .await
        .unary(EchoRequest::default())
        .await
        .expect("an unverified https server")
        .into_inner();
    assert_eq!(reply.backend, "secure");
    let base = gw.api_url();
    let svc = api::json(&base, "/api/http/services/echo@file").await;
    assert_eq!(svc["status"], "warning", "{svc}");
    let warning = svc["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("insecure_skip_verify"), "{svc}");
    assert_eq!(svc["loadBalancer"]["tls"]["insecureSkipVerify"], true);
}

/// Waits for the Echo service's server to show a health reason `ok` accepts.
async fn server_reason(gw: &Gateway, ok: impl Fn(&str) -> bool) -> String {
    let base = gw.api_url();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let svc = api::json(&base, "/api/http/services/echo@file").await;
        let reason = svc["loadBalancer"]["servers"][0]["healthReason"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if ok(&reason) {
            return reason;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such health reason within {DEADLINE:?}; last: {svc}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

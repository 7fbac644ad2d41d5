//! Unit tests of the v1 reader: translation, segments, fail-closed refusals, and
//! the v2-only reading of mixed tasks.

use super::*;
use crate::dynamic::{Scheme, Severity};
use crate::labels::tests::task;

fn parsed(labels: &[(&str, &str)]) -> TaskLabels {
    let t = task("t1", &[80], labels);
    parse::parse_task(&t, "traefik")
}

fn name() -> String {
    task("t1", &[], &[]).default_name()
}

#[test]
fn every_v1_key_is_translated() {
    let got = parsed(&[
        ("traefik.frontend.rule", "Host:a.com"),
        ("traefik.frontend.priority", "7"),
        ("traefik.frontend.entryPoints", "web,websecure"),
        ("traefik.frontend.passHostHeader", "false"),
        ("traefik.protocol", "h2c"),
        ("traefik.port", "9000"),
        ("traefik.weight", "3"),
        ("traefik.backend", "api"),
    ]);
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let service = &got.services["api"];
    assert_eq!(service.port.as_ref().unwrap().parsed, Ok(9000));
    assert_eq!(
        service.port.as_ref().unwrap().label.as_deref(),
        Some("traefik.port")
    );
    assert_eq!(service.scheme.as_ref().unwrap().parsed, Ok(Scheme::H2c));
    assert_eq!(service.weight.as_ref().unwrap().parsed, Ok(3));
    assert_eq!(service.pass_host_header.as_ref().unwrap().parsed, Ok(false));
    let router = &got.routers["api"];
    assert_eq!(
        router.rule.as_ref().unwrap().parsed,
        crate::rules::translate_v1("Host:a.com").map_err(|e| e.to_string())
    );
    assert_eq!(router.priority.as_ref().unwrap().parsed, Ok(7));
    assert_eq!(
        router.service.as_ref().unwrap().parsed,
        Ok("api".to_string())
    );
    assert_eq!(
        router.entry_points.as_ref().unwrap().parsed,
        Ok(vec!["web".to_string(), "websecure".to_string()])
    );
}

#[test]
fn v1_keys_match_in_any_case() {
    let got = parsed(&[
        ("traefik.Frontend.EntryPoints", "web"),
        ("traefik.PORT", "81"),
    ]);
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    assert!(got.routers[&name()].entry_points.is_some());
    assert_eq!(got.services[&name()].port.as_ref().unwrap().parsed, Ok(81));
}

#[test]
fn a_v1_task_always_has_its_frontend_with_the_default_rule() {
    let got = parsed(&[("traefik.port", "81")]);
    let router = &got.routers[&name()];
    let rule = router.rule.as_ref().unwrap();
    assert_eq!(rule.label, None);
    assert_eq!(
        rule.parsed,
        crate::rules::translate_v1(&format!("Host:{}", name())).map_err(|e| e.to_string())
    );
    // traefik.domain puts the default host under it, as Traefik 1 did.
    let got = parsed(&[("traefik.port", "81"), ("traefik.domain", "example.com")]);
    let rule = got.routers[&name()].rule.clone().unwrap();
    assert_eq!(
        rule.parsed,
        crate::rules::translate_v1(&format!("Host:{}.example.com", name()))
            .map_err(|e| e.to_string())
    );
}

#[test]
fn segments_are_frontends_and_backends_of_their_own() {
    let got = parsed(&[
        ("traefik.port", "80"),
        ("traefik.frontend.entryPoints", "web"),
        ("traefik.web.frontend.rule", "Host:a.com"),
        ("traefik.admin.port", "9090"),
        ("traefik.admin.protocol", "h2c"),
        ("traefik.admin.frontend.rule", "Host:admin.a.com"),
        ("traefik.grpc.backend", "rpc"),
        ("traefik.grpc.frontend.rule", "PathPrefix:/rpc"),
    ]);
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let n = name();
    let web = format!("{n}-web");
    let admin = format!("{n}-admin");
    let rpc = format!("{n}-rpc");
    let names: Vec<&String> = got.services.keys().collect();
    assert_eq!(names, vec![&admin, &rpc, &web]);
    // Task-wide labels are each segment's defaults.
    assert_eq!(got.services[&web].port.as_ref().unwrap().parsed, Ok(80));
    assert_eq!(got.services[&admin].port.as_ref().unwrap().parsed, Ok(9090));
    assert_eq!(
        got.services[&admin].scheme.as_ref().unwrap().parsed,
        Ok(Scheme::H2c)
    );
    assert_eq!(got.services[&rpc].port.as_ref().unwrap().parsed, Ok(80));
    let router = &got.routers[&format!("admin-{admin}")];
    assert_eq!(router.service.as_ref().unwrap().parsed, Ok(admin.clone()));
    assert_eq!(
        router.entry_points.as_ref().unwrap().parsed,
        Ok(vec!["web".to_string()])
    );
    assert!(got.routers.contains_key(&format!("grpc-{rpc}")));
    assert!(got.routers.contains_key(&format!("web-{web}")));
    // No default frontend beside the segments.
    assert_eq!(got.routers.len(), 3);
}

#[test]
fn refused_frontend_labels_disable_their_router() {
    for key in [
        "traefik.frontend.auth.basic",
        "traefik.frontend.auth.basic.users",
        "traefik.frontend.auth.forward.address",
        "traefik.frontend.whiteList.sourceRange",
        "traefik.frontend.whitelistSourceRange",
        "traefik.frontend.redirect.entryPoint",
        "traefik.frontend.headers.SSLRedirect",
        "traefik.frontend.rateLimit.rateSet.r1.average",
        "traefik.frontend.errors.e.status",
        "traefik.frontend.passTLSCert",
        "traefik.frontend.someday",
    ] {
        let got = parsed(&[("traefik.frontend.rule", "Host:a.com"), (key, "true")]);
        let router = &got.routers[&name()];
        assert_eq!(router.problems.len(), 1, "{key}: {:?}", router.problems);
        let p = &router.problems[0];
        assert_eq!(p.label.as_deref(), Some(key));
        assert!(p.is_error(), "{key}");
        assert!(
            p.message.contains("router is disabled"),
            "{key}: {}",
            p.message
        );
    }
    // A segment's refusal is its own router's.
    let got = parsed(&[
        ("traefik.a.frontend.rule", "Host:a.com"),
        ("traefik.b.frontend.rule", "Host:b.com"),
        ("traefik.b.frontend.auth.basic.users", "u:$apr1$x$y"),
    ]);
    let n = name();
    assert!(got.routers[&format!("a-{n}-a")].problems.is_empty());
    assert_eq!(got.routers[&format!("b-{n}-b")].problems.len(), 1);
}

#[test]
fn modifiers_alone_and_blank_values_are_warnings() {
    let got = parsed(&[
        ("traefik.frontend.rule", "Host:a.com"),
        ("traefik.frontend.whiteList.useXForwardedFor", "true"),
        ("traefik.frontend.whiteList.sourceRange", ""),
        ("traefik.frontend.auth.basic.removeHeader", "true"),
        ("traefik.frontend.headers.SSLRedirect", "false"),
    ]);
    assert!(got.routers[&name()].problems.is_empty());
    assert_eq!(got.problems.len(), 4, "{:?}", got.problems);
    assert!(got.problems.iter().all(|p| p.severity == Severity::Warning));
}

#[test]
fn backend_protections_disable_the_service() {
    let got = parsed(&[
        ("traefik.frontend.rule", "Host:a.com"),
        (
            "traefik.backend.circuitbreaker.expression",
            "NetworkErrorRatio() > 0.5",
        ),
        ("traefik.backend.maxconn.amount", "10"),
    ]);
    let service = &got.services[&name()];
    assert_eq!(service.problems.len(), 2, "{:?}", service.problems);
    assert!(service
        .problems
        .iter()
        .all(|p| p.message.contains("service")));
}

#[test]
fn backend_settings_become_load_balancer_settings() {
    let t = task(
        "t1",
        &[80],
        &[
            ("traefik.frontend.rule", "Host:a.com"),
            ("traefik.backend.healthcheck.path", "/health"),
            ("traefik.backend.healthcheck.interval", "10s"),
            ("traefik.backend.healthcheck.port", "8081"),
            ("traefik.backend.healthcheck.headers", "X-A:1||X-B: two"),
            ("traefik.backend.loadbalancer.method", "drr"),
            ("traefik.backend.loadbalancer.swarm", "true"),
        ],
    );
    let mut labels = parse::parse_task(&t, "traefik");
    let service = labels.services.remove(&name()).unwrap();
    let mut problems = Vec::new();
    let lb = crate::labels::balancing::resolve("s", service.balancing, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let hc = lb.health_check.expect("a check");
    assert_eq!(hc.mode, crate::dynamic::HealthMode::Http);
    assert_eq!(hc.target, "/health");
    assert_eq!(hc.interval_ms, 10_000);
    assert_eq!(hc.port, Some(8081));
    assert_eq!(hc.headers["x-a"], "1");
    assert_eq!(hc.headers["x-b"], "two");
    assert_eq!(lb.strategy, crate::dynamic::Strategy::P2c);
    // Swarm's balancer means nothing here: a warning.
    assert_eq!(labels.problems.len(), 1);
    assert_eq!(labels.problems[0].severity, Severity::Warning);
}

#[test]
fn a_task_with_v2_labels_is_read_as_v2_only() {
    let got = parsed(&[
        ("traefik.http.routers.api.rule", "PathPrefix(`/v2`)"),
        ("traefik.protocol", "h2c"),
        ("traefik.frontend.rule", "Host:a.com"),
        ("traefik.frontend.errors.e.status", "500"),
    ]);
    // No v1 frontend or backend: the v2 defaults apply later.
    assert_eq!(got.routers.keys().collect::<Vec<_>>(), vec!["api"]);
    assert!(got.services.is_empty());
    assert_eq!(got.problems.len(), 3, "{:?}", got.problems);
    assert!(got.problems.iter().all(|p| p.severity == Severity::Warning));
    assert!(got.router_problems.is_empty());
}

#[test]
fn a_restricting_v1_label_on_a_v2_task_still_fails_closed() {
    let got = parsed(&[
        ("traefik.http.routers.api.rule", "PathPrefix(`/v2`)"),
        ("traefik.frontend.auth.basic.users", "u:$apr1$x$y"),
    ]);
    assert_eq!(got.router_problems.len(), 1);
    let p = &got.router_problems[0];
    assert_eq!(
        p.label.as_deref(),
        Some("traefik.frontend.auth.basic.users")
    );
    assert!(p.message.contains("read as v2"), "{}", p.message);
}

#[test]
fn bad_v1_values_stay_in_their_slots() {
    let got = parsed(&[
        ("traefik.protocol", "ftp"),
        ("traefik.weight", "-2"),
        ("traefik.frontend.priority", "x"),
        ("traefik.backend", " "),
    ]);
    // A blank backend is ignored (with a warning), as Traefik 1 ignored it.
    assert_eq!(got.problems.len(), 1);
    assert_eq!(got.problems[0].label.as_deref(), Some("traefik.backend"));
    assert_eq!(got.problems[0].severity, Severity::Warning);
    let service = &got.services[&name()];
    assert_eq!(
        service.scheme.as_ref().unwrap().parsed,
        Err("invalid protocol \"ftp\": expected http, h2c or https".to_string())
    );
    assert!(service.weight.as_ref().unwrap().parsed.is_err());
    assert!(got.routers[&name()]
        .priority
        .as_ref()
        .unwrap()
        .parsed
        .is_err());
}

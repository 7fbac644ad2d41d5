//! Finding a request's router in tables of 10, 100 and 1,000 routers.
//!
//! - `grpc_services/N`: N routers `GRPCService(pkg.S<i>)` (the shape of gRPC rules:
//!   no host, a path prefix); the request is for the last one, the worst case of a
//!   linear scan;
//! - `hosts/N`: N routers ``Host(`s<i>.example.com`) && PathPrefix(`/api/`)``, the
//!   request for the last one with a mixed-case Host;
//! - `no_match/N`: a request no router matches;
//! - `grpc_services_linear/N`: the first case by trying every rule, for comparison.
//!
//! Run with `cargo bench --bench routing`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gantry::labels::{self, LabelOptions};
use gantry::provider::{Lifecycle, PortMapping, Task, TaskHealth};
use gantry::rules::RequestInfo;
use gantry::table::{self, RoutingTable};
use http::{HeaderMap, Method};

fn table_of(rules: impl Fn(usize) -> String, n: usize) -> RoutingTable {
    let tasks: Vec<Task> = (0..n)
        .map(|i| {
            let mut labels = BTreeMap::new();
            labels.insert("traefik.enable".to_string(), "true".to_string());
            labels.insert(format!("traefik.http.routers.r{i}.rule"), rules(i));
            labels.insert(
                format!("traefik.http.services.r{i}.loadbalancer.server.scheme"),
                "h2c".to_string(),
            );
            Task {
                id: format!("t{i}"),
                provider: "file".to_string(),
                ip: std::net::IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1]),
                zone: None,
                group: None,
                container: None,
                lifecycle: Lifecycle::Running,
                health: TaskHealth::Healthy,
                ports: vec![PortMapping {
                    container: 50051,
                    host: 50051,
                }],
                labels,
            }
        })
        .collect();
    let mut config = labels::build(&tasks, &LabelOptions::default());
    let entrypoints = vec!["web".to_string()];
    table::validate(&mut config, &entrypoints);
    assert_eq!(config.errors.len(), 0, "{:?}", config.errors);
    RoutingTable::compile(
        Arc::new(config),
        &entrypoints,
        &RoutingTable::empty(entrypoints.len()),
    )
}

fn routing(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let method = Method::POST;
    let info = |host: &'static str, path: &'static str| RequestInfo {
        method: &method,
        host,
        path,
        query: None,
        headers: &headers,
        client_ip: std::net::IpAddr::from([127, 0, 0, 1]),
    };
    let mut group = c.benchmark_group("route");
    for n in [10usize, 100, 1_000] {
        let grpc = table_of(|i| format!("GRPCService(`pkg.S{i}`)"), n);
        let last: &'static str = Box::leak(format!("/pkg.S{}/Call", n - 1).into_boxed_str());
        let req = info("gantry.internal", last);
        assert!(grpc.route(0, &req).is_some());
        group.bench_with_input(BenchmarkId::new("grpc_services", n), &n, |b, _| {
            b.iter(|| black_box(grpc.route(0, black_box(&req)).is_some()))
        });
        group.bench_with_input(BenchmarkId::new("grpc_services_linear", n), &n, |b, _| {
            b.iter(|| black_box(grpc.route_linear(0, black_box(&req)).is_some()))
        });

        let hosts = table_of(
            |i| format!("Host(`s{i}.example.com`) && PathPrefix(`/api/`)"),
            n,
        );
        let host: &'static str = Box::leak(format!("S{}.Example.com", n - 1).into_boxed_str());
        let req = info(host, "/api/items");
        assert!(hosts.route(0, &req).is_some());
        group.bench_with_input(BenchmarkId::new("hosts", n), &n, |b, _| {
            b.iter(|| black_box(hosts.route(0, black_box(&req)).is_some()))
        });

        let req = info("nowhere", "/pkg.Unknown/Call");
        assert!(grpc.route(0, &req).is_none());
        group.bench_with_input(BenchmarkId::new("no_match", n), &n, |b, _| {
            b.iter(|| black_box(grpc.route(0, black_box(&req)).is_none()))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);

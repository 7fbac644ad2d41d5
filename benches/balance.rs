//! What picking a server and judging its calls cost on the call path.
//!
//! - `select_wrr_10`, `select_p2c_10`: one pick among 10 UP servers;
//! - `select_wrr_zone_10`: the same with zone affinity (5 of the 10 local): the
//!   local-health check and the local pick;
//! - `outlier_observe`: counting one finished call for outlier detection (success);
//! - `outlier_observe_failure`: the same for a failure (consecutive ejection off, so
//!   it never ejects).
//!
//! Run with `cargo bench --bench balance`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gantry::balance::outlier::Group;
use gantry::balance::{Balancer, Endpoint, EndpointKey};
use gantry::dynamic::{OutlierDetection, Scheme, Strategy, ZoneAffinity};
use gantry::telemetry::Outcome;
use http::HeaderMap;

fn endpoints(n: u16) -> Vec<(Arc<Endpoint>, u32)> {
    (0..n)
        .map(|i| {
            let e = Endpoint::new(EndpointKey {
                task: format!("t{i}"),
                address: ([127, 0, 0, 1], 20_000 + i).into(),
                scheme: Scheme::H2c,
                tls: None,
            });
            (Arc::new(e), 1)
        })
        .collect()
}

fn select(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let wrr = Balancer::new(endpoints(10), &Strategy::Wrr);
    c.bench_function("select_wrr_10", |b| {
        b.iter(|| black_box(wrr.select(black_box(&headers)).is_some()))
    });
    let p2c = Balancer::new(endpoints(10), &Strategy::P2c);
    c.bench_function("select_p2c_10", |b| {
        b.iter(|| black_box(p2c.select(black_box(&headers)).is_some()))
    });
    let local: Vec<bool> = (0..10).map(|i| i < 5).collect();
    let zoned = Balancer::in_zone(
        endpoints(10),
        &Strategy::Wrr,
        &ZoneAffinity::default(),
        &local,
    );
    c.bench_function("select_wrr_zone_10", |b| {
        b.iter(|| black_box(zoned.select(black_box(&headers)).is_some()))
    });
}

fn outliers(c: &mut Criterion) {
    let eps = endpoints(2);
    let group = Arc::new(Group::new(&OutlierDetection {
        consecutive: 0,
        ..OutlierDetection::default()
    }));
    for (e, _) in &eps {
        e.outlier().attach(Some(group.clone()));
    }
    let o = eps[0].0.outlier();
    c.bench_function("outlier_observe", |b| {
        b.iter(|| o.observe(black_box(Outcome::Grpc(0)), "t0"))
    });
    let o = eps[1].0.outlier();
    c.bench_function("outlier_observe_failure", |b| {
        b.iter(|| o.observe(black_box(Outcome::Grpc(14)), "t1"))
    });
}

criterion_group!(benches, select, outliers);
criterion_main!(benches);

//! What observing calls costs.
//!
//! - `record_call`: the data plane's share per call and scope (in-flight up and down,
//!   the outcome, the histogram bucket and the duration sum: relaxed atomics only);
//! - `record_call_contended`: the same from two threads on one scope, as two cores
//!   serving one busy server do;
//! - `rates`: what the API pays per scope for request rate, error rate and p50/p99
//!   with a full minute of samples;
//! - `sample`: the sampler's once-a-second work per scope.
//!
//! Run with `cargo bench --bench telemetry`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gantry::telemetry::{CallStats, Outcome};

fn record(c: &mut Criterion) {
    let stats = CallStats::default();
    let took = Duration::from_micros(420);
    c.bench_function("record_call", |b| {
        b.iter(|| {
            stats.started();
            stats.finished(black_box(Outcome::Grpc(0)), black_box(took));
        })
    });

    let shared = Arc::new(CallStats::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                shared.started();
                shared.finished(Outcome::Grpc(0), took);
            }
        })
    };
    c.bench_function("record_call_contended", |b| {
        b.iter(|| {
            shared.started();
            shared.finished(black_box(Outcome::Grpc(14)), black_box(took));
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = other.join();
}

fn read(c: &mut Criterion) {
    let stats = CallStats::default();
    let t0 = Instant::now();
    for s in 0..61u64 {
        for i in 0..100u64 {
            stats.record(
                Outcome::Grpc((i % 7) as u8),
                Duration::from_micros(100 + i * 37),
            );
        }
        stats.sample(t0 + Duration::from_secs(s));
    }
    let now = t0 + Duration::from_secs(61);
    c.bench_function("rates", |b| {
        b.iter(|| black_box(stats.rates(black_box(now))))
    });
    let mut s = 61u64;
    c.bench_function("sample", |b| {
        b.iter(|| {
            s += 1;
            stats.record(Outcome::Grpc(0), Duration::from_micros(300));
            stats.sample(t0 + Duration::from_secs(s));
        })
    });
}

criterion_group!(benches, record, read);
criterion_main!(benches);

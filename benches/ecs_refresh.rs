//! The ECS provider at scale, against the in-process fake: one cluster of 5,000 tasks
//! over 500 task definitions (bridge networking, so container instances and EC2 are
//! read too), then the rest of the pipeline for its targets.
//!
//! - `refresh_cold`: a first refresh (every task definition and instance described);
//! - `refresh_steady`: a refresh with warm caches (List/DescribeTasks only);
//! - `labels_build`: labels → `DynamicConfig` for the 6,250 targets;
//! - `validate_compile`: `table::validate` + `RoutingTable::compile`, carrying the
//!   endpoints of a previous table over.
//!
//! Run with `cargo bench --bench ecs_refresh`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gantry::labels::{self, LabelOptions};
use gantry::provider::ecs::fake::{FakeEcs, CLUSTER};
use gantry::provider::ecs::{NetworkMode, Refresher, Settings};
use gantry::table::{self, RoutingTable};

const TASKS: usize = 5000;
const TASK_DEFINITIONS: usize = 500;

fn settings() -> Settings {
    Settings {
        clusters: vec![CLUSTER.to_string()],
        ..Settings::default()
    }
}

fn ecs_refresh(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let fake = FakeEcs::cluster_of(TASKS, TASK_DEFINITIONS, NetworkMode::Bridge);

    let mut group = c.benchmark_group("ecs_5000_tasks");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.bench_function("refresh_cold", |b| {
        b.iter(|| {
            let mut refresher = Refresher::new(settings());
            rt.block_on(refresher.refresh(&fake))
                .expect("the fake does not fail")
        })
    });

    let mut warm = Refresher::new(settings());
    rt.block_on(warm.refresh(&fake))
        .expect("the fake does not fail");
    group.bench_function("refresh_steady", |b| {
        b.iter(|| {
            rt.block_on(warm.refresh(&fake))
                .expect("the fake does not fail")
        })
    });

    let tasks = rt
        .block_on(warm.refresh(&fake))
        .expect("the fake does not fail")
        .tasks;
    let opts = LabelOptions::default();
    group.bench_function("labels_build", |b| {
        b.iter(|| labels::build(black_box(&tasks), &opts))
    });

    let config = labels::build(&tasks, &opts);
    let entrypoints = vec!["grpc".to_string()];
    let previous = {
        let mut first = config.clone();
        table::validate(&mut first, &entrypoints);
        RoutingTable::compile(
            Arc::new(first),
            &entrypoints,
            &RoutingTable::empty(entrypoints.len()),
        )
    };
    group.bench_function("validate_compile", |b| {
        b.iter_batched(
            || config.clone(),
            |mut next| {
                table::validate(&mut next, &entrypoints);
                RoutingTable::compile(Arc::new(next), &entrypoints, &previous)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, ecs_refresh);
criterion_main!(benches);

//! In-process tests of the ECS provider against [`FakeEcs`]: paging, chunking, the API
//! call budget, `MISSING` failures, lifecycle and health filters, addresses per
//! network mode, all-or-nothing refreshes, backoff under throttling (paused tokio
//! time), the task-definition cache, and the whole way to a routing table.
//!
//! Expectations are derived from the fake's own state (what ECS holds), never from the
//! provider's output.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use super::fake::{self, FakeEcs, ADMIN_PORT, APP_PORT, CLUSTER, EPHEMERAL_PORT};
use super::*;
use crate::dynamic::{Scheme, Status};
use crate::labels::{self, LabelOptions};
use crate::provider::{Lifecycle, PortMapping, ProviderUpdate, TaskHealth, UpdateRx};
use crate::table::{self, RoutingTable};

// ---- helpers ----

fn settings(clusters: &[&str]) -> Settings {
    Settings {
        clusters: clusters.iter().map(|c| c.to_string()).collect(),
        auto_discover: false,
        healthy_only: false,
        concurrency: 4,
    }
}

async fn refresh_ok(refresher: &mut Refresher, fake: &FakeEcs) -> Outcome {
    match refresher.refresh(fake).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("refresh failed: {e}"),
    }
}

/// One refresh with a fresh provider state.
async fn refresh_once(fake: &FakeEcs, settings: Settings) -> Outcome {
    refresh_ok(&mut Refresher::new(settings), fake).await
}

/// `<task id>` of a task ARN.
fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().expect("an ARN has a last segment")
}

/// The target ids ECS's state implies: every container of every RUNNING/RUNNING task
/// of the clusters, optionally only HEALTHY tasks.
fn expected_ids(fake: &FakeEcs, clusters: &[String], healthy_only: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for cluster in clusters {
        for t in fake.tasks(cluster) {
            if t.last_status != "RUNNING" || t.desired_status != "RUNNING" {
                continue;
            }
            if healthy_only && t.health_status.as_deref() != Some("HEALTHY") {
                continue;
            }
            let def = fake
                .task_definition(&t.task_definition_arn)
                .expect("every task's definition is registered");
            for c in &def.containers {
                out.insert(format!("{}/{}", task_id(&t.arn), c.name));
            }
        }
    }
    out
}

fn ids(tasks: &[Task]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

fn by_id(tasks: &[Task]) -> BTreeMap<&str, &Task> {
    tasks.iter().map(|t| (t.id.as_str(), t)).collect()
}

/// The provider's own call counts agree with what the fake saw.
fn assert_counts_agree(stats: &RefreshStats, fake: &FakeEcs) {
    for op in Op::ALL {
        assert_eq!(
            stats.calls.get(op),
            fake.calls(op),
            "{} counted by the provider vs seen by ECS",
            op.name()
        );
    }
    assert_eq!(stats.calls.total(), fake.total_calls());
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

fn labels_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn container_def(
    name: &str,
    ports: &[(u16, Option<u16>)],
    labels: &[(&str, &str)],
) -> ContainerDefinition {
    ContainerDefinition {
        name: name.to_string(),
        labels: labels_of(labels),
        port_mappings: ports
            .iter()
            .map(|&(container_port, host_port)| PortMappingDef {
                container_port,
                host_port,
            })
            .collect(),
    }
}

fn task_def(
    family: &str,
    mode: NetworkMode,
    containers: Vec<ContainerDefinition>,
) -> TaskDefinition {
    TaskDefinition {
        arn: fake::task_definition_arn(family, 1),
        network_mode: mode,
        containers,
    }
}

fn ports(pairs: &[(u16, u16)]) -> Vec<PortMapping> {
    pairs
        .iter()
        .map(|&(container, host)| PortMapping { container, host })
        .collect()
}

// ---- the fake itself: the provider tests only mean something if it behaves ----

mod double {
    use super::*;

    #[tokio::test]
    async fn pages_of_100_with_tokens_tied_to_the_call() {
        let fake = FakeEcs::cluster_of(250, 5, NetworkMode::Awsvpc);
        let p1 = fake.list_tasks(CLUSTER, None).await.expect("page 1");
        assert_eq!(p1.items.len(), 100);
        let token = p1.next_token.clone().expect("more pages");
        let p2 = fake
            .list_tasks(CLUSTER, Some(token.clone()))
            .await
            .expect("page 2");
        assert_eq!(p2.items.len(), 100);
        let p3 = fake
            .list_tasks(CLUSTER, p2.next_token.clone())
            .await
            .expect("page 3");
        assert_eq!(p3.items.len(), 50);
        assert_eq!(p3.next_token, None);
        let all: BTreeSet<String> = p1
            .items
            .into_iter()
            .chain(p2.items)
            .chain(p3.items)
            .collect();
        assert_eq!(all.len(), 250);
        // A token is only good for the call that made it.
        fake.add_cluster("other");
        let err = fake
            .list_tasks("other", Some(token.clone()))
            .await
            .expect_err("another cluster's token");
        assert_eq!(err.kind, ApiErrorKind::Rejected);
        assert!(fake.list_clusters(Some(token)).await.is_err());
        assert!(fake
            .list_tasks(CLUSTER, Some("garbage".to_string()))
            .await
            .is_err());
        assert_eq!(fake.violations().len(), 3, "{:?}", fake.violations());
        assert_eq!(fake.calls(Op::ListTasks), 5);
        assert_eq!(fake.calls(Op::ListClusters), 1);
    }

    #[tokio::test]
    async fn describe_limits_and_missing() {
        let fake = FakeEcs::cluster_of(150, 5, NetworkMode::Bridge);
        let arns: Vec<String> = fake.tasks(CLUSTER).into_iter().map(|t| t.arn).collect();
        let err = fake
            .describe_tasks(CLUSTER, &arns[..101])
            .await
            .expect_err("101 ARNs");
        assert_eq!(err.kind, ApiErrorKind::Rejected);
        assert!(err.message.contains("more than 100"), "{}", err.message);
        assert!(fake.describe_tasks(CLUSTER, &[]).await.is_err());
        assert_eq!(fake.max_batch(Op::DescribeTasks), 101);
        assert_eq!(fake.violations().len(), 2);

        let mut asked = arns[..99].to_vec();
        asked.push(fake::task_arn(CLUSTER, "gone"));
        let d = fake
            .describe_tasks(CLUSTER, &asked)
            .await
            .expect("100 ARNs");
        assert_eq!(d.items.len(), 99);
        assert_eq!(d.failures.len(), 1);
        assert_eq!(d.failures[0].reason, "MISSING");

        let ids: Vec<String> = (0..101).map(|i| format!("i-{i}")).collect();
        assert!(fake.describe_instances(&ids).await.is_err());
        assert!(fake
            .describe_instances(&["i-unknown".to_string()])
            .await
            .is_err());
        fake.reset_calls();
        assert!(fake.violations().is_empty());
        assert_eq!(fake.total_calls(), 0);
    }

    #[tokio::test]
    async fn faults_are_counted_and_consumed() {
        let fake = FakeEcs::cluster_of(10, 2, NetworkMode::Awsvpc);
        fake.throttle(Op::ListTasks, 2).fail_nth(
            Op::DescribeTaskDefinition,
            2,
            ApiErrorKind::Unavailable,
        );
        for _ in 0..2 {
            let e = fake.list_tasks(CLUSTER, None).await.expect_err("throttled");
            assert_eq!((e.op, e.kind), (Op::ListTasks, ApiErrorKind::Throttled));
        }
        assert!(fake.list_tasks(CLUSTER, None).await.is_ok());
        let arn = fake::task_definition_arn("svc-0", 1);
        assert!(fake.describe_task_definition(&arn).await.is_ok());
        assert!(fake.describe_task_definition(&arn).await.is_err());
        assert!(fake.describe_task_definition(&arn).await.is_ok());
        assert_eq!(fake.failed_calls(Op::ListTasks), 2);
        assert_eq!(fake.failed_calls(Op::DescribeTaskDefinition), 1);
        assert_eq!(fake.task_definition_calls(&arn), 3);
        assert!(
            fake.violations().is_empty(),
            "injected faults are not violations"
        );
        // fail_nth fires once; fail_when until cleared.
        fake.reset_calls();
        fake.fail_when(Op::ListTasks, ApiErrorKind::Rejected, |c| c.n % 2 == 0);
        for n in 1..=4u64 {
            assert!(fake.describe_task_definition(&arn).await.is_ok());
            let listed = fake.list_tasks(CLUSTER, None).await;
            assert_eq!(listed.is_err(), n % 2 == 0, "ListTasks #{n}");
        }
        fake.clear_faults();
        assert!(fake.list_tasks(CLUSTER, None).await.is_ok());
        // Any operation.
        fake.fail_next_any(2, ApiErrorKind::Unavailable);
        let e = fake.list_clusters(None).await.expect_err("first");
        assert_eq!(
            (e.op, e.kind),
            (Op::ListClusters, ApiErrorKind::Unavailable)
        );
        let e = fake.describe_instances(&[]).await.expect_err("second");
        assert_eq!(e.op, Op::DescribeInstances);
        assert!(fake.list_clusters(None).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_is_a_token_bucket() {
        let fake = FakeEcs::cluster_of(10, 2, NetworkMode::Awsvpc);
        fake.rate_limit(Op::ListTasks, 3, 2.0);
        for _ in 0..3 {
            assert!(fake.list_tasks(CLUSTER, None).await.is_ok());
        }
        let e = fake
            .list_tasks(CLUSTER, None)
            .await
            .expect_err("bucket empty");
        assert_eq!(e.kind, ApiErrorKind::Throttled);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(
            fake.list_tasks(CLUSTER, None).await.is_ok(),
            "one token back"
        );
        assert!(fake.list_tasks(CLUSTER, None).await.is_err());
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(fake.list_tasks(CLUSTER, None).await.is_ok());
        }
        assert!(
            fake.list_tasks(CLUSTER, None).await.is_err(),
            "never more than the burst"
        );
        assert!(fake
            .describe_task_definition(&fake::task_definition_arn("svc-0", 1))
            .await
            .is_ok());
    }

    #[test]
    fn generated_cluster_has_the_documented_shape() {
        let fake = FakeEcs::cluster_of(100, 8, NetworkMode::Bridge);
        let tasks = fake.tasks(CLUSTER);
        assert_eq!(tasks.len(), 100);
        let unhealthy = tasks
            .iter()
            .filter(|t| t.health_status.as_deref() == Some("UNHEALTHY"))
            .count();
        assert_eq!(unhealthy, 10);
        let instances: BTreeSet<_> = tasks
            .iter()
            .filter_map(|t| t.container_instance_arn.clone())
            .collect();
        assert_eq!(instances.len(), 5);
        // Two tasks on one instance never share a host port.
        let mut bound = BTreeSet::new();
        for t in &tasks {
            for c in &t.containers {
                for b in &c.network_bindings {
                    let on = t
                        .container_instance_arn
                        .clone()
                        .expect("bridge task on an instance");
                    assert!(
                        bound.insert((on, b.host_port)),
                        "{} port {}",
                        t.arn,
                        b.host_port
                    );
                }
            }
        }
        let def = fake
            .task_definition(&fake::task_definition_arn("svc-3", 1))
            .expect("svc-3");
        let names: Vec<&str> = def.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "admin"]);
    }
}

// ---- paging and chunking ----

#[tokio::test]
async fn pagination_250_tasks_three_list_pages() {
    let fake = FakeEcs::cluster_of(250, 25, NetworkMode::Awsvpc);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    assert_eq!(fake.calls(Op::ListTasks), 3);
    assert_eq!(fake.calls(Op::DescribeTasks), 3);
    assert_eq!(out.stats.tasks_listed, 250);
    assert_eq!(out.stats.tasks_running, 250);
    assert_eq!(
        ids(&out.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
    assert_eq!(out.stats.targets, out.tasks.len());
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_counts_agree(&out.stats, &fake);
}

#[tokio::test]
async fn pagination_with_small_pages_finds_every_task() {
    // The same walk with pages of 7: an off-by-one at page edges would lose tasks.
    let fake = FakeEcs::cluster_of(250, 25, NetworkMode::Awsvpc);
    fake.set_page_size(7);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    assert_eq!(fake.calls(Op::ListTasks), 36); // ceil(250 / 7)
    assert_eq!(
        ids(&out.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
}

#[tokio::test]
async fn auto_discover_150_clusters_two_list_pages() {
    let fake = FakeEcs::new();
    let names: Vec<String> = (0..150).map(|k| format!("c-{k:03}")).collect();
    for name in &names {
        fake.populate(name, 2, 1, NetworkMode::Awsvpc);
    }
    let out = refresh_once(
        &fake,
        Settings {
            auto_discover: true,
            ..settings(&[])
        },
    )
    .await;
    assert_eq!(fake.calls(Op::ListClusters), 2);
    assert_eq!(out.stats.clusters, 150);
    assert_eq!(fake.calls(Op::ListTasks), 150);
    assert_eq!(fake.calls(Op::DescribeTasks), 150);
    // One task definition shared by every cluster: described once, not per cluster.
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 1);
    assert_eq!(ids(&out.tasks), expected_ids(&fake, &names, false));
    assert_eq!(out.tasks.len(), 300);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test]
async fn chunking_5000_tasks_never_more_than_100_arns() {
    let fake = FakeEcs::cluster_of(5000, 500, NetworkMode::Awsvpc);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    assert_eq!(fake.calls(Op::DescribeTasks), 50);
    assert_eq!(fake.max_batch(Op::DescribeTasks), DESCRIBE_LIMIT);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_eq!(out.stats.tasks_running, 5000);
}

#[tokio::test]
async fn empty_cluster_makes_no_describe_calls() {
    // ECS rejects DescribeTasks with no ARNs: the fake would fail the refresh.
    let fake = FakeEcs::new();
    fake.add_cluster("empty");
    let out = refresh_once(&fake, settings(&["empty"])).await;
    assert!(out.tasks.is_empty());
    assert_eq!(fake.calls(Op::ListTasks), 1);
    assert_eq!(fake.total_calls(), 1);
}

#[tokio::test]
async fn unknown_cluster_fails_the_refresh() {
    let fake = FakeEcs::cluster_of(5, 1, NetworkMode::Awsvpc);
    let err = Refresher::new(settings(&[CLUSTER, "nope"]))
        .refresh(&fake)
        .await
        .expect_err("ClusterNotFoundException");
    assert_eq!(err.kind, ApiErrorKind::Rejected);
    assert!(err.message.contains("ClusterNotFound"), "{err}");
}

// ---- the API budget ----

#[tokio::test]
async fn budget_5000_tasks_500_definitions_bridge() {
    let fake = FakeEcs::cluster_of(5000, 500, NetworkMode::Bridge);
    let mut refresher = Refresher::new(settings(&[CLUSTER]));

    let first = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::ListClusters), 0);
    assert_eq!(fake.calls(Op::ListTasks), 50);
    assert_eq!(fake.calls(Op::DescribeTasks), 50);
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 500);
    // 250 container instances: 3 chunks of ≤ 100, then 3 EC2 calls for their IPs.
    assert_eq!(fake.calls(Op::DescribeContainerInstances), 3);
    assert_eq!(fake.calls(Op::DescribeInstances), 3);
    assert_eq!(fake.max_batch(Op::DescribeContainerInstances), 100);
    assert!(fake.max_batch(Op::DescribeInstances) <= EC2_DESCRIBE_LIMIT);
    for i in 0..500 {
        let arn = fake::task_definition_arn(&format!("svc-{i}"), 1);
        assert_eq!(fake.task_definition_calls(&arn), 1, "{arn}");
    }
    assert_counts_agree(&first.stats, &fake);
    assert_eq!(
        ids(&first.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
    assert_eq!(first.stats.skipped, 0);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());

    fake.reset_calls();
    let second = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::ListTasks), 50);
    assert_eq!(fake.calls(Op::DescribeTasks), 50);
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 0);
    assert_eq!(fake.calls(Op::DescribeContainerInstances), 0);
    assert_eq!(fake.calls(Op::DescribeInstances), 0);
    assert_eq!(fake.total_calls(), 100);
    assert_counts_agree(&second.stats, &fake);
    assert_eq!(
        second.tasks, first.tasks,
        "nothing changed, nothing differs"
    );
}

#[tokio::test]
async fn budget_5000_tasks_awsvpc_needs_no_instances() {
    let fake = FakeEcs::cluster_of(5000, 500, NetworkMode::Awsvpc);
    let mut refresher = Refresher::new(settings(&[CLUSTER]));
    let first = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(
        (
            fake.calls(Op::ListTasks),
            fake.calls(Op::DescribeTasks),
            fake.calls(Op::DescribeTaskDefinition),
            fake.calls(Op::DescribeContainerInstances),
            fake.calls(Op::DescribeInstances),
        ),
        (50, 50, 500, 0, 0)
    );
    fake.reset_calls();
    let second = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.total_calls(), 100);
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 0);
    assert_eq!(second.tasks, first.tasks);
}

#[tokio::test]
async fn new_container_instance_is_described_once() {
    let fake = FakeEcs::cluster_of(40, 4, NetworkMode::Bridge);
    let mut refresher = Refresher::new(settings(&[CLUSTER]));
    refresh_ok(&mut refresher, &fake).await;
    // A task moves to a new host.
    let ci = fake::container_instance_arn(CLUSTER, "new-host");
    fake.add_container_instance(CLUSTER, &ci, "i-0new", ip("127.3.0.1"));
    let moved = fake.tasks(CLUSTER)[0].arn.clone();
    assert!(fake.set_task(&moved, |t| t.container_instance_arn = Some(ci.clone())));
    fake.reset_calls();
    let out = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::DescribeContainerInstances), 1);
    assert_eq!(fake.calls(Op::DescribeInstances), 1);
    assert_eq!(fake.max_batch(Op::DescribeContainerInstances), 1);
    let prefix = format!("{}/", task_id(&moved));
    let moved_targets: Vec<&Task> = out
        .tasks
        .iter()
        .filter(|t| t.id.starts_with(&prefix))
        .collect();
    assert!(!moved_targets.is_empty());
    assert!(moved_targets.iter().all(|t| t.ip == ip("127.3.0.1")));
    fake.reset_calls();
    refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::DescribeContainerInstances), 0);
    assert_eq!(fake.calls(Op::DescribeInstances), 0);
}

// ---- the task-definition cache ----

#[tokio::test(start_paused = true)]
async fn cold_start_under_a_rate_limit_converges() {
    // DescribeTaskDefinition throttled as a token bucket (100 at once, 20 a second),
    // 20 ms a call: a cold start of 500 task definitions cannot fit in one bucket, so
    // it needs several refreshes; the definitions described by a failed one must not
    // be described again, or every attempt spends the bucket on the same ones.
    let fake = FakeEcs::cluster_of(5000, 500, NetworkMode::Awsvpc);
    fake.rate_limit(Op::DescribeTaskDefinition, 100, 20.0)
        .set_latency(Op::DescribeTaskDefinition, Duration::from_millis(20));
    let (mut rx, status) = start(&fake, settings(&[CLUSTER]), timing(10, 60));
    let ok = tokio::time::timeout(
        Duration::from_secs(600),
        rx.wait_for(|u| u.as_ref().is_some_and(|u| u.error.is_none())),
    )
    .await
    .map(|r| r.is_ok());
    let described =
        fake.calls(Op::DescribeTaskDefinition) - fake.failed_calls(Op::DescribeTaskDefinition);
    assert_eq!(
        ok,
        Ok(true),
        "no successful refresh within 10 minutes: {} refreshes failed, {} \
         DescribeTaskDefinition calls ({} throttled, {described} answered) for 500 definitions",
        status.failures(),
        fake.calls(Op::DescribeTaskDefinition),
        fake.failed_calls(Op::DescribeTaskDefinition),
    );
    assert!(described <= 500 + 4, "{described} definitions described");
}

#[tokio::test]
async fn new_task_definition_costs_exactly_one_describe() {
    let fake = FakeEcs::cluster_of(200, 20, NetworkMode::Awsvpc);
    let mut refresher = Refresher::new(settings(&[CLUSTER]));
    refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 20);

    // A deploy: revision 2 of svc-3, and three tasks of it.
    let mut def = fake
        .task_definition(&fake::task_definition_arn("svc-3", 1))
        .expect("svc-3:1");
    def.arn = fake::task_definition_arn("svc-3", 2);
    fake.add_task_definition(def.clone());
    for k in 0..3 {
        let id = format!("deploy{k}");
        fake.add_task(
            CLUSTER,
            fake::running_task(
                CLUSTER,
                &id,
                &def.arn,
                ip(&format!("127.9.0.{}", k + 1)),
                &["app", "admin"],
            ),
        );
    }
    fake.reset_calls();
    let out = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 1);
    assert_eq!(fake.task_definition_calls(&def.arn), 1);
    assert!(by_id(&out.tasks).contains_key("deploy2/admin"));

    fake.reset_calls();
    refresh_ok(&mut refresher, &fake).await;
    assert_eq!(fake.calls(Op::DescribeTaskDefinition), 0);
}

// ---- MISSING and lifecycle ----

#[tokio::test]
async fn missing_tasks_are_skipped_and_the_rest_kept() {
    let fake = FakeEcs::cluster_of(230, 10, NetworkMode::Awsvpc);
    let all: Vec<String> = fake.tasks(CLUSTER).into_iter().map(|t| t.arn).collect();
    // One vanishes from the first page, one from the last, right after being listed.
    fake.vanish_after_listing(&all[5])
        .vanish_after_listing(&all[220]);
    // And one of the second page stops while the first page is being returned.
    let victim = all[150].clone();
    fake.on_list_tasks(move |fake, _cluster, listed| {
        if listed.len() == 100 && listed.first().is_some_and(|a| a < &victim) {
            fake.remove_task(&victim);
        }
    });
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    // 230 listed (the victim never made it into a page), 2 described as MISSING.
    assert_eq!(out.stats.tasks_listed, 229);
    assert_eq!(out.stats.tasks_running, 227);
    let got = ids(&out.tasks);
    for gone in [&all[5], &all[150], &all[220]] {
        assert!(
            !got.iter().any(|id| id.starts_with(task_id(gone))),
            "{gone} should be gone"
        );
    }
    assert_eq!(got, expected_ids(&fake, &[CLUSTER.to_string()], false));
}

/// A cluster with one single-container awsvpc task per (lastStatus, desiredStatus).
fn lifecycle_cluster() -> (FakeEcs, Vec<(&'static str, &'static str, &'static str)>) {
    let fake = FakeEcs::new();
    let def = task_def(
        "life",
        NetworkMode::Awsvpc,
        vec![container_def(
            "app",
            &[(8080, Some(8080))],
            &[("traefik.enable", "true")],
        )],
    );
    fake.add_task_definition(def.clone());
    // (task id, lastStatus, desiredStatus)
    let cases = vec![
        ("running", "RUNNING", "RUNNING"),
        ("provisioning", "PROVISIONING", "RUNNING"),
        ("pending", "PENDING", "RUNNING"),
        ("activating", "ACTIVATING", "RUNNING"),
        ("deactivating", "DEACTIVATING", "STOPPED"),
        ("stopping", "STOPPING", "STOPPED"),
        ("deprovisioning", "DEPROVISIONING", "STOPPED"),
        ("stopped", "STOPPED", "STOPPED"),
        ("told-to-stop", "RUNNING", "STOPPED"),
    ];
    for (k, (id, last, _)) in cases.iter().enumerate() {
        let mut t = fake::running_task(
            "c",
            id,
            &def.arn,
            ip(&format!("127.5.0.{}", k + 1)),
            &["app"],
        );
        t.last_status = (*last).to_string();
        fake.add_task("c", t);
    }
    // ListTasks(desiredStatus=RUNNING) still lists them; they are told to stop right
    // after, before DescribeTasks.
    let stopping: Vec<(String, String)> = cases
        .iter()
        .filter(|(_, _, desired)| *desired != "RUNNING")
        .map(|(id, _, desired)| (fake::task_arn("c", id), (*desired).to_string()))
        .collect();
    fake.on_list_tasks(move |fake, _, _| {
        for (arn, desired) in &stopping {
            fake.set_task(arn, |t| t.desired_status = desired.clone());
        }
    });
    (fake, cases)
}

#[tokio::test]
async fn only_running_tasks_told_to_keep_running_are_targets() {
    let (fake, cases) = lifecycle_cluster();
    let out = refresh_once(&fake, settings(&["c"])).await;
    assert_eq!(out.stats.tasks_listed, cases.len());
    assert_eq!(ids(&out.tasks), BTreeSet::from(["running/app".to_string()]));
    assert!(out.tasks.iter().all(|t| t.lifecycle == Lifecycle::Running));
}

#[tokio::test]
async fn a_task_running_but_not_yet_listed_as_stopping_is_still_filtered() {
    // DEACTIVATING while ECS still says desiredStatus RUNNING (eventual consistency):
    // lastStatus alone keeps it out.
    let (fake, _) = lifecycle_cluster();
    fake.set_task(&fake::task_arn("c", "running"), |t| {
        t.last_status = "DEACTIVATING".to_string()
    });
    let out = refresh_once(&fake, settings(&["c"])).await;
    assert!(out.tasks.is_empty(), "{:?}", ids(&out.tasks));
}

/// A cluster of single-container tasks with (task health, container health).
fn health_cluster() -> FakeEcs {
    let fake = FakeEcs::new();
    let def = task_def(
        "h",
        NetworkMode::Awsvpc,
        vec![container_def("app", &[(8080, Some(8080))], &[])],
    );
    fake.add_task_definition(def.clone());
    let cases: [(&str, Option<&str>, Option<&str>); 6] = [
        ("healthy", Some("HEALTHY"), Some("HEALTHY")),
        ("unhealthy", Some("UNHEALTHY"), Some("UNHEALTHY")),
        ("unknown", Some("UNKNOWN"), Some("UNKNOWN")),
        ("nocheck", None, None),
        // A container's own check wins; UNKNOWN (no check) defers to the task.
        ("container-says", Some("UNHEALTHY"), Some("HEALTHY")),
        ("task-says", Some("UNHEALTHY"), Some("UNKNOWN")),
    ];
    for (k, (id, task, container)) in cases.into_iter().enumerate() {
        let mut t = fake::running_task(
            "c",
            id,
            &def.arn,
            ip(&format!("127.6.0.{}", k + 1)),
            &["app"],
        );
        t.health_status = task.map(str::to_string);
        t.containers[0].health_status = container.map(str::to_string);
        fake.add_task("c", t);
    }
    fake
}

#[tokio::test]
async fn health_is_reported_and_unhealthy_tasks_are_kept() {
    let fake = health_cluster();
    let out = refresh_once(&fake, settings(&["c"])).await;
    let got: BTreeMap<&str, TaskHealth> = out
        .tasks
        .iter()
        .map(|t| (t.id.as_str(), t.health))
        .collect();
    let want = BTreeMap::from([
        ("healthy/app", TaskHealth::Healthy),
        ("unhealthy/app", TaskHealth::Unhealthy),
        ("unknown/app", TaskHealth::Unknown),
        ("nocheck/app", TaskHealth::Unknown),
        ("container-says/app", TaskHealth::Healthy),
        ("task-says/app", TaskHealth::Unhealthy),
    ]);
    assert_eq!(got, want);
}

#[tokio::test]
async fn healthy_only_keeps_only_healthy_tasks() {
    let fake = health_cluster();
    let out = refresh_once(
        &fake,
        Settings {
            healthy_only: true,
            ..settings(&["c"])
        },
    )
    .await;
    // Task health decides: ECS routes (ALB, Service Connect) by the task's health.
    assert_eq!(ids(&out.tasks), BTreeSet::from(["healthy/app".to_string()]));
    assert_eq!(out.stats.tasks_running, 1);

    let big = FakeEcs::cluster_of(1000, 50, NetworkMode::Awsvpc);
    let out = refresh_once(
        &big,
        Settings {
            healthy_only: true,
            ..settings(&[CLUSTER])
        },
    )
    .await;
    assert_eq!(out.stats.tasks_running, 900);
    assert_eq!(
        ids(&out.tasks),
        expected_ids(&big, &[CLUSTER.to_string()], true)
    );
    assert!(out.tasks.iter().all(|t| t.health == TaskHealth::Healthy));
}

// ---- addresses ----

#[tokio::test]
async fn addresses_per_network_mode() {
    let fake = FakeEcs::new();
    let lb = [("traefik.enable", "true")];
    fake.add_task_definition(task_def(
        "vpc",
        NetworkMode::Awsvpc,
        vec![container_def(
            "app",
            &[(50051, Some(50051)), (9090, Some(9090))],
            &lb,
        )],
    ))
    .add_task_definition(task_def(
        "bridge",
        NetworkMode::Bridge,
        vec![container_def(
            "app",
            &[(50051, None), (8080, Some(18080))],
            &lb,
        )],
    ))
    .add_task_definition(task_def(
        "host",
        NetworkMode::Host,
        vec![container_def("app", &[(50061, None)], &lb)],
    ))
    .add_task_definition(task_def(
        "multi",
        NetworkMode::Bridge,
        vec![
            container_def(
                "web",
                &[(80, None)],
                &[("traefik.http.routers.web.rule", "Path(`/`)")],
            ),
            container_def(
                "grpc",
                &[(50051, None)],
                &[("traefik.http.routers.grpc.rule", "PathPrefix(`/pkg.Svc/`)")],
            ),
            container_def("log", &[], &[]),
        ],
    ));
    let ci = fake::container_instance_arn("c", "host-a");
    fake.add_container_instance("c", &ci, "i-0aaa", ip("127.7.0.1"));

    let mut vpc = fake::running_task(
        "c",
        "vpc1",
        &fake::task_definition_arn("vpc", 1),
        ip("127.8.0.1"),
        &["app"],
    );
    vpc.availability_zone = Some("us-east-1b".to_string());
    vpc.group = Some("service:api".to_string());
    fake.add_task("c", vpc);

    let on_host = |id: &str, family: &str, names: &[&str], bindings: &[&[(u16, u16)]]| {
        let mut t = fake::running_task(
            "c",
            id,
            &fake::task_definition_arn(family, 1),
            ip("127.0.0.99"),
            names,
        );
        t.eni_private_ip = None;
        t.container_instance_arn = Some(ci.clone());
        for (c, b) in t.containers.iter_mut().zip(bindings) {
            c.private_ip = None;
            c.network_bindings = b
                .iter()
                .map(|&(container_port, host_port)| NetworkBinding {
                    container_port,
                    host_port,
                })
                .collect();
        }
        t
    };
    // Bridge: 50051 bound dynamically; 8080 not reported, static host port 18080 stands.
    fake.add_task(
        "c",
        on_host("br1", "bridge", &["app"], &[&[(50051, 32801)]]),
    );
    fake.add_task(
        "c",
        on_host("host1", "host", &["app"], &[&[(50061, 50061)]]),
    );
    fake.add_task(
        "c",
        on_host(
            "multi1",
            "multi",
            &["web", "grpc", "log"],
            &[&[(80, 32900)], &[(50051, 32901)], &[]],
        ),
    );

    let out = refresh_once(&fake, settings(&["c"])).await;
    let got = by_id(&out.tasks);
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        [
            "br1/app",
            "host1/app",
            "multi1/grpc",
            "multi1/log",
            "multi1/web",
            "vpc1/app"
        ]
    );

    let vpc = got["vpc1/app"];
    assert_eq!(vpc.ip, ip("127.8.0.1"));
    assert_eq!(vpc.ports, ports(&[(9090, 9090), (50051, 50051)]));
    assert_eq!(vpc.zone.as_deref(), Some("us-east-1b"));
    assert_eq!(vpc.group.as_deref(), Some("service:api"));
    assert_eq!(vpc.container.as_deref(), Some("app"));
    assert_eq!(vpc.provider, "ecs");
    assert_eq!(vpc.labels, labels_of(&lb));

    let br = got["br1/app"];
    assert_eq!(br.ip, ip("127.7.0.1"));
    assert_eq!(br.ports, ports(&[(8080, 18080), (50051, 32801)]));

    let host = got["host1/app"];
    assert_eq!(host.ip, ip("127.7.0.1"));
    assert_eq!(host.ports, ports(&[(50061, 50061)]));

    assert_eq!(got["multi1/web"].ports, ports(&[(80, 32900)]));
    assert_eq!(got["multi1/grpc"].ports, ports(&[(50051, 32901)]));
    assert!(got["multi1/log"].ports.is_empty());
    assert_eq!(
        got["multi1/grpc"].labels,
        labels_of(&[("traefik.http.routers.grpc.rule", "PathPrefix(`/pkg.Svc/`)")])
    );
    assert_eq!(
        got["multi1/web"].labels,
        labels_of(&[("traefik.http.routers.web.rule", "Path(`/`)")])
    );
    assert!(out
        .tasks
        .iter()
        .all(|t| t.ports.iter().all(|p| p.host != 0)));
}

#[tokio::test]
async fn generated_bridge_cluster_addresses() {
    let fake = FakeEcs::cluster_of(60, 6, NetworkMode::Bridge);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    let got = by_id(&out.tasks);
    for t in fake.tasks(CLUSTER) {
        let ci = t.container_instance_arn.clone().expect("on an instance");
        let def = fake.task_definition(&t.task_definition_arn).expect("def");
        for (c, cdef) in t.containers.iter().zip(&def.containers) {
            let target = got[format!("{}/{}", task_id(&t.arn), c.name).as_str()];
            assert_eq!(Some(target.ip), fake.container_instance_ip(CLUSTER, &ci));
            let want_port = c.network_bindings[0].host_port;
            assert_eq!(
                target.ports,
                ports(&[(cdef.port_mappings[0].container_port, want_port)])
            );
            assert!(want_port >= EPHEMERAL_PORT);
        }
    }
    // Tasks on one instance share its address.
    let first = fake.tasks(CLUSTER);
    let same_host: Vec<&EcsTask> = first
        .iter()
        .filter(|t| t.container_instance_arn == first[0].container_instance_arn)
        .collect();
    assert!(same_host.len() > 1);
    let ips: BTreeSet<IpAddr> = same_host
        .iter()
        .map(|t| got[format!("{}/app", task_id(&t.arn)).as_str()].ip)
        .collect();
    assert_eq!(ips.len(), 1);

    // Through the labels: servers dial the instance on the bound host port.
    let update = ProviderUpdate {
        tasks: Arc::new(out.tasks.clone()),
        error: None,
    };
    let config = crate::watcher::assemble_named(
        &[("ecs", Some(&update))],
        &LabelOptions::default(),
        &["grpc".to_string()],
    );
    assert!(config.errors.is_empty(), "{:?}", config.errors);
    for (svc, def, container) in [
        ("svc-1-app", "svc-1", 0),
        ("svc-3-admin", "svc-3", 1),
        ("svc-4-app", "svc-4", 0),
    ] {
        let def_arn = fake::task_definition_arn(def, 1);
        let want: BTreeSet<std::net::SocketAddr> = fake
            .tasks(CLUSTER)
            .iter()
            .filter(|t| t.task_definition_arn == def_arn)
            .map(|t| {
                let ci = t.container_instance_arn.as_deref().expect("on an instance");
                let host = fake
                    .container_instance_ip(CLUSTER, ci)
                    .expect("instance IP");
                std::net::SocketAddr::new(
                    host,
                    t.containers[container].network_bindings[0].host_port,
                )
            })
            .collect();
        let got: BTreeSet<std::net::SocketAddr> = config.services[svc]
            .servers
            .iter()
            .map(|s| s.address)
            .collect();
        assert_eq!(got, want, "{svc}");
        assert_eq!(want.len(), 10, "{svc}: one server per task");
    }
}

// ---- all or nothing ----

#[tokio::test]
async fn a_failure_mid_refresh_fails_the_whole_refresh() {
    // 25 DescribeTasks chunks, 125 container instances: 2 calls each for them.
    let fake = FakeEcs::cluster_of(2500, 50, NetworkMode::Bridge);
    let mut refresher = Refresher::new(settings(&[CLUSTER]));
    fake.fail_nth(Op::DescribeTasks, 3, ApiErrorKind::Unavailable);
    let err = refresher
        .refresh(&fake)
        .await
        .expect_err("3rd DescribeTasks fails");
    assert_eq!(
        (err.op, err.kind),
        (Op::DescribeTasks, ApiErrorKind::Unavailable)
    );
    assert!(err.to_string().starts_with("DescribeTasks failed"), "{err}");
    assert_eq!(
        refresher.last_calls().get(Op::DescribeTasks),
        fake.calls(Op::DescribeTasks)
    );

    // Each later stage failing fails the refresh too.
    for (op, nth) in [
        (Op::DescribeTaskDefinition, 17),
        (Op::DescribeContainerInstances, 2),
        (Op::DescribeInstances, 2),
    ] {
        fake.clear_faults();
        fake.reset_calls();
        fake.fail_nth(op, nth, ApiErrorKind::Throttled);
        let mut fresh = Refresher::new(settings(&[CLUSTER]));
        let err = fresh.refresh(&fake).await.expect_err("a stage fails");
        assert_eq!(
            (err.op, err.kind),
            (op, ApiErrorKind::Throttled),
            "{}",
            op.name()
        );
    }

    fake.clear_faults();
    let out = refresh_ok(&mut refresher, &fake).await;
    assert_eq!(
        ids(&out.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
}

#[tokio::test]
async fn a_failing_cluster_fails_the_refresh_of_every_cluster() {
    let fake = FakeEcs::new();
    for name in ["a", "b", "c", "d", "e"] {
        fake.populate(name, 120, 3, NetworkMode::Awsvpc);
    }
    fake.fail_when(Op::ListTasks, ApiErrorKind::Unavailable, |call| {
        call.cluster == Some("d") && call.next_token.is_some()
    });
    let err = Refresher::new(settings(&["a", "b", "c", "d", "e"]))
        .refresh(&fake)
        .await
        .expect_err("cluster d's second page fails");
    assert_eq!(err.op, Op::ListTasks);
}

// ---- concurrency ----

#[tokio::test(start_paused = true)]
async fn calls_in_flight_are_bounded() {
    let fake = FakeEcs::cluster_of(2000, 10, NetworkMode::Awsvpc);
    fake.set_latency(Op::DescribeTasks, Duration::from_millis(100));
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    assert_eq!(out.stats.tasks_running, 2000);
    assert!(fake.max_in_flight() <= 4, "{}", fake.max_in_flight());
    assert!(
        fake.max_in_flight() >= 2,
        "chunks are described concurrently"
    );

    let fake = FakeEcs::new();
    let names: Vec<String> = (0..8).map(|k| format!("c{k}")).collect();
    for name in &names {
        fake.populate(name, 500, 5, NetworkMode::Awsvpc);
    }
    fake.set_latency(Op::DescribeTasks, Duration::from_millis(100))
        .set_latency(Op::ListTasks, Duration::from_millis(100));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = refresh_once(
        &fake,
        Settings {
            concurrency: 2,
            ..settings(&refs)
        },
    )
    .await;
    assert_eq!(out.stats.tasks_running, 4000);
    // Clusters × chunks per cluster.
    assert!(fake.max_in_flight() <= 4, "{}", fake.max_in_flight());
    assert!(fake.max_in_flight() >= 2);
}

// ---- the provider loop: publishing, last good view, backoff ----

fn timing(interval: u64, max_backoff: u64) -> Timing {
    Timing {
        interval: Duration::from_secs(interval),
        max_backoff: Duration::from_secs(max_backoff),
    }
}

/// The next update the provider publishes (paused time: an hour passes instantly).
async fn next_update(rx: &mut UpdateRx) -> Arc<ProviderUpdate> {
    tokio::time::timeout(Duration::from_secs(3600), rx.changed())
        .await
        .expect("an update within an hour")
        .expect("the provider is running");
    rx.borrow_and_update().clone().expect("an update, not None")
}

/// Starts a provider on `fake`; returns the receiver and its status.
fn start(
    fake: &FakeEcs,
    settings: Settings,
    timing: Timing,
) -> (UpdateRx, Arc<crate::provider::ProviderStatus>) {
    let (tx, rx) = watch::channel(None);
    let provider = EcsProvider::new(fake.clone(), settings, timing);
    let status = provider.status();
    tokio::spawn(provider.run(tx));
    (rx, status)
}

/// When each refresh started: the times of its first call (ListTasks, one cluster).
fn refresh_starts(fake: &FakeEcs) -> Vec<tokio::time::Instant> {
    fake.call_log()
        .into_iter()
        .filter(|c| c.op == Op::ListTasks)
        .map(|c| c.at)
        .collect()
}

fn gaps(starts: &[tokio::time::Instant]) -> Vec<Duration> {
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

/// The documented backoff bounds after `failures` consecutive failures of `kind`:
/// `d = min(interval · 2^(failures − 1), max_backoff)`, one doubling more when
/// throttled, jittered uniformly in `[d/2, d]`.
fn bounds(t: &Timing, failures: u32, kind: ApiErrorKind) -> (Duration, Duration) {
    let steps = match kind {
        ApiErrorKind::Throttled => failures,
        _ => failures - 1,
    };
    let d = t
        .interval
        .saturating_mul(2u32.saturating_pow(steps))
        .min(t.max_backoff);
    (d / 2, d)
}

fn assert_within(gap: Duration, (lo, hi): (Duration, Duration), what: &str) {
    assert!(
        lo <= gap && gap <= hi,
        "{what}: {gap:?} not in [{lo:?}, {hi:?}]"
    );
}

#[tokio::test(start_paused = true)]
async fn failure_keeps_the_last_good_tasks_and_publishes_nothing_partial() {
    let fake = FakeEcs::cluster_of(300, 30, NetworkMode::Awsvpc);
    let (mut rx, status) = start(&fake, settings(&[CLUSTER]), timing(10, 60));

    let first = next_update(&mut rx).await;
    assert_eq!(first.error, None);
    assert_eq!(
        ids(&first.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );

    // The cluster changes, and the next refresh fails half-way: its 2nd DescribeTasks.
    let all: Vec<String> = fake.tasks(CLUSTER).into_iter().map(|t| t.arn).collect();
    for arn in &all[..40] {
        fake.remove_task(arn);
    }
    fake.reset_calls();
    fake.fail_nth(Op::DescribeTasks, 2, ApiErrorKind::Unavailable);
    let failed = next_update(&mut rx).await;
    let message = failed.error.clone().expect("the failure is published");
    assert!(message.contains("DescribeTasks"), "{message}");
    assert_eq!(failed.tasks, first.tasks, "the last good tasks, untouched");
    assert_eq!(status.failures(), 1);

    let recovered = next_update(&mut rx).await;
    assert_eq!(recovered.error, None);
    assert_eq!(
        ids(&recovered.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
    let task_ids = |tasks: &[Task]| -> BTreeSet<String> {
        tasks
            .iter()
            .map(|t| t.id.split('/').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(task_ids(&first.tasks).len(), 300);
    assert_eq!(task_ids(&recovered.tasks).len(), 260);

    // Steady state: refreshes go on, nothing is published.
    fake.reset_calls();
    tokio::time::sleep(Duration::from_secs(55)).await;
    assert_eq!(
        fake.calls(Op::ListTasks),
        15,
        "five refreshes of three pages"
    );
    assert!(
        !rx.has_changed().expect("provider alive"),
        "unchanged tasks are not republished"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_before_any_success_publishes_no_tasks() {
    let fake = FakeEcs::cluster_of(300, 30, NetworkMode::Awsvpc);
    fake.fail_nth(Op::DescribeTasks, 3, ApiErrorKind::Rejected);
    let (mut rx, _) = start(&fake, settings(&[CLUSTER]), timing(10, 60));
    let failed = next_update(&mut rx).await;
    assert!(failed.error.is_some());
    assert!(failed.tasks.is_empty(), "nothing from a half-read cluster");
    let ok = next_update(&mut rx).await;
    assert_eq!(ok.error, None);
    assert_eq!(
        ids(&ok.tasks),
        expected_ids(&fake, &[CLUSTER.to_string()], false)
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_storm_backs_off_with_growing_capped_jittered_delays() {
    let t = timing(10, 80);
    let fake = FakeEcs::cluster_of(50, 5, NetworkMode::Awsvpc);
    fake.log_calls(true);
    let (mut rx, status) = start(&fake, settings(&[CLUSTER]), t);
    let good = next_update(&mut rx).await;
    assert_eq!(good.error, None);

    // A storm: the next 6 refreshes are throttled at their first call.
    fake.throttle(Op::ListTasks, 6);
    let throttled = next_update(&mut rx).await;
    assert!(
        throttled
            .error
            .as_deref()
            .is_some_and(|e| e.contains("Rate exceeded")),
        "{throttled:?}"
    );
    assert_eq!(throttled.tasks, good.tasks);
    let recovered = next_update(&mut rx).await;
    assert_eq!(
        recovered.error, None,
        "one error update per distinct error, then recovery"
    );
    assert_eq!(recovered.tasks, good.tasks);
    assert_eq!(status.failures(), 6);

    let starts = refresh_starts(&fake);
    assert_eq!(starts.len(), 8, "1 good + 6 throttled + 1 recovery");
    let gaps = gaps(&starts);
    assert_eq!(
        gaps[0], t.interval,
        "after a success: the interval, no jitter"
    );
    for (k, gap) in gaps[1..].iter().enumerate() {
        let failures = k as u32 + 1;
        let b = bounds(&t, failures, ApiErrorKind::Throttled);
        assert_within(*gap, b, &format!("after throttle #{failures}"));
        assert!(
            *gap >= t.interval,
            "never sooner than the interval when throttled"
        );
        assert!(*gap <= t.max_backoff);
    }
    // Growth: the bounds of throttles #1 and #3 do not overlap.
    assert!(gaps[3] > gaps[1], "{gaps:?}");
    // Jitter: six delays drawn at random are not all at a bound (tokio's timer rounds
    // them up to whole milliseconds).
    assert!(
        gaps[1..].iter().enumerate().any(|(k, g)| {
            let (lo, hi) = bounds(&t, k as u32 + 1, ApiErrorKind::Throttled);
            *g != lo && *g != hi
        }),
        "{gaps:?}"
    );

    // After recovery the backoff starts over.
    fake.throttle(Op::ListTasks, 1);
    next_update(&mut rx).await;
    next_update(&mut rx).await;
    let starts = refresh_starts(&fake);
    let last = gaps_tail(&starts, 2);
    assert_eq!(last[0], t.interval);
    assert_within(
        last[1],
        bounds(&t, 1, ApiErrorKind::Throttled),
        "first throttle again",
    );
}

fn gaps_tail(starts: &[tokio::time::Instant], n: usize) -> Vec<Duration> {
    let g = gaps(starts);
    g[g.len() - n..].to_vec()
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_less_than_throttling() {
    let t = timing(10, 25);
    let fake = FakeEcs::cluster_of(50, 5, NetworkMode::Awsvpc);
    fake.log_calls(true);
    let (mut rx, _) = start(&fake, settings(&[CLUSTER]), t);
    next_update(&mut rx).await;
    fake.fail_next(Op::ListTasks, 4, ApiErrorKind::Unavailable);
    assert!(next_update(&mut rx).await.error.is_some());
    assert_eq!(next_update(&mut rx).await.error, None);
    let g = gaps(&refresh_starts(&fake));
    assert_eq!(g.len(), 5);
    for (k, gap) in g[1..].iter().enumerate() {
        let failures = k as u32 + 1;
        assert_within(
            *gap,
            bounds(&t, failures, ApiErrorKind::Unavailable),
            &format!("after failure #{failures}"),
        );
    }
    // Capped: 10·2³ = 80 s, but max_backoff is 25 s.
    assert!(g[4] <= t.max_backoff);
}

#[test]
fn backoff_bounds_hold_for_many_draws() {
    let t = timing(10, 300);
    let mut rng = StdRng::seed_from_u64(7);
    for kind in [
        ApiErrorKind::Throttled,
        ApiErrorKind::Unavailable,
        ApiErrorKind::Rejected,
    ] {
        for failures in 1..40 {
            let b = bounds(&t, failures, kind);
            let draws: Vec<Duration> = (0..200)
                .map(|_| backoff(&t, failures, kind, None, &mut rng))
                .collect();
            for d in &draws {
                assert_within(*d, b, &format!("{kind:?} #{failures}"));
            }
            let spread = draws.iter().max().copied().unwrap_or_default()
                - draws.iter().min().copied().unwrap_or_default();
            assert!(
                spread > b.1 / 4,
                "jitter spreads retries: {kind:?} #{failures} {spread:?}"
            );
        }
    }
    assert_eq!(
        backoff(&t, 0, ApiErrorKind::Throttled, None, &mut rng),
        t.interval
    );
}

#[test]
fn backoff_honours_a_delay_the_service_asked_for() {
    let t = timing(10, 60);
    let mut rng = StdRng::seed_from_u64(11);
    let asked = Duration::from_secs(45);
    for _ in 0..200 {
        let d = backoff(&t, 1, ApiErrorKind::Throttled, Some(asked), &mut rng);
        assert!(d >= asked, "asked to wait {asked:?}, waited {d:?}");
    }
}

// ---- end to end, without I/O ----

#[tokio::test]
async fn five_thousand_tasks_to_a_routing_table() {
    let fake = FakeEcs::cluster_of(5000, 500, NetworkMode::Awsvpc);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    // 500 app containers + 125 admin containers (definitions i % 4 == 3).
    assert_eq!(out.tasks.len(), 5000 + 1250);

    let update = ProviderUpdate {
        tasks: Arc::new(out.tasks),
        error: None,
    };
    let entrypoints = vec!["grpc".to_string()];
    let config = crate::watcher::assemble_named(
        &[("ecs", Some(&update))],
        &LabelOptions::default(),
        &entrypoints,
    );
    assert!(
        config.errors.is_empty(),
        "{:?}",
        &config.errors[..config.errors.len().min(3)]
    );
    assert_eq!(config.routers.len(), 625);
    assert_eq!(config.services.len(), 625);

    let tasks = fake.tasks(CLUSTER);
    let ip_of: BTreeMap<String, IpAddr> = tasks
        .iter()
        .map(|t| {
            (
                task_id(&t.arn).to_string(),
                t.eni_private_ip.expect("awsvpc"),
            )
        })
        .collect();
    for i in 0..500 {
        let name = format!("svc-{i}-app");
        let router = &config.routers[&name];
        assert_eq!(router.rule, format!("Host(`app.svc-{i}.internal`)"));
        assert_eq!(router.service, name);
        assert_eq!(router.status, Status::Enabled);
        let svc = &config.services[&name];
        assert_eq!(svc.servers.len(), 10, "{name}");
        for s in &svc.servers {
            assert_eq!(s.scheme, Scheme::H2c);
            let id = s.task.split('/').next().expect("task id");
            assert_eq!(s.address, std::net::SocketAddr::new(ip_of[id], APP_PORT));
            // Tasks j ≡ i (mod 500) are UNHEALTHY when j % 10 == 7, i.e. i % 10 == 7.
            let want = if i % 10 == 7 {
                TaskHealth::Unhealthy
            } else {
                TaskHealth::Healthy
            };
            assert_eq!(s.health, want, "{name}");
        }
        if i % 4 == 3 {
            let admin = &config.services[&format!("svc-{i}-admin")];
            assert_eq!(admin.servers.len(), 10);
            assert!(admin.servers.iter().all(|s| s.address.port() == ADMIN_PORT));
        }
    }

    let empty = RoutingTable::empty(entrypoints.len());
    let config = Arc::new(config);
    let table1 = RoutingTable::compile(config.clone(), &entrypoints, &empty);
    assert_eq!(table1.services().len(), 625);
    assert_eq!(table1.routes(0).len(), 625);
    assert_eq!(table1.endpoints().len(), 6250);
    let method = http::Method::POST;
    let headers = http::HeaderMap::new();
    let req = crate::rules::RequestInfo {
        method: &method,
        host: "admin.svc-43.internal",
        path: "/pkg.Admin/Get",
        query: None,
        headers: &headers,
        client_ip: ip("127.0.0.1"),
    };
    let route = table1.route(0, &req).expect("a route for admin.svc-43");
    assert_eq!(&*route.name, "svc-43-admin");
    assert_eq!(&*table1.service(route.service()).name, "svc-43-admin");

    // A rebuild keeps every endpoint of servers that stayed.
    let table2 = RoutingTable::compile(config, &entrypoints, &table1);
    assert!(table2
        .endpoints()
        .iter()
        .all(|(k, ep)| Arc::ptr_eq(ep, &table1.endpoints()[k])));
}

#[tokio::test]
async fn a_provider_error_shows_in_the_configuration() {
    let fake = FakeEcs::cluster_of(20, 2, NetworkMode::Awsvpc);
    let out = refresh_once(&fake, settings(&[CLUSTER])).await;
    let update = ProviderUpdate {
        tasks: Arc::new(out.tasks),
        error: Some("ListTasks failed: ThrottlingException: Rate exceeded".to_string()),
    };
    let mut config = labels::build(&update.tasks, &LabelOptions::default());
    table::validate(&mut config, &["grpc".to_string()]);
    let with_error = crate::watcher::assemble_named(
        &[("ecs", Some(&update))],
        &LabelOptions::default(),
        &["grpc".to_string()],
    );
    assert_eq!(
        with_error.routers, config.routers,
        "the last good tasks keep routing"
    );
    assert_eq!(with_error.errors.len(), 1);
    assert!(with_error.errors[0].message.contains("Rate exceeded"));
}

//! One refresh of the ECS provider: from the ECS API to a complete list of targets.
//!
//! The call plan, built to stay far below ECS's API rate limits on large clusters:
//! 1. clusters: the configured ones, or every page of ListClusters;
//! 2. per cluster (a few at once): every page of ListTasks (`desiredStatus=RUNNING`),
//!    then DescribeTasks in chunks of at most 100 ARNs;
//! 3. DescribeTaskDefinition only for ARNs never seen: a task definition revision is
//!    immutable, so the cache needs no expiry (it drops revisions no task uses);
//! 4. DescribeContainerInstances and EC2 DescribeInstances (chunked) only for
//!    container instances not seen before (bridge and host networking).
//!
//! All or nothing: any failed call fails the refresh, and the caller publishes
//! nothing from it. A half-read cluster must never look like tasks went away.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::api::{ApiError, EcsApi, Op, DESCRIBE_LIMIT, EC2_DESCRIBE_LIMIT};
use super::model::{EcsTask, NetworkMode, TaskDefinition};
use crate::provider::{Lifecycle, PortMapping, Task, TaskHealth};

/// Provider name used in task ids, errors and the API.
pub const NAME: &str = "ecs";

/// What to read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub clusters: Vec<String>,
    pub auto_discover: bool,
    /// Only tasks ECS reports HEALTHY become targets.
    pub healthy_only: bool,
    /// Clusters, and calls within a cluster, in flight at once.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            clusters: Vec::new(),
            auto_discover: false,
            healthy_only: false,
            concurrency: 4,
        }
    }
}

/// API calls made, by operation.
#[derive(Debug, Default)]
pub struct CallCounts {
    counts: [AtomicU64; Op::ALL.len()],
}

impl CallCounts {
    fn add(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, op: Op) -> u64 {
        self.counts[op as usize].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        Op::ALL.iter().map(|op| self.get(*op)).sum()
    }

    /// Non-zero counts by AWS operation name.
    pub fn by_name(&self) -> BTreeMap<&'static str, u64> {
        Op::ALL
            .iter()
            .map(|op| (op.name(), self.get(*op)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Clone for CallCounts {
    fn clone(&self) -> CallCounts {
        let c = CallCounts::default();
        for op in Op::ALL {
            c.counts[op as usize].store(self.get(op), Ordering::Relaxed);
        }
        c
    }
}

/// What one refresh did.
#[derive(Debug, Clone, Default)]
pub struct RefreshStats {
    pub calls: CallCounts,
    pub clusters: usize,
    /// Task ARNs ListTasks returned.
    pub tasks_listed: usize,
    /// Tasks RUNNING (and healthy, with `healthy_only`).
    pub tasks_running: usize,
    /// Targets produced (one per container).
    pub targets: usize,
    /// Tasks or containers left out for want of an address.
    pub skipped: usize,
    pub duration: Duration,
}

/// The result of a successful refresh.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub tasks: Vec<Task>,
    pub stats: RefreshStats,
}

/// Reads clusters into targets, remembering what never changes.
#[derive(Debug)]
pub struct Refresher {
    settings: Settings,
    task_definitions: HashMap<String, Arc<TaskDefinition>>,
    /// (cluster, container instance ARN) → the instance's private IP.
    instances: HashMap<(String, String), Option<IpAddr>>,
    /// API calls of the last refresh, successful or not.
    last_calls: CallCounts,
}

/// The calls of one refresh, counted.
struct Counted<'a, A> {
    api: &'a A,
    calls: &'a CallCounts,
}

impl Refresher {
    pub fn new(settings: Settings) -> Refresher {
        Refresher {
            settings,
            task_definitions: HashMap::new(),
            instances: HashMap::new(),
            last_calls: CallCounts::default(),
        }
    }

    /// API calls the last refresh made (also when it failed).
    pub fn last_calls(&self) -> &CallCounts {
        &self.last_calls
    }

    /// One refresh. Any API error fails the whole refresh.
    pub async fn refresh<A: EcsApi>(&mut self, api: &A) -> Result<Outcome, ApiError> {
        let calls = CallCounts::default();
        let result = self.refresh_counted(api, &calls).await;
        self.last_calls = calls;
        result
    }

    async fn refresh_counted<A: EcsApi>(
        &mut self,
        api: &A,
        calls: &CallCounts,
    ) -> Result<Outcome, ApiError> {
        let started = Instant::now();
        let api = Counted { api, calls };
        let concurrency = self.settings.concurrency.max(1);

        let clusters = if self.settings.auto_discover {
            api.all_clusters().await?
        } else {
            self.settings.clusters.clone()
        };
        // Futures are made up front (not in a stream closure): a closure over borrowed
        // arguments inside a spawned future trips rustc's higher-ranked lifetime check.
        let per_cluster: Vec<_> = clusters
            .iter()
            .map(|cluster| api.running_tasks(cluster, concurrency))
            .collect();
        let per_cluster: Vec<(String, usize, Vec<EcsTask>)> = stream::iter(per_cluster)
            .buffered(concurrency)
            .try_collect()
            .await?;

        let mut stats = RefreshStats {
            clusters: clusters.len(),
            ..RefreshStats::default()
        };
        let mut running: Vec<(String, EcsTask)> = Vec::new();
        for (cluster, listed, tasks) in per_cluster {
            stats.tasks_listed += listed;
            running.extend(tasks.into_iter().map(|t| (cluster.clone(), t)));
        }
        // Caches are filled for every running task, healthy or not, so a task that
        // recovers costs no call.
        self.fetch_task_definitions(&api, &running, concurrency)
            .await?;
        self.fetch_instances(&api, &running, concurrency).await?;

        let healthy_only = self.settings.healthy_only;
        let mut tasks = Vec::new();
        for (cluster, task) in &running {
            if healthy_only && task.health_status.as_deref() != Some("HEALTHY") {
                continue;
            }
            stats.tasks_running += 1;
            let Some(def) = self.task_definitions.get(&task.task_definition_arn) else {
                stats.skipped += 1;
                continue;
            };
            let host_ip = task
                .container_instance_arn
                .as_ref()
                .and_then(|ci| self.instances.get(&(cluster.clone(), ci.clone())))
                .copied()
                .flatten();
            let before = tasks.len();
            stats.skipped += targets(task, def, host_ip, &mut tasks);
            stats.targets += tasks.len() - before;
        }
        tasks.sort_by(|a, b| a.id.cmp(&b.id));

        // Keep only what is still in use, so the caches follow the cluster's size.
        let used_defs: HashSet<&str> = running
            .iter()
            .map(|(_, t)| t.task_definition_arn.as_str())
            .collect();
        self.task_definitions
            .retain(|arn, _| used_defs.contains(arn.as_str()));
        let used_instances: HashSet<(&str, &str)> = running
            .iter()
            .filter_map(|(c, t)| Some((c.as_str(), t.container_instance_arn.as_deref()?)))
            .collect();
        self.instances
            .retain(|(c, ci), _| used_instances.contains(&(c.as_str(), ci.as_str())));

        stats.calls = calls.clone();
        stats.duration = started.elapsed();
        Ok(Outcome { tasks, stats })
    }

    async fn fetch_task_definitions<A: EcsApi>(
        &mut self,
        api: &Counted<'_, A>,
        running: &[(String, EcsTask)],
        concurrency: usize,
    ) -> Result<(), ApiError> {
        let mut missing: Vec<&str> = running
            .iter()
            .map(|(_, t)| t.task_definition_arn.as_str())
            .filter(|arn| !self.task_definitions.contains_key(*arn))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let fetches: Vec<_> = missing
            .into_iter()
            .map(|arn| api.task_definition(arn))
            .collect();
        let mut fetched = stream::iter(fetches).buffer_unordered(concurrency);
        // Each definition is cached as it arrives, even if a later call fails: they
        // never change, and a cold start under a rate limit must make progress across
        // attempts instead of spending its budget on the same definitions every time.
        while let Some(def) = fetched.next().await {
            let def = def?;
            self.task_definitions.insert(def.arn.clone(), Arc::new(def));
        }
        Ok(())
    }

    async fn fetch_instances<A: EcsApi>(
        &mut self,
        api: &Counted<'_, A>,
        running: &[(String, EcsTask)],
        concurrency: usize,
    ) -> Result<(), ApiError> {
        // Container instances of bridge and host tasks we have no address for yet.
        let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (cluster, task) in running {
            let needs_host = self
                .task_definitions
                .get(&task.task_definition_arn)
                .is_some_and(|d| matches!(d.network_mode, NetworkMode::Bridge | NetworkMode::Host));
            let Some(ci) = &task.container_instance_arn else {
                continue;
            };
            if needs_host && !self.instances.contains_key(&(cluster.clone(), ci.clone())) {
                wanted.entry(cluster.as_str()).or_default().push(ci.clone());
            }
        }
        for (cluster, mut arns) in wanted {
            arns.sort_unstable();
            arns.dedup();
            let calls: Vec<_> = arns
                .chunks(DESCRIBE_LIMIT)
                .map(|chunk| api.container_instances(cluster, chunk))
                .collect();
            let described: Vec<_> = stream::iter(calls)
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            let mut ec2_of: Vec<(String, String)> = Vec::new();
            for d in described {
                for ci in d.items {
                    match ci.ec2_instance_id {
                        Some(id) => ec2_of.push((ci.arn, id)),
                        None => {
                            self.instances.insert((cluster.to_string(), ci.arn), None);
                        }
                    }
                }
            }
            let mut ids: Vec<String> = ec2_of.iter().map(|(_, id)| id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            let calls: Vec<_> = ids
                .chunks(EC2_DESCRIBE_LIMIT)
                .map(|chunk| api.instances(chunk))
                .collect();
            let found: Vec<Vec<_>> = stream::iter(calls)
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            let ip_of: HashMap<String, Option<IpAddr>> = found
                .into_iter()
                .flatten()
                .map(|i| (i.id, i.private_ip))
                .collect();
            for (ci, id) in ec2_of {
                // No address yet (or EC2 left it out): ask again next refresh.
                if let Some(ip) = ip_of.get(&id).copied().flatten() {
                    self.instances.insert((cluster.to_string(), ci), Some(ip));
                }
            }
        }
        Ok(())
    }
}

impl<A: EcsApi> Counted<'_, A> {
    async fn all_clusters(&self) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        let mut next = None;
        loop {
            self.calls.add(Op::ListClusters);
            let page = self.api.list_clusters(next).await?;
            out.extend(page.items);
            next = page.next_token;
            if next.is_none() {
                return Ok(out);
            }
        }
    }

    /// Every RUNNING task of a cluster: (cluster, ARNs listed, tasks).
    async fn running_tasks(
        &self,
        cluster: &String,
        concurrency: usize,
    ) -> Result<(String, usize, Vec<EcsTask>), ApiError> {
        let mut arns = Vec::new();
        let mut next = None;
        loop {
            self.calls.add(Op::ListTasks);
            let page = self.api.list_tasks(cluster, next).await?;
            arns.extend(page.items);
            next = page.next_token;
            if next.is_none() {
                break;
            }
        }
        let listed = arns.len();
        let calls: Vec<_> = arns
            .chunks(DESCRIBE_LIMIT)
            .map(|chunk| self.describe(cluster, chunk))
            .collect();
        let described: Vec<_> = stream::iter(calls)
            .buffered(concurrency)
            .try_collect()
            .await?;
        let mut tasks = Vec::with_capacity(listed);
        for d in described {
            for failure in &d.failures {
                // MISSING: stopped between ListTasks and DescribeTasks. Anything else is
                // worth a line in the log, but not worth failing the refresh.
                if failure.reason != "MISSING" {
                    tracing::warn!(cluster = %cluster, arn = %failure.arn, reason = %failure.reason, "DescribeTasks could not describe a task");
                }
            }
            tasks.extend(
                d.items
                    .into_iter()
                    .filter(|t| t.last_status == "RUNNING" && t.desired_status == "RUNNING"),
            );
        }
        Ok((cluster.clone(), listed, tasks))
    }

    async fn describe(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<super::model::Described<EcsTask>, ApiError> {
        self.calls.add(Op::DescribeTasks);
        self.api.describe_tasks(cluster, arns).await
    }

    async fn task_definition(&self, arn: &str) -> Result<TaskDefinition, ApiError> {
        self.calls.add(Op::DescribeTaskDefinition);
        self.api.describe_task_definition(arn).await
    }

    async fn container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<super::model::Described<super::model::ContainerInstance>, ApiError> {
        self.calls.add(Op::DescribeContainerInstances);
        self.api.describe_container_instances(cluster, arns).await
    }

    async fn instances(&self, ids: &[String]) -> Result<Vec<super::model::Ec2Instance>, ApiError> {
        self.calls.add(Op::DescribeInstances);
        self.api.describe_instances(ids).await
    }
}

/// Appends one target per container of `task`; returns how many were skipped.
fn targets(
    task: &EcsTask,
    def: &TaskDefinition,
    host_ip: Option<IpAddr>,
    out: &mut Vec<Task>,
) -> usize {
    let task_id = task.arn.rsplit('/').next().unwrap_or(&task.arn);
    let mut skipped = 0;
    for container in &def.containers {
        let running = task.containers.iter().find(|c| c.name == container.name);
        if running
            .and_then(|c| c.last_status.as_deref())
            .is_some_and(|s| s != "RUNNING")
        {
            // An essential container that stopped takes the task down soon anyway; a
            // non-essential one that exited serves nothing.
            continue;
        }
        let (ip, ports) = match def.network_mode {
            NetworkMode::Awsvpc => (
                task.eni_private_ip
                    .or_else(|| running.and_then(|c| c.private_ip)),
                container
                    .port_mappings
                    .iter()
                    .map(|p| PortMapping {
                        container: p.container_port,
                        host: p.container_port,
                    })
                    .collect::<Vec<_>>(),
            ),
            NetworkMode::Host => (
                host_ip,
                container
                    .port_mappings
                    .iter()
                    .map(|p| PortMapping {
                        container: p.container_port,
                        host: p.host_port.filter(|h| *h != 0).unwrap_or(p.container_port),
                    })
                    .collect(),
            ),
            NetworkMode::Bridge => {
                let bindings = running
                    .map(|c| c.network_bindings.as_slice())
                    .unwrap_or(&[]);
                let ports = container
                    .port_mappings
                    .iter()
                    .filter_map(|p| {
                        let bound = bindings
                            .iter()
                            .find(|b| b.container_port == p.container_port)
                            .map(|b| b.host_port)
                            .filter(|h| *h != 0);
                        let host = bound.or(p.host_port.filter(|h| *h != 0))?;
                        Some(PortMapping {
                            container: p.container_port,
                            host,
                        })
                    })
                    .collect();
                (host_ip, ports)
            }
            NetworkMode::None => (None, Vec::new()),
        };
        let Some(ip) = ip else {
            skipped += 1;
            continue;
        };
        // A container's own health check is the most precise; a container without one
        // reports UNKNOWN, and then the task's aggregate health stands.
        let health = running
            .and_then(|c| c.health_status.as_deref())
            .filter(|h| *h != "UNKNOWN")
            .or(task.health_status.as_deref());
        let mut ports: Vec<PortMapping> = ports;
        ports.sort();
        ports.dedup();
        out.push(Task {
            id: format!("{task_id}/{}", container.name),
            provider: NAME.to_string(),
            ip,
            zone: task.availability_zone.clone(),
            group: task.group.clone(),
            container: Some(container.name.clone()),
            lifecycle: Lifecycle::Running,
            health: match health {
                Some("HEALTHY") => TaskHealth::Healthy,
                Some("UNHEALTHY") => TaskHealth::Unhealthy,
                _ => TaskHealth::Unknown,
            },
            ports,
            labels: container.labels.clone(),
        });
    }
    skipped
}

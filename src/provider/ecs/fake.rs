//! A test double: an in-memory ECS (and the sliver of EC2 gantry reads) behind
//! [`EcsApi`], for tests and benchmarks. Never used by the router itself.
//!
//! It models what no emulator does, the way the real services do it:
//! - paging: ListClusters and ListTasks return at most 100 items a page (ECS's default
//!   `maxResults`) with an opaque `nextToken` that only works for the same call;
//! - limits: DescribeTasks and DescribeContainerInstances reject more than 100 ARNs
//!   (`InvalidParameterException`) and an empty list; EC2 DescribeInstances rejects
//!   more than 100 ids (gantry's own promise, EC2 allows 1000). Every violation is
//!   also recorded, so a test can assert none happened;
//! - `MISSING`: a task listed and then gone before DescribeTasks is reported as a
//!   failure, not an error ([`FakeEcs::vanish_after_listing`], [`FakeEcs::on_list_tasks`]);
//! - faults: the next n calls of an operation fail ([`FakeEcs::fail_next`],
//!   [`FakeEcs::throttle`]), or the calls a predicate picks ([`FakeEcs::fail_when`],
//!   [`FakeEcs::fail_nth`]); AWS-style token-bucket rate limits
//!   ([`FakeEcs::rate_limit`]); latency per operation ([`FakeEcs::set_latency`]);
//! - size: [`FakeEcs::cluster_of`] generates clusters of thousands of tasks;
//! - accounting: calls per operation, the largest batch per call, calls in flight,
//!   DescribeTaskDefinition per ARN, and optionally a timestamped log of every call.
//!
//! `FakeEcs` is a handle: clones share one state, so a test keeps one to change the
//! world and read counters while the provider owns another. No lock is held across an
//! `await`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::api::{ApiError, ApiErrorKind, EcsApi, Op, DESCRIBE_LIMIT, EC2_DESCRIBE_LIMIT};
use super::model::{
    ContainerDefinition, ContainerInstance, DescribeFailure, Described, Ec2Instance, EcsContainer,
    EcsTask, NetworkBinding, NetworkMode, Page, PortMappingDef, TaskDefinition,
};

/// Region of every ARN the fake makes.
pub const REGION: &str = "us-east-1";
/// Account of every ARN the fake makes.
pub const ACCOUNT: &str = "123456789012";
/// ListClusters and ListTasks page size unless [`FakeEcs::set_page_size`] changes it
/// (ECS's default `maxResults`).
pub const PAGE_SIZE: usize = 100;
/// Cluster name [`FakeEcs::cluster_of`] uses.
pub const CLUSTER: &str = "prod";
/// Container port of the `app` container of generated task definitions.
pub const APP_PORT: u16 = 50051;
/// Container port of the `admin` container of generated task definitions.
pub const ADMIN_PORT: u16 = 50052;
/// First host port of dynamic (bridge) port bindings, as Docker's ephemeral range.
pub const EPHEMERAL_PORT: u16 = 32768;

const OPS: usize = Op::ALL.len();

/// `arn:aws:ecs:…:cluster/<name>`.
pub fn cluster_arn(name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}")
}

/// `arn:aws:ecs:…:task/<cluster>/<id>` (the long ARN format).
pub fn task_arn(cluster: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{id}")
}

/// `arn:aws:ecs:…:task-definition/<family>:<revision>`.
pub fn task_definition_arn(family: &str, revision: u32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}")
}

/// `arn:aws:ecs:…:container-instance/<cluster>/<id>`.
pub fn container_instance_arn(cluster: &str, id: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{cluster}/{id}")
}

/// The cluster name in a cluster ARN, or the argument itself if it is a name (ECS
/// takes either).
fn cluster_name(cluster: &str) -> &str {
    match cluster.rsplit_once(":cluster/") {
        Some((_, name)) => name,
        None => cluster,
    }
}

/// A RUNNING task of an awsvpc task definition, with one RUNNING container per name;
/// a starting point for tests to adjust.
pub fn running_task(
    cluster: &str,
    id: &str,
    task_definition_arn: &str,
    ip: IpAddr,
    containers: &[&str],
) -> EcsTask {
    EcsTask {
        arn: task_arn(cluster, id),
        task_definition_arn: task_definition_arn.to_string(),
        group: None,
        last_status: "RUNNING".to_string(),
        desired_status: "RUNNING".to_string(),
        health_status: None,
        availability_zone: None,
        container_instance_arn: None,
        eni_private_ip: Some(ip),
        containers: containers
            .iter()
            .map(|name| EcsContainer {
                name: (*name).to_string(),
                last_status: Some("RUNNING".to_string()),
                health_status: None,
                network_bindings: Vec::new(),
                private_ip: Some(ip),
            })
            .collect(),
    }
}

/// One API call, as fault predicates see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub op: Op,
    /// 1 for the first call of `op` since the fake was made or [`FakeEcs::reset_calls`].
    pub n: u64,
    /// The cluster argument (ListTasks, DescribeTasks, DescribeContainerInstances).
    pub cluster: Option<&'a str>,
    /// The ARNs or ids asked for (one ARN for DescribeTaskDefinition; none for lists).
    pub args: &'a [String],
    pub next_token: Option<&'a str>,
}

/// One API call, as the log records it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub op: Op,
    /// When the call arrived (tokio's clock, so paused time shows exact delays).
    pub at: tokio::time::Instant,
    pub cluster: Option<String>,
    /// How many ARNs or ids it carried.
    pub batch: usize,
    /// Whether an injected fault failed it (requests that broke a limit are in
    /// [`FakeEcs::violations`]).
    pub failed: bool,
}

type Predicate = Arc<dyn Fn(&Call<'_>) -> bool + Send + Sync>;
type ListHook = Arc<dyn Fn(&FakeEcs, &str, &[String]) + Send + Sync>;

enum Fault {
    /// The next `remaining` calls of `op` (any op if `None`) fail with `error`.
    Next {
        op: Option<Op>,
        remaining: u64,
        error: ApiError,
    },
    /// Every call of `op` the predicate picks fails with `kind`.
    When {
        op: Op,
        kind: ApiErrorKind,
        pick: Predicate,
        /// Removed once it has failed a call.
        once: bool,
    },
}

#[derive(Default)]
struct Cluster {
    tasks: BTreeMap<String, EcsTask>,
    container_instances: BTreeMap<String, ContainerInstance>,
}

#[derive(Default)]
struct World {
    /// By name.
    clusters: BTreeMap<String, Cluster>,
    task_definitions: HashMap<String, TaskDefinition>,
    instances: BTreeMap<String, Ec2Instance>,
    /// Task ARNs removed right after a ListTasks page lists them.
    vanishing: BTreeSet<String>,
    /// Tasks and instances generated so far (unique ids and addresses).
    generated_tasks: u64,
    generated_instances: u64,
}

#[derive(Default)]
struct Stats {
    calls: [AtomicU64; OPS],
    failed: [AtomicU64; OPS],
    max_batch: [AtomicUsize; OPS],
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    violations: RwLock<Vec<String>>,
    task_definition_calls: RwLock<HashMap<String, u64>>,
    logging: AtomicBool,
    log: RwLock<Vec<CallRecord>>,
}

struct Inner {
    world: RwLock<World>,
    faults: RwLock<Vec<Fault>>,
    list_hooks: RwLock<Vec<ListHook>>,
    page_size: AtomicUsize,
    latency_nanos: [AtomicU64; OPS],
    rate_limits: RwLock<[Option<Bucket>; OPS]>,
    stats: Stats,
}

/// A token bucket, as ECS and EC2 throttle each API: `burst` calls at once, refilled
/// at `per_second`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Bucket {
    /// Takes a token if there is one.
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An in-memory ECS + EC2. Clones share state.
#[derive(Clone)]
pub struct FakeEcs {
    inner: Arc<Inner>,
}

impl Default for FakeEcs {
    fn default() -> FakeEcs {
        FakeEcs::new()
    }
}

impl std::fmt::Debug for FakeEcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let world = read(&self.inner.world);
        f.debug_struct("FakeEcs")
            .field("clusters", &world.clusters.len())
            .field("task_definitions", &world.task_definitions.len())
            .field("instances", &world.instances.len())
            .field("calls", &self.total_calls())
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Decrements the in-flight count however the call ends (also when dropped).
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeEcs {
    /// An empty account: no clusters, no task definitions, no instances.
    pub fn new() -> FakeEcs {
        FakeEcs {
            inner: Arc::new(Inner {
                world: RwLock::new(World::default()),
                faults: RwLock::new(Vec::new()),
                list_hooks: RwLock::new(Vec::new()),
                page_size: AtomicUsize::new(PAGE_SIZE),
                latency_nanos: Default::default(),
                rate_limits: RwLock::new([None; OPS]),
                stats: Stats::default(),
            }),
        }
    }

    // ---- building the world ----

    /// Creates an empty cluster (nothing if it exists).
    pub fn add_cluster(&self, name: &str) -> &Self {
        write(&self.inner.world)
            .clusters
            .entry(name.to_string())
            .or_default();
        self
    }

    /// Registers a task definition (replacing one with the same ARN).
    pub fn add_task_definition(&self, def: TaskDefinition) -> &Self {
        write(&self.inner.world)
            .task_definitions
            .insert(def.arn.clone(), def);
        self
    }

    /// Adds (or replaces) a task in `cluster` (by name), creating the cluster if needed.
    pub fn add_task(&self, cluster: &str, task: EcsTask) -> &Self {
        write(&self.inner.world)
            .clusters
            .entry(cluster_name(cluster).to_string())
            .or_default()
            .tasks
            .insert(task.arn.clone(), task);
        self
    }

    /// Removes a task from whichever cluster has it; false if none did. DescribeTasks
    /// then reports it `MISSING`.
    pub fn remove_task(&self, arn: &str) -> bool {
        let mut world = write(&self.inner.world);
        world
            .clusters
            .values_mut()
            .any(|c| c.tasks.remove(arn).is_some())
    }

    /// Changes a task in place; false if no cluster has it.
    pub fn set_task(&self, arn: &str, change: impl FnOnce(&mut EcsTask)) -> bool {
        let mut world = write(&self.inner.world);
        match world
            .clusters
            .values_mut()
            .find_map(|c| c.tasks.get_mut(arn))
        {
            Some(task) => {
                change(task);
                true
            }
            None => false,
        }
    }

    /// Registers a container instance in `cluster` running on EC2 instance `ec2_id`
    /// with private IP `ip`.
    pub fn add_container_instance(
        &self,
        cluster: &str,
        arn: &str,
        ec2_id: &str,
        ip: IpAddr,
    ) -> &Self {
        let mut world = write(&self.inner.world);
        world
            .clusters
            .entry(cluster_name(cluster).to_string())
            .or_default()
            .container_instances
            .insert(
                arn.to_string(),
                ContainerInstance {
                    arn: arn.to_string(),
                    ec2_instance_id: Some(ec2_id.to_string()),
                },
            );
        world.instances.insert(
            ec2_id.to_string(),
            Ec2Instance {
                id: ec2_id.to_string(),
                private_ip: Some(ip),
            },
        );
        self
    }

    /// The task is listed by the next ListTasks page that includes it, then removed
    /// before anyone can describe it (it stopped in between).
    pub fn vanish_after_listing(&self, arn: &str) -> &Self {
        write(&self.inner.world).vanishing.insert(arn.to_string());
        self
    }

    /// Runs `hook(fake, cluster, listed ARNs)` after every ListTasks page is made and
    /// before it is returned, with no lock held: it may change the world.
    pub fn on_list_tasks(
        &self,
        hook: impl Fn(&FakeEcs, &str, &[String]) + Send + Sync + 'static,
    ) -> &Self {
        write(&self.inner.list_hooks).push(Arc::new(hook));
        self
    }

    /// ListClusters and ListTasks page size (ECS: `maxResults`, default 100).
    pub fn set_page_size(&self, size: usize) -> &Self {
        self.inner.page_size.store(size.max(1), Ordering::Relaxed);
        self
    }

    /// Every call of `op` takes this long (tokio time: pausable).
    pub fn set_latency(&self, op: Op, latency: Duration) -> &Self {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.inner.latency_nanos[op as usize].store(nanos, Ordering::Relaxed);
        self
    }

    /// Throttles `op` like AWS does: a token bucket of `burst` calls, refilled at
    /// `per_second` (tokio time). Calls over the rate get `ThrottlingException`.
    pub fn rate_limit(&self, op: Op, burst: u32, per_second: f64) -> &Self {
        write(&self.inner.rate_limits)[op as usize] = Some(Bucket {
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            at: tokio::time::Instant::now(),
        });
        self
    }

    // ---- generated clusters ----

    /// A fake with one cluster, [`CLUSTER`], generated by [`FakeEcs::populate`].
    pub fn cluster_of(n_tasks: usize, n_task_defs: usize, mode: NetworkMode) -> FakeEcs {
        let fake = FakeEcs::new();
        fake.populate(CLUSTER, n_tasks, n_task_defs, mode);
        fake
    }

    /// Fills `cluster` with `n_tasks` RUNNING tasks spread round-robin over
    /// `n_task_defs` task definitions (task `j` runs definition `j % n_task_defs`).
    ///
    /// The shape, for tests to derive expectations from:
    /// - definition `i`: ARN [`task_definition_arn`]`("svc-<i>", 1)` (shared by every
    ///   cluster populated, as task definitions are regional), an `app` container on
    ///   [`APP_PORT`] and, when `i % 4 == 3`, an `admin` container on [`ADMIN_PORT`];
    /// - each container's labels: `traefik.enable=true`, router and service
    ///   `svc-<i>-<container>` with rule ``Host(`<container>.svc-<i>.internal`)``,
    ///   scheme h2c and the container port;
    /// - task `j`: group `service:svc-<i>`, zone `us-east-1{a,b,c}` by `j % 3`, health
    ///   UNHEALTHY when `j % 10 == 7`, else HEALTHY (task and containers);
    /// - awsvpc: an ENI IP `127.1.x.y` per task (never dialled);
    /// - bridge and host: `ceil(n_tasks / 20)` container instances (EC2 IPs
    ///   `127.2.x.y`), task `j` on instance `j % n`; bridge host ports are dynamic
    ///   (bindings from [`EPHEMERAL_PORT`] up, unique per instance); host mode binds
    ///   the container port (ECS would not place two such tasks on one instance; the
    ///   fake does not check).
    ///
    /// Static bridge host ports are left to hand-built tasks, for the same reason.
    ///
    /// Returns the ARNs of the tasks added, in `j` order.
    pub fn populate(
        &self,
        cluster: &str,
        n_tasks: usize,
        n_task_defs: usize,
        mode: NetworkMode,
    ) -> Vec<String> {
        let n_task_defs = n_task_defs.max(1);
        let mut world = write(&self.inner.world);
        let defs: Vec<TaskDefinition> = (0..n_task_defs)
            .map(|i| generated_definition(i, mode))
            .collect();
        for def in &defs {
            world
                .task_definitions
                .entry(def.arn.clone())
                .or_insert_with(|| def.clone());
        }
        let on_ec2 = matches!(mode, NetworkMode::Bridge | NetworkMode::Host);
        let n_instances = if on_ec2 {
            n_tasks.div_ceil(20).max(1)
        } else {
            0
        };
        let mut instances: Vec<(String, IpAddr)> = Vec::with_capacity(n_instances);
        for _ in 0..n_instances {
            let k = world.generated_instances;
            world.generated_instances += 1;
            let arn = container_instance_arn(cluster, &hex_id(k ^ 0x5bd1_e995));
            let ec2_id = format!("i-{:017x}", k + 1);
            let ip = numbered_ip(2, k + 1);
            world
                .clusters
                .entry(cluster.to_string())
                .or_default()
                .container_instances
                .insert(
                    arn.clone(),
                    ContainerInstance {
                        arn: arn.clone(),
                        ec2_instance_id: Some(ec2_id.clone()),
                    },
                );
            world.instances.insert(
                ec2_id.clone(),
                Ec2Instance {
                    id: ec2_id,
                    private_ip: Some(ip),
                },
            );
            instances.push((arn, ip));
        }
        let mut arns = Vec::with_capacity(n_tasks);
        for j in 0..n_tasks {
            let g = world.generated_tasks;
            world.generated_tasks += 1;
            let def = &defs[j % n_task_defs];
            let i = j % n_task_defs;
            let health = if j % 10 == 7 { "UNHEALTHY" } else { "HEALTHY" };
            let eni_ip = (mode == NetworkMode::Awsvpc).then(|| numbered_ip(1, g + 1));
            let instance = on_ec2.then(|| &instances[j % n_instances]);
            let slot = j.checked_div(n_instances).unwrap_or(0);
            let containers = def
                .containers
                .iter()
                .enumerate()
                .map(|(c, cdef)| {
                    let network_bindings = match mode {
                        NetworkMode::Bridge | NetworkMode::Host => cdef
                            .port_mappings
                            .iter()
                            .map(|p| NetworkBinding {
                                container_port: p.container_port,
                                host_port: match (mode, p.host_port) {
                                    (NetworkMode::Host, _) => p.container_port,
                                    (_, Some(h)) if h != 0 => h,
                                    _ => dynamic_port(slot, c),
                                },
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    EcsContainer {
                        name: cdef.name.clone(),
                        last_status: Some("RUNNING".to_string()),
                        health_status: Some(health.to_string()),
                        network_bindings,
                        private_ip: eni_ip,
                    }
                })
                .collect();
            let task = EcsTask {
                arn: task_arn(cluster, &hex_id(g)),
                task_definition_arn: def.arn.clone(),
                group: Some(format!("service:svc-{i}")),
                last_status: "RUNNING".to_string(),
                desired_status: "RUNNING".to_string(),
                health_status: Some(health.to_string()),
                availability_zone: Some(format!("{REGION}{}", ['a', 'b', 'c'][j % 3])),
                container_instance_arn: instance.map(|(arn, _)| arn.clone()),
                eni_private_ip: eni_ip,
                containers,
            };
            arns.push(task.arn.clone());
            world
                .clusters
                .entry(cluster.to_string())
                .or_default()
                .tasks
                .insert(task.arn.clone(), task);
        }
        arns
    }

    // ---- faults ----

    /// The next `n` calls of `op` fail with an error of `kind`.
    pub fn fail_next(&self, op: Op, n: u64, kind: ApiErrorKind) -> &Self {
        self.fail_next_with(op, n, ApiError::new(op, kind, injected_message(op, kind)))
    }

    /// The next `n` calls of `op` fail with `error` (its `op` is set to `op`): to
    /// inject a `retry_after` or a particular message.
    pub fn fail_next_with(&self, op: Op, n: u64, mut error: ApiError) -> &Self {
        error.op = op;
        write(&self.inner.faults).push(Fault::Next {
            op: Some(op),
            remaining: n,
            error,
        });
        self
    }

    /// The next `n` calls, whatever their operation, fail with an error of `kind`.
    pub fn fail_next_any(&self, n: u64, kind: ApiErrorKind) -> &Self {
        write(&self.inner.faults).push(Fault::Next {
            op: None,
            remaining: n,
            // `op` is replaced by the failing call's.
            error: ApiError::new(Op::ListTasks, kind, String::new()),
        });
        self
    }

    /// A throttling storm: the next `n` calls of `op` are `ThrottlingException`s.
    pub fn throttle(&self, op: Op, n: u64) -> &Self {
        self.fail_next(op, n, ApiErrorKind::Throttled)
    }

    /// Every call of `op` for which `pick` is true fails with `kind`, until
    /// [`FakeEcs::clear_faults`].
    pub fn fail_when(
        &self,
        op: Op,
        kind: ApiErrorKind,
        pick: impl Fn(&Call<'_>) -> bool + Send + Sync + 'static,
    ) -> &Self {
        self.push_when(op, kind, Arc::new(pick), false)
    }

    fn push_when(&self, op: Op, kind: ApiErrorKind, pick: Predicate, once: bool) -> &Self {
        write(&self.inner.faults).push(Fault::When {
            op,
            kind,
            pick,
            once,
        });
        self
    }

    /// The `nth` call of `op` (counted from the last [`FakeEcs::reset_calls`], 1-based)
    /// fails with `kind`, once: a failure in the middle of a refresh.
    pub fn fail_nth(&self, op: Op, nth: u64, kind: ApiErrorKind) -> &Self {
        self.push_when(
            op,
            kind,
            Arc::new(move |call: &Call<'_>| call.n == nth),
            true,
        )
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) -> &Self {
        write(&self.inner.faults).clear();
        self
    }

    // ---- counters ----

    /// Calls of `op` made (including failed ones).
    pub fn calls(&self, op: Op) -> u64 {
        self.inner.stats.calls[op as usize].load(Ordering::SeqCst)
    }

    /// Calls of every operation made.
    pub fn total_calls(&self) -> u64 {
        Op::ALL.iter().map(|op| self.calls(*op)).sum()
    }

    /// Calls of `op` that failed (injected faults and rejected requests).
    pub fn failed_calls(&self, op: Op) -> u64 {
        self.inner.stats.failed[op as usize].load(Ordering::SeqCst)
    }

    /// The most ARNs or ids one call of `op` carried.
    pub fn max_batch(&self, op: Op) -> usize {
        self.inner.stats.max_batch[op as usize].load(Ordering::SeqCst)
    }

    /// The most calls that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.inner.stats.max_in_flight.load(Ordering::SeqCst)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.stats.in_flight.load(Ordering::SeqCst)
    }

    /// DescribeTaskDefinition calls for `arn`.
    pub fn task_definition_calls(&self, arn: &str) -> u64 {
        read(&self.inner.stats.task_definition_calls)
            .get(arn)
            .copied()
            .unwrap_or(0)
    }

    /// Every request that broke an API limit (too many or no ARNs, a bad token), as
    /// the error message it got.
    pub fn violations(&self) -> Vec<String> {
        read(&self.inner.stats.violations).clone()
    }

    /// Zeroes every counter, the violations and the log (faults and the world stay).
    pub fn reset_calls(&self) {
        let stats = &self.inner.stats;
        for i in 0..OPS {
            stats.calls[i].store(0, Ordering::SeqCst);
            stats.failed[i].store(0, Ordering::SeqCst);
            stats.max_batch[i].store(0, Ordering::SeqCst);
        }
        stats
            .max_in_flight
            .store(stats.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        write(&stats.violations).clear();
        write(&stats.task_definition_calls).clear();
        write(&stats.log).clear();
    }

    /// Starts or stops logging every call (off by default: benchmarks make millions).
    pub fn log_calls(&self, on: bool) -> &Self {
        self.inner.stats.logging.store(on, Ordering::SeqCst);
        self
    }

    /// The calls logged since logging started or the last [`FakeEcs::reset_calls`].
    pub fn call_log(&self) -> Vec<CallRecord> {
        read(&self.inner.stats.log).clone()
    }

    // ---- reading the world ----

    /// Cluster names.
    pub fn clusters(&self) -> Vec<String> {
        read(&self.inner.world).clusters.keys().cloned().collect()
    }

    /// The tasks of `cluster` (name or ARN), by ARN.
    pub fn tasks(&self, cluster: &str) -> Vec<EcsTask> {
        read(&self.inner.world)
            .clusters
            .get(cluster_name(cluster))
            .map(|c| c.tasks.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A task of any cluster.
    pub fn task(&self, arn: &str) -> Option<EcsTask> {
        read(&self.inner.world)
            .clusters
            .values()
            .find_map(|c| c.tasks.get(arn).cloned())
    }

    /// The private IP of the EC2 instance behind a container instance of `cluster`.
    pub fn container_instance_ip(&self, cluster: &str, arn: &str) -> Option<IpAddr> {
        let world = read(&self.inner.world);
        let ci = world
            .clusters
            .get(cluster_name(cluster))?
            .container_instances
            .get(arn)?;
        world
            .instances
            .get(ci.ec2_instance_id.as_deref()?)?
            .private_ip
    }

    /// A registered task definition.
    pub fn task_definition(&self, arn: &str) -> Option<TaskDefinition> {
        read(&self.inner.world).task_definitions.get(arn).cloned()
    }

    // ---- the calls ----

    /// Counts and logs a call, waits its latency, then fails it if a fault says so.
    async fn begin(&self, call: Call<'_>) -> Result<(), ApiError> {
        let stats = &self.inner.stats;
        let i = call.op as usize;
        let in_flight = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let _guard = InFlight(&stats.in_flight);
        stats.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        stats.max_batch[i].fetch_max(call.args.len(), Ordering::SeqCst);
        let n = stats.calls[i].fetch_add(1, Ordering::SeqCst) + 1;
        let call = Call { n, ..call };
        let at = tokio::time::Instant::now();
        let admitted = write(&self.inner.rate_limits)[i]
            .as_mut()
            .is_none_or(|bucket| bucket.take(at));
        let latency = self.inner.latency_nanos[i].load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_nanos(latency)).await;
        }
        let result = if admitted {
            self.injected_fault(&call)
        } else {
            Err(ApiError::new(
                call.op,
                ApiErrorKind::Throttled,
                injected_message(call.op, ApiErrorKind::Throttled),
            ))
        };
        if stats.logging.load(Ordering::SeqCst) {
            write(&stats.log).push(CallRecord {
                op: call.op,
                at,
                cluster: call.cluster.map(str::to_string),
                batch: call.args.len(),
                failed: result.is_err(),
            });
        }
        if result.is_err() {
            stats.failed[i].fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    fn injected_fault(&self, call: &Call<'_>) -> Result<(), ApiError> {
        let mut picks: Vec<(ApiErrorKind, Predicate)> = Vec::new();
        {
            let mut faults = write(&self.inner.faults);
            let mut hit = None;
            for fault in faults.iter_mut() {
                match fault {
                    Fault::Next {
                        op,
                        remaining,
                        error,
                    } if *remaining > 0 && op.is_none_or(|op| op == call.op) => {
                        *remaining -= 1;
                        let mut error = error.clone();
                        if op.is_none() {
                            error.op = call.op;
                            error.message = injected_message(call.op, error.kind);
                        }
                        hit = Some(error);
                        break;
                    }
                    Fault::When { op, kind, pick, .. } if *op == call.op => {
                        picks.push((*kind, pick.clone()));
                    }
                    _ => {}
                }
            }
            if let Some(error) = hit {
                faults.retain(|f| !matches!(f, Fault::Next { remaining: 0, .. }));
                return Err(error);
            }
        }
        // Predicates run with no lock held.
        match picks.into_iter().find(|(_, pick)| pick(call)) {
            Some((kind, pick)) => {
                write(&self.inner.faults).retain(|f| match f {
                    Fault::When { pick: p, once, .. } => !(*once && Arc::ptr_eq(p, &pick)),
                    Fault::Next { .. } => true,
                });
                Err(ApiError::new(
                    call.op,
                    kind,
                    injected_message(call.op, kind),
                ))
            }
            None => Ok(()),
        }
    }

    /// Records a request that broke an API rule and the error it gets.
    fn reject(&self, op: Op, message: String) -> ApiError {
        self.inner.stats.failed[op as usize].fetch_add(1, Ordering::SeqCst);
        write(&self.inner.stats.violations).push(format!("{}: {message}", op.name()));
        ApiError::new(op, ApiErrorKind::Rejected, message)
    }

    fn page_size(&self) -> usize {
        self.inner.page_size.load(Ordering::Relaxed)
    }

    fn list_tasks_now(
        &self,
        cluster: &str,
        next_token: Option<&str>,
    ) -> Result<Page<String>, ApiError> {
        let name = cluster_name(cluster);
        let scope = format!("tasks:{name}");
        let after = match next_token {
            Some(token) => Some(decode_token(token, &scope).ok_or_else(|| {
                self.reject(
                    Op::ListTasks,
                    "InvalidParameterException: Invalid token".to_string(),
                )
            })?),
            None => None,
        };
        let mut world = write(&self.inner.world);
        let World {
            clusters,
            vanishing,
            ..
        } = &mut *world;
        let Some(c) = clusters.get_mut(name) else {
            return Err(cluster_not_found(Op::ListTasks));
        };
        let lower = after
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded::<&str>);
        let mut listed = c
            .tasks
            .range::<str, _>((lower, Bound::Unbounded))
            .filter(|(_, t)| t.desired_status == "RUNNING")
            .map(|(arn, _)| arn.clone());
        let items: Vec<String> = listed.by_ref().take(self.page_size()).collect();
        let more = listed.next().is_some();
        let next_token = match items.last() {
            Some(last) if more => Some(encode_token(&scope, last)),
            _ => None,
        };
        for arn in &items {
            if vanishing.remove(arn) {
                c.tasks.remove(arn);
            }
        }
        Ok(Page { items, next_token })
    }

    fn list_clusters_now(&self, next_token: Option<&str>) -> Result<Page<String>, ApiError> {
        let scope = "clusters";
        let after = match next_token {
            Some(token) => Some(decode_token(token, scope).ok_or_else(|| {
                self.reject(
                    Op::ListClusters,
                    "InvalidParameterException: Invalid token".to_string(),
                )
            })?),
            None => None,
        };
        let world = read(&self.inner.world);
        let lower = after
            .as_deref()
            .map_or(Bound::Unbounded, Bound::Excluded::<&str>);
        let mut names = world.clusters.range::<str, _>((lower, Bound::Unbounded));
        let page: Vec<String> = names
            .by_ref()
            .take(self.page_size())
            .map(|(name, _)| name.clone())
            .collect();
        let more = names.next().is_some();
        let next_token = match page.last() {
            Some(last) if more => Some(encode_token(scope, last)),
            _ => None,
        };
        Ok(Page {
            items: page.iter().map(|name| cluster_arn(name)).collect(),
            next_token,
        })
    }

    fn check_batch(&self, op: Op, what: &str, n: usize, limit: usize) -> Result<(), ApiError> {
        if n > limit {
            return Err(self.reject(
                op,
                format!(
                    "InvalidParameterException: {what} cannot contain more than {limit} \
                     items ({n} given)"
                ),
            ));
        }
        if n == 0 {
            return Err(self.reject(
                op,
                format!("InvalidParameterException: {what} cannot be empty"),
            ));
        }
        Ok(())
    }
}

impl EcsApi for FakeEcs {
    async fn list_clusters(&self, next_token: Option<String>) -> Result<Page<String>, ApiError> {
        self.begin(Call {
            op: Op::ListClusters,
            n: 0,
            cluster: None,
            args: &[],
            next_token: next_token.as_deref(),
        })
        .await?;
        self.list_clusters_now(next_token.as_deref())
    }

    async fn list_tasks(
        &self,
        cluster: &str,
        next_token: Option<String>,
    ) -> Result<Page<String>, ApiError> {
        self.begin(Call {
            op: Op::ListTasks,
            n: 0,
            cluster: Some(cluster),
            args: &[],
            next_token: next_token.as_deref(),
        })
        .await?;
        let page = self.list_tasks_now(cluster, next_token.as_deref())?;
        let hooks: Vec<ListHook> = read(&self.inner.list_hooks).clone();
        for hook in hooks {
            hook(self, cluster, &page.items);
        }
        Ok(page)
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Described<EcsTask>, ApiError> {
        self.begin(Call {
            op: Op::DescribeTasks,
            n: 0,
            cluster: Some(cluster),
            args: arns,
            next_token: None,
        })
        .await?;
        self.check_batch(Op::DescribeTasks, "tasks", arns.len(), DESCRIBE_LIMIT)?;
        let world = read(&self.inner.world);
        let Some(c) = world.clusters.get(cluster_name(cluster)) else {
            return Err(cluster_not_found(Op::DescribeTasks));
        };
        let mut out = Described::default();
        for arn in arns {
            match c.tasks.get(arn) {
                Some(task) => out.items.push(task.clone()),
                None => out.failures.push(DescribeFailure {
                    arn: arn.clone(),
                    reason: "MISSING".to_string(),
                }),
            }
        }
        Ok(out)
    }

    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, ApiError> {
        let args = [arn.to_string()];
        *write(&self.inner.stats.task_definition_calls)
            .entry(arn.to_string())
            .or_default() += 1;
        self.begin(Call {
            op: Op::DescribeTaskDefinition,
            n: 0,
            cluster: None,
            args: &args,
            next_token: None,
        })
        .await?;
        read(&self.inner.world)
            .task_definitions
            .get(arn)
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    Op::DescribeTaskDefinition,
                    ApiErrorKind::Rejected,
                    "ClientException: Unable to describe task definition.",
                )
            })
    }

    async fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Described<ContainerInstance>, ApiError> {
        self.begin(Call {
            op: Op::DescribeContainerInstances,
            n: 0,
            cluster: Some(cluster),
            args: arns,
            next_token: None,
        })
        .await?;
        self.check_batch(
            Op::DescribeContainerInstances,
            "containerInstances",
            arns.len(),
            DESCRIBE_LIMIT,
        )?;
        let world = read(&self.inner.world);
        let Some(c) = world.clusters.get(cluster_name(cluster)) else {
            return Err(cluster_not_found(Op::DescribeContainerInstances));
        };
        let mut out = Described::default();
        for arn in arns {
            match c.container_instances.get(arn) {
                Some(ci) => out.items.push(ci.clone()),
                None => out.failures.push(DescribeFailure {
                    arn: arn.clone(),
                    reason: "MISSING".to_string(),
                }),
            }
        }
        Ok(out)
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Ec2Instance>, ApiError> {
        self.begin(Call {
            op: Op::DescribeInstances,
            n: 0,
            cluster: None,
            args: ids,
            next_token: None,
        })
        .await?;
        self.check_batch(
            Op::DescribeInstances,
            "InstanceIds",
            ids.len(),
            EC2_DESCRIBE_LIMIT,
        )?;
        let world = read(&self.inner.world);
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match world.instances.get(id) {
                Some(instance) => out.push(instance.clone()),
                // EC2 fails the whole call for an id it does not know.
                None => {
                    return Err(ApiError::new(
                        Op::DescribeInstances,
                        ApiErrorKind::Rejected,
                        format!(
                            "InvalidInstanceID.NotFound: The instance ID '{id}' does not exist"
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn cluster_not_found(op: Op) -> ApiError {
    ApiError::new(
        op,
        ApiErrorKind::Rejected,
        "ClusterNotFoundException: Cluster not found.",
    )
}

fn injected_message(op: Op, kind: ApiErrorKind) -> String {
    match (kind, op) {
        (ApiErrorKind::Throttled, Op::DescribeInstances) => {
            "RequestLimitExceeded: Request limit exceeded.".to_string()
        }
        (ApiErrorKind::Throttled, _) => "ThrottlingException: Rate exceeded".to_string(),
        (ApiErrorKind::Unavailable, _) => "ServerException: Service unavailable".to_string(),
        (ApiErrorKind::Rejected, _) => format!(
            "AccessDeniedException: not authorized to perform: ecs:{}",
            op.name()
        ),
    }
}

/// An opaque page token: the scope it is valid for and the last item returned, hex.
fn encode_token(scope: &str, last: &str) -> String {
    let payload = format!("{scope}\n{last}");
    let mut out = String::with_capacity(6 + payload.len() * 2);
    out.push_str("fake1.");
    for b in payload.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The last item of a token made for `scope`; `None` if it is not one.
fn decode_token(token: &str, scope: &str) -> Option<String> {
    let hex = token.strip_prefix("fake1.")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let payload = String::from_utf8(bytes).ok()?;
    let (s, last) = payload.split_once('\n')?;
    (s == scope).then(|| last.to_string())
}

/// SplitMix64: a bijection on u64, for ids that look random but are reproducible.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 32-hex-digit id (as ECS task ids), unique per `n`.
fn hex_id(n: u64) -> String {
    format!("{:016x}{:016x}", mix(n), n)
}

/// `127.<block>.x.y` for the `n`th address of a block (n ≥ 1).
fn numbered_ip(block: u8, n: u64) -> IpAddr {
    let [.., hi, mid, lo] = n.to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, block.wrapping_add(hi), mid, lo))
}

/// The dynamic host port of container `c` of the `slot`th task on an instance.
fn dynamic_port(slot: usize, c: usize) -> u16 {
    let offset = u16::try_from(slot * 2 + c).unwrap_or(u16::MAX - EPHEMERAL_PORT);
    EPHEMERAL_PORT.saturating_add(offset)
}

fn generated_definition(i: usize, mode: NetworkMode) -> TaskDefinition {
    let mut names = vec![("app", APP_PORT)];
    if i % 4 == 3 {
        names.push(("admin", ADMIN_PORT));
    }
    let containers = names
        .into_iter()
        .map(|(container, port)| {
            let name = format!("svc-{i}-{container}");
            let host_port = match mode {
                NetworkMode::Awsvpc | NetworkMode::Host => Some(port),
                NetworkMode::Bridge | NetworkMode::None => None,
            };
            ContainerDefinition {
                name: container.to_string(),
                labels: [
                    ("traefik.enable".to_string(), "true".to_string()),
                    (
                        format!("traefik.http.routers.{name}.rule"),
                        format!("Host(`{container}.svc-{i}.internal`)"),
                    ),
                    (format!("traefik.http.routers.{name}.service"), name.clone()),
                    (
                        format!("traefik.http.services.{name}.loadbalancer.server.scheme"),
                        "h2c".to_string(),
                    ),
                    (
                        format!("traefik.http.services.{name}.loadbalancer.server.port"),
                        port.to_string(),
                    ),
                ]
                .into_iter()
                .collect(),
                port_mappings: vec![PortMappingDef {
                    container_port: port,
                    host_port,
                }],
            }
        })
        .collect();
    TaskDefinition {
        arn: task_definition_arn(&format!("svc-{i}"), 1),
        network_mode: mode,
        containers,
    }
}

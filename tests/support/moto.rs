//! An ECS/EC2 emulator for the integration tests: moto's server, run by
//! `tests/moto/gantry_moto.py` on a free 127.0.0.1 port, with the real `aws-sdk-ecs` and
//! `aws-sdk-ec2` clients pointed at it.
//!
//! The wrapper patches moto so that tasks look like those of a real, steady cluster on
//! the loopback range: tasks stay RUNNING, every container is listed, bridge/host tasks
//! have `networkBindings` (dynamic host ports from 32768 upwards), awsvpc tasks have an
//! ENI with an address from 127.0.2.1 upwards, and EC2 instances added with
//! [`Moto::add_container_instance`] get addresses in 127.0.1.0/24. Tests can therefore
//! serve the backends gantry will dial on those very addresses. See the wrapper's
//! docstring for what exactly it changes.
//!
//! Python comes from `GANTRY_PYTHON` if set, else from `.venv/bin/python` at the crate
//! root, which `scripts/test.sh` creates from `tests/moto/requirements.txt`. Without
//! it, [`Moto::start`] panics: a missing emulator fails the tests, never skips them.
//!
//! All state lives in the moto process: [`Moto::kill`] loses it, and after
//! [`Moto::restart`] the emulator is empty (no clusters, tasks, VPC or instances).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{AttributeBooleanValue, InstanceType};
use aws_sdk_ecs::config::retry::RetryConfig;
use aws_sdk_ecs::config::timeout::TimeoutConfig;
use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ecs::error::DisplayErrorContext;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType,
    NetworkConfiguration, NetworkMode, PortMapping, TransportProtocol,
};
use aws_smithy_http_client::tls;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::sync::{Mutex, OnceCell};

/// How long the wrapper may take to answer `/_gantry/ready` after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long one request to a `/_gantry/` endpoint may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
const REGION: &str = "us-east-1";
/// The zone of the harness's subnet, so of its instances and awsvpc tasks.
pub const ZONE: &str = "us-east-1a";
/// moto accepts any AMI id; this one need not exist.
const AMI: &str = "ami-0123456789abcdef0";

/// One container of a task definition made by [`Moto::register_task_definition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    /// Its one port mapping's container port.
    pub container_port: u16,
    /// The mapping's host port: `None` (or `Some(0)`) for a dynamic one in bridge mode.
    pub host_port: Option<u16>,
    /// Its Docker labels (gantry's routing configuration).
    pub labels: Vec<(String, String)>,
}

impl ContainerSpec {
    /// A container without labels whose port has no fixed host port.
    pub fn new(name: &str, container_port: u16) -> ContainerSpec {
        ContainerSpec {
            name: name.to_string(),
            container_port,
            host_port: None,
            labels: Vec::new(),
        }
    }

    /// The same, with a static host port.
    pub fn host_port(mut self, port: u16) -> ContainerSpec {
        self.host_port = Some(port);
        self
    }

    /// The same, with one more Docker label.
    pub fn label(mut self, key: &str, value: &str) -> ContainerSpec {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }
}

/// The VPC made on first need: 127.0.0.0/16, subnet 127.0.1.0/24 in [`ZONE`].
#[derive(Debug, Clone)]
struct Network {
    subnet_id: String,
    security_group_id: String,
}

/// A running emulator; killed when dropped.
pub struct Moto {
    child: Option<Child>,
    port: u16,
    http: Client<HttpConnector, Full<Bytes>>,
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
    network: OnceCell<Network>,
    /// Network mode of each task definition registered here, so that `run_task` needs
    /// no DescribeTaskDefinition call (tests count those).
    network_modes: Mutex<HashMap<String, NetworkMode>>,
}

impl Moto {
    /// Starts the wrapper on a free 127.0.0.1 port with the venv's python and waits
    /// (deadline 30 s) for `/_gantry/ready`.
    ///
    /// Python: env `GANTRY_PYTHON` if set, else `<CARGO_MANIFEST_DIR>/.venv/bin/python`;
    /// if that is missing, this panics ("moto is not installed: run ./scripts/test.sh").
    pub async fn start() -> Moto {
        let port = free_port();
        let (ecs, ec2) = sdk_clients(port);
        let mut moto = Moto {
            child: None,
            port,
            http: Client::builder(TokioExecutor::new()).build_http(),
            ecs,
            ec2,
            network: OnceCell::new(),
            network_modes: Mutex::new(HashMap::new()),
        };
        moto.spawn(true).await;
        moto
    }

    /// `http://127.0.0.1:PORT`, for gantry's `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the emulator now (SIGKILL) and reaps it. Its state is lost; API calls fail
    /// with connection errors until [`Moto::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the emulator if it runs, and starts a new one on the same port. The new one
    /// is empty: no clusters, task definitions, tasks, VPC, instances, faults or call
    /// counts. The clients from [`Moto::ecs`]/[`Moto::ec2`] keep working.
    pub async fn restart(&mut self) {
        self.kill();
        self.network = OnceCell::new();
        self.network_modes.get_mut().clear();
        self.spawn(false).await;
    }

    /// An ECS client for the emulator: static credentials "test"/"test", region
    /// us-east-1, 3 attempts with 10-100 ms backoff, no instance metadata lookups.
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        self.ecs.clone()
    }

    /// An EC2 client configured like [`Moto::ecs`].
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        self.ec2.clone()
    }

    /// Creates a cluster; returns its ARN.
    pub async fn create_cluster(&self, name: &str) -> String {
        let out = self
            .ecs
            .create_cluster()
            .cluster_name(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateCluster {name}: {}", DisplayErrorContext(e)));
        out.cluster()
            .and_then(|c| c.cluster_arn())
            .expect("CreateCluster returned no ARN")
            .to_string()
    }

    /// Registers a task definition (a new revision if the family exists) whose
    /// containers each have 64 MiB, one TCP port mapping and their labels; returns its
    /// ARN. `network_mode` is "awsvpc", "bridge" or "host"; awsvpc definitions are
    /// Fargate-compatible.
    pub async fn register_task_definition(
        &self,
        family: &str,
        network_mode: &str,
        containers: &[ContainerSpec],
    ) -> String {
        let mode = match network_mode {
            "awsvpc" => NetworkMode::Awsvpc,
            "bridge" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            other => panic!("network mode {other:?}: use awsvpc, bridge or host"),
        };
        let mut request = self
            .ecs
            .register_task_definition()
            .family(family)
            .network_mode(mode.clone());
        if mode == NetworkMode::Awsvpc {
            request = request
                .requires_compatibilities(Compatibility::Fargate)
                .cpu("256")
                .memory("512");
        }
        for spec in containers {
            let mapping = PortMapping::builder()
                .container_port(i32::from(spec.container_port))
                .set_host_port(spec.host_port.map(i32::from))
                .protocol(TransportProtocol::Tcp)
                .build();
            let labels: HashMap<String, String> = spec.labels.iter().cloned().collect();
            let container = ContainerDefinition::builder()
                .name(&spec.name)
                .image("gantry-test:latest")
                .memory(64)
                .essential(true)
                .port_mappings(mapping)
                .set_docker_labels((!labels.is_empty()).then_some(labels))
                .build();
            request = request.container_definitions(container);
        }
        let out = request.send().await.unwrap_or_else(|e| {
            panic!(
                "RegisterTaskDefinition {family}: {}",
                DisplayErrorContext(e)
            )
        });
        let arn = out
            .task_definition()
            .and_then(|t| t.task_definition_arn())
            .expect("RegisterTaskDefinition returned no ARN")
            .to_string();
        self.network_modes.lock().await.insert(arn.clone(), mode);
        arn
    }

    /// Runs one task; returns its ARN. `group` is e.g. `Some("service:rg")` (ECS's group
    /// of a service's tasks); `None` gives ECS's default `family:<family>`.
    ///
    /// awsvpc tasks run as Fargate tasks in the harness's subnet (made on first need) and
    /// get the next loopback ENI address (127.0.2.1, 127.0.2.2, ...). bridge/host tasks
    /// run on a container instance of the cluster ([`Moto::add_container_instance`]
    /// first): moto places them on the first instance, in registration order, with
    /// enough CPU, memory and free static host ports.
    pub async fn run_task(
        &self,
        cluster: &str,
        task_definition: &str,
        group: Option<&str>,
    ) -> String {
        let mode = self.network_mode(task_definition).await;
        let mut request = self
            .ecs
            .run_task()
            .cluster(cluster)
            .task_definition(task_definition)
            .count(1)
            .set_group(group.map(str::to_string));
        if mode == NetworkMode::Awsvpc {
            let network = self.network().await;
            let vpc = AwsVpcConfiguration::builder()
                .subnets(&network.subnet_id)
                .security_groups(&network.security_group_id)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .expect("awsvpc configuration");
            request = request
                .launch_type(LaunchType::Fargate)
                .network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(vpc)
                        .build(),
                );
        } else {
            request = request.launch_type(LaunchType::Ec2);
        }
        let out = request.send().await.unwrap_or_else(|e| {
            panic!(
                "RunTask {task_definition} in {cluster} (bridge/host tasks need \
                 add_container_instance first): {}",
                DisplayErrorContext(e)
            )
        });
        match out.tasks().first().and_then(|t| t.task_arn()) {
            Some(arn) => arn.to_string(),
            None => panic!(
                "moto placed no task of {task_definition} in {cluster}: no container instance \
                 has enough CPU, memory or free static host ports (failures: {:?})",
                out.failures()
            ),
        }
    }

    /// Launches an EC2 instance in the harness's subnet 127.0.1.0/24 (VPC 127.0.0.0/16,
    /// made on first need), registers it as a container instance of `cluster`, and
    /// returns its private IP: a loopback address tests can serve on.
    pub async fn add_container_instance(&self, cluster: &str) -> IpAddr {
        let network = self.network().await;
        let out = self
            .ec2
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .subnet_id(&network.subnet_id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("RunInstances: {}", DisplayErrorContext(e)));
        let instance = out
            .instances()
            .first()
            .expect("RunInstances launched nothing");
        let id = instance.instance_id().expect("instance without id");
        let ip: IpAddr = instance
            .private_ip_address()
            .and_then(|ip| ip.parse().ok())
            .expect("instance without a private IP");
        assert!(
            ip.is_loopback(),
            "moto gave instance {id} the non-loopback IP {ip}"
        );
        let document = json!({
            "instanceId": id,
            "region": REGION,
            "availabilityZone": instance.placement().and_then(|p| p.availability_zone()),
            "privateIp": ip.to_string(),
        });
        self.ecs
            .register_container_instance()
            .cluster(cluster)
            .instance_identity_document(document.to_string())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "RegisterContainerInstance in {cluster}: {}",
                    DisplayErrorContext(e)
                )
            });
        ip
    }

    /// Stops a task as ECS's StopTask does: lastStatus and desiredStatus STOPPED, its
    /// host ports released. Stopping it again is a no-op.
    pub async fn stop_task(&self, cluster: &str, task_arn: &str) {
        self.ecs
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason("stopped by the test")
            .send()
            .await
            .unwrap_or_else(|e| panic!("StopTask {task_arn}: {}", DisplayErrorContext(e)));
    }

    /// Changes a task in place (`POST /_gantry/task`). `patch` is an object with any of
    /// `"health"` (HEALTHY, UNHEALTHY, UNKNOWN; containers follow), `"lastStatus"`,
    /// `"desiredStatus"`, `"availabilityZone"`, e.g. `json!({"health": "UNHEALTHY"})`.
    pub async fn set_task(&self, task_arn: &str, patch: Value) {
        let Value::Object(mut body) = patch else {
            panic!("set_task: the patch must be a JSON object, got {patch}");
        };
        body.insert("task".to_string(), Value::String(task_arn.to_string()));
        self.control_ok(Method::POST, "/_gantry/task", Some(Value::Object(body)))
            .await;
    }

    /// Makes the next `count` calls of `operation` ("DescribeTasks", "DescribeInstances",
    /// ..., or "*" for any) fail (`POST /_gantry/fault`). `kind` "throttle": ECS answers
    /// 400 ThrottlingException, EC2 503 RequestLimitExceeded; "500": ECS 500
    /// ServerException, EC2 500 InternalError. The SDK retries both, so one failing SDK
    /// call takes 3 injected faults. A new fault for the same operation replaces the
    /// pending one; `count` 0 clears it.
    pub async fn fault(&self, operation: &str, count: u32, kind: &str) {
        let body = json!({"operation": operation, "count": count, "kind": kind});
        self.control_ok(Method::POST, "/_gantry/fault", Some(body))
            .await;
    }

    /// ECS and EC2 calls received since the start or the last reset, by operation name
    /// (e.g. "ListTasks"), failed (injected) ones and retries included.
    pub async fn calls(&self) -> BTreeMap<String, u64> {
        let body = self.control_ok(Method::GET, "/_gantry/calls", None).await;
        serde_json::from_slice(&body).expect("/_gantry/calls answered no count map")
    }

    /// Sets all call counts back to zero.
    pub async fn reset_calls(&self) {
        self.control_ok(Method::POST, "/_gantry/calls/reset", None)
            .await;
    }

    /// The task as DescribeTasks shows it (for its IP, bindings, statuses).
    pub async fn describe(&self, cluster: &str, task_arn: &str) -> aws_sdk_ecs::types::Task {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DescribeTasks {task_arn}: {}", DisplayErrorContext(e)));
        match out.tasks().first() {
            Some(task) => task.clone(),
            None => panic!("no task {task_arn} in {cluster}: {:?}", out.failures()),
        }
    }

    /// Spawns the wrapper on `self.port` and waits until it is ready. A wrapper that
    /// exits before (its port taken meanwhile) is spawned again until the deadline: on a
    /// new port if `may_move`, else on the same one (free again shortly after a kill).
    async fn spawn(&mut self, may_move: bool) {
        let python = python();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto/gantry_moto.py");
        assert!(script.exists(), "{} is missing", script.display());
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let mut child = Command::new(&python)
                .arg(&script)
                .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                .arg("--exit-with-parent")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
            let exited = loop {
                if let Some(status) = child.try_wait().expect("waiting for gantry_moto.py") {
                    break Some(status);
                }
                if self.ready(child.id()).await {
                    break None;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "gantry_moto.py was not ready on port {} within {START_DEADLINE:?}",
                        self.port
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let Some(status) = exited else {
                self.child = Some(child);
                return;
            };
            if Instant::now() + Duration::from_millis(200) >= deadline {
                panic!("gantry_moto.py exited with {status} (its stderr is above)");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if may_move {
                self.port = free_port();
                (self.ecs, self.ec2) = sdk_clients(self.port);
            }
        }
    }

    /// Whether the wrapper with process id `pid` answers `/_gantry/ready` (the pid tells
    /// it from another test's wrapper that got the port first).
    async fn ready(&self, pid: u32) -> bool {
        match self.control(Method::GET, "/_gantry/ready", None).await {
            Ok((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body)
                .is_ok_and(|v| v["pid"].as_u64() == Some(u64::from(pid))),
            _ => false,
        }
    }

    /// The network mode of a task definition: remembered from registration, else asked.
    async fn network_mode(&self, task_definition: &str) -> NetworkMode {
        if let Some(mode) = self.network_modes.lock().await.get(task_definition) {
            return mode.clone();
        }
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "DescribeTaskDefinition {task_definition}: {}",
                    DisplayErrorContext(e)
                )
            });
        out.task_definition()
            .and_then(|t| t.network_mode())
            .cloned()
            .unwrap_or(NetworkMode::Bridge)
    }

    /// The harness's VPC, subnet and security group, made on first need.
    async fn network(&self) -> Network {
        self.network
            .get_or_init(|| async {
                let fail = |what: &str, e: String| -> ! { panic!("{what}: {e}") };
                let vpc = self
                    .ec2
                    .create_vpc()
                    .cidr_block("127.0.0.0/16")
                    .send()
                    .await
                    .unwrap_or_else(|e| fail("CreateVpc", DisplayErrorContext(e).to_string()));
                let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("VPC without id");
                // moto's awsvpc tasks need DNS hostnames in their VPC.
                self.ec2
                    .modify_vpc_attribute()
                    .vpc_id(vpc_id)
                    .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        fail("ModifyVpcAttribute", DisplayErrorContext(e).to_string())
                    });
                let subnet = self
                    .ec2
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block("127.0.1.0/24")
                    .availability_zone(ZONE)
                    .send()
                    .await
                    .unwrap_or_else(|e| fail("CreateSubnet", DisplayErrorContext(e).to_string()));
                let group = self
                    .ec2
                    .create_security_group()
                    .group_name("gantry-tests")
                    .description("gantry integration tests")
                    .vpc_id(vpc_id)
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        fail("CreateSecurityGroup", DisplayErrorContext(e).to_string())
                    });
                Network {
                    subnet_id: subnet
                        .subnet()
                        .and_then(|s| s.subnet_id())
                        .expect("subnet without id")
                        .to_string(),
                    security_group_id: group.group_id().expect("group without id").to_string(),
                }
            })
            .await
            .clone()
    }

    /// A request to a `/_gantry/` endpoint that must succeed; returns the body.
    async fn control_ok(&self, method: Method, path: &str, body: Option<Value>) -> Bytes {
        match self.control(method.clone(), path, body).await {
            Ok((StatusCode::OK, body)) => body,
            Ok((status, body)) => panic!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes), String> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.endpoint()))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(CONTROL_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CONTROL_TIMEOUT:?}")))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill()
    }
}

/// The venv's python (or `GANTRY_PYTHON`); panics with the fix if there is none.
fn python() -> PathBuf {
    let python = match std::env::var_os("GANTRY_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    if !python.exists() {
        panic!(
            "moto is not installed: run ./scripts/test.sh (it creates .venv) \
             [no {}]",
            python.display()
        );
    }
    python
}

/// A port free on 127.0.0.1 right now (the OS's pick; released before the wrapper binds).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port on 127.0.0.1")
        .port()
}

/// ECS and EC2 clients for the emulator on `port`, built without the default provider chains (no
/// environment, profile or instance metadata lookups).
fn sdk_clients(port: u16) -> (aws_sdk_ecs::Client, aws_sdk_ec2::Client) {
    let endpoint = format!("http://127.0.0.1:{port}");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let credentials = Credentials::new("test", "test", None, None, "moto");
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(100));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(10))
        .build();
    let ecs = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials.clone())
        .endpoint_url(&endpoint)
        .http_client(http.clone())
        .retry_config(retry.clone())
        .timeout_config(timeout.clone())
        .build();
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeout)
        .build();
    (
        aws_sdk_ecs::Client::from_conf(ecs),
        aws_sdk_ec2::Client::from_conf(ec2),
    )
}

//! What the ECS provider reads from AWS, as plain data.
//!
//! The SDK's types stay in `sdk.rs`; everything else (the refresh logic, the
//! in-process fake used by tests and benchmarks) speaks these. Only the fields gantry
//! uses are kept.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One page of a paginated list call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last one.
    pub next_token: Option<String>,
}

/// A task, from DescribeTasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsTask {
    pub arn: String,
    pub task_definition_arn: String,
    /// `service:<name>` for tasks of a service, `family:<name>` otherwise.
    pub group: Option<String>,
    /// PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, …
    pub last_status: String,
    pub desired_status: String,
    /// HEALTHY, UNHEALTHY or UNKNOWN (tasks with container health checks).
    pub health_status: Option<String>,
    pub availability_zone: Option<String>,
    /// EC2 or EXTERNAL tasks run on a container instance; Fargate tasks do not.
    pub container_instance_arn: Option<String>,
    /// The private IPv4 of the task's ENI (awsvpc), from its attachments.
    pub eni_private_ip: Option<IpAddr>,
    pub containers: Vec<EcsContainer>,
}

/// A running container of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsContainer {
    pub name: String,
    pub last_status: Option<String>,
    pub health_status: Option<String>,
    /// Bridge and host mode: container port → host port.
    pub network_bindings: Vec<NetworkBinding>,
    /// awsvpc: the container's interface address (same as the task's ENI).
    pub private_ip: Option<IpAddr>,
}

/// A published port of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkBinding {
    pub container_port: u16,
    pub host_port: u16,
}

/// How a task definition's containers are networked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// Every task has its own ENI (Fargate always).
    #[default]
    Awsvpc,
    /// Docker bridge on an EC2 instance: ports published on the host.
    Bridge,
    /// The instance's network stack: container port = host port.
    Host,
    /// No networking: nothing to route to.
    None,
}

/// A task definition (immutable once registered, so cached by ARN for good).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDefinition {
    pub arn: String,
    pub network_mode: NetworkMode,
    pub containers: Vec<ContainerDefinition>,
}

/// A container of a task definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDefinition {
    pub name: String,
    /// Docker labels: where routing configuration lives.
    pub labels: BTreeMap<String, String>,
    pub port_mappings: Vec<PortMappingDef>,
}

/// A port mapping of a container definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortMappingDef {
    pub container_port: u16,
    /// A static host port (bridge mode); `None` or 0 means dynamic.
    pub host_port: Option<u16>,
}

/// A container instance (an EC2 host registered in a cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInstance {
    pub arn: String,
    pub ec2_instance_id: Option<String>,
}

/// An EC2 instance, from DescribeInstances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ec2Instance {
    pub id: String,
    pub private_ip: Option<IpAddr>,
}

/// An ARN a Describe call could not describe (`MISSING` and the like).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeFailure {
    pub arn: String,
    pub reason: String,
}

/// Items described, and the ones that could not be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Described<T> {
    pub items: Vec<T>,
    pub failures: Vec<DescribeFailure>,
}

//! The seam between the ECS provider and AWS: one method per API call it makes.
//!
//! `sdk.rs` implements it with the real AWS SDK; `fake.rs` in memory, for what no
//! emulator can do (paging, 100-ARN limits, `MISSING` failures, throttling storms,
//! 5,000-task clusters) and for counting calls.

use std::future::Future;
use std::time::Duration;

use super::model::{ContainerInstance, Described, Ec2Instance, EcsTask, Page, TaskDefinition};

/// The most ARNs DescribeTasks and DescribeContainerInstances accept in one call.
pub const DESCRIBE_LIMIT: usize = 100;
/// The most instance ids gantry puts in one EC2 DescribeInstances call.
pub const EC2_DESCRIBE_LIMIT: usize = 100;

/// The ECS (and EC2) calls the provider makes.
pub trait EcsApi: Send + Sync + 'static {
    /// ListClusters: cluster ARNs, one page.
    fn list_clusters(
        &self,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, ApiError>> + Send;

    /// ListTasks with `desiredStatus=RUNNING`: task ARNs of a cluster, one page.
    fn list_tasks(
        &self,
        cluster: &str,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<Page<String>, ApiError>> + Send;

    /// DescribeTasks for at most [`DESCRIBE_LIMIT`] ARNs.
    fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<Described<EcsTask>, ApiError>> + Send;

    /// DescribeTaskDefinition.
    fn describe_task_definition(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<TaskDefinition, ApiError>> + Send;

    /// DescribeContainerInstances for at most [`DESCRIBE_LIMIT`] ARNs.
    fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> impl Future<Output = Result<Described<ContainerInstance>, ApiError>> + Send;

    /// EC2 DescribeInstances for at most [`EC2_DESCRIBE_LIMIT`] ids.
    fn describe_instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Ec2Instance>, ApiError>> + Send;
}

/// The API calls, for counting and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    ListClusters,
    ListTasks,
    DescribeTasks,
    DescribeTaskDefinition,
    DescribeContainerInstances,
    DescribeInstances,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::ListClusters,
        Op::ListTasks,
        Op::DescribeTasks,
        Op::DescribeTaskDefinition,
        Op::DescribeContainerInstances,
        Op::DescribeInstances,
    ];

    /// The AWS operation name.
    pub fn name(self) -> &'static str {
        match self {
            Op::ListClusters => "ListClusters",
            Op::ListTasks => "ListTasks",
            Op::DescribeTasks => "DescribeTasks",
            Op::DescribeTaskDefinition => "DescribeTaskDefinition",
            Op::DescribeContainerInstances => "DescribeContainerInstances",
            Op::DescribeInstances => "DescribeInstances",
        }
    }
}

/// What kind of failure an API call had: it decides how the provider backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// `ThrottlingException`, "Rate exceeded": back off harder.
    Throttled,
    /// A 5xx, a timeout, or no connection: AWS (or the network) had a bad minute.
    Unavailable,
    /// Credentials, permissions, a bad request: will not fix itself soon.
    Rejected,
}

impl ApiErrorKind {
    /// For metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            ApiErrorKind::Throttled => "throttled",
            ApiErrorKind::Unavailable => "unavailable",
            ApiErrorKind::Rejected => "rejected",
        }
    }
}

/// A failed API call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} failed: {message}", op.name())]
pub struct ApiError {
    pub op: Op,
    pub kind: ApiErrorKind,
    pub message: String,
    /// A delay the service asked for, if any.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(op: Op, kind: ApiErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            op,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

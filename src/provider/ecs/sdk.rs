//! [`EcsApi`] over the real AWS SDK (`aws-sdk-ecs`, `aws-sdk-ec2`).
//!
//! Slim features: one hyper, rustls with ring, no aws-lc. Region and credentials come
//! from the SDK's default chain (environment, profile, ECS task role, instance
//! metadata) unless the configuration names them; `endpoint_url` points both clients
//! at an emulator. The SDK retries throttling and 5xx itself (standard mode, 3
//! attempts); the provider backs off between refreshes on top of that.

use std::net::IpAddr;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types::{DesiredStatus, NetworkMode as SdkNetworkMode};
use aws_smithy_http_client::tls;

use super::api::{ApiError, ApiErrorKind, EcsApi, Op};
use super::model::{
    ContainerDefinition, ContainerInstance, DescribeFailure, Described, Ec2Instance, EcsContainer,
    EcsTask, NetworkBinding, NetworkMode, Page, PortMappingDef, TaskDefinition,
};
use crate::config::EcsProviderConfig;

/// ECS and EC2 clients sharing one SDK configuration.
#[derive(Debug, Clone)]
pub struct SdkApi {
    ecs: aws_sdk_ecs::Client,
    ec2: aws_sdk_ec2::Client,
}

impl SdkApi {
    /// Builds the clients from `[providers.ecs]` and the SDK's default chain.
    pub async fn from_config(config: &EcsProviderConfig) -> SdkApi {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(creds) = &config.credentials {
            loader = loader.credentials_provider(aws_sdk_ecs::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                None,
                None,
                "gantry-config",
            ));
        }
        let shared = loader.load().await;
        SdkApi {
            ecs: aws_sdk_ecs::Client::new(&shared),
            ec2: aws_sdk_ec2::Client::new(&shared),
        }
    }
}

/// Classifies an SDK error: throttling, unavailable (5xx, timeouts, no connection)
/// or rejected (anything the caller must fix).
fn api_error<E>(op: Op, err: SdkError<E>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let status = service.raw().status().as_u16();
            let kind = match code {
                "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled" => ApiErrorKind::Throttled,
                _ if status == 429 => ApiErrorKind::Throttled,
                _ if status >= 500 => ApiErrorKind::Unavailable,
                _ => ApiErrorKind::Rejected,
            };
            let message = e.message().unwrap_or("no message");
            ApiError::new(op, kind, format!("{code} (HTTP {status}): {message}"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            ApiError::new(
                op,
                ApiErrorKind::Unavailable,
                DisplayErrorContext(&err).to_string(),
            )
        }
        _ => ApiError::new(
            op,
            ApiErrorKind::Rejected,
            DisplayErrorContext(&err).to_string(),
        ),
    }
}

fn ip(s: Option<&str>) -> Option<IpAddr> {
    s.and_then(|s| s.parse().ok())
}

fn port(p: Option<i32>) -> Option<u16> {
    p.and_then(|p| u16::try_from(p).ok())
}

fn task_of(t: &aws_sdk_ecs::types::Task) -> EcsTask {
    // awsvpc tasks carry their ENI as an attachment with the address in its details.
    let eni_private_ip = t
        .attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| ip(d.value()));
    EcsTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        task_definition_arn: t.task_definition_arn().unwrap_or_default().to_string(),
        group: t.group().map(str::to_string),
        last_status: t.last_status().unwrap_or_default().to_string(),
        desired_status: t.desired_status().unwrap_or_default().to_string(),
        health_status: t.health_status().map(|h| h.as_str().to_string()),
        availability_zone: t.availability_zone().map(str::to_string),
        container_instance_arn: t.container_instance_arn().map(str::to_string),
        eni_private_ip,
        containers: t
            .containers()
            .iter()
            .map(|c| EcsContainer {
                name: c.name().unwrap_or_default().to_string(),
                last_status: c.last_status().map(str::to_string),
                health_status: c.health_status().map(|h| h.as_str().to_string()),
                network_bindings: c
                    .network_bindings()
                    .iter()
                    .filter_map(|b| {
                        Some(NetworkBinding {
                            container_port: port(b.container_port())?,
                            host_port: port(b.host_port())?,
                        })
                    })
                    .collect(),
                private_ip: c
                    .network_interfaces()
                    .iter()
                    .find_map(|n| ip(n.private_ipv4_address())),
            })
            .collect(),
    }
}

fn failures_of(failures: &[aws_sdk_ecs::types::Failure]) -> Vec<DescribeFailure> {
    failures
        .iter()
        .map(|f| DescribeFailure {
            arn: f.arn().unwrap_or_default().to_string(),
            reason: f.reason().unwrap_or_default().to_string(),
        })
        .collect()
}

impl EcsApi for SdkApi {
    async fn list_clusters(&self, next_token: Option<String>) -> Result<Page<String>, ApiError> {
        let out = self
            .ecs
            .list_clusters()
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| api_error(Op::ListClusters, e))?;
        Ok(Page {
            items: out.cluster_arns().to_vec(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn list_tasks(
        &self,
        cluster: &str,
        next_token: Option<String>,
    ) -> Result<Page<String>, ApiError> {
        let out = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(DesiredStatus::Running)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| api_error(Op::ListTasks, e))?;
        Ok(Page {
            items: out.task_arns().to_vec(),
            next_token: out.next_token().map(str::to_string),
        })
    }

    async fn describe_tasks(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Described<EcsTask>, ApiError> {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| api_error(Op::DescribeTasks, e))?;
        Ok(Described {
            items: out.tasks().iter().map(task_of).collect(),
            failures: failures_of(out.failures()),
        })
    }

    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, ApiError> {
        let out = self
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| api_error(Op::DescribeTaskDefinition, e))?;
        let Some(def) = out.task_definition() else {
            return Err(ApiError::new(
                Op::DescribeTaskDefinition,
                ApiErrorKind::Unavailable,
                format!("the response for {arn} has no task definition"),
            ));
        };
        let network_mode = match def.network_mode() {
            Some(SdkNetworkMode::Awsvpc) => NetworkMode::Awsvpc,
            Some(SdkNetworkMode::Host) => NetworkMode::Host,
            Some(SdkNetworkMode::None) => NetworkMode::None,
            // ECS's default on EC2 (Linux) is bridge; Fargate always says awsvpc.
            _ => NetworkMode::Bridge,
        };
        Ok(TaskDefinition {
            arn: def.task_definition_arn().unwrap_or(arn).to_string(),
            network_mode,
            containers: def
                .container_definitions()
                .iter()
                .map(|c| ContainerDefinition {
                    name: c.name().unwrap_or_default().to_string(),
                    labels: c
                        .docker_labels()
                        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                    port_mappings: c
                        .port_mappings()
                        .iter()
                        .filter_map(|p| {
                            Some(PortMappingDef {
                                container_port: port(p.container_port())?,
                                host_port: port(p.host_port()).filter(|h| *h != 0),
                            })
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    async fn describe_container_instances(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Described<ContainerInstance>, ApiError> {
        let out = self
            .ecs
            .describe_container_instances()
            .cluster(cluster)
            .set_container_instances(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| api_error(Op::DescribeContainerInstances, e))?;
        Ok(Described {
            items: out
                .container_instances()
                .iter()
                .map(|ci| ContainerInstance {
                    arn: ci.container_instance_arn().unwrap_or_default().to_string(),
                    ec2_instance_id: ci.ec2_instance_id().map(str::to_string),
                })
                .collect(),
            failures: failures_of(out.failures()),
        })
    }

    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Ec2Instance>, ApiError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| api_error(Op::DescribeInstances, e))?;
            for reservation in out.reservations() {
                for i in reservation.instances() {
                    found.push(Ec2Instance {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        private_ip: ip(i.private_ip_address()),
                    });
                }
            }
            next = out.next_token().map(str::to_string);
            if next.is_none() {
                return Ok(found);
            }
        }
    }
}

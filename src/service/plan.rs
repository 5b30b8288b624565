//! The plan of a service rollout: what to register and whether to update
//! the service, decided from read-only lookups before anything changes.
//!
//! [`read_service`] makes the read-only calls (DescribeClusters,
//! DescribeServices, DescribeTaskDefinition) and returns a [`ServiceView`];
//! [`decide_service`] is pure: the view and the options give exactly one
//! [`ServicePlan`], or the bad inputs that forbid it. A misspelt
//! `container-name`, a missing cluster or service, a task definition ECS
//! would refuse: all are found here, before the first change.

use serde_json::Value;

use super::codedeploy::{
    BlueGreenService, CodeDeployOptions, CodeDeployPlan, CodeDeployView, decide_codedeploy,
    default_names, read_codedeploy,
};
use super::register::{as_registered, describe_task_definition, registration_request};
use super::strategy::{ServiceWaitUntil, StrategySettings, merge_configuration};
use super::task::{
    OneOffTaskOptions, OneOffTaskPlan, ServiceLaunch, check_launch_volume, decide_one_off_task,
};
use super::watch::{EcsClients, describe_service, is_active_cluster, short_task_definition};
use crate::refusal::{Refusal, Refusals, Setting};
use crate::taskdef::render::{
    RenderRequest, RenderedTaskDefinition, is_same_task_definition, render_task_definition,
};

/// Where the task definition to render comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskDefinitionOrigin {
    /// A file, already read and parsed; `source` is its path for messages.
    Document { document: Value, source: String },
    /// A registered revision: an ARN, `family:revision` or a family.
    Registered(String),
}

/// What the rollout is asked to do: the capability's own options, built from
/// the inputs by the job's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutOptions {
    pub origin: TaskDefinitionOrigin,
    pub cluster: String,
    /// `None`: register the task definition only.
    pub service: Option<String>,
    /// What to change in the task definition: images by container (from
    /// `container-name` + `image`, and `images`), and what the render
    /// inputs set on the named containers and the task.
    pub render: RenderRequest,
    pub desired_count: Option<i32>,
    pub force_new_deployment: bool,
    pub service_settings: ServiceSettings,
    pub wait_for_stability: bool,
    pub wait_timeout: std::time::Duration,
    /// `run-task`: a one-off task from the new revision before the update.
    pub one_off_task: Option<OneOffTaskOptions>,
    /// How a service whose deployment controller is CODE_DEPLOY is deployed.
    pub codedeploy: CodeDeployOptions,
    /// The `codedeploy-*` inputs given: refused for an ECS-controlled service.
    pub codedeploy_inputs_given: Vec<Setting>,
    /// `wait-until`, when given.
    pub wait_until: Option<ServiceWaitUntil>,
    /// `deployment-strategy` and its settings.
    pub strategy: StrategySettings,
}

/// Service settings UpdateService carries beside the task definition, with
/// amazon-ecs-deploy-task-definition's input names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceSettings {
    /// `enable-ecs-managed-tags`.
    pub enable_ecs_managed_tags: Option<bool>,
    /// `propagate-tags`: `TASK_DEFINITION`, `SERVICE` or `NONE`.
    pub propagate_tags: Option<String>,
    /// `wait-max-delay-seconds`: the longest pause between two looks at
    /// the rollout.
    pub max_poll_delay: Option<std::time::Duration>,
    /// `service-managed-ebs-volume-name` + `service-managed-ebs-volume`.
    pub managed_ebs_volume: Option<aws_sdk_ecs::types::ServiceVolumeConfiguration>,
}

impl ServiceSettings {
    /// Whether a setting UpdateService carries was given.
    pub fn changes_service(&self) -> bool {
        self.enable_ecs_managed_tags.is_some()
            || self.propagate_tags.is_some()
            || self.managed_ebs_volume.is_some()
    }
}

/// What may not exist yet because an earlier step of the same job (the
/// stack) creates it; a missing one is then looked at again after that step
/// instead of being refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedEarlier {
    pub cluster: bool,
    pub service: bool,
    pub task_definition: bool,
}

/// The service as the plan found it.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentService {
    /// The task definition the service runs now.
    pub task_definition: Option<String>,
    /// That revision as registered (wire JSON), to compare with ours.
    pub task_definition_document: Option<Value>,
    /// Where its tasks run, for a one-off task run like them.
    pub launch: ServiceLaunch,
    /// `deploymentController.type`: `ECS` (also when absent),
    /// `CODE_DEPLOY` or `EXTERNAL`.
    pub controller: String,
    /// Its load balancers' containers and ports, for a generated appspec.
    pub load_balancers: Vec<(String, i32)>,
    /// Its deployment configuration (strategy, bake time, circuit breaker).
    pub deployment_configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
    /// Its load balancers' target groups, for verification.
    pub targets: Vec<super::verify::ServiceTarget>,
}

/// What the read-only calls found.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub cluster_active: bool,
    /// `None`: no `service` was asked for, or it does not exist.
    pub service: Option<CurrentService>,
    /// The registered task definition to render from (DescribeTaskDefinition
    /// output), for a [`TaskDefinitionOrigin::Registered`]; `None` when it
    /// does not exist.
    pub registered_origin: Option<Value>,
    /// The deployment group and config of a CODE_DEPLOY service.
    pub codedeploy: Option<CodeDeployView>,
}

/// Whether a new revision is registered.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// Register the rendered definition as a new revision.
    New,
    /// The rendered definition equals the service's current revision:
    /// registering it again would only churn revisions.
    Unchanged { current: String },
}

/// What the rollout will do, decided before anything changes.
#[derive(Debug, Clone, PartialEq)]
pub enum ServicePlan {
    /// Everything is known: render, maybe register, maybe update.
    Ready(Box<ReadyRollout>),
    /// Something the stack step creates is missing now: the rollout is read
    /// and decided again once the stack is applied. What could be checked
    /// (the file, the images, the rendering of a file) was checked.
    AfterStack { waiting_for: Vec<&'static str> },
}

/// A rollout whose every step is known.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyRollout {
    pub cluster: String,
    pub service: Option<String>,
    pub source: String,
    pub rendered: RenderedTaskDefinition,
    pub registration: Registration,
    /// Whether UpdateService is called: a new revision, a forced
    /// deployment or a new desired count.
    pub updates_service: bool,
    pub desired_count: Option<i32>,
    pub force_new_deployment: bool,
    pub service_settings: ServiceSettings,
    pub wait_for_stability: bool,
    pub wait_timeout: std::time::Duration,
    /// Run before the service is updated.
    pub one_off_task: Option<OneOffTaskPlan>,
    /// A CODE_DEPLOY service is deployed by CodeDeploy, not UpdateService.
    pub codedeploy: Option<CodeDeployPlan>,
    /// What the service ran before: what a doomed rollout is rolled back to.
    pub previous_task_definition: Option<String>,
    /// The service's launch type and target groups, for verification.
    pub launch_type: Option<String>,
    pub targets: Vec<super::verify::ServiceTarget>,
    /// The service's awsvpc subnets and security groups, for verification.
    pub network: Option<aws_sdk_ecs::types::AwsVpcConfiguration>,
    /// The deployment strategy the update runs with (ROLLING, BLUE_GREEN,
    /// LINEAR, CANARY): all but ROLLING are followed as service
    /// deployments.
    pub strategy: String,
    /// Sent with UpdateService: the service's configuration with the given
    /// strategy settings merged in.
    pub deployment_configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
    pub wait_until: ServiceWaitUntil,
}

/// Reads what the rollout depends on, read-only.
pub async fn read_service(
    clients: &EcsClients,
    options: &RolloutOptions,
) -> anyhow::Result<ServiceView> {
    let mut view = ServiceView {
        cluster_active: true,
        service: None,
        registered_origin: None,
        codedeploy: None,
    };
    if let Some(name) = &options.service {
        view.cluster_active = is_active_cluster(&clients.ecs, &options.cluster).await?;
        if view.cluster_active
            && let Some(found) = describe_service(&clients.ecs, &options.cluster, name).await?
        {
            let task_definition = found.task_definition().map(str::to_string);
            let document = match &task_definition {
                Some(current) => describe_task_definition(&clients.ecs, current)
                    .await
                    .map(|(document, _)| Some(document))?,
                None => None,
            };
            let network = found
                .network_configuration()
                .and_then(|n| n.awsvpc_configuration())
                .cloned();
            view.service = Some(CurrentService {
                task_definition,
                task_definition_document: document,
                launch: ServiceLaunch {
                    network,
                    launch_type: found.launch_type().cloned(),
                    capacity_provider_strategy: found.capacity_provider_strategy().to_vec(),
                    platform_version: found.platform_version().map(str::to_string),
                },
                controller: found
                    .deployment_controller()
                    .map_or("ECS", |c| c.r#type().as_str())
                    .to_string(),
                load_balancers: found
                    .load_balancers()
                    .iter()
                    .filter_map(|lb| Some((lb.container_name()?.to_string(), lb.container_port()?)))
                    .collect(),
                deployment_configuration: found.deployment_configuration().cloned(),
                targets: found
                    .load_balancers()
                    .iter()
                    .filter_map(|lb| {
                        Some(super::verify::ServiceTarget {
                            target_group_arn: lb.target_group_arn()?.to_string(),
                            container: lb.container_name()?.to_string(),
                            port: lb.container_port()?,
                        })
                    })
                    .collect(),
            });
            if found
                .deployment_controller()
                .is_some_and(|c| c.r#type().as_str() == "CODE_DEPLOY")
            {
                let asked = &options.codedeploy;
                let (application, group) = default_names(&options.cluster, name);
                view.codedeploy = Some(
                    read_codedeploy(
                        &clients.codedeploy,
                        asked.application.as_deref().unwrap_or(&application),
                        asked.deployment_group.as_deref().unwrap_or(&group),
                        asked.deployment_config.as_deref(),
                    )
                    .await?,
                );
            }
        }
    }
    if let TaskDefinitionOrigin::Registered(reference) = &options.origin {
        view.registered_origin = match describe_task_definition(&clients.ecs, reference).await {
            Ok((document, tags)) => {
                let mut wrapped = serde_json::json!({ "taskDefinition": document });
                if let Some(tags) = tags {
                    wrapped["tags"] = tags;
                }
                Some(wrapped)
            }
            Err(error) if is_missing_task_definition(&error) => None,
            Err(error) => return Err(error),
        };
    }
    Ok(view)
}

/// Whether DescribeTaskDefinition said the revision does not exist (ECS
/// answers a ClientException whose message says so; there is no
/// dedicated code, so the message is matched here and only here).
fn is_missing_task_definition(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("ClientException")
        && (text.contains("Unable to describe task definition")
            || text.contains("does not exist")
            || text.contains("not found"))
}

/// Decides the rollout from the options and what was read (pure).
pub fn decide_service(
    options: &RolloutOptions,
    view: &ServiceView,
    created_earlier: CreatedEarlier,
) -> Result<ServicePlan, Refusals> {
    let mut waiting_for = Vec::new();
    let mut errors = Vec::new();
    if options.service.is_some() && !view.cluster_active {
        if created_earlier.cluster {
            waiting_for.push("cluster");
        } else {
            errors.push(Refusal::new(
                Setting::Cluster,
                &options.cluster,
                "is not an active ECS cluster in this account and region",
                "give the name or ARN of the service's cluster (it defaults to `default`)",
            ));
        }
    }
    if let Some(name) = &options.service
        && view.cluster_active
        && view.service.is_none()
    {
        if created_earlier.service {
            waiting_for.push("service");
        } else {
            errors.push(Refusal::new(
                Setting::Service,
                name,
                format!("is not an active service in cluster `{}`", options.cluster),
                "check `service` and `cluster` (the cluster defaults to `default`)",
            ));
        }
    }
    let origin = match &options.origin {
        TaskDefinitionOrigin::Document { document, source } => {
            Some((document.clone(), source.clone()))
        }
        TaskDefinitionOrigin::Registered(reference) => match &view.registered_origin {
            Some(document) => Some((document.clone(), reference.clone())),
            None if created_earlier.task_definition => {
                waiting_for.push("task definition");
                None
            }
            None => {
                errors.push(Refusal::new(
                    Setting::TaskDefinition,
                    reference,
                    "is not a registered task definition in this account and region",
                    "give a task definition file, or the ARN, `family:revision` or family of a registered one",
                ));
                None
            }
        },
    };
    // Rendering a file does not depend on AWS: its mistakes are refused
    // even when the rest must wait for the stack.
    let rendered = match origin.map(|(document, source)| render(options, document, &source)) {
        Some(Ok(rendered)) => Some(rendered),
        Some(Err(error)) => {
            errors.push(error);
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(Refusals(errors));
    }
    if !waiting_for.is_empty() {
        return Ok(ServicePlan::AfterStack { waiting_for });
    }
    let Some((rendered, source, wanted)) = rendered else {
        return Ok(ServicePlan::AfterStack {
            waiting_for: vec!["task definition"],
        });
    };
    let current = view.service.as_ref();
    let mut refusals = Vec::new();
    if let Some(volume) = &options.service_settings.managed_ebs_volume {
        check_launch_volume(
            &rendered.task_definition,
            volume.name(),
            Setting::ServiceManagedEbsVolume,
            &mut refusals,
        );
    }
    let one_off_task = match &options.one_off_task {
        Some(task) => match decide_one_off_task(
            task,
            &options.cluster,
            &rendered.task_definition,
            current.map(|service| &service.launch),
        ) {
            Ok(plan) => Some(plan),
            Err(found) => {
                refusals.extend(found);
                None
            }
        },
        None => None,
    };
    let controller = current.map_or("ECS", |s| s.controller.as_str());
    let current_configuration = current.and_then(|s| s.deployment_configuration.as_ref());
    let strategy = options
        .strategy
        .strategy
        .clone()
        .or_else(|| {
            current_configuration
                .and_then(|c| c.strategy())
                .map(|s| s.as_str().to_string())
        })
        .unwrap_or_else(|| "ROLLING".to_string());
    let mut deployment_configuration = None;
    match controller {
        "CODE_DEPLOY" => {
            if options.strategy.is_given() {
                refusals.push(Refusal::new(
                    Setting::DeploymentStrategy,
                    options.strategy.strategy.as_deref().unwrap_or_default(),
                    "applies to services whose deployment controller is ECS; this one deploys through CodeDeploy",
                    "choose canary, linear or all-at-once with codedeploy-deployment-config",
                ));
            }
            if matches!(
                options.wait_until,
                Some(ServiceWaitUntil::Paused | ServiceWaitUntil::Stage(_))
            ) {
                refusals.push(Refusal::new(
                    Setting::WaitUntil,
                    "",
                    "names a point of ECS's own deployment strategies; a CodeDeploy deployment is waited for until `complete`, `deployed` or `ready`",
                    "use complete, deployed or ready",
                ));
            }
            if options.desired_count.is_some() || options.service_settings.changes_service() {
                refusals.push(Refusal::new(
                    Setting::Service,
                    options.service.as_deref().unwrap_or_default(),
                    "uses the CODE_DEPLOY deployment controller: its revision goes out through CodeDeploy, and desired-count, enable-ecs-managed-tags, propagate-tags and service-managed-ebs-volume are not sent with it",
                    "change those settings in the service's own definition (or the stack), and deploy the revision here",
                ));
            }
        }
        "ECS" => {
            match merge_configuration(current_configuration, &options.strategy) {
                Ok(merged) => deployment_configuration = merged,
                Err(found) => refusals.extend(found),
            }
            if strategy == "ROLLING" && options.wait_until.is_some() {
                refusals.push(Refusal::new(
                    Setting::WaitUntil,
                    "",
                    "applies to blue/green, linear and canary deployments (ECS's strategies or CodeDeploy); this service rolls out with ROLLING",
                    "remove wait-until, or set deployment-strategy",
                ));
            }
            if let Some(setting) = options.codedeploy_inputs_given.first() {
                refusals.push(Refusal::new(
                    *setting,
                    "",
                    format!(
                        "applies to services whose deployment controller is CODE_DEPLOY; service `{}` uses ECS (rolling updates)",
                        options.service.as_deref().unwrap_or_default()
                    ),
                    "remove the codedeploy-* inputs and wait-until, or deploy the blue/green service they are meant for",
                ));
            }
        }
        other => refusals.push(Refusal::new(
            Setting::Service,
            options.service.as_deref().unwrap_or_default(),
            format!("uses the {other} deployment controller, whose task sets are managed outside ECS and CodeDeploy"),
            "deploy it with the tool that manages its task sets",
        )),
    }
    if !refusals.is_empty() {
        return Err(Refusals(refusals));
    }
    let registration = match current {
        Some(CurrentService {
            task_definition: Some(current),
            task_definition_document: Some(document),
            ..
        }) if is_same_task_definition(document, &wanted) => Registration::Unchanged {
            current: current.clone(),
        },
        _ => Registration::New,
    };
    let updates_service = options.service.is_some()
        && (registration == Registration::New
            || options.force_new_deployment
            || options.desired_count.is_some()
            || options.service_settings.changes_service()
            || options.strategy.is_given());
    let codedeploy = match (current, &view.codedeploy, &options.service) {
        (Some(service), Some(codedeploy), Some(name))
            if service.controller == "CODE_DEPLOY" && updates_service =>
        {
            let blue_green = BlueGreenService {
                load_balancers: service.load_balancers.clone(),
                launch: service.launch.clone(),
            };
            Some(
                decide_codedeploy(
                    &options.codedeploy,
                    &options.cluster,
                    name,
                    &blue_green,
                    &rendered.task_definition,
                    codedeploy,
                )
                .map_err(Refusals)?,
            )
        }
        _ => None,
    };
    Ok(ServicePlan::Ready(Box::new(ReadyRollout {
        cluster: options.cluster.clone(),
        service: options.service.clone(),
        source,
        rendered,
        registration,
        updates_service,
        desired_count: options.desired_count,
        force_new_deployment: options.force_new_deployment,
        service_settings: options.service_settings.clone(),
        wait_for_stability: options.wait_for_stability,
        wait_timeout: options.wait_timeout,
        one_off_task,
        codedeploy,
        previous_task_definition: current.and_then(|s| s.task_definition.clone()),
        launch_type: current
            .and_then(|s| s.launch.launch_type.as_ref())
            .map(|l| l.as_str().to_string()),
        targets: current.map(|s| s.targets.clone()).unwrap_or_default(),
        network: current.and_then(|s| s.launch.network.clone()),
        strategy,
        deployment_configuration,
        wait_until: options.wait_until.clone().unwrap_or_default(),
    })))
}

/// Renders the task definition and checks ECS would take it. Returns the
/// rendering, its source and its registered (wire JSON) form.
fn render(
    options: &RolloutOptions,
    document: Value,
    source: &str,
) -> Result<(RenderedTaskDefinition, String, Value), Refusal> {
    let request = &options.render;
    let bad = |message: String| Refusal::described(Setting::TaskDefinition, source, message);
    let rendered = render_task_definition(document, source, request)
        .map_err(|error| Refusal::described(error.setting(), source, &error))?;
    registration_request(&rendered.task_definition, rendered.tags.as_ref(), source)
        .map_err(|error| bad(format!("{error:#}")))?;
    let wanted =
        as_registered(&rendered.task_definition, source).map_err(|e| bad(format!("{e:#}")))?;
    Ok((rendered, source.to_string(), wanted))
}

impl ReadyRollout {
    /// Whether a container of the rendered definition is essential (ECS's
    /// default: yes); only those decide whether a task failed.
    pub fn is_essential(&self, container: &str) -> bool {
        self.rendered
            .task_definition
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(container))
            .is_none_or(|c| c.get("essential").and_then(Value::as_bool) != Some(false))
    }

    /// The plan's lines for this rollout.
    pub fn describe(&self) -> Vec<String> {
        let family = self
            .rendered
            .task_definition
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let mut lines = vec![match &self.registration {
            Registration::New => format!("register a new revision of task definition {family}"),
            Registration::Unchanged { current } => format!(
                "task definition {family}: unchanged, the service runs {} already (nothing registered)",
                short_task_definition(current)
            ),
        }];
        if let Some(task) = &self.one_off_task {
            lines.push(task.describe());
        }
        if let (Some(service), Some(codedeploy)) = (&self.service, &self.codedeploy) {
            lines.extend(codedeploy.describe(service));
            return lines;
        }
        if let Some(service) = &self.service {
            if self.updates_service {
                let mut line = format!("update service {service} in cluster {}", self.cluster);
                if self.strategy != "ROLLING" {
                    line.push_str(&format!(", {} deployment", self.strategy));
                }
                if let Some(count) = self.desired_count {
                    line.push_str(&format!(", desired count {count}"));
                }
                if self.force_new_deployment {
                    line.push_str(", forcing a new deployment");
                }
                lines.push(line);
                lines.push(if self.wait_for_stability {
                    format!(
                        "wait up to {} for the rollout",
                        humantime::format_duration(self.wait_timeout)
                    )
                } else {
                    "do not wait for the rollout (wait-for-service-stability: false)".to_string()
                });
            } else {
                lines.push(format!("service {service}: nothing to roll out"));
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taskdef::render::ContainerImage;
    use serde_json::json;
    use std::time::Duration;

    fn task_definition(image: &str) -> Value {
        json!({
            "family": "web",
            "containerDefinitions": [{"name": "app", "image": image, "essential": true}]
        })
    }

    fn options(service: Option<&str>, container: &str, image: &str) -> RolloutOptions {
        RolloutOptions {
            origin: TaskDefinitionOrigin::Document {
                document: task_definition("repo:old"),
                source: "td.json".into(),
            },
            cluster: "prod".into(),
            service: service.map(str::to_string),
            render: RenderRequest {
                images: vec![ContainerImage {
                    container_name: container.into(),
                    image: image.into(),
                }],
                ..RenderRequest::default()
            },
            desired_count: None,
            force_new_deployment: false,
            service_settings: ServiceSettings::default(),
            wait_for_stability: true,
            wait_timeout: Duration::from_secs(600),
            one_off_task: None,
            codedeploy: Default::default(),
            codedeploy_inputs_given: Vec::new(),
            wait_until: None,
            strategy: Default::default(),
        }
    }

    fn running(image: &str) -> ServiceView {
        let document = as_registered(&task_definition(image), "current").ok();
        ServiceView {
            cluster_active: true,
            service: Some(CurrentService {
                task_definition: Some("arn:aws:ecs:us-east-1:1:task-definition/web:7".into()),
                task_definition_document: document,
                launch: Default::default(),
                controller: "ECS".into(),
                load_balancers: Vec::new(),
                deployment_configuration: None,
                targets: Vec::new(),
            }),
            registered_origin: None,
            codedeploy: None,
        }
    }

    fn missing() -> ServiceView {
        ServiceView {
            cluster_active: false,
            service: None,
            registered_origin: None,
            codedeploy: None,
        }
    }

    fn ready(plan: Result<ServicePlan, Refusals>) -> ReadyRollout {
        match plan {
            Ok(ServicePlan::Ready(ready)) => *ready,
            other => panic!("not ready: {other:?}"),
        }
    }

    fn refused_settings(plan: Result<ServicePlan, Refusals>) -> Vec<Setting> {
        match plan {
            Err(Refusals(errors)) => errors.into_iter().map(|e| e.setting).collect(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_new_image_registers_and_updates_the_service() {
        let plan = ready(decide_service(
            &options(Some("web"), "app", "repo:new"),
            &running("repo:old"),
            CreatedEarlier::default(),
        ));
        assert_eq!(plan.registration, Registration::New);
        assert!(plan.updates_service);
        assert_eq!(
            plan.describe(),
            [
                "register a new revision of task definition web",
                "update service web in cluster prod",
                "wait up to 10m for the rollout",
            ]
        );
    }

    #[test]
    fn the_running_revision_is_not_registered_again() {
        let plan = ready(decide_service(
            &options(Some("web"), "app", "repo:old"),
            &running("repo:old"),
            CreatedEarlier::default(),
        ));
        assert!(matches!(plan.registration, Registration::Unchanged { .. }));
        assert!(!plan.updates_service);
        let mut forced = options(Some("web"), "app", "repo:old");
        forced.force_new_deployment = true;
        let plan = ready(decide_service(
            &forced,
            &running("repo:old"),
            CreatedEarlier::default(),
        ));
        assert!(plan.updates_service);
        // A service setting asked for is an update of its own.
        let mut tagged = options(Some("web"), "app", "repo:old");
        tagged.service_settings.propagate_tags = Some("SERVICE".into());
        let plan = ready(decide_service(
            &tagged,
            &running("repo:old"),
            CreatedEarlier::default(),
        ));
        assert!(plan.updates_service);
        // The poll bound alone changes nothing in the service.
        let mut bounded = options(Some("web"), "app", "repo:old");
        bounded.service_settings.max_poll_delay = Some(Duration::from_secs(5));
        let plan = ready(decide_service(
            &bounded,
            &running("repo:old"),
            CreatedEarlier::default(),
        ));
        assert!(!plan.updates_service);
    }

    /// Regression: a misspelt container-name was found only after the
    /// stack had been created.
    #[test]
    fn every_bad_part_is_refused_at_once() {
        let refused = refused_settings(decide_service(
            &options(Some("web"), "ap", "repo:new"),
            &missing(),
            CreatedEarlier::default(),
        ));
        // A misspelt container is the container name's fault, not the file's.
        assert_eq!(refused, [Setting::Cluster, Setting::ContainerName]);
        let mut no_service = running("repo:old");
        no_service.service = None;
        let refused = refused_settings(decide_service(
            &options(Some("web"), "app", "repo:new"),
            &no_service,
            CreatedEarlier::default(),
        ));
        assert_eq!(refused, [Setting::Service]);
        let mut registered = options(None, "app", "repo:new");
        registered.origin = TaskDefinitionOrigin::Registered("web:9".into());
        let refused = refused_settings(decide_service(
            &registered,
            &missing(),
            CreatedEarlier::default(),
        ));
        assert_eq!(refused, [Setting::TaskDefinition]);
    }

    #[test]
    fn what_the_stack_creates_is_looked_at_after_it() {
        let created = CreatedEarlier {
            cluster: true,
            service: true,
            task_definition: false,
        };
        assert_eq!(
            decide_service(
                &options(Some("web"), "app", "repo:new"),
                &missing(),
                created
            ),
            Ok(ServicePlan::AfterStack {
                waiting_for: vec!["cluster"]
            })
        );
        // A file's mistakes do not wait for the stack.
        assert_eq!(
            refused_settings(decide_service(
                &options(Some("web"), "ap", "repo:new"),
                &missing(),
                created
            )),
            [Setting::ContainerName]
        );
    }

    #[test]
    fn register_only_without_a_service() {
        let plan = ready(decide_service(
            &options(None, "app", "repo:new"),
            &ServiceView {
                cluster_active: true,
                service: None,
                registered_origin: None,
                codedeploy: None,
            },
            CreatedEarlier::default(),
        ));
        assert_eq!(plan.registration, Registration::New);
        assert!(!plan.updates_service);
        assert_eq!(
            plan.describe(),
            ["register a new revision of task definition web"]
        );
    }
}

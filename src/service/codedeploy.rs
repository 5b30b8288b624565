//! Blue/green rollouts of services whose deployment controller is
//! `CODE_DEPLOY`: ECS refuses UpdateService with a task definition for them,
//! so the new revision goes out as a CodeDeploy deployment.
//!
//! The plan reads the deployment group and its deployment config
//! ([`read_codedeploy`]) and decides, purely, the appspec to send
//! ([`decide_codedeploy`]): generated from the service (its load balancer's
//! container and port, network, platform version, capacity providers) as
//! ecspresso does, or the user's file with only `TaskDefinition` replaced.
//! No revision arithmetic: the ARN just registered is what goes in. A group
//! that does not exist, is not ECS blue/green, or names another service is
//! refused before anything changes.

use anyhow::Context as _;
use aws_sdk_codedeploy::types::{
    AppSpecContent, DeploymentGroupInfo, RevisionLocation, RevisionLocationType, TrafficRoutingType,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::aws::aws_error;
use crate::refusal::{Refusal, Setting};

/// The lifecycle hooks CodeDeploy runs for an ECS deployment, in order.
pub const HOOK_EVENTS: &[&str] = &[
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// What the step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitUntil {
    /// Production traffic fully on the replacement task set (not the
    /// original task set's termination wait).
    #[default]
    Complete,
    /// The test listener serves the new revision (before a manual reroute).
    Ready,
}

/// The `codedeploy-*` inputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CodeDeployOptions {
    /// `None`: `AppECS-<cluster>-<service>`.
    pub application: Option<String>,
    /// `None`: `DgpECS-<cluster>-<service>`.
    pub deployment_group: Option<String>,
    /// `None`: the group's.
    pub deployment_config: Option<String>,
    pub description: Option<String>,
    /// A user appspec (parsed) and its path; `None`: generated.
    pub appspec: Option<(Value, String)>,
    /// `codedeploy-hooks`: (event, Lambda function ARN).
    pub hooks: Vec<(String, String)>,
    pub wait_until: WaitUntil,
}

/// How production traffic moves, from the deployment config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficShift {
    AllAtOnce,
    Canary { percentage: i32, minutes: i32 },
    Linear { percentage: i32, minutes: i32 },
}

impl TrafficShift {
    fn describe(&self) -> String {
        match self {
            Self::AllAtOnce => "all traffic at once".to_string(),
            Self::Canary {
                percentage,
                minutes,
            } => format!("{percentage}% first, the rest {minutes} min later"),
            Self::Linear {
                percentage,
                minutes,
            } => format!("{percentage}% more every {minutes} min"),
        }
    }
}

/// What the plan read of CodeDeploy.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeDeployView {
    /// `None`: the group (or its application) does not exist.
    pub group: Option<DeploymentGroupInfo>,
    /// The config the deployment will use and how it shifts traffic;
    /// `None` when it does not exist.
    pub config: Option<(String, TrafficShift)>,
}

/// The service as the appspec needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BlueGreenService {
    /// The service's load balancers: (container name, container port).
    pub load_balancers: Vec<(String, i32)>,
    pub launch: super::task::ServiceLaunch,
}

/// The deployment, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeDeployPlan {
    pub application: String,
    pub deployment_group: String,
    /// `None`: the group's default, named in `config_name` for the log.
    pub deployment_config: Option<String>,
    pub config_name: String,
    pub traffic: TrafficShift,
    pub description: Option<String>,
    /// The appspec with [`TASK_DEFINITION_PLACEHOLDER`] where the ARN goes.
    pub appspec: Value,
    /// Where the appspec came from: a path, or "generated from the service".
    pub appspec_source: String,
    pub wait_until: WaitUntil,
    /// The group's wait for a manual reroute, when it has one.
    pub ready_wait_minutes: Option<i32>,
    pub termination_wait_minutes: i32,
    pub auto_rollback: bool,
}

/// Put in the appspec where the registered ARN goes, replaced at apply.
pub const TASK_DEFINITION_PLACEHOLDER: &str = "<TASK_DEFINITION>";

/// The default application and group names, as amazon-ecs-deploy-task-definition
/// and the ECS console name them.
pub fn default_names(cluster: &str, service: &str) -> (String, String) {
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    (
        format!("AppECS-{cluster}-{service}"),
        format!("DgpECS-{cluster}-{service}"),
    )
}

/// Parses an appspec file, YAML or JSON as CodeDeploy takes it; the error
/// names the line and column.
pub fn parse_appspec(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| format!("is not valid YAML: {e}"))
    }
}

/// Reads the deployment group and the config it will use (read-only).
pub async fn read_codedeploy(
    client: &aws_sdk_codedeploy::Client,
    application: &str,
    deployment_group: &str,
    config: Option<&str>,
) -> anyhow::Result<CodeDeployView> {
    let group = match client
        .get_deployment_group()
        .application_name(application)
        .deployment_group_name(deployment_group)
        .send()
        .await
    {
        Ok(output) => output.deployment_group_info().cloned(),
        Err(error) => {
            let code = error
                .as_service_error()
                .map(|e| e.meta().code().unwrap_or_default().to_string());
            match code.as_deref() {
                Some(
                    "DeploymentGroupDoesNotExistException" | "ApplicationDoesNotExistException",
                ) => None,
                _ => {
                    return Err(aws_error(error)).with_context(|| {
                        format!("reading CodeDeploy deployment group {deployment_group} of application {application}")
                    });
                }
            }
        }
    };
    let name = config
        .map(str::to_string)
        .or_else(|| {
            group
                .as_ref()
                .and_then(|g| g.deployment_config_name().map(str::to_string))
        })
        .unwrap_or_else(|| "CodeDeployDefault.ECSAllAtOnce".to_string());
    let config = match client
        .get_deployment_config()
        .deployment_config_name(&name)
        .send()
        .await
    {
        Ok(output) => {
            let routing = output
                .deployment_config_info()
                .and_then(|info| info.traffic_routing_config());
            let shift = match routing {
                Some(routing) => match routing.r#type() {
                    Some(TrafficRoutingType::TimeBasedCanary) => {
                        let canary = routing.time_based_canary();
                        TrafficShift::Canary {
                            percentage: canary.map_or(0, |c| c.canary_percentage()),
                            minutes: canary.map_or(0, |c| c.canary_interval()),
                        }
                    }
                    Some(TrafficRoutingType::TimeBasedLinear) => {
                        let linear = routing.time_based_linear();
                        TrafficShift::Linear {
                            percentage: linear.map_or(0, |l| l.linear_percentage()),
                            minutes: linear.map_or(0, |l| l.linear_interval()),
                        }
                    }
                    _ => TrafficShift::AllAtOnce,
                },
                None => TrafficShift::AllAtOnce,
            };
            Some((name, shift))
        }
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.meta().code() == Some("DeploymentConfigDoesNotExistException")
            }) =>
        {
            None
        }
        Err(error) => {
            return Err(aws_error(error))
                .with_context(|| format!("reading CodeDeploy deployment config {name}"));
        }
    };
    Ok(CodeDeployView { group, config })
}

/// Decides the deployment (pure): refuses a group that cannot deploy this
/// service and an appspec that does not fit the task definition.
pub fn decide_codedeploy(
    options: &CodeDeployOptions,
    cluster: &str,
    service: &str,
    blue_green: &BlueGreenService,
    task_definition: &Value,
    view: &CodeDeployView,
) -> Result<CodeDeployPlan, Vec<Refusal>> {
    let (default_application, default_group) = default_names(cluster, service);
    let application = options.application.clone().unwrap_or(default_application);
    let group_name = options.deployment_group.clone().unwrap_or(default_group);
    let mut refusals = Vec::new();
    let group_refusal = |problem: String, fix: &str| {
        Refusal::new(
            Setting::CodeDeployDeploymentGroup,
            &group_name,
            problem,
            fix,
        )
    };
    let Some(group) = &view.group else {
        return Err(vec![group_refusal(
            format!(
                "does not exist in CodeDeploy application `{application}` (or the application does not)"
            ),
            "give the deployment group of this service (codedeploy-application and codedeploy-deployment-group; the defaults are AppECS-<cluster>-<service> and DgpECS-<cluster>-<service>)",
        )]);
    };
    if group.compute_platform().map(|p| p.as_str()) != Some("ECS") {
        refusals.push(group_refusal(
            format!(
                "is a {} deployment group, not an ECS one",
                group.compute_platform().map_or("?", |p| p.as_str())
            ),
            "give the ECS blue/green deployment group of this service",
        ));
    }
    let style = group.deployment_style();
    if style.and_then(|s| s.deployment_type()).map(|t| t.as_str()) != Some("BLUE_GREEN")
        || style
            .and_then(|s| s.deployment_option())
            .map(|o| o.as_str())
            != Some("WITH_TRAFFIC_CONTROL")
    {
        refusals.push(group_refusal(
            "is not a blue/green deployment group with traffic control".to_string(),
            "set its deployment style to BLUE_GREEN with WITH_TRAFFIC_CONTROL",
        ));
    }
    let cluster_name = cluster.rsplit('/').next().unwrap_or(cluster);
    let names_us = group.ecs_services().iter().any(|s| {
        s.service_name() == Some(service)
            && s.cluster_name()
                .is_some_and(|c| c == cluster || c == cluster_name)
    });
    if !names_us {
        let named: Vec<String> = group
            .ecs_services()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s.cluster_name().unwrap_or("?"),
                    s.service_name().unwrap_or("?")
                )
            })
            .collect();
        refusals.push(group_refusal(
            format!(
                "deploys {} , not service `{service}` in cluster `{cluster_name}`",
                if named.is_empty() {
                    "no ECS service".to_string()
                } else {
                    named.join(", ")
                }
            ),
            "give the deployment group of this service",
        ));
    }
    let pair = group
        .load_balancer_info()
        .and_then(|info| info.target_group_pair_info_list().first());
    let has_pair = pair.is_some_and(|pair| {
        pair.target_groups().len() == 2
            && pair
                .prod_traffic_route()
                .is_some_and(|route| !route.listener_arns().is_empty())
    });
    if !has_pair {
        refusals.push(group_refusal(
            "has no target group pair with a production listener".to_string(),
            "give the group two target groups and the production (and test) listener",
        ));
    }
    let config = match &view.config {
        Some(config) => Some(config.clone()),
        None => {
            let name = options
                .deployment_config
                .clone()
                .or_else(|| group.deployment_config_name().map(str::to_string))
                .unwrap_or_default();
            refusals.push(Refusal::new(
                Setting::CodeDeployDeploymentConfig,
                &name,
                "is not a CodeDeploy deployment config",
                "use CodeDeployDefault.ECSAllAtOnce, ECSCanary10Percent5Minutes, ECSCanary10Percent15Minutes, ECSLinear10PercentEvery1Minutes, ECSLinear10PercentEvery3Minutes, or one created for ECS",
            ));
            None
        }
    };
    let appspec = match &options.appspec {
        Some((document, path)) => user_appspec(document, path, task_definition),
        None => generated_appspec(blue_green, &options.hooks, task_definition),
    };
    let appspec = match appspec {
        Ok(appspec) => Some(appspec),
        Err(refusal) => {
            refusals.push(refusal);
            None
        }
    };
    let (Some(appspec), Some((config_name, traffic)), true) =
        (appspec, config, refusals.is_empty())
    else {
        return Err(refusals);
    };
    let blue_green_config = group.blue_green_deployment_configuration();
    let ready = blue_green_config.and_then(|c| c.deployment_ready_option());
    let ready_wait_minutes = ready
        .filter(|r| r.action_on_timeout().map(|a| a.as_str()) == Some("STOP_DEPLOYMENT"))
        .map(|r| r.wait_time_in_minutes());
    Ok(CodeDeployPlan {
        application,
        deployment_group: group_name,
        deployment_config: options.deployment_config.clone(),
        config_name,
        traffic,
        description: options.description.clone(),
        appspec_source: options.appspec.as_ref().map_or_else(
            || "generated from the service".to_string(),
            |(_, p)| p.clone(),
        ),
        appspec,
        wait_until: options.wait_until,
        ready_wait_minutes,
        termination_wait_minutes: blue_green_config
            .and_then(|c| c.terminate_blue_instances_on_deployment_success())
            .map_or(0, |t| t.termination_wait_time_in_minutes()),
        auto_rollback: group
            .auto_rollback_configuration()
            .is_some_and(|r| r.enabled()),
    })
}

/// Each container's name and its container ports.
fn container_ports(task_definition: &Value) -> Vec<(String, Vec<i64>)> {
    task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("name").and_then(Value::as_str)?.to_string();
            let ports = c
                .get("portMappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("containerPort").and_then(Value::as_i64))
                .collect();
            Some((name, ports))
        })
        .collect()
}

/// Refuses a load balancer container or port the task definition lacks.
fn check_container_port(
    task_definition: &Value,
    container: &str,
    port: i64,
    setting: Setting,
    value: &str,
) -> Result<(), Refusal> {
    let containers = container_ports(task_definition);
    match containers.iter().find(|(name, _)| name == container) {
        None => Err(Refusal::new(
            setting,
            value,
            format!(
                "sends traffic to container `{container}`, which the task definition does not have"
            ),
            format!(
                "name one of its containers: {}",
                containers
                    .iter()
                    .map(|(n, _)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Some((_, ports)) if !ports.contains(&port) => Err(Refusal::new(
            setting,
            value,
            format!(
                "sends traffic to port {port} of container `{container}`, which maps no such containerPort"
            ),
            "add the port to the container's portMappings, or fix the port",
        )),
        Some(_) => Ok(()),
    }
}

/// The appspec generated from the service.
fn generated_appspec(
    service: &BlueGreenService,
    hooks: &[(String, String)],
    task_definition: &Value,
) -> Result<Value, Refusal> {
    let Some((container, port)) = service.load_balancers.first() else {
        return Err(Refusal::new(
            Setting::Service,
            "",
            "has no load balancer, so CodeDeploy has no traffic to shift",
            "attach the service to the deployment group's target group",
        ));
    };
    check_container_port(
        task_definition,
        container,
        i64::from(*port),
        Setting::Service,
        "the service's load balancer",
    )?;
    let mut properties = json!({
        "TaskDefinition": TASK_DEFINITION_PLACEHOLDER,
        "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port},
    });
    let launch = &service.launch;
    if let Some(version) = &launch.platform_version {
        properties["PlatformVersion"] = json!(version);
    }
    if let Some(network) = &launch.network {
        let mut awsvpc = json!({"Subnets": network.subnets()});
        if !network.security_groups().is_empty() {
            awsvpc["SecurityGroups"] = json!(network.security_groups());
        }
        if let Some(public) = network.assign_public_ip() {
            awsvpc["AssignPublicIp"] = json!(public.as_str());
        }
        properties["NetworkConfiguration"] = json!({ "AwsvpcConfiguration": awsvpc });
    }
    if !launch.capacity_provider_strategy.is_empty() {
        properties["CapacityProviderStrategy"] = Value::Array(
            launch
                .capacity_provider_strategy
                .iter()
                .map(|item| {
                    json!({
                        "CapacityProvider": item.capacity_provider(),
                        "Base": item.base(),
                        "Weight": item.weight(),
                    })
                })
                .collect(),
        );
    }
    let mut appspec = json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}],
    });
    if !hooks.is_empty() {
        appspec["Hooks"] = Value::Array(
            hooks
                .iter()
                .map(|(event, arn)| json!({ event.as_str(): arn }))
                .collect(),
        );
    }
    Ok(appspec)
}

/// The key of `object` equal to `name` ignoring case (CodeDeploy reads
/// appspec keys that way).
fn key_like<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a String> {
    object.keys().find(|key| key.eq_ignore_ascii_case(name))
}

/// The user's appspec with `TaskDefinition` set to the placeholder in every
/// resource; everything else is kept.
fn user_appspec(document: &Value, path: &str, task_definition: &Value) -> Result<Value, Refusal> {
    let bad = |problem: String| {
        Refusal::new(
            Setting::CodeDeployAppSpec,
            path,
            problem,
            "write it as CodeDeploy documents an ECS appspec: Resources: [{TargetService: {Type: AWS::ECS::Service, Properties: {TaskDefinition, LoadBalancerInfo: {ContainerName, ContainerPort}}}}]",
        )
    };
    let mut appspec = document.clone();
    let Value::Object(top) = &mut appspec else {
        return Err(bad("is not a mapping".to_string()));
    };
    let Some(resources_key) = key_like(top, "Resources").cloned() else {
        return Err(bad("has no `Resources`".to_string()));
    };
    let Some(Value::Array(resources)) = top.get_mut(&resources_key) else {
        return Err(bad("has `Resources` that is not a list".to_string()));
    };
    if resources.is_empty() {
        return Err(bad("has no resource in `Resources`".to_string()));
    }
    for resource in resources.iter_mut() {
        let Some(inner) = resource.as_object_mut().and_then(|r| r.values_mut().next()) else {
            return Err(bad(
                "has a resource that is not `Name: {Type, Properties}`".to_string()
            ));
        };
        let Value::Object(inner) = inner else {
            return Err(bad("has a resource that is not a mapping".to_string()));
        };
        let Some(properties_key) = key_like(inner, "Properties").cloned() else {
            return Err(bad("has a resource without `Properties`".to_string()));
        };
        let Some(Value::Object(properties)) = inner.get_mut(&properties_key) else {
            return Err(bad("has `Properties` that are not a mapping".to_string()));
        };
        let key = key_like(properties, "TaskDefinition")
            .cloned()
            .unwrap_or_else(|| "TaskDefinition".to_string());
        properties.insert(key, json!(TASK_DEFINITION_PLACEHOLDER));
        if let Some(info_key) = key_like(properties, "LoadBalancerInfo").cloned()
            && let Some(Value::Object(info)) = properties.get(&info_key)
        {
            let container = key_like(info, "ContainerName")
                .and_then(|k| info.get(k))
                .and_then(Value::as_str);
            let port = key_like(info, "ContainerPort")
                .and_then(|k| info.get(k))
                .and_then(|p| p.as_i64().or_else(|| p.as_str()?.parse().ok()));
            match (container, port) {
                (Some(container), Some(port)) => check_container_port(
                    task_definition,
                    container,
                    port,
                    Setting::CodeDeployAppSpec,
                    path,
                )?,
                _ => {
                    return Err(bad(
                        "has a LoadBalancerInfo without ContainerName and ContainerPort"
                            .to_string(),
                    ));
                }
            }
        }
    }
    Ok(appspec)
}

impl CodeDeployPlan {
    /// The plan's lines.
    pub fn describe(&self, service: &str) -> Vec<String> {
        let config = match &self.deployment_config {
            Some(name) => name.clone(),
            None => format!("{} (the group's)", self.config_name),
        };
        let wait = match self.wait_until {
            WaitUntil::Complete => "until production traffic is on the new revision",
            WaitUntil::Ready => {
                "until the test listener serves the new revision (wait-until: ready)"
            }
        };
        vec![
            format!(
                "blue/green deployment of service {service} through CodeDeploy {}/{} with {config}: {}",
                self.application,
                self.deployment_group,
                self.traffic.describe()
            ),
            format!("appspec {}", self.appspec_source),
            format!("wait {wait}"),
        ]
    }

    /// The appspec as sent: the placeholder replaced by the registered ARN,
    /// as JSON, with its SHA-256 (hex) that CodeDeploy checks.
    pub fn appspec_content(&self, task_definition_arn: &str) -> (String, String) {
        let text = self
            .appspec
            .to_string()
            .replace(TASK_DEFINITION_PLACEHOLDER, task_definition_arn);
        let digest = Sha256::digest(text.as_bytes());
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (text, hex)
    }
}

/// The revision CreateDeployment takes.
pub fn revision(content: &str, sha256: &str) -> RevisionLocation {
    RevisionLocation::builder()
        .revision_type(RevisionLocationType::AppSpecContent)
        .app_spec_content(
            AppSpecContent::builder()
                .content(content)
                .sha256(sha256)
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::task::ServiceLaunch;
    use aws_sdk_codedeploy::types::{
        AutoRollbackConfiguration, BlueGreenDeploymentConfiguration, ComputePlatform,
        DeploymentOption, DeploymentReadyAction, DeploymentReadyOption, DeploymentStyle,
        DeploymentType, EcsService, LoadBalancerInfo, TargetGroupInfo, TargetGroupPairInfo,
        TrafficRoute,
    };
    use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration};

    fn group(service: &str) -> DeploymentGroupInfo {
        DeploymentGroupInfo::builder()
            .application_name("AppECS-prod-web")
            .deployment_group_name("DgpECS-prod-web")
            .compute_platform(ComputePlatform::Ecs)
            .deployment_config_name("CodeDeployDefault.ECSCanary10Percent5Minutes")
            .deployment_style(
                DeploymentStyle::builder()
                    .deployment_type(DeploymentType::BlueGreen)
                    .deployment_option(DeploymentOption::WithTrafficControl)
                    .build(),
            )
            .ecs_services(
                EcsService::builder()
                    .service_name(service)
                    .cluster_name("prod")
                    .build(),
            )
            .load_balancer_info(
                LoadBalancerInfo::builder()
                    .target_group_pair_info_list(
                        TargetGroupPairInfo::builder()
                            .target_groups(TargetGroupInfo::builder().name("blue").build())
                            .target_groups(TargetGroupInfo::builder().name("green").build())
                            .prod_traffic_route(
                                TrafficRoute::builder()
                                    .listener_arns("arn:listener/prod")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .blue_green_deployment_configuration(
                BlueGreenDeploymentConfiguration::builder()
                    .deployment_ready_option(
                        DeploymentReadyOption::builder()
                            .action_on_timeout(DeploymentReadyAction::ContinueDeployment)
                            .build(),
                    )
                    .build(),
            )
            .auto_rollback_configuration(AutoRollbackConfiguration::builder().enabled(true).build())
            .build()
    }

    fn view(service: &str) -> CodeDeployView {
        CodeDeployView {
            group: Some(group(service)),
            config: Some((
                "CodeDeployDefault.ECSCanary10Percent5Minutes".to_string(),
                TrafficShift::Canary {
                    percentage: 10,
                    minutes: 5,
                },
            )),
        }
    }

    fn task_definition() -> Value {
        json!({
            "family": "web",
            "containerDefinitions": [
                {"name": "app", "image": "repo:v2", "portMappings": [{"containerPort": 8080}]},
                {"name": "sidecar", "image": "envoy:1"}
            ]
        })
    }

    fn blue_green() -> BlueGreenService {
        BlueGreenService {
            load_balancers: vec![("app".to_string(), 8080)],
            launch: ServiceLaunch {
                network: AwsVpcConfiguration::builder()
                    .subnets("subnet-a")
                    .security_groups("sg-1")
                    .assign_public_ip(AssignPublicIp::Disabled)
                    .build()
                    .ok(),
                platform_version: Some("1.4.0".into()),
                ..ServiceLaunch::default()
            },
        }
    }

    fn decided(
        options: &CodeDeployOptions,
        view: &CodeDeployView,
    ) -> Result<CodeDeployPlan, Vec<Setting>> {
        decide_codedeploy(
            options,
            "prod",
            "web",
            &blue_green(),
            &task_definition(),
            view,
        )
        .map_err(|refusals| refusals.into_iter().map(|r| r.setting).collect())
    }

    #[test]
    fn the_appspec_is_generated_from_the_service_with_the_registered_arn() {
        let options = CodeDeployOptions {
            hooks: vec![(
                "BeforeAllowTraffic".into(),
                "arn:aws:lambda:us-east-1:1:function:smoke".into(),
            )],
            ..CodeDeployOptions::default()
        };
        let plan = decided(&options, &view("web")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(plan.application, "AppECS-prod-web");
        assert_eq!(plan.deployment_group, "DgpECS-prod-web");
        let (content, sha256) =
            plan.appspec_content("arn:aws:ecs:us-east-1:1:task-definition/web:8");
        let sent: Value = serde_json::from_str(&content).unwrap_or_default();
        assert_eq!(
            sent,
            json!({
                "version": 0.0,
                "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                    "TaskDefinition": "arn:aws:ecs:us-east-1:1:task-definition/web:8",
                    "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080},
                    "PlatformVersion": "1.4.0",
                    "NetworkConfiguration": {"AwsvpcConfiguration": {
                        "Subnets": ["subnet-a"], "SecurityGroups": ["sg-1"], "AssignPublicIp": "DISABLED"
                    }}
                }}}],
                "Hooks": [{"BeforeAllowTraffic": "arn:aws:lambda:us-east-1:1:function:smoke"}]
            })
        );
        assert_eq!(sha256.len(), 64);
        assert_eq!(
            plan.describe("web")[0],
            "blue/green deployment of service web through CodeDeploy AppECS-prod-web/DgpECS-prod-web with CodeDeployDefault.ECSCanary10Percent5Minutes (the group's): 10% first, the rest 5 min later"
        );
    }

    #[test]
    fn a_user_appspec_keeps_everything_but_the_task_definition() {
        let document = json!({
            "version": 0.0,
            "resources": [{"TargetService": {"type": "AWS::ECS::Service", "properties": {
                "taskdefinition": "arn:aws:ecs:us-east-1:1:task-definition/web:3",
                "loadbalancerinfo": {"containername": "app", "containerport": 8080}
            }}}],
            "hooks": [{"AfterAllowTestTraffic": "arn:aws:lambda:us-east-1:1:function:test"}]
        });
        let options = CodeDeployOptions {
            appspec: Some((document.clone(), "appspec.yaml".into())),
            ..CodeDeployOptions::default()
        };
        let plan = decided(&options, &view("web")).unwrap_or_else(|e| panic!("{e:?}"));
        let (content, _) = plan.appspec_content("arn:td/web:9");
        let mut expected = document;
        expected["resources"][0]["TargetService"]["properties"]["taskdefinition"] =
            json!("arn:td/web:9");
        assert_eq!(
            serde_json::from_str::<Value>(&content).unwrap_or_default(),
            expected
        );

        let wrong_port = CodeDeployOptions {
            appspec: Some((
                json!({"Resources": [{"T": {"Properties": {"LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 80}}}}]}),
                "appspec.yaml".into(),
            )),
            ..CodeDeployOptions::default()
        };
        assert_eq!(
            decided(&wrong_port, &view("web")).err(),
            Some(vec![Setting::CodeDeployAppSpec])
        );
    }

    #[test]
    fn a_group_that_cannot_deploy_this_service_is_refused() {
        assert_eq!(
            decided(&CodeDeployOptions::default(), &view("other")).err(),
            Some(vec![Setting::CodeDeployDeploymentGroup])
        );
        let missing = CodeDeployView {
            group: None,
            config: None,
        };
        assert_eq!(
            decided(&CodeDeployOptions::default(), &missing).err(),
            Some(vec![Setting::CodeDeployDeploymentGroup])
        );
        let no_config = CodeDeployView {
            config: None,
            ..view("web")
        };
        assert_eq!(
            decided(&CodeDeployOptions::default(), &no_config).err(),
            Some(vec![Setting::CodeDeployDeploymentConfig])
        );
    }
}

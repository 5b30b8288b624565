//! One-off tasks (`run-task`): a task run from the new revision before the
//! service is updated, the way a database migration is run, as
//! amazon-ecs-deploy-task-definition does.
//!
//! [`decide_one_off_task`] is pure: the options, the rendered task
//! definition and what the service runs with (its network, launch type or
//! capacity providers) give a [`OneOffTaskPlan`] or the refusals (an
//! override for a container the definition does not have, a managed volume
//! it does not declare, an `awsvpc` task with no subnet to run in). The
//! apply side starts the task with a client token derived from the run, so
//! a retried RunTask cannot start a second migration, and waits for it to
//! stop: an essential container that exits non-zero (or never starts) is a
//! failure, and the service is then not updated.

use anyhow::Context as _;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerOverride,
    LaunchType, NetworkConfiguration, Tag, TaskOverride, TaskVolumeConfiguration,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::watch::{EcsClients, StoppedContainer, StoppedTask, short_task_definition};
use crate::aws::aws_error;
use crate::console::Console;
use crate::refusal::{Refusal, Setting};
use crate::stack::wait::{PollSchedule, Poller};

/// What `run-task` and its `run-task-*` inputs ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct OneOffTaskOptions {
    pub container_overrides: Vec<ContainerOverride>,
    /// Replace the service's subnets; empty: the service's.
    pub subnets: Vec<String>,
    /// Replace the service's security groups; empty: the service's.
    pub security_groups: Vec<String>,
    pub assign_public_ip: Option<AssignPublicIp>,
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub launch_type: Option<LaunchType>,
    pub started_by: String,
    pub tags: Vec<Tag>,
    pub managed_ebs_volume: Option<TaskVolumeConfiguration>,
    pub enable_ecs_managed_tags: Option<bool>,
    /// `wait-for-task-stopped`.
    pub wait_for_stop: bool,
    /// Identifies this step of this run (run id, attempt, job, step), so
    /// the client token is the same for a retried call and different for
    /// a re-run.
    pub run_identity: String,
}

/// How the service's tasks run, as DescribeServices says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceLaunch {
    pub network: Option<AwsVpcConfiguration>,
    pub launch_type: Option<LaunchType>,
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub platform_version: Option<String>,
}

/// Where the one-off task's placement comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    LaunchType(LaunchType),
    CapacityProviders(Vec<CapacityProviderStrategyItem>),
}

/// The one-off task, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct OneOffTaskPlan {
    pub cluster: String,
    pub network: Option<AwsVpcConfiguration>,
    /// Which parts of the network are the service's (for the plan's line).
    pub network_from_service: bool,
    pub placement: Placement,
    pub platform_version: Option<String>,
    pub container_overrides: Vec<ContainerOverride>,
    pub started_by: String,
    pub tags: Vec<Tag>,
    pub managed_ebs_volume: Option<TaskVolumeConfiguration>,
    pub enable_ecs_managed_tags: Option<bool>,
    pub wait_for_stop: bool,
    /// The containers whose exit decides the outcome.
    pub essential_containers: Vec<String>,
    pub run_identity: String,
}

/// Decides the one-off task (pure). `service` is `None` without a service
/// (the task then needs its network from the inputs when it is `awsvpc`).
pub fn decide_one_off_task(
    options: &OneOffTaskOptions,
    cluster: &str,
    task_definition: &Value,
    service: Option<&ServiceLaunch>,
) -> Result<OneOffTaskPlan, Vec<Refusal>> {
    let mut refusals = Vec::new();
    let containers = containers_of(task_definition);
    for name in options
        .container_overrides
        .iter()
        .filter_map(ContainerOverride::name)
    {
        if !containers.iter().any(|(container, _)| container == name) {
            refusals.push(Refusal::new(
                Setting::RunTaskContainerOverrides,
                name,
                "is not a container of the task definition",
                format!(
                    "override one of its containers: {}",
                    names(containers.iter().map(|(c, _)| c.as_str()))
                ),
            ));
        }
    }
    if let Some(volume) = &options.managed_ebs_volume {
        check_launch_volume(
            task_definition,
            volume.name(),
            Setting::RunTaskManagedEbsVolume,
            &mut refusals,
        );
    }
    let default_launch = ServiceLaunch::default();
    let launch = service.unwrap_or(&default_launch);
    let network = network_of(
        &options.subnets,
        &options.security_groups,
        options.assign_public_ip.clone(),
        launch.network.as_ref(),
    );
    let placement = if !options.capacity_provider_strategy.is_empty() {
        Placement::CapacityProviders(options.capacity_provider_strategy.clone())
    } else if let Some(launch_type) = &options.launch_type {
        Placement::LaunchType(launch_type.clone())
    } else if !launch.capacity_provider_strategy.is_empty() {
        Placement::CapacityProviders(launch.capacity_provider_strategy.clone())
    } else {
        // amazon-ecs-deploy-task-definition's default, when there is no
        // service to copy it from.
        Placement::LaunchType(launch.launch_type.clone().unwrap_or(LaunchType::Fargate))
    };
    let awsvpc = task_definition.get("networkMode").and_then(Value::as_str) == Some("awsvpc")
        || placement == Placement::LaunchType(LaunchType::Fargate);
    if awsvpc && network.as_ref().is_none_or(|n| n.subnets().is_empty()) {
        refusals.push(Refusal::new(
            Setting::RunTaskSubnets,
            "",
            match service {
                Some(_) => "is needed: the task uses awsvpc networking and the service has no network configuration to run it in",
                None => "is needed: the task uses awsvpc networking and no service is given to take the network from",
            },
            "give the subnet ids to run the task in (and run-task-security-groups)",
        ));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let same_platform = matches!(
        (&placement, &launch.launch_type),
        (Placement::LaunchType(ours), Some(theirs)) if ours == theirs
    );
    Ok(OneOffTaskPlan {
        cluster: cluster.to_string(),
        network_from_service: launch.network.is_some()
            && (options.subnets.is_empty() || options.security_groups.is_empty()),
        network,
        placement,
        platform_version: launch.platform_version.clone().filter(|_| same_platform),
        container_overrides: options.container_overrides.clone(),
        started_by: options.started_by.clone(),
        tags: options.tags.clone(),
        managed_ebs_volume: options.managed_ebs_volume.clone(),
        enable_ecs_managed_tags: options.enable_ecs_managed_tags,
        wait_for_stop: options.wait_for_stop,
        essential_containers: containers
            .into_iter()
            .filter(|(_, essential)| *essential)
            .map(|(name, _)| name)
            .collect(),
        run_identity: options.run_identity.clone(),
    })
}

/// Refuses a managed volume name the task definition does not declare with
/// `configuredAtLaunch: true` (ECS would refuse it after the changes before
/// it were made).
pub fn check_launch_volume(
    task_definition: &Value,
    name: &str,
    setting: Setting,
    refusals: &mut Vec<Refusal>,
) {
    let volumes: Vec<&str> = task_definition
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("configuredAtLaunch").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .collect();
    if !volumes.contains(&name) {
        refusals.push(Refusal::new(
            setting,
            name,
            "is not a volume of the task definition with `configuredAtLaunch: true`",
            if volumes.is_empty() {
                "declare the volume in the task definition's `volumes` with `configuredAtLaunch: true`".to_string()
            } else {
                format!("name one of {}", names(volumes.into_iter()))
            },
        ));
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each container's name and whether it is essential (ECS's default: yes).
fn containers_of(task_definition: &Value) -> Vec<(String, bool)> {
    task_definition
        .get("containerDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("name").and_then(Value::as_str)?;
            let essential = c.get("essential").and_then(Value::as_bool) != Some(false);
            Some((name.to_string(), essential))
        })
        .collect()
}

/// The service's network with the given parts replaced.
fn network_of(
    subnets: &[String],
    security_groups: &[String],
    assign_public_ip: Option<AssignPublicIp>,
    service: Option<&AwsVpcConfiguration>,
) -> Option<AwsVpcConfiguration> {
    if subnets.is_empty() && security_groups.is_empty() && service.is_none() {
        return None;
    }
    let pick = |given: &[String], theirs: Option<&[String]>| {
        if given.is_empty() {
            theirs.map(<[String]>::to_vec)
        } else {
            Some(given.to_vec())
        }
    };
    let subnets = pick(subnets, service.map(AwsVpcConfiguration::subnets)).unwrap_or_default();
    AwsVpcConfiguration::builder()
        .set_subnets(Some(subnets))
        .set_security_groups(pick(
            security_groups,
            service.map(AwsVpcConfiguration::security_groups),
        ))
        .set_assign_public_ip(
            assign_public_ip.or_else(|| service.and_then(|s| s.assign_public_ip().cloned())),
        )
        .build()
        .ok()
}

impl OneOffTaskPlan {
    /// The plan's line.
    pub fn describe(&self) -> String {
        let placement = match &self.placement {
            Placement::LaunchType(launch_type) => launch_type.as_str().to_string(),
            Placement::CapacityProviders(strategy) => format!(
                "capacity providers {}",
                strategy
                    .iter()
                    .map(CapacityProviderStrategyItem::capacity_provider)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let network = match (&self.network, self.network_from_service) {
            (None, _) => String::new(),
            (Some(network), from_service) => format!(
                " in subnet(s) {}{}",
                network.subnets().join(", "),
                if from_service { " (the service's)" } else { "" }
            ),
        };
        let wait = if self.wait_for_stop {
            "; wait for it to stop: the service is updated only if every essential container exits 0"
        } else {
            "; not waiting for it (wait-for-task-stopped: false)"
        };
        format!(
            "run a one-off task from this revision in cluster {} ({placement}){network}{wait}",
            self.cluster
        )
    }

    /// The RunTask client token: the same for a retried call of this step,
    /// different for another step, attempt or revision. At most 64
    /// characters, as RunTask takes.
    pub fn client_token(&self, task_definition_arn: &str) -> String {
        let digest = Sha256::digest(
            format!(
                "{}\n{}\n{task_definition_arn}",
                self.run_identity, self.cluster
            )
            .as_bytes(),
        );
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Starts the task; returns its ARN. A failure entry in the answer (no
/// capacity, a missing resource) is an error naming it.
pub async fn run_one_off_task(
    clients: &EcsClients,
    plan: &OneOffTaskPlan,
    task_definition_arn: &str,
) -> anyhow::Result<String> {
    let (launch_type, strategy) = match &plan.placement {
        Placement::LaunchType(launch_type) => (Some(launch_type.clone()), None),
        Placement::CapacityProviders(strategy) => (None, Some(strategy.clone())),
    };
    let overrides = (!plan.container_overrides.is_empty()).then(|| {
        TaskOverride::builder()
            .set_container_overrides(Some(plan.container_overrides.clone()))
            .build()
    });
    let output = clients
        .ecs
        .run_task()
        .cluster(&plan.cluster)
        .task_definition(task_definition_arn)
        .count(1)
        .started_by(&plan.started_by)
        .client_token(plan.client_token(task_definition_arn))
        .set_launch_type(launch_type)
        .set_capacity_provider_strategy(strategy)
        .set_platform_version(plan.platform_version.clone())
        .set_network_configuration(plan.network.clone().map(|network| {
            NetworkConfiguration::builder()
                .awsvpc_configuration(network)
                .build()
        }))
        .set_overrides(overrides)
        .set_tags((!plan.tags.is_empty()).then(|| plan.tags.clone()))
        .set_enable_ecs_managed_tags(plan.enable_ecs_managed_tags)
        .set_volume_configurations(plan.managed_ebs_volume.clone().map(|v| vec![v]))
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("running a one-off task in cluster {}", plan.cluster))?;
    if let Some(failure) = output.failures().first() {
        anyhow::bail!(
            "RunTask started no task: {} ({})",
            failure.reason().unwrap_or("no reason given"),
            failure.detail().or(failure.arn()).unwrap_or_default()
        );
    }
    output
        .tasks()
        .first()
        .and_then(|task| task.task_arn())
        .map(str::to_string)
        .context("RunTask answered no task and no failure")
}

/// How a one-off task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskExit {
    pub task: StoppedTask,
    /// Essential containers that exited non-zero or never ran.
    pub failed_containers: Vec<String>,
}

impl TaskExit {
    pub fn succeeded(&self) -> bool {
        self.failed_containers.is_empty()
    }

    /// Each container's exit, for the log.
    pub fn lines(&self, essential: &[String]) -> Vec<String> {
        let mut lines = vec![self.task.to_line()];
        for StoppedContainer {
            name,
            exit_code,
            reason,
        } in &self.task.containers
        {
            let role = if essential.contains(name) {
                ""
            } else {
                " (not essential)"
            };
            let exit = match exit_code {
                Some(code) => format!("exited with code {code}"),
                None => "never ran to an exit".to_string(),
            };
            let reason = reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            lines.push(format!("container {name}{role} {exit}{reason}"));
        }
        lines
    }
}

/// Waits for the task to stop, bounded by `timeout`, and reads how it
/// ended. The error on timeout says the task is still running.
pub async fn wait_for_task_stop(
    clients: &EcsClients,
    plan: &OneOffTaskPlan,
    task_arn: &str,
    schedule: PollSchedule,
    timeout: std::time::Duration,
    console: &Console,
) -> anyhow::Result<TaskExit> {
    let mut poller = Poller::new(schedule, timeout);
    let mut last_status = String::new();
    loop {
        let described = clients
            .ecs
            .describe_tasks()
            .cluster(&plan.cluster)
            .tasks(task_arn)
            .send()
            .await
            .map_err(aws_error)
            .context("describing the one-off task")?;
        let task = described
            .tasks()
            .first()
            .with_context(|| format!("DescribeTasks does not know task {task_arn}"))?;
        let status = task.last_status().unwrap_or("UNKNOWN").to_string();
        if status != last_status {
            console.line(&format!("one-off task: {status}"));
            last_status = status.clone();
        }
        if status == "STOPPED" {
            return Ok(task_exit(
                StoppedTask::from_sdk(task),
                &plan.essential_containers,
            ));
        }
        if poller.tick().await.is_err() {
            anyhow::bail!(
                "one-off task {task_arn} did not stop within {} (it is {status} and keeps running; stop it with `aws ecs stop-task` if it should not); the service was not updated",
                humantime::format_duration(timeout)
            );
        }
    }
}

/// The outcome of a stopped task: essential containers without exit code
/// 0 fail it (a container that never started has no exit code).
pub fn task_exit(task: StoppedTask, essential: &[String]) -> TaskExit {
    let failed_containers = task
        .containers
        .iter()
        .filter(|c| essential.contains(&c.name) && c.exit_code != Some(0))
        .map(|c| c.name.clone())
        .collect();
    TaskExit {
        task,
        failed_containers,
    }
}

/// The failure message of a one-off task that did not succeed.
pub fn failure_message(exit: &TaskExit) -> String {
    format!(
        "the one-off task ({}) failed: essential container(s) {} did not exit 0{}; the service was not updated",
        short_task_definition(&exit.task.task_definition),
        exit.failed_containers.join(", "),
        exit.task
            .stopped_reason
            .as_deref()
            .map(|r| format!(" (task stopped: {r})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options() -> OneOffTaskOptions {
        OneOffTaskOptions {
            container_overrides: Vec::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            assign_public_ip: None,
            capacity_provider_strategy: Vec::new(),
            launch_type: None,
            started_by: "GitHub-Actions".into(),
            tags: Vec::new(),
            managed_ebs_volume: None,
            enable_ecs_managed_tags: None,
            wait_for_stop: true,
            run_identity: "run 7 attempt 1 job deploy step migrate".into(),
        }
    }

    fn task_definition() -> Value {
        json!({
            "family": "web",
            "networkMode": "awsvpc",
            "containerDefinitions": [
                {"name": "app", "image": "repo:v2"},
                {"name": "log-router", "image": "fluent:1", "essential": false}
            ],
            "volumes": [{"name": "scratch", "configuredAtLaunch": true}, {"name": "tmp"}]
        })
    }

    fn service_launch() -> ServiceLaunch {
        ServiceLaunch {
            network: AwsVpcConfiguration::builder()
                .subnets("subnet-a")
                .subnets("subnet-b")
                .security_groups("sg-service")
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .ok(),
            launch_type: Some(LaunchType::Fargate),
            capacity_provider_strategy: Vec::new(),
            platform_version: Some("1.4.0".into()),
        }
    }

    fn decided(options: &OneOffTaskOptions, service: Option<&ServiceLaunch>) -> OneOffTaskPlan {
        match decide_one_off_task(options, "prod", &task_definition(), service) {
            Ok(plan) => plan,
            Err(refusals) => panic!("refused: {refusals:?}"),
        }
    }

    fn refused(options: &OneOffTaskOptions, service: Option<&ServiceLaunch>) -> Vec<Setting> {
        match decide_one_off_task(options, "prod", &task_definition(), service) {
            Ok(plan) => panic!("not refused: {plan:?}"),
            Err(refusals) => refusals.into_iter().map(|r| r.setting).collect(),
        }
    }

    #[test]
    fn the_task_runs_like_the_service_unless_told_otherwise() {
        let service = service_launch();
        let plan = decided(&options(), Some(&service));
        let network = plan.network.clone().unwrap_or_else(|| panic!("no network"));
        assert_eq!(network.subnets(), ["subnet-a", "subnet-b"]);
        assert_eq!(network.security_groups(), ["sg-service"]);
        assert_eq!(plan.placement, Placement::LaunchType(LaunchType::Fargate));
        assert_eq!(plan.platform_version.as_deref(), Some("1.4.0"));
        assert_eq!(plan.essential_containers, ["app"]);
        assert!(
            plan.describe()
                .contains("subnet(s) subnet-a, subnet-b (the service's)")
        );

        let mut given = options();
        given.subnets = vec!["subnet-x".into()];
        given.assign_public_ip = Some(AssignPublicIp::Enabled);
        let plan = decided(&given, Some(&service));
        let network = plan.network.unwrap_or_else(|| panic!("no network"));
        assert_eq!(network.subnets(), ["subnet-x"]);
        // Only what was given is replaced: the service's security groups stay.
        assert_eq!(network.security_groups(), ["sg-service"]);
        assert_eq!(network.assign_public_ip(), Some(&AssignPublicIp::Enabled));

        let mut spot = options();
        spot.capacity_provider_strategy = vec![
            CapacityProviderStrategyItem::builder()
                .capacity_provider("FARGATE_SPOT")
                .weight(1)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        ];
        let plan = decided(&spot, Some(&service));
        assert!(matches!(plan.placement, Placement::CapacityProviders(_)));
        // A platform version belongs to the launch type it came with.
        assert_eq!(plan.platform_version, None);
    }

    #[test]
    fn what_ecs_would_refuse_after_the_changes_is_refused_first() {
        let mut bad = options();
        bad.container_overrides = vec![ContainerOverride::builder().name("ap").build()];
        bad.managed_ebs_volume = TaskVolumeConfiguration::builder().name("tmp").build().ok();
        assert_eq!(
            refused(&bad, Some(&service_launch())),
            [
                Setting::RunTaskContainerOverrides,
                Setting::RunTaskManagedEbsVolume
            ]
        );
        // awsvpc without a service and without subnets has nowhere to run.
        assert_eq!(refused(&options(), None), [Setting::RunTaskSubnets]);
        let mut given = options();
        given.subnets = vec!["subnet-x".into()];
        assert!(decided(&given, None).network.is_some());
    }

    #[test]
    fn the_client_token_is_stable_per_step_and_revision() {
        let plan = decided(&options(), Some(&service_launch()));
        let token = plan.client_token("arn:aws:ecs:us-east-1:1:task-definition/web:8");
        assert_eq!(token.len(), 64);
        assert_eq!(
            token,
            plan.client_token("arn:aws:ecs:us-east-1:1:task-definition/web:8")
        );
        assert_ne!(
            token,
            plan.client_token("arn:aws:ecs:us-east-1:1:task-definition/web:9")
        );
        let mut other_step = options();
        other_step.run_identity = "run 7 attempt 2 job deploy step migrate".into();
        let other = decided(&other_step, Some(&service_launch()));
        assert_ne!(
            token,
            other.client_token("arn:aws:ecs:us-east-1:1:task-definition/web:8")
        );
    }

    #[test]
    fn only_essential_containers_decide_the_outcome() {
        let container = |name: &str, exit_code: Option<i32>| StoppedContainer {
            name: name.into(),
            exit_code,
            reason: None,
        };
        let task = |containers| StoppedTask {
            task_id: "abc".into(),
            started_by: None,
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/web:8".into(),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers,
            stopping_at_ms: None,
        };
        let essential = vec!["app".to_string()];
        let exit = task_exit(
            task(vec![
                container("app", Some(0)),
                container("log-router", Some(137)),
            ]),
            &essential,
        );
        assert!(exit.succeeded());
        assert_eq!(
            exit.lines(&essential)[1..],
            [
                "container app exited with code 0",
                "container log-router (not essential) exited with code 137"
            ]
        );
        let exit = task_exit(
            task(vec![
                container("app", Some(3)),
                container("log-router", Some(0)),
            ]),
            &essential,
        );
        assert_eq!(exit.failed_containers, ["app"]);
        assert!(failure_message(&exit).contains("essential container(s) app did not exit 0"));
        let never_ran = task_exit(task(vec![container("app", None)]), &essential);
        assert!(!never_ran.succeeded());
    }
}

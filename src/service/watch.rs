//! Watching an ECS service while it deploys and saying why it is stuck:
//! new service events, deployment progress, stopped tasks with their
//! reasons and exit codes, and unhealthy load balancer targets.
//!
//! The same watch runs while we wait for our own rollout and while
//! CloudFormation creates or updates an `AWS::ECS::Service`, which is where
//! users otherwise stare at CREATE_IN_PROGRESS for many minutes.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use aws_sdk_ecs::types::{DesiredStatus, Service};
use serde::Serialize;

use super::verdict::{Doomed, StopClass, classify, judge_evidence};
use crate::aws::aws_error;
use crate::console::Console;
use crate::stack::events::StackEventRecord;

/// The clients a watch needs.
#[derive(Debug, Clone)]
pub struct EcsClients {
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// For services whose deployment controller is CODE_DEPLOY.
    pub codedeploy: aws_sdk_codedeploy::Client,
}

impl EcsClients {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            ecs: aws_sdk_ecs::Client::new(config),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(config),
            codedeploy: aws_sdk_codedeploy::Client::new(config),
        }
    }
}

/// One deployment of a service, without AWS types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentProgress {
    pub id: String,
    /// PRIMARY, ACTIVE or INACTIVE.
    pub status: String,
    pub task_definition: String,
    pub desired: i32,
    pub pending: i32,
    pub running: i32,
    pub failed: i32,
    /// IN_PROGRESS, COMPLETED or FAILED (absent for external controllers).
    pub rollout_state: Option<String>,
    pub rollout_state_reason: Option<String>,
}

impl DeploymentProgress {
    fn from_sdk(deployment: &aws_sdk_ecs::types::Deployment) -> Self {
        Self {
            id: deployment.id().unwrap_or_default().to_string(),
            status: deployment.status().unwrap_or_default().to_string(),
            task_definition: deployment.task_definition().unwrap_or_default().to_string(),
            desired: deployment.desired_count(),
            pending: deployment.pending_count(),
            running: deployment.running_count(),
            failed: deployment.failed_tasks(),
            rollout_state: deployment.rollout_state().map(|s| s.as_str().to_string()),
            rollout_state_reason: deployment.rollout_state_reason().map(str::to_string),
        }
    }

    /// One progress line.
    pub fn to_line(&self) -> String {
        format!(
            "deployment {} ({}, {}): {}/{} running, {} pending, {} failed{}",
            self.id,
            self.status,
            short_task_definition(&self.task_definition),
            self.running,
            self.desired,
            self.pending,
            self.failed,
            self.rollout_state
                .as_deref()
                .map(|s| format!(", rollout {s}"))
                .unwrap_or_default()
        )
    }
}

/// `family:revision` from a task definition ARN, for short log lines.
pub fn short_task_definition(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A stopped task and why it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppedTask {
    pub task_id: String,
    pub task_definition: String,
    /// The deployment (`ecs-svc/...`) or task set that started it.
    pub started_by: Option<String>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub containers: Vec<StoppedContainer>,
    /// When ECS decided to stop it (`stoppingAt`, else `stoppedAt`), in
    /// milliseconds since the Unix epoch.
    pub stopping_at_ms: Option<i64>,
}

/// A container of a stopped task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoppedContainer {
    pub name: String,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

impl StoppedTask {
    /// A stopped task as DescribeTasks gives it.
    pub fn from_sdk(task: &aws_sdk_ecs::types::Task) -> Self {
        let arn = task.task_arn().unwrap_or_default();
        Self {
            task_id: arn.rsplit('/').next().unwrap_or(arn).to_string(),
            task_definition: task.task_definition_arn().unwrap_or_default().to_string(),
            started_by: task.started_by().map(str::to_string),
            stop_code: task.stop_code().map(|c| c.as_str().to_string()),
            stopped_reason: task.stopped_reason().map(str::to_string),
            containers: task
                .containers()
                .iter()
                .map(|c| StoppedContainer {
                    name: c.name().unwrap_or_default().to_string(),
                    exit_code: c.exit_code(),
                    reason: c.reason().map(str::to_string),
                })
                .collect(),
            stopping_at_ms: task
                .stopping_at()
                .or(task.stopped_at())
                .and_then(|t| t.to_millis().ok()),
        }
    }

    /// The task as one line: what stopped it, then each container's part.
    pub fn to_line(&self) -> String {
        let mut line = format!(
            "task {} ({}) stopped",
            self.task_id,
            short_task_definition(&self.task_definition)
        );
        if let Some(code) = &self.stop_code {
            line.push_str(&format!(" [{code}]"));
        }
        if let Some(reason) = &self.stopped_reason {
            line.push_str(&format!(": {reason}"));
        }
        for container in &self.containers {
            let mut parts = Vec::new();
            if let Some(code) = container.exit_code {
                parts.push(format!("exit code {code}"));
            }
            if let Some(reason) = &container.reason {
                parts.push(reason.clone());
            }
            if !parts.is_empty() {
                line.push_str(&format!(
                    "; container {}: {}",
                    container.name,
                    parts.join(", ")
                ));
            }
        }
        line
    }
}

/// A load balancer target that is not healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnhealthyTarget {
    pub target_group: String,
    pub target: String,
    pub state: String,
    pub reason: Option<String>,
    pub description: Option<String>,
}

impl UnhealthyTarget {
    pub fn to_line(&self) -> String {
        let group = self
            .target_group
            .rsplit(':')
            .next()
            .unwrap_or(&self.target_group);
        let mut line = format!("target {} in {group} is {}", self.target, self.state);
        if let Some(reason) = &self.reason {
            line.push_str(&format!(" ({reason})"));
        }
        if let Some(description) = &self.description {
            line.push_str(&format!(": {description}"));
        }
        line
    }
}

/// What one look at the service found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSnapshot {
    pub service_arn: String,
    pub status: String,
    pub deployments: Vec<DeploymentProgress>,
}

/// Follows one service, printing only what is new each time.
#[derive(Debug)]
pub struct ServiceWatch {
    pub cluster: String,
    pub service: String,
    /// Events and stopped tasks older than this belong to earlier deploys.
    since: SystemTime,
    seen_events: HashSet<String>,
    seen_tasks: HashSet<String>,
    seen_targets: HashSet<String>,
    progress: HashMap<String, String>,
    /// Every stopped task seen, oldest first (for the closing diagnosis),
    /// but those the scheduler stopped on purpose (drained, scaled in).
    pub stopped: Vec<StoppedTask>,
    /// Stopped tasks by reason (their id-free diagnosis line): how many,
    /// and how many when a line was last printed, so a crash loop prints a
    /// line per reason at growing counts instead of one per task.
    stop_counts: HashMap<String, (usize, usize)>,
    /// The PRIMARY deployment at the last look.
    pub primary_deployment: Option<String>,
    /// Every unhealthy target seen.
    pub unhealthy: Vec<UnhealthyTarget>,
    /// Also print the service deployment of a BLUE_GREEN, LINEAR or CANARY
    /// service (stage, traffic) when it changes: for services a stack
    /// rolls out, which nothing else follows.
    pub follow_service_deployments: bool,
    last_service_deployment: String,
    /// Essential containers by task definition ARN, for the rule on the
    /// stack path (a direct rollout knows them from its plan).
    essential: HashMap<String, Vec<String>>,
    /// Persistent launch failures the service's events reported (a task
    /// ECS could not even launch leaves no stopped task): (ms, error).
    launch_failures: Vec<(i64, String)>,
    /// Each deployment's failed-task count at the last look.
    failed_tasks: HashMap<String, i32>,
    /// How many looks were taken: while nothing is wrong the explain-only
    /// reads take turns by it.
    looks: u64,
    /// Stopped tasks listed and not read yet (new since the last read).
    unread_stopped: Vec<String>,
}

impl ServiceWatch {
    /// Starts watching from now (with a little slack for clock skew between
    /// this machine and AWS).
    pub fn new(cluster: &str, service: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            service: service.to_string(),
            since: SystemTime::now() - Duration::from_secs(5),
            seen_events: HashSet::new(),
            seen_tasks: HashSet::new(),
            seen_targets: HashSet::new(),
            progress: HashMap::new(),
            stopped: Vec::new(),
            stop_counts: HashMap::new(),
            primary_deployment: None,
            follow_service_deployments: false,
            last_service_deployment: String::new(),
            unhealthy: Vec::new(),
            essential: HashMap::new(),
            launch_failures: Vec::new(),
            failed_tasks: HashMap::new(),
            looks: 0,
            unread_stopped: Vec::new(),
        }
    }

    /// Whether anything has gone wrong in the rollout so far: a failed or
    /// unlaunchable task, an unhealthy target, a task stopped other than on
    /// purpose.
    fn is_troubled(&self, deployments: &[DeploymentProgress]) -> bool {
        deployments.iter().any(|d| d.failed > 0)
            || !self.launch_failures.is_empty()
            || !self.stopped.is_empty()
            || !self.unhealthy.is_empty()
    }

    /// Reads which containers are essential in the task definitions of the
    /// stopped tasks seen (DescribeTaskDefinition, once per revision).
    async fn learn_essential(&mut self, clients: &EcsClients) -> anyhow::Result<()> {
        let unknown: Vec<String> = self
            .stopped
            .iter()
            .map(|t| t.task_definition.clone())
            .filter(|arn| !arn.is_empty() && !self.essential.contains_key(arn))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for arn in unknown {
            let described = clients
                .ecs
                .describe_task_definition()
                .task_definition(&arn)
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("reading task definition {arn}"))?;
            let names = described
                .task_definition()
                .map(|td| {
                    td.container_definitions()
                        .iter()
                        // ECS: a container is essential unless it says not.
                        .filter(|c| c.essential() != Some(false))
                        .filter_map(|c| c.name().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            self.essential.insert(arn, names);
        }
        Ok(())
    }

    /// Whether `container` of task definition `arn` is essential; all are,
    /// as far as this watch knows, until the task definition was read.
    fn is_essential(&self, arn: &str, container: &str) -> bool {
        self.essential
            .get(arn)
            .is_none_or(|names| names.iter().any(|n| n == container))
    }

    fn is_recent(&self, at: Option<&aws_smithy_types::DateTime>) -> bool {
        let since = self
            .since
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        at.is_none_or(|t| t.as_secs_f64() >= since)
    }

    /// Looks at the service once, printing new events, changed deployment
    /// progress, new stopped tasks and newly unhealthy targets. Returns
    /// `None` when the service does not exist (yet).
    pub async fn observe(
        &mut self,
        clients: &EcsClients,
        console: &Console,
    ) -> anyhow::Result<Option<ServiceSnapshot>> {
        let Some(service) = describe_service(&clients.ecs, &self.cluster, &self.service).await?
        else {
            return Ok(None);
        };
        let recent: Vec<_> = service
            .events()
            .iter()
            .filter(|e| self.is_recent(e.created_at()))
            .collect();
        let mut events: Vec<_> = recent
            .into_iter()
            .filter(|e| {
                self.seen_events
                    .insert(e.id().unwrap_or_default().to_string())
            })
            .collect();
        // ECS lists events newest first; a log reads oldest first.
        events.reverse();
        for event in events {
            let message = event.message().unwrap_or_default();
            console.line(message);
            if let Some(error) = super::verdict::launch_failure(message) {
                let at = event
                    .created_at()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or_default();
                self.launch_failures.push((at, error));
            }
        }
        let deployments: Vec<DeploymentProgress> = service
            .deployments()
            .iter()
            .map(DeploymentProgress::from_sdk)
            .collect();
        self.primary_deployment = deployments
            .iter()
            .find(|d| d.status == "PRIMARY")
            .map(|d| d.id.clone());
        for deployment in &deployments {
            self.failed_tasks
                .insert(deployment.id.clone(), deployment.failed);
        }
        for deployment in &deployments {
            let line = deployment.to_line();
            if self.progress.get(&deployment.id) != Some(&line) {
                console.line(&line);
                self.progress.insert(deployment.id.clone(), line);
            }
        }
        let strategy = service
            .deployment_configuration()
            .and_then(|c| c.strategy())
            .map_or("ROLLING", |s| s.as_str());
        if self.follow_service_deployments
            && strategy != "ROLLING"
            && let Some(arn) = service.current_service_deployment()
        {
            match describe_service_deployment_line(clients, arn).await {
                Ok(line) if line != self.last_service_deployment => {
                    console.line(&format!("{}: {line}", self.service));
                    self.last_service_deployment = line;
                }
                Ok(_) => {}
                Err(error) => console.explain_failed("DescribeServiceDeployments", &error),
            }
        }
        // Stopped tasks and target health only explain the rollout: a
        // failure to read them is a warning, never the rollout's verdict.
        // While nothing has gone wrong, one of them is read a look, in
        // turn (the stopped tasks listed, those listed read, the targets'
        // health), so a healthy rollout costs two calls a look against the
        // account's rate limits; from the first sign of trouble all are
        // read at every look. A first failure is thus seen a look or two
        // later, the rest at once.
        let troubled = self.is_troubled(&deployments);
        let look = self.looks;
        self.looks += 1;
        let (list_stopped, describe_stopped, read_targets) = if troubled {
            (true, true, true)
        } else if !self.unread_stopped.is_empty() {
            (false, true, false)
        } else {
            let even = look.is_multiple_of(2);
            (even, false, !even)
        };
        let stopped = async {
            if list_stopped {
                self.list_stopped_tasks(clients).await?;
            }
            if describe_stopped {
                self.describe_stopped_tasks(clients, console).await?;
            }
            Ok::<(), (&'static str, anyhow::Error)>(())
        };
        if let Err((call, error)) = stopped.await {
            console.explain_failed(call, &error);
        }
        for target_group in service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn())
            .filter(|_| read_targets)
        {
            if let Err(error) = self.observe_targets(clients, target_group, console).await {
                console.explain_failed("DescribeTargetHealth", &error);
            }
        }
        Ok(Some(ServiceSnapshot {
            service_arn: service.service_arn().unwrap_or_default().to_string(),
            status: service.status().unwrap_or_default().to_string(),
            deployments,
        }))
    }

    /// Lists the service's stopped tasks not seen yet, to be read by
    /// [`ServiceWatch::describe_stopped_tasks`]. On failure, names the call
    /// that failed with its error.
    async fn list_stopped_tasks(
        &mut self,
        clients: &EcsClients,
    ) -> Result<(), (&'static str, anyhow::Error)> {
        let listed = clients
            .ecs
            .list_tasks()
            .cluster(&self.cluster)
            .service_name(&self.service)
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await
            .map_err(aws_error)
            .with_context(|| format!("listing the stopped tasks of service {}", self.service))
            .map_err(|error| ("ListTasks", error))?;
        self.unread_stopped = listed
            .task_arns()
            .iter()
            .filter(|arn| !self.seen_tasks.contains(*arn))
            .cloned()
            .collect();
        Ok(())
    }

    /// Reads the stopped tasks listed but not read yet, and records (and
    /// prints) those that did not stop on purpose. On failure, names the
    /// call that failed with its error.
    async fn describe_stopped_tasks(
        &mut self,
        clients: &EcsClients,
        console: &Console,
    ) -> Result<(), (&'static str, anyhow::Error)> {
        let fresh = std::mem::take(&mut self.unread_stopped);
        if fresh.is_empty() {
            return Ok(());
        }
        // DescribeTasks takes at most 100 tasks per call.
        for chunk in fresh.chunks(100) {
            let described = clients
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(aws_error)
                .context("describing stopped tasks")
                .map_err(|error| ("DescribeTasks", error))?;
            for task in described.tasks() {
                let arn = task.task_arn().unwrap_or_default().to_string();
                // ECS sets the stop code and reason when it decides to stop
                // a task, while the task is still on its way down; that is
                // the moment worth reporting. Without them, look again later.
                if task.stop_code().is_none() && task.stopped_reason().is_none() {
                    continue;
                }
                self.seen_tasks.insert(arn.clone());
                if task.stopped_at().is_some() && !self.is_recent(task.stopped_at()) {
                    continue;
                }
                let stopped = StoppedTask::from_sdk(task);
                // Drained and scaled-in tasks are the rollout working.
                if classify(&stopped, &|_| true) == StopClass::Normal
                    && stopped.stop_code.as_deref() != Some("EssentialContainerExited")
                {
                    continue;
                }
                let key = diagnosis_of_task(&stopped);
                let (count, printed) = self.stop_counts.entry(key.clone()).or_insert((0, 0));
                *count += 1;
                if *count == 1 {
                    console.line(&stopped.to_line());
                    *printed = 1;
                }
                self.stopped.push(stopped);
            }
        }
        // Repeats of a reason: one line at growing counts.
        let mut repeated: Vec<(&String, &mut (usize, usize))> = self
            .stop_counts
            .iter_mut()
            .filter(|(_, (count, printed))| crosses_milestone(*printed, *count))
            .collect();
        repeated.sort_by(|a, b| a.0.cmp(b.0));
        for (key, (count, printed)) in repeated {
            console.line(&format!(
                "{} more: {key} ({count} so far)",
                *count - *printed
            ));
            *printed = *count;
        }
        Ok(())
    }

    /// The evidence against deployment `deployment_id` when it is doomed:
    /// `threshold` of its tasks stopped for the same persistent reason.
    pub fn evidence(
        &self,
        deployment_id: &str,
        threshold: usize,
        essential: &dyn Fn(&str) -> bool,
    ) -> Option<Doomed> {
        let ours: Vec<&StoppedTask> = self
            .stopped
            .iter()
            .filter(|t| t.started_by.as_deref() == Some(deployment_id))
            .collect();
        judge_evidence(&ours, threshold, essential).or_else(|| {
            // Tasks ECS cannot launch leave no stopped task, only events
            // and the deployment's failed count.
            let failed = self.failed_tasks.get(deployment_id).copied().unwrap_or(0);
            super::verdict::judge_launches(
                usize::try_from(failed).unwrap_or(0),
                &self.launch_failures,
                threshold,
            )
        })
    }

    async fn observe_targets(
        &mut self,
        clients: &EcsClients,
        target_group: &str,
        console: &Console,
    ) -> anyhow::Result<()> {
        let health = clients
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(aws_error)
            .with_context(|| format!("reading the health of target group {target_group}"))?;
        for description in health.target_health_descriptions() {
            let Some(state) = description.target_health().and_then(|h| h.state()) else {
                continue;
            };
            let state = state.as_str();
            if matches!(state, "healthy" | "initial" | "draining") {
                continue;
            }
            let target = description
                .target()
                .map(|t| match t.port() {
                    Some(port) => format!("{}:{port}", t.id().unwrap_or_default()),
                    None => t.id().unwrap_or_default().to_string(),
                })
                .unwrap_or_default();
            let health = description.target_health();
            let unhealthy = UnhealthyTarget {
                target_group: target_group.to_string(),
                target,
                state: state.to_string(),
                reason: health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                description: health.and_then(|h| h.description()).map(str::to_string),
            };
            if self.seen_targets.insert(unhealthy.to_line()) {
                console.line(&unhealthy.to_line());
                self.unhealthy.push(unhealthy);
            }
        }
        Ok(())
    }

    /// The reasons worth repeating when the deploy fails: the distinct
    /// stop reasons of stopped tasks and the unhealthy targets.
    pub fn diagnosis(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for line in self
            .stopped
            .iter()
            .map(diagnosis_of_task)
            .chain(self.unhealthy.iter().map(UnhealthyTarget::to_line))
        {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines
    }
}

/// The cluster and service name in a service ARN: the long form
/// `arn:aws:ecs:region:account:service/cluster/name`, or the old short form
/// `.../service/name` whose cluster is `default`.
pub fn service_location(arn: &str) -> Option<(String, String)> {
    let path = arn.split_once(":service/")?.1;
    match path.split_once('/') {
        Some((cluster, name)) if !cluster.is_empty() && !name.is_empty() => {
            Some((cluster.to_string(), name.to_string()))
        }
        None if !path.is_empty() => Some(("default".to_string(), path.to_string())),
        _ => None,
    }
}

/// Watches the ECS services of a stack while CloudFormation creates or
/// updates them, so a stack stuck on a service's health shows why.
#[derive(Debug)]
pub struct StackServiceWatch {
    clients: EcsClients,
    /// By service ARN: the watch, and how many more looks it gets (`None`
    /// while its resource is in progress).
    watches: Vec<(String, ServiceWatch, Option<u8>)>,
    /// Judge the services' rollouts on their tasks' evidence: this many
    /// stopping for the same reason dooms one (`None`: only watch).
    pub fail_fast_threshold: Option<usize>,
}

impl StackServiceWatch {
    pub fn new(clients: EcsClients) -> Self {
        Self {
            clients,
            watches: Vec::new(),
            fail_fast_threshold: None,
        }
    }

    /// Starts or stops watching a service as its stack events go by.
    pub fn track(&mut self, event: &StackEventRecord) {
        if event.resource_type != "AWS::ECS::Service" {
            return;
        }
        let Some((cluster, name)) = service_location(&event.physical_id) else {
            return;
        };
        let active = event.status.ends_with("_IN_PROGRESS");
        match self
            .watches
            .iter_mut()
            .find(|(arn, _, _)| *arn == event.physical_id)
        {
            // One last look once the resource fails: the reasons of the
            // last stopped tasks often arrive together with the failure.
            // A service that stabilised needs none (the outputs read its
            // deployment after the stack anyway).
            Some(entry) => {
                let failed = event.status.ends_with("_FAILED");
                entry.2 = match (active, failed) {
                    (true, _) => None,
                    (false, true) => Some(1),
                    (false, false) => Some(0),
                };
            }
            None if active => {
                let mut watch = ServiceWatch::new(&cluster, &name);
                watch.follow_service_deployments = true;
                self.watches.push((event.physical_id.clone(), watch, None));
            }
            None => {}
        }
    }

    /// Looks at every service whose resource is in progress. Problems
    /// reading them are reported once and never fail the stack deploy.
    pub async fn observe(&mut self, console: &Console) {
        for (_, watch, remaining) in &mut self.watches {
            match remaining {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            if let Err(error) = watch.observe(&self.clients, console).await {
                console.explain_failed("DescribeServices", &error);
            }
            if self.fail_fast_threshold.is_some()
                && let Err(error) = watch.learn_essential(&self.clients).await
            {
                console.explain_failed("DescribeTaskDefinition", &error);
            }
        }
    }

    /// The first watched service whose current deployment is doomed by
    /// its tasks' evidence: (service name, evidence).
    pub fn doomed(&self) -> Option<(String, Doomed)> {
        let threshold = self.fail_fast_threshold?;
        self.watches.iter().find_map(|(_, watch, remaining)| {
            if remaining.is_some() {
                return None;
            }
            let deployment = watch.primary_deployment.as_deref()?;
            let task_definition = watch
                .stopped
                .iter()
                .find(|t| t.started_by.as_deref() == Some(deployment))
                .map(|t| t.task_definition.clone())
                .unwrap_or_default();
            watch
                .evidence(deployment, threshold, &|container| {
                    watch.is_essential(&task_definition, container)
                })
                .map(|doomed| (watch.service.clone(), doomed))
        })
    }

    /// What the watched services' tasks and targets said.
    pub fn diagnosis(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for line in self
            .watches
            .iter()
            .flat_map(|(_, watch, _)| watch.diagnosis())
        {
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines
    }
}

/// The progress line of a service deployment.
async fn describe_service_deployment_line(
    clients: &EcsClients,
    arn: &str,
) -> anyhow::Result<String> {
    let deployment = super::strategy::describe_deployment(clients, arn).await?;
    Ok(super::strategy::DeploymentLook::from_sdk(&deployment).to_line())
}

/// Whether a reason counted `count` times, last printed at `printed`, has
/// reached a count worth a line (2, 3, 5, 10, 20, 50, 100, ...).
fn crosses_milestone(printed: usize, count: usize) -> bool {
    const MILESTONES: &[usize] = &[2, 3, 5, 10, 20, 50, 100, 200, 500, 1000];
    MILESTONES
        .iter()
        .copied()
        .chain((2..).map(|n| n * 1000))
        .take_while(|milestone| *milestone <= count)
        .any(|milestone| milestone > printed)
}

/// A stopped task's reasons without its id, so identical failures of many
/// tasks collapse into one line.
fn diagnosis_of_task(task: &StoppedTask) -> String {
    let mut line = format!(
        "tasks of {} stopped",
        short_task_definition(&task.task_definition)
    );
    // Without the request and task ids Fargate's texts carry, so the same
    // failure is one line however many tasks had it.
    if let Some(reason) = &task.stopped_reason {
        line.push_str(&format!(": {}", super::verdict::without_ids(reason)));
    }
    for container in &task.containers {
        if let Some(code) = container.exit_code {
            line.push_str(&format!(
                "; container {} exited with code {code}",
                container.name
            ));
        }
        if let Some(reason) = &container.reason {
            line.push_str(&format!("; container {}: {reason}", container.name));
        }
    }
    line
}

/// Whether the cluster exists and is active (DescribeClusters reports a
/// missing cluster as a failure entry, not an error).
pub async fn is_active_cluster(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
) -> anyhow::Result<bool> {
    let output = client
        .describe_clusters()
        .clusters(cluster)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("describing cluster {cluster}"))?;
    Ok(output
        .clusters()
        .iter()
        .any(|c| c.status() == Some("ACTIVE")))
}

/// The service, or `None` when ECS reports it missing or inactive.
pub async fn describe_service(
    client: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<Option<Service>> {
    let output = client
        .describe_services()
        .cluster(cluster)
        .services(service)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("describing service {service} in cluster {cluster}"))?;
    Ok(output
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_print_at_growing_counts_only() {
        let mut printed = 1;
        let mut lines = Vec::new();
        for count in 2..=120 {
            if crosses_milestone(printed, count) {
                lines.push(count);
                printed = count;
            }
        }
        assert_eq!(lines, [2, 3, 5, 10, 20, 50, 100]);
        // Several tasks in one look: one line for the lot.
        assert!(crosses_milestone(1, 7));
        assert!(!crosses_milestone(7, 9));
    }

    fn stopped(reason: &str, exit: Option<i32>, container_reason: Option<&str>) -> StoppedTask {
        StoppedTask {
            task_id: "0f1e2d".into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/web:7".into(),
            started_by: Some("ecs-svc/7".into()),
            stop_code: Some("TaskFailedToStart".into()),
            stopped_reason: Some(reason.into()),
            containers: vec![StoppedContainer {
                name: "app".into(),
                exit_code: exit,
                reason: container_reason.map(str::to_string),
            }],
            stopping_at_ms: None,
        }
    }

    #[test]
    fn stopped_task_lines_carry_code_reason_and_containers() {
        let task = stopped(
            "CannotPullContainerError: pull image manifest has been retried 1 time(s)",
            None,
            Some("CannotPullContainerError: not found"),
        );
        assert_eq!(
            task.to_line(),
            "task 0f1e2d (web:7) stopped [TaskFailedToStart]: CannotPullContainerError: pull image manifest has been retried 1 time(s); container app: CannotPullContainerError: not found"
        );
        let crashed = stopped("Essential container in task exited", Some(3), None);
        assert!(
            crashed.to_line().ends_with("; container app: exit code 3"),
            "{}",
            crashed.to_line()
        );
    }

    #[test]
    fn progress_line_shows_counts_and_rollout_state() {
        let deployment = DeploymentProgress {
            id: "ecs-svc/123".into(),
            status: "PRIMARY".into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/web:8".into(),
            desired: 2,
            pending: 1,
            running: 1,
            failed: 0,
            rollout_state: Some("IN_PROGRESS".into()),
            rollout_state_reason: None,
        };
        assert_eq!(
            deployment.to_line(),
            "deployment ecs-svc/123 (PRIMARY, web:8): 1/2 running, 1 pending, 0 failed, rollout IN_PROGRESS"
        );
    }

    #[test]
    fn service_arns_in_both_forms() {
        assert_eq!(
            service_location("arn:aws:ecs:us-east-1:123456789012:service/prod/web"),
            Some(("prod".into(), "web".into()))
        );
        assert_eq!(
            service_location("arn:aws:ecs:us-east-1:123456789012:service/web"),
            Some(("default".into(), "web".into()))
        );
        assert_eq!(service_location(""), None);
        assert_eq!(service_location("arn:aws:ecs:us-east-1:1:task/x"), None);
    }

    #[test]
    fn diagnosis_collapses_identical_task_failures() {
        let mut watch = ServiceWatch::new("c", "s");
        watch.stopped = vec![
            stopped("Essential container in task exited", Some(1), None),
            stopped("Essential container in task exited", Some(1), None),
        ];
        watch.unhealthy = vec![UnhealthyTarget {
            target_group: "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc".into(),
            target: "10.0.0.5:8080".into(),
            state: "unhealthy".into(),
            reason: Some("Target.ResponseCodeMismatch".into()),
            description: Some("Health checks failed with these codes: [404]".into()),
        }];
        assert_eq!(
            watch.diagnosis(),
            vec![
                "tasks of web:7 stopped: Essential container in task exited; container app exited with code 1".to_string(),
                "target 10.0.0.5:8080 in targetgroup/web/abc is unhealthy (Target.ResponseCodeMismatch): Health checks failed with these codes: [404]".to_string(),
            ]
        );
    }
}

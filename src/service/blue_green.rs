//! Starting a CodeDeploy blue/green deployment and following it to a
//! verdict: lifecycle events as they change, production traffic as it
//! moves between the task sets, the replacement tasks that stop and why,
//! and on failure the root cause CodeDeploy, the hooks and ECS give.
//!
//! CreateDeployment takes no idempotency token. A retried call whose first
//! answer was lost meets CodeDeploy's one-active-deployment-per-group rule
//! (DeploymentLimitExceededException); the active deployment is then ours
//! when its appspec digest is the one we sent, and it is adopted instead of
//! failing or starting a second one.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_codedeploy::types::{DeploymentInfo, DeploymentStatus, EcsTarget};

use super::codedeploy::{CodeDeployPlan, WaitUntil, revision};
use super::verdict::{FailFast, OnRolloutFailure};
use super::watch::{EcsClients, ServiceWatch};
use crate::aws::aws_error;
use crate::console::Console;
use crate::stack::wait::{PollSchedule, Poller};

/// A deployment this job started (or adopted after a lost answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedDeployment {
    pub deployment_id: String,
    /// The appspec sent, as JSON.
    pub appspec: String,
    /// Found active after CreateDeployment's answer was lost.
    pub adopted: bool,
}

/// Waits until the group has no active deployment: CodeDeploy takes one at
/// a time, and a deployment whose production traffic has moved stays
/// InProgress through the original task set's termination wait, which a
/// previous run did not wait out. A deployment waiting for a manual reroute
/// (Ready) would wait for a person, so it is a failure that says so.
pub async fn wait_for_idle_group(
    client: &aws_sdk_codedeploy::Client,
    plan: &CodeDeployPlan,
    schedule: PollSchedule,
    timeout: Duration,
    console: &Console,
) -> anyhow::Result<()> {
    let mut poller = Poller::new(schedule, timeout);
    let mut announced = String::new();
    loop {
        let listed = client
            .list_deployments()
            .application_name(&plan.application)
            .deployment_group_name(&plan.deployment_group)
            .set_include_only_statuses(Some(active_statuses()))
            .send()
            .await
            .map_err(aws_error)
            .context("listing the group's active deployments")?;
        let Some(active) = listed.deployments().first() else {
            return Ok(());
        };
        let info = get_deployment(client, active).await?;
        let status = info.status().map_or("?", |s| s.as_str());
        if info.status() == Some(&DeploymentStatus::Ready) {
            anyhow::bail!(
                "deployment {active} of group {} waits for a reroute (Ready): continue it (aws deploy continue-deployment --deployment-id {active}) or stop it, then run again",
                plan.deployment_group
            );
        }
        if announced != *active {
            console.line(&format!(
                "deployment {active} of group {} is {status} (CodeDeploy runs one at a time; it may be in the original task set's termination wait): waiting for it to finish",
                plan.deployment_group
            ));
            announced = active.clone();
        }
        if poller.tick().await.is_err() {
            anyhow::bail!(
                "deployment {active} of group {} was still {status} after {}; nothing was deployed",
                plan.deployment_group,
                humantime::format_duration(timeout)
            );
        }
    }
}

fn active_statuses() -> Vec<DeploymentStatus> {
    vec![
        DeploymentStatus::Created,
        DeploymentStatus::Queued,
        DeploymentStatus::InProgress,
        DeploymentStatus::Baking,
        DeploymentStatus::Ready,
    ]
}

/// Starts the deployment of `task_definition_arn`.
pub async fn start_deployment(
    client: &aws_sdk_codedeploy::Client,
    plan: &CodeDeployPlan,
    task_definition_arn: &str,
) -> anyhow::Result<StartedDeployment> {
    let (appspec, sha256) = plan.appspec_content(task_definition_arn);
    let result = client
        .create_deployment()
        .application_name(&plan.application)
        .deployment_group_name(&plan.deployment_group)
        .revision(revision(&appspec, &sha256))
        .set_deployment_config_name(plan.deployment_config.clone())
        .set_description(plan.description.clone())
        .send()
        .await;
    match result {
        Ok(output) => Ok(StartedDeployment {
            deployment_id: output
                .deployment_id()
                .context("CreateDeployment answered no deployment id")?
                .to_string(),
            appspec,
            adopted: false,
        }),
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.meta().code() == Some("DeploymentLimitExceededException")
            }) =>
        {
            match find_active_deployment(client, plan, &sha256).await? {
                Some(deployment_id) => Ok(StartedDeployment {
                    deployment_id,
                    appspec,
                    adopted: true,
                }),
                None => Err(aws_error(error)).with_context(|| {
                    format!(
                        "starting a deployment in CodeDeploy group {}: another deployment of the group is in progress; wait for it, or stop it",
                        plan.deployment_group
                    )
                }),
            }
        }
        Err(error) => Err(aws_error(error)).with_context(|| {
            format!(
                "starting a deployment in CodeDeploy {}/{}",
                plan.application, plan.deployment_group
            )
        }),
    }
}

/// The group's active deployment whose appspec digest is `sha256`.
async fn find_active_deployment(
    client: &aws_sdk_codedeploy::Client,
    plan: &CodeDeployPlan,
    sha256: &str,
) -> anyhow::Result<Option<String>> {
    let listed = client
        .list_deployments()
        .application_name(&plan.application)
        .deployment_group_name(&plan.deployment_group)
        .set_include_only_statuses(Some(active_statuses()))
        .send()
        .await
        .map_err(aws_error)
        .context("listing the group's active deployments")?;
    for id in listed.deployments() {
        let info = get_deployment(client, id).await?;
        let digest = info
            .revision()
            .and_then(|r| r.app_spec_content())
            .and_then(|c| c.sha256());
        if digest == Some(sha256) {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

async fn get_deployment(
    client: &aws_sdk_codedeploy::Client,
    deployment_id: &str,
) -> anyhow::Result<DeploymentInfo> {
    client
        .get_deployment()
        .deployment_id(deployment_id)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("reading CodeDeploy deployment {deployment_id}"))?
        .deployment_info()
        .cloned()
        .with_context(|| format!("GetDeployment answered nothing for {deployment_id}"))
}

/// The ECS target of a deployment (lifecycle events, task sets), read only
/// to explain.
async fn ecs_target(
    client: &aws_sdk_codedeploy::Client,
    deployment_id: &str,
) -> anyhow::Result<Option<EcsTarget>> {
    let listed = client
        .list_deployment_targets()
        .deployment_id(deployment_id)
        .send()
        .await
        .map_err(aws_error)
        .context("listing the deployment's targets")?;
    if listed.target_ids().is_empty() {
        return Ok(None);
    }
    let targets = client
        .batch_get_deployment_targets()
        .deployment_id(deployment_id)
        .set_target_ids(Some(listed.target_ids().to_vec()))
        .send()
        .await
        .map_err(aws_error)
        .context("reading the deployment's targets")?;
    Ok(targets
        .deployment_targets()
        .iter()
        .find_map(|t| t.ecs_target().cloned()))
}

/// How the deployment ended, when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Production traffic is on the new revision (or, with `wait-until:
    /// ready`, the test listener serves it).
    Done { state: &'static str },
    Failed {
        state: &'static str,
        causes: Vec<String>,
    },
}

/// What has been printed of a deployment, so each look prints only what
/// changed.
#[derive(Debug, Default)]
pub struct DeploymentWatch {
    status: String,
    events: HashMap<String, String>,
    traffic: String,
    reroute_hint: bool,
}

impl DeploymentWatch {
    /// Prints what changed in `info` and `target`; returns the outcome once
    /// the deployment has one for what the step waits for.
    pub fn look(
        &mut self,
        plan: &CodeDeployPlan,
        info: &DeploymentInfo,
        target: Option<&EcsTarget>,
        console: &Console,
    ) -> Option<Outcome> {
        let status = info.status().map_or("Unknown", |s| s.as_str());
        if status != self.status {
            console.line(&format!("CodeDeploy deployment: {status}"));
            self.status = status.to_string();
        }
        let mut events_done = HashMap::new();
        if let Some(target) = target {
            for event in target.lifecycle_events() {
                let name = event.lifecycle_event_name().unwrap_or("?");
                let event_status = event.status().map_or("Unknown", |s| s.as_str());
                events_done.insert(name.to_string(), event_status.to_string());
                if self.events.get(name).map(String::as_str) == Some(event_status) {
                    continue;
                }
                self.events
                    .insert(name.to_string(), event_status.to_string());
                if event_status == "Pending" {
                    continue;
                }
                let took = match (event.start_time(), event.end_time()) {
                    (Some(start), Some(end)) => {
                        format!(" ({:.1} s)", end.as_secs_f64() - start.as_secs_f64())
                    }
                    _ => String::new(),
                };
                console.line(&format!("  {name}: {event_status}{took}"));
            }
            let traffic = traffic_line(target);
            if !traffic.is_empty() && traffic != self.traffic {
                console.line(&format!("  {traffic}"));
                self.traffic = traffic;
            }
        }
        let done = |name: &str| events_done.get(name).map(String::as_str) == Some("Succeeded");
        match info.status() {
            Some(DeploymentStatus::Succeeded) => Some(Outcome::Done { state: "COMPLETED" }),
            Some(DeploymentStatus::Failed | DeploymentStatus::Stopped) => Some(Outcome::Failed {
                state: if info
                    .rollback_info()
                    .and_then(|r| r.rollback_deployment_id())
                    .is_some()
                {
                    "ROLLED_BACK"
                } else {
                    "FAILED"
                },
                causes: causes(info, target),
            }),
            _ if plan.wait_until == WaitUntil::Ready
                && (done("AfterAllowTestTraffic")
                    || info.status() == Some(&DeploymentStatus::Ready)) =>
            {
                Some(Outcome::Done { state: "READY" })
            }
            // The original task set's termination wait is not waited out:
            // production traffic is on the new revision already.
            _ if done("AfterAllowTraffic") && green_weight(target) >= 100.0 => {
                if plan.termination_wait_minutes > 0 {
                    console.line(&format!(
                        "production traffic is on the new revision; CodeDeploy terminates the original task set after {} min (not waited for)",
                        plan.termination_wait_minutes
                    ));
                }
                Some(Outcome::Done { state: "COMPLETED" })
            }
            Some(DeploymentStatus::Ready) => {
                if !self.reroute_hint {
                    console.line(&format!(
                        "the test listener serves the new revision; CodeDeploy waits for a reroute (aws deploy continue-deployment --deployment-id {}){}",
                        info.deployment_id().unwrap_or("?"),
                        plan.ready_wait_minutes
                            .map(|m| format!(", stopping the deployment after {m} min"))
                            .unwrap_or_default()
                    ));
                    self.reroute_hint = true;
                }
                None
            }
            _ => None,
        }
    }
}

fn green_weight(target: Option<&EcsTarget>) -> f64 {
    target
        .into_iter()
        .flat_map(EcsTarget::task_sets_info)
        .filter(|set| set.task_set_label().map(|l| l.as_str()) == Some("Green"))
        .map(|set| set.traffic_weight())
        .sum()
}

/// "production traffic: 10% on the replacement task set (2/2 running), 90%
/// on the original" from the target's task sets.
fn traffic_line(target: &EcsTarget) -> String {
    let sets = target.task_sets_info();
    let label = |name: &str| {
        sets.iter()
            .find(|s| s.task_set_label().map(|l| l.as_str()) == Some(name))
    };
    match (label("Green"), label("Blue")) {
        (Some(green), blue) => {
            let mut line = format!(
                "production traffic: {}% on the replacement task set ({}/{} running)",
                green.traffic_weight(),
                green.running_count(),
                green.desired_count()
            );
            if let Some(blue) = blue {
                line.push_str(&format!(", {}% on the original", blue.traffic_weight()));
            }
            line
        }
        _ => String::new(),
    }
}

/// Why a deployment failed: CodeDeploy's error, the failed lifecycle event
/// and its diagnostics, the rollback.
fn causes(info: &DeploymentInfo, target: Option<&EcsTarget>) -> Vec<String> {
    let mut causes = Vec::new();
    if let Some(error) = info.error_information() {
        causes.push(format!(
            "CodeDeploy: {}: {}",
            error.code().map_or("?", |c| c.as_str()),
            error.message().unwrap_or_default()
        ));
    }
    for event in target.into_iter().flat_map(EcsTarget::lifecycle_events) {
        if event.status().map(|s| s.as_str()) != Some("Failed") {
            continue;
        }
        let diagnostics = event.diagnostics();
        causes.push(format!(
            "lifecycle event {} failed{}{}",
            event.lifecycle_event_name().unwrap_or("?"),
            diagnostics
                .and_then(|d| d.error_code())
                .map(|c| format!(" [{}]", c.as_str()))
                .unwrap_or_default(),
            diagnostics
                .and_then(|d| d.message())
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ));
    }
    if let Some(rollback) = info.rollback_info() {
        let message = rollback.rollback_message().unwrap_or_default();
        match rollback.rollback_deployment_id() {
            Some(id) => causes.push(format!(
                "rolled back by deployment {id}{}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            )),
            None if !message.is_empty() => causes.push(format!("rollback: {message}")),
            None => {}
        }
    }
    causes
}

/// The replacement (Green) task set's id: its tasks' `startedBy`.
fn replacement_task_set(target: Option<&EcsTarget>) -> Option<String> {
    target?
        .task_sets_info()
        .iter()
        .find(|set| set.task_set_label().map(|l| l.as_str()) == Some("Green"))
        .and_then(|set| set.identifer().map(str::to_string))
}

/// Waits for the deployment's outcome, bounded by `timeout`, printing its
/// progress; ECS's side (events, stopped replacement tasks, target health)
/// is followed through `watch`. CodeDeploy waits up to an hour for a
/// replacement task set that cannot become healthy; with fail-fast on, the
/// replacement tasks' evidence decides at once (`rollback`: StopDeployment
/// with automatic rollback, and the stop waited for).
#[allow(clippy::too_many_arguments)]
pub async fn wait_for_deployment(
    clients: &EcsClients,
    plan: &CodeDeployPlan,
    deployment_id: &str,
    watch: &mut ServiceWatch,
    schedule: PollSchedule,
    timeout: Duration,
    fail_fast: FailFast,
    console: &Console,
) -> anyhow::Result<Outcome> {
    let mut poller = Poller::new(schedule, timeout);
    let mut seen = DeploymentWatch::default();
    loop {
        let info = get_deployment(&clients.codedeploy, deployment_id).await?;
        let target = match ecs_target(&clients.codedeploy, deployment_id).await {
            Ok(target) => target,
            Err(error) => {
                console.explain_failed("BatchGetDeploymentTargets", &error);
                None
            }
        };
        if let Err(error) = watch.observe(clients, console).await {
            console.explain_failed("DescribeServices", &error);
        }
        if let Some(outcome) = seen.look(plan, &info, target.as_ref(), console) {
            return Ok(match outcome {
                Outcome::Failed { state, mut causes } => {
                    causes.extend(watch.diagnosis());
                    Outcome::Failed { state, causes }
                }
                done => done,
            });
        }
        if fail_fast.on_failure != OnRolloutFailure::Wait
            && let Some(green) = replacement_task_set(target.as_ref())
            && let Some(doomed) = watch.evidence(&green, fail_fast.threshold, &|_| true)
        {
            let evidence = doomed.describe("the replacement task set");
            let mut causes = vec![evidence.clone()];
            causes.extend(watch.diagnosis());
            if fail_fast.on_failure == OnRolloutFailure::Stop {
                causes.push(format!(
                    "CodeDeploy carries on with deployment {deployment_id} (it gives up on a replacement that never becomes healthy after an hour)"
                ));
                return Ok(Outcome::Failed {
                    state: "FAILED",
                    causes,
                });
            }
            console.line(&format!(
                "the deployment is doomed: {evidence}; stopping it with automatic rollback (on-rollout-failure: rollback)"
            ));
            stop_deployment(&clients.codedeploy, deployment_id).await?;
            loop {
                let info = get_deployment(&clients.codedeploy, deployment_id).await?;
                if matches!(
                    info.status(),
                    Some(DeploymentStatus::Stopped | DeploymentStatus::Failed)
                ) {
                    causes.extend(self::causes(&info, None));
                    return Ok(Outcome::Failed {
                        state: "ROLLED_BACK",
                        causes,
                    });
                }
                if poller.tick().await.is_err() {
                    causes.push(format!("deployment {deployment_id} was still stopping when wait-for-minutes ran out"));
                    return Ok(Outcome::Failed {
                        state: "FAILED",
                        causes,
                    });
                }
            }
        }
        if poller.tick().await.is_err() {
            anyhow::bail!(
                "CodeDeploy deployment {deployment_id} did not finish within {} (it is {}); CodeDeploy carries on with it",
                humantime::format_duration(timeout),
                info.status().map_or("?", |s| s.as_str())
            );
        }
    }
}

/// Stops a deployment and rolls it back (`cancel-on-abort`).
pub async fn stop_deployment(
    client: &aws_sdk_codedeploy::Client,
    deployment_id: &str,
) -> anyhow::Result<()> {
    client
        .stop_deployment()
        .deployment_id(deployment_id)
        .auto_rollback_enabled(true)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("stopping CodeDeploy deployment {deployment_id}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{Console, LogBuffer, LogTarget};
    use crate::service::codedeploy::TrafficShift;
    use aws_sdk_codedeploy::types::{
        Diagnostics, EcsTaskSet, ErrorCode, ErrorInformation, LifecycleErrorCode, LifecycleEvent,
        LifecycleEventStatus, RollbackInfo, TargetLabel,
    };

    fn plan(wait_until: WaitUntil) -> CodeDeployPlan {
        CodeDeployPlan {
            application: "AppECS-prod-web".into(),
            deployment_group: "DgpECS-prod-web".into(),
            deployment_config: None,
            config_name: "CodeDeployDefault.ECSCanary10Percent5Minutes".into(),
            traffic: TrafficShift::Canary {
                percentage: 10,
                minutes: 5,
            },
            description: None,
            appspec: serde_json::json!({}),
            appspec_source: "generated from the service".into(),
            wait_until,
            ready_wait_minutes: None,
            termination_wait_minutes: 5,
            auto_rollback: true,
        }
    }

    fn info(status: DeploymentStatus) -> DeploymentInfo {
        DeploymentInfo::builder()
            .deployment_id("d-ABC123")
            .status(status)
            .build()
    }

    fn event(name: &str, status: LifecycleEventStatus) -> LifecycleEvent {
        LifecycleEvent::builder()
            .lifecycle_event_name(name)
            .status(status)
            .build()
    }

    fn task_set(label: TargetLabel, weight: f64) -> EcsTaskSet {
        EcsTaskSet::builder()
            .task_set_label(label)
            .traffic_weight(weight)
            .running_count(2)
            .desired_count(2)
            .build()
    }

    fn target(events: Vec<LifecycleEvent>, green: f64) -> EcsTarget {
        EcsTarget::builder()
            .set_lifecycle_events(Some(events))
            .task_sets_info(task_set(TargetLabel::Green, green))
            .task_sets_info(task_set(TargetLabel::Blue, 100.0 - green))
            .build()
    }

    fn console() -> (Console, LogBuffer) {
        let buffer = LogBuffer::default();
        (
            Console::to(false, LogTarget::Buffer(buffer.clone())),
            buffer,
        )
    }

    #[test]
    fn progress_is_printed_once_per_change_and_traffic_decides_completion() {
        let (console, buffer) = console();
        let mut watch = DeploymentWatch::default();
        let plan = plan(WaitUntil::Complete);
        let installing = target(
            vec![event("Install", LifecycleEventStatus::InProgress)],
            0.0,
        );
        assert_eq!(
            watch.look(
                &plan,
                &info(DeploymentStatus::InProgress),
                Some(&installing),
                &console
            ),
            None
        );
        assert_eq!(
            watch.look(
                &plan,
                &info(DeploymentStatus::InProgress),
                Some(&installing),
                &console
            ),
            None
        );
        let shifting = target(
            vec![
                event("Install", LifecycleEventStatus::Succeeded),
                event("AllowTraffic", LifecycleEventStatus::InProgress),
            ],
            10.0,
        );
        assert_eq!(
            watch.look(
                &plan,
                &info(DeploymentStatus::InProgress),
                Some(&shifting),
                &console
            ),
            None
        );
        let shifted = target(
            vec![
                event("Install", LifecycleEventStatus::Succeeded),
                event("AllowTraffic", LifecycleEventStatus::Succeeded),
                event("AfterAllowTraffic", LifecycleEventStatus::Succeeded),
            ],
            100.0,
        );
        assert_eq!(
            watch.look(
                &plan,
                &info(DeploymentStatus::InProgress),
                Some(&shifted),
                &console
            ),
            Some(Outcome::Done { state: "COMPLETED" })
        );
        let log = buffer.contents();
        assert_eq!(log.matches("Install: InProgress").count(), 1, "{log}");
        assert!(log.contains("production traffic: 10% on the replacement task set (2/2 running), 90% on the original"), "{log}");
        assert!(
            log.contains("terminates the original task set after 5 min (not waited for)"),
            "{log}"
        );
    }

    #[test]
    fn ready_is_enough_when_asked_for() {
        let (console, _) = console();
        let tested = target(
            vec![event(
                "AfterAllowTestTraffic",
                LifecycleEventStatus::Succeeded,
            )],
            0.0,
        );
        assert_eq!(
            DeploymentWatch::default().look(
                &plan(WaitUntil::Ready),
                &info(DeploymentStatus::InProgress),
                Some(&tested),
                &console
            ),
            Some(Outcome::Done { state: "READY" })
        );
        assert_eq!(
            DeploymentWatch::default().look(
                &plan(WaitUntil::Complete),
                &info(DeploymentStatus::Ready),
                Some(&tested),
                &console
            ),
            None
        );
    }

    #[test]
    fn a_failure_names_codedeploys_error_the_failed_hook_and_the_rollback() {
        let (console, _) = console();
        let failed = DeploymentInfo::builder()
            .deployment_id("d-ABC123")
            .status(DeploymentStatus::Failed)
            .error_information(
                ErrorInformation::builder()
                    .code(ErrorCode::HookExecutionFailure)
                    .message("The deployment failed because a lifecycle hook failed.")
                    .build(),
            )
            .rollback_info(
                RollbackInfo::builder()
                    .rollback_deployment_id("d-ROLL")
                    .build(),
            )
            .build();
        let hook = LifecycleEvent::builder()
            .lifecycle_event_name("AfterAllowTestTraffic")
            .status(LifecycleEventStatus::Failed)
            .diagnostics(
                Diagnostics::builder()
                    .error_code(LifecycleErrorCode::ScriptFailed)
                    .message("smoke test returned Failed")
                    .build(),
            )
            .build();
        let outcome = DeploymentWatch::default().look(
            &plan(WaitUntil::Complete),
            &failed,
            Some(&target(vec![hook], 0.0)),
            &console,
        );
        assert_eq!(
            outcome,
            Some(Outcome::Failed {
                state: "ROLLED_BACK",
                causes: vec![
                    "CodeDeploy: HOOK_EXECUTION_FAILURE: The deployment failed because a lifecycle hook failed.".into(),
                    "lifecycle event AfterAllowTestTraffic failed [ScriptFailed]: smoke test returned Failed".into(),
                    "rolled back by deployment d-ROLL".into(),
                ]
            })
        );
    }
}

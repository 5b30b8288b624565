//! Updating a service to a task definition and waiting for THAT deployment.
//!
//! ECS's generic "services stable" waiter reports success when the service is
//! steady, even if the circuit breaker rolled back to the previous task
//! definition. Here success means our deployment is PRIMARY with
//! `rolloutState=COMPLETED`; a failed rollout or a rollback is a failure.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use super::plan::ReadyRollout;
use super::verdict::{FailFast, OnRolloutFailure};
use super::watch::{DeploymentProgress, EcsClients, ServiceWatch, short_task_definition};
use crate::aws::aws_error;
use crate::console::Console;
use crate::stack::wait::{PollSchedule, Poller, TimedOut};

/// What the deployment we are waiting for looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutVerdict {
    InProgress,
    Completed,
    Failed(String),
    /// The circuit breaker (or someone) put another task definition back.
    RolledBack {
        primary_task_definition: String,
    },
}

/// Judges the rollout of `task_definition` (deployment `deployment_id` when
/// known) from the service's deployments.
pub fn judge_rollout(
    deployments: &[DeploymentProgress],
    task_definition: &str,
    deployment_id: Option<&str>,
) -> RolloutVerdict {
    let ours = deployments.iter().find(|d| match deployment_id {
        Some(id) => d.id == id,
        None => d.task_definition == task_definition,
    });
    let primary = deployments.iter().find(|d| d.status == "PRIMARY");
    let Some(ours) = ours else {
        return match primary {
            Some(p) if p.task_definition != task_definition => RolloutVerdict::RolledBack {
                primary_task_definition: p.task_definition.clone(),
            },
            _ => RolloutVerdict::Failed("our deployment is no longer listed on the service".into()),
        };
    };
    if let Some(p) =
        primary.filter(|p| p.task_definition != task_definition && ours.status != "PRIMARY")
    {
        return RolloutVerdict::RolledBack {
            primary_task_definition: p.task_definition.clone(),
        };
    }
    if ours.rollout_state.as_deref() == Some("FAILED") {
        return RolloutVerdict::Failed(
            ours.rollout_state_reason
                .clone()
                .unwrap_or_else(|| "the deployment failed".into()),
        );
    }
    if ours.status != "PRIMARY" {
        return RolloutVerdict::InProgress;
    }
    let completed = match ours.rollout_state.as_deref() {
        Some(state) => state == "COMPLETED",
        // Without rollout states (external controllers), steady means all
        // tasks of ours run and no other deployment is left.
        None => ours.running == ours.desired && ours.pending == 0 && deployments.len() == 1,
    };
    if completed {
        RolloutVerdict::Completed
    } else {
        RolloutVerdict::InProgress
    }
}

/// The result of a rollout, also on failure.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rollout {
    pub service_arn: Option<String>,
    pub deployment_id: Option<String>,
    pub rollout_state: Option<String>,
    pub task_definition_arn: String,
    /// Why tasks stopped and which targets were unhealthy, de-duplicated.
    pub diagnosis: Vec<String>,
}

/// Points the service at `task_definition` (UpdateService) and returns the
/// id of the deployment that started.
pub async fn update_service(
    clients: &EcsClients,
    rollout: &ReadyRollout,
    service: &str,
    task_definition: &str,
) -> anyhow::Result<(String, Option<String>)> {
    let cluster = rollout.cluster.as_str();
    let settings = &rollout.service_settings;
    let output = clients
        .ecs
        .update_service()
        .cluster(cluster)
        .service(service)
        .task_definition(task_definition)
        .set_desired_count(rollout.desired_count)
        .force_new_deployment(rollout.force_new_deployment)
        .set_enable_ecs_managed_tags(settings.enable_ecs_managed_tags)
        .set_propagate_tags(
            settings
                .propagate_tags
                .as_deref()
                .map(aws_sdk_ecs::types::PropagateTags::from),
        )
        .set_volume_configurations(settings.managed_ebs_volume.clone().map(|v| vec![v]))
        .set_deployment_configuration(rollout.deployment_configuration.clone())
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("updating service {service} in cluster {cluster}"))?;
    let updated = output
        .service()
        .context("UpdateService returned no service")?;
    let deployment_id = updated
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY") && d.task_definition() == Some(task_definition))
        .and_then(|d| d.id())
        .map(str::to_string);
    Ok((
        updated.service_arn().unwrap_or_default().to_string(),
        deployment_id,
    ))
}

/// Waits for our deployment to complete, printing what happens, bounded by
/// `timeout`. On failure the error says why and `rollout.diagnosis` holds the
/// stopped-task and target-health reasons. With fail-fast on, a deployment
/// whose tasks keep stopping for the same reason is judged at once and,
/// with `rollback`, the previous revision is put back and waited for.
#[allow(clippy::too_many_arguments)]
pub async fn wait_for_rollout(
    clients: &EcsClients,
    plan: &ReadyRollout,
    watch: &mut ServiceWatch,
    rollout: &mut Rollout,
    console: &Console,
    schedule: PollSchedule,
    fail_fast: FailFast,
) -> anyhow::Result<()> {
    let timeout = plan.wait_timeout;
    let mut poller = Poller::new(schedule, timeout);
    let task_definition = rollout.task_definition_arn.clone();
    loop {
        let snapshot = watch.observe(clients, console).await?;
        rollout.diagnosis = watch.diagnosis();
        let Some(snapshot) = snapshot else {
            anyhow::bail!(
                "service {} disappeared from cluster {} during the rollout",
                watch.service,
                watch.cluster
            );
        };
        rollout.service_arn = Some(snapshot.service_arn.clone());
        let ours = snapshot
            .deployments
            .iter()
            .find(|d| match &rollout.deployment_id {
                Some(id) => &d.id == id,
                None => d.task_definition == task_definition,
            });
        if let Some(ours) = ours {
            rollout.deployment_id = Some(ours.id.clone());
            rollout.rollout_state = ours.rollout_state.clone();
        }
        match judge_rollout(
            &snapshot.deployments,
            &task_definition,
            rollout.deployment_id.as_deref(),
        ) {
            RolloutVerdict::Completed => {
                console.line(&format!(
                    "deployment {} completed: service {} runs {}",
                    rollout.deployment_id.as_deref().unwrap_or("?"),
                    watch.service,
                    short_task_definition(&task_definition)
                ));
                return Ok(());
            }
            RolloutVerdict::Failed(reason) => {
                rollout.rollout_state = Some("FAILED".into());
                anyhow::bail!(
                    "the deployment of {} to service {} failed: {reason}",
                    short_task_definition(&task_definition),
                    watch.service
                );
            }
            RolloutVerdict::RolledBack {
                primary_task_definition,
            } => {
                rollout.rollout_state = Some("ROLLED_BACK".into());
                console.line(&format!(
                    "the deployment circuit breaker rolled service {} back to {}: waiting for that rollback to finish",
                    watch.service,
                    short_task_definition(&primary_task_definition)
                ));
                let end = wait_for_task_definition(
                    clients,
                    watch,
                    &primary_task_definition,
                    console,
                    &mut poller,
                )
                .await;
                anyhow::bail!(
                    "the deployment of {} to service {} was rolled back by the deployment circuit breaker: {}",
                    short_task_definition(&task_definition),
                    watch.service,
                    end
                );
            }
            RolloutVerdict::InProgress => {}
        }
        if fail_fast.on_failure != OnRolloutFailure::Wait
            && let Some(deployment) = rollout.deployment_id.clone()
            && let Some(doomed) =
                watch.evidence(&deployment, fail_fast.threshold, &|c| plan.is_essential(c))
        {
            let evidence = doomed.describe(short_task_definition(&task_definition));
            rollout.diagnosis.insert(0, evidence.clone());
            rollout.rollout_state = Some("FAILED".into());
            match (fail_fast.on_failure, &plan.previous_task_definition) {
                (OnRolloutFailure::Rollback, Some(previous)) if previous != &task_definition => {
                    console.line(&format!(
                        "the rollout is doomed: {evidence}; rolling service {} back to {} (on-rollout-failure: rollback)",
                        watch.service,
                        short_task_definition(previous)
                    ));
                    roll_back(clients, plan, watch, previous).await?;
                    rollout.rollout_state = Some("ROLLED_BACK".into());
                    let end =
                        wait_for_task_definition(clients, watch, previous, console, &mut poller)
                            .await;
                    anyhow::bail!(
                        "the deployment of {} to service {} was doomed ({}) and was rolled back: {end}",
                        short_task_definition(&task_definition),
                        watch.service,
                        doomed.reason
                    );
                }
                _ => anyhow::bail!(
                    "the deployment of {} to service {} is doomed: {evidence}; ECS carries on with it (its circuit breaker, if on, rolls it back; without it, tasks are restarted until the deployment is changed)",
                    short_task_definition(&task_definition),
                    watch.service
                ),
            }
        }
        if let Err(TimedOut { waited }) = poller.tick().await {
            anyhow::bail!(
                "the deployment of {} to service {} was still {} after {} (wait-for-minutes); ECS carries on with it on its own",
                short_task_definition(&task_definition),
                watch.service,
                rollout.rollout_state.as_deref().unwrap_or("IN_PROGRESS"),
                humantime::format_duration(Duration::from_secs(waited.as_secs()))
            );
        }
    }
}

/// Points the service back at `previous` (UpdateService), keeping the rest
/// of the update's settings out: only the revision is restored.
async fn roll_back(
    clients: &EcsClients,
    plan: &ReadyRollout,
    watch: &ServiceWatch,
    previous: &str,
) -> anyhow::Result<()> {
    clients
        .ecs
        .update_service()
        .cluster(&plan.cluster)
        .service(&watch.service)
        .task_definition(previous)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| {
            format!(
                "rolling service {} back to {}",
                watch.service,
                short_task_definition(previous)
            )
        })?;
    Ok(())
}

/// Waits, within what is left of the rollout's bound, for the service's
/// PRIMARY deployment of `task_definition` to complete; says how it ended.
async fn wait_for_task_definition(
    clients: &EcsClients,
    watch: &mut ServiceWatch,
    task_definition: &str,
    console: &Console,
    poller: &mut Poller,
) -> String {
    loop {
        match watch.observe(clients, console).await {
            Ok(Some(snapshot)) => {
                let primary = snapshot.deployments.iter().find(|d| d.status == "PRIMARY");
                if let Some(primary) = primary
                    && primary.task_definition == task_definition
                    && (primary.rollout_state.as_deref() == Some("COMPLETED")
                        || primary.rollout_state.is_none() && snapshot.deployments.len() == 1)
                {
                    return format!(
                        "the service runs {} again ({}/{} tasks running)",
                        short_task_definition(task_definition),
                        primary.running,
                        primary.desired
                    );
                }
            }
            Ok(None) => return "the service disappeared".to_string(),
            Err(error) => console.explain_failed("DescribeServices", &error),
        }
        if poller.tick().await.is_err() {
            return format!(
                "the rollback to {} had not finished within wait-for-minutes; ECS carries on with it",
                short_task_definition(task_definition)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, status: &str, td: &str, state: Option<&str>) -> DeploymentProgress {
        DeploymentProgress {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            desired: 1,
            pending: 0,
            running: 1,
            failed: 0,
            rollout_state: state.map(str::to_string),
            rollout_state_reason: Some(
                "ECS deployment circuit breaker: tasks failed to start.".into(),
            ),
        }
    }

    #[test]
    fn verdicts_for_every_shape_of_deployment_list() {
        let new = "td/web:8";
        let old = "td/web:7";
        let cases = [
            (
                vec![deployment("d2", "PRIMARY", new, Some("COMPLETED"))],
                RolloutVerdict::Completed,
            ),
            (
                vec![
                    deployment("d2", "PRIMARY", new, Some("IN_PROGRESS")),
                    deployment("d1", "ACTIVE", old, Some("COMPLETED")),
                ],
                RolloutVerdict::InProgress,
            ),
            (
                vec![deployment("d2", "PRIMARY", new, Some("FAILED"))],
                RolloutVerdict::Failed(
                    "ECS deployment circuit breaker: tasks failed to start.".into(),
                ),
            ),
            (
                vec![
                    deployment("d3", "PRIMARY", old, Some("IN_PROGRESS")),
                    deployment("d2", "ACTIVE", new, Some("FAILED")),
                ],
                RolloutVerdict::RolledBack {
                    primary_task_definition: old.into(),
                },
            ),
            (
                vec![deployment("d3", "PRIMARY", old, Some("COMPLETED"))],
                RolloutVerdict::RolledBack {
                    primary_task_definition: old.into(),
                },
            ),
            (
                vec![
                    deployment("d3", "PRIMARY", old, Some("IN_PROGRESS")),
                    deployment("d2", "ACTIVE", new, Some("IN_PROGRESS")),
                ],
                RolloutVerdict::RolledBack {
                    primary_task_definition: old.into(),
                },
            ),
        ];
        for (deployments, expected) in cases {
            assert_eq!(
                judge_rollout(&deployments, new, Some("d2")),
                expected,
                "{deployments:?}"
            );
        }
    }

    #[test]
    fn without_rollout_states_steady_means_only_ours_running() {
        let mut ours = deployment("d2", "PRIMARY", "td/web:8", None);
        assert_eq!(
            judge_rollout(std::slice::from_ref(&ours), "td/web:8", None),
            RolloutVerdict::Completed
        );
        ours.running = 0;
        ours.pending = 1;
        assert_eq!(
            judge_rollout(&[ours], "td/web:8", None),
            RolloutVerdict::InProgress
        );
    }
}

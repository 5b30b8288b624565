//! ECS's own deployment strategies (`deploymentConfiguration.strategy`:
//! BLUE_GREEN, LINEAR, CANARY; ROLLING is the classic rollout): the
//! settings a direct rollout may change, merged into the service's current
//! configuration ([`merge_configuration`], pure), and the service
//! deployment followed to a verdict through ListServiceDeployments /
//! DescribeServiceDeployments: lifecycle stages, traffic shares, bake time,
//! hooks waiting for an action, rollback.

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_ecs::types::{
    CanaryConfiguration, CreatedAt, DeploymentConfiguration, DeploymentLifecycleHookStatus,
    DeploymentStrategy, LinearConfiguration, ServiceDeployment, StopServiceDeploymentStopType,
};

use super::verdict::{FailFast, OnRolloutFailure};
use super::watch::{EcsClients, ServiceWatch};
use crate::aws::aws_error;
use crate::console::Console;
use crate::refusal::{Refusal, Setting};
use crate::stack::wait::{PollSchedule, Poller};

/// The lifecycle stages of a service deployment, in order.
pub const STAGES: &[&str] = &[
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

/// The strategy inputs of a direct rollout; each is sent only when given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StrategySettings {
    pub strategy: Option<String>,
    pub bake_time_minutes: Option<i32>,
    pub canary_percent: Option<f64>,
    pub canary_bake_minutes: Option<i32>,
    pub linear_step_percent: Option<f64>,
    pub linear_step_bake_minutes: Option<i32>,
}

impl StrategySettings {
    pub fn is_given(&self) -> bool {
        self != &Self::default()
    }
}

/// What a service-deployment rollout waits for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServiceWaitUntil {
    /// SUCCESSFUL: traffic shifted, bake time over, old revision cleaned up.
    #[default]
    Stable,
    /// Production traffic fully on the new revision (bake time not waited).
    Deployed,
    /// The test listener serves the new revision (after its test traffic
    /// shift), before production traffic moves.
    Ready,
    /// The deployment reached (or passed) this lifecycle stage.
    Stage(String),
    /// A lifecycle hook waits for an action (ContinueServiceDeployment).
    Paused,
}

impl ServiceWaitUntil {
    /// Reads `wait-until`: `complete` (or `stable`), `deployed`, `ready`,
    /// `paused`, or a lifecycle stage name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "complete" | "stable" => Some(Self::Stable),
            "deployed" => Some(Self::Deployed),
            "ready" => Some(Self::Ready),
            "paused" => Some(Self::Paused),
            stage if STAGES.contains(&stage) => Some(Self::Stage(stage.to_string())),
            _ => None,
        }
    }
}

/// The service's configuration with the given strategy settings merged in
/// (UpdateService replaces the whole `deploymentConfiguration`, so what is
/// not given is kept from the service), or the refusals. `None` when
/// nothing is given.
pub fn merge_configuration(
    current: Option<&DeploymentConfiguration>,
    given: &StrategySettings,
) -> Result<Option<DeploymentConfiguration>, Vec<Refusal>> {
    if !given.is_given() {
        return Ok(None);
    }
    let strategy = given
        .strategy
        .clone()
        .or_else(|| {
            current
                .and_then(|c| c.strategy())
                .map(|s| s.as_str().to_string())
        })
        .unwrap_or_else(|| "ROLLING".to_string());
    let mut refusals = Vec::new();
    let mismatch = |setting: Setting, value: String, needs: &str| {
        Refusal::new(
            setting,
            &value,
            format!("applies to the {needs} strategy, and the rollout's is {strategy}"),
            format!("set deployment-strategy: {needs}, or remove the input"),
        )
    };
    if strategy != "CANARY" {
        if let Some(p) = given.canary_percent {
            refusals.push(mismatch(
                Setting::DeploymentStrategy,
                p.to_string(),
                "CANARY",
            ));
        }
        if let Some(m) = given.canary_bake_minutes {
            refusals.push(mismatch(
                Setting::DeploymentStrategy,
                m.to_string(),
                "CANARY",
            ));
        }
    }
    if strategy != "LINEAR" {
        if let Some(p) = given.linear_step_percent {
            refusals.push(mismatch(
                Setting::DeploymentStrategy,
                p.to_string(),
                "LINEAR",
            ));
        }
        if let Some(m) = given.linear_step_bake_minutes {
            refusals.push(mismatch(
                Setting::DeploymentStrategy,
                m.to_string(),
                "LINEAR",
            ));
        }
    }
    if strategy == "ROLLING" && given.bake_time_minutes.is_some() {
        refusals.push(mismatch(
            Setting::DeploymentStrategy,
            given.bake_time_minutes.unwrap_or_default().to_string(),
            "BLUE_GREEN, LINEAR or CANARY",
        ));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let mut builder = current
        .cloned()
        .map(|c| {
            DeploymentConfiguration::builder()
                .set_deployment_circuit_breaker(c.deployment_circuit_breaker().cloned())
                .set_maximum_percent(c.maximum_percent())
                .set_minimum_healthy_percent(c.minimum_healthy_percent())
                .set_alarms(c.alarms().cloned())
                .set_strategy(c.strategy().cloned())
                .set_bake_time_in_minutes(c.bake_time_in_minutes())
                .set_lifecycle_hooks(Some(c.lifecycle_hooks().to_vec()).filter(|h| !h.is_empty()))
                .set_linear_configuration(c.linear_configuration().cloned())
                .set_canary_configuration(c.canary_configuration().cloned())
        })
        .unwrap_or_default()
        .strategy(DeploymentStrategy::from(strategy.as_str()));
    if let Some(minutes) = given.bake_time_minutes {
        builder = builder.bake_time_in_minutes(minutes);
    }
    let current_canary = current.and_then(|c| c.canary_configuration());
    if given.canary_percent.is_some() || given.canary_bake_minutes.is_some() {
        builder = builder.canary_configuration(
            CanaryConfiguration::builder()
                .set_canary_percent(
                    given
                        .canary_percent
                        .or_else(|| current_canary.and_then(|c| c.canary_percent())),
                )
                .set_canary_bake_time_in_minutes(
                    given
                        .canary_bake_minutes
                        .or_else(|| current_canary.and_then(|c| c.canary_bake_time_in_minutes())),
                )
                .build(),
        );
    }
    let current_linear = current.and_then(|c| c.linear_configuration());
    if given.linear_step_percent.is_some() || given.linear_step_bake_minutes.is_some() {
        builder = builder.linear_configuration(
            LinearConfiguration::builder()
                .set_step_percent(
                    given
                        .linear_step_percent
                        .or_else(|| current_linear.and_then(|c| c.step_percent())),
                )
                .set_step_bake_time_in_minutes(
                    given
                        .linear_step_bake_minutes
                        .or_else(|| current_linear.and_then(|c| c.step_bake_time_in_minutes())),
                )
                .build(),
        );
    }
    Ok(Some(builder.build()))
}

/// One look at a service deployment, without AWS types.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeploymentLook {
    pub status: String,
    pub stage: Option<String>,
    pub status_reason: Option<String>,
    /// The new revision's share of production and test traffic, and its
    /// running and requested tasks.
    pub production_weight: Option<f64>,
    pub test_weight: Option<f64>,
    pub running: i32,
    pub requested: i32,
    /// Hooks waiting for an action: their ids.
    pub awaiting_hooks: Vec<String>,
    pub rollback_reason: Option<String>,
    /// What made the deployment fail, as ECS records it: hooks that failed
    /// or timed out (with their target), alarms that fired, the circuit
    /// breaker's count.
    pub triggers: Vec<String>,
}

impl DeploymentLook {
    pub fn from_sdk(deployment: &ServiceDeployment) -> Self {
        let target = deployment.target_service_revision();
        Self {
            status: deployment
                .status()
                .map_or("UNKNOWN", |s| s.as_str())
                .to_string(),
            stage: deployment.lifecycle_stage().map(|s| s.as_str().to_string()),
            status_reason: deployment.status_reason().map(str::to_string),
            production_weight: target.and_then(|t| t.requested_production_traffic_weight()),
            test_weight: target.and_then(|t| t.requested_test_traffic_weight()),
            running: target.map_or(0, |t| t.running_task_count()),
            requested: target.map_or(0, |t| t.requested_task_count()),
            awaiting_hooks: deployment
                .lifecycle_hook_details()
                .iter()
                .filter(|h| h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction))
                .filter_map(|h| h.hook_id().map(str::to_string))
                .collect(),
            rollback_reason: deployment
                .rollback()
                .and_then(|r| r.reason())
                .map(str::to_string),
            triggers: triggers(deployment),
        }
    }

    /// The progress line; equal lines are printed once.
    pub fn to_line(&self) -> String {
        let mut line = format!("service deployment {}", self.status);
        if let Some(stage) = &self.stage {
            line.push_str(&format!(", stage {stage}"));
        }
        line.push_str(&format!(
            ": new revision {}/{} running",
            self.running, self.requested
        ));
        if let Some(weight) = self.test_weight.filter(|w| *w > 0.0) {
            line.push_str(&format!(", {weight}% of test traffic"));
        }
        if let Some(weight) = self.production_weight {
            line.push_str(&format!(", {weight}% of production traffic"));
        }
        if !self.awaiting_hooks.is_empty() {
            line.push_str(&format!(
                ", hook {} waits for an action",
                self.awaiting_hooks.join(", ")
            ));
        }
        line
    }
}

/// The hooks, alarms and circuit breaker that turned a deployment back.
fn triggers(deployment: &ServiceDeployment) -> Vec<String> {
    let mut found: Vec<String> = deployment
        .lifecycle_hook_details()
        .iter()
        .filter(|h| {
            matches!(
                h.status(),
                Some(
                    DeploymentLifecycleHookStatus::Failed | DeploymentLifecycleHookStatus::TimedOut
                )
            )
        })
        .map(|h| {
            format!(
                "hook {} ({}) {}",
                h.hook_id().unwrap_or("?"),
                h.target_arn().unwrap_or("no target"),
                h.status().map_or("FAILED", |s| s.as_str())
            )
        })
        .collect();
    if let Some(alarms) = deployment.alarms()
        && !alarms.triggered_alarm_names().is_empty()
    {
        found.push(format!(
            "alarm(s) {} in ALARM",
            alarms.triggered_alarm_names().join(", ")
        ));
    }
    if let Some(breaker) = deployment.deployment_circuit_breaker()
        && breaker.status().map(|s| s.as_str()) == Some("TRIGGERED")
    {
        found.push(format!(
            "circuit breaker triggered: {} failed task(s), threshold {}",
            breaker.failure_count(),
            breaker.threshold()
        ));
    }
    found
}

/// How a service deployment ended, for what the step waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploymentVerdict {
    Done { state: &'static str },
    Failed { state: &'static str, reason: String },
}

fn stage_index(stage: &str) -> Option<usize> {
    STAGES.iter().position(|s| *s == stage)
}

/// Judges one look (pure).
pub fn judge_deployment(
    look: &DeploymentLook,
    wait_until: &ServiceWaitUntil,
) -> Option<DeploymentVerdict> {
    let reason = || {
        let stated = look
            .status_reason
            .clone()
            .or_else(|| look.rollback_reason.clone())
            .unwrap_or_else(|| "no reason given".to_string());
        if look.triggers.is_empty() {
            stated
        } else {
            format!("{stated} ({})", look.triggers.join("; "))
        }
    };
    match look.status.as_str() {
        "SUCCESSFUL" => return Some(DeploymentVerdict::Done { state: "COMPLETED" }),
        "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" | "ROLLBACK_SUCCESSFUL" => {
            return Some(DeploymentVerdict::Failed {
                state: "ROLLED_BACK",
                reason: reason(),
            });
        }
        "ROLLBACK_FAILED" | "STOPPED" | "STOP_REQUESTED" => {
            return Some(DeploymentVerdict::Failed {
                state: "FAILED",
                reason: reason(),
            });
        }
        _ => {}
    }
    let reached = |target: &str| match (
        look.stage.as_deref().and_then(stage_index),
        stage_index(target),
    ) {
        (Some(now), Some(wanted)) => now >= wanted,
        _ => false,
    };
    match wait_until {
        ServiceWaitUntil::Stable => None,
        ServiceWaitUntil::Deployed => (reached("BAKE_TIME")
            || reached("POST_PRODUCTION_TRAFFIC_SHIFT") && look.production_weight == Some(100.0))
        .then_some(DeploymentVerdict::Done { state: "DEPLOYED" }),
        ServiceWaitUntil::Ready => {
            reached("POST_TEST_TRAFFIC_SHIFT").then_some(DeploymentVerdict::Done { state: "READY" })
        }
        ServiceWaitUntil::Stage(stage) => reached(stage).then_some(DeploymentVerdict::Done {
            state: "IN_PROGRESS",
        }),
        ServiceWaitUntil::Paused => {
            (!look.awaiting_hooks.is_empty()).then_some(DeploymentVerdict::Done { state: "PAUSED" })
        }
    }
}

/// The service deployment our UpdateService started: the newest one of the
/// service created since `since` (ECS lists them newest first).
pub async fn find_service_deployment(
    clients: &EcsClients,
    cluster: &str,
    service: &str,
    since: aws_smithy_types::DateTime,
) -> anyhow::Result<Option<String>> {
    let listed = clients
        .ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .created_at(CreatedAt::builder().after(since).build())
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("listing the deployments of service {service}"))?;
    Ok(listed
        .service_deployments()
        .first()
        .and_then(|d| d.service_deployment_arn())
        .map(str::to_string))
}

pub async fn describe_deployment(
    clients: &EcsClients,
    arn: &str,
) -> anyhow::Result<ServiceDeployment> {
    clients
        .ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("describing service deployment {arn}"))?
        .service_deployments()
        .first()
        .cloned()
        .with_context(|| format!("DescribeServiceDeployments does not know {arn}"))
}

/// What to follow and how to judge it.
#[derive(Clone, Copy)]
pub struct Follow<'a> {
    /// The service deployment.
    pub arn: &'a str,
    pub wait_until: &'a ServiceWaitUntil,
    /// Our ECS deployment (`ecs-svc/...`): its tasks are the evidence.
    pub ecs_deployment: Option<&'a str>,
    pub fail_fast: FailFast,
    pub is_essential: &'a dyn Fn(&str) -> bool,
}

/// Follows a service deployment to a verdict, printing each change; ECS's
/// events and stopped tasks come through `watch`. A deployment doomed by
/// its tasks' evidence is stopped with rollback (`on-rollout-failure:
/// rollback`, then followed to the end of the rollback) or failed at once
/// (`stop`).
pub async fn wait_for_service_deployment(
    clients: &EcsClients,
    follow: Follow<'_>,
    watch: &mut ServiceWatch,
    schedule: PollSchedule,
    timeout: Duration,
    console: &Console,
) -> anyhow::Result<DeploymentVerdict> {
    let arn = follow.arn;
    let mut poller = Poller::new(schedule, timeout);
    let mut last_line = String::new();
    let mut stopped_by_us: Option<String> = None;
    loop {
        let look = DeploymentLook::from_sdk(&describe_deployment(clients, arn).await?);
        let line = look.to_line();
        if line != last_line {
            console.line(&line);
            last_line = line;
        }
        if let Err(error) = watch.observe(clients, console).await {
            console.explain_failed("DescribeServices", &error);
        }
        match judge_deployment(&look, follow.wait_until) {
            Some(DeploymentVerdict::Failed { state, reason }) => {
                // A rollback we asked for is followed until ECS says it ended.
                let rolling_back = matches!(
                    look.status.as_str(),
                    "ROLLBACK_REQUESTED" | "ROLLBACK_IN_PROGRESS" | "STOP_REQUESTED"
                );
                match &stopped_by_us {
                    Some(_) if rolling_back => {}
                    Some(evidence) => {
                        return Ok(DeploymentVerdict::Failed {
                            state,
                            reason: format!("{evidence}; rolled back ({})", look.status),
                        });
                    }
                    None => return Ok(DeploymentVerdict::Failed { state, reason }),
                }
            }
            Some(done) => return Ok(done),
            None => {}
        }
        if stopped_by_us.is_none()
            && follow.fail_fast.on_failure != OnRolloutFailure::Wait
            && let Some(deployment) = follow.ecs_deployment
            && let Some(doomed) =
                watch.evidence(deployment, follow.fail_fast.threshold, follow.is_essential)
        {
            let evidence = doomed.describe("the new revision");
            if follow.fail_fast.on_failure == OnRolloutFailure::Stop {
                return Ok(DeploymentVerdict::Failed {
                    state: "FAILED",
                    reason: format!(
                        "{evidence}; ECS carries on with service deployment {arn} (its circuit breaker, if on, rolls it back)"
                    ),
                });
            }
            console.line(&format!(
                "the rollout is doomed: {evidence}; stopping service deployment {arn} with rollback (on-rollout-failure: rollback)"
            ));
            stop_service_deployment(clients, arn).await?;
            stopped_by_us = Some(evidence);
        }
        if poller.tick().await.is_err() {
            anyhow::bail!(
                "service deployment {arn} was still {}{} after {}; ECS carries on with it",
                look.status,
                look.stage.map(|s| format!(" ({s})")).unwrap_or_default(),
                humantime::format_duration(timeout)
            );
        }
    }
}

/// `continue-deployment`: answer a PAUSE hook of the service's deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinueOptions {
    pub cluster: String,
    pub service: String,
    /// CONTINUE, or ROLLBACK.
    pub rollback: bool,
    pub wait_until: ServiceWaitUntil,
    pub wait_timeout: Duration,
    /// `wait-max-delay-seconds`.
    pub max_poll_delay: Option<Duration>,
}

/// The hook to answer, found in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ContinuePlan {
    pub options: ContinueOptions,
    pub deployment_arn: String,
    pub hook_id: String,
    /// The stage the deployment paused at.
    pub stage: Option<String>,
}

/// Finds the service's deployment that waits at a hook (read-only), or
/// refuses: nothing waits, so there is nothing to continue.
pub async fn plan_continue(
    clients: &EcsClients,
    options: &ContinueOptions,
) -> anyhow::Result<Result<ContinuePlan, Refusal>> {
    let listed = clients
        .ecs
        .list_service_deployments()
        .cluster(&options.cluster)
        .service(&options.service)
        .status(aws_sdk_ecs::types::ServiceDeploymentStatus::InProgress)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("listing the deployments of service {}", options.service))?;
    for summary in listed.service_deployments() {
        let Some(arn) = summary.service_deployment_arn() else {
            continue;
        };
        let look = DeploymentLook::from_sdk(&describe_deployment(clients, arn).await?);
        if let Some(hook) = look.awaiting_hooks.first() {
            return Ok(Ok(ContinuePlan {
                options: options.clone(),
                deployment_arn: arn.to_string(),
                hook_id: hook.clone(),
                stage: look.stage,
            }));
        }
    }
    Ok(Err(Refusal::new(
        Setting::ContinueDeployment,
        if options.rollback { "rollback" } else { "true" },
        format!(
            "has nothing to answer: no deployment of service `{}` in cluster `{}` waits at a lifecycle hook",
            options.service, options.cluster
        ),
        "run it once the deployment is paused (a step with wait-until: paused ends there), and check service and cluster",
    )))
}

/// Answers the hook (ContinueServiceDeployment).
pub async fn continue_deployment(clients: &EcsClients, plan: &ContinuePlan) -> anyhow::Result<()> {
    let action = if plan.options.rollback {
        aws_sdk_ecs::types::DeploymentLifecycleHookAction::Rollback
    } else {
        aws_sdk_ecs::types::DeploymentLifecycleHookAction::Continue
    };
    clients
        .ecs
        .continue_service_deployment()
        .service_deployment_arn(&plan.deployment_arn)
        .hook_id(&plan.hook_id)
        .action(action)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| {
            format!(
                "answering hook {} of service deployment {}",
                plan.hook_id, plan.deployment_arn
            )
        })?;
    Ok(())
}

/// Stops a service deployment, rolling back (`on-rollout-failure:
/// rollback`, `cancel-on-abort`).
pub async fn stop_service_deployment(clients: &EcsClients, arn: &str) -> anyhow::Result<()> {
    clients
        .ecs
        .stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("stopping service deployment {arn} with rollback"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::DeploymentCircuitBreaker;

    fn look(status: &str, stage: Option<&str>, production: Option<f64>) -> DeploymentLook {
        DeploymentLook {
            status: status.into(),
            stage: stage.map(str::to_string),
            production_weight: production,
            ..DeploymentLook::default()
        }
    }

    #[test]
    fn a_rolled_back_deployment_names_its_failed_hook_alarms_and_breaker() {
        use aws_sdk_ecs::types::{
            DeploymentLifecycleHookDetail, ServiceDeploymentAlarms,
            ServiceDeploymentCircuitBreaker, ServiceDeploymentRollbackMonitorsStatus,
            ServiceDeploymentStatus,
        };
        let deployment = ServiceDeployment::builder()
            .status(ServiceDeploymentStatus::RollbackSuccessful)
            .status_reason("Service deployment rolled back because of a failed lifecycle hook.")
            .lifecycle_hook_details(
                DeploymentLifecycleHookDetail::builder()
                    .hook_id("smoke")
                    .target_arn("arn:aws:lambda:us-east-1:1:function:smoke-test")
                    .status(DeploymentLifecycleHookStatus::Failed)
                    .build(),
            )
            .lifecycle_hook_details(
                DeploymentLifecycleHookDetail::builder()
                    .hook_id("warm")
                    .status(DeploymentLifecycleHookStatus::Succeeded)
                    .build(),
            )
            .alarms(
                ServiceDeploymentAlarms::builder()
                    .status(ServiceDeploymentRollbackMonitorsStatus::Triggered)
                    .alarm_names("web-5xx")
                    .alarm_names("web-latency")
                    .triggered_alarm_names("web-5xx")
                    .build(),
            )
            .deployment_circuit_breaker(
                ServiceDeploymentCircuitBreaker::builder()
                    .status(ServiceDeploymentRollbackMonitorsStatus::Monitoring)
                    .failure_count(1)
                    .threshold(3)
                    .build(),
            )
            .build();
        let look = DeploymentLook::from_sdk(&deployment);
        assert_eq!(
            judge_deployment(&look, &ServiceWaitUntil::Stable),
            Some(DeploymentVerdict::Failed {
                state: "ROLLED_BACK",
                reason: "Service deployment rolled back because of a failed lifecycle hook. (hook smoke (arn:aws:lambda:us-east-1:1:function:smoke-test) FAILED; alarm(s) web-5xx in ALARM)".into(),
            })
        );
    }

    #[test]
    fn verdicts_for_each_wait_until() {
        let shifting = look("IN_PROGRESS", Some("PRODUCTION_TRAFFIC_SHIFT"), Some(40.0));
        let baking = look("IN_PROGRESS", Some("BAKE_TIME"), Some(100.0));
        let cases: Vec<(DeploymentLook, ServiceWaitUntil, Option<DeploymentVerdict>)> = vec![
            (shifting.clone(), ServiceWaitUntil::Stable, None),
            (baking.clone(), ServiceWaitUntil::Stable, None),
            (
                baking.clone(),
                ServiceWaitUntil::Deployed,
                Some(DeploymentVerdict::Done { state: "DEPLOYED" }),
            ),
            (shifting.clone(), ServiceWaitUntil::Deployed, None),
            (
                shifting.clone(),
                ServiceWaitUntil::Stage("TEST_TRAFFIC_SHIFT".into()),
                Some(DeploymentVerdict::Done {
                    state: "IN_PROGRESS",
                }),
            ),
            (
                shifting.clone(),
                ServiceWaitUntil::Stage("BAKE_TIME".into()),
                None,
            ),
            (
                look("SUCCESSFUL", Some("CLEAN_UP"), Some(100.0)),
                ServiceWaitUntil::Deployed,
                Some(DeploymentVerdict::Done { state: "COMPLETED" }),
            ),
            (
                DeploymentLook {
                    status_reason: Some("circuit breaker: tasks failed to start".into()),
                    ..look(
                        "ROLLBACK_IN_PROGRESS",
                        Some("PRODUCTION_TRAFFIC_SHIFT"),
                        Some(0.0),
                    )
                },
                ServiceWaitUntil::Stable,
                Some(DeploymentVerdict::Failed {
                    state: "ROLLED_BACK",
                    reason: "circuit breaker: tasks failed to start".into(),
                }),
            ),
            (
                DeploymentLook {
                    awaiting_hooks: vec!["hook-1".into()],
                    ..look("IN_PROGRESS", Some("POST_TEST_TRAFFIC_SHIFT"), Some(0.0))
                },
                ServiceWaitUntil::Paused,
                Some(DeploymentVerdict::Done { state: "PAUSED" }),
            ),
        ];
        for (look, until, expected) in cases {
            assert_eq!(
                judge_deployment(&look, &until),
                expected,
                "{look:?} {until:?}"
            );
        }
    }

    #[test]
    fn strategy_settings_merge_into_the_service_configuration() {
        let current = DeploymentConfiguration::builder()
            .maximum_percent(200)
            .minimum_healthy_percent(100)
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(true)
                    .rollback(true)
                    .build(),
            )
            .strategy(DeploymentStrategy::Canary)
            .canary_configuration(
                CanaryConfiguration::builder()
                    .canary_percent(10.0)
                    .canary_bake_time_in_minutes(5)
                    .build(),
            )
            .build();
        let given = StrategySettings {
            canary_percent: Some(20.0),
            bake_time_minutes: Some(3),
            ..StrategySettings::default()
        };
        let merged = merge_configuration(Some(&current), &given)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .unwrap_or_else(|| panic!("nothing merged"));
        assert_eq!(merged.strategy(), Some(&DeploymentStrategy::Canary));
        assert_eq!(merged.maximum_percent(), Some(200));
        assert!(
            merged
                .deployment_circuit_breaker()
                .is_some_and(|c| c.enable())
        );
        let canary = merged
            .canary_configuration()
            .unwrap_or_else(|| panic!("no canary"));
        assert_eq!(canary.canary_percent(), Some(20.0));
        assert_eq!(canary.canary_bake_time_in_minutes(), Some(5));
        assert_eq!(merged.bake_time_in_minutes(), Some(3));
        assert_eq!(
            merge_configuration(Some(&current), &StrategySettings::default()),
            Ok(None)
        );
        // A linear setting on a canary service is a mistake, not ignored.
        let wrong = StrategySettings {
            linear_step_percent: Some(10.0),
            ..StrategySettings::default()
        };
        assert!(merge_configuration(Some(&current), &wrong).is_err());
    }
}

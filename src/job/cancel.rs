//! What a cancelled job does before it exits: says what was left running
//! and what will happen to it, removes a change set it made but never
//! executed, and cancels a running stack update when `cancel-on-abort` asks
//! for it. Every call is bounded so the job ends within seconds.

use std::time::Duration;

use crate::console::Console;
use crate::report::JobReport;
use crate::service::blue_green::stop_deployment;
use crate::service::strategy::stop_service_deployment;
use crate::stack::changeset::delete_change_set;
use crate::stack::lookup::{describe_stack, status_of};
use crate::stack::request_token;
use crate::stack::status::is_busy;

/// How long each cleanup call may take: the runner kills the container
/// about ten seconds after SIGTERM.
const BOUND: Duration = Duration::from_secs(2);

/// The options the cleanup needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CancelOptions {
    /// The change set was to be executed (not kept for review): an
    /// unexecuted one is ours to delete.
    pub executes_change_set: bool,
    /// `cancel-on-abort`: cancel a stack update, stop a CodeDeploy
    /// deployment (with rollback).
    pub cancel_update: bool,
}

/// Cleans up after `signal` and returns the message the job fails with.
pub async fn cancel(
    signal: &str,
    options: CancelOptions,
    config: Option<&aws_config::SdkConfig>,
    console: &Console,
    report: &mut JobReport,
) -> String {
    let _section = console.phase("Cancelled");
    console.line(&format!("received {signal}: stopping"));
    let mut message = format!("the job was cancelled ({signal})");
    if let (Some(deployment), Some(config)) = (&mut report.stack, config) {
        let client = aws_sdk_cloudformation::Client::new(config);
        let stack_ref = deployment
            .stack_id
            .clone()
            .unwrap_or_else(|| deployment.stack_name.clone());
        if let (Some(change_set), false) = (&deployment.change_set_id, deployment.executed)
            && options.executes_change_set
        {
            match tokio::time::timeout(BOUND, delete_change_set(&client, change_set)).await {
                Ok(Ok(_)) => {
                    console.line(&format!(
                        "deleted change set {change_set}, which was not executed"
                    ));
                    deployment.change_set_id = None;
                }
                _ => console.warning(&format!(
                    "could not delete change set {change_set}; delete it by hand"
                )),
            }
        }
        let status = tokio::time::timeout(BOUND, describe_stack(&client, &stack_ref))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map(|stack| status_of(&stack))
            .or_else(|| deployment.stack_status.clone());
        deployment.stack_status = status.clone();
        if let Some(status) = status {
            message = format!(
                "the job was cancelled ({signal}) while stack {} was {status}",
                deployment.stack_name
            );
            if is_busy(&status) {
                if status == "UPDATE_IN_PROGRESS" && options.cancel_update {
                    let call = client
                        .cancel_update_stack()
                        .stack_name(&stack_ref)
                        .client_request_token(request_token())
                        .send();
                    match tokio::time::timeout(BOUND, call).await {
                        Ok(Ok(_)) => console.line("cancel-on-abort: the update was cancelled; CloudFormation rolls the stack back to its previous state"),
                        _ => console.warning("cancel-on-abort: CancelUpdateStack failed; the update carries on"),
                    }
                } else {
                    console.line(&format!(
                        "CloudFormation carries on with the {status} operation on its own: it completes, or rolls back if a resource fails; nothing is left half-done by stopping here"
                    ));
                }
            }
        }
    }
    if let Some(task) = report.one_off_task.as_ref().filter(|t| t.outcome.is_none()) {
        console.line(&format!(
            "one-off task {} keeps running on its own; stop it with `aws ecs stop-task` if it should not finish",
            task.arn
        ));
    }
    if let Some(codedeploy) = report.codedeploy.as_ref().filter(|c| !c.finished) {
        let id = &codedeploy.deployment_id;
        match config.filter(|_| options.cancel_update) {
            Some(config) => {
                let client = aws_sdk_codedeploy::Client::new(config);
                match tokio::time::timeout(BOUND, stop_deployment(&client, id)).await {
                    Ok(Ok(())) => console.line(&format!(
                        "cancel-on-abort: CodeDeploy deployment {id} was stopped; CodeDeploy rolls production traffic back to the original task set"
                    )),
                    _ => console.warning(&format!(
                        "cancel-on-abort: StopDeployment failed; CodeDeploy carries on with deployment {id}"
                    )),
                }
            }
            None => console.line(&format!(
                "CodeDeploy carries on with deployment {id} on its own; stop it with `aws deploy stop-deployment --deployment-id {id} --auto-rollback-enabled` if it should not finish"
            )),
        }
    }
    if let Some(arn) = &report.service_deployment {
        match config.filter(|_| options.cancel_update) {
            Some(config) => {
                let clients = crate::service::watch::EcsClients::new(config);
                match tokio::time::timeout(BOUND, stop_service_deployment(&clients, arn)).await {
                    Ok(Ok(())) => console.line(&format!(
                        "cancel-on-abort: service deployment {arn} was stopped; ECS rolls the service back to its previous revision"
                    )),
                    _ => console.warning(&format!(
                        "cancel-on-abort: StopServiceDeployment failed; ECS carries on with service deployment {arn}"
                    )),
                }
            }
            None => console.line(&format!(
                "ECS carries on with service deployment {arn} on its own; stop it with `aws ecs stop-service-deployment --service-deployment-arn {arn} --stop-type ROLLBACK` if it should not finish"
            )),
        }
    } else if let Some(rollout) = &report.rollout
        && report.service_update_started
    {
        console.line(&format!(
            "ECS carries on with deployment {} on its own; with the circuit breaker on, failing tasks roll it back",
            rollout.deployment_id.as_deref().unwrap_or("(unknown)")
        ));
    }
    console.line(&report.change_statement());
    message
}

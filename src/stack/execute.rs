//! `mode: execute-only`: executing a change set created earlier (by a
//! `create-only` run, reviewed in between), as a deploy kind of its own. The
//! plan reads the change set and refuses one that cannot be executed, naming
//! its status; the apply executes it and waits for the stack like any
//! other deploy.

use std::time::Duration;

use aws_sdk_cloudformation::Client;

use super::changeset::{
    PlannedChange, execute_change_set, is_change_set_not_found, read_changes, with_nested_changes,
};
use super::deploy::{DeploySettings, StackDeployment, finish};
use super::events::EventFeed;
use crate::aws::aws_error;
use crate::console::Console;
use crate::refusal::{Refusal, Setting};

/// What executing an existing change set needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteOptions {
    pub stack_name: String,
    /// The change set's ARN, or its name on `stack_name`.
    pub change_set: String,
    pub disable_rollback: bool,
    pub wait_timeout: Duration,
}

/// The change set as DescribeChangeSet showed it to the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetView {
    pub id: String,
    pub stack_id: String,
    pub stack_name: String,
    /// `CREATE_COMPLETE`, `FAILED`, `CREATE_PENDING`, ...
    pub status: String,
    /// `AVAILABLE`, `EXECUTE_COMPLETE`, `OBSOLETE`, ...
    pub execution_status: String,
    pub status_reason: Option<String>,
    pub changes: Vec<PlannedChange>,
}

/// The execution the plan decided on: every value the apply needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutePlan {
    pub stack_name: String,
    pub stack_id: String,
    pub change_set_id: String,
    pub changes: Vec<PlannedChange>,
    pub disable_rollback: bool,
    pub wait_timeout: Duration,
}

/// Reads the change set (read-only); `None` when CloudFormation knows no
/// such change set.
pub async fn read_change_set(
    client: &Client,
    options: &ExecuteOptions,
    console: &Console,
) -> anyhow::Result<Option<ChangeSetView>> {
    let mut call = client
        .describe_change_set()
        .change_set_name(&options.change_set);
    // A name is looked up on the stack; an ARN names its stack itself.
    if !options.change_set.starts_with("arn:") {
        call = call.stack_name(&options.stack_name);
    }
    let described = match call.send().await {
        Ok(described) => described,
        Err(error) if is_change_set_not_found(&error) => return Ok(None),
        Err(error) => {
            return Err(aws_error(error).context(format!(
                "reading change set {} (DescribeChangeSet)",
                options.change_set
            )));
        }
    };
    let id = described.change_set_id().unwrap_or_default().to_string();
    let changes = read_changes(client, &id, &described).await?;
    let changes = with_nested_changes(client, changes, console).await;
    Ok(Some(ChangeSetView {
        stack_id: described.stack_id().unwrap_or_default().to_string(),
        stack_name: described.stack_name().unwrap_or_default().to_string(),
        status: described
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        execution_status: described
            .execution_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        status_reason: described.status_reason().map(str::to_string),
        changes,
        id,
    }))
}

/// Decides whether the change set can be executed (pure): it must exist,
/// belong to the stack named, be computed and not yet executed.
pub fn decide_execute(
    options: &ExecuteOptions,
    view: Option<&ChangeSetView>,
) -> Result<ExecutePlan, Refusal> {
    let refuse = |problem: String, fix: &str| {
        Refusal::new(
            Setting::ExistingChangeSet,
            &options.change_set,
            problem,
            fix,
        )
    };
    let Some(view) = view else {
        return Err(refuse(
            format!("is not a change set of stack {}", options.stack_name),
            "give the change-set-id output of the create-only step; a change set is gone once it, or another change set of its stack, was executed, or when it was deleted",
        ));
    };
    if view.stack_name != options.stack_name {
        return Err(refuse(
            format!(
                "belongs to stack {}, not to {}",
                view.stack_name, options.stack_name
            ),
            "give the stack the change set was created for in `name`",
        ));
    }
    match (view.status.as_str(), view.execution_status.as_str()) {
        ("CREATE_COMPLETE", "AVAILABLE") => Ok(ExecutePlan {
            stack_name: options.stack_name.clone(),
            stack_id: view.stack_id.clone(),
            change_set_id: view.id.clone(),
            changes: view.changes.clone(),
            disable_rollback: options.disable_rollback,
            wait_timeout: options.wait_timeout,
        }),
        ("FAILED", _) => Err(refuse(
            format!(
                "failed to be created ({}), so there is nothing to execute",
                view.status_reason.as_deref().unwrap_or("no reason given")
            ),
            "fix the template or parameters and create a new change set",
        )),
        ("CREATE_COMPLETE", "EXECUTE_COMPLETE" | "EXECUTE_IN_PROGRESS") => Err(refuse(
            format!(
                "was executed already (ExecutionStatus {})",
                view.execution_status
            ),
            "nothing is left to do with it; create a new change set for new changes",
        )),
        ("CREATE_COMPLETE", "OBSOLETE") => Err(refuse(
            "is obsolete: the stack was changed after it was created".to_string(),
            "create a new change set against the stack as it is now",
        )),
        (status, execution) => Err(refuse(
            format!("cannot be executed now (Status {status}, ExecutionStatus {execution})"),
            "wait until it is CREATE_COMPLETE and AVAILABLE, or create a new one",
        )),
    }
}

/// Executes the planned change set and waits for the stack, recording in
/// `deployment` what happened as it happens.
pub async fn execute_planned(
    client: &Client,
    plan: &ExecutePlan,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
) -> anyhow::Result<()> {
    deployment.stack_name = plan.stack_name.clone();
    deployment.stack_id = Some(plan.stack_id.clone());
    deployment.change_set_id = Some(plan.change_set_id.clone());
    deployment.changes = plan.changes.clone();
    deployment.has_changes = !plan.changes.is_empty();
    for change in &plan.changes {
        console.line(&change.to_line());
    }
    let mut feed = EventFeed::start_explained(client, &plan.stack_id, console).await;
    execute_change_set(client, &plan.change_set_id, plan.disable_rollback).await?;
    deployment.executed = true;
    console.line("executing the change set");
    finish(
        client,
        plan.wait_timeout,
        settings,
        console,
        deployment,
        &plan.stack_id,
        &mut feed,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ExecuteOptions {
        ExecuteOptions {
            stack_name: "web".into(),
            change_set: "web-CS".into(),
            disable_rollback: false,
            wait_timeout: Duration::from_secs(600),
        }
    }

    fn view(status: &str, execution_status: &str) -> ChangeSetView {
        ChangeSetView {
            id: "arn:aws:cloudformation:us-east-1:1:changeSet/web-CS/1".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:1:stack/web/1".into(),
            stack_name: "web".into(),
            status: status.into(),
            execution_status: execution_status.into(),
            status_reason: None,
            changes: vec![PlannedChange {
                action: "Add".into(),
                logical_id: "Queue".into(),
                resource_type: "AWS::SQS::Queue".into(),
                ..PlannedChange::default()
            }],
        }
    }

    #[test]
    fn an_available_change_set_is_executed_by_its_arn() {
        let plan = decide_execute(&options(), Some(&view("CREATE_COMPLETE", "AVAILABLE"))).unwrap();
        assert_eq!(
            plan.change_set_id,
            "arn:aws:cloudformation:us-east-1:1:changeSet/web-CS/1"
        );
        assert_eq!(
            plan.stack_id,
            "arn:aws:cloudformation:us-east-1:1:stack/web/1"
        );
        assert_eq!(plan.changes.len(), 1);
    }

    #[test]
    fn a_change_set_that_cannot_be_executed_is_refused_naming_its_status() {
        let mut failed = view("FAILED", "UNAVAILABLE");
        failed.status_reason = Some("No updates are to be performed.".into());
        let mut other_stack = view("CREATE_COMPLETE", "AVAILABLE");
        other_stack.stack_name = "api".into();
        let cases = [
            (None, "is not a change set of stack web"),
            (
                Some(failed),
                "failed to be created (No updates are to be performed.)",
            ),
            (
                Some(view("CREATE_COMPLETE", "EXECUTE_COMPLETE")),
                "was executed already (ExecutionStatus EXECUTE_COMPLETE)",
            ),
            (Some(view("CREATE_COMPLETE", "OBSOLETE")), "is obsolete"),
            (
                Some(view("CREATE_IN_PROGRESS", "UNAVAILABLE")),
                "Status CREATE_IN_PROGRESS, ExecutionStatus UNAVAILABLE",
            ),
            (Some(other_stack), "belongs to stack api, not to web"),
        ];
        for (view, expected) in cases {
            let refusal = decide_execute(&options(), view.as_ref()).unwrap_err();
            assert_eq!(refusal.setting, Setting::ExistingChangeSet);
            assert_eq!(refusal.value, "web-CS");
            assert!(refusal.problem.contains(expected), "{refusal:?}");
            assert!(!refusal.fix.is_empty());
        }
    }
}

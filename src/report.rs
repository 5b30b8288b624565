//! The results of a deploy, as step outputs and as a Markdown job summary
//! (pure: the caller writes them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::references::references;
use crate::service::rollout::Rollout;
use crate::stack::changeset::{ChangeDetail, PlannedChange};
use crate::stack::deploy::StackDeployment;

/// Everything a job did, known as far as it got (also on failure).
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    pub stack: Option<StackDeployment>,
    /// The image deployed, as put in the task definition or template.
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub task_definition_arn: Option<String>,
    pub service_arn: Option<String>,
    /// The rendered task definition, relative to the workspace.
    pub task_definition_path: Option<String>,
    pub rollout: Option<Rollout>,
    /// Workflows triggered after the deploy: (workflow, ref).
    pub dispatched: Vec<(String, String)>,
    /// The URL recorded on the GitHub deployment.
    pub deployment_url: Option<String>,
    /// The revision this job registered (RegisterTaskDefinition answered).
    pub registered_task_definition: Option<String>,
    /// UpdateService answered: the service is rolling out our revision.
    pub service_update_started: bool,
    /// The apply phase began: from here on, AWS may have been changed.
    pub apply_started: bool,
    /// `s3://bucket/key` of the template this job uploaded (PutObject
    /// answered).
    pub uploaded_template: Option<String>,
    /// `s3://` URIs of the packaged files this job uploaded.
    pub uploaded_files: Vec<String>,
    /// The packaged template written for review, relative to the workspace.
    pub packaged_template: Option<String>,
    /// The one-off task this job started (RunTask answered).
    pub one_off_task: Option<OneOffTaskRecord>,
    /// The CodeDeploy deployment this job started (CreateDeployment
    /// answered).
    pub codedeploy: Option<CodeDeployRecord>,
    /// The service deployment (BLUE_GREEN, LINEAR, CANARY) being followed
    /// and not yet finished: what a cancel stops with `cancel-on-abort`.
    pub service_deployment: Option<String>,
    /// `continue-deployment`: which hook of which deployment was answered,
    /// how (ContinueServiceDeployment answered).
    pub answered_hook: Option<String>,
}

/// A blue/green deployment started in CodeDeploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeDeployRecord {
    pub deployment_id: String,
    pub application: String,
    pub deployment_group: String,
    /// The appspec sent, pretty-printed.
    pub appspec: String,
    /// Its verdict is known (it is no longer ours to stop on cancel).
    pub finished: bool,
}

/// A one-off task started by `run-task`, and how it ended when waited for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneOffTaskRecord {
    pub arn: String,
    /// "exited 0", or what failed; `None` while running or not waited for.
    pub outcome: Option<String>,
    /// Its stop reason and containers' exits, when it failed.
    pub diagnosis: Vec<String>,
}

impl JobReport {
    /// What this job changed, one line each, as far as the answers AWS gave
    /// prove it (pure: derived from what was recorded as it happened).
    pub fn applied(&self) -> Vec<String> {
        let mut applied = Vec::new();
        if !self.uploaded_files.is_empty() {
            applied.push(format!(
                "{} packaged file(s) uploaded: {}",
                self.uploaded_files.len(),
                self.uploaded_files.join(", ")
            ));
        }
        if let Some(uri) = &self.uploaded_template {
            applied.push(format!("template uploaded to {uri}"));
        }
        if let Some(stack) = &self.stack {
            let name = &stack.stack_name;
            applied.extend(
                stack
                    .notes
                    .iter()
                    .filter(|n| n.contains("deleted"))
                    .map(|_| {
                        format!(
                            "stack {name}: the never-created stack was deleted to be created anew"
                        )
                    }),
            );
            let status = stack.stack_status.as_deref().unwrap_or("unknown");
            match (&stack.change_set_id, stack.executed) {
                (_, true) => applied.push(format!("stack {name}: changes executed, now {status}")),
                (Some(id), false) => applied.push(format!(
                    "stack {name}: change set {id} created (not executed)"
                )),
                (None, false) => {}
            }
        }
        if let Some(arn) = &self.registered_task_definition {
            applied.push(format!("task definition {arn} registered"));
        }
        if let Some(task) = &self.one_off_task {
            applied.push(match &task.outcome {
                Some(outcome) => format!("one-off task {} ran: {outcome}", task.arn),
                None => format!("one-off task {} started", task.arn),
            });
        }
        if let Some(codedeploy) = &self.codedeploy {
            applied.push(format!(
                "CodeDeploy deployment {} started in {}/{}: {}",
                codedeploy.deployment_id,
                codedeploy.application,
                codedeploy.deployment_group,
                self.rollout
                    .as_ref()
                    .and_then(|r| r.rollout_state.as_deref())
                    .unwrap_or("IN_PROGRESS")
            ));
        }
        if let Some(answer) = &self.answered_hook {
            applied.push(format!(
                "{answer}: now {}",
                self.rollout
                    .as_ref()
                    .and_then(|r| r.rollout_state.as_deref())
                    .unwrap_or("IN_PROGRESS")
            ));
        }
        if self.service_update_started {
            let rollout = self.rollout.as_ref();
            applied.push(format!(
                "service {} updated: deployment {} is {}",
                self.service_arn.as_deref().unwrap_or("?"),
                rollout
                    .and_then(|r| r.deployment_id.as_deref())
                    .unwrap_or("(id unknown)"),
                rollout
                    .and_then(|r| r.rollout_state.as_deref())
                    .unwrap_or("IN_PROGRESS"),
            ));
        }
        for (workflow, git_ref) in &self.dispatched {
            applied.push(format!("workflow {workflow} dispatched on {git_ref}"));
        }
        applied
    }

    /// One sentence on what changed, for the end of a failed or cancelled
    /// job: "nothing was changed" only when no call that changes AWS was
    /// ever made.
    pub fn change_statement(&self) -> String {
        let applied = self.applied();
        match (self.apply_started, applied.is_empty()) {
            (false, _) => "nothing was changed in AWS".to_string(),
            (true, true) => "no change is known to have been applied".to_string(),
            (true, false) => format!("applied: {}", applied.join("; ")),
        }
    }

    /// The causes worth repeating on failure: the stack's root causes, then
    /// what the service's tasks and targets said.
    pub fn root_causes(&self) -> Vec<String> {
        let mut causes: Vec<String> = Vec::new();
        let stack = self.stack.iter().flat_map(|s| s.root_causes.iter());
        let rollout = self.rollout.iter().flat_map(|r| r.diagnosis.iter());
        let task = self.one_off_task.iter().flat_map(|t| t.diagnosis.iter());
        for cause in stack.chain(task).chain(rollout) {
            if !causes.contains(cause) {
                causes.push(cause.clone());
            }
        }
        causes
    }
}

/// The outputs `action.yml` declares. A stack output with one of these names
/// is not published under its own key (it would overwrite ours).
pub const DECLARED_OUTPUTS: &[&str] = &[
    "stack-id",
    "stack-status",
    "change-set-id",
    "change-set-name",
    "has-changes",
    "changes-count",
    "changes-summary",
    "changes-markdown",
    "outputs",
    "stacks-status",
    "image",
    "image-digest",
    "task-definition-arn",
    "service-arn",
    "task-definition",
    "deployment-id",
    "rollout-state",
    "dispatched-workflows",
    "deployment-url",
    "run-task-arn",
    "codedeploy-deployment-id",
    "packaged-template",
];

/// The step outputs of a deploy, and warnings about outputs left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutputs {
    pub values: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Builds the step outputs: the declared ones (empty when the job did not
/// get there), then each stack output under its own key unless that key
/// collides with a declared output.
pub fn action_outputs(report: &JobReport) -> ActionOutputs {
    let empty = StackDeployment::default();
    let deployment = report.stack.as_ref().unwrap_or(&empty);
    let rollout = report.rollout.as_ref();
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    let all: BTreeMap<&str, &str> = deployment
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.value.as_str()))
        .collect();
    let outputs_json = serde_json::to_string(&all).unwrap_or_else(|_| "{}".to_string());
    let mut values = vec![
        (
            "stack-id".to_string(),
            deployment.stack_id.clone().unwrap_or_default(),
        ),
        (
            "stack-status".to_string(),
            deployment.stack_status.clone().unwrap_or_default(),
        ),
        (
            "change-set-id".to_string(),
            deployment.change_set_id.clone().unwrap_or_default(),
        ),
        (
            "change-set-name".to_string(),
            deployment
                .change_set_id
                .as_deref()
                .and_then(change_set_name)
                .unwrap_or_default()
                .to_string(),
        ),
        (
            "has-changes".to_string(),
            deployment.has_changes.to_string(),
        ),
        (
            "changes-count".to_string(),
            deployment.changes.len().to_string(),
        ),
        (
            "changes-summary".to_string(),
            changes_summary(&deployment.changes),
        ),
        (
            "changes-markdown".to_string(),
            if report.stack.is_some() {
                changes_markdown(&deployment.stack_name, &deployment.changes)
            } else {
                String::new()
            },
        ),
        ("outputs".to_string(), outputs_json),
        ("image".to_string(), text(report.image.as_ref())),
        (
            "image-digest".to_string(),
            text(report.image_digest.as_ref()),
        ),
        (
            "task-definition-arn".to_string(),
            text(report.task_definition_arn.as_ref()),
        ),
        ("service-arn".to_string(), text(report.service_arn.as_ref())),
        (
            "task-definition".to_string(),
            text(report.task_definition_path.as_ref()),
        ),
        (
            "deployment-id".to_string(),
            text(rollout.and_then(|r| r.deployment_id.as_ref())),
        ),
        (
            "rollout-state".to_string(),
            text(rollout.and_then(|r| r.rollout_state.as_ref())),
        ),
        (
            "dispatched-workflows".to_string(),
            dispatched_json(&report.dispatched),
        ),
        (
            "deployment-url".to_string(),
            text(report.deployment_url.as_ref()),
        ),
        (
            "run-task-arn".to_string(),
            report
                .one_off_task
                .as_ref()
                .map(|task| serde_json::json!([task.arn]).to_string())
                .unwrap_or_default(),
        ),
        (
            "codedeploy-deployment-id".to_string(),
            text(report.codedeploy.as_ref().map(|c| &c.deployment_id)),
        ),
        (
            "packaged-template".to_string(),
            text(report.packaged_template.as_ref()),
        ),
    ];
    let mut warnings = Vec::new();
    for output in &deployment.outputs {
        if DECLARED_OUTPUTS.contains(&output.key.as_str()) {
            warnings.push(format!(
                "stack output `{}` has the name of one of this action's outputs, so it is only available inside the `outputs` JSON (fromJSON(steps.<id>.outputs.outputs).{})",
                output.key, output.key
            ));
        } else {
            values.push((output.key.clone(), output.value.clone()));
        }
    }
    ActionOutputs { values, warnings }
}

/// The `dispatched-workflows` output: each workflow and the ref it was
/// dispatched on.
pub fn dispatched_json(dispatched: &[(String, String)]) -> String {
    let list: Vec<serde_json::Value> = dispatched
        .iter()
        .map(|(workflow, git_ref)| serde_json::json!({"workflow": workflow, "ref": git_ref}))
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The `{{ outputs.NAME }}` references of `template`: where each starts and
/// ends, and the NAME; a reference of any other kind is an error naming it.
fn output_reference_spans(template: &str) -> Result<Vec<(usize, usize, &str)>, String> {
    references(template)
        .into_iter()
        .map(|(start, end, reference)| {
            reference
                .strip_prefix("outputs.")
                .filter(|name| !name.is_empty())
                .map(|name| (start, end, name))
                .ok_or_else(|| format!("`{{{{ {reference} }}}}` is not `{{{{ outputs.NAME }}}}`"))
        })
        .collect()
}

/// The output names `template` refers to as `{{ outputs.NAME }}`; a
/// reference of any other kind is an error naming it.
pub fn output_names(template: &str) -> Result<Vec<&str>, String> {
    Ok(output_reference_spans(template)?
        .into_iter()
        .map(|(_, _, name)| name)
        .collect())
}

/// Replaces `{{ outputs.NAME }}` in `template` with the output NAME; an
/// unknown name is an error naming it.
pub fn fill_output_references(
    template: &str,
    outputs: &[(String, String)],
) -> Result<String, String> {
    let mut filled = String::new();
    let mut last = 0;
    for (start, end, name) in output_reference_spans(template)? {
        let value = outputs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| format!("this step has no output `{name}`"))?;
        filled.push_str(&template[last..start]);
        filled.push_str(value);
        last = end;
    }
    filled.push_str(&template[last..]);
    Ok(filled)
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Escapes text for a Markdown table cell: pipes would split the cell,
/// angle brackets would be read as HTML, newlines would end the row.
pub fn markdown_cell(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// The job summary. `error` is the failure, if any.
pub fn markdown_summary(report: &JobReport, elapsed: Duration, error: Option<&str>) -> String {
    let mut md = String::new();
    if let Some(deployment) = &report.stack {
        stack_summary(&mut md, deployment, elapsed, error);
    } else {
        let verdict = if error.is_some() {
            "❌ failed"
        } else {
            "✅ deployed"
        };
        let _ = writeln!(md, "### ecs-stack-deploy: {verdict}\n");
        let _ = writeln!(md, "Elapsed: {:.1} s\n", elapsed.as_secs_f64());
        if let Some(error) = error {
            let _ = writeln!(md, "**Error:** {}\n", markdown_cell(error));
        }
    }
    let one_off_task = report
        .one_off_task
        .as_ref()
        .map(|task| match &task.outcome {
            Some(outcome) => format!("{}: {outcome}", task.arn),
            None => task.arn.clone(),
        });
    let rows = [
        ("Image", report.image.as_ref()),
        ("Image digest", report.image_digest.as_ref()),
        ("Task definition", report.task_definition_arn.as_ref()),
        ("Service", report.service_arn.as_ref()),
        (
            "Deployment",
            report
                .rollout
                .as_ref()
                .and_then(|r| r.deployment_id.as_ref()),
        ),
        (
            "Rollout",
            report
                .rollout
                .as_ref()
                .and_then(|r| r.rollout_state.as_ref()),
        ),
        ("One-off task", one_off_task.as_ref()),
        (
            "CodeDeploy deployment",
            report.codedeploy.as_ref().map(|c| &c.deployment_id),
        ),
    ];
    if rows.iter().any(|(_, v)| v.is_some()) {
        let _ = writeln!(md, "#### Service\n\n| | |\n|---|---|");
        for (label, value) in rows {
            if let Some(value) = value {
                let _ = writeln!(md, "| {label} | `{}` |", markdown_cell(value));
            }
        }
        let _ = writeln!(md);
    }
    if let Some(codedeploy) = &report.codedeploy {
        // A fence longer than any backtick run inside keeps the block intact.
        let fence = "`".repeat(longest_backtick_run(&codedeploy.appspec).max(2) + 1);
        let _ = writeln!(
            md,
            "<details><summary>appspec sent to CodeDeploy</summary>\n\n{fence}json\n{}\n{fence}\n\n</details>\n",
            codedeploy.appspec.trim_end()
        );
    }
    if error.is_some() {
        let applied = report.applied();
        if applied.is_empty() {
            let _ = writeln!(md, "**Changes:** {}\n", report.change_statement());
        } else {
            let _ = writeln!(md, "**Applied before the failure:**\n");
            for line in applied {
                let _ = writeln!(md, "- {}", markdown_cell(&line));
            }
            let _ = writeln!(md);
        }
    }
    let diagnosis: Vec<&String> = report
        .rollout
        .iter()
        .flat_map(|r| r.diagnosis.iter())
        .collect();
    if error.is_some() && !diagnosis.is_empty() {
        let _ = writeln!(md, "**Why the service did not come up:**\n");
        for line in diagnosis {
            let _ = writeln!(md, "- {}", markdown_cell(line));
        }
        let _ = writeln!(md);
    }
    md
}

/// The stack part of the summary.
fn stack_summary(
    md: &mut String,
    deployment: &StackDeployment,
    elapsed: Duration,
    error: Option<&str>,
) {
    let verdict = match (error, deployment.executed, deployment.has_changes) {
        (Some(_), _, _) => "❌ failed",
        (None, true, _) => "✅ deployed",
        (None, false, false) => "✅ no changes",
        (None, false, true) => "📝 change set ready for review (not executed)",
    };
    let _ = writeln!(
        *md,
        "### Stack `{}`: {verdict}\n",
        markdown_cell(&deployment.stack_name)
    );
    let _ = writeln!(*md, "| | |\n|---|---|");
    let _ = writeln!(
        *md,
        "| Status | `{}` |",
        markdown_cell(deployment.stack_status.as_deref().unwrap_or("unknown"))
    );
    if let Some(id) = &deployment.change_set_id {
        let _ = writeln!(*md, "| Change set | `{}` |", markdown_cell(id));
    }
    let _ = writeln!(*md, "| Elapsed | {:.1} s |", elapsed.as_secs_f64());
    let _ = writeln!(*md);
    for note in &deployment.notes {
        let _ = writeln!(*md, "> {}\n", markdown_cell(note));
    }
    if let Some(error) = error {
        let _ = writeln!(*md, "**Error:** {}\n", markdown_cell(error));
        if !deployment.root_causes.is_empty() {
            let _ = writeln!(*md, "**Root causes:**\n");
            for cause in &deployment.root_causes {
                let _ = writeln!(*md, "- {}", markdown_cell(cause));
            }
            let _ = writeln!(*md);
        }
    }
    if deployment.changes.is_empty() {
        let _ = writeln!(*md, "No resource changes.\n");
    } else {
        let _ = writeln!(
            *md,
            "#### Changes ({}: {})\n",
            deployment.changes.len(),
            change_counts(&deployment.changes)
        );
        write_changes_table(md, &deployment.changes);
    }
    if !deployment.outputs.is_empty() {
        let _ = writeln!(
            *md,
            "#### Outputs\n\n| Key | Value | Description |\n|---|---|---|"
        );
        for output in &deployment.outputs {
            let _ = writeln!(
                *md,
                "| `{}` | `{}` | {} |",
                markdown_cell(&output.key),
                markdown_cell(&output.value),
                markdown_cell(output.description.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(*md);
    }
}

/// The most changes `changes-summary` and `changes-markdown` carry, as in
/// aws-cloudformation-github-deploy: all step outputs of a job share 1 MB,
/// and a change set can hold thousands of changes.
const PUBLISHED_CHANGES_MAX: usize = 50;

/// The name part of a change set ARN
/// (`arn:aws:cloudformation:<region>:<account>:changeSet/<name>/<id>`).
fn change_set_name(arn: &str) -> Option<&str> {
    let (_, resource) = arn.split_once(":changeSet/")?;
    resource.split('/').next().filter(|name| !name.is_empty())
}

/// `changes-summary`: the changes in the shape DescribeChangeSet gives them
/// (`Type`, `ResourceChange` with `Action`, `LogicalResourceId`, `Scope`,
/// `Details`, ...), at most [`PUBLISHED_CHANGES_MAX`], with the total and
/// whether the list was cut — the shape aws-cloudformation-github-deploy
/// publishes, so workflows that read its output keep working.
pub fn changes_summary(changes: &[PlannedChange]) -> String {
    let listed: Vec<serde_json::Value> = changes
        .iter()
        .take(PUBLISHED_CHANGES_MAX)
        .map(|change| {
            let mut resource = serde_json::Map::new();
            let mut put = |key: &str, value: Option<&String>| {
                if let Some(value) = value {
                    resource.insert(key.into(), value.clone().into());
                }
            };
            put("Action", Some(&change.action));
            put("LogicalResourceId", Some(&change.logical_id));
            put("ChangeSetId", change.change_set_id.as_ref());
            // Ours, not DescribeChangeSet's: which nested stack the change
            // is in (the root's changes have none).
            put("NestedStack", change.nested_stack.as_ref());
            put("PhysicalResourceId", change.physical_id.as_ref());
            put("ResourceType", Some(&change.resource_type));
            put("Replacement", change.replacement.as_ref());
            resource.insert("Scope".into(), change.scope.clone().into());
            let details: Vec<serde_json::Value> = change.details.iter().map(detail_json).collect();
            resource.insert("Details".into(), details.into());
            serde_json::json!({"Type": "Resource", "ResourceChange": resource})
        })
        .collect();
    serde_json::json!({
        "changes": listed,
        "totalChanges": changes.len(),
        "truncated": changes.len() > PUBLISHED_CHANGES_MAX,
    })
    .to_string()
}

/// A `ResourceChangeDetail` as DescribeChangeSet writes it; absent fields
/// are left out, not null.
fn detail_json(detail: &ChangeDetail) -> serde_json::Value {
    let present =
        |fields: [(&str, &Option<String>); 3]| -> serde_json::Map<String, serde_json::Value> {
            fields
                .into_iter()
                .filter_map(|(key, value)| Some((key.to_string(), value.clone()?.into())))
                .collect()
        };
    let target = present([
        ("Attribute", &detail.attribute),
        ("Name", &detail.name),
        ("RequiresRecreation", &detail.requires_recreation),
    ]);
    let mut entry = present([
        ("Evaluation", &detail.evaluation),
        ("ChangeSource", &detail.change_source),
        ("CausingEntity", &detail.causing_entity),
    ]);
    entry.insert("Target".into(), target.into());
    entry.into()
}

/// `changes-markdown`: the stack's changes as a Markdown block for a pull
/// request comment or an issue (the job summary has them too).
pub fn changes_markdown(stack_name: &str, changes: &[PlannedChange]) -> String {
    let mut md = format!(
        "### Change set for stack `{}`\n\n",
        markdown_cell(stack_name)
    );
    if changes.is_empty() {
        md.push_str("No resource changes.\n");
        return md;
    }
    let _ = writeln!(md, "**{}**\n", change_counts(changes));
    write_changes_table(
        &mut md,
        &changes[..changes.len().min(PUBLISHED_CHANGES_MAX)],
    );
    if changes.len() > PUBLISHED_CHANGES_MAX {
        let _ = writeln!(
            md,
            "> {} more change(s) not listed; the job summary and the change set in the console have them all.\n",
            changes.len() - PUBLISHED_CHANGES_MAX
        );
    }
    md
}

/// "2 to add, 1 to modify, 1 to replace, 1 to remove" (only the non-zero
/// ones; a Modify whose replacement is `True` counts as a replacement).
fn change_counts(changes: &[PlannedChange]) -> String {
    let count =
        |wanted: &dyn Fn(&PlannedChange) -> bool| changes.iter().filter(|c| wanted(c)).count();
    let replaced =
        |c: &PlannedChange| c.action == "Modify" && c.replacement.as_deref() == Some("True");
    let parts = [
        (count(&|c| c.action == "Add"), "to add"),
        (
            count(&|c| c.action == "Modify" && !replaced(c)),
            "to modify",
        ),
        (count(&replaced), "to replace"),
        (count(&|c| c.action == "Remove"), "to remove"),
        (
            count(&|c| !["Add", "Modify", "Remove"].contains(&c.action.as_str())),
            "other",
        ),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row per change: action, logical id, type, replacement, and the
/// properties that change (with ⚠ where that recreates the resource).
fn write_changes_table(md: &mut String, changes: &[PlannedChange]) {
    let _ = writeln!(
        md,
        "| Action | Logical ID | Type | Replacement | Changed |\n|---|---|---|---|---|"
    );
    for change in changes {
        let changed: Vec<String> = change
            .details
            .iter()
            .filter_map(|d| {
                let what = d.name.as_deref().or(d.attribute.as_deref())?;
                let recreates = matches!(
                    d.requires_recreation.as_deref(),
                    Some("Always" | "Conditionally")
                );
                Some(if recreates {
                    format!("{what} ⚠")
                } else {
                    what.to_string()
                })
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | `{}` | `{}` | {} | {} |",
            markdown_cell(&change.action),
            markdown_cell(&change.display_id()),
            markdown_cell(&change.resource_type),
            markdown_cell(change.replacement.as_deref().unwrap_or("")),
            markdown_cell(&changed.join(", "))
        );
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::changeset::PlannedChange;
    use crate::stack::deploy::StackOutput;

    fn deployment() -> StackDeployment {
        StackDeployment {
            stack_name: "network".into(),
            stack_id: Some("arn:aws:cloudformation:us-east-1:123:stack/network/1".into()),
            stack_status: Some("UPDATE_COMPLETE".into()),
            change_set_id: Some("arn:cs".into()),
            has_changes: true,
            executed: true,
            changes: vec![PlannedChange {
                action: "Modify".into(),
                logical_id: "Vpc".into(),
                resource_type: "AWS::EC2::VPC".into(),
                replacement: Some("True".into()),
                ..PlannedChange::default()
            }],
            outputs: vec![
                StackOutput {
                    key: "VpcId".into(),
                    value: "vpc-1".into(),
                    description: Some("the VPC".into()),
                },
                StackOutput {
                    key: "outputs".into(),
                    value: "clash".into(),
                    description: None,
                },
            ],
            notes: vec![],
            root_causes: vec![],
        }
    }

    fn of(stack: StackDeployment) -> JobReport {
        JobReport {
            stack: Some(stack),
            ..JobReport::default()
        }
    }

    #[test]
    fn service_outputs_and_summary_section() {
        let report = JobReport {
            image: Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:abc".into()),
            image_digest: Some("sha256:0f".into()),
            task_definition_arn: Some("arn:aws:ecs:us-east-1:1:task-definition/web:3".into()),
            rollout: Some(Rollout {
                deployment_id: Some("ecs-svc/1".into()),
                rollout_state: Some("FAILED".into()),
                diagnosis: vec!["tasks of web:3 stopped: CannotPullContainerError".into()],
                ..Rollout::default()
            }),
            ..JobReport::default()
        };
        let outputs = action_outputs(&report);
        let get = |name: &str| {
            outputs
                .values
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("image-digest"), Some("sha256:0f"));
        assert_eq!(get("deployment-id"), Some("ecs-svc/1"));
        assert_eq!(get("rollout-state"), Some("FAILED"));
        assert_eq!(
            get("stack-id"),
            Some(""),
            "declared outputs are always written"
        );
        let md = markdown_summary(&report, Duration::ZERO, Some("rollout failed"));
        assert!(md.contains("| Rollout | `FAILED` |"), "{md}");
        assert!(
            md.contains("- tasks of web:3 stopped: CannotPullContainerError"),
            "{md}"
        );
        assert_eq!(
            report.root_causes(),
            vec!["tasks of web:3 stopped: CannotPullContainerError"]
        );
    }

    #[test]
    fn declared_outputs_then_stack_outputs_except_collisions() {
        let outputs = action_outputs(&of(deployment()));
        let names: Vec<&str> = outputs.values.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "stack-id",
                "stack-status",
                "change-set-id",
                "change-set-name",
                "has-changes",
                "changes-count",
                "changes-summary",
                "changes-markdown",
                "outputs",
                "image",
                "image-digest",
                "task-definition-arn",
                "service-arn",
                "task-definition",
                "deployment-id",
                "rollout-state",
                "dispatched-workflows",
                "deployment-url",
                "run-task-arn",
                "codedeploy-deployment-id",
                "packaged-template",
                "VpcId"
            ]
        );
        let value = |name: &str| {
            outputs
                .values
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(
            value("outputs"),
            Some(r#"{"VpcId":"vpc-1","outputs":"clash"}"#)
        );
        assert_eq!(value("has-changes"), Some("true"));
        assert_eq!(value("changes-count"), Some("1"));
        // The test's change set id is not an ARN: no name to read from it.
        assert_eq!(value("change-set-name"), Some(""));
        assert!(
            value("changes-markdown").is_some_and(|md| md.contains("| Modify | `Vpc` |")),
            "{outputs:?}"
        );
        assert_eq!(outputs.warnings.len(), 1);
        assert!(outputs.warnings[0].contains("`outputs`"));
    }

    #[test]
    fn summary_has_changes_outputs_and_status() {
        let md = markdown_summary(&of(deployment()), Duration::from_millis(12_340), None);
        assert!(md.contains("### Stack `network`: ✅ deployed"), "{md}");
        assert!(md.contains("| Status | `UPDATE_COMPLETE` |"), "{md}");
        assert!(
            md.contains("| Modify | `Vpc` | `AWS::EC2::VPC` | True |"),
            "{md}"
        );
        assert!(md.contains("| `VpcId` | `vpc-1` | the VPC |"), "{md}");
        assert!(md.contains("| Elapsed | 12.3 s |"), "{md}");
    }

    #[test]
    fn summary_of_a_failure_lists_root_causes() {
        let mut failed = deployment();
        failed.root_causes = vec!["Queue (AWS::SQS::Queue): bad | value".into()];
        let md = markdown_summary(&of(failed), Duration::ZERO, Some("stack network failed"));
        assert!(md.contains("❌ failed"));
        assert!(
            md.contains("- Queue (AWS::SQS::Queue): bad \\| value"),
            "{md}"
        );
    }

    #[test]
    fn output_references_are_filled_or_named_when_unknown() {
        let outputs = vec![("VpcId".to_string(), "vpc-1".to_string())];
        assert_eq!(
            fill_output_references("vpc={{ outputs.VpcId }}/{{outputs.VpcId}}", &outputs).unwrap(),
            "vpc=vpc-1/vpc-1"
        );
        assert_eq!(fill_output_references("plain", &outputs).unwrap(), "plain");
        assert!(
            fill_output_references("{{ outputs.Nope }}", &outputs)
                .unwrap_err()
                .contains("`Nope`")
        );
        assert!(fill_output_references("{{ secrets.X }}", &outputs).is_err());
    }

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(markdown_cell("a|b\n<script>"), "a\\|b<br>&lt;script&gt;");
    }

    fn change(action: &str, logical_id: &str, replacement: Option<&str>) -> PlannedChange {
        PlannedChange {
            action: action.into(),
            logical_id: logical_id.into(),
            resource_type: "AWS::SQS::Queue".into(),
            replacement: replacement.map(str::to_string),
            ..PlannedChange::default()
        }
    }

    #[test]
    fn change_set_name_is_read_from_its_arn() {
        assert_eq!(
            change_set_name(
                "arn:aws:cloudformation:us-east-1:123456789012:changeSet/web-CS/0b3f4c8e-1c3a-4e8f"
            ),
            Some("web-CS")
        );
        assert_eq!(change_set_name("arn:cs"), None);
        assert_eq!(change_set_name(""), None);
    }

    #[test]
    fn changes_summary_has_the_shape_describe_change_set_gives() {
        let mut modified = change("Modify", "Queue", Some("True"));
        modified.physical_id = Some("https://sqs/q".into());
        modified.scope = vec!["Properties".into()];
        modified.details = vec![ChangeDetail {
            attribute: Some("Properties".into()),
            name: Some("FifoQueue".into()),
            requires_recreation: Some("Always".into()),
            evaluation: Some("Static".into()),
            change_source: Some("DirectModification".into()),
            causing_entity: None,
        }];
        let summary: serde_json::Value =
            serde_json::from_str(&changes_summary(&[change("Add", "Topic", None), modified]))
                .unwrap();
        assert_eq!(
            summary,
            serde_json::json!({
                "changes": [
                    {"Type": "Resource", "ResourceChange": {
                        "Action": "Add", "LogicalResourceId": "Topic",
                        "ResourceType": "AWS::SQS::Queue", "Scope": [], "Details": []}},
                    {"Type": "Resource", "ResourceChange": {
                        "Action": "Modify", "LogicalResourceId": "Queue",
                        "PhysicalResourceId": "https://sqs/q",
                        "ResourceType": "AWS::SQS::Queue", "Replacement": "True",
                        "Scope": ["Properties"],
                        "Details": [{
                            "Target": {"Attribute": "Properties", "Name": "FifoQueue",
                                       "RequiresRecreation": "Always"},
                            "Evaluation": "Static", "ChangeSource": "DirectModification"}]}}
                ],
                "totalChanges": 2,
                "truncated": false
            })
        );
    }

    #[test]
    fn published_changes_stop_at_fifty() {
        let many: Vec<PlannedChange> = (0..60)
            .map(|i| change("Add", &format!("Queue{i}"), None))
            .collect();
        let summary: serde_json::Value = serde_json::from_str(&changes_summary(&many)).unwrap();
        assert_eq!(summary["changes"].as_array().map(Vec::len), Some(50));
        assert_eq!(summary["totalChanges"], 60);
        assert_eq!(summary["truncated"], true);
        let md = changes_markdown("web", &many);
        assert_eq!(md.matches("| Add | `Queue").count(), 50, "{md}");
        assert!(md.contains("10 more change(s) not listed"), "{md}");
    }

    #[test]
    fn changes_markdown_counts_replacements_apart() {
        let mut modified = change("Modify", "Service", Some("False"));
        modified.details = vec![ChangeDetail {
            name: Some("TaskDefinition".into()),
            requires_recreation: Some("Never".into()),
            ..ChangeDetail::default()
        }];
        let md = changes_markdown(
            "web",
            &[
                change("Add", "Topic", None),
                modified,
                change("Modify", "Queue", Some("True")),
                change("Remove", "Old", None),
            ],
        );
        assert!(md.starts_with("### Change set for stack `web`\n"), "{md}");
        assert!(
            md.contains("**1 to add, 1 to modify, 1 to replace, 1 to remove**"),
            "{md}"
        );
        assert!(
            md.contains("| Modify | `Service` | `AWS::SQS::Queue` | False | TaskDefinition |"),
            "{md}"
        );
        assert_eq!(
            changes_markdown("web", &[]),
            "### Change set for stack `web`\n\nNo resource changes.\n"
        );
    }
}

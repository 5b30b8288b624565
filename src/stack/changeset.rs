//! Change sets: create one, wait until CloudFormation has computed it, read
//! its changes, and delete it when it is not going to be executed.

use std::time::Duration;

use anyhow::Context as _;

use crate::aws::aws_error;
use crate::console::Console;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeSetStatus, ChangeSetType, Parameter, Tag as CfnTag,
};
use serde::Serialize;

use super::options::Tag;
use super::parameters::PlannedParameter;
use super::request_token;
use super::wait::{PollSchedule, Poller, TimedOut, WaitError};

/// The template, as CloudFormation takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    Body(String),
    Url(String),
}

/// What a change set and a directly created stack are made of.
#[derive(Debug, Clone)]
pub struct StackSettings<'a> {
    pub template: &'a TemplateSource,
    pub parameters: &'a [PlannedParameter],
    pub capabilities: &'a [String],
    pub role_arn: Option<&'a str>,
    pub notification_arns: &'a [String],
    pub tags: &'a [Tag],
}

/// Applies [`StackSettings`] to a CreateChangeSet or CreateStack call. The
/// two SDK builders are distinct types with the same setters and no common
/// trait, hence a macro.
macro_rules! with_stack_settings {
    ($call:expr, $settings:expr) => {{
        let settings: &$crate::stack::changeset::StackSettings = $settings;
        let mut call = $call
            .set_parameters(Some($crate::stack::changeset::sdk_parameters(
                settings.parameters,
            )))
            .set_capabilities(Some(
                settings
                    .capabilities
                    .iter()
                    .map(|c| aws_sdk_cloudformation::types::Capability::from(c.as_str()))
                    .collect(),
            ))
            .set_role_arn(settings.role_arn.map(str::to_string));
        call = match settings.template {
            $crate::stack::changeset::TemplateSource::Body(body) => call.template_body(body),
            $crate::stack::changeset::TemplateSource::Url(url) => call.template_url(url),
        };
        // Leaving these unset keeps what the stack has, as UpdateStack does.
        if !settings.notification_arns.is_empty() {
            call = call.set_notification_arns(Some(settings.notification_arns.to_vec()));
        }
        if !settings.tags.is_empty() {
            call = call.set_tags(Some($crate::stack::changeset::sdk_tags(settings.tags)));
        }
        call
    }};
}
pub(crate) use with_stack_settings;

/// Everything needed to create one change set.
#[derive(Debug, Clone)]
pub struct ChangeSetRequest<'a> {
    pub stack_name: &'a str,
    pub change_set_name: &'a str,
    pub is_create: bool,
    pub settings: StackSettings<'a>,
    pub description: &'a str,
    /// `deployment-mode`: `REVERT_DRIFT` for a drift-aware change set.
    pub deployment_mode: Option<&'a str>,
    /// `include-nested-stacks-change-set`.
    pub include_nested_stacks: bool,
}

/// One planned resource change, as shown to users and in the job summary,
/// and published (`changes-summary`) in the shape DescribeChangeSet gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PlannedChange {
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For `Modify`: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
    /// The resource's id, for a resource that exists already.
    pub physical_id: Option<String>,
    /// What of the resource changes: `Properties`, `Metadata`, `Tags`, ...
    pub scope: Vec<String>,
    pub details: Vec<ChangeDetail>,
    /// For a nested stack's resource: the nested change set holding its
    /// own changes (IncludeNestedStacks).
    pub change_set_id: Option<String>,
    /// The nested stack the change is in, as a path of logical ids
    /// (`Network/Queues`); `None` in the deployed stack itself.
    pub nested_stack: Option<String>,
}

/// One property-level change of a [`PlannedChange`] (DescribeChangeSet's
/// `ResourceChangeDetail` with its `Target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ChangeDetail {
    /// `Properties`, `Metadata`, `Tags`, ...
    pub attribute: Option<String>,
    /// The property's name.
    pub name: Option<String>,
    /// `Never`, `Conditionally` or `Always`.
    pub requires_recreation: Option<String>,
    /// `Static` or `Dynamic`.
    pub evaluation: Option<String>,
    /// `ResourceReference`, `ParameterReference`, `DirectModification`, ...
    pub change_source: Option<String>,
    pub causing_entity: Option<String>,
}

impl PlannedChange {
    /// The logical id, under its nested stack's path when it is in one.
    pub fn display_id(&self) -> String {
        match &self.nested_stack {
            Some(path) => format!("{path}/{}", self.logical_id),
            None => self.logical_id.clone(),
        }
    }

    /// The change as one log line (nested changes indented under theirs).
    pub fn to_line(&self) -> String {
        let depth = self
            .nested_stack
            .as_deref()
            .map_or(0, |path| path.split('/').count());
        let mut line = format!(
            "{}{}  {}  {}",
            "  ".repeat(depth),
            self.action,
            self.display_id(),
            self.resource_type
        );
        if let Some(replacement) = &self.replacement {
            line.push_str(&format!("  (replacement: {replacement})"));
        }
        line
    }
}

/// What CloudFormation made of a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeSetOutcome {
    Ready(Vec<PlannedChange>),
    /// Nothing to change.
    Empty,
    Failed(String),
}

/// Whether a FAILED change set's reason means "nothing to change". The API
/// has no status or code for this, only the message, which has two wordings
/// in the wild; this is the one place that matches them.
pub fn is_empty_change_set(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Another operation got to the stack between this run's inspection and its
/// change set: the stack was created under it, or a change set was executed
/// first, which makes CloudFormation delete the stack's other change sets,
/// ours included. Nothing of this run was applied; the caller waits for the
/// other operation and plans again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Superseded(pub String);

/// Whether the call failed because the change set does not exist (any
/// more). Only DescribeChangeSet models this error, so the code is compared.
pub(crate) fn is_change_set_not_found<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    error
        .as_service_error()
        .is_some_and(|e| e.code() == Some("ChangeSetNotFound"))
}

fn superseded(change_set: &str) -> Superseded {
    Superseded(format!(
        "change set {change_set} was deleted by CloudFormation: another change set was executed on the stack first"
    ))
}

/// The identifiers of a created change set.
#[derive(Debug, Clone)]
pub struct CreatedChangeSet {
    pub id: String,
    pub stack_id: String,
}

/// Creates the change set (CreateChangeSet).
pub async fn create_change_set(
    client: &Client,
    request: &ChangeSetRequest<'_>,
) -> anyhow::Result<CreatedChangeSet> {
    let call = with_stack_settings!(
        client
            .create_change_set()
            .stack_name(request.stack_name)
            .change_set_name(request.change_set_name)
            .client_token(request_token())
            .description(request.description)
            .change_set_type(if request.is_create {
                ChangeSetType::Create
            } else {
                ChangeSetType::Update
            })
            .set_deployment_mode(
                request
                    .deployment_mode
                    .map(aws_sdk_cloudformation::types::DeploymentMode::from)
            )
            .set_include_nested_stacks(request.include_nested_stacks.then_some(true)),
        &request.settings
    );
    let output = match call.send().await {
        Ok(output) => output,
        Err(error)
            if request.is_create
                && error.as_service_error().is_some_and(|e| {
                    e.is_already_exists_exception()
                        && e.message().is_some_and(|m| m.starts_with("Stack ["))
                }) =>
        {
            return Err(Superseded(format!(
                "stack {} was created by another operation after this run found it absent",
                request.stack_name
            ))
            .into());
        }
        Err(error) => {
            return Err(aws_error(error))
                .with_context(|| format!("creating change set {}", request.change_set_name));
        }
    };
    Ok(CreatedChangeSet {
        id: output.id().unwrap_or_default().to_string(),
        stack_id: output.stack_id().unwrap_or_default().to_string(),
    })
}

/// The SDK form of the planned parameters.
pub fn sdk_parameters(parameters: &[PlannedParameter]) -> Vec<Parameter> {
    parameters
        .iter()
        .map(|p| match p {
            PlannedParameter::Value { key, value } => Parameter::builder()
                .parameter_key(key)
                .parameter_value(value)
                .build(),
            PlannedParameter::UsePrevious { key } => Parameter::builder()
                .parameter_key(key)
                .use_previous_value(true)
                .build(),
        })
        .collect()
}

/// The SDK form of the tags.
pub fn sdk_tags(tags: &[Tag]) -> Vec<CfnTag> {
    tags.iter()
        .map(|t| CfnTag::builder().key(&t.key).value(&t.value).build())
        .collect()
}

/// Waits until the change set is computed, then reads all its changes.
pub async fn wait_for_change_set(
    client: &Client,
    change_set_id: &str,
    schedule: PollSchedule,
    timeout: Duration,
) -> Result<ChangeSetOutcome, WaitError> {
    let mut poller = Poller::new(schedule, timeout);
    loop {
        let output = match client
            .describe_change_set()
            .change_set_name(change_set_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if is_change_set_not_found(&error) => {
                return Err(WaitError::Aws(superseded(change_set_id).into()));
            }
            Err(error) => {
                return Err(WaitError::Aws(
                    aws_error(error).context(format!("describing change set {change_set_id}")),
                ));
            }
        };
        let status = output.status().cloned();
        match status {
            Some(ChangeSetStatus::CreateComplete) => {
                return Ok(ChangeSetOutcome::Ready(
                    read_changes(client, change_set_id, &output).await?,
                ));
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = output.status_reason().unwrap_or_default().to_string();
                return Ok(if is_empty_change_set(&reason) {
                    ChangeSetOutcome::Empty
                } else {
                    ChangeSetOutcome::Failed(reason)
                });
            }
            _ => {}
        }
        if let Err(TimedOut { waited }) = poller.tick().await {
            return Err(WaitError::Timeout {
                stack: change_set_id.to_string(),
                last_status: status.map(|s| s.as_str().to_string()).unwrap_or_default(),
                waited,
            });
        }
    }
}

/// A property-level change as DescribeChangeSet gave it.
fn change_detail(detail: &aws_sdk_cloudformation::types::ResourceChangeDetail) -> ChangeDetail {
    let target = detail.target();
    ChangeDetail {
        attribute: target
            .and_then(|t| t.attribute())
            .map(|a| a.as_str().to_string()),
        name: target.and_then(|t| t.name()).map(str::to_string),
        requires_recreation: target
            .and_then(|t| t.requires_recreation())
            .map(|r| r.as_str().to_string()),
        evaluation: detail.evaluation().map(|e| e.as_str().to_string()),
        change_source: detail.change_source().map(|c| c.as_str().to_string()),
        causing_entity: detail.causing_entity().map(str::to_string),
    }
}

/// Every change of a computed change set, across pages: those of `first`,
/// the DescribeChangeSet answer already in hand (its status was what the
/// caller asked about), then the pages after it. The first page is not
/// asked for twice.
pub(crate) async fn read_changes(
    client: &Client,
    change_set_id: &str,
    first: &DescribeChangeSetOutput,
) -> anyhow::Result<Vec<PlannedChange>> {
    let mut changes = planned_changes(first.changes());
    let mut token = first.next_token().map(str::to_string);
    while let Some(next) = token.take() {
        let page = client
            .describe_change_set()
            .change_set_name(change_set_id)
            .next_token(next)
            .send()
            .await
            .map_err(aws_error)
            .with_context(|| format!("reading the changes of change set {change_set_id}"))?;
        changes.extend(planned_changes(page.changes()));
        token = page.next_token().map(str::to_string);
    }
    Ok(changes)
}

/// The resource changes of one DescribeChangeSet page.
fn planned_changes(changes: &[Change]) -> Vec<PlannedChange> {
    changes
        .iter()
        .filter_map(|change| change.resource_change())
        .map(|resource| PlannedChange {
            action: resource
                .action()
                .map(|a| a.as_str().to_string())
                .unwrap_or_default(),
            logical_id: resource
                .logical_resource_id()
                .unwrap_or_default()
                .to_string(),
            resource_type: resource.resource_type().unwrap_or_default().to_string(),
            replacement: resource.replacement().map(|r| r.as_str().to_string()),
            physical_id: resource.physical_resource_id().map(str::to_string),
            scope: resource
                .scope()
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
            details: resource.details().iter().map(change_detail).collect(),
            change_set_id: resource.change_set_id().map(str::to_string),
            nested_stack: None,
        })
        .collect()
}

/// Adds the changes of the nested change sets (IncludeNestedStacks), each
/// right after its nested stack's own change and under its path. They are
/// read only to be shown: a nested change set that cannot be read is one
/// warning, and its changes are left out.
pub async fn with_nested_changes(
    client: &Client,
    changes: Vec<PlannedChange>,
    console: &Console,
) -> Vec<PlannedChange> {
    let mut all = Vec::with_capacity(changes.len());
    // Depth first, keeping order: (change, whether its nested set is read).
    let mut pending: Vec<PlannedChange> = changes.into_iter().rev().collect();
    while let Some(change) = pending.pop() {
        let nested = change.change_set_id.clone();
        let path = change.display_id();
        all.push(change);
        let Some(id) = nested else { continue };
        match describe_all_changes(client, &id).await {
            Ok(children) => pending.extend(children.into_iter().rev().map(|mut child| {
                child.nested_stack = Some(path.clone());
                child
            })),
            Err(error) => console.explain_failed(
                "DescribeChangeSet",
                &error.context(format!("reading the changes of nested stack {path}")),
            ),
        }
    }
    all
}

/// Every change of a change set, by id.
async fn describe_all_changes(client: &Client, id: &str) -> anyhow::Result<Vec<PlannedChange>> {
    let first = client
        .describe_change_set()
        .change_set_name(id)
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("describing change set {id}"))?;
    read_changes(client, id, &first).await
}

/// Deletes a change set that will not be executed. One that is already
/// gone counts as deleted: that is what a retried call finds when the answer
/// to the first was lost.
pub async fn delete_change_set(client: &Client, change_set_id: &str) -> anyhow::Result<()> {
    match client
        .delete_change_set()
        .change_set_name(change_set_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is_change_set_not_found(&error) => Ok(()),
        Err(error) => {
            Err(aws_error(error)).with_context(|| format!("deleting change set {change_set_id}"))
        }
    }
}

/// Starts executing the change set.
pub async fn execute_change_set(
    client: &Client,
    change_set_id: &str,
    disable_rollback: bool,
) -> anyhow::Result<()> {
    match client
        .execute_change_set()
        .change_set_name(change_set_id)
        .client_request_token(request_token())
        .disable_rollback(disable_rollback)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is_change_set_not_found(&error) => Err(superseded(change_set_id).into()),
        Err(error) => {
            Err(aws_error(error)).with_context(|| format!("executing change set {change_set_id}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_empty_change_set_wordings_are_recognised() {
        assert!(is_empty_change_set(
            "The submitted information didn't contain changes. Submit different information to create a change set."
        ));
        assert!(is_empty_change_set("No updates are to be performed."));
        assert!(!is_empty_change_set(
            "Parameters: [Missing] must have values"
        ));
    }

    #[test]
    fn change_lines_show_replacement_only_when_known() {
        let change = PlannedChange {
            action: "Modify".into(),
            logical_id: "Vpc".into(),
            resource_type: "AWS::EC2::VPC".into(),
            replacement: Some("True".into()),
            ..PlannedChange::default()
        };
        assert_eq!(
            change.to_line(),
            "Modify  Vpc  AWS::EC2::VPC  (replacement: True)"
        );
        let added = PlannedChange {
            replacement: None,
            action: "Add".into(),
            ..change
        };
        assert_eq!(added.to_line(), "Add  Vpc  AWS::EC2::VPC");
    }

    #[test]
    fn planned_parameters_become_sdk_parameters() {
        let sdk = sdk_parameters(&[
            PlannedParameter::Value {
                key: "Env".into(),
                value: "prod".into(),
            },
            PlannedParameter::UsePrevious {
                key: "Image".into(),
            },
        ]);
        assert_eq!(sdk[0].parameter_key(), Some("Env"));
        assert_eq!(sdk[0].parameter_value(), Some("prod"));
        assert_eq!(sdk[1].use_previous_value(), Some(true));
        assert_eq!(sdk[1].parameter_value(), None);
    }
}

//! Deploying a stack through a change set, end to end.
//!
//! Order matters for safety: everything read-only (inspect the stack, wait
//! for a running operation to settle, plan the parameters) happens before
//! the first call that changes anything, so a bad input never leaves a
//! change set or a half-deleted stack behind.

use anyhow::{Context as _, anyhow};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::Stack;
use serde::Serialize;

use super::changeset::{
    ChangeSetOutcome, ChangeSetRequest, PlannedChange, StackSettings, Superseded, TemplateSource,
    create_change_set, delete_change_set, execute_change_set, wait_for_change_set,
    with_nested_changes, with_stack_settings,
};
use super::destroy::delete_and_wait;
use super::events::{EventFeed, root_causes};
use super::lookup::{describe_stack, has_resources, newest_change_set, status_of};
use super::options::{StackOptions, UpstreamOutputs};
use super::parameters::{
    DeclaredParameter, OverrideValue, ParameterOverride, PlannedParameter, plan_parameters,
};
use super::plan::{DEFAULT_IMAGE_PARAMETER, LoadedStackFiles};
use super::request_token;
use super::status::{StackCondition, classify, is_success};
use super::wait::{PollSchedule, WaitError, wait_for_stack};
use crate::aws::aws_error;
use crate::console::Console;
use crate::refusal::{Refusal, Refusals, Setting};
use crate::service::verdict::{FailFast, OnRolloutFailure};
use crate::service::watch::{EcsClients, StackServiceWatch};

/// One stack output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackOutput {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

/// What a deploy did, known as far as it got (also on failure).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StackDeployment {
    pub stack_name: String,
    pub stack_id: Option<String>,
    pub stack_status: Option<String>,
    pub change_set_id: Option<String>,
    pub has_changes: bool,
    /// Whether the change set was executed (false with no-execute-changeset
    /// and when there was nothing to change).
    pub executed: bool,
    pub changes: Vec<PlannedChange>,
    pub outputs: Vec<StackOutput>,
    /// Things the user should know that are not errors ("recreated the
    /// stack after ROLLBACK_COMPLETE").
    pub notes: Vec<String>,
    pub root_causes: Vec<String>,
}

/// Settings that are not user inputs.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub poll: PollSchedule,
    /// Stored on the change set so the console shows who made it.
    pub description: String,
    /// When set, ECS services the stack creates or updates are watched while
    /// CloudFormation waits for them, and their problems shown.
    pub ecs: Option<EcsClients>,
    /// When a rollout (the stack's services, or a direct one) is doomed and
    /// what is done then.
    pub fail_fast: FailFast,
}

/// The parameters and resource types of the template. A file's were read
/// locally; for a template given by URL, or one whose parameters a
/// transform may add, CloudFormation is asked (GetTemplateSummary is
/// read-only).
async fn template_view(
    client: &Client,
    files: &LoadedStackFiles,
) -> anyhow::Result<(Vec<DeclaredParameter>, Option<Vec<String>>)> {
    if let Some(declared) = &files.declared {
        return Ok((declared.clone(), files.resource_types.clone()));
    }
    let mut call = client.get_template_summary();
    call = match &files.template {
        TemplateSource::Body(body) => call.template_body(body),
        TemplateSource::Url(url) => call.template_url(url),
    };
    let summary = call
        .send()
        .await
        .map_err(aws_error)
        .context("reading the template's parameters (GetTemplateSummary)")?;
    let declared = summary
        .parameters()
        .iter()
        .map(|p| DeclaredParameter {
            name: p.parameter_key().unwrap_or_default().to_string(),
            no_echo: p.no_echo().unwrap_or(false),
            has_default: p.default_value().is_some(),
        })
        .collect();
    // A transformed template may declare anything once processed.
    let resource_types = summary
        .declared_transforms()
        .is_empty()
        .then(|| summary.resource_types().to_vec())
        .or_else(|| files.resource_types.clone());
    Ok((declared, resource_types))
}

/// The overrides plus the image parameter, checked against the template.
fn with_image_override(
    declared: &[DeclaredParameter],
    files: &LoadedStackFiles,
    console: &Console,
) -> Result<Vec<ParameterOverride>, Refusals> {
    let mut overrides = files.overrides.clone();
    let Some(image) = &files.image else {
        return Ok(overrides);
    };
    let is_declared = |name: &str| declared.iter().any(|p| p.name == name);
    let name = match &image.name {
        Some(name) if is_declared(name) => name.clone(),
        Some(name) => {
            return Err(Refusal::new(
                Setting::ImageParameter,
                name,
                "is not a parameter of the template",
                format!(
                    "name the parameter that receives the image; the template declares: {}",
                    declared
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into());
        }
        None if is_declared(DEFAULT_IMAGE_PARAMETER) => DEFAULT_IMAGE_PARAMETER.to_string(),
        None => {
            console.warning(&format!(
                "an image was given but the template declares no `{DEFAULT_IMAGE_PARAMETER}` parameter and `image-parameter` is empty, so the stack does not receive it"
            ));
            return Ok(overrides);
        }
    };
    if overrides.iter().any(|o| o.key == name) {
        return Err(Refusal::new(
            Setting::ParameterOverrides,
            &name,
            format!("sets `{name}`, which also receives the resolved image"),
            "remove it from parameter-overrides: the action passes the immutable image itself",
        )
        .into());
    }
    console.line(&format!("template parameter {name} = {}", image.value));
    overrides.push(ParameterOverride {
        key: name,
        value: OverrideValue::Value(image.value.clone()),
    });
    Ok(overrides)
}

/// Another stack's outputs, read for `parameters-from-stacks`; `None` when
/// the stack does not exist.
pub type UpstreamStack = (String, Option<Vec<(String, String)>>);

/// Reads the outputs of the stacks named by `parameters-from-stacks`
/// (read-only), each stack once.
async fn read_upstream_outputs(
    client: &Client,
    inputs: &StackOptions,
) -> anyhow::Result<Vec<UpstreamStack>> {
    let mut outputs_by_stack: Vec<UpstreamStack> = Vec::new();
    for source in &inputs.parameters_from_stacks {
        let stack = match source {
            UpstreamOutputs::Stack(stack) | UpstreamOutputs::Mapped { stack, .. } => stack,
        };
        if outputs_by_stack.iter().any(|(name, _)| name == stack) {
            continue;
        }
        let outputs = describe_stack(client, stack).await?.map(|found| {
            found
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect()
        });
        outputs_by_stack.push((stack.clone(), outputs));
    }
    Ok(outputs_by_stack)
}

/// Fills parameters from other stacks' outputs (`parameters-from-stacks`).
/// Explicit overrides win; a missing stack or output is a bad input naming
/// it.
fn add_upstream_outputs(
    inputs: &StackOptions,
    declared: &[DeclaredParameter],
    upstream: &[UpstreamStack],
    overrides: &mut Vec<ParameterOverride>,
    console: &Console,
) -> Result<(), Refusals> {
    let outputs_of = |stack: &str| -> Result<&Vec<(String, String)>, Refusals> {
        match upstream.iter().find(|(name, _)| name == stack) {
            Some((_, Some(outputs))) => Ok(outputs),
            _ => Err(Refusals::from(Refusal::new(
                Setting::ParametersFromStacks,
                stack,
                "names a stack that does not exist",
                "deploy the upstream stack first, or fix its name",
            ))),
        }
    };
    let is_declared = |name: &str| declared.iter().any(|p| p.name == name);
    let mut add = |parameter: &str, value: &str, origin: String| {
        if overrides.iter().any(|o| o.key == parameter) {
            return;
        }
        console.line(&format!("parameter {parameter} = {value} (from {origin})"));
        overrides.push(ParameterOverride {
            key: parameter.to_string(),
            value: OverrideValue::Value(value.to_string()),
        });
    };
    for source in &inputs.parameters_from_stacks {
        match source {
            UpstreamOutputs::Stack(stack) => {
                for (key, value) in outputs_of(stack)? {
                    if is_declared(key) {
                        add(key, value, format!("stack {stack}"));
                    }
                }
            }
            UpstreamOutputs::Mapped {
                parameter,
                stack,
                output,
            } => {
                let outputs = outputs_of(stack)?;
                if !is_declared(parameter) {
                    return Err(Refusals::from(Refusal::new(
                        Setting::ParametersFromStacks,
                        parameter,
                        "is not a parameter of the template",
                        "map outputs only onto parameters the template declares",
                    )));
                }
                let Some((_, value)) = outputs.iter().find(|(k, _)| k == output) else {
                    return Err(Refusals::from(Refusal::new(
                        Setting::ParametersFromStacks,
                        &format!("{parameter}={stack}.{output}"),
                        format!("stack {stack} has no output {output}"),
                        "check the output key in the upstream stack's Outputs",
                    )));
                };
                add(parameter, value, format!("{stack}.{output}"));
            }
        }
    }
    Ok(())
}

/// A stack as the plan found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingStack {
    pub stack_id: String,
    pub status: String,
    /// Its parameters' keys, for `UsePreviousValue`.
    pub parameter_keys: Vec<String>,
}

/// What the read-only calls found about a stack and its template.
#[derive(Debug, Clone)]
pub struct StackView {
    pub existing: Option<ExistingStack>,
    pub condition: StackCondition,
    pub declared: Vec<DeclaredParameter>,
    pub resource_types: Option<Vec<String>>,
    pub upstream: Vec<UpstreamStack>,
}

/// How the stack is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackAction {
    /// A CREATE change set, or CreateStack when `direct` (a stack timeout
    /// can only be given to CreateStack). `replaces` names the status of a
    /// never-created stack that is deleted first.
    Create {
        replaces: Option<String>,
        direct: bool,
    },
    /// An UPDATE change set.
    Update,
}

/// What the plan decided for one stack: every value the apply needs.
#[derive(Debug, Clone)]
pub struct StackPlan {
    pub stack_name: String,
    pub existing: Option<ExistingStack>,
    pub action: StackAction,
    pub parameters: Vec<PlannedParameter>,
    pub files: LoadedStackFiles,
    pub resource_types: Option<Vec<String>>,
    /// Whether the change set is executed (false: kept for review).
    pub execute: bool,
}

impl StackPlan {
    /// Whether the template may declare a resource of `resource_type`.
    pub fn may_declare(&self, resource_type: &str) -> bool {
        may_declare(self.resource_types.as_deref(), resource_type)
    }
}

/// Whether a template with these resource types may declare one of
/// `resource_type`; `None` (a template given by URL or rewritten by a
/// transform) may declare anything.
pub fn may_declare(resource_types: Option<&[String]>, resource_type: &str) -> bool {
    resource_types.is_none_or(|types| types.iter().any(|t| t == resource_type))
}

/// Reads everything the stack's plan depends on, with read-only calls:
/// where the stack stands (waiting out a running operation), the template's
/// parameters and the upstream stacks' outputs.
pub async fn read_stack(
    client: &Client,
    inputs: &StackOptions,
    files: &LoadedStackFiles,
    settings: &DeploySettings,
    console: &Console,
) -> anyhow::Result<StackView> {
    let name = inputs.stack_name.as_str();
    let section = console.phase(&format!("Inspect stack {name}"));
    let (existing, condition) = settle(client, inputs, settings, console).await;
    drop(section);
    let existing = existing?.map(|stack| ExistingStack {
        stack_id: stack.stack_id().unwrap_or(name).to_string(),
        status: status_of(&stack),
        parameter_keys: stack
            .parameters()
            .iter()
            .filter_map(|p| p.parameter_key().map(str::to_string))
            .collect(),
    });
    let (declared, resource_types) = template_view(client, files).await?;
    let upstream = read_upstream_outputs(client, inputs).await?;
    Ok(StackView {
        existing,
        condition,
        declared,
        resource_types,
        upstream,
    })
}

/// Decides what to do with the stack from what was read (pure but for the
/// lines it prints): create, recreate or update, with which parameters.
pub fn decide_stack(
    inputs: &StackOptions,
    files: &LoadedStackFiles,
    view: &StackView,
    console: &Console,
) -> Result<StackPlan, StackPlanError> {
    // CreateChangeSet has no TimeoutInMinutes: only CreateStack takes it.
    let direct = inputs.execute_change_set && inputs.timeout_in_minutes.is_some();
    let action = match &view.condition {
        StackCondition::NeedsRecovery { recovery } => {
            return Err(StackPlanError::NeedsRecovery(recovery.clone()));
        }
        StackCondition::Updatable => StackAction::Update,
        StackCondition::NeverCreated => StackAction::Create {
            replaces: view.existing.as_ref().map(|s| s.status.clone()),
            direct,
        },
        StackCondition::Missing | StackCondition::Busy => StackAction::Create {
            replaces: None,
            direct,
        },
    };
    // CloudFormation fails an update that changes a CODE_DEPLOY service's
    // task definition (only the AWS::CodeDeployBlueGreen transform can);
    // the image would reach it through the image parameter.
    if let (StackAction::Update, Some(image), Some(service)) =
        (&action, &files.image, files.code_deploy_services.first())
    {
        return Err(StackPlanError::BadInput(Refusals::from(Refusal::new(
            Setting::ImageParameter,
            image.name.as_deref().unwrap_or(DEFAULT_IMAGE_PARAMETER),
            format!(
                "would change the task definition of `{service}`, a service the template deploys through CodeDeploy (DeploymentController CODE_DEPLOY): CloudFormation cannot update it in place, and the stack update would fail"
            ),
            "deploy the image to that service with task-definition + service (a CodeDeploy blue/green deployment, in this step or the next), or add the AWS::CodeDeployBlueGreen transform to the template",
        ))));
    }
    let previous_keys = match (&action, &view.existing) {
        (StackAction::Update, Some(stack)) => Some(stack.parameter_keys.as_slice()),
        _ => None,
    };
    let mut overrides = with_image_override(&view.declared, files, console)?;
    add_upstream_outputs(
        inputs,
        &view.declared,
        &view.upstream,
        &mut overrides,
        console,
    )?;
    let parameters =
        plan_parameters(&view.declared, &overrides, previous_keys).map_err(|error| {
            Refusals::from(Refusal::new(
                Setting::ParameterOverrides,
                &files
                    .overrides
                    .iter()
                    .map(|o| o.key.clone())
                    .collect::<Vec<_>>()
                    .join(","),
                error.to_string(),
                "override only parameters the template declares, and give every parameter without a default a value",
            ))
        })?;
    Ok(StackPlan {
        stack_name: inputs.stack_name.clone(),
        existing: view.existing.clone(),
        action,
        parameters,
        files: files.clone(),
        resource_types: view.resource_types.clone(),
        execute: inputs.execute_change_set,
    })
}

/// Why a stack cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum StackPlanError {
    #[error(transparent)]
    BadInput(#[from] Refusals),
    /// The stack is in a state only a person can resolve.
    #[error("{0}")]
    NeedsRecovery(String),
    /// A read-only call failed.
    #[error(transparent)]
    Aws(#[from] anyhow::Error),
}

/// Reads the stack and decides its plan.
pub async fn plan_stack(
    client: &Client,
    inputs: &StackOptions,
    files: &LoadedStackFiles,
    settings: &DeploySettings,
    console: &Console,
) -> Result<StackPlan, StackPlanError> {
    let view = read_stack(client, inputs, files, settings, console).await?;
    decide_stack(inputs, files, &view, console)
}

/// Applies the stack's `plan`, recording what it learns in `deployment` as
/// it goes, so a failure or a cancellation still knows the stack, the change
/// set and the last status. When another operation got to the stack first
/// (nothing of this run was applied), the stack is read and planned again.
pub async fn deploy_stack(
    client: &Client,
    inputs: &StackOptions,
    plan: &StackPlan,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
) -> anyhow::Result<()> {
    deployment.stack_name = inputs.stack_name.clone();
    let mut plan = std::borrow::Cow::Borrowed(plan);
    let mut superseded_times = 0;
    loop {
        match apply_stack(client, inputs, &plan, settings, console, deployment).await {
            Err(error)
                if superseded_times < MAX_SUPERSEDED
                    && error.downcast_ref::<Superseded>().is_some() =>
            {
                superseded_times += 1;
                console.warning(&format!(
                    "{error}; nothing of this run was applied to stack {}. Waiting for the other operation, then planning again",
                    inputs.stack_name
                ));
                *deployment = StackDeployment {
                    stack_name: inputs.stack_name.clone(),
                    ..StackDeployment::default()
                };
                let replanned = plan_stack(client, inputs, &plan.files, settings, console)
                    .await
                    .map_err(|error| anyhow!(error))?;
                plan = std::borrow::Cow::Owned(replanned);
            }
            other => return other,
        }
    }
}

/// How many times a run plans again after another operation got to the
/// stack first: each time means another run finished a deploy in between,
/// so more than a few means the stack is being deployed in a loop.
const MAX_SUPERSEDED: usize = 3;

/// The calls that change the stack, in the order the plan decided.
async fn apply_stack(
    client: &Client,
    inputs: &StackOptions,
    plan: &StackPlan,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
) -> anyhow::Result<()> {
    let name = inputs.stack_name.as_str();
    if let Some(stack) = &plan.existing {
        deployment.stack_id = Some(stack.stack_id.clone());
        deployment.stack_status = Some(stack.status.clone());
    }
    let is_create = match &plan.action {
        StackAction::Update => false,
        StackAction::Create { replaces, direct } => {
            if let (Some(status), Some(stack)) = (replaces, &plan.existing) {
                recreate_prelude(client, inputs, settings, console, deployment, stack, status)
                    .await?;
            }
            if *direct {
                return create_stack_directly(
                    client,
                    inputs,
                    &plan.files,
                    &plan.parameters,
                    settings,
                    console,
                    deployment,
                )
                .await;
            }
            true
        }
    };

    let section = console.phase(&format!("Change set {}", inputs.change_set_name));
    let result = change_set(
        client,
        inputs,
        &plan.files,
        &plan.parameters,
        settings,
        console,
        deployment,
        is_create,
    )
    .await;
    drop(section);
    let Some(change_set_id) = result? else {
        return Ok(());
    };

    if !inputs.execute_change_set {
        console.line(
            "no-execute-changeset is set: the change set is kept for review and not executed",
        );
        refresh(client, deployment).await?;
        return Ok(());
    }

    let _section = console.phase(&format!("Execute change set on stack {name}"));
    execute(
        client,
        inputs,
        settings,
        console,
        deployment,
        &change_set_id,
        is_create,
    )
    .await
}

/// Marks the description of a change set kept for review
/// (no-execute-changeset), which no run is about to execute.
pub const KEPT_FOR_REVIEW: &str = "(kept for review)";

/// How long a CREATE change set of this action may take between creation
/// and execution (CloudFormation computes a change set in seconds to a
/// minute).
const IN_FLIGHT_WINDOW: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether a change set looks like another run's, about to be executed.
fn is_in_flight(description: &str, age: std::time::Duration) -> bool {
    description.starts_with("ecs-stack-deploy")
        && !description.contains(KEPT_FOR_REVIEW)
        && age < IN_FLIGHT_WINDOW
}

/// Reads the stack, waiting (bounded by wait-timeout) while an operation is
/// running on it, and classifies it.
async fn settle(
    client: &Client,
    inputs: &StackOptions,
    settings: &DeploySettings,
    console: &Console,
) -> (anyhow::Result<Option<Stack>>, StackCondition) {
    let name = inputs.stack_name.as_str();
    let started = std::time::Instant::now();
    loop {
        let stack = match describe_stack(client, name).await {
            Ok(stack) => stack,
            Err(error) => return (Err(error), StackCondition::Missing),
        };
        let Some(stack) = stack else {
            console.line(&format!(
                "stack {name} does not exist yet: it will be created"
            ));
            return (Ok(None), StackCondition::Missing);
        };
        let status = status_of(&stack);
        let resources = if status == "REVIEW_IN_PROGRESS" {
            match has_resources(client, name).await {
                Ok(found) => found,
                Err(error) => return (Err(error), StackCondition::Missing),
            }
        } else {
            true
        };
        let condition = classify(name, &status, resources);
        console.line(&format!("stack {name} is {status}"));
        if condition == StackCondition::NeverCreated && status == "REVIEW_IN_PROGRESS" {
            // Another run of this action creates its stack this way and
            // executes the change set moments later; deleting the stack now
            // would break that run. Such a change set is ours, fresh and not
            // marked as kept for review.
            match newest_change_set(client, name).await {
                Ok(Some((description, age))) if is_in_flight(&description, age) => {
                    if started.elapsed() >= inputs.wait_timeout {
                        return (
                            Err(anyhow!(
                                "stack {name} stayed REVIEW_IN_PROGRESS with the change set of another run of this action ({}s old); no change was made",
                                age.as_secs()
                            )),
                            StackCondition::Busy,
                        );
                    }
                    console.line(&format!(
                        "another run of this action created its change set {}s ago and is about to execute it: waiting",
                        age.as_secs()
                    ));
                    tokio::time::sleep(settings.poll.fast_max).await;
                    continue;
                }
                Ok(_) => {}
                Err(error) => return (Err(error), StackCondition::Missing),
            }
        }
        if condition != StackCondition::Busy {
            return (Ok(Some(stack)), condition);
        }
        console.line(&format!(
            "another operation is running on stack {name}; waiting for it to finish (up to {})",
            humantime::format_duration(inputs.wait_timeout)
        ));
        let stack_id = stack.stack_id().unwrap_or(name).to_string();
        let mut feed = EventFeed::start_explained(client, &stack_id, console).await;
        if let Err(error) = wait_for_stack(
            client,
            &stack_id,
            &mut feed,
            console,
            settings.poll,
            inputs.wait_timeout,
            None,
        )
        .await
        {
            let error = match error {
                WaitError::Timeout { .. } => {
                    anyhow!("{error}; no change was made, the running operation was left alone")
                }
                other => anyhow!(other),
            };
            return (Err(error), StackCondition::Busy);
        }
    }
}

/// Deletes a stack that was never created (ROLLBACK_COMPLETE or an empty
/// REVIEW_IN_PROGRESS) so it can be created anew, saying so.
async fn recreate_prelude(
    client: &Client,
    inputs: &StackOptions,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
    stack: &ExistingStack,
    status: &str,
) -> anyhow::Result<()> {
    let name = inputs.stack_name.as_str();
    let stack_id = stack.stack_id.clone();
    let section = console.phase(&format!("Recreate stack {name}"));
    let note = format!(
        "stack {name} was in {status}: it never finished being created and cannot be updated, so it was deleted and created anew"
    );
    console.line(&format!(
        "stack {name} is {status}: deleting it to create it anew (it holds no resources)"
    ));
    let result = async {
        let final_status = delete_and_wait(
            client,
            &stack_id,
            settings.poll,
            inputs.wait_timeout,
            console,
        )
        .await
        .with_context(|| format!("deleting stack {name} (in {status}) before recreating it"))?;
        if final_status != "DELETE_COMPLETE" {
            return Err(anyhow!(
                "stack {name} could not be deleted before recreating it: it ended in {final_status}"
            ));
        }
        Ok(())
    }
    .await;
    drop(section);
    result?;
    console.notice(&note);
    deployment.notes.push(note);
    deployment.stack_id = None;
    deployment.stack_status = None;
    Ok(())
}

/// Creates and waits for the change set. Returns its id when there is
/// something to execute (or keep), `None` when there was nothing to change.
#[allow(clippy::too_many_arguments)]
async fn change_set(
    client: &Client,
    inputs: &StackOptions,
    files: &LoadedStackFiles,
    parameters: &[PlannedParameter],
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
    is_create: bool,
) -> anyhow::Result<Option<String>> {
    let description = if inputs.execute_change_set {
        settings.description.clone()
    } else {
        format!("{} {KEPT_FOR_REVIEW}", settings.description)
    };
    let request = ChangeSetRequest {
        stack_name: &inputs.stack_name,
        change_set_name: &inputs.change_set_name,
        is_create,
        settings: stack_settings(inputs, files, parameters),
        description: &description,
        deployment_mode: inputs.deployment_mode.as_deref(),
        include_nested_stacks: inputs.include_nested_stacks.unwrap_or(files.nested_stacks),
    };
    let created = create_change_set(client, &request).await?;
    console.line(&format!(
        "created {} change set {}",
        if is_create { "CREATE" } else { "UPDATE" },
        created.id
    ));
    deployment.change_set_id = Some(created.id.clone());
    deployment.stack_id = Some(created.stack_id.clone());

    let outcome =
        wait_for_change_set(client, &created.id, settings.poll, inputs.wait_timeout).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(WaitError::Aws(error)) if error.downcast_ref::<Superseded>().is_some() => {
            // CloudFormation already deleted our change set; the stack is
            // the other run's and must be left to it.
            deployment.change_set_id = None;
            return Err(error);
        }
        Err(error) => {
            discard_change_set(client, inputs, console, deployment, is_create).await;
            return Err(anyhow!(error));
        }
    };
    match outcome {
        ChangeSetOutcome::Ready(changes) => {
            let changes = with_nested_changes(client, changes, console).await;
            for change in &changes {
                console.line(&change.to_line());
            }
            console.line(&format!("{} change(s) planned", changes.len()));
            deployment.has_changes = !changes.is_empty();
            deployment.changes = changes;
            Ok(Some(created.id))
        }
        ChangeSetOutcome::Empty => {
            console.line("the change set contains no changes: the stack is already up to date");
            deployment.has_changes = false;
            // An empty change set is useless to keep, even for review.
            delete_change_set(client, &created.id).await?;
            deployment.change_set_id = None;
            console.line("deleted the empty change set");
            refresh(client, deployment).await?;
            if inputs.fail_on_empty_change_set {
                return Err(anyhow!(
                    "stack {} has no changes and fail-on-empty-changeset is true",
                    inputs.stack_name
                ));
            }
            Ok(None)
        }
        ChangeSetOutcome::Failed(reason) => {
            deployment.root_causes.push(reason.clone());
            discard_change_set(client, inputs, console, deployment, is_create).await;
            Err(anyhow!(
                "CloudFormation could not create the change set for stack {}: {reason}",
                inputs.stack_name
            ))
        }
    }
}

/// Removes a failed change set (unless no-delete-failed-changeset), and the
/// empty REVIEW_IN_PROGRESS stack our CREATE change set made, so a failure
/// leaves nothing behind. Cleanup problems are reported, not raised: the
/// original error matters more.
async fn discard_change_set(
    client: &Client,
    inputs: &StackOptions,
    console: &Console,
    deployment: &mut StackDeployment,
    is_create: bool,
) {
    if !inputs.delete_failed_change_set {
        console.line(
            "no-delete-failed-changeset is set: the failed change set is kept for inspection",
        );
        return;
    }
    let Some(id) = deployment.change_set_id.clone() else {
        return;
    };
    match delete_change_set(client, &id).await {
        Ok(()) => {
            console.line("deleted the failed change set");
            deployment.change_set_id = None;
        }
        Err(error) => console.warning(&format!("could not delete change set {id}: {error:#}")),
    }
    if is_create
        && let Some(stack_id) = deployment.stack_id.clone()
        && only_our_empty_stack(client, &stack_id).await
    {
        // The stack exists only because of our change set, holds nothing,
        // and would otherwise block the next create as REVIEW_IN_PROGRESS.
        match client
            .delete_stack()
            .stack_name(&stack_id)
            .client_request_token(request_token())
            .send()
            .await
        {
            Ok(_) => console.line("deleted the empty stack the change set had created"),
            Err(error) => console.warning(&format!(
                "could not delete the empty stack {stack_id}: {:#}",
                aws_error(error)
            )),
        }
    }
}

/// Whether the stack is still an empty REVIEW_IN_PROGRESS shell with no
/// change set left but ours (already deleted): another run may have added
/// its own CREATE change set to the same shell, or executed one, and its
/// stack must not be deleted under it.
async fn only_our_empty_stack(client: &Client, stack_id: &str) -> bool {
    let in_review = matches!(
        describe_stack(client, stack_id).await,
        Ok(Some(stack)) if status_of(&stack) == "REVIEW_IN_PROGRESS"
    );
    in_review
        && client
            .list_change_sets()
            .stack_name(stack_id)
            .send()
            .await
            .is_ok_and(|listed| listed.summaries().is_empty())
}

/// Executes the change set and waits for the stack to settle. A stack our
/// CREATE change set just made has no events of earlier operations, so its
/// feed needs no baseline read.
async fn execute(
    client: &Client,
    inputs: &StackOptions,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
    change_set_id: &str,
    is_create: bool,
) -> anyhow::Result<()> {
    let stack_id = deployment
        .stack_id
        .clone()
        .unwrap_or_else(|| inputs.stack_name.clone());
    let mut feed = if is_create {
        EventFeed::empty(&stack_id)
    } else {
        EventFeed::start_explained(client, &stack_id, console).await
    };
    execute_change_set(client, change_set_id, inputs.disable_rollback).await?;
    deployment.executed = true;
    console.line("executing the change set");
    ensure_termination_protection(client, inputs, console, &stack_id).await?;
    finish(
        client,
        inputs.wait_timeout,
        settings,
        console,
        deployment,
        &stack_id,
        &mut feed,
    )
    .await
}

/// Waits for the running operation on `stack_id` (at most `wait_timeout`),
/// then records the final state, outputs and, on failure, the root causes.
pub(super) async fn finish(
    client: &Client,
    wait_timeout: std::time::Duration,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
    stack_id: &str,
    feed: &mut EventFeed,
) -> anyhow::Result<()> {
    let stack_name = deployment.stack_name.clone();
    let fail_fast = settings.fail_fast;
    let mut services = settings.ecs.clone().map(|clients| {
        let mut watch = StackServiceWatch::new(clients);
        watch.fail_fast_threshold =
            (fail_fast.on_failure != OnRolloutFailure::Wait).then_some(fail_fast.threshold);
        watch
    });
    let started = tokio::time::Instant::now();
    let waited = wait_for_stack(
        client,
        stack_id,
        feed,
        console,
        settings.poll,
        wait_timeout,
        services.as_mut(),
    )
    .await;
    let waited = match waited {
        Err(WaitError::Doomed {
            status,
            service,
            evidence,
            ..
        }) => {
            let cause = format!("service {service} cannot stabilise: {evidence}");
            return doomed_stack(
                client,
                DoomedStack {
                    stack_id,
                    status: &status,
                    cause,
                    remaining: wait_timeout.saturating_sub(started.elapsed()),
                },
                settings,
                console,
                deployment,
                feed,
                services.as_mut(),
            )
            .await;
        }
        other => other,
    };
    refresh(client, deployment).await?;
    // CloudFormation's own reason for a failed service is generic ("circuit
    // breaker was triggered"); what the tasks said comes after it.
    let mut causes = root_causes(feed.collected());
    causes.extend(services.iter().flat_map(StackServiceWatch::diagnosis));
    let status = match waited {
        Ok(status) => {
            // How our operation ended, even if another run's has started
            // on the stack since (the refresh would show that one's).
            deployment.stack_status = Some(status.clone());
            status
        }
        Err(error) => {
            deployment.root_causes = causes;
            return Err(anyhow!(error));
        }
    };
    if is_success(&status) {
        console.line(&format!("stack {stack_name} is {status}"));
        return Ok(());
    }
    deployment.root_causes = causes;
    Err(anyhow!("stack {stack_name} failed: it ended in {status}"))
}

/// A stack whose service rollout is doomed.
struct DoomedStack<'a> {
    stack_id: &'a str,
    status: &'a str,
    cause: String,
    remaining: std::time::Duration,
}

/// Acts on a doomed service rollout inside a stack operation: with
/// `rollback`, an update is cancelled (CloudFormation rolls it back) and
/// the rollback waited for; a create cannot be cancelled, so the job says
/// what CloudFormation will do and waits for its verdict; `stop` fails at
/// once and says what CloudFormation will do. A failure naming the
/// evidence, unless CloudFormation succeeds after all.
async fn doomed_stack(
    client: &Client,
    doomed: DoomedStack<'_>,
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
    feed: &mut EventFeed,
    mut services: Option<&mut StackServiceWatch>,
) -> anyhow::Result<()> {
    let stack_name = deployment.stack_name.clone();
    // From here the new deployment's failures are expected.
    if let Some(services) = services.as_deref_mut() {
        services.fail_fast_threshold = None;
    }
    let DoomedStack {
        stack_id,
        status,
        cause,
        remaining,
    } = doomed;
    console.line(&format!("the rollout is doomed: {cause}"));
    let mut causes = vec![cause.clone()];
    causes.extend(services.as_deref().iter().flat_map(|s| s.diagnosis()));
    let rollback = settings.fail_fast.on_failure == OnRolloutFailure::Rollback;
    if rollback {
        if status == "UPDATE_IN_PROGRESS" {
            client
                .cancel_update_stack()
                .stack_name(stack_id)
                .client_request_token(request_token())
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("cancelling the update of stack {stack_name}"))?;
            console.line(&format!(
                "cancelled the update of stack {stack_name} (on-rollout-failure: rollback); CloudFormation rolls it back: waiting for that"
            ));
        } else {
            console.line(&format!(
                "stack {stack_name} is {status}: a stack being created cannot be cancelled; CloudFormation keeps waiting for the service (up to 3 hours for an ECS service without a circuit breaker), then rolls the creation back; waiting for that (wait-timeout)"
            ));
        }
        let ended = wait_for_stack(
            client,
            stack_id,
            feed,
            console,
            settings.poll,
            remaining,
            services,
        )
        .await;
        refresh(client, deployment).await?;
        let end = match ended {
            Ok(status) if is_success(&status) => {
                // CloudFormation got there after all (a retry succeeded).
                console.line(&format!("stack {stack_name} is {status}"));
                return Ok(());
            }
            Ok(status) => format!("it is {status}"),
            Err(error) => format!("the rollback had not finished: {error}"),
        };
        deployment.root_causes = causes;
        return Err(anyhow!(
            "stack {stack_name}: the rollout was doomed ({cause}); {}: {end}",
            if status == "UPDATE_IN_PROGRESS" {
                "the update was cancelled and rolled back"
            } else {
                "CloudFormation rolled the creation back"
            }
        ));
    }
    refresh(client, deployment).await?;
    deployment.root_causes = causes;
    let what_next = if status == "CREATE_IN_PROGRESS" {
        "CloudFormation keeps waiting for the service (up to 3 hours for an ECS service without a circuit breaker), then rolls the creation back and deletes what it created (unless disable-rollback)"
    } else {
        "CloudFormation keeps waiting for the service (up to 3 hours for an ECS service without a circuit breaker) and then rolls the update back; on-rollout-failure: rollback cancels it at once"
    };
    Err(anyhow!(
        "stack {stack_name} is {status} and cannot succeed: {cause}; {what_next}"
    ))
}

/// Turns termination protection on when asked. It is never turned off
/// implicitly: the input defaults to false, and silently removing a
/// protection someone set by hand would be the wrong surprise.
async fn ensure_termination_protection(
    client: &Client,
    inputs: &StackOptions,
    console: &Console,
    stack_id: &str,
) -> anyhow::Result<()> {
    if !inputs.termination_protection {
        return Ok(());
    }
    client
        .update_termination_protection()
        .stack_name(stack_id)
        .enable_termination_protection(true)
        .send()
        .await
        .map_err(aws_error)
        .context("enabling termination protection")?;
    console.line("termination protection is enabled");
    Ok(())
}

/// The stack's template, parameters and settings from the inputs.
fn stack_settings<'a>(
    inputs: &'a StackOptions,
    files: &'a LoadedStackFiles,
    parameters: &'a [PlannedParameter],
) -> StackSettings<'a> {
    StackSettings {
        template: &files.template,
        parameters,
        capabilities: &inputs.capabilities,
        role_arn: inputs.role_arn.as_deref(),
        notification_arns: &inputs.notification_arns,
        tags: &inputs.tags,
    }
}

/// Creates a new stack with CreateStack, used only when timeout-in-minutes is
/// set: CloudFormation accepts a stack timeout on CreateStack but not on
/// change sets. The planned changes are then every resource of the template.
async fn create_stack_directly(
    client: &Client,
    inputs: &StackOptions,
    files: &LoadedStackFiles,
    parameters: &[PlannedParameter],
    settings: &DeploySettings,
    console: &Console,
    deployment: &mut StackDeployment,
) -> anyhow::Result<()> {
    let name = inputs.stack_name.as_str();
    let _section = console.phase(&format!("Create stack {name}"));
    console.line(
        "timeout-in-minutes is set: creating the stack with CreateStack (change sets cannot carry a stack timeout)",
    );
    let call = with_stack_settings!(
        client
            .create_stack()
            .stack_name(name)
            .client_request_token(request_token())
            .disable_rollback(inputs.disable_rollback)
            .set_timeout_in_minutes(inputs.timeout_in_minutes)
            .enable_termination_protection(inputs.termination_protection),
        &stack_settings(inputs, files, parameters)
    );
    let created = call
        .send()
        .await
        .map_err(aws_error)
        .with_context(|| format!("creating stack {name}"))?;
    let stack_id = created.stack_id().unwrap_or(name).to_string();
    deployment.stack_id = Some(stack_id.clone());
    deployment.executed = true;
    deployment.has_changes = true;
    let mut feed = EventFeed::empty(&stack_id);
    finish(
        client,
        inputs.wait_timeout,
        settings,
        console,
        deployment,
        &stack_id,
        &mut feed,
    )
    .await?;
    // The "changes" of a create are the resources it made; they are
    // listed only to be shown.
    match created_resources(client, &stack_id).await {
        Ok(changes) => deployment.changes = changes,
        Err(error) => console.explain_failed("ListStackResources", &error),
    }
    Ok(())
}

/// The resources of a stack, as `Add` changes.
async fn created_resources(client: &Client, stack_id: &str) -> anyhow::Result<Vec<PlannedChange>> {
    let output = client
        .list_stack_resources()
        .stack_name(stack_id)
        .send()
        .await
        .map_err(aws_error)
        .context("listing the created resources")?;
    Ok(output
        .stack_resource_summaries()
        .iter()
        .map(|r| PlannedChange {
            action: "Add".into(),
            logical_id: r.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: r.resource_type().unwrap_or_default().to_string(),
            physical_id: r.physical_resource_id().map(str::to_string),
            ..PlannedChange::default()
        })
        .collect())
}

/// Re-reads the stack's status and outputs into the deployment.
async fn refresh(client: &Client, deployment: &mut StackDeployment) -> anyhow::Result<()> {
    let stack_ref = deployment
        .stack_id
        .clone()
        .unwrap_or_else(|| deployment.stack_name.clone());
    if let Some(stack) = describe_stack(client, &stack_ref).await? {
        deployment.stack_id = stack.stack_id().map(str::to_string);
        deployment.stack_status = Some(status_of(&stack));
        deployment.outputs = stack
            .outputs()
            .iter()
            .map(|o| StackOutput {
                key: o.output_key().unwrap_or_default().to_string(),
                value: o.output_value().unwrap_or_default().to_string(),
                description: o.description().map(str::to_string),
            })
            .collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_a_fresh_unreviewed_change_set_of_this_action_is_in_flight() {
        let ours = "ecs-stack-deploy 0.1.0 for acme/shop@abc";
        let kept = format!("{ours} {KEPT_FOR_REVIEW}");
        let cases = [
            (ours, 5, true),
            (ours, 119, true),
            (ours, 121, false),
            (kept.as_str(), 5, false),
            ("created in the console", 5, false),
            ("", 5, false),
        ];
        for (description, seconds, expected) in cases {
            assert_eq!(
                is_in_flight(description, Duration::from_secs(seconds)),
                expected,
                "{description:?} {seconds}s"
            );
        }
    }
}

//! The deploy job from validated inputs to written outputs, shared by the
//! action and the CLI.
//!
//! Exit codes: 0 success (including "no changes"), 1 the deploy failed,
//! 2 bad input (always detected before any AWS call that changes anything).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::aws::{aws_error, load_config, resolve_region};
use crate::console::Console;
use crate::env::Environment;
use std::collections::BTreeMap;

use crate::github::api::{DeploymentState, GithubApi};
use crate::github::commands::AnnotationLevel;
use crate::github::event::{default_image_tag, summarize};
use crate::github::lint::{WorkflowFile, lint_workflows as lint, read_workflow_dir};
use crate::github::output::{append_outputs, append_summary};
use crate::inputs::{
    DeployInputs, EventPolicy, GithubInputs, ImageInputs, InputContext, InputError, InputErrors,
    RawInputs, ServiceInputs, TaskDefinitionSource, UpstreamFailure,
};
use crate::report::{JobReport, action_outputs, fill_output_references, markdown_summary};
use crate::service::ecr::inspect_ecr_image;
use crate::service::register::{
    as_registered, describe_task_definition, register_task_definition, registration_request,
};
use crate::service::rollout::{Rollout, update_service, wait_for_rollout};
use crate::service::watch::{
    EcsClients, ServiceWatch, describe_service, is_active_cluster, service_location,
    short_task_definition,
};
use crate::stack::changeset::delete_change_set;
use crate::stack::deploy::{DeploySettings, StackDeployment, deploy_stack};
use crate::stack::lookup::{describe_stack, status_of as stack_status_of};
use crate::stack::parameters::no_echo_values;
use crate::stack::plan::{ImageParameter, LoadedStackFiles, load_stack_files};
use crate::stack::request_token;
use crate::stack::status::is_busy;
use crate::stack::wait::PollSchedule;
use crate::taskdef::image::{ImageReference, MutableTagPolicy, compose_image};
use crate::taskdef::render::{
    ContainerEnvironment, ContainerImage, RenderRequest, is_same_task_definition,
    parse_task_definition, render_task_definition, to_pretty_json,
};

/// How a job ended, mapped onto the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
    BadInput,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::BadInput => ExitCode::from(2),
        }
    }
}

/// Where the job writes its results for the runner.
struct ResultFiles {
    outputs: Option<PathBuf>,
    summary: Option<PathBuf>,
}

/// A change set name unique per run: reruns of a workflow get a new attempt
/// number, local runs the current time.
fn default_change_set_name(env: &Environment) -> String {
    match (env.get("GITHUB_RUN_ID"), env.get("GITHUB_RUN_ATTEMPT")) {
        (Some(run), Some(attempt)) => format!("ecs-stack-deploy-{run}-{attempt}"),
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default();
            format!("ecs-stack-deploy-{now}")
        }
    }
}

/// The description stored on change sets, naming the commit when known.
fn change_set_description(env: &Environment) -> String {
    match (env.get("GITHUB_REPOSITORY"), env.get("GITHUB_SHA")) {
        (Some(repository), Some(sha)) => {
            format!(
                "ecs-stack-deploy {} for {repository}@{sha}",
                env!("CARGO_PKG_VERSION")
            )
        }
        _ => format!("ecs-stack-deploy {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Checks the runner's files are usable before anything is deployed, so a
/// deploy never succeeds only to lose its outputs. On a runner
/// `GITHUB_OUTPUT` is required; outside one it is optional.
fn result_files(env: &Environment) -> Result<ResultFiles, InputError> {
    let outputs = env.github_output();
    if env.is_github_actions() && outputs.is_none() {
        return Err(InputError::new(
            "GITHUB_OUTPUT",
            "",
            "is not set although GITHUB_ACTIONS is true",
            "run the action through the GitHub runner, which sets GITHUB_OUTPUT, or unset GITHUB_ACTIONS to run as a CLI",
        ));
    }
    for (name, path) in [
        ("GITHUB_OUTPUT", &outputs),
        ("GITHUB_STEP_SUMMARY", &env.step_summary()),
    ] {
        if let Some(path) = path {
            check_appendable(name, path)?;
        }
    }
    Ok(ResultFiles {
        outputs,
        summary: env.step_summary(),
    })
}

fn check_appendable(name: &str, path: &Path) -> Result<(), InputError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|error| {
            InputError::new(
                name,
                &path.display().to_string(),
                format!("cannot be written: {error}"),
                "point it at a writable file (the runner's file commands directory)",
            )
        })
}

fn report_bad_inputs(console: &Console, errors: &InputErrors) -> Outcome {
    for error in &errors.0 {
        console.error(&error.to_string());
    }
    console.plain(&format!(
        "{} bad input(s); nothing was changed in AWS",
        errors.0.len()
    ));
    Outcome::BadInput
}

/// Everything checked before the first AWS call.
struct Prepared {
    inputs: DeployInputs,
    stack_files: Option<LoadedStackFiles>,
    /// The task definition file, parsed, with its path for messages.
    task_definition_file: Option<(serde_json::Value, String)>,
    /// The image from `image` / `image-repository` + `image-tag`.
    image: Option<ImageReference>,
    /// `images`: container name and image.
    container_images: Vec<(String, ImageReference)>,
    region: String,
    result_files: ResultFiles,
}

/// Validates inputs and reads every file, with no AWS call.
fn prepare(raw: &RawInputs, env: &Environment, console: &Console) -> Result<Prepared, InputErrors> {
    let context = InputContext {
        workspace: env.workspace(),
        default_change_set_name: default_change_set_name(env),
    };
    let inputs = DeployInputs::from_raw(raw, &context)?;
    let mut errors = Vec::new();
    let stack_files = match inputs.stack.as_ref().map(load_stack_files) {
        Some(Ok(files)) => Some(files),
        Some(Err(InputErrors(found))) => {
            errors.extend(found);
            None
        }
        None => None,
    };
    let task_definition_file = match inputs.service.as_ref().map(|s| &s.task_definition) {
        Some(TaskDefinitionSource::File(path)) => match read_task_definition_file(path) {
            Ok(document) => Some(document),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        _ => None,
    };
    let policy = MutableTagPolicy::new(
        Some(inputs.image.mutable_tags.clone()),
        inputs.image.allow_mutable_tag,
    )
    .map_err(|e| {
        InputError::described(
            "mutable-tags",
            &inputs.image.mutable_tags.join(","),
            &e.to_string(),
        )
    });
    let image = match (&policy, inputs.image.is_requested()) {
        (Ok(policy), true) => match resolve_image(&inputs.image, policy, env, console) {
            Ok(image) => Some(image),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        (Err(error), _) => {
            errors.push(error.clone());
            None
        }
        (Ok(_), false) => None,
    };
    let mut container_images = Vec::new();
    if let (Ok(policy), Some(service)) = (&policy, &inputs.service) {
        for (container, text) in &service.images {
            let checked = ImageReference::parse_for_input(text, "images")
                .and_then(|reference| policy.check(&reference).map(|()| reference));
            match checked {
                Ok(reference) => container_images.push((container.clone(), reference)),
                Err(error) => {
                    errors.push(InputError::described("images", text, &error.to_string()))
                }
            }
        }
    }
    let region = resolve_region(inputs.region.as_deref(), env);
    let result_files = result_files(env);
    match (region, result_files) {
        (Ok(region), Ok(result_files)) if errors.is_empty() => Ok(Prepared {
            inputs,
            stack_files,
            task_definition_file,
            image,
            container_images,
            region,
            result_files,
        }),
        (region, result_files) => {
            errors.extend(region.err());
            errors.extend(result_files.err());
            Err(InputErrors(errors))
        }
    }
}

fn read_task_definition_file(path: &Path) -> Result<(serde_json::Value, String), InputError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        InputError::new(
            "task-definition",
            &shown,
            format!("cannot be read: {error}"),
            "check the path: relative paths are resolved against the workspace (GITHUB_WORKSPACE)",
        )
    })?;
    parse_task_definition(&text, &shown)
        .map(|document| (document, shown.clone()))
        .map_err(|error| InputError::described("task-definition", &shown, &error.to_string()))
}

/// Composes the image from the inputs, deriving the tag from the event when
/// only a repository is given, and applies the mutable-tag policy.
fn resolve_image(
    image: &ImageInputs,
    policy: &MutableTagPolicy,
    env: &Environment,
    console: &Console,
) -> Result<ImageReference, InputError> {
    let mut tag = image.tag.clone();
    if image.image.is_none() && tag.is_none() {
        let payload = match env.get("GITHUB_EVENT_PATH") {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| {
                InputError::new(
                    "GITHUB_EVENT_PATH",
                    path,
                    format!("cannot be read: {error}"),
                    "run inside GitHub Actions, or give `image-tag` explicitly",
                )
            })?),
            None => None,
        };
        let source = default_image_tag(
            env.get("GITHUB_EVENT_NAME"),
            payload.as_deref(),
            env.get("GITHUB_REF"),
            env.get("GITHUB_SHA"),
        )
        .map_err(|error| InputError::described("image-tag", "", &error.to_string()))?;
        console.line(&source.describe());
        tag = Some(source.tag);
    }
    let input = if image.image.is_some() {
        "image"
    } else {
        "image-repository"
    };
    let value = image
        .image
        .clone()
        .or(image.repository.clone())
        .unwrap_or_default();
    let reference = compose_image(
        image.image.as_deref(),
        image.repository.as_deref(),
        tag.as_deref(),
    )
    .map_err(|error| InputError::described(input, &value, &error.to_string()))?;
    policy.check(&reference).map_err(|error| {
        InputError::described(input, &reference.to_string(), &error.to_string())
    })?;
    Ok(reference)
}

/// Lints the workflow files in `dir` (relative to the workspace): every
/// finding is an annotation on its file and line. Exit 1 when there are
/// findings, 2 when the folder cannot be read.
pub fn lint_workflows(dir: &Path, env: &Environment) -> Outcome {
    let console = Console::new(env.is_github_actions());
    let dir = env.workspace().join(dir);
    console.phase(&format!("Lint workflows in {}", dir.display()));
    let outcome = match read_workflow_dir(&dir) {
        Err(error) => {
            console.error(&format!(
                "cannot read the workflows in {}: {error}; give the folder of the workflow files",
                dir.display()
            ));
            Outcome::BadInput
        }
        Ok(files) => {
            let findings =
                report_findings(&console, &files, &env.workspace(), AnnotationLevel::Error);
            console.line(&format!(
                "{} workflow file(s), {findings} finding(s)",
                files.len()
            ));
            if findings == 0 {
                Outcome::Success
            } else {
                Outcome::Failed
            }
        }
    };
    console.end_phase();
    outcome
}

/// Prints each finding as an annotation on its file (relative to the
/// workspace, as the runner expects) and line.
fn report_findings(
    console: &Console,
    files: &[WorkflowFile],
    workspace: &Path,
    level: AnnotationLevel,
) -> usize {
    let findings = lint(files);
    for finding in &findings {
        let path = Path::new(&finding.path);
        let shown = path
            .strip_prefix(workspace)
            .unwrap_or(path)
            .display()
            .to_string();
        console.annotate_file(
            level,
            &shown,
            finding.line,
            &format!("{}: {}", finding.kind, finding.message),
        );
    }
    findings.len()
}

/// Whether the triggering event allows a deploy.
#[derive(Debug, PartialEq, Eq)]
enum EventGate {
    Proceed,
    /// The upstream run failed and the user asked to skip.
    Skip(String),
}

/// Checks a `workflow_run` event before any AWS call: the upstream run must
/// have succeeded (a `workflow_run` trigger fires on failure too), and its
/// code must come from this repository, not a fork (a fork's code running
/// with this repository's secrets is the classic exfiltration path).
fn check_event(env: &Environment, policy: EventPolicy) -> Result<EventGate, String> {
    if env.get("GITHUB_EVENT_NAME") != Some("workflow_run") {
        return Ok(EventGate::Proceed);
    }
    let payload = env
        .get("GITHUB_EVENT_PATH")
        .map(std::fs::read_to_string)
        .transpose()
        .map_err(|e| format!("GITHUB_EVENT_PATH cannot be read: {e}"))?;
    let summary = summarize(Some("workflow_run"), payload.as_deref()).map_err(|e| e.to_string())?;
    let run = summary.workflow_run.unwrap_or_default();
    let upstream = run.name.as_deref().unwrap_or("the upstream workflow");
    let conclusion = run.conclusion.as_deref().unwrap_or("unknown");
    if conclusion != "success" {
        let reason = format!("{upstream} concluded `{conclusion}`, not `success`");
        return match policy.on_upstream_failure {
            UpstreamFailure::Skip => Ok(EventGate::Skip(reason)),
            UpstreamFailure::Fail => Err(format!(
                "{reason}; deploying after a failed upstream would ship what it did not finish (set on-upstream-failure: skip to end green instead)"
            )),
        };
    }
    let head_repository = run.head_repository.and_then(|r| r.full_name);
    if let (Some(head), Some(this)) = (head_repository.as_deref(), env.get("GITHUB_REPOSITORY"))
        && head != this
        && !policy.allow_fork_runs
    {
        return Err(format!(
            "{upstream} ran on code from the fork {head}, not {this}; refusing to deploy it with this repository's credentials (set allow-fork-runs: true only if that code is trusted)"
        ));
    }
    Ok(EventGate::Proceed)
}

/// Runs the deploy job.
pub async fn deploy(raw: &RawInputs, env: &Environment, poll: PollSchedule) -> Outcome {
    let console = Console::new(env.is_github_actions());

    console.phase("Validate inputs");
    let prepared = match prepare(raw, env, &console) {
        Ok(prepared) => prepared,
        Err(errors) => {
            console.end_phase();
            return report_bad_inputs(&console, &errors);
        }
    };
    if let Some(files) = &prepared.stack_files
        && let Some(declared) = &files.declared
    {
        for secret in no_echo_values(declared, &files.overrides) {
            console.mask(&secret);
        }
    }
    console.line(&format!("region {}", prepared.region));
    if prepared.inputs.lint_workflows {
        // Findings warn: a chain problem elsewhere should not block this deploy.
        let dir = env.workspace().join(".github/workflows");
        match read_workflow_dir(&dir) {
            Ok(files) => {
                let findings =
                    report_findings(&console, &files, &env.workspace(), AnnotationLevel::Warning);
                console.line(&format!(
                    "workflow lint: {findings} finding(s) in {} file(s)",
                    files.len()
                ));
            }
            Err(error) => console.warning(&format!(
                "lint-workflows: cannot read {}: {error}",
                dir.display()
            )),
        }
    }
    let gate = check_event(env, prepared.inputs.event_policy);
    console.end_phase();
    match gate {
        Ok(EventGate::Proceed) => {}
        Ok(EventGate::Skip(reason)) => {
            console.notice(&format!(
                "{reason}; on-upstream-failure is `skip`, so nothing is deployed"
            ));
            return Outcome::Success;
        }
        Err(reason) => {
            console.error(&format!("{reason}; nothing was deployed"));
            return Outcome::Failed;
        }
    }

    let config = load_config(prepared.region.clone(), prepared.inputs.retry, env).await;
    let settings = DeploySettings {
        poll,
        description: change_set_description(env),
        ecs: Some(EcsClients::new(&config)),
    };
    let mut report = JobReport::default();
    let github = match GithubRun::start(&prepared.inputs.github, env, &console).await {
        Ok(github) => github,
        Err(error) => {
            console.error(&format!("{error:#}; nothing was deployed"));
            return Outcome::Failed;
        }
    };
    let finished = tokio::select! {
        result = run(&prepared, &config, &settings, env, &console, &mut report) => Some(result),
        signal = termination_signal() => {
            console.line(&format!("received {signal}: stopping"));
            None
        }
    };
    let result = match finished {
        Some(result) => result,
        None => {
            let message = cancel(&prepared, &config, &console, &mut report).await;
            Err(anyhow::anyhow!(message))
        }
    };

    // A bad input found late (checked against the template, ECR or the
    // service) was still found before any change: publish nothing.
    if let Err(error) = &result
        && let Some(errors) = error.downcast_ref::<InputErrors>()
    {
        return report_bad_inputs(&console, errors);
    }
    let result = match (result, &github) {
        (Ok(()), Some(github)) => {
            github
                .dispatch(&prepared.inputs.github, env, &console, &mut report)
                .await
        }
        (result, _) => result,
    };
    if let Some(github) = &github {
        github
            .finish(&prepared, env, &console, &mut report, result.as_ref().err())
            .await;
    }
    let error_text = result.as_ref().err().map(|e| format!("{e:#}"));
    let written = publish(
        &console,
        &prepared.result_files,
        &report,
        error_text.as_deref(),
    );

    match result {
        Ok(()) if written => Outcome::Success,
        Ok(()) => Outcome::Failed,
        Err(error) => {
            console.phase("Failure");
            console.error(&format!("{error:#}"));
            for cause in report.root_causes() {
                console.error(&format!("root cause: {cause}"));
            }
            console.end_phase();
            Outcome::Failed
        }
    }
}

/// The job's GitHub side: a deployment record, workflow dispatches and the
/// pull request comment. Exists only when a feature asks for it.
struct GithubRun {
    api: GithubApi,
    deployment_id: Option<u64>,
}

impl GithubRun {
    /// Connects and, with `environment`, records the deployment as
    /// in_progress, before anything is deployed.
    async fn start(
        inputs: &GithubInputs,
        env: &Environment,
        console: &Console,
    ) -> anyhow::Result<Option<Self>> {
        let comment = is_review_of_pull_request(env);
        let wanted =
            !inputs.dispatch_workflows.is_empty() || inputs.environment.is_some() || comment;
        let Some(token) = inputs.token.as_deref().filter(|_| wanted) else {
            return Ok(None);
        };
        console.mask(token);
        let repository = env.get("GITHUB_REPOSITORY").unwrap_or_default();
        let api_url = env
            .get("GITHUB_API_URL")
            .unwrap_or("https://api.github.com");
        let api = GithubApi::new(token, api_url, repository)?;
        let mut run = Self {
            api,
            deployment_id: None,
        };
        if let Some(environment) = &inputs.environment {
            let sha = deployed_commit(env);
            let id = run
                .api
                .create_deployment(&sha, environment, "ecs-stack-deploy")
                .await?;
            run.api
                .set_deployment_status(
                    id,
                    DeploymentState::InProgress,
                    None,
                    run_url(env).as_deref(),
                    "deploying",
                )
                .await?;
            console.line(&format!(
                "GitHub deployment {id} to environment {environment} is in progress"
            ));
            run.deployment_id = Some(id);
        }
        Ok(Some(run))
    }

    /// After a successful deploy: triggers the downstream workflows with
    /// inputs filled from this run's outputs.
    async fn dispatch(
        &self,
        inputs: &GithubInputs,
        env: &Environment,
        console: &Console,
        report: &mut JobReport,
    ) -> anyhow::Result<()> {
        if inputs.dispatch_workflows.is_empty() {
            return Ok(());
        }
        let outputs = action_outputs(report).values;
        let mut filled = BTreeMap::new();
        for (name, value) in &inputs.dispatch_inputs {
            let value = fill_output_references(value, &outputs)
                .map_err(|e| anyhow::anyhow!("dispatch-inputs `{name}`: {e}"))?;
            filled.insert(name.clone(), value);
        }
        let git_ref = inputs
            .dispatch_ref
            .clone()
            .or_else(|| env.get("GITHUB_REF").map(str::to_string))
            .unwrap_or_else(|| "main".to_string());
        console.phase("Dispatch workflows");
        for workflow in &inputs.dispatch_workflows {
            let sent = self
                .api
                .dispatch_workflow(workflow, &git_ref, &filled)
                .await;
            if let Err(error) = sent {
                console.end_phase();
                return Err(anyhow::anyhow!(error));
            }
            console.line(&format!("triggered {workflow} on {git_ref}"));
            report.dispatched.push((workflow.clone(), git_ref.clone()));
        }
        console.end_phase();
        Ok(())
    }

    /// Closes the deployment record and comments on the pull request.
    /// Problems here are reported but do not change the outcome: the
    /// deploy itself is done.
    async fn finish(
        &self,
        prepared: &Prepared,
        env: &Environment,
        console: &Console,
        report: &mut JobReport,
        error: Option<&anyhow::Error>,
    ) {
        if let Some(id) = self.deployment_id {
            let url = prepared
                .inputs
                .github
                .environment_url_output
                .as_deref()
                .and_then(|key| {
                    report
                        .stack
                        .as_ref()
                        .and_then(|s| s.outputs.iter().find(|o| o.key == key))
                        .map(|o| o.value.clone())
                });
            let (state, description) = match error {
                None => (DeploymentState::Success, "deployed".to_string()),
                // `failure` when what was deployed failed (a root cause is
                // known), `error` when the deploy could not run at all.
                Some(error) => match report.root_causes().first() {
                    Some(cause) => (DeploymentState::Failure, cause.clone()),
                    None => (DeploymentState::Error, format!("{error:#}")),
                },
            };
            match self
                .api
                .set_deployment_status(
                    id,
                    state,
                    url.as_deref(),
                    run_url(env).as_deref(),
                    &description,
                )
                .await
            {
                Ok(()) => report.deployment_url = url,
                Err(e) => console.error(&format!("updating GitHub deployment {id}: {e}")),
            }
        }
        if is_review_of_pull_request(env)
            && let Some(deployment) = &report.stack
            && prepared
                .inputs
                .stack
                .as_ref()
                .is_some_and(|s| !s.execute_change_set)
        {
            let number = env
                .get("GITHUB_EVENT_PATH")
                .and_then(|path| std::fs::read_to_string(path).ok())
                .and_then(|payload| summarize(Some("pull_request"), Some(&payload)).ok())
                .and_then(|summary| summary.pull_request)
                .and_then(|pr| pr.number);
            if let Some(number) = number {
                let marker = format!("<!-- ecs-stack-deploy:{} -->", deployment.stack_name);
                let body = markdown_summary(
                    report,
                    console.elapsed(),
                    error.map(|e| format!("{e:#}")).as_deref(),
                );
                match self
                    .api
                    .upsert_pull_request_comment(number, &marker, &body)
                    .await
                {
                    Ok(action) => console.line(&format!(
                        "pull request #{number}: change set summary {action:?}"
                    )),
                    Err(e) => {
                        console.warning(&format!("commenting on pull request #{number}: {e}"))
                    }
                }
            }
        }
    }
}

/// A `pull_request` run: a planned change set is worth a comment.
fn is_review_of_pull_request(env: &Environment) -> bool {
    matches!(
        env.get("GITHUB_EVENT_NAME"),
        Some("pull_request" | "pull_request_target")
    )
}

/// The commit being deployed: the upstream run's head on `workflow_run`
/// (GITHUB_SHA is the default branch's head there), else GITHUB_SHA.
fn deployed_commit(env: &Environment) -> String {
    let head = env
        .get("GITHUB_EVENT_PATH")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|payload| summarize(env.get("GITHUB_EVENT_NAME"), Some(&payload)).ok())
        .and_then(|summary| summary.workflow_run)
        .and_then(|run| run.head_sha);
    head.or_else(|| env.get("GITHUB_SHA").map(str::to_string))
        .unwrap_or_default()
}

/// The link to this workflow run, for the deployment's log URL.
fn run_url(env: &Environment) -> Option<String> {
    Some(format!(
        "{}/{}/actions/runs/{}",
        env.get("GITHUB_SERVER_URL").unwrap_or("https://github.com"),
        env.get("GITHUB_REPOSITORY")?,
        env.get("GITHUB_RUN_ID")?
    ))
}

/// Resolves on the first SIGTERM (how the runner cancels a container
/// action) or SIGINT, naming it.
async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    match (terminate, interrupt) {
        (Ok(mut terminate), Ok(mut interrupt)) => tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        },
        // Without signal handlers the job simply cannot be interrupted
        // gracefully; never resolve rather than stop at once.
        _ => std::future::pending().await,
    }
}

/// After a cancellation: says what was left running and what will happen
/// to it, removes a change set we made but never executed, and cancels a
/// running stack update when `cancel-on-abort` asks for it. Every call is
/// bounded so the job ends within seconds.
async fn cancel(
    prepared: &Prepared,
    config: &aws_config::SdkConfig,
    console: &Console,
    report: &mut JobReport,
) -> String {
    const BOUND: std::time::Duration = std::time::Duration::from_secs(2);
    console.phase("Cancelled");
    let mut message = String::from("the job was cancelled");
    if let Some(deployment) = &mut report.stack {
        let client = aws_sdk_cloudformation::Client::new(config);
        let stack_ref = deployment
            .stack_id
            .clone()
            .unwrap_or_else(|| deployment.stack_name.clone());
        if let (Some(change_set), false) = (&deployment.change_set_id, deployment.executed)
            && prepared
                .inputs
                .stack
                .as_ref()
                .is_some_and(|s| s.execute_change_set)
        {
            match tokio::time::timeout(BOUND, delete_change_set(&client, change_set)).await {
                Ok(Ok(_)) => console.line(&format!(
                    "deleted change set {change_set}, which was not executed"
                )),
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
            .map(|stack| stack_status_of(&stack))
            .or_else(|| deployment.stack_status.clone());
        deployment.stack_status = status.clone();
        if let Some(status) = status {
            message = format!(
                "the job was cancelled while stack {} was {status}",
                deployment.stack_name
            );
            if is_busy(&status) {
                let cancel_update =
                    status == "UPDATE_IN_PROGRESS" && prepared.inputs.cancel_on_abort;
                if cancel_update {
                    match tokio::time::timeout(BOUND, client.cancel_update_stack().stack_name(&stack_ref).client_request_token(request_token()).send()).await {
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
    if let Some(rollout) = &report.rollout {
        console.line(&format!(
            "ECS carries on with deployment {} on its own; with the circuit breaker on, failing tasks roll it back",
            rollout.deployment_id.as_deref().unwrap_or("(unknown)")
        ));
    }
    console.end_phase();
    message
}

/// The AWS part of the job: images, stack, task definition, rollout.
async fn run(
    prepared: &Prepared,
    config: &aws_config::SdkConfig,
    settings: &DeploySettings,
    env: &Environment,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let image = match &prepared.image {
        Some(image) => Some(
            check_image(
                config,
                image,
                "image",
                prepared.inputs.image.pin_digest,
                console,
                report,
            )
            .await?,
        ),
        None => None,
    };
    let mut container_images = Vec::new();
    for (container, reference) in &prepared.container_images {
        let checked = check_image(
            config,
            reference,
            "images",
            prepared.inputs.image.pin_digest,
            console,
            &mut JobReport::default(),
        )
        .await?;
        container_images.push((container.clone(), checked));
    }

    if let (Some(stack), Some(files)) = (&prepared.inputs.stack, &prepared.stack_files) {
        let mut files = files.clone();
        files.image = image.as_ref().map(|value| ImageParameter {
            name: prepared.inputs.image.image_parameter.clone(),
            value: value.clone(),
        });
        let client = aws_sdk_cloudformation::Client::new(config);
        let deployment = report.stack.insert(StackDeployment::default());
        deploy_stack(&client, stack, &files, settings, console, deployment).await?;
        if let Some(deployment) = &report.stack
            && let Some(stack_id) = &deployment.stack_id
            && deployment.executed
        {
            let resources = ecs_resources(&client, stack_id).await?;
            report.task_definition_arn = resources.task_definition_arn;
            report.service_arn = resources.service_arn;
            if let (Some(ecs), Some(service_arn)) = (&settings.ecs, &report.service_arn) {
                report.rollout = stack_service_rollout(ecs, service_arn).await?;
            }
        }
    }

    if let Some(service) = &prepared.inputs.service {
        let Some(ecs) = &settings.ecs else {
            anyhow::bail!("no ECS client configured");
        };
        roll_out(
            prepared,
            service,
            image.as_deref(),
            &container_images,
            ecs,
            settings,
            env,
            console,
            report,
        )
        .await?;
    }
    Ok(())
}

/// Checks an image against ECR (when it lives there), warns about mutable
/// repositories and pins the digest when asked. Returns the reference to
/// deploy.
async fn check_image(
    config: &aws_config::SdkConfig,
    image: &ImageReference,
    input: &str,
    pin_digest: bool,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<String> {
    report.image = Some(image.to_string());
    let Some(location) = image.ecr().filter(|l| !l.is_public()) else {
        console.line(&format!(
            "image {image} ({}) is not in a private ECR registry: its tag cannot be checked before deploying",
            image.fully_qualified()
        ));
        return Ok(image.to_string());
    };
    console.phase(&format!("Image {image}"));
    let ecr_config = aws_sdk_ecr::config::Builder::from(config)
        .region(aws_config::Region::new(location.region().to_string()))
        .build();
    let ecr = aws_sdk_ecr::Client::from_conf(ecr_config);
    let found = inspect_ecr_image(
        &ecr,
        image,
        location.account_id(),
        &location.repository_name,
        input,
    )
    .await;
    if let Ok(found) = &found {
        console.line(&format!(
            "image {image} is in ECR with digest {}",
            found.digest
        ));
    }
    console.end_phase();
    let found = found?;
    report.image_digest = Some(found.digest.clone());
    if found.tag_is_mutable && image.digest().is_none() && !pin_digest {
        console.warning(&format!(
            "ECR repository {} allows tags to be overwritten (imageTagMutability MUTABLE): set it to IMMUTABLE, or use pin-digest: true so the deploy is pinned to {}",
            location.repository_name, found.digest
        ));
    }
    let deployed = if pin_digest && image.digest().is_none() && !found.digest.is_empty() {
        image
            .with_digest(&found.digest)
            .map_err(|e| anyhow::anyhow!("pinning {image} to {}: {e}", found.digest))?
            .to_string()
    } else {
        image.to_string()
    };
    report.image = Some(deployed.clone());
    Ok(deployed)
}

/// The PRIMARY deployment of a service the stack manages: CloudFormation
/// waited for it to stabilise, so its id and state are the rollout's.
async fn stack_service_rollout(
    clients: &EcsClients,
    service_arn: &str,
) -> anyhow::Result<Option<Rollout>> {
    let Some((cluster, name)) = service_location(service_arn) else {
        return Ok(None);
    };
    let Some(service) = describe_service(&clients.ecs, &cluster, &name).await? else {
        return Ok(None);
    };
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"));
    Ok(primary.map(|deployment| Rollout {
        service_arn: Some(service_arn.to_string()),
        deployment_id: deployment.id().map(str::to_string),
        rollout_state: deployment.rollout_state().map(|s| s.as_str().to_string()),
        task_definition_arn: deployment.task_definition().unwrap_or_default().to_string(),
        diagnosis: Vec::new(),
    }))
}

/// The ECS resources of a stack, for the outputs.
#[derive(Debug, Default)]
struct StackEcsResources {
    task_definition_arn: Option<String>,
    service_arn: Option<String>,
}

async fn ecs_resources(
    client: &aws_sdk_cloudformation::Client,
    stack_id: &str,
) -> anyhow::Result<StackEcsResources> {
    let mut found = StackEcsResources::default();
    let mut token = None;
    loop {
        let page = client
            .list_stack_resources()
            .stack_name(stack_id)
            .set_next_token(token)
            .send()
            .await
            .map_err(aws_error)
            .context("listing the stack's resources")?;
        for resource in page.stack_resource_summaries() {
            let physical = resource.physical_resource_id().map(str::to_string);
            match resource.resource_type() {
                Some("AWS::ECS::TaskDefinition") if found.task_definition_arn.is_none() => {
                    found.task_definition_arn = physical;
                }
                Some("AWS::ECS::Service") if found.service_arn.is_none() => {
                    found.service_arn = physical;
                }
                _ => {}
            }
        }
        match page.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(found),
        }
    }
}

/// Renders, registers and rolls out the task definition.
#[allow(clippy::too_many_arguments)]
async fn roll_out(
    prepared: &Prepared,
    service: &ServiceInputs,
    image: Option<&str>,
    container_images: &[(String, String)],
    clients: &EcsClients,
    settings: &DeploySettings,
    env: &Environment,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    // Read-only first: the service must exist before a revision is made.
    let mut current_task_definition = None;
    if let Some(name) = &service.service {
        if !is_active_cluster(&clients.ecs, &service.cluster).await? {
            return Err(InputErrors::from(InputError::new(
                "cluster",
                &service.cluster,
                "is not an active ECS cluster in this account and region",
                "give the name or ARN of the service's cluster (it defaults to `default`)",
            ))
            .into());
        }
        let Some(existing) = describe_service(&clients.ecs, &service.cluster, name).await? else {
            return Err(InputErrors::from(InputError::new(
                "service",
                name,
                format!("is not an active service in cluster `{}`", service.cluster),
                "check `service` and `cluster` (the cluster defaults to `default`)",
            ))
            .into());
        };
        current_task_definition = existing.task_definition().map(str::to_string);
    }
    console.phase("Task definition");
    let result = async {
        let (document, source) = match (&service.task_definition, &prepared.task_definition_file) {
            (TaskDefinitionSource::File(_), Some((document, source))) => (document.clone(), source.clone()),
            (TaskDefinitionSource::Registered(reference), _) => {
                let (document, tags) = describe_task_definition(&clients.ecs, reference).await?;
                let mut wrapped = serde_json::json!({ "taskDefinition": document });
                if let Some(tags) = tags {
                    wrapped["tags"] = tags;
                }
                (wrapped, reference.clone())
            }
            (TaskDefinitionSource::File(path), None) => {
                anyhow::bail!("task definition {} was not loaded", path.display())
            }
        };
        let mut images: Vec<ContainerImage> = Vec::new();
        if let (Some(image), Some(container)) = (image, &service.container_name) {
            images.push(ContainerImage {
                container_name: container.clone(),
                image: image.to_string(),
            });
        }
        images.extend(container_images.iter().map(|(container, image)| ContainerImage {
            container_name: container.clone(),
            image: image.clone(),
        }));
        let environment = match (&service.container_name, service.environment.is_empty()) {
            (Some(container), false) => vec![ContainerEnvironment {
                container_name: container.clone(),
                changes: service.environment.clone(),
            }],
            _ => Vec::new(),
        };
        let rendered = render_task_definition(document, &source, &RenderRequest { images, environment })
            .map_err(|e| InputErrors::from(InputError::described("task-definition", &source, &e.to_string())))?;
        let path = write_rendered(env, &rendered.task_definition)?;
        console.line(&format!("rendered task definition written to {path}"));
        report.task_definition_path = Some(path);
        // Like ecspresso: registering an identical revision would only churn
        // revisions and start a deployment that changes nothing.
        if let Some(current) = current_task_definition.as_deref() {
            let (current_json, _) = describe_task_definition(&clients.ecs, current).await?;
            let wanted = as_registered(&rendered.task_definition, &source)
                .map_err(|e| InputErrors::from(InputError::described("task-definition", &source, &format!("{e:#}"))))?;
            if is_same_task_definition(&current_json, &wanted) {
                console.line(&format!(
                    "the rendered task definition equals the service's current {}: no new revision is registered",
                    short_task_definition(current)
                ));
                report.task_definition_arn = Some(current.to_string());
                return Ok((current.to_string(), false));
            }
        }
        let request = registration_request(&rendered.task_definition, rendered.tags.as_ref(), &source)
            .map_err(|e| InputErrors::from(InputError::described("task-definition", &source, &format!("{e:#}"))))?;
        let registered = register_task_definition(&clients.ecs, request).await?;
        console.line(&format!("registered {}", registered.arn));
        report.task_definition_arn = Some(registered.arn.clone());
        Ok((registered.arn, true))
    }
    .await;
    console.end_phase();
    let (task_definition_arn, registered) = result?;

    let Some(name) = &service.service else {
        console
            .line("no `service` given: the task definition is registered, no service is updated");
        return Ok(());
    };
    if !registered && !service.force_new_deployment && service.desired_count.is_none() {
        console.line(&format!(
            "service {name} already runs this task definition: nothing to roll out (set force-new-deployment to restart its tasks)"
        ));
        report.rollout = Some(Rollout {
            rollout_state: Some("UNCHANGED".into()),
            task_definition_arn,
            ..Rollout::default()
        });
        return Ok(());
    }
    console.phase(&format!("Roll out service {name}"));
    let result = async {
        let mut watch = ServiceWatch::new(&service.cluster, name);
        let (service_arn, deployment_id) = update_service(
            clients,
            &service.cluster,
            name,
            &task_definition_arn,
            service.desired_count,
            service.force_new_deployment,
        )
        .await?;
        report.service_arn = Some(service_arn.clone());
        let rollout = report.rollout.insert(Rollout {
            service_arn: Some(service_arn),
            deployment_id: deployment_id.clone(),
            rollout_state: Some("IN_PROGRESS".into()),
            task_definition_arn: task_definition_arn.clone(),
            diagnosis: Vec::new(),
        });
        console.line(&format!(
            "service {name} updated; deployment {}",
            deployment_id.as_deref().unwrap_or("(id not reported)")
        ));
        if !service.wait_for_service_stability {
            console.line("wait-for-service-stability is false: not waiting for the rollout");
            return Ok(());
        }
        wait_for_rollout(
            clients,
            &mut watch,
            rollout,
            console,
            settings.poll,
            service.wait_timeout,
        )
        .await
    }
    .await;
    console.end_phase();
    result
}

/// Writes the rendered task definition under the workspace (container
/// actions get no RUNNER_TEMP) and returns its path relative to the
/// workspace, which is valid both inside the container and in later steps.
fn write_rendered(
    env: &Environment,
    task_definition: &serde_json::Value,
) -> anyhow::Result<String> {
    let relative = format!("{RENDERED_DIR}/task-definition.json");
    let path = env.workspace().join(&relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, to_pretty_json(task_definition))
        .with_context(|| format!("writing the rendered task definition to {}", path.display()))?;
    Ok(relative)
}

/// Where rendered files go, relative to the workspace.
const RENDERED_DIR: &str = ".ecs-stack-deploy";

/// Prints and writes the outputs and the job summary. Returns false when a
/// file could not be written (reported as an error).
fn publish(
    console: &Console,
    files: &ResultFiles,
    report: &JobReport,
    error: Option<&str>,
) -> bool {
    let outputs = action_outputs(report);
    for warning in &outputs.warnings {
        console.warning(warning);
    }
    console.phase("Outputs");
    for (name, value) in &outputs.values {
        console.plain(&format!("{name} = {value}"));
    }
    console.end_phase();
    let mut written = true;
    if let Some(path) = &files.outputs
        && let Err(e) = append_outputs(path, &outputs.values)
    {
        console.error(&format!("writing the step outputs: {e}"));
        written = false;
    }
    if let Some(path) = &files.summary {
        let markdown = markdown_summary(report, console.elapsed(), error);
        if let Err(e) = append_summary(path, &markdown) {
            console.error(&format!("writing the job summary: {e}"));
            written = false;
        }
    }
    written
}

//! The inputs phase: raw inputs, the files they name, the event payload and
//! the run context, read once and validated without any AWS call.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::console::Console;
use crate::env::Environment;
use crate::github::event::{EventSummary, default_image_tag, summarize};
use crate::inputs::StackInputs;
use crate::inputs::{
    DeployInputs, EventPolicy, GithubInputs, ImageInputs, InputContext, InputError, InputErrors,
    RawInputs, TaskDefinitionSource, UpstreamFailure,
};
use crate::proxy::{ProxySettings, resolve_proxy};
use crate::refusal::{Refusal, Refusals, Setting};
use crate::report::{DECLARED_OUTPUTS, output_names};
use crate::service::codedeploy::parse_appspec;
use crate::stack::changeset::TemplateSource;
use crate::stack::images::{
    ImageExpression, resolve_image as resolve_template_image, template_images,
};
use crate::stack::options::{OverridesInput, TemplateLocation};
use crate::stack::parameters::{OverrideValue, ParameterOverride};
use crate::stack::plan::DEFAULT_IMAGE_PARAMETER;
use crate::stack::plan::{LoadedStackFiles, load_stack_files};
use crate::taskdef::image::{ImageReference, MutableTagPolicy, compose_image};
use crate::taskdef::render::parse_task_definition;

/// Where the job writes its results for the runner.
#[derive(Debug, Clone, Default)]
pub struct ResultFiles {
    pub outputs: Option<PathBuf>,
    pub summary: Option<PathBuf>,
}

/// The run this job belongs to, read once: the event and its payload, the
/// commit, the links and names derived from them.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub event_name: Option<String>,
    /// The payload text; `Err` says why GITHUB_EVENT_PATH could not be read.
    pub payload: Result<Option<String>, String>,
    /// The payload's parts the job uses; `Err` says why it could not be
    /// read or parsed.
    pub summary: Result<EventSummary, String>,
    pub git_ref: Option<String>,
    pub sha: Option<String>,
    pub repository: Option<String>,
    /// The link to this workflow run.
    pub run_url: Option<String>,
    pub default_change_set_name: String,
    /// This step of this run attempt, for idempotency tokens.
    pub run_identity: String,
    /// Stored on change sets so the console shows who made them.
    pub change_set_description: String,
}

impl RunContext {
    pub fn read(env: &Environment) -> Self {
        let event_name = env.get("GITHUB_EVENT_NAME").map(str::to_string);
        let payload = match env.get("GITHUB_EVENT_PATH") {
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .map_err(|error| format!("GITHUB_EVENT_PATH {path} cannot be read: {error}")),
            None => Ok(None),
        };
        let summary = match &payload {
            Ok(text) => {
                summarize(event_name.as_deref(), text.as_deref()).map_err(|e| e.to_string())
            }
            Err(problem) => Err(problem.clone()),
        };
        let run_url = match (env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")) {
            (Some(repository), Some(run)) => Some(format!(
                "{}/{repository}/actions/runs/{run}",
                env.get("GITHUB_SERVER_URL").unwrap_or("https://github.com"),
            )),
            _ => None,
        };
        Self {
            default_change_set_name: default_change_set_name(env),
            run_identity: run_identity(env),
            change_set_description: change_set_description(env),
            event_name,
            payload,
            summary,
            git_ref: env.get("GITHUB_REF").map(str::to_string),
            sha: env.get("GITHUB_SHA").map(str::to_string),
            repository: env.get("GITHUB_REPOSITORY").map(str::to_string),
            run_url,
        }
    }

    /// The commit being deployed: the upstream run's head on `workflow_run`
    /// (GITHUB_SHA is the default branch's head there), else GITHUB_SHA.
    pub fn deployed_commit(&self) -> String {
        self.summary
            .as_ref()
            .ok()
            .and_then(|summary| summary.workflow_run.as_ref())
            .and_then(|run| run.head_sha.clone())
            .or_else(|| self.sha.clone())
            .unwrap_or_default()
    }

    /// A `pull_request` run: a planned change set is worth a comment.
    pub fn is_review_of_pull_request(&self) -> bool {
        matches!(
            self.event_name.as_deref(),
            Some("pull_request" | "pull_request_target")
        )
    }

    /// The pull request's number on a `pull_request` run.
    pub fn pull_request_number(&self) -> Option<u64> {
        self.summary
            .as_ref()
            .ok()
            .and_then(|summary| summary.pull_request.as_ref())
            .and_then(|pr| pr.number)
    }
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

/// This step of this run attempt: the same when the step's call is
/// retried, different for another step (GITHUB_ACTION), job or attempt. A
/// local run is one of a kind (process id and time).
fn run_identity(env: &Environment) -> String {
    let parts = [
        "GITHUB_RUN_ID",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_JOB",
        "GITHUB_ACTION",
    ];
    if env.get("GITHUB_RUN_ID").is_some() {
        return parts
            .iter()
            .map(|name| env.get(name).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("/");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("local/{}/{now}", std::process::id())
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

/// Everything checked before the first AWS call.
pub struct Prepared {
    pub inputs: DeployInputs,
    pub stack_files: Option<LoadedStackFiles>,
    /// The task definition file, parsed, with its path for messages.
    pub task_definition_file: Option<(serde_json::Value, String)>,
    /// `codedeploy-appspec`, parsed, with its path.
    pub appspec_file: Option<(serde_json::Value, String)>,
    /// The image from `image` / `image-repository` + `image-tag`.
    pub image: Option<ImageReference>,
    /// `images`: container name and image.
    pub container_images: Vec<(String, ImageReference)>,
    pub region: String,
    /// The proxy of the AWS and GitHub clients (none by default).
    pub proxy: ProxySettings,
    pub result_files: ResultFiles,
}

/// Checks the runner's files are usable before anything is deployed, so a
/// deploy never succeeds only to lose its outputs. On a runner
/// `GITHUB_OUTPUT` is required; outside one it is optional.
pub fn result_files(env: &Environment) -> Result<ResultFiles, InputError> {
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

/// `dispatch-inputs` and `environment-url-output` name the step's outputs,
/// read after the deploy: a name it will not have is refused now, before
/// any change, instead of failing the job (or leaving the deployment
/// without its URL) once the stack has changed. `template_outputs` are the
/// outputs a local template declares (`None` when they are known only
/// after the deploy); `no_stack` is a deploy that has no stack, so no
/// stack outputs.
fn output_reference_errors(
    github: &GithubInputs,
    template_outputs: Option<&[String]>,
    no_stack: bool,
) -> Vec<InputError> {
    let known: Option<&[String]> = if no_stack {
        Some(&[])
    } else {
        template_outputs
    };
    let mut errors = Vec::new();
    // The URL is a stack output's value (not one of the action's outputs).
    if let (Some(output), Some(declared)) = (&github.environment_url_output, known)
        && !declared.contains(output)
    {
        let problem = if no_stack {
            "names a stack output, and a deploy without a stack has none".to_string()
        } else {
            format!(
                "is not an output the template declares (it declares: {})",
                if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                }
            )
        };
        errors.push(InputError::new(
            "environment-url-output",
            output,
            problem,
            "name the template output that holds the environment's URL, such as ApiEndpoint",
        ));
    }
    for (name, value) in &github.dispatch_inputs {
        match output_names(value) {
            Err(problem) => errors.push(InputError::new(
                "dispatch-inputs",
                value,
                format!("`{name}`: {problem}"),
                "refer to this step's outputs as {{ outputs.NAME }}: a stack output or one of the action's outputs",
            )),
            Ok(names) => {
                let Some(declared) = known else { continue };
                for output in names {
                    if DECLARED_OUTPUTS.contains(&output) || declared.iter().any(|d| d == output) {
                        continue;
                    }
                    let problem = if no_stack {
                        format!("`{name}` refers to output `{output}`, which a deploy without a stack does not have")
                    } else if declared.is_empty() {
                        format!("`{name}` refers to output `{output}`, which the template does not declare (it declares no outputs)")
                    } else {
                        format!(
                            "`{name}` refers to output `{output}`, which the template does not declare (it declares: {})",
                            declared.join(", ")
                        )
                    };
                    errors.push(InputError::new(
                        "dispatch-inputs",
                        value,
                        problem,
                        "refer to an output the template declares or one of the action's outputs (such as stack-id), or add it to the template's Outputs",
                    ));
                }
            }
        }
    }
    errors
}

/// Validates inputs and reads every file, with no AWS call.
pub fn prepare(
    raw: &RawInputs,
    env: &Environment,
    run: &RunContext,
    console: &Console,
) -> Result<Prepared, InputErrors> {
    prepare_with_parameters(raw, None, env, run, console)
}

/// [`prepare`], with the stack's parameters given as they are (a system
/// manifest's, already parsed) instead of the `parameter-overrides` text.
pub fn prepare_with_parameters(
    raw: &RawInputs,
    parameters: Option<Vec<ParameterOverride>>,
    env: &Environment,
    run: &RunContext,
    console: &Console,
) -> Result<Prepared, InputErrors> {
    let context = InputContext {
        workspace: env.workspace(),
        default_change_set_name: run.default_change_set_name.clone(),
        run_identity: run.run_identity.clone(),
    };
    let mut inputs = DeployInputs::from_raw(raw, &context)?;
    if let (Some(parameters), Some(stack)) = (parameters, inputs.stack.as_mut()) {
        stack.parameter_overrides = Some(OverridesInput::Inline(parameters));
    }
    for notice in &inputs.notices {
        console.notice(notice);
    }
    let mut errors = Vec::new();
    let stack_files = match inputs.stack.as_ref().map(load_stack_files) {
        Some(Ok(files)) => Some(files),
        Some(Err(Refusals(found))) => {
            errors.extend(found.into_iter().map(InputError::from));
            None
        }
        None => None,
    };
    errors.extend(output_reference_errors(
        &inputs.github,
        stack_files.as_ref().and_then(|f| f.output_keys.as_deref()),
        inputs.stack.is_none() && inputs.execute.is_none() && inputs.continue_deployment.is_none(),
    ));
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
    let appspec_file = match inputs
        .service
        .as_ref()
        .and_then(|s| s.codedeploy_appspec.as_ref())
    {
        Some(path) => match read_appspec_file(path) {
            Ok(document) => Some(document),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        None => None,
    };
    let policy = MutableTagPolicy::new(
        Some(inputs.image.mutable_tags.clone()),
        inputs.image.allow_mutable_tag,
    )
    .map_err(|e| {
        InputError::from(Refusal::described(
            e.setting(),
            &inputs.image.mutable_tags.join(","),
            &e,
        ))
    });
    let image = match (&policy, inputs.image.is_requested()) {
        (Ok(policy), true) => match resolve_image(&inputs.image, policy, run, console) {
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
    if let (Ok(policy), Some(files), Some(stack)) = (&policy, &stack_files, &inputs.stack) {
        errors.extend(mutable_template_images(
            files,
            stack,
            inputs.image.image_parameter.as_deref(),
            inputs.image.is_requested(),
            policy,
        ));
    }
    let mut container_images = Vec::new();
    if let (Ok(policy), Some(service)) = (&policy, &inputs.service) {
        for (container, text) in &service.images {
            let checked = ImageReference::parse_for(text, Setting::ContainerImages)
                .and_then(|reference| policy.check(&reference).map(|()| reference));
            match checked {
                Ok(reference) => container_images.push((container.clone(), reference)),
                Err(error) => {
                    // A mutable tag in `images` is that input's fault, not
                    // `image`'s, whatever the policy's error says.
                    errors.push(Refusal::described(Setting::ContainerImages, text, &error).into())
                }
            }
        }
    }
    let region = crate::aws::resolve_region(inputs.region.as_deref(), env);
    let proxy = resolve_proxy(inputs.http_proxy.as_deref(), env);
    if let Ok(proxy) = &proxy {
        announce_proxy(proxy, console);
    }
    let result_files = result_files(env);
    match (region, proxy, result_files) {
        (Ok(region), Ok(proxy), Ok(result_files)) if errors.is_empty() => Ok(Prepared {
            inputs,
            stack_files,
            task_definition_file,
            appspec_file,
            image,
            container_images,
            region,
            proxy,
            result_files,
        }),
        (region, proxy, result_files) => {
            errors.extend(region.err().map(InputError::from));
            errors.extend(proxy.err().map(InputError::from));
            errors.extend(result_files.err());
            Err(InputErrors(errors))
        }
    }
}

/// Says which proxy the calls go through, so a run that fails to connect
/// shows the route it took; a password in the proxy URL is masked first
/// (the line itself shows it redacted, but an error from a client might
/// quote the URL).
fn announce_proxy(proxy: &ProxySettings, console: &Console) {
    for url in [&proxy.https, &proxy.http].into_iter().flatten() {
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            console.mask(password);
        }
    }
    if let Some(line) = proxy.describe() {
        console.line(&line);
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
        .map_err(|error| Refusal::described(error.setting(), &shown, &error).into())
}

/// Container images the template writes itself (a literal, or a `!Sub` /
/// `!Ref` of known parameter values) with a mutable tag: refused like a
/// mutable `image` input, since CloudFormation sees no change when such a
/// tag moves. The image parameter the action fills is checked as an input.
fn mutable_template_images(
    files: &LoadedStackFiles,
    stack: &StackInputs,
    image_parameter: Option<&str>,
    image_given: bool,
    policy: &MutableTagPolicy,
) -> Vec<InputError> {
    let TemplateSource::Body(body) = &files.template else {
        return Vec::new();
    };
    let (images, mut known) = template_images(body);
    for entry in &files.overrides {
        if let OverrideValue::Value(value) = &entry.value {
            known.insert(entry.key.clone(), value.clone());
        }
    }
    let filled_by_us = image_parameter.unwrap_or(DEFAULT_IMAGE_PARAMETER);
    let mut errors = Vec::new();
    for found in images {
        if image_given && found.image == ImageExpression::Ref(filled_by_us.to_string()) {
            continue;
        }
        let Some(image) = resolve_template_image(&found.image, &known) else {
            continue;
        };
        let Ok(reference) = ImageReference::parse(&image) else {
            continue;
        };
        if let Err(error) = policy.check(&reference) {
            errors.push(InputError::new(
                "template",
                &match &stack.template {
                    TemplateLocation::File(path) => path.display().to_string(),
                    TemplateLocation::Url(url) => url.clone(),
                },
                format!(
                    "gives container `{}` of `{}` the image `{image}`: {error}; CloudFormation sees no change when such a tag moves, so the service would keep its old image",
                    found.container, found.resource
                ),
                "pass the image as a parameter filled by image-repository (+ the commit's tag) with image-parameter, write an immutable tag or digest, or set allow-mutable-tag: true",
            ));
        }
    }
    errors
}

fn read_appspec_file(path: &Path) -> Result<(serde_json::Value, String), InputError> {
    let shown = path.display().to_string();
    let fix = "give the path of an ECS appspec (YAML or JSON), relative to the workspace, or leave codedeploy-appspec empty to have it generated from the service";
    let text = std::fs::read_to_string(path).map_err(|error| {
        InputError::new(
            "codedeploy-appspec",
            &shown,
            format!("cannot be read: {error}"),
            fix,
        )
    })?;
    parse_appspec(&text)
        .map(|document| (document, shown.clone()))
        .map_err(|problem| InputError::new("codedeploy-appspec", &shown, problem, fix))
}

/// Composes the image from the inputs, deriving the tag from the event when
/// only a repository is given, and applies the mutable-tag policy.
fn resolve_image(
    image: &ImageInputs,
    policy: &MutableTagPolicy,
    run: &RunContext,
    console: &Console,
) -> Result<ImageReference, InputError> {
    let mut tag = image.tag.clone();
    if image.image.is_none() && tag.is_none() {
        let payload = run.payload.as_ref().map_err(|problem| {
            InputError::new(
                "GITHUB_EVENT_PATH",
                "",
                problem.clone(),
                "run inside GitHub Actions, or give `image-tag` explicitly",
            )
        })?;
        let source = default_image_tag(
            run.event_name.as_deref(),
            payload.as_deref(),
            run.git_ref.as_deref(),
            run.sha.as_deref(),
        )
        .map_err(|error| InputError::from(Refusal::described(Setting::ImageTag, "", &error)))?;
        console.line(&source.describe());
        tag = Some(source.tag);
    }
    let given_as = if image.image.is_some() {
        Setting::Image
    } else {
        Setting::ImageRepository
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
    .map_err(|error| Refusal::described(error.setting(), &value, &error))?;
    policy
        .check(&reference)
        .map_err(|error| Refusal::described(given_as, &reference.to_string(), &error))?;
    Ok(reference)
}

/// Whether the triggering event allows a deploy.
#[derive(Debug, PartialEq, Eq)]
pub enum EventGate {
    Proceed,
    /// The upstream run failed and the user asked to skip.
    Skip(String),
}

/// Checks a `workflow_run` event before any AWS call: the upstream run must
/// have succeeded (a `workflow_run` trigger fires on failure too), and its
/// code must come from this repository, not a fork (a fork's code running
/// with this repository's secrets is the classic exfiltration path).
pub fn check_event(run: &RunContext, policy: EventPolicy) -> Result<EventGate, String> {
    if run.event_name.as_deref() != Some("workflow_run") {
        return Ok(EventGate::Proceed);
    }
    let summary = run.summary.as_ref().map_err(Clone::clone)?;
    let workflow_run = summary.workflow_run.clone().unwrap_or_default();
    let upstream = workflow_run
        .name
        .as_deref()
        .unwrap_or("the upstream workflow");
    let conclusion = workflow_run.conclusion.as_deref().unwrap_or("unknown");
    if conclusion != "success" {
        let reason = format!("{upstream} concluded `{conclusion}`, not `success`");
        return match policy.on_upstream_failure {
            UpstreamFailure::Skip => Ok(EventGate::Skip(reason)),
            UpstreamFailure::Fail => Err(format!(
                "{reason}; deploying after a failed upstream would ship what it did not finish (set on-upstream-failure: skip to end green instead)"
            )),
        };
    }
    let head_repository = workflow_run.head_repository.and_then(|r| r.full_name);
    if let (Some(head), Some(this)) = (head_repository.as_deref(), run.repository.as_deref())
        && head != this
        && !policy.allow_fork_runs
    {
        return Err(format!(
            "{upstream} ran on code from the fork {head}, not {this}; refusing to deploy it with this repository's credentials (set allow-fork-runs: true only if that code is trusted)"
        ));
    }
    Ok(EventGate::Proceed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatching(inputs: &[(&str, &str)]) -> GithubInputs {
        GithubInputs {
            dispatch_inputs: inputs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            ..GithubInputs::default()
        }
    }

    #[test]
    fn environment_url_output_names_a_declared_stack_output() {
        let url = |output: &str| GithubInputs {
            environment: Some("prod".into()),
            environment_url_output: Some(output.into()),
            ..GithubInputs::default()
        };
        let declared = ["ApiEndpoint".to_string()];
        assert!(output_reference_errors(&url("ApiEndpoint"), Some(&declared), false).is_empty());
        assert!(output_reference_errors(&url("Anything"), None, false).is_empty());
        let typo = output_reference_errors(&url("ApiEndpiont"), Some(&declared), false);
        assert!(
            typo[0]
                .to_string()
                .contains("is not an output the template declares (it declares: ApiEndpoint)"),
            "{}",
            typo[0]
        );
        let stackless = output_reference_errors(&url("ApiEndpoint"), None, true);
        assert!(
            stackless[0]
                .to_string()
                .contains("a deploy without a stack has none"),
            "{}",
            stackless[0]
        );
    }

    #[test]
    fn dispatch_inputs_are_checked_against_what_the_deploy_will_output() {
        let declared = ["QueueUrl".to_string()];
        let fine = dispatching(&[
            ("queue", "{{ outputs.QueueUrl }}"),
            ("id", "{{outputs.stack-id}}"),
            ("plain", "x"),
        ]);
        assert!(output_reference_errors(&fine, Some(&declared), false).is_empty());
        // A template known only after the deploy: judged then.
        let later = dispatching(&[("q", "{{ outputs.Anything }}")]);
        assert!(output_reference_errors(&later, None, false).is_empty());

        let typo = output_reference_errors(
            &dispatching(&[("q", "{{ outputs.QueueUri }}")]),
            Some(&declared),
            false,
        );
        assert_eq!(typo.len(), 1);
        assert!(
            typo[0].to_string().contains(
                "`q` refers to output `QueueUri`, which the template does not declare (it declares: QueueUrl)"
            ),
            "{}",
            typo[0]
        );
        let other =
            output_reference_errors(&dispatching(&[("t", "{{ secrets.TOKEN }}")]), None, false);
        assert!(
            other[0]
                .to_string()
                .contains("`t`: `{{ secrets.TOKEN }}` is not `{{ outputs.NAME }}`"),
            "{}",
            other[0]
        );
        let stackless =
            output_reference_errors(&dispatching(&[("q", "{{ outputs.QueueUrl }}")]), None, true);
        assert!(
            stackless[0]
                .to_string()
                .contains("which a deploy without a stack does not have"),
            "{}",
            stackless[0]
        );
    }
}

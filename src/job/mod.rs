//! The deploy job, shared by the action and the CLI, as four typed phases:
//!
//! ```text
//! inputs ─► prepare::prepare      raw inputs, files, event, run context; no AWS call
//! plan   ─► plan::build_plan      read-only AWS calls; one Plan, printed
//! apply  ─► apply::apply_plan     the Plan's steps; each recorded in JobReport
//! report ─► report_outcome        dispatch, GitHub deployment, outputs, summary
//! ```
//!
//! Every check that can fail on user input runs before the first call that
//! changes AWS; a signal is honoured in every phase; the report says what
//! was applied, never more or less.
//!
//! Exit codes: 0 success (including "no changes"), 1 the deploy failed or
//! was cancelled, 2 bad input (always found before any change).

mod cancel;
mod github;
mod package;
mod prepare;
mod system;

use std::path::Path;
use std::process::ExitCode;

use crate::apply::apply_plan;
use crate::aws::{CallTimeouts, load_config};
use crate::console::Console;
pub use crate::console::{LogBuffer, LogTarget};
use crate::env::Environment;
use crate::github::commands::AnnotationLevel;
use crate::github::lint::{WorkflowFile, lint_workflows as lint, read_workflow_dir};
use crate::github::output::{append_outputs, append_summary};
use crate::inputs::{InputErrors, RawInputs};
use crate::plan::build_plan;
use crate::refusal::CheckError;
use crate::report::{JobReport, action_outputs, markdown_summary};
use crate::service::watch::EcsClients;
use crate::stack::deploy::DeploySettings;
use crate::stack::parameters::no_echo_values;
use crate::stack::wait::PollSchedule;
use crate::termination::Termination;

use self::cancel::{CancelOptions, cancel};
use self::github::GithubRun;
pub use self::package::package;
pub use self::prepare::{EventGate, Prepared, ResultFiles, RunContext};
use self::prepare::{check_event, prepare};

/// How a job ended, mapped onto the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed,
    BadInput,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::BadInput => 2,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(outcome.code())
    }
}

/// Why a job did not succeed; the one type the exit code is decided from.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Found before anything changed: exit 2.
    #[error("{0}")]
    BadInput(InputErrors),
    /// The deploy failed (before or after something was applied).
    #[error("{0:#}")]
    Failed(anyhow::Error),
    /// A signal stopped the job; the message says where things stand.
    #[error("{0}")]
    Cancelled(String),
}

/// A read-only check of the plan: a refusal is a bad input (nothing has
/// changed yet), anything else a failure.
impl From<CheckError> for JobError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Refused(refusals) => Self::BadInput(refusals.into()),
            CheckError::Failed(error) => Self::Failed(error),
        }
    }
}

impl JobError {
    fn outcome(&self) -> Outcome {
        match self {
            Self::BadInput(_) => Outcome::BadInput,
            Self::Failed(_) | Self::Cancelled(_) => Outcome::Failed,
        }
    }
}

/// The AWS clients of one job, from one SDK configuration.
pub struct Clients {
    pub config: aws_config::SdkConfig,
    pub ecs: EcsClients,
}

impl Clients {
    /// The clients of a prepared job: its region, retry policy, proxy, and
    /// call timeouts within its longest wait.
    pub async fn for_job(prepared: &Prepared, env: &Environment) -> Result<Self, JobError> {
        let config = load_config(
            prepared.region.clone(),
            prepared.inputs.retry,
            CallTimeouts::within(wait_bound(prepared)),
            &prepared.proxy,
            env,
        )
        .await
        .map_err(JobError::Failed)?;
        Ok(Self {
            ecs: EcsClients::new(&config),
            config,
        })
    }
}

/// The settings of a prepared job's plan and apply.
fn deploy_settings(
    clients: &Clients,
    prepared: &Prepared,
    settings: &JobSettings,
    run: &RunContext,
) -> DeploySettings {
    DeploySettings {
        poll: settings.poll,
        description: run.change_set_description.clone(),
        ecs: Some(clients.ecs.clone()),
        fail_fast: prepared.inputs.fail_fast,
    }
}

/// What the job needs besides inputs and environment: values passed in, so
/// tests choose them (a fast poll schedule, a signal source, a log buffer).
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub poll: PollSchedule,
    pub termination: Termination,
    pub log: LogTarget,
}

/// Runs the deploy job (a system of stacks when `stacks` names a manifest).
pub async fn deploy(raw: &RawInputs, env: &Environment, settings: JobSettings) -> Outcome {
    if raw.value("stacks").is_some() {
        return system::deploy_system(raw, env, settings).await;
    }
    let console = Console::to(env.is_github_actions(), settings.log.clone());
    let termination = settings.termination.clone();
    let mut report = JobReport::default();

    // inputs
    let run = RunContext::read(env);
    let prepared = {
        let _section = console.phase("Validate inputs");
        match prepare(raw, env, &run, &console) {
            Ok(prepared) => prepared,
            Err(errors) => return report_bad_inputs(&console, &errors),
        }
    };
    if let Some(signal) = termination.signal() {
        return finish_cancelled(&console, signal, &prepared, &run, &mut report).await;
    }
    if let Some(gate) = inputs_gate(&prepared, env, &run, &console) {
        return gate;
    }

    // plan
    let clients = match Clients::for_job(&prepared, env).await {
        Ok(clients) => clients,
        Err(error) => {
            return report_outcome(&console, &prepared, &run, None, &mut report, Err(error)).await;
        }
    };
    let deploy_settings = deploy_settings(&clients, &prepared, &settings, &run);
    let planned = tokio::select! {
        planned = build_plan(&prepared, &clients, &deploy_settings, &console) => Ok(planned),
        signal = termination.received() => Err(signal),
    };
    let plan = match planned {
        Err(signal) => {
            return finish_cancelled(&console, signal, &prepared, &run, &mut report).await;
        }
        Ok(Ok(plan)) => plan,
        Ok(Err(JobError::BadInput(errors))) => return report_bad_inputs(&console, &errors),
        Ok(Err(error)) => {
            return report_outcome(&console, &prepared, &run, None, &mut report, Err(error)).await;
        }
    };
    {
        let _section = console.phase("Plan");
        for line in plan.to_string().lines() {
            console.plain(line);
        }
    }
    report.image = plan.image.as_ref().map(|image| image.deployed.clone());
    report.image_digest = plan.image.as_ref().and_then(|image| image.digest.clone());
    if prepared.inputs.verify_only {
        console.line("verify-only: the plan and its checks passed; stopping before any change");
        return report_outcome(&console, &prepared, &run, None, &mut report, Ok(())).await;
    }

    // GitHub deployment, then apply
    let mut github = match GithubRun::connect(&prepared, &run, &console, env) {
        Ok(github) => github,
        Err(error) => {
            let error = JobError::Failed(error);
            return report_outcome(&console, &prepared, &run, None, &mut report, Err(error)).await;
        }
    };
    let applied = tokio::select! {
        applied = async {
            if let Some(github) = github.as_mut() {
                github
                    .start_deployment(&prepared.inputs.github, &run, &console)
                    .await
                    .map_err(JobError::Failed)?;
            }
            apply_plan(&plan, &prepared, &clients, &deploy_settings, env, &console, &mut report).await
        } => Ok(applied),
        signal = termination.received() => Err(signal),
    };
    let applied = match applied {
        Ok(applied) => applied,
        Err(signal) => {
            let options = cancel_options(&prepared);
            let message = cancel(
                signal,
                options,
                Some(&clients.config),
                &console,
                &mut report,
            )
            .await;
            Err(JobError::Cancelled(message))
        }
    };

    // report: dispatch only after success, and never half of it unsaid
    let result = match (applied, &github) {
        (Ok(()), Some(github)) => tokio::select! {
            dispatched = github.dispatch(&prepared.inputs.github, &run, &console, &mut report) => {
                dispatched.map_err(JobError::Failed)
            }
            signal = termination.received() => {
                Err(JobError::Cancelled(format!("the job was cancelled ({signal}) while dispatching workflows")))
            }
        },
        (result, _) => result,
    };
    report_outcome(
        &console,
        &prepared,
        &run,
        github.as_ref(),
        &mut report,
        result,
    )
    .await
}

/// The longest the job waits for anything, which bounds every call.
fn wait_bound(prepared: &Prepared) -> std::time::Duration {
    let stack = prepared.inputs.stack.as_ref().map(|s| s.wait_timeout);
    let service = prepared.inputs.service.as_ref().map(|s| s.wait_timeout);
    stack
        .into_iter()
        .chain(service)
        .max()
        .unwrap_or(std::time::Duration::from_secs(90))
}

fn cancel_options(prepared: &Prepared) -> CancelOptions {
    CancelOptions {
        executes_change_set: prepared
            .inputs
            .stack
            .as_ref()
            .is_some_and(|s| s.execute_change_set),
        cancel_update: prepared.inputs.cancel_on_abort,
    }
}

/// Asks the runner to mask the values given to the template's `NoEcho`
/// parameters.
fn mask_no_echo(prepared: &Prepared, console: &Console) {
    if let Some(files) = &prepared.stack_files
        && let Some(declared) = &files.declared
    {
        for secret in no_echo_values(declared, &files.overrides) {
            console.mask(&secret);
        }
    }
}

/// The checks of the inputs phase that need no AWS: masking, the workflow
/// lint, the event gate. Returns the outcome when the job stops here.
fn inputs_gate(
    prepared: &Prepared,
    env: &Environment,
    run: &RunContext,
    console: &Console,
) -> Option<Outcome> {
    let _section = console.phase("Check the run");
    mask_no_echo(prepared, console);
    console.line(&format!("region {}", prepared.region));
    if prepared.inputs.lint_workflows {
        // Findings warn: a chain problem elsewhere should not block this deploy.
        let dir = env.workspace().join(".github/workflows");
        match read_workflow_dir(&dir) {
            Ok(files) => {
                let findings = report_findings(
                    console,
                    &files,
                    &env.workspace(),
                    &env.workspace(),
                    AnnotationLevel::Warning,
                );
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
    match check_event(run, prepared.inputs.event_policy) {
        Ok(EventGate::Proceed) => None,
        Ok(EventGate::Skip(reason)) => {
            console.notice(&format!(
                "{reason}; on-upstream-failure is `skip`, so nothing is deployed"
            ));
            Some(Outcome::Success)
        }
        Err(reason) => {
            console.error(&format!("{reason}; nothing was deployed"));
            Some(Outcome::Failed)
        }
    }
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

/// A signal before anything was applied: nothing to clean up, but the
/// outputs and summary are still written.
async fn finish_cancelled(
    console: &Console,
    signal: &str,
    prepared: &Prepared,
    run: &RunContext,
    report: &mut JobReport,
) -> Outcome {
    let message = cancel(signal, cancel_options(prepared), None, console, report).await;
    report_outcome(
        console,
        prepared,
        run,
        None,
        report,
        Err(JobError::Cancelled(message)),
    )
    .await
}

/// The report phase: closes the GitHub side, writes outputs and the
/// summary, repeats the failure with its root causes and what was applied.
async fn report_outcome(
    console: &Console,
    prepared: &Prepared,
    run: &RunContext,
    github: Option<&GithubRun>,
    report: &mut JobReport,
    result: Result<(), JobError>,
) -> Outcome {
    let error_text = result.as_ref().err().map(ToString::to_string);
    if let Some(github) = github {
        let review_only = prepared
            .inputs
            .stack
            .as_ref()
            .is_some_and(|s| !s.execute_change_set);
        github
            .finish(
                &prepared.inputs.github,
                review_only,
                run,
                console,
                report,
                error_text.as_deref(),
            )
            .await;
    }
    let written = publish(
        console,
        &prepared.result_files,
        report,
        error_text.as_deref(),
    );
    match result {
        Ok(()) if written => Outcome::Success,
        Ok(()) => Outcome::Failed,
        Err(error) => {
            let _section = console.phase("Failure");
            console.error(&error.to_string());
            for cause in report.root_causes() {
                console.error(&format!("root cause: {cause}"));
            }
            console.plain(&report.change_statement());
            error.outcome()
        }
    }
}

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
    {
        let _section = console.phase("Outputs");
        for (name, value) in &outputs.values {
            console.plain(&format!("{name} = {value}"));
        }
    }
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

/// `init-stacks DIR`: a starting system manifest for the templates in
/// `dir` (relative to the workspace), on stdout or into `output`. Exit 2
/// when the folder holds no template or cannot be read.
pub fn init_stacks(dir: &Path, output: Option<&Path>, env: &Environment) -> Outcome {
    let console = Console::to(env.is_github_actions(), LogTarget::Stderr);
    let root = env.workspace().join(dir);
    let mut found = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) => {
                console.error(&format!(
                    "cannot read {}: {error}; give a folder of CloudFormation templates",
                    folder.display()
                ));
                return Outcome::BadInput;
            }
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yml" | "yaml" | "json" | "template"))
                && let Ok(body) = std::fs::read_to_string(&path)
            {
                let relative = path.strip_prefix(&root).unwrap_or(&path);
                found.push(crate::system::init::FoundTemplate {
                    path: relative.to_string_lossy().replace('\\', "/"),
                    body,
                });
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let text = match crate::system::init::starting_manifest(&dir.display().to_string(), &found) {
        Ok(text) => text,
        Err(problem) => {
            console.error(&format!("init-stacks: {problem}"));
            return Outcome::BadInput;
        }
    };
    match output {
        None => {
            print!("{text}");
            Outcome::Success
        }
        Some(path) => match std::fs::write(env.workspace().join(path), &text) {
            Ok(()) => {
                console.line(&format!("wrote {}", path.display()));
                Outcome::Success
            }
            Err(error) => {
                console.error(&format!("cannot write {}: {error}", path.display()));
                Outcome::Failed
            }
        },
    }
}

/// Lints the workflow files in `dir` (relative to the workspace): every
/// finding is an annotation on its file and line. Exit 1 when there are
/// findings, 2 when the folder cannot be read.
pub fn lint_workflows(dir: &Path, env: &Environment) -> Outcome {
    let console = Console::new(env.is_github_actions());
    let dir = env.workspace().join(dir);
    let _section = console.phase(&format!("Lint workflows in {}", dir.display()));
    match read_workflow_dir(&dir) {
        Err(error) => {
            console.error(&format!(
                "cannot read the workflows in {}: {error}; give the folder of the workflow files",
                dir.display()
            ));
            Outcome::BadInput
        }
        Ok(files) => {
            let findings = report_findings(
                &console,
                &files,
                &env.workspace(),
                &repository_root(&dir, &env.workspace()),
                AnnotationLevel::Error,
            );
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
    }
}

/// The repository a workflow folder belongs to: the one holding
/// `.github/workflows`, else the nearest folder above it with `.git`, else
/// the workspace. Templates and `paths` filters are read from there.
fn repository_root(dir: &Path, workspace: &Path) -> std::path::PathBuf {
    let holder = dir
        .ends_with(".github/workflows")
        .then(|| dir.parent().and_then(Path::parent))
        .flatten();
    holder
        .or_else(|| dir.ancestors().find(|folder| folder.join(".git").exists()))
        .unwrap_or(workspace)
        .to_path_buf()
}

/// Prints each finding as an annotation on its file (relative to the
/// workspace, as the runner expects) and line.
fn report_findings(
    console: &Console,
    files: &[WorkflowFile],
    workspace: &Path,
    repository: &Path,
    level: AnnotationLevel,
) -> usize {
    let findings = lint(files, Some(repository));
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

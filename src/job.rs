//! The deploy job from validated inputs to written outputs, shared by the
//! action and the CLI.
//!
//! Exit codes: 0 success (including "no changes"), 1 the deploy failed,
//! 2 bad input (always detected before any AWS call that changes anything).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::aws::{load_config, resolve_region};
use crate::console::Console;
use crate::env::Environment;
use crate::github::output::{append_outputs, append_summary};
use crate::inputs::{DeployInputs, InputContext, InputError, InputErrors, RawInputs};
use crate::report::{action_outputs, markdown_summary};
use crate::stack::deploy::{DeploySettings, StackDeployment, deploy_stack};
use crate::stack::parameters::no_echo_values;
use crate::stack::plan::load_stack_files;
use crate::stack::wait::PollSchedule;

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

/// Runs the deploy job.
pub async fn deploy(raw: &RawInputs, env: &Environment, poll: PollSchedule) -> Outcome {
    let console = Console::new(env.is_github_actions());
    let context = InputContext {
        workspace: env.workspace(),
        default_change_set_name: default_change_set_name(env),
    };

    console.phase("Validate inputs");
    let validated = DeployInputs::from_raw(raw, &context).and_then(|inputs| {
        let files = load_stack_files(&inputs)?;
        let region = resolve_region(inputs.region.as_deref(), env)?;
        let result_files = result_files(env)?;
        Ok((inputs, files, region, result_files))
    });
    let (inputs, files, region, result_files) = match validated {
        Ok(valid) => valid,
        Err(errors) => {
            console.end_phase();
            return report_bad_inputs(&console, &errors);
        }
    };
    if let Some(declared) = &files.declared {
        for secret in no_echo_values(declared, &files.overrides) {
            console.mask(&secret);
        }
    }
    console.line(&format!(
        "stack {} in {region}, change set {}",
        inputs.stack_name, inputs.change_set_name
    ));
    console.end_phase();

    let config = load_config(region, env).await;
    let client = aws_sdk_cloudformation::Client::new(&config);
    let settings = DeploySettings {
        poll,
        description: change_set_description(env),
    };
    let result = deploy_stack(&client, &inputs, &files, &settings, &console).await;
    let (deployment, error) = match result {
        Ok(deployment) => (deployment, None),
        Err(failure) => (failure.deployment, Some(failure.error)),
    };

    // A bad input found late (parameters checked against the template) was
    // still found before any change: report it as such, publish nothing.
    if let Some(errors) = error.as_ref().and_then(|e| e.downcast_ref::<InputErrors>()) {
        return report_bad_inputs(&console, errors);
    }
    let error_text = error.as_ref().map(|e| format!("{e:#}"));
    let written = publish(&console, &result_files, &deployment, error_text.as_deref());

    match error {
        None if written => Outcome::Success,
        None => Outcome::Failed,
        Some(error) => {
            console.phase("Failure");
            console.error(&format!("{error:#}"));
            for cause in &deployment.root_causes {
                console.error(&format!("root cause: {cause}"));
            }
            console.end_phase();
            Outcome::Failed
        }
    }
}

/// Prints and writes the outputs and the job summary. Returns false when a
/// file could not be written (reported as an error).
fn publish(
    console: &Console,
    files: &ResultFiles,
    deployment: &StackDeployment,
    error: Option<&str>,
) -> bool {
    let outputs = action_outputs(deployment);
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
        let markdown = markdown_summary(deployment, console.elapsed(), error);
        if let Err(e) = append_summary(path, &markdown) {
            console.error(&format!("writing the job summary: {e}"));
            written = false;
        }
    }
    written
}

//! Raw input strings to typed, validated inputs (pure: no I/O, no AWS).
//!
//! Two layers, like ripgrep's: [`RawInputs`] holds the strings the user typed,
//! keyed by the action's input names, whichever front end collected them (the
//! runner's `INPUT_*` variables or CLI flags). [`DeployInputs::from_raw`]
//! turns them into the typed value the rest of the program sees, reporting
//! every bad input at once, each naming the input, the value and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::aws::{RetryMode, RetryPolicy};
use crate::env::Environment;
use crate::refusal::{Refusal, Refusals, Setting};
use crate::service::codedeploy::{CodeDeployOptions, HOOK_EVENTS, WaitUntil};
use crate::service::ecs_json::decode_strict;
use crate::service::plan::ServiceSettings;
use crate::service::strategy::{ContinueOptions, STAGES, ServiceWaitUntil, StrategySettings};
use crate::service::task::OneOffTaskOptions;
use crate::service::verdict::{FailFast, OnRolloutFailure};
use crate::stack::parameters::{OverrideSource, override_source, parse_inline_overrides};
use crate::taskdef::render::{ContainerSettings, EnvChange, parse_environment_lines};
use aws_sdk_ecs::types::{
    AssignPublicIp, CapacityProviderStrategyItem, ContainerOverride, LaunchType,
    ServiceVolumeConfiguration, Tag as EcsTag, TaskVolumeConfiguration,
};

/// One input the action declares, with the default `action.yml` gives it.
/// The runner fills defaults in for container actions; the CLI and tests that
/// run the binary without the runner rely on these being the same.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

const fn input(name: &'static str, default: Option<&'static str>) -> InputSpec {
    InputSpec { name, default }
}

/// Every input of the deploy job. `action.yml` must declare exactly these with
/// the same defaults (checked by a test).
pub const DEPLOY_INPUTS: &[InputSpec] = &[
    input("name", None),
    input("stack-name", None),
    input("template", None),
    input("s3-bucket", None),
    input("s3-prefix", None),
    input("s3-upload", Some("auto")),
    input("capabilities", Some("CAPABILITY_IAM")),
    input("parameter-overrides", None),
    input("mode", Some("create-and-execute")),
    input("execute-change-set-id", None),
    input("no-execute-changeset", Some("false")),
    input("no-delete-failed-changeset", Some("false")),
    input("fail-on-empty-changeset", Some("false")),
    input("no-fail-on-empty-changeset", None),
    input("disable-rollback", Some("false")),
    input("timeout-in-minutes", None),
    input("notification-arns", None),
    input("role-arn", None),
    input("tags", None),
    input("termination-protection", Some("false")),
    input("change-set-name", None),
    input("deployment-mode", None),
    input("include-nested-stacks-change-set", None),
    input("wait-timeout", Some("60m")),
    input("aws-region", None),
    input("max-retries", Some("4")),
    input("retry-mode", Some("standard")),
    input("http-proxy", None),
    input("image", None),
    input("image-repository", None),
    input("image-tag", None),
    input("allow-mutable-tag", Some("false")),
    input("mutable-tags", Some("latest,main,master,develop,stable")),
    input("pin-digest", Some("false")),
    input("image-parameter", None),
    input("task-definition", None),
    input("task-definition-arn", None),
    input("task-definition-family", None),
    input("task-definition-revision", None),
    input("container-name", None),
    input("images", None),
    input("environment-variables", None),
    input("secrets", None),
    input("env-files", None),
    input("command", None),
    input("docker-labels", None),
    input("log-configuration-log-driver", None),
    input("log-configuration-options", None),
    input("task-role-arn", None),
    input("execution-role-arn", None),
    input("service", None),
    input("cluster", Some("default")),
    input("desired-count", None),
    input("force-new-deployment", Some("false")),
    input("enable-ecs-managed-tags", None),
    input("propagate-tags", None),
    input("wait-max-delay-seconds", None),
    input("wait-for-service-stability", Some("true")),
    input("wait-for-minutes", Some("30")),
    input("keep-null-value-keys", None),
    input("service-managed-ebs-volume-name", None),
    input("service-managed-ebs-volume", None),
    input("run-task", Some("false")),
    input("run-task-container-overrides", None),
    input("run-task-subnets", None),
    input("run-task-security-groups", None),
    input("run-task-assign-public-IP", None),
    input("run-task-capacity-provider-strategy", None),
    input("run-task-launch-type", None),
    input("run-task-started-by", Some("GitHub-Actions")),
    input("run-task-tags", None),
    input("run-task-managed-ebs-volume-name", None),
    input("run-task-managed-ebs-volume", None),
    input("wait-for-task-stopped", Some("false")),
    input("codedeploy-appspec", None),
    input("codedeploy-application", None),
    input("codedeploy-deployment-group", None),
    input("codedeploy-deployment-config", None),
    input("codedeploy-deployment-description", None),
    input("codedeploy-hooks", None),
    input("wait-until", Some("complete")),
    input("deployment-strategy", None),
    input("bake-time-minutes", None),
    input("canary-percent", None),
    input("canary-bake-minutes", None),
    input("linear-step-percent", None),
    input("linear-step-bake-minutes", None),
    input("verify", Some("true")),
    input("verify-only", Some("false")),
    input("continue-deployment", None),
    input("parameters-from-stacks", None),
    input("stacks", None),
    input("max-parallel", Some("4")),
    input("on-upstream-failure", Some("fail")),
    input("allow-fork-runs", Some("false")),
    input("cancel-on-abort", Some("false")),
    input("failure-threshold", Some("3")),
    input("on-rollout-failure", Some("rollback")),
    input("lint-workflows", Some("false")),
    // action.yml defaults this to `${{ github.token }}`, which only the
    // runner can evaluate; elsewhere it is simply not given.
    input("github-token", None),
    input("dispatch-workflows", None),
    input("dispatch-ref", None),
    input("dispatch-inputs", None),
    input("environment", None),
    input("environment-url-output", None),
];

/// The strings the user gave, by input name, already trimmed; empty values
/// are treated as not given, as @actions/core's `getInput` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInputs {
    values: BTreeMap<&'static str, String>,
    /// `INPUT_*` variables that name no declared input, as the runner passes
    /// a `with:` key `action.yml` does not declare (it only warns). Refused
    /// by [`DeployInputs::from_raw`]: a misspelt input silently ignored is a
    /// deploy that does something else than the user wrote.
    undeclared: Vec<String>,
}

/// The booleans of aws-actions/aws-cloudformation-github-deploy, which reads
/// its inputs as numbers (`!!+value`).
const LEGACY_TRUE: &str = "1";
const LEGACY_FALSE: &str = "0";

/// The `INPUT_*` variable the runner sets for an input.
fn input_variable(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_uppercase())
}

impl RawInputs {
    /// Reads inputs the way the runner passes them to a container action:
    /// `INPUT_` + the name upper-cased with spaces replaced by `_` and hyphens
    /// kept (`INPUT_PARAMETER-OVERRIDES`). Every other `INPUT_*` variable is
    /// kept as undeclared, whatever its value (the runner sets a `with:` key
    /// even when its expression evaluates to nothing).
    pub fn from_action_environment(env: &Environment) -> Self {
        let mut raw = Self::default();
        for spec in DEPLOY_INPUTS {
            if let Some(value) = env.get(&input_variable(spec.name)) {
                raw.set(spec.name, value);
            }
        }
        raw.undeclared = env
            .names_with_prefix("INPUT_")
            .filter(|name| {
                !DEPLOY_INPUTS
                    .iter()
                    .any(|spec| input_variable(spec.name) == format!("INPUT_{name}"))
            })
            .map(str::to_string)
            .collect();
        raw
    }

    /// A notice per boolean input given as `1` or `0` (the anchor action's
    /// spelling): accepted, with the spelling every other action uses.
    fn legacy_boolean_notices(&self) -> Vec<String> {
        DEPLOY_INPUTS
            .iter()
            .filter(|spec| {
                matches!(spec.default, Some("true" | "false"))
                    || OPTIONAL_BOOLEAN_INPUTS.contains(&spec.name)
            })
            .filter_map(|spec| {
                let written = self.values.get(spec.name)?;
                let meant = match written.as_str() {
                    LEGACY_TRUE => "true",
                    LEGACY_FALSE => "false",
                    _ => return None,
                };
                Some(format!(
                    "input `{}`: `{written}` is read as `{meant}` (the spelling of aws-cloudformation-github-deploy); write `{meant}`",
                    spec.name
                ))
            })
            .collect()
    }

    /// One line each where an input given as a migrated aws-actions step
    /// writes it means something else here (the README's table lists every
    /// difference; these are the ones that would surprise at run time).
    fn migration_notices(&self) -> Vec<String> {
        let mut notices = Vec::new();
        if let Some(retries) = self
            .values
            .get("max-retries")
            .filter(|_| self.is_changed("max-retries"))
        {
            notices.push(format!(
                "input `max-retries`: {retries} counts the retries after the first try here ({retries} retries = up to {} calls); an aws-actions step's `max-retries` counted attempts",
                retries.parse::<u32>().map_or_else(|_| "?".to_string(), |n| (n + 1).to_string())
            ));
        }
        if let Some(text) = self.values.get("environment-variables") {
            let removed: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter_map(|line| line.strip_suffix('='))
                .filter(|name| !name.contains('='))
                .collect();
            if !removed.is_empty() {
                notices.push(format!(
                    "input `environment-variables`: `{}=` removes the variable here (amazon-ecs-render-task-definition set it to an empty string)",
                    removed.join("=`, `")
                ));
            }
        }
        notices
    }

    /// One error per undeclared `INPUT_*` variable, naming the declared input
    /// it most likely meant.
    fn undeclared_errors(&self) -> Vec<InputError> {
        self.undeclared
            .iter()
            .map(|variable| {
                let written = variable.to_lowercase();
                let fix = match closest_declared_input(&written) {
                    Some(declared) => format!("did you mean `{declared}`?"),
                    None => "remove it from `with:`; see action.yml for the inputs".to_string(),
                };
                InputError::new(
                    &written,
                    &format!("INPUT_{variable}"),
                    "is not an input of this action (action.yml does not declare it)",
                    fix,
                )
            })
            .collect()
    }

    /// Sets an input by its declared name; unknown names are ignored because
    /// only declared names can reach this (the front ends iterate the table).
    pub fn set(&mut self, name: &str, value: &str) {
        let trimmed = value.trim();
        if let Some(spec) = DEPLOY_INPUTS.iter().find(|s| s.name == name)
            && !trimmed.is_empty()
        {
            self.values.insert(spec.name, trimmed.to_string());
        }
    }

    /// The value given (not the default).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// These inputs without `names`.
    pub fn without(&self, names: &[&str]) -> Self {
        let mut kept = self.clone();
        kept.values.retain(|name, _| !names.contains(name));
        kept
    }

    /// The value given, else the declared default.
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).or_else(|| {
            DEPLOY_INPUTS
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.default)
        })
    }

    /// Whether the input has a value (given, or filled in by the runner).
    fn is_given(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Whether the input holds something other than its declared default.
    /// The runner sets `INPUT_*` for every declared input with a default, so
    /// a default value cannot be told from one the user wrote: only a
    /// different value shows intent.
    fn is_changed(&self, name: &str) -> bool {
        let default = DEPLOY_INPUTS
            .iter()
            .find(|spec| spec.name == name)
            .and_then(|spec| spec.default);
        self.values
            .get(name)
            .is_some_and(|value| Some(value.as_str()) != default)
    }
}

/// The declared input closest to `written` (a lower-cased `INPUT_*` suffix):
/// the same name with `_` for `-` (the runner keeps hyphens, so
/// `no_execute_changeset` reaches us as written), else a small typo.
pub(crate) fn closest_declared_input(written: &str) -> Option<&'static str> {
    let hyphenated = written.replace('_', "-");
    DEPLOY_INPUTS
        .iter()
        .map(|spec| (strsim::levenshtein(&hyphenated, spec.name), spec.name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 5))
        .min()
        .map(|(_, name)| name)
}

/// The input a capability's [`Setting`] is read from: the one place a
/// refusal gets its input name.
pub fn input_name(setting: Setting) -> &'static str {
    match setting {
        Setting::StackName => "name",
        Setting::Template => "template",
        Setting::TemplateBucket => "s3-bucket",
        Setting::ParameterOverrides => "parameter-overrides",
        Setting::ImageParameter => "image-parameter",
        Setting::ParametersFromStacks => "parameters-from-stacks",
        Setting::ExistingChangeSet => "execute-change-set-id",
        Setting::Region => "aws-region",
        Setting::HttpProxy => "http-proxy",
        Setting::Image => "image",
        Setting::ImageRepository => "image-repository",
        Setting::ImageTag => "image-tag",
        Setting::MutableTags => "mutable-tags",
        Setting::ContainerImages => "images",
        Setting::TaskDefinition => "task-definition",
        Setting::ContainerName => "container-name",
        Setting::EnvironmentVariables => "environment-variables",
        Setting::Cluster => "cluster",
        Setting::Service => "service",
        Setting::ServiceManagedEbsVolume => "service-managed-ebs-volume-name",
        Setting::RunTaskContainerOverrides => "run-task-container-overrides",
        Setting::RunTaskSubnets => "run-task-subnets",
        Setting::RunTaskManagedEbsVolume => "run-task-managed-ebs-volume-name",
        Setting::CodeDeployDeploymentGroup => "codedeploy-deployment-group",
        Setting::CodeDeployDeploymentConfig => "codedeploy-deployment-config",
        Setting::CodeDeployAppSpec => "codedeploy-appspec",
        Setting::CodeDeployApplication => "codedeploy-application",
        Setting::CodeDeployDescription => "codedeploy-deployment-description",
        Setting::CodeDeployHooks => "codedeploy-hooks",
        Setting::WaitUntil => "wait-until",
        Setting::DeploymentStrategy => "deployment-strategy",
        Setting::ContinueDeployment => "continue-deployment",
    }
}

impl From<Refusal> for InputError {
    fn from(refusal: Refusal) -> Self {
        Self::new(
            input_name(refusal.setting),
            &refusal.value,
            refusal.problem,
            refusal.fix,
        )
    }
}

impl From<Refusal> for InputErrors {
    fn from(refusal: Refusal) -> Self {
        Self(vec![refusal.into()])
    }
}

impl From<Refusals> for InputErrors {
    fn from(refusals: Refusals) -> Self {
        Self(refusals.0.into_iter().map(InputError::from).collect())
    }
}

/// One bad input: which, what was given, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub input: String,
    pub value: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fix.is_empty() {
            // The problem already names the value and the fix (messages of
            // the image and task definition parsers).
            write!(f, "input `{}`: {}", self.input, self.problem)
        } else {
            write!(
                f,
                "input `{}`: {} (got `{}`); {}",
                self.input, self.problem, self.value, self.fix
            )
        }
    }
}

impl std::error::Error for InputError {}

impl InputError {
    /// The same error, of one stack of a system manifest.
    pub fn for_stack(self, key: &str) -> Self {
        Self {
            input: format!("{}` of stack `{key}", self.input),
            ..self
        }
    }

    pub fn new(
        input: &str,
        value: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            input: input.to_string(),
            value: value.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Every bad input found in one pass, so a user fixes them all in one go.
/// Callers branch on this type to exit with the "bad input" code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("; "))
    }
}

impl From<InputError> for InputErrors {
    fn from(error: InputError) -> Self {
        Self(vec![error])
    }
}

pub use crate::stack::options::{
    OverridesInput, StackOptions as StackInputs, Tag, TemplateLocation, TemplateUpload,
    UpstreamOutputs,
};

/// The capabilities CloudFormation accepts.
pub const CAPABILITIES: &[&str] = &[
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
];

/// What validation needs from outside the inputs themselves.
#[derive(Debug, Clone)]
pub struct InputContext {
    /// Relative paths resolve against this (GITHUB_WORKSPACE on a runner).
    pub workspace: PathBuf,
    /// Used when `change-set-name` is not given; unique per run so reruns
    /// never collide with a change set left by an earlier attempt.
    pub default_change_set_name: String,
    /// This step of this run (see `RunContext::run_identity`).
    pub run_identity: String,
}

/// Where the task definition to render comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskDefinitionSource {
    /// A JSON or YAML file in the repository.
    File(PathBuf),
    /// A registered revision, by ARN or `family[:revision]`.
    Registered(String),
}

impl Default for TaskDefinitionSource {
    fn default() -> Self {
        Self::File(PathBuf::new())
    }
}

/// The image inputs, before the tag is derived from the event (which needs
/// the event payload) and before ECR is asked about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageInputs {
    pub image: Option<String>,
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub allow_mutable_tag: bool,
    pub mutable_tags: Vec<String>,
    pub pin_digest: bool,
    /// The template parameter that receives the image; `None` means
    /// `ImageUri` if the template declares it.
    pub image_parameter: Option<String>,
}

impl ImageInputs {
    /// Whether the user asked for an image at all.
    pub fn is_requested(&self) -> bool {
        self.image.is_some() || self.repository.is_some()
    }
}

/// What a task-definition rollout needs, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceInputs {
    pub task_definition: TaskDefinitionSource,
    /// The containers that get `image`, `environment-variables` and the
    /// render inputs (`container-name: a,b` names several, as
    /// amazon-ecs-render-task-definition takes it).
    pub container_names: Vec<String>,
    /// `secrets`, `env-files`, `command`, `docker-labels`,
    /// `log-configuration-*`, for each of `container_names`.
    pub container_settings: ContainerSettings,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    /// `enable-ecs-managed-tags`, `propagate-tags`, `wait-max-delay-seconds`.
    pub service_settings: ServiceSettings,
    /// `images`: other containers' images, `container=image` per line.
    pub images: Vec<(String, String)>,
    pub environment: Vec<EnvChange>,
    /// `keep-null-value-keys`: empty values kept under these keys.
    pub keep_empty_keys: Vec<String>,
    /// `run-task`: a one-off task before the service update.
    pub one_off_task: Option<OneOffTaskOptions>,
    /// The `codedeploy-*` inputs (the appspec file is read with the other
    /// files, from `codedeploy_appspec`).
    pub codedeploy: CodeDeployOptions,
    pub codedeploy_appspec: Option<PathBuf>,
    /// The `codedeploy-*` inputs given (not defaults): refused for a
    /// service that does not use CodeDeploy.
    pub codedeploy_inputs_given: Vec<Setting>,
    /// `wait-until`, for ECS's deployment strategies (and, as far as it
    /// applies, CodeDeploy); `None`: not given.
    pub wait_until: Option<ServiceWaitUntil>,
    /// `deployment-strategy` and its settings.
    pub strategy: StrategySettings,
    /// `None`: register the task definition only.
    pub service: Option<String>,
    pub cluster: String,
    pub desired_count: Option<i32>,
    pub force_new_deployment: bool,
    pub wait_for_service_stability: bool,
    pub wait_timeout: Duration,
}

/// What to do when the upstream run of a `workflow_run` event did not
/// succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamFailure {
    /// Fail the step (exit 1), so the chain's failure is visible.
    #[default]
    Fail,
    /// Succeed without doing anything (exit 0).
    Skip,
}

/// How the job treats the event that triggered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventPolicy {
    pub on_upstream_failure: UpstreamFailure,
    pub allow_fork_runs: bool,
}

/// `mode: execute-only`: execute a change set created earlier (by a
/// `create-only` run, after a review), then wait for the stack.
pub use crate::stack::execute::ExecuteOptions as ExecuteInputs;

/// Inputs that only shape a change set being created, so `mode:
/// execute-only` has no use for them (the change set holds them already).
const CHANGE_SET_CREATION_INPUTS: &[&str] = &[
    "template",
    "s3-bucket",
    "s3-prefix",
    "s3-upload",
    "parameter-overrides",
    "capabilities",
    "no-execute-changeset",
    "no-delete-failed-changeset",
    "fail-on-empty-changeset",
    "no-fail-on-empty-changeset",
    "timeout-in-minutes",
    "notification-arns",
    "role-arn",
    "tags",
    "termination-protection",
    "change-set-name",
    "deployment-mode",
    "include-nested-stacks-change-set",
    "parameters-from-stacks",
    "image",
    "image-repository",
    "image-tag",
    "image-parameter",
];

/// The inputs that ask for a task-definition rollout (which `mode:
/// execute-only` does not combine with).
const ROLLOUT_INPUTS: &[&str] = &[
    "task-definition",
    "task-definition-arn",
    "task-definition-family",
    "service",
];

/// Inputs that only shape a task-definition rollout: given without one they
/// would do nothing, so they are refused instead.
const ROLLOUT_ONLY_INPUTS: &[&str] = &[
    "container-name",
    "images",
    "environment-variables",
    "secrets",
    "env-files",
    "command",
    "docker-labels",
    "log-configuration-log-driver",
    "log-configuration-options",
    "task-role-arn",
    "execution-role-arn",
    "task-definition-revision",
    "cluster",
    "desired-count",
    "force-new-deployment",
    "wait-for-service-stability",
    "wait-for-minutes",
    "enable-ecs-managed-tags",
    "propagate-tags",
    "wait-max-delay-seconds",
    "keep-null-value-keys",
    "service-managed-ebs-volume-name",
    "service-managed-ebs-volume",
    "run-task",
    "wait-for-task-stopped",
    "codedeploy-appspec",
    "codedeploy-application",
    "codedeploy-deployment-group",
    "codedeploy-deployment-config",
    "codedeploy-deployment-description",
    "codedeploy-hooks",
    "wait-until",
    "deployment-strategy",
    "bake-time-minutes",
    "canary-percent",
    "canary-bake-minutes",
    "linear-step-percent",
    "linear-step-bake-minutes",
];

/// Inputs that only shape a CodeDeploy (blue/green) rollout: refused for a
/// service whose deployment controller is ECS, where they would do nothing.
const CODEDEPLOY_INPUTS: &[Setting] = &[
    Setting::CodeDeployAppSpec,
    Setting::CodeDeployApplication,
    Setting::CodeDeployDeploymentGroup,
    Setting::CodeDeployDeploymentConfig,
    Setting::CodeDeployDescription,
    Setting::CodeDeployHooks,
];

/// Booleans without a default (empty: left as it is).
const OPTIONAL_BOOLEAN_INPUTS: &[&str] = &["no-fail-on-empty-changeset", "enable-ecs-managed-tags"];

/// Inputs that only shape the one-off task: refused without `run-task:
/// true`, where they would do nothing.
const RUN_TASK_INPUTS: &[&str] = &[
    "run-task-container-overrides",
    "run-task-subnets",
    "run-task-security-groups",
    "run-task-assign-public-IP",
    "run-task-capacity-provider-strategy",
    "run-task-launch-type",
    "run-task-started-by",
    "run-task-tags",
    "run-task-managed-ebs-volume-name",
    "run-task-managed-ebs-volume",
    "wait-for-task-stopped",
];

/// Everything the job needs, validated: a stack deploy, a task-definition
/// rollout, or both (stack first); or the execution of a change set
/// created earlier.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployInputs {
    pub stack: Option<StackInputs>,
    pub execute: Option<ExecuteInputs>,
    /// `continue-deployment`: answer a paused deployment's hook.
    pub continue_deployment: Option<ContinueOptions>,
    /// `verify`: check the revision and its service before deploying.
    pub verify: bool,
    /// `verify-only`: plan and verify, then stop before any change.
    pub verify_only: bool,
    pub image: ImageInputs,
    pub service: Option<ServiceInputs>,
    pub region: Option<String>,
    /// How the SDK retries throttled and failed AWS calls.
    pub retry: RetryPolicy,
    /// `http-proxy`: the proxy for every AWS and GitHub API call, over the
    /// proxy variables; checked with them (`proxy::resolve_proxy`) when the
    /// job is prepared.
    pub http_proxy: Option<String>,
    pub event_policy: EventPolicy,
    /// On SIGTERM/SIGINT, cancel a running stack update (CancelUpdateStack).
    pub cancel_on_abort: bool,
    /// `failure-threshold` and `on-rollout-failure`: when a rollout is
    /// judged doomed, and what then.
    pub fail_fast: FailFast,
    /// Lint `.github/workflows` for broken `workflow_run` chains first.
    pub lint_workflows: bool,
    pub github: GithubInputs,
    /// Accepted, but worth a word to the user (a legacy spelling).
    pub notices: Vec<String>,
}

/// What the job does through the GitHub API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GithubInputs {
    pub token: Option<String>,
    /// Workflow files (or ids) to trigger with workflow_dispatch after a
    /// successful deploy.
    pub dispatch_workflows: Vec<String>,
    /// The ref to dispatch on; `None` means this run's GITHUB_REF.
    pub dispatch_ref: Option<String>,
    /// Inputs for the dispatched workflows; values may hold
    /// `{{ outputs.NAME }}`, replaced by this run's outputs.
    pub dispatch_inputs: BTreeMap<String, String>,
    /// A GitHub environment to record a deployment in.
    pub environment: Option<String>,
    /// The stack output whose value is the environment's URL.
    pub environment_url_output: Option<String>,
}

impl DeployInputs {
    /// Validates every input, returning all problems at once.
    pub fn from_raw(raw: &RawInputs, context: &InputContext) -> Result<Self, InputErrors> {
        let mut found = ErrorCollector::default();
        found.errors.extend(raw.undeclared_errors());
        let mode = found.take(change_set_mode(raw));
        let mut continue_deployment = None;
        let (stack, execute, image, service) = if raw.is_given("continue-deployment") {
            continue_deployment = Some(continue_inputs(raw, &mut found));
            (None, None, ImageInputs::default(), None)
        } else if mode == ChangeSetMode::ExecuteOnly {
            let execute = execute_only_inputs(raw, &mut found);
            (None, Some(execute), ImageInputs::default(), None)
        } else {
            let (stack, image, service) = deploy_parts(raw, context, mode, &mut found);
            (stack, None, image, service)
        };
        let region = found.take(region(raw));
        let retry = found.take(retry_policy(raw));
        let http_proxy = raw.values.get("http-proxy").cloned();
        let event_policy = found.take(event_policy(raw));
        let cancel_on_abort = found.take(boolean(raw, "cancel-on-abort"));
        let fail_fast = found.take(fail_fast(raw));
        let verify = found.take(boolean(raw, "verify"));
        let verify_only = found.take(boolean(raw, "verify-only"));
        if verify_only && !verify {
            found.errors.push(InputError::new(
                "verify-only",
                "true",
                "contradicts `verify: false`",
                "keep verify (the default) with verify-only, or remove verify-only",
            ));
        }
        // `stacks` runs the system path (job/system.rs) and never reaches
        // here; `max-parallel` alone would do nothing.
        if raw.is_changed("max-parallel") {
            found.errors.push(InputError::new(
                "max-parallel",
                raw.values.get("max-parallel").map_or("", String::as_str),
                "only applies to a system of stacks",
                "give `stacks` (a manifest) with it, or remove it",
            ));
        }
        let lint_workflows = found.take(boolean(raw, "lint-workflows"));
        let github = found.take(github_inputs(raw));
        if found.errors.is_empty() {
            Ok(Self {
                stack,
                execute,
                continue_deployment,
                verify,
                verify_only,
                image,
                service,
                region,
                retry,
                http_proxy,
                event_policy,
                cancel_on_abort,
                fail_fast,
                lint_workflows,
                github,
                notices: [raw.legacy_boolean_notices(), raw.migration_notices()].concat(),
            })
        } else {
            Err(InputErrors(found.errors))
        }
    }
}

/// The stack, image and rollout inputs of a deploy that creates a change
/// set (every mode but execute-only).
fn deploy_parts(
    raw: &RawInputs,
    context: &InputContext,
    mode: ChangeSetMode,
    found: &mut ErrorCollector,
) -> (Option<StackInputs>, ImageInputs, Option<ServiceInputs>) {
    if let Some(id) = raw.values.get("execute-change-set-id") {
        found.errors.push(InputError::new(
            "execute-change-set-id",
            id,
            "is only used with `mode: execute-only`",
            "set `mode: execute-only` to execute that change set, or remove `execute-change-set-id`",
        ));
    }
    let wants_stack = ["name", "stack-name", "template"]
        .iter()
        .any(|name| raw.is_given(name));
    let wants_service = ROLLOUT_INPUTS.iter().any(|name| raw.is_given(name));
    if !wants_service {
        for name in ROLLOUT_ONLY_INPUTS
            .iter()
            .filter(|name| raw.is_changed(name))
        {
            found.errors.push(InputError::new(
                name,
                raw.values.get(*name).map_or("", String::as_str),
                "only applies to a task-definition rollout, and this step has none",
                "add the rollout (task-definition, or task-definition-arn / -family, and service), or remove the input",
            ));
        }
    }
    let stack = if wants_stack || !wants_service {
        Some(StackInputs::from_raw(raw, context, mode, found))
    } else {
        None
    };
    let image = found.take(image_inputs(raw));
    let service = if wants_service {
        Some(found.take(service_inputs(raw, context)))
    } else {
        None
    };
    if let Some(service) = &service
        && image.is_requested()
        && service.container_names.is_empty()
        && stack.is_none()
    {
        found.errors.push(InputError::new(
            "container-name",
            "",
            "is required when `image` is given with a task definition",
            "name the container of the task definition that runs the image",
        ));
    }
    (stack, image, service)
}

impl StackInputs {
    fn from_raw(
        raw: &RawInputs,
        context: &InputContext,
        mode: ChangeSetMode,
        found: &mut ErrorCollector,
    ) -> Self {
        Self {
            stack_name: found.take(stack_name(raw)),
            template: found.take(template_location(raw, &context.workspace)),
            capabilities: found.take(capabilities(raw)),
            parameter_overrides: found.take(parameter_overrides(raw, &context.workspace)),
            execute_change_set: !found.take(boolean(raw, "no-execute-changeset"))
                && mode != ChangeSetMode::CreateOnly,
            delete_failed_change_set: !found.take(boolean(raw, "no-delete-failed-changeset")),
            fail_on_empty_change_set: found.take(fail_on_empty_change_set(raw)),
            disable_rollback: found.take(boolean(raw, "disable-rollback")),
            timeout_in_minutes: found.take(timeout_in_minutes(raw)),
            notification_arns: found.take(notification_arns(raw)),
            role_arn: found.take(role_arn(
                raw,
                "role-arn",
                "arn:aws:iam::123456789012:role/cfn-deploy (the role CloudFormation assumes)",
            )),
            tags: found.take(tags(raw)),
            termination_protection: found.take(boolean(raw, "termination-protection")),
            change_set_name: found.take(change_set_name(raw, &context.default_change_set_name)),
            wait_timeout: found.take(wait_timeout(raw)),
            parameters_from_stacks: found.take(parameters_from_stacks(raw)),
            template_upload: found.take(template_upload(raw)),
            deployment_mode: found.take(deployment_mode(raw)),
            include_nested_stacks: found.take(
                raw.get("include-nested-stacks-change-set")
                    .map(|value| parse_boolean("include-nested-stacks-change-set", value))
                    .transpose(),
            ),
            workspace: context.workspace.clone(),
        }
    }
}

/// What `ecs-stack-deploy package` packages, and where to.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageInputs {
    /// The template file (a URL names nothing local to package).
    pub template: PathBuf,
    pub upload: TemplateUpload,
    pub region: Option<String>,
    pub http_proxy: Option<String>,
}

/// `package`'s inputs: `template` (a file), `s3-bucket` (required),
/// `s3-prefix`, `aws-region`, `http-proxy`, with the deploy's own checks.
pub fn package_inputs(raw: &RawInputs, workspace: &Path) -> Result<PackageInputs, InputErrors> {
    let mut found = ErrorCollector::default();
    found.errors.extend(raw.undeclared_errors());
    let template = match found.take(template_location(raw, workspace)) {
        TemplateLocation::File(path) => Some(path),
        TemplateLocation::Url(url) => {
            found.errors.push(InputError::new(
                "template",
                &url,
                "is a URL: there is nothing local to package",
                "give the template's path in the repository",
            ));
            None
        }
    };
    let upload = found.take(template_upload(raw));
    if upload.is_none() && !raw.values.contains_key("s3-bucket") {
        found.errors.push(InputError::new(
            "s3-bucket",
            "",
            "is required",
            "name the bucket the packaged files go to",
        ));
    }
    let region = found.take(region(raw));
    match (template, upload) {
        (Some(template), Some(upload)) if found.errors.is_empty() => Ok(PackageInputs {
            template,
            upload,
            region,
            http_proxy: raw.values.get("http-proxy").cloned(),
        }),
        _ => Err(InputErrors(found.errors)),
    }
}

/// `fail-on-empty-changeset`, or its negation `no-fail-on-empty-changeset`
/// as aws-cloudformation-github-deploy v1 spells it; both given and saying
/// opposite things is a mistake.
fn fail_on_empty_change_set(raw: &RawInputs) -> Result<bool, InputError> {
    let fail = boolean(raw, "fail-on-empty-changeset")?;
    let Some(value) = raw.values.get("no-fail-on-empty-changeset") else {
        return Ok(fail);
    };
    let from_negation = !parse_boolean("no-fail-on-empty-changeset", value)?;
    if raw.is_changed("fail-on-empty-changeset") && from_negation != fail {
        return Err(InputError::new(
            "no-fail-on-empty-changeset",
            value,
            "contradicts `fail-on-empty-changeset`",
            "keep only fail-on-empty-changeset",
        ));
    }
    Ok(from_negation)
}

/// `deployment-mode`: CloudFormation's one mode so far, `REVERT_DRIFT`.
fn deployment_mode(raw: &RawInputs) -> Result<Option<String>, InputError> {
    match raw.values.get("deployment-mode") {
        None => Ok(None),
        Some(mode) if mode.eq_ignore_ascii_case("REVERT_DRIFT") => Ok(Some("REVERT_DRIFT".into())),
        Some(mode) => Err(InputError::new(
            "deployment-mode",
            mode,
            "is not a deployment mode CloudFormation knows",
            "use REVERT_DRIFT (a drift-aware change set), or leave it empty",
        )),
    }
}

/// `s3-bucket`, `s3-prefix`, `s3-upload`.
fn template_upload(raw: &RawInputs) -> Result<Option<TemplateUpload>, InputError> {
    let always = match raw.get("s3-upload").unwrap_or("auto") {
        "auto" => false,
        "always" => true,
        other => {
            return Err(InputError::new(
                "s3-upload",
                other,
                "is not auto or always",
                "use auto (upload only a template over CloudFormation's inline limit) or always",
            ));
        }
    };
    let Some(bucket) = raw.values.get("s3-bucket") else {
        if let Some(prefix) = raw.values.get("s3-prefix") {
            return Err(InputError::new(
                "s3-prefix",
                prefix,
                "needs `s3-bucket`",
                "set `s3-bucket` to the bucket the template goes to",
            ));
        }
        if always {
            return Err(InputError::new(
                "s3-upload",
                "always",
                "needs `s3-bucket`",
                "set `s3-bucket` to the bucket the template goes to",
            ));
        }
        return Ok(None);
    };
    // S3's bucket naming rules (general purpose buckets).
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(InputError::new(
            "s3-bucket",
            bucket,
            "is not an S3 bucket name",
            "give the bucket's name (3 to 63 lower-case letters, digits, `-` and `.`), not its URL or ARN",
        ));
    }
    Ok(Some(TemplateUpload {
        bucket: bucket.clone(),
        prefix: raw
            .values
            .get("s3-prefix")
            .map(|p| p.trim_matches('/').to_string())
            .unwrap_or_default(),
        always,
    }))
}

/// `mode`, with the names aws-cloudformation-github-deploy gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChangeSetMode {
    #[default]
    CreateAndExecute,
    /// The same as `no-execute-changeset: true`.
    CreateOnly,
    ExecuteOnly,
}

/// `mode`. With `no-execute-changeset: true` beside it, the change set is
/// kept too (they mean the same); the runner fills in both defaults, so
/// neither can be told to contradict the other unless both differ from
/// their defaults, which `create-only` + `true` agrees with and
/// `execute-only` refuses anyway.
fn change_set_mode(raw: &RawInputs) -> Result<ChangeSetMode, InputError> {
    let mode = match raw.get("mode").unwrap_or("create-and-execute") {
        "create-and-execute" => ChangeSetMode::CreateAndExecute,
        "create-only" => ChangeSetMode::CreateOnly,
        "execute-only" => ChangeSetMode::ExecuteOnly,
        other => {
            return Err(InputError::new(
                "mode",
                other,
                "is not a mode",
                "use create-and-execute (the default), create-only (the change set is kept for review), execute-only (with execute-change-set-id) or destroy (with `stacks`)",
            ));
        }
    };
    Ok(mode)
}

/// The inputs of `mode: execute-only`: the stack, the change set, how long
/// to wait. Inputs that shape a new change set, or start a rollout, are
/// refused rather than ignored.
/// `wait-max-delay-seconds`: the longest pause between two looks.
fn max_poll_delay(raw: &RawInputs) -> Result<Option<Duration>, InputError> {
    match raw.values.get("wait-max-delay-seconds") {
        None => Ok(None),
        Some(value) => match value.parse::<u64>() {
            Ok(seconds) if (1..=300).contains(&seconds) => Ok(Some(Duration::from_secs(seconds))),
            _ => Err(InputError::new(
                "wait-max-delay-seconds",
                value,
                "is not a whole number of seconds from 1 to 300",
                "give the longest pause between two looks at the rollout, e.g. 15",
            )),
        },
    }
}

/// `wait-for-minutes`: how long a rollout is waited for. Fractions are
/// accepted (0.5 = 30 s) beyond what the aws-actions take.
fn wait_for_minutes(raw: &RawInputs) -> Result<Duration, InputError> {
    let minutes = raw.get("wait-for-minutes").unwrap_or("30");
    match minutes.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 360.0 => Ok(Duration::from_secs_f64(m * 60.0)),
        _ => Err(InputError::new(
            "wait-for-minutes",
            minutes,
            "is not a number of minutes above 0 and at most 360",
            "give how many minutes to wait for the service, e.g. 30",
        )),
    }
}

/// The inputs a `continue-deployment` step reads; any other input given
/// would do nothing there and is refused.
const CONTINUE_INPUTS: &[&str] = &[
    "continue-deployment",
    "service",
    "cluster",
    "wait-until",
    "wait-for-minutes",
    "wait-max-delay-seconds",
    "aws-region",
    "max-retries",
    "retry-mode",
    "http-proxy",
    "github-token",
    "cancel-on-abort",
    "on-upstream-failure",
    "allow-fork-runs",
];

/// `continue-deployment`: the service whose paused deployment is answered.
fn continue_inputs(raw: &RawInputs, found: &mut ErrorCollector) -> ContinueOptions {
    for spec in DEPLOY_INPUTS {
        if !CONTINUE_INPUTS.contains(&spec.name) && raw.is_changed(spec.name) {
            found.errors.push(InputError::new(
                spec.name,
                raw.values.get(spec.name).map_or("", String::as_str),
                "is not used with `continue-deployment`, which only answers a paused deployment's hook",
                format!("remove `{}` from this step", spec.name),
            ));
        }
    }
    let text = raw.get("continue-deployment").unwrap_or_default();
    let rollback = match text {
        "true" | "continue" => false,
        "rollback" => true,
        _ => {
            found.errors.push(InputError::new(
                "continue-deployment",
                text,
                "is neither `true` nor `rollback`",
                "use `true` (let the deployment go on) or `rollback` (roll it back)",
            ));
            false
        }
    };
    let service = match raw.values.get("service") {
        Some(service) => service.clone(),
        None => {
            found.errors.push(InputError::new(
                "service",
                "",
                "is required with `continue-deployment`",
                "name the service whose deployment is paused (and its cluster)",
            ));
            String::new()
        }
    };
    let wait_timeout = found.take(wait_for_minutes(raw));
    let max_poll_delay = found.take(max_poll_delay(raw));
    ContinueOptions {
        cluster: raw.get("cluster").unwrap_or("default").to_string(),
        service,
        rollback,
        wait_until: found.take(service_wait_until(raw)),
        wait_timeout,
        max_poll_delay,
    }
}

fn execute_only_inputs(raw: &RawInputs, found: &mut ErrorCollector) -> ExecuteInputs {
    for name in CHANGE_SET_CREATION_INPUTS.iter().chain(ROLLOUT_INPUTS) {
        if let Some(value) = raw.values.get(*name).filter(|_| raw.is_changed(name)) {
            found.errors.push(InputError::new(
                name,
                value,
                "is not used with `mode: execute-only`: the change set already holds the template, parameters and settings",
                format!("remove `{name}` from this step, or create the change set with it (`mode: create-only`)"),
            ));
        }
    }
    let stack_name = found.take(stack_name(raw));
    let change_set = match raw.values.get("execute-change-set-id") {
        Some(id) => id.clone(),
        None => {
            found.errors.push(InputError::new(
                "execute-change-set-id",
                "",
                "is required with `mode: execute-only`",
                "give the change-set-id output of the create-only step (its ARN), or the change set's name",
            ));
            String::new()
        }
    };
    ExecuteInputs {
        stack_name,
        change_set,
        disable_rollback: found.take(boolean(raw, "disable-rollback")),
        wait_timeout: found.take(wait_timeout(raw)),
    }
}

/// The render inputs that set something on the named containers.
const CONTAINER_SETTING_INPUTS: &[&str] = &[
    "secrets",
    "env-files",
    "command",
    "docker-labels",
    "log-configuration-log-driver",
    "log-configuration-options",
];

/// The log drivers ECS accepts in `logConfiguration.logDriver`.
const LOG_DRIVERS: &[&str] = &[
    "awslogs",
    "awsfirelens",
    "fluentd",
    "gelf",
    "journald",
    "json-file",
    "logentries",
    "splunk",
    "syslog",
];

/// Reads the render inputs that set something on a container.
fn container_settings(raw: &RawInputs) -> Result<ContainerSettings, InputError> {
    let given = |name: &str| raw.values.get(name).map(String::as_str);
    let secrets = key_value_lines(
        raw,
        "secrets",
        "NAME=valueFrom (an SSM parameter or Secrets Manager ARN)",
    )?;
    let mut environment_files = Vec::new();
    for arn in given("env-files").map(split_list).unwrap_or_default() {
        // ECS reads environment files from S3 objects only, named *.env.
        if !(arn.starts_with("arn:aws") && arn.contains(":s3:::") && arn.ends_with(".env")) {
            return Err(InputError::new(
                "env-files",
                &arn,
                "is not the ARN of an S3 object with a .env extension",
                "give one S3 object ARN per line, e.g. arn:aws:s3:::my-bucket/app/prod.env",
            ));
        }
        environment_files.push(arn);
    }
    let command = match given("command") {
        None => None,
        Some(text) => Some(shlex::split(text).filter(|words| !words.is_empty()).ok_or_else(|| {
            InputError::new(
                "command",
                text,
                "cannot be split into words (an unclosed quote?)",
                "write the command as in a shell, e.g. `npm run migrate -- --env \"prod eu\"`",
            )
        })?),
    };
    let log_driver = match given("log-configuration-log-driver") {
        None => None,
        Some(driver) if LOG_DRIVERS.contains(&driver) => Some(driver.to_string()),
        Some(driver) => {
            return Err(InputError::new(
                "log-configuration-log-driver",
                driver,
                "is not a log driver ECS accepts",
                format!("use one of {}", LOG_DRIVERS.join(", ")),
            ));
        }
    };
    Ok(ContainerSettings {
        secrets,
        environment_files,
        command,
        docker_labels: key_value_lines(raw, "docker-labels", "key=value")?,
        log_driver,
        log_options: key_value_lines(
            raw,
            "log-configuration-options",
            "key=value (e.g. awslogs-group=/ecs/web)",
        )?,
    })
}

/// `key=value` lines (the value after the first `=`, so it may hold `=`),
/// blank lines dropped; a line without `=` or with an empty key is refused.
fn key_value_lines(
    raw: &RawInputs,
    name: &str,
    form: &str,
) -> Result<Vec<(String, String)>, InputError> {
    let Some(text) = raw.values.get(name) else {
        return Ok(Vec::new());
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                let (key, value) = (key.trim().to_string(), value.trim().to_string());
                // The last line of a key wins, as in the anchor action.
                pairs.retain(|(seen, _)| *seen != key);
                pairs.push((key, value));
            }
            _ => {
                return Err(InputError::new(
                    name,
                    line,
                    "is not a key=value line",
                    format!("write one {form} per line"),
                ));
            }
        }
    }
    Ok(pairs)
}

/// The UpdateService settings and the rollout's poll bound.
fn service_settings(raw: &RawInputs) -> Result<ServiceSettings, InputError> {
    let enable_ecs_managed_tags = match raw.values.get("enable-ecs-managed-tags") {
        None => None,
        Some(value) => Some(parse_boolean("enable-ecs-managed-tags", value)?),
    };
    let propagate_tags = match raw.values.get("propagate-tags") {
        None => None,
        Some(value) => match value.to_uppercase().as_str() {
            tags @ ("TASK_DEFINITION" | "SERVICE" | "NONE") => Some(tags.to_string()),
            _ => {
                return Err(InputError::new(
                    "propagate-tags",
                    value,
                    "is not a place ECS propagates tags from",
                    "use TASK_DEFINITION, SERVICE or NONE",
                ));
            }
        },
    };
    let max_poll_delay = max_poll_delay(raw)?;
    Ok(ServiceSettings {
        enable_ecs_managed_tags,
        propagate_tags,
        max_poll_delay,
        managed_ebs_volume: service_managed_ebs_volume(raw)?,
    })
}

/// One ECS shape from an input holding JSON, refusing what the shape does
/// not know; `example` shows the form in the fix.
fn ecs_json_input<T, F>(
    name: &str,
    text: &str,
    value: &serde_json::Value,
    schema: &aws_smithy_schema::Schema<'static>,
    deserialize: F,
    example: &str,
) -> Result<T, InputError>
where
    T: aws_smithy_schema::serde::SerializableStruct,
    F: FnOnce(
        &mut dyn aws_smithy_schema::serde::ShapeDeserializer,
    ) -> Result<T, aws_smithy_schema::serde::SerdeError>,
{
    decode_strict(value, schema, deserialize).map_err(|problem| {
        InputError::new(
            name,
            text,
            problem,
            format!("write it as in the ECS API, e.g. {example}"),
        )
    })
}

/// The JSON text of `name`, parsed; `None` when not given.
fn json_input(
    raw: &RawInputs,
    name: &str,
    example: &str,
) -> Result<Option<(String, serde_json::Value)>, InputError> {
    let Some(text) = raw.values.get(name) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(|value| Some((text.clone(), value)))
        .map_err(|error| {
            InputError::new(
                name,
                text,
                format!("is not valid JSON ({error})"),
                format!("write JSON, e.g. {example}"),
            )
        })
}

/// A JSON array of one ECS shape (`run-task-container-overrides`,
/// `run-task-tags`, `run-task-capacity-provider-strategy`).
fn ecs_json_list<T, F>(
    raw: &RawInputs,
    name: &str,
    schema: &aws_smithy_schema::Schema<'static>,
    deserialize: F,
    example: &str,
) -> Result<Vec<T>, InputError>
where
    T: aws_smithy_schema::serde::SerializableStruct,
    F: Fn(
        &mut dyn aws_smithy_schema::serde::ShapeDeserializer,
    ) -> Result<T, aws_smithy_schema::serde::SerdeError>,
{
    let Some((text, value)) = json_input(raw, name, example)? else {
        return Ok(Vec::new());
    };
    let serde_json::Value::Array(items) = &value else {
        return Err(InputError::new(
            name,
            &text,
            "is not a JSON array",
            format!("write a JSON array, e.g. {example}"),
        ));
    };
    items
        .iter()
        .map(|item| ecs_json_input(name, &text, item, schema, &deserialize, example))
        .collect()
}

const EBS_VOLUME_EXAMPLE: &str = r#"{"roleArn": "arn:aws:iam::123456789012:role/ecs-ebs", "sizeInGiB": 20, "volumeType": "gp3"}"#;

/// `<prefix>-managed-ebs-volume-name` + `<prefix>-managed-ebs-volume`: both
/// or neither (amazon-ecs-deploy-task-definition warns and drops a name
/// without a configuration; a volume silently not configured is refused
/// here instead), with the `roleArn` ECS requires.
fn managed_ebs_volume(
    raw: &RawInputs,
    prefix: &str,
) -> Result<Option<(String, serde_json::Value)>, InputError> {
    let name_input = format!("{prefix}-managed-ebs-volume-name");
    let volume_input = format!("{prefix}-managed-ebs-volume");
    let name = raw.values.get(name_input.as_str());
    let volume = json_input(raw, &volume_input, EBS_VOLUME_EXAMPLE)?;
    match (name, volume) {
        (None, None) => Ok(None),
        (Some(name), Some((text, volume))) => {
            if volume
                .get("roleArn")
                .and_then(serde_json::Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(InputError::new(
                    &volume_input,
                    &text,
                    "has no `roleArn` (the role ECS uses to manage the volume)",
                    format!("add it, e.g. {EBS_VOLUME_EXAMPLE}"),
                ));
            }
            Ok(Some((name.clone(), volume)))
        }
        (Some(name), None) => Err(InputError::new(
            &name_input,
            name,
            format!("is given without `{volume_input}`"),
            format!(
                "give the volume's configuration in `{volume_input}`, e.g. {EBS_VOLUME_EXAMPLE}"
            ),
        )),
        (None, Some((text, _))) => Err(InputError::new(
            &volume_input,
            &text,
            format!("is given without `{name_input}`"),
            format!("name the task definition volume (configuredAtLaunch: true) in `{name_input}`"),
        )),
    }
}

fn service_managed_ebs_volume(
    raw: &RawInputs,
) -> Result<Option<ServiceVolumeConfiguration>, InputError> {
    let Some((name, volume)) = managed_ebs_volume(raw, "service")? else {
        return Ok(None);
    };
    let text = raw.get("service-managed-ebs-volume").unwrap_or_default();
    let configuration = serde_json::json!({"name": name, "managedEBSVolume": volume});
    ecs_json_input(
        "service-managed-ebs-volume",
        text,
        &configuration,
        ServiceVolumeConfiguration::SCHEMA,
        |d| ServiceVolumeConfiguration::deserialize(d),
        EBS_VOLUME_EXAMPLE,
    )
    .map(Some)
}

/// `run-task` and its inputs; the `run-task-*` inputs without `run-task:
/// true` are refused (they would do nothing).
fn one_off_task(
    raw: &RawInputs,
    run_identity: &str,
) -> Result<Option<OneOffTaskOptions>, InputError> {
    if !boolean(raw, "run-task")? {
        if let Some(name) = RUN_TASK_INPUTS.iter().find(|name| raw.is_changed(name)) {
            return Err(InputError::new(
                name,
                raw.values.get(*name).map_or("", String::as_str),
                "only applies to a one-off task, and `run-task` is not true",
                "set `run-task: true` to run the task before the service update, or remove the input",
            ));
        }
        return Ok(None);
    }
    let container_overrides = ecs_json_list(
        raw,
        "run-task-container-overrides",
        ContainerOverride::SCHEMA,
        |d| ContainerOverride::deserialize(d),
        r#"[{"name": "app", "command": ["bin/migrate"]}]"#,
    )?;
    if let Some(unnamed) = container_overrides
        .iter()
        .position(|o| o.name().is_none_or(str::is_empty))
    {
        return Err(InputError::new(
            "run-task-container-overrides",
            raw.get("run-task-container-overrides").unwrap_or_default(),
            format!("has an override without a container `name` (item {unnamed})"),
            "name the container each override applies to",
        ));
    }
    let tags = ecs_json_list(
        raw,
        "run-task-tags",
        EcsTag::SCHEMA,
        |d| EcsTag::deserialize(d),
        r#"[{"key": "purpose", "value": "migration"}]"#,
    )?;
    let capacity_provider_strategy = ecs_json_list(
        raw,
        "run-task-capacity-provider-strategy",
        CapacityProviderStrategyItem::SCHEMA,
        |d| CapacityProviderStrategyItem::deserialize(d),
        r#"[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]"#,
    )?;
    let launch_type = match raw.values.get("run-task-launch-type") {
        None => None,
        Some(value) => match value.to_uppercase().as_str() {
            known @ ("FARGATE" | "EC2" | "EXTERNAL" | "MANAGED_INSTANCES") => {
                Some(LaunchType::from(known))
            }
            _ => {
                return Err(InputError::new(
                    "run-task-launch-type",
                    value,
                    "is not an ECS launch type",
                    "use FARGATE, EC2, EXTERNAL or MANAGED_INSTANCES, or leave it empty to run like the service",
                ));
            }
        },
    };
    if launch_type.is_some() && !capacity_provider_strategy.is_empty() {
        return Err(InputError::new(
            "run-task-launch-type",
            raw.get("run-task-launch-type").unwrap_or_default(),
            "is given with `run-task-capacity-provider-strategy` (ECS takes one or the other)",
            "remove one of the two",
        ));
    }
    let assign_public_ip = match raw.values.get("run-task-assign-public-IP") {
        None => None,
        Some(value) => match value.to_uppercase().as_str() {
            known @ ("ENABLED" | "DISABLED") => Some(AssignPublicIp::from(known)),
            _ => {
                return Err(InputError::new(
                    "run-task-assign-public-IP",
                    value,
                    "is neither ENABLED nor DISABLED",
                    "use ENABLED (a public subnet without a NAT) or DISABLED",
                ));
            }
        },
    };
    let started_by = raw
        .get("run-task-started-by")
        .unwrap_or("GitHub-Actions")
        .to_string();
    if started_by.len() > 128 {
        return Err(InputError::new(
            "run-task-started-by",
            &started_by,
            "is longer than the 128 characters RunTask takes",
            "shorten it",
        ));
    }
    let managed_ebs_volume = match managed_ebs_volume(raw, "run-task")? {
        None => None,
        Some((name, volume)) => Some(ecs_json_input(
            "run-task-managed-ebs-volume",
            raw.get("run-task-managed-ebs-volume").unwrap_or_default(),
            &serde_json::json!({"name": name, "managedEBSVolume": volume}),
            TaskVolumeConfiguration::SCHEMA,
            |d| TaskVolumeConfiguration::deserialize(d),
            EBS_VOLUME_EXAMPLE,
        )?),
    };
    let enable_ecs_managed_tags = match raw.values.get("enable-ecs-managed-tags") {
        None => None,
        Some(value) => Some(parse_boolean("enable-ecs-managed-tags", value)?),
    };
    Ok(Some(OneOffTaskOptions {
        container_overrides,
        subnets: split_list(raw.get("run-task-subnets").unwrap_or_default()),
        security_groups: split_list(raw.get("run-task-security-groups").unwrap_or_default()),
        assign_public_ip,
        capacity_provider_strategy,
        launch_type,
        started_by,
        tags,
        managed_ebs_volume,
        enable_ecs_managed_tags,
        wait_for_stop: boolean(raw, "wait-for-task-stopped")?,
        run_identity: run_identity.to_string(),
    }))
}

/// CodeDeploy's limit on a deployment description.
const DESCRIPTION_LIMIT: usize = 512;

/// The `codedeploy-*` inputs and `wait-until`.
fn codedeploy_options(raw: &RawInputs) -> Result<CodeDeployOptions, InputError> {
    let mut hooks = Vec::new();
    for line in raw
        .get("codedeploy-hooks")
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let parsed = line
            .split_once(['=', ':'])
            .map(|(event, arn)| (event.trim(), arn.trim()));
        match parsed {
            Some((event, arn)) if HOOK_EVENTS.contains(&event) && arn.starts_with("arn:") => {
                hooks.push((event.to_string(), arn.to_string()));
            }
            Some((event, _)) if !HOOK_EVENTS.contains(&event) => {
                return Err(InputError::new(
                    "codedeploy-hooks",
                    line,
                    format!("names `{event}`, which is not a lifecycle hook of an ECS deployment"),
                    format!("use one of {}", HOOK_EVENTS.join(", ")),
                ));
            }
            _ => {
                return Err(InputError::new(
                    "codedeploy-hooks",
                    line,
                    "is not `Event: lambda-function-arn`",
                    "write one hook per line, e.g. `AfterAllowTestTraffic: arn:aws:lambda:us-east-1:123456789012:function:smoke-test`",
                ));
            }
        }
    }
    if !hooks.is_empty() && raw.is_given("codedeploy-appspec") {
        return Err(InputError::new(
            "codedeploy-hooks",
            raw.get("codedeploy-hooks").unwrap_or_default(),
            "is given with `codedeploy-appspec`, whose own Hooks are sent as written",
            "put the hooks in the appspec file, or drop the file to have the appspec generated with these hooks",
        ));
    }
    let description = raw
        .values
        .get("codedeploy-deployment-description")
        .map(|text| {
            // As amazon-ecs-deploy-task-definition does: CodeDeploy refuses
            // longer ones.
            if text.chars().count() > DESCRIPTION_LIMIT {
                let mut cut: String = text.chars().take(DESCRIPTION_LIMIT - 1).collect();
                cut.push('…');
                cut
            } else {
                text.clone()
            }
        });
    let wait_until = match service_wait_until(raw)? {
        ServiceWaitUntil::Ready => WaitUntil::Ready,
        _ => WaitUntil::Complete,
    };
    Ok(CodeDeployOptions {
        application: raw.values.get("codedeploy-application").cloned(),
        deployment_group: raw.values.get("codedeploy-deployment-group").cloned(),
        deployment_config: raw.values.get("codedeploy-deployment-config").cloned(),
        description,
        appspec: None,
        hooks,
        wait_until,
    })
}

/// `wait-until`, for ECS's deployment strategies and CodeDeploy.
fn service_wait_until(raw: &RawInputs) -> Result<ServiceWaitUntil, InputError> {
    let text = raw.get("wait-until").unwrap_or("complete");
    ServiceWaitUntil::parse(text).ok_or_else(|| {
        InputError::new(
            "wait-until",
            text,
            "is not a point a rollout can be waited for",
            format!(
                "use `complete` (all done; `stable` is the same), `deployed` (production traffic moved, bake time not waited), `ready` (the test listener serves the new revision), `paused` (a lifecycle hook waits for an action) or a lifecycle stage: {}",
                STAGES.join(", ")
            ),
        )
    })
}

/// The strategy inputs of a direct rollout.
fn strategy_settings(raw: &RawInputs) -> Result<StrategySettings, InputError> {
    let strategy = match raw.values.get("deployment-strategy") {
        None => None,
        Some(value) => match value.to_uppercase().as_str() {
            known @ ("ROLLING" | "BLUE_GREEN" | "LINEAR" | "CANARY") => Some(known.to_string()),
            _ => {
                return Err(InputError::new(
                    "deployment-strategy",
                    value,
                    "is not an ECS deployment strategy",
                    "use ROLLING, BLUE_GREEN, LINEAR or CANARY, or leave it empty to keep the service's",
                ));
            }
        },
    };
    let minutes = |name: &str| -> Result<Option<i32>, InputError> {
        match raw.values.get(name) {
            None => Ok(None),
            Some(text) => match text.parse::<i32>() {
                Ok(m) if (0..=1440).contains(&m) => Ok(Some(m)),
                _ => Err(InputError::new(
                    name,
                    text,
                    "is not a whole number of minutes from 0 to 1440",
                    "give minutes, e.g. 5",
                )),
            },
        }
    };
    let percent = |name: &str| -> Result<Option<f64>, InputError> {
        match raw.values.get(name) {
            None => Ok(None),
            Some(text) => match text.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Some(p)),
                _ => Err(InputError::new(
                    name,
                    text,
                    "is not a percentage above 0 and at most 100",
                    "give a percentage of production traffic, e.g. 10",
                )),
            },
        }
    };
    Ok(StrategySettings {
        strategy,
        bake_time_minutes: minutes("bake-time-minutes")?,
        canary_percent: percent("canary-percent")?,
        canary_bake_minutes: minutes("canary-bake-minutes")?,
        linear_step_percent: percent("linear-step-percent")?,
        linear_step_bake_minutes: minutes("linear-step-bake-minutes")?,
    })
}

/// `failure-threshold` and `on-rollout-failure`.
fn fail_fast(raw: &RawInputs) -> Result<FailFast, InputError> {
    let text = raw.get("failure-threshold").unwrap_or("3");
    let threshold = match text.parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => n,
        _ => {
            return Err(InputError::new(
                "failure-threshold",
                text,
                "is not a whole number from 1 to 100",
                "give how many tasks of the new deployment must stop for the same reason before the rollout is judged doomed, e.g. 3",
            ));
        }
    };
    let on_failure = match raw.get("on-rollout-failure").unwrap_or("rollback") {
        "rollback" => OnRolloutFailure::Rollback,
        "stop" => OnRolloutFailure::Stop,
        "wait" => OnRolloutFailure::Wait,
        other => {
            return Err(InputError::new(
                "on-rollout-failure",
                other,
                "is not rollback, stop or wait",
                "use `rollback` (put the previous revision back, or cancel the stack update), `stop` (fail the step and leave AWS to it) or `wait` (wait for ECS or the timeout to decide)",
            ));
        }
    };
    Ok(FailFast {
        threshold,
        on_failure,
    })
}

/// The inputs of what the job does through the GitHub API, checked.
pub fn github_inputs(raw: &RawInputs) -> Result<GithubInputs, InputError> {
    let token = raw.values.get("github-token").cloned();
    let dispatch_workflows = split_list(raw.get("dispatch-workflows").unwrap_or_default());
    let environment = raw.values.get("environment").cloned();
    let needs_token = if !dispatch_workflows.is_empty() {
        Some("dispatch-workflows")
    } else if environment.is_some() {
        Some("environment")
    } else {
        None
    };
    if let (Some(feature), None) = (needs_token, &token) {
        return Err(InputError::new(
            "github-token",
            "",
            format!("is required by `{feature}`"),
            "pass `github-token: ${{ github.token }}` (with the job permission the feature needs)",
        ));
    }
    if let (Some(value), None) = (raw.values.get("environment-url-output"), &environment) {
        return Err(InputError::new(
            "environment-url-output",
            value,
            "is given without `environment`, so no deployment would show the URL",
            "name the GitHub environment in environment, or leave it out",
        ));
    }
    if dispatch_workflows.is_empty() {
        // Given alone, they would be ignored: nothing is dispatched.
        for name in ["dispatch-inputs", "dispatch-ref"] {
            if let Some(value) = raw.values.get(name) {
                return Err(InputError::new(
                    name,
                    value,
                    "is given without `dispatch-workflows`, so nothing would receive it",
                    "name the workflows to trigger in dispatch-workflows, or leave it out",
                ));
            }
        }
    }
    let mut dispatch_inputs = BTreeMap::new();
    if let Some(text) = raw.values.get("dispatch-inputs") {
        let fix = "give a mapping of input names to values, in YAML (name: value) or JSON";
        let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| {
            InputError::new(
                "dispatch-inputs",
                text,
                format!("is not YAML or JSON: {e}"),
                fix,
            )
        })?;
        let serde_yaml_ng::Value::Mapping(map) = document else {
            return Err(InputError::new(
                "dispatch-inputs",
                text,
                "is not a mapping",
                fix,
            ));
        };
        for (key, value) in map {
            let text_of = |v: &serde_yaml_ng::Value| match v {
                serde_yaml_ng::Value::String(s) => Some(s.clone()),
                serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            match (text_of(&key), text_of(&value)) {
                (Some(key), Some(value)) => {
                    dispatch_inputs.insert(key, value);
                }
                _ => {
                    return Err(InputError::new(
                        "dispatch-inputs",
                        text,
                        "has a value that is not text",
                        fix,
                    ));
                }
            }
        }
    }
    Ok(GithubInputs {
        token,
        dispatch_workflows,
        dispatch_ref: raw.values.get("dispatch-ref").cloned(),
        dispatch_inputs,
        environment,
        environment_url_output: raw.values.get("environment-url-output").cloned(),
    })
}

fn event_policy(raw: &RawInputs) -> Result<EventPolicy, InputError> {
    let on_upstream_failure = match raw.get("on-upstream-failure").unwrap_or("fail") {
        "fail" => UpstreamFailure::Fail,
        "skip" => UpstreamFailure::Skip,
        other => {
            return Err(InputError::new(
                "on-upstream-failure",
                other,
                "is neither `fail` nor `skip`",
                "use `fail` to fail the step when the upstream run failed, or `skip` to succeed without deploying",
            ));
        }
    };
    Ok(EventPolicy {
        on_upstream_failure,
        allow_fork_runs: boolean(raw, "allow-fork-runs")?,
    })
}

/// `parameters-from-stacks`: stack names, or `Parameter=stack.OutputKey`.
fn parameters_from_stacks(raw: &RawInputs) -> Result<Vec<UpstreamOutputs>, InputError> {
    let Some(value) = raw.get("parameters-from-stacks") else {
        return Ok(Vec::new());
    };
    let bad = |item: &str| {
        InputError::new(
            "parameters-from-stacks",
            item,
            "is neither a stack name nor `Parameter=stack.OutputKey`",
            "list stack names (their outputs fill the parameters of the same name) or map one parameter as Parameter=stack.OutputKey",
        )
    };
    split_list(value)
        .into_iter()
        .map(|item| match item.split_once('=') {
            None if is_valid_cloudformation_name(&item, 128) => Ok(UpstreamOutputs::Stack(item)),
            None => Err(bad(&item)),
            Some((parameter, source)) => match source.split_once('.') {
                Some((stack, output))
                    if !parameter.is_empty()
                        && parameter.chars().all(|c| c.is_ascii_alphanumeric())
                        && is_valid_cloudformation_name(stack, 128)
                        && !output.is_empty() =>
                {
                    Ok(UpstreamOutputs::Mapped {
                        parameter: parameter.to_string(),
                        stack: stack.to_string(),
                        output: output.to_string(),
                    })
                }
                _ => Err(bad(&item)),
            },
        })
        .collect()
}

fn image_inputs(raw: &RawInputs) -> Result<ImageInputs, InputError> {
    let optional = |name: &str| raw.values.get(name).cloned();
    let image_parameter = optional("image-parameter");
    if let Some(parameter) = &image_parameter
        && !parameter.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(InputError::new(
            "image-parameter",
            parameter,
            "is not a CloudFormation parameter name",
            "give the name of the template parameter that receives the image (letters and digits), e.g. ImageUri",
        ));
    }
    Ok(ImageInputs {
        image: optional("image"),
        repository: optional("image-repository"),
        tag: optional("image-tag"),
        allow_mutable_tag: boolean(raw, "allow-mutable-tag")?,
        mutable_tags: split_list(raw.get("mutable-tags").unwrap_or_default()),
        pin_digest: boolean(raw, "pin-digest")?,
        image_parameter,
    })
}

fn service_inputs(raw: &RawInputs, context: &InputContext) -> Result<ServiceInputs, InputError> {
    let workspace = context.workspace.as_path();
    let file = raw.values.get("task-definition");
    let arn = raw.values.get("task-definition-arn");
    let family = raw.values.get("task-definition-family");
    let revision = raw.values.get("task-definition-revision");
    let task_definition = match (file, arn, family) {
        (Some(path), None, None) => TaskDefinitionSource::File(resolve_path(workspace, path)),
        (None, Some(arn), None) => TaskDefinitionSource::Registered(arn.clone()),
        (None, None, Some(family)) => match revision {
            Some(revision) if revision.parse::<u32>().is_ok_and(|r| r > 0) => {
                TaskDefinitionSource::Registered(format!("{family}:{revision}"))
            }
            Some(revision) => {
                return Err(InputError::new(
                    "task-definition-revision",
                    revision,
                    "is not a revision number",
                    "give a positive whole number, or leave it empty for the latest ACTIVE revision",
                ));
            }
            None => TaskDefinitionSource::Registered(family.clone()),
        },
        (None, None, None) => {
            return Err(InputError::new(
                "task-definition",
                "",
                "is required to update a service",
                "give the task definition as a file (task-definition), an ARN (task-definition-arn) or a family (task-definition-family)",
            ));
        }
        _ => {
            return Err(InputError::new(
                "task-definition",
                file.or(arn)
                    .or(family)
                    .map(String::as_str)
                    .unwrap_or_default(),
                "is given more than once",
                "use exactly one of task-definition, task-definition-arn and task-definition-family",
            ));
        }
    };
    let mut images = Vec::new();
    if let Some(lines) = raw.values.get("images") {
        for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some((container, image))
                    if !container.trim().is_empty() && !image.trim().is_empty() =>
                {
                    images.push((container.trim().to_string(), image.trim().to_string()));
                }
                _ => {
                    return Err(InputError::new(
                        "images",
                        line,
                        "is not `container=image`",
                        "write one `container-name=image-reference` per line",
                    ));
                }
            }
        }
    }
    let container_names = split_list(raw.values.get("container-name").map_or("", String::as_str));
    let container_settings = container_settings(raw)?;
    if container_names.is_empty()
        && let Some(name) = CONTAINER_SETTING_INPUTS
            .iter()
            .find(|name| raw.is_given(name))
    {
        return Err(InputError::new(
            name,
            "",
            "needs `container-name`",
            format!("name the container(s) that `{name}` applies to with `container-name`"),
        ));
    }
    let environment = match raw.values.get("environment-variables") {
        None => Vec::new(),
        Some(text) => {
            if container_names.is_empty() {
                return Err(InputError::new(
                    "environment-variables",
                    "",
                    "needs `container-name`",
                    "name the container whose environment changes with `container-name`",
                ));
            }
            parse_environment_lines(text)
                .map_err(|e| InputError::from(Refusal::described(e.setting(), text, &e)))?
        }
    };
    let desired_count = match raw.values.get("desired-count") {
        None => None,
        Some(value) => match value.parse::<i32>() {
            Ok(count) if count >= 0 => Some(count),
            _ => {
                return Err(InputError::new(
                    "desired-count",
                    value,
                    "is not a whole number of tasks",
                    "give 0 or more, or leave it empty to keep the service's count",
                ));
            }
        },
    };
    let wait_timeout = wait_for_minutes(raw)?;
    Ok(ServiceInputs {
        task_definition,
        container_names,
        container_settings,
        service_settings: service_settings(raw)?,
        task_role_arn: role_arn(
            raw,
            "task-role-arn",
            "arn:aws:iam::123456789012:role/web-task",
        )?,
        execution_role_arn: role_arn(
            raw,
            "execution-role-arn",
            "arn:aws:iam::123456789012:role/web-execution",
        )?,
        images,
        environment,
        keep_empty_keys: split_list(raw.get("keep-null-value-keys").unwrap_or_default()),
        one_off_task: one_off_task(raw, &context.run_identity)?,
        codedeploy: codedeploy_options(raw)?,
        codedeploy_appspec: raw
            .values
            .get("codedeploy-appspec")
            .map(|path| resolve_path(workspace, path)),
        codedeploy_inputs_given: CODEDEPLOY_INPUTS
            .iter()
            .copied()
            .filter(|setting| raw.is_changed(input_name(*setting)))
            .collect(),
        wait_until: if raw.is_changed("wait-until") {
            Some(service_wait_until(raw)?)
        } else {
            None
        },
        strategy: strategy_settings(raw)?,
        service: raw.values.get("service").cloned(),
        cluster: raw.get("cluster").unwrap_or("default").to_string(),
        desired_count,
        force_new_deployment: boolean(raw, "force-new-deployment")?,
        wait_for_service_stability: boolean(raw, "wait-for-service-stability")?,
        wait_timeout,
    })
}

/// Gathers errors while validation goes on, so every bad input is reported
/// in one run. A failed field gets a placeholder that is never used: the
/// value is only returned when no error was found.
#[derive(Default)]
struct ErrorCollector {
    errors: Vec<InputError>,
}

impl ErrorCollector {
    fn take<T: Default>(&mut self, result: Result<T, InputError>) -> T {
        result.unwrap_or_else(|error| {
            self.errors.push(error);
            T::default()
        })
    }
}

/// Parses a boolean with @actions/core's `getBooleanInput` rules
/// (`true|True|TRUE|false|False|FALSE`) plus `1`/`0`, which
/// aws-actions/aws-cloudformation-github-deploy documents for its booleans
/// (a migrated step keeps working; [`RawInputs::legacy_boolean_notices`]
/// suggests the usual spelling). Anything else is an error rather than a
/// silent `false`, because `yes` or `on` usually mean the user expected
/// `true`.
pub fn parse_boolean(input: &str, value: &str) -> Result<bool, InputError> {
    match value {
        "true" | "True" | "TRUE" | LEGACY_TRUE => Ok(true),
        "false" | "False" | "FALSE" | LEGACY_FALSE => Ok(false),
        _ => Err(InputError::new(
            input,
            value,
            "not a boolean",
            "use one of true, True, TRUE, false, False, FALSE (or 1, 0)",
        )),
    }
}

/// The most retries `max-retries` accepts: with the SDK's backoff capped at
/// 20 s, more would let one call hang for many minutes, which is what the
/// stack's own wait timeout is for.
const MAX_RETRIES_LIMIT: u32 = 20;

fn retry_policy(raw: &RawInputs) -> Result<RetryPolicy, InputError> {
    let mode = match raw.get("retry-mode") {
        None | Some("standard") => RetryMode::Standard,
        Some("adaptive") => RetryMode::Adaptive,
        Some(other) => {
            return Err(InputError::new(
                "retry-mode",
                other,
                "is not a retry mode",
                "give `standard` (back off and retry throttling, 5xx and connection errors) or `adaptive` (standard, plus slowing all calls down after throttling)",
            ));
        }
    };
    let max_retries = match raw.get("max-retries") {
        None => RetryPolicy::DEFAULT.max_retries,
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|retries| *retries <= MAX_RETRIES_LIMIT)
            .ok_or_else(|| {
                InputError::new(
                    "max-retries",
                    value,
                    "is not a retry count",
                    format!(
                        "give a whole number from 0 to {MAX_RETRIES_LIMIT}: the retries after the first attempt of each AWS call"
                    ),
                )
            })?,
    };
    Ok(RetryPolicy { mode, max_retries })
}

fn boolean(raw: &RawInputs, name: &str) -> Result<bool, InputError> {
    match raw.get(name) {
        Some(value) => parse_boolean(name, value),
        None => Ok(false),
    }
}

/// Splits a list input on newlines and commas, trimming and dropping empty
/// items (multi-line inputs as @actions/core's `getMultilineInput`, plus the
/// comma form aws-actions users already write).
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(['\n', ','])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// CloudFormation's rule for stack and change set names.
fn is_valid_cloudformation_name(name: &str, max_len: usize) -> bool {
    let mut chars = name.chars();
    name.len() <= max_len
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn stack_name(raw: &RawInputs) -> Result<String, InputError> {
    let name = match (raw.get("name"), raw.get("stack-name")) {
        (Some(a), Some(b)) if a != b => {
            return Err(InputError::new(
                "stack-name",
                b,
                format!("conflicts with `name` (`{a}`)"),
                "give the stack name once, as `name` (`stack-name` is an alias)",
            ));
        }
        (Some(name), _) | (None, Some(name)) => name,
        (None, None) => {
            return Err(InputError::new(
                "name",
                "",
                "is required",
                "set `name` to the CloudFormation stack name",
            ));
        }
    };
    let input = if raw.is_given("name") {
        "name"
    } else {
        "stack-name"
    };
    if !is_valid_cloudformation_name(name, 128) {
        return Err(InputError::new(
            input,
            name,
            "is not a valid stack name",
            "use 1-128 characters: letters, digits and hyphens, starting with a letter",
        ));
    }
    Ok(name.to_string())
}

/// Resolves `path` against the workspace unless it is absolute.
pub fn resolve_path(workspace: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join(path)
    }
}

fn template_location(raw: &RawInputs, workspace: &Path) -> Result<TemplateLocation, InputError> {
    let Some(value) = raw.get("template") else {
        return Err(InputError::new(
            "template",
            "",
            "is required",
            "set `template` to the template's path in the repository or its https:// URL in S3",
        ));
    };
    if value.starts_with("https://") {
        return Ok(TemplateLocation::Url(value.to_string()));
    }
    if value.contains("://") {
        return Err(InputError::new(
            "template",
            value,
            "is a URL CloudFormation cannot read",
            "use an https:// URL of the template in S3, or a path in the repository",
        ));
    }
    Ok(TemplateLocation::File(resolve_path(workspace, value)))
}

fn capabilities(raw: &RawInputs) -> Result<Vec<String>, InputError> {
    let value = raw.get("capabilities").unwrap_or_default();
    let items = split_list(value);
    if let Some(bad) = items.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
        return Err(InputError::new(
            "capabilities",
            value,
            format!("`{bad}` is not a CloudFormation capability"),
            format!("use a comma-separated list of {}", CAPABILITIES.join(", ")),
        ));
    }
    Ok(items)
}

fn parameter_overrides(
    raw: &RawInputs,
    workspace: &Path,
) -> Result<Option<OverridesInput>, InputError> {
    let Some(value) = raw.get("parameter-overrides") else {
        return Ok(None);
    };
    match override_source(value) {
        OverrideSource::File(path) => Ok(Some(OverridesInput::File(resolve_path(workspace, path)))),
        OverrideSource::Inline(text) => parse_inline_overrides(text)
            .map(|overrides| Some(OverridesInput::Inline(overrides)))
            .map_err(|error| {
                InputError::new(
                    "parameter-overrides",
                    value,
                    error.to_string(),
                    "write Key=Value pairs separated by commas, quoting values that contain commas (Subnets=\"a,b\"), or give a JSON/YAML file as file://path",
                )
            }),
    }
}

fn timeout_in_minutes(raw: &RawInputs) -> Result<Option<i32>, InputError> {
    let Some(value) = raw.get("timeout-in-minutes") else {
        return Ok(None);
    };
    match value.parse::<i32>() {
        Ok(minutes) if minutes > 0 => Ok(Some(minutes)),
        _ => Err(InputError::new(
            "timeout-in-minutes",
            value,
            "is not a positive whole number of minutes",
            "give the stack creation timeout in minutes, e.g. 30",
        )),
    }
}

/// SNS topic ARNs; CloudFormation accepts at most five.
fn notification_arns(raw: &RawInputs) -> Result<Vec<String>, InputError> {
    let Some(value) = raw.get("notification-arns") else {
        return Ok(Vec::new());
    };
    let arns = split_list(value);
    if let Some(bad) = arns.iter().find(|arn| !is_arn_of(arn, "sns")) {
        return Err(InputError::new(
            "notification-arns",
            value,
            format!("`{bad}` is not an SNS topic ARN"),
            "give SNS topic ARNs like arn:aws:sns:us-east-1:123456789012:topic, separated by commas",
        ));
    }
    if arns.len() > 5 {
        return Err(InputError::new(
            "notification-arns",
            value,
            format!("has {} ARNs, CloudFormation accepts at most 5", arns.len()),
            "give at most five SNS topic ARNs",
        ));
    }
    Ok(arns)
}

/// Whether `arn` looks like `arn:<partition>:<service>:...` with 6+ parts.
fn is_arn_of(arn: &str, service: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && !parts[5].is_empty()
}

/// An IAM role ARN input: `role-arn` (the role CloudFormation assumes),
/// `task-role-arn`, `execution-role-arn`; `example` is the fix's sample.
fn role_arn(raw: &RawInputs, name: &str, example: &str) -> Result<Option<String>, InputError> {
    let Some(value) = raw.values.get(name) else {
        return Ok(None);
    };
    if is_arn_of(value, "iam")
        && value
            .splitn(6, ':')
            .nth(5)
            .is_some_and(|r| r.starts_with("role/"))
    {
        Ok(Some(value.clone()))
    } else {
        Err(InputError::new(
            name,
            value,
            "is not an IAM role ARN",
            format!("give the role's ARN, like {example}"),
        ))
    }
}

/// Tags as JSON or YAML: a list of `{Key, Value}` (the aws-actions form) or a
/// plain `{key: value}` map. YAML is a superset of JSON, so one parser reads
/// both and reports line and column on error.
fn tags(raw: &RawInputs) -> Result<Vec<Tag>, InputError> {
    let Some(value) = raw.get("tags") else {
        return Ok(Vec::new());
    };
    let fix = r#"give tags as JSON or YAML: [{"Key":"team","Value":"web"}] or {"team":"web"}"#;
    let bad = |problem: String| InputError::new("tags", value, problem, fix);
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(value)
        .map_err(|e| bad(format!("is not valid JSON or YAML: {e}")))?;
    let scalar = |v: &serde_yaml_ng::Value| -> Option<String> {
        match v {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let mut tags = Vec::new();
    match &document {
        serde_yaml_ng::Value::Sequence(items) => {
            for item in items {
                let key = item.get("Key").and_then(scalar);
                let tag_value = item.get("Value").and_then(scalar);
                match (key, tag_value) {
                    (Some(key), Some(value)) => tags.push(Tag { key, value }),
                    _ => return Err(bad("every list item needs a `Key` and a `Value`".into())),
                }
            }
        }
        serde_yaml_ng::Value::Mapping(map) => {
            for (key, tag_value) in map {
                match (scalar(key), scalar(tag_value)) {
                    (Some(key), Some(value)) => tags.push(Tag { key, value }),
                    _ => return Err(bad("every tag value must be a string".into())),
                }
            }
        }
        _ => return Err(bad("is neither a list nor a map".into())),
    }
    // CloudFormation's limits, checked here so the error names the input
    // rather than arriving as a ValidationError after a change set attempt.
    if tags.len() > 50 {
        return Err(bad(format!("has {} tags, the limit is 50", tags.len())));
    }
    for tag in &tags {
        if tag.key.is_empty() || tag.key.chars().count() > 128 {
            return Err(bad(format!(
                "tag key `{}` must be 1-128 characters",
                tag.key
            )));
        }
        if tag.key.starts_with("aws:") {
            return Err(bad(format!(
                "tag key `{}` uses the reserved `aws:` prefix",
                tag.key
            )));
        }
        if tag.value.chars().count() > 256 {
            return Err(bad(format!(
                "the value of tag `{}` is longer than 256 characters",
                tag.key
            )));
        }
    }
    Ok(tags)
}

fn change_set_name(raw: &RawInputs, default: &str) -> Result<String, InputError> {
    let name = raw.get("change-set-name").unwrap_or(default);
    if is_valid_cloudformation_name(name, 128) {
        Ok(name.to_string())
    } else {
        Err(InputError::new(
            "change-set-name",
            name,
            "is not a valid change set name",
            "use 1-128 characters: letters, digits and hyphens, starting with a letter",
        ))
    }
}

/// A duration with a unit (`45s`, `30m`, `1h30m`); a bare number is refused
/// because seconds and minutes are both plausible readings.
pub fn parse_duration(input: &str, value: &str) -> Result<Duration, InputError> {
    let fix = "give a duration with a unit, e.g. 90s, 30m or 1h";
    if value.chars().all(|c| c.is_ascii_digit()) {
        return Err(InputError::new(input, value, "has no unit", fix));
    }
    match humantime::parse_duration(value) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(InputError::new(
            input,
            value,
            "must be longer than zero",
            fix,
        )),
        Err(error) => Err(InputError::new(
            input,
            value,
            format!("is not a duration ({error})"),
            fix,
        )),
    }
}

fn wait_timeout(raw: &RawInputs) -> Result<Duration, InputError> {
    parse_duration("wait-timeout", raw.get("wait-timeout").unwrap_or("60m"))
}

fn region(raw: &RawInputs) -> Result<Option<String>, InputError> {
    let Some(value) = raw.get("aws-region") else {
        return Ok(None);
    };
    let well_formed = value.split('-').count() >= 3
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if well_formed {
        Ok(Some(value.to_string()))
    } else {
        Err(InputError::new(
            "aws-region",
            value,
            "is not an AWS region name",
            "use a region code like us-east-1, or leave it empty to use AWS_REGION",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> InputContext {
        InputContext {
            workspace: PathBuf::from("/github/workspace"),
            default_change_set_name: "ecs-stack-deploy-123-1".into(),
            run_identity: "123/1/deploy/__self".into(),
        }
    }

    fn raw(pairs: &[(&str, &str)]) -> RawInputs {
        let mut raw = RawInputs::default();
        for (name, value) in pairs {
            raw.set(name, value);
        }
        raw
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![("name", "network"), ("template", "stacks/network.yml")]
    }

    fn errors_for(pairs: &[(&str, &str)]) -> Vec<InputError> {
        match DeployInputs::from_raw(&raw(pairs), &context()) {
            Ok(inputs) => panic!("expected an error, got {inputs:?}"),
            Err(InputErrors(errors)) => errors,
        }
    }

    #[test]
    fn defaults_apply_when_only_required_inputs_are_given() {
        let inputs = DeployInputs::from_raw(&raw(&minimal()), &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(inputs.stack_name, "network");
        assert_eq!(
            inputs.template,
            TemplateLocation::File(PathBuf::from("/github/workspace/stacks/network.yml"))
        );
        assert_eq!(inputs.capabilities, vec!["CAPABILITY_IAM"]);
        assert!(inputs.execute_change_set);
        assert!(inputs.delete_failed_change_set);
        assert!(!inputs.fail_on_empty_change_set);
        assert_eq!(inputs.change_set_name, "ecs-stack-deploy-123-1");
        assert_eq!(inputs.wait_timeout, Duration::from_secs(3600));
        assert_eq!(inputs.parameter_overrides, None);
    }

    #[test]
    fn action_environment_keeps_hyphens_and_trims() {
        let env = Environment::from_pairs([
            ("INPUT_STACK-NAME", "  api  "),
            ("INPUT_TEMPLATE", "t.yml\n"),
            ("INPUT_NO-EXECUTE-CHANGESET", "TRUE"),
        ]);
        let raw = RawInputs::from_action_environment(&env);
        let inputs = DeployInputs::from_raw(&raw, &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(inputs.stack_name, "api");
        assert!(!inputs.execute_change_set);
    }

    #[test]
    fn undeclared_action_inputs_are_refused_with_the_closest_name() {
        let env = Environment::from_pairs([
            ("INPUT_NAME", "api"),
            ("INPUT_TEMPLATE", "t.yml"),
            // Underscores for hyphens: the runner keeps what was written.
            ("INPUT_NO_EXECUTE_CHANGESET", "true"),
            ("INPUT_CONTAINR-NAME", "web"),
            // Set but empty still counts: the user wrote the key.
            ("INPUT_WAIT-FOR-SERVICE-STABILITY-TIMEOUT", ""),
            ("GITHUB_SHA", "abc"),
        ]);
        let raw = RawInputs::from_action_environment(&env);
        let errors = DeployInputs::from_raw(&raw, &context()).unwrap_err().0;
        let shown: Vec<(String, String, String)> = errors
            .into_iter()
            .map(|e| (e.input, e.value, e.fix))
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    "containr-name".to_string(),
                    "INPUT_CONTAINR-NAME".to_string(),
                    "did you mean `container-name`?".to_string()
                ),
                (
                    "no_execute_changeset".to_string(),
                    "INPUT_NO_EXECUTE_CHANGESET".to_string(),
                    "did you mean `no-execute-changeset`?".to_string()
                ),
                (
                    "wait-for-service-stability-timeout".to_string(),
                    "INPUT_WAIT-FOR-SERVICE-STABILITY-TIMEOUT".to_string(),
                    "remove it from `with:`; see action.yml for the inputs".to_string()
                ),
            ]
        );
    }

    #[test]
    fn every_declared_input_is_read_from_its_variable() {
        let env = Environment::from_pairs(
            DEPLOY_INPUTS
                .iter()
                .map(|spec| (input_variable(spec.name), "x".to_string())),
        );
        let raw = RawInputs::from_action_environment(&env);
        assert!(raw.undeclared.is_empty(), "{:?}", raw.undeclared);
        assert_eq!(raw.values.len(), DEPLOY_INPUTS.len());
    }

    #[test]
    fn booleans_follow_actions_toolkit() {
        for (value, expected) in [
            ("true", Some(true)),
            ("True", Some(true)),
            ("TRUE", Some(true)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("FALSE", Some(false)),
            ("1", Some(true)),
            ("0", Some(false)),
            ("yes", None),
            ("2", None),
            ("on", None),
            ("tRUE", None),
        ] {
            assert_eq!(
                parse_boolean("disable-rollback", value).ok(),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn mode_chooses_create_only_or_execute_only() {
        let stack = |pairs: &[(&str, &str)]| {
            DeployInputs::from_raw(&raw(pairs), &context())
                .unwrap()
                .stack
                .unwrap()
        };
        let base = [("name", "web"), ("template", "t.yml")];
        assert!(stack(&base).execute_change_set);
        assert!(!stack(&[base[0], base[1], ("mode", "create-only")]).execute_change_set);
        // Saying the same thing twice is fine.
        assert!(
            !stack(&[
                base[0],
                base[1],
                ("mode", "create-only"),
                ("no-execute-changeset", "true")
            ])
            .execute_change_set
        );
        let execute = DeployInputs::from_raw(
            &raw(&[
                ("name", "web"),
                ("mode", "execute-only"),
                (
                    "execute-change-set-id",
                    "arn:aws:cloudformation:us-east-1:1:changeSet/web-CS/1",
                ),
                ("wait-timeout", "5m"),
            ]),
            &context(),
        )
        .unwrap();
        assert!(execute.stack.is_none());
        let execute = execute.execute.unwrap();
        assert_eq!(execute.stack_name, "web");
        assert_eq!(execute.wait_timeout, Duration::from_secs(300));
    }

    /// The runner sets `INPUT_*` for every input with a default, so the
    /// defaults of `mode` and `no-execute-changeset` (and of the inputs
    /// execute-only refuses) arrive with every step.
    #[test]
    fn modes_work_with_every_default_filled_in_as_the_runner_does() {
        let with_defaults = |given: &[(&str, &str)]| {
            let mut vars: Vec<(String, String)> = DEPLOY_INPUTS
                .iter()
                .filter_map(|spec| Some((input_variable(spec.name), spec.default?.to_string())))
                .collect();
            vars.extend(
                given
                    .iter()
                    .map(|(k, v)| (input_variable(k), v.to_string())),
            );
            let env = Environment::from_pairs(vars);
            DeployInputs::from_raw(&RawInputs::from_action_environment(&env), &context())
        };
        let base = [("name", "web"), ("template", "t.yml")];
        let executed = |given: &[(&str, &str)]| {
            with_defaults(given)
                .unwrap()
                .stack
                .map(|s| s.execute_change_set)
        };
        assert_eq!(executed(&base), Some(true));
        assert_eq!(
            executed(&[base[0], base[1], ("mode", "create-only")]),
            Some(false)
        );
        assert_eq!(
            executed(&[base[0], base[1], ("no-execute-changeset", "true")]),
            Some(false)
        );
        let execute_only = with_defaults(&[
            ("name", "web"),
            ("mode", "execute-only"),
            ("execute-change-set-id", "web-CS"),
        ])
        .unwrap();
        assert_eq!(
            execute_only.execute.map(|e| e.change_set),
            Some("web-CS".into())
        );
    }

    #[test]
    fn mode_mistakes_are_refused_naming_the_input() {
        // (inputs, the inputs the errors name)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 5] = [
            (
                &[("name", "web"), ("template", "t.yml"), ("mode", "plan")],
                &["mode"],
            ),
            (
                &[
                    ("name", "web"),
                    ("mode", "execute-only"),
                    ("execute-change-set-id", "web-CS"),
                    ("no-execute-changeset", "true"),
                ],
                &["no-execute-changeset"],
            ),
            (
                &[
                    ("name", "web"),
                    ("template", "t.yml"),
                    ("execute-change-set-id", "web-CS"),
                ],
                &["execute-change-set-id"],
            ),
            (
                &[("name", "web"), ("mode", "execute-only")],
                &["execute-change-set-id"],
            ),
            (
                &[
                    ("name", "web"),
                    ("mode", "execute-only"),
                    ("execute-change-set-id", "web-CS"),
                    ("template", "t.yml"),
                    ("parameter-overrides", "A=1"),
                    ("service", "web"),
                ],
                &["template", "parameter-overrides", "service"],
            ),
        ];
        for (pairs, expected) in cases {
            let errors = DeployInputs::from_raw(&raw(pairs), &context())
                .unwrap_err()
                .0;
            let named: Vec<&str> = errors.iter().map(|e| e.input.as_str()).collect();
            assert_eq!(named, expected, "{pairs:?}: {errors:?}");
        }
    }

    #[test]
    fn render_inputs_become_container_settings_for_every_named_container() {
        let inputs = DeployInputs::from_raw(
            &raw(&[
                ("task-definition", "td.json"),
                ("container-name", "app, worker"),
                (
                    "secrets",
                    "DB_PASSWORD=arn:aws:ssm:us-east-1:1:parameter/db\n\nAPI=arn:aws:secretsmanager:us-east-1:1:secret:a=b",
                ),
                ("env-files", "arn:aws:s3:::cfg/prod.env"),
                ("command", r#"npm run migrate -- --name "first step""#),
                ("docker-labels", "team=web\nteam=shop"),
                ("log-configuration-log-driver", "awslogs"),
                ("log-configuration-options", "awslogs-group=/ecs/web"),
                ("task-role-arn", "arn:aws:iam::123456789012:role/web"),
                ("execution-role-arn", "arn:aws:iam::123456789012:role/exec"),
            ]),
            &context(),
        )
        .unwrap();
        let service = inputs.service.unwrap();
        assert_eq!(service.container_names, ["app", "worker"]);
        let settings = &service.container_settings;
        assert_eq!(
            settings.secrets,
            [
                (
                    "DB_PASSWORD".to_string(),
                    "arn:aws:ssm:us-east-1:1:parameter/db".to_string()
                ),
                (
                    "API".to_string(),
                    "arn:aws:secretsmanager:us-east-1:1:secret:a=b".to_string()
                ),
            ]
        );
        assert_eq!(
            settings.command.as_deref(),
            Some(
                &[
                    "npm".to_string(),
                    "run".into(),
                    "migrate".into(),
                    "--".into(),
                    "--name".into(),
                    "first step".into()
                ][..]
            )
        );
        assert_eq!(
            settings.docker_labels,
            [("team".to_string(), "shop".to_string())]
        );
        assert_eq!(settings.log_driver.as_deref(), Some("awslogs"));
        assert_eq!(
            service.task_role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/web")
        );
    }

    #[test]
    fn render_input_mistakes_name_the_input() {
        let base = [("task-definition", "td.json"), ("container-name", "app")];
        for (name, value) in [
            ("secrets", "DB_PASSWORD"),
            ("env-files", "s3://cfg/prod.env"),
            ("env-files", "arn:aws:s3:::cfg/prod.txt"),
            ("command", "echo \"unclosed"),
            ("docker-labels", "=x"),
            ("log-configuration-log-driver", "stdout"),
            ("log-configuration-options", "awslogs-group"),
            ("task-role-arn", "web-task"),
            ("execution-role-arn", "arn:aws:iam::1:user/me"),
        ] {
            let errors = errors_for(&[base[0], base[1], (name, value)]);
            assert_eq!(
                errors.iter().map(|e| e.input.as_str()).collect::<Vec<_>>(),
                [name],
                "{name}={value}: {errors:?}"
            );
        }
        // Settings for a container need the container named.
        let errors = errors_for(&[base[0], ("docker-labels", "a=b")]);
        assert_eq!(errors[0].input, "docker-labels");
        assert!(errors[0].problem.contains("needs `container-name`"));
    }

    #[test]
    fn the_v1_negation_of_fail_on_empty_changeset_is_understood() {
        let fails = |pairs: &[(&str, &str)]| {
            let mut all = vec![("name", "web"), ("template", "t.yml")];
            all.extend_from_slice(pairs);
            DeployInputs::from_raw(&raw(&all), &context())
                .map(|inputs| inputs.stack.map(|s| s.fail_on_empty_change_set))
                .map_err(|errors| errors.0[0].input.clone())
        };
        assert_eq!(fails(&[]), Ok(Some(false)));
        assert_eq!(
            fails(&[("no-fail-on-empty-changeset", "1")]),
            Ok(Some(false))
        );
        assert_eq!(
            fails(&[("no-fail-on-empty-changeset", "0")]),
            Ok(Some(true))
        );
        assert_eq!(
            fails(&[
                ("no-fail-on-empty-changeset", "false"),
                ("fail-on-empty-changeset", "true")
            ]),
            Ok(Some(true))
        );
        assert_eq!(
            fails(&[
                ("no-fail-on-empty-changeset", "true"),
                ("fail-on-empty-changeset", "true")
            ]),
            Err("no-fail-on-empty-changeset".to_string())
        );
    }

    #[test]
    fn service_settings_are_read_and_checked() {
        let service = |extra: &[(&str, &str)]| {
            let mut all = vec![("task-definition", "td.json"), ("service", "web")];
            all.extend_from_slice(extra);
            DeployInputs::from_raw(&raw(&all), &context())
                .map(|inputs| inputs.service.map(|s| s.service_settings))
                .map_err(|errors| errors.0[0].input.clone())
        };
        let settings = service(&[
            ("enable-ecs-managed-tags", "true"),
            ("propagate-tags", "service"),
            ("wait-max-delay-seconds", "15"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.enable_ecs_managed_tags, Some(true));
        assert_eq!(settings.propagate_tags.as_deref(), Some("SERVICE"));
        assert_eq!(settings.max_poll_delay, Some(Duration::from_secs(15)));
        assert!(settings.changes_service());
        assert!(!service(&[]).unwrap().unwrap().changes_service());
        assert_eq!(
            service(&[("propagate-tags", "ALL")]),
            Err("propagate-tags".into())
        );
        assert_eq!(
            service(&[("wait-max-delay-seconds", "0")]),
            Err("wait-max-delay-seconds".into())
        );
    }

    #[test]
    fn continue_deployment_takes_a_service_and_nothing_that_would_do_nothing() {
        let inputs = DeployInputs::from_raw(
            &raw(&[
                ("continue-deployment", "rollback"),
                ("service", "web"),
                ("wait-until", "deployed"),
            ]),
            &context(),
        )
        .unwrap();
        let options = inputs.continue_deployment.unwrap();
        assert!(options.rollback);
        assert_eq!(options.service, "web");
        assert_eq!(options.cluster, "default");
        assert_eq!(options.wait_until, ServiceWaitUntil::Deployed);
        assert_eq!(options.max_poll_delay, None);
        let capped = DeployInputs::from_raw(
            &raw(&[
                ("continue-deployment", "true"),
                ("service", "web"),
                ("wait-max-delay-seconds", "2"),
            ]),
            &context(),
        )
        .unwrap();
        assert_eq!(
            capped.continue_deployment.unwrap().max_poll_delay,
            Some(Duration::from_secs(2)),
            "an input the step accepts is used, not ignored"
        );
        assert!(inputs.service.is_none() && inputs.stack.is_none());
        for (name, value) in [
            ("task-definition", "td.json"),
            ("name", "web"),
            ("image", "repo:v1"),
        ] {
            let errors = errors_for(&[
                ("continue-deployment", "true"),
                ("service", "web"),
                (name, value),
            ]);
            assert!(
                errors.iter().any(|e| e.input == name
                    && e.problem.contains("not used with `continue-deployment`")),
                "{errors:?}"
            );
        }
        let errors = errors_for(&[("continue-deployment", "maybe")]);
        let inputs: Vec<&str> = errors.iter().map(|e| e.input.as_str()).collect();
        assert_eq!(inputs, ["continue-deployment", "service"]);
    }

    #[test]
    fn managed_ebs_volumes_need_a_name_a_configuration_and_a_role() {
        let service = |extra: &[(&str, &str)]| {
            let mut all = vec![("task-definition", "td.json"), ("service", "web")];
            all.extend_from_slice(extra);
            DeployInputs::from_raw(&raw(&all), &context())
                .map(|inputs| inputs.service.map(|s| s.service_settings))
                .map_err(|errors| (errors.0[0].input.clone(), errors.0[0].problem.clone()))
        };
        let volume =
            r#"{"roleArn": "arn:aws:iam::1:role/ebs", "sizeInGiB": 20, "volumeType": "gp3"}"#;
        let settings = service(&[
            ("service-managed-ebs-volume-name", "data"),
            ("service-managed-ebs-volume", volume),
        ])
        .unwrap()
        .unwrap();
        let configured = settings.managed_ebs_volume.clone().unwrap();
        assert_eq!(configured.name(), "data");
        let ebs = configured.managed_ebs_volume().unwrap();
        assert_eq!(ebs.size_in_gib(), Some(20));
        assert_eq!(ebs.role_arn(), "arn:aws:iam::1:role/ebs");
        assert!(settings.changes_service());
        for (extra, input, problem) in [
            (
                vec![("service-managed-ebs-volume-name", "data")],
                "service-managed-ebs-volume-name",
                "without",
            ),
            (
                vec![("service-managed-ebs-volume", volume)],
                "service-managed-ebs-volume",
                "without",
            ),
            (
                vec![
                    ("service-managed-ebs-volume-name", "data"),
                    ("service-managed-ebs-volume", r#"{"sizeInGiB": 20}"#),
                ],
                "service-managed-ebs-volume",
                "roleArn",
            ),
            (
                vec![
                    ("service-managed-ebs-volume-name", "data"),
                    (
                        "service-managed-ebs-volume",
                        r#"{"roleArn": "arn:aws:iam::1:role/ebs", "size": 20}"#,
                    ),
                ],
                "service-managed-ebs-volume",
                "`managedEBSVolume.size`",
            ),
            (
                vec![
                    ("service-managed-ebs-volume-name", "data"),
                    ("service-managed-ebs-volume", "{roleArn: x}"),
                ],
                "service-managed-ebs-volume",
                "not valid JSON",
            ),
        ] {
            match service(&extra) {
                Err((found, text)) => {
                    assert_eq!(found, input, "{extra:?}");
                    assert!(text.contains(problem), "{text}");
                }
                Ok(settings) => panic!("accepted {extra:?}: {settings:?}"),
            }
        }
    }

    #[test]
    fn run_task_inputs_are_read_and_checked() {
        let task = |extra: &[(&str, &str)]| {
            let mut all = vec![
                ("task-definition", "td.json"),
                ("service", "web"),
                ("run-task", "true"),
            ];
            all.extend_from_slice(extra);
            DeployInputs::from_raw(&raw(&all), &context())
                .map(|inputs| inputs.service.and_then(|s| s.one_off_task))
                .map_err(|errors| (errors.0[0].input.clone(), errors.0[0].problem.clone()))
        };
        let options = task(&[
            (
                "run-task-container-overrides",
                r#"[{"name": "app", "command": ["bin/migrate", "--all"]}]"#,
            ),
            ("run-task-subnets", "subnet-a, subnet-b"),
            ("run-task-assign-public-IP", "enabled"),
            (
                "run-task-tags",
                r#"[{"key": "purpose", "value": "migration"}]"#,
            ),
            (
                "run-task-capacity-provider-strategy",
                r#"[{"capacityProvider": "FARGATE_SPOT", "weight": 1}]"#,
            ),
            ("wait-for-task-stopped", "true"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            options.container_overrides[0].command(),
            ["bin/migrate", "--all"]
        );
        assert_eq!(options.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(options.assign_public_ip, Some(AssignPublicIp::Enabled));
        assert_eq!(options.tags[0].key(), Some("purpose"));
        assert_eq!(
            options.capacity_provider_strategy[0].capacity_provider(),
            "FARGATE_SPOT"
        );
        assert_eq!(options.started_by, "GitHub-Actions");
        assert!(options.wait_for_stop);
        assert_eq!(options.run_identity, "123/1/deploy/__self");
        assert_eq!(task(&[]).unwrap().map(|o| o.wait_for_stop), Some(false));
        for (extra, input, problem) in [
            (
                vec![("run-task-container-overrides", r#"{"name": "app"}"#)],
                "run-task-container-overrides",
                "not a JSON array",
            ),
            (
                vec![("run-task-container-overrides", r#"[{"command": ["x"]}]"#)],
                "run-task-container-overrides",
                "without a container `name`",
            ),
            (
                vec![(
                    "run-task-container-overrides",
                    r#"[{"name": "app", "comand": ["x"]}]"#,
                )],
                "run-task-container-overrides",
                "`comand`",
            ),
            (
                vec![("run-task-tags", r#"[{"Key": "a", "Value": "b"}]"#)],
                "run-task-tags",
                "`Key`",
            ),
            (
                vec![("run-task-launch-type", "LAMBDA")],
                "run-task-launch-type",
                "not an ECS launch type",
            ),
            (
                vec![
                    ("run-task-launch-type", "EC2"),
                    (
                        "run-task-capacity-provider-strategy",
                        r#"[{"capacityProvider": "cp", "weight": 1}]"#,
                    ),
                ],
                "run-task-launch-type",
                "one or the other",
            ),
            (
                vec![("run-task-assign-public-IP", "yes")],
                "run-task-assign-public-IP",
                "neither",
            ),
            (
                vec![("run-task-started-by", &"x".repeat(129))],
                "run-task-started-by",
                "128",
            ),
            (
                vec![("run-task-managed-ebs-volume-name", "data")],
                "run-task-managed-ebs-volume-name",
                "without",
            ),
        ] {
            match task(&extra) {
                Err((found, text)) => {
                    assert_eq!(found, input, "{extra:?}");
                    assert!(text.contains(problem), "{text}");
                }
                Ok(options) => panic!("accepted {extra:?}: {options:?}"),
            }
        }
        // Without `run-task: true` its inputs would do nothing; the runner's
        // default for `run-task-started-by` does not count.
        let base = [("task-definition", "td.json"), ("service", "web")];
        let errors = errors_for(&[base[0], base[1], ("run-task-subnets", "subnet-a")]);
        assert!(
            errors
                .iter()
                .any(|e| e.input == "run-task-subnets"
                    && e.problem.contains("`run-task` is not true")),
            "{errors:?}"
        );
        assert!(
            DeployInputs::from_raw(
                &raw(&[base[0], base[1], ("run-task-started-by", "GitHub-Actions")]),
                &context()
            )
            .is_ok()
        );
    }

    #[test]
    fn inputs_that_mean_something_else_than_in_the_aws_actions_get_a_notice() {
        let inputs = DeployInputs::from_raw(
            &raw(&[
                ("task-definition", "td.json"),
                ("service", "web"),
                ("container-name", "app"),
                ("environment-variables", "KEEP=1\nGONE=\nALSO_GONE="),
                ("max-retries", "3"),
            ]),
            &context(),
        )
        .unwrap();
        assert_eq!(
            inputs.notices,
            [
                "input `max-retries`: 3 counts the retries after the first try here (3 retries = up to 4 calls); an aws-actions step's `max-retries` counted attempts",
                "input `environment-variables`: `GONE=`, `ALSO_GONE=` removes the variable here (amazon-ecs-render-task-definition set it to an empty string)",
            ]
        );
        let quiet = DeployInputs::from_raw(
            &raw(&[("task-definition", "td.json"), ("max-retries", "4")]),
            &context(),
        )
        .unwrap();
        assert!(quiet.notices.is_empty(), "{:?}", quiet.notices);
    }

    /// A stack-only step with an input that only shapes a rollout would do
    /// nothing with it; defaults the runner fills in do not count.
    #[test]
    fn rollout_inputs_without_a_rollout_are_refused() {
        let base = [("name", "web"), ("template", "t.yml")];
        for name in [
            "secrets",
            "propagate-tags",
            "container-name",
            "desired-count",
        ] {
            let errors = errors_for(&[base[0], base[1], (name, "x")]);
            assert!(
                errors.iter().any(|e| e.input == name
                    && e.problem
                        .contains("only applies to a task-definition rollout")),
                "{name}: {errors:?}"
            );
        }
        assert!(
            DeployInputs::from_raw(
                &raw(&[
                    base[0],
                    base[1],
                    ("cluster", "default"),
                    ("wait-for-minutes", "30")
                ]),
                &context()
            )
            .is_ok(),
            "the defaults are not a choice"
        );
    }

    #[test]
    fn legacy_booleans_are_accepted_with_a_notice() {
        let inputs = DeployInputs::from_raw(
            &raw(&[
                ("name", "network"),
                ("template", "stacks/network.yml"),
                ("no-execute-changeset", "1"),
                ("disable-rollback", "0"),
                ("termination-protection", "true"),
            ]),
            &context(),
        )
        .unwrap();
        let stack = inputs.stack.as_ref().unwrap();
        assert!(!stack.execute_change_set);
        assert!(!stack.disable_rollback);
        assert!(stack.termination_protection);
        assert_eq!(
            inputs.notices,
            [
                "input `no-execute-changeset`: `1` is read as `true` (the spelling of aws-cloudformation-github-deploy); write `true`",
                "input `disable-rollback`: `0` is read as `false` (the spelling of aws-cloudformation-github-deploy); write `false`",
            ]
        );
    }

    #[test]
    fn every_bad_input_is_reported_at_once_naming_input_and_value() {
        let errors = errors_for(&[
            ("name", "1-bad"),
            ("template", "ftp://host/t.yml"),
            ("capabilities", "CAPABILITY_IAM,CAPABILITY_ROOT"),
            ("disable-rollback", "yes"),
            ("timeout-in-minutes", "0"),
            ("wait-timeout", "30"),
        ]);
        let named: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.input.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![
                ("name", "1-bad"),
                ("template", "ftp://host/t.yml"),
                ("capabilities", "CAPABILITY_IAM,CAPABILITY_ROOT"),
                ("disable-rollback", "yes"),
                ("timeout-in-minutes", "0"),
                ("wait-timeout", "30"),
            ]
        );
        assert!(errors.iter().all(|e| !e.fix.is_empty()));
    }

    #[test]
    fn table_of_single_bad_inputs() {
        let cases: &[(&str, &str)] = &[
            ("notification-arns", "arn:aws:sqs:us-east-1:1:q"),
            ("notification-arns", "not-an-arn"),
            ("role-arn", "arn:aws:iam::123456789012:user/bob"),
            ("tags", "{not json"),
            ("tags", r#"[{"Key":"a"}]"#),
            ("tags", r#"{"aws:owner":"x"}"#),
            ("change-set-name", "has_underscore"),
            ("aws-region", "US_EAST_1"),
            ("parameter-overrides", "Subnets=\"a,b"),
            ("termination-protection", "on"),
        ];
        for (input, value) in cases {
            let mut pairs = minimal();
            pairs.push((input, value));
            let errors = errors_for(&pairs);
            assert_eq!(errors.len(), 1, "{input}={value}: {errors:?}");
            assert_eq!(errors[0].input, *input);
            assert_eq!(errors[0].value, *value);
        }
    }

    #[test]
    fn name_and_alias() {
        let inputs =
            DeployInputs::from_raw(&raw(&[("stack-name", "a"), ("template", "t")]), &context())
                .unwrap()
                .stack
                .unwrap();
        assert_eq!(inputs.stack_name, "a");
        let errors = errors_for(&[("name", "a"), ("stack-name", "b"), ("template", "t")]);
        assert_eq!(errors[0].input, "stack-name");
        let errors = errors_for(&[("template", "t")]);
        assert_eq!(errors[0].input, "name");
    }

    #[test]
    fn template_url_and_absolute_path() {
        let mut pairs = vec![
            ("name", "a"),
            ("template", "https://bucket.s3.amazonaws.com/t.yml"),
        ];
        let inputs = DeployInputs::from_raw(&raw(&pairs), &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(
            inputs.template,
            TemplateLocation::Url("https://bucket.s3.amazonaws.com/t.yml".into())
        );
        pairs[1] = ("template", "/abs/t.yml");
        let inputs = DeployInputs::from_raw(&raw(&pairs), &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(
            inputs.template,
            TemplateLocation::File(PathBuf::from("/abs/t.yml"))
        );
    }

    #[test]
    fn lists_split_on_commas_and_newlines() {
        assert_eq!(
            split_list("CAPABILITY_IAM,\n\n CAPABILITY_AUTO_EXPAND \n"),
            vec!["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
        );
    }

    #[test]
    fn tags_in_every_accepted_form() {
        for value in [
            r#"[{"Key":"team","Value":"web"},{"Key":"cost","Value":"42"}]"#,
            r#"{"team":"web","cost":42}"#,
            "team: web\ncost: \"42\"",
            "- Key: team\n  Value: web\n- Key: cost\n  Value: 42",
        ] {
            let mut pairs = minimal();
            pairs.push(("tags", value));
            let inputs = DeployInputs::from_raw(&raw(&pairs), &context())
                .unwrap()
                .stack
                .unwrap();
            assert_eq!(
                inputs.tags,
                vec![
                    Tag {
                        key: "team".into(),
                        value: "web".into()
                    },
                    Tag {
                        key: "cost".into(),
                        value: "42".into()
                    },
                ],
                "{value}"
            );
        }
    }

    #[test]
    fn upstream_stacks_and_mappings() {
        let mut pairs = minimal();
        pairs.push(("parameters-from-stacks", "network\nVpc=network.VpcId"));
        let inputs = DeployInputs::from_raw(&raw(&pairs), &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(
            inputs.parameters_from_stacks,
            vec![
                UpstreamOutputs::Stack("network".into()),
                UpstreamOutputs::Mapped {
                    parameter: "Vpc".into(),
                    stack: "network".into(),
                    output: "VpcId".into()
                },
            ]
        );
        for bad in ["Vpc=network", "1net", "Vpc=.VpcId"] {
            let mut pairs = minimal();
            pairs.push(("parameters-from-stacks", bad));
            assert_eq!(
                errors_for(&pairs)[0].input,
                "parameters-from-stacks",
                "{bad}"
            );
        }
        let mut pairs = minimal();
        pairs.push(("on-upstream-failure", "ignore"));
        assert_eq!(errors_for(&pairs)[0].input, "on-upstream-failure");
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(
            parse_duration("wait-timeout", "90s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration("wait-timeout", "1h 30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_duration("wait-timeout", "90").is_err());
        assert!(parse_duration("wait-timeout", "0s").is_err());
        assert!(parse_duration("wait-timeout", "soon").is_err());
    }

    #[test]
    fn parameter_override_files_resolve_against_the_workspace() {
        let mut pairs = minimal();
        pairs.push(("parameter-overrides", "file://params/prod.json"));
        let inputs = DeployInputs::from_raw(&raw(&pairs), &context())
            .unwrap()
            .stack
            .unwrap();
        assert_eq!(
            inputs.parameter_overrides,
            Some(OverridesInput::File(PathBuf::from(
                "/github/workspace/params/prod.json"
            )))
        );
    }
}

//! A value refused before anything changes, said without the name the user
//! gave it.
//!
//! The capability modules (`stack/`, `service/`, the parsers in `taskdef/`)
//! judge their own options. They know which of the user's settings is at
//! fault ([`Setting`]), never what the user called it: an action input
//! today, a CLI flag, a key of a stack manifest tomorrow. The name is
//! attached once, where inputs are read (`inputs::input_name`), so a
//! capability never imports the inputs and a new front end only adds its own
//! names.

use std::fmt;

/// A setting the user chose, as the capabilities know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    StackName,
    Template,
    /// `s3-bucket`: where an uploaded template goes.
    TemplateBucket,
    ParameterOverrides,
    ImageParameter,
    ParametersFromStacks,
    /// A change set created earlier, to execute.
    ExistingChangeSet,
    Region,
    /// The proxy the AWS and GitHub clients go through (`http-proxy`, or
    /// the proxy variables it stands in for).
    HttpProxy,
    /// The full image reference.
    Image,
    /// The image's repository, when the tag comes separately.
    ImageRepository,
    ImageTag,
    MutableTags,
    /// Other containers' images (`container=image` lines).
    ContainerImages,
    TaskDefinition,
    ContainerName,
    EnvironmentVariables,
    Cluster,
    Service,
    /// `service-managed-ebs-volume-name`: the volume UpdateService configures.
    ServiceManagedEbsVolume,
    /// Container overrides of the one-off task.
    RunTaskContainerOverrides,
    /// The one-off task's subnets.
    RunTaskSubnets,
    /// The managed EBS volume of the one-off task.
    RunTaskManagedEbsVolume,
    /// The CodeDeploy deployment group of a blue/green service.
    CodeDeployDeploymentGroup,
    /// The CodeDeploy deployment config.
    CodeDeployDeploymentConfig,
    /// A user appspec file.
    CodeDeployAppSpec,
    CodeDeployApplication,
    CodeDeployDescription,
    CodeDeployHooks,
    /// What a blue/green rollout waits for.
    WaitUntil,
    /// `deployment-strategy` and its settings.
    DeploymentStrategy,
    /// Answering a paused deployment's hook.
    ContinueDeployment,
}

/// One refused value: which setting, what was given, what is wrong and how
/// to fix it. `fix` may be empty when `problem` already says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub setting: Setting,
    pub value: String,
    pub problem: String,
    pub fix: String,
}

impl Refusal {
    pub fn new(
        setting: Setting,
        value: &str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            setting,
            value: value.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A refusal whose message already says what is wrong and how to fix it
    /// (the parsers' errors).
    pub fn described(setting: Setting, value: &str, message: impl fmt::Display) -> Self {
        Self::new(setting, value, message.to_string(), "")
    }
}

/// Every refusal found in one pass, so a user fixes them all in one go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refusals(pub Vec<Refusal>);

impl From<Refusal> for Refusals {
    fn from(refusal: Refusal) -> Self {
        Self(vec![refusal])
    }
}

impl fmt::Display for Refusals {
    // Only for logs of a refusal that reached no front end; the user sees
    // them through `inputs::InputErrors`, which names the inputs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|r| format!("{:?} `{}`: {} {}", r.setting, r.value, r.problem, r.fix))
            .collect();
        f.write_str(&lines.join("; "))
    }
}

impl std::error::Error for Refusals {}

/// Why a read-only check of the plan did not pass: the user's value is
/// refused (a bad input), or the check itself could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Refused(Refusals),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<Refusal> for CheckError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal.into())
    }
}

//! What a stack deploy needs, as the stack capability takes it: its own
//! options, validated by `inputs` (which builds them from the action's
//! inputs or the CLI's flags) and never looked at as raw strings here.

use std::path::PathBuf;
use std::time::Duration;

use super::parameters::ParameterOverride;

/// Where the template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateLocation {
    /// A local file, resolved against the workspace.
    File(PathBuf),
    /// An `https://` URL (normally S3) passed to CloudFormation as TemplateURL.
    Url(String),
}

impl Default for TemplateLocation {
    fn default() -> Self {
        Self::File(PathBuf::new())
    }
}

/// The `parameter-overrides` input after the pure part of parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum OverridesInput {
    Inline(Vec<ParameterOverride>),
    /// A JSON or YAML file, read before any AWS call (see `stack::plan`).
    File(PathBuf),
}

/// `s3-bucket`: where a template goes when it is sent by TemplateURL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUpload {
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// `s3-upload: always`: upload even a template that fits inline.
    pub always: bool,
}

/// A stack tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// What a stack deploy needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct StackOptions {
    pub stack_name: String,
    pub template: TemplateLocation,
    pub capabilities: Vec<String>,
    pub parameter_overrides: Option<OverridesInput>,
    pub execute_change_set: bool,
    pub delete_failed_change_set: bool,
    pub fail_on_empty_change_set: bool,
    pub disable_rollback: bool,
    pub timeout_in_minutes: Option<i32>,
    pub notification_arns: Vec<String>,
    pub role_arn: Option<String>,
    pub tags: Vec<Tag>,
    pub termination_protection: bool,
    pub change_set_name: String,
    pub wait_timeout: Duration,
    pub parameters_from_stacks: Vec<UpstreamOutputs>,
    /// Upload the template to S3 (always, or when it is over the inline
    /// limit) and deploy it by TemplateURL.
    pub template_upload: Option<TemplateUpload>,
    /// `deployment-mode`: `REVERT_DRIFT` makes the change set drift-aware
    /// (it also puts back what was changed outside CloudFormation).
    pub deployment_mode: Option<String>,
    /// `include-nested-stacks-change-set`: the change set also holds the
    /// nested stacks' changes.
    /// `None` (not given): true when the template declares nested stacks.
    pub include_nested_stacks: Option<bool>,
    /// The repository checkout: files a template names must be inside it
    /// to be packaged.
    pub workspace: PathBuf,
}

/// Where a parameter's value comes from in another stack's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamOutputs {
    /// Every output of the stack whose key the template declares as a
    /// parameter.
    Stack(String),
    /// `Parameter=stack.OutputKey`.
    Mapped {
        parameter: String,
        stack: String,
        output: String,
    },
}

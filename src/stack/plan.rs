//! Reads the files a deploy needs (template, parameter file) and checks them,
//! before any AWS call. Every problem here is a [`Refusal`].

use std::path::Path;

use super::changeset::TemplateSource;
use super::options::{OverridesInput, StackOptions, TemplateLocation};
use super::package::{LocalTemplate, is_nested_stack_type, scan};
use super::parameters::{DeclaredParameter, ParameterOverride, parse_override_document};
use super::template::{TemplateSummary, check_body_size, parse_template};
use crate::refusal::{Refusal, Refusals, Setting};

/// The template and overrides, loaded and checked.
#[derive(Debug, Clone)]
pub struct LoadedStackFiles {
    pub template: TemplateSource,
    /// Parameters the template declares; `None` for a template given by URL,
    /// whose summary is asked of CloudFormation (GetTemplateSummary).
    pub declared: Option<Vec<DeclaredParameter>>,
    /// The resource types the template declares, when they can be read
    /// locally; `None` for a template given by URL or rewritten by a
    /// transform (it may declare anything).
    pub resource_types: Option<Vec<String>>,
    pub overrides: Vec<ParameterOverride>,
    /// The resolved image for the template's image parameter, if any.
    pub image: Option<ImageParameter>,
    /// Services the template deploys through CodeDeploy (DeploymentController
    /// CODE_DEPLOY) without the `AWS::CodeDeployBlueGreen` transform: a plain
    /// update cannot change their task definition.
    pub code_deploy_services: Vec<String>,
    /// The template's local files to package (nested templates, code,
    /// includes), when it names any.
    pub package: Option<LocalTemplate>,
    /// The template declares nested stacks (`AWS::CloudFormation::Stack`).
    pub nested_stacks: bool,
    /// The outputs the template declares, when they can be read locally;
    /// `None` for a template given by URL or rewritten by a transform.
    pub output_keys: Option<Vec<String>>,
}

/// The image to pass to the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageParameter {
    /// From `image-parameter`; `None` means `ImageUri` if declared.
    pub name: Option<String>,
    pub value: String,
}

/// The parameter that receives the image when `image-parameter` is empty.
pub const DEFAULT_IMAGE_PARAMETER: &str = "ImageUri";

/// Reads and checks the template and the parameter file, reporting every
/// problem at once.
pub fn load_stack_files(inputs: &StackOptions) -> Result<LoadedStackFiles, Refusals> {
    let mut errors = Vec::new();
    let mut code_deploy_services = Vec::new();
    let mut package = None;
    let mut nested_stacks = false;
    let mut output_keys = None;
    let template = match &inputs.template {
        TemplateLocation::Url(url) => Some((TemplateSource::Url(url.clone()), None, None)),
        TemplateLocation::File(path) => {
            match load_template_file(path, inputs.template_upload.is_some()) {
                Ok((body, summary)) => {
                    nested_stacks = summary
                        .resources
                        .iter()
                        .any(|r| is_nested_stack_type(&r.resource_type));
                    // Nested stacks may declare anything, as a transform may.
                    let resource_types = (!summary.is_transformed() && !nested_stacks).then(|| {
                        summary
                            .resources
                            .iter()
                            .map(|r| r.resource_type.clone())
                            .collect()
                    });
                    if !summary
                        .transforms
                        .iter()
                        .any(|t| t == "AWS::CodeDeployBlueGreen")
                    {
                        code_deploy_services = summary
                            .resources
                            .iter()
                            .filter(|r| r.code_deploy_service)
                            .map(|r| r.logical_id.clone())
                            .collect();
                    }
                    match scan(path, &body, &inputs.workspace) {
                        Ok(tree) if tree.has_local_references() => {
                            if inputs.template_upload.is_none() {
                                errors.push(needs_bucket(path, &tree));
                            }
                            package = Some(tree);
                        }
                        Ok(_) => {}
                        Err(refusals) => errors.extend(refusals.0),
                    }
                    if !summary.is_transformed() {
                        output_keys = Some(summary.output_keys);
                    }
                    let declared = summary.parameters_complete.then_some(summary.parameters);
                    Some((TemplateSource::Body(body), declared, resource_types))
                }
                Err(error) => {
                    errors.push(error);
                    None
                }
            }
        }
    };
    let overrides = match &inputs.parameter_overrides {
        None => Some(Vec::new()),
        Some(OverridesInput::Inline(overrides)) => Some(overrides.clone()),
        Some(OverridesInput::File(path)) => match load_overrides_file(path) {
            Ok(overrides) => Some(overrides),
            Err(error) => {
                errors.push(error);
                None
            }
        },
    };
    match (template, overrides) {
        (Some((template, declared, resource_types)), Some(overrides)) if errors.is_empty() => {
            Ok(LoadedStackFiles {
                template,
                declared,
                resource_types,
                overrides,
                image: None,
                code_deploy_services,
                package,
                nested_stacks,
                output_keys,
            })
        }
        _ => Err(Refusals(errors)),
    }
}

/// Reads a template file and the local files it names, for `package`.
pub fn load_package(path: &Path, workspace: &Path) -> Result<LocalTemplate, Refusals> {
    let (body, _) = load_template_file(path, true)?;
    scan(path, &body, workspace)
}

/// Local files are uploaded to the template bucket: without one, the
/// template cannot be deployed (CloudFormation reads only S3).
fn needs_bucket(path: &Path, tree: &LocalTemplate) -> Refusal {
    let named: Vec<String> = tree
        .all_references()
        .iter()
        .take(3)
        .map(|r| r.site.clone())
        .collect();
    let more = tree.all_references().len().saturating_sub(named.len());
    Refusal::new(
        Setting::Template,
        &path.display().to_string(),
        format!(
            "names local files CloudFormation cannot read ({}{})",
            named.join("; "),
            if more > 0 {
                format!("; {more} more")
            } else {
                String::new()
            }
        ),
        "set `s3-bucket` to a bucket in the stack's region: the files are then uploaded there and the template rewritten to point at them, as `aws cloudformation package` does",
    )
}

fn read_input_file(setting: Setting, path: &Path) -> Result<String, Refusal> {
    let shown = path.display().to_string();
    std::fs::read_to_string(path).map_err(|error| {
        let fix = match error.kind() {
            std::io::ErrorKind::NotFound => {
                "check the path: relative paths are resolved against the workspace (GITHUB_WORKSPACE); did the workflow check out the repository?"
            }
            std::io::ErrorKind::InvalidData => "save the file as UTF-8 text",
            _ => "make the file readable by the action",
        };
        Refusal::new(setting, &shown, format!("cannot be read: {error}"), fix)
    })
}

/// Reads and parses the template; one over the inline limit is refused
/// unless it can be uploaded (`s3-bucket`).
fn load_template_file(path: &Path, can_upload: bool) -> Result<(String, TemplateSummary), Refusal> {
    let shown = path.display().to_string();
    let body = read_input_file(Setting::Template, path)?;
    if !can_upload {
        check_body_size(body.len()).map_err(|error| {
            Refusal::new(
                Setting::Template,
                &shown,
                error.to_string(),
                "set `s3-bucket` to a bucket in the stack's region: the template is then uploaded there and deployed by its URL (or upload it yourself and give its https:// URL as `template`)",
            )
        })?;
    }
    let summary = parse_template(&body).map_err(|error| {
        Refusal::new(
            Setting::Template,
            &shown,
            format!("is not a valid CloudFormation template: {error}"),
            "fix the template (JSON or YAML with a non-empty Resources section)",
        )
    })?;
    Ok((body, summary))
}

fn load_overrides_file(path: &Path) -> Result<Vec<ParameterOverride>, Refusal> {
    let shown = path.display().to_string();
    let content = read_input_file(Setting::ParameterOverrides, path)?;
    parse_override_document(&content, &shown).map_err(|error| {
        Refusal::new(
            Setting::ParameterOverrides,
            &shown,
            error.to_string(),
            r#"write the file as [{"ParameterKey":"K","ParameterValue":"V"}] or {"K":"V"} in JSON or YAML"#,
        )
    })
}

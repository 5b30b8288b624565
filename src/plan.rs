//! The plan phase: everything that can be known or refused before AWS is
//! changed, with read-only calls only.
//!
//! From the validated inputs ([`Prepared`]) it checks the images against ECR,
//! reads the cluster, the service and its task definition and renders the
//! new one (so a misspelt `container-name` or a missing service is refused
//! here), then reads the stack (waiting out a running operation) and decides
//! its change. The result is one [`Plan`]: a value that is printed before
//! anything is applied, and whose [`Plan::steps`] unit tests compare.
//!
//! A new kind of deploy or rollout is a new part of the plan plus the module
//! that applies it (see ARCHITECTURE.md).

use std::fmt;

use crate::console::Console;
use crate::inputs::{InputError, InputErrors, ServiceInputs, StackInputs, TaskDefinitionSource};
use crate::job::{Clients, JobError, Prepared};
use crate::refusal::Refusal;
use crate::refusal::Setting;
use crate::service::codedeploy::CodeDeployOptions;
use crate::service::ecr::inspect_ecr_image;
use crate::service::plan::{
    CreatedEarlier, ReadyRollout, Registration, RolloutOptions, ServicePlan, TaskDefinitionOrigin,
    decide_service, read_service,
};
use crate::service::preflight::{
    PreflightClients, PreflightScope, is_denied_to_caller, reference_checks,
};
use crate::service::strategy::{ContinuePlan, plan_continue};
use aws_sdk_ecs::types::AwsVpcConfiguration;

use crate::service::ec2::Ec2Reader;
use crate::service::verify::{
    Check, ServiceTarget, Verdict, load_balancer_checks, network_check, shape_checks, tree,
};
use crate::stack::changeset::TemplateSource;
use crate::stack::deploy::{
    DeploySettings, StackAction, StackPlan, StackPlanError, may_declare, plan_stack,
};
use crate::stack::execute::{ExecutePlan, decide_execute, read_change_set};
use crate::stack::images::template_images;
use crate::stack::parameters::OverrideValue;
use crate::stack::plan::DEFAULT_IMAGE_PARAMETER;
use crate::stack::plan::{ImageParameter, LoadedStackFiles};
use crate::stack::task_definitions::{template_services, template_task_definitions};
use crate::stack::upload::{
    PackagePlan, UploadPlan, bucket_region, is_uploaded, plan_package, plan_upload,
    template_bucket_client,
};
use crate::taskdef::image::ImageReference;
use crate::taskdef::render::{
    ContainerChanges, ContainerEnvironment, ContainerImage, RenderRequest,
};

/// An image checked before the deploy: what goes into the task definition
/// or template (pinned to its digest with `pin-digest`), and its digest when
/// ECR knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedImage {
    pub deployed: String,
    pub digest: Option<String>,
}

/// Everything the apply phase does, decided.
#[derive(Debug, Clone)]
pub struct Plan {
    pub region: String,
    /// The `image` (or `image-repository` + tag) input, checked.
    pub image: Option<CheckedImage>,
    pub stack: Option<StackPlan>,
    /// The template's local files, packaged into `s3-bucket`.
    pub package: Option<PackagePlan>,
    /// The packaged template, written for review (`packaged-template`).
    pub packaged_template: Option<std::path::PathBuf>,
    /// The template goes by TemplateURL from `s3-bucket`.
    pub upload: Option<UploadPlan>,
    /// `mode: execute-only`: a change set created earlier, executed.
    pub execute: Option<ExecutePlan>,
    /// `continue-deployment`: a paused deployment's hook answered.
    pub continue_deployment: Option<ContinuePlan>,
    pub service: Option<ServicePlan>,
    /// How the service part is planned again when it waits for the stack.
    pub rollout_options: Option<RolloutOptions>,
    pub dispatch_workflows: Vec<String>,
}

/// One step of a plan, as unit tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete a never-created stack (ROLLBACK_COMPLETE, empty
    /// REVIEW_IN_PROGRESS) to create it anew.
    DeleteNeverCreatedStack {
        stack: String,
        status: String,
    },
    /// Upload packaged files (nested templates, code, includes) that are
    /// not in the bucket yet.
    UploadPackagedFiles {
        bucket: String,
        objects: usize,
    },
    /// Upload the template to S3 (it is not there yet).
    UploadTemplate {
        bucket: String,
        key: String,
    },
    /// Create a change set; executed unless kept for review.
    ChangeSet {
        stack: String,
        kind: &'static str,
        execute: bool,
    },
    /// CreateStack (with `timeout-in-minutes`).
    CreateStack {
        stack: String,
    },
    /// Answer a paused deployment's hook (`continue-deployment`).
    ContinueDeployment {
        service: String,
        rollback: bool,
    },
    /// Execute a change set created earlier (`mode: execute-only`).
    ExecuteChangeSet {
        stack: String,
        change_set: String,
    },
    /// The rollout waits for what the stack creates, then is planned again.
    RollOutAfterStack {
        waiting_for: Vec<&'static str>,
    },
    RegisterTaskDefinition {
        family: String,
    },
    /// `run-task`: a one-off task from the revision, before the update.
    RunOneOffTask {
        cluster: String,
    },
    /// `wait-for-task-stopped`: its essential containers must exit 0.
    WaitForOneOffTask,
    UpdateService {
        cluster: String,
        service: String,
    },
    /// A blue/green service: CreateDeployment in CodeDeploy.
    CreateDeployment {
        service: String,
        application: String,
        deployment_group: String,
    },
    WaitForRollout {
        service: String,
    },
    DispatchWorkflows {
        workflows: Vec<String>,
    },
}

impl Plan {
    /// The steps that change something, in order.
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if let Some(paused) = &self.continue_deployment {
            steps.push(Step::ContinueDeployment {
                service: paused.options.service.clone(),
                rollback: paused.options.rollback,
            });
            steps.push(Step::WaitForRollout {
                service: paused.options.service.clone(),
            });
        }
        if let Some(execute) = &self.execute {
            steps.push(Step::ExecuteChangeSet {
                stack: execute.stack_name.clone(),
                change_set: execute.change_set_id.clone(),
            });
        }
        if let Some(package) = &self.package {
            let objects = package.artifacts.iter().filter(|(_, put)| *put).count();
            if objects > 0 {
                steps.push(Step::UploadPackagedFiles {
                    bucket: package.bucket.clone(),
                    objects,
                });
            }
        }
        if let Some(upload) = self.upload.as_ref().filter(|u| u.put) {
            steps.push(Step::UploadTemplate {
                bucket: upload.bucket.clone(),
                key: upload.key.clone(),
            });
        }
        if let Some(stack) = &self.stack {
            let name = stack.stack_name.clone();
            match &stack.action {
                StackAction::Update => steps.push(Step::ChangeSet {
                    stack: name,
                    kind: "UPDATE",
                    execute: stack.execute,
                }),
                StackAction::Create { replaces, direct } => {
                    if let Some(status) = replaces {
                        steps.push(Step::DeleteNeverCreatedStack {
                            stack: name.clone(),
                            status: status.clone(),
                        });
                    }
                    steps.push(if *direct {
                        Step::CreateStack { stack: name }
                    } else {
                        Step::ChangeSet {
                            stack: name,
                            kind: "CREATE",
                            execute: stack.execute,
                        }
                    });
                }
            }
        }
        match &self.service {
            Some(ServicePlan::AfterStack { waiting_for }) => steps.push(Step::RollOutAfterStack {
                waiting_for: waiting_for.clone(),
            }),
            Some(ServicePlan::Ready(rollout)) => {
                if rollout.registration == Registration::New {
                    steps.push(Step::RegisterTaskDefinition {
                        family: rollout
                            .rendered
                            .task_definition
                            .get("family")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
                if let Some(task) = &rollout.one_off_task {
                    steps.push(Step::RunOneOffTask {
                        cluster: task.cluster.clone(),
                    });
                    if task.wait_for_stop {
                        steps.push(Step::WaitForOneOffTask);
                    }
                }
                if let (Some(service), true, Some(codedeploy)) = (
                    &rollout.service,
                    rollout.updates_service,
                    &rollout.codedeploy,
                ) {
                    steps.push(Step::CreateDeployment {
                        service: service.clone(),
                        application: codedeploy.application.clone(),
                        deployment_group: codedeploy.deployment_group.clone(),
                    });
                    if rollout.wait_for_stability {
                        steps.push(Step::WaitForRollout {
                            service: service.clone(),
                        });
                    }
                } else if let (Some(service), true) = (&rollout.service, rollout.updates_service) {
                    steps.push(Step::UpdateService {
                        cluster: rollout.cluster.clone(),
                        service: service.clone(),
                    });
                    if rollout.wait_for_stability {
                        steps.push(Step::WaitForRollout {
                            service: service.clone(),
                        });
                    }
                }
            }
            None => {}
        }
        if !self.dispatch_workflows.is_empty() {
            steps.push(Step::DispatchWorkflows {
                workflows: self.dispatch_workflows.clone(),
            });
        }
        steps
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeleteNeverCreatedStack { stack, status } => write!(
                f,
                "stack {stack}: delete it ({status}: it never finished being created) to create it anew"
            ),
            Self::ChangeSet {
                stack,
                kind,
                execute: true,
            } => write!(f, "stack {stack}: {kind} change set, executed"),
            Self::ChangeSet {
                stack,
                kind,
                execute: false,
            } => write!(
                f,
                "stack {stack}: {kind} change set, kept for review (no-execute-changeset)"
            ),
            Self::CreateStack { stack } => {
                write!(f, "stack {stack}: CreateStack (timeout-in-minutes)")
            }
            Self::UploadPackagedFiles { bucket, objects } => {
                write!(f, "upload {objects} packaged file(s) to s3://{bucket}")
            }
            Self::UploadTemplate { bucket, key } => {
                write!(f, "upload the template to s3://{bucket}/{key}")
            }
            Self::ContinueDeployment { service, rollback } => write!(
                f,
                "service {service}: answer the paused deployment's hook with {}",
                if *rollback { "ROLLBACK" } else { "CONTINUE" }
            ),
            Self::ExecuteChangeSet { stack, change_set } => {
                write!(f, "stack {stack}: execute change set {change_set}")
            }
            Self::RollOutAfterStack { waiting_for } => write!(
                f,
                "roll out once the stack is applied (it creates the {}); the rollout is planned again then",
                waiting_for.join(", ")
            ),
            Self::RegisterTaskDefinition { family } => {
                write!(f, "register a new revision of task definition {family}")
            }
            Self::RunOneOffTask { cluster } => {
                write!(
                    f,
                    "run a one-off task from the revision in cluster {cluster}"
                )
            }
            Self::WaitForOneOffTask => write!(
                f,
                "wait for the one-off task to stop; go on only if its essential containers exit 0"
            ),
            Self::CreateDeployment {
                service,
                application,
                deployment_group,
            } => write!(
                f,
                "deploy service {service} blue/green through CodeDeploy {application}/{deployment_group}"
            ),
            Self::UpdateService { cluster, service } => {
                write!(f, "update service {service} in cluster {cluster}")
            }
            Self::WaitForRollout { service } => {
                write!(f, "wait for the rollout of service {service}")
            }
            Self::DispatchWorkflows { workflows } => {
                write!(f, "after success: dispatch {}", workflows.join(", "))
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "region {}", self.region)?;
        if let Some(image) = &self.image {
            writeln!(f, "image {}", image.deployed)?;
        }
        if let Some(package) = &self.package {
            for (artifact, put) in &package.artifacts {
                let state = if *put {
                    "uploaded first"
                } else {
                    "there already, same content"
                };
                writeln!(
                    f,
                    "packaged {} as s3://{}/{} ({state})",
                    artifact.source.display(),
                    package.bucket,
                    artifact.key
                )?;
            }
        }
        if let Some(upload) = &self.upload {
            let state = if upload.put {
                "uploaded first"
            } else {
                "there already, same content"
            };
            writeln!(f, "template by URL {} ({state})", upload.url)?;
        }
        if let Some(stack) = &self.stack {
            writeln!(
                f,
                "stack {}: {} parameter(s) sent",
                stack.stack_name,
                stack.parameters.len()
            )?;
        }
        if let Some(ServicePlan::Ready(rollout)) = &self.service {
            if rollout.strategy != "ROLLING" && rollout.updates_service {
                writeln!(
                    f,
                    "rollout strategy {}: followed as a service deployment, waiting until {:?}",
                    rollout.strategy, rollout.wait_until
                )?;
            }
            if let Some(task) = &rollout.one_off_task {
                writeln!(f, "{}", task.describe())?;
            }
            if let (Some(codedeploy), Some(service)) = (&rollout.codedeploy, &rollout.service) {
                for line in codedeploy.describe(service) {
                    writeln!(f, "{line}")?;
                }
            }
        }
        // What is left unchanged is no step, so it is said here.
        if let Some(ServicePlan::Ready(rollout)) = &self.service
            && let Registration::Unchanged { current } = &rollout.registration
        {
            writeln!(
                f,
                "task definition: unchanged, the service runs {current} already (nothing registered)"
            )?;
        }
        let steps = self.steps();
        if steps.is_empty() {
            return writeln!(f, "steps: none, nothing changes");
        }
        writeln!(f, "steps:")?;
        for (number, step) in steps.iter().enumerate() {
            writeln!(f, "{:>3}. {step}", number + 1)?;
        }
        Ok(())
    }
}

/// Builds the plan with read-only calls. Cheap checks come first (images,
/// cluster, service, rendering), the stack last: reading it may wait out
/// Writes the packaged template for review, under the workspace:
/// `.ecs-stack-deploy/<stack>.packaged.<yml|json>` (JSON stays JSON).
fn write_packaged_template(
    inputs: &crate::stack::options::StackOptions,
    body: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let extension = if body.trim_start().starts_with('{') {
        "json"
    } else {
        "yml"
    };
    let directory = inputs.workspace.join(".ecs-stack-deploy");
    std::fs::create_dir_all(&directory)?;
    let path = directory.join(format!("{}.packaged.{extension}", inputs.stack_name));
    std::fs::write(&path, body)?;
    Ok(path)
}

/// another operation, and a bad input should not wait for that.
pub async fn build_plan(
    prepared: &Prepared,
    clients: &Clients,
    settings: &DeploySettings,
    console: &Console,
) -> Result<Plan, JobError> {
    let image = match &prepared.image {
        Some(image) => Some(check_image(clients, image, Setting::Image, prepared, console).await?),
        None => None,
    };
    let mut container_images = Vec::new();
    for (container, reference) in &prepared.container_images {
        let checked = check_image(
            clients,
            reference,
            Setting::ContainerImages,
            prepared,
            console,
        )
        .await?;
        container_images.push(ContainerImage {
            container_name: container.clone(),
            image: checked.deployed,
        });
    }

    let execute = match &prepared.inputs.execute {
        Some(options) => {
            let _section = console.phase(&format!("Change set {}", options.change_set));
            let client = aws_sdk_cloudformation::Client::new(&clients.config);
            let view = read_change_set(&client, options, console)
                .await
                .map_err(JobError::Failed)?;
            if let Some(view) = &view {
                console.line(&format!(
                    "change set {} of stack {}: {} / {}, {} change(s)",
                    view.id,
                    view.stack_name,
                    view.status,
                    view.execution_status,
                    view.changes.len()
                ));
            }
            Some(
                decide_execute(options, view.as_ref())
                    .map_err(|refusal| JobError::BadInput(refusal.into()))?,
            )
        }
        None => None,
    };
    let stack_inputs = prepared.inputs.stack.as_ref();
    let files = prepared.stack_files.as_ref();
    let (rollout_options, service) = match &prepared.inputs.service {
        Some(service) => {
            let options = rollout_options(prepared, service, image.as_ref(), container_images)?;
            let created_earlier = created_by_stack(stack_inputs, files);
            let section = console.phase("Plan the rollout");
            let view = read_service(&clients.ecs, &options)
                .await
                .map_err(JobError::Failed)?;
            let decided = decide_service(&options, &view, created_earlier);
            drop(section);
            if let (Ok(ServicePlan::Ready(rollout)), true) = (&decided, prepared.inputs.verify) {
                verify_rollout(rollout, clients, &prepared.region, console).await?;
            }
            (
                Some(options),
                Some(decided.map_err(|refusals| JobError::BadInput(refusals.into()))?),
            )
        }
        None => (None, None),
    };

    let mut upload = None;
    let mut package = None;
    let mut packaged_template = None;
    let stack = match (stack_inputs, files) {
        (Some(inputs), Some(files)) => {
            let image_parameter = image.as_ref().map(|value| ImageParameter {
                name: prepared.inputs.image.image_parameter.clone(),
                value: value.deployed.clone(),
            });
            if prepared.inputs.verify {
                verify_stack(
                    files,
                    image_parameter.as_ref(),
                    clients,
                    &prepared.region,
                    console,
                )
                .await?;
            }
            let mut files = files.clone();
            let wants_upload = matches!(&files.template, TemplateSource::Body(body)
                if inputs.template_upload.as_ref().is_some_and(|o| is_uploaded(o, body.len())));
            if let Some(options) = inputs.template_upload.as_ref()
                && (files.package.is_some() || wants_upload)
            {
                let section = console.phase(&format!("Template bucket {}", options.bucket));
                let s3 = template_bucket_client(&clients.config);
                let endpoint = clients.config.endpoint_url();
                let region = bucket_region(&s3, options, &prepared.region)
                    .await
                    .map_err(JobError::from)?;
                if let Some(tree) = &files.package {
                    let (planned, body) = plan_package(&s3, tree, options, &region, endpoint)
                        .await
                        .map_err(JobError::from)?;
                    for line in planned.lines() {
                        console.line(&line);
                    }
                    let written = write_packaged_template(inputs, &body).map_err(|error| {
                        JobError::Failed(error.context("writing the packaged template"))
                    })?;
                    console.line(&format!("packaged template: {}", written.display()));
                    packaged_template = Some(written);
                    files.template = TemplateSource::Body(body);
                    package = Some(planned);
                }
                if let TemplateSource::Body(body) = &files.template
                    && is_uploaded(options, body.len())
                {
                    let planned = plan_upload(&s3, options, body, &region, endpoint)
                        .await
                        .map_err(JobError::from)?;
                    console.line(&format!("template URL {}", planned.url));
                    files.template = TemplateSource::Url(planned.url.clone());
                    upload = Some(planned);
                }
                drop(section);
            }
            files.image = image_parameter;
            let client = aws_sdk_cloudformation::Client::new(&clients.config);
            let planned = plan_stack(&client, inputs, &files, settings, console)
                .await
                .map_err(|error| match error {
                    StackPlanError::BadInput(refusals) => JobError::BadInput(refusals.into()),
                    StackPlanError::NeedsRecovery(recovery) => {
                        JobError::Failed(anyhow::anyhow!(recovery))
                    }
                    StackPlanError::Aws(error) => JobError::Failed(error),
                })?;
            Some(planned)
        }
        _ => None,
    };
    let continue_deployment = match &prepared.inputs.continue_deployment {
        Some(options) => {
            let _section =
                console.phase(&format!("Paused deployment of service {}", options.service));
            let planned = plan_continue(&clients.ecs, options)
                .await
                .map_err(JobError::Failed)?
                .map_err(|refusal| JobError::BadInput(refusal.into()))?;
            console.line(&format!(
                "service deployment {} waits at hook {}{}",
                planned.deployment_arn,
                planned.hook_id,
                planned
                    .stage
                    .as_deref()
                    .map(|s| format!(" (stage {s})"))
                    .unwrap_or_default()
            ));
            Some(planned)
        }
        None => None,
    };
    Ok(Plan {
        region: prepared.region.clone(),
        image,
        stack,
        package,
        packaged_template,
        upload,
        execute,
        continue_deployment,
        service,
        rollout_options,
        dispatch_workflows: prepared.inputs.github.dispatch_workflows.clone(),
    })
}

/// Verify before deploy: the revision about to be registered and the
/// service it goes to, as a tree of checks; a definite problem is a bad
/// input, before anything changes.
async fn verify_rollout(
    rollout: &ReadyRollout,
    clients: &Clients,
    region: &str,
    console: &Console,
) -> Result<(), JobError> {
    if rollout.registration != Registration::New && !rollout.updates_service {
        return Ok(());
    }
    let _section = console.phase("Verify");
    let document = &rollout.rendered.task_definition;
    let mut checks = shape_checks(document, rollout.launch_type.as_deref());
    checks.extend(
        reference_checks(
            &PreflightClients::new(&clients.config),
            document,
            &PreflightScope {
                region: region.to_string(),
            },
        )
        .await,
    );
    let ec2 = Ec2Reader::new(&clients.config);
    if let Some(service) = &rollout.service {
        let (balancing, target_groups) =
            load_balancer_checks(&clients.ecs, service, &rollout.targets, document).await;
        checks.extend(balancing);
        if let Some(network) = &rollout.network {
            let subject = format!("service {service}");
            checks.push(network_check(&ec2, &subject, network, &target_groups).await);
        }
    }
    // The one-off task's network, when the inputs changed any part of the
    // service's.
    if let Some(network) = rollout
        .one_off_task
        .as_ref()
        .and_then(|t| t.network.as_ref())
        && Some(network) != rollout.network.as_ref()
    {
        checks.push(network_check(&ec2, ONE_OFF_TASK_SUBJECT, network, &[]).await);
    }
    report_checks(&checks, Setting::TaskDefinition, Setting::Service, console)
}

/// The subject of the one-off task's checks, whose NG is `run-task-subnets`'.
const ONE_OFF_TASK_SUBJECT: &str = "the one-off task (run-task)";

/// Prints the checks as a tree; every NG is a bad input of `setting` (a
/// service's, of `service_setting`).
fn report_checks(
    checks: &[Check],
    setting: Setting,
    service_setting: Setting,
    console: &Console,
) -> Result<(), JobError> {
    for line in tree(checks) {
        console.plain(&line);
    }
    for check in checks.iter().filter(|c| is_denied_to_caller(&c.verdict)) {
        if let Verdict::Skip(reason) = &check.verdict {
            console.warning(&format!("verify: {} not checked: {reason}", check.name));
        }
    }
    let refused: Vec<InputError> = checks
        .iter()
        .filter_map(|check| match &check.verdict {
            Verdict::Ng { problem, fix } => Some(InputError::from(Refusal::new(
                if check.subject.starts_with("service") {
                    service_setting
                } else if check.subject == ONE_OFF_TASK_SUBJECT {
                    Setting::RunTaskSubnets
                } else {
                    setting
                },
                &check.subject,
                format!("fails the check `{}`: {problem}", check.name),
                fix.clone(),
            ))),
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(JobError::BadInput(InputErrors(refused)))
    }
}

/// Verifies the task definitions the template declares itself, with the
/// parameter values known before the deploy (defaults, overrides, the
/// image): what CloudFormation decides at deploy time is a SKIP.
async fn verify_stack(
    files: &LoadedStackFiles,
    image: Option<&ImageParameter>,
    clients: &Clients,
    region: &str,
    console: &Console,
) -> Result<(), JobError> {
    let TemplateSource::Body(body) = &files.template else {
        return Ok(());
    };
    let (_, mut known) = template_images(body);
    for entry in &files.overrides {
        if let OverrideValue::Value(value) = &entry.value {
            known.insert(entry.key.clone(), value.clone());
        }
    }
    if let Some(image) = image {
        known.insert(
            image
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE_PARAMETER.to_string()),
            image.value.clone(),
        );
    }
    let found = template_task_definitions(body, &known);
    let services = template_services(body, &known);
    if found.is_empty() && services.is_empty() {
        return Ok(());
    }
    let _section = console.phase("Verify the template's task definitions and services");
    let preflight = PreflightClients::new(&clients.config);
    let scope = PreflightScope {
        region: region.to_string(),
    };
    let mut checks: Vec<Check> = Vec::new();
    for (_, document) in &found {
        checks.extend(shape_checks(document, None));
        checks.extend(reference_checks(&preflight, document, &scope).await);
    }
    let ec2 = Ec2Reader::new(&clients.config);
    for service in services {
        let name = format!("{} (the template's)", service.logical_id);
        let document = service
            .task_definition
            .as_ref()
            .and_then(|id| found.iter().find(|(logical_id, _)| logical_id == id));
        let mut target_groups = Vec::new();
        if let Some((_, document)) = document {
            let targets: Vec<ServiceTarget> = service
                .targets
                .iter()
                .map(|(target_group_arn, container, port)| ServiceTarget {
                    target_group_arn: target_group_arn.clone(),
                    container: container.clone(),
                    port: *port,
                })
                .collect();
            let (balancing, vpcs) =
                load_balancer_checks(&clients.ecs, &name, &targets, document).await;
            checks.extend(balancing);
            target_groups = vpcs;
        }
        if !service.subnets.is_empty() || !service.security_groups.is_empty() {
            let network = AwsVpcConfiguration::builder()
                .set_subnets(Some(service.subnets.clone()))
                .set_security_groups(Some(service.security_groups.clone()))
                .build()
                .map_err(|error| JobError::Failed(error.into()))?;
            let subject = format!("service {name}");
            checks.push(network_check(&ec2, &subject, &network, &target_groups).await);
        }
    }
    report_checks(&checks, Setting::Template, Setting::Template, console)
}

/// What the stack step may create before the rollout: only a stack that is
/// executed creates anything, and what it may create is read from the
/// template (unknown, for a URL or a transformed template: anything).
fn created_by_stack(
    inputs: Option<&StackInputs>,
    files: Option<&LoadedStackFiles>,
) -> CreatedEarlier {
    let may_create = |resource_type: &str| {
        inputs.is_some_and(|s| s.execute_change_set)
            && files.is_some_and(|f| may_declare(f.resource_types.as_deref(), resource_type))
    };
    CreatedEarlier {
        cluster: may_create("AWS::ECS::Cluster"),
        service: may_create("AWS::ECS::Service"),
        task_definition: may_create("AWS::ECS::TaskDefinition"),
    }
}

/// The rollout's own options, from the inputs.
fn rollout_options(
    prepared: &Prepared,
    service: &ServiceInputs,
    image: Option<&CheckedImage>,
    container_images: Vec<ContainerImage>,
) -> Result<RolloutOptions, JobError> {
    let origin = match (&service.task_definition, &prepared.task_definition_file) {
        (TaskDefinitionSource::File(_), Some((document, source))) => {
            TaskDefinitionOrigin::Document {
                document: document.clone(),
                source: source.clone(),
            }
        }
        (TaskDefinitionSource::Registered(reference), _) => {
            TaskDefinitionOrigin::Registered(reference.clone())
        }
        (TaskDefinitionSource::File(path), None) => {
            return Err(JobError::BadInput(InputErrors::from(InputError::new(
                "task-definition",
                &path.display().to_string(),
                "was not loaded",
                "give a readable task definition file",
            ))));
        }
    };
    // Every container `container-name` lists gets the image and the render
    // inputs, as amazon-ecs-render-task-definition does with a comma list.
    let named = &service.container_names;
    let mut images: Vec<ContainerImage> = match image {
        Some(image) => named
            .iter()
            .map(|container| ContainerImage {
                container_name: container.clone(),
                image: image.deployed.clone(),
            })
            .collect(),
        None => Vec::new(),
    };
    images.extend(container_images);
    let environment = if service.environment.is_empty() {
        Vec::new()
    } else {
        named
            .iter()
            .map(|container| ContainerEnvironment {
                container_name: container.clone(),
                changes: service.environment.clone(),
            })
            .collect()
    };
    let containers = if service.container_settings.is_empty() {
        Vec::new()
    } else {
        named
            .iter()
            .map(|container| ContainerChanges {
                container_name: container.clone(),
                settings: service.container_settings.clone(),
            })
            .collect()
    };
    Ok(RolloutOptions {
        origin,
        cluster: service.cluster.clone(),
        service: service.service.clone(),
        render: RenderRequest {
            images,
            environment,
            containers,
            task_role_arn: service.task_role_arn.clone(),
            execution_role_arn: service.execution_role_arn.clone(),
            keep_empty_keys: service.keep_empty_keys.clone(),
        },
        desired_count: service.desired_count,
        force_new_deployment: service.force_new_deployment,
        service_settings: service.service_settings.clone(),
        wait_for_stability: service.wait_for_service_stability,
        wait_timeout: service.wait_timeout,
        one_off_task: service.one_off_task.clone(),
        codedeploy: CodeDeployOptions {
            appspec: prepared.appspec_file.clone(),
            ..service.codedeploy.clone()
        },
        codedeploy_inputs_given: service.codedeploy_inputs_given.clone(),
        wait_until: service.wait_until.clone(),
        strategy: service.strategy.clone(),
    })
}

/// Checks an image against ECR (when it lives there), warns about mutable
/// repositories and pins the digest when asked.
async fn check_image(
    clients: &Clients,
    image: &ImageReference,
    setting: Setting,
    prepared: &Prepared,
    console: &Console,
) -> Result<CheckedImage, JobError> {
    let pin_digest = prepared.inputs.image.pin_digest;
    let Some(location) = image.ecr().filter(|l| !l.is_public()) else {
        console.line(&format!(
            "image {image} ({}) is not in a private ECR registry: its tag cannot be checked before deploying",
            image.fully_qualified()
        ));
        return Ok(CheckedImage {
            deployed: image.to_string(),
            digest: None,
        });
    };
    let section = console.phase(&format!("Image {image}"));
    let ecr_config = aws_sdk_ecr::config::Builder::from(&clients.config)
        .region(aws_config::Region::new(location.region().to_string()))
        .build();
    let ecr = aws_sdk_ecr::Client::from_conf(ecr_config);
    let found = inspect_ecr_image(
        &ecr,
        image,
        location.account_id(),
        &location.repository_name,
        setting,
    )
    .await
    .map_err(JobError::from)?;
    console.line(&format!(
        "image {image} is in ECR with digest {}",
        found.digest
    ));
    drop(section);
    if let Some(error) = &found.mutability_error {
        console.explain_failed("DescribeRepositories", error);
    }
    if found.tag_is_mutable == Some(true) && image.digest().is_none() && !pin_digest {
        console.warning(&format!(
            "ECR repository {} allows tags to be overwritten (imageTagMutability MUTABLE): set it to IMMUTABLE, or use pin-digest: true so the deploy is pinned to {}",
            location.repository_name, found.digest
        ));
    }
    let deployed = if pin_digest && image.digest().is_none() && !found.digest.is_empty() {
        image
            .with_digest(&found.digest)
            .map_err(|e| {
                JobError::Failed(anyhow::anyhow!("pinning {image} to {}: {e}", found.digest))
            })?
            .to_string()
    } else {
        image.to_string()
    };
    Ok(CheckedImage {
        deployed,
        digest: Some(found.digest),
    })
}

#[cfg(test)]
mod tests {
    //! "These inputs and this AWS view give exactly these steps": the plan's
    //! decisions, with no emulator.

    use super::*;
    use crate::inputs::{DeployInputs, InputContext, RawInputs};
    use crate::service::plan::{CurrentService, ServiceView};
    use crate::service::register::as_registered;
    use crate::stack::changeset::TemplateSource;
    use crate::stack::deploy::{ExistingStack, StackView, decide_stack};
    use crate::stack::parameters::DeclaredParameter;
    use crate::stack::status::classify;
    use serde_json::json;

    const TEMPLATE: &str =
        "Parameters:\n  ImageUri: {Type: String}\nResources:\n  Queue: {Type: AWS::SQS::Queue}\n";

    fn inputs(pairs: &[(&str, &str)]) -> DeployInputs {
        let mut raw = RawInputs::default();
        for (name, value) in pairs {
            raw.set(name, value);
        }
        let context = InputContext {
            workspace: std::path::PathBuf::from("/ws"),
            default_change_set_name: "cs-1".into(),
            run_identity: "1/1/deploy/step".into(),
        };
        DeployInputs::from_raw(&raw, &context).unwrap_or_else(|e| panic!("{e}"))
    }

    fn files(resource_types: &[&str]) -> LoadedStackFiles {
        LoadedStackFiles {
            template: TemplateSource::Body(TEMPLATE.into()),
            declared: Some(vec![DeclaredParameter {
                name: "ImageUri".into(),
                no_echo: false,
                has_default: false,
            }]),
            resource_types: Some(resource_types.iter().map(|t| t.to_string()).collect()),
            code_deploy_services: Vec::new(),
            package: None,
            nested_stacks: false,
            output_keys: Some(Vec::new()),
            overrides: Vec::new(),
            image: Some(ImageParameter {
                name: None,
                value: "repo:abc".into(),
            }),
        }
    }

    /// A stack view: `None` for a missing stack, else its status.
    fn stack_view(status: Option<&str>, files: &LoadedStackFiles) -> StackView {
        let existing = status.map(|status| ExistingStack {
            stack_id: "arn:stack/web/1".into(),
            status: status.into(),
            parameter_keys: vec!["ImageUri".into()],
        });
        StackView {
            condition: status.map_or(crate::stack::status::StackCondition::Missing, |s| {
                classify("web", s, false)
            }),
            existing,
            declared: files.declared.clone().unwrap_or_default(),
            resource_types: files.resource_types.clone(),
            upstream: Vec::new(),
        }
    }

    fn task_definition(image: &str) -> serde_json::Value {
        json!({"family": "web", "containerDefinitions": [{"name": "app", "image": image}]})
    }

    fn service_running(image: Option<&str>) -> ServiceView {
        ServiceView {
            cluster_active: image.is_some(),
            service: image.map(|image| CurrentService {
                task_definition: Some("arn:td/web:7".into()),
                task_definition_document: as_registered(&task_definition(image), "x").ok(),
                launch: Default::default(),
                controller: "ECS".into(),
                load_balancers: Vec::new(),
                deployment_configuration: None,
                targets: Vec::new(),
            }),
            registered_origin: None,
            codedeploy: None,
        }
    }

    /// Decides the plan as `build_plan` does, from stubbed views.
    fn plan(
        pairs: &[(&str, &str)],
        stack: Option<(Option<&str>, &[&str])>,
        service: Option<ServiceView>,
    ) -> Result<Vec<Step>, String> {
        let inputs = inputs(pairs);
        let console = Console::new(false);
        let stack_files = stack.map(|(_, types)| files(types));
        let service_plan = match (&inputs.service, service) {
            (Some(service_inputs), Some(view)) => {
                let options = RolloutOptions {
                    origin: TaskDefinitionOrigin::Document {
                        document: task_definition("repo:old"),
                        source: "td.json".into(),
                    },
                    cluster: service_inputs.cluster.clone(),
                    service: service_inputs.service.clone(),
                    render: RenderRequest {
                        images: vec![ContainerImage {
                            container_name: "app".into(),
                            image: "repo:abc".into(),
                        }],
                        ..RenderRequest::default()
                    },
                    desired_count: service_inputs.desired_count,
                    force_new_deployment: service_inputs.force_new_deployment,
                    service_settings: service_inputs.service_settings.clone(),
                    wait_for_stability: service_inputs.wait_for_service_stability,
                    wait_timeout: service_inputs.wait_timeout,
                    one_off_task: service_inputs.one_off_task.clone(),
                    codedeploy: service_inputs.codedeploy.clone(),
                    codedeploy_inputs_given: service_inputs.codedeploy_inputs_given.clone(),
                    wait_until: service_inputs.wait_until.clone(),
                    strategy: service_inputs.strategy.clone(),
                };
                let created = created_by_stack(inputs.stack.as_ref(), stack_files.as_ref());
                Some(
                    decide_service(&options, &view, created)
                        .map_err(|e| InputErrors::from(e).to_string())?,
                )
            }
            _ => None,
        };
        let stack_plan = match (&inputs.stack, stack, &stack_files) {
            (Some(stack_inputs), Some((status, _)), Some(files)) => Some(
                decide_stack(stack_inputs, files, &stack_view(status, files), &console).map_err(
                    |e| match e {
                        StackPlanError::BadInput(refusals) => {
                            InputErrors::from(refusals).to_string()
                        }
                        other => other.to_string(),
                    },
                )?,
            ),
            _ => None,
        };
        let plan = Plan {
            region: "us-east-1".into(),
            image: None,
            stack: stack_plan,
            package: None,
            packaged_template: None,
            upload: None,
            execute: None,
            continue_deployment: None,
            service: service_plan,
            rollout_options: None,
            dispatch_workflows: inputs.github.dispatch_workflows.clone(),
        };
        assert!(!plan.to_string().is_empty());
        Ok(plan.steps())
    }

    fn change_set(kind: &'static str, execute: bool) -> Step {
        Step::ChangeSet {
            stack: "web".into(),
            kind,
            execute,
        }
    }

    const STACK: &[(&str, &str)] = &[("name", "web"), ("template", "t.yml")];
    const STACK_AND_SERVICE: &[(&str, &str)] = &[
        ("name", "web"),
        ("template", "t.yml"),
        ("task-definition", "td.json"),
        ("service", "web"),
        ("cluster", "prod"),
    ];

    #[test]
    fn an_image_for_a_service_the_stack_deploys_through_codedeploy_is_refused_on_update() {
        let inputs = inputs(STACK);
        let Some(stack_inputs) = inputs.stack.as_ref() else {
            panic!("no stack inputs");
        };
        let mut files = files(&["AWS::ECS::Service"]);
        files.code_deploy_services = vec!["Service".into()];
        let console = Console::new(false);
        let update = decide_stack(
            stack_inputs,
            &files,
            &stack_view(Some("UPDATE_COMPLETE"), &files),
            &console,
        );
        match update {
            Err(StackPlanError::BadInput(refusals)) => {
                assert_eq!(refusals.0[0].setting, Setting::ImageParameter);
                assert!(refusals.0[0].problem.contains("`Service`"), "{refusals:?}");
                assert!(refusals.0[0].fix.contains("AWS::CodeDeployBlueGreen"));
            }
            other => panic!("not refused: {other:?}"),
        }
        // Creating the stack creates the service with its first revision.
        assert!(decide_stack(stack_inputs, &files, &stack_view(None, &files), &console).is_ok());
    }

    #[test]
    fn each_stack_state_gives_its_steps() {
        let cases: [(Option<&str>, Vec<Step>); 4] = [
            (None, vec![change_set("CREATE", true)]),
            (Some("UPDATE_COMPLETE"), vec![change_set("UPDATE", true)]),
            (
                Some("ROLLBACK_COMPLETE"),
                vec![
                    Step::DeleteNeverCreatedStack {
                        stack: "web".into(),
                        status: "ROLLBACK_COMPLETE".into(),
                    },
                    change_set("CREATE", true),
                ],
            ),
            (
                Some("REVIEW_IN_PROGRESS"),
                vec![
                    Step::DeleteNeverCreatedStack {
                        stack: "web".into(),
                        status: "REVIEW_IN_PROGRESS".into(),
                    },
                    change_set("CREATE", true),
                ],
            ),
        ];
        for (status, expected) in cases {
            let types: &[&str] = &["AWS::SQS::Queue"];
            assert_eq!(
                plan(STACK, Some((status, types)), None),
                Ok(expected),
                "{status:?}"
            );
        }
    }

    #[test]
    fn review_only_timeouts_and_dispatch_change_the_steps() {
        let types: &[&str] = &["AWS::SQS::Queue"];
        let review = [
            STACK,
            &[
                ("no-execute-changeset", "true"),
                ("dispatch-workflows", "next.yml"),
                ("github-token", "t"),
            ],
        ]
        .concat();
        assert_eq!(
            plan(&review, Some((None, types)), None),
            Ok(vec![
                change_set("CREATE", false),
                Step::DispatchWorkflows {
                    workflows: vec!["next.yml".into()]
                }
            ])
        );
        let timeout = [STACK, &[("timeout-in-minutes", "10")]].concat();
        assert_eq!(
            plan(&timeout, Some((None, types)), None),
            Ok(vec![Step::CreateStack {
                stack: "web".into()
            }])
        );
        let stuck = plan(STACK, Some((Some("UPDATE_ROLLBACK_FAILED"), types)), None);
        assert!(stuck.is_err_and(|e| e.contains("continue-update-rollback")));
    }

    #[test]
    fn stack_and_service_roll_out_after_the_stack() {
        let types: &[&str] = &["AWS::SQS::Queue"];
        assert_eq!(
            plan(
                STACK_AND_SERVICE,
                Some((Some("UPDATE_COMPLETE"), types)),
                Some(service_running(Some("repo:old")))
            ),
            Ok(vec![
                change_set("UPDATE", true),
                Step::RegisterTaskDefinition {
                    family: "web".into()
                },
                Step::UpdateService {
                    cluster: "prod".into(),
                    service: "web".into()
                },
                Step::WaitForRollout {
                    service: "web".into()
                },
            ])
        );
        // The service runs the same image: only the stack changes.
        assert_eq!(
            plan(
                STACK_AND_SERVICE,
                Some((Some("UPDATE_COMPLETE"), types)),
                Some(service_running(Some("repo:abc")))
            ),
            Ok(vec![change_set("UPDATE", true)])
        );
    }

    /// Regression: a missing cluster was found only after the stack had
    /// been created; now it is a bad input before any change, unless the
    /// stack is what creates it.
    #[test]
    fn a_missing_cluster_is_refused_unless_the_stack_creates_it() {
        let queue: &[&str] = &["AWS::SQS::Queue"];
        let refused = plan(
            STACK_AND_SERVICE,
            Some((None, queue)),
            Some(service_running(None)),
        );
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("input `cluster`")),
            "{refused:?}"
        );
        let creates: &[&str] = &["AWS::ECS::Cluster", "AWS::ECS::Service"];
        assert_eq!(
            plan(
                STACK_AND_SERVICE,
                Some((None, creates)),
                Some(service_running(None))
            ),
            Ok(vec![
                change_set("CREATE", true),
                Step::RollOutAfterStack {
                    waiting_for: vec!["cluster"]
                }
            ])
        );
        // Kept for review, the stack creates nothing: refused again.
        let review = [STACK_AND_SERVICE, &[("no-execute-changeset", "true")]].concat();
        assert!(
            plan(&review, Some((None, creates)), Some(service_running(None)))
                .is_err_and(|e| e.contains("input `cluster`"))
        );
    }

    /// `mode: execute-only` is its own deploy kind: no template, no change
    /// set created, one step that executes the reviewed one.
    #[test]
    fn execute_only_plans_one_execution_and_nothing_else() {
        let inputs = inputs(&[
            ("mode", "execute-only"),
            ("name", "web"),
            ("execute-change-set-id", "web-CS"),
            ("dispatch-workflows", "next.yml"),
            ("github-token", "t"),
        ]);
        assert!(inputs.stack.is_none() && inputs.service.is_none());
        let options = inputs.execute.clone().expect("execute options");
        let view = crate::stack::execute::ChangeSetView {
            id: "arn:aws:cloudformation:us-east-1:1:changeSet/web-CS/1".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:1:stack/web/1".into(),
            stack_name: "web".into(),
            status: "CREATE_COMPLETE".into(),
            execution_status: "AVAILABLE".into(),
            status_reason: None,
            changes: Vec::new(),
        };
        let plan = Plan {
            region: "us-east-1".into(),
            image: None,
            stack: None,
            package: None,
            packaged_template: None,
            upload: None,
            execute: Some(decide_execute(&options, Some(&view)).unwrap()),
            continue_deployment: None,
            service: None,
            rollout_options: None,
            dispatch_workflows: inputs.github.dispatch_workflows.clone(),
        };
        assert_eq!(
            plan.steps(),
            vec![
                Step::ExecuteChangeSet {
                    stack: "web".into(),
                    change_set: "arn:aws:cloudformation:us-east-1:1:changeSet/web-CS/1".into(),
                },
                Step::DispatchWorkflows {
                    workflows: vec!["next.yml".into()],
                },
            ]
        );
    }
}

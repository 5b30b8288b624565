//! The apply phase: the plan's steps in order, each recorded in the
//! [`JobReport`] the moment AWS confirms it, so a failure or a cancellation
//! reports exactly what was applied.
//!
//! Apply makes no decision the plan could have made. The one exception is
//! forced by the order of steps: a rollout that waits for what the stack
//! creates (a cluster, a service, a task definition family) is read and
//! decided after the stack step, by the same read-only code the plan uses.

use anyhow::Context as _;

use crate::console::Console;
use crate::env::Environment;
use crate::inputs::InputErrors;
use crate::job::{Clients, JobError, Prepared};
use crate::plan::Plan;
use crate::report::{CodeDeployRecord, JobReport, OneOffTaskRecord};
use crate::service::blue_green::{
    Outcome, start_deployment, wait_for_deployment, wait_for_idle_group,
};
use crate::service::codedeploy::CodeDeployPlan;
use crate::service::plan::{
    CreatedEarlier, ReadyRollout, Registration, ServicePlan, decide_service, read_service,
};
use crate::service::register::{register_task_definition, registration_request};
use crate::service::rollout::{Rollout, update_service, wait_for_rollout};
use crate::service::strategy::{
    ContinuePlan, DeploymentVerdict, Follow, continue_deployment, find_service_deployment,
    wait_for_service_deployment,
};
use crate::service::task::{OneOffTaskPlan, failure_message, run_one_off_task, wait_for_task_stop};
use crate::service::watch::{
    EcsClients, ServiceWatch, describe_service, service_location, short_task_definition,
};
use crate::stack::changeset::TemplateSource;
use crate::stack::deploy::{DeploySettings, StackDeployment, StackPlan, deploy_stack};
use crate::stack::execute::execute_planned;
use crate::stack::upload::{template_bucket_client, upload_package, upload_template};
use crate::stack::wait::{PollSchedule, Poller};
use crate::taskdef::render::to_pretty_json;

/// Where rendered files go, relative to the workspace.
const RENDERED_DIR: &str = ".ecs-stack-deploy";

/// Applies `plan`.
pub async fn apply_plan(
    plan: &Plan,
    prepared: &Prepared,
    clients: &Clients,
    settings: &DeploySettings,
    env: &Environment,
    console: &Console,
    report: &mut JobReport,
) -> Result<(), JobError> {
    report.apply_started = true;
    if let Some(paused) = &plan.continue_deployment {
        return answer_paused_deployment(paused, &clients.ecs, settings, console, report)
            .await
            .map_err(JobError::Failed);
    }
    if let Some(execute) = &plan.execute {
        let client = aws_sdk_cloudformation::Client::new(&clients.config);
        let deployment = report.stack.insert(StackDeployment::default());
        let _section = console.phase(&format!(
            "Execute change set on stack {}",
            execute.stack_name
        ));
        execute_planned(&client, execute, settings, console, deployment)
            .await
            .map_err(JobError::Failed)?;
    }
    if let Some(written) = &plan.packaged_template {
        let relative = prepared
            .inputs
            .stack
            .as_ref()
            .and_then(|stack| written.strip_prefix(&stack.workspace).ok())
            .unwrap_or(written);
        report.packaged_template = Some(relative.display().to_string());
    }
    if let Some(package) = &plan.package {
        let s3 = template_bucket_client(&clients.config);
        upload_package(&s3, package, &mut report.uploaded_files)
            .await
            .map_err(JobError::Failed)?;
        if !report.uploaded_files.is_empty() {
            console.line(&format!(
                "uploaded {} packaged file(s) to s3://{}",
                report.uploaded_files.len(),
                package.bucket
            ));
        }
    }
    if let (Some(upload), Some(files)) = (&plan.upload, &prepared.stack_files)
        && upload.put
        && let TemplateSource::Body(body) = &files.template
    {
        let s3 = template_bucket_client(&clients.config);
        upload_template(&s3, upload, body)
            .await
            .map_err(JobError::Failed)?;
        let uri = format!("s3://{}/{}", upload.bucket, upload.key);
        console.line(&format!("uploaded the template to {uri}"));
        report.uploaded_template = Some(uri);
    }
    if let (Some(stack_plan), Some(inputs)) = (&plan.stack, &prepared.inputs.stack) {
        let client = aws_sdk_cloudformation::Client::new(&clients.config);
        let deployment = report.stack.insert(StackDeployment::default());
        deploy_stack(&client, inputs, stack_plan, settings, console, deployment)
            .await
            .map_err(JobError::Failed)?;
        if deployment.executed
            && let Some(stack_id) = deployment.stack_id.clone()
        {
            record_stack_ecs_resources(
                &client,
                &clients.ecs,
                stack_plan,
                &stack_id,
                console,
                report,
            )
            .await;
        }
    }
    let rollout = match &plan.service {
        None => return Ok(()),
        Some(ServicePlan::Ready(rollout)) => (**rollout).clone(),
        Some(ServicePlan::AfterStack { waiting_for }) => {
            let Some(options) = &plan.rollout_options else {
                return Ok(());
            };
            console.line(&format!(
                "the stack is applied: planning the rollout that waited for the {}",
                waiting_for.join(", ")
            ));
            let view = read_service(&clients.ecs, options)
                .await
                .map_err(JobError::Failed)?;
            match decide_service(options, &view, CreatedEarlier::default()) {
                // This part of the plan is new: print it as the plan was.
                Ok(ServicePlan::Ready(rollout)) => {
                    for line in rollout.describe() {
                        console.plain(&line);
                    }
                    *rollout
                }
                Ok(ServicePlan::AfterStack { waiting_for }) => {
                    return Err(JobError::Failed(anyhow::anyhow!(
                        "the stack was applied but the {} it was to create is still missing",
                        waiting_for.join(", ")
                    )));
                }
                // Refused now, after the stack changed: a failure, not a
                // bad input, since something was applied.
                Err(refusals) => {
                    return Err(JobError::Failed(anyhow::anyhow!(
                        "after the stack was applied, the rollout cannot go ahead: {}",
                        InputErrors::from(refusals)
                    )));
                }
            }
        }
    };
    roll_out(&rollout, &clients.ecs, settings, env, console, report)
        .await
        .map_err(JobError::Failed)
}

/// Finds the task definition and service a stack manages, for the outputs.
/// These calls only describe what the stack did: a failure is one warning.
async fn record_stack_ecs_resources(
    client: &aws_sdk_cloudformation::Client,
    ecs: &EcsClients,
    plan: &StackPlan,
    stack_id: &str,
    console: &Console,
    report: &mut JobReport,
) {
    // A template without ECS resources has none to find: spare the call.
    if !plan.may_declare("AWS::ECS::Service") && !plan.may_declare("AWS::ECS::TaskDefinition") {
        return;
    }
    let resources = match stack_ecs_resources(client, stack_id).await {
        Ok(resources) => resources,
        Err(error) => {
            console.explain_failed("ListStackResources", &error);
            return;
        }
    };
    report.task_definition_arn = resources.task_definition_arn;
    report.service_arn = resources.service_arn;
    if let Some(service_arn) = &report.service_arn {
        match stack_service_rollout(ecs, service_arn).await {
            Ok(rollout) => report.rollout = rollout,
            Err(error) => console.explain_failed("DescribeServices", &error),
        }
    }
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

/// The first task definition and service of the stack, looking into its
/// nested stacks too (in the order they are listed, depth first).
async fn stack_ecs_resources(
    client: &aws_sdk_cloudformation::Client,
    stack_id: &str,
) -> anyhow::Result<StackEcsResources> {
    let mut found = StackEcsResources::default();
    let mut stacks = vec![stack_id.to_string()];
    while let Some(stack) = stacks.pop() {
        let mut nested = Vec::new();
        let mut token = None;
        loop {
            let page = client
                .list_stack_resources()
                .stack_name(&stack)
                .set_next_token(token)
                .send()
                .await
                .map_err(crate::aws::aws_error)
                .with_context(|| format!("listing the resources of stack {stack}"))?;
            for resource in page.stack_resource_summaries() {
                let physical = resource.physical_resource_id().map(str::to_string);
                match resource.resource_type() {
                    Some("AWS::ECS::TaskDefinition") if found.task_definition_arn.is_none() => {
                        found.task_definition_arn = physical;
                    }
                    Some("AWS::ECS::Service") if found.service_arn.is_none() => {
                        found.service_arn = physical;
                    }
                    Some("AWS::CloudFormation::Stack") => nested.extend(physical),
                    _ => {}
                }
            }
            match page.next_token() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        if found.task_definition_arn.is_some() && found.service_arn.is_some() {
            break;
        }
        stacks.extend(nested.into_iter().rev());
    }
    Ok(found)
}

/// Writes the rendered task definition, registers it when the plan says
/// so, updates the service and waits for the rollout.
async fn roll_out(
    rollout: &ReadyRollout,
    clients: &EcsClients,
    settings: &DeploySettings,
    env: &Environment,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let section = console.phase("Task definition");
    let path = write_rendered(env, &rollout.rendered.task_definition)?;
    console.line(&format!("rendered task definition written to {path}"));
    report.task_definition_path = Some(path);
    let task_definition_arn = match &rollout.registration {
        Registration::Unchanged { current } => {
            console.line(&format!(
                "the rendered task definition equals the service's current {}: no new revision is registered",
                short_task_definition(current)
            ));
            current.clone()
        }
        Registration::New => {
            let request = registration_request(
                &rollout.rendered.task_definition,
                rollout.rendered.tags.as_ref(),
                &rollout.source,
            )?;
            let registered = register_task_definition(&clients.ecs, request).await?;
            console.line(&format!("registered {}", registered.arn));
            report.registered_task_definition = Some(registered.arn.clone());
            registered.arn
        }
    };
    report.task_definition_arn = Some(task_definition_arn.clone());
    drop(section);

    if let Some(task) = &rollout.one_off_task {
        run_task_first(
            task,
            &task_definition_arn,
            clients,
            settings,
            rollout.wait_timeout,
            console,
            report,
        )
        .await?;
    }

    let Some(name) = &rollout.service else {
        console
            .line("no `service` given: the task definition is registered, no service is updated");
        return Ok(());
    };
    if !rollout.updates_service {
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
    if let Some(codedeploy) = &rollout.codedeploy {
        return blue_green_rollout(
            rollout,
            codedeploy,
            name,
            &task_definition_arn,
            clients,
            settings,
            console,
            report,
        )
        .await;
    }
    let _section = console.phase(&format!("Roll out service {name}"));
    let mut watch = ServiceWatch::new(&rollout.cluster, name);
    // Service deployments created from here on are ours (with slack for
    // clock skew between this machine and AWS).
    let since = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    let (service_arn, deployment_id) =
        update_service(clients, rollout, name, &task_definition_arn).await?;
    report.service_arn = Some(service_arn.clone());
    report.service_update_started = true;
    let state = report.rollout.insert(Rollout {
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
    if !rollout.wait_for_stability {
        console.line("wait-for-service-stability is false: not waiting for the rollout");
        return Ok(());
    }
    let schedule = settings
        .poll
        .capped_by(rollout.service_settings.max_poll_delay);
    if rollout.strategy != "ROLLING" {
        return follow_service_deployment(
            rollout,
            name,
            deployment_id.as_deref(),
            since,
            clients,
            settings,
            schedule,
            &mut watch,
            console,
            report,
        )
        .await;
    }
    wait_for_rollout(
        clients,
        rollout,
        &mut watch,
        state,
        console,
        schedule,
        settings.fail_fast,
    )
    .await
}

/// `continue-deployment`: answers the paused hook, then follows the
/// deployment to what `wait-until` asks.
async fn answer_paused_deployment(
    paused: &ContinuePlan,
    clients: &EcsClients,
    settings: &DeploySettings,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let options = &paused.options;
    let _section = console.phase(&format!("Paused deployment of service {}", options.service));
    continue_deployment(clients, paused).await?;
    let answer = format!(
        "hook {} of service deployment {} answered with {}",
        paused.hook_id,
        paused.deployment_arn,
        if options.rollback {
            "ROLLBACK"
        } else {
            "CONTINUE"
        }
    );
    console.line(&answer);
    report.answered_hook = Some(answer);
    report.service_deployment = Some(paused.deployment_arn.clone());
    let mut watch = ServiceWatch::new(&options.cluster, &options.service);
    let follow = Follow {
        arn: &paused.deployment_arn,
        wait_until: &options.wait_until,
        ecs_deployment: None,
        fail_fast: settings.fail_fast,
        is_essential: &|_| true,
    };
    let verdict = wait_for_service_deployment(
        clients,
        follow,
        &mut watch,
        settings.poll.capped_by(options.max_poll_delay),
        options.wait_timeout,
        console,
    )
    .await?;
    report.service_deployment = None;
    let state = report.rollout.get_or_insert_with(Rollout::default);
    match verdict {
        DeploymentVerdict::Done { state: verdict } => {
            state.rollout_state = Some(verdict.to_string());
            console.line(&format!(
                "service deployment {}: {verdict}",
                paused.deployment_arn
            ));
            Ok(())
        }
        // Rolled back because this step asked for it: what was asked.
        DeploymentVerdict::Failed {
            state: "ROLLED_BACK",
            ..
        } if options.rollback => {
            state.rollout_state = Some("ROLLED_BACK".to_string());
            console.line(&format!(
                "service deployment {} was rolled back, as asked",
                paused.deployment_arn
            ));
            Ok(())
        }
        DeploymentVerdict::Failed {
            state: verdict,
            reason,
        } => {
            state.rollout_state = Some(verdict.to_string());
            state.diagnosis.insert(0, reason.clone());
            Err(anyhow::anyhow!(
                "service deployment {} ended {verdict}: {reason}",
                paused.deployment_arn
            ))
        }
    }
}

/// Follows a BLUE_GREEN, LINEAR or CANARY rollout as the service deployment
/// ECS made of our UpdateService, to what `wait-until` asks for.
#[allow(clippy::too_many_arguments)]
async fn follow_service_deployment(
    rollout: &ReadyRollout,
    service: &str,
    ecs_deployment: Option<&str>,
    since: std::time::SystemTime,
    clients: &EcsClients,
    settings: &DeploySettings,
    schedule: PollSchedule,
    watch: &mut ServiceWatch,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let mut poller = Poller::new(schedule, rollout.wait_timeout);
    let arn = loop {
        // ECS lists the service deployment a moment after UpdateService.
        if let Some(arn) =
            find_service_deployment(clients, &rollout.cluster, service, since.into()).await?
        {
            break arn;
        }
        if poller.tick().await.is_err() {
            anyhow::bail!(
                "ECS listed no service deployment for the update of service {service}; ECS carries on with the update on its own"
            );
        }
    };
    console.line(&format!("{} service deployment {arn}", rollout.strategy));
    report.service_deployment = Some(arn.clone());
    let follow = Follow {
        arn: &arn,
        wait_until: &rollout.wait_until,
        ecs_deployment,
        fail_fast: settings.fail_fast,
        is_essential: &|container| rollout.is_essential(container),
    };
    let verdict = wait_for_service_deployment(
        clients,
        follow,
        watch,
        schedule,
        rollout.wait_timeout,
        console,
    )
    .await;
    let state = report.rollout.get_or_insert_with(Rollout::default);
    state.diagnosis = watch.diagnosis();
    match verdict? {
        DeploymentVerdict::Done { state: verdict } => {
            state.rollout_state = Some(verdict.to_string());
            if verdict == "COMPLETED" {
                report.service_deployment = None;
            }
            console.line(&format!("service deployment {arn}: {verdict}"));
            Ok(())
        }
        DeploymentVerdict::Failed {
            state: verdict,
            reason,
        } => {
            state.rollout_state = Some(verdict.to_string());
            state.diagnosis.insert(0, reason.clone());
            report.service_deployment = None;
            Err(anyhow::anyhow!(
                "the {} deployment of service {service} {}: {reason}",
                rollout.strategy,
                if verdict == "ROLLED_BACK" {
                    "was rolled back"
                } else {
                    "failed"
                }
            ))
        }
    }
}

/// Deploys a CODE_DEPLOY service: CreateDeployment with the appspec the
/// plan decided, then, when asked, waits for its verdict.
#[allow(clippy::too_many_arguments)]
async fn blue_green_rollout(
    rollout: &ReadyRollout,
    codedeploy: &CodeDeployPlan,
    service: &str,
    task_definition_arn: &str,
    clients: &EcsClients,
    settings: &DeploySettings,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let _section = console.phase(&format!("Blue/green deployment of service {service}"));
    let mut watch = ServiceWatch::new(&rollout.cluster, service);
    let schedule = settings
        .poll
        .capped_by(rollout.service_settings.max_poll_delay);
    wait_for_idle_group(
        &clients.codedeploy,
        codedeploy,
        schedule,
        rollout.wait_timeout,
        console,
    )
    .await?;
    let started = start_deployment(&clients.codedeploy, codedeploy, task_definition_arn).await?;
    let id = started.deployment_id.clone();
    if started.adopted {
        console.line(&format!(
            "CreateDeployment's first answer was lost; the group's active deployment {id} carries this appspec, so it is followed instead of starting another"
        ));
    }
    console.line(&format!(
        "CodeDeploy deployment {id} started ({}/{}); appspec sent:",
        codedeploy.application, codedeploy.deployment_group
    ));
    let pretty = serde_json::from_str::<serde_json::Value>(&started.appspec)
        .map(|value| to_pretty_json(&value))
        .unwrap_or_else(|_| started.appspec.clone());
    for line in pretty.lines() {
        console.plain(line);
    }
    report.codedeploy = Some(CodeDeployRecord {
        deployment_id: id.clone(),
        application: codedeploy.application.clone(),
        deployment_group: codedeploy.deployment_group.clone(),
        appspec: pretty,
        finished: false,
    });
    report.rollout = Some(Rollout {
        rollout_state: Some("IN_PROGRESS".into()),
        task_definition_arn: task_definition_arn.to_string(),
        ..Rollout::default()
    });
    if !rollout.wait_for_stability {
        console.line("wait-for-service-stability is false: not waiting for the deployment");
        return Ok(());
    }
    let outcome = wait_for_deployment(
        clients,
        codedeploy,
        &id,
        &mut watch,
        schedule,
        rollout.wait_timeout,
        settings.fail_fast,
        console,
    )
    .await?;
    if let Some(record) = report.codedeploy.as_mut() {
        record.finished = true;
    }
    let state = report.rollout.get_or_insert_with(Rollout::default);
    match outcome {
        Outcome::Done { state: verdict } => {
            state.rollout_state = Some(verdict.to_string());
            console.line(&format!("CodeDeploy deployment {id}: {verdict}"));
            Ok(())
        }
        Outcome::Failed {
            state: verdict,
            causes,
        } => {
            state.rollout_state = Some(verdict.to_string());
            state.diagnosis = causes.clone();
            Err(anyhow::anyhow!(
                "CodeDeploy deployment {id} of service {service} {}{}",
                if verdict == "ROLLED_BACK" {
                    "failed and was rolled back"
                } else {
                    "failed"
                },
                causes.first().map(|c| format!(": {c}")).unwrap_or_default()
            ))
        }
    }
}

/// Runs the one-off task and, when asked, waits for it: a task whose
/// essential container does not exit 0 fails the job before the service
/// is touched.
async fn run_task_first(
    task: &OneOffTaskPlan,
    task_definition_arn: &str,
    clients: &EcsClients,
    settings: &DeploySettings,
    timeout: std::time::Duration,
    console: &Console,
    report: &mut JobReport,
) -> anyhow::Result<()> {
    let _section = console.phase("One-off task");
    let arn = run_one_off_task(clients, task, task_definition_arn).await?;
    console.line(&format!(
        "started one-off task {arn} from {}",
        short_task_definition(task_definition_arn)
    ));
    let record = report.one_off_task.insert(OneOffTaskRecord {
        arn: arn.clone(),
        ..OneOffTaskRecord::default()
    });
    if !task.wait_for_stop {
        console.line("wait-for-task-stopped is false: not waiting for it to stop");
        return Ok(());
    }
    let exit = wait_for_task_stop(clients, task, &arn, settings.poll, timeout, console).await?;
    let lines = exit.lines(&task.essential_containers);
    for line in &lines {
        console.line(line);
    }
    if exit.succeeded() {
        record.outcome = Some("its essential containers exited 0".to_string());
        return Ok(());
    }
    record.outcome = Some(format!(
        "failed ({} did not exit 0)",
        exit.failed_containers.join(", ")
    ));
    record.diagnosis = lines;
    Err(anyhow::anyhow!(failure_message(&exit)))
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

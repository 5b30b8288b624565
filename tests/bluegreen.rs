//! Blue/green rollouts through CodeDeploy: the example stack
//! (`examples/bluegreen/template.yml`: a CODE_DEPLOY service, two target
//! groups, production and test listeners, the CodeDeploy application and
//! group) deployed on a private emulator, then images rolled out through
//! the action: the appspec sent, progress and traffic in the log, verdicts,
//! failures with their causes, refusals before any change, cancellation.

use crate::cancel::run_and_signal_on;
use crate::rollout::{config_for, push_image_on};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, read_repo_file};

/// The example stack, deployed: where the image goes.
pub struct BlueGreen {
    pub emulator: Emulator,
    ws: Workspace,
    subnet: String,
    security_group: String,
    cluster: String,
    service: String,
    family: String,
    repository: String,
}

/// A private emulator (its request log and CodeDeploy clock are the test's
/// own) with the example stack deployed, using deployment config `config`.
pub fn blue_green(config: &str, minute_seconds: f64) -> BlueGreen {
    let emulator = Emulator::private();
    let (code, body) = emulator.control(
        "POST",
        "/_emulator/codedeploy-speed",
        &format!(r#"{{"minuteSeconds": {minute_seconds}}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (vpc, subnet, security_group) = emulator.default_vpc();
    let ws = Workspace::new();
    ws.write(
        "bluegreen.yml",
        &read_repo_file("examples/bluegreen/template.yml"),
    );
    let run = ActionRun::new(&ws)
        .input("name", "bluegreen")
        .input("template", "bluegreen.yml")
        .input(
            "parameter-overrides",
            &format!(
                "EnvironmentName=bg,VpcId={vpc},PublicSubnets={subnet},LoadBalancerSecurityGroupId={security_group},TaskSecurityGroupId={security_group},DeploymentConfigName={config}"
            ),
        )
        .run_against(&emulator);
    run.assert_code(0);
    let repository = push_image_on(&emulator, "bg/web", &["v2", "v3"]);
    BlueGreen {
        cluster: run.output("ClusterName").to_string(),
        service: run.output("ServiceName").to_string(),
        family: run.output("TaskDefinitionFamily").to_string(),
        emulator,
        ws,
        subnet,
        security_group,
        repository,
    }
}

/// The rollout of `tag` to the example service, as a workflow writes it.
pub fn roll_out<'a>(bg: &'a BlueGreen, tag: &str) -> ActionRun<'a> {
    ActionRun::new(&bg.ws)
        .input("task-definition-family", &bg.family)
        .input("container-name", "app")
        .input("image-repository", &bg.repository)
        .input("image-tag", tag)
        .input("service", &bg.service)
        .input("cluster", &bg.cluster)
}

/// The deployment as CodeDeploy records it.
fn deployment(bg: &BlueGreen, id: &str) -> aws_sdk_codedeploy::types::DeploymentInfo {
    let client = aws_sdk_codedeploy::Client::new(&config_for(&bg.emulator));
    block_on(async {
        client
            .get_deployment()
            .deployment_id(id)
            .send()
            .await
            .expect("get deployment")
    })
    .deployment_info()
    .cloned()
    .expect("deployment info")
}

/// The ECS and CodeDeploy calls that change something, in order.
fn changing_calls(emulator: &Emulator, from: usize) -> Vec<String> {
    emulator
        .requests()
        .split_off(from)
        .into_iter()
        .map(|(_, action)| action)
        .filter(|action| {
            [
                "RegisterTaskDefinition",
                "UpdateService",
                "CreateDeployment",
                "StopDeployment",
                "RunTask",
            ]
            .contains(&action.as_str())
        })
        .collect()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

#[test]
fn a_canary_deployment_sends_the_generated_appspec_and_moves_traffic() {
    let bg = blue_green("CodeDeployDefault.ECSCanary10Percent5Minutes", 0.4);
    let set_up = bg.emulator.requests().len();
    let run = roll_out(&bg, "v2").run_against(&bg.emulator);
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    let id = run.output("codedeploy-deployment-id");
    assert!(id.starts_with("d-"), "{id}");
    for line in [
        "blue/green deployment of service bg-bluegreen through CodeDeploy AppECS-bg-bluegreen-bg-bluegreen/DgpECS-bg-bluegreen-bg-bluegreen with CodeDeployDefault.ECSCanary10Percent5Minutes (the group's): 10% first, the rest 5 min later",
        "Install: Succeeded",
        "production traffic: 10% on the replacement task set",
        "production traffic: 100% on the replacement task set",
        "AfterAllowTraffic: Succeeded",
        "terminates the original task set after 5 min (not waited for)",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing `{line}`:\n{}",
            run.stdout
        );
    }
    // The appspec: generated from the service, the revision just registered.
    let sent = deployment(&bg, id)
        .revision()
        .and_then(|r| r.app_spec_content())
        .and_then(|c| c.content())
        .map(str::to_string)
        .expect("appspec content");
    let sent: serde_json::Value = serde_json::from_str(&sent).expect("appspec JSON");
    assert_eq!(
        sent,
        serde_json::json!({
            "version": 0.0,
            "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
                "TaskDefinition": run.output("task-definition-arn"),
                "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 8080},
                "NetworkConfiguration": {"AwsvpcConfiguration": {
                    "Subnets": [bg.subnet],
                    "SecurityGroups": [bg.security_group],
                    "AssignPublicIp": "ENABLED"
                }}
            }}}]
        })
    );
    assert!(
        run.summary.contains("appspec sent to CodeDeploy"),
        "{}",
        run.summary
    );
    // Never UpdateService: ECS refuses it for a CODE_DEPLOY service.
    assert_eq!(
        changing_calls(&bg.emulator, set_up),
        ["RegisterTaskDefinition", "CreateDeployment"]
    );
}

#[test]
fn linear_and_all_at_once_configs_show_their_own_traffic_steps() {
    let bg = blue_green("CodeDeployDefault.ECSAllAtOnce", 0.3);
    let linear = roll_out(&bg, "v2")
        .input(
            "codedeploy-deployment-config",
            "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
        )
        .run_against(&bg.emulator);
    linear.assert_code(0);
    assert!(
        linear.stdout.contains("10% more every 1 min"),
        "{}",
        linear.stdout
    );
    let steps = linear.stdout.matches("production traffic: ").count();
    assert!(
        steps >= 4,
        "linear shifts show several steps ({steps}):\n{}",
        linear.stdout
    );
    let at_once = roll_out(&bg, "v3").run_against(&bg.emulator);
    at_once.assert_code(0);
    assert!(
        at_once.stdout.contains("all traffic at once"),
        "{}",
        at_once.stdout
    );
    assert!(
        !at_once.stdout.contains("production traffic: 10% "),
        "all at once has no partial step:\n{}",
        at_once.stdout
    );
    assert_eq!(at_once.output("rollout-state"), "COMPLETED");
}

#[test]
fn wait_until_ready_returns_once_the_test_listener_serves_the_new_revision() {
    let bg = blue_green("CodeDeployDefault.ECSCanary10Percent15Minutes", 1.0);
    let run = roll_out(&bg, "v2")
        .input("wait-until", "ready")
        .run_against(&bg.emulator);
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "READY", "{}", run.stdout);
    assert!(
        run.stdout.contains("AfterAllowTestTraffic: Succeeded"),
        "{}",
        run.stdout
    );
    // CodeDeploy carries on; production traffic has not all moved yet.
    let status = deployment(&bg, run.output("codedeploy-deployment-id"))
        .status()
        .map(|s| s.as_str().to_string());
    assert_eq!(status.as_deref(), Some("InProgress"));
}

#[test]
fn a_user_appspec_keeps_its_hooks_and_a_failing_hook_fails_the_step_with_its_cause() {
    let bg = blue_green("CodeDeployDefault.ECSAllAtOnce", 0.2);
    bg.ws.write(
        "appspec.yaml",
        "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: \"<filled in>\"\n        LoadBalancerInfo:\n          ContainerName: app\n          ContainerPort: 8080\nHooks:\n  - AfterAllowTestTraffic: arn:aws:lambda:us-east-1:123456789012:function:smoke-fail\n",
    );
    let run = roll_out(&bg, "v2")
        .input("codedeploy-appspec", "appspec.yaml")
        .run_against(&bg.emulator);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(errors.contains("HOOK_EXECUTION_FAILURE"), "{errors}");
    assert!(
        run.stdout.contains("AfterAllowTestTraffic: Failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("lifecycle event AfterAllowTestTraffic failed"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK", "{}", run.stdout);
    let sent = deployment(&bg, run.output("codedeploy-deployment-id"))
        .revision()
        .and_then(|r| r.app_spec_content())
        .and_then(|c| c.content())
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        sent.contains("smoke-fail"),
        "the file's hooks are kept: {sent}"
    );
    assert!(
        sent.contains(run.output("task-definition-arn")),
        "TaskDefinition replaced: {sent}"
    );
}

/// CodeDeploy gives a replacement that never becomes healthy an hour (a
/// minute is a second here): the tasks' evidence decides long before, and
/// the deployment is stopped with rollback.
#[test]
fn replacement_tasks_that_keep_crashing_are_judged_and_the_deployment_rolled_back() {
    let bg = blue_green("CodeDeployDefault.ECSAllAtOnce", 1.0);
    let set_up = bg.emulator.requests().len();
    let run = roll_out(&bg, "v2")
        .input(
            "docker-labels",
            "emulator.exit-code=3\nemulator.exit-after-seconds=0.1",
        )
        .run_against(&bg.emulator);
    run.assert_code(1);
    assert!(run.stdout.contains("exit code 3"), "{}", run.stdout);
    let errors = errors(&run);
    assert!(errors.contains("stopped for the same reason"), "{errors}");
    assert!(
        errors.contains("container app exited with code 3"),
        "{errors}"
    );
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK", "{}", run.stdout);
    assert_eq!(
        changing_calls(&bg.emulator, set_up),
        [
            "RegisterTaskDefinition",
            "CreateDeployment",
            "StopDeployment"
        ]
    );
}

#[test]
fn a_deployment_group_that_does_not_exist_is_refused_before_anything_changes() {
    let bg = blue_green("CodeDeployDefault.ECSAllAtOnce", 0.2);
    let set_up = bg.emulator.requests().len();
    let run = roll_out(&bg, "v2")
        .input("codedeploy-deployment-group", "DgpECS-nope")
        .run_against(&bg.emulator);
    run.assert_code(2);
    let errors = errors(&run);
    assert!(errors.contains("codedeploy-deployment-group"), "{errors}");
    assert!(errors.contains("DgpECS-nope"), "{errors}");
    assert!(changing_calls(&bg.emulator, set_up).is_empty());
}

#[test]
fn cancelled_the_job_says_codedeploy_carries_on_or_stops_it_with_cancel_on_abort() {
    let bg = blue_green("CodeDeployDefault.ECSCanary10Percent15Minutes", 1.0);
    let image = format!("{}:v2", bg.repository);
    let base = [
        ("task-definition-family", bg.family.as_str()),
        ("container-name", "app"),
        ("image", image.as_str()),
        ("service", bg.service.as_str()),
        ("cluster", bg.cluster.as_str()),
    ];
    let (code, log, _) = run_and_signal_on(
        &bg.emulator,
        &bg.ws,
        &base,
        "CodeDeploy deployment d-",
        "TERM",
    );
    assert_ne!(code, 0);
    assert!(
        log.contains("CodeDeploy carries on with deployment d-"),
        "{log}"
    );
    assert!(!changing_calls(&bg.emulator, 0).contains(&"StopDeployment".to_string()));
    // Wait for that deployment to end before the next one may start.
    let id = log
        .split("CodeDeploy carries on with deployment ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("deployment id")
        .to_string();
    let client = aws_sdk_codedeploy::Client::new(&config_for(&bg.emulator));
    block_on(async {
        client
            .stop_deployment()
            .deployment_id(&id)
            .send()
            .await
            .expect("stop the first deployment");
        // Set-up only: the group takes the next deployment once this one
        // has stopped.
        for _ in 0..200 {
            let status = client
                .get_deployment()
                .deployment_id(&id)
                .send()
                .await
                .expect("get deployment")
                .deployment_info()
                .and_then(|i| i.status().map(|s| s.as_str().to_string()));
            if status.as_deref() == Some("Stopped") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("deployment {id} never stopped");
    });
    let image = format!("{}:v3", bg.repository);
    let mut stopping = base.to_vec();
    stopping[2] = ("image", image.as_str());
    stopping.push(("cancel-on-abort", "true"));
    let (code, log, _) = run_and_signal_on(
        &bg.emulator,
        &bg.ws,
        &stopping,
        "CodeDeploy deployment d-",
        "TERM",
    );
    assert_ne!(code, 0);
    assert!(
        log.contains("cancel-on-abort: CodeDeploy deployment d-"),
        "{log}"
    );
    assert!(changing_calls(&bg.emulator, 0).contains(&"StopDeployment".to_string()));
}

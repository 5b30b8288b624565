//! ECS's own deployment strategies (BLUE_GREEN, LINEAR, CANARY): a service
//! declared with them (`tests/fixtures/strategies/service.yml`) on a
//! private emulator, rolled out through the action and followed as a
//! service deployment: stages and traffic in the log, `wait-until`, the
//! strategy inputs, a doomed revision stopped with rollback, cancellation.

use crate::cancel::run_and_signal_on;
use crate::rollout::{config_for, push_image_on};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, read_repo_file};

pub struct StrategyService {
    pub emulator: Emulator,
    pub ws: Workspace,
    cluster: String,
    service: String,
    family: String,
    repository: String,
}

/// The fixture service with `strategy`, bake time `bake` minutes, a
/// minute lasting `minute_seconds` on this emulator.
pub fn strategy_service(strategy: &str, bake: u32, minute_seconds: f64) -> StrategyService {
    let emulator = Emulator::private();
    let (code, body) = emulator.control(
        "POST",
        "/_emulator/codedeploy-speed",
        &format!(r#"{{"minuteSeconds": {minute_seconds}}}"#),
    );
    assert_eq!(code, 200, "{body}");
    // The template's task definition names it (verify checks it exists).
    crate::rollout::ensure_execution_role(&emulator);
    let (vpc, subnet, _) = emulator.default_vpc();
    let ws = Workspace::new();
    ws.write(
        "service.yml",
        &read_repo_file("tests/fixtures/strategies/service.yml"),
    );
    let run = ActionRun::new(&ws)
        .input("name", "strategy")
        .input("template", "service.yml")
        .input(
            "parameter-overrides",
            &format!("VpcId={vpc},SubnetId={subnet},Strategy={strategy},BakeTimeInMinutes={bake}"),
        )
        .run_against(&emulator);
    run.assert_code(0);
    let repository = push_image_on(&emulator, "strategy/app", &["v2", "v3"]);
    StrategyService {
        cluster: run.output("ClusterName").to_string(),
        service: run.output("ServiceName").to_string(),
        family: run.output("Family").to_string(),
        emulator,
        ws,
        repository,
    }
}

impl StrategyService {
    pub fn family(&self) -> &str {
        &self.family
    }
}

pub fn roll_out<'a>(s: &'a StrategyService, tag: &str) -> ActionRun<'a> {
    ActionRun::new(&s.ws)
        .input("task-definition-family", &s.family)
        .input("container-name", "app")
        .input("image-repository", &s.repository)
        .input("image-tag", tag)
        .input("service", &s.service)
        .input("cluster", &s.cluster)
}

/// The service's deployments as ECS lists them, newest first: statuses.
fn deployment_statuses(s: &StrategyService) -> Vec<String> {
    let ecs = aws_sdk_ecs::Client::new(&config_for(&s.emulator));
    block_on(async {
        ecs.list_service_deployments()
            .cluster(&s.cluster)
            .service(&s.service)
            .send()
            .await
            .expect("list service deployments")
    })
    .service_deployments()
    .iter()
    .map(|d| {
        d.status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default()
    })
    .collect()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

/// Makes the service BLUE_GREEN without bake time, with `hook` run after
/// test traffic moves (POST_TEST_TRAFFIC_SHIFT).
fn with_hook_after_test_traffic(
    s: &StrategyService,
    hook: aws_sdk_ecs::types::builders::DeploymentLifecycleHookBuilder,
) {
    use aws_sdk_ecs::types::{
        DeploymentConfiguration, DeploymentLifecycleHookStage, DeploymentStrategy,
    };
    let ecs = aws_sdk_ecs::Client::new(&config_for(&s.emulator));
    block_on(async {
        ecs.update_service()
            .cluster(&s.cluster)
            .service(&s.service)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .strategy(DeploymentStrategy::BlueGreen)
                    .bake_time_in_minutes(0)
                    .lifecycle_hooks(
                        hook.lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("add the lifecycle hook");
    });
}

#[test]
fn a_blue_green_rollout_is_followed_stage_by_stage_to_success() {
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let run = roll_out(&s, "v2")
        .input("bake-time-minutes", "1")
        .run_against(&s.emulator);
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    for line in [
        "rollout strategy BLUE_GREEN: followed as a service deployment",
        "BLUE_GREEN service deployment arn:aws:ecs:",
        "100% of production traffic",
        "service deployment SUCCESSFUL",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing `{line}`:\n{}",
            run.stdout
        );
    }
    // One line per change: stages as the looks caught them (a short stage
    // may fall between two looks).
    let stages = run.stdout.matches(", stage ").count();
    assert!(stages >= 3, "{stages} stage lines:\n{}", run.stdout);
    assert_eq!(deployment_statuses(&s)[0], "SUCCESSFUL");
}

#[test]
fn wait_until_deployed_returns_during_the_bake_time() {
    // Created without bake time (the first deployment runs every stage
    // too); the rollout asks for a long one.
    let s = strategy_service("BLUE_GREEN", 0, 1.0);
    let run = roll_out(&s, "v2")
        .input("bake-time-minutes", "30")
        .input("wait-until", "deployed")
        .run_against(&s.emulator);
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "DEPLOYED", "{}", run.stdout);
    // ECS carries on baking: the deployment is not finished.
    assert_eq!(deployment_statuses(&s)[0], "IN_PROGRESS");
}

#[test]
fn strategy_inputs_switch_a_service_to_linear_steps() {
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let run = roll_out(&s, "v2")
        .input("deployment-strategy", "LINEAR")
        .input("linear-step-percent", "50")
        .input("linear-step-bake-minutes", "1")
        .input("bake-time-minutes", "0")
        .run_against(&s.emulator);
    run.assert_code(0);
    assert!(
        run.stdout.contains("rollout strategy LINEAR"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("50% of production traffic"),
        "{}",
        run.stdout
    );
    // A canary setting on a linear rollout is refused before any change.
    let refused = roll_out(&s, "v3")
        .input("deployment-strategy", "LINEAR")
        .input("canary-percent", "10")
        .run_against(&s.emulator);
    refused.assert_code(2);
    assert!(
        errors(&refused).contains("deployment-strategy"),
        "{}",
        errors(&refused)
    );
}

/// CANARY: the canary share first, its bake, then all production traffic;
/// each shift is a line of the log and a step in ECS's own history.
#[test]
fn a_canary_rollout_shifts_the_canary_share_first() {
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let run = roll_out(&s, "v2")
        .input("deployment-strategy", "CANARY")
        .input("canary-percent", "10")
        .input("canary-bake-minutes", "1")
        .input("bake-time-minutes", "0")
        .run_against(&s.emulator);
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    let canary = run.stdout.find("10% of production traffic");
    let all = run.stdout.find("100% of production traffic");
    assert!(
        canary.is_some() && all.is_some() && canary < all,
        "10% before 100%:\n{}",
        run.stdout
    );
    let (code, body) = s.emulator.control("GET", "/_emulator/ecs-deployments", "");
    assert_eq!(code, 200, "{body}");
    let history: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON");
    let ours = history
        .iter()
        .find(|d| d["strategy"] == "CANARY")
        .expect("a CANARY service deployment");
    let weights: Vec<f64> = ours["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["productionTrafficWeight"].as_f64())
        .collect();
    assert!(
        weights.contains(&10.0) && weights.last() == Some(&100.0),
        "{weights:?}"
    );
    assert_eq!(deployment_statuses(&s)[0], "SUCCESSFUL");
}

#[test]
fn a_doomed_blue_green_revision_is_stopped_with_rollback() {
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let run = roll_out(&s, "v2")
        .input("docker-labels", "emulator.exit-code=1")
        .run_against(&s.emulator);
    run.assert_code(1);
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK", "{}", run.stdout);
    let errors = errors(&run);
    assert!(errors.contains("stopped for the same reason"), "{errors}");
    assert!(errors.contains("was rolled back"), "{errors}");
    assert!(
        s.emulator
            .requests()
            .iter()
            .any(|(_, action)| action == "StopServiceDeployment"),
        "StopServiceDeployment was called"
    );
}

#[test]
fn cancelled_with_cancel_on_abort_the_service_deployment_is_stopped() {
    let s = strategy_service("BLUE_GREEN", 0, 1.0);
    let image = format!("{}:v2", s.repository);
    let (code, log, _) = run_and_signal_on(
        &s.emulator,
        &s.ws,
        &[
            ("task-definition-family", s.family.as_str()),
            ("container-name", "app"),
            ("image", image.as_str()),
            ("service", s.service.as_str()),
            ("cluster", s.cluster.as_str()),
            ("bake-time-minutes", "30"),
            ("cancel-on-abort", "true"),
        ],
        "stage BAKE_TIME",
        "TERM",
    );
    assert_ne!(code, 0);
    assert!(
        log.contains("cancel-on-abort: service deployment arn:aws:ecs:"),
        "{log}"
    );
    assert!(
        s.emulator
            .requests()
            .iter()
            .any(|(_, action)| action == "StopServiceDeployment")
    );
}

/// A Lambda hook that fails rolls the deployment back; the failure names
/// the hook and its function, not only ECS's status reason.
#[test]
fn a_failed_hook_is_named_in_the_failure() {
    use aws_sdk_ecs::types::{DeploymentLifecycleHook, DeploymentLifecycleHookTargetType};
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let function = "arn:aws:lambda:us-east-1:123456789012:function:smoke-test-fail";
    with_hook_after_test_traffic(
        &s,
        DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
            .hook_target_arn(function)
            .role_arn("arn:aws:iam::123456789012:role/ecs-hooks"),
    );
    let run = roll_out(&s, "v2").run_against(&s.emulator);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(
        errors.contains(&format!("({function}) FAILED")),
        "{errors}\n{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK", "{}", run.stdout);
}

/// A PAUSE hook: one step rolls out and stops there (`wait-until: paused`),
/// a later step answers it (`continue-deployment`); answering a service
/// with nothing paused is refused before anything changes.
#[test]
fn a_paused_deployment_is_continued_by_a_later_step() {
    use aws_sdk_ecs::types::{DeploymentLifecycleHook, DeploymentLifecycleHookTargetType};
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let nothing_paused = ActionRun::new(&s.ws)
        .input("service", &s.service)
        .input("cluster", &s.cluster)
        .input("continue-deployment", "true")
        .run_against(&s.emulator);
    nothing_paused.assert_code(2);
    assert!(
        errors(&nothing_paused).contains("continue-deployment"),
        "{}",
        errors(&nothing_paused)
    );
    with_hook_after_test_traffic(
        &s,
        DeploymentLifecycleHook::builder().target_type(DeploymentLifecycleHookTargetType::Pause),
    );
    let paused = roll_out(&s, "v2")
        .input("wait-until", "paused")
        .run_against(&s.emulator);
    paused.assert_code(0);
    assert_eq!(
        paused.output("rollout-state"),
        "PAUSED",
        "{}",
        paused.stdout
    );
    assert!(
        paused.stdout.contains("waits for an action"),
        "{}",
        paused.stdout
    );
    let continued = ActionRun::new(&s.ws)
        .input("service", &s.service)
        .input("cluster", &s.cluster)
        .input("continue-deployment", "true")
        .run_against(&s.emulator);
    continued.assert_code(0);
    assert!(
        continued.stdout.contains("answered with CONTINUE"),
        "{}",
        continued.stdout
    );
    assert_eq!(
        continued.output("rollout-state"),
        "COMPLETED",
        "{}",
        continued.stdout
    );
    assert_eq!(deployment_statuses(&s)[0], "SUCCESSFUL");
}

/// A stack update of a BLUE_GREEN service: CloudFormation waits for the
/// service deployment, and the log follows it the same way.
#[test]
fn a_stack_update_shows_its_services_deployment_stages() {
    let s = strategy_service("BLUE_GREEN", 0, 0.3);
    let (vpc, subnet, _) = s.emulator.default_vpc();
    let run = ActionRun::new(&s.ws)
        .input("name", "strategy")
        .input("template", "service.yml")
        .input(
            "parameter-overrides",
            &format!("VpcId={vpc},SubnetId={subnet},BakeTimeInMinutes=1,Image=public.ecr.aws/nginx/nginx:1.28"),
        )
        .run_against(&s.emulator);
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "UPDATE_COMPLETE");
    assert!(
        run.stdout.contains(&format!(
            "{}: service deployment IN_PROGRESS, stage ",
            s.service
        )),
        "{}",
        run.stdout
    );
}

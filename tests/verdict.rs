//! Fail-fast verdicts: a rollout whose new tasks keep stopping for the same
//! reason is judged on that evidence (`failure-threshold` tasks) instead of
//! at the timeout, and `on-rollout-failure` decides what follows: the
//! previous revision put back or the stack update cancelled (`rollback`),
//! an immediate failure (`stop`), or waiting as before (`wait`). Services
//! here run without ECS's circuit breaker, so the verdict is ours alone.

use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration};

use crate::rollout::{Setup, config_for, push_image_on, roll_out, setup_on};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, unique_name};

/// Turns the service's circuit breaker off, as many services run.
fn without_circuit_breaker(emulator: &Emulator, s: &Setup) {
    let ecs = aws_sdk_ecs::Client::new(&config_for(emulator));
    block_on(async {
        ecs.update_service()
            .cluster(&s.cluster)
            .service(&s.service)
            .deployment_configuration(
                DeploymentConfiguration::builder()
                    .deployment_circuit_breaker(
                        DeploymentCircuitBreaker::builder()
                            .enable(false)
                            .rollback(false)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("turn the circuit breaker off");
    });
}

/// The service's PRIMARY deployment: (task definition, rollout state).
fn primary(emulator: &Emulator, s: &Setup) -> (String, String) {
    let ecs = aws_sdk_ecs::Client::new(&config_for(emulator));
    let service = block_on(async {
        ecs.describe_services()
            .cluster(&s.cluster)
            .services(&s.service)
            .send()
            .await
            .expect("describe services")
    })
    .services()[0]
        .clone();
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .cloned()
        .expect("a PRIMARY deployment");
    (
        primary.task_definition().unwrap_or_default().to_string(),
        primary
            .rollout_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    )
}

fn count(emulator: &Emulator, action: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|(_, a)| a == action)
        .count()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

#[test]
fn a_crash_loop_is_judged_on_its_evidence_and_the_previous_revision_put_back() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({"emulator.exit-code": "1"}));
    without_circuit_breaker(&emulator, &s);
    let (before, _) = primary(&emulator, &s);
    let run = roll_out(&s, "abc1234")
        .input("wait-for-minutes", "10")
        .run_against(&emulator);
    run.assert_code(1);
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK", "{}", run.stdout);
    let errors = errors(&run);
    assert!(errors.contains("was doomed"), "{errors}");
    assert!(
        errors.contains("container app exited with code 1"),
        "{errors}"
    );
    assert!(errors.contains("the service runs"), "{errors}");
    assert!(
        run.stdout.contains("3 tasks of") && run.stdout.contains("stopped for the same reason"),
        "the evidence is named:\n{}",
        run.stdout
    );
    // The previous revision runs again, and its deployment completed.
    assert_eq!(primary(&emulator, &s), (before, "COMPLETED".to_string()));
    assert_eq!(
        count(&emulator, "UpdateService"),
        3,
        "setup, ours, the rollback"
    );
}

/// Transient stops are ECS's weather, not the revision's fault: tasks of
/// our deployment that fail to get a network interface (more than the
/// threshold) or are interrupted as Spot tasks never doom the rollout, which
/// completes once ECS's retries start.
#[test]
fn transient_stops_never_doom_a_rollout() {
    for (kind, reason) in [
        (
            "eni",
            "Timeout waiting for network interface provisioning to complete.",
        ),
        ("spot", "Your Spot Task was interrupted."),
    ] {
        let emulator = Emulator::private();
        let s = setup_on(
            &emulator,
            serde_json::json!({
                "emulator.transient-failures": "4",
                "emulator.transient-reason": kind,
            }),
        );
        without_circuit_breaker(&emulator, &s);
        let run = roll_out(&s, "abc1234")
            .input("failure-threshold", "2")
            .run_against(&emulator);
        run.assert_code(0);
        assert_eq!(
            run.output("rollout-state"),
            "COMPLETED",
            "{kind}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(reason),
            "{kind}: the transient stops are shown:\n{}",
            run.stdout
        );
        assert!(
            !run.stdout.contains("same reason"),
            "{kind}: {}",
            run.stdout
        );
        assert_eq!(count(&emulator, "UpdateService"), 2, "{kind}: no rollback");
    }
}

/// A task ECS cannot even launch (its execution role does not trust ECS
/// tasks) leaves no stopped task, only service events and the deployment's
/// failed count: that is evidence too, and the rollout is judged on it.
#[test]
fn tasks_that_cannot_be_launched_doom_a_rollout() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    without_circuit_breaker(&emulator, &s);
    let iam = aws_sdk_iam::Client::new(&config_for(&emulator));
    let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
    block_on(
        iam.create_role()
            .role_name("lambda-trusted")
            .assume_role_policy_document(trust)
            .send(),
    )
    .expect("create role");
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    document["executionRoleArn"] =
        serde_json::json!("arn:aws:iam::123456789012:role/lambda-trusted");
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let run = roll_out(&s, "abc1234")
        .input("verify", "false")
        .input("on-rollout-failure", "stop")
        .input("wait-for-minutes", "2")
        .run_against(&emulator);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(
        errors.contains("task launches of")
            && errors.contains("the task could not be launched: ECS was unable to assume the role"),
        "{errors}\n{}",
        run.stdout
    );
    assert!(
        !errors.contains("still IN_PROGRESS"),
        "judged, not timed out: {errors}"
    );
}

#[test]
fn stop_fails_at_once_and_leaves_the_deployment_to_ecs() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({"emulator.exit-code": "2"}));
    without_circuit_breaker(&emulator, &s);
    let run = roll_out(&s, "abc1234")
        .input("on-rollout-failure", "stop")
        .input("failure-threshold", "2")
        .run_against(&emulator);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(errors.contains("is doomed"), "{errors}");
    assert!(errors.contains("2 tasks of"), "{errors}");
    assert!(errors.contains("ECS carries on"), "{errors}");
    assert_eq!(
        count(&emulator, "UpdateService"),
        2,
        "setup and ours, no rollback"
    );
}

#[test]
fn wait_keeps_the_old_behaviour_until_the_timeout() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({"emulator.exit-code": "1"}));
    without_circuit_breaker(&emulator, &s);
    let run = roll_out(&s, "abc1234")
        .input("on-rollout-failure", "wait")
        .input("wait-for-minutes", "0.05")
        .run_against(&emulator);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(errors.contains("was still"), "{errors}");
    assert!(!errors.contains("doomed"), "{errors}");
    // A crash loop's repeats are counted, not printed one per task.
    let per_task = run
        .stdout
        .matches("stopped [EssentialContainerExited]")
        .count();
    assert!(run.stdout.contains("more: tasks of"), "{}", run.stdout);
    assert_eq!(per_task, 1, "one full line, then counts:\n{}", run.stdout);
}

#[test]
fn a_sidecar_image_that_cannot_be_pulled_and_failing_health_checks_doom_a_rollout() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    without_circuit_breaker(&emulator, &s);
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    let missing = format!("{}:never-pushed", s.repository);
    document["containerDefinitions"]
        .as_array_mut()
        .expect("containers")
        .push(serde_json::json!({"name": "sidecar", "image": missing, "essential": true}));
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let run = roll_out(&s, "abc1234").run_against(&emulator);
    run.assert_code(1);
    assert!(
        errors(&run).contains("CannotPullContainerError"),
        "{}",
        errors(&run)
    );
    assert_eq!(run.output("rollout-state"), "ROLLED_BACK");

    let unhealthy = setup_on(&emulator, serde_json::json!({"emulator.unhealthy": "true"}));
    without_circuit_breaker(&emulator, &unhealthy);
    let run = roll_out(&unhealthy, "abc1234").run_against(&emulator);
    run.assert_code(1);
    assert!(errors(&run).contains("health checks"), "{}", errors(&run));
}

/// The service template without its circuit breaker: CloudFormation would
/// wait up to three hours on it.
fn template_without_circuit_breaker() -> String {
    crate::rollout::SERVICE_TEMPLATE.replace(
        "      DeploymentConfiguration:\n        DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: true\n",
        "",
    )
}

#[test]
fn a_doomed_stack_update_is_cancelled_and_rolled_back() {
    let emulator = Emulator::private();
    let name = unique_name("doomed");
    let repository = push_image_on(&emulator, &name, &["good"]);
    let ws = Workspace::new();
    ws.write("ecs.yml", &template_without_circuit_breaker());
    let deploy = |image: &str| {
        ActionRun::new(&ws)
            .input("name", &name)
            .input("template", "ecs.yml")
            .input("parameter-overrides", &format!("ImageUri={image}"))
            .run_against(&emulator)
    };
    deploy(&format!("{repository}:good")).assert_code(0);
    let run = deploy(&format!("{repository}:missing"));
    run.assert_code(1);
    assert_eq!(
        run.output("stack-status"),
        "UPDATE_ROLLBACK_COMPLETE",
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("cancelled the update"),
        "{}",
        run.stdout
    );
    let errors = errors(&run);
    assert!(errors.contains("was doomed"), "{errors}");
    assert!(errors.contains("CannotPullContainerError"), "{errors}");
    assert_eq!(count(&emulator, "CancelUpdateStack"), 1);
}

/// On the stack path the rule learns which containers are essential from
/// the task definition: a non-essential sidecar that exited first is not
/// the cause; the essential container's exit is.
#[test]
fn a_doomed_stack_names_the_essential_container_not_a_sidecar() {
    let emulator = Emulator::private();
    let name = unique_name("sidecar");
    let repository = push_image_on(&emulator, &name, &["good"]);
    let ws = Workspace::new();
    let good = template_without_circuit_breaker();
    let crashing = good.replace(
        "        - Name: app\n          Image: !Ref ImageUri\n          Essential: true\n",
        "        - Name: sidecar\n          Image: !Ref ImageUri\n          Essential: false\n          DockerLabels:\n            emulator.exit-code: \"2\"\n            emulator.exit-after-seconds: \"0.01\"\n        - Name: app\n          Image: !Ref ImageUri\n          Essential: true\n          DockerLabels:\n            emulator.exit-code: \"1\"\n            emulator.exit-after-seconds: \"0.2\"\n",
    );
    assert_ne!(good, crashing, "the template changed");
    let deploy = |template: &str| {
        ws.write("ecs.yml", template);
        ActionRun::new(&ws)
            .input("name", &name)
            .input("template", "ecs.yml")
            .input(
                "parameter-overrides",
                &format!("ImageUri={repository}:good"),
            )
            .input("on-rollout-failure", "stop")
            .run_against(&emulator)
    };
    deploy(&good).assert_code(0);
    let run = deploy(&crashing);
    run.assert_code(1);
    let errors = errors(&run);
    assert!(
        errors.contains("same reason: container app exited with code 1"),
        "{errors}\n{}",
        run.stdout
    );
    assert!(
        !errors.contains("same reason: container sidecar"),
        "{errors}"
    );
    assert!(
        errors.contains("Z)") && errors.contains("T"),
        "the evidence says when: {errors}"
    );
    assert_eq!(
        count(&emulator, "DescribeTaskDefinition"),
        1,
        "once per revision"
    );
}

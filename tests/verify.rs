//! Verify before deploy: the revision about to be registered and the
//! service it goes to are checked in the plan, printed as a tree of OK /
//! NG / SKIP; an NG is a bad input (exit 2) with no call that changes
//! anything, and `verify: false` turns the checks off.

use crate::rollout::{push_image_on, roll_out, setup_on};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, unique_name};

fn changing_calls(emulator: &Emulator, from: usize) -> Vec<String> {
    emulator
        .requests()
        .split_off(from)
        .into_iter()
        .map(|(_, action)| action)
        .filter(|a| ["RegisterTaskDefinition", "UpdateService", "RunTask"].contains(&a.as_str()))
        .collect()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

#[test]
fn an_invalid_fargate_size_is_refused_before_anything_is_registered() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    document["memory"] = serde_json::json!("4096");
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let set_up = emulator.requests().len();
    let run = roll_out(&s, "abc1234").run_against(&emulator);
    run.assert_code(2);
    assert!(
        run.stdout
            .contains("NG   Fargate task size (cpu, memory): cpu 256 with memory 4096 MiB"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("OK   an essential container"),
        "{}",
        run.stdout
    );
    let errors = errors(&run);
    assert!(errors.contains("input `task-definition`"), "{errors}");
    assert!(errors.contains("use memory 512 to 2048 MiB"), "{errors}");
    assert!(changing_calls(&emulator, set_up).is_empty());

    // verify: false leaves the judgement to ECS.
    let unchecked = roll_out(&s, "abc1234")
        .input("verify", "false")
        .run_against(&emulator);
    assert!(
        !unchecked.stdout.contains("Fargate task size"),
        "{}",
        unchecked.stdout
    );
    assert_ne!(unchecked.code, 2, "{}", unchecked.stdout);
}

#[test]
fn a_port_the_load_balancer_needs_but_the_revision_drops_is_refused() {
    let s = crate::strategies::strategy_service("BLUE_GREEN", 0, 0.3);
    s.ws.write(
        "td.json",
        &serde_json::json!({
            "family": s.family(),
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [{
                "name": "app",
                "image": "placeholder",
                "portMappings": [{"containerPort": 8080}]
            }]
        })
        .to_string(),
    );
    let set_up = s.emulator.requests().len();
    let run = crate::strategies::roll_out(&s, "v2")
        .input("task-definition-family", "")
        .input("task-definition", "td.json")
        .run_against(&s.emulator);
    run.assert_code(2);
    let errors = errors(&run);
    assert!(errors.contains("input `service`"), "{errors}");
    assert!(errors.contains("maps no containerPort 80"), "{errors}");
    assert!(run.stdout.contains("takes the tasks"), "{}", run.stdout);
    assert!(changing_calls(&s.emulator, set_up).is_empty());
}

/// The stack path: the template's own task definition is verified with the
/// parameter values known before the deploy; an invalid Fargate size is
/// refused before any change set, a size CloudFormation decides is a SKIP.
#[test]
fn the_templates_task_definition_is_verified_before_the_change_set() {
    let emulator = Emulator::private();
    let name = unique_name("tplverify");
    let repository = push_image_on(&emulator, &name, &["good"]);
    let ws = Workspace::new();
    let template = crate::rollout::SERVICE_TEMPLATE
        .replace("      Memory: \"512\"\n", "      Memory: !Ref Memory\n");
    let template = template.replace(
        "Parameters:\n  ImageUri:\n    Type: String\n",
        "Parameters:\n  ImageUri:\n    Type: String\n  Memory:\n    Type: String\n    Default: \"4096\"\n",
    );
    assert!(template.contains("Memory: !Ref Memory"), "{template}");
    ws.write("ecs.yml", &template);
    let deploy = |extra: &[(&str, &str)]| {
        let mut run = ActionRun::new(&ws)
            .input("name", &name)
            .input("template", "ecs.yml")
            .input("image-repository", &repository)
            .input("image-tag", "good");
        for (input, value) in extra {
            run = run.input(input, value);
        }
        run.run_against(&emulator)
    };
    let before = emulator.requests().len();
    let refused = deploy(&[]);
    refused.assert_code(2);
    assert!(
        refused
            .stdout
            .contains("NG   Fargate task size (cpu, memory): cpu 256 with memory 4096 MiB"),
        "the default 4096 is known: {}",
        refused.stdout
    );
    assert!(
        errors(&refused).contains("input `template`"),
        "{}",
        errors(&refused)
    );
    let changing: Vec<String> = emulator
        .requests()
        .split_off(before)
        .into_iter()
        .map(|(_, action)| action)
        .filter(|a| {
            !["Describe", "List", "Get", "Head", "BatchGet", "Simulate"]
                .iter()
                .any(|p| a.starts_with(p))
        })
        .collect();
    assert!(changing.is_empty(), "{changing:?}");

    // verify-only: the same plan with a valid size passes and stops.
    let verified = deploy(&[
        ("parameter-overrides", "Memory=512"),
        ("verify-only", "true"),
    ]);
    verified.assert_code(0);
    assert!(
        verified.stdout.contains("OK   Fargate task size"),
        "{}",
        verified.stdout
    );
    assert!(
        verified.stdout.contains("stopping before any change"),
        "{}",
        verified.stdout
    );
    assert!(
        !emulator
            .requests()
            .iter()
            .any(|(_, a)| a == "CreateChangeSet"),
        "verify-only changed nothing"
    );

    // A size given by another resource is CloudFormation's: SKIP, and the
    // deploy goes on.
    ws.write(
        "ecs.yml",
        &template.replace("      Memory: !Ref Memory\n", "      Memory: !GetAtt Sizes.Value\n").replace(
            "Resources:\n",
            "Resources:\n  Sizes:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: !Sub \"/${AWS::StackName}/memory\"\n      Type: String\n      Value: \"512\"\n",
        ),
    );
    let skipped = deploy(&[("verify-only", "true")]);
    skipped.assert_code(0);
    assert!(
        skipped.stdout.contains(
            "SKIP Fargate task size (cpu, memory) (CloudFormation sets it at deploy time)"
        ),
        "{}",
        skipped.stdout
    );
}

/// `ecs-stack-deploy verify` is the deploy's plan with verify-only.
#[test]
fn the_verify_command_plans_checks_and_changes_nothing() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let before = emulator.requests().len();
    let run = ActionRun::new(&s.ws)
        .args(&[
            "verify",
            "--task-definition",
            "ecs/task-definition.json",
            "--container-name",
            "app",
            "--image-repository",
            &s.repository,
            "--image-tag",
            "abc1234",
            "--service",
            &s.service,
            "--cluster",
            &s.cluster,
        ])
        .run_against(&emulator);
    run.assert_code(0);
    assert!(
        run.stdout.contains("OK   an essential container"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("stopping before any change"),
        "{}",
        run.stdout
    );
    assert!(changing_calls(&emulator, before).is_empty());
}

/// Creates a role trusted by `service` with `policy` inline (if any).
fn role(
    emulator: &Emulator,
    name: &str,
    service: &str,
    policy: Option<serde_json::Value>,
) -> String {
    let iam = aws_sdk_iam::Client::new(&crate::rollout::config_for(emulator));
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    });
    crate::util::block_on(async {
        iam.create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("create role");
        if let Some(policy) = policy {
            iam.put_role_policy()
                .role_name(name)
                .policy_name("inline")
                .policy_document(policy.to_string())
                .send()
                .await
                .expect("put role policy");
        }
    });
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// Each reference check's NG: the roles (missing, not trusted by ECS
/// tasks, not allowed to pull), a secret that does not exist (SSM and
/// Secrets Manager), a missing log group — each refused with exit 2 before
/// anything is registered, naming the check and the fix.
#[test]
fn references_that_cannot_work_are_refused_before_anything_is_registered() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let original: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    let untrusted = role(&emulator, "untrusted-exec", "lambda.amazonaws.com", None);
    let bare = role(&emulator, "bare-exec", "ecs-tasks.amazonaws.com", None);
    let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf";
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "a role that does not exist",
            serde_json::json!({"executionRoleArn": "arn:aws:iam::123456789012:role/nope"}),
            "NG   execution role nope exists and trusts ecs-tasks.amazonaws.com: role arn:aws:iam::123456789012:role/nope does not exist",
        ),
        (
            "a role ECS tasks cannot assume",
            serde_json::json!({"executionRoleArn": untrusted}),
            "NG   execution role untrusted-exec exists and trusts ecs-tasks.amazonaws.com: role untrusted-exec does not trust ecs-tasks.amazonaws.com",
        ),
        (
            "a role without ECR pull",
            serde_json::json!({"executionRoleArn": bare}),
            "NG   execution role may pull from",
        ),
        (
            "a missing SSM parameter",
            serde_json::json!({"secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/missing"}]}),
            "NG   SSM parameter /prod/missing exists",
        ),
        (
            "a missing secret",
            serde_json::json!({"secrets": [{"name": "DB", "valueFrom": format!("{secret_arn}:password::")}]}),
            "NG   secret gone-AbCdEf exists",
        ),
        (
            "a missing log group",
            serde_json::json!({"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/missing", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"}}}),
            "NG   log group /ecs/missing exists: log group /ecs/missing does not exist in us-east-1",
        ),
    ];
    for (label, change, expected) in cases {
        let mut document = original.clone();
        for (key, value) in change.as_object().expect("object") {
            if key == "executionRoleArn" {
                document[key] = value.clone();
            } else {
                document["containerDefinitions"][0][key] = value.clone();
            }
        }
        s.ws.write("ecs/task-definition.json", &document.to_string());
        let before = emulator.requests().len();
        let run = roll_out(&s, "abc1234").run_against(&emulator);
        assert_eq!(run.code, 2, "{label}: {}", run.stdout);
        assert!(run.stdout.contains(expected), "{label}: {}", run.stdout);
        assert!(
            errors(&run).contains("input `task-definition`"),
            "{label}: {}",
            errors(&run)
        );
        assert!(changing_calls(&emulator, before).is_empty(), "{label}");
    }

    // Without verify the same parameter is learned from the rollout: the
    // revision is registered, its tasks fail to start (the execution role
    // may not read it), and the previous revision is put back.
    let mut document = original.clone();
    document["containerDefinitions"][0]["secrets"] = serde_json::json!([
        {"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/prod/missing"}
    ]);
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let unverified = roll_out(&s, "abc1234")
        .input("verify", "false")
        .run_against(&emulator);
    unverified.assert_code(1);
    let learned = errors(&unverified);
    assert!(
        learned.contains("ResourceInitializationError")
            && learned.contains("parameter/prod/missing"),
        "{learned}"
    );
}

/// A check the job may not make (no iam:SimulatePrincipalPolicy, no
/// logs:DescribeLogGroups) is a SKIP with a warning, and the deploy goes on.
#[test]
fn checks_the_job_may_not_make_are_skipped_with_a_warning() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let (code, body) = emulator.control(
        "POST",
        "/_emulator/deny",
        r#"{"actions": ["iam:SimulatePrincipalPolicy", "logs:DescribeLogGroups"]}"#,
    );
    assert_eq!(code, 200, "{body}");
    // The group exists: only the job may not look at it.
    crate::util::block_on(
        aws_sdk_cloudwatchlogs::Client::new(&crate::rollout::config_for(&emulator))
            .create_log_group()
            .log_group_name("/ecs/web")
            .send(),
    )
    .expect("create the log group");
    let mut document: serde_json::Value =
        serde_json::from_str(&s.ws.read("ecs/task-definition.json")).expect("JSON");
    document["containerDefinitions"][0]["logConfiguration"] = serde_json::json!({
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/ecs/web", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"}
    });
    s.ws.write("ecs/task-definition.json", &document.to_string());
    let run = roll_out(&s, "abc1234").run_against(&emulator);
    run.assert_code(0);
    assert!(
        run.stdout.contains("SKIP execution role may pull from")
            && run
                .stdout
                .contains("this job may not call iam:SimulatePrincipalPolicy"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("::warning::verify: log group /ecs/web exists not checked"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("OK   execution role ecsTaskExecutionRole exists"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "COMPLETED");
}

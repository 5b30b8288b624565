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
        r#"{"actions": ["iam:SimulatePrincipalPolicy", "logs:DescribeLogGroups", "ec2:DescribeSubnets"]}"#,
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
    assert!(
        run.stdout.contains(
            "SKIP subnets, security groups and target groups in one VPC (DescribeSubnets: UnauthorizedOperation"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("rollout-state"), "COMPLETED");
}

/// The network a task is placed in: a security group of another VPC than
/// the subnets (the one-off task's inputs here) and a subnet that does not
/// exist are refused before anything is registered; the service's own
/// network is checked alongside.
#[test]
fn a_network_across_vpcs_or_with_a_missing_subnet_is_refused() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    let (default_vpc, _, _) = emulator.default_vpc();
    let (other_vpc, _, other_group) = emulator.another_vpc("10.77");
    let before = emulator.requests().len();
    let across = roll_out(&s, "abc1234")
        .input("run-task", "true")
        .input("run-task-security-groups", &other_group)
        .run_against(&emulator);
    across.assert_code(2);
    assert!(
        across
            .stdout
            .contains("OK   subnets, security groups and target groups in one VPC"),
        "the service's own network: {}",
        across.stdout
    );
    let errors_across = errors(&across);
    assert!(
        errors_across.contains("input `run-task-subnets`")
            && errors_across.contains(&format!("security group {other_group} in {other_vpc}"))
            && errors_across.contains(&format!("in {default_vpc}")),
        "{errors_across}"
    );
    assert!(changing_calls(&emulator, before).is_empty());

    let missing = roll_out(&s, "abc1234")
        .input("run-task", "true")
        .input("run-task-subnets", "subnet-0000dead")
        .run_against(&emulator);
    missing.assert_code(2);
    let errors_missing = errors(&missing);
    assert!(
        errors_missing.contains("InvalidSubnetID.NotFound")
            && errors_missing.contains("subnet-0000dead")
            && errors_missing.contains("give subnets that exist"),
        "{errors_missing}"
    );
    assert!(changing_calls(&emulator, before).is_empty());
}

/// The stack path: a service the template declares, with its subnets and
/// target group given as parameters, is checked before the change set: a
/// target group of another VPC than the subnets is refused, one of the
/// same VPC passes (verify-only).
#[test]
fn a_template_service_whose_target_group_is_in_another_vpc_is_refused() {
    let emulator = Emulator::private();
    let name = unique_name("tplvpc");
    let repository = push_image_on(&emulator, &name, &["good"]);
    let (default_vpc, subnet, group) = emulator.default_vpc();
    let (other_vpc, _, _) = emulator.another_vpc("10.78");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&crate::rollout::config_for(&emulator));
    let target_group = |tg_name: &str, vpc: &str| {
        crate::util::block_on(
            elb.create_target_group()
                .name(tg_name)
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
                .port(80)
                .vpc_id(vpc)
                .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
                .send(),
        )
        .expect("create target group")
        .target_groups()[0]
            .target_group_arn()
            .expect("arn")
            .to_string()
    };
    let elsewhere = target_group("elsewhere", &other_vpc);
    let alongside = target_group("alongside", &default_vpc);
    let ws = Workspace::new();
    ws.write("ecs.yml", BALANCED_SERVICE_TEMPLATE);
    let deploy = |target_group_arn: &str| {
        ActionRun::new(&ws)
            .input("name", &name)
            .input("template", "ecs.yml")
            .input("image-repository", &repository)
            .input("image-tag", "good")
            .input(
                "parameter-overrides",
                &format!(
                    "Subnets={subnet},SecurityGroup={group},TargetGroupArn={target_group_arn}"
                ),
            )
            .input("verify-only", "true")
            .run_against(&emulator)
    };
    let refused = deploy(&elsewhere);
    refused.assert_code(2);
    let refusal = errors(&refused);
    assert!(
        refusal.contains("input `template`")
            && refusal.contains("Service (the template's)")
            && refusal.contains("target group elsewhere/")
            && refusal.contains(&format!("in {other_vpc}")),
        "{refusal}"
    );
    assert!(
        !emulator
            .requests()
            .iter()
            .any(|(_, a)| a == "CreateChangeSet"),
        "nothing was changed"
    );
    let passed = deploy(&alongside);
    passed.assert_code(0);
    assert!(
        passed
            .stdout
            .contains("OK   subnets, security groups and target groups in one VPC")
            && passed
                .stdout
                .contains("OK   container app:80 behind the load balancer"),
        "{}",
        passed.stdout
    );
}

/// A Fargate service behind a target group, its subnets, security group
/// and target group given as parameters.
const BALANCED_SERVICE_TEMPLATE: &str = r#"
Parameters:
  ImageUri:
    Type: String
  Subnets:
    Type: List<AWS::EC2::Subnet::Id>
  SecurityGroup:
    Type: AWS::EC2::SecurityGroup::Id
  TargetGroupArn:
    Type: String
Resources:
  Cluster:
    Type: AWS::ECS::Cluster
  TaskDefinition:
    Type: AWS::ECS::TaskDefinition
    Properties:
      NetworkMode: awsvpc
      RequiresCompatibilities: [FARGATE]
      Cpu: "256"
      Memory: "512"
      ExecutionRoleArn: arn:aws:iam::123456789012:role/ecsTaskExecutionRole
      ContainerDefinitions:
        - Name: app
          Image: !Ref ImageUri
          Essential: true
          PortMappings:
            - ContainerPort: 80
  Service:
    Type: AWS::ECS::Service
    Properties:
      Cluster: !Ref Cluster
      TaskDefinition: !Ref TaskDefinition
      DesiredCount: 1
      LaunchType: FARGATE
      LoadBalancers:
        - ContainerName: app
          ContainerPort: 80
          TargetGroupArn: !Ref TargetGroupArn
      NetworkConfiguration:
        AwsvpcConfiguration:
          Subnets: !Ref Subnets
          SecurityGroups: [!Ref SecurityGroup]
"#;

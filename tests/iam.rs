//! The action uses no AWS API outside the least-privilege policies the
//! README documents: each mode runs against a private emulator, and every
//! call in its request log must be allowed by that mode's policy.

use crate::rollout::push_image_on;
use crate::util::{ActionRun, Emulator, Workspace, read_repo_file, unique_name};

/// The actions of the README's policy for `mode`.
fn documented_actions(mode: &str) -> Vec<String> {
    let readme = read_repo_file("README.md");
    let marker = format!("<!-- iam-policy: {mode} -->\n```json\n");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no {mode} policy in the README"))
        + marker.len();
    let end = start
        + readme[start..]
            .find("```")
            .expect("end of the policy block");
    let policy: serde_json::Value =
        serde_json::from_str(&readme[start..end]).expect("the policy is JSON");
    let mut actions = Vec::new();
    for statement in policy["Statement"].as_array().expect("statements") {
        match &statement["Action"] {
            serde_json::Value::String(action) => actions.push(action.clone()),
            serde_json::Value::Array(list) => {
                actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_string)))
            }
            other => panic!("unexpected Action {other}"),
        }
    }
    actions
}

/// The IAM action an operation needs: its own name, but for the S3
/// operations whose permission is named otherwise.
fn iam_action(service: &str, operation: &str) -> String {
    let action = match (service, operation) {
        ("s3", "HeadBucket" | "ListObjects") => "ListBucket",
        ("s3", "HeadObject") => "GetObject",
        (_, operation) => operation,
    };
    format!("{service}:{action}")
}

/// Every call the emulator served, as IAM actions (`service:Action`).
fn used_actions(emulator: &Emulator) -> Vec<String> {
    let mut used: Vec<String> = emulator
        .requests()
        .into_iter()
        .map(|(service, action)| iam_action(&service, &action))
        .collect();
    used.sort();
    used.dedup();
    used
}

#[test]
fn each_mode_stays_inside_its_documented_policy() {
    let emulator = Emulator::private();
    let ws = Workspace::new();
    ws.write("ecs.yml", crate::rollout::SERVICE_TEMPLATE);
    let name = unique_name("iam");
    let repository = push_image_on(&emulator, &name, &["abc1234", "def5678"]);
    emulator.control("POST", "/_emulator/requests/reset", "");

    // Stack mode: a create, then an update, with the image checked in ECR
    // and the service watched while CloudFormation waits on it.
    let mut service_arn = String::new();
    for _ in 0..2 {
        let run = ActionRun::new(&ws)
            .input("name", &name)
            .input("template", "ecs.yml")
            .input("image-repository", &repository)
            .input("image-tag", "abc1234")
            .input("termination-protection", "true")
            .run_against(&emulator);
        run.assert_code(0);
        if service_arn.is_empty() {
            service_arn = run.output("service-arn").to_string();
        }
    }
    // A stack whose first create fails (ROLLBACK_COMPLETE) is deleted and
    // created anew by the next run: the recovery calls are covered too.
    let failing = unique_name("iamfail");
    ws.write("fail.yml", &crate::deploy::failing_template("quota"));
    ws.write("good.yml", crate::deploy::QUEUE_TEMPLATE);
    for (template, overrides, code) in [("fail.yml", "", 1), ("good.yml", "Env=iam", 0)] {
        ActionRun::new(&ws)
            .input("name", &failing)
            .input("template", template)
            .input("parameter-overrides", overrides)
            .run_against(&emulator)
            .assert_code(code);
    }
    // A new stack planned for review only (REVIEW_IN_PROGRESS), then
    // deployed: the next run looks at the kept change set and starts over.
    let reviewed = unique_name("iamreview");
    for no_execute in ["true", "false"] {
        ActionRun::new(&ws)
            .input("name", &reviewed)
            .input("template", "good.yml")
            .input("parameter-overrides", "Env=iam")
            .input("no-execute-changeset", no_execute)
            .run_against(&emulator)
            .assert_code(0);
    }
    // A template over the inline limit, through the template bucket: twice,
    // so both the upload and the "there already" path are covered.
    let mut used = used_actions(&emulator);
    let bucket = crate::rollout::create_bucket_on(&emulator, "iamtpl");
    emulator.control("POST", "/_emulator/requests/reset", "");
    ws.write(
        "large.yml",
        &format!(
            "{}\n{}",
            crate::deploy::QUEUE_TEMPLATE,
            "# pad\n".repeat(9_000)
        ),
    );
    let large = unique_name("iamlarge");
    for _ in 0..2 {
        ActionRun::new(&ws)
            .input("name", &large)
            .input("template", "large.yml")
            .input("parameter-overrides", "Env=iam")
            .input("s3-bucket", &bucket)
            .run_against(&emulator)
            .assert_code(0);
    }
    // Packaging: a parent whose nested stack is a local file, twice
    // (uploaded, then there already); its nested change set and events are
    // read too.
    ws.write(
        "parent.yml",
        "Resources:\n  Child:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n      TemplateURL: nested/child.yml\nOutputs:\n  Topic:\n    Value: !GetAtt Child.Outputs.Topic\n",
    );
    ws.write(
        "nested/child.yml",
        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\nOutputs:\n  Topic:\n    Value: !Ref Topic\n",
    );
    let parent = unique_name("iamnested");
    for _ in 0..2 {
        ActionRun::new(&ws)
            .input("name", &parent)
            .input("template", "parent.yml")
            .input("s3-bucket", &bucket)
            .run_against(&emulator)
            .assert_code(0);
    }
    let with_bucket = used_actions(&emulator);
    for action in ["s3:ListBucket", "s3:GetObject", "s3:PutObject"] {
        assert!(
            with_bucket.iter().any(|a| a == action),
            "{action}: {with_bucket:?}"
        );
    }
    used.extend(with_bucket);

    let allowed = documented_actions("stack");
    assert!(
        used.iter().any(|a| a == "cloudformation:ListChangeSets"),
        "{used:?}"
    );
    assert!(
        used.iter().any(|a| a == "cloudformation:DeleteStack"),
        "{used:?}"
    );
    assert!(
        used.iter().any(|a| a == "cloudformation:ExecuteChangeSet"),
        "{used:?}"
    );
    let outside: Vec<&String> = used.iter().filter(|a| !allowed.contains(a)).collect();
    assert!(
        outside.is_empty(),
        "stack mode used {outside:?} outside the README policy"
    );

    // Service mode: render, register and roll out on the stack's service.
    emulator.control("POST", "/_emulator/requests/reset", "");
    ws.write(
        "td.json",
        &serde_json::json!({
            "family": format!("{name}-web"),
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "executionRoleArn": crate::rollout::EXECUTION_ROLE_ARN,
            "containerDefinitions": [{"name": "app", "image": "placeholder", "essential": true}]
        })
        .to_string(),
    );
    let (cluster, service) = {
        let path = service_arn.split_once(":service/").expect("service ARN").1;
        let (cluster, service) = path.split_once('/').expect("cluster/service");
        (cluster.to_string(), service.to_string())
    };
    emulator.control("POST", "/_emulator/requests/reset", "");
    ActionRun::new(&ws)
        .input("task-definition", "td.json")
        .input("container-name", "app")
        .input("image-repository", &repository)
        .input("image-tag", "def5678")
        .input("service", &service)
        .input("cluster", &cluster)
        .input("run-task", "true")
        .input("wait-for-task-stopped", "true")
        .run_against(&emulator)
        .assert_code(0);
    let allowed = documented_actions("service");
    let used = used_actions(&emulator);
    assert!(used.iter().any(|a| a == "ecs:UpdateService"), "{used:?}");
    assert!(used.iter().any(|a| a == "ecs:RunTask"), "{used:?}");
    let outside: Vec<&String> = used.iter().filter(|a| !allowed.contains(a)).collect();
    assert!(
        outside.is_empty(),
        "service mode used {outside:?} outside the README policy"
    );
}

#[test]
fn bluegreen_mode_stays_inside_its_documented_policy() {
    let bg = crate::bluegreen::blue_green("CodeDeployDefault.ECSAllAtOnce", 0.2);
    bg.emulator.control("POST", "/_emulator/requests/reset", "");
    crate::bluegreen::roll_out(&bg, "v2")
        .run_against(&bg.emulator)
        .assert_code(0);
    let used = used_actions(&bg.emulator);
    for action in [
        "codedeploy:GetDeploymentGroup",
        "codedeploy:CreateDeployment",
        "codedeploy:GetDeployment",
    ] {
        assert!(used.iter().any(|a| a == action), "{action}: {used:?}");
    }
    let allowed = documented_actions("bluegreen");
    let outside: Vec<&String> = used.iter().filter(|a| !allowed.contains(a)).collect();
    assert!(
        outside.is_empty(),
        "blue/green mode used {outside:?} outside the README policy"
    );
}

#[test]
fn strategy_rollouts_stay_inside_the_service_policy() {
    let s = crate::strategies::strategy_service("BLUE_GREEN", 0, 0.3);
    s.emulator.control("POST", "/_emulator/requests/reset", "");
    crate::strategies::roll_out(&s, "v2")
        .run_against(&s.emulator)
        .assert_code(0);
    let used = used_actions(&s.emulator);
    for action in [
        "ecs:ListServiceDeployments",
        "ecs:DescribeServiceDeployments",
    ] {
        assert!(used.iter().any(|a| a == action), "{action}: {used:?}");
    }
    let allowed = documented_actions("service");
    let outside: Vec<&String> = used.iter().filter(|a| !allowed.contains(a)).collect();
    assert!(
        outside.is_empty(),
        "a strategy rollout used {outside:?} outside the README's service policy"
    );
}

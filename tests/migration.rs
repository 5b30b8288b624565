//! Migration from the three aws-actions: the fixture workflows in
//! `tests/fixtures/migration/` are steps written as the anchors document
//! them; each step's `with:` runs through our action as the runner would
//! pass it (placeholders filled in, earlier steps' outputs included), and
//! the effect the anchor documents is checked on the emulator.

use std::collections::BTreeMap;

use crate::rollout::{config_for, setup};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, unique_name};

/// One step of a fixture workflow.
struct FixtureStep {
    id: String,
    uses: String,
    with: Vec<(String, String)>,
}

/// The steps of `tests/fixtures/migration/<name>`, `with:` values as the
/// runner passes them (strings; YAML booleans as `true`/`false`).
fn fixture_steps(name: &str) -> Vec<FixtureStep> {
    let path = format!(
        "{}/tests/fixtures/migration/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("read fixture");
    let workflow: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("fixture YAML");
    let steps = workflow["jobs"]["deploy"]["steps"]
        .as_sequence()
        .expect("jobs.deploy.steps");
    steps
        .iter()
        .map(|step| FixtureStep {
            id: step["id"].as_str().expect("step id").to_string(),
            uses: step["uses"].as_str().expect("step uses").to_string(),
            with: step["with"]
                .as_mapping()
                .expect("step with")
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        serde_yaml_ng::Value::String(text) => text.clone(),
                        serde_yaml_ng::Value::Bool(flag) => flag.to_string(),
                        serde_yaml_ng::Value::Number(number) => number.to_string(),
                        other => panic!("unexpected `with:` value {other:?}"),
                    };
                    (key.as_str().expect("input name").to_string(), value)
                })
                .collect(),
        })
        .collect()
}

/// Fills `${{ env.X }}`, `${{ github.workspace }}` and
/// `${{ steps.ID.outputs.NAME }}` as the runner would.
fn fill(
    value: &str,
    env: &BTreeMap<&str, String>,
    workspace: &Workspace,
    outputs: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut filled = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        let end = rest[start..].find("}}").expect("closing }}") + start;
        let expression = rest[start + 3..end].trim();
        let replacement = if expression == "github.workspace" {
            workspace.root().display().to_string()
        } else if let Some(name) = expression.strip_prefix("env.") {
            env.get(name)
                .unwrap_or_else(|| panic!("no env {name}"))
                .clone()
        } else if let Some(reference) = expression.strip_prefix("steps.") {
            let (step, output) = reference
                .split_once(".outputs.")
                .expect("steps.ID.outputs.NAME");
            outputs
                .get(step)
                .and_then(|o| o.get(output))
                .unwrap_or_else(|| panic!("no output {output} of step {step}"))
                .clone()
        } else {
            panic!("unknown expression {expression}")
        };
        filled.push_str(&rest[..start]);
        filled.push_str(&replacement);
        rest = &rest[end + 2..];
    }
    filled.push_str(rest);
    filled
}

/// Runs the fixture's steps in order, returning each run by step id. A
/// render step of amazon-ecs-render-task-definition is not run alone: its
/// inputs join the deploy step that takes its `task-definition` output,
/// which is how the two steps become one of ours.
fn run_fixture(
    name: &str,
    ws: &Workspace,
    env: &BTreeMap<&str, String>,
) -> BTreeMap<String, RunResult> {
    let steps = fixture_steps(name);
    let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut runs = BTreeMap::new();
    for step in &steps {
        if step
            .uses
            .starts_with("aws-actions/amazon-ecs-render-task-definition")
        {
            continue;
        }
        let mut inputs: Vec<(String, String)> = Vec::new();
        for (key, value) in &step.with {
            let render_step = value
                .strip_prefix("${{ steps.")
                .and_then(|rest| rest.strip_suffix(".outputs.task-definition }}"));
            match render_step.and_then(|id| steps.iter().find(|s| s.id == id)) {
                Some(render) if key == "task-definition" => {
                    inputs.extend(render.with.iter().cloned());
                }
                _ => inputs.push((key.clone(), value.clone())),
            }
        }
        let mut run = ActionRun::new(ws);
        for (key, value) in &inputs {
            run = run.input(key, &fill(value, env, ws, &outputs));
        }
        let result = run.run();
        outputs.insert(step.id.clone(), result.outputs.clone());
        runs.insert(step.id.clone(), result);
    }
    runs
}

const STACK_TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Env:
    Type: String
  Subnets:
    Type: CommaDelimitedList
Resources:
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/setting"
      Type: String
      Value: !Join [",", !Ref Subnets]
Outputs:
  EnvName:
    Value: !Ref Env
"#;

fn described_stack(stack: &str) -> aws_sdk_cloudformation::types::Stack {
    let client = Emulator::shared().cloudformation();
    block_on(async {
        client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .expect("describe stack")
    })
    .stacks()[0]
        .clone()
}

fn parameter(stack: &aws_sdk_cloudformation::types::Stack, key: &str) -> String {
    stack
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(key))
        .and_then(|p| p.parameter_value())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn aws_cloudformation_github_deploy_steps_do_what_that_action_documents() {
    let ws = Workspace::new();
    ws.write("stack.yml", STACK_TEMPLATE);
    ws.write(
        "parameters.json",
        r#"[{"ParameterKey": "Env", "ParameterValue": "file"}, {"ParameterKey": "Subnets", "ParameterValue": "subnet-f"}]"#,
    );
    let stack = unique_name("migrated-cfn");
    let env = BTreeMap::from([("STACK", stack.clone())]);
    let runs = run_fixture("aws-cloudformation-github-deploy.yml", &ws, &env);
    for (id, run) in &runs {
        assert_eq!(run.code, 0, "step {id}:\n{}", run.stdout);
    }

    // Inline overrides; a repeated key is a CommaDelimitedList's values.
    let first = &runs["inline-parameters"];
    assert_eq!(first.output("stack-status"), "CREATE_COMPLETE");
    assert_eq!(first.output("EnvName"), "prod");
    assert!(
        first.stdout.contains("`1` is read as `true`"),
        "the legacy boolean gets a notice:\n{}",
        first.stdout
    );
    // No change is a success, not a failed step.
    assert_eq!(runs["unchanged"].output("has-changes"), "false");
    // Parameters from a file; tags and termination protection applied.
    assert_eq!(runs["file-parameters"].output("EnvName"), "file");
    // Plan only: a change set under the fixed name, the stack untouched...
    let planned = &runs["create-only"];
    assert_eq!(planned.output("change-set-name"), format!("{stack}-CS"));
    assert_eq!(planned.output("has-changes"), "true");
    // ...executed by id in the next step...
    assert_eq!(runs["execute-only"].output("EnvName"), "review");
    // ...and the same fixed name works again once executed.
    assert_eq!(runs["fixed-name-again"].output("EnvName"), "again");
    let described = described_stack(&stack);
    assert_eq!(parameter(&described, "Subnets"), "subnet-c");
    assert_eq!(described.enable_termination_protection(), Some(true));
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("team") && t.value() == Some("platform")),
        "{:?}",
        described.tags()
    );
}

/// What the workflow as the anchors document it refers to, created as the
/// user's account has it: the roles (trusted by ECS tasks, the execution
/// role allowed to pull, log and read the secret), the SSM parameter, the
/// log group. Verify before deploy checks each of them.
pub fn account_the_fixture_names() {
    // Once per test process: two tests use them on the shared emulator.
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(create_what_the_fixture_names);
}

fn create_what_the_fixture_names() {
    let config = config_for(Emulator::shared());
    let iam = aws_sdk_iam::Client::new(&config);
    let trust = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;
    let read_db = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}]}"#;
    block_on(async {
        for role in ["web-exec", "web-task"] {
            let created = iam
                .create_role()
                .role_name(role)
                .assume_role_policy_document(trust)
                .send()
                .await;
            created.expect("create the role");
        }
        iam.attach_role_policy()
            .role_name("web-exec")
            .policy_arn("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
            .send()
            .await
            .expect("attach the execution policy");
        iam.put_role_policy()
            .role_name("web-exec")
            .policy_name("read-db")
            .policy_document(read_db)
            .send()
            .await
            .expect("allow reading the parameter");
        aws_sdk_ssm::Client::new(&config)
            .put_parameter()
            .name("db")
            .value("s3cret")
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put the parameter");
        aws_sdk_cloudwatchlogs::Client::new(&config)
            .create_log_group()
            .log_group_name("/ecs/web")
            .send()
            .await
            .expect("create the log group");
    });
}

#[test]
fn render_and_deploy_task_definition_steps_do_what_those_actions_document() {
    let s = setup(serde_json::json!({}));
    let document = std::fs::read_to_string(s.ws.root().join("ecs/task-definition.json"))
        .expect("task definition");
    s.ws.write("task-definition.json", &document);
    account_the_fixture_names();
    let env = BTreeMap::from([
        ("IMAGE", format!("{}:abc1234", s.repository)),
        ("SERVICE", s.service.clone()),
        ("CLUSTER", s.cluster.clone()),
    ]);
    let runs = run_fixture("amazon-ecs-deploy-task-definition.yml", &s.ws, &env);
    for (id, run) in &runs {
        assert_eq!(run.code, 0, "step {id}:\n{}", run.stdout);
    }
    let ecs = aws_sdk_ecs::Client::new(&config_for(Emulator::shared()));
    let registered = |run: &RunResult| {
        block_on(async {
            ecs.describe_task_definition()
                .task_definition(run.output("task-definition-arn"))
                .send()
                .await
                .expect("describe task definition")
        })
        .task_definition()
        .cloned()
        .expect("task definition")
    };

    // Render one container's image and environment, deploy, wait.
    let deployed = &runs["deploy"];
    assert_eq!(deployed.output("rollout-state"), "COMPLETED");
    let first = registered(deployed);
    let container = &first.container_definitions()[0];
    assert_eq!(container.image(), Some(env["IMAGE"].as_str()));
    let environment: Vec<(&str, &str)> = container
        .environment()
        .iter()
        .map(|e| (e.name().unwrap_or_default(), e.value().unwrap_or_default()))
        .collect();
    assert!(
        environment.contains(&("LOG_LEVEL", "info")),
        "{environment:?}"
    );
    assert!(
        environment.contains(&("ENVIRONMENT", "prod")),
        "{environment:?}"
    );

    // Render settings, run the migration first, then deploy.
    let migrated = &runs["deploy-with-migration"];
    assert_eq!(migrated.output("rollout-state"), "COMPLETED");
    let second = registered(migrated);
    let container = &second.container_definitions()[0];
    assert_eq!(container.command(), ["./server", "--port", "8080"]);
    assert_eq!(container.secrets()[0].name(), "DB_PASSWORD");
    assert_eq!(
        container
            .log_configuration()
            .map(|l| l.log_driver().as_str()),
        Some("awslogs")
    );
    assert_eq!(
        second.task_role_arn(),
        Some("arn:aws:iam::123456789012:role/web-task")
    );
    let arns: Vec<String> =
        serde_json::from_str(migrated.output("run-task-arn")).expect("run-task-arn JSON");
    let task = block_on(async {
        ecs.describe_tasks()
            .cluster(&s.cluster)
            .tasks(&arns[0])
            .send()
            .await
            .expect("describe tasks")
    })
    .tasks()[0]
        .clone();
    assert_eq!(task.started_by(), Some("migrations"));
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert_eq!(task.containers()[0].exit_code(), Some(0));
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
    assert!(service.enable_ecs_managed_tags());
    assert_eq!(
        service.propagate_tags().map(|p| p.as_str()),
        Some("SERVICE")
    );
}

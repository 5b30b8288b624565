//! Deploy semantics against the emulator: create, update, no changes,
//! review-only change sets, recreating never-created stacks, waiting for
//! running operations, recovery states, stack settings and parameters.

use crate::util::{ActionRun, Emulator, Workspace, block_on, unique_name};

/// A template using resources the emulator fully supports.
pub const QUEUE_TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Env:
    Type: String
  Retention:
    Type: Number
    Default: "345600"
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: !Ref Retention
      Tags:
        - Key: env
          Value: !Ref Env
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/setting"
      Type: String
      Value: !Sub "${Env}-setting"
Outputs:
  QueueUrl:
    Description: where to send messages
    Value: !Ref Queue
  QueueArn:
    Value: !GetAtt Queue.Arn
  EnvName:
    Value: !Ref Env
"#;

/// A template whose queue fails to create with `reason`.
pub fn failing_template(reason: &str) -> String {
    format!(
        r#"
Resources:
  Topic:
    Type: AWS::SNS::Topic
  Queue:
    Type: AWS::SQS::Queue
    Metadata:
      Emulator:
        Fail: {reason:?}
"#
    )
}

/// A template whose resource stays in progress for `seconds`.
pub fn slow_template(seconds: f64) -> String {
    format!(
        r#"
Resources:
  Slow:
    Type: AWS::SNS::Topic
    Metadata:
      Emulator:
        HoldSeconds: {seconds}
"#
    )
}

fn deploy<'a>(ws: &'a Workspace, stack: &str, template: &str) -> ActionRun<'a> {
    ws.write("stack.yml", template);
    ActionRun::new(ws)
        .input("name", stack)
        .input("template", "stack.yml")
}

fn stack_parameters(stack: &str) -> Vec<(String, String)> {
    let client = Emulator::shared().cloudformation();
    block_on(async {
        let out = client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .unwrap();
        let mut params: Vec<(String, String)> = out.stacks()[0]
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default().to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        params.sort();
        params
    })
}

/// Change sets of the stack that were not executed.
fn change_set_count(stack: &str) -> usize {
    Emulator::shared().unexecuted_change_sets(stack).len()
}

fn stack_status(stack: &str) -> Option<String> {
    let client = Emulator::shared().cloudformation();
    block_on(async {
        client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .ok()
            .and_then(|out| {
                out.stacks()
                    .first()
                    .and_then(|s| s.stack_status())
                    .map(|s| s.as_str().to_string())
            })
    })
}

#[test]
fn new_stack_is_created_through_a_change_set_with_outputs() {
    let ws = Workspace::new();
    let stack = unique_name("create");
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=prod")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    assert_eq!(run.output("has-changes"), "true");
    assert_eq!(run.output("changes-count"), "2");
    assert!(run.output("stack-id").contains(&format!("stack/{stack}/")));
    assert!(run.output("change-set-id").contains(":changeSet/"));
    let outputs: serde_json::Value = serde_json::from_str(run.output("outputs")).unwrap();
    assert_eq!(outputs["EnvName"], "prod");
    assert!(
        outputs["QueueUrl"].as_str().unwrap().contains("/"),
        "{outputs}"
    );
    assert_eq!(
        run.output("EnvName"),
        "prod",
        "each stack output under its own key"
    );
    // One group per phase, per-resource event lines as they happen.
    assert!(run.stdout.contains("::group::Change set"), "{}", run.stdout);
    assert!(
        run.stdout.contains("::group::Execute change set"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Queue  AWS::SQS::Queue  CREATE_COMPLETE"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Add  Setting  AWS::SSM::Parameter"),
        "{}",
        run.stdout
    );
    // The job summary: changes, status, outputs.
    assert!(
        run.summary
            .contains("| Add | `Queue` | `AWS::SQS::Queue` |"),
        "{}",
        run.summary
    );
    assert!(run.summary.contains("`CREATE_COMPLETE`"), "{}", run.summary);
    assert!(
        run.summary.contains("| `EnvName` | `prod` |"),
        "{}",
        run.summary
    );
}

#[test]
fn update_keeps_previous_values_of_parameters_not_given() {
    let ws = Workspace::new();
    let stack = unique_name("update");
    // The same change set name every time, as aws-cloudformation-github-deploy
    // does (`<stack>-CS`): an executed change set's name is free again.
    let change_set = format!("{stack}-CS");
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=staging,Retention=1000")
        .input("change-set-name", &change_set)
        .run()
        .assert_code(0);
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Retention=2000")
        .input("change-set-name", &change_set)
        .run();
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "UPDATE_COMPLETE");
    assert_eq!(run.output("has-changes"), "true");
    assert_eq!(run.output("change-set-name"), change_set);
    // The change in DescribeChangeSet's shape, as the anchor publishes it.
    let summary: serde_json::Value = serde_json::from_str(run.output("changes-summary")).unwrap();
    assert_eq!(summary["totalChanges"], 1, "{summary}");
    assert_eq!(summary["truncated"], false);
    let change = &summary["changes"][0]["ResourceChange"];
    assert_eq!(change["Action"], "Modify", "{summary}");
    assert_eq!(change["LogicalResourceId"], "Queue");
    assert_eq!(
        change["Details"][0]["Target"]["Name"], "MessageRetentionPeriod",
        "{summary}"
    );
    assert!(
        run.output("changes-markdown")
            .contains("| Modify | `Queue` | `AWS::SQS::Queue` |"),
        "{}",
        run.output("changes-markdown")
    );
    assert_eq!(
        stack_parameters(&stack),
        vec![
            ("Env".into(), "staging".into()),
            ("Retention".into(), "2000".into())
        ]
    );
    assert_eq!(run.output("EnvName"), "staging");
}

#[test]
fn empty_change_set_is_a_success_and_is_deleted() {
    let ws = Workspace::new();
    let stack = unique_name("nochange");
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .run()
        .assert_code(0);
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("has-changes"), "false");
    assert_eq!(run.output("changes-count"), "0");
    assert_eq!(run.output("change-set-id"), "");
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    assert_eq!(
        run.output("EnvName"),
        "a",
        "outputs of the unchanged stack are still published"
    );
    assert_eq!(
        change_set_count(&stack),
        0,
        "the empty change set was deleted"
    );
    assert!(run.summary.contains("no changes"), "{}", run.summary);
}

#[test]
fn empty_change_set_fails_when_asked_and_leaves_nothing_behind() {
    let ws = Workspace::new();
    let stack = unique_name("failempty");
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .run()
        .assert_code(0);
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("fail-on-empty-changeset", "true")
        .run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("fail-on-empty-changeset"),
        "{}",
        run.stdout
    );
    assert_eq!(change_set_count(&stack), 0);
}

#[test]
fn no_execute_changeset_keeps_the_change_set_for_review() {
    let ws = Workspace::new();
    let stack = unique_name("review");
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("no-execute-changeset", "true")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("has-changes"), "true");
    assert_eq!(run.output("changes-count"), "2");
    assert_eq!(run.output("stack-status"), "REVIEW_IN_PROGRESS");
    assert_eq!(change_set_count(&stack), 1, "the change set is kept");
    assert!(run.summary.contains("not executed"), "{}", run.summary);
    assert!(
        run.summary.contains("| Add | `Setting` |"),
        "{}",
        run.summary
    );
}

/// `deployment-mode: REVERT_DRIFT` (the anchor's input) reaches
/// CreateChangeSet: the kept change set is a drift-aware one.
#[test]
fn deployment_mode_makes_a_drift_aware_change_set() {
    let ws = Workspace::new();
    let stack = unique_name("drift");
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=d")
        .input("mode", "create-only")
        .input("deployment-mode", "REVERT_DRIFT")
        .run();
    run.assert_code(0);
    let described = block_on(
        Emulator::shared()
            .cloudformation()
            .describe_change_set()
            .change_set_name(run.output("change-set-id"))
            .send(),
    )
    .expect("describe change set");
    assert_eq!(
        described.deployment_mode().map(|m| m.as_str()),
        Some("REVERT_DRIFT")
    );
}

/// `include-nested-stacks-change-set` (the anchor's input) reaches
/// CreateChangeSet; without it the change set holds this stack only.
#[test]
fn include_nested_stacks_change_set_reaches_the_change_set() {
    let ws = Workspace::new();
    for (given, expected) in [(Some("true"), Some(true)), (None, Some(false))] {
        let stack = unique_name("nested-cs");
        let mut step = deploy(&ws, &stack, QUEUE_TEMPLATE)
            .input("parameter-overrides", "Env=d")
            .input("mode", "create-only");
        if let Some(value) = given {
            step = step.input("include-nested-stacks-change-set", value);
        }
        let run = step.run();
        run.assert_code(0);
        let described = block_on(
            Emulator::shared()
                .cloudformation()
                .describe_change_set()
                .change_set_name(run.output("change-set-id"))
                .send(),
        )
        .expect("describe change set");
        assert_eq!(described.include_nested_stacks(), expected, "{given:?}");
    }
}

/// A template over CloudFormation's inline limit goes through `s3-bucket`:
/// uploaded under its digest, deployed by URL; deployed again unchanged, it
/// is found in the bucket and not uploaded twice.
#[test]
fn a_large_template_is_uploaded_once_and_deployed_by_url() {
    let ws = Workspace::new();
    let stack = unique_name("large");
    let bucket = crate::rollout::create_bucket_on(Emulator::shared(), "templates");
    // Comments make it large without changing what it declares.
    let large = format!("{QUEUE_TEMPLATE}\n{}\n", "# padding\n".repeat(6_000));
    assert!(large.len() > 51_200);
    let run = || {
        deploy(&ws, &stack, &large)
            .input("parameter-overrides", "Env=big")
            .input("s3-bucket", &bucket)
            .input("s3-prefix", "/cfn/web/")
            .run()
    };
    let first = run();
    first.assert_code(0);
    assert_eq!(
        first.output("stack-status"),
        "CREATE_COMPLETE",
        "{}",
        first.stdout
    );
    assert_eq!(first.output("EnvName"), "big");
    assert!(
        first
            .stdout
            .contains(&format!("upload the template to s3://{bucket}/cfn/web/")),
        "the plan names the upload: {}",
        first.stdout
    );
    assert!(
        first.stdout.contains("uploaded the template to s3://"),
        "{}",
        first.stdout
    );

    let second = run();
    second.assert_code(0);
    assert_eq!(second.output("has-changes"), "false", "{}", second.stdout);
    assert!(
        second.stdout.contains("there already, same content"),
        "{}",
        second.stdout
    );
    assert!(
        !second.stdout.contains("uploaded the template"),
        "{}",
        second.stdout
    );
}

/// The review workflow of aws-cloudformation-github-deploy: a create-only
/// step, a review, then an execute-only step given the first step's
/// change-set-id. Executing it again is refused, naming its status.
#[test]
fn a_change_set_created_for_review_is_executed_by_a_later_step() {
    let ws = Workspace::new();
    let stack = unique_name("review-exec");
    let created = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=prod")
        .input("mode", "create-only")
        .run();
    created.assert_code(0);
    assert_eq!(created.output("stack-status"), "REVIEW_IN_PROGRESS");
    let change_set = created.output("change-set-id").to_string();

    let executed = ActionRun::new(&ws)
        .input("name", &stack)
        .input("mode", "execute-only")
        .input("execute-change-set-id", &change_set)
        .run();
    executed.assert_code(0);
    assert_eq!(
        executed.output("stack-status"),
        "CREATE_COMPLETE",
        "{}",
        executed.stdout
    );
    assert_eq!(executed.output("change-set-id"), change_set);
    assert_eq!(executed.output("changes-count"), "2");
    assert_eq!(executed.output("EnvName"), "prod");
    assert!(
        executed
            .stdout
            .contains(&format!("stack {stack}: execute change set {change_set}")),
        "the plan names the step: {}",
        executed.stdout
    );

    let again = ActionRun::new(&ws)
        .input("name", &stack)
        .input("mode", "execute-only")
        .input("execute-change-set-id", &change_set)
        .run();
    again.assert_code(2);
    assert!(
        again
            .error_annotations()
            .iter()
            .any(|l| l.contains("`execute-change-set-id`") && l.contains("executed already")),
        "{}",
        again.stdout
    );
}

/// A step migrated from aws-cloudformation-github-deploy, as its README
/// writes it: `1` for true and a repeated key for a list.
#[test]
fn a_migrated_step_with_the_anchor_spellings_keeps_its_meaning() {
    let ws = Workspace::new();
    let stack = unique_name("migrated");
    let run = deploy(&ws, &stack, LIST_TEMPLATE)
        .input("parameter-overrides", "Zones=us-east-1a, Zones=us-east-1b")
        .input("no-execute-changeset", "1")
        .run();
    run.assert_code(0);
    assert_eq!(
        run.output("stack-status"),
        "REVIEW_IN_PROGRESS",
        "{}",
        run.stdout
    );
    assert_eq!(change_set_count(&stack), 1, "the change set is kept");
    assert!(
        run.stdout.lines().any(|l| l.starts_with("::notice::")
            && l.contains("`no-execute-changeset`: `1` is read as `true`")),
        "{}",
        run.stdout
    );
    let applied = deploy(&ws, &stack, LIST_TEMPLATE)
        .input("parameter-overrides", "Zones=us-east-1a,Zones=us-east-1b")
        .run();
    applied.assert_code(0);
    assert_eq!(
        applied.output("JoinedZones"),
        "us-east-1a|us-east-1b",
        "{}",
        applied.stdout
    );
}

/// A template with a CommaDelimitedList parameter, echoed joined by `|`.
const LIST_TEMPLATE: &str = r#"
Parameters:
  Zones:
    Type: CommaDelimitedList
Resources:
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/zones"
      Type: String
      Value: !Join ["|", !Ref Zones]
Outputs:
  JoinedZones:
    Value: !Join ["|", !Ref Zones]
"#;

#[test]
fn rollback_complete_stack_is_deleted_and_created_anew() {
    let ws = Workspace::new();
    let stack = unique_name("rollback");
    let failed = deploy(
        &ws,
        &stack,
        &failing_template("Queue quota exceeded for account"),
    )
    .run();
    failed.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert_eq!(failed.output("stack-status"), "ROLLBACK_COMPLETE");
    assert!(
        failed
            .error_annotations()
            .iter()
            .any(|l| l.contains("Queue quota exceeded for account")),
        "root cause as an annotation:\n{}",
        failed.stdout
    );
    assert!(
        !failed
            .error_annotations()
            .iter()
            .any(|l| l.contains("root cause") && l.contains("cancelled")),
        "cancellations are not root causes:\n{}",
        failed.stdout
    );
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=x")
        .run();
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    assert!(
        run.stdout
            .contains("is ROLLBACK_COMPLETE: deleting it to create it anew"),
        "{}",
        run.stdout
    );
    assert!(run.summary.contains("created anew"), "{}", run.summary);
}

#[test]
fn review_in_progress_stack_without_resources_is_recreated() {
    let ws = Workspace::new();
    let stack = unique_name("reviewonly");
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("no-execute-changeset", "true")
        .run()
        .assert_code(0);
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=b")
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("is REVIEW_IN_PROGRESS: deleting it"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("EnvName"), "b");
}

#[test]
fn failed_update_rolls_back_and_reports_the_cause() {
    let ws = Workspace::new();
    let stack = unique_name("updfail");
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .run()
        .assert_code(0);
    let broken = QUEUE_TEMPLATE.replace(
        "  Setting:\n    Type: AWS::SSM::Parameter\n",
        "  Setting:\n    Type: AWS::SSM::Parameter\n    Metadata:\n      Emulator:\n        Fail: \"Parameter value is too long\"\n",
    );
    let run = deploy(&ws, &stack, &broken)
        .input("parameter-overrides", "Env=b")
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert_eq!(run.output("stack-status"), "UPDATE_ROLLBACK_COMPLETE");
    assert!(
        run.stdout.contains(
            "::error::root cause: Setting (AWS::SSM::Parameter): Parameter value is too long"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        stack_parameters(&stack)[0],
        ("Env".into(), "a".into()),
        "rolled back"
    );
}

#[test]
fn running_operation_is_waited_for_then_the_update_proceeds() {
    let ws = Workspace::new();
    let stack = unique_name("busy");
    let client = Emulator::shared().cloudformation();
    block_on(async {
        let created = client
            .create_change_set()
            .stack_name(&stack)
            .change_set_name("by-someone-else")
            .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
            .template_body(slow_template(2.0))
            .send()
            .await
            .unwrap();
        for _ in 0..100 {
            let cs = client
                .describe_change_set()
                .change_set_name(created.id().unwrap())
                .send()
                .await
                .unwrap();
            if cs.status().map(|s| s.as_str()) == Some("CREATE_COMPLETE") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        client
            .execute_change_set()
            .change_set_name(created.id().unwrap())
            .send()
            .await
            .unwrap();
    });
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("another operation is running"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Slow  AWS::SNS::Topic  CREATE_COMPLETE"),
        "events of the awaited operation are shown:\n{}",
        run.stdout
    );
    assert_eq!(run.output("stack-status"), "UPDATE_COMPLETE");
}

#[test]
fn waiting_is_bounded_and_a_timeout_is_a_failure() {
    let ws = Workspace::new();
    let stack = unique_name("timeout");
    let run = deploy(&ws, &stack, &slow_template(30.0))
        .input("wait-timeout", "2s")
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(
        run.stdout.contains("was still CREATE_IN_PROGRESS after"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.output("stack-status"),
        "CREATE_IN_PROGRESS",
        "the last known status is reported"
    );
    // A second deploy refuses to start on top of the running one.
    let second = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("wait-timeout", "1s")
        .run();
    second.assert_code(1);
    assert!(
        second.stdout.contains("no change was made"),
        "{}",
        second.stdout
    );
    assert_eq!(
        change_set_count(&stack),
        0,
        "no change set was created on top"
    );
}

#[test]
fn recovery_states_fail_with_the_recovery_step_named() {
    for (status, recovery) in [
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback"),
        ("DELETE_FAILED", "aws cloudformation delete-stack"),
    ] {
        let ws = Workspace::new();
        let stack = unique_name("stuck");
        deploy(&ws, &stack, QUEUE_TEMPLATE)
            .input("parameter-overrides", "Env=a")
            .run()
            .assert_code(0);
        Emulator::shared().force_stack_status(&stack, status);
        let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
            .input("parameter-overrides", "Env=b")
            .run();
        run.assert_code(1);
        assert!(
            run.error_annotations()
                .iter()
                .any(|l| l.contains(recovery) && l.contains(&stack)),
            "{status}:\n{}",
            run.stdout
        );
        assert_eq!(change_set_count(&stack), 0);
        assert_eq!(
            stack_status(&stack).as_deref(),
            Some(status),
            "nothing was touched"
        );
    }
}

#[test]
fn stack_settings_are_sent_to_cloudformation() {
    let ws = Workspace::new();
    let stack = unique_name("settings");
    let topic = "arn:aws:sns:us-east-1:123456789012:deploys";
    let role = "arn:aws:iam::123456789012:role/cfn-deployer";
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("disable-rollback", "true")
        .input("termination-protection", "true")
        .input("notification-arns", topic)
        .input("role-arn", role)
        .input("tags", r#"[{"Key":"team","Value":"web"}]"#)
        .run();
    run.assert_code(0);
    let client = Emulator::shared().cloudformation();
    let stack_info = block_on(async {
        client
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .unwrap()
            .stacks()[0]
            .clone()
    });
    assert_eq!(stack_info.disable_rollback(), Some(true));
    assert_eq!(stack_info.enable_termination_protection(), Some(true));
    assert_eq!(stack_info.notification_arns(), [topic.to_string()]);
    assert_eq!(stack_info.role_arn(), Some(role));
    assert_eq!(stack_info.tags()[0].key(), Some("team"));
    assert_eq!(stack_info.tags()[0].value(), Some("web"));

    // A stack timeout can only be set on creation.
    let timed = unique_name("timed");
    let run = deploy(&ws, &timed, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("timeout-in-minutes", "25")
        .run();
    run.assert_code(0);
    let timed_info = block_on(async {
        client
            .describe_stacks()
            .stack_name(&timed)
            .send()
            .await
            .unwrap()
            .stacks()[0]
            .clone()
    });
    assert_eq!(timed_info.timeout_in_minutes(), Some(25));
    assert_eq!(run.output("changes-count"), "2");
}

#[test]
fn parameter_overrides_in_every_form() {
    let template = r#"
Parameters:
  Subnets:
    Type: CommaDelimitedList
  Query:
    Type: String
Resources:
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/setting"
      Type: String
      Value: !Ref Query
Outputs:
  Subnets:
    Value: !Join [",", !Ref Subnets]
  Query:
    Value: !Ref Query
"#;
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        (r#"Subnets="subnet-a,subnet-b",Query=a=b"#, None),
        (
            "file://params.json",
            Some((
                "params.json",
                r#"[{"ParameterKey":"Subnets","ParameterValue":"subnet-a,subnet-b"},{"ParameterKey":"Query","ParameterValue":"a=b"}]"#,
            )),
        ),
        (
            "params-map.json",
            Some((
                "params-map.json",
                r#"{"Subnets":["subnet-a","subnet-b"],"Query":"a=b"}"#,
            )),
        ),
        (
            "file://params.yaml",
            Some(("params.yaml", "Subnets: subnet-a,subnet-b\nQuery: a=b\n")),
        ),
    ];
    for (overrides, file) in cases {
        let ws = Workspace::new();
        if let Some((name, content)) = file {
            ws.write(name, content);
        }
        let stack = unique_name("params");
        let run = deploy(&ws, &stack, template)
            .input("parameter-overrides", overrides)
            .run();
        run.assert_code(0);
        assert_eq!(run.output("Subnets"), "subnet-a,subnet-b", "{overrides}");
        assert_eq!(run.output("Query"), "a=b", "{overrides}");
    }
}

#[test]
fn unknown_parameter_override_is_a_bad_input_and_changes_nothing() {
    let ws = Workspace::new();
    let stack = unique_name("unknownparam");
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a,Colour=blue")
        .run();
    run.assert_code(2);
    let errors = run.error_annotations();
    assert!(
        errors
            .iter()
            .any(|l| l.contains("parameter-overrides") && l.contains("Colour")),
        "{}",
        run.stdout
    );
    assert_eq!(stack_status(&stack), None, "no stack was created");
    assert!(
        run.outputs.is_empty(),
        "no outputs are written for a bad input"
    );
}

/// Two runs at once: the second finds the first's CREATE change set not yet
/// executed (an empty REVIEW_IN_PROGRESS stack) and waits for it instead of
/// deleting the stack under it; past wait-timeout it fails without touching
/// anything.
#[test]
fn a_stack_another_run_is_creating_is_not_deleted_under_it() {
    let ws = Workspace::new();
    let stack = unique_name("inflight");
    let client = Emulator::shared().cloudformation();
    block_on(async {
        client
            .create_change_set()
            .stack_name(&stack)
            .change_set_name("ecs-stack-deploy-111-1")
            .description("ecs-stack-deploy 0.1.0 for acme/shop@0123456")
            .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
            .template_body(slow_template(1.0))
            .send()
            .await
            .unwrap();
    });
    let run = deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=a")
        .input("wait-timeout", "2s")
        .run();
    run.assert_code(1);
    assert!(
        run.stdout
            .contains("another run of this action created its change set"),
        "{}",
        run.stdout
    );
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("no change was made")),
        "{}",
        run.stdout
    );
    assert_eq!(
        stack_status(&stack).as_deref(),
        Some("REVIEW_IN_PROGRESS"),
        "the stack was left alone"
    );
    assert_eq!(
        change_set_count(&stack),
        1,
        "the other run's change set is still there"
    );
}

/// Two runs of the action deploying the same stack at the same moment, the
/// second starting 0, 150 and 400 ms after the first: both find no stack
/// and make CREATE change sets (the first executed deletes the other, whose
/// run then waits and plans again), or the second finds the stack being
/// created and waits for it. Both succeed, exactly one of them changes the
/// stack, which ends created, and no change set is left behind.
#[test]
fn two_runs_deploying_the_same_stack_at_once_both_succeed_without_corrupting_it() {
    for delay_ms in [0, 150, 400] {
        let stack = unique_name("race");
        let (first_ws, second_ws) = (Workspace::new(), Workspace::new());
        let template = format!(
            "{}\nOutputs:\n  Topic:\n    Value: !Ref Slow\n",
            slow_template(1.5)
        );
        let (first, second) = std::thread::scope(|scope| {
            let first = scope.spawn(|| deploy(&first_ws, &stack, &template).run());
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let second = scope.spawn(|| deploy(&second_ws, &stack, &template).run());
            (
                first.join().expect("first run"),
                second.join().expect("second run"),
            )
        });
        for run in [&first, &second] {
            run.assert_code(0);
            assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
        }
        let changed: Vec<_> = [&first, &second]
            .iter()
            .map(|r| r.output("has-changes").to_string())
            .collect();
        assert!(
            changed.contains(&"true".to_string()) && changed.contains(&"false".to_string()),
            "delay {delay_ms} ms: one run creates the stack, the other finds it up to date: {changed:?}"
        );
        assert_eq!(
            first.output("outputs"),
            second.output("outputs"),
            "both report the same stack"
        );
        assert_eq!(stack_status(&stack).as_deref(), Some("CREATE_COMPLETE"));
        Emulator::shared().assert_no_change_set_left(&stack);
    }
}

/// Two runs updating the same stack at once with different values: the
/// second's change set is deleted when the first's is executed (or it finds
/// the update running), so it waits and plans again against the updated
/// stack. Both succeed and the stack ends with the values of whichever run
/// executed last, never a mix and never a failed update.
#[test]
fn two_runs_updating_the_same_stack_at_once_apply_one_after_the_other() {
    let stack = unique_name("raceupd");
    let ws = Workspace::new();
    deploy(&ws, &stack, QUEUE_TEMPLATE)
        .input("parameter-overrides", "Env=base")
        .run()
        .assert_code(0);
    let (first_ws, second_ws) = (Workspace::new(), Workspace::new());
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            deploy(&first_ws, &stack, QUEUE_TEMPLATE)
                .input("parameter-overrides", "Env=first")
                .run()
        });
        let second = scope.spawn(|| {
            deploy(&second_ws, &stack, QUEUE_TEMPLATE)
                .input("parameter-overrides", "Env=second")
                .run()
        });
        (
            first.join().expect("first run"),
            second.join().expect("second run"),
        )
    });
    for run in [&first, &second] {
        run.assert_code(0);
        assert_eq!(run.output("stack-status"), "UPDATE_COMPLETE");
        assert_eq!(run.output("has-changes"), "true", "{}", run.stdout);
    }
    let final_env = stack_parameters(&stack)
        .into_iter()
        .find(|(key, _)| key == "Env")
        .map(|(_, value)| value)
        .expect("the stack's Env parameter");
    assert!(
        ["first", "second"].contains(&final_env.as_str()),
        "{final_env}"
    );
    assert!(
        [&first, &second]
            .iter()
            .any(|run| run.output("EnvName") == final_env),
        "the run that executed last reports the stack as it is"
    );
    Emulator::shared().assert_no_change_set_left(&stack);
}

/// A template whose task definition names a mutable tag itself (a literal,
/// or a `!Sub` of a parameter default) is refused like a mutable `image`
/// input, before anything changes: CloudFormation would see no change when
/// the tag moves. `allow-mutable-tag` lets it through.
#[test]
fn a_mutable_tag_written_into_the_template_is_refused() {
    let ws = Workspace::new();
    let stack = unique_name("tpl-latest");
    let template = r#"
Parameters:
  Tag:
    Type: String
    Default: latest
Resources:
  TaskDefinition:
    Type: AWS::ECS::TaskDefinition
    Properties:
      Family: !Sub "${AWS::StackName}-web"
      ContainerDefinitions:
        - Name: app
          Image: !Sub "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/web:${Tag}"
          Memory: 128
        - Name: proxy
          Image: nginx
          Memory: 128
"#;
    let run = deploy(&ws, &stack, template).run();
    run.assert_code(2);
    let errors = run.error_annotations().join("\n");
    assert!(errors.contains("input `template`"), "{errors}");
    assert!(errors.contains("container `app`"), "{errors}");
    assert!(errors.contains("web:latest"), "{errors}");
    assert!(errors.contains("container `proxy`"), "{errors}");
    assert!(errors.contains("allow-mutable-tag"), "{errors}");
    assert!(
        block_on(
            Emulator::shared()
                .cloudformation()
                .describe_stacks()
                .stack_name(&stack)
                .send()
        )
        .is_err(),
        "nothing was created"
    );
    // An immutable tag given for the parameter passes; so does the override.
    deploy(&ws, &stack, template)
        .input("parameter-overrides", "Tag=1f2e3d4")
        .input("allow-mutable-tag", "true")
        .run()
        .assert_code(0);
}

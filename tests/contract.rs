//! The action contract with the runner: input naming and validation, exit
//! codes, the output file, the job summary, and that text from AWS can never
//! act as a workflow command.

use crate::deploy::QUEUE_TEMPLATE;
use crate::util::{ActionRun, Emulator, Workspace, read_repo_file, unique_name};

fn with_template<'a>(ws: &'a Workspace, stack: &str) -> ActionRun<'a> {
    ws.write("stack.yml", QUEUE_TEMPLATE);
    ActionRun::new(ws)
        .binary()
        .input("name", stack)
        .input("template", "stack.yml")
}

#[test]
fn bad_inputs_exit_2_with_an_annotation_naming_input_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        ("disable-rollback", "yes", "true, True, TRUE"),
        ("no-execute-changeset", "2", "true, True, TRUE"),
        (
            "capabilities",
            "CAPABILITY_EVERYTHING",
            "CAPABILITY_NAMED_IAM",
        ),
        (
            "template",
            "missing.yml",
            "relative paths are resolved against the workspace",
        ),
        ("parameter-overrides", "Env", "Key=Value"),
        ("parameter-overrides", "file://nope.json", "cannot be read"),
        ("tags", "[{\"Key\": 1", "JSON or YAML"),
        ("name", "bad_name!", "letters, digits and hyphens"),
        ("wait-timeout", "10", "with a unit"),
        ("role-arn", "admin", "arn:aws:iam::"),
    ];
    for (input, value, fix) in cases {
        let ws = Workspace::new();
        let stack = unique_name("badinput");
        let run = with_template(&ws, &stack).input(input, value).run();
        run.assert_code(2);
        let errors = run.error_annotations();
        assert!(
            errors
                .iter()
                .any(|l| l.contains(&format!("`{input}`")) && l.contains(fix)),
            "{input}={value}: expected an error naming the input and `{fix}`:\n{}",
            run.stdout
        );
        assert!(run.outputs.is_empty(), "{input}: no outputs on bad input");
        assert!(
            run.stdout.contains("nothing was changed in AWS"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn invalid_template_is_reported_with_its_location() {
    let ws = Workspace::new();
    ws.write(
        "broken.yml",
        "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n   Properties: [\n",
    );
    let run = ActionRun::new(&ws)
        .binary()
        .input("name", &unique_name("broken"))
        .input("template", "broken.yml")
        .run();
    run.assert_code(2);
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("`template`") && l.contains("line")),
        "{}",
        run.stdout
    );
}

#[test]
fn template_too_large_for_a_body_asks_for_s3() {
    let ws = Workspace::new();
    let padding = "#".repeat(60_000);
    ws.write("big.yml", &format!("{QUEUE_TEMPLATE}\n{padding}\n"));
    let run = ActionRun::new(&ws)
        .binary()
        .input("name", &unique_name("big"))
        .input("template", "big.yml")
        .run();
    run.assert_code(2);
    assert!(
        run.stdout.contains("51200-byte limit") && run.stdout.contains("set `s3-bucket`"),
        "the fix names s3-bucket: {}",
        run.stdout
    );
}

#[test]
fn missing_output_file_on_a_runner_is_a_bad_input() {
    let ws = Workspace::new();
    let run = with_template(&ws, &unique_name("nooutput"))
        .input("parameter-overrides", "Env=a")
        .env("GITHUB_OUTPUT", "")
        .run();
    run.assert_code(2);
    assert!(run.stdout.contains("GITHUB_OUTPUT"), "{}", run.stdout);
}

#[test]
fn hostile_text_from_aws_is_inert_and_outputs_survive_intact() {
    let ws = Workspace::new();
    let stack = unique_name("hostile");
    let hostile = "line one\n::set-env name=PWNED::1\n::add-mask::x\n%0A::error::forged";
    let template = r#"
Parameters:
  Payload:
    Type: String
Resources:
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/setting"
      Type: String
      Value: !Ref Payload
Outputs:
  Payload:
    Value: !Ref Payload
"#;
    ws.write("stack.yml", template);
    ws.write(
        "params.json",
        &serde_json::json!({ "Payload": hostile }).to_string(),
    );
    let run = ActionRun::new(&ws)
        .binary()
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "file://params.json")
        .run();
    run.assert_code(0);
    assert_eq!(
        run.output("Payload"),
        hostile,
        "the output file round-trips the value exactly"
    );
    for line in run.stdout.lines() {
        let trimmed = line.trim_start();
        assert!(
            !trimmed.starts_with("::set-env"),
            "live command in log: {line}"
        );
        assert!(
            !trimmed.starts_with("::add-mask::x"),
            "live command in log: {line}"
        );
        assert!(
            !trimmed.starts_with("::error::forged"),
            "live command in log: {line}"
        );
    }

    // A failure reason from AWS carrying commands: printed inert, and the
    // annotation keeps it inside one escaped command.
    let failing = crate::deploy::failing_template("bad\n::warning::forged\n##[error]legacy");
    let ws = Workspace::new();
    ws.write("fail.yml", &failing);
    let stack = unique_name("hostilefail");
    let run = ActionRun::new(&ws)
        .binary()
        .input("name", &stack)
        .input("template", "fail.yml")
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    for line in run.stdout.lines() {
        assert!(
            !line.trim_start().starts_with("::warning::forged"),
            "live command in log: {line}"
        );
        assert!(!line.contains("##[error]"), "legacy command in log: {line}");
    }
    assert!(
        run.error_annotations().iter().any(|l| l.contains("bad%0A")),
        "{}",
        run.stdout
    );
}

#[test]
fn cli_front_end_takes_the_same_options_as_flags() {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("cli");
    let run = ActionRun::new(&ws)
        .binary()
        .env("GITHUB_ACTIONS", "")
        .args(&[
            "deploy",
            "--name",
            &stack,
            "--template",
            "stack.yml",
            "--parameter-overrides",
            "Env=cli",
            "--no-execute-changeset",
        ])
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("==> Change set"),
        "plain phase headers outside a runner:\n{}",
        run.stdout
    );
    assert!(!run.stdout.contains("::group::"), "{}", run.stdout);
    assert_eq!(run.output("stack-status"), "REVIEW_IN_PROGRESS");

    let bad = ActionRun::new(&ws)
        .binary()
        .env("GITHUB_ACTIONS", "")
        .args(&[
            "deploy",
            "--name",
            &stack,
            "--template",
            "stack.yml",
            "--disable-rollback=maybe",
        ])
        .run();
    bad.assert_code(2);
    assert!(
        bad.stdout.contains("error: input `disable-rollback`"),
        "{}",
        bad.stdout
    );
}

#[test]
fn action_yml_declares_every_input_and_output_with_the_same_defaults() {
    let action: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read_repo_file("action.yml")).unwrap();
    assert_eq!(action["runs"]["using"].as_str(), Some("docker"));
    let inputs = action["inputs"].as_mapping().expect("inputs");
    let declared: Vec<&str> = inputs.keys().filter_map(|k| k.as_str()).collect();
    let expected: Vec<&str> = ecs_stack_deploy::inputs::DEPLOY_INPUTS
        .iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(declared, expected, "action.yml inputs, in order");
    for spec in ecs_stack_deploy::inputs::DEPLOY_INPUTS {
        let input = &inputs[spec.name];
        assert!(
            input["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{} needs a description",
            spec.name
        );
        let default = input.get("default").and_then(|d| match d {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        });
        // A default the runner evaluates (`${{ github.token }}`) is, for the
        // binary, simply not given.
        let default = default.filter(|d| !d.starts_with("${{"));
        assert_eq!(default.as_deref(), spec.default, "default of {}", spec.name);
    }
    let outputs = action["outputs"].as_mapping().expect("outputs");
    for name in ecs_stack_deploy::report::DECLARED_OUTPUTS {
        assert!(
            outputs
                .get(*name)
                .and_then(|o| o["description"].as_str())
                .is_some(),
            "output {name} must be documented"
        );
    }
}

#[test]
fn no_echo_parameter_values_are_masked_before_anything_is_printed() {
    let ws = Workspace::new();
    ws.write(
        "secret.yml",
        r#"
Parameters:
  DbPassword:
    Type: String
    NoEcho: true
Resources:
  Topic:
    Type: AWS::SNS::Topic
"#,
    );
    let secret = "s3cr3t-Value-9f";
    let run = ActionRun::new(&ws)
        .binary()
        .input("name", &unique_name("noecho"))
        .input("template", "secret.yml")
        .input("parameter-overrides", &format!("DbPassword={secret}"))
        .run();
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let mask = lines
        .iter()
        .position(|l| *l == format!("::add-mask::{secret}"))
        .unwrap_or_else(|| panic!("the value is not masked:\n{}", run.stdout));
    for (index, line) in lines.iter().enumerate() {
        if index != mask {
            assert!(
                !line.contains(secret),
                "the NoEcho value is printed: {line}"
            );
        }
    }
    assert!(
        lines[..mask].iter().all(|l| !l.contains(secret)),
        "masked before any other line"
    );
}

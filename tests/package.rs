//! Packaging against the emulator: templates that name local files (nested
//! stacks two levels deep, a Lambda function's code directory, an
//! `AWS::Include` snippet) are uploaded to `s3-bucket` and deployed; the
//! same sources deploy again as a no-op.

use crate::rollout::create_bucket_on;
use crate::rollout::push_image_on;
use crate::util::{ActionRun, Emulator, Workspace, block_on, read_repo_file, unique_name};

const ROOT: &str = r#"
Parameters:
  Env:
    Type: String
Resources:
  Network:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: nested/network.yml
      Parameters:
        Env: !Ref Env
  Topic:
    Type: AWS::SNS::Topic
Outputs:
  QueueName:
    Value: !GetAtt Network.Outputs.QueueName
"#;

const NETWORK: &str = r#"
Parameters:
  Env:
    Type: String
Resources:
  Queues:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: ./queues/queue.yml
      Parameters:
        Env: !Ref Env
Outputs:
  QueueName:
    Value: !GetAtt Queues.Outputs.QueueName
"#;

const QUEUE: &str = r#"
Parameters:
  Env:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${Env}-orders"
Outputs:
  QueueName:
    Value: !GetAtt Queue.QueueName
"#;

fn nested_workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("infra/root.yml", ROOT);
    ws.write("infra/nested/network.yml", NETWORK);
    ws.write("infra/nested/queues/queue.yml", QUEUE);
    ws
}

fn list_keys(emulator: &Emulator, bucket: &str) -> Vec<String> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&crate::rollout::config_for(emulator))
            .force_path_style(true)
            .build(),
    );
    let listed = block_on(s3.list_objects_v2().bucket(bucket).send()).expect("list objects");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// Two levels of nested stacks from local files: packaged children first,
/// deployed through the parent, the grandchild's output reaching the
/// parent's; the packaged template is written for review; the same files
/// deploy again as a no-op without a single upload.
#[test]
fn nested_stacks_from_local_files_deploy_and_redeploy_as_a_no_op() {
    let ws = nested_workspace();
    let emulator = Emulator::shared();
    let bucket = create_bucket_on(emulator, "packages");
    let stack = unique_name("nested");
    let env = stack.to_lowercase();
    let run = || {
        ActionRun::new(&ws)
            .input("name", &stack)
            .input("template", "infra/root.yml")
            .input("parameter-overrides", &format!("Env={env}"))
            .input("s3-bucket", &bucket)
            .input("s3-prefix", "cfn")
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
    assert_eq!(first.output("QueueName"), format!("{env}-orders"));
    assert!(
        first.stdout.contains("upload 2 packaged file(s) to s3://"),
        "the plan names the uploads: {}",
        first.stdout
    );
    let keys = list_keys(emulator, &bucket);
    assert_eq!(keys.len(), 2, "the two nested templates: {keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("cfn/") && k.ends_with(".template"))
    );
    let packaged = first.output("packaged-template");
    assert_eq!(packaged, format!(".ecs-stack-deploy/{stack}.packaged.yml"));
    let packaged_text = ws.read(packaged);
    assert!(
        keys.iter().any(|k| packaged_text.contains(k.as_str())),
        "the packaged template points at the uploaded child: {packaged_text}"
    );
    assert!(
        packaged_text.contains("!GetAtt Network.Outputs.QueueName"),
        "{packaged_text}"
    );

    let second = run();
    second.assert_code(0);
    assert_eq!(second.output("has-changes"), "false", "{}", second.stdout);
    assert!(
        second.stdout.contains("(there already)"),
        "{}",
        second.stdout
    );
    assert!(!second.stdout.contains("uploaded"), "{}", second.stdout);
    assert_eq!(list_keys(emulator, &bucket).len(), 2);

    // A change two levels down changes only what depends on it.
    ws.write(
        "infra/nested/queues/queue.yml",
        &QUEUE.replace("-orders", "-invoices"),
    );
    let third = run();
    third.assert_code(0);
    assert_eq!(third.output("has-changes"), "true", "{}", third.stdout);
    assert_eq!(
        third.output("QueueName"),
        format!("{env}-invoices"),
        "{}",
        third.stdout
    );
    assert_eq!(
        list_keys(emulator, &bucket).len(),
        4,
        "a new grandchild and child"
    );
}

/// A Lambda function's code directory is zipped deterministically and an
/// `AWS::Include` snippet uploaded as it is; unchanged sources redeploy as a
/// no-op, a changed source file changes the function.
#[test]
fn code_directories_and_includes_are_packaged() {
    let ws = Workspace::new();
    ws.write(
        "infra/app.yml",
        r#"
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
  Handler:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: index.handler
      Role: !GetAtt Role.Arn
      Code: ../src/handler
  Alerts:
    Fn::Transform:
      Name: AWS::Include
      Parameters:
        Location: snippets/topic.yml
Outputs:
  FunctionName:
    Value: !Ref Handler
"#,
    );
    ws.write("infra/snippets/topic.yml", "Type: AWS::SNS::Topic\n");
    ws.write(
        "src/handler/index.py",
        "def handler(event, context):\n    return 1\n",
    );
    ws.write("src/handler/lib/util.py", "LIMIT = 1\n");
    let emulator = Emulator::shared();
    let bucket = create_bucket_on(emulator, "code");
    let stack = unique_name("code");
    let run = || {
        ActionRun::new(&ws)
            .input("name", &stack)
            .input("template", "infra/app.yml")
            .input("capabilities", "CAPABILITY_IAM")
            .input("s3-bucket", &bucket)
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
    assert!(!first.output("FunctionName").is_empty());
    let keys = list_keys(emulator, &bucket);
    assert!(keys.iter().any(|k| k.ends_with(".zip")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".yml")), "{keys:?}");
    let resources = block_on(
        emulator
            .cloudformation()
            .list_stack_resources()
            .stack_name(&stack)
            .send(),
    )
    .expect("list stack resources");
    let alerts = resources
        .stack_resource_summaries()
        .iter()
        .find(|r| r.logical_resource_id() == Some("Alerts"))
        .map(|r| r.resource_type().unwrap_or_default().to_string());
    assert_eq!(
        alerts.as_deref(),
        Some("AWS::SNS::Topic"),
        "the included snippet"
    );

    // A fresh checkout: same content, new timestamps.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ws.write("src/handler/lib/util.py", "LIMIT = 1\n");
    let second = run();
    second.assert_code(0);
    assert_eq!(second.output("has-changes"), "false", "{}", second.stdout);

    ws.write("src/handler/lib/util.py", "LIMIT = 2\n");
    let third = run();
    third.assert_code(0);
    assert_eq!(third.output("has-changes"), "true", "{}", third.stdout);
    assert!(
        third.output("changes-summary").contains("Handler"),
        "{}",
        third.output("changes-summary")
    );
}

/// `ecs-stack-deploy package`: the same packaging without a deploy; to a
/// file, or to stdout with the log on stderr; a bad input exits 2 before
/// anything is uploaded.
#[test]
fn the_package_command_packages_without_deploying() {
    let ws = nested_workspace();
    let emulator = Emulator::private();
    let bucket = create_bucket_on(&emulator, "cli");
    let to_file = ActionRun::new(&ws)
        .args(&[
            "package",
            "--template",
            "infra/root.yml",
            "--s3-bucket",
            &bucket,
            "--output-template-file",
            "packaged.yml",
        ])
        .run_against(&emulator);
    to_file.assert_code(0);
    let packaged = ws.read("packaged.yml");
    let keys = list_keys(&emulator, &bucket);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().any(|k| packaged.contains(k.as_str())),
        "{packaged}"
    );
    assert!(
        to_file.stdout.contains("uploaded 2 of 2 packaged file(s)"),
        "{}",
        to_file.stdout
    );
    let stacks = emulator
        .requests()
        .into_iter()
        .filter(|(service, _)| service == "cloudformation")
        .count();
    assert_eq!(stacks, 0, "nothing is deployed");

    let to_stdout = ActionRun::new(&ws)
        .args(&[
            "package",
            "--template",
            "infra/root.yml",
            "--s3-bucket",
            &bucket,
        ])
        .run_against(&emulator);
    to_stdout.assert_code(0);
    assert_eq!(
        to_stdout.stdout, packaged,
        "the same template, on stdout alone"
    );
    assert!(
        to_stdout
            .stderr
            .contains("uploaded 0 of 2 packaged file(s)"),
        "{}",
        to_stdout.stderr
    );

    let before = emulator.requests().len();
    let missing = ActionRun::new(&ws)
        .args(&["package", "--template", "infra/root.yml"])
        .run_against(&emulator);
    missing.assert_code(2);
    assert!(missing.stderr.contains("`s3-bucket`"), "{}", missing.stderr);
    assert_eq!(emulator.requests().len(), before, "no AWS call");
}

/// The README's example: the four-stack example system as one parent with
/// the chain's templates as nested stacks, packaged into the bucket and
/// deployed in one step; the ECS service in the third nested stack rolls
/// out the commit's image, its events shown under their nested path; the
/// same commit deploys again as a no-op.
#[test]
fn the_example_system_deploys_as_one_stack_of_nested_stacks() {
    let ws = Workspace::new();
    for file in [
        "system/nested.yml",
        "network/template.yml",
        "alb/template.yml",
        "ecs/template.yml",
        "apigw/template.yml",
    ] {
        let path = format!("examples/{file}");
        ws.write(&path, &read_repo_file(&path));
    }
    let emulator = Emulator::private();
    let bucket = create_bucket_on(&emulator, "system");
    let repository = push_image_on(
        &emulator,
        "system/web",
        &["0123456789abcdef0123456789abcdef01234567"],
    );
    let run = || {
        ActionRun::new(&ws)
            .input("name", "demo-system")
            .input("template", "examples/system/nested.yml")
            .input("s3-bucket", &bucket)
            .input("s3-prefix", "demo-system")
            .input("image-repository", &repository)
            .input("capabilities", "CAPABILITY_IAM")
            .run_against(&emulator)
    };
    let first = run();
    first.assert_code(0);
    assert_eq!(
        first.output("stack-status"),
        "CREATE_COMPLETE",
        "{}",
        first.stdout
    );
    assert!(
        first.output("ApiEndpoint").starts_with("https://"),
        "{}",
        first.stdout
    );
    assert!(!first.output("ServiceName").is_empty());
    assert!(
        first
            .stdout
            .contains("Ecs/Service  AWS::ECS::Service  CREATE_COMPLETE"),
        "the nested service's events, under its path: {}",
        first.stdout
    );
    assert_eq!(
        list_keys(&emulator, &bucket).len(),
        4,
        "four nested templates"
    );
    let second = run();
    second.assert_code(0);
    assert_eq!(second.output("has-changes"), "false", "{}", second.stdout);
}

//! Chaining: `workflow_run` events are checked before anything is deployed
//! (upstream conclusion, fork code), and upstream stacks' outputs feed this
//! stack's parameters without `${{ }}` plumbing across workflows.

use crate::deploy::QUEUE_TEMPLATE;
use crate::util::{ActionRun, Emulator, Workspace, block_on, unique_name};

fn workflow_run(conclusion: &str, head_repository: &str) -> serde_json::Value {
    serde_json::json!({
        "action": "completed",
        "workflow_run": {
            "name": "Network",
            "event": "push",
            "conclusion": conclusion,
            "head_sha": "0123456789abcdef0123456789abcdef01234567",
            "head_branch": "main",
            "head_repository": {"full_name": head_repository}
        },
        "repository": {"full_name": "acme/shop"}
    })
}

fn stack_exists(stack: &str) -> bool {
    let client = Emulator::shared().cloudformation();
    block_on(async {
        client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .is_ok()
    })
}

#[test]
fn failed_upstream_run_stops_before_any_aws_call() {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("upfail");
    let run = ActionRun::new(&ws)
        .event("workflow_run", workflow_run("failure", "acme/shop"))
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=a")
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("Network concluded `failure`")),
        "{}",
        run.stdout
    );
    assert!(!stack_exists(&stack));

    let skipped = ActionRun::new(&ws)
        .event("workflow_run", workflow_run("cancelled", "acme/shop"))
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=a")
        .input("on-upstream-failure", "skip")
        .run();
    skipped.assert_code(0);
    assert!(
        skipped
            .stdout
            .contains("::notice::Network concluded `cancelled`"),
        "{}",
        skipped.stdout
    );
    assert!(!stack_exists(&stack));
}

#[test]
fn fork_code_is_not_deployed_unless_allowed() {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("fork");
    let run = ActionRun::new(&ws)
        .event("workflow_run", workflow_run("success", "mallory/shop"))
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=a")
        .run();
    run.assert_code(1);
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("fork mallory/shop") && l.contains("allow-fork-runs")),
        "{}",
        run.stdout
    );
    assert!(!stack_exists(&stack));

    let allowed = ActionRun::new(&ws)
        .event("workflow_run", workflow_run("success", "mallory/shop"))
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=a")
        .input("allow-fork-runs", "true")
        .run();
    allowed.assert_code(0);
}

#[test]
fn upstream_stack_outputs_fill_parameters() {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let upstream = unique_name("upstream");
    ActionRun::new(&ws)
        .input("name", &upstream)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=from-upstream")
        .run()
        .assert_code(0);
    // The downstream template takes `EnvName` (an output of the upstream
    // stack) and `Label` (mapped from another output).
    ws.write(
        "downstream.yml",
        r#"
Parameters:
  EnvName:
    Type: String
  Label:
    Type: String
Resources:
  Setting:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/label"
      Type: String
      Value: !Sub "${EnvName}-${Label}"
Outputs:
  Combined:
    Value: !Sub "${EnvName}-${Label}"
"#,
    );
    let downstream = unique_name("downstream");
    let run = ActionRun::new(&ws)
        .input("name", &downstream)
        .input("template", "downstream.yml")
        .input(
            "parameters-from-stacks",
            &format!("{upstream}\nLabel={upstream}.QueueArn"),
        )
        .run();
    run.assert_code(0);
    let combined = run.output("Combined");
    assert!(
        combined.starts_with("from-upstream-arn:aws:sqs:"),
        "{combined}"
    );
    assert!(
        run.stdout.contains(&format!(
            "parameter EnvName = from-upstream (from stack {upstream})"
        )),
        "{}",
        run.stdout
    );

    let missing = ActionRun::new(&ws)
        .input("name", &unique_name("downstream"))
        .input("template", "downstream.yml")
        .input(
            "parameters-from-stacks",
            &format!("Label={upstream}.NoSuchOutput\nEnvName={upstream}.EnvName"),
        )
        .run();
    missing.assert_code(2);
    assert!(
        missing
            .error_annotations()
            .iter()
            .any(|l| l.contains("has no output NoSuchOutput")),
        "{}",
        missing.stdout
    );
    let no_stack = ActionRun::new(&ws)
        .input("name", &unique_name("downstream"))
        .input("template", "downstream.yml")
        .input("parameters-from-stacks", "never-deployed-stack")
        .run();
    no_stack.assert_code(2);
    assert!(
        no_stack.stdout.contains("does not exist"),
        "{}",
        no_stack.stdout
    );
}

#[test]
fn lint_workflows_reports_broken_chains_on_file_and_line() {
    let ws = Workspace::new();
    ws.write(
        ".github/workflows/network.yml",
        "name: Network\non:\n  push:\n    branches: [main]\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deploy\n",
    );
    ws.write(
        ".github/workflows/ecs.yml",
        "name: ECS\non:\n  workflow_run:\n    workflows: [network]\n    types: [completed]\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deploy\n",
    );
    let run = ActionRun::new(&ws).args(&["lint-workflows"]).run();
    run.assert_code(1);
    let findings = run.error_annotations();
    assert!(
        findings.iter().any(
            |l| l.starts_with("::error file=.github/workflows/ecs.yml,line=4::")
                && l.contains("Network")
        ),
        "the upstream name mismatch, with the close match:\n{}",
        run.stdout
    );
    assert!(
        findings
            .iter()
            .any(|l| l.contains("ecs.yml") && l.contains("conclusion")),
        "the missing conclusion check:\n{}",
        run.stdout
    );

    ws.write(
        ".github/workflows/ecs.yml",
        "name: ECS\non:\n  workflow_run:\n    workflows: [Network]\n    types: [completed]\njobs:\n  deploy:\n    if: github.event.workflow_run.conclusion == 'success'\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deploy\n",
    );
    let clean = ActionRun::new(&ws).args(&["lint-workflows"]).run();
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("2 workflow file(s), 0 finding(s)"),
        "{}",
        clean.stdout
    );
}

#[test]
fn the_example_chain_passes_its_own_lint() {
    let ws = Workspace::new();
    let examples = crate::util::repo_path("examples/workflows");
    let run = ActionRun::new(&ws)
        .args(&["lint-workflows", &examples.display().to_string()])
        .run();
    run.assert_code(0);
    assert!(
        run.stdout.contains("6 workflow file(s), 0 finding(s)"),
        "{}",
        run.stdout
    );
}

/// The four example stacks, chained as the example workflows chain them:
/// each stack fills its parameters from the previous stacks' outputs, the
/// ECS stack runs the image of the commit that triggered the chain
/// (`workflow_dispatch` here: the tag is the dispatched commit), and the
/// API Gateway stack ends with the endpoint.
#[test]
fn the_example_chain_deploys_from_stack_to_stack() {
    let ws = Workspace::new();
    for stack in ["network", "alb", "ecs", "apigw"] {
        let template = std::fs::read_to_string(crate::util::repo_path(&format!(
            "examples/{stack}/template.yml"
        )))
        .expect("example template");
        ws.write(&format!("examples/{stack}/template.yml"), &template);
    }
    let prefix = unique_name("chain");
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let repository = crate::rollout::push_image(&format!("{prefix}/web"), &[sha]);
    let dispatch = serde_json::json!({"inputs": {"image_tag": ""}, "ref": "refs/heads/main", "repository": {"full_name": "acme/shop"}});
    let deploy = |stack: &str, extra: &[(&str, &str)]| {
        let mut run = ActionRun::new(&ws)
            .event("workflow_dispatch", dispatch.clone())
            .input("name", &format!("{prefix}-{stack}"))
            .input("template", &format!("examples/{stack}/template.yml"))
            .input(
                "parameter-overrides",
                &format!("EnvironmentName={}", prefix.replace('-', "")),
            );
        for (name, value) in extra {
            run = run.input(name, value);
        }
        let result = run.run();
        result.assert_code(0);
        result
    };
    let network = deploy("network", &[]);
    assert!(network.output("VpcId").starts_with("vpc-"));
    let network_stack = format!("{prefix}-network");
    let alb = deploy("alb", &[("parameters-from-stacks", &network_stack)]);
    assert!(alb.output("TargetGroupArn").contains(":targetgroup/"));
    let upstream = format!("{network_stack}\n{prefix}-alb");
    let ecs = deploy(
        "ecs",
        &[
            ("parameters-from-stacks", &upstream),
            ("image-repository", &repository),
        ],
    );
    assert_eq!(
        ecs.output("image"),
        format!("{repository}:{sha}"),
        "the dispatched commit's image"
    );
    assert_eq!(ecs.output("rollout-state"), "COMPLETED");
    let apigw = deploy(
        "apigw",
        &[("parameters-from-stacks", &format!("{prefix}-alb"))],
    );
    assert!(
        apigw.output("ApiEndpoint").starts_with("https://")
            && apigw.output("ApiEndpoint").ends_with("/prod"),
        "{:?}",
        apigw.outputs
    );
}

/// The chain rules, each on a workflow set written to contain it: a
/// template importing an export of a sibling (a race), an upstream list of
/// two (after each, not after all), a workflow_run deploy checking out the
/// branch, a push.paths filter matching no file, and an upstream only a
/// manual dispatch starts. Each is reported with file and line.
#[test]
fn chain_rules_find_each_defect_with_file_and_line() {
    let ws = Workspace::new();
    ws.write(
        "infra/network.yml",
        "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\nOutputs:\n  VpcId:\n    Value: !Ref Vpc\n    Export:\n      Name: !Sub \"${AWS::StackName}-vpc\"\n",
    );
    ws.write(
        "infra/alb.yml",
        "Resources:\n  Lb:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: !ImportValue prod-network-vpc\nOutputs:\n  Arn:\n    Value: !Ref Lb\n    Export:\n      Name: prod-alb-arn\n",
    );
    ws.write(
        "infra/ecs.yml",
        "Resources:\n  Service:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: !ImportValue prod-alb-arn\n",
    );
    let deploy_job = |template: &str, stack: &str, checkout_ref: &str| {
        format!(
            "jobs:\n  deploy:\n    if: github.event_name == 'workflow_dispatch' || (github.event.workflow_run.conclusion == 'success' && github.event.workflow_run.head_repository.full_name == github.repository)\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n{checkout_ref}      - uses: OWNER/ecs-stack-deploy@v1\n        with:\n          name: {stack}\n          template: {template}\n"
        )
    };
    let built = "        with:\n          ref: ${{ github.event.workflow_run.head_sha }}\n";
    ws.write(
        ".github/workflows/network.yml",
        &format!(
            "name: network\non:\n  workflow_dispatch:\n{}",
            deploy_job("infra/network.yml", "prod-network", "")
        ),
    );
    ws.write(
        ".github/workflows/alb.yml",
        &format!(
            "name: alb\non:\n  workflow_run:\n    workflows: [network]\n    types: [completed]\n{}",
            deploy_job("infra/alb.yml", "prod-alb", "")
        ),
    );
    ws.write(
        ".github/workflows/ecs.yml",
        &format!(
            "name: ecs\non:\n  workflow_run:\n    workflows: [network]\n    types: [completed]\n{}",
            deploy_job("infra/ecs.yml", "prod-ecs", built)
        ),
    );
    ws.write(
        ".github/workflows/smoke.yml",
        "name: smoke\non:\n  workflow_run:\n    workflows: [alb, ecs]\n    types: [completed]\njobs:\n  test:\n    if: github.event.workflow_run.conclusion == 'success'\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ok\n",
    );
    ws.write(
        ".github/workflows/docs.yml",
        "name: docs\non:\n  push:\n    branches: [main]\n    paths: [\"documentation/**\", \"*.adoc\"]\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo docs\n",
    );
    let run = ActionRun::new(&ws).args(&["lint-workflows"]).run();
    run.assert_code(1);
    let findings = run.error_annotations();
    let find = |file: &str, line: u32, kind: &str| -> String {
        let at = format!("::error file=.github/workflows/{file},line={line}::{kind}: ");
        findings
            .iter()
            .find(|l| l.starts_with(&at))
            .map(|l| l.to_string())
            .unwrap_or_else(|| panic!("no {kind} at {file}:{line} in\n{}", run.stdout))
    };

    let race = find("ecs.yml", 17, "import-not-upstream");
    assert!(
        race.contains("imports `prod-alb-arn`, exported by the stack `alb` deploys")
            && race.contains("both run after `network`"),
        "{race}"
    );
    assert!(find("smoke.yml", 4, "runs-after-each-upstream").contains("`alb`, `ecs`"));
    assert!(
        find("alb.yml", 11, "checkout-not-built-commit").contains("the default branch (no `ref`)")
    );
    assert!(find("docs.yml", 5, "paths-match-nothing").contains("`documentation/**`"));
    assert!(find("network.yml", 2, "untriggered-upstream").contains("alb, ecs"));
    assert_eq!(
        findings.len(),
        5,
        "nothing else (the checkout of the built commit is fine):\n{}",
        run.stdout
    );
}

//! A system of stacks in one step (`stacks`: a manifest): the order from
//! output references, `depends-on` and the templates' exports and imports;
//! independent stacks at the same time; outputs wired; a cycle or a missing
//! output refused before any AWS call; fail-fast.

use crate::util::{ActionRun, Emulator, RunResult, Workspace, unique_name};

/// The root: its output and export feed the two middle stacks.
const NETWORK: &str = r#"
Parameters:
  Env:
    Type: String
Resources:
  Id:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/value"
      Type: String
      Value: !Sub "${Env}-net"
Outputs:
  NetworkId:
    Value: !Sub "${Env}-net"
    Export:
      Name: !Sub "${Env}-network-id"
"#;

/// A middle stack fed by a parameter (the manifest's reference).
const LEFT: &str = r#"
Parameters:
  NetworkId:
    Type: String
Resources:
  Name:
    Type: AWS::SSM::Parameter
    Metadata:
      Emulator:
        HoldSeconds: 2
    Properties:
      Name: !Sub "/${AWS::StackName}/value"
      Type: String
      Value: !Sub "left-of-${NetworkId}"
Outputs:
  Name:
    Value: !Sub "left-of-${NetworkId}"
"#;

/// A middle stack wired by an import only: no manifest reference.
const RIGHT: &str = r#"
Parameters:
  Env:
    Type: String
Resources:
  Name:
    Type: AWS::SSM::Parameter
    Metadata:
      Emulator:
        HoldSeconds: 2
    Properties:
      Name: !Sub "/${AWS::StackName}/value"
      Type: String
      Value: !Join ["-", ["right-of", !ImportValue {"Fn::Sub": "${Env}-network-id"}]]
Outputs:
  Name:
    Value: !Join ["-", ["right-of", !ImportValue {"Fn::Sub": "${Env}-network-id"}]]
"#;

/// Fed by both middle stacks.
const TOP: &str = r#"
Parameters:
  Left:
    Type: String
  Right:
    Type: String
Resources:
  Joined:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/value"
      Type: String
      Value: !Sub "${Left}+${Right}"
Outputs:
  Joined:
    Value: !Sub "${Left}+${Right}"
"#;

fn diamond(prefix: &str) -> String {
    format!(
        r#"with:
  capabilities: CAPABILITY_IAM
stacks:
  network:
    name: {prefix}-network
    template: infra/network.yml
    parameters:
      Env: {prefix}
  left:
    name: {prefix}-left
    template: infra/left.yml
    parameters:
      NetworkId: "{{{{ stacks.network.outputs.NetworkId }}}}"
  right:
    name: {prefix}-right
    template: infra/right.yml
    parameters:
      Env: {prefix}
  top:
    name: {prefix}-top
    template: infra/top.yml
    parameters:
      Left: "{{{{ stacks.left.outputs.Name }}}}"
      Right: "{{{{ stacks.right.outputs.Name }}}}"
"#
    )
}

fn system_workspace(manifest: &str) -> Workspace {
    let ws = Workspace::new();
    ws.write("infra/network.yml", NETWORK);
    ws.write("infra/left.yml", LEFT);
    ws.write("infra/right.yml", RIGHT);
    ws.write("infra/top.yml", TOP);
    ws.write("system.yml", manifest);
    ws
}

/// When each stack's deploy began (its CreateChangeSet) and ended (its
/// last CloudFormation call), by stack name, from the emulator's request
/// log. Read-only calls before the change set (the plan) are left out.
fn stack_spans(
    emulator: &Emulator,
    first_action: &str,
) -> std::collections::BTreeMap<String, (f64, f64)> {
    let (code, body) = emulator.control("GET", "/_emulator/requests", "");
    assert_eq!(code, 200, "{body}");
    let log: Vec<serde_json::Value> = serde_json::from_str(&body).expect("request log");
    let mut spans = std::collections::BTreeMap::new();
    for entry in log {
        let (Some(stack), Some(time)) = (entry["stack"].as_str(), entry["time"].as_f64()) else {
            continue;
        };
        // A stack is named by its id once it exists: arn:...:stack/NAME/uuid.
        let name = stack
            .split(":stack/")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or(stack)
            .to_string();
        if entry["action"] == first_action {
            spans.entry(name).or_insert((time, time));
        } else if let Some(span) = spans.get_mut(&name) {
            span.1 = span.1.max(time);
        }
    }
    spans
}

/// Runs the step with `stacks: system.yml` and `extra` inputs.
fn deploy_system(ws: &Workspace, emulator: &Emulator, extra: &[(&str, &str)]) -> RunResult {
    let mut run = ActionRun::new(ws).input("stacks", "system.yml");
    for (input, value) in extra {
        run = run.input(input, value);
    }
    run.run_against(emulator)
}

/// The system planned (`no-execute-changeset`) on pull request 7, with
/// GitHub at `github` and `extra` inputs.
fn pull_request_plan(
    ws: &Workspace,
    emulator: &Emulator,
    github: &crate::github::FakeGithub,
    extra: &[(&str, &str)],
) -> RunResult {
    let mut run = ActionRun::new(ws)
        .event(
            "pull_request",
            serde_json::json!({"action": "opened", "number": 7, "pull_request": {"number": 7, "head": {"sha": "abc"}}}),
        )
        .input("stacks", "system.yml")
        .input("no-execute-changeset", "true");
    for (input, value) in extra {
        run = run.input(input, value);
    }
    crate::github::with_github(run, github).run_against(emulator)
}

/// The comments posted or updated on pull request 7.
fn pull_request_comments(github: &crate::github::FakeGithub) -> Vec<crate::github::Recorded> {
    github
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/repos/acme/shop/issues/7/comments"))
        .filter(|r| r.method == "POST" || r.method == "PATCH")
        .collect()
}

fn errors(run: &RunResult) -> String {
    run.error_annotations().join("\n")
}

#[test]
fn a_diamond_deploys_in_order_with_the_middle_stacks_at_once() {
    let emulator = Emulator::private();
    let prefix = unique_name("sys");
    let ws = system_workspace(&diamond(&prefix));
    let run = deploy_system(&ws, &emulator, &[]);
    run.assert_code(0);

    // Wiring: the manifest's references and the import.
    let joined = run.output("top-Joined");
    assert_eq!(
        joined,
        format!("left-of-{prefix}-net+right-of-{prefix}-net"),
        "{}",
        run.stdout
    );
    let outputs: serde_json::Value = serde_json::from_str(run.output("outputs")).expect("JSON");
    assert_eq!(outputs["network"]["NetworkId"], format!("{prefix}-net"));
    assert_eq!(outputs["top"]["Joined"], joined);
    let status: serde_json::Value =
        serde_json::from_str(run.output("stacks-status")).expect("JSON");
    for key in ["network", "left", "right", "top"] {
        assert_eq!(status[key]["state"], "done", "{key}: {status}");
    }
    assert_eq!(status["top"]["stack"], format!("{prefix}-top"));
    assert!(
        run.stdout.contains(&format!(
            "right (stack {prefix}-right) after network: import {prefix}-network-id"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("[left] "),
        "lines carry their stack: {}",
        run.stdout
    );

    // Order and overlap, from the emulator's request log.
    let spans = stack_spans(&emulator, "CreateChangeSet");
    let span = |key: &str| spans[&format!("{prefix}-{key}")];
    let (network, left, right, top) = (span("network"), span("left"), span("right"), span("top"));
    assert!(network.1 < left.0 && network.1 < right.0, "{spans:?}");
    assert!(left.1 < top.0 && right.1 < top.0, "{spans:?}");
    assert!(
        left.0 < right.1 && right.0 < left.1,
        "the middle stacks overlap in time: {spans:?}"
    );

    // Again: nothing to change, still every output.
    let again = deploy_system(&ws, &emulator, &[]);
    again.assert_code(0);
    assert_eq!(again.output("top-Joined"), joined);

    // Plan mode with a change at the root: its change set is made, and
    // what its outputs and exports feed is known only after apply.
    ws.write(
        "infra/network.yml",
        &NETWORK.replacen(
            "Value: !Sub \"${Env}-net\"\n",
            "Value: !Sub \"${Env}-net-v2\"\n",
            1,
        ),
    );
    // On a pull request, with one comment for the whole system.
    let github = crate::github::FakeGithub::start(204);
    let plan = pull_request_plan(&ws, &emulator, &github, &[]);
    plan.assert_code(0);
    let comments = pull_request_comments(&github);
    assert_eq!(
        comments.len(),
        1,
        "one comment for the system: {comments:?}"
    );
    let body = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(
        body.starts_with("<!-- ecs-stack-deploy:system:system.yml -->"),
        "{body}"
    );
    assert!(body.contains("| network | planned | 1 |"), "{body}");
    assert!(body.contains("| top | known after apply |"), "{body}");
    assert!(
        body.contains("<details><summary>network: planned</summary>")
            && body.contains("| Modify | `Id` |"),
        "{body}"
    );
    let status: serde_json::Value =
        serde_json::from_str(plan.output("stacks-status")).expect("JSON");
    assert_eq!(status["network"]["state"], "planned", "{status}");
    for key in ["left", "right", "top"] {
        assert_eq!(status[key]["state"], "known after apply", "{key}: {status}");
    }
    assert!(
        status["left"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("network, whose changes are planned but not applied")),
        "{status}"
    );
}

/// `environment` selects the manifest's overlays (no GitHub environment,
/// so no token); `dispatch-workflows` triggers each workflow once, after
/// every stack deployed, with the stacks' outputs filled in.
#[test]
fn a_system_dispatches_its_workflows_once_every_stack_deployed() {
    let emulator = Emulator::private();
    let prefix = unique_name("sysdisp");
    let manifest = diamond(&prefix).replace(
        &format!("      Env: {prefix}\n"),
        &format!("      Env: {prefix}\n    environments:\n      prod:\n        parameters: {{ Env: {prefix}p }}\n"),
    );
    let ws = system_workspace(&manifest);
    let first = deploy_system(&ws, &emulator, &[("environment", "prod")]);
    first.assert_code(0);
    let joined = format!("left-of-{prefix}p-net+right-of-{prefix}p-net");
    assert_eq!(first.output("top-Joined"), joined, "{}", first.stdout);
    assert_eq!(first.output("dispatched-workflows"), "[]");

    let github = crate::github::FakeGithub::start(204);
    let run = crate::github::with_github(
        ActionRun::new(&ws)
            .input("stacks", "system.yml")
            .input("environment", "prod")
            .input("dispatch-workflows", "smoke.yml, notify.yml")
            .input(
                "dispatch-inputs",
                "joined: '{{ stacks.top.outputs.Joined }}'\nnetwork: '{{stacks.network.outputs.NetworkId}}'\nstage: prod",
            ),
        &github,
    )
    .run_against(&emulator);
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("once every stack deployed: dispatch smoke.yml, notify.yml"),
        "{}",
        run.stdout
    );
    let dispatches: Vec<_> = github
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/dispatches"))
        .collect();
    let paths: Vec<&str> = dispatches.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/repos/acme/shop/actions/workflows/smoke.yml/dispatches",
            "/repos/acme/shop/actions/workflows/notify.yml/dispatches"
        ]
    );
    let expected = serde_json::json!({"ref": "refs/heads/main", "inputs": {
        "joined": joined, "network": format!("{prefix}p-net"), "stage": "prod"}});
    assert!(
        dispatches.iter().all(|r| r.body == expected),
        "{dispatches:?}"
    );
    assert_eq!(
        run.output("dispatched-workflows"),
        r#"[{"workflow":"smoke.yml","ref":"refs/heads/main"},{"workflow":"notify.yml","ref":"refs/heads/main"}]"#
    );

    // A pull request's plan that leaves a change unapplied dispatches
    // nothing, and comments once although every stack was planned up front.
    ws.write(
        "infra/top.yml",
        &TOP.replace(
            "Value: !Sub \"${Left}+${Right}\"\n",
            "Value: !Sub \"${Left}++${Right}\"\n",
        ),
    );
    let github = crate::github::FakeGithub::start(204);
    let plan = pull_request_plan(
        &ws,
        &emulator,
        &github,
        &[("environment", "prod"), ("dispatch-workflows", "smoke.yml")],
    );
    plan.assert_code(0);
    let comments = pull_request_comments(&github);
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].method, "POST", "{comments:?}");
    let body = comments[0].body["body"].as_str().unwrap_or_default();
    assert!(body.contains("| top | planned | 1 |"), "{body}");
    assert!(
        plan.stdout
            .contains("not dispatching smoke.yml: the system was not deployed in full"),
        "{}",
        plan.stdout
    );
    assert!(
        !github
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/dispatches")),
        "{:?}",
        github.requests()
    );
    assert_eq!(plan.output("dispatched-workflows"), "[]");
}

#[test]
fn a_cycle_or_a_missing_output_is_refused_before_any_aws_call() {
    let emulator = Emulator::private();
    let prefix = unique_name("syscycle");
    // `top` comes after `right` (its output); `right` now depends on `top`.
    let cyclic = diamond(&prefix).replace(
        "    template: infra/right.yml\n",
        "    template: infra/right.yml\n    depends-on: [top]\n",
    );
    let ws = system_workspace(&cyclic);
    let before = emulator.requests().len();
    let run = deploy_system(&ws, &emulator, &[]);
    run.assert_code(2);
    let text = errors(&run);
    assert!(
        text.contains("in a cycle: right → top (output Name) → right (depends-on)"),
        "{text}"
    );
    assert_eq!(emulator.requests().len(), before, "no AWS call");

    // Inputs a system does not act on are refused, not ignored.
    let ignored = deploy_system(
        &ws,
        &emulator,
        &[("environment-url-output", "Url"), ("template", "x.yml")],
    );
    ignored.assert_code(2);
    let text = errors(&ignored);
    assert!(
        text.contains("input `environment-url-output`: does not apply to a system of stacks yet")
            && text.contains("input `template`: is given with `stacks`"),
        "{text}"
    );
    assert_eq!(emulator.requests().len(), before, "no AWS call");

    // A dispatch input that cannot be filled once the stacks deployed is
    // refused now: a single step's reference, another stack, an output the
    // template does not declare; and a dispatch needs a token.
    let ws = system_workspace(&diamond(&prefix));
    let unfillable = deploy_system(
        &ws,
        &emulator,
        &[
            ("github-token", "ghs_testtoken123"),
            ("dispatch-workflows", "next.yml"),
            (
                "dispatch-inputs",
                "a: '{{ outputs.NetworkId }}'\nb: '{{ stacks.nope.outputs.X }}'\nc: '{{ stacks.left.outputs.Nope }}'",
            ),
        ],
    );
    unfillable.assert_code(2);
    let text = errors(&unfillable);
    assert!(
        text.contains("`a`: `{{ outputs.NetworkId }}` is not {{ stacks.<stack>.outputs.NAME }}")
            && text.contains("name the stack: {{ stacks.network.outputs.NetworkId }}")
            && text.contains("`b`: refers to stack `nope`, which the manifest does not have")
            && text.contains("name one of its stacks: network, left, right, top")
            && text.contains("`c`: refers to output `Nope` of stack `left`, which its template does not declare (it declares: Name)"),
        "{text}"
    );
    let tokenless = deploy_system(&ws, &emulator, &[("dispatch-workflows", "next.yml")]);
    tokenless.assert_code(2);
    assert!(
        errors(&tokenless).contains("input `github-token`: is required by `dispatch-workflows`"),
        "{}",
        errors(&tokenless)
    );
    assert_eq!(emulator.requests().len(), before, "no AWS call");

    let ws = system_workspace(&diamond(&prefix).replace("outputs.Name }}", "outputs.Nmae }}"));
    let run = deploy_system(&ws, &emulator, &[]);
    run.assert_code(2);
    let text = errors(&run);
    assert!(
        text.contains("system.yml:")
            && text.contains("refers to output `Nmae` of stack `left`")
            && text.contains("(it declares: Name)"),
        "{text}"
    );
    assert_eq!(emulator.requests().len(), before, "no AWS call");
}

#[test]
fn a_failed_stack_starts_nothing_downstream_and_the_rest_finish() {
    let emulator = Emulator::private();
    let prefix = unique_name("sysfail");
    let ws = system_workspace(&diamond(&prefix));
    ws.write(
        "infra/left.yml",
        &LEFT.replace(
            "        HoldSeconds: 2\n",
            "        HoldSeconds: 1\n        Fail: \"left cannot be made\"\n",
        ),
    );
    let run = deploy_system(&ws, &emulator, &[]);
    run.assert_code(1);
    let status: serde_json::Value =
        serde_json::from_str(run.output("stacks-status")).expect("JSON");
    assert_eq!(status["network"]["state"], "done", "{status}");
    assert_eq!(status["left"]["state"], "failed", "{status}");
    assert_eq!(
        status["right"]["state"], "done",
        "a running stack finishes: {status}"
    );
    assert_eq!(status["top"]["state"], "not started", "{status}");
    assert!(
        status["top"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("left")),
        "{status}"
    );
    assert!(
        errors(&run).contains("left cannot be made"),
        "{}",
        errors(&run)
    );
    assert!(
        !stack_spans(&emulator, "CreateChangeSet").contains_key(&format!("{prefix}-top")),
        "top was never asked for"
    );
}

/// SIGTERM while the middle stacks work: their waits stop, each is
/// reported as a single deploy's cancel would (CloudFormation carries on
/// with an executed change set), nothing downstream starts, exit 1.
#[test]
fn a_signal_stops_the_system_and_says_what_carries_on() {
    let emulator = Emulator::private();
    let prefix = unique_name("syssig");
    let ws = system_workspace(&diamond(&prefix));
    for file in ["infra/left.yml", "infra/right.yml"] {
        let slow = ws.read(file).replace("HoldSeconds: 2", "HoldSeconds: 30");
        ws.write(file, &slow);
    }
    let (code, log, _) = crate::cancel::run_and_signal_on(
        &emulator,
        &ws,
        &[("stacks", "system.yml")],
        "] Name  AWS::SSM::Parameter  CREATE_IN_PROGRESS",
        "TERM",
    );
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("the job was cancelled (SIGTERM)") && log.contains("left: "),
        "{log}"
    );
    assert!(
        log.contains("[left] ") && log.contains("carries on"),
        "each stack in flight says what CloudFormation does next: {log}"
    );
    assert!(
        log.contains("top: not started: the job was cancelled first"),
        "{log}"
    );
    assert!(
        !stack_spans(&emulator, "CreateChangeSet").contains_key(&format!("{prefix}-top")),
        "top was never asked for"
    );
}

/// `mode: destroy`: the stacks are deleted in reverse order (each after
/// what depends on it); termination protection is refused before any
/// deletion, naming the stack.
#[test]
fn destroy_deletes_in_reverse_order_and_refuses_protected_stacks() {
    let emulator = Emulator::private();
    let prefix = unique_name("sysdel");
    let protected = diamond(&prefix).replace(
        "    template: infra/network.yml\n",
        "    template: infra/network.yml\n    termination-protection: true\n",
    );
    let ws = system_workspace(&protected);
    deploy_system(&ws, &emulator, &[]).assert_code(0);

    let before = emulator.requests().len();
    let refused = deploy_system(&ws, &emulator, &[("mode", "destroy")]);
    refused.assert_code(2);
    assert!(
        errors(&refused).contains(&format!(
            "would delete stacks with termination protection: {prefix}-network"
        )),
        "{}",
        errors(&refused)
    );
    assert!(
        !emulator.requests()[before..]
            .iter()
            .any(|(_, action)| action == "DeleteStack"),
        "nothing deleted"
    );

    // Protection is turned off by hand, as the fix says (a deploy only
    // ever turns it on, as aws-cloudformation-github-deploy does).
    let cloudformation =
        aws_sdk_cloudformation::Client::new(&crate::rollout::config_for(&emulator));
    crate::util::block_on(
        cloudformation
            .update_termination_protection()
            .stack_name(format!("{prefix}-network"))
            .enable_termination_protection(false)
            .send(),
    )
    .expect("turn protection off");
    let deleted = deploy_system(&ws, &emulator, &[("mode", "destroy")]);
    deleted.assert_code(0);
    let status: serde_json::Value =
        serde_json::from_str(deleted.output("stacks-status")).expect("JSON");
    for key in ["network", "left", "right", "top"] {
        assert_eq!(status[key]["state"], "deleted", "{key}: {status}");
    }
    // Deletion order, from the request log's DeleteStack calls.
    let (code, body) = emulator.control("GET", "/_emulator/requests", "");
    assert_eq!(code, 200);
    let log: Vec<serde_json::Value> = serde_json::from_str(&body).expect("log");
    let deleted_at = |key: &str| {
        log.iter()
            .find(|e| {
                e["action"] == "DeleteStack"
                    && e["stack"]
                        .as_str()
                        .is_some_and(|s| s.contains(&format!("{prefix}-{key}/")))
            })
            .and_then(|e| e["time"].as_f64())
            .unwrap_or_else(|| panic!("no DeleteStack of {key}"))
    };
    assert!(deleted_at("top") < deleted_at("left"));
    assert!(deleted_at("top") < deleted_at("right"));
    assert!(deleted_at("left") < deleted_at("network"));
    assert!(deleted_at("right") < deleted_at("network"));

    // Again: nothing is there.
    let again = deploy_system(&ws, &emulator, &[("mode", "destroy")]);
    again.assert_code(0);
    assert!(again.output("stacks-status").contains("\"absent\""));
}

/// The service catalog's shared template: one stack per entry.
const SERVICE: &str = r#"
Parameters:
  Cluster:
    Type: String
  Port:
    Type: Number
  Public:
    Type: String
    Default: "false"
Resources:
  Endpoint:
    Type: AWS::SSM::Parameter
    # A delete that takes a second: two prunes at once overlap for sure.
    Metadata:
      Emulator:
        DeleteHoldSeconds: 1
    Properties:
      Name: !Sub "/${AWS::StackName}/endpoint"
      Type: String
      Value: !Sub "${Cluster}:${Port}:${Public}"
Outputs:
  Endpoint:
    Value: !Sub "${Cluster}:${Port}:${Public}"
"#;

fn catalog(prefix: &str, entries: &str, prune: bool) -> String {
    format!(
        r#"stacks:
  shared:
    name: {prefix}-shared
    template: infra/network.yml
    parameters:
      Env: {prefix}
services:
  template: infra/service.yml
  name: "{prefix}-{{service}}"
  prune: {prune}
  parameters:
    Cluster: "{{{{ stacks.shared.outputs.NetworkId }}}}"
  entries:
{entries}"#
    )
}

/// Adding a service is adding an entry; removing one is reported, and its
/// stack deleted only with `prune: true`.
#[test]
fn the_service_catalog_adds_reports_and_prunes_entries() {
    let emulator = Emulator::private();
    let prefix = unique_name("cat");
    let two =
        "    frontend:\n      Port: 80\n      Public: \"true\"\n    backend:\n      Port: 8080\n";
    let ws = system_workspace(&catalog(&prefix, two, false));
    ws.write("infra/service.yml", SERVICE);
    let run = |manifest: &str| {
        ws.write("system.yml", manifest);
        deploy_system(&ws, &emulator, &[])
    };
    let first = run(&catalog(&prefix, two, false));
    first.assert_code(0);
    assert_eq!(
        first.output("frontend-Endpoint"),
        format!("{prefix}-net:80:true")
    );
    assert_eq!(
        first.output("backend-Endpoint"),
        format!("{prefix}-net:8080:false")
    );

    // A third entry: a three-line change, one new stack.
    let three = format!("{two}    tester:\n      Port: 9000\n");
    let added = run(&catalog(&prefix, &three, false));
    added.assert_code(0);
    let status: serde_json::Value =
        serde_json::from_str(added.output("stacks-status")).expect("JSON");
    assert_eq!(status["tester"]["has-changes"], true, "{status}");
    assert_eq!(status["frontend"]["has-changes"], false, "{status}");
    assert_eq!(status["tester"]["stack"], format!("{prefix}-tester"));

    // Removed without prune: reported, kept.
    let kept = run(&catalog(&prefix, two, false));
    kept.assert_code(0);
    let status: serde_json::Value =
        serde_json::from_str(kept.output("stacks-status")).expect("JSON");
    assert_eq!(status["tester"]["state"], "removed", "{status}");
    assert!(
        kept.stdout.contains(&format!(
            "tester: stack {prefix}-tester (CREATE_COMPLETE): kept (prune: true deletes it)"
        )),
        "{}",
        kept.stdout
    );
    assert!(emulator.stack_exists(&format!("{prefix}-tester")));

    // With prune: deleted after the deploy, two removed entries at once.
    let (code, body) = emulator.control("POST", "/_emulator/requests/reset", "");
    assert_eq!(code, 200, "{body}");
    let one = "    frontend:\n      Port: 80\n      Public: \"true\"\n";
    let pruned = run(&catalog(&prefix, one, true));
    pruned.assert_code(0);
    // Read before the checks below, which name the stacks themselves.
    let spans = stack_spans(&emulator, "DeleteStack");
    let status: serde_json::Value =
        serde_json::from_str(pruned.output("stacks-status")).expect("JSON");
    assert_eq!(status["tester"]["state"], "deleted", "{status}");
    assert_eq!(status["backend"]["state"], "deleted", "{status}");
    assert!(!emulator.stack_exists(&format!("{prefix}-tester")));
    assert!(!emulator.stack_exists(&format!("{prefix}-backend")));
    assert!(emulator.stack_exists(&format!("{prefix}-frontend")));
    let (backend, tester) = (
        spans[&format!("{prefix}-backend")],
        spans[&format!("{prefix}-tester")],
    );
    assert!(
        backend.0 < tester.1 && tester.0 < backend.1,
        "the deletes overlap in time: {spans:?}"
    );
}

/// `init-stacks DIR` writes a starting manifest from the templates' exports
/// and imports and their parameters; written out and completed, it deploys.
#[test]
fn init_stacks_writes_a_manifest_that_deploys() {
    let emulator = Emulator::private();
    let prefix = unique_name("sysinit");
    let ws = system_workspace(&diamond(&prefix));
    let run = ActionRun::new(&ws).args(&["init-stacks", "infra"]).run();
    run.assert_code(0);
    let manifest = run.stdout.clone();
    assert!(
        manifest.contains("  right:\n    template: infra/right.yml\n")
            && manifest.contains("      Env: \"\"  # TODO: no default")
            && manifest.contains("      NetworkId: \"{{ stacks.network.outputs.NetworkId }}\""),
        "{manifest}"
    );
    // Env names the export right imports (unknown until filled, so no
    // order yet); top's inputs are the middle stacks' outputs by another
    // name: the user wires them.
    let completed = manifest
        .replace(
            "      Env: \"\"  # TODO: no default",
            &format!("      Env: {prefix}"),
        )
        .replace(
            "      Left: \"\"  # TODO: no default",
            "      Left: \"{{ stacks.left.outputs.Name }}\"",
        )
        .replace(
            "      Right: \"\"  # TODO: no default",
            "      Right: \"{{ stacks.right.outputs.Name }}\"",
        );
    assert!(!completed.contains("# TODO:"), "{completed}");
    let completed = completed.replace(
        "  network:\n",
        &format!("  network:\n    name: {prefix}-network\n"),
    );
    ws.write("system.yml", &completed);
    let deployed = deploy_system(&ws, &emulator, &[]);
    deployed.assert_code(0);
    assert_eq!(
        deployed.output("top-Joined"),
        format!("left-of-{prefix}-net+right-of-{prefix}-net")
    );
}

/// The single deploy's run gate holds for a system: every stack's NoEcho
/// values are masked, and `lint-workflows` lints the chain (as warnings).
#[test]
fn a_system_masks_no_echo_values_and_lints_workflows() {
    let emulator = Emulator::private();
    let prefix = unique_name("sysgate");
    let ws = system_workspace(&diamond(&prefix));
    ws.write(
        "infra/right.yml",
        &RIGHT.replace(
            "  Env:\n    Type: String\n",
            "  Env:\n    Type: String\n    NoEcho: true\n",
        ),
    );
    ws.write(
        ".github/workflows/ecs.yml",
        "name: ECS\non:\n  workflow_run:\n    workflows: [Network]\n    types: [completed]\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo deploy\n",
    );
    let run = deploy_system(
        &ws,
        &emulator,
        &[("verify-only", "true"), ("lint-workflows", "true")],
    );
    run.assert_code(0);
    assert!(
        run.stdout.contains(&format!("::add-mask::{prefix}\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("workflow lint: 2 finding(s) in 1 file(s)"),
        "{}",
        run.stdout
    );
}

//! AWS's bad days, through a fault-injecting proxy in front of the emulator:
//! a full deploy (ECR check, stack create, service rollout, a stack update
//! rolling out a new image, then a direct rollout registering a task
//! definition and updating a service) completes correctly with one call in
//! five throttled, failing with 500/503, reset or delayed. The retrying is the
//! SDK's (standard or adaptive mode, `max-retries`), which the scripted tests
//! pin down: no retries means the first fault fails the job, one retry
//! rides it out.

use crate::deploy::QUEUE_TEMPLATE;
use crate::rollout::{SERVICE_TEMPLATE, push_image, revision_count, roll_out, setup};
use crate::util::proxy::{Fault, FaultProxy, calls_after, count_of};
use crate::util::{ActionRun, Emulator, RunResult, Workspace, block_on, unique_name};

/// Enough retries that a 20 % fault rate cannot exhaust them: the proxy
/// deals 4 faults in every 20 calls, so at most 8 come in a row and the 9th
/// attempt gets through. With the default 5 attempts and faults that fell
/// at random, one deploy of some 150 calls would fail about once in twenty
/// runs; that is the setting we tell users behind heavily throttled accounts
/// to raise.
const RETRIES_UNDER_FAULTS: &str = "8";

/// The image the stack's service runs.
fn service_image(stack: &str) -> String {
    let resources = block_on(async {
        Emulator::shared()
            .cloudformation()
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await
            .expect("stack resources")
    });
    let physical = |logical: &str| {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .unwrap_or_else(|| panic!("{logical} in {stack}"))
            .to_string()
    };
    running_image(&physical("Cluster"), &physical("Service"))
}

/// The image of the task definition a service runs.
fn running_image(cluster: &str, service: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(&crate::rollout::config_for(Emulator::shared()));
    block_on(async {
        let services = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .expect("describe service");
        let task_definition = services.services()[0]
            .task_definition()
            .expect("service task definition")
            .to_string();
        let described = ecs
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .expect("describe task definition");
        described
            .task_definition()
            .and_then(|td| td.container_definitions().first())
            .and_then(|c| c.image())
            .expect("container image")
            .to_string()
    })
}

fn deploy_image<'a>(ws: &'a Workspace, stack: &str, repository: &str, tag: &str) -> ActionRun<'a> {
    ws.write("ecs.yml", SERVICE_TEMPLATE);
    ActionRun::new(ws)
        .input("name", stack)
        .input("template", "ecs.yml")
        .input("image-repository", repository)
        .input("image-tag", tag)
        .input("max-retries", RETRIES_UNDER_FAULTS)
}

fn assert_deployed(run: &RunResult, stack: &str, image: &str, status: &str) {
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), status, "{}", run.stdout);
    assert_eq!(run.output("image"), image);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    assert_eq!(
        service_image(stack),
        image,
        "the service runs the new image"
    );
    Emulator::shared().assert_no_change_set_left(stack);
}

/// `fault` was injected at its full rate over the `calls` the deploy made.
fn assert_dealt(proxy: &FaultProxy, fault: Fault, calls: usize) {
    let faulted = proxy.count(fault);
    let expected = proxy.fewest_faults(fault, calls);
    assert!(
        expected > 0 && faulted >= expected,
        "{fault:?} was injected into {faulted} of {calls} calls, expected at least {expected}"
    );
}

/// Creates the stack, rolls out a second image through it, then rolls out a
/// service directly, all through a proxy injecting `fault` into one call in
/// five.
fn full_deploy_under(fault: Fault, retry_mode: &str) {
    let stack = unique_name("faults");
    let proxy = FaultProxy::start(Emulator::shared().endpoint()).with_rates(&[(fault, 0.2)]);
    let calls = full_deploy_through(&proxy, &stack, retry_mode);
    assert_dealt(&proxy, fault, calls.len());
    if fault != Fault::Latency {
        assert_every_fault_retried(&calls, fault);
    }
}

/// Every faulted call was made again and got through.
fn assert_every_fault_retried(calls: &[crate::util::proxy::ProxiedRequest], fault: Fault) {
    for (index, call) in calls.iter().enumerate() {
        if call.fault.is_some() {
            assert!(
                calls[index + 1..]
                    .iter()
                    .any(|later| later.action == call.action && later.fault.is_none()),
                "{} was retried after {fault:?}",
                call.action
            );
        }
    }
}

/// The stack create and update of [`full_deploy_under`] and a direct service
/// rollout, all through `proxy`; returns the calls the proxy saw.
fn full_deploy_through(
    proxy: &FaultProxy,
    stack: &str,
    retry_mode: &str,
) -> Vec<crate::util::proxy::ProxiedRequest> {
    let repository = push_image(stack, &["v1", "v2"]);
    let ws = Workspace::new();

    let created = deploy_image(&ws, stack, &repository, "v1")
        .input("retry-mode", retry_mode)
        .run_at(proxy.endpoint());
    assert_deployed(
        &created,
        stack,
        &format!("{repository}:v1"),
        "CREATE_COMPLETE",
    );
    let updated = deploy_image(&ws, stack, &repository, "v2")
        .input("retry-mode", retry_mode)
        .run_at(proxy.endpoint());
    assert_deployed(
        &updated,
        stack,
        &format!("{repository}:v2"),
        "UPDATE_COMPLETE",
    );

    // And a direct rollout: render, RegisterTaskDefinition, UpdateService,
    // then watching the deployment.
    let service = setup(serde_json::json!({}));
    let rolled = roll_out(&service, "abc1234")
        .input("max-retries", RETRIES_UNDER_FAULTS)
        .input("retry-mode", retry_mode)
        .run_at(proxy.endpoint());
    rolled.assert_code(0);
    let image = format!("{}:abc1234", service.repository);
    assert_eq!(
        rolled.output("rollout-state"),
        "COMPLETED",
        "{}",
        rolled.stdout
    );
    assert_eq!(rolled.output("image"), image);
    assert_eq!(running_image(&service.cluster, &service.service), image);

    let calls = proxy.requests();
    for action in [
        "CreateChangeSet",
        "ExecuteChangeSet",
        "DescribeImages",
        "RegisterTaskDefinition",
        "UpdateService",
        "DescribeServices",
    ] {
        assert!(
            calls.iter().any(|c| c.action == action),
            "the deploy went through the proxy with {action}: {calls:?}"
        );
    }
    calls
}

#[test]
fn full_deploy_survives_one_call_in_five_throttled() {
    full_deploy_under(Fault::Throttle, "standard");
}

/// Adaptive mode slows every call after a throttle (the SDK's client-side
/// rate limiter, on top of the retry backoff: at one call in five throttled,
/// two small deploys took a minute; three throttles from the first call on,
/// 53 s; two on ExecuteChangeSet alone cost it about 20 s), so this test
/// throttles one stack create's ExecuteChangeSet twice in a row, late in the
/// deploy, to prove the mode rides throttling out on a call that changes the
/// stack while keeping the suite short. The standard-mode test above covers
/// the full deploy at one call in five.
#[test]
fn a_stack_deploys_with_throttled_calls_in_adaptive_mode() {
    let stack = unique_name("adaptive");
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    for _ in 0..2 {
        proxy.script("ExecuteChangeSet", Fault::Throttle);
    }
    let ws = Workspace::new();
    ws.write("queue.yml", QUEUE_TEMPLATE);
    let run = ActionRun::new(&ws)
        .input("name", &stack)
        .input("template", "queue.yml")
        .input("parameter-overrides", "Env=dev")
        .input("retry-mode", "adaptive")
        .run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(
        run.output("stack-status"),
        "CREATE_COMPLETE",
        "{}",
        run.stdout
    );
    Emulator::shared().assert_no_change_set_left(&stack);
    let calls = proxy.requests();
    assert_eq!(proxy.count(Fault::Throttle), 2, "{calls:?}");
    assert_every_fault_retried(&calls, Fault::Throttle);
}

#[test]
fn full_deploy_survives_one_call_in_five_failing_with_500_or_503() {
    full_deploy_under(Fault::ServerError, "standard");
}

#[test]
fn full_deploy_survives_one_connection_in_five_reset() {
    full_deploy_under(Fault::Reset, "standard");
}

#[test]
fn full_deploy_survives_one_call_in_five_delayed() {
    full_deploy_under(Fault::Latency, "standard");
}

/// Every kind at once, lost answers included, one call in four in all: the
/// idempotency tokens and the SDK's retries together.
#[test]
fn full_deploy_survives_every_kind_of_fault_mixed() {
    let stack = unique_name("mixed");
    let kinds = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Reset,
        Fault::LostResponse,
        Fault::Latency,
    ];
    let rates: Vec<_> = kinds.iter().map(|kind| (*kind, 0.05)).collect();
    let proxy = FaultProxy::start(Emulator::shared().endpoint()).with_rates(&rates);
    let calls = full_deploy_through(&proxy, &stack, "standard");
    for kind in kinds {
        assert_dealt(&proxy, kind, calls.len());
    }
}

/// A plain stack, so the scripted tests stay quick.
const TOPIC_TEMPLATE: &str = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n";

fn topic_deploy<'a>(ws: &'a Workspace, stack: &str, max_retries: &str) -> ActionRun<'a> {
    ws.write("topic.yml", TOPIC_TEMPLATE);
    ActionRun::new(ws)
        .input("name", stack)
        .input("template", "topic.yml")
        .input("max-retries", max_retries)
}

#[test]
fn max_retries_is_the_sdks_retry_budget() {
    let ws = Workspace::new();

    // No retries: the first throttled call fails the job, and says so.
    let stack = unique_name("noretry");
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.script("CreateChangeSet", Fault::Throttle);
    let run = topic_deploy(&ws, &stack, "0").run_at(proxy.endpoint());
    run.assert_code(1);
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("Throttling: Rate exceeded") && l.contains("raise `max-retries`")),
        "{}",
        run.stdout
    );
    let creates = proxy
        .requests()
        .iter()
        .filter(|c| c.action == "CreateChangeSet")
        .count();
    assert_eq!(creates, 1, "max-retries 0 makes one attempt");
    Emulator::shared().assert_no_change_set_left(&stack);

    // Two faults in a row and two retries: the third attempt gets through.
    let stack = unique_name("retry");
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.script("CreateChangeSet", Fault::ServerError);
    proxy.script("CreateChangeSet", Fault::Reset);
    let run = topic_deploy(&ws, &stack, "2").run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    let creates: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|c| c.action == "CreateChangeSet")
        .map(|c| c.fault)
        .collect();
    assert_eq!(
        creates,
        [Some(Fault::ServerError), Some(Fault::Reset), None],
        "retried by the SDK"
    );
}

/// Deploys the topic stack with the answer to the first call of `action`
/// lost after the call took effect, then checks the job still succeeded
/// and left no change set behind.
fn survives_lost_answer(action: &str, first: Option<&str>, extra: &[(&str, &str)]) -> RunResult {
    let ws = Workspace::new();
    let stack = unique_name("lost");
    if let Some(template) = first {
        ws.write("topic.yml", template);
        ActionRun::new(&ws)
            .input("name", &stack)
            .input("template", "topic.yml")
            .run()
            .assert_code(0);
    }
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.script(action, Fault::LostResponse);
    let mut run = topic_deploy(&ws, &stack, "4");
    for (name, value) in extra {
        run = run.input(name, value);
    }
    let run = run.run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(
        proxy.count(Fault::LostResponse),
        1,
        "{action} was called: {:?}",
        proxy.requests()
    );
    Emulator::shared().assert_no_change_set_left(&stack);
    run
}

#[test]
fn a_lost_answer_to_a_call_that_worked_does_not_fail_the_deploy() {
    // The SDK retries with the same idempotency token, which CloudFormation
    // recognises; without it the retry is refused as a duplicate.
    let run = survives_lost_answer("CreateChangeSet", None, &[]);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    let run = survives_lost_answer("ExecuteChangeSet", None, &[]);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    let run = survives_lost_answer("CreateStack", None, &[("timeout-in-minutes", "5")]);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    // An empty change set is deleted; the retried delete finds it gone.
    let run = survives_lost_answer("DeleteChangeSet", Some(TOPIC_TEMPLATE), &[]);
    assert_eq!(run.output("has-changes"), "false");
}

#[test]
fn a_lost_answer_to_update_service_does_not_fail_the_rollout() {
    let s = setup(serde_json::json!({}));
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.script("UpdateService", Fault::LostResponse);
    let run = roll_out(&s, "abc1234").run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(run.output("rollout-state"), "COMPLETED", "{}", run.stdout);
    assert_eq!(proxy.count(Fault::LostResponse), 1);
    // UpdateService to the same task definition starts no second deployment.
    assert_eq!(revision_count(&s.family), 2, "one revision registered");
}

#[test]
fn a_stack_wait_reads_only_the_events_each_tick() {
    let ws = Workspace::new();
    let stack = unique_name("onecall");
    ws.write("slow.yml", &crate::deploy::slow_template(2.0));
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    let run = ActionRun::new(&ws)
        .input("name", &stack)
        .input("template", "slow.yml")
        .run_at(proxy.endpoint());
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    let calls = proxy.requests();
    let wait = calls_after(&calls, "ExecuteChangeSet");
    // Two seconds of waiting at the test cadence is several ticks, each one
    // DescribeStackEvents; DescribeStacks once, after, for the outputs.
    assert!(count_of(wait, "DescribeStackEvents") >= 3, "{calls:?}");
    assert_eq!(count_of(wait, "DescribeStacks"), 1, "{calls:?}");
    assert_eq!(
        wait.len(),
        count_of(wait, "DescribeStackEvents") + 1,
        "{calls:?}"
    );
    // A stack our CREATE change set made needs no baseline read of its events.
    assert_eq!(
        count_of(&calls, "DescribeStackEvents"),
        count_of(wait, "DescribeStackEvents"),
        "{calls:?}"
    );
    assert!(
        run.stdout
            .contains("Slow  AWS::SNS::Topic  CREATE_COMPLETE"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("REVIEW_IN_PROGRESS"), "{}", run.stdout);
}

#[test]
fn throttled_event_reads_slow_the_wait_down_and_say_so_once() {
    let ws = Workspace::new();
    let stack = unique_name("throttled");
    ws.write("slow.yml", &crate::deploy::slow_template(3.0));
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.always("DescribeStackEvents", Fault::Throttle);
    let run = ActionRun::new(&ws)
        .input("name", &stack)
        .input("template", "slow.yml")
        .input("max-retries", "0")
        .run_at(proxy.endpoint());
    // The events only explain: the stack's status comes from DescribeStacks
    // on those ticks, and the deploy succeeds.
    run.assert_code(0);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    let throttle_notes = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("AWS throttled the reads of stack"))
        .count();
    assert_eq!(throttle_notes, 1, "{}", run.stdout);
    let calls = proxy.requests();
    let wait = calls_after(&calls, "ExecuteChangeSet");
    let ticks = count_of(wait, "DescribeStackEvents");
    // Each tick whose events were throttled read the status instead (the
    // last DescribeStacks is the outputs'); after the first throttled tick
    // the pauses are the slow pace's at least (1 s in tests), so three
    // seconds hold is a handful of ticks, where the fast pace (50-250 ms)
    // would make about twenty.
    assert_eq!(count_of(wait, "DescribeStacks"), ticks + 1, "{calls:?}");
    assert!((2..=6).contains(&ticks), "{ticks} ticks: {calls:?}");
}

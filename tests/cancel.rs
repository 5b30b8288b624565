//! Cancellation: the runner cancels a container action with SIGTERM (and a
//! user at a terminal with SIGINT). The job stops waiting within a second or
//! two (the bench measures how soon: milliseconds), says what it left
//! running and what will happen to it, writes the outputs it knows, exits
//! non-zero, and never starts anything new.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::deploy::{QUEUE_TEMPLATE, slow_template};
use crate::util::{
    ActionRun, Emulator, Workspace, block_on, check_groups, parse_output_file, unique_name,
};

/// Starts the binary as the runner would, waits for `ready` in its log,
/// sends SIGTERM, and returns (exit code, log, seconds from signal to exit).
fn run_and_terminate(ws: &Workspace, inputs: &[(&str, &str)], ready: &str) -> (i32, String, f64) {
    run_and_signal(ws, inputs, ready, "TERM")
}

/// [`run_and_terminate`] with another signal (`INT`, ...).
fn run_and_signal(
    ws: &Workspace,
    inputs: &[(&str, &str)],
    ready: &str,
    signal: &str,
) -> (i32, String, f64) {
    run_and_signal_on(Emulator::shared(), ws, inputs, ready, signal)
}

/// [`run_and_signal`] against a given emulator.
pub fn run_and_signal_on(
    emulator: &Emulator,
    ws: &Workspace,
    inputs: &[(&str, &str)],
    ready: &str,
    signal: &str,
) -> (i32, String, f64) {
    let mut run = ActionRun::new(ws);
    for (name, value) in inputs {
        run = run.input(name, value);
    }
    let mut command = run.command(emulator.endpoint());
    command.stdout(Stdio::piped());
    let mut child = command.spawn().expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.contains(ready) {
        let line = receiver
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("`{ready}` never appeared:\n{log}"));
        log.push_str(&line);
        log.push('\n');
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("send the signal");
    assert!(status.success());
    let code = child
        .wait()
        .expect("wait for the binary")
        .code()
        .unwrap_or(-1);
    let elapsed = signalled.elapsed().as_secs_f64();
    for line in receiver.iter() {
        log.push_str(&line);
        log.push('\n');
    }
    if let Err(problem) = check_groups(&log) {
        panic!("unbalanced ::group:: after {signal}: {problem}\n{log}");
    }
    (code, log, elapsed)
}

#[test]
fn sigterm_while_waiting_stops_promptly_and_says_what_carries_on() {
    let ws = Workspace::new();
    ws.write("slow.yml", &slow_template(30.0));
    let stack = unique_name("cancel");
    let (code, log, elapsed) = run_and_terminate(
        &ws,
        &[("name", &stack), ("template", "slow.yml")],
        "executing the change set",
    );
    assert_eq!(code, 1, "{log}");
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(elapsed < 3.0, "took {elapsed:.1}s to stop:\n{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(
        log.contains("CloudFormation carries on with the CREATE_IN_PROGRESS operation"),
        "{log}"
    );
    let outputs = parse_output_file(&std::fs::read_to_string(ws.output_file()).expect("outputs"));
    assert!(outputs["stack-id"].contains(&stack), "{outputs:?}");
    assert_eq!(outputs["stack-status"], "CREATE_IN_PROGRESS");
}

#[test]
fn cancel_on_abort_cancels_a_running_update() {
    let ws = Workspace::new();
    ws.write("stack.yml", QUEUE_TEMPLATE);
    let stack = unique_name("cancelupd");
    crate::util::ActionRun::new(&ws)
        .input("name", &stack)
        .input("template", "stack.yml")
        .input("parameter-overrides", "Env=a")
        .run()
        .assert_code(0);
    let slow_update = QUEUE_TEMPLATE.replace(
        "  Queue:\n    Type: AWS::SQS::Queue\n",
        "  Queue:\n    Type: AWS::SQS::Queue\n    Metadata:\n      Emulator:\n        HoldSeconds: 30\n",
    );
    ws.write("stack.yml", &slow_update);
    let (code, log, elapsed) = run_and_terminate(
        &ws,
        &[
            ("name", &stack),
            ("template", "stack.yml"),
            ("parameter-overrides", "Env=b"),
            ("cancel-on-abort", "true"),
        ],
        "executing the change set",
    );
    assert_eq!(code, 1, "{log}");
    Emulator::shared().assert_no_change_set_left(&stack);
    assert!(elapsed < 3.0, "took {elapsed:.1}s to stop:\n{log}");
    assert!(log.contains("the update was cancelled"), "{log}");
    let client = Emulator::shared().cloudformation();
    let status = block_on(async {
        for _ in 0..100 {
            let out = client
                .describe_stacks()
                .stack_name(&stack)
                .send()
                .await
                .unwrap();
            let status = out.stacks()[0].stack_status().unwrap().as_str().to_string();
            if !status.ends_with("_IN_PROGRESS") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        "still in progress".to_string()
    });
    assert_eq!(
        status, "UPDATE_ROLLBACK_COMPLETE",
        "CancelUpdateStack rolled the update back"
    );
}

#[test]
fn sigint_during_a_rollout_says_ecs_carries_on_with_the_deployment() {
    // Tasks that take 30 s to start keep the deployment IN_PROGRESS.
    let s = crate::rollout::setup(serde_json::json!({"emulator.start-seconds": "30"}));
    let repository = s.repository.clone();
    let (code, log, elapsed) = run_and_signal(
        &s.ws,
        &[
            ("task-definition", "ecs/task-definition.json"),
            ("container-name", "app"),
            ("image-repository", &repository),
            ("image-tag", "abc1234"),
            ("service", &s.service),
            ("cluster", &s.cluster),
        ],
        "updated; deployment",
        "INT",
    );
    assert_eq!(code, 1, "{log}");
    assert!(elapsed < 3.0, "took {elapsed:.1}s to stop:\n{log}");
    assert!(log.contains("received SIGINT"), "{log}");
    let outputs = parse_output_file(&std::fs::read_to_string(s.ws.output_file()).expect("outputs"));
    let deployment = &outputs["deployment-id"];
    assert!(deployment.starts_with("ecs-svc/"), "{outputs:?}");
    assert!(
        log.contains(&format!(
            "ECS carries on with deployment {deployment} on its own"
        )),
        "{log}"
    );
    assert_eq!(outputs["rollout-state"], "IN_PROGRESS");
    assert!(
        outputs["task-definition-arn"].contains(&format!("task-definition/{}:2", s.family)),
        "{outputs:?}"
    );
}

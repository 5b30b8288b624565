//! Plan before change, through the real binary: every combination of
//! inputs with one bad part changes nothing; a failure after a change says
//! what was applied; calls made only to explain never change the verdict;
//! a connection that never answers cannot hold the job past its bound; a
//! signal before the first AWS call is honoured.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::rollout::{roll_out, setup, setup_on};
use crate::util::proxy::{Fault, FaultProxy};
use crate::util::{ActionRun, Emulator, Workspace, block_on, unique_name};

/// Whether an AWS action only reads.
fn is_read_only(action: &str) -> bool {
    ["Describe", "List", "Get", "BatchGet", "Validate"]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// A stack whose template takes the image, so stack + image combinations
/// have somewhere to put it.
const IMAGE_TEMPLATE: &str = r#"
Parameters:
  ImageUri:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      Tags:
        - Key: image
          Value: !Ref ImageUri
"#;

/// One row: the combination, its inputs, the bad part, the input the error
/// must name.
type Case<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    &'a str,
);

/// Regression: with a misspelt `container-name` (or a missing cluster) the
/// stack was created first, then the job said "nothing was changed".
#[test]
fn every_combination_with_one_bad_part_changes_nothing() {
    let emulator = Emulator::private();
    let s = setup_on(&emulator, serde_json::json!({}));
    s.ws.write("stack.yml", IMAGE_TEMPLATE);
    let stack_name = unique_name("plan-first");
    let stack: Vec<(&str, &str)> = vec![("name", &stack_name), ("template", "stack.yml")];
    let image = [
        ("image-repository", s.repository.as_str()),
        ("image-tag", "abc1234"),
    ];
    let service = [
        ("task-definition", "ecs/task-definition.json"),
        ("container-name", "app"),
        ("service", s.service.as_str()),
        ("cluster", s.cluster.as_str()),
    ];
    let dispatch = [
        ("dispatch-workflows", "next.yml"),
        ("github-token", "ghs_test"),
    ];
    let stack_image = [stack.as_slice(), &image].concat();
    let stack_service = [stack.as_slice(), &image, &service].concat();
    let service_only = [image.as_slice(), &service].concat();
    let everything = [stack_service.as_slice(), &dispatch].concat();
    // (combination, the bad part, the input the error must name)
    let cases: Vec<Case> = vec![
        (
            "stack + service",
            &stack_service,
            &[("container-name", "ap")],
            "container-name",
        ),
        (
            "stack + service",
            &stack_service,
            &[("cluster", "no-such-cluster")],
            "cluster",
        ),
        (
            "stack + service",
            &stack_service,
            &[("service", "no-such-service")],
            "service",
        ),
        (
            "stack + service",
            &stack_service,
            &[("task-definition", "missing.json")],
            "task-definition",
        ),
        (
            "stack + service",
            &stack_service,
            &[("image-tag", "0000000")],
            "image",
        ),
        (
            "stack + image",
            &stack_image,
            &[("image-tag", "0000000")],
            "image",
        ),
        (
            "service",
            &service_only,
            &[("cluster", "no-such-cluster")],
            "cluster",
        ),
        (
            "service",
            &service_only,
            &[("container-name", "ap")],
            "container-name",
        ),
        (
            "service",
            &service_only,
            &[
                ("task-definition", ""),
                ("task-definition-family", "no-such-family"),
            ],
            "task-definition",
        ),
        (
            "stack + service + dispatch",
            &everything,
            &[("container-name", "ap")],
            "container-name",
        ),
        (
            "stack + service + dispatch",
            &everything,
            &[("service", "no-such-service")],
            "service",
        ),
    ];
    let cloudformation = emulator.cloudformation();
    for (label, base, bad, named) in cases {
        let before = emulator.requests().len();
        let mut run = ActionRun::new(&s.ws);
        for (name, value) in base.iter().chain(bad.iter()) {
            run = run.input(name, value);
        }
        let run = run.run_against(&emulator);
        let label = format!("{label} with {bad:?}");
        assert_eq!(run.code, 2, "{label}: exit code\n{}", run.stdout);
        assert!(
            run.error_annotations()
                .iter()
                .any(|l| l.contains(&format!("`{named}`"))),
            "{label}: no error names `{named}`:\n{}",
            run.stdout
        );
        assert!(run.stdout.contains("nothing was changed in AWS"), "{label}");
        assert!(run.outputs.is_empty(), "{label}: outputs were written");
        let mutating: Vec<_> = emulator.requests()[before..]
            .iter()
            .filter(|(_, action)| !is_read_only(action))
            .cloned()
            .collect();
        assert!(mutating.is_empty(), "{label}: changed AWS: {mutating:?}");
        let described = block_on(
            cloudformation
                .describe_stacks()
                .stack_name(&stack_name)
                .send(),
        );
        assert!(described.is_err(), "{label}: the stack exists");
    }
}

/// A stack that creates the cluster the rollout names, but not the
/// service: the rollout is planned after the stack, and its failure says
/// the stack was applied, with every known output written.
#[test]
fn a_failure_after_a_change_says_what_was_applied() {
    let ws = Workspace::new();
    let name = unique_name("applied");
    let cluster = format!("{name}-cluster");
    ws.write(
        "cluster.yml",
        &format!(
            "Resources:\n  Cluster:\n    Type: AWS::ECS::Cluster\n    Properties:\n      ClusterName: {cluster}\nOutputs:\n  ClusterName:\n    Value: !Ref Cluster\n"
        ),
    );
    ws.write(
        "td.json",
        r#"{"family": "applied", "containerDefinitions": [{"name": "app", "image": "public.ecr.aws/nginx/nginx:1.27"}]}"#,
    );
    let run = ActionRun::new(&ws)
        .input("name", &name)
        .input("template", "cluster.yml")
        .input("task-definition", "td.json")
        .input("service", "not-created-by-the-stack")
        .input("cluster", &cluster)
        .run();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stdout.contains("once the stack is applied"),
        "the plan says the rollout waits for the stack:\n{}",
        run.stdout
    );
    assert!(
        run.error_annotations()
            .iter()
            .any(|l| l.contains("after the stack was applied") && l.contains("`service`")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "applied: stack {name}: changes executed, now CREATE_COMPLETE"
        )),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("nothing was changed"),
        "{}",
        run.stdout
    );
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    assert!(
        run.output("stack-id")
            .starts_with("arn:aws:cloudformation:")
    );
    assert_eq!(run.output("ClusterName"), cluster);
    assert!(
        run.summary.contains("Applied before the failure"),
        "{}",
        run.summary
    );
}

/// The calls made only to explain a rollout answer HTTP 500 with an empty
/// body, every time: each is one warning naming the call and the status,
/// and the rollout still succeeds.
#[test]
fn explaining_calls_that_fail_never_change_the_verdict() {
    let s = setup(serde_json::json!({}));
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    for action in ["ListTasks", "DescribeTasks", "DescribeTargetHealth"] {
        proxy.always(action, Fault::EmptyServerError);
    }
    let run = roll_out(&s, "abc1234")
        .input("max-retries", "0")
        .run_at(proxy.endpoint());
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.output("rollout-state"), "COMPLETED");
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning") && l.contains("ListTasks failed"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for ListTasks:\n{}",
        run.stdout
    );
    assert!(
        warnings[0].contains("ListTasks answered HTTP 500")
            && warnings[0].contains("body was empty"),
        "{}",
        warnings[0]
    );
    assert!(!run.stdout.contains("(no message)"), "{}", run.stdout);
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.action == "ListTasks" && r.fault == Some(Fault::EmptyServerError)),
        "the fault was dealt"
    );
}

/// The same for a stack: its events (read to be printed) and its resources
/// (read to find ECS services) answer an empty 500; the deploy succeeds.
#[test]
fn a_stack_deploys_when_its_events_and_resources_cannot_be_read() {
    let ws = Workspace::new();
    ws.write(
        "td.yml",
        "Resources:\n  Task:\n    Type: AWS::ECS::TaskDefinition\n    Properties:\n      Family: explain\n      NetworkMode: awsvpc\n      RequiresCompatibilities: [FARGATE]\n      Cpu: \"256\"\n      Memory: \"512\"\n      ContainerDefinitions:\n        - Name: app\n          Image: public.ecr.aws/nginx/nginx:1.27\n          Essential: true\n",
    );
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    for action in ["DescribeStackEvents", "ListStackResources"] {
        proxy.always(action, Fault::EmptyServerError);
    }
    let run = ActionRun::new(&ws)
        .input("name", &unique_name("explain"))
        .input("template", "td.yml")
        .input("max-retries", "0")
        .run_at(proxy.endpoint());
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.output("stack-status"), "CREATE_COMPLETE");
    // ListStackResources failed, so the task definition is not known; the
    // deploy is still a success.
    assert_eq!(run.output("task-definition-arn"), "");
    for call in ["DescribeStackEvents", "ListStackResources"] {
        let warned = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("::warning") && l.contains(&format!("{call} failed")))
            .count();
        assert_eq!(warned, 1, "{call}:\n{}", run.stdout);
    }
}

/// A connection that is accepted and never answered: every call has the
/// SDK's attempt and operation timeouts, so the job ends within its bound.
#[test]
fn a_call_that_never_answers_ends_the_job_within_its_bound() {
    let ws = Workspace::new();
    ws.write("queue.yml", crate::deploy::QUEUE_TEMPLATE);
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    proxy.always("DescribeStacks", Fault::Hang);
    let started = Instant::now();
    let run = ActionRun::new(&ws)
        .input("name", &unique_name("hang"))
        .input("template", "queue.yml")
        .input("parameter-overrides", "Env=a")
        .input("wait-timeout", "6s")
        .run_at(proxy.endpoint());
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let errors = run.error_annotations().join("\n").to_lowercase();
    assert!(
        errors.contains("timeout") || errors.contains("timed out"),
        "{errors}"
    );
    assert!(
        run.stdout.contains("nothing was changed in AWS"),
        "{}",
        run.stdout
    );
}

/// Starts `command`, sends SIGTERM `after` the start, and returns its
/// output and how long it took to end after the signal.
fn terminate_after(
    command: &mut std::process::Command,
    after: Duration,
) -> (std::process::Output, Duration) {
    terminate_when(command, Start::After(after))
}

/// When the signal is sent.
enum Start {
    /// This long after the spawn.
    After(Duration),
    /// As soon as the binary has written its first line (its handlers are
    /// installed before anything else, so a loaded machine cannot deliver
    /// the signal before they are).
    FirstLine,
}

fn terminate_when(
    command: &mut std::process::Command,
    start: Start,
) -> (std::process::Output, Duration) {
    use std::io::Read as _;
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut stdout = child.stdout.take().expect("stdout");
    let (first_line, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut byte = [0u8; 1];
        let mut told = false;
        while let Ok(1) = stdout.read(&mut byte) {
            all.push(byte[0]);
            if !told && byte[0] == b'\n' {
                told = first_line.send(()).is_ok();
            }
        }
        all
    });
    match start {
        Start::After(after) => std::thread::sleep(after),
        Start::FirstLine => seen
            .recv_timeout(Duration::from_secs(20))
            .expect("the binary wrote nothing"),
    }
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait for the binary");
    let stdout = reader.join().expect("stdout reader");
    (
        std::process::Output {
            status: exit,
            stdout,
            stderr: Vec::new(),
        },
        signalled.elapsed(),
    )
}

/// The handlers are installed before anything else: SIGTERM right after
/// the binary's first line ends the job with outputs and summary written.
#[test]
fn sigterm_right_after_the_start_is_honoured() {
    let ws = Workspace::new();
    ws.write("queue.yml", crate::deploy::QUEUE_TEMPLATE);
    let proxy = FaultProxy::start(Emulator::shared().endpoint());
    // Hold the first AWS call so the signal surely lands before any change.
    proxy.always("DescribeStacks", Fault::Hang);
    let run = ActionRun::new(&ws)
        .input("name", &unique_name("early"))
        .input("template", "queue.yml")
        .input("parameter-overrides", "Env=a");
    let (output, took) = terminate_when(&mut run.command(proxy.endpoint()), Start::FirstLine);
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("nothing was changed in AWS"), "{log}");
    crate::util::check_groups(&log).unwrap_or_else(|e| panic!("{e}\n{log}"));
    let outputs = std::fs::read_to_string(ws.output_file()).unwrap_or_default();
    assert!(
        outputs.contains("stack-id<<"),
        "outputs written:\n{outputs}"
    );
    let summary = std::fs::read_to_string(ws.summary_file()).unwrap_or_default();
    assert!(summary.contains("cancelled"), "{summary}");
}

/// A signal while the job waits on GitHub (recording the deployment, before
/// anything is applied): the handlers cover that phase too.
#[test]
fn sigterm_while_github_does_not_answer_is_honoured() {
    let ws = Workspace::new();
    ws.write("queue.yml", crate::deploy::QUEUE_TEMPLATE);
    // A GitHub API that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = format!("http://{}", silent.local_addr().expect("address"));
    let held = std::thread::spawn(move || {
        let connections: Vec<_> = silent.incoming().take(1).flatten().collect();
        std::thread::sleep(Duration::from_secs(20));
        drop(connections);
    });
    let run = ActionRun::new(&ws)
        .input("name", &unique_name("gh-silent"))
        .input("template", "queue.yml")
        .input("parameter-overrides", "Env=a")
        .input("environment", "prod")
        .input("github-token", "ghs_test")
        .env("GITHUB_API_URL", &api);
    // Long enough for the plan to be done and the deployment call to hang.
    let (output, took) = terminate_after(
        &mut run.command(Emulator::shared().endpoint()),
        Duration::from_millis(1500),
    );
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(took < Duration::from_secs(2), "took {took:?}: {log}");
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("nothing was changed in AWS"), "{log}");
    crate::util::check_groups(&log).unwrap_or_else(|e| panic!("{e}\n{log}"));
    drop(held);
}

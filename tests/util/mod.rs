//! Test support: the local AWS emulator, a runner-like workspace, and a way
//! to run the job with exactly what the GitHub runner gives a container
//! action (hyphenated `INPUT_*` variables, `GITHUB_OUTPUT`, ...): in-process
//! through the library with a fast poll schedule (most tests), or as the
//! real binary (`ActionRun::binary`, the contract, signal and exit-code
//! tests). Two proxies: the fault proxy (`proxy`) stands in for the AWS
//! endpoint and misbehaves on purpose; the forward proxy (`forward_proxy`)
//! is one the binary is configured to go through (`http-proxy`,
//! HTTPS_PROXY).

#![allow(dead_code)]

pub mod forward_proxy;
pub mod proxy;

pub use forward_proxy::ForwardProxy;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ecs_stack_deploy::PollSchedule;
use ecs_stack_deploy::env::Environment;
use ecs_stack_deploy::inputs::{DEPLOY_INPUTS, RawInputs};
use ecs_stack_deploy::job::{self, JobSettings, LogBuffer, LogTarget};
use ecs_stack_deploy::termination::Termination;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One emulator per test process, shared by all tests (each test uses its
/// own stack names). It exits when this process does: its stdin is a pipe
/// held here, and the launcher quits when the pipe closes.
pub struct Emulator {
    endpoint: String,
    _child: Mutex<Child>,
    _stdin: Mutex<ChildStdin>,
}

impl Emulator {
    pub fn shared() -> &'static Emulator {
        static EMULATOR: OnceLock<Emulator> = OnceLock::new();
        EMULATOR.get_or_init(Emulator::start)
    }

    /// An emulator of one's own, for tests that read its request log (the
    /// shared one serves every test at once).
    pub fn private() -> Emulator {
        Self::start()
    }

    /// The AWS calls the emulator has served, as (service, action).
    pub fn requests(&self) -> Vec<(String, String)> {
        let (code, body) = self.control("GET", "/_emulator/requests", "");
        assert_eq!(code, 200, "{body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("request log JSON");
        list.iter()
            .map(|r| {
                (
                    r["service"].as_str().unwrap_or_default().to_string(),
                    r["action"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn start() -> Emulator {
        let python = std::env::var_os("ESD_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup (or scripts/test) first",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(repo_root().join("emulator/launcher.py"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the emulator");
        let stdin = child.stdin.take().expect("emulator stdin");
        let stdout = child.stdout.take().expect("emulator stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("the emulator exited before it was ready")
                .expect("read the emulator's stdout");
            if let Some(endpoint) = line.strip_prefix("EMULATOR_READY ") {
                break endpoint.trim().to_string();
            }
        };
        // Keep draining stdout so the emulator never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Emulator {
            endpoint,
            _child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A raw HTTP call to the emulator's control endpoints.
    pub fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.http(method, path, "Content-Type: application/json\r\n", body)
    }

    /// One raw HTTP/1.1 request; `headers` are complete lines.
    fn http(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to the emulator");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// A subnet and a security group of the region's default VPC (as an
    /// account has), for services and tasks that need a network: found with
    /// EC2's Query API directly, which spares the tests the EC2 SDK.
    pub fn default_network(&self) -> (String, String) {
        let (_, subnet, group) = self.default_vpc();
        (subnet, group)
    }

    /// The default VPC's id, one of its subnets and its default security
    /// group.
    pub fn default_vpc(&self) -> (String, String, String) {
        let subnets = "Action=DescribeSubnets&Filter.1.Name=default-for-az&Filter.1.Value.1=true";
        let group = self.ec2(
            "Action=DescribeSecurityGroups&Filter.1.Name=group-name&Filter.1.Value.1=default",
            "groupId",
        );
        (
            self.ec2(subnets, "vpcId"),
            self.ec2(subnets, "subnetId"),
            group,
        )
    }

    /// A new VPC with a subnet and a security group of its own: ids of the
    /// VPC, the subnet and the group.
    pub fn another_vpc(&self, cidr_prefix: &str) -> (String, String, String) {
        let vpc = self.ec2(
            &format!("Action=CreateVpc&CidrBlock={cidr_prefix}.0.0%2F16"),
            "vpcId",
        );
        let subnet = self.ec2(
            &format!("Action=CreateSubnet&VpcId={vpc}&CidrBlock={cidr_prefix}.1.0%2F24"),
            "subnetId",
        );
        let group = self.ec2(
            &format!(
                "Action=CreateSecurityGroup&VpcId={vpc}&GroupName=other-{cidr_prefix}&GroupDescription=other"
            ),
            "groupId",
        );
        (vpc, subnet, group)
    }

    /// One EC2 query call; the text of the first `element` of the answer.
    pub fn ec2(&self, query: &str, element: &str) -> String {
        let headers = "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded\r\n";
        let (code, body) = self.http("POST", "/", headers, &format!("{query}&Version=2016-11-15"));
        assert_eq!(code, 200, "{query}: {body}");
        let open = format!("<{element}>");
        let start = body
            .find(&open)
            .unwrap_or_else(|| panic!("no {element} in {body}"))
            + open.len();
        let end = body[start..].find('<').expect("closing tag") + start;
        body[start..end].to_string()
    }

    /// Forces a stack into a status (to set up recovery situations).
    pub fn force_stack_status(&self, stack: &str, status: &str) {
        let body = serde_json::json!({"StackName": stack, "StackStatus": status, "StatusReason": "forced by test"});
        let (code, text) = self.control("POST", "/_emulator/stack-status", &body.to_string());
        assert_eq!(code, 200, "forcing {stack} to {status}: {text}");
    }

    /// Whether `stack` exists (a deleted one does not).
    pub fn stack_exists(&self, stack: &str) -> bool {
        let client = self.cloudformation();
        block_on(async { client.describe_stacks().stack_name(stack).send().await })
            .ok()
            .and_then(|out| out.stacks().first().cloned())
            .is_some_and(|found| {
                found.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE")
            })
    }

    /// Names of the change sets of `stack` that were never executed: what a
    /// run would leave behind (a stack that does not exist has none).
    pub fn unexecuted_change_sets(&self, stack: &str) -> Vec<String> {
        let client = self.cloudformation();
        block_on(async {
            match client.list_change_sets().stack_name(stack).send().await {
                Ok(out) => out
                    .summaries()
                    .iter()
                    .filter(|s| {
                        !matches!(
                            s.execution_status().map(|e| e.as_str()),
                            Some("EXECUTE_IN_PROGRESS" | "EXECUTE_COMPLETE" | "EXECUTE_FAILED")
                        )
                    })
                    .filter_map(|s| s.change_set_name().map(str::to_string))
                    .collect(),
                Err(error) => {
                    let text = format!("{error:?}");
                    assert!(
                        text.contains("does not exist"),
                        "list change sets of {stack}: {text}"
                    );
                    Vec::new()
                }
            }
        })
    }

    /// The sweep after a failure: no change set of the action's is left.
    pub fn assert_no_change_set_left(&self, stack: &str) {
        let left = self.unexecuted_change_sets(stack);
        assert!(
            left.is_empty(),
            "change sets left behind on {stack}: {left:?}"
        );
    }

    /// A CloudFormation client for setting up and checking stacks.
    pub fn cloudformation(&self) -> aws_sdk_cloudformation::Client {
        let config = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .http_client(ecs_stack_deploy::direct_http_client())
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .build();
        aws_sdk_cloudformation::Client::from_conf(config)
    }
}

/// Runs a future to completion on a fresh runtime (tests are plain `#[test]`
/// functions so the binary's runs and these calls never share a runtime).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A stack name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A runner-like workspace: a checkout directory plus the runner's files.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("workspace")).expect("workspace dir");
        std::fs::create_dir_all(dir.path().join("file_commands")).expect("file commands dir");
        std::fs::create_dir_all(dir.path().join("workflow")).expect("workflow dir");
        Self { dir }
    }

    /// The checkout (GITHUB_WORKSPACE).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("workspace")
    }

    /// Writes a file relative to the checkout.
    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.root().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(&path, content).expect("write workspace file");
        path
    }

    /// Reads a file relative to the checkout.
    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.root().join(relative)).expect("read workspace file")
    }

    pub fn output_file(&self) -> PathBuf {
        self.dir.path().join("file_commands/set_output")
    }

    pub fn summary_file(&self) -> PathBuf {
        self.dir.path().join("file_commands/step_summary")
    }

    pub fn event_file(&self) -> PathBuf {
        self.dir.path().join("workflow/event.json")
    }
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

impl RunResult {
    pub fn output(&self, name: &str) -> &str {
        self.outputs
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "no output `{name}` in {:?}\nstdout:\n{}",
                    self.outputs, self.stdout
                )
            })
    }

    /// Asserts the exit code, showing the log when it differs.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The `::error::` annotation lines.
    pub fn error_annotations(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("::error"))
            .collect()
    }
}

/// Parses a GITHUB_OUTPUT file the way the runner does: `name<<DELIM`
/// heredocs and `name=value` lines.
pub fn parse_output_file(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            loop {
                let next = lines.next().expect("unterminated heredoc in GITHUB_OUTPUT");
                if next == delimiter {
                    break;
                }
                value.push(next);
            }
            outputs.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            outputs.insert(name.to_string(), value.to_string());
        } else {
            panic!("malformed GITHUB_OUTPUT line: {line}");
        }
    }
    outputs
}

/// Runs the job as the runner runs a container action: in-process by
/// default, or as the real binary.
pub struct ActionRun<'a> {
    workspace: &'a Workspace,
    inputs: Vec<(String, String)>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    event_name: String,
    event: String,
    binary: bool,
}

/// The poll schedule of in-process runs: the emulator settles in about a
/// second, so polling every 50 to 250 ms spares each wait most of the real
/// cadence (250 ms growing to 1 s) without changing what is waited for.
pub fn test_poll_schedule() -> PollSchedule {
    PollSchedule {
        initial: Duration::from_millis(50),
        fast_max: Duration::from_millis(250),
        fast_period: Duration::from_secs(60),
        slow_max: Duration::from_secs(1),
        throttled_max: Duration::from_secs(2),
    }
}

impl<'a> ActionRun<'a> {
    pub fn new(workspace: &'a Workspace) -> Self {
        Self {
            workspace,
            inputs: Vec::new(),
            env: Vec::new(),
            args: Vec::new(),
            event_name: "push".into(),
            event: serde_json::json!({
                "ref": "refs/heads/main",
                "after": "0123456789abcdef0123456789abcdef01234567",
                "repository": {"full_name": "acme/shop"}
            })
            .to_string(),
            binary: false,
        }
    }

    /// Runs the real binary (a child process with only the runner's
    /// environment) instead of the job in-process: for what only the
    /// process shows (exit codes, what reaches stdout, the front end).
    pub fn binary(mut self) -> Self {
        self.binary = true;
        self
    }

    /// Sets an input by its action.yml name.
    pub fn input(mut self, name: &str, value: &str) -> Self {
        self.inputs.push((name.into(), value.into()));
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Command-line arguments (for the CLI front end).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    pub fn event(mut self, name: &str, payload: serde_json::Value) -> Self {
        self.event_name = name.into();
        self.event = payload.to_string();
        self
    }

    /// Runs the binary against the shared emulator.
    pub fn run(self) -> RunResult {
        self.run_against(Emulator::shared())
    }

    /// Runs the binary against `emulator`.
    pub fn run_against(self, emulator: &Emulator) -> RunResult {
        let endpoint = emulator.endpoint().to_string();
        self.run_at(&endpoint)
    }

    /// The whole environment of the run, as the runner would set it, with
    /// AWS at `endpoint`; writes the event payload it points to.
    fn environment(&self, endpoint: &str) -> Vec<(String, String)> {
        let ws = self.workspace;
        std::fs::write(ws.event_file(), &self.event).expect("write event");
        let path = |p: PathBuf| p.display().to_string();
        let mut vars: Vec<(String, String)> = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", path(ws.root())),
            ("AWS_ENDPOINT_URL", endpoint.to_string()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            ("CI", "true".into()),
            ("GITHUB_WORKSPACE", path(ws.root())),
            ("GITHUB_OUTPUT", path(ws.output_file())),
            ("GITHUB_STEP_SUMMARY", path(ws.summary_file())),
            ("GITHUB_EVENT_NAME", self.event_name.clone()),
            ("GITHUB_EVENT_PATH", path(ws.event_file())),
            (
                "GITHUB_SHA",
                "0123456789abcdef0123456789abcdef01234567".into(),
            ),
            ("GITHUB_REF", "refs/heads/main".into()),
            ("GITHUB_REPOSITORY", "acme/shop".into()),
            ("GITHUB_RUN_ID", unique_name("run").replace('-', "")),
            ("GITHUB_RUN_ATTEMPT", "1".into()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        // The runner's naming: upper-cased, spaces to `_`, hyphens kept.
        let variable = |name: &str| format!("INPUT_{}", name.replace(' ', "_").to_uppercase());
        for (name, value) in &self.inputs {
            vars.push((variable(name), value.clone()));
        }
        // And, as the runner does (GitHub's and act alike), every declared
        // input with a default that the step did not give, set to it.
        for spec in DEPLOY_INPUTS {
            if let Some(default) = spec.default
                && !self.inputs.iter().any(|(name, _)| name == spec.name)
            {
                vars.push((variable(spec.name), default.to_string()));
            }
        }
        // Later settings replace earlier ones, as in a process environment.
        vars.extend(self.env.iter().cloned());
        vars
    }

    /// The binary's command as the runner would start it, with AWS at
    /// `endpoint`, not yet started (for tests that signal the process).
    pub fn command(&self, endpoint: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ecs-stack-deploy"));
        command
            .env_clear()
            .args(&self.args)
            .current_dir(self.workspace.root())
            .envs(self.environment(endpoint));
        command
    }

    /// Runs the job with AWS at `endpoint` (the emulator, or a fault proxy
    /// in front of it): as the binary when asked (or when there are
    /// command-line arguments), else in-process.
    pub fn run_at(self, endpoint: &str) -> RunResult {
        let ws = self.workspace;
        let (code, stdout, stderr) = if self.binary || !self.args.is_empty() {
            let output = self.command(endpoint).output().expect("run the binary");
            (
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        } else {
            let (code, log) = self.run_in_process(endpoint);
            (code, log, String::new())
        };
        if let Err(problem) = check_groups(&stdout) {
            panic!("unbalanced ::group:: in the log: {problem}\n{stdout}");
        }
        let outputs_text = std::fs::read_to_string(ws.output_file()).unwrap_or_default();
        RunResult {
            code,
            stdout,
            stderr,
            outputs: parse_output_file(&outputs_text),
            summary: std::fs::read_to_string(ws.summary_file()).unwrap_or_default(),
        }
    }

    /// The job through the library, as `main` runs it in action mode: the
    /// same environment (only it: nothing is read from this process's), its
    /// log in a buffer, the test poll schedule, no signal source.
    fn run_in_process(&self, endpoint: &str) -> (i32, String) {
        let env = Environment::from_pairs(self.environment(endpoint));
        let raw = RawInputs::from_action_environment(&env);
        let log = LogBuffer::default();
        let settings = JobSettings {
            poll: test_poll_schedule(),
            termination: Termination::never(),
            log: LogTarget::Buffer(log.clone()),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let outcome = runtime.block_on(job::deploy(&raw, &env, settings));
        (i32::from(outcome.code()), log.contents())
    }
}

/// Checks that every `::group::` of a log is closed before the next opens
/// (the runner does not nest groups) and that none is left open: every
/// run of the binary goes through this, failures and cancels included.
pub fn check_groups(log: &str) -> Result<(), String> {
    let mut open: Option<&str> = None;
    for (number, line) in log.lines().enumerate() {
        if let Some(title) = line.strip_prefix("::group::") {
            if let Some(previous) = open {
                return Err(format!(
                    "line {}: group `{title}` opened inside `{previous}`",
                    number + 1
                ));
            }
            open = Some(title);
        } else if line == "::endgroup::" && open.take().is_none() {
            return Err(format!(
                "line {}: ::endgroup:: with no group open",
                number + 1
            ));
        }
    }
    match open {
        Some(title) => Err(format!("group `{title}` is never closed")),
        None => Ok(()),
    }
}

#[test]
fn check_groups_finds_nesting_double_closes_and_open_ends() {
    assert_eq!(
        check_groups("::group::a\nx\n::endgroup::\n::group::b\n::endgroup::\n"),
        Ok(())
    );
    assert!(check_groups("::group::a\n::group::b\n").is_err());
    assert!(check_groups("::group::a\n::endgroup::\n::endgroup::\n").is_err());
    assert!(check_groups("::group::a\n").is_err());
}

/// The action's image under test, shared by the container and act tests:
/// the one `scripts/test` built from this build's binary
/// (ESD_CONTAINER_IMAGE), or one `scripts/build-image` builds now, once per
/// test process (its own target directory: this cargo test holds the lock
/// of the default one).
pub fn image_under_test() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(image) = std::env::var("ESD_CONTAINER_IMAGE")
            && !image.is_empty()
        {
            return image;
        }
        let tag = "localhost/ecs-stack-deploy:cargo-test";
        let status = Command::new(repo_path("scripts/build-image"))
            .arg(tag)
            .env("CARGO_TARGET_DIR", repo_path("target/container"))
            .status()
            .expect("run scripts/build-image");
        assert!(status.success(), "scripts/build-image failed");
        tag.to_string()
    })
}

/// Writes `content` under the workspace and returns the relative path.
pub fn template(ws: &Workspace, name: &str, content: &str) -> String {
    ws.write(name, content);
    name.to_string()
}

/// Reads a path relative to the repository.
pub fn read_repo_file(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// Whether a path exists relative to the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// Re-export for modules that check files.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

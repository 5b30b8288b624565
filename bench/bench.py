"""Benchmark: ecs-stack-deploy side by side with the AWS CLI (`aws
cloudformation deploy`; `aws ecs update-service` + `wait services-stable`).

Run it through bench/run, which prepares the emulator's venv, the AWS CLI
(v1, from PyPI, pinned in bench/requirements.txt) and the static binary:

    bench/run                    BENCH_RUNS=5 bench/run    ESD_BIN=path bench/run
    bench/run --only verdict     only some measurements (single, chain, system,
                                 cadence, cancel, footprint, verdict, rollout,
                                 verify)

Both tools deploy the same templates with the same parameters to the
project's AWS emulator (emulator/, moto with the project's patches), never
to AWS. ecs-stack-deploy runs in action mode exactly as the runner runs a
container action (a cleared environment holding INPUT_<NAME> for every
input of action.yml, GITHUB_* variables, a push event payload, fresh
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files); the AWS CLI runs as a
workflow's `run:` step would, `aws cloudformation deploy
--no-fail-on-empty-changeset`, pointed at the emulator with
AWS_ENDPOINT_URL. Both get the same fake credentials, region and an empty
HOME, so no local AWS configuration leaks in.

Every measurement is taken BENCH_RUNS times (default 3) and the median is
reported:

(a) single stack: examples/network created in an empty account, then
    deployed again unchanged (a no-op update); wall time of each deploy,
    from spawning the process to its exit.
(b) the four-stack example chain network -> alb -> ecs -> apigw, from an
    empty account with the service's image already in ECR: ecs-stack-deploy
    with parameters-from-stacks (as scripts/demo does); the CLI with the
    parameters glued from `aws cloudformation describe-stacks --query`
    output, one call per upstream stack, as workflows glue them today.
    Wall time from the first process spawned to the last exit, glue calls
    included; all four stacks must end CREATE_COMPLETE on both sides.
(c) process start to first API request: from just before the create deploy
    of (a) is spawned to the first request in the emulator's request log
    (each entry carries its arrival time): start-up cost, interpreter
    imports included (and, for both tools alike, the millisecond or so GNU
    time, see (d), takes to start it).
(d) peak RSS of the deploying process, as GNU time (/usr/bin/time -f %M)
    reports it (the rusage of our own child would be floored at this
    Python process's RSS); for the CLI that is the Python process running
    `aws`; for the chain, the largest of its processes.
(e) API calls per deploy, from the emulator's request log (reset before
    each deploy), in total and by action.
(f) footprint: the action's container image as podman has it (--image;
    bench/run builds it from --binary, this script does not), else the static
    binary; against the AWS CLI's installed packages (what the awscli
    distribution and its requirements installed in bench/.venv's
    site-packages: not pip, setuptools or sceptre's own; the Python
    interpreter it also needs is not counted).

System: the example system of four stacks (examples/system.yml, the
chain's templates), from an empty account with the image in ECR, three
ways with the same parameters: one ecs-stack-deploy run with the `stacks`
input (the manifest, its stacks renamed and EnvironmentName the chain's);
`sceptre launch -y system` of a sceptre project generated from that
manifest (the same templates and parameters, !stack_output for each
reference), pointed at the emulator with AWS_ENDPOINT_URL; and the chain
of (b), ecs-stack-deploy's four processes (the runs of (b) when it is
measured too). Wall time, API calls, peak RSS of the largest process;
all four stacks must end CREATE_COMPLETE every way.

Waiting cadence: a one-resource stack the emulator holds CREATE_IN_PROGRESS
for a known time (Metadata.Emulator.HoldSeconds = 5, 20, 75 and 290 s:
inside our fast first minute, past it, and long past it). The delay is
measured from the stack's terminal event (its CREATE_COMPLETE timestamp in
DescribeStackEvents) to the tool's first DescribeStacks after it (the CLI
judges the status by it; ours notices on DescribeStackEvents and reads the
stack's outputs at once) and to the process exit; on the 290 s hold
also the tool's calls per minute from 60 s after its ExecuteChangeSet to
that event. The 290 s hold's runs go at once, alongside the first run of
the others.

Cancellation: SIGTERM (how the runner cancels a step, and a container
action) 2 s into the wait on a stack the emulator holds CREATE_IN_PROGRESS
for 30 s; the time from the signal to the process exit, the exit code,
whether the tool said after the signal what the stack is left doing, and
which step outputs it wrote.

Time to verdict for a doomed rollout: a Fargate service of 2 tasks
without the deployment circuit breaker (so ECS restarts failing tasks
forever), on the emulator's ECS clock (0.2 s a task state transition,
CloudFormation giving up on an unstable service after 120 s where AWS
waits about 3 hours). Direct rollouts of a revision whose essential
container exits 1, after a step of running or at once: ecs-stack-deploy
(task-definition, container-name, image, service, cluster) with
on-rollout-failure stop and with the default rollback, against
`aws ecs register-task-definition` + `update-service` + `wait
services-stable` (polls every 15 s, gives up after 40). And a stack update
to an image never pushed: ecs-stack-deploy's default (CancelUpdateStack,
then UPDATE_ROLLBACK_COMPLETE) against `aws cloudformation deploy`. Wall
time from spawn to exit, and the verdict's delay after the stoppedAt of the
3rd failed task of the new revision (failure-threshold's default), in
seconds and emulator steps. Ours' runs go one at a time; the CLI's, which
sleep for minutes, at once, its direct rollouts once each by default
(--verdict-cli-runs).

Rollout: the same service rolled out directly to a good revision of the
commit's image: ours as the verdict rows run it against
register-task-definition + update-service + wait services-stable; wall
time, API calls, peak RSS, and the calls per poll tick after the
UpdateService (the request log's calls grouped by gaps of more than
0.1 s). And the verdict rows' doomed direct rollouts' API calls and peak
RSS (with --only rollout, their runs made without the stack update).

Verify before deploy: the same direct rollout, to the same service, of a
revision the deploy cannot survive: one Fargate cannot start a task of (a
secret from an SSM parameter that does not exist; an execution role
trusted by lambda, not ecs-tasks; one without ECR pull; an awslogs log
group that does not exist), one ECS refuses (a task size Fargate does not
have: at registration; a container that no longer maps the port the
service's target group sends to: at UpdateService), and a good revision to
a service whose target group is in another VPC than its subnets (ELB never
registers its tasks). Spawn to
exit: ours with verify on (the default; it must exit 2 having registered
and updated nothing) and with verify: false (it must exit 1: the rollout
judged doomed, or the registration or update refused; a run still waiting
after 60 s is stopped and reported as no verdict), both with on-rollout-failure
stop, BENCH_RUNS each, one at a time; the CLI's register-task-definition +
update-service + wait services-stable once per case by default
(--verify-cli-runs), at once, each on its own emulator.

Each run of each tool gets a fresh emulator, so every run starts from the
same empty account and the two tools never share a request log or a
backend. (a) and (b) run one process at a time, alternating which tool
goes first; the cadence deploys of one run all go at once, each on its own
emulator, because their time is spent sleeping on a schedule and running
them one after another would take minutes per run.

Results: a table on stdout, target/bench/results.md (Markdown) and
target/bench/results.json (every run's raw numbers); logs of every process
in target/bench/.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import boto3
import botocore.exceptions
import yaml

REPO = Path(__file__).resolve().parent.parent
# The checkout whose action.yml, examples/ and emulator/ are used: this one,
# or with --source another (a clean checkout of the commit whose binary
# ESD_BIN names, while this tree has uncommitted work). The emulator runs
# under this checkout's .venv either way.
SOURCE = REPO
ACCOUNT = "123456789012"
REGION = "us-east-1"
# The commit the workflow runs for: GITHUB_SHA, and the image tag the build
# job pushed (ecs-stack-deploy derives the tag from the push event).
COMMIT = "5f1e8a3c9b7d4e2f6a0c8b1d3e5f7a9c2b4d6e8f"
GITHUB_REPOSITORY = "example-org/ecs-stack-deploy-bench"
IMAGE_REPOSITORY_NAME = "demo/web"
IMAGE_REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{IMAGE_REPOSITORY_NAME}"
IMAGE_URI = f"{IMAGE_REPOSITORY}:{COMMIT}"
# What scripts/build-image tags by default.
CONTAINER_IMAGE = "localhost/ecs-stack-deploy:test"

NETWORK_STACK = "bench-network"
NETWORK_TEMPLATE = "examples/network/template.yml"
# As scripts/demo deploys the network stack.
NETWORK_PARAMETERS = {"EnvironmentName": "demo", "VpcCidr": "10.20.0.0/16"}

# Hold times for the cadence measurement: early in our fast first minute
# (polls still growing from 250 ms), well inside it (1 s polls), after it
# (polls growing towards 5 s), and a long wait (5 minutes: the calls per
# minute once the polls have grown). The CLI's stack waiter polls every 30 s.
CADENCE_HOLDS = (5.0, 20.0, 75.0, 290.0)
CADENCE_STACK = "bench-cadence"
# The calls per minute of waiting are counted from this long after the
# ExecuteChangeSet, on holds whose wait goes on at least as long again.
CADENCE_FIRST_MINUTE = 60.0
# Holds at least this long run all their runs at once, alongside the first
# run of the shorter ones: their length is added to the bench once, not
# once per run.
CADENCE_LONG_HOLD = 120.0

OURS = "ecs-stack-deploy"
CLI = "aws cli"
TOOLS = (OURS, CLI)


class BenchError(Exception):
    """A step of the bench failed; the message says which and shows its log."""


def say(message: str) -> None:
    # One write per line: threads of the cadence and verdict runs say things at once.
    print(f"bench: {message}\n", end="", flush=True)


# --------------------------------------------------------------- emulator ---


class Emulator:
    """One emulator process (emulator/launcher.py) on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            # stdin is a pipe we hold: the emulator exits when it closes, so
            # not even a killed bench leaves one running.
            self.process = subprocess.Popen(
                [str(REPO / ".venv/bin/python"), str(SOURCE / "emulator/launcher.py"),
                 "--host", "127.0.0.1", "--port", "0"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=SOURCE,
            )
        try:
            self.endpoint = self._read_ready_line(timeout=120)
        except BaseException:
            self.stop()
            raise

    def _read_ready_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().decode(errors="replace").strip() if ready else ""
        match = re.fullmatch(r"EMULATOR_READY (http://127\.0\.0\.1:\d+)", line)
        if not match:
            raise BenchError(
                f"the emulator did not report EMULATOR_READY within {timeout:.0f}s"
                f" (first line: {line!r}); its log:\n{log_excerpt(self.log_path)}"
            )
        return match.group(1)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(self.endpoint + path, method=method,
                                         data=json.dumps(body or {}).encode() if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def ecs_speed(self, **settings: float) -> dict[str, Any]:
        """Sets the ECS clock (stepSeconds, cfnTimeoutSeconds) and returns
        what the emulator now uses; applies to transitions scheduled later."""
        return self._control("POST", "/_emulator/ecs-speed", settings)

    def requests(self) -> list[dict[str, Any]]:
        """The request log: {"service", "action", "time"} in arrival order."""
        return self._control("GET", "/_emulator/requests")

    def reset_requests(self) -> None:
        self._control("POST", "/_emulator/requests/reset")

    def client(self, service: str) -> Any:
        # A session per client: boto3's default session is not safe to share
        # between the threads of the cadence measurement.
        return boto3.session.Session().client(
            service, region_name=REGION, endpoint_url=self.endpoint,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def stack_status(self, stack: str) -> str:
        return self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]

    def stack_status_if_any(self, stack: str) -> str | None:
        """The stack's status, or None while it does not exist yet."""
        try:
            return self.stack_status(stack)
        except botocore.exceptions.ClientError:
            return None

    def stack_parameters(self, stack: str) -> dict[str, str]:
        described = self.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}

    def push_image(self, commits: tuple[str, ...] = (COMMIT,)) -> None:
        """What the build job does before the deploy: the commit's image in
        ECR, in a repository whose tags cannot be overwritten. The emulator
        needs only the manifest. Also the execution role Fargate pulls it
        with (trusted by ECS tasks, AWS's managed execution policy), as the
        account has it."""
        iam = self.client("iam")
        iam.create_role(RoleName=EXECUTION_ROLE_NAME, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}))
        iam.attach_role_policy(
            RoleName=EXECUTION_ROLE_NAME,
            PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
        ecr = self.client("ecr")
        ecr.create_repository(repositoryName=IMAGE_REPOSITORY_NAME, imageTagMutability="IMMUTABLE")

        def digest(what: str, commit: str) -> str:
            return "sha256:" + hashlib.sha256(f"{what} of {commit}".encode()).hexdigest()

        for commit in commits:
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": 1469, "digest": digest("config", commit)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            "size": 2811478, "digest": digest("layer", commit)}],
            }
            ecr.put_image(repositoryName=IMAGE_REPOSITORY_NAME, imageTag=commit,
                          imageManifest=json.dumps(manifest))


def log_excerpt(path: Path, lines: int = 200) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(cannot read {path}: {error})"
    shown = text[-lines:]
    cut = f"... ({len(text) - lines} earlier lines in {path})\n" if len(text) > lines else ""
    return cut + "\n".join(shown)


# -------------------------------------------------------------- processes ---


@dataclass
class ProcessRun:
    """One process of a tool: when it was spawned and exited (Unix seconds,
    the clock the emulator stamps requests with), how it ended, and its
    peak resident set size."""

    label: str
    spawned_at: float
    exited_at: float
    exit_code: int
    max_rss_kib: int
    log_path: Path
    stdout_path: Path | None = None
    stopped_by_bench: bool = False  # SIGTERMed at run_process's stop_after

    @property
    def wall(self) -> float:
        return self.exited_at - self.spawned_at

    def stdout(self) -> str:
        return (self.stdout_path or self.log_path).read_text(errors="replace")


def run_process(label: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path,
                gnu_time: str, stdout_path: Path | None = None, stop_after: float | None = None) -> ProcessRun:
    """Runs argv to completion under GNU time, which reports its peak RSS.
    stdout goes to stdout_path when given (for output another step parses),
    else with stderr to log_path. With stop_after, a process still running
    that many seconds after its spawn gets SIGTERM (as the runner cancels a
    step), and its run says so.

    Why not wait4's rusage of our own child: Linux carries the parent's
    high-water mark over to a forked child through exec, so every child of
    this Python process would report at least this process's RSS (tens of
    MiB). GNU time is a small C program; what it carries over is about 1 MiB.
    """
    rss_path = log_path.with_name(log_path.name + ".maxrss")
    timed = [gnu_time, "--format=%M", f"--output={rss_path}", "--", *argv]
    with contextlib.ExitStack() as files:
        log = files.enter_context(open(log_path, "wb"))
        out = files.enter_context(open(stdout_path, "wb")) if stdout_path else log
        spawned_at = time.time()
        process = subprocess.Popen(timed, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
        stopped = threading.Event()

        def stop() -> None:
            # The measured process is GNU time's child: signal it, not time.
            with contextlib.suppress(OSError, ValueError):
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
                for child in children:
                    os.kill(int(child), signal.SIGTERM)
                    stopped.set()

        # A blocking wait, not Popen.wait(timeout=...): that polls with
        # sleeps growing to 50 ms, which would round every exit up to them.
        watchdog = threading.Timer(stop_after, stop) if stop_after is not None else None
        if watchdog:
            watchdog.start()
        exit_code = process.wait()
        exited_at = time.time()
        if watchdog:
            watchdog.cancel()
    # KiB on the last line; a line before it tells a non-zero exit or a signal.
    max_rss_kib = int(rss_path.read_text().split()[-1])
    return ProcessRun(label, spawned_at, exited_at, exit_code, max_rss_kib, log_path, stdout_path,
                      stopped.is_set())


def require_success(run: ProcessRun) -> ProcessRun:
    if run.exit_code != 0:
        output = log_excerpt(run.log_path)
        if run.stdout_path:
            output += "\n--- stdout\n" + log_excerpt(run.stdout_path)
        raise BenchError(f"{run.label} exited {run.exit_code}; its log ({run.log_path}):\n{output}")
    return run


@dataclass
class Deploy:
    """A tool's deploy as measured: its process(es) and the API calls the
    emulator saw meanwhile."""

    processes: list[ProcessRun]
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return self.processes[-1].exited_at - self.processes[0].spawned_at

    @property
    def max_rss_kib(self) -> int:
        return max(p.max_rss_kib for p in self.processes)

    @property
    def first_request_after_spawn(self) -> float:
        if not self.requests:
            raise BenchError(f"{self.processes[0].label} made no API request")
        return self.requests[0]["time"] - self.processes[0].spawned_at

    def calls_by_action(self) -> Counter[str]:
        return Counter(f"{r['service']}:{r['action']}" for r in self.requests)


class Workspace:
    """The files both tools run in: the workspace (GITHUB_WORKSPACE and the
    working directory, holding a copy of examples/ and the cadence
    templates), an empty HOME, the push event, and a directory per run."""

    def __init__(self, out: Path, binary: Path, aws: Path, gnu_time: str) -> None:
        self.out = out
        self.binary = binary
        self.aws = aws
        self.gnu_time = gnu_time
        self.root = out / "workspace"
        self.home = out / "home"
        self.home.mkdir(parents=True)
        shutil.copytree(SOURCE / "examples", self.root / "examples")
        self.event_path = out / "event.json"
        self.event_path.write_text(json.dumps(push_event(), indent=2))
        with open(SOURCE / "action.yml") as f:
            self.declared_inputs: dict[str, Any] = yaml.safe_load(f)["inputs"]
        # Run ids and directory numbers are handed out to several threads
        # during the cadence measurement.
        self._lock = threading.Lock()
        self._run_id = 1000
        self._runs: Counter[str] = Counter()

    def run_dir(self, name: str) -> Path:
        """A fresh directory for one process's files: name-1, name-2, ..."""
        with self._lock:
            self._runs[name] += 1
            path = self.out / "runs" / f"{name}-{self._runs[name]}"
        path.mkdir(parents=True)
        return path

    def next_run_id(self) -> str:
        """GITHUB_RUN_ID: each deploy is a workflow run of its own."""
        with self._lock:
            self._run_id += 1
            return str(self._run_id)

    def aws_env(self, endpoint: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def inputs(self, given: dict[str, str]) -> dict[str, str]:
        """INPUT_<NAME> for every input action.yml declares, as the runner
        computes them for a container action: the step's value, else the
        default, else empty; hyphens kept."""
        unknown = set(given) - set(self.declared_inputs)
        if unknown:
            raise BenchError(f"inputs not declared in action.yml: {sorted(unknown)}")
        return {
            f"INPUT_{name.replace(' ', '_').upper()}": given.get(name, str((spec or {}).get("default", "")))
            for name, spec in self.declared_inputs.items()
        }

    def action_env(self, run_dir: Path, endpoint: str, job: str, given: dict[str, str]) -> tuple[dict[str, str], Path]:
        """The environment the runner gives the action's container, with
        fresh GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files in run_dir;
        returns it and the output file's path."""
        output_path = run_dir / "github_output"
        summary_path = run_dir / "step_summary"
        output_path.touch()
        summary_path.touch()
        env = {
            **self.aws_env(endpoint),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.root),
            "GITHUB_OUTPUT": str(output_path),
            "GITHUB_STEP_SUMMARY": str(summary_path),
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(self.event_path),
            "GITHUB_SHA": COMMIT,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_REF_TYPE": "branch",
            "GITHUB_REPOSITORY": GITHUB_REPOSITORY,
            "GITHUB_REPOSITORY_OWNER": GITHUB_REPOSITORY.split("/")[0],
            "GITHUB_ACTOR": "bench-user",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_WORKFLOW": "deploy",
            "GITHUB_JOB": job,
            "GITHUB_ACTION": f"deploy-{job}",
            "GITHUB_RUN_ID": self.next_run_id(),
            "GITHUB_RUN_NUMBER": "1",
            "GITHUB_RUN_ATTEMPT": "1",
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            **self.inputs(given),
        }
        return env, output_path

    def run_action(self, label: str, endpoint: str, job: str, given: dict[str, str]) -> tuple[ProcessRun, dict[str, str]]:
        """Runs ecs-stack-deploy once as the runner runs the action; returns
        the process and its step outputs. It must succeed."""
        run, outputs = self.run_action_any(label, endpoint, job, given)
        return require_success(run), outputs

    def run_action_any(self, label: str, endpoint: str, job: str, given: dict[str, str],
                       stop_after: float | None = None) -> tuple[ProcessRun, dict[str, str]]:
        """run_action, whatever the exit code (a step meant to fail);
        stop_after: see run_process."""
        run_dir = self.run_dir(label)
        env, output_path = self.action_env(run_dir, endpoint, job, given)
        run = run_process(f"{OURS} ({label})", [str(self.binary)], env,
                          self.root, run_dir / "log", self.gnu_time, stop_after=stop_after)
        return run, read_step_outputs(output_path)

    def run_cli(self, label: str, endpoint: str, args: list[str], capture: bool = False) -> ProcessRun:
        """Runs `aws ARGS` as a workflow's run: step would. It must succeed."""
        return require_success(self.run_cli_any(label, endpoint, args, capture))

    def run_cli_any(self, label: str, endpoint: str, args: list[str], capture: bool = False) -> ProcessRun:
        """run_cli, whatever the exit code (a step meant to fail)."""
        run_dir = self.run_dir(label)
        return run_process(
            f"aws {' '.join(args[:2])} ({label})", [str(self.aws), *args], self.aws_env(endpoint),
            self.root, run_dir / "log", self.gnu_time, run_dir / "stdout" if capture else None,
        )

    def cli_deploy(self, label: str, endpoint: str, stack: str, template: str,
                   parameters: dict[str, str]) -> ProcessRun:
        return self.run_cli(label, endpoint, cli_deploy_args(stack, template, parameters))

    def cli_stack_outputs(self, label: str, endpoint: str, stack: str) -> tuple[ProcessRun, dict[str, str]]:
        """One upstream stack's outputs, the way a workflow step reads them."""
        run = self.run_cli(label, endpoint, [
            "cloudformation", "describe-stacks", "--stack-name", stack,
            "--query", "Stacks[0].Outputs[].[OutputKey,OutputValue]", "--output", "text",
        ], capture=True)
        outputs = dict(line.split("\t", 1) for line in run.stdout().splitlines() if "\t" in line)
        return run, outputs


def cli_deploy_args(stack: str, template: str, parameters: dict[str, str]) -> list[str]:
    args = ["cloudformation", "deploy", "--stack-name", stack, "--template-file", template,
            "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset"]
    if parameters:
        args += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameters.items())]
    return args


def push_event() -> dict[str, Any]:
    """A push event as GitHub sends it, trimmed to the fields a reader uses."""
    owner = GITHUB_REPOSITORY.split("/")[0]
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": COMMIT,
        "head_commit": {"id": COMMIT, "message": "Deploy", "timestamp": "2026-11-24T12:00:00Z"},
        "repository": {"id": 1, "name": GITHUB_REPOSITORY.split("/")[1], "full_name": GITHUB_REPOSITORY,
                       "private": False, "owner": {"login": owner, "id": 2, "type": "Organization"},
                       "default_branch": "main"},
        "pusher": {"name": "bench-user"},
        "sender": {"login": "bench-user", "id": 3, "type": "User"},
    }


def read_step_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's `name<<DELIMITER` ... `DELIMITER` blocks (and plain
    name=value lines) as a dict."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        heredoc = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if heredoc:
            name, delimiter = heredoc.groups()
            value = []
            for continued in lines:
                if continued == delimiter:
                    break
                value.append(continued)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs


def with_requests(emulator: Emulator, deploy: Callable[[], list[ProcessRun]]) -> Deploy:
    """Runs deploy() with a fresh request log and keeps what it called."""
    emulator.reset_requests()
    processes = deploy()
    return Deploy(processes, emulator.requests())


def overrides(parameters: dict[str, str]) -> str:
    """The action's parameter-overrides syntax; a value holding a comma is
    quoted so it stays one value."""
    return ",".join(f'{k}="{v}"' if "," in v else f"{k}={v}" for k, v in parameters.items())


def expect_status(emulator: Emulator, stacks: list[str], tool: str, status: str = "CREATE_COMPLETE") -> None:
    for stack in stacks:
        found = emulator.stack_status(stack)
        if found != status:
            raise BenchError(f"{tool}: stack {stack} is {found}, expected {status}")


# ------------------------------------------------------- (a) single stack ---


def measure_single_stack(ws: Workspace, tool: str, run: int) -> dict[str, Deploy]:
    with Emulator(ws.out / f"emulator-single-{slug(tool)}-{run}.log") as emulator:
        deploys: dict[str, Deploy] = {}
        for step in ("create", "no-op"):
            emulator.reset_requests()
            if tool == OURS:
                process, outputs = ws.run_action(f"single-{step}", emulator.endpoint, "network", {
                    "name": NETWORK_STACK, "template": NETWORK_TEMPLATE,
                    "parameter-overrides": overrides(NETWORK_PARAMETERS),
                })
                changed = outputs.get("has-changes")
            else:
                process = ws.cli_deploy(f"cli-single-{step}", emulator.endpoint, NETWORK_STACK,
                                        NETWORK_TEMPLATE, NETWORK_PARAMETERS)
                changed = "false" if "No changes to deploy" in process.stdout() else "true"
            deploys[step] = Deploy([process], emulator.requests())
            if changed != ("true" if step == "create" else "false"):
                raise BenchError(f"{tool}: the {step} deploy of {NETWORK_STACK} reported changes={changed!r};"
                                 f" its log ({process.log_path}):\n{log_excerpt(process.log_path)}")
        expect_status(emulator, [NETWORK_STACK], tool)
    return deploys


# -------------------------------------------------------------- (b) chain ---

ALB_STACK, ECS_STACK, APIGW_STACK = "bench-alb", "bench-ecs", "bench-apigw"
CHAIN_STACKS = [NETWORK_STACK, ALB_STACK, ECS_STACK, APIGW_STACK]


def measure_chain(ws: Workspace, tool: str, run: int) -> Deploy:
    with Emulator(ws.out / f"emulator-chain-{slug(tool)}-{run}.log") as emulator:
        emulator.push_image()
        endpoint = emulator.endpoint
        env_only = {"EnvironmentName": "demo"}

        def ours() -> list[ProcessRun]:
            # scripts/demo's step 4, each stack reading its upstream stacks'
            # outputs itself; the image tag comes from the push event.
            steps = [
                ("network", {"name": NETWORK_STACK, "template": NETWORK_TEMPLATE,
                             "parameter-overrides": overrides(NETWORK_PARAMETERS)}),
                ("alb", {"name": ALB_STACK, "template": "examples/alb/template.yml",
                         "parameters-from-stacks": NETWORK_STACK,
                         "parameter-overrides": overrides(env_only)}),
                ("ecs", {"name": ECS_STACK, "template": "examples/ecs/template.yml",
                         "image-repository": IMAGE_REPOSITORY,
                         "parameters-from-stacks": f"{NETWORK_STACK},{ALB_STACK}",
                         "parameter-overrides": overrides(env_only)}),
                ("apigw", {"name": APIGW_STACK, "template": "examples/apigw/template.yml",
                           "parameters-from-stacks": ALB_STACK,
                           "parameter-overrides": overrides(env_only)}),
            ]
            return [ws.run_action(f"chain-{job}", endpoint, job, given)[0] for job, given in steps]

        def cli() -> list[ProcessRun]:
            # Each upstream stack's outputs read once and passed on by name,
            # as job outputs would carry them between steps.
            runs = [ws.cli_deploy("cli-chain-network", endpoint, NETWORK_STACK, NETWORK_TEMPLATE,
                                  NETWORK_PARAMETERS)]
            read, network = ws.cli_stack_outputs("cli-chain-network-outputs", endpoint, NETWORK_STACK)
            runs.append(read)
            runs.append(ws.cli_deploy("cli-chain-alb", endpoint, ALB_STACK, "examples/alb/template.yml", {
                **env_only, **pick(network, "VpcId", "PublicSubnets", "LoadBalancerSecurityGroupId")}))
            read, alb = ws.cli_stack_outputs("cli-chain-alb-outputs", endpoint, ALB_STACK)
            runs.append(read)
            runs.append(ws.cli_deploy("cli-chain-ecs", endpoint, ECS_STACK, "examples/ecs/template.yml", {
                **env_only, "ImageUri": IMAGE_URI, **pick(network, "PublicSubnets", "TaskSecurityGroupId"),
                **pick(alb, "TargetGroupArn")}))
            runs.append(ws.cli_deploy("cli-chain-apigw", endpoint, APIGW_STACK, "examples/apigw/template.yml", {
                **env_only, **pick(alb, "LoadBalancerDnsName")}))
            return runs

        chain = with_requests(emulator, ours if tool == OURS else cli)
        expect_status(emulator, CHAIN_STACKS, tool)
        expect_wired(emulator, tool, ECS_STACK, APIGW_STACK)
    return chain


def expect_wired(emulator: Emulator, tool: str, ecs_stack: str, apigw_stack: str) -> None:
    """The same deploy on every side: the service runs the commit's image
    behind the load balancer, and the API points at it."""
    ecs_parameters = emulator.stack_parameters(ecs_stack)
    if ecs_parameters.get("ImageUri") != IMAGE_URI or not ecs_parameters.get("TargetGroupArn"):
        raise BenchError(f"{tool}: the ecs stack's parameters are not the chain's: {ecs_parameters}")
    if not emulator.stack_parameters(apigw_stack).get("LoadBalancerDnsName"):
        raise BenchError(f"{tool}: the apigw stack has no LoadBalancerDnsName")


def pick(outputs: dict[str, str], *names: str) -> dict[str, str]:
    missing = [n for n in names if not outputs.get(n)]
    if missing:
        raise BenchError(f"upstream stack outputs lack {missing}: {outputs}")
    return {n: outputs[n] for n in names}


# ------------------------------------------------------------- system ---

# The three ways the system rows deploy the example system (examples/system.yml).
SCEPTRE = "sceptre"
SYSTEM_OURS = f"{OURS} (stacks)"
SYSTEM_SCEPTRE = "sceptre launch"
SYSTEM_CHAIN = "chain of 4 single deploys"
SYSTEM_WAYS = (SYSTEM_OURS, SYSTEM_SCEPTRE, SYSTEM_CHAIN)
# examples/system.yml as the bench deploys it, written beside it in the
# workspace (its template paths are relative to it).
SYSTEM_MANIFEST = "examples/bench-system.yml"
SCEPTRE_PROJECT_CODE = "bench-sceptre"
SCEPTRE_STACK_GROUP = "system"
MANIFEST_REFERENCE = re.compile(r"\{\{\s*stacks\.([\w-]+)\.outputs\.(\w+)\s*\}\}")


def system_manifest(ws: Workspace) -> dict[str, Any]:
    """examples/system.yml with its stacks named bench-system-KEY and the
    chain's EnvironmentName (demo), so the three ways deploy the same
    parameters; written to SYSTEM_MANIFEST in the workspace."""
    manifest = yaml.safe_load((SOURCE / "examples/system.yml").read_text())
    for key, stack in manifest["stacks"].items():
        stack["name"] = f"bench-system-{key}"
        stack["parameters"]["EnvironmentName"] = NETWORK_PARAMETERS["EnvironmentName"]
    stacks = manifest["stacks"]
    if list(stacks) != ["network", "alb", "ecs", "apigw"] or stacks["network"]["parameters"] != NETWORK_PARAMETERS \
            or stacks["ecs"].get("image") != IMAGE_REPOSITORY:
        raise BenchError(f"examples/system.yml is no longer the chain's four stacks with its parameters: {stacks}")
    (ws.root / SYSTEM_MANIFEST).write_text(yaml.safe_dump(manifest, sort_keys=False, width=1000))
    return manifest


def sceptre_stack(key: str) -> str:
    """The stack name sceptre gives config/system/KEY.yaml."""
    return f"{SCEPTRE_PROJECT_CODE}-{SCEPTRE_STACK_GROUP}-{key}"


def sceptre_project(ws: Workspace, manifest: dict[str, Any]) -> Path:
    """A sceptre project of the manifest's stacks, in the run's out
    directory: the same templates (as .yaml, the extension sceptre takes)
    and parameters, each reference to an upstream stack's output a
    !stack_output resolver (which makes the dependency too), the ecs stack's
    image its ImageUri parameter as ours fills it (the repository, tagged
    with the push event's commit). sceptre always passes CAPABILITY_IAM,
    the manifest's only `with:` input."""
    root = ws.out / "sceptre"
    (root / "config" / SCEPTRE_STACK_GROUP).mkdir(parents=True)
    (root / "templates").mkdir()
    (root / "config/config.yaml").write_text(f"project_code: {SCEPTRE_PROJECT_CODE}\nregion: {REGION}\n")
    for key, stack in manifest["stacks"].items():
        unknown = set(stack) - {"name", "template", "parameters", "image"}
        if unknown:
            raise BenchError(f"the manifest's stack {key} has keys the sceptre project does not translate: {unknown}")
        shutil.copy(ws.root / "examples" / stack["template"], root / "templates" / f"{key}.yaml")
        parameters = {**stack["parameters"], **({"ImageUri": f"{stack['image']}:{COMMIT}"} if "image" in stack else {})}
        lines = ["template:", f"  path: {key}.yaml", "parameters:"]
        for name, value in parameters.items():
            reference = MANIFEST_REFERENCE.fullmatch(str(value))
            lines.append(f"  {name}: !stack_output {SCEPTRE_STACK_GROUP}/{reference[1]}.yaml::{reference[2]}"
                         if reference else f"  {name}: {json.dumps(value)}")
        (root / "config" / SCEPTRE_STACK_GROUP / f"{key}.yaml").write_text("\n".join(lines) + "\n")
    return root


def measure_system(ws: Workspace, way: str, run: int, manifest: dict[str, Any], project: Path) -> Deploy:
    """The example system from an empty account, the image already in ECR:
    one ecs-stack-deploy run with the `stacks` input, or `sceptre launch -y
    system` (AWS_ENDPOINT_URL pointing it at the emulator), or the chain of
    four single deploys (measure_chain's ecs-stack-deploy side)."""
    if way == SYSTEM_CHAIN:
        return measure_chain(ws, OURS, run)
    name = "ours" if way == SYSTEM_OURS else "sceptre"
    with Emulator(ws.out / f"emulator-system-{name}-{run}.log") as emulator:
        emulator.push_image()
        if way == SYSTEM_OURS:
            stacks = {key: stack["name"] for key, stack in manifest["stacks"].items()}
            deploy = with_requests(emulator, lambda: [ws.run_action("system", emulator.endpoint, "system", {
                "stacks": SYSTEM_MANIFEST})[0]])
        else:
            stacks = {key: sceptre_stack(key) for key in manifest["stacks"]}
            sceptre = ws.aws.with_name("sceptre")
            run_dir = ws.run_dir("system-sceptre")
            deploy = with_requests(emulator, lambda: [require_success(run_process(
                f"sceptre launch (system-sceptre-{run})", [str(sceptre), "launch", "-y", SCEPTRE_STACK_GROUP],
                ws.aws_env(emulator.endpoint), project, run_dir / "log", ws.gnu_time))])
        expect_status(emulator, list(stacks.values()), way)
        expect_wired(emulator, way, stacks["ecs"], stacks["apigw"])
    return deploy


def system_table(system: dict[str, list[Deploy]]) -> str:
    """The system rows: the three ways side by side, with ratios to ours."""
    header = ["metric", *SYSTEM_WAYS, "sceptre ÷ ours", "chain ÷ ours"]
    rows = []
    for metric, unit, value in [("wall time", "s", lambda d: d.wall),
                                ("API calls", "calls", lambda d: len(d.requests)),
                                ("peak RSS (largest process)", "MiB", lambda d: d.max_rss_kib)]:
        medians = [median([value(d) for d in system[way]]) for way in SYSTEM_WAYS]
        rows.append([f"system of four stacks: {metric}", *(fmt(m, unit) for m in medians),
                     *(f"{m / medians[0]:.1f}×" for m in medians[1:])])
    return markdown_table(header, rows)


# ---------------------------------------------------- waiting cadence ---


@dataclass
class CadenceSample:
    hold: float
    noticed_after: float  # terminal event -> first DescribeStacks after it
    exited_after: float  # terminal event -> process exit
    deploy: Deploy
    # The tool's calls from CADENCE_FIRST_MINUTE after its ExecuteChangeSet
    # to the terminal event, per minute of that time; None when that time is
    # shorter than a minute.
    calls_per_minute: float | None = None


def cadence_template(ws: Workspace, hold: float) -> str:
    path = Path("cadence") / f"hold-{hold:g}s.yml"
    template = {
        "Description": f"bench: one resource the emulator holds CREATE_IN_PROGRESS for {hold:g}s",
        "Resources": {"Held": {
            "Type": "AWS::Logs::LogGroup",
            "Metadata": {"Emulator": {"HoldSeconds": hold}},
            "Properties": {"LogGroupName": "bench-cadence", "RetentionInDays": 1},
        }},
    }
    (ws.root / path).parent.mkdir(exist_ok=True)
    (ws.root / path).write_text(yaml.safe_dump(template, sort_keys=False))
    return str(path)


def measure_cadence_once(ws: Workspace, tool: str, hold: float, template: str, run: int) -> CadenceSample:
    with Emulator(ws.out / f"emulator-cadence-{slug(tool)}-{hold:g}s-{run}.log") as emulator:
        label = f"cadence-{hold:g}s"
        if tool == OURS:
            deploy = with_requests(emulator, lambda: [ws.run_action(label, emulator.endpoint, "cadence", {
                "name": CADENCE_STACK, "template": template})[0]])
        else:
            deploy = with_requests(emulator, lambda: [ws.cli_deploy(
                f"cli-{label}", emulator.endpoint, CADENCE_STACK, template, {})])
        expect_status(emulator, [CADENCE_STACK], tool)
        events = emulator.client("cloudformation").describe_stack_events(StackName=CADENCE_STACK)["StackEvents"]
    terminal = [e["Timestamp"].timestamp() for e in events
                if e["LogicalResourceId"] == CADENCE_STACK and e["ResourceStatus"] == "CREATE_COMPLETE"]
    if not terminal:
        raise BenchError(f"{tool}: no CREATE_COMPLETE event of the stack {CADENCE_STACK}")
    done = terminal[0]
    polls = [r["time"] for r in deploy.requests
             if r["service"] == "cloudformation" and r["action"] == "DescribeStacks" and r["time"] >= done]
    if not polls:
        raise BenchError(f"{tool}: no DescribeStacks after the stack completed")
    executed = request_times(deploy.requests, "cloudformation", "ExecuteChangeSet")
    if not executed:
        raise BenchError(f"{tool}: no ExecuteChangeSet in the request log")
    since = executed[0] + CADENCE_FIRST_MINUTE
    waited = sum(1 for r in deploy.requests if since <= r["time"] <= done)
    rate = waited / ((done - since) / 60) if done - since >= 60 else None
    return CadenceSample(hold, polls[0] - done, deploy.processes[-1].exited_at - done, deploy, rate)


def measure_cadence(ws: Workspace, holds: tuple[float, ...], runs: int) -> dict[str, dict[float, list[CadenceSample]]]:
    """Every held deploy, by tool and hold. The deploys of one run go at
    once, each on its own emulator; those of a hold of CADENCE_LONG_HOLD or
    more, all runs at once, alongside the first run of the others."""
    samples: dict[str, dict[float, list[CadenceSample]]] = {t: {h: [] for h in holds} for t in TOOLS}
    templates = {hold: cadence_template(ws, hold) for hold in holds}
    long_jobs = [(tool, hold, run) for hold in holds if hold >= CADENCE_LONG_HOLD
                 for run in range(1, runs + 1) for tool in TOOLS]
    short = [hold for hold in holds if hold < CADENCE_LONG_HOLD]

    def keep(job: tuple[str, float, int], sample: CadenceSample) -> None:
        tool, hold, run = job
        samples[tool][hold].append(sample)
        rate = "" if sample.calls_per_minute is None else f", {sample.calls_per_minute:.1f} calls/min after the first"
        say(f"cadence run {run}/{runs} {tool}, held {hold:g}s: noticed after {sample.noticed_after:.2f}s,"
            f" exited after {sample.exited_after:.2f}s{rate}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(long_jobs) + len(short) * len(TOOLS)) as pool:
        def submit(job: tuple[str, float, int]) -> concurrent.futures.Future[CadenceSample]:
            tool, hold, run = job
            return pool.submit(measure_cadence_once, ws, tool, hold, templates[hold], run)

        in_background = {job: submit(job) for job in long_jobs}
        for run in range(1, runs + 1):
            for job, future in {job: submit(job) for job in [(t, h, run) for h in short for t in TOOLS]}.items():
                keep(job, future.result())
        for job, future in in_background.items():
            keep(job, future.result())
    return samples


# ---------------------------------------------------------- cancellation ---

# Long enough that the stack is still CREATE_IN_PROGRESS when the signal
# comes and after the tool has exited.
CANCEL_HOLD = 30.0
CANCEL_STACK = "bench-cancel"
# How long both tools wait on the stack before the signal: well into their
# waiting loops, whatever their poll period.
CANCEL_AFTER = 2.0


@dataclass
class CancelSample:
    exited_after: float  # SIGTERM -> process exit
    exit_code: int  # negative: killed by the signal
    told_what_carries_on: bool  # said after the signal what the stack is left doing
    outputs: dict[str, str]  # non-empty step outputs written (the CLI has none)


def measure_cancel_once(ws: Workspace, tool: str, template: str, run: int) -> CancelSample:
    """SIGTERM (how the runner cancels a step or a container action) while
    the tool waits on a stack the emulator holds CREATE_IN_PROGRESS."""
    with Emulator(ws.out / f"emulator-cancel-{slug(tool)}-{run}.log") as emulator:
        run_dir = ws.run_dir(f"cancel-{slug(tool)}")
        output_path = None
        if tool == OURS:
            env, output_path = ws.action_env(run_dir, emulator.endpoint, "cancel",
                                             {"name": CANCEL_STACK, "template": template})
            argv = [str(ws.binary)]
        else:
            env, argv = ws.aws_env(emulator.endpoint), [str(ws.aws), *cli_deploy_args(CANCEL_STACK, template, {})]
        log_path = run_dir / "log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(argv, env=env, cwd=ws.root, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 60
                while emulator.stack_status_if_any(CANCEL_STACK) != "CREATE_IN_PROGRESS":
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise BenchError(f"{tool}: the stack never went CREATE_IN_PROGRESS; its log"
                                         f" ({log_path}):\n{log_excerpt(log_path)}")
                    time.sleep(0.05)
                time.sleep(CANCEL_AFTER)
                said_before = log_path.stat().st_size
                # A blocking wait: Popen.wait(timeout=...) polls with sleeps
                # growing to 50 ms, which would round every exit up to them.
                watchdog = threading.Timer(60, process.kill)
                watchdog.start()
                signalled = time.monotonic()
                process.send_signal(signal.SIGTERM)
                exit_code = process.wait()
                exited_after = time.monotonic() - signalled
                watchdog.cancel()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        said_after = log_path.read_bytes()[said_before:].decode(errors="replace")
        return CancelSample(
            exited_after, exit_code, "CREATE_IN_PROGRESS" in said_after,
            {k: v for k, v in read_step_outputs(output_path).items() if v} if output_path else {},
        )


# ------------------------------------------------------- time to verdict ---

# The emulator's ECS clock for these rows, set on every emulator (these are
# its defaults, written down so the step the results are counted in cannot
# drift): every task state transition takes one step; CloudFormation gives
# up on a service that does not stabilise after cfnTimeoutSeconds, standing
# for the ~3 hours AWS's CloudFormation waits.
VERDICT_STEP_SECONDS = 0.2
VERDICT_CFN_TIMEOUT_SECONDS = 120.0
# failure-threshold's default: ours judges the rollout on the 3rd task of it
# that stops for the same reason; the rows count from that task.
VERDICT_NTH_FAILURE = 3
VERDICT_CLUSTER = "bench-verdict"
EXECUTION_ROLE_NAME = "ecsTaskExecutionRole"
EXECUTION_ROLE_ARN = f"arn:aws:iam::123456789012:role/{EXECUTION_ROLE_NAME}"
VERDICT_SERVICE = "bench-web"
VERDICT_FAMILY = "bench-web"
VERDICT_DESIRED = 2
VERDICT_STACK = "bench-verdict"
# What the service ran before the doomed rollout (the previous commit's
# image, in ECR), and a commit whose image the build never pushed.
PREVIOUS_COMMIT = "2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a"
PREVIOUS_IMAGE_URI = f"{IMAGE_REPOSITORY}:{PREVIOUS_COMMIT}"
NEVER_PUSHED_IMAGE_URI = f"{IMAGE_REPOSITORY}:9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c"
# Direct rollouts of a revision whose essential container exits 1: after
# one emulator step of running (the emulator's default; the task counts as
# RUNNING meanwhile, so ECS drains the previous revision's tasks), and at
# once (never seen RUNNING: the previous revision keeps serving).
VERDICT_CASES: dict[str, dict[str, str]] = {
    "exits 1": {"emulator.exit-code": "1"},
    "exits 1 at start": {"emulator.exit-code": "1", "emulator.exit-after-seconds": "0"},
}
STACK_CASE = "stack update"
# ecs-stack-deploy's runs: (case, on-rollout-failure).
OUR_VERDICT_RUNS = [(case, mode) for case in VERDICT_CASES for mode in ("stop", "rollback")] + [
    (STACK_CASE, "rollback")]
# Stop codes of a task that failed (never of one the scheduler stopped).
FAILED_STOP_CODES = ("EssentialContainerExited", "TaskFailedToStart")


def verdict_slug(case: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")


@dataclass
class VerdictSample:
    """One doomed rollout as a tool lived it. Times are Unix seconds, the
    clock the emulator stamps requests and tasks with."""

    tool: str
    case: str
    mode: str  # ours: on-rollout-failure; the CLI: what it ran
    spawned_at: float
    exited_at: float
    exit_code: int
    # When the tool gave its verdict: ours with stop its exit, with rollback
    # its UpdateService back (direct) or CancelUpdateStack (stack); the CLI
    # its exit.
    verdict_at: float
    failures: list[dict[str, float]]  # the first failed tasks: stoppingAt, stoppedAt
    outcome: str
    wrong_verdict: bool = False  # the tool said the doomed rollout succeeded
    cfn_verdict_at: float | None = None  # the service's UPDATE_FAILED event (stack path)
    api_calls: int = 0  # the tool's own (not the bench's FailureWatch's while the CLI waits)
    max_rss_kib: int = 0  # its largest process's peak RSS

    @property
    def wall(self) -> float:
        return self.exited_at - self.spawned_at

    def nth_failure(self, key: str = "stoppedAt") -> float:
        return self.failures[VERDICT_NTH_FAILURE - 1][key]

    @property
    def verdict_after_nth(self) -> float:
        return self.verdict_at - self.nth_failure()


class FailureWatch:
    """Collects the failed tasks of the service (stop code
    EssentialContainerExited or TaskFailedToStart) with their stoppingAt
    and stoppedAt, from ListTasks + DescribeTasks. In a thread while a
    long-running tool waits (the emulator keeps only the last 50 stopped
    tasks of a service), or once after a short run."""

    def __init__(self, emulator: Emulator, cluster: str, service: str) -> None:
        self.ecs = emulator.client("ecs")
        self.cluster, self.service = cluster, service
        self.found: dict[str, dict[str, float]] = {}
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None

    def look(self) -> None:
        arns = self.ecs.list_tasks(cluster=self.cluster, serviceName=self.service,
                                   desiredStatus="STOPPED")["taskArns"]
        fresh = [a for a in arns if a not in self.found]
        for chunk in (fresh[i:i + 100] for i in range(0, len(fresh), 100)):
            for task in self.ecs.describe_tasks(cluster=self.cluster, tasks=chunk)["tasks"]:
                if task.get("stopCode") in FAILED_STOP_CODES and task.get("stoppedAt"):
                    self.found[task["taskArn"]] = {"stoppingAt": task["stoppingAt"].timestamp(),
                                                   "stoppedAt": task["stoppedAt"].timestamp()}

    def enough(self) -> bool:
        return len(self.found) >= VERDICT_NTH_FAILURE

    def collect(self, timeout: float = 15.0) -> list[dict[str, float]]:
        """Looks until the Nth failed task has stopped; the first failures
        in stoppedAt order."""
        deadline = time.monotonic() + timeout
        while True:
            self.look()
            if self.enough() or time.monotonic() > deadline:
                break
            time.sleep(VERDICT_STEP_SECONDS)
        return self.failures()

    def failures(self) -> list[dict[str, float]]:
        ordered = sorted(self.found.values(), key=lambda f: f["stoppedAt"])
        if len(ordered) < VERDICT_NTH_FAILURE:
            raise BenchError(f"only {len(ordered)} failed task(s) of service {self.service} seen,"
                             f" not {VERDICT_NTH_FAILURE}")
        return ordered[:VERDICT_NTH_FAILURE + 2]

    def start(self) -> None:
        def run() -> None:
            try:
                while not self._done.is_set() and not self.enough():
                    self.look()
                    self._done.wait(1.0)
            except Exception as error:  # noqa: BLE001 - reported by stop()
                self.error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> list[dict[str, float]]:
        self._done.set()
        if self._thread:
            self._thread.join()
        if self.error:
            raise BenchError(f"watching the failed tasks of {self.service}: {self.error}")
        return self.failures()


def verdict_emulator(ws: Workspace, name: str) -> Emulator:
    emulator = Emulator(ws.out / f"emulator-verdict-{name}.log")
    try:
        speed = emulator.ecs_speed(stepSeconds=VERDICT_STEP_SECONDS,
                                   cfnTimeoutSeconds=VERDICT_CFN_TIMEOUT_SECONDS)
        if (speed.get("stepSeconds"), speed.get("cfnTimeoutSeconds")) != (
                VERDICT_STEP_SECONDS, VERDICT_CFN_TIMEOUT_SECONDS):
            raise BenchError(f"the emulator did not take the ECS speed: {speed}")
        emulator.push_image((PREVIOUS_COMMIT, COMMIT))
    except BaseException:
        emulator.stop()
        raise
    return emulator


def default_network(emulator: Emulator) -> tuple[str, str]:
    """A subnet of the default VPC and its default security group."""
    ec2 = emulator.client("ec2")
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]},
                                                  {"Name": "vpc-id", "Values": [subnet["VpcId"]]}])
    return subnet["SubnetId"], group["SecurityGroups"][0]["GroupId"]


def primary_deployment(emulator: Emulator) -> dict[str, Any]:
    service = emulator.client("ecs").describe_services(cluster=VERDICT_CLUSTER,
                                                       services=[VERDICT_SERVICE])["services"][0]
    return next(d for d in service["deployments"] if d["status"] == "PRIMARY")


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"set-up: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)


def task_definition_document(image: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "family": VERDICT_FAMILY,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": EXECUTION_ROLE_ARN,
        "containerDefinitions": [{
            "name": "app", "image": image, "essential": True,
            "portMappings": [{"containerPort": 8080}],
            **({"dockerLabels": labels} if labels else {}),
        }],
    }


def service_running(emulator: Emulator, load_balancers: list[dict[str, Any]] | None = None,
                    completes: bool = True) -> str:
    """A cluster and a Fargate service without the circuit breaker, in the
    default VPC, running the previous commit's image (its deployment
    completed, unless told it cannot: then until its tasks run); returns
    that revision's ARN. load_balancers: the service's, if any."""
    ecs = emulator.client("ecs")
    subnet, group = default_network(emulator)
    ecs.create_cluster(clusterName=VERDICT_CLUSTER)
    previous = ecs.register_task_definition(**task_definition_document(PREVIOUS_IMAGE_URI, {}))
    arn = previous["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=VERDICT_CLUSTER, serviceName=VERDICT_SERVICE, taskDefinition=arn,
        desiredCount=VERDICT_DESIRED, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": False, "rollback": False}},
        **({"loadBalancers": load_balancers} if load_balancers else {}),
    )
    if completes:
        wait_until("the first deployment's completion",
                   lambda: primary_deployment(emulator)["rolloutState"] == "COMPLETED")
    else:
        wait_until("the first deployment's tasks running",
                   lambda: primary_deployment(emulator)["runningCount"] == VERDICT_DESIRED)
    return arn


def verdict_files(ws: Workspace, case: str) -> tuple[str, str]:
    """The task definition file of the doomed revision: as the repository
    keeps it (ecs-stack-deploy puts the image in), and rendered with the
    image (what a hand-written script registers)."""
    return revision_files(ws, Path("verdict") / verdict_slug(case), VERDICT_CASES[case])


def revision_files(ws: Workspace, directory: Path, labels: dict[str, str]) -> tuple[str, str]:
    """The revision's task definition file in the workspace's directory, as
    the repository keeps it and rendered with the image (see verdict_files);
    labels: its container's dockerLabels, the emulator's instructions."""
    (ws.root / directory).mkdir(parents=True, exist_ok=True)
    ours, cli = directory / "task-definition.json", directory / "rendered.json"
    (ws.root / ours).write_text(json.dumps(task_definition_document(PREVIOUS_IMAGE_URI, labels), indent=2))
    (ws.root / cli).write_text(json.dumps(task_definition_document(IMAGE_URI, labels), indent=2))
    return str(ours), str(cli)


def tool_calls(tool: str, requests: list[dict[str, Any]]) -> int:
    """API calls the tool made: while the CLI waits, the bench's FailureWatch
    calls ListTasks and DescribeTasks too (the CLI calls neither)."""
    watched = ("ListTasks", "DescribeTasks")
    return sum(1 for r in requests if tool == OURS or not (r["service"] == "ecs" and r["action"] in watched))


def request_times(requests: list[dict[str, Any]], service: str, action: str) -> list[float]:
    return [r["time"] for r in requests if r["service"] == service and r["action"] == action]


def measure_direct_verdict(ws: Workspace, tool: str, case: str, mode: str, run: int) -> VerdictSample:
    """A direct rollout of the doomed revision to a healthy service: ours
    with on-rollout-failure `mode`; the CLI as a hand-written step does it,
    register-task-definition, update-service, wait services-stable."""
    ours_file, cli_file = verdict_files(ws, case)
    label = f"verdict-{verdict_slug(case)}-{mode if tool == OURS else 'cli'}"
    with verdict_emulator(ws, f"{label}-{run}") as emulator:
        previous = service_running(emulator)
        watch = FailureWatch(emulator, VERDICT_CLUSTER, VERDICT_SERVICE)
        emulator.reset_requests()
        if tool == OURS:
            process, outputs = ws.run_action_any(label, emulator.endpoint, "verdict", {
                "task-definition": ours_file, "container-name": "app", "image": IMAGE_URI,
                "service": VERDICT_SERVICE, "cluster": VERDICT_CLUSTER, "on-rollout-failure": mode,
            })
            processes = [process]
        else:
            watch.start()
            try:
                processes = cli_direct_rollout(ws, emulator.endpoint, f"cli-{label}", cli_file)
            finally:
                failures = watch.stop()
            process = processes[-1]
        requests = emulator.requests()
        log = process.stdout()
        primary = primary_deployment(emulator)
        wrong = False
        if tool == OURS:
            failures = watch.collect()
            if process.exit_code != 1 or "is doomed" not in log:
                raise BenchError(f"{OURS} ({case}, {mode}) exited {process.exit_code} without a doomed"
                                 f" verdict; its log ({process.log_path}):\n{log_excerpt(process.log_path)}")
            if mode == "rollback":
                rollback = request_times(requests, "ecs", "UpdateService")
                if len(rollback) != 2:
                    raise BenchError(f"{OURS} ({case}, rollback) made {len(rollback)} UpdateService calls, not 2")
                verdict_at = rollback[1]
                if (primary["taskDefinition"], primary["rolloutState"], outputs.get("rollout-state")) != (
                        previous, "COMPLETED", "ROLLED_BACK"):
                    raise BenchError(f"{OURS} ({case}, rollback) left the service on"
                                     f" {primary['taskDefinition']} {primary['rolloutState']}, not {previous}"
                                     f" (its rollout-state output: {outputs.get('rollout-state')!r})")
                outcome = "rolled back, previous revision running"
            else:
                verdict_at = process.exited_at
                outcome = "doomed, exit 1"
        else:
            verdict_at = process.exited_at
            if process.exit_code == 0:
                wrong = True
                outcome = (f"exit 0: said stable (PRIMARY: the doomed revision, {primary['failedTasks']}"
                           f" failed tasks so far)")
            elif "Max attempts exceeded" in log:
                outcome = f"exit {process.exit_code}: Waiter ServicesStable failed: Max attempts exceeded"
            else:
                raise BenchError(f"aws ecs wait services-stable ({case}) exited {process.exit_code};"
                                 f" its log ({process.log_path}):\n{log_excerpt(process.log_path)}")
    return VerdictSample(tool, case, mode, processes[0].spawned_at, process.exited_at, process.exit_code,
                         verdict_at, failures, outcome, wrong, api_calls=tool_calls(tool, requests),
                         max_rss_kib=max(p.max_rss_kib for p in processes))


def cli_direct_rollout(ws: Workspace, endpoint: str, label: str, rendered: str) -> list[ProcessRun]:
    """What users script by hand for a direct rollout: `aws ecs
    register-task-definition` of the rendered file, `update-service` to
    that revision, `wait services-stable` (polls every 15 s, gives up after
    40). The first two must succeed; the waiter's process, however it ended,
    is the last."""
    registered = ws.run_cli(f"{label}-register", endpoint, [
        "ecs", "register-task-definition", "--cli-input-json", f"file://{rendered}",
        "--query", "taskDefinition.taskDefinitionArn", "--output", "text"], capture=True)
    updated = ws.run_cli(f"{label}-update", endpoint, [
        "ecs", "update-service", "--cluster", VERDICT_CLUSTER, "--service", VERDICT_SERVICE,
        "--task-definition", registered.stdout().strip()])
    waited = ws.run_cli_any(f"{label}-wait", endpoint, [
        "ecs", "wait", "services-stable", "--cluster", VERDICT_CLUSTER, "--services", VERDICT_SERVICE])
    return [registered, updated, waited]


def verdict_stack_template(ws: Workspace) -> str:
    """A stack holding an ECS service without the circuit breaker: on AWS,
    CloudFormation waits up to about three hours on such a service."""
    path = Path("verdict") / "service-stack.yml"
    template = {
        "Description": "bench: an ECS service without the deployment circuit breaker",
        "Parameters": {"ImageUri": {"Type": "String"}, "SubnetId": {"Type": "String"},
                       "SecurityGroupId": {"Type": "String"}},
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": VERDICT_CLUSTER}},
            "TaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
                "Family": VERDICT_FAMILY, "NetworkMode": "awsvpc", "RequiresCompatibilities": ["FARGATE"],
                "Cpu": "256", "Memory": "512", "ExecutionRoleArn": EXECUTION_ROLE_ARN,
                "ContainerDefinitions": [{"Name": "app", "Image": {"Ref": "ImageUri"}, "Essential": True,
                                          "PortMappings": [{"ContainerPort": 8080}]}],
            }},
            "Service": {"Type": "AWS::ECS::Service", "Properties": {
                "ServiceName": VERDICT_SERVICE, "Cluster": {"Ref": "Cluster"},
                "TaskDefinition": {"Ref": "TaskDefinition"}, "DesiredCount": VERDICT_DESIRED,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": {"AwsvpcConfiguration": {
                    "Subnets": [{"Ref": "SubnetId"}], "SecurityGroups": [{"Ref": "SecurityGroupId"}]}},
                "DeploymentConfiguration": {"DeploymentCircuitBreaker": {"Enable": False, "Rollback": False}},
            }},
        },
    }
    (ws.root / path).parent.mkdir(parents=True, exist_ok=True)
    (ws.root / path).write_text(yaml.safe_dump(template, sort_keys=False))
    return str(path)


def measure_stack_verdict(ws: Workspace, tool: str, template: str, run: int) -> VerdictSample:
    """The stack created good (set-up, not measured), then updated to an
    image the build never pushed: ours with the default on-rollout-failure
    (rollback: CancelUpdateStack, wait for UPDATE_ROLLBACK_COMPLETE) against
    `aws cloudformation deploy`, which waits for CloudFormation's verdict."""
    label = f"verdict-stack-{slug(tool)}"
    with verdict_emulator(ws, f"{label}-{run}") as emulator:
        subnet, group = default_network(emulator)
        cfn = emulator.client("cloudformation")
        good = {"ImageUri": IMAGE_URI, "SubnetId": subnet, "SecurityGroupId": group}
        cfn.create_stack(StackName=VERDICT_STACK, TemplateBody=(ws.root / template).read_text(),
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in good.items()])
        wait_until("the stack's creation", lambda: emulator.stack_status(VERDICT_STACK) == "CREATE_COMPLETE")
        doomed = {**good, "ImageUri": NEVER_PUSHED_IMAGE_URI}
        watch = FailureWatch(emulator, VERDICT_CLUSTER, VERDICT_SERVICE)
        emulator.reset_requests()
        if tool == OURS:
            # The image goes in as a plain parameter, so nothing checks it
            # in ECR first: the stack that hangs on its service in real life.
            process, outputs = ws.run_action_any(label, emulator.endpoint, "verdict", {
                "name": VERDICT_STACK, "template": template, "parameter-overrides": overrides(doomed)})
            requests = emulator.requests()  # before the bench's own calls below
            failures = watch.collect()
        else:
            watch.start()
            try:
                process = ws.run_cli_any(f"cli-{label}", emulator.endpoint,
                                         cli_deploy_args(VERDICT_STACK, template, doomed))
            finally:
                failures = watch.stop()
            requests = emulator.requests()
        status = emulator.stack_status(VERDICT_STACK)
        events = cfn.describe_stack_events(StackName=VERDICT_STACK)["StackEvents"]
    if process.exit_code == 0 or status != "UPDATE_ROLLBACK_COMPLETE":
        raise BenchError(f"{tool} (doomed stack update) exited {process.exit_code} leaving the stack {status};"
                         f" its log ({process.log_path}):\n{log_excerpt(process.log_path)}")
    log = process.stdout()
    if tool == OURS:
        cancels = request_times(requests, "cloudformation", "CancelUpdateStack")
        if len(cancels) != 1 or "the rollout is doomed" not in log or (
                outputs.get("stack-status") != "UPDATE_ROLLBACK_COMPLETE"):
            raise BenchError(f"{OURS} (doomed stack update): {len(cancels)} CancelUpdateStack call(s), stack-status"
                             f" output {outputs.get('stack-status')!r}, no doomed verdict? its log"
                             f" ({process.log_path}):\n{log_excerpt(process.log_path)}")
        verdict_at = cancels[0]
    else:
        verdict_at = process.exited_at
    service_failed = [e["Timestamp"].timestamp() for e in events
                      if e["LogicalResourceId"] == "Service" and e["ResourceStatus"] == "UPDATE_FAILED"]
    return VerdictSample(tool, STACK_CASE, "rollback" if tool == OURS else "deploy", process.spawned_at,
                         process.exited_at, process.exit_code, verdict_at, failures,
                         f"exit {process.exit_code}, {status}", False,
                         min(service_failed) if service_failed else None, tool_calls(tool, requests),
                         process.max_rss_kib)


def measure_verdicts(ws: Workspace, runs: int, cli_direct_runs: int,
                     stack: bool = True) -> dict[str, list[VerdictSample]]:
    """Every doomed rollout (without stack, only the direct ones); keys
    `tool|case|mode`. Ours one at a time (the sub-second numbers); then the
    CLI's at once, each on its own emulator, since they spend minutes asleep
    between polls."""
    samples: dict[str, list[VerdictSample]] = {}

    def keep(sample: VerdictSample, run: int, of: int) -> None:
        samples.setdefault(f"{sample.tool}|{sample.case}|{sample.mode}", []).append(sample)
        say(f"verdict run {run}/{of} {sample.tool}, {sample.case}, {sample.mode}: exited after"
            f" {sample.wall:.2f}s, verdict {sample.verdict_after_nth:+.2f}s after the"
            f" {ordinal(VERDICT_NTH_FAILURE)} failed task stopped; {sample.outcome}")

    stack_template = verdict_stack_template(ws)
    for run in range(1, runs + 1):
        for case, mode in OUR_VERDICT_RUNS if stack else OUR_VERDICT_RUNS[:-1]:
            keep(measure_stack_verdict(ws, OURS, stack_template, run) if case == STACK_CASE
                 else measure_direct_verdict(ws, OURS, case, mode, run), run, runs)

    def cli_direct(case: str) -> None:
        for run in range(1, cli_direct_runs + 1):
            keep(measure_direct_verdict(ws, CLI, case, "update-service + wait services-stable", run),
                 run, cli_direct_runs)

    def cli_stack() -> None:
        for run in range(1, runs + 1):
            keep(measure_stack_verdict(ws, CLI, stack_template, run), run, runs)

    say("verdict: the AWS CLI's runs, at once (its waiters take minutes: services-stable up to 40 x 15 s"
        + (f", the stack until CloudFormation gives up after {VERDICT_CFN_TIMEOUT_SECONDS:g}s)" if stack else ")"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(VERDICT_CASES) + 1) as pool:
        futures = [pool.submit(cli_direct, case) for case in VERDICT_CASES] + ([pool.submit(cli_stack)] if stack else [])
        for future in futures:
            future.result()
    return samples


def ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


# --------------------------------------------------------------- rollout ---

# Calls of ours less than this apart belong to one poll tick: its shortest
# pause between polls is 0.25 s, and a call to the emulator takes a few ms.
TICK_GAP = 0.1


@dataclass
class RolloutSample:
    """A healthy direct rollout as a tool lived it."""

    deploy: Deploy
    ticks: list[int]  # the calls of each poll tick after the UpdateService, in order
    describe_services: int  # DescribeServices calls after the UpdateService

    @property
    def calls_per_tick(self) -> float:
        return sum(self.ticks) / len(self.ticks) if self.ticks else 0.0


def poll_ticks(requests: list[dict[str, Any]]) -> tuple[list[int], int]:
    """The calls after the (first) UpdateService, grouped into poll ticks
    (a gap of more than TICK_GAP starts a tick), and how many of them were
    DescribeServices."""
    started = next((i for i, r in enumerate(requests) if (r["service"], r["action"]) == ("ecs", "UpdateService")),
                   None)
    if started is None:
        raise BenchError("no UpdateService in the request log")
    after = requests[started + 1:]
    ticks: list[int] = []
    for i, request in enumerate(after):
        if i == 0 or request["time"] - after[i - 1]["time"] > TICK_GAP:
            ticks.append(0)
        ticks[-1] += 1
    return ticks, sum(1 for r in after if r["action"] == "DescribeServices")


def measure_rollout(ws: Workspace, tool: str, run: int) -> RolloutSample:
    """The time-to-verdict rows' service (its deployment of the previous
    commit's image completed) rolled out to a good revision of the commit's
    image: ours as those rows run it (default on-rollout-failure); the CLI's
    register-task-definition, update-service, wait services-stable. Both
    must succeed with the new revision PRIMARY and COMPLETED."""
    ours_file, cli_file = revision_files(ws, Path("rollout"), {})
    label = f"rollout-{slug(tool)}"
    with verdict_emulator(ws, f"{label}-{run}") as emulator:
        previous = service_running(emulator)
        emulator.reset_requests()
        if tool == OURS:
            process, outputs = ws.run_action(label, emulator.endpoint, "rollout", {
                "task-definition": ours_file, "container-name": "app", "image": IMAGE_URI,
                "service": VERDICT_SERVICE, "cluster": VERDICT_CLUSTER})
            processes = [process]
            if outputs.get("rollout-state") != "COMPLETED":
                raise BenchError(f"{OURS} (healthy rollout): rollout-state output {outputs.get('rollout-state')!r}")
        else:
            processes = [*cli_direct_rollout(ws, emulator.endpoint, f"cli-{label}", cli_file)]
            require_success(processes[-1])
        deploy = Deploy(processes, emulator.requests())
        primary = primary_deployment(emulator)
    if primary["taskDefinition"] == previous or primary["rolloutState"] != "COMPLETED":
        raise BenchError(f"{tool} (healthy rollout) left the service on {primary['taskDefinition']}"
                         f" {primary['rolloutState']}")
    return RolloutSample(deploy, *poll_ticks(deploy.requests))


def rollout_rows(rollouts: dict[str, list[RolloutSample]], verdicts: dict[str, list[VerdictSample]],
                 with_walls: bool) -> tuple[list[Row], list[str]]:
    """The rollout group's rows: the healthy rollout's, and the doomed direct
    rollouts' API calls and peak RSS (with_walls: their wall times too,
    when the verdict rows, which have them, are not printed)."""
    rows = [
        Row("healthy rollout: spawn to exit", *(median([s.deploy.wall for s in rollouts[t]]) for t in TOOLS), "s"),
        Row("healthy rollout: API calls", *(median([len(s.deploy.requests) for s in rollouts[t]]) for t in TOOLS),
            "calls"),
        Row("healthy rollout: peak RSS (largest process)",
            *(median([s.deploy.max_rss_kib for s in rollouts[t]]) for t in TOOLS), "MiB"),
    ]
    per_tick = {t: median([s.calls_per_tick for s in rollouts[t]]) for t in TOOLS}
    most = {t: max(max(s.ticks, default=0) for s in rollouts[t]) for t in TOOLS}
    rows.append(Row("healthy rollout: API calls per poll tick, mean (most in one)", per_tick[OURS], per_tick[CLI],
                    "per tick", ours_text=f"{fmt(per_tick[OURS], 'per tick')} ({most[OURS]})",
                    cli_suffix=f" ({most[CLI]})", ratio_text="—"))
    ticks = {t: [len(s.ticks) for s in rollouts[t]] for t in TOOLS}
    described = {t: [s.describe_services for s in rollouts[t]] for t in TOOLS}
    notes = [
        f"Healthy rollout: the time-to-verdict rows' service ({VERDICT_DESIRED} Fargate tasks, ECS step"
        f" {VERDICT_STEP_SECONDS:g} s) rolled to a good revision of the commit's image, spawn of the first process"
        f" to exit of the last. Poll ticks: the calls after the UpdateService, a gap of more than {TICK_GAP:g} s"
        f" starting a tick. Ticks per run: {OURS} {ticks[OURS]}, {CLI} {ticks[CLI]}; DescribeServices calls"
        f" after the UpdateService: {OURS} {described[OURS]}, {CLI} {described[CLI]}; {OURS}'s calls per tick,"
        f" run by run: {[s.ticks for s in rollouts[OURS]]}.",
    ]
    for case in VERDICT_CASES:
        stop, rollback = verdicts.get(f"{OURS}|{case}|stop", []), verdicts.get(f"{OURS}|{case}|rollback", [])
        cli = verdicts.get(f"{CLI}|{case}|{CLI_DIRECT_MODE}", [])
        if not (stop and rollback and cli):
            continue
        for mode, ours in (("stop", stop), ("rollback", rollback)):
            if with_walls:
                rows.append(Row(f"doomed rollout ({case}): spawn to exit, ours `{mode}`",
                                median([s.wall for s in ours]), median([s.wall for s in cli]), "s"))
            rows.append(Row(f"doomed rollout ({case}): API calls, ours `{mode}`",
                            median([s.api_calls for s in ours]), median([s.api_calls for s in cli]), "calls"))
            rows.append(Row(f"doomed rollout ({case}): peak RSS (largest process), ours `{mode}`",
                            median([s.max_rss_kib for s in ours]), median([s.max_rss_kib for s in cli]), "MiB"))
        notes.append(f"Doomed rollout ({case}): the time-to-verdict rows' runs; how the CLI's waiter ended: "
                     + "; ".join(s.outcome for s in cli) + ".")
    return rows, notes


# ------------------------------------------------- verify before deploy ---

# Revisions a deploy cannot survive, though the image is fine and nothing
# about them is malformed: what the task refers to does not work, so Fargate
# never starts a task of them. Each is the verdict rows' revision (no
# emulator labels) with one change, rolled out to the verdict rows' service
# (service_running; its account has ecsTaskExecutionRole with AWS's managed
# execution policy, from Emulator.push_image).
VERIFY_PARAMETER_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/bench/missing"
VERIFY_LOG_GROUP = "/ecs/bench-missing"
LAMBDA_TRUSTED_ROLE = "benchLambdaTrustedRole"
NO_PULL_ROLE = "benchNoPullRole"
MANAGED_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def create_role(emulator: Emulator, name: str, trusted_service: str, *managed: str) -> None:
    iam = emulator.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": trusted_service}, "Action": "sts:AssumeRole"}]}))
    for policy in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)


def allow_missing_parameter(emulator: Emulator) -> None:
    """The execution role may read the parameter: only its absence is wrong."""
    emulator.client("iam").put_role_policy(
        RoleName=EXECUTION_ROLE_NAME, PolicyName="bench-read-db-parameter", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": VERIFY_PARAMETER_ARN}]}))


def with_missing_parameter(document: dict[str, Any]) -> None:
    document["containerDefinitions"][0]["secrets"] = [{"name": "DB", "valueFrom": VERIFY_PARAMETER_ARN}]


def with_execution_role(name: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["executionRoleArn"] = role_arn(name)
    return change


def with_missing_log_group(document: dict[str, Any]) -> None:
    document["containerDefinitions"][0]["logConfiguration"] = {"logDriver": "awslogs", "options": {
        "awslogs-group": VERIFY_LOG_GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": "bench"}}


def with_memory(memory: str) -> Callable[[dict[str, Any]], None]:
    """A task size Fargate does not have (cpu 256 takes 512 to 2048 MiB)."""
    def change(document: dict[str, Any]) -> None:
        document["memory"] = memory
    return change


def with_port(port: int) -> Callable[[dict[str, Any]], None]:
    """The container maps another port than the one its target group sends to."""
    def change(document: dict[str, Any]) -> None:
        document["containerDefinitions"][0]["portMappings"] = [{"containerPort": port}]
    return change


def unchanged(document: dict[str, Any]) -> None:
    """The revision is the good one (only the image is new): the service is what is wrong."""


# The target group the load-balanced cases' service sends to: container app,
# the port the revisions map (task_definition_document).
VERIFY_CONTAINER_PORT = 8080
VERIFY_OTHER_VPC_CIDR = "10.40.0.0/16"


def target_group_behind_alb(emulator: Emulator, vpc: str, subnets: list[str], name: str) -> str:
    """An ip target group in vpc, the default action of an internet-facing
    ALB's HTTP listener in those subnets; its ARN."""
    elb = emulator.client("elbv2")
    group = elb.create_target_group(Name=name, Protocol="HTTP", Port=VERIFY_CONTAINER_PORT, VpcId=vpc,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    alb = elb.create_load_balancer(Name=f"{name}-alb", Subnets=subnets, Type="application",
                                   Scheme="internet-facing")["LoadBalancers"][0]["LoadBalancerArn"]
    elb.create_listener(LoadBalancerArn=alb, Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    return group


def balanced(group: str) -> list[dict[str, Any]]:
    return [{"targetGroupArn": group, "containerName": "app", "containerPort": VERIFY_CONTAINER_PORT}]


def service_behind_load_balancer(emulator: Emulator) -> str:
    """service_running behind an ALB's target group in the default VPC (its
    tasks register and the first deployment completes)."""
    subnets = emulator.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    subnets.sort(key=lambda s: s["AvailabilityZone"])
    group = target_group_behind_alb(emulator, subnets[0]["VpcId"], [s["SubnetId"] for s in subnets[:2]],
                                    "bench-web")
    return service_running(emulator, balanced(group))


def service_with_target_group_elsewhere(emulator: Emulator) -> str:
    """service_running in the default VPC's subnet, but behind a target group
    (and ALB) of another VPC: ELB refuses to register its tasks, so its first
    deployment never completes; once its tasks run and ECS has said so."""
    ec2 = emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=VERIFY_OTHER_VPC_CIDR)["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24",
                                 AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
               for i, zone in enumerate("ab")]
    arn = service_running(emulator, balanced(target_group_behind_alb(emulator, vpc, subnets, "bench-web-other")),
                          completes=False)

    def refused() -> bool:
        events = emulator.client("ecs").describe_services(
            cluster=VERDICT_CLUSTER, services=[VERDICT_SERVICE])["services"][0]["events"]
        return sum("failed to register targets" in e["message"] for e in events) >= VERDICT_DESIRED

    wait_until("ECS's events about the first tasks' registration", refused)
    return arn


NO_LAUNCH = ("no task ever stopped: ECS failed every launch",
             "ECS never starts a task of it (each launch fails and is counted in failedTasks, {failed} in {after} s),"
             " so no task stops for a reason ours could count")
NEVER_REGISTERED = ("no task stopped: they run, never registered with the target group",
                    "ECS starts its tasks, ELB refuses to register them (ECS's service event says so for each), so"
                    " the deployment never completes, yet no task stops or is counted as failed ({failed} failed"
                    " tasks in {after} s) for ours to judge")


@dataclass(frozen=True)
class VerifyCase:
    change: Callable[[dict[str, Any]], None]  # of the task definition document
    setup: Callable[[Emulator], None] = lambda emulator: None  # of the account, after the service
    service: Callable[[Emulator], str] = service_running  # makes the service; the revision it runs
    # Why ours without verify has no verdict, if it has none: (the row's
    # note, the explanation; {failed} and {after} filled in).
    silent: tuple[str, str] = NO_LAUNCH


VERIFY_CASES: dict[str, VerifyCase] = {
    "missing SSM parameter": VerifyCase(with_missing_parameter, allow_missing_parameter),
    "execution role trusted by lambda, not ecs-tasks": VerifyCase(
        with_execution_role(LAMBDA_TRUSTED_ROLE),
        lambda emulator: create_role(emulator, LAMBDA_TRUSTED_ROLE, "lambda.amazonaws.com",
                                     MANAGED_EXECUTION_POLICY)),
    "execution role without ECR pull": VerifyCase(
        with_execution_role(NO_PULL_ROLE),
        lambda emulator: create_role(emulator, NO_PULL_ROLE, "ecs-tasks.amazonaws.com")),
    "missing log group": VerifyCase(with_missing_log_group),
    # ECS refuses the registration (ClientException).
    "invalid Fargate size (cpu 256, memory 4096)": VerifyCase(with_memory("4096")),
    # ECS refuses the UpdateService (InvalidParameterException): the service's
    # target group sends to app:8080, the revision maps 80.
    "container port the load balancer needs is not mapped": VerifyCase(
        with_port(80), service=service_behind_load_balancer),
    # The service's subnets are the default VPC's, its target group another
    # VPC's: every task of it runs but is never registered.
    "subnets in another VPC than the target group": VerifyCase(
        unchanged, service=service_with_target_group_elsewhere, silent=NEVER_REGISTERED),
}
# How ECS refuses a change before anything runs, in a tool's output.
REFUSALS = ("registration refused", "update refused")
REGISTRATION_REFUSED = r"ClientException|No Fargate configuration exists"
UPDATE_REFUSED = r"InvalidParameterException|did not have a container port|does not exist in the task definition"
# Ours' runs: `verify` on (the default) and off, both with on-rollout-failure
# stop, so the verify input is the only difference.
VERIFY_ON, VERIFY_OFF = "verify", "verify: false"
# Calls that change what runs: none may come before verify's NG.
VERIFY_CHANGES = ("RegisterTaskDefinition", "UpdateService")
# Ours without verify judges a rollout by its stopped tasks, which come
# within seconds here; a run still waiting this long after its spawn has
# no verdict coming (the rollout never stops a task), and the bench stops
# it (SIGTERM) rather than sit out wait-for-minutes (30 by default).
VERIFY_OFF_STOP_AFTER = 60.0


@dataclass
class VerifySample:
    """One rollout of a revision that cannot start, as a tool lived it."""

    tool: str
    case: str
    mode: str  # ours: VERIFY_ON or VERIFY_OFF; the CLI: CLI_DIRECT_MODE
    spawned_at: float
    exited_at: float
    exit_code: int
    how: str  # NG, judged doomed, registration refused, update refused, no verdict; the CLI: gave up, said stable
    detail: str  # the NG's check and problem, the stop reason judged on, the refusal, ...
    changed: list[str]  # the ECS calls of VERIFY_CHANGES the tool made
    failed_tasks: int  # the service's PRIMARY deployment's failedTasks when the tool exited
    stopped_tasks: int  # of the new revision, stopped when the tool exited (ECS keeps the last 50)
    service_event: str  # the service's newest event naming a failed launch or start: what ECS said
    wrong_verdict: bool = False  # the CLI's waiter said stable
    no_verdict: bool = False  # ours: still waiting at VERIFY_OFF_STOP_AFTER, stopped by the bench
    api_calls: int = 0

    @property
    def wall(self) -> float:
        return self.exited_at - self.spawned_at


def verify_files(ws: Workspace, case: str) -> tuple[str, str]:
    """The revision's task definition file, as the repository keeps it and
    rendered with the image (see verdict_files)."""
    directory = Path("verify") / verdict_slug(case)
    (ws.root / directory).mkdir(parents=True, exist_ok=True)
    paths = directory / "task-definition.json", directory / "rendered.json"
    for path, image in zip(paths, (PREVIOUS_IMAGE_URI, IMAGE_URI), strict=True):
        document = task_definition_document(image, {})
        VERIFY_CASES[case].change(document)
        (ws.root / path).write_text(json.dumps(document, indent=2))
    return str(paths[0]), str(paths[1])


def first_line(text: str, pattern: str) -> str | None:
    """The first line of text matching pattern (a regex), stripped, without
    a workflow command's prefix (::error::)."""
    found = re.search(rf"^.*(?:{pattern}).*$", text, re.MULTILINE)
    return re.sub(r"^::\w+[^:]*::", "", found.group(0).strip()) if found else None


def short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def measure_verify(ws: Workspace, tool: str, case: str, mode: str, run: int) -> VerifySample:
    """The revision rolled out directly to the healthy service: ours as the
    verdict rows run it, verify on or off; the CLI's register-task-definition,
    update-service, wait services-stable."""
    ours_file, cli_file = verify_files(ws, case)
    label = f"verify-{verdict_slug(case)}-{'on' if mode == VERIFY_ON else 'off' if tool == OURS else 'cli'}"
    with verdict_emulator(ws, f"{label}-{run}") as emulator:
        previous = VERIFY_CASES[case].service(emulator)
        VERIFY_CASES[case].setup(emulator)
        emulator.reset_requests()
        if tool == OURS:
            process, _ = ws.run_action_any(label, emulator.endpoint, "verify", {
                "task-definition": ours_file, "container-name": "app", "image": IMAGE_URI,
                "service": VERDICT_SERVICE, "cluster": VERDICT_CLUSTER, "on-rollout-failure": "stop",
                "verify": "true" if mode == VERIFY_ON else "false",
            }, stop_after=None if mode == VERIFY_ON else VERIFY_OFF_STOP_AFTER)
            processes = [process]
        else:
            registered = ws.run_cli_any(f"cli-{label}-register", emulator.endpoint, [
                "ecs", "register-task-definition", "--cli-input-json", f"file://{cli_file}",
                "--query", "taskDefinition.taskDefinitionArn", "--output", "text"], capture=True)
            processes = [registered]
            if registered.exit_code == 0:
                processes.append(ws.run_cli_any(f"cli-{label}-update", emulator.endpoint, [
                    "ecs", "update-service", "--cluster", VERDICT_CLUSTER, "--service", VERDICT_SERVICE,
                    "--task-definition", registered.stdout().strip()]))
            if processes[-1].exit_code == 0 and len(processes) == 2:
                processes.append(ws.run_cli_any(f"cli-{label}-wait", emulator.endpoint, [
                    "ecs", "wait", "services-stable", "--cluster", VERDICT_CLUSTER,
                    "--services", VERDICT_SERVICE]))
            process = processes[-1]
        requests = emulator.requests()
        primary = primary_deployment(emulator)
        ecs = emulator.client("ecs")
        events = ecs.describe_services(cluster=VERDICT_CLUSTER, services=[VERDICT_SERVICE])["services"][0]["events"]
        stopped = ecs.list_tasks(cluster=VERDICT_CLUSTER, serviceName=VERDICT_SERVICE,
                                 desiredStatus="STOPPED")["taskArns"]
        stopped_new = [t for chunk in (stopped[i:i + 100] for i in range(0, len(stopped), 100))
                       for t in ecs.describe_tasks(cluster=VERDICT_CLUSTER, tasks=chunk)["tasks"]
                       if t["taskDefinitionArn"] != previous]
    changed = [r["action"] for r in requests if r["service"] == "ecs" and r["action"] in VERIFY_CHANGES]
    # What ECS itself said about the failure: its newest event naming one.
    service_event = next((e["message"] for e in events if re.search(
        r"unable to place a task|failed to launch a task|failed to register targets", e["message"])), "")
    log = process.stdout() + ("" if process.stdout_path is None else process.log_path.read_text(errors="replace"))
    wrong = no_verdict = False

    def unexpected(why: str) -> BenchError:
        return BenchError(f"{process.label} ({case}, {mode}): {why}; exit {process.exit_code}, calls that change"
                          f" the service: {changed or 'none'}; its log ({process.log_path}):\n"
                          f"{log_excerpt(process.log_path)}")

    if tool == OURS and mode == VERIFY_ON:
        if process.exit_code != 2 or changed or primary["taskDefinition"] != previous:
            raise unexpected("verify on: expected exit 2 with nothing changed")
        ng = re.search(r"^\s*NG\s+(.*)$", log, re.MULTILINE)
        if ng is None:
            raise unexpected("verify on: no NG in its log")
        how, detail = "NG", ng.group(1).strip()
    elif tool == OURS and process.stopped_by_bench:
        no_verdict = True
        how, detail = "no verdict", (f"still waiting, stopped by the bench (SIGTERM) {VERIFY_OFF_STOP_AFTER:g} s"
                                     f" after its spawn; it had printed ECS's service event: {service_event}")
    elif tool == OURS:
        if process.exit_code != 1:
            raise unexpected("verify: false: expected exit 1")
        doomed = re.search(r"is doomed: .*? stopped for the same reason: (.*?) \(tasks ", log)
        refused_update = first_line(log, UPDATE_REFUSED)
        if "UpdateService" not in changed:
            how, detail = "registration refused", first_line(log, REGISTRATION_REFUSED) or "(no message found)"
        elif refused_update and primary["taskDefinition"] == previous:
            how, detail = "update refused", refused_update
        elif doomed:
            how, detail = "judged doomed", doomed.group(1)
        else:
            raise unexpected("verify: false: neither refused (registration, update) nor judged doomed")
    elif processes[0].exit_code != 0:
        how, detail = "registration refused", first_line(log, REGISTRATION_REFUSED + "|error") or "(no message)"
    elif len(processes) == 2:
        if primary["taskDefinition"] != previous:
            raise unexpected("aws ecs update-service failed, yet the service runs the new revision")
        how, detail = "update refused", first_line(log, UPDATE_REFUSED + "|error") or "(no message)"
    elif process.exit_code == 0:
        wrong = True
        how, detail = "said stable", f"exit 0 with the new revision PRIMARY, {primary['failedTasks']} failed tasks"
    elif "Max attempts exceeded" in log:
        how, detail = "gave up", first_line(log, r"Max attempts exceeded") or ""
    else:
        raise unexpected("aws ecs wait services-stable ended neither stable nor giving up")
    return VerifySample(tool, case, mode, processes[0].spawned_at, process.exited_at, process.exit_code,
                        how, detail, changed, primary["failedTasks"], len(stopped_new), service_event, wrong,
                        no_verdict, tool_calls(OURS, requests))


def measure_verify_group(ws: Workspace, runs: int, cli_runs: int) -> dict[str, list[VerifySample]]:
    """Every case; keys `tool|case|mode`. Ours one at a time, verify on and
    off, BENCH_RUNS each; then the CLI's at once, each on its own emulator
    (its waiter sleeps for minutes)."""
    samples: dict[str, list[VerifySample]] = {}

    def keep(sample: VerifySample, run: int, of: int) -> None:
        samples.setdefault(f"{sample.tool}|{sample.case}|{sample.mode}", []).append(sample)
        say(f"verify run {run}/{of} {sample.tool}, {sample.case}, {sample.mode}: exit {sample.exit_code} after"
            f" {sample.wall:.2f}s, {sample.how}: {short(sample.detail, 200)}")

    # A case whose rollout ours did not judge once is not waited on again.
    no_verdict: set[str] = set()
    for run in range(1, runs + 1):
        for case in VERIFY_CASES:
            for mode in (VERIFY_ON, VERIFY_OFF):
                if mode == VERIFY_OFF and case in no_verdict:
                    continue
                sample = measure_verify(ws, OURS, case, mode, run)
                keep(sample, run, runs)
                if sample.no_verdict:
                    no_verdict.add(case)

    def cli(case: str) -> None:
        for run in range(1, cli_runs + 1):
            keep(measure_verify(ws, CLI, case, CLI_DIRECT_MODE, run), run, cli_runs)

    say(f"verify: the AWS CLI's runs, at once ({len(VERIFY_CASES)} emulators; a waiter that gives up takes"
        " 40 x 15 s; a refused registration or update ends at once)")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(VERIFY_CASES)) as pool:
        for future in [pool.submit(cli, case) for case in VERIFY_CASES]:
            future.result()
    return samples


# ------------------------------------------------------------- footprint ---


def container_image_size(image: str) -> tuple[int | None, str]:
    """The image's size as podman reports it, if podman and the image are there."""
    if shutil.which("podman") is None:
        return None, "podman is not installed"
    inspected = subprocess.run(
        [str(REPO / "scripts/podman"), "image", "inspect", "--format", "{{.Size}} {{.Created}}", image],
        capture_output=True, text=True,
    )
    if inspected.returncode != 0:
        return None, f"no image {image} (scripts/build-image builds it)"
    size, created = inspected.stdout.strip().split(" ", 1)
    return int(size), f"{image}, created {created[:19]}"


def cli_install_size(aws: Path) -> int:
    """Bytes of the AWS CLI's packages: the top-level entries of bench/.venv's
    site-packages that the awscli distribution and those it requires
    (recursively, extras left out) installed, by their RECORD files. The
    venv's pip and setuptools, and sceptre with what only it requires (the
    system rows' tool), are not the CLI's."""
    venv = aws.resolve().parent.parent
    total = 0
    for site in venv.glob("lib/python*/site-packages"):
        installed = {canonical_name(d.metadata["Name"]): d
                     for d in importlib.metadata.distributions(path=[str(site)])}
        wanted: set[str] = set()
        todo = ["awscli"]
        while todo:
            name = canonical_name(todo.pop())
            if name in wanted or name not in installed:
                continue
            wanted.add(name)
            todo += [re.match(r"[\w.-]+", r).group(0) for r in installed[name].requires or [] if "extra ==" not in r]
        tops = {Path(f).parts[0] for name in wanted for f in installed[name].files or []} - {"__pycache__", ".."}
        for top in tops:
            entry = site / top
            files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
            total += sum(p.stat().st_size for p in files)
    return total


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------- results ---


def slug(tool: str) -> str:
    return "ours" if tool == OURS else "cli"


def median(values: list[float]) -> float:
    return statistics.median(values)


def median_run(deploys: list[Deploy]) -> Deploy:
    """The run whose call count is the median, for the by-action breakdown."""
    ordered = sorted(deploys, key=lambda d: len(d.requests))
    return ordered[(len(ordered) - 1) // 2]


@dataclass
class Row:
    metric: str
    ours: float | None
    cli: float | None
    unit: str
    note: str = ""
    cli_suffix: str = ""  # after the CLI's value, e.g. that its verdict was wrong
    ratio_text: str | None = None  # instead of the ratio
    ours_text: str | None = None  # instead of ours' value, e.g. that it gave no verdict

    def cells(self, with_note: bool = False) -> list[str]:
        ratio = ""
        if self.ratio_text is not None:
            ratio = self.ratio_text
        elif self.ours and self.ours > 0 and self.cli is not None:
            ratio = f"{self.cli / self.ours:.1f}×"
        ours = self.ours_text if self.ours_text is not None else fmt(self.ours, self.unit)
        cells = [self.metric, ours, fmt(self.cli, self.unit) + self.cli_suffix, ratio]
        return [*cells, self.note] if with_note else cells


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s+steps":
        # Seconds, and the same in the emulator's ECS steps.
        steps = value / VERDICT_STEP_SECONDS
        return f"{fmt(value, 's')} ({steps:.1f} steps)" if abs(steps) < 100 else f"{fmt(value, 's')} ({steps:.0f} steps)"
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"
    if unit == "ms":
        return f"{value * 1000:.0f} ms"
    if unit == "MiB":
        return f"{value / 1024:.1f} MiB"
    if unit == "MB":
        return f"{value / 1e6:.1f} MB"
    if unit == "calls":
        return f"{value:g}"
    if unit == "/min":
        return f"{value:.1f}/min"
    if unit == "per tick":
        return f"{value:.2f}"
    return f"{value:g} {unit}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    # Padded, so the same text reads as a table on a terminal.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def breakdown_table(title: str, deploys: dict[str, Deploy]) -> str:
    """API calls by action, a column per tool (or way)."""
    calls = {name: deploy.calls_by_action() for name, deploy in deploys.items()}
    actions = sorted(set().union(*calls.values()), key=lambda a: (-sum(c[a] for c in calls.values()), a))
    rows = [[a, *(str(c[a] or "") for c in calls.values())] for a in actions]
    rows.append(["total", *(str(len(d.requests)) for d in deploys.values())])
    return f"{title}\n\n" + markdown_table(["API call", *deploys], rows)


# What a run measures; `--only` picks some (`bench/run --only verdict`).
GROUPS = ("single", "chain", "system", "cadence", "cancel", "footprint", "verdict", "rollout", "verify")
CLI_DIRECT_MODE = "update-service + wait services-stable"


def parse_groups(text: str) -> tuple[str, ...]:
    groups = tuple(dict.fromkeys(g.strip() for g in text.split(",") if g.strip()))
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {', '.join(GROUPS)}, comma-separated")
    return groups


def alternating(runs: int, tools: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(run, tool) for every run of every tool, which tool goes first
    alternating from run to run, so a drift in machine load does not always
    favour the same one."""
    for run in range(1, runs + 1):
        for tool in tools if run % 2 else tools[::-1]:
            yield run, tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, required=True, help="the ecs-stack-deploy binary")
    parser.add_argument("--aws", type=Path, required=True, help="the AWS CLI (bench/.venv/bin/aws)")
    parser.add_argument("--gnu-time", default="/usr/bin/time", help="GNU time, which measures peak RSS")
    parser.add_argument("--image", default=CONTAINER_IMAGE,
                        help="the container image row (f) measures (bench/run builds one from --binary)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--out", type=Path, default=REPO / "target/bench", help="results and logs")
    parser.add_argument("--holds", type=lambda text: tuple(float(h) for h in text.split(",")),
                        default=CADENCE_HOLDS, help="cadence hold times in seconds, comma-separated"
                        f" (default {','.join(f'{h:g}' for h in CADENCE_HOLDS)}; shorter ones for a quick check)")
    parser.add_argument("--only", type=parse_groups, default=GROUPS,
                        help=f"measure only these, comma-separated: {', '.join(GROUPS)} (default: all);"
                        " single is (a) and its (c), (d), (e); chain is (b) and its (d), (e); system compares"
                        " one run of the example system with sceptre and the chain (from (b) when chain is"
                        " measured too); rollout is a healthy direct rollout, and the doomed ones' calls and"
                        " RSS (from verdict's runs, which it makes itself when verdict is not measured)")
    parser.add_argument("--source", type=Path, default=REPO,
                        help="the checkout whose action.yml, examples/ and emulator/ to use (default: this"
                        " one; give a clean checkout of the commit ESD_BIN was built from)")
    parser.add_argument("--verdict-cli-runs", type=int, default=1,
                        help="runs of each of the CLI's doomed direct rollouts (default 1: when its waiter"
                        " gives up, that is after 40 polls 15 s apart, about 10 minutes a run)")
    parser.add_argument("--verify-cli-runs", type=int, default=1,
                        help="runs of each of the CLI's rollouts of the verify group's revisions (default 1:"
                        " its waiter gives up on them after 40 polls 15 s apart, about 10 minutes a run)")
    args = parser.parse_args()
    if args.runs < 1 or args.verdict_cli_runs < 1 or args.verify_cli_runs < 1:
        parser.error("--runs, --verdict-cli-runs and --verify-cli-runs must be at least 1")
    if not os.access(args.gnu_time, os.X_OK):
        parser.error(f"GNU time not found at {args.gnu_time} (Debian package time; bench/run installs it)")
    only = set(args.only)
    global SOURCE
    SOURCE = args.source.resolve()
    for needed in ("action.yml", "examples", "emulator/launcher.py"):
        if not (SOURCE / needed).exists():
            parser.error(f"--source {SOURCE} has no {needed}")

    started = time.monotonic()
    # Other work on the machine skews the small numbers most; the load is
    # recorded so a reader can tell a quiet run from a busy one.
    load_before = os.getloadavg()[0]
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    ws = Workspace(args.out, args.binary.resolve(), args.aws.resolve(), args.gnu_time)
    cli_version = subprocess.run([str(ws.aws), "--version"], capture_output=True, text=True,
                                 env={"PATH": os.environ.get("PATH", ""), "HOME": str(ws.home)}).stdout
    versions = {
        OURS: subprocess.run([str(ws.binary), "--version"], capture_output=True, text=True).stdout.strip(),
        # Only the CLI's own parts: the rest of its version line describes the machine.
        CLI: " ".join(w for w in cli_version.split() if w.startswith(("aws-cli/", "botocore/"))),
    }
    if "system" in only:
        sceptre = subprocess.run([str(ws.aws.with_name("sceptre")), "--version"], capture_output=True, text=True,
                                 env={"PATH": os.environ.get("PATH", ""), "HOME": str(ws.home)}).stdout
        versions[SCEPTRE] = "sceptre " + sceptre.split()[-1] if sceptre.strip() else "sceptre (version unknown)"
    measured = ", ".join(g for g in GROUPS if g in only)
    say(f"{versions[OURS]} ({ws.binary}) vs {versions[CLI]}; {args.runs} run(s) each; measuring {measured};"
        f" action.yml, examples and emulator from {SOURCE}; files in {args.out}")

    single: dict[str, list[dict[str, Deploy]]] = {t: [] for t in TOOLS}
    chain: dict[str, list[Deploy]] = {t: [] for t in TOOLS}
    cadence: dict[str, dict[float, list[CadenceSample]]] = {t: {h: [] for h in args.holds} for t in TOOLS}
    cancel: dict[str, list[CancelSample]] = {t: [] for t in TOOLS}
    verdicts: dict[str, list[VerdictSample]] = {}
    verifies: dict[str, list[VerifySample]] = {}
    system: dict[str, list[Deploy]] = {way: [] for way in SYSTEM_WAYS}
    rollouts: dict[str, list[RolloutSample]] = {t: [] for t in TOOLS}
    try:
        for run, tool in alternating(args.runs, TOOLS) if "single" in only else ():
            result = measure_single_stack(ws, tool, run)
            single[tool].append(result)
            say(f"(a) run {run}/{args.runs} {tool}: new stack {result['create'].wall:.2f}s,"
                f" no-op {result['no-op'].wall:.2f}s")
        for run, tool in alternating(args.runs, TOOLS) if "chain" in only else ():
            result = measure_chain(ws, tool, run)
            chain[tool].append(result)
            say(f"(b) run {run}/{args.runs} {tool}: four-stack chain {result.wall:.2f}s,"
                f" {len(result.requests)} API calls")

        if "system" in only:
            manifest = system_manifest(ws)
            project = sceptre_project(ws, manifest)
            # The chain's runs are (b)'s, when (b) is measured.
            ways = [way for way in SYSTEM_WAYS if way != SYSTEM_CHAIN or "chain" not in only]
            system[SYSTEM_CHAIN] = chain[OURS] if "chain" in only else []
        for run, way in alternating(args.runs, ways) if "system" in only else ():
            result = measure_system(ws, way, run, manifest, project)
            system[way].append(result)
            say(f"system run {run}/{args.runs} {way}: {result.wall:.2f}s, {len(result.requests)} API calls")

        if "cadence" in only:
            cadence = measure_cadence(ws, args.holds, args.runs)

        cancel_template = cadence_template(ws, CANCEL_HOLD)
        for run, tool in alternating(args.runs, TOOLS) if "cancel" in only else ():
            sample = measure_cancel_once(ws, tool, cancel_template, run)
            cancel[tool].append(sample)
            say(f"cancel run {run}/{args.runs} {tool}: exited {sample.exited_after:.3f}s after SIGTERM,"
                f" code {sample.exit_code}, told what carries on: {sample.told_what_carries_on}")

        for run, tool in alternating(args.runs, TOOLS) if "rollout" in only else ():
            sample = measure_rollout(ws, tool, run)
            rollouts[tool].append(sample)
            say(f"rollout run {run}/{args.runs} {tool}: healthy rollout {sample.deploy.wall:.2f}s,"
                f" {len(sample.deploy.requests)} API calls, calls per poll tick after UpdateService {sample.ticks}")
        # The rollout rows' doomed rollouts are the verdict rows' direct ones.
        if "verdict" in only or "rollout" in only:
            verdicts = measure_verdicts(ws, args.runs, args.verdict_cli_runs, stack="verdict" in only)
        if "verify" in only:
            verifies = measure_verify_group(ws, args.runs, args.verify_cli_runs)
    except BenchError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1

    image_size, image_note = container_image_size(args.image)
    binary_size = ws.binary.stat().st_size
    cli_size = cli_install_size(ws.aws) if "footprint" in only else None

    def per_tool(pick_value: Callable[[str], list[float]]) -> tuple[float, float]:
        return median(pick_value(OURS)), median(pick_value(CLI))

    rows: list[Row] = []

    def add(metric: str, unit: str, pick_value: Callable[[str], list[float]], group: str) -> None:
        if group in only:
            rows.append(Row(metric, *per_tool(pick_value), unit))

    add("(a) new stack (network), wall time", "s", lambda t: [r["create"].wall for r in single[t]], "single")
    add("(a) no-op update, wall time", "s", lambda t: [r["no-op"].wall for r in single[t]], "single")
    add("(b) four-stack chain, wall time", "s", lambda t: [c.wall for c in chain[t]], "chain")
    add("(c) process start to first API request", "ms",
        lambda t: [r["create"].first_request_after_spawn for r in single[t]], "single")
    add("(d) peak RSS, new stack", "MiB", lambda t: [r["create"].max_rss_kib for r in single[t]], "single")
    add("(d) peak RSS, largest process of the chain", "MiB", lambda t: [c.max_rss_kib for c in chain[t]],
        "chain")
    add("(e) API calls, new stack", "calls", lambda t: [len(r["create"].requests) for r in single[t]], "single")
    add("(e) API calls, no-op update", "calls", lambda t: [len(r["no-op"].requests) for r in single[t]], "single")
    add("(e) API calls, four-stack chain", "calls", lambda t: [len(c.requests) for c in chain[t]], "chain")
    if "footprint" in only:
        rows.append(Row("(f) footprint: container image vs CLI install" if image_size
                        else "(f) footprint: static binary (image not built) vs CLI install",
                        image_size or binary_size, cli_size, "MB"))
    for hold in args.holds:
        # add() calls the lambdas at once; the default binds this hold anyway.
        add(f"cadence, held {hold:g} s: completion noticed after", "s",
            lambda t, hold=hold: [s.noticed_after for s in cadence[t][hold]], "cadence")
        add(f"cadence, held {hold:g} s: process exited after", "s",
            lambda t, hold=hold: [s.exited_after for s in cadence[t][hold]], "cadence")
        if any(s.calls_per_minute is not None for s in cadence[OURS][hold]):
            add(f"cadence, held {hold:g} s: API calls per minute after the first minute", "/min",
                lambda t, hold=hold: [s.calls_per_minute for s in cadence[t][hold]], "cadence")
    add("cancel: SIGTERM while waiting to process exit", "ms",
        lambda t: [c.exited_after for c in cancel[t]], "cancel")
    verdict_notes: list[str] = []
    if "verdict" in only:
        verdict_table, verdict_notes = verdict_rows(verdicts, args.runs, args.verdict_cli_runs)
        rows += verdict_table
    if "rollout" in only:
        rollout_table, rollout_notes = rollout_rows(rollouts, verdicts, with_walls="verdict" not in only)
        rows += rollout_table
        verdict_notes += rollout_notes
    if "verify" in only:
        verify_table, verify_notes = verify_rows(verifies, args.runs, args.verify_cli_runs)
        rows += verify_table
        verdict_notes += verify_notes

    elapsed = time.monotonic() - started
    load_after = os.getloadavg()[0]
    header = ["metric", OURS, CLI, "ratio (aws cli ÷ ecs-stack-deploy)"]
    # A note column only when a row has a note (the verify rows).
    with_note = any(r.note for r in rows)
    table = markdown_table(header + ["note"] * with_note, [r.cells(with_note) for r in rows])
    notes = [
        f"Medians of {args.runs} run(s){'' if only == set(GROUPS) else f' (measured: {measured})'};"
        f" {versions[OURS]} vs {versions[CLI]}, on the project's emulator"
        f" (moto 5.2.5 + patches), {os.cpu_count()} CPUs, load average {load_before:.1f} at the start and"
        f" {load_after:.1f} at the end; the bench took {elapsed / 60:.1f} min.",
        "Ratio above 1: ecs-stack-deploy is faster, smaller or makes fewer calls.",
    ]
    if "chain" in only:
        chain_processes = {t: len(chain[t][0].processes) for t in TOOLS}
        notes.append(f"(b): {chain_processes[OURS]} processes for {OURS}; {chain_processes[CLI]} for the CLI"
                     " (four deploys and two `describe-stacks --query` calls gluing outputs to parameters).")
    if "footprint" in only:
        notes.append(f"(f): {OURS}: {image_note}; static binary {binary_size / 1e6:.1f} MB."
                     f" CLI: {versions[CLI].split()[0]} packages in bench/.venv, without the Python interpreter.")
    if "cadence" in only:
        notes.append("Cadence: from the stack's CREATE_COMPLETE event to the tool's first DescribeStacks after it,"
                     " and to its exit; the held deploys of a run run at once, each on its own emulator, and those"
                     f" held {CADENCE_LONG_HOLD:g} s or more all runs at once. Calls per minute after the first"
                     f" minute: the tool's calls from {CADENCE_FIRST_MINUTE:g} s after its ExecuteChangeSet to the"
                     " CREATE_COMPLETE event, per minute of that time.")
    if "cancel" in only:
        notes.append(f"Cancel: SIGTERM {CANCEL_AFTER:g} s into the wait on a stack held CREATE_IN_PROGRESS for"
                     f" {CANCEL_HOLD:g} s. After it, {OURS}: {cancel_summary(cancel[OURS])};"
                     f" {CLI}: {cancel_summary(cancel[CLI])}.")
    notes += verdict_notes
    breakdowns = []
    if "single" in only:
        breakdowns += [
            breakdown_table("API calls by action, new stack (median run):",
                            {t: median_run([r["create"] for r in single[t]]) for t in TOOLS}),
            breakdown_table("API calls by action, no-op update (median run):",
                            {t: median_run([r["no-op"] for r in single[t]]) for t in TOOLS}),
        ]
    if "chain" in only:
        breakdowns.append(breakdown_table("API calls by action, four-stack chain (median run):",
                                          {t: median_run(chain[t]) for t in TOOLS}))
    if "rollout" in only:
        breakdowns.append(breakdown_table("API calls by action, healthy rollout (median run):",
                                          {t: median_run([s.deploy for s in rollouts[t]]) for t in TOOLS}))
    tables = [table] if rows else []
    if "system" in only:
        tables.append("System: the example system of four stacks (examples/system.yml) from an empty account\n\n"
                      + system_table(system))
        notes.append(
            f"System: {SYSTEM_OURS}: one run with the `stacks` input; {SYSTEM_SCEPTRE}: `sceptre launch -y"
            f" {SCEPTRE_STACK_GROUP}` ({versions[SCEPTRE]}) of a project generated from the same manifest (templates, parameters,"
            f" `!stack_output` for each reference); {SYSTEM_CHAIN}: (b)'s {OURS} side"
            f"{', the same runs as (b)' if 'chain' in only else ', run in this group'}. Medians of {args.runs}"
            f" run(s), one at a time, each on a fresh emulator. Ratios: the other way ÷ ours; above 1, ours is"
            " faster or makes fewer calls or uses less memory.")
        breakdowns.append(breakdown_table("API calls by action, system of four stacks (median run):",
                                          {way: median_run(system[way]) for way in SYSTEM_WAYS}))
    report = "\n".join(["\n\n".join(tables), "", *(f"- {n}" for n in notes),
                        *(["", "\n\n".join(breakdowns)] if breakdowns else []), ""])
    print("\n" + report)
    (args.out / "results.md").write_text("# ecs-stack-deploy vs the AWS CLI\n\n" + report)
    raw = {
        "runs": args.runs,
        "measured": [g for g in GROUPS if g in only],
        "versions": versions,
        "elapsed_seconds": elapsed,
        "load_average": {"start": load_before, "end": load_after},
        "single": {t: [{k: deploy_record(d) for k, d in r.items()} for r in single[t]] for t in TOOLS},
        "chain": {t: [deploy_record(c) for c in chain[t]] for t in TOOLS},
        "system": {way: [deploy_record(d) for d in system[way]] for way in SYSTEM_WAYS},
        "rollout": {t: [{**deploy_record(s.deploy), "calls_per_tick": s.ticks,
                         "describe_services_after_update": s.describe_services} for s in rollouts[t]]
                    for t in TOOLS},
        "cadence": {t: {f"{h:g}": [{"noticed_after": s.noticed_after, "exited_after": s.exited_after,
                                    "calls_per_minute_after_first_minute": s.calls_per_minute}
                                   for s in cadence[t][h]] for h in args.holds} for t in TOOLS},
        "cancel": {t: [asdict(c) for c in cancel[t]] for t in TOOLS},
        "footprint_bytes": {"image": image_size, "binary": binary_size, "cli_install": cli_size},
        "verdict": {
            "step_seconds": VERDICT_STEP_SECONDS, "cfn_timeout_seconds": VERDICT_CFN_TIMEOUT_SECONDS,
            "nth_failure": VERDICT_NTH_FAILURE, "desired_count": VERDICT_DESIRED,
            "samples": {key: [{**asdict(s), "wall_seconds": s.wall, "verdict_after_nth_seconds": s.verdict_after_nth}
                              for s in samples] for key, samples in verdicts.items()},
        },
        "verify": {
            "step_seconds": VERDICT_STEP_SECONDS, "ours_verify_off_stopped_after_seconds": VERIFY_OFF_STOP_AFTER,
            "samples": {key: [{**asdict(s), "wall_seconds": s.wall} for s in samples]
                        for key, samples in verifies.items()},
        },
    }
    (args.out / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    say(f"done in {elapsed:.0f}s; results in {args.out / 'results.md'} and results.json")
    return 0


def verdict_rows(samples: dict[str, list[VerdictSample]], runs: int,
                 cli_direct_runs: int) -> tuple[list[Row], list[str]]:
    """The time-to-verdict rows and their notes."""

    def pick(tool: str, case: str, mode: str) -> list[VerdictSample]:
        return samples.get(f"{tool}|{case}|{mode}", [])

    def med(values: list[float]) -> float | None:
        return median(values) if values else None

    def span(values: list[float], unit: str = "s+steps") -> str:
        """The runs' median [min to max]."""
        if not values:
            return "n/a"
        if len(values) == 1:
            return fmt(values[0], unit)
        return f"{fmt(median(values), unit)} [runs {fmt(min(values), 's')} to {fmt(max(values), 's')}]"

    step = VERDICT_STEP_SECONDS
    nth = ordinal(VERDICT_NTH_FAILURE)
    # A delay within a poll of zero, or negative, has no meaningful ratio.
    no_ratio = "—"
    rows: list[Row] = []
    notes = [
        f"Time to verdict: a service of {VERDICT_DESIRED} Fargate tasks without the deployment circuit breaker"
        f" (ECS restarts the failing tasks forever); the emulator's ECS step {step:g} s (every task state"
        f" transition takes one), CloudFormation giving up on a service that does not stabilise after"
        f" {VERDICT_CFN_TIMEOUT_SECONDS:g} s (standing for AWS's ~3 hours). {OURS}: medians of {runs} run(s),"
        f" one at a time; the CLI: {cli_direct_runs} run(s) of each direct rollout, {runs} of the stack update,"
        " those at once, each tool and run on a fresh emulator.",
    ]
    wrongs: list[str] = []
    for case in VERDICT_CASES:
        stop, rollback, cli = pick(OURS, case, "stop"), pick(OURS, case, "rollback"), pick(CLI, case, CLI_DIRECT_MODE)
        wrong = sum(s.wrong_verdict for s in cli)
        suffix = ("" if not wrong else " (said stable)" if wrong == len(cli)
                  else f" ({wrong} of {len(cli)} said stable)")
        wrong_ratio = "n/a: wrong verdict" if wrong else None
        cli_wall = med([s.wall for s in cli])
        rows.append(Row(f"doomed rollout ({case}): spawn to exit, ours `stop`", med(
            [s.wall for s in stop]), cli_wall, "s", cli_suffix=suffix, ratio_text=wrong_ratio))
        rows.append(Row(f"doomed rollout ({case}): spawn to exit, ours `rollback`",
                        med([s.wall for s in rollback]), cli_wall, "s", cli_suffix=suffix, ratio_text=wrong_ratio))
        rows.append(Row(f"doomed rollout ({case}): verdict after {nth} failed task stopped",
                        med([s.verdict_after_nth for s in stop]), med([s.verdict_after_nth for s in cli]),
                        "s+steps", cli_suffix=suffix, ratio_text=wrong_ratio or no_ratio))
        outcomes = Counter(s.outcome for s in cli)
        notes.append(
            f"{case}: the {nth} failed task stopped {span([s.nth_failure() - s.spawned_at for s in stop], 's')}"
            f" after ours was spawned (`stop` runs). Ours' verdict relative to that task's stoppedAt: `stop`"
            f" {span([s.verdict_after_nth for s in stop])}; `rollback` (its UpdateService back)"
            f" {span([s.verdict_after_nth for s in rollback])}, exiting once the previous revision ran again."
            " `aws ecs wait services-stable` ended: "
            + "; ".join(f"{o} ({n} of {len(cli)})" for o, n in outcomes.items()) + ".")
        if wrong:
            wrongs.append(case)
    stack_ours, stack_cli = pick(OURS, STACK_CASE, "rollback"), pick(CLI, STACK_CASE, "deploy")
    rows.append(Row("doomed stack update: spawn to exit, ours `rollback`",
                    med([s.wall for s in stack_ours]), med([s.wall for s in stack_cli]), "s"))
    rows.append(Row(f"doomed stack update: verdict after {nth} failed task stopped",
                    med([s.verdict_after_nth for s in stack_ours]), med([s.verdict_after_nth for s in stack_cli]),
                    "s+steps", ratio_text=no_ratio))
    cfn_verdicts = [s.cfn_verdict_at - s.nth_failure() for s in stack_cli if s.cfn_verdict_at]
    notes.append(
        f"Doomed stack update: the stack (created good, not timed) updated to an image never pushed, so every"
        f" task fails its pull; ours with the default on-rollout-failure (rollback) sends CancelUpdateStack"
        f" (its verdict: {span([s.verdict_after_nth for s in stack_ours])} relative to the {nth} failed task's"
        f" stoppedAt) and waits for UPDATE_ROLLBACK_COMPLETE; `aws cloudformation deploy` waits for"
        f" CloudFormation's own verdict: the service's UPDATE_FAILED came {span(cfn_verdicts, 's')} after the"
        f" {nth} failed task stopped (the emulator's cfnTimeoutSeconds {VERDICT_CFN_TIMEOUT_SECONDS:g}; AWS waits"
        f" about 3 hours), and the CLI saw UPDATE_ROLLBACK_COMPLETE at its next poll (every 30 s).")
    ours_all = [s for key, ss in samples.items() if key.startswith(f"{OURS}|") for s in ss]
    stopping = [s.nth_failure("stoppedAt") - s.nth_failure("stoppingAt") for s in ours_all]
    after_stopping = [s.verdict_at - s.nth_failure("stoppingAt") for s in ours_all]
    worst = max((s.verdict_after_nth for s in ours_all), default=None)
    notes.append(
        f"Verdict after the {nth} failed task stopped: from the stoppedAt (DescribeTasks) of the {nth} task of"
        f" the new revision to fail (stop code EssentialContainerExited or TaskFailedToStart) to the verdict:"
        f" ours with stop its exit, with rollback its UpdateService back or CancelUpdateStack; the CLI its exit."
        f" ECS sets the stop code (stoppingAt) {fmt(min(stopping, default=None), 's')} to"
        f" {fmt(max(stopping, default=None), 's')} before stoppedAt, and ours counts a task from then, so its"
        f" verdict can come before stoppedAt (negative). Target: within 3 steps ({3 * step:g} s); ours' worst"
        f" run of all {len(ours_all)}: {fmt(worst, 's+steps')}. Counted from the stoppingAt instead (the first"
        f" moment the failure can be known): {span(after_stopping)}.")
    if wrongs:
        notes.append(
            f"Wrong verdicts ({', '.join(wrongs)}): the container runs one step before it exits, so ECS counts each"
            " new task as RUNNING for a moment, drains the previous revision's tasks meanwhile, and a poll of"
            " DescribeServices can find one deployment with runningCount == desiredCount, which is all"
            " services-stable asks: it exits 0 on a service that keeps crashing. The emulator's step makes"
            " RUNNING about a third of each task's short life; on AWS it is a smaller share, but the waiter's"
            " condition is the same.")
    return rows, notes


def verify_rows(samples: dict[str, list[VerifySample]], runs: int, cli_runs: int) -> tuple[list[Row], list[str]]:
    """The verify group's rows (spawn to exit, with a note column) and notes."""

    def pick(tool: str, case: str, mode: str) -> list[VerifySample]:
        return samples.get(f"{tool}|{case}|{mode}", [])

    def med(values: list[float]) -> float | None:
        return median(values) if values else None

    def span(values: list[float]) -> str:
        if len(values) < 2:
            return fmt(values[0], "s") if values else "n/a"
        return f"{fmt(median(values), 's')} [runs {fmt(min(values), 's')} to {fmt(max(values), 's')}]"

    def endings(of: list[VerifySample], with_detail: bool = True) -> str:
        """How the runs ended, each distinct ending with its count."""
        counted = Counter((s.how, s.exit_code, s.detail if with_detail else "") for s in of)
        return "; ".join(f"{how} (exit {code}){': ' + detail.rstrip('.') if detail else ''}"
                         + (f" ({n} of {len(of)})" if len(counted) > 1 else "")
                         for (how, code, detail), n in counted.items())

    rows: list[Row] = []
    notes = [
        f"Verify before deploy: a revision the deploy cannot survive (what its tasks refer to does not work, a"
        f" task size or port ECS refuses, a service whose target group is in another VPC than its subnets),"
        f" rolled out directly to the time-to-verdict rows' service (2 tasks, no circuit breaker, ECS step"
        f" {VERDICT_STEP_SECONDS:g} s; behind an ALB's target group for the last two cases); spawn to exit."
        f" {OURS} as those rows run it (task-definition file,"
        f" container-name, image, service, cluster; on-rollout-failure stop), with `verify` on (the default:"
        f" it must exit 2 with no {' or '.join(VERIFY_CHANGES)} in the emulator's request log) and with"
        f" `verify: false` (it must exit 1: the rollout judged doomed from its stopped tasks, or the registration"
        f" or the UpdateService refused), medians of {runs} run(s), one at a time; `aws ecs register-task-definition`"
        f" + `update-service` + `wait services-stable` (gives up after 40 polls 15 s apart), {cli_runs} run(s) of"
        f" each case, at once, each on its own emulator. Ratio: aws cli ÷ ours on that row.",
    ]
    for case in VERIFY_CASES:
        on, off, cli = pick(OURS, case, VERIFY_ON), pick(OURS, case, VERIFY_OFF), pick(CLI, case, CLI_DIRECT_MODE)
        wrong = sum(s.wrong_verdict for s in cli)
        suffix = ("" if not wrong else " (said stable)" if wrong == len(cli)
                  else f" ({wrong} of {len(cli)} said stable)")
        wrong_ratio = "n/a: wrong verdict" if wrong else None
        cli_wall = med([s.wall for s in cli])
        cli_note = f"aws cli: {endings(cli, with_detail=False)}" if cli else "aws cli: not run"
        ng_checks = sorted({s.detail.split(": ", 1)[0] for s in on})
        rows.append(Row(f"verify ({case}): spawn to exit, ours verify on", med([s.wall for s in on]), cli_wall,
                        "s", note=f"ours: NG `{'`, `'.join(ng_checks)}`, nothing changed; {cli_note}",
                        cli_suffix=suffix, ratio_text=wrong_ratio))
        silent = [s for s in off if s.no_verdict]
        silent_note, silent_why = VERIFY_CASES[case].silent
        if silent:
            rows.append(Row(f"verify ({case}): spawn to exit, ours verify: false", None, cli_wall, "s",
                            note=f"ours: no verdict, stopped by the bench after {VERIFY_OFF_STOP_AFTER:g} s"
                            f" ({silent_note})",
                            cli_suffix=suffix, ratio_text="n/a: no verdict",
                            ours_text=f"no verdict in {VERIFY_OFF_STOP_AFTER:g} s"))
        else:
            # The kind of the reason judged on (ResourceInitializationError, ...).
            kinds = sorted({f"{s.how} ({s.detail.split(':', 1)[0]})" if s.how == "judged doomed" else s.how
                            for s in off})
            rows.append(Row(f"verify ({case}): spawn to exit, ours verify: false", med([s.wall for s in off]),
                            cli_wall, "s", note=f"ours: exit 1, {' / '.join(kinds)}", cli_suffix=suffix,
                            ratio_text=wrong_ratio))
        judged = [s.wall for s in off if not s.no_verdict]
        note = (f"{case}: verify on: {span([s.wall for s in on])}, {endings(on)}. verify: false:"
                f" {span(judged) + ', ' if judged else ''}{endings(off)}")
        rolled = [s for s in off if s.how not in REFUSALS]  # a new deployment ran
        if rolled:
            failed = sorted({s.failed_tasks for s in rolled})
            note += (f"; when it exited the new deployment had {failed[0]}"
                     f"{f' to {failed[-1]}' if len(failed) > 1 else ''} failed tasks")
        if silent:
            why = silent_why.format(failed=silent[0].failed_tasks, after=f"{VERIFY_OFF_STOP_AFTER:g}")
            note += (f". Without verify ours does not judge this rollout: {why}; it prints ECS's"
                     " service event and would wait until wait-for-minutes (30 by default), then exit 1 with the"
                     f" deployment still IN_PROGRESS. The bench stops it (SIGTERM) after {VERIFY_OFF_STOP_AFTER:g} s"
                     " and runs it once")
        refused_cli = [s for s in cli if s.how in REFUSALS]
        if refused_cli:
            note += (f". aws cli: {span([s.wall for s in cli])}, {endings(cli)}: ECS's refusal, which the CLI"
                     " prints as it exits; the service unchanged")
        elif cli:
            note += (f". aws cli: {span([s.wall for s in cli])}, {endings(cli)}, with"
                     f" {max(s.failed_tasks for s in cli)} failed tasks of the new deployment by then; it says"
                     " nothing of why, where ECS's service events did: "
                     f"{short(cli[0].service_event, 200).rstrip('.') or '(none found)'}")
        notes.append(note + ".")
    return rows, notes


def cancel_summary(samples: list[CancelSample]) -> str:
    codes = sorted({c.exit_code for c in samples})
    told = sum(c.told_what_carries_on for c in samples)
    written = sorted({name for c in samples for name in c.outputs})
    return (f"exit code {', '.join(map(str, codes))} (negative: killed by the signal),"
            f" said what the stack carries on with in {told} of {len(samples)} runs,"
            f" non-empty outputs written: {', '.join(written) or 'none'}")


def deploy_record(deploy: Deploy) -> dict[str, Any]:
    return {
        "wall_seconds": deploy.wall,
        "first_request_after_spawn_seconds": deploy.requests[0]["time"] - deploy.processes[0].spawned_at
        if deploy.requests else None,
        "max_rss_kib": deploy.max_rss_kib,
        "api_calls": len(deploy.requests),
        "api_calls_by_action": dict(deploy.calls_by_action()),
        "processes": [{"label": p.label, "wall_seconds": p.wall, "max_rss_kib": p.max_rss_kib}
                      for p in deploy.processes],
    }


if __name__ == "__main__":
    sys.exit(main())

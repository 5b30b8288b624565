"""ECS patches for moto 5.2.5 so service deployments progress like real ECS.

moto creates a service with one PRIMARY deployment that stays ``IN_PROGRESS`` with
0 running tasks forever; UpdateService rewrites the service's taskDefinition but
leaves the PRIMARY deployment on the old one (forceNewDeployment only renames it);
no task is ever started (ListTasks is empty, ``serviceName`` is ignored), events stay
empty, ``deploymentConfiguration`` is dropped, and its CloudFormation handler ignores
everything but Cluster/TaskDefinition/DesiredCount. This module replaces that with a
small ECS service scheduler driven by a background thread (``ecs-engine``):

* CreateService / UpdateService (new task definition, forceNewDeployment) start a
  deployment: new PRIMARY ``IN_PROGRESS``, the previous PRIMARY becomes ``ACTIVE``,
  drains (respecting minimumHealthyPercent / maximumPercent) and leaves the list.
  A desiredCount-only update scales the PRIMARY, as real ECS does.
* every deployment starts its tasks (visible to ListTasks/DescribeTasks/StopTask):
  PROVISIONING -> PENDING -> RUNNING, stopped ones DEACTIVATING/STOPPING ->
  DEPROVISIONING -> STOPPED, one "step" per transition.
* images that are ECR references are checked against moto's ECR (PutImage);
  missing ones fail with CannotPullContainerError. Other registries always pull.
* container ``dockerLabels`` drive failures (see README): ``emulator.exit-code``,
  ``emulator.exit-after-seconds``, ``emulator.unhealthy``, ``emulator.start-seconds``.
* the deployment circuit breaker fails (and optionally rolls back) deployments;
  without it ECS retries forever.
* running tasks are registered in ELBv2 target groups (ip targets) of the service.
* CloudFormation waits for AWS::ECS::Service deployments to finish, through
  ``cloudformation.STABILIZERS``.

Timing: ``EMULATOR_ECS_STEP_SECONDS`` (launcher ``--ecs-step-seconds``) and
``POST /_emulator/ecs-speed``. Everything runs under ``state.LOCK``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs import models as ecs_models
from moto.ecs.models import EC2ContainerServiceBackend, Service, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

from emulator import control
from emulator.state import LOCK

# --------------------------------------------------------------------------- settings


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


class Settings:
    """Timing knobs; changed by env vars at start and by POST /_emulator/ecs-speed."""

    def __init__(self) -> None:
        self.step = _env_float("EMULATOR_ECS_STEP_SECONDS", 0.2)
        threshold = os.environ.get("EMULATOR_ECS_FAILURE_THRESHOLD", "")
        self.failure_threshold: int | None = int(threshold) if threshold.strip().isdigit() else None
        self.cfn_timeout = _env_float("EMULATOR_ECS_CFN_TIMEOUT_SECONDS", 120.0)

    def as_dict(self) -> dict[str, Any]:
        return {"stepSeconds": self.step, "failureThreshold": self.failure_threshold,
                "cfnTimeoutSeconds": self.cfn_timeout}


SETTINGS = Settings()

# A deployment is COMPLETED once all its tasks have been RUNNING this many steps
# (and older deployments have drained). Default exit/unhealthy delays are shorter,
# so a crash-looping deployment never completes by accident.
STABLE_STEPS = 2
# Real ECS keeps the 100 most recent service events; stopped tasks stay visible ~1h,
# we keep the most recent ones per service.
MAX_EVENTS = 100
MAX_STOPPED_TASKS = 50

CB_REASON = "ECS deployment circuit breaker: tasks failed to start."
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-fA-F]+))?$"
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _threshold(desired: int) -> int:
    # Real ECS: max(3, min(200, ceil(0.5 * desiredCount))) failed tasks.
    if SETTINGS.failure_threshold:
        return SETTINGS.failure_threshold
    return max(3, min(200, math.ceil(0.5 * desired)))


# --------------------------------------------------------------------------- model


class Deployment:
    """One entry of Service.deployments (moto serialises attributes by name)."""

    def __init__(self, service: Service, task_definition: str | None, desired: int) -> None:
        self.id = f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"
        self.status = "PRIMARY"
        self.task_definition = task_definition
        self.desired_count = desired
        self.pending_count = 0
        self.running_count = 0
        self.failed_tasks = 0
        self.created_at = self.updated_at = _now()
        self.launch_type = service.launch_type
        self.platform_version = service.platform_version or ("LATEST" if service.launch_type == "FARGATE" else None)
        self.platform_family = "Linux" if service.launch_type == "FARGATE" else None
        self.network_configuration = service.network_configuration or None
        self.rollout_state = "IN_PROGRESS"
        self.rollout_state_reason = f"ECS deployment {self.id} in progress."
        self.stable_since: float | None = None


class Container:
    def __init__(self, task: "Task", cdef: dict[str, Any]) -> None:
        self.container_arn = (f"arn:aws:ecs:{task.region}:{task.account_id}:container/"
                              f"{task.cluster_name}/{task.id}/{uuid.uuid4()}")
        self.task_arn = task.task_arn
        self.name = cdef.get("name")
        self.image = cdef.get("image")
        self.last_status = "PENDING"
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.health_status = "UNKNOWN"
        self.cpu = str(cdef.get("cpu", 0))
        self.memory = str(cdef["memory"]) if cdef.get("memory") is not None else None
        self.network_interfaces: list[dict[str, str]] = []
        self.network_bindings: list[dict[str, Any]] = []
        self.essential = cdef.get("essential", True) is not False
        self.has_health_check = bool(cdef.get("healthCheck"))
        self.labels = {str(k): str(v) for k, v in (cdef.get("dockerLabels") or {}).items()}
        self.port = next((p.get("containerPort") for p in cdef.get("portMappings") or [] if p.get("containerPort")), None)


class Task:
    """A service task, stored in moto's backend.tasks so ListTasks/DescribeTasks see it."""

    def __init__(self, backend: EC2ContainerServiceBackend, service: Service, dep: Deployment,
                 td: Any) -> None:
        self.id = uuid.uuid4().hex
        self.account_id = backend.account_id
        self.region = backend.region_name
        self.cluster_name = service.cluster_name
        self.cluster_arn = service.cluster_arn
        self._long_arn = backend.enable_long_arn_for_name(name="taskLongArnFormat")
        self.task_definition_arn = td.arn
        self.last_status = "PROVISIONING"
        self.desired_status = "RUNNING"
        self.started_by = dep.id
        self.group = f"service:{service.name}"
        self.launch_type = service.launch_type
        self.platform_version = "1.4.0" if service.launch_type == "FARGATE" else None
        self.platform_family = "Linux" if service.launch_type == "FARGATE" else None
        self.cpu = td.cpu
        self.memory = td.memory
        self.created_at = _now()
        self.version = 1
        self.availability_zone = f"{self.region}a"
        self.health_status = "UNKNOWN"
        self.connectivity = "CONNECTED"
        self.connectivity_at = self.created_at
        self.pull_started_at = self.pull_stopped_at = self.started_at = None
        self.stopping_at = self.stopped_at = self.execution_stopped_at = None
        self.stop_code: str | None = None
        self.stopped_reason: str | None = None
        self.container_instance_arn = None
        self.tags: list[dict[str, str]] = []
        self.overrides = {"containerOverrides": [], "inferenceAcceleratorOverrides": []}
        self.attachments: list[dict[str, Any]] = []
        self.resource_requirements = None
        self.containers = [Container(self, c) for c in td.container_definitions]
        self.ip: str | None = None
        awsvpc = service.network_configuration or td.network_mode == "awsvpc" or service.launch_type == "FARGATE"
        if awsvpc:
            # No real ENI: a made-up private IP, enough for ip target groups.
            self.ip = f"10.0.{mock_random.randint(0, 255)}.{mock_random.randint(1, 254)}"
            subnets = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
            att_id = str(uuid.uuid4())
            details = [{"name": "networkInterfaceId", "value": f"eni-{mock_random.get_random_hex(17)}"},
                       {"name": "privateIPv4Address", "value": self.ip}]
            if subnets:
                details.insert(0, {"name": "subnetId", "value": subnets[0]})
            self.attachments.append({"id": att_id, "type": "ElasticNetworkInterface", "status": "ATTACHED",
                                     "details": details})
            for c in self.containers:
                c.network_interfaces = [{"attachmentId": att_id, "privateIpv4Address": self.ip}]
        # engine bookkeeping
        self.service = service
        self.deployment_id = dep.id
        self.next: str | None = "pending"
        self.due = time.monotonic() + SETTINGS.step
        self.targets: list[tuple[Any, str, int]] = []  # (target group, id, port)
        self.pull_error = next((msg for msg in (_pull_error(c.image or "") for c in self.containers) if msg), None)
        self.pull_failing = [c for c in self.containers if _pull_error(c.image or "")]
        self.start_extra = max([_label_float(c, "emulator.start-seconds", 0.0) for c in self.containers] or [0.0])
        self.exiting = next((c for c in self.containers if "emulator.exit-code" in c.labels), None)
        self.unhealthy = any(_truthy(c.labels.get("emulator.unhealthy")) for c in self.containers)

    @property
    def task_arn(self) -> str:
        if self._long_arn:
            return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{self.cluster_name}/{self.id}"
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{self.id}"

    def advance(self) -> None:
        """moto's DescribeTasks calls this on its own tasks; ours move on the engine's clock."""


def _label_float(c: Container, key: str, default: float) -> float:
    try:
        return float(c.labels.get(key, default))
    except ValueError:
        return default


def _pull_error(image: str) -> str | None:
    """CannotPullContainerError text if image is an ECR reference missing from moto's ECR."""
    m = _ECR_IMAGE.match(image)
    if not m:
        return None  # Docker Hub, public.ecr.aws, ...: the emulator cannot know; assume pullable
    from moto.ecr.models import ecr_backends

    found = False
    try:
        repo = ecr_backends[m["account"]][m["region"]].repositories.get(m["repo"])
    except Exception:  # noqa: BLE001 - unknown region: nothing to pull from
        repo = None
    if repo is not None:
        tag = m["tag"] or "latest"
        for img in repo.images:
            if m["digest"]:
                found = img.get_image_digest() == m["digest"]
            else:
                found = tag in (img.image_tags or [])
            if found:
                break
    if found:
        return None
    return (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            f"failed to resolve ref {image}: not found")


class ServiceState:
    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.outcomes: dict[str, str] = {}  # deployment id -> COMPLETED | FAILED
        self.last_completed: Deployment | None = None
        self.steady = False


_TRACKED: list[Service] = []
_engine_started = threading.Event()


def _event(svc: Service, message: str) -> None:
    svc.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": message})
    del svc.events[MAX_EVENTS:]


def _default_config(given: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(given or {})
    cb = dict(cfg.get("deploymentCircuitBreaker") or {})
    cfg["deploymentCircuitBreaker"] = {"enable": _truthy(cb.get("enable", False)),
                                       "rollback": _truthy(cb.get("rollback", False))}
    cfg["maximumPercent"] = int(cfg.get("maximumPercent", 200) or 200)
    cfg["minimumHealthyPercent"] = int(cfg.get("minimumHealthyPercent", 100) if cfg.get("minimumHealthyPercent") is not None else 100)
    return cfg


def _init_service(svc: Service) -> None:
    """Replace moto's static deployment with a live one and start the engine."""
    svc.deployment_configuration = _default_config(getattr(svc, "deployment_configuration", None))
    svc.running_count = svc.pending_count = 0
    if (svc.deployment_controller or {}).get("type", "ECS") != "ECS":
        return  # CODE_DEPLOY / EXTERNAL: task sets, not deployments
    svc.emu = ServiceState()
    svc.deployments = [Deployment(svc, svc.task_definition, svc.desired_count)]
    if svc not in _TRACKED:
        _TRACKED.append(svc)
    _start_engine()


def _new_deployment(svc: Service, task_definition: str | None) -> Deployment:
    for d in svc.deployments:
        if d.status == "PRIMARY":
            d.status = "ACTIVE"
            d.updated_at = _now()
    dep = Deployment(svc, task_definition, svc.desired_count)
    svc.deployments.insert(0, dep)
    svc.emu.steady = False
    return dep


# --------------------------------------------------------------------------- engine


def _start_engine() -> None:
    if _engine_started.is_set():
        return
    _engine_started.set()
    threading.Thread(target=_engine_loop, name="ecs-engine", daemon=True).start()


def _engine_loop() -> None:
    while True:
        time.sleep(max(0.01, min(0.05, SETTINGS.step / 4)))
        try:
            with LOCK:
                now = time.monotonic()
                for svc in list(_TRACKED):
                    _tick_service(svc, now)
        except Exception:  # noqa: BLE001 - never let the scheduler die
            import traceback

            traceback.print_exc()


def _backend(svc: Service) -> EC2ContainerServiceBackend:
    return ecs_backends[svc._account_id][svc.region_name]


def _deployment(svc: Service, dep_id: str) -> Deployment | None:
    return next((d for d in svc.deployments if d.id == dep_id), None)


def _fail_task(svc: Service, t: Task) -> None:
    dep = _deployment(svc, t.deployment_id)
    if dep is not None:
        dep.failed_tasks += 1
        dep.updated_at = _now()


def _stop(t: Task, code: str, reason: str) -> None:
    """Ask a task to stop; it walks the stop states one step at a time."""
    if t.desired_status == "STOPPED":
        return
    t.desired_status = "STOPPED"
    t.stop_code = t.stop_code or code
    t.stopped_reason = t.stopped_reason or reason
    t.stopping_at = _now()
    t.version += 1
    t.next = {"RUNNING": "deactivating" if t.targets else "stopping"}.get(t.last_status, "deprovisioning")
    t.due = time.monotonic() + SETTINGS.step


def _advance(svc: Service, t: Task, now: float) -> None:
    step = SETTINGS.step
    while t.next and now >= t.due:
        action, t.next = t.next, None
        t.version += 1
        if action == "pending":
            t.last_status = "PENDING"
            t.pull_started_at = _now()
            t.next, t.due = ("pull_fail", t.due + step) if t.pull_error else ("running", t.due + step + t.start_extra)
        elif action == "pull_fail":
            t.pull_stopped_at = _now()
            for c in t.pull_failing:
                c.reason = _pull_error(c.image or "")
            for c in t.containers:
                c.last_status = "STOPPED"
            _fail_task(svc, t)
            _stop(t, "TaskFailedToStart", t.pull_error or "CannotPullContainerError")
        elif action == "running":
            t.pull_stopped_at = t.pull_stopped_at or _now()
            t.last_status = "RUNNING"
            t.started_at = _now()
            health = "UNHEALTHY" if t.unhealthy else "HEALTHY"
            for c in t.containers:
                c.last_status = "RUNNING"
                if c.has_health_check or t.unhealthy:
                    c.health_status = health
            if any(c.has_health_check for c in t.containers) or t.unhealthy:
                t.health_status = health
            _register_targets(svc, t)
            if t.exiting is not None:
                t.next, t.due = "exit", t.due + _label_float(t.exiting, "emulator.exit-after-seconds", step)
            elif t.unhealthy:
                after = max([_label_float(c, "emulator.exit-after-seconds", step) for c in t.containers])
                t.next, t.due = "unhealthy", t.due + after
        elif action == "exit":
            c = t.exiting
            assert c is not None
            try:
                c.exit_code = int(c.labels["emulator.exit-code"])
            except ValueError:
                c.exit_code = 1
            c.last_status = "STOPPED"
            if c.essential:
                _fail_task(svc, t)
                _stop(t, "EssentialContainerExited", "Essential container in task exited")
        elif action == "unhealthy":
            tg_arn = next((tg.arn for tg, _, _ in t.targets), None)
            if tg_arn:
                _event(svc, f"(service {svc.name}) (task {t.id}) failed ELB health checks in (target-group {tg_arn}).")
                reason = f"Task failed ELB health checks in (target-group {tg_arn})"
            else:
                _event(svc, f"(service {svc.name}) (task {t.id}) failed container health checks.")
                reason = "Task failed container health checks"
            _fail_task(svc, t)
            _stop(t, "ServiceSchedulerInitiated", reason)
        elif action == "deactivating":
            t.last_status = "DEACTIVATING"
            _deregister_targets(t)
            t.next, t.due = "stopping", t.due + step
        elif action == "stopping":
            _deregister_targets(t)
            t.last_status = "STOPPING"
            t.next, t.due = "deprovisioning", t.due + step
        elif action == "deprovisioning":
            _deregister_targets(t)
            t.last_status = "DEPROVISIONING"
            t.execution_stopped_at = _now()
            for c in t.containers:
                c.last_status = "STOPPED"
            t.next, t.due = "stopped", t.due + step
        elif action == "stopped":
            t.last_status = "STOPPED"
            t.stopped_at = _now()
            t.connectivity = "DISCONNECTED"
            for c in t.containers:
                c.last_status = "STOPPED"


def _launch(svc: Service, dep: Deployment, count: int) -> None:
    backend = _backend(svc)
    try:
        td = backend.describe_task_definition(dep.task_definition)
    except Exception:  # noqa: BLE001 - deregistered/unknown task definition: nothing to start
        return
    started = []
    for _ in range(count):
        t = Task(backend, svc, dep, td)
        backend.tasks.setdefault(svc.cluster_name, {})[t.task_arn] = t
        svc.emu.tasks.append(t)
        started.append(t)
    if started:
        ids = " ".join(f"(task {t.id})" for t in started)
        _event(svc, f"(service {svc.name}) has started {len(started)} tasks: {ids}.")


def _prune(svc: Service) -> None:
    stopped = [t for t in svc.emu.tasks if t.last_status == "STOPPED"]
    for t in stopped[:-MAX_STOPPED_TASKS] if len(stopped) > MAX_STOPPED_TASKS else []:
        svc.emu.tasks.remove(t)
        _backend(svc).tasks.get(svc.cluster_name, {}).pop(t.task_arn, None)


def _tick_service(svc: Service, now: float) -> None:
    st: ServiceState = svc.emu
    for t in list(st.tasks):
        _advance(svc, t, now)
    _prune(svc)

    if svc.status != "ACTIVE":  # DeleteService: stop everything, then INACTIVE
        for t in st.tasks:
            _stop(t, "ServiceSchedulerInitiated", "Service is being deleted")
        _count(svc)
        if all(t.last_status == "STOPPED" for t in st.tasks):
            svc.status = "INACTIVE"
            svc.deployments = []
            _TRACKED.remove(svc)
        return

    primary = svc.deployments[0]
    cfg = svc.deployment_configuration or _default_config(None)
    desired = primary.desired_count

    def live(d: Deployment) -> list[Task]:
        return [t for t in st.tasks if t.deployment_id == d.id and t.desired_status == "RUNNING"]

    # Launch (a FAILED deployment stops launching tasks, as the circuit breaker does).
    mine = live(primary)
    if primary.rollout_state != "FAILED" and primary.task_definition and len(mine) < desired:
        total = sum(1 for t in st.tasks if t.desired_status == "RUNNING")
        room = max(desired, math.floor(desired * cfg["maximumPercent"] / 100)) - total
        n = min(desired - len(mine), room)
        if n > 0:
            _launch(svc, primary, n)
    # Scale in
    mine = live(primary)
    if len(mine) > desired:
        mine.sort(key=lambda t: t.last_status == "RUNNING")
        for t in mine[: len(mine) - desired]:
            _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {primary.id})")
        _stopped_event(svc, mine[: len(mine) - desired])

    # Drain older deployments while keeping minimumHealthyPercent of desired running
    # and healthy (a task failing its health checks does not count, as in real ECS).
    running_total = sum(1 for t in st.tasks if _healthy(t))
    min_healthy = math.ceil(desired * cfg["minimumHealthyPercent"] / 100)
    for old in svc.deployments[1:]:
        stopped = []
        for t in live(old):
            if t.last_status != "RUNNING":
                _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {old.id})")
            elif running_total - 1 >= min_healthy:
                running_total -= 1
                _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {old.id})")
                stopped.append(t)
        _stopped_event(svc, stopped)
    # Real ECS drops a deployment from the list once it has no tasks left (INACTIVE).
    svc.deployments = [svc.deployments[0]] + [
        d for d in svc.deployments[1:]
        if any(t.deployment_id == d.id and t.last_status != "STOPPED" for t in st.tasks)]

    _count(svc)
    _rollout(svc, primary, cfg, now)


def _healthy(t: Task) -> bool:
    return t.desired_status == "RUNNING" and t.last_status == "RUNNING" and not t.unhealthy


def _stopped_event(svc: Service, tasks: list[Task]) -> None:
    if tasks:
        ids = " ".join(f"(task {t.id})" for t in tasks)
        _event(svc, f"(service {svc.name}) has stopped {len(tasks)} running tasks: {ids}.")


def _count(svc: Service) -> None:
    total_running = total_pending = 0
    for d in svc.deployments:
        running = sum(1 for t in svc.emu.tasks if t.deployment_id == d.id and t.desired_status == "RUNNING"
                      and t.last_status == "RUNNING")
        pending = sum(1 for t in svc.emu.tasks if t.deployment_id == d.id and t.desired_status == "RUNNING"
                      and t.last_status in ("PROVISIONING", "PENDING", "ACTIVATING"))
        if (running, pending) != (d.running_count, d.pending_count):
            d.running_count, d.pending_count, d.updated_at = running, pending, _now()
        total_running += running
        total_pending += pending
    svc.running_count, svc.pending_count = total_running, total_pending
    if svc.deployments:
        svc.task_definition = svc.deployments[0].task_definition
    # Keep DescribeClusters' counters in line with our tasks.
    try:
        cluster = _backend(svc).clusters[svc.cluster_name]
        tasks = [t for s in _TRACKED if s.cluster_name == svc.cluster_name and s._account_id == svc._account_id
                 and s.region_name == svc.region_name for t in s.emu.tasks]
        cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
        cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING"))
    except Exception:  # noqa: BLE001
        pass


def _rollout(svc: Service, primary: Deployment, cfg: dict[str, Any], now: float) -> None:
    st: ServiceState = svc.emu
    desired = primary.desired_count
    live = [t for t in st.tasks if t.deployment_id == primary.id and t.desired_status == "RUNNING"]
    if primary.rollout_state == "IN_PROGRESS":
        if len(live) == desired and all(_healthy(t) for t in live):
            primary.stable_since = primary.stable_since or now
            if len(svc.deployments) == 1 and now - primary.stable_since >= STABLE_STEPS * SETTINGS.step:
                primary.rollout_state = "COMPLETED"
                primary.rollout_state_reason = f"ECS deployment {primary.id} completed."
                primary.updated_at = _now()
                st.outcomes[primary.id] = "COMPLETED"
                st.last_completed = primary
                _event(svc, f"(service {svc.name}) (deployment {primary.id}) deployment completed.")
        else:
            primary.stable_since = None
        cb = cfg["deploymentCircuitBreaker"]
        if primary.rollout_state == "IN_PROGRESS" and cb["enable"] and primary.failed_tasks >= _threshold(desired):
            primary.rollout_state = "FAILED"
            primary.rollout_state_reason = CB_REASON
            primary.updated_at = _now()
            st.outcomes[primary.id] = "FAILED"
            _event(svc, f"(service {svc.name}) deployment {primary.id} deployment failed: tasks failed to start.")
            target = st.last_completed
            if cb["rollback"] and target is not None and target is not primary:
                _event(svc, f"(service {svc.name}) rolling back to deployment {target.id}")
                _new_deployment(svc, target.task_definition)
                for t in live:  # the failed deployment's tasks go away with it
                    _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {primary.id})")
                return
    primary = svc.deployments[0]
    steady = (primary.rollout_state == "COMPLETED" and len(svc.deployments) == 1
              and svc.running_count == primary.desired_count and svc.pending_count == 0)
    if steady and not st.steady:
        _event(svc, f"(service {svc.name}) has reached a steady state.")
    st.steady = steady


# --------------------------------------------------------------------------- load balancers


def _target_groups(svc: Service) -> list[tuple[Any, int | None, str | None]]:
    from moto.elbv2.models import elbv2_backends

    out = []
    try:
        backend = elbv2_backends[svc._account_id][svc.region_name]
    except Exception:  # noqa: BLE001
        return out
    for lb in svc.load_balancers or []:
        tg = backend.target_groups.get(lb.get("targetGroupArn") or "")
        if tg is not None:
            out.append((tg, lb.get("containerPort"), lb.get("containerName")))
    return out


def _register_targets(svc: Service, t: Task) -> None:
    for tg, port, cname in _target_groups(svc):
        if getattr(tg, "target_type", "instance") != "ip" or not t.ip:
            continue  # instance targets would need an EC2 instance: not modelled
        port = port or next((c.port for c in t.containers if c.name == cname and c.port), None) or tg.port
        health = (("unhealthy", "Target.FailedHealthChecks", "Health checks failed") if t.unhealthy
                  else ("healthy", None, None))
        tg.targets[t.ip] = {"Id": t.ip, "Port": port, "emu_health": health}
        tg.deregistered_targets.pop(t.ip, None)
        t.targets.append((tg, t.ip, port))


def _deregister_targets(t: Task) -> None:
    for tg, ip, _ in t.targets:
        entry = tg.targets.pop(ip, None)
        if entry is not None:
            tg.deregistered_targets[ip] = {"Id": ip, "Port": entry["Port"]}
    t.targets = []


def _patched_health_for(orig: Any) -> Any:
    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        from moto.elbv2.models import FakeHealthStatus

        t = self.targets.get(target["Id"])
        if t is not None and "emu_health" in t:
            state, reason, desc = t["emu_health"]
            return FakeHealthStatus(t["Id"], t["Port"], self.health_check_port, state, reason, desc)
        return orig(self, target, ec2_backend)

    return health_for


# --------------------------------------------------------------------------- backend patches

_orig: dict[str, Any] = {}


def create_service(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Service:
    svc = _orig["create_service"](self, *args, **kwargs)
    _init_service(svc)
    return svc


def update_service(self: EC2ContainerServiceBackend, props: dict[str, Any]) -> Service:
    props = dict(props)
    # moto would rename deployments[0] as if it were a dict; we start a real deployment.
    force = _truthy(props.pop("force_new_deployment", False))
    td_str = props.get("task_definition")
    svc = self._get_service(props.get("cluster", "default"), props["service"].split("/")[-1])
    if not hasattr(svc, "emu"):
        return _orig["update_service"](self, props)
    new_td = self.describe_task_definition(td_str).arn if td_str else None
    svc = _orig["update_service"](self, props)
    # moto stored a given deploymentConfiguration as is; fill in the defaults.
    svc.deployment_configuration = _default_config(svc.deployment_configuration)
    primary = svc.deployments[0]
    if (new_td and new_td != primary.task_definition) or force:
        _new_deployment(svc, new_td or primary.task_definition)
    else:
        # Scaling only: real ECS resizes the PRIMARY deployment, no new deployment.
        primary.desired_count = svc.desired_count
        svc.emu.steady = svc.emu.steady and primary.running_count == svc.desired_count
    _count(svc)
    return svc


def delete_service(self: EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool) -> Service:
    svc = _orig["delete_service"](self, cluster_name, service_name, force)
    if hasattr(svc, "emu") and any(t.last_status != "STOPPED" for t in svc.emu.tasks):
        svc.status = "DRAINING"  # INACTIVE once the engine has stopped its tasks
    svc.desired_count = 0
    return svc


def list_tasks(self: EC2ContainerServiceBackend, cluster_str: str | None = None, container_instance: str | None = None,
               family: str | None = None, started_by: str | None = None, service_name: str | None = None,
               desiredStatus: str | None = None) -> list[Any]:
    # Real ListTasks filters on serviceName and defaults desiredStatus to RUNNING.
    tasks = _orig["list_tasks"](self, cluster_str, container_instance, family, started_by, None,
                                desiredStatus or "RUNNING")
    if service_name:
        svc = self._get_service(cluster_str or "default", service_name.split("/")[-1])
        tasks = [t for t in tasks if getattr(t, "group", None) == f"service:{svc.name}"]
    return tasks


def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
    cluster = self._get_cluster(cluster_str)
    task_id = task_str.split("/")[-1]
    for arn, t in self.tasks.get(cluster.name, {}).items():
        if isinstance(t, Task) and arn.endswith(task_id):
            # Real StopTask: desiredStatus STOPPED now, lastStatus follows; the service replaces it.
            if t.desired_status == "RUNNING":
                _stop(t, "UserInitiated", reason or "Task stopped by user")
            return t
    return _orig["stop_task"](self, cluster_str, task_str, reason)


def create_service_response(self: EC2ContainerServiceResponse) -> Any:
    result = _orig["create_service_response"](self)
    svc = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
    svc.deployment_configuration = _default_config(self._get_param("deploymentConfiguration"))
    return result


# --------------------------------------------------------------------------- CloudFormation


def _camel(value: Any) -> Any:
    return remap_nested_keys(value, pascal_to_camelcase) if value is not None else None


def _name(value: Any) -> str:
    return value.name if hasattr(value, "name") else str(value)


def _td_ref(value: Any) -> str | None:
    if value is None:
        return None
    return value.arn if hasattr(value, "arn") else str(value)


def _cfn_props(props: dict[str, Any]) -> dict[str, Any]:
    lbs = _camel(props.get("LoadBalancers"))
    return {"deployment_configuration": _camel(props.get("DeploymentConfiguration")),
            "network_configuration": _camel(props.get("NetworkConfiguration")),
            "load_balancers": lbs}


def cfn_create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
               **kwargs: Any) -> Service:
    props = cloudformation_json["Properties"]
    cluster = _name(props["Cluster"])
    desired = props.get("DesiredCount")
    # CloudFormation's default DesiredCount is 1 (moto used 0).
    desired = 1 if desired is None else int(desired)
    backend = ecs_backends[account_id][region_name]
    extra = _cfn_props(props)
    tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags") or []]
    svc = backend.create_service(
        cluster, resource_name, desired, task_definition_str=_td_ref(props.get("TaskDefinition")),
        load_balancers=extra["load_balancers"], tags=tags or None,
        deployment_controller=_camel(props.get("DeploymentController")),
        launch_type=props.get("LaunchType"), platform_version=props.get("PlatformVersion"),
        propagate_tags=props.get("PropagateTags") or "NONE",
    )
    # Not validated against EC2 (moto would): subnets often come from parameters.
    svc.network_configuration = extra["network_configuration"] or {}
    for d in svc.deployments:
        d.network_configuration = svc.network_configuration or None
    svc.deployment_configuration = _default_config(extra["deployment_configuration"])
    return svc


def cfn_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
               account_id: str, region_name: str) -> Service:
    props = cloudformation_json["Properties"]
    backend = ecs_backends[account_id][region_name]
    cluster_name = _name(props["Cluster"])
    if original_resource.cluster_arn != backend._get_cluster(cluster_name).arn:
        backend.delete_service(original_resource.cluster_name, original_resource.name, force=True)
        return cfn_create(cls, new_resource_name, cloudformation_json, account_id, region_name)
    extra = _cfn_props(props)
    force = props.get("ForceNewDeployment")
    update = {"cluster": cluster_name, "service": original_resource.name,
              "task_definition": _td_ref(props.get("TaskDefinition")),
              "desired_count": int(props["DesiredCount"]) if props.get("DesiredCount") is not None else None,
              "deployment_configuration": extra["deployment_configuration"],
              "load_balancers": extra["load_balancers"],
              "force_new_deployment": isinstance(force, dict) and _truthy(force.get("EnableForceNewDeployment"))}
    svc = backend.update_service(update)
    if extra["network_configuration"] is not None:
        svc.network_configuration = extra["network_configuration"]
    return svc


# Maps whose keys are user data, not property names: keep them as written.
_VERBATIM_MAPS = {"DockerLabels", "Options", "SystemControls", "DriverOpts", "Labels"}


def _camel_cdefs(value: Any) -> Any:
    if isinstance(value, list):
        return [_camel_cdefs(v) for v in value]
    if isinstance(value, dict):
        return {pascal_to_camelcase(k): (v if k in _VERBATIM_MAPS else _camel_cdefs(v)) for k, v in value.items()}
    return value


def _register_from_cfn(cloudformation_json: Any, account_id: str, region_name: str) -> Any:
    props = cloudformation_json["Properties"]
    family = props.get("Family", f"task-definition-{int(mock_random.random() * 10**6)}")
    return ecs_backends[account_id][region_name].register_task_definition(
        family=family, container_definitions=_camel_cdefs(props.get("ContainerDefinitions", [])),
        volumes=_camel_cdefs(props.get("Volumes", [])), memory=props.get("Memory"), cpu=props.get("Cpu"),
        network_mode=props.get("NetworkMode"), requires_compatibilities=props.get("RequiresCompatibilities"),
        task_role_arn=props.get("TaskRoleArn"), execution_role_arn=props.get("ExecutionRoleArn"),
    )


def td_cfn_create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
                  **kwargs: Any) -> Any:
    """moto dropped Cpu/NetworkMode/RequiresCompatibilities/roles and lower-cased label keys."""
    return _register_from_cfn(cloudformation_json, account_id, region_name)


def td_cfn_update(cls: Any, original_resource: Any, new_resource_name: str, cloudformation_json: Any,
                  account_id: str, region_name: str) -> Any:
    """Every TaskDefinition change is a replacement: a new revision. moto registered the
    ContainerDefinitions with CloudFormation's PascalCase keys (so ECS saw no image) and
    deregistered the old revision at once; real CloudFormation deregisters it in cleanup."""
    return _register_from_cfn(cloudformation_json, account_id, region_name)


def _service_delete(self: Service, account_id: str, region_name: str) -> None:
    """Stack deletion removes the service (moto's handler did nothing)."""
    backend = ecs_backends[account_id][region_name]
    if self.status == "ACTIVE":
        backend.delete_service(self.cluster_name, self.name, force=True)


def _cfn_stabilizer(stack: Any, op: Any) -> Any:
    """Real CloudFormation keeps AWS::ECS::Service in *_IN_PROGRESS until the deployment
    finishes, and fails it when the circuit breaker trips."""
    try:
        backend = ecs_backends[stack.account_id][stack.region_name]
    except Exception:  # noqa: BLE001
        return None
    svc = next((s for s in backend.services.values() if s.arn == op.physical), None)
    if svc is None or not hasattr(svc, "emu") or not svc.deployments or not svc.deployments[0].task_definition:
        return None  # nothing ECS could deploy: keep moto's immediate completion
    dep_id = svc.deployments[0].id
    deadline = time.monotonic() + SETTINGS.cfn_timeout

    def poll() -> str | None:
        outcome = svc.emu.outcomes.get(dep_id)
        if outcome == "FAILED":
            return ("Resource handler returned message: \"Error occurred during operation 'ECS Deployment "
                    f"Circuit Breaker was triggered'.\" (RequestToken: {uuid.uuid4()}, "
                    "HandlerErrorCode: GeneralServiceException)")
        if outcome == "COMPLETED" and svc.emu.steady:
            return ""
        if svc.status != "ACTIVE":
            return ""
        if time.monotonic() > deadline:
            return (f"Resource handler returned message: \"Exceeded attempts to wait\" (RequestToken: "
                    f"{uuid.uuid4()}, HandlerErrorCode: NotStabilized)")
        return None

    return poll


# --------------------------------------------------------------------------- control endpoint


def _speed_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            payload = json.loads(body or b"{}")
            with LOCK:
                if "stepSeconds" in payload:
                    step = float(payload["stepSeconds"])
                    if step <= 0:
                        raise ValueError("stepSeconds must be > 0")
                    SETTINGS.step = step
                if "failureThreshold" in payload:
                    ft = payload["failureThreshold"]
                    SETTINGS.failure_threshold = int(ft) if ft else None
                if "cfnTimeoutSeconds" in payload:
                    SETTINGS.cfn_timeout = float(payload["cfnTimeoutSeconds"])
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, "application/json", json.dumps({"error": str(exc)}).encode()
    return 200, "application/json", json.dumps(SETTINGS.as_dict()).encode()


# --------------------------------------------------------------------------- install


def install() -> None:
    """Monkeypatch moto's ECS backend/response/CloudFormation model (idempotent)."""
    if _orig:
        return
    from moto.elbv2.models import FakeTargetGroup

    from emulator import cloudformation

    B = EC2ContainerServiceBackend
    for name, fn in (("create_service", create_service), ("update_service", update_service),
                     ("delete_service", delete_service), ("list_tasks", list_tasks), ("stop_task", stop_task)):
        _orig[name] = getattr(B, name)
        setattr(B, name, fn)
    _orig["create_service_response"] = EC2ContainerServiceResponse.create_service
    EC2ContainerServiceResponse.create_service = create_service_response
    ecs_models.TaskDefinition.create_from_cloudformation_json = classmethod(td_cfn_create)
    ecs_models.TaskDefinition.update_from_cloudformation_json = classmethod(td_cfn_update)
    Service.create_from_cloudformation_json = classmethod(cfn_create)
    Service.update_from_cloudformation_json = classmethod(cfn_update)
    Service.delete = _service_delete
    FakeTargetGroup.health_for = _patched_health_for(FakeTargetGroup.health_for)
    cloudformation.STABILIZERS["AWS::ECS::Service"] = _cfn_stabilizer
    for method in ("GET", "POST"):
        control.EXTRA_ROUTES[(method, "/_emulator/ecs-speed")] = _speed_route

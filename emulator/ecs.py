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
  What a task definition refers to is checked as ECS does (ecs_references.py): registration
  without a needed execution role, roles ECS cannot assume at launch, and on Fargate the
  execution role's permissions, secrets and log groups at PENDING.
* container ``dockerLabels`` drive failures (see README): ``emulator.exit-code``,
  ``emulator.exit-after-seconds``, ``emulator.unhealthy``, ``emulator.start-seconds``, and
  transient (infrastructure) failures of a deployment's first launches: ``emulator.transient-failures``,
  ``emulator.transient-reason`` (capacity | eni | spot | maintenance), ``emulator.transient-after-seconds``.
* the deployment circuit breaker fails (and optionally rolls back) deployments;
  without it ECS retries forever.
* running tasks are registered in ELBv2 target groups (ip targets) of the service; a task in a
  subnet of another VPC than the target group is not (a service event says so) and never counts
  as healthy. CreateService/UpdateService refuse a load balancer whose container the task
  definition lacks or does not map the containerPort of (InvalidParameterException).
* RegisterTaskDefinition refuses a Fargate task size not in Fargate's table (ClientException).
* CloudFormation waits for AWS::ECS::Service deployments to finish, through
  ``cloudformation.STABILIZERS``.
* RunTask (moto's tasks sat RUNNING forever, or raised a 500 without container instances)
  starts standalone tasks on the same clock; their command exits (0 unless a label or the
  ``EMULATOR_EXIT_CODE`` / ``EMULATOR_EXIT_AFTER_SECONDS`` override environment says
  otherwise) and they stop. AWS's validation errors, clientToken idempotency per cluster.
* UpdateService/CreateService keep enableECSManagedTags, propagateTags (tags of new tasks)
  and volumeConfigurations (on the deployment; a change starts one).
* CODE_DEPLOY services run task sets instead of deployments (a PRIMARY one made with the
  service; codedeploy.py adds, promotes and drains the replacement); UpdateService refuses a
  taskDefinition for them as ECS does.
* ecs_deployments.py records a service deployment for every deployment and runs the
  BLUE_GREEN / LINEAR / CANARY strategies; this scheduler asks it whether a deployment may
  launch (``emu_hold``), whether old deployments may drain, and leaves a blue/green deployment's
  completion to it (``emu_managed``).

Timing: ``EMULATOR_ECS_STEP_SECONDS`` (launcher ``--ecs-step-seconds``) and
``POST /_emulator/ecs-speed``. Everything runs under ``state.LOCK``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import sys
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ecs import models as ecs_models
from moto.ecs.exceptions import ECSException, EcsClientException, InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, Service, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

from emulator import control, ecs_references
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
        # What task definitions refer to (roles, permissions, secrets, log groups) is checked as
        # ECS does (ecs_references.py); off only for tests that deliberately do not care.
        self.check_references = os.environ.get("EMULATOR_ECS_CHECK_REFERENCES", "").strip().lower() != "false"
        # A paused engine moves nothing (tasks, deployments, CodeDeploy): a test can look at a
        # state that lasts one step without racing the clock. Time still passes: whatever fell
        # due meanwhile happens at the first tick after the pause ends.
        self.paused = False

    def as_dict(self) -> dict[str, Any]:
        return {"stepSeconds": self.step, "failureThreshold": self.failure_threshold,
                "cfnTimeoutSeconds": self.cfn_timeout, "checkReferences": self.check_references,
                "paused": self.paused}


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
# Transient (infrastructure) failures, as ECS reports them. Capacity is a placement failure (no task,
# a service event); the ENI timeout stops the task in PROVISIONING; Spot interruption and Fargate task
# retirement stop a RUNNING task.
TRANSIENT_KINDS = ("capacity", "eni", "spot", "maintenance")
MSG_CAPACITY = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
MSG_ENI_TIMEOUT = "Timeout waiting for network interface provisioning to complete."
MSG_SPOT = "Your Spot Task was interrupted."
MSG_MAINTENANCE = "ECS is performing maintenance on the underlying infrastructure hosting the task"


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
        self.volume_configurations: list[dict[str, Any]] | None = None
        self.rollout_state = "IN_PROGRESS"
        self.rollout_state_reason = f"ECS deployment {self.id} in progress."
        self.stable_since: float | None = None
        # ecs_deployments.py bookkeeping: launch held (strategy not decided yet, blue/green before
        # SCALE_UP, stopped), managed by the blue/green stage machine, the target groups its tasks
        # register in (green), its service revision, the rollback deployment the breaker started.
        self.emu_hold = False
        self.emu_managed = False
        self.emu_load_balancers: list[dict[str, Any]] | None = None
        self.emu_revision: Any = None
        self.emu_rollback_dep: Any = None
        # Transient failures: launches of this deployment picked so far; no placement before this time.
        self.emu_transient_used = 0
        self.emu_place_retry_at = 0.0


class Container:
    def __init__(self, task: "Task", cdef: dict[str, Any], override: dict[str, Any] | None) -> None:
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
        # How the emulated process ends: RunTask's containerOverrides environment wins over the
        # task definition's dockerLabels. A one-off (RunTask) container's command finishes (exit 0
        # by default); a service container runs until stopped unless a label says otherwise.
        env = {str(e.get("name")): str(e.get("value", "")) for e in (override or {}).get("environment") or []
               if isinstance(e, dict)}
        code = env.get("EMULATOR_EXIT_CODE", self.labels.get("emulator.exit-code"))
        after = env.get("EMULATOR_EXIT_AFTER_SECONDS", self.labels.get("emulator.exit-after-seconds"))
        self.planned_exit: int | None = None
        if code is not None:
            try:
                self.planned_exit = int(code)
            except ValueError:
                self.planned_exit = 1
        elif task.standalone:
            self.planned_exit = 0
        try:
            self.exit_after: float | None = float(after) if after is not None else None
        except ValueError:
            self.exit_after = None


def _subnet(account_id: str, region: str, subnet_id: str | None) -> Any:
    """moto's EC2 subnet of that id, or None (subnets are not validated: templates often
    name made-up ones)."""
    if not subnet_id:
        return None
    try:
        from moto.ec2.models import ec2_backends

        return ec2_backends[account_id][region].get_subnet(subnet_id)
    except Exception:  # noqa: BLE001 - unknown subnet or region
        return None


# Private IPs held by a task's ENI until the task is stopped: AWS never gives two live ENIs
# one address, and target groups key their targets by it.
_IPS_IN_USE: set[str] = set()


def _random_ip(subnet: Any) -> str:
    if subnet is not None:
        try:
            net = ipaddress.ip_network(subnet.cidr_block, strict=False)
            if net.num_addresses > 8:  # AWS reserves the first four and the last address
                return str(net.network_address + mock_random.randint(4, net.num_addresses - 2))
        except (ValueError, AttributeError):
            pass
    return f"10.0.{mock_random.randint(0, 255)}.{mock_random.randint(4, 254)}"


def _private_ip(subnet: Any) -> str:
    """A free address (in the subnet's CIDR when moto's EC2 knows it), held until released."""
    ip = _random_ip(subnet)
    for _ in range(1000):  # a full subnet keeps the last pick rather than hang
        if ip not in _IPS_IN_USE:
            break
        ip = _random_ip(subnet)
    _IPS_IN_USE.add(ip)
    return ip


class Task:
    """A task of a service or a standalone (RunTask) one, stored in moto's backend.tasks so
    ListTasks/DescribeTasks/StopTask/TagResource see it; the engine moves it."""

    def __init__(self, backend: EC2ContainerServiceBackend, td: Any, *, cluster_name: str, cluster_arn: str,
                 launch_type: str | None, network_configuration: dict[str, Any] | None, group: str,
                 started_by: str | None, service: Service | None = None, deployment_id: str | None = None,
                 overrides: dict[str, Any] | None = None, tags: list[dict[str, str]] | None = None,
                 platform_version: str | None = None, capacity_provider_name: str | None = None,
                 container_instance_arn: str | None = None,
                 volume_configurations: list[dict[str, Any]] | None = None,
                 enable_execute_command: bool = False) -> None:
        self.id = uuid.uuid4().hex
        self.account_id = backend.account_id
        self.region = backend.region_name
        self.cluster_name = cluster_name
        self.cluster_arn = cluster_arn
        self._long_arn = backend.enable_long_arn_for_name(name="taskLongArnFormat")
        self.standalone = service is None
        self.task_definition_arn = td.arn
        self.last_status = "PROVISIONING"
        self.desired_status = "RUNNING"
        self.started_by = started_by or None
        self.group = group
        self.launch_type = launch_type
        self.capacity_provider_name = capacity_provider_name
        fargate = launch_type == "FARGATE"
        if fargate:
            self.platform_version = platform_version if platform_version and platform_version != "LATEST" else "1.4.0"
        else:
            self.platform_version = None
        os_family = ((getattr(td, "runtime_platform", None) or {}).get("operatingSystemFamily") or "LINUX")
        self.platform_family = ("Windows" if os_family.upper().startswith("WINDOWS") else "Linux") if fargate else None
        arch = ((getattr(td, "runtime_platform", None) or {}).get("cpuArchitecture") or "X86_64")
        self.attributes = [{"name": "ecs.cpu-architecture", "value": arch.lower()}]
        overrides = dict(overrides or {})
        self.cpu = overrides.get("cpu") or td.cpu
        self.memory = overrides.get("memory") or td.memory
        storage = overrides.get("ephemeralStorage") or getattr(td, "ephemeral_storage", None) or {"sizeInGiB": 20}
        self.ephemeral_storage = self.fargate_ephemeral_storage = dict(storage) if fargate else None
        self.enable_execute_command = bool(enable_execute_command)
        self.created_at = _now()
        self.version = 1
        self.health_status = "UNKNOWN"
        self.connectivity: str | None = None
        self.connectivity_at = None
        self.pull_started_at = self.pull_stopped_at = self.started_at = None
        self.stopping_at = self.stopped_at = self.execution_stopped_at = None
        self.stop_code: str | None = None
        self.stopped_reason: str | None = None
        self.container_instance_arn = container_instance_arn
        self.tags: list[dict[str, str]] = list(tags or [])
        # As AWS echoes them: every container of the task definition, with the overrides given.
        given = {o.get("name"): o for o in overrides.get("containerOverrides") or []}
        overrides["containerOverrides"] = [given.get(c.get("name")) or {"name": c.get("name")}
                                           for c in td.container_definitions]
        overrides.setdefault("inferenceAcceleratorOverrides", [])
        self.overrides = overrides
        self.resource_requirements = None
        self.containers = [Container(self, c, given.get(c.get("name"))) for c in td.container_definitions]
        # Attachments appear as AWS shows them: the ENI PRECREATED (subnet only) until the task is
        # provisioned, then ATTACHED with its address; EBS volumes CREATED, then ATTACHED.
        self.attachments: list[dict[str, Any]] = []
        self.ip: str | None = None
        self.vpc_id: str | None = None
        self.availability_zone = f"{self.region}a"
        self._eni: dict[str, Any] | None = None
        awsvpc = bool(network_configuration) or td.network_mode == "awsvpc" or fargate
        if awsvpc:
            subnets = ((network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
            subnet_id = mock_random.choice(subnets) if subnets else None
            subnet = _subnet(self.account_id, self.region, subnet_id)
            # Known only for a subnet moto's EC2 has (made-up ids are accepted, VPC unknown).
            self.vpc_id = getattr(subnet, "vpc_id", None) if subnet is not None else None
            if subnet is not None and getattr(subnet, "availability_zone", None):
                self.availability_zone = subnet.availability_zone
            # No real ENI: a made-up private IP (in the subnet's CIDR when moto's EC2 knows it).
            self.ip = _private_ip(subnet)
            self._eni = {"id": str(uuid.uuid4()), "type": "ElasticNetworkInterface", "status": "PRECREATED",
                         "details": [{"name": "subnetId", "value": subnet_id}] if subnet_id else []}
            self._eni_details = [
                {"name": "networkInterfaceId", "value": f"eni-{mock_random.get_random_hex(17)}"},
                {"name": "macAddress", "value": ":".join(  # locally administered, unicast, like AWS's
                    [f"{mock_random.randint(0, 63) * 4 + 2:02x}"] + [f"{mock_random.randint(0, 255):02x}" for _ in range(5)])},
                {"name": "privateDnsName", "value": _private_dns(self.ip, self.region)},
                {"name": "privateIPv4Address", "value": self.ip}]
            self.attachments.append(self._eni)
        self._volumes: list[dict[str, Any]] = []
        for vc in volume_configurations or []:
            ebs = vc.get("managedEBSVolume")
            if not isinstance(ebs, dict):
                continue
            delete = (ebs.get("terminationPolicy") or {}).get("deleteOnTermination", True)
            att = {"id": str(uuid.uuid4()), "type": "AmazonElasticBlockStorage", "status": "CREATED",
                   "details": [{"name": "roleArn", "value": ebs.get("roleArn")},
                               {"name": "volumeName", "value": vc.get("name")},
                               {"name": "deleteOnTermination", "value": str(_truthy(delete)).lower()}]}
            self._volumes.append(att)
            self.attachments.append(att)
        # engine bookkeeping
        self.service = service
        self.deployment_id = deployment_id
        # A task set's tasks register in the task set's target group, not the service's.
        self.load_balancers: list[dict[str, Any]] | None = None
        self.next: str | None = "pending"
        self.due = time.monotonic() + SETTINGS.step
        self.targets: list[tuple[Any, str, int]] = []  # (target group, id, port)
        # ELB refused to register it (a target group of another VPC): it runs, but never serves.
        self.unregistered = False
        # Fargate tasks have what their task definition refers to checked at PENDING (ecs_references);
        # why the task stops before running, once that is known.
        self.emu_fargate = fargate
        self.start_failure: ecs_references.StartFailure | None = None
        self.start_extra = max([_label_float(c, "emulator.start-seconds", 0.0) for c in self.containers] or [0.0])
        self.exit_plan: list[tuple[float, int, Container]] = []
        self.running_due = 0.0
        self.unhealthy = any(_truthy(c.labels.get("emulator.unhealthy")) for c in self.containers)
        # Transient failure this launch was picked for (eni, spot, maintenance; set by _launch), when it
        # strikes after RUNNING, whether it has; a retiring task waits for its replacement (maintenance).
        self.transient: str | None = None
        self.transient_after = max([_label_float(c, "emulator.transient-after-seconds", -1.0)
                                    for c in self.containers] or [-1.0])
        self.interrupted = False
        self.retiring = False
        self.never_executed = False

    @property
    def task_arn(self) -> str:
        if self._long_arn:
            return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{self.cluster_name}/{self.id}"
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task/{self.id}"

    def advance(self) -> None:
        """moto's DescribeTasks calls this on its own tasks; ours move on the engine's clock."""

    def attach(self) -> None:
        """Provisioned (PENDING): the ENI and EBS volumes are attached."""
        if self._eni is not None and self._eni["status"] == "PRECREATED":
            self._eni["status"] = "ATTACHED"
            self._eni["details"] = self._eni["details"] + self._eni_details
            for c in self.containers:
                c.network_interfaces = [{"attachmentId": self._eni["id"], "privateIpv4Address": self.ip}]
        for att in self._volumes:
            att["status"] = "ATTACHED"
            att["details"].append({"name": "volumeId", "value": f"vol-{mock_random.get_random_hex(17)}"})

    def eni_timed_out(self) -> None:
        """The ENI was created but never finished provisioning: its details show, it is never ATTACHED."""
        if self._eni is not None and self._eni["status"] == "PRECREATED":
            self._eni["details"] = self._eni["details"] + self._eni_details
            for c in self.containers:
                c.network_interfaces = [{"attachmentId": self._eni["id"], "privateIpv4Address": self.ip}]

    def detach(self, status: str) -> None:
        for att in self.attachments:
            if att["status"] != "DELETED":
                att["status"] = status


def _private_dns(ip: str, region: str) -> str:
    host = "ip-" + ip.replace(".", "-")
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def _label_float(c: Container, key: str, default: float) -> float:
    try:
        return float(c.labels.get(key, default))
    except ValueError:
        return default


class ServiceState:
    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.outcomes: dict[str, str] = {}  # deployment id -> COMPLETED | FAILED
        self.last_completed: Deployment | None = None
        self.steady = False


_TRACKED: list[Service] = []
# CODE_DEPLOY services (task sets instead of deployments), moved by the same engine.
_TRACKED_TS: list[Service] = []
# Other modules (codedeploy.py) run on the engine's clock: fn(now) called under LOCK every tick.
TICKERS: list[Any] = []
# Standalone (RunTask) tasks, moved by the same engine as service tasks.
_STANDALONE: list[Task] = []
_engine_started = threading.Event()
_INHERIT: Any = object()


def _event(svc: Service, message: str) -> None:
    svc.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": message})
    del svc.events[MAX_EVENTS:]


def _default_config(given: dict[str, Any] | None) -> dict[str, Any]:
    from emulator import ecs_deployments

    cfg = ecs_deployments.normalize_config(dict(given or {}))
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
    controller = (svc.deployment_controller or {}).get("type", "ECS")
    if controller == "CODE_DEPLOY":
        _init_task_set_service(svc)
        return
    if controller != "ECS":
        return  # EXTERNAL: task sets made by the caller (moto's, not run by the engine)
    from emulator import ecs_deployments

    svc.emu = ServiceState()
    svc.deployments = [Deployment(svc, svc.task_definition, svc.desired_count)]
    ecs_deployments.on_new_deployment(svc, svc.deployments[0], [])
    if svc not in _TRACKED:
        _TRACKED.append(svc)
    _start_engine()


def _new_deployment(svc: Service, task_definition: str | None,
                    volume_configurations: list[dict[str, Any]] | None = _INHERIT) -> Deployment:
    previous = next((d for d in svc.deployments if d.status == "PRIMARY"), None)
    for d in svc.deployments:
        if d.status == "PRIMARY":
            d.status = "ACTIVE"
            d.updated_at = _now()
    dep = Deployment(svc, task_definition, svc.desired_count)
    # A deployment keeps the service's volume configuration unless the update gives one.
    if volume_configurations is _INHERIT:
        volume_configurations = previous.volume_configurations if previous is not None else None
    dep.volume_configurations = volume_configurations
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
                if SETTINGS.paused:
                    continue
                now = time.monotonic()
                for svc in list(_TRACKED):
                    _tick_service(svc, now)
                for svc in list(_TRACKED_TS):
                    _tick_task_sets(svc, now)
                _tick_standalone(now)
                for tick in list(TICKERS):
                    tick(now)
        except Exception:  # noqa: BLE001 - never let the scheduler die
            import traceback

            traceback.print_exc()


def _backend(svc: Service) -> EC2ContainerServiceBackend:
    return ecs_backends[svc._account_id][svc.region_name]


def _deployment(svc: Service, dep_id: str) -> Deployment | None:
    return next((d for d in svc.deployments if d.id == dep_id), None)


def _fail_task(svc: Service | None, t: Task) -> None:
    if svc is None:
        return  # a standalone task belongs to no deployment
    dep = _deployment(svc, t.deployment_id or "")
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


def _advance(svc: Service | None, t: Task, now: float) -> None:
    """Move a task through its states; svc is None for a standalone (RunTask) task."""
    step = SETTINGS.step
    while t.next and now >= t.due:
        action, t.next = t.next, None
        t.version += 1
        if action == "pending" and t.transient == "eni":
            # ENI provisioning timed out: the task stops from PROVISIONING, nothing ever ran.
            t.eni_timed_out()
            t.never_executed = True
            for c in t.containers:
                c.last_status = "STOPPED"
            _fail_task(svc, t)
            _stop(t, "TaskFailedToStart", MSG_ENI_TIMEOUT)
        elif action == "pending":
            t.last_status = "PENDING"
            t.pull_started_at = _now()
            t.connectivity, t.connectivity_at = "CONNECTED", _now()
            t.attach()
            # The agent retrieves registry auth and secrets, pulls the images, starts the log driver.
            t.start_failure = _start_failure(t)
            t.next, t.due = ("start_fail", t.due + step) if t.start_failure else ("running", t.due + step + t.start_extra)
        elif action == "start_fail":
            failure = t.start_failure or ecs_references.StartFailure("CannotPullContainerError")
            t.pull_stopped_at = t.execution_stopped_at = _now()
            for c in t.containers:
                c.reason = failure.containers.get(c.name, c.reason)
                c.last_status = "STOPPED"
            _fail_task(svc, t)
            if svc is not None and failure.resource_initialization:
                _event(svc, f"(service {svc.name}) was unable to place a task. Reason: {failure.reason}.")
            _stop(t, "TaskFailedToStart", failure.reason)
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
            if svc is not None:
                _register_targets(svc, t)
            t.running_due = t.due
            # Each container with a planned exit (every container of a one-off task) exits on
            # its own schedule; only an essential one stops the task.
            t.exit_plan = sorted((t.due + (c.exit_after if c.exit_after is not None else step), i, c)
                                 for i, c in enumerate(t.containers) if c.planned_exit is not None)
            _schedule_after_exits(svc, t)
        elif action == "exit":
            essential_exited = False
            while t.exit_plan and t.exit_plan[0][0] <= t.due:
                _, _, c = t.exit_plan.pop(0)
                if c.last_status != "RUNNING":
                    continue
                c.exit_code = c.planned_exit
                c.last_status = "STOPPED"
                essential_exited = essential_exited or c.essential
            if essential_exited:
                t.execution_stopped_at = _now()
                _fail_task(svc, t)
                _stop(t, "EssentialContainerExited", "Essential container in task exited")
            else:
                _schedule_after_exits(svc, t)
        elif action == "interrupt":
            t.interrupted = True
            if t.transient == "spot":
                _stop(t, "SpotInterruption", MSG_SPOT)
            else:  # maintenance: the scheduler starts a replacement, then stops it (_retire)
                t.retiring = True
                _schedule_after_exits(svc, t)
        elif action == "unhealthy":
            assert svc is not None
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
            if not t.never_executed:
                t.execution_stopped_at = t.execution_stopped_at or _now()
            for c in t.containers:
                c.last_status = "STOPPED"
            t.detach("DETACHED")
            t.next, t.due = "stopped", t.due + step
        elif action == "stopped":
            t.last_status = "STOPPED"
            t.stopped_at = _now()
            t.connectivity = "DISCONNECTED"
            t.detach("DELETED")
            if t.ip:
                _IPS_IN_USE.discard(t.ip)
            for c in t.containers:
                c.last_status = "STOPPED"


def _start_failure(t: Task) -> ecs_references.StartFailure | None:
    try:
        td = ecs_backends[t.account_id][t.region].describe_task_definition(t.task_definition_arn)
    except Exception:  # noqa: BLE001 - the revision is gone: only the images are known
        td = None
    if td is None:
        return ecs_references.start_failure(t, None, False)
    return ecs_references.start_failure(t, td, SETTINGS.check_references)


def _fargate_strategy(strategy: list[dict[str, Any]] | None) -> bool:
    return any((c.get("capacityProvider") or "") in FARGATE_PROVIDERS for c in strategy or [])


def _schedule_after_exits(svc: Service | None, t: Task) -> None:
    """Next event of a RUNNING task: its next container exit, else (services only) the
    health-check failure of an `emulator.unhealthy` task; whichever comes first of that and a
    Spot interruption / task retirement it was picked for. A standalone task that fails its
    container health checks keeps running, as on AWS (only services replace unhealthy tasks)."""
    options: list[tuple[float, int, str]] = []
    if t.exit_plan:
        options.append((t.exit_plan[0][0], 0, "exit"))
    elif svc is not None and t.unhealthy:
        after = max([_label_float(c, "emulator.exit-after-seconds", SETTINGS.step) for c in t.containers])
        options.append((max(t.due, t.running_due + after), 1, "unhealthy"))
    if svc is not None and t.transient in ("spot", "maintenance") and not t.interrupted:
        after = t.transient_after if t.transient_after >= 0 else SETTINGS.step
        options.append((max(t.due, t.running_due + after), 2, "interrupt"))
    if options:
        t.due, _, t.next = min(options)


_WARNED_TRANSIENT: set[str] = set()


def _transient_plan(td: Any) -> tuple[int, str] | None:
    """(n, kind) from the task definition's `emulator.transient-failures` / `emulator.transient-reason`
    labels: the first n launches of each deployment fail that way (kind capacity when not given)."""
    n, kind = 0, None
    for cdef in td.container_definitions:
        labels = cdef.get("dockerLabels") or {}
        try:
            n = max(n, int(str(labels.get("emulator.transient-failures", "0")).strip() or "0"))
        except ValueError:
            pass
        if kind is None and labels.get("emulator.transient-reason") is not None:
            kind = str(labels["emulator.transient-reason"]).strip().lower()
    if n <= 0:
        return None
    kind = kind or "capacity"
    if kind not in TRANSIENT_KINDS:
        if td.arn not in _WARNED_TRANSIENT:
            _WARNED_TRANSIENT.add(td.arn)
            print(f"emulator: {td.arn}: unknown emulator.transient-reason {kind!r} (one of "
                  f"{', '.join(TRANSIENT_KINDS)}); no transient failures", file=sys.stderr)
        return None
    return n, kind


def _launch(svc: Service, dep: Any, count: int) -> None:
    """Start count tasks of a deployment, or of a task set (which brings its own launch type,
    network configuration, platform version and target group)."""
    backend = _backend(svc)
    task_set = isinstance(dep, TaskSet)
    if time.monotonic() < dep.emu_place_retry_at:
        return  # a placement just failed: the scheduler tries again a step later
    try:
        td = backend.describe_task_definition(dep.task_definition)
    except Exception:  # noqa: BLE001 - deregistered/unknown task definition: nothing to start
        return
    plan = _transient_plan(td)
    failed_placements = 0
    started = []
    # ECS assumes the task's roles to launch it; one it cannot assume fails every launch.
    role_error = ecs_references.launch_error(td, svc._account_id) if SETTINGS.check_references else None
    launch_type = dep.launch_type if task_set else svc.launch_type
    if launch_type:
        fargate = launch_type == "FARGATE"
    else:  # a capacity provider strategy (the task set's, else the cluster's default one)
        strategy = dep.capacity_provider_strategy if task_set else None
        if not strategy:
            cluster = backend.clusters.get(svc.cluster_name)
            strategy = getattr(cluster, "default_capacity_provider_strategy", None)
        fargate = _fargate_strategy(strategy)
    # Tags as the service propagates them to tasks launched from now on.
    tags = _propagated_tags(getattr(svc, "propagate_tags", None), td, service_tags=svc.tags)
    if _truthy(getattr(svc, "enable_ecs_managed_tags", False)):
        tags += [{"key": "aws:ecs:clusterName", "value": svc.cluster_name},
                 {"key": "aws:ecs:serviceName", "value": svc.name}]
    for _ in range(count):
        kind = None
        if plan is not None and dep.emu_transient_used < plan[0]:
            dep.emu_transient_used += 1
            kind = plan[1]
        if kind == "capacity" or role_error:
            failed_placements += 1  # Fargate had no capacity, or the role: no task at all
            continue
        t = Task(backend, td, cluster_name=svc.cluster_name, cluster_arn=svc.cluster_arn,
                 launch_type=launch_type,
                 network_configuration=dep.network_configuration if task_set else svc.network_configuration,
                 group=f"service:{svc.name}", started_by=dep.id, service=svc, deployment_id=dep.id,
                 tags=tags, platform_version=dep.platform_version if task_set else svc.platform_version,
                 volume_configurations=dep.volume_configurations)
        t.transient = kind
        t.emu_fargate = fargate
        if task_set:
            t.load_balancers = dep.load_balancers
        elif getattr(dep, "emu_load_balancers", None) is not None:
            t.load_balancers = dep.emu_load_balancers  # blue/green: the green target groups
        backend.tasks.setdefault(svc.cluster_name, {})[t.task_arn] = t
        (svc.emu_ts if task_set else svc.emu).tasks.append(t)
        started.append(t)
    if started:
        ids = " ".join(f"(task {t.id})" for t in started)
        who = f"(service {svc.name}, taskSet {dep.id})" if task_set else f"(service {svc.name})"
        _event(svc, f"{who} has started {len(started)} tasks: {ids}.")
    if failed_placements:
        # A launch the scheduler could not place counts as a failed task of the deployment (and for
        # the circuit breaker). ECS does not repeat an event identical to the newest one.
        if not task_set:
            dep.failed_tasks += failed_placements
            dep.updated_at = _now()
        if role_error:
            msg = f"(service {svc.name}) failed to launch a task with (error {role_error})."
        else:
            msg = (f"(service {svc.name}) was unable to place a task. Reason: {MSG_CAPACITY}. "
                   "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.")
        if not svc.events or svc.events[0].get("message") != msg:
            _event(svc, msg)
        dep.emu_place_retry_at = time.monotonic() + SETTINGS.step


def _prune(svc: Service) -> None:
    stopped = [t for t in svc.emu.tasks if t.last_status == "STOPPED"]
    for t in stopped[:-MAX_STOPPED_TASKS] if len(stopped) > MAX_STOPPED_TASKS else []:
        svc.emu.tasks.remove(t)
        _backend(svc).tasks.get(svc.cluster_name, {}).pop(t.task_arn, None)


def _tick_service(svc: Service, now: float) -> None:
    from emulator import ecs_deployments as sdm

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
            sdm.forget_service(svc)
            _TRACKED.remove(svc)
        return

    # Service deployments first: they decide whether the new deployment may launch (blue/green
    # launches green at SCALE_UP) and may put blue back as PRIMARY (rollback).
    sdm.tick(svc, now)
    primary = svc.deployments[0]
    cfg = svc.deployment_configuration or _default_config(None)
    desired = primary.desired_count

    def live(d: Deployment) -> list[Task]:
        # A task being retired (maintenance) no longer counts: the scheduler replaces it first.
        return [t for t in st.tasks if t.deployment_id == d.id and t.desired_status == "RUNNING" and not t.retiring]

    # Launch (a FAILED deployment stops launching tasks, as the circuit breaker does).
    mine = live(primary)
    can_launch = (primary.rollout_state != "FAILED" and bool(primary.task_definition)
                  and not sdm.launch_hold(primary))
    if can_launch and len(mine) < desired:
        if primary.emu_managed:
            n = desired - len(mine)  # blue/green: green scales up to 100% next to blue
        else:
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

    min_healthy = math.ceil(desired * cfg["minimumHealthyPercent"] / 100)
    # Fargate task retirement: the replacement is started first, the retired task stops once
    # minimumHealthyPercent allows it, or at once when no replacement can be started.
    total = sum(1 for t in st.tasks if t.desired_status == "RUNNING")
    cap = max(desired, math.floor(desired * cfg["maximumPercent"] / 100))
    blocked = len(live(primary)) < desired and (not can_launch or (not primary.emu_managed and total >= cap))
    _retire(svc, st.tasks, min_healthy, blocked)

    # Drain older deployments while keeping minimumHealthyPercent of desired running
    # and healthy (a task failing its health checks does not count, as in real ECS).
    running_total = sum(1 for t in st.tasks if _healthy(t))
    # A blue/green-family deployment keeps blue until its CLEAN_UP stage stops it.
    for old in ([] if sdm.drain_hold(svc) else svc.deployments[1:]):
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
    sdm.sync_service(svc)


def _healthy(t: Task) -> bool:
    return (t.desired_status == "RUNNING" and t.last_status == "RUNNING" and not t.unhealthy and not t.retiring
            and not t.unregistered)


def _retire(svc: Service, tasks: list[Task], min_healthy: int, blocked: bool) -> None:
    """Stop the tasks being retired for Fargate maintenance once the healthy tasks left keep
    minimumHealthyPercent (their replacements run), or when no replacement can be started."""
    retiring = [t for t in tasks if t.retiring and t.desired_status == "RUNNING"]
    if retiring and (blocked or sum(1 for t in tasks if _healthy(t)) >= min_healthy):
        for t in retiring:
            _stop(t, "ServiceSchedulerInitiated", f"Service {svc.name}: {MSG_MAINTENANCE}")


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
    _cluster_counts(_backend(svc), svc.cluster_name)


def _cluster_counts(backend: EC2ContainerServiceBackend, cluster_name: str) -> None:
    """Keep DescribeClusters' counters in line with our (service and standalone) tasks."""
    cluster = backend.clusters.get(cluster_name)
    if cluster is None:
        return
    tasks = [t for t in backend.tasks.get(cluster_name, {}).values() if isinstance(t, Task)]
    cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
    cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING"))


def _rollout(svc: Service, primary: Deployment, cfg: dict[str, Any], now: float) -> None:
    st: ServiceState = svc.emu
    desired = primary.desired_count
    live = [t for t in st.tasks if t.deployment_id == primary.id and t.desired_status == "RUNNING"]
    # A blue/green-family deployment (or one being stopped) is completed or failed by ecs_deployments.
    if primary.rollout_state == "IN_PROGRESS" and not primary.emu_managed and not primary.emu_hold:
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
                from emulator import ecs_deployments

                _event(svc, f"(service {svc.name}) rolling back to deployment {target.id}")
                rollback = _new_deployment(svc, target.task_definition, target.volume_configurations)
                ecs_deployments.on_circuit_breaker_rollback(svc, primary, rollback, target)
                for t in live:  # the failed deployment's tasks go away with it
                    _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {primary.id})")
                return
    primary = svc.deployments[0]
    steady = (primary.rollout_state == "COMPLETED" and len(svc.deployments) == 1
              and svc.running_count == primary.desired_count and svc.pending_count == 0)
    if steady and not st.steady:
        _event(svc, f"(service {svc.name}) has reached a steady state.")
    st.steady = steady


# --------------------------------------------------------------------------- task sets (CODE_DEPLOY)

MSG_CODE_DEPLOY_TD = ("Unable to update task definition on services with a CODE_DEPLOY deployment controller. "
                      "Use AWS CodeDeploy to trigger a new deployment.")


class TaskSet:
    """A task set of a CODE_DEPLOY service (DescribeServices `taskSets`, DescribeTaskSets). ECS makes
    the first one (PRIMARY, no externalId) with the service; CodeDeploy adds the replacement. Its
    tasks run on the engine like a deployment's (`startedBy` = the task set id)."""

    def __init__(self, svc: Service, task_definition: str | None, *, load_balancers: list[dict[str, Any]] | None,
                 network_configuration: dict[str, Any] | None, launch_type: str | None,
                 platform_version: str | None, capacity_provider_strategy: list[dict[str, Any]] | None = None,
                 external_id: str | None = None, started_by: str | None = None, status: str = "ACTIVE") -> None:
        self.id = f"ecs-svc/{mock_random.randint(10**18, 10**19 - 1)}"
        self.task_set_arn = (f"arn:aws:ecs:{svc.region_name}:{svc._account_id}:task-set/"
                             f"{svc.cluster_name}/{svc.name}/{self.id}")
        self.service_arn = svc.arn
        self.cluster_arn = svc.cluster_arn
        self.started_by = started_by
        self.external_id = external_id
        self.status = status
        self.task_definition = task_definition
        self.computed_desired_count = 0
        self.pending_count = self.running_count = 0
        self.created_at = self.updated_at = _now()
        self.capacity_provider_strategy = list(capacity_provider_strategy or [])
        fargate = launch_type == "FARGATE" or any(
            (c.get("capacityProvider") or "") in FARGATE_PROVIDERS for c in self.capacity_provider_strategy)
        self.launch_type = None if self.capacity_provider_strategy else launch_type
        self.platform_version = (platform_version or "LATEST") if fargate else None
        self.platform_family = "Linux" if fargate else None
        self.network_configuration = network_configuration or None
        self.load_balancers = [dict(lb) for lb in load_balancers or []]
        self.service_registries: list[dict[str, Any]] = []
        self.scale = {"value": 100.0, "unit": "PERCENT"}
        self.stability_status = "STABILIZING"
        self.stability_status_at = _now()
        self.tags: list[dict[str, str]] = []
        # engine bookkeeping (what _launch reads from a deployment)
        self.volume_configurations: list[dict[str, Any]] | None = None
        self.emu_transient_used = 0
        self.emu_place_retry_at = 0.0
        self.stable_since: float | None = None


class TaskSetState:
    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.steady = False


def _init_task_set_service(svc: Service) -> None:
    """CODE_DEPLOY: `deployments` stays empty (as on AWS); ECS runs one PRIMARY task set."""
    svc.emu_ts = TaskSetState()
    svc.task_sets = []
    if svc.task_definition:
        ts = TaskSet(svc, svc.task_definition, load_balancers=svc.load_balancers,
                     network_configuration=svc.network_configuration or None, launch_type=svc.launch_type,
                     platform_version=svc.platform_version, status="PRIMARY")
        ts.computed_desired_count = svc.desired_count
        svc.task_sets.append(ts)
    if svc not in _TRACKED_TS:
        _TRACKED_TS.append(svc)
    _start_engine()


def sync_task_set_network(svc: Service) -> None:
    """CreateService/CloudFormation set the network configuration after moto made the service."""
    for ts in getattr(svc, "task_sets", None) or []:
        if isinstance(ts, TaskSet) and ts.status == "PRIMARY" and ts.external_id is None:
            ts.network_configuration = svc.network_configuration or None


def find_code_deploy_service(account_id: str, region: str, cluster: str, service: str) -> Service | None:
    try:
        backend = ecs_backends[account_id][region]
        return backend.services.get(f"{cluster.split('/')[-1]}:{service.split('/')[-1]}")
    except Exception:  # noqa: BLE001
        return None


def primary_task_set(svc: Service) -> TaskSet | None:
    return next((ts for ts in svc.task_sets if ts.status == "PRIMARY"), None)


def create_task_set(svc: Service, task_definition: str, *, load_balancers: list[dict[str, Any]],
                    network_configuration: dict[str, Any] | None, platform_version: str | None,
                    capacity_provider_strategy: list[dict[str, Any]] | None, external_id: str) -> TaskSet:
    """The replacement task set CodeDeploy's Install creates (ACTIVE, scale 100%)."""
    ts = TaskSet(svc, task_definition, load_balancers=load_balancers,
                 network_configuration=network_configuration or svc.network_configuration or None,
                 launch_type=svc.launch_type, platform_version=platform_version or svc.platform_version,
                 capacity_provider_strategy=capacity_provider_strategy, external_id=external_id,
                 started_by="CODE_DEPLOY")
    ts.computed_desired_count = svc.desired_count
    svc.task_sets.append(ts)
    svc.emu_ts.steady = False
    return ts


def set_primary_task_set(svc: Service, ts: TaskSet) -> None:
    """UpdateServicePrimaryTaskSet: the service takes the task set's task definition and load balancers."""
    for other in svc.task_sets:
        if other is not ts and other.status == "PRIMARY":
            other.status, other.updated_at = "ACTIVE", _now()
    ts.status, ts.updated_at = "PRIMARY", _now()
    svc.task_definition = ts.task_definition
    svc.load_balancers = [dict(lb) for lb in ts.load_balancers]


def drain_task_set(svc: Service, ts: TaskSet) -> None:
    """DeleteTaskSet as CodeDeploy does it: scale 0, DRAINING; it leaves the service once its tasks stopped."""
    if ts.status != "DRAINING":
        ts.status, ts.scale, ts.updated_at = "DRAINING", {"value": 0.0, "unit": "PERCENT"}, _now()
        svc.emu_ts.steady = False


def task_set_steady(ts: TaskSet) -> bool:
    return ts.stability_status == "STEADY_STATE" and ts.running_count == ts.computed_desired_count


def task_set_tasks(svc: Service, ts: TaskSet) -> list[Task]:
    return [t for t in svc.emu_ts.tasks if t.deployment_id == ts.id]


def _count_task_sets(svc: Service) -> None:
    running_total = pending_total = 0
    for ts in svc.task_sets:
        live = [t for t in svc.emu_ts.tasks if t.deployment_id == ts.id and t.desired_status == "RUNNING"]
        running = sum(1 for t in live if t.last_status == "RUNNING")
        pending = sum(1 for t in live if t.last_status in ("PROVISIONING", "PENDING", "ACTIVATING"))
        if (running, pending) != (ts.running_count, ts.pending_count):
            ts.running_count, ts.pending_count, ts.updated_at = running, pending, _now()
        running_total += running
        pending_total += pending
    svc.running_count, svc.pending_count = running_total, pending_total
    primary = primary_task_set(svc)
    if primary is not None:
        svc.task_definition = primary.task_definition
    _cluster_counts(_backend(svc), svc.cluster_name)


def _tick_task_sets(svc: Service, now: float) -> None:
    st: TaskSetState = svc.emu_ts
    for t in list(st.tasks):
        _advance(svc, t, now)
    stopped = [t for t in st.tasks if t.last_status == "STOPPED"]
    for t in stopped[:-MAX_STOPPED_TASKS] if len(stopped) > MAX_STOPPED_TASKS else []:
        st.tasks.remove(t)
        _backend(svc).tasks.get(svc.cluster_name, {}).pop(t.task_arn, None)

    if svc.status != "ACTIVE":  # DeleteService: stop everything, then INACTIVE
        for t in st.tasks:
            _stop(t, "ServiceSchedulerInitiated", "Service is being deleted")
        _count_task_sets(svc)
        if all(t.last_status == "STOPPED" for t in st.tasks):
            svc.status = "INACTIVE"
            svc.task_sets = []
            _TRACKED_TS.remove(svc)
        return

    for ts in list(svc.task_sets):
        desired = 0 if ts.status == "DRAINING" else math.ceil(
            svc.desired_count * float(ts.scale.get("value") or 0) / 100 - 1e-9)
        if desired != ts.computed_desired_count:
            ts.computed_desired_count, ts.updated_at = desired, _now()
        live = [t for t in st.tasks if t.deployment_id == ts.id and t.desired_status == "RUNNING"
                and not t.retiring]
        if len(live) < desired and ts.task_definition:
            _launch(svc, ts, desired - len(live))
        elif len(live) > desired:
            live.sort(key=lambda t: t.last_status == "RUNNING")
            extra = live[: len(live) - desired]
            for t in extra:
                _stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {ts.id})")
            running = [t for t in extra if t.last_status == "RUNNING"]
            if running:
                ids = " ".join(f"(task {t.id})" for t in running)
                _event(svc, f"(service {svc.name}, taskSet {ts.id}) has stopped {len(running)} running tasks: {ids}.")
        cfg = svc.deployment_configuration or _default_config(None)
        _retire(svc, task_set_tasks(svc, ts), math.ceil(desired * cfg["minimumHealthyPercent"] / 100),
                blocked=not ts.task_definition)
        # A drained task set leaves the service once its tasks have stopped.
        if ts.status == "DRAINING" and all(t.last_status == "STOPPED" for t in task_set_tasks(svc, ts)):
            svc.task_sets.remove(ts)
    _count_task_sets(svc)

    for ts in svc.task_sets:
        live = [t for t in st.tasks if t.deployment_id == ts.id and t.desired_status == "RUNNING"]
        settled = (ts.running_count == ts.computed_desired_count and ts.pending_count == 0
                   and all(_healthy(t) for t in live)
                   and not any(t.deployment_id == ts.id and t.desired_status == "STOPPED" and t.last_status != "STOPPED"
                               for t in st.tasks))
        ts.stable_since = (ts.stable_since or now) if settled else None
        status = ("STEADY_STATE" if settled and now - ts.stable_since >= STABLE_STEPS * SETTINGS.step
                  else "STABILIZING")
        if status != ts.stability_status:
            ts.stability_status, ts.stability_status_at = status, _now()
            if status == "STEADY_STATE":
                _event(svc, f"(service {svc.name}, taskSet {ts.id}) updated state to STEADY_STATE.")
    steady = bool(svc.task_sets) and all(ts.stability_status == "STEADY_STATE" for ts in svc.task_sets)
    if steady and not st.steady:
        _event(svc, f"(service {svc.name}) has reached a steady state.")
    st.steady = steady


# --------------------------------------------------------------------------- load balancers


def _target_groups(svc: Service, load_balancers: list[dict[str, Any]] | None = None
                   ) -> list[tuple[Any, int | None, str | None]]:
    from moto.elbv2.models import elbv2_backends

    out = []
    try:
        backend = elbv2_backends[svc._account_id][svc.region_name]
    except Exception:  # noqa: BLE001
        return out
    for lb in (svc.load_balancers if load_balancers is None else load_balancers) or []:
        tg = backend.target_groups.get(lb.get("targetGroupArn") or "")
        if tg is not None:
            out.append((tg, lb.get("containerPort"), lb.get("containerName")))
    return out


MSG_REGISTER_VPC = ("(service {service}) failed to register targets in (target-group {arn}) with (error The "
                    "following targets are not in the target group VPC '{vpc}': '{ip}')")


def _register_targets(svc: Service, t: Task) -> None:
    for tg, port, cname in _target_groups(svc, t.load_balancers):
        if getattr(tg, "target_type", "instance") != "ip" or not t.ip:
            continue  # instance targets would need an EC2 instance: not modelled
        tg_vpc = getattr(tg, "vpc_id", None)
        if t.vpc_id and tg_vpc and t.vpc_id != tg_vpc:
            # ELB refuses an IP outside the target group's VPC: ECS says so for every task it starts,
            # and the task never counts as healthy, so the deployment never completes.
            t.unregistered = True
            _event(svc, MSG_REGISTER_VPC.format(service=svc.name, arn=tg.arn, vpc=tg_vpc, ip=t.ip))
            continue
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


MSG_LB_NO_CONTAINER = "The container {name} does not exist in the task definition."
MSG_LB_NO_PORT = "The container {name} did not have a container port {port} defined."


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def check_load_balancer_containers(td: Any, load_balancers: list[dict[str, Any]] | None) -> None:
    """CreateService/UpdateService: the container each load balancer names must be in the task
    definition and map the containerPort (InvalidParameterException, as ECS answers)."""
    if td is None:
        return
    cdefs = [c for c in td.container_definitions or [] if isinstance(c, dict)]
    for lb in load_balancers or []:
        if not isinstance(lb, dict) or not lb.get("containerName"):
            continue
        name, port = lb["containerName"], _int(lb.get("containerPort"))
        cdef = next((c for c in cdefs if c.get("name") == name), None)
        if cdef is None:
            raise InvalidParameterException(MSG_LB_NO_CONTAINER.format(name=name))
        mapped = {_int(m.get("containerPort")) for m in cdef.get("portMappings") or [] if isinstance(m, dict)}
        if port is not None and port not in mapped:
            raise InvalidParameterException(MSG_LB_NO_PORT.format(name=name, port=port))


# --------------------------------------------------------------------------- backend patches

_orig: dict[str, Any] = {}


def create_service(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Service:
    td_str = kwargs["task_definition_str"] if "task_definition_str" in kwargs else (args[3] if len(args) > 3 else None)
    lbs = kwargs["load_balancers"] if "load_balancers" in kwargs else (args[4] if len(args) > 4 else None)
    if td_str and lbs:
        check_load_balancer_containers(self.describe_task_definition(td_str), lbs)
    svc = _orig["create_service"](self, *args, **kwargs)
    _init_service(svc)
    return svc


def update_service(self: EC2ContainerServiceBackend, props: dict[str, Any]) -> Service:
    props = dict(props)
    # moto would rename deployments[0] as if it were a dict; we start a real deployment.
    force = _truthy(props.pop("force_new_deployment", False))
    volumes = props.pop("volume_configurations", None)
    td_str = props.get("task_definition")
    svc = self._get_service(props.get("cluster", "default"), props["service"].split("/")[-1])
    if hasattr(svc, "emu_ts"):
        # CODE_DEPLOY: only CodeDeploy replaces the task set; desiredCount and the other settings
        # UpdateService allows change in place (task sets follow the new desired count).
        if td_str:
            raise InvalidParameterException(MSG_CODE_DEPLOY_TD)
        svc = _orig["update_service"](self, props)
        svc.deployment_configuration = _default_config(svc.deployment_configuration)
        svc.emu_ts.steady = False
        _count_task_sets(svc)
        return svc
    if not hasattr(svc, "emu"):
        return _orig["update_service"](self, props)
    from emulator import ecs_deployments as sdm

    new_td = self.describe_task_definition(td_str).arn if td_str else None
    primary = svc.deployments[0]
    if volumes is not None:
        # Checked against the task definition the new deployment would run, before any change.
        target = new_td or primary.task_definition
        _check_volume_configurations(self.describe_task_definition(target) if target else None, volumes)
    # Deployment strategy / load balancer advancedConfiguration checks, on what the service would
    # have after the update (a part left out keeps its current value).
    cfg_given, lbs_given = props.get("deployment_configuration"), props.get("load_balancers")
    sdm.validate(_default_config(cfg_given) if cfg_given is not None else svc.deployment_configuration,
                 lbs_given if lbs_given is not None else svc.load_balancers, self.account_id, self.region_name)
    if new_td or lbs_given is not None:
        # The containers the load balancers name, in the task definition the service would run.
        target = new_td or primary.task_definition
        check_load_balancer_containers(self.describe_task_definition(target) if target else None,
                                       lbs_given if lbs_given is not None else svc.load_balancers)
    old_lbs = json.dumps(svc.load_balancers or [], sort_keys=True, default=str)
    # moto stores enableECSManagedTags / propagateTags on the service as given (None: unchanged).
    svc = _orig["update_service"](self, props)
    # moto stored a given deploymentConfiguration as is; fill in the defaults.
    svc.deployment_configuration = _default_config(svc.deployment_configuration)
    # Real ECS: volumeConfigurations that differ from the current ones start a deployment;
    # leaving them out keeps them (and starts none).
    volumes_changed = volumes is not None and (volumes or None) != (primary.volume_configurations or None)
    # AWS: adding, updating or removing a load balancer configuration starts a new deployment.
    lbs_changed = lbs_given is not None and json.dumps(lbs_given or [], sort_keys=True, default=str) != old_lbs
    if (new_td and new_td != primary.task_definition) or force or volumes_changed or lbs_changed:
        sources = list(svc.deployments)
        dep = _new_deployment(svc, new_td or primary.task_definition,
                              (volumes or None) if volumes is not None else _INHERIT)
        sdm.on_new_deployment(svc, dep, sources)
    else:
        # Scaling only: real ECS resizes the PRIMARY deployment, no new deployment.
        primary.desired_count = svc.desired_count
        svc.emu.steady = svc.emu.steady and primary.running_count == svc.desired_count
    _count(svc)
    return svc


def delete_service(self: EC2ContainerServiceBackend, cluster_name: str, service_name: str, force: bool) -> Service:
    svc = _orig["delete_service"](self, cluster_name, service_name, force)
    state = getattr(svc, "emu", None) or getattr(svc, "emu_ts", None)
    if state is not None and any(t.last_status != "STOPPED" for t in state.tasks):
        svc.status = "DRAINING"  # INACTIVE once the engine has stopped its tasks
    svc.desired_count = 0
    return svc


def _family(task_definition_arn: str) -> str:
    return task_definition_arn.split("/")[-1].rsplit(":", 1)[0]


def list_tasks(self: EC2ContainerServiceBackend, cluster_str: str | None = None, container_instance: str | None = None,
               family: str | None = None, started_by: str | None = None, service_name: str | None = None,
               desiredStatus: str | None = None) -> list[Any]:
    if cluster_str is None:
        # moto's own look-ups (ListTagsForResource of a task) want every task.
        return [t for tasks in self.tasks.values() for t in tasks.values()]
    # Real ListTasks: the cluster's tasks only, exact family (also of an INACTIVE revision),
    # serviceName filter, desiredStatus RUNNING by default.
    cluster = self._get_cluster(cluster_str)
    tasks = list(self.tasks.get(cluster.name, {}).values())
    if container_instance:
        ci = container_instance.split("/")[-1]
        tasks = [t for t in tasks if (t.container_instance_arn or "").split("/")[-1] == ci]
    if family:
        tasks = [t for t in tasks if _family(t.task_definition_arn) == family]
    if started_by:
        tasks = [t for t in tasks if t.started_by == started_by]
    if service_name:
        svc = self._get_service(cluster.name, service_name.split("/")[-1])
        tasks = [t for t in tasks if getattr(t, "group", None) == f"service:{svc.name}"]
    status = desiredStatus or "RUNNING"
    return [t for t in tasks if t.desired_status == status]


def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
    cluster = self._get_cluster(cluster_str)
    task_id = task_str.split("/")[-1]
    for arn, t in self.tasks.get(cluster.name, {}).items():
        if arn.split("/")[-1] != task_id:
            continue
        if not isinstance(t, Task):
            return _orig["stop_task"](self, cluster_str, task_str, reason)
        # Real StopTask: desiredStatus STOPPED now, lastStatus follows; a service replaces it.
        if t.desired_status == "RUNNING":
            _stop(t, "UserInitiated", reason or "Task stopped by user")
        return t
    raise InvalidParameterException("The referenced task was not found.")


def create_service_response(self: EC2ContainerServiceResponse) -> Any:
    from emulator import ecs_deployments

    ecs_deployments.validate(_default_config(self._get_param("deploymentConfiguration")),
                             self._get_param("loadBalancers"), self.current_account, self.region,
                             (self._get_param("deploymentController") or {}).get("type") or "ECS")
    volumes = self._get_param("volumeConfigurations")
    if volumes is not None:
        td_str = self._get_param("taskDefinition")
        _check_volume_configurations(self.ecs_backend.describe_task_definition(td_str) if td_str else None, volumes)
    result = _orig["create_service_response"](self)
    svc = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
    svc.deployment_configuration = _default_config(self._get_param("deploymentConfiguration"))
    # moto drops enableECSManagedTags (AWS answers false when not given) and volumeConfigurations.
    svc.enable_ecs_managed_tags = _truthy(self._get_param("enableECSManagedTags") or False)
    if hasattr(svc, "emu") and svc.deployments:
        svc.deployments[0].volume_configurations = volumes or None
    if hasattr(svc, "emu_ts"):
        sync_task_set_network(svc)
    return result


# --------------------------------------------------------------------------- RunTask

# AWS texts, where known (see README): messages seen in real AWS errors are used verbatim.
MSG_BOTH_LAUNCH = ("Specifying both a launch type and capacity provider strategy is not supported. "
                   "Remove one and try again.")
MSG_NETWORK_REQUIRED = "Network Configuration must be provided when networkMode 'awsvpc' is specified."
MSG_NETWORK_INVALID = "Network Configuration is not valid for the given networkMode of this task definition."
MSG_VOLUME = "Volume configuration provided but no matching configuredAtLaunch volume found in task definition."
MSG_NO_INSTANCES = "No Container Instances were found in your cluster."
RUN_TASK_MAX_COUNT = 10
# The RunTask API reference allows up to 128 characters (StartTask's still says 36).
STARTED_BY_MAX = 128
# AWS keeps a RunTask clientToken 24 h; we also bound how many we remember.
TOKEN_TTL_SECONDS = 24 * 3600
MAX_TOKENS = 1000
MAX_STOPPED_STANDALONE = 200
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


class ConflictException(ECSException):
    """RunTask: the clientToken was already used with other parameters (resourceIds: its tasks)."""

    code = "ConflictException"

    def __init__(self, message: str, resource_ids: list[str]) -> None:
        super().__init__(message)
        self.resource_ids = resource_ids


def _check_volume_configurations(td: Any, volumes: list[dict[str, Any]]) -> None:
    """A volume configuration must name a task-definition volume with configuredAtLaunch: true,
    and a managed EBS volume needs the infrastructure role (roleArn)."""
    at_launch = {v.get("name") for v in (getattr(td, "volumes", None) or []) if _truthy(v.get("configuredAtLaunch"))}
    for vc in volumes or []:
        if not isinstance(vc, dict) or vc.get("name") not in at_launch:
            raise InvalidParameterException(MSG_VOLUME)
        ebs = vc.get("managedEBSVolume")
        if isinstance(ebs, dict) and not ebs.get("roleArn"):
            raise InvalidParameterException("managedEBSVolume.roleArn should not be null or empty.")


def _resolve_task_definition(backend: EC2ContainerServiceBackend, ref: str) -> Any:
    """family (latest ACTIVE revision), family:revision or ARN, as RunTask resolves it."""
    name = (ref or "").split("/")[-1]
    revisions = backend.task_definitions.get(name.rsplit(":", 1)[0] if ":" in name else name, {})
    if ":" in name:
        rev = name.rsplit(":", 1)[1]
        try:
            td = revisions.get(int(rev))
        except ValueError:
            raise InvalidParameterException("Invalid revision number. Number: " + rev) from None
    else:
        active = [revisions[r] for r in sorted(revisions) if revisions[r].status == "ACTIVE"]
        td = active[-1] if active else None
    if td is None:
        raise EcsClientException("TaskDefinition not found.")
    if td.status != "ACTIVE":
        raise InvalidParameterException("TaskDefinition is inactive")
    return td


def _propagated_tags(propagate: str | None, td: Any, service_tags: list[dict[str, str]] | None = None,
                     given: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """Tags of a new task: the ones given, then (keys not given) the task definition's or the
    service's, as propagateTags says."""
    tags = [dict(t) for t in given or []]
    source = {"TASK_DEFINITION": getattr(td, "tags", None), "SERVICE": service_tags}.get(propagate or "NONE") or []
    keys = {t.get("key") for t in tags}
    tags += [dict(t) for t in source if t.get("key") not in keys]
    return tags


def _providers_for(strategy: list[dict[str, Any]], count: int) -> list[str]:
    """Capacity provider of each of count tasks: every provider's base first, then by weight."""
    placed: dict[str, int] = {s["capacityProvider"]: 0 for s in strategy}
    out = []
    for _ in range(count):
        pick = next((s["capacityProvider"] for s in strategy
                     if placed[s["capacityProvider"]] < int(s.get("base") or 0)), None)
        if pick is None:
            weighted = [s for s in strategy if int(s.get("weight") or 0) > 0] or strategy[:1]
            pick = min(weighted, key=lambda s: placed[s["capacityProvider"]] / max(1, int(s.get("weight") or 0)))[
                "capacityProvider"]
        placed[pick] += 1
        out.append(pick)
    return out


def _tokens(backend: EC2ContainerServiceBackend) -> "OrderedDict[tuple[str, str], dict[str, Any]]":
    if not hasattr(backend, "emu_run_tokens"):
        backend.emu_run_tokens = OrderedDict()
    tokens = backend.emu_run_tokens
    now = time.monotonic()
    while tokens and (len(tokens) > MAX_TOKENS or now - next(iter(tokens.values()))["at"] > TOKEN_TTL_SECONDS):
        tokens.popitem(last=False)
    return tokens


def run_task(self: EC2ContainerServiceBackend, cluster_str: str | None, task_definition_str: str, count: int = 1,
             overrides: dict[str, Any] | None = None, started_by: str | None = None,
             tags: list[dict[str, str]] | None = None, launch_type: str | None = None,
             networking_configuration: dict[str, Any] | None = None, group: str | None = None,
             platform_version: str | None = None, capacity_provider_strategy: list[dict[str, Any]] | None = None,
             client_token: str | None = None, volume_configurations: list[dict[str, Any]] | None = None,
             propagate_tags: str | None = None, enable_ecs_managed_tags: bool = False,
             enable_execute_command: bool = False, request_fingerprint: str | None = None) -> list[Task]:
    """RunTask as AWS does it: validate, start count standalone tasks on the engine's clock
    (PROVISIONING -> PENDING -> RUNNING -> their command exits -> STOPPED), idempotent per
    (cluster, clientToken)."""
    count = 1 if count is None else int(count)
    if count > RUN_TASK_MAX_COUNT:
        raise InvalidParameterException(f"Task count can not be greater than {RUN_TASK_MAX_COUNT}")
    if count < 1:
        raise InvalidParameterException("Task count can not be less than 1")
    if started_by and len(started_by) > STARTED_BY_MAX:
        raise InvalidParameterException(f"startedBy longer than {STARTED_BY_MAX}")
    if launch_type and capacity_provider_strategy:
        raise InvalidParameterException(MSG_BOTH_LAUNCH)
    if launch_type and launch_type not in ("EC2", "FARGATE", "EXTERNAL"):
        raise InvalidParameterException("launch type should be one of [EC2,FARGATE,EXTERNAL]")
    cluster = self._get_cluster(cluster_str or "default")

    tokens = _tokens(self)
    key = (cluster.name, client_token or "")
    if client_token and key in tokens:
        seen = tokens[key]
        if seen["fingerprint"] != request_fingerprint:
            raise ConflictException(
                "The RunTask request could not be processed due to conflicts. The provided clientToken is "
                "already in use with a different RunTask request.", [t.task_arn for t in seen["tasks"]])
        return list(seen["tasks"])  # a retry: the same tasks, none started

    td = _resolve_task_definition(self, task_definition_str)
    strategy = list(capacity_provider_strategy or [])
    if not launch_type and not strategy:
        strategy = list(cluster.default_capacity_provider_strategy or [])
    providers: list[str | None] = _providers_for(strategy, count) if strategy else [None] * count
    launches = [launch_type or ("FARGATE" if p in FARGATE_PROVIDERS else "EC2" if p else "EC2") for p in providers]
    if "FARGATE" in launches and "FARGATE" not in (getattr(td, "compatibilities", None) or []):
        raise InvalidParameterException("Task definition does not support launch_type FARGATE.")
    given = (overrides or {}).get("containerOverrides") or []
    names = {c.get("name") for c in td.container_definitions}
    for o in given:
        if (o or {}).get("name") not in names:
            raise InvalidParameterException(
                f"Override for container named {(o or {}).get('name') or 'null'} is not a container in the TaskDefinition.")
    awsvpc = td.network_mode == "awsvpc"
    if awsvpc and not networking_configuration:
        raise InvalidParameterException(MSG_NETWORK_REQUIRED)
    if networking_configuration and not awsvpc:
        raise InvalidParameterException(MSG_NETWORK_INVALID)
    if networking_configuration and not (networking_configuration.get("awsvpcConfiguration") or {}).get("subnets"):
        raise InvalidParameterException("subnets can not be empty.")
    if volume_configurations is not None:
        _check_volume_configurations(td, volume_configurations)
    if propagate_tags == "SERVICE":
        raise InvalidParameterException("propagateTags SERVICE is only valid for tasks started by a service.")
    instances: list[str] = []
    if any(lt != "FARGATE" for lt in launches):
        instances = [ci.container_instance_arn for ci in self.container_instances.get(cluster.name, {}).values()
                     if ci.status == "ACTIVE"]
        if not instances:
            raise InvalidParameterException(MSG_NO_INSTANCES)

    if SETTINGS.check_references:
        role_error = ecs_references.launch_error(td, self.account_id)
        if role_error:
            raise EcsClientException(role_error)
    task_tags = _propagated_tags(propagate_tags, td, given=tags)
    if enable_ecs_managed_tags:
        task_tags.append({"key": "aws:ecs:clusterName", "value": cluster.name})
    started = []
    for i, (provider, launch) in enumerate(zip(providers, launches, strict=True)):
        t = Task(self, td, cluster_name=cluster.name, cluster_arn=cluster.arn, launch_type=launch,
                 network_configuration=networking_configuration, group=group or f"family:{td.family}",
                 started_by=started_by, overrides=overrides, tags=task_tags, platform_version=platform_version,
                 capacity_provider_name=provider,
                 container_instance_arn=None if launch == "FARGATE" else instances[i % len(instances)],
                 volume_configurations=volume_configurations, enable_execute_command=enable_execute_command)
        self.tasks.setdefault(cluster.name, {})[t.task_arn] = t
        _STANDALONE.append(t)
        started.append(t)
    if client_token:
        tokens[key] = {"fingerprint": request_fingerprint, "tasks": started, "at": time.monotonic()}
    _cluster_counts(self, cluster.name)
    _start_engine()
    return started


def register_task_definition(self: EC2ContainerServiceBackend, family: str,
                             container_definitions: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
    """RegisterTaskDefinition (the API and AWS::ECS::TaskDefinition) refuses, as ECS does, a Fargate
    task definition whose task size is not one of Fargate's, and one that needs an execution role and
    names none."""
    size = ecs_references.fargate_size_error(kwargs.get("cpu"), kwargs.get("memory"),
                                             kwargs.get("requires_compatibilities"))
    if size:
        raise EcsClientException(size)
    if SETTINGS.check_references:
        message = ecs_references.registration_error(container_definitions, kwargs.get("requires_compatibilities"),
                                                    kwargs.get("execution_role_arn"))
        if message:
            raise EcsClientException(message)
    return _orig["register_task_definition"](self, family, container_definitions, *args, **kwargs)


def run_task_response(self: EC2ContainerServiceResponse) -> Any:
    params = self._get_params()
    # A retried request must match the first one in everything but the token.
    fingerprint = json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True, default=str)
    network = params.get("networkConfiguration")
    tasks = self.ecs_backend.run_task(
        params.get("cluster") or "default", params.get("taskDefinition"), params.get("count"),
        params.get("overrides"), params.get("startedBy"), params.get("tags"), params.get("launchType"),
        network, params.get("group"), params.get("platformVersion"), params.get("capacityProviderStrategy"),
        client_token=params.get("clientToken"), volume_configurations=params.get("volumeConfigurations"),
        propagate_tags=params.get("propagateTags"),
        enable_ecs_managed_tags=_truthy(params.get("enableECSManagedTags") or False),
        enable_execute_command=_truthy(params.get("enableExecuteCommand") or False),
        request_fingerprint=fingerprint)
    return ActionResult({"tasks": tasks, "failures": []})


def _tick_standalone(now: float) -> None:
    clusters = set()
    for t in list(_STANDALONE):
        if t.next and now >= t.due:
            _advance(None, t, now)
            clusters.add((t.account_id, t.region, t.cluster_name))
    stopped = [t for t in _STANDALONE if t.last_status == "STOPPED"]
    for t in stopped[:-MAX_STOPPED_STANDALONE] if len(stopped) > MAX_STOPPED_STANDALONE else []:
        _STANDALONE.remove(t)  # AWS forgets stopped tasks after about an hour
        ecs_backends[t.account_id][t.region].tasks.get(t.cluster_name, {}).pop(t.task_arn, None)
    for account, region, cluster in clusters:
        _cluster_counts(ecs_backends[account][region], cluster)


# --------------------------------------------------------------------------- CloudFormation


def _camel(value: Any) -> Any:
    return remap_nested_keys(value, pascal_to_camelcase) if value is not None else None


def _name(value: Any) -> str:
    return value.name if hasattr(value, "name") else str(value)


def _td_ref(value: Any) -> str | None:
    if value is None:
        return None
    return value.arn if hasattr(value, "arn") else str(value)


def _camel_keep(value: Any, verbatim: frozenset[str] = frozenset({"HookDetails"})) -> Any:
    """PascalCase template keys to the API's camelCase; user documents (HookDetails) as written."""
    if isinstance(value, list):
        return [_camel_keep(v, verbatim) for v in value]
    if isinstance(value, dict):
        return {pascal_to_camelcase(k): (v if k in verbatim else _camel_keep(v, verbatim)) for k, v in value.items()}
    return value


def _cfn_props(props: dict[str, Any]) -> dict[str, Any]:
    lbs = _camel(props.get("LoadBalancers"))
    for lb in lbs or []:
        if isinstance(lb, dict) and lb.get("containerPort") is not None:
            try:
                lb["containerPort"] = int(lb["containerPort"])
            except (TypeError, ValueError):
                pass
    cfg = props.get("DeploymentConfiguration")
    return {"deployment_configuration": _camel_keep(cfg) if cfg is not None else None,
            "network_configuration": _camel(props.get("NetworkConfiguration")),
            "load_balancers": lbs}


def _cfn_invalid(operation: str, message: str) -> "CfnHandlerError":
    """An ECS InvalidParameterException as CloudFormation's resource handler reports it."""
    return CfnHandlerError(
        f"Resource handler returned message: \"Invalid request provided: {operation} error: {message} (Service: "
        f"AmazonECS; Status Code: 400; Error Code: InvalidParameterException; Request ID: {uuid.uuid4()}; "
        f"Proxy: null)\" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: InvalidRequest)")


def cfn_create(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str,
               **kwargs: Any) -> Service:
    props = cloudformation_json["Properties"]
    cluster = _name(props["Cluster"])
    desired = props.get("DesiredCount")
    # CloudFormation's default DesiredCount is 1 (moto used 0).
    desired = 1 if desired is None else int(desired)
    backend = ecs_backends[account_id][region_name]
    extra = _cfn_props(props)
    from emulator import ecs_deployments

    controller = (_camel(props.get("DeploymentController")) or {}).get("type") or "ECS"
    try:
        ecs_deployments.validate(_default_config(extra["deployment_configuration"]), extra["load_balancers"],
                                 account_id, region_name, controller)
        td_ref = _td_ref(props.get("TaskDefinition"))
        if td_ref and extra["load_balancers"]:
            check_load_balancer_containers(backend.describe_task_definition(td_ref), extra["load_balancers"])
    except InvalidParameterException as exc:
        raise _cfn_invalid("CreateService", exc.message) from None
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
    if hasattr(svc, "emu_ts"):
        sync_task_set_network(svc)
        svc.emu_cfn_task_definition = svc.task_definition
    svc.deployment_configuration = _default_config(extra["deployment_configuration"])
    svc.enable_ecs_managed_tags = _truthy(props.get("EnableECSManagedTags") or False)
    volumes = _camel(props.get("VolumeConfigurations"))
    if volumes:
        _check_volume_configurations(backend.describe_task_definition(svc.task_definition)
                                     if svc.task_definition else None, volumes)
        if hasattr(svc, "emu") and svc.deployments:
            svc.deployments[0].volume_configurations = volumes
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
    if hasattr(original_resource, "emu_ts"):
        return _cfn_update_code_deploy(original_resource, props, extra, backend)
    update = {"cluster": cluster_name, "service": original_resource.name,
              "task_definition": _td_ref(props.get("TaskDefinition")),
              "desired_count": int(props["DesiredCount"]) if props.get("DesiredCount") is not None else None,
              "deployment_configuration": extra["deployment_configuration"],
              "load_balancers": extra["load_balancers"],
              # a property left out of the template goes back to its default
              "enable_ecs_managed_tags": _truthy(props.get("EnableECSManagedTags") or False),
              "propagate_tags": props.get("PropagateTags") or "NONE",
              "volume_configurations": _camel(props.get("VolumeConfigurations")) or [],
              "force_new_deployment": isinstance(force, dict) and _truthy(force.get("EnableForceNewDeployment"))}
    from emulator import ecs_deployments

    before = ecs_deployments.current(original_resource)
    try:
        svc = backend.update_service(update)
    except InvalidParameterException as exc:
        raise _cfn_invalid("UpdateService", exc.message) from None
    after = ecs_deployments.current(svc)
    svc.emu_cfn_sd = after if after is not before else None
    if extra["network_configuration"] is not None:
        svc.network_configuration = extra["network_configuration"]
    return svc


class CfnHandlerError(Exception):
    """A resource handler failure, its text as CloudFormation shows it (ResourceStatusReason)."""


def _cfn_update_code_deploy(svc: Service, props: dict[str, Any], extra: dict[str, Any],
                            backend: EC2ContainerServiceBackend) -> Service:
    """A CODE_DEPLOY service: a new TaskDefinition is refused as UpdateService refuses it (real
    CloudFormation then fails the resource); other properties change in place."""
    td = _td_ref(props.get("TaskDefinition"))
    # What the template asked for last (a rollback asks for it again; a CodeDeploy deployment since
    # then does not make the unchanged template property a change).
    asked = getattr(svc, "emu_cfn_task_definition", None) or svc.task_definition
    if td and backend.describe_task_definition(td).arn != asked:
        raise CfnHandlerError(
            f"Resource handler returned message: \"Invalid request provided: UpdateService error: {MSG_CODE_DEPLOY_TD} "
            f"(Service: AmazonECS; Status Code: 400; Error Code: InvalidParameterException; Request ID: {uuid.uuid4()}; "
            f"Proxy: null)\" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: InvalidRequest)")
    update = {"cluster": svc.cluster_name, "service": svc.name,
              "desired_count": int(props["DesiredCount"]) if props.get("DesiredCount") is not None else None,
              "deployment_configuration": extra["deployment_configuration"],
              "enable_ecs_managed_tags": _truthy(props.get("EnableECSManagedTags") or False),
              "propagate_tags": props.get("PropagateTags") or "NONE"}
    return backend.update_service(update)


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
    """Every TaskDefinition change is a replacement: the engine registers the new revision through
    td_cfn_create and deregisters the old one in cleanup (_td_delete), as CloudFormation does; this
    runs only where a Metadata ``Replacement: "False"`` override keeps the update in place. moto
    registered the ContainerDefinitions with CloudFormation's PascalCase keys (so ECS saw no
    image) and deregistered the old revision at once."""
    return _register_from_cfn(cloudformation_json, account_id, region_name)


def _td_delete(self: Any, account_id: str, region_name: str) -> None:
    """CloudFormation deleting an AWS::ECS::TaskDefinition (stack deletion, the old revision in a
    replacement's cleanup, the new one in a rollback's) deregisters the revision: INACTIVE, still
    describable, its running tasks unaffected (moto's handler did nothing)."""
    if self.status == "ACTIVE":
        ecs_backends[account_id][region_name].deregister_task_definition(self.arn)


def _cluster_delete(self: Any, account_id: str, region_name: str) -> None:
    """CloudFormation deleting an AWS::ECS::Cluster (stack deletion, a renamed cluster's old one in
    cleanup) deletes it: INACTIVE, as DeleteCluster leaves it (moto's handler did nothing; its
    update deleted a renamed cluster at once)."""
    if self.status == "ACTIVE":
        ecs_backends[account_id][region_name].delete_cluster(self.arn)


def _validate_network(self: Service, nc: dict[str, Any]) -> dict[str, Any]:
    """securityGroups is optional (AWS uses the VPC's default group); moto raised a KeyError (HTTP 500)."""
    vpc = (nc or {}).get("awsvpcConfiguration") or {}
    if "securityGroups" not in vpc:
        checked = _orig["validate_network"](self, {"awsvpcConfiguration": {**vpc, "securityGroups": []}})
        return {"awsvpcConfiguration": {k: v for k, v in checked["awsvpcConfiguration"].items()
                                        if k != "securityGroups"}}
    return _orig["validate_network"](self, nc)


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
    if svc is not None and hasattr(svc, "emu_ts"):
        return _cfn_task_set_stabilizer(svc)
    if svc is None or not hasattr(svc, "emu") or not svc.deployments or not svc.deployments[0].task_definition:
        return None  # nothing ECS could deploy: keep moto's immediate completion
    from emulator import ecs_deployments

    # A replacing update created the service: its first deployment, as for a create.
    updated = op.verb == "UPDATE" and not op.replacement
    sd = getattr(svc, "emu_cfn_sd", None) if updated else ecs_deployments.current(svc)
    svc.emu_cfn_sd = None
    if sd is not None and ecs_deployments.strategy_of(svc.deployment_configuration) in ecs_deployments.TRAFFIC_STRATEGIES:
        return _cfn_service_deployment_stabilizer(svc, sd)
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


def _cfn_service_deployment_stabilizer(svc: Service, sd: Any) -> Any:
    """BLUE_GREEN / LINEAR / CANARY: CloudFormation waits for the service deployment (through its
    bake time) and fails the resource when it is rolled back or stopped."""
    deadline = time.monotonic() + SETTINGS.cfn_timeout

    def poll() -> str | None:
        if sd.status == "SUCCESSFUL" or svc.status != "ACTIVE":
            return ""
        if sd.status in ("STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"):
            if sd.cb_status == "TRIGGERED":
                return ("Resource handler returned message: \"Error occurred during operation 'ECS Deployment "
                        f"Circuit Breaker was triggered'.\" (RequestToken: {uuid.uuid4()}, "
                        "HandlerErrorCode: GeneralServiceException)")
            return (f"Resource handler returned message: \"{sd.status_reason or sd.status}\" (RequestToken: "
                    f"{uuid.uuid4()}, HandlerErrorCode: GeneralServiceException)")
        if time.monotonic() > deadline:
            return (f"Resource handler returned message: \"Exceeded attempts to wait\" (RequestToken: "
                    f"{uuid.uuid4()}, HandlerErrorCode: NotStabilized)")
        return None

    return poll


def _cfn_task_set_stabilizer(svc: Service) -> Any:
    """CODE_DEPLOY service: CloudFormation waits for its task sets to reach a steady state (there
    is no circuit breaker for them: failing tasks end in the NotStabilized timeout)."""
    if not svc.task_sets:
        return None
    deadline = time.monotonic() + SETTINGS.cfn_timeout

    def poll() -> str | None:
        if svc.status != "ACTIVE" or svc.emu_ts.steady:
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
                if "checkReferences" in payload:
                    if not isinstance(payload["checkReferences"], bool):
                        raise ValueError("checkReferences must be true or false")
                    SETTINGS.check_references = payload["checkReferences"]
                if "paused" in payload:
                    if not isinstance(payload["paused"], bool):
                        raise ValueError("paused must be true or false")
                    SETTINGS.paused = payload["paused"]
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
                     ("delete_service", delete_service), ("list_tasks", list_tasks), ("stop_task", stop_task),
                     ("run_task", run_task), ("register_task_definition", register_task_definition)):
        _orig[name] = getattr(B, name)
        setattr(B, name, fn)
    _orig["create_service_response"] = EC2ContainerServiceResponse.create_service
    EC2ContainerServiceResponse.create_service = create_service_response
    _orig["run_task_response"] = EC2ContainerServiceResponse.run_task
    EC2ContainerServiceResponse.run_task = run_task_response
    ecs_models.TaskDefinition.create_from_cloudformation_json = classmethod(td_cfn_create)
    ecs_models.TaskDefinition.update_from_cloudformation_json = classmethod(td_cfn_update)
    ecs_models.TaskDefinition.delete = _td_delete
    ecs_models.Cluster.delete = _cluster_delete
    Service.create_from_cloudformation_json = classmethod(cfn_create)
    Service.update_from_cloudformation_json = classmethod(cfn_update)
    Service.delete = _service_delete
    _orig["validate_network"] = Service._validate_network
    Service._validate_network = _validate_network
    FakeTargetGroup.health_for = _patched_health_for(FakeTargetGroup.health_for)
    cloudformation.STABILIZERS["AWS::ECS::Service"] = _cfn_stabilizer
    for method in ("GET", "POST"):
        control.EXTRA_ROUTES[(method, "/_emulator/ecs-speed")] = _speed_route

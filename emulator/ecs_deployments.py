"""ECS service deployments, service revisions and the built-in deployment strategies (July 2025).

moto 5.2.5 has none of ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions,
StopServiceDeployment or ContinueServiceDeployment, and ignores deploymentConfiguration.strategy.
This module adds them on top of ecs.py's scheduler:

* every deployment ecs.py starts (CreateService, UpdateService with a new task definition,
  forceNewDeployment, new volume or load balancer configuration), whatever the strategy, gets a
  *service deployment* (``…:service-deployment/<cluster>/<service>/<21 chars>``) and its
  deployment gets a *service revision* (``…:service-revision/<cluster>/<service>/<digits of the
  ecs-svc id>``, so ``targetServiceRevisionArn`` ends with the deployment id's number as on AWS);
* ROLLING: the service deployment follows the rolling deployment (PENDING → IN_PROGRESS →
  SUCCESSFUL, circuit breaker → ROLLBACK_IN_PROGRESS → ROLLBACK_SUCCESSFUL / ROLLBACK_FAILED /
  STOPPED), no lifecycle stage;
* BLUE_GREEN / LINEAR / CANARY: a stage machine (RECONCILE_SERVICE, PRE_SCALE_UP, SCALE_UP,
  POST_SCALE_UP, TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT (per step),
  POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP) that registers the green tasks in the
  target group not serving production, rewrites the test and production listener rules' weighted
  forward actions in moto's ELBv2, runs lifecycle hooks (Lambda hooks decided by the function name;
  PAUSE hooks wait for ContinueServiceDeployment) and rolls back (circuit breaker, failed hook,
  StopServiceDeployment) by moving traffic back to blue and stopping green.

Stage pacing: one ECS step (``ecs.SETTINGS.step``) per stage at least; minutes (bake times, pause
hook timeouts, the 24 h stage limit) use CodeDeploy's minute setting (``codedeploy.SETTINGS.minute``).
Everything runs under ``state.LOCK`` on ecs.py's engine thread.
"""

from __future__ import annotations

import copy
import json
import math
import re
import string
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.ecs.exceptions import ECSException, InvalidParameterException
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api._internal import mock_random

from emulator import codedeploy, control, ecs
from emulator.state import LOCK

STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
TRAFFIC_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
HOOK_STAGES = ("RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
               "PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT")
PAUSE_FORBIDDEN = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
TERMINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
# AWS: a lifecycle stage may last 24 hours; a pause hook waits 1440 minutes unless told otherwise.
STAGE_TIMEOUT_MINUTES = 1440
PAUSE_TIMEOUT_MINUTES = 1440
# Defaults from the ECS API reference (LinearConfiguration, CanaryConfiguration).
LINEAR_DEFAULTS = {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6}
CANARY_DEFAULTS = {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}

# AWS texts (ECS developer guide, "Troubleshooting Amazon ECS blue/green deployments", and real answers).
MSG_ADV_REQUIRED = "advancedConfiguration field is required for all loadBalancers when using a non-ROLLING deployment strategy"
MSG_ADV_ALL_OR_NONE = "Either all or none of the provided loadBalancers must have advancedConfiguration defined"
MSG_ADV_ELBV1 = "advancedConfiguration field is not allowed with ELBv1 loadBalancers"
MSG_ELB_MIX = "All loadBalancers must be strictly either ELBv1 (defining loadBalancerName) or ELBv2 (defining targetGroupArn)"
MSG_DUPLICATE_TG = "Duplicate targetGroupArn found: {arn}"
MSG_SAME_RULE = "The following rules cannot be used as both production and test listener rules: {arn}"
MSG_RULE_FORMAT = "{field} has an invalid ARN format. Must be RuleArn for ALB or ListenerArn for NLB. Got: {arn}"
MSG_TEST_RULE_REQUIRED = ("For Application LoadBalancer, testListenerRule is required when productionListenerRule is "
                          "not associated with both targetGroup and alternateTargetGroup")
MSG_TARGET_TYPE = "Invalid targetType. Valid values are: AWS_LAMBDA, PAUSE"
MSG_PAUSE_STAGE = "Invalid lifecycle stage provided for Pause Hook"
MSG_NOT_FOUND = "The service deployment does not exist."
MSG_HOOK_ID_FORMAT = "Invalid hookId: hookId must follow the format: ecs-{hookType}-{id}"
MSG_HOOK_GONE = "Provided hookId is either completed, unavailable, or not associated with the given Resource ARN"
MSG_CONTINUE_TERMINAL = "Continuing a service deployment is not allowed for service deployment in terminal states."
MSG_CB = "Service deployment rolled back because the circuit breaker threshold was exceeded."
MSG_NO_CANDIDATE = "No rollback candidate was found to run the rollback."
MSG_HOOK_FAILED = "Service deployment rolled back because {stage} lifecycle hook(s) failed. Lifecycle hook target {arn} returned FAILED status."
MSG_PAUSE_TIMEOUT = "Service deployment rolled back because {stage} pause hook timed out."
MSG_NET = "Service deployment rolled back because of invalid networking configuration"
MSG_NET_NOT_ASSOCIATED = MSG_NET + ": Target group {arn} is not associated with either productionListenerRule or testListenerRule."
MSG_NET_TWO_SERVING = (MSG_NET + ". productionListenerRule {rule} should have exactly one target group serving traffic but "
                       "found {n} target groups which are serving traffic")
MSG_NET_UNEXPECTED = (MSG_NET + ". Production listener rule is forwarding traffic to unexpected target group {arn}. Expected "
                      "traffic to be forwarded to either targetGroupArn: {tg} or alternateTargetGroupArn: {alt}")
MSG_NET_NO_RULE = MSG_NET + ". One or more rules not found"
# The emulator's own texts (AWS's are not known; README lists them).
MSG_CB_STOPPED = "Service deployment stopped because the circuit breaker threshold was exceeded."
MSG_USER_ROLLBACK = "Service deployment rolled back because a rollback was requested (StopServiceDeployment)."
MSG_USER_STOP = "Service deployment stopped because a stop was requested (StopServiceDeployment)."
MSG_PAUSE_ROLLBACK = "Service deployment rolled back because {stage} pause hook requested a rollback."
MSG_HOOK_TIMEOUT = "Service deployment rolled back because {stage} lifecycle hook(s) timed out."
MSG_STAGE_TIMEOUT = "Service deployment rolled back because the {stage} lifecycle stage timed out."
MSG_SUPERSEDED = "Service deployment stopped because a newer service deployment started."
MSG_STOP_TERMINAL = "The service deployment is in a terminal state and can't be stopped."


class ServiceDeploymentNotFoundException(ECSException):
    code = "ServiceDeploymentNotFoundException"

    def __init__(self) -> None:
        super().__init__(MSG_NOT_FOUND)


class ConflictException(ECSException):
    code = "ConflictException"


def _step() -> float:
    return ecs.SETTINGS.step


def _minutes(n: float) -> float:
    return float(n) * codedeploy.SETTINGS.minute


_ID_CHARS = string.ascii_letters + string.digits + "-_"


def _rand(n: int) -> str:
    return "".join(mock_random.choice(_ID_CHARS) for _ in range(n))


def _num(value: Any, kind: type = float) -> Any:
    """CloudFormation hands numbers over as strings."""
    if value is None or isinstance(value, bool):
        return value
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        return value


# --------------------------------------------------------------------------- configuration


def normalize_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Numbers of the strategy settings as the API types them (CloudFormation gives strings)."""
    if cfg.get("bakeTimeInMinutes") is not None:
        cfg["bakeTimeInMinutes"] = _num(cfg["bakeTimeInMinutes"], int)
    lin = cfg.get("linearConfiguration")
    if isinstance(lin, dict):
        lin = dict(lin)
        if lin.get("stepPercent") is not None:
            lin["stepPercent"] = _num(lin["stepPercent"])
        if lin.get("stepBakeTimeInMinutes") is not None:
            lin["stepBakeTimeInMinutes"] = _num(lin["stepBakeTimeInMinutes"], int)
        cfg["linearConfiguration"] = lin
    can = cfg.get("canaryConfiguration")
    if isinstance(can, dict):
        can = dict(can)
        if can.get("canaryPercent") is not None:
            can["canaryPercent"] = _num(can["canaryPercent"])
        if can.get("canaryBakeTimeInMinutes") is not None:
            can["canaryBakeTimeInMinutes"] = _num(can["canaryBakeTimeInMinutes"], int)
        cfg["canaryConfiguration"] = can
    hooks = cfg.get("lifecycleHooks")
    if isinstance(hooks, list):
        out = []
        for h in hooks:
            h = dict(h or {})
            tc = h.get("timeoutConfiguration")
            if isinstance(tc, dict) and tc.get("timeoutInMinutes") is not None:
                h["timeoutConfiguration"] = {**tc, "timeoutInMinutes": _num(tc["timeoutInMinutes"], int)}
            out.append(h)
        cfg["lifecycleHooks"] = out
    return cfg


def strategy_of(cfg: dict[str, Any] | None) -> str:
    return str((cfg or {}).get("strategy") or "ROLLING")


def _elbv2(account_id: str, region: str) -> Any:
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[account_id][region]


def _find_rule(elb: Any, arn: str) -> tuple[str, Any, Any] | None:
    """('rule', rule, listener) for a listener rule ARN (the default rule too), ('listener', listener,
    listener) for a listener ARN (Network Load Balancer), else None."""
    if not arn:
        return None
    for lb in list(elb.load_balancers.values()):
        for listener in list(lb.listeners.values()):
            if listener.arn == arn:
                return "listener", listener, listener
            for rule in list(listener.rules.values()):
                if rule.arn == arn:
                    return "rule", rule, listener
    return None


def _lb_type(elb: Any, listener: Any) -> str:
    lb = elb.load_balancers.get(getattr(listener, "load_balancer_arn", ""))
    return getattr(lb, "type", "application") if lb is not None else "application"


def _actions(found: tuple[str, Any, Any]) -> list[Any]:
    kind, obj, _ = found
    return list(obj.default_actions if kind == "listener" else obj.actions)


def _forward_groups(actions: list[Any]) -> list[dict[str, Any]]:
    """[{TargetGroupArn, Weight}] of the forward action (a plain TargetGroupArn counts as weight 1)."""
    for a in actions:
        data = getattr(a, "data", a) or {}
        if data.get("Type") != "forward":
            continue
        groups = (data.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return [{"TargetGroupArn": g.get("TargetGroupArn"), "Weight": int(g.get("Weight", 1))} for g in groups]
        if data.get("TargetGroupArn"):
            return [{"TargetGroupArn": data["TargetGroupArn"], "Weight": 1}]
    return []


def validate(cfg: dict[str, Any] | None, load_balancers: list[dict[str, Any]] | None, account_id: str,
             region: str, controller: str = "ECS") -> None:
    """CreateService/UpdateService's synchronous checks (InvalidParameterException)."""
    if controller != "ECS":
        return
    cfg = cfg or {}
    strategy = strategy_of(cfg)
    if strategy not in STRATEGIES:
        raise InvalidParameterException(f"Invalid deployment strategy {strategy}. Valid values are: "
                                        f"{', '.join(STRATEGIES)}")
    lbs = [lb for lb in load_balancers or [] if isinstance(lb, dict)]
    if any(lb.get("loadBalancerName") and lb.get("advancedConfiguration") for lb in lbs):
        raise InvalidParameterException(MSG_ADV_ELBV1)
    if any(lb.get("loadBalancerName") for lb in lbs) and any(lb.get("targetGroupArn") for lb in lbs):
        raise InvalidParameterException(MSG_ELB_MIX)
    with_adv = [lb for lb in lbs if lb.get("advancedConfiguration")]
    if with_adv and len(with_adv) != len(lbs):
        raise InvalidParameterException(MSG_ADV_ALL_OR_NONE)
    if strategy != "ROLLING" and lbs and not with_adv:
        raise InvalidParameterException(MSG_ADV_REQUIRED)
    seen: set[str] = set()
    for lb in lbs:
        adv = lb.get("advancedConfiguration") or {}
        for arn in (lb.get("targetGroupArn"), adv.get("alternateTargetGroupArn")):
            if not arn:
                continue
            if arn in seen:
                raise InvalidParameterException(MSG_DUPLICATE_TG.format(arn=arn))
            seen.add(arn)
    elb = None
    try:
        elb = _elbv2(account_id, region)
    except Exception:  # noqa: BLE001 - no ELBv2 backend for the region
        pass
    for lb in with_adv:
        adv = lb["advancedConfiguration"]
        prod, test = adv.get("productionListenerRule"), adv.get("testListenerRule")
        if prod and test and prod == test:
            raise InvalidParameterException(MSG_SAME_RULE.format(arn=prod))
        for field, arn in (("productionListenerRule", prod), ("testListenerRule", test)):
            found = _find_rule(elb, arn) if elb is not None and arn else None
            if found and found[0] == "listener" and _lb_type(elb, found[1]) == "application":
                raise InvalidParameterException(MSG_RULE_FORMAT.format(field=field, arn=arn))
        found = _find_rule(elb, prod) if elb is not None and prod else None
        if found and not test and _lb_type(elb, found[2]) == "application":
            tgs = {g["TargetGroupArn"] for g in _forward_groups(_actions(found))}
            if not {lb.get("targetGroupArn"), adv.get("alternateTargetGroupArn")} <= tgs:
                raise InvalidParameterException(MSG_TEST_RULE_REQUIRED)
    _validate_numbers(cfg)
    for hook in cfg.get("lifecycleHooks") or []:
        hook = hook or {}
        target_type = hook.get("targetType") or "AWS_LAMBDA"
        if target_type not in ("AWS_LAMBDA", "PAUSE"):
            raise InvalidParameterException(MSG_TARGET_TYPE)
        stages = hook.get("lifecycleStages") or []
        if not stages:
            raise InvalidParameterException("lifecycleStages should not be null or empty.")
        for stage in stages:
            if stage not in HOOK_STAGES:
                raise InvalidParameterException(f"Invalid lifecycle stage {stage}. Valid values are: {', '.join(HOOK_STAGES)}")
            if target_type == "PAUSE" and stage in PAUSE_FORBIDDEN:
                raise InvalidParameterException(MSG_PAUSE_STAGE)
        if target_type == "AWS_LAMBDA" and not hook.get("hookTargetArn"):
            raise InvalidParameterException("hookTargetArn should not be null or empty for AWS_LAMBDA lifecycle hooks.")
        tc = hook.get("timeoutConfiguration") or {}
        minutes = tc.get("timeoutInMinutes")
        if minutes is not None and not (isinstance(minutes, int) and 1 <= minutes <= 20160):
            raise InvalidParameterException("timeoutInMinutes must be between 1 and 20160.")
        if tc.get("action") not in (None, "CONTINUE", "ROLLBACK"):
            raise InvalidParameterException("Invalid timeout action. Valid values are: ROLLBACK, CONTINUE")


def _validate_numbers(cfg: dict[str, Any]) -> None:
    def in_range(value: Any, lo: float, hi: float) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi

    bake = cfg.get("bakeTimeInMinutes")
    if bake is not None and not in_range(bake, 0, 1440):
        raise InvalidParameterException("bakeTimeInMinutes must be between 0 and 1440.")
    lin = cfg.get("linearConfiguration") or {}
    if lin.get("stepPercent") is not None and not in_range(lin["stepPercent"], 3.0, 100.0):
        raise InvalidParameterException("stepPercent must be between 3.0 and 100.0.")
    if lin.get("stepBakeTimeInMinutes") is not None and not in_range(lin["stepBakeTimeInMinutes"], 0, 1440):
        raise InvalidParameterException("stepBakeTimeInMinutes must be between 0 and 1440.")
    can = cfg.get("canaryConfiguration") or {}
    if can.get("canaryPercent") is not None and not in_range(can["canaryPercent"], 0.1, 100.0):
        raise InvalidParameterException("canaryPercent must be between 0.1 and 100.0.")
    if can.get("canaryBakeTimeInMinutes") is not None and not in_range(can["canaryBakeTimeInMinutes"], 0, 1440):
        raise InvalidParameterException("canaryBakeTimeInMinutes must be between 0 and 1440.")


# --------------------------------------------------------------------------- model

_DEPLOYMENTS: dict[str, "ServiceDeployment"] = {}
_REVISIONS: dict[str, "ServiceRevision"] = {}
_HOOKS: dict[str, "HookRun"] = {}


class SDState:
    """Per service: its service deployments (oldest first)."""

    def __init__(self) -> None:
        self.deployments: list[ServiceDeployment] = []


def _state(svc: Any) -> SDState:
    if not hasattr(svc, "emu_sd"):
        svc.emu_sd = SDState()
    return svc.emu_sd


class ServiceRevision:
    """DescribeServiceRevisions: the service's configuration one deployment runs."""

    def __init__(self, svc: Any, dep: Any) -> None:
        self.arn = (f"arn:aws:ecs:{svc.region_name}:{svc._account_id}:service-revision/"
                    f"{svc.cluster_name}/{svc.name}/{dep.id.split('/')[-1]}")
        self.service_arn = svc.arn
        self.cluster_arn = svc.cluster_arn
        self.task_definition = dep.task_definition
        self.launch_type = svc.launch_type
        self.platform_version = dep.platform_version
        self.platform_family = dep.platform_family
        self.load_balancers = copy.deepcopy(svc.load_balancers or [])
        self.service_registries = copy.deepcopy(getattr(svc, "service_registries", None) or [])
        self.network_configuration = copy.deepcopy(svc.network_configuration or None)
        self.volume_configurations = copy.deepcopy(dep.volume_configurations)
        self.created_at = dep.created_at
        self.resolved: list[dict[str, Any]] | None = None  # blue/green: the target groups it serves from
        self.deployment_ids = {dep.id}
        self.container_images = []
        try:
            td = ecs.ecs_backends[svc._account_id][svc.region_name].describe_task_definition(dep.task_definition)
            self.container_images = [{"containerName": c.get("name"), "image": c.get("image")}
                                     for c in td.container_definitions]
        except Exception:  # noqa: BLE001 - unknown task definition
            pass

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"serviceRevisionArn": self.arn, "serviceArn": self.service_arn,
                               "clusterArn": self.cluster_arn, "taskDefinition": self.task_definition,
                               "loadBalancers": self.load_balancers, "serviceRegistries": self.service_registries,
                               "containerImages": self.container_images, "guardDutyEnabled": False,
                               "createdAt": self.created_at}
        for key, value in (("launchType", self.launch_type), ("platformVersion", self.platform_version),
                           ("platformFamily", self.platform_family),
                           ("networkConfiguration", self.network_configuration),
                           ("volumeConfigurations", self.volume_configurations)):
            if value:
                out[key] = value
        if self.resolved is not None:
            out["resolvedConfiguration"] = {"loadBalancers": self.resolved}
        return out


def revision_for(svc: Any, dep: Any) -> ServiceRevision:
    rev = getattr(dep, "emu_revision", None)
    if rev is None:
        rev = ServiceRevision(svc, dep)
        dep.emu_revision = rev
        _REVISIONS[rev.arn] = rev
    return rev


class HookRun:
    """One invocation of a lifecycle hook (lifecycleHookDetails, GET /_emulator/ecs-hooks)."""

    def __init__(self, sd: "ServiceDeployment", hook: dict[str, Any], stage: str, now: float,
                 rollback: bool = False) -> None:
        self.sd = sd
        self.target_type = hook.get("targetType") or "AWS_LAMBDA"
        self.hook_id = f"ecs-{'pause' if self.target_type == 'PAUSE' else 'lambda'}-{_rand(43)}"
        while self.hook_id in _HOOKS:
            self.hook_id = f"ecs-{'pause' if self.target_type == 'PAUSE' else 'lambda'}-{_rand(43)}"
        self.target_arn = hook.get("hookTargetArn") if self.target_type == "AWS_LAMBDA" else None
        self.role_arn = hook.get("roleArn")
        self.hook_details = hook.get("hookDetails")
        self.stage = stage
        self.rollback = rollback
        self.invoked_at = ecs._now()
        tc = hook.get("timeoutConfiguration") or {}
        self.timeout_action = tc.get("action") or "ROLLBACK"
        minutes = tc.get("timeoutInMinutes")
        if minutes is None:
            minutes = PAUSE_TIMEOUT_MINUTES if self.target_type == "PAUSE" else STAGE_TIMEOUT_MINUTES
        self.has_timeout_config = bool(tc) or self.target_type == "PAUSE"
        self.deadline = now + _minutes(minutes)
        # On the emulator's clock: when it will actually time out.
        self.expires_at = self.invoked_at + timedelta(seconds=_minutes(minutes))
        self.status = "AWAITING_ACTION" if self.target_type == "PAUSE" else "IN_PROGRESS"
        self.due = now + _step()
        name = ""
        if self.target_arn:
            name = self.target_arn.split(":function:")[-1].split(":")[0] if ":function:" in self.target_arn \
                else self.target_arn.split(":")[-1]
        self.auto: str | None = None
        if self.target_type == "AWS_LAMBDA":
            self.auto = None if name.endswith("-manual") else ("FAILED" if name.endswith("-fail") else "SUCCEEDED")
        self.payload = sd.payload(stage, self.hook_details)
        _HOOKS[self.hook_id] = self

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hookId": self.hook_id, "targetType": self.target_type, "status": self.status}
        if self.target_arn:
            out["targetArn"] = self.target_arn
        if self.has_timeout_config:
            out["expiresAt"] = self.expires_at
            out["timeoutAction"] = self.timeout_action
        return out

    def control_view(self) -> dict[str, Any]:
        return {"serviceDeploymentArn": self.sd.arn, "hookId": self.hook_id, "targetType": self.target_type,
                "hookTargetArn": self.target_arn, "roleArn": self.role_arn, "lifecycleStage": self.stage,
                "status": self.status, "rollback": self.rollback, "payload": self.payload}


class Step:
    """One piece of the blue/green stage machine."""

    def __init__(self, stage: str, hook_stage: str | None = None, action: str | None = None,
                 weight: float | None = None, wait_minutes: float = 0.0) -> None:
        self.stage, self.hook_stage, self.action = stage, hook_stage, action
        self.weight, self.wait_minutes = weight, wait_minutes


class Traffic:
    """One load balancer entry with advancedConfiguration: which target group is blue/green."""

    def __init__(self, lb: dict[str, Any]) -> None:
        adv = lb.get("advancedConfiguration") or {}
        self.lb = lb
        self.primary_tg = lb.get("targetGroupArn")
        self.alternate_tg = adv.get("alternateTargetGroupArn")
        self.prod_rule = adv.get("productionListenerRule")
        self.test_rule = adv.get("testListenerRule")
        self.blue_tg: str | None = None
        self.green_tg: str | None = None
        self.test_shifted = False


class ServiceDeployment:
    def __init__(self, svc: Any, dep: Any, sources: list[Any]) -> None:
        self.svc = svc
        self.id = _rand(21)
        self.arn = (f"arn:aws:ecs:{svc.region_name}:{svc._account_id}:service-deployment/"
                    f"{svc.cluster_name}/{svc.name}/{self.id}")
        self.dep = dep
        self.target = revision_for(svc, dep)
        self.source_deps = list(sources)
        self.sources = [revision_for(svc, d) for d in sources]
        self.created_at = self.updated_at = ecs._now()
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.status = "PENDING"
        self.status_reason: str | None = None
        self.stage: str | None = None
        self.config: dict[str, Any] = {}
        self.strategy = "ROLLING"
        self.rollback: dict[str, Any] | None = None
        self.rollback_dep: Any = None
        self.cb_status = "DISABLED"
        self.hooks: list[HookRun] = []
        self.active_hooks: list[HookRun] = []
        self.due = time.monotonic() + _step()
        # blue/green machine
        self.blue: Any = None
        self.green_weight = 0.0
        self.test_on_green = False
        self.traffic: list[Traffic] = []
        self.steps: list[Step] = []
        self.index = -1
        self.step_started = 0.0
        self.stage_started = 0.0
        self.phase = ""
        self.snapshot: dict[str, tuple[int, int, int]] | None = None
        self.failure_cause: str | None = None
        # GET /_emulator/ecs-deployments: every change of status, stage or traffic, with its time.
        self.history: list[dict[str, Any]] = []
        self.record()

    # ------------------------------------------------------------------ views

    @property
    def traffic_managed(self) -> bool:
        return self.strategy in TRAFFIC_STRATEGIES

    def _counts(self, rev: ServiceRevision) -> tuple[int, int, int]:
        """(requested, running, pending) tasks of a revision; frozen once the deployment finished."""
        if self.snapshot is not None and rev.arn in self.snapshot:
            return self.snapshot[rev.arn]
        svc = self.svc
        st = getattr(svc, "emu", None)
        tasks = [t for t in (st.tasks if st else []) if t.deployment_id in rev.deployment_ids
                 and t.desired_status == "RUNNING"]
        running = sum(1 for t in tasks if t.last_status == "RUNNING")
        pending = sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING", "ACTIVATING"))
        if rev is self.target:
            requested = self.dep.desired_count if self.dep in svc.deployments else 0
        else:
            requested = len(tasks)
        return requested, running, pending

    def _summary(self, rev: ServiceRevision) -> dict[str, Any]:
        requested, running, pending = self._counts(rev)
        out: dict[str, Any] = {"arn": rev.arn, "requestedTaskCount": requested, "runningTaskCount": running,
                               "pendingTaskCount": pending}
        if self.traffic_managed and self.status != "PENDING":
            if rev is self.target:
                prod, test = self.green_weight, (100.0 if self.test_on_green else 0.0)
            elif rev is self._blue_rev():
                prod, test = 100.0 - self.green_weight, (0.0 if self.test_on_green else 100.0)
            else:
                prod = test = 0.0
            out["requestedProductionTrafficWeight"] = float(prod)
            out["requestedTestTrafficWeight"] = float(test)
        return out

    def _blue_rev(self) -> ServiceRevision | None:
        return getattr(self.blue, "emu_revision", None) if self.blue is not None else None

    def _cb(self) -> dict[str, Any]:
        threshold = ecs._threshold(self.dep.desired_count)
        return {"status": self.cb_status, "failureCount": int(self.dep.failed_tasks), "threshold": threshold}

    def _alarms(self) -> dict[str, Any]:
        alarms = self.config.get("alarms") or {}
        if not ecs._truthy(alarms.get("enable", False)):
            return {"status": "DISABLED"}
        status = "MONITORING" if self.status not in TERMINAL else "MONITORING_COMPLETE"
        return {"status": status, "alarmNames": list(alarms.get("alarmNames") or []), "triggeredAlarmNames": []}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serviceDeploymentArn": self.arn, "serviceArn": self.svc.arn, "clusterArn": self.svc.cluster_arn,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
            "sourceServiceRevisions": [self._summary(r) for r in self.sources],
            "targetServiceRevision": self._summary(self.target),
            "status": self.status,
            "deploymentConfiguration": self.config or copy.deepcopy(self.svc.deployment_configuration or {}),
            "deploymentCircuitBreaker": self._cb(), "alarms": self._alarms()}
        for key, value in (("startedAt", self.started_at), ("finishedAt", self.finished_at),
                           ("stoppedAt", self.stopped_at), ("statusReason", self.status_reason),
                           ("lifecycleStage", self.stage), ("rollback", self.rollback)):
            if value is not None:
                out[key] = value
        if self.hooks:
            out["lifecycleHookDetails"] = [h.detail() for h in self.hooks]
        return out

    def brief(self) -> dict[str, Any]:
        out: dict[str, Any] = {"serviceDeploymentArn": self.arn, "serviceArn": self.svc.arn,
                               "clusterArn": self.svc.cluster_arn, "createdAt": self.created_at,
                               "targetServiceRevisionArn": self.target.arn, "status": self.status}
        for key, value in (("startedAt", self.started_at), ("finishedAt", self.finished_at),
                           ("statusReason", self.status_reason)):
            if value is not None:
                out[key] = value
        return out

    def payload(self, stage: str, hook_details: Any) -> dict[str, Any]:
        """What ECS would send the Lambda function (as seen in real invocations)."""
        prod = {self.target.arn: self.green_weight}
        test = {self.target.arn: 100.0 if self.test_on_green else 0.0}
        blue = self._blue_rev()
        if blue is not None:
            prod[blue.arn] = 100.0 - self.green_weight
            test[blue.arn] = 0.0 if self.test_on_green else 100.0
        out = {"executionDetails": {"testTrafficWeights": test, "productionTrafficWeights": prod,
                                    "serviceArn": self.svc.arn, "targetServiceRevisionArn": self.target.arn},
               "executionId": f"{_rand(8)}-{_rand(4)}", "lifecycleStage": stage, "resourceArn": self.arn}
        if hook_details is not None:
            out["hookDetails"] = hook_details
        return out

    # ------------------------------------------------------------------ transitions

    def touch(self) -> None:
        self.updated_at = ecs._now()
        self.record()

    def record(self) -> None:
        entry = {"status": self.status, "lifecycleStage": self.stage,
                 "productionTrafficWeight": self.green_weight if self.traffic_managed else None,
                 "testTrafficWeight": (100.0 if self.test_on_green else 0.0) if self.traffic_managed else None}
        last = self.history[-1] if self.history else None
        if last is None or any(last[k] != v for k, v in entry.items()):
            self.history.append({"time": time.time(), **entry})

    def control_view(self) -> dict[str, Any]:
        return {"serviceDeploymentArn": self.arn, "serviceArn": self.svc.arn, "strategy": self.strategy,
                "status": self.status, "lifecycleStage": self.stage, "history": self.history}

    def set_status(self, status: str, reason: str | None = None) -> None:
        self.status = status
        if reason is not None:
            self.status_reason = reason
        if status in TERMINAL:
            self.finished_at = self.finished_at or ecs._now()
            if status == "STOPPED":
                self.stopped_at = self.stopped_at or ecs._now()
            if self.cb_status == "MONITORING":
                self.cb_status = "MONITORING_COMPLETE"
            self.snapshot = {r.arn: self._counts(r) for r in [self.target, *self.sources]}
            for h in self.active_hooks:
                if h.status in ("IN_PROGRESS", "AWAITING_ACTION"):
                    h.status = "FAILED"
            self.active_hooks = []
        self.touch()


def current(svc: Any) -> ServiceDeployment | None:
    st = getattr(svc, "emu_sd", None)
    return st.deployments[-1] if st and st.deployments else None


def on_new_deployment(svc: Any, dep: Any, sources: list[Any]) -> ServiceDeployment:
    """ecs.py started a deployment (not a rollback): record its service deployment. A previous one
    still running stops (the new one takes over its tasks)."""
    st = _state(svc)
    for old in st.deployments:
        if old.status not in TERMINAL:
            old.set_status("STOPPED", MSG_SUPERSEDED)
            old.dep.emu_managed = False
            old.dep.emu_hold = False
    sd = ServiceDeployment(svc, dep, [d for d in sources if d is not dep])
    st.deployments.append(sd)
    _DEPLOYMENTS[sd.arn] = sd
    # Until its first tick decides the strategy, a new deployment starts no task: a blue/green one
    # only launches green at SCALE_UP.
    dep.emu_hold = True
    sync_service(svc)
    return sd


def on_circuit_breaker_rollback(svc: Any, failed: Any, rollback: Any, target: Any) -> None:
    """ecs.py's rolling circuit breaker started a rollback deployment of target's task definition."""
    rollback.emu_revision = revision_for(svc, target)
    rollback.emu_revision.deployment_ids.add(rollback.id)
    failed.emu_rollback_dep = rollback


def forget_service(svc: Any) -> None:
    """DeleteService: AWS deletes the service's service deployments."""
    st = getattr(svc, "emu_sd", None)
    if st is None:
        return
    for sd in st.deployments:
        _DEPLOYMENTS.pop(sd.arn, None)
        for h in sd.hooks:
            _HOOKS.pop(h.hook_id, None)
        _REVISIONS.pop(sd.target.arn, None)
    st.deployments = []


def sync_service(svc: Any) -> None:
    """DescribeServices' currentServiceDeployment / currentServiceRevisions."""
    sd = current(svc)
    svc.current_service_deployment = sd.arn if sd else None
    revs: list[dict[str, Any]] = []
    st = getattr(svc, "emu", None)
    for d in getattr(svc, "deployments", None) or []:
        rev = getattr(d, "emu_revision", None)
        if rev is None or any(r["arn"] == rev.arn for r in revs):
            continue
        tasks = [t for t in (st.tasks if st else []) if t.deployment_id in rev.deployment_ids
                 and t.desired_status == "RUNNING"]
        revs.append({"arn": rev.arn, "requestedTaskCount": d.desired_count,
                     "runningTaskCount": sum(1 for t in tasks if t.last_status == "RUNNING"),
                     "pendingTaskCount": sum(1 for t in tasks if t.last_status in ("PROVISIONING", "PENDING"))})
    svc.current_service_revisions = revs


# --------------------------------------------------------------------------- engine hooks (ecs.py)


def launch_hold(dep: Any) -> bool:
    return bool(getattr(dep, "emu_hold", False))


def drain_hold(svc: Any) -> bool:
    """While a blue/green-family deployment runs (or stopped without rollback), blue is not
    drained by the rolling scheduler: the stage machine stops it at CLEAN_UP."""
    sd = current(svc)
    if sd is None:
        return False
    if sd.status in ("STOP_REQUESTED", "STOPPED") and svc.deployments and sd.dep is svc.deployments[0]:
        return True  # stopped in place: the previous revision keeps its tasks
    return sd.traffic_managed and sd.status not in ("SUCCESSFUL", "ROLLBACK_SUCCESSFUL")


def tick(svc: Any, now: float) -> None:
    for sd in list(_state(svc).deployments):
        if sd.status in TERMINAL:
            continue
        try:
            _tick(sd, now)
        except Exception:  # noqa: BLE001 - one broken deployment must not stop the engine
            import traceback

            traceback.print_exc()
    sync_service(svc)


def _tick(sd: ServiceDeployment, now: float) -> None:
    if sd.status == "PENDING":
        _start(sd, now)
        return
    if sd.traffic_managed:
        _tick_traffic(sd, now)
    else:
        _tick_rolling(sd, now)


def _start(sd: ServiceDeployment, now: float) -> None:
    svc = sd.svc
    sd.config = normalize_config(copy.deepcopy(svc.deployment_configuration or {}))
    sd.strategy = strategy_of(sd.config)
    if sd.strategy not in STRATEGIES:
        sd.strategy = "ROLLING"
    cb = sd.config.get("deploymentCircuitBreaker") or {}
    sd.cb_status = "MONITORING" if ecs._truthy(cb.get("enable", False)) else "DISABLED"
    sd.status, sd.started_at = "IN_PROGRESS", ecs._now()
    sd.touch()
    if not sd.traffic_managed:
        sd.dep.emu_hold = False
        sd.dep.emu_load_balancers = _rolling_load_balancers(svc)
        return
    sd.dep.emu_managed = True
    live_sources = [d for d in sd.source_deps if d in svc.deployments]
    sd.blue = _pick_blue(sd, live_sources)
    _plan(sd, reconcile=len(live_sources) > 1)
    err = _setup_traffic(sd)
    if err:
        _fail(sd, err, now)
        return
    _begin_step(sd, 0, now)


def _rolling_load_balancers(svc: Any) -> list[dict[str, Any]] | None:
    """A ROLLING deployment of a service that has advancedConfiguration (it used, or will use, a
    blue/green-family strategy) registers its tasks in the target group production traffic goes to."""
    lbs = [lb for lb in svc.load_balancers or [] if isinstance(lb, dict)]
    if not any(lb.get("advancedConfiguration") for lb in lbs):
        return None
    try:
        elb = _elbv2(svc._account_id, svc.region_name)
    except Exception:  # noqa: BLE001
        return None
    out = []
    for lb in lbs:
        entry = {k: v for k, v in lb.items() if k != "advancedConfiguration"}
        adv = lb.get("advancedConfiguration") or {}
        found = _find_rule(elb, adv.get("productionListenerRule") or "")
        serving = [g["TargetGroupArn"] for g in _forward_groups(_actions(found)) if g["Weight"] > 0] if found else []
        if len(serving) == 1 and serving[0] in (lb.get("targetGroupArn"), adv.get("alternateTargetGroupArn")):
            entry["targetGroupArn"] = serving[0]
        out.append(entry)
    return out


def _pick_blue(sd: ServiceDeployment, sources: list[Any]) -> Any:
    """The revision serving production: the last one whose deployment completed, else the newest."""
    st = getattr(sd.svc, "emu", None)
    last = getattr(st, "last_completed", None) if st else None
    if last is not None and last in sources:
        return last
    return sources[0] if sources else None


def _plan(sd: ServiceDeployment, reconcile: bool) -> None:
    cfg = sd.config
    steps: list[Step] = []
    if reconcile:
        steps.append(Step("RECONCILE_SERVICE", "RECONCILE_SERVICE", "reconcile"))
    steps += [Step("PRE_SCALE_UP", "PRE_SCALE_UP"), Step("SCALE_UP", None, "scale_up"),
              Step("POST_SCALE_UP", "POST_SCALE_UP"), Step("TEST_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT", "shift_test"),
              Step("POST_TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT")]
    bake_between = 0.0
    if sd.strategy == "LINEAR":
        lin = {**LINEAR_DEFAULTS, **{k: v for k, v in (cfg.get("linearConfiguration") or {}).items() if v is not None}}
        pct = float(lin["stepPercent"])
        weights = [min(100.0, round(pct * k, 6)) for k in range(1, math.ceil(100.0 / pct - 1e-9) + 1)]
        bake_between = float(lin["stepBakeTimeInMinutes"])
    elif sd.strategy == "CANARY":
        can = {**CANARY_DEFAULTS, **{k: v for k, v in (cfg.get("canaryConfiguration") or {}).items() if v is not None}}
        pct = float(can["canaryPercent"])
        weights = [pct, 100.0] if pct < 100.0 else [100.0]
        bake_between = float(can["canaryBakeTimeInMinutes"])
    else:
        weights = [100.0]
    for w in weights:
        steps.append(Step("PRODUCTION_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT"))
        steps.append(Step("PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "shift_prod", weight=w))
        if w < 100.0 and bake_between > 0:
            steps.append(Step("PRODUCTION_TRAFFIC_SHIFT", None, "wait", wait_minutes=bake_between))
    steps += [Step("POST_PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"),
              Step("BAKE_TIME", None, "wait", wait_minutes=float(cfg.get("bakeTimeInMinutes") or 0)),
              Step("CLEAN_UP", None, "clean_up")]
    sd.steps = steps


def _setup_traffic(sd: ServiceDeployment) -> str | None:
    """Which target group is blue (serving production) and which green, per load balancer; the
    asynchronous networking checks AWS makes (their failure rolls the deployment back)."""
    svc = sd.svc
    reconcile = bool(sd.steps) and sd.steps[0].stage == "RECONCILE_SERVICE"
    lbs = [lb for lb in svc.load_balancers or [] if isinstance(lb, dict) and lb.get("advancedConfiguration")]
    sd.traffic = [Traffic(lb) for lb in lbs]
    if not sd.traffic:
        return None  # headless blue/green: ECS replaces the tasks, no traffic to move
    elb = _elbv2(svc._account_id, svc.region_name)
    green_lbs = []
    resolved = []
    blue_lbs = getattr(sd.blue, "emu_load_balancers", None) if sd.blue is not None else None
    for i, tr in enumerate(sd.traffic):
        prod = _find_rule(elb, tr.prod_rule)
        test = _find_rule(elb, tr.test_rule) if tr.test_rule else None
        if prod is None or (tr.test_rule and test is None):
            return MSG_NET_NO_RULE
        prod_groups = _forward_groups(_actions(prod))
        test_groups = _forward_groups(_actions(test)) if test else []
        associated = {g["TargetGroupArn"] for g in prod_groups + test_groups}
        for arn in (tr.primary_tg, tr.alternate_tg):
            if arn not in associated:
                return MSG_NET_NOT_ASSOCIATED.format(arn=arn)
        known = blue_lbs[i].get("targetGroupArn") if blue_lbs and i < len(blue_lbs) else None
        serving = [g["TargetGroupArn"] for g in prod_groups if g["Weight"] > 0]
        if reconcile and known:
            blue_tg = known  # an interrupted deployment may have left traffic split: blue takes it back
        else:
            if len(serving) > 1:
                return MSG_NET_TWO_SERVING.format(rule=tr.prod_rule, n=len(serving))
            if serving and serving[0] not in (tr.primary_tg, tr.alternate_tg):
                return MSG_NET_UNEXPECTED.format(arn=serving[0], tg=tr.primary_tg, alt=tr.alternate_tg)
            blue_tg = (serving[0] if serving else None) or known or tr.primary_tg
        tr.blue_tg = blue_tg
        tr.green_tg = tr.alternate_tg if blue_tg == tr.primary_tg else tr.primary_tg
        green = {k: v for k, v in tr.lb.items() if k != "advancedConfiguration"}
        green["targetGroupArn"] = tr.green_tg
        green_lbs.append(green)
        resolved.append({"targetGroupArn": tr.green_tg, "productionListenerRule": tr.prod_rule})
    sd.dep.emu_load_balancers = green_lbs
    sd.target.resolved = resolved
    blue_rev = sd._blue_rev()
    if blue_rev is not None and blue_rev.resolved is None:
        blue_rev.resolved = [{"targetGroupArn": tr.blue_tg, "productionListenerRule": tr.prod_rule}
                             for tr in sd.traffic]
    return None


def _set_forward(elb: Any, arn: str, weights: dict[str, int]) -> None:
    """Rewrite the forward action of a listener rule (or an NLB listener) with these weights,
    keeping the order the target groups already have in it."""
    from moto.elbv2.models import FakeAction

    found = _find_rule(elb, arn)
    if found is None:
        return
    kind, obj, listener = found
    actions = _actions(found)
    order = [g["TargetGroupArn"] for g in _forward_groups(actions) if g["TargetGroupArn"] in weights]
    order += [tg for tg in weights if tg not in order]
    stickiness = {"Enabled": False}
    new_actions = []
    replaced = False
    for a in actions:
        data = copy.deepcopy(getattr(a, "data", a) or {})
        if data.get("Type") == "forward" and not replaced:
            stickiness = (data.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig") or stickiness
            data.pop("TargetGroupArn", None)
            data["ForwardConfig"] = {"TargetGroups": [{"TargetGroupArn": tg, "Weight": weights[tg]} for tg in order],
                                     "TargetGroupStickinessConfig": stickiness}
            replaced = True
        new_actions.append(FakeAction(data))
    if not replaced:
        new_actions.append(FakeAction({"Type": "forward", "Order": 1, "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": tg, "Weight": weights[tg]} for tg in order],
            "TargetGroupStickinessConfig": stickiness}}))
    if kind == "listener":
        obj.default_actions = new_actions
        obj._default_rule[0].actions = new_actions
    else:
        obj.actions = new_actions
        if getattr(obj, "is_default", False):
            listener.default_actions = new_actions


def _weights(green_pct: float) -> tuple[int, int]:
    """(blue, green) listener weights: percent, or per mille for fractional percents."""
    if abs(green_pct - round(green_pct)) < 1e-9:
        g = int(round(green_pct))
        return 100 - g, g
    g = int(round(green_pct * 10))
    return 1000 - g, g


def _shift_prod(sd: ServiceDeployment, green_pct: float, event: bool = True) -> None:
    svc = sd.svc
    sd.green_weight = float(green_pct)
    if sd.traffic:
        elb = _elbv2(svc._account_id, svc.region_name)
        blue_w, green_w = _weights(green_pct)
        for tr in sd.traffic:
            _set_forward(elb, tr.prod_rule, {tr.blue_tg: blue_w, tr.green_tg: green_w})
    if event:
        ecs._event(svc, f"(service {svc.name}) (deployment {sd.dep.id}) production traffic shifted: "
                        f"{sd.green_weight:g}% to the new service revision.")
    sd.touch()


def _shift_test(sd: ServiceDeployment, to_green: bool) -> None:
    svc = sd.svc
    sd.test_on_green = to_green
    elb = _elbv2(svc._account_id, svc.region_name) if sd.traffic else None
    for tr in sd.traffic:
        if not tr.test_rule:
            continue
        if to_green:
            _set_forward(elb, tr.test_rule, {tr.blue_tg: 0, tr.green_tg: 100})
            tr.test_shifted = True
        elif tr.test_shifted:
            _set_forward(elb, tr.test_rule, {tr.blue_tg: 100, tr.green_tg: 0})
    sd.touch()


def _begin_step(sd: ServiceDeployment, index: int, now: float) -> None:
    sd.index = index
    step = sd.steps[index]
    if step.stage != sd.stage:
        sd.stage = step.stage
        sd.stage_started = now
    sd.step_started = now
    sd.touch()
    svc = sd.svc
    if step.action == "reconcile":
        for d in list(sd.source_deps):
            if d is sd.blue or d not in svc.deployments:
                continue
            for t in svc.emu.tasks:
                if t.deployment_id == d.id and t.desired_status == "RUNNING":
                    ecs._stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {d.id})")
        if sd.traffic:
            _shift_prod(sd, 0.0, event=False)
            _shift_test(sd, False)
    elif step.action == "scale_up":
        sd.dep.emu_hold = False
    elif step.action == "shift_test":
        _shift_test(sd, True)
    elif step.action == "shift_prod":
        _shift_prod(sd, step.weight or 0.0)
    elif step.action == "clean_up" and sd.blue is not None:
        stopped = []
        for d in [d for d in svc.deployments if d is not sd.dep]:
            for t in svc.emu.tasks:
                if t.deployment_id == d.id and t.desired_status == "RUNNING":
                    if t.last_status == "RUNNING":
                        stopped.append(t)
                    ecs._stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {d.id})")
        ecs._stopped_event(svc, stopped)
    sd.active_hooks = []
    if step.hook_stage:
        for hook in sd.config.get("lifecycleHooks") or []:
            if step.hook_stage in (hook.get("lifecycleStages") or []):
                run = HookRun(sd, hook, step.hook_stage, now)
                sd.hooks.append(run)
                sd.active_hooks.append(run)


def _step_done(sd: ServiceDeployment, step: Step, now: float) -> bool:
    if now - sd.step_started < _step():
        return False
    if step.action == "wait" and now - sd.step_started < _minutes(step.wait_minutes):
        return False
    svc = sd.svc
    if step.action == "scale_up":
        dep = sd.dep
        live = [t for t in svc.emu.tasks if t.deployment_id == dep.id and t.desired_status == "RUNNING"]
        if not (len(live) == dep.desired_count and all(ecs._healthy(t) for t in live)):
            dep.stable_since = None
            return False
        dep.stable_since = dep.stable_since or now
        return now - dep.stable_since >= ecs.STABLE_STEPS * _step()
    if step.action == "clean_up":
        others = [t for t in svc.emu.tasks if t.deployment_id != sd.dep.id and t.last_status != "STOPPED"
                  and any(d.id == t.deployment_id for d in svc.deployments if d is not sd.dep)]
        return not others
    return True


def _hooks_outcome(sd: ServiceDeployment, now: float) -> tuple[str, str | None]:
    """('wait'|'done'|'rollback', reason) for the running step's hooks."""
    for h in sd.active_hooks:
        if h.status == "IN_PROGRESS" and h.auto is not None and now >= h.due:
            h.status = h.auto
        if h.status in ("IN_PROGRESS", "AWAITING_ACTION") and now >= h.deadline:
            h.status = "TIMED_OUT"
            if h.timeout_action == "ROLLBACK":
                msg = MSG_PAUSE_TIMEOUT if h.target_type == "PAUSE" else MSG_HOOK_TIMEOUT
                return "rollback", msg.format(stage=h.stage)
    for h in sd.active_hooks:
        if h.status == "FAILED":
            if h.target_type == "PAUSE":
                return "rollback", MSG_PAUSE_ROLLBACK.format(stage=h.stage)
            return "rollback", MSG_HOOK_FAILED.format(stage=h.stage, arn=h.target_arn)
    if any(h.status in ("IN_PROGRESS", "AWAITING_ACTION") for h in sd.active_hooks):
        return "wait", None
    return "done", None


def _tick_traffic(sd: ServiceDeployment, now: float) -> None:
    dep = sd.dep
    if sd.status == "IN_PROGRESS":
        step = sd.steps[sd.index]
        cb = sd.config.get("deploymentCircuitBreaker") or {}
        if (sd.cb_status == "MONITORING" and step.action != "clean_up"
                and dep.failed_tasks >= ecs._threshold(dep.desired_count)):
            sd.cb_status = "TRIGGERED"
            dep.rollout_state, dep.rollout_state_reason = "FAILED", ecs.CB_REASON
            dep.updated_at = ecs._now()
            if ecs._truthy(cb.get("rollback", False)):
                _fail(sd, MSG_CB, now, circuit_breaker=True)
            else:
                _stop_in_place(sd, MSG_CB_STOPPED)
            return
        outcome, reason = _hooks_outcome(sd, now)
        if outcome == "rollback":
            _fail(sd, reason or "", now)
            return
        waiting_pause = any(h.status == "AWAITING_ACTION" for h in sd.active_hooks)
        if not waiting_pause and step.action != "wait" and now - sd.stage_started > _minutes(STAGE_TIMEOUT_MINUTES):
            _fail(sd, MSG_STAGE_TIMEOUT.format(stage=sd.stage), now)
            return
        if outcome == "done" and _step_done(sd, step, now):
            if sd.index + 1 < len(sd.steps):
                _begin_step(sd, sd.index + 1, now)
            else:
                _succeed(sd)
    elif sd.status == "ROLLBACK_REQUESTED":
        if now >= sd.due:
            _begin_rollback(sd, now)
    elif sd.status == "ROLLBACK_IN_PROGRESS":
        _tick_traffic_rollback(sd, now)
    elif sd.status == "STOP_REQUESTED":
        if now >= sd.due:
            _stop_in_place(sd, sd.status_reason or MSG_USER_STOP)


def _succeed(sd: ServiceDeployment) -> None:
    svc, dep = sd.svc, sd.dep
    dep.emu_managed = False
    dep.rollout_state = "COMPLETED"
    dep.rollout_state_reason = f"ECS deployment {dep.id} completed."
    dep.updated_at = ecs._now()
    svc.emu.outcomes[dep.id] = "COMPLETED"
    svc.emu.last_completed = dep
    ecs._event(svc, f"(service {svc.name}) (deployment {dep.id}) deployment completed.")
    sd.set_status("SUCCESSFUL")


def _stop_in_place(sd: ServiceDeployment, reason: str) -> None:
    """Stopped without rollback: the new revision launches no more tasks; traffic stays where it is."""
    dep = sd.dep
    dep.emu_managed = False
    dep.emu_hold = True
    if dep.rollout_state == "IN_PROGRESS":
        dep.rollout_state, dep.rollout_state_reason = "FAILED", reason
        dep.updated_at = ecs._now()
    sd.svc.emu.outcomes[dep.id] = "FAILED"
    ecs._event(sd.svc, f"(service {sd.svc.name}) deployment {dep.id} deployment failed: {reason}")
    sd.set_status("STOPPED", reason)


def _fail(sd: ServiceDeployment, reason: str, now: float, circuit_breaker: bool = False) -> None:
    """A failure that rolls back (circuit breaker with rollback, hook, pause, timeouts, networking)."""
    svc, dep = sd.svc, sd.dep
    sd.failure_cause = reason
    if dep.rollout_state == "IN_PROGRESS":
        dep.rollout_state = "FAILED"
        dep.rollout_state_reason = ecs.CB_REASON if circuit_breaker else reason
        dep.updated_at = ecs._now()
    svc.emu.outcomes[dep.id] = "FAILED"
    ecs._event(svc, f"(service {svc.name}) deployment {dep.id} deployment failed: {reason}")
    _begin_rollback(sd, now, reason)


def _begin_rollback(sd: ServiceDeployment, now: float, reason: str | None = None) -> None:
    svc, dep = sd.svc, sd.dep
    reason = reason or sd.status_reason or MSG_USER_ROLLBACK
    dep.emu_hold = True  # green launches nothing more
    dep.emu_managed = False
    if sd.traffic_managed:
        blue = sd.blue if sd.blue is not None and sd.blue in svc.deployments else None
    else:
        blue = _rolling_rollback_target(sd)
    if blue is None:
        if dep.rollout_state == "IN_PROGRESS":
            dep.rollout_state, dep.rollout_state_reason = "FAILED", reason
            dep.updated_at = ecs._now()
        sd.rollback = {"reason": reason, "startedAt": ecs._now()}
        ecs._event(svc, f"(service {svc.name}) deployment {dep.id} rollback failed: {MSG_NO_CANDIDATE}")
        sd.set_status("ROLLBACK_FAILED", MSG_NO_CANDIDATE)
        return
    rev = revision_for(svc, blue)
    sd.rollback = {"reason": reason, "startedAt": ecs._now(), "serviceRevisionArn": rev.arn}
    sd.set_status("ROLLBACK_IN_PROGRESS", reason)
    if dep.rollout_state == "IN_PROGRESS":
        dep.rollout_state, dep.rollout_state_reason = "FAILED", reason
        dep.updated_at = ecs._now()
    ecs._event(svc, f"(service {svc.name}) rolling back to deployment {blue.id}")
    if sd.traffic_managed:
        # Blue becomes PRIMARY again; traffic goes back to it (hooks of the traffic stages run again).
        if blue in svc.deployments:
            svc.deployments.remove(blue)
        for d in svc.deployments:
            if d.status == "PRIMARY":
                d.status, d.updated_at = "ACTIVE", ecs._now()
        blue.status, blue.updated_at = "PRIMARY", ecs._now()
        blue.rollout_state = "IN_PROGRESS"
        blue.rollout_state_reason = f"ECS deployment {blue.id} in progress."
        blue.desired_count = svc.desired_count
        blue.emu_hold = False
        svc.deployments.insert(0, blue)
        svc.emu.steady = False
        sd.rollback_dep = blue
        sd.phase = "traffic"
        sd.step_started = now
        for stage in ("PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT"):
            for hook in sd.config.get("lifecycleHooks") or []:
                if stage in (hook.get("lifecycleStages") or []):
                    run = HookRun(sd, hook, stage, now, rollback=True)
                    run.status = "SUCCEEDED" if run.target_type == "AWS_LAMBDA" else run.status
                    sd.hooks.append(run)
        if sd.green_weight > 0:
            _shift_prod(sd, 0.0)
        if sd.test_on_green:
            _shift_test(sd, False)
    else:
        new = ecs._new_deployment(svc, blue.task_definition, blue.volume_configurations)
        new.emu_hold = False
        on_circuit_breaker_rollback(svc, dep, new, blue)
        sd.rollback_dep = new


def _rolling_rollback_target(sd: ServiceDeployment) -> Any:
    """The revision a rolling rollback deploys: the last completed deployment, else the previous one."""
    st = sd.svc.emu
    last = st.last_completed
    if last is not None and last is not sd.dep:
        return last
    return next((d for d in sd.source_deps), None)


def _tick_traffic_rollback(sd: ServiceDeployment, now: float) -> None:
    svc, dep, blue = sd.svc, sd.dep, sd.rollback_dep
    if sd.phase == "traffic":
        if now - sd.step_started < _step():
            return
        stopped = []
        for t in svc.emu.tasks:
            if t.deployment_id == dep.id and t.desired_status == "RUNNING":
                if t.last_status == "RUNNING":
                    stopped.append(t)
                ecs._stop(t, "ServiceSchedulerInitiated", f"Scaling activity initiated by (deployment {dep.id})")
        ecs._stopped_event(svc, stopped)
        sd.phase = "drain"
        return
    green_left = any(t.deployment_id == dep.id and t.last_status != "STOPPED" for t in svc.emu.tasks)
    live = [t for t in svc.emu.tasks if t.deployment_id == blue.id and t.desired_status == "RUNNING"]
    blue_ok = len(live) >= blue.desired_count and all(ecs._healthy(t) for t in live)
    if not green_left and blue_ok:
        blue.rollout_state = "COMPLETED"
        blue.rollout_state_reason = f"ECS deployment {blue.id} completed."
        blue.updated_at = ecs._now()
        svc.emu.outcomes[blue.id] = "COMPLETED"
        svc.emu.last_completed = blue
        sd.set_status("ROLLBACK_SUCCESSFUL")


def _tick_rolling(sd: ServiceDeployment, now: float) -> None:
    dep = sd.dep
    if sd.status == "IN_PROGRESS":
        if dep.rollout_state == "COMPLETED":
            sd.set_status("SUCCESSFUL")
        elif dep.rollout_state == "FAILED":
            sd.cb_status = "TRIGGERED" if sd.cb_status == "MONITORING" else sd.cb_status
            rb = getattr(dep, "emu_rollback_dep", None)
            cb = sd.config.get("deploymentCircuitBreaker") or {}
            if rb is not None:
                sd.rollback_dep = rb
                rev = getattr(rb, "emu_revision", None)
                sd.rollback = {"reason": MSG_CB, "startedAt": ecs._now(),
                               **({"serviceRevisionArn": rev.arn} if rev else {})}
                sd.set_status("ROLLBACK_IN_PROGRESS", MSG_CB)
            elif ecs._truthy(cb.get("rollback", False)):
                sd.rollback = {"reason": MSG_CB, "startedAt": ecs._now()}
                sd.set_status("ROLLBACK_FAILED", MSG_NO_CANDIDATE)
            else:
                sd.set_status("STOPPED", MSG_CB_STOPPED)
    elif sd.status == "ROLLBACK_REQUESTED":
        if now >= sd.due:
            _begin_rollback(sd, now)
    elif sd.status == "ROLLBACK_IN_PROGRESS":
        rb = sd.rollback_dep
        if rb is not None and rb.rollout_state == "COMPLETED":
            sd.set_status("ROLLBACK_SUCCESSFUL")
        elif rb is not None and rb.rollout_state == "FAILED":
            sd.set_status("ROLLBACK_FAILED")
    elif sd.status == "STOP_REQUESTED":
        if now >= sd.due:
            _stop_in_place(sd, sd.status_reason or MSG_USER_STOP)


# --------------------------------------------------------------------------- API


def _sd(arn: str | None) -> ServiceDeployment:
    sd = _DEPLOYMENTS.get(arn or "")
    if sd is None:
        raise ServiceDeploymentNotFoundException()
    return sd


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def list_service_deployments_h(self: EC2ContainerServiceResponse) -> ActionResult:
    backend = self.ecs_backend
    svc = backend._get_service(self._get_param("cluster") or "default", self._get_param("service") or "")
    statuses = self._get_param("status") or []
    created = self._get_param("createdAt") or {}
    after, before = _ts(created.get("after")), _ts(created.get("before"))
    items = list(reversed(_state(svc).deployments))  # newest first
    items = [sd for sd in items if (not statuses or sd.status in statuses)
             and (after is None or sd.created_at >= after) and (before is None or sd.created_at <= before)]
    max_results = self._get_param("maxResults")
    if max_results is not None and not (1 <= int(max_results) <= 100):
        raise InvalidParameterException("maxResults must be between 1 and 100.")
    size = int(max_results or 20)
    start = 0
    token = self._get_param("nextToken")
    if token:
        try:
            start = int(json.loads(token)["offset"])
        except (ValueError, KeyError, TypeError):
            raise InvalidParameterException("Invalid nextToken.") from None
    page = items[start:start + size]
    out: dict[str, Any] = {"serviceDeployments": [sd.brief() for sd in page]}
    if start + size < len(items):
        out["nextToken"] = json.dumps({"offset": start + size})
    return ActionResult(out)


def describe_service_deployments_h(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self._get_param("serviceDeploymentArns") or []
    if len(arns) > 20:
        raise InvalidParameterException("serviceDeploymentArns can have at most 20 items.")
    found, failures = [], []
    for arn in arns:
        sd = _DEPLOYMENTS.get(arn)
        if sd is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(sd.describe())
    return ActionResult({"serviceDeployments": found, "failures": failures})


def describe_service_revisions_h(self: EC2ContainerServiceResponse) -> ActionResult:
    arns = self._get_param("serviceRevisionArns") or []
    if len(arns) > 20:
        raise InvalidParameterException("serviceRevisionArns can have at most 20 items.")
    found, failures = [], []
    for arn in arns:
        rev = _REVISIONS.get(arn)
        if rev is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(rev.describe())
    return ActionResult({"serviceRevisions": found, "failures": failures})


def stop_service_deployment_h(self: EC2ContainerServiceResponse) -> ActionResult:
    sd = _sd(self._get_param("serviceDeploymentArn"))
    stop_type = self._get_param("stopType") or "ROLLBACK"
    if stop_type not in ("ROLLBACK", "ABORT"):
        raise InvalidParameterException(f"Invalid stopType {stop_type}. Valid values are: ROLLBACK, ABORT")
    if sd.status in TERMINAL:
        raise ConflictException(MSG_STOP_TERMINAL)
    if sd.status in ("PENDING", "IN_PROGRESS"):
        if stop_type == "ROLLBACK":
            sd.set_status("ROLLBACK_REQUESTED", MSG_USER_ROLLBACK)
        else:
            sd.set_status("STOP_REQUESTED", MSG_USER_STOP)
        # The deployment launches nothing more and is no longer completed by the rolling scheduler.
        sd.dep.emu_hold = True
        sd.due = time.monotonic() + _step()
        for h in sd.active_hooks:
            if h.status in ("IN_PROGRESS", "AWAITING_ACTION"):
                h.status = "FAILED"
        sd.active_hooks = []
    return ActionResult({"serviceDeploymentArn": sd.arn})


def continue_service_deployment_h(self: EC2ContainerServiceResponse) -> ActionResult:
    sd = _sd(self._get_param("serviceDeploymentArn"))
    hook_id = self._get_param("hookId") or ""
    action = self._get_param("action") or "CONTINUE"
    if action not in ("CONTINUE", "ROLLBACK"):
        raise InvalidParameterException(f"Invalid action {action}. Valid values are: ROLLBACK, CONTINUE")
    if sd.status in TERMINAL:
        raise InvalidParameterException(MSG_CONTINUE_TERMINAL)
    if not re.match(r"^ecs-[a-z]+-.+$", hook_id):
        raise InvalidParameterException(MSG_HOOK_ID_FORMAT)
    hook = _HOOKS.get(hook_id)
    if hook is None or hook.sd is not sd or hook.target_type != "PAUSE" or hook.status != "AWAITING_ACTION":
        raise InvalidParameterException(MSG_HOOK_GONE)
    hook.status = "SUCCEEDED" if action == "CONTINUE" else "FAILED"
    sd.touch()
    return ActionResult({"serviceDeploymentArn": sd.arn})


HANDLERS = {
    "list_service_deployments": list_service_deployments_h,
    "describe_service_deployments": describe_service_deployments_h,
    "describe_service_revisions": describe_service_revisions_h,
    "stop_service_deployment": stop_service_deployment_h,
    "continue_service_deployment": continue_service_deployment_h,
}


# --------------------------------------------------------------------------- control endpoint


def _hooks_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    """GET: every lifecycle hook ECS invoked (newest last). POST {"hookId", "hookStatus"}: what a
    `-manual` Lambda hook returns (SUCCEEDED or FAILED)."""
    with LOCK:
        if environ.get("REQUEST_METHOD") == "POST":
            try:
                payload = json.loads(body or b"{}")
                hook = _HOOKS.get(str(payload.get("hookId") or ""))
                status = payload.get("hookStatus")
                if hook is None:
                    raise ValueError("unknown hookId")
                if status not in ("SUCCEEDED", "FAILED"):
                    raise ValueError("hookStatus must be SUCCEEDED or FAILED")
                if hook.target_type != "AWS_LAMBDA" or hook.status != "IN_PROGRESS":
                    raise ValueError("hook is not an in-progress Lambda hook")
                hook.status = status
            except (ValueError, TypeError, AttributeError) as exc:
                return 400, "application/json", json.dumps({"error": str(exc)}).encode()
        out = [h.control_view() for h in _HOOKS.values()]
    return 200, "application/json", json.dumps(out, default=str).encode()


def _deployments_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    """Every service deployment with its history of status / lifecycleStage / traffic (green's
    production and test percent) changes, times in Unix seconds."""
    with LOCK:
        out = [sd.control_view() for sd in _DEPLOYMENTS.values()]
    return 200, "application/json", json.dumps(out, default=str).encode()


def install() -> None:
    for name, fn in HANDLERS.items():
        setattr(EC2ContainerServiceResponse, name, fn)
    control.EXTRA_ROUTES[("GET", "/_emulator/ecs-hooks")] = _hooks_route
    control.EXTRA_ROUTES[("POST", "/_emulator/ecs-hooks")] = _hooks_route
    control.EXTRA_ROUTES[("GET", "/_emulator/ecs-deployments")] = _deployments_route

"""CodeDeploy for Amazon ECS blue/green deployments, replacing moto 5.2.5's CodeDeploy handlers.

moto only stores applications, deployment groups and deployments (a deployment stays
`Created` forever, errors use made-up texts, no deployment configs, targets, hooks,
ContinueDeployment or StopDeployment, no CloudFormation types). This module keeps its own
store and drives each ECS deployment on the ECS engine's clock (`ecs.TICKERS`):

* Created -> InProgress; lifecycle events BeforeInstall, Install (a replacement task set in
  the other target group, run by ecs.py, so failure labels and ECR pull failures apply),
  AfterInstall, AllowTestTraffic (test listener -> green), AfterAllowTestTraffic,
  [Ready: deploymentReadyOption STOP_DEPLOYMENT waits for ContinueDeployment],
  BeforeAllowTraffic, AllowTraffic (production listener weights per the deployment config),
  AfterAllowTraffic; then the termination wait (still InProgress), the original task set
  drains and the deployment is Succeeded.
* hooks: the emulator cannot run Lambda code; a hook function whose name ends in `-fail`
  reports Failed, one ending in `-manual` waits for PutLifecycleEventHookExecutionStatus,
  any other reports Succeeded one step after it is invoked.
* failures, StopDeployment, automatic rollback (a `codeDeployRollback` deployment that
  reroutes traffic to the original task set and removes the replacement).
* CloudFormation: AWS::CodeDeploy::Application, AWS::CodeDeploy::DeploymentGroup,
  AWS::CodeDeploy::DeploymentConfig.

Timing: one deployment-config minute = `minuteSeconds` (EMULATOR_CODEDEPLOY_MINUTE_SECONDS,
launcher --codedeploy-minute-seconds, POST /_emulator/codedeploy-speed); a lifecycle step is
the ECS step. AWS texts are used where known (see README).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import string
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

import yaml
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.moto_api._internal import mock_random

from emulator import control, ecs
from emulator.state import LOCK

# --------------------------------------------------------------------------- settings


class Settings:
    def __init__(self) -> None:
        try:
            self.minute = float(os.environ.get("EMULATOR_CODEDEPLOY_MINUTE_SECONDS", "") or 1.0)
        except ValueError:
            self.minute = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"minuteSeconds": self.minute, "stepSeconds": ecs.SETTINGS.step}


SETTINGS = Settings()

EVENTS = ["BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
          "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"]
HOOK_EVENTS = {"BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"}
ACTIVE = ("Created", "Queued", "InProgress", "Ready", "Baking")
DONE = ("Succeeded", "Failed", "Stopped")
# AWS waits an hour for the replacement task set and for a hook's status callback.
INSTALL_TIMEOUT_MINUTES = 60
HOOK_TIMEOUT_MINUTES = 60

# AWS texts (README says where each comes from).
MSG_INSTALL_TIMEOUT = ("The deployment timed out while waiting for the replacement task set to become healthy. "
                       "This time out period is 60 minutes.")
MSG_HOOK_TIMEOUT = ("The deployment timed out while waiting for a status callback. CodeDeploy expects a status "
                    "callback within one hour after a deployment hook is invoked.")
MSG_HOOK_FAILED = "The deployment failed because one or more of the lifecycle event validation functions failed."
MSG_READY_TIMEOUT = ("The deployment timed out while waiting for a notification to continue. This time out period "
                     "is {n} minutes.")
MSG_BAD_APPSPEC = ("The deployment failed because the AppSpec file that specifies the deployment configuration is "
                   "missing or has an invalid configuration. {detail}")
MSG_ECS_UPDATE = ("The ECS service cannot be updated due to an unexpected error: {msg} (Service: AmazonECS; Status "
                  "Code: 400; Error Code: {code}; Request ID: {rid}; Proxy: null). Check your ECS service status.")
MSG_MANUAL_STOP = "The deployment was stopped by the user."  # not confirmed
MSG_STOP_PENDING = "Stopping Pending. Stopping to schedule commands in the deployment instances"
MSG_ECS_CONTROLLER = "Deployment group's ECS service must be configured for a CODE_DEPLOY deployment controller."


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _step() -> float:
    return ecs.SETTINGS.step


def _minutes(n: float) -> float:
    return float(n) * SETTINGS.minute


# --------------------------------------------------------------------------- errors


class CodeDeployError(JsonRESTError):
    code = 400

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(error_type, message)


def _err(kind: str, message: str) -> CodeDeployError:
    return CodeDeployError(kind, message)


def _no_app(name: str) -> CodeDeployError:
    return _err("ApplicationDoesNotExistException", f"No application found for name: {name}")


def _no_group(name: str) -> CodeDeployError:
    return _err("DeploymentGroupDoesNotExistException", f"No Deployment Group found for name: {name}")


def _no_deployment(dep_id: str) -> CodeDeployError:
    return _err("DeploymentDoesNotExistException", f"No deployment found for id: {dep_id}")


def _no_config(name: str) -> CodeDeployError:
    return _err("DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {name}")


# --------------------------------------------------------------------------- deployment configs

_EPOCH = datetime(2014, 10, 6, tzinfo=timezone.utc)


def _predefined() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}

    def add(name: str, platform: str, **extra: Any) -> None:
        out[name] = {"deploymentConfigName": name, "computePlatform": platform, "createTime": _EPOCH,
                     "deploymentConfigId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), **extra}

    add("CodeDeployDefault.OneAtATime", "Server", minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 99})
    add("CodeDeployDefault.HalfAtATime", "Server", minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 50})
    add("CodeDeployDefault.AllAtOnce", "Server", minimumHealthyHosts={"type": "HOST_COUNT", "value": 0})
    for prefix, platform in (("Lambda", "Lambda"), ("ECS", "ECS")):
        add(f"CodeDeployDefault.{prefix}AllAtOnce", platform, trafficRoutingConfig={"type": "AllAtOnce"})
    for mins in (5, 10, 15, 30):
        add(f"CodeDeployDefault.LambdaCanary10Percent{mins}Minutes", "Lambda", trafficRoutingConfig={
            "type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": mins}})
    for mins in (1, 2, 3, 10):
        suffix = "Minute" if mins == 1 else "Minutes"
        add(f"CodeDeployDefault.LambdaLinear10PercentEvery{mins}{suffix}", "Lambda", trafficRoutingConfig={
            "type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": mins}})
    for mins in (5, 15):
        add(f"CodeDeployDefault.ECSCanary10Percent{mins}Minutes", "ECS", trafficRoutingConfig={
            "type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": mins}})
    for mins in (1, 3):
        add(f"CodeDeployDefault.ECSLinear10PercentEvery{mins}Minutes", "ECS", trafficRoutingConfig={
            "type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 10, "linearInterval": mins}})
    return out


PREDEFINED = _predefined()


# --------------------------------------------------------------------------- store

class Store:
    def __init__(self, account_id: str, region: str) -> None:
        self.account_id, self.region = account_id, region
        self.applications: "OrderedDict[str, Application]" = OrderedDict()
        self.groups: "OrderedDict[tuple[str, str], DeploymentGroup]" = OrderedDict()
        self.configs: "OrderedDict[str, dict[str, Any]]" = OrderedDict()
        self.deployments: "OrderedDict[str, Deployment]" = OrderedDict()

    def app(self, name: str | None) -> "Application":
        if not name:
            raise _err("ApplicationNameRequiredException", "The minimum number of required application names was "
                       "not specified.")
        app = self.applications.get(name)
        if app is None:
            raise _no_app(name)
        return app

    def group(self, app_name: str | None, group_name: str | None) -> "DeploymentGroup":
        self.app(app_name)
        if not group_name:
            raise _err("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
        group = self.groups.get((str(app_name), group_name))
        if group is None:
            raise _no_group(group_name)
        return group

    def config(self, name: str) -> dict[str, Any]:
        cfg = PREDEFINED.get(name) or self.configs.get(name)
        if cfg is None:
            raise _no_config(name)
        return cfg

    def deployment(self, dep_id: str | None) -> "Deployment":
        if not dep_id:
            raise _err("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
        dep = self.deployments.get(dep_id)
        if dep is None:
            raise _no_deployment(dep_id)
        return dep

    def arn(self, resource: str) -> str:
        return f"arn:aws:codedeploy:{self.region}:{self.account_id}:{resource}"


_STORES: dict[tuple[str, str], Store] = {}


def store(account_id: str, region: str) -> Store:
    key = (account_id, region)
    if key not in _STORES:
        _STORES[key] = Store(account_id, region)
    return _STORES[key]


# --------------------------------------------------------------------------- applications and groups


def _lower_first(key: str) -> str:
    return {"ECSServices": "ecsServices", "ELBInfoList": "elbInfoList"}.get(key, key[:1].lower() + key[1:])


_INT_KEYS = {"waitTimeInMinutes", "terminationWaitTimeInMinutes", "canaryPercentage", "canaryInterval",
             "linearPercentage", "linearInterval", "value"}
_BOOL_KEYS = {"enabled", "ignorePollAlarmFailure"}


def _camel(value: Any) -> Any:
    """CloudFormation properties (PascalCase, strings for numbers) as the API's camelCase shapes."""
    if isinstance(value, list):
        return [_camel(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _lower_first(str(k))
            v = _camel(v)
            if key in _INT_KEYS and isinstance(v, str) and v.strip().lstrip("-").isdigit():
                v = int(v)
            if key in _BOOL_KEYS and isinstance(v, str):
                v = v.strip().lower() == "true"
            out[key] = v
        return out
    return value


def _cfn_tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t.get("Key"), "Value": t.get("Value", "")} for t in props.get("Tags") or []]


class Application(CloudFormationModel):
    def __init__(self, st: Store, name: str, compute_platform: str | None, tags: list[dict[str, str]] | None) -> None:
        self.store = st
        self.name = name
        self.id = str(uuid.uuid4())
        self.compute_platform = compute_platform or "Server"
        self.create_time = _now()
        self.tags = list(tags or [])

    def info(self) -> dict[str, Any]:
        return {"applicationId": self.id, "applicationName": self.name, "createTime": self.create_time,
                "linkedToGitHub": False, "computePlatform": self.compute_platform}

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ApplicationName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::Application"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,  # type: ignore[misc, override]
                                        region_name: str, **kwargs: Any) -> "Application":
        props = cloudformation_json.get("Properties") or {}
        return create_application(store(account_id, region_name), props.get("ApplicationName") or resource_name,
                                  props.get("ComputePlatform"), _cfn_tags(props))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,  # type: ignore[misc, override]
                                        cloudformation_json: Any, account_id: str, region_name: str) -> "Application":
        props = cloudformation_json.get("Properties") or {}
        name = props.get("ApplicationName") or original_resource.name
        platform = props.get("ComputePlatform") or "Server"
        if name == original_resource.name and platform == original_resource.compute_platform:
            original_resource.tags = _cfn_tags(props)
            return original_resource
        # ApplicationName / ComputePlatform: replacement (the old one goes away).
        st = store(account_id, region_name)
        new = create_application(st, props.get("ApplicationName") or new_resource_name, platform, _cfn_tags(props))
        delete_application(st, original_resource.name)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        delete_application(store(account_id, region_name), self.name, missing_ok=True)


def create_application(st: Store, name: str | None, platform: str | None, tags: list[dict[str, str]] | None
                       ) -> Application:
    if not name:
        raise _err("ApplicationNameRequiredException",
                   "The minimum number of required application names was not specified.")
    if platform not in (None, "Server", "Lambda", "ECS"):
        raise _err("InvalidComputePlatformException",
                   "The computePlatform is invalid. The computePlatform should be Lambda, Server, or ECS.")
    if name in st.applications:
        raise _err("ApplicationAlreadyExistsException", f"The application {name} already exists with the user "
                   "or AWS account.")
    app = Application(st, name, platform, tags)
    st.applications[name] = app
    _tag(st, st.arn(f"application:{name}"), tags)
    return app


def _tag(st: Store, arn: str, tags: list[dict[str, str]] | None) -> None:
    """Tags given at creation, kept where moto's ListTagsForResource/TagResource look."""
    if tags:
        from moto.codedeploy.models import codedeploy_backends

        codedeploy_backends[st.account_id][st.region].tagger.tag_resource(arn, tags)


def delete_application(st: Store, name: str, missing_ok: bool = False) -> None:
    if name not in st.applications:
        if missing_ok:
            return
        raise _no_app(name)
    del st.applications[name]
    for key in [k for k in st.groups if k[0] == name]:
        del st.groups[key]


class DeploymentGroup(CloudFormationModel):
    def __init__(self, st: Store, app: Application, name: str, spec: dict[str, Any]) -> None:
        self.store = st
        self.app = app
        self.name = name
        self.id = str(uuid.uuid4())
        self.spec: dict[str, Any] = {}
        self.apply(spec)

    def apply(self, spec: dict[str, Any]) -> None:
        platform = self.app.compute_platform
        default_config = {"ECS": "CodeDeployDefault.ECSAllAtOnce", "Lambda": "CodeDeployDefault.LambdaAllAtOnce"}.get(
            platform, "CodeDeployDefault.OneAtATime")
        self.spec = {k: v for k, v in spec.items() if v is not None}
        self.spec["deploymentConfigName"] = spec.get("deploymentConfigName") or default_config

    @property
    def ecs_service(self) -> tuple[str, str] | None:
        services = self.spec.get("ecsServices") or []
        if not services:
            return None
        return services[0].get("clusterName") or "default", services[0].get("serviceName") or ""

    def info(self) -> dict[str, Any]:
        s = self.spec
        deps = [d for d in self.store.deployments.values()
                if d.app_name == self.app.name and d.group_name == self.name]
        last = deps[-1] if deps else None
        ok = next((d for d in reversed(deps) if d.status == "Succeeded"), None)

        def last_info(d: Deployment | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {"deploymentId": d.id, "status": d.status, "endTime": d.complete_time, "createTime": d.create_time}

        info = {
            "applicationName": self.app.name, "deploymentGroupId": self.id, "deploymentGroupName": self.name,
            "deploymentConfigName": s["deploymentConfigName"], "ec2TagFilters": s.get("ec2TagFilters") or [],
            "onPremisesInstanceTagFilters": s.get("onPremisesInstanceTagFilters") or [],
            "autoScalingGroups": s.get("autoScalingGroups") or [], "serviceRoleArn": s.get("serviceRoleArn"),
            "triggerConfigurations": s.get("triggerConfigurations") or [],
            "alarmConfiguration": s.get("alarmConfiguration") or {"enabled": False, "ignorePollAlarmFailure": False,
                                                                   "alarms": []},
            "autoRollbackConfiguration": s.get("autoRollbackConfiguration") or {"enabled": False},
            "deploymentStyle": s.get("deploymentStyle") or {"deploymentType": "IN_PLACE",
                                                            "deploymentOption": "WITHOUT_TRAFFIC_CONTROL"},
            "outdatedInstancesStrategy": s.get("outdatedInstancesStrategy") or "UPDATE",
            "blueGreenDeploymentConfiguration": s.get("blueGreenDeploymentConfiguration"),
            "loadBalancerInfo": s.get("loadBalancerInfo"),
            "lastSuccessfulDeployment": last_info(ok), "lastAttemptedDeployment": last_info(last),
            "ec2TagSet": s.get("ec2TagSet") or {"ec2TagSetList": []},
            "onPremisesTagSet": s.get("onPremisesTagSet") or {"onPremisesTagSetList": []},
            "computePlatform": self.app.compute_platform, "ecsServices": s.get("ecsServices") or [],
            "terminationHookEnabled": bool(s.get("terminationHookEnabled")),
        }
        if ok is not None and ok.revision:
            info["targetRevision"] = ok.revision
        return info

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DeploymentGroupName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::DeploymentGroup"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @staticmethod
    def _spec_from_cfn(props: dict[str, Any]) -> dict[str, Any]:
        spec = _camel({k: v for k, v in props.items() if k not in ("ApplicationName", "DeploymentGroupName", "Tags",
                                                                     "Deployment")})
        spec["tags"] = _cfn_tags(props)
        return spec

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,  # type: ignore[misc, override]
                                        region_name: str, **kwargs: Any) -> "DeploymentGroup":
        props = cloudformation_json.get("Properties") or {}
        return create_deployment_group(store(account_id, region_name), props.get("ApplicationName"),
                                       props.get("DeploymentGroupName") or resource_name, cls._spec_from_cfn(props))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,  # type: ignore[misc, override]
                                        cloudformation_json: Any, account_id: str, region_name: str
                                        ) -> "DeploymentGroup":
        props = cloudformation_json.get("Properties") or {}
        st = store(account_id, region_name)
        app_name = props.get("ApplicationName")
        name = props.get("DeploymentGroupName") or original_resource.name
        if app_name == original_resource.app.name and name == original_resource.name:
            # A property left out of the template goes back to its default.
            update_deployment_group(st, app_name, name, None, cls._spec_from_cfn(props), replace=True)
            return original_resource
        # ApplicationName / DeploymentGroupName: replacement.
        new = create_deployment_group(st, app_name, props.get("DeploymentGroupName") or new_resource_name,
                                      cls._spec_from_cfn(props))
        st.groups.pop((original_resource.app.name, original_resource.name), None)
        return new

    def delete(self, account_id: str, region_name: str) -> None:
        store(account_id, region_name).groups.pop((self.app.name, self.name), None)


def _validate_group(st: Store, app: Application, name: str, spec: dict[str, Any]) -> None:
    if app.compute_platform != "ECS":
        return
    lb = spec.get("loadBalancerInfo") or {}
    if lb.get("elbInfoList"):
        raise _err("InvalidLoadBalancerInfoException",
                   "For ECS deployment group, loadBalancerInfo must not contain elbInfo list")
    for svc_ref in spec.get("ecsServices") or []:
        cluster, service = svc_ref.get("clusterName") or "default", svc_ref.get("serviceName") or ""
        for (app_name, group_name), other in st.groups.items():
            if (app_name, group_name) != (app.name, name) and other.ecs_service == (cluster, service):
                raise _err("ECSServiceMappingLimitExceededException",
                           "The Amazon ECS service is associated with more than one deployment groups. An Amazon "
                           "ECS service can be associated with only one deployment group.")
        svc = ecs.find_code_deploy_service(st.account_id, st.region, cluster, service)
        if svc is not None and svc.status == "ACTIVE" and not hasattr(svc, "emu_ts"):
            raise _err("InvalidECSServiceException", MSG_ECS_CONTROLLER)
    cfg = spec.get("deploymentConfigName")
    if cfg:
        st.config(cfg)


def create_deployment_group(st: Store, app_name: str | None, name: str | None, spec: dict[str, Any]
                            ) -> DeploymentGroup:
    app = st.app(app_name)
    if not name:
        raise _err("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
    if (app.name, name) in st.groups:
        raise _err("DeploymentGroupAlreadyExistsException",
                   f"The deployment group {name} already exists with the application {app.name}.")
    _validate_group(st, app, name, spec)
    group = DeploymentGroup(st, app, name, spec)
    st.groups[(app.name, name)] = group
    _tag(st, st.arn(f"deploymentgroup:{app.name}/{name}"), spec.get("tags"))
    return group


def update_deployment_group(st: Store, app_name: str | None, current: str | None, new_name: str | None,
                            changes: dict[str, Any], replace: bool = False) -> DeploymentGroup:
    group = st.group(app_name, current)
    merged = {} if replace else dict(group.spec)
    merged.update({k: v for k, v in changes.items() if v is not None})
    target = new_name or group.name
    if target != group.name and (group.app.name, target) in st.groups:
        raise _err("DeploymentGroupAlreadyExistsException",
                   f"The deployment group {target} already exists with the application {group.app.name}.")
    _validate_group(st, group.app, target, merged)
    group.apply(merged)
    if target != group.name:
        del st.groups[(group.app.name, group.name)]
        group.name = target
        st.groups[(group.app.name, target)] = group
    return group


class DeploymentConfigResource(CloudFormationModel):
    """AWS::CodeDeploy::DeploymentConfig (every property change is a replacement)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DeploymentConfigName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::DeploymentConfig"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any, account_id: str,  # type: ignore[misc, override]
                                        region_name: str, **kwargs: Any) -> "DeploymentConfigResource":
        props = _camel(cloudformation_json.get("Properties") or {})
        name = props.get("deploymentConfigName") or resource_name
        create_deployment_config(store(account_id, region_name), name, props.get("computePlatform"),
                                 props.get("trafficRoutingConfig"), props.get("minimumHealthyHosts"))
        return cls(name)

    @classmethod
    def update_from_cloudformation_json(cls, original_resource: Any, new_resource_name: str,  # type: ignore[misc, override]
                                        cloudformation_json: Any, account_id: str, region_name: str
                                        ) -> "DeploymentConfigResource":
        store(account_id, region_name).configs.pop(original_resource.name, None)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        store(account_id, region_name).configs.pop(self.name, None)


def create_deployment_config(st: Store, name: str | None, platform: str | None, routing: dict[str, Any] | None,
                             healthy: dict[str, Any] | None) -> dict[str, Any]:
    if not name:
        raise _err("DeploymentConfigNameRequiredException", "The deployment configuration name was not specified.")
    if name in PREDEFINED or name in st.configs:
        raise _err("DeploymentConfigAlreadyExistsException",
                   f"A deployment configuration with the name {name} already exists with the user or AWS account.")
    platform = platform or "Server"
    if platform not in ("Server", "Lambda", "ECS"):
        raise _err("InvalidComputePlatformException",
                   "The computePlatform is invalid. The computePlatform should be Lambda, Server, or ECS.")
    cfg: dict[str, Any] = {"deploymentConfigName": name, "deploymentConfigId": str(uuid.uuid4()),
                           "createTime": _now(), "computePlatform": platform}
    if platform in ("ECS", "Lambda"):
        routing = routing or {}
        kind = routing.get("type")
        ok = kind == "AllAtOnce"
        if kind == "TimeBasedCanary":
            c = routing.get("timeBasedCanary") or {}
            ok = 0 < int(c.get("canaryPercentage") or 0) < 100 and int(c.get("canaryInterval") or 0) > 0
        elif kind == "TimeBasedLinear":
            c = routing.get("timeBasedLinear") or {}
            ok = 0 < int(c.get("linearPercentage") or 0) < 100 and int(c.get("linearInterval") or 0) > 0
        if not ok or healthy:
            raise _err("InvalidTrafficRoutingConfigurationException",
                       "The configuration that specifies how traffic is routed during a deployment is invalid.")
        cfg["trafficRoutingConfig"] = routing
    else:
        if routing or not healthy:
            raise _err("InvalidMinimumHealthyHostValueException",
                       "The minimum healthy instance value was specified in an invalid format.")
        cfg["minimumHealthyHosts"] = healthy
    st.configs[name] = cfg
    return cfg


# --------------------------------------------------------------------------- appspec


def _appspec(revision: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(TargetService properties + hooks, None) or (None, why the AppSpec is invalid)."""
    rtype = revision.get("revisionType")
    if rtype == "AppSpecContent":
        content = (revision.get("appSpecContent") or {}).get("content")
        sha = (revision.get("appSpecContent") or {}).get("sha256")
    elif rtype == "String":
        content = (revision.get("string") or {}).get("content")
        sha = (revision.get("string") or {}).get("sha256")
    else:
        return None, f"Revision type {rtype} is not supported by the emulator for ECS deployments."
    if not content:
        return None, "The AppSpec file is empty."
    if sha and hashlib.sha256(content.encode()).hexdigest() != sha.lower():
        return None, "The SHA256 hash of the AppSpec content does not match the sha256 provided."
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError:
        doc = None
    if not isinstance(doc, dict):
        return None, "The input AppSpec file is a not well-formed yaml. The template cannot be parsed."
    keys = {str(k).lower(): k for k in doc}
    resources = doc.get(keys.get("resources", "Resources"))
    if not isinstance(resources, list) or not resources:
        return None, "The AppSpec file must include property 'Resources'."
    target = resources[0]
    body = next(iter(target.values())) if isinstance(target, dict) and len(target) == 1 else None
    if not isinstance(body, dict) or body.get("Type") != "AWS::ECS::Service":
        return None, "The AppSpec Resources must name one AWS::ECS::Service target."
    props = body.get("Properties") or {}
    if not props.get("TaskDefinition"):
        return None, "The AppSpec file must include property 'TaskDefinition'."
    lbi = props.get("LoadBalancerInfo")
    if not isinstance(lbi, dict) or not lbi.get("ContainerName") or lbi.get("ContainerPort") in (None, ""):
        return None, "The AppSpec file must include property 'LoadBalancerInfo' with ContainerName and ContainerPort."
    hooks: list[tuple[str, str]] = []
    for h in doc.get(keys.get("hooks", "Hooks")) or []:
        if not isinstance(h, dict):
            return None, "The AppSpec Hooks section is invalid."
        for event, fn in h.items():
            if event not in HOOK_EVENTS:
                return None, f"The lifecycle event {event} is not a valid hook for an Amazon ECS deployment."
            hooks.append((str(event), str(fn)))
    return {"properties": props, "hooks": hooks}, None


# --------------------------------------------------------------------------- deployments

_ID_CHARS = string.ascii_uppercase + string.digits


def _deployment_id() -> str:
    return "d-" + "".join(mock_random.choice(_ID_CHARS) for _ in range(9))


class HookExecution:
    def __init__(self, dep: "Deployment", event: str, function: str) -> None:
        blob = json.dumps({"deploymentId": dep.id, "lifecycleEventName": event, "nonce": uuid.uuid4().hex})
        self.id = base64.b64encode(blob.encode()).decode()
        self.deployment = dep
        self.event = event
        self.function = function
        self.status = "Pending"  # -> Succeeded | Failed
        name = function.split(":function:")[-1].split(":")[0] if ":function:" in function else function.split(":")[-1]
        self.name = name
        if name.endswith("-fail"):
            self.auto: str | None = "Failed"
        elif name.endswith("-manual"):
            self.auto = None
        else:
            self.auto = "Succeeded"
        self.due = time.monotonic() + _step()
        self.deadline = time.monotonic() + _minutes(HOOK_TIMEOUT_MINUTES)


class Deployment:
    def __init__(self, st: Store, group: DeploymentGroup, revision: dict[str, Any] | None, config_name: str,
                 description: str | None, creator: str, auto_rollback: dict[str, Any] | None) -> None:
        self.store = st
        self.id = _deployment_id()
        while self.id in st.deployments:
            self.id = _deployment_id()
        self.app_name = group.app.name
        self.group_name = group.name
        self.group = group
        self.revision = revision
        self.previous_revision = next((d.revision for d in reversed(st.deployments.values())
                                       if d.app_name == self.app_name and d.group_name == self.group_name
                                       and d.status == "Succeeded" and d.revision), None)
        self.config_name = config_name
        self.description = description
        self.creator = creator
        self.auto_rollback = auto_rollback if auto_rollback is not None else group.spec.get("autoRollbackConfiguration")
        self.bg = dict(group.spec.get("blueGreenDeploymentConfiguration") or {})
        self.style = group.spec.get("deploymentStyle")
        self.lb_info = group.spec.get("loadBalancerInfo") or {}
        self.ecs_ref = group.ecs_service or ("default", "")
        self.status = "Created"
        self.error: dict[str, str] | None = None
        self.create_time = _now()
        self.start_time: datetime | None = None
        self.complete_time: datetime | None = None
        self.rollback_info: dict[str, str] | None = None
        self.termination_started = False
        self.events: list[dict[str, Any]] = [{"lifecycleEventName": n, "status": "Pending"} for n in EVENTS]
        self.target_status = "Pending"
        self.target_updated = _now()
        self.index = -1
        self.phase = "created"
        self.due = time.monotonic() + _step()
        self.deadline = 0.0
        self.hooks: list[HookExecution] = []
        self.all_hooks: list[HookExecution] = []
        self.spec: dict[str, Any] | None = None
        self.blue_id: str | None = None
        self.green_id: str | None = None
        self.blue_tg: tuple[str, str] | None = None  # (arn, name)
        self.green_tg: tuple[str, str] | None = None
        self.weight = 0.0  # production traffic on green, percent
        # Every production-listener change made for this deployment, as CloudTrail records the
        # ModifyListener calls CodeDeploy makes: GET /_emulator/codedeploy-traffic.
        self.traffic: list[dict[str, Any]] = []
        self.shifted = False  # production listener changed
        self.tested = False  # test listener changed
        self.schedule: list[tuple[float, float]] = []
        self.stop_request: dict[str, Any] | None = None
        self.rollback_of: Deployment | None = None
        self.snapshots: dict[str, dict[str, Any]] = {}

    # -- views
    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "applicationName": self.app_name, "deploymentGroupName": self.group_name,
            "deploymentConfigName": self.config_name, "deploymentId": self.id, "status": self.status,
            "createTime": self.create_time, "startTime": self.start_time, "completeTime": self.complete_time,
            "description": self.description, "creator": self.creator, "ignoreApplicationStopFailures": False,
            "autoRollbackConfiguration": self.auto_rollback or {"enabled": False},
            "updateOutdatedInstancesOnly": False, "deploymentStyle": self.style,
            "instanceTerminationWaitTimeStarted": self.termination_started,
            "blueGreenDeploymentConfiguration": self.bg or None, "loadBalancerInfo": self.lb_info or None,
            "deploymentStatusMessages": [], "computePlatform": self.group.app.compute_platform,
        }
        if self.revision:
            info["revision"] = self.revision
        if self.previous_revision:
            info["previousRevision"] = self.previous_revision
        if self.error:
            info["errorInformation"] = self.error
        if self.rollback_info:
            info["rollbackInfo"] = self.rollback_info
        if self.status in DONE:
            overview = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 0, "Skipped": 0, "Ready": 0}
            overview[self.target_status if self.target_status in overview else "Failed"] += 1
            info["deploymentOverview"] = overview
        return info

    @property
    def target_id(self) -> str:
        return f"{self.ecs_ref[0]}:{self.ecs_ref[1]}"

    def service(self) -> Any:
        return ecs.find_code_deploy_service(self.store.account_id, self.store.region, *self.ecs_ref)

    def task_set(self, ts_id: str | None) -> Any:
        svc = self.service()
        if svc is None or ts_id is None:
            return None
        return next((ts for ts in svc.task_sets if ts.id == ts_id), None)

    def task_sets_info(self) -> list[dict[str, Any]]:
        out = []
        for label, ts_id, tg, weight in (("Blue", self.blue_id, self.blue_tg, 100.0 - self.weight),
                                         ("Green", self.green_id, self.green_tg, self.weight)):
            if ts_id is None:
                continue
            ts = self.task_set(ts_id)
            if ts is not None:
                self.snapshots[label] = {
                    "identifer": ts.id, "desiredCount": ts.computed_desired_count,
                    "pendingCount": ts.pending_count, "runningCount": ts.running_count, "status": ts.status}
            snap = self.snapshots.get(label)
            if snap is None:
                continue
            item = dict(snap)
            item["trafficWeight"] = float(weight)
            if tg is not None:
                item["targetGroup"] = {"name": tg[1]}
            item["taskSetLabel"] = label
            out.append(item)
        return out

    def target(self) -> dict[str, Any]:
        svc = self.service()
        arn = svc.arn if svc is not None else (
            f"arn:aws:ecs:{self.store.region}:{self.store.account_id}:service/{self.ecs_ref[0]}/{self.ecs_ref[1]}")
        return {"deploymentTargetType": "ECSTarget", "ecsTarget": {
            "deploymentId": self.id, "targetId": self.target_id, "targetArn": arn,
            "lastUpdatedAt": self.target_updated, "lifecycleEvents": [dict(e) for e in self.events],
            "status": self.target_status, "taskSetsInfo": self.task_sets_info()}}

    # -- lifecycle helpers
    def event(self, name: str) -> dict[str, Any]:
        return next(e for e in self.events if e["lifecycleEventName"] == name)

    def touch(self) -> None:
        self.target_updated = _now()


def _active_for(st: Store, app_name: str, group_name: str) -> Deployment | None:
    return next((d for d in st.deployments.values()
                 if d.app_name == app_name and d.group_name == group_name and d.status in ACTIVE), None)


def create_deployment(st: Store, params: dict[str, Any], creator: str = "user") -> Deployment:
    app = st.app(params.get("applicationName"))
    group = st.group(app.name, params.get("deploymentGroupName"))
    config_name = params.get("deploymentConfigName") or group.spec["deploymentConfigName"]
    st.config(config_name)
    revision = params.get("revision")
    if not revision:
        raise _err("RevisionRequiredException", "RevisionLocation must be specified")
    description = params.get("description")
    if description and len(description) > 512:
        raise _err("DescriptionTooLongException", "The description is too long.")
    active = _active_for(st, app.name, group.name)
    if active is not None:
        raise _err("DeploymentLimitExceededException",
                   f"The Deployment Group '{group.name}' already has an active Deployment '{active.id}'")
    revision = json.loads(json.dumps(revision))
    for key in ("appSpecContent", "string"):
        body = revision.get(key)
        if isinstance(body, dict) and body.get("content") and not body.get("sha256"):
            body["sha256"] = hashlib.sha256(body["content"].encode()).hexdigest()
    dep = Deployment(st, group, revision, config_name, description, creator, params.get("autoRollbackConfiguration"))
    st.deployments[dep.id] = dep
    ecs._start_engine()
    return dep


# --------------------------------------------------------------------------- load balancer changes


def _elbv2(st: Store) -> Any:
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[st.account_id][st.region]


def _tg_by_name(st: Store, name: str) -> Any:
    return next((tg for tg in _elbv2(st).target_groups.values() if tg.name == name), None)


def _tg_by_arn(st: Store, arn: str | None) -> Any:
    return _elbv2(st).target_groups.get(arn or "")


def _pair(dep: Deployment) -> dict[str, Any]:
    pairs = dep.lb_info.get("targetGroupPairInfoList") or []
    return pairs[0] if pairs else {}


def _set_listener(st: Store, listener_arn: str, actions: list[dict[str, Any]]) -> None:
    try:
        _elbv2(st).modify_listener(listener_arn, actions=actions)
    except Exception:  # noqa: BLE001 - a listener that no longer exists: nothing to route
        pass


def _route_test(dep: Deployment, tg_arn: str) -> None:
    for arn in (_pair(dep).get("testTrafficRoute") or {}).get("listenerArns") or []:
        _set_listener(dep.store, arn, [{"Type": "forward", "TargetGroupArn": tg_arn,
                                        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": tg_arn, "Weight": 1}]}}])


def _route_prod(dep: Deployment, green_weight: float) -> None:
    """Production listener: a weighted forward between the pair's target groups."""
    if dep.blue_tg is None or dep.green_tg is None:
        return
    weights = {dep.blue_tg[0]: int(round(100 - green_weight)), dep.green_tg[0]: int(round(green_weight))}
    order = []
    for tg in _pair(dep).get("targetGroups") or []:
        found = _tg_by_name(dep.store, tg.get("name") or "")
        if found is not None and found.arn in weights:
            order.append(found.arn)
    order += [arn for arn in weights if arn not in order]
    groups = [{"TargetGroupArn": arn, "Weight": weights[arn]} for arn in order]
    for arn in (_pair(dep).get("prodTrafficRoute") or {}).get("listenerArns") or []:
        _set_listener(dep.store, arn, [{"Type": "forward", "ForwardConfig": {
            "TargetGroups": groups, "TargetGroupStickinessConfig": {"Enabled": False}}}])
    dep.weight = float(green_weight)
    dep.shifted = True
    dep.traffic.append({"time": time.time(), "weights": {arn: weights[arn] for arn in order}})
    dep.touch()


# --------------------------------------------------------------------------- engine


def _begin(dep: Deployment, index: int, now: float) -> None:
    dep.index = index
    ev = dep.events[index]
    ev["status"], ev["startTime"] = "InProgress", _now()
    dep.touch()
    name = ev["lifecycleEventName"]
    if name in HOOK_EVENTS:
        fns = [fn for event, fn in (dep.spec or {}).get("hooks", []) if event == name]
        dep.hooks = [HookExecution(dep, name, fn) for fn in fns]
        dep.all_hooks += dep.hooks
        dep.phase, dep.due = "hook", now + _step()
    elif name == "Install":
        _install(dep, now)
    elif name == "AllowTestTraffic":
        if dep.green_tg is not None and (_pair(dep).get("testTrafficRoute") or {}).get("listenerArns"):
            _route_test(dep, dep.green_tg[0])
            dep.tested = True
        dep.phase, dep.due = "simple", now + _step()
    elif name == "AllowTraffic":
        _start_shift(dep, now)


def _succeed_event(dep: Deployment, now: float) -> None:
    ev = dep.events[dep.index]
    ev["status"], ev["endTime"] = "Succeeded", _now()
    dep.touch()
    name = ev["lifecycleEventName"]
    if name == "AllowTraffic":
        svc, green = dep.service(), dep.task_set(dep.green_id)
        if svc is not None and green is not None:
            ecs.set_primary_task_set(svc, green)
    if name == "AfterAllowTestTraffic" and _ready_wait(dep):
        dep.status, dep.target_status, dep.phase = "Ready", "Ready", "ready"
        dep.deadline = now + _minutes(_ready_minutes(dep))
        return
    if dep.index + 1 < len(EVENTS):
        _begin(dep, dep.index + 1, now)
    else:
        _start_termination(dep, now)


def _ready_wait(dep: Deployment) -> bool:
    opt = dep.bg.get("deploymentReadyOption") or {}
    return opt.get("actionOnTimeout") == "STOP_DEPLOYMENT"


def _ready_minutes(dep: Deployment) -> int:
    return int((dep.bg.get("deploymentReadyOption") or {}).get("waitTimeInMinutes") or 0)


def _install(dep: Deployment, now: float) -> None:
    st = dep.store
    svc = dep.service()
    spec = dep.spec or {}
    props = spec.get("properties") or {}
    if svc is None or svc.status != "ACTIVE" or not hasattr(svc, "emu_ts"):
        _fail(dep, "INVALID_ECS_SERVICE", MSG_ECS_CONTROLLER if svc is not None and svc.status == "ACTIVE"
              else f"The ECS service {dep.ecs_ref[1]} in cluster {dep.ecs_ref[0]} does not exist or is not ACTIVE.")
        return
    # What CreateTaskSet would refuse, wrapped as CodeDeploy reports it.
    backend = ecs._backend(svc)
    lbi = props.get("LoadBalancerInfo") or {}
    cname, cport = str(lbi.get("ContainerName")), lbi.get("ContainerPort")
    try:
        td = ecs._resolve_task_definition(backend, str(props.get("TaskDefinition")))
    except ecs.ECSException as exc:
        _fail(dep, "ECS_UPDATE_ERROR", _ecs_update(str(getattr(exc, "message", exc)), exc))
        return
    cdef = next((c for c in td.container_definitions if c.get("name") == cname), None)
    if cdef is None:
        _fail(dep, "ECS_UPDATE_ERROR", _ecs_update(f"The container {cname} does not exist in the task definition.",
                                                   None))
        return
    try:
        port = int(cport)
    except (TypeError, ValueError):
        port = -1
    if not any(int(p.get("containerPort") or -2) == port for p in cdef.get("portMappings") or []):
        _fail(dep, "ECS_UPDATE_ERROR", _ecs_update(f"The container {cname} did not have a container port {cport} "
                                                   "defined.", None))
        return
    # A replacement left behind by a failed deployment without rollback goes away first.
    for ts in list(svc.task_sets):
        if ts.status == "ACTIVE":
            ecs.drain_task_set(svc, ts)
    blue = ecs.primary_task_set(svc)
    names = [tg.get("name") for tg in _pair(dep).get("targetGroups") or []]
    blue_arn = next((lb.get("targetGroupArn") for lb in (blue.load_balancers if blue else svc.load_balancers or [])
                     if lb.get("targetGroupArn")), None)
    blue_tg = _tg_by_arn(st, blue_arn)
    if blue_tg is None and names:
        blue_tg = _tg_by_name(st, names[0] or "")
    green_name = next((n for n in names if blue_tg is None or n != blue_tg.name), None)
    green_tg = _tg_by_name(st, green_name or "")
    if green_tg is None:
        _fail(dep, "ECS_UPDATE_ERROR", _ecs_update(
            f"Target group {green_name} not found.", None, code="InvalidParameterException"))
        return
    dep.blue_tg = (blue_tg.arn, blue_tg.name) if blue_tg is not None else None
    dep.green_tg = (green_tg.arn, green_tg.name)
    dep.blue_id = blue.id if blue is not None else None
    network = _camel_network(props.get("NetworkConfiguration"))
    cps = _camel_list(props.get("CapacityProviderStrategy"))
    green = ecs.create_task_set(svc, td.arn, load_balancers=[{"targetGroupArn": green_tg.arn, "containerName": cname,
                                                              "containerPort": port}],
                                network_configuration=network, platform_version=props.get("PlatformVersion"),
                                capacity_provider_strategy=cps, external_id=dep.id)
    dep.green_id = green.id
    dep.phase, dep.deadline = "install", now + _minutes(INSTALL_TIMEOUT_MINUTES)
    dep.due = now + _step()


def _camel_network(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    vpc = value.get("AwsvpcConfiguration") or value.get("awsvpcConfiguration") or {}
    out = {"subnets": vpc.get("Subnets") or vpc.get("subnets") or []}
    sgs = vpc.get("SecurityGroups") or vpc.get("securityGroups")
    if sgs:
        out["securityGroups"] = sgs
    public = vpc.get("AssignPublicIp") or vpc.get("assignPublicIp")
    if public:
        out["assignPublicIp"] = public
    return {"awsvpcConfiguration": out}


def _camel_list(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return [{_lower_first(k): v for k, v in item.items()} for item in value if isinstance(item, dict)]


def _ecs_update(message: str, exc: Exception | None, code: str | None = None) -> str:
    if code is None:
        code = getattr(exc, "error_type", None) or "InvalidParameterException"
    return MSG_ECS_UPDATE.format(msg=message, code=code, rid=uuid.uuid4())


def _start_shift(dep: Deployment, now: float) -> None:
    cfg = dep.store.config(dep.config_name)
    routing = cfg.get("trafficRoutingConfig") or {"type": "AllAtOnce"}
    kind = routing.get("type")
    if kind == "TimeBasedCanary":
        c = routing.get("timeBasedCanary") or {}
        schedule = [(0.0, float(c.get("canaryPercentage") or 10)), (float(c.get("canaryInterval") or 1), 100.0)]
    elif kind == "TimeBasedLinear":
        c = routing.get("timeBasedLinear") or {}
        pct, interval = float(c.get("linearPercentage") or 10), float(c.get("linearInterval") or 1)
        steps = math.ceil(100 / pct)
        schedule = [(i * interval, min(100.0, (i + 1) * pct)) for i in range(steps)]
    else:
        schedule = [(0.0, 100.0)]
    start = now
    dep.schedule = [(start + _minutes(offset), weight) for offset, weight in schedule]
    dep.phase = "shift"
    _shift(dep, now)


def _shift(dep: Deployment, now: float) -> None:
    while dep.schedule and dep.schedule[0][0] <= now:
        _, weight = dep.schedule.pop(0)
        _route_prod(dep, weight)
    if not dep.schedule:
        dep.phase, dep.due = "simple", now + _step()
    else:
        dep.due = dep.schedule[0][0]


def _start_termination(dep: Deployment, now: float) -> None:
    option = dep.bg.get("terminateBlueInstancesOnDeploymentSuccess") or {}
    if option.get("action") == "KEEP_ALIVE":
        _succeed(dep)
        return
    dep.termination_started = True
    dep.phase = "termination"
    dep.due = now + _minutes(int(option.get("terminationWaitTimeInMinutes") or 0))


def _terminate_blue(dep: Deployment) -> None:
    svc, blue = dep.service(), dep.task_set(dep.blue_id)
    if svc is not None and blue is not None:
        ecs.drain_task_set(svc, blue)
        dep.task_sets_info()  # keep the last view of it


def _succeed(dep: Deployment) -> None:
    dep.status, dep.target_status, dep.phase = "Succeeded", "Succeeded", "done"
    dep.complete_time = _now()
    dep.touch()


def _fail(dep: Deployment, code: str, message: str, status: str = "Failed", rollback: bool | None = None,
          diagnostics: dict[str, Any] | None = None) -> None:
    """End the deployment: the running event Failed, the rest Skipped; roll back when configured."""
    for ev in dep.events:
        if ev["status"] == "InProgress":
            ev["status"], ev["endTime"] = "Failed", _now()
            if diagnostics:
                ev["diagnostics"] = diagnostics
        elif ev["status"] == "Pending":
            ev["status"] = "Skipped"
    for h in dep.hooks:
        if h.status == "Pending":
            h.status = "Failed" if status == "Failed" else "Skipped"
    dep.status, dep.target_status, dep.phase = status, "Failed", "done"
    dep.error = {"code": code, "message": message}
    dep.complete_time = _now()
    dep.touch()
    if rollback is None:
        arc = dep.auto_rollback or {}
        rollback = status == "Failed" and bool(arc.get("enabled")) and "DEPLOYMENT_FAILURE" in (arc.get("events") or [])
    if rollback and dep.creator != "codeDeployRollback":
        rb = Deployment(dep.store, dep.group, dep.previous_revision, "CodeDeployDefault.ECSAllAtOnce", None,
                        "codeDeployRollback", dep.auto_rollback)
        rb.rollback_of = dep
        rb.blue_id, rb.green_id, rb.blue_tg, rb.green_tg = dep.blue_id, dep.green_id, dep.blue_tg, dep.green_tg
        rb.weight, rb.snapshots = dep.weight, dict(dep.snapshots)
        rb.phase = "rollback-created"
        dep.store.deployments[rb.id] = rb
        verb = "failed" if status == "Failed" else "terminated"
        dep.rollback_info = {"rollbackDeploymentId": rb.id, "rollbackMessage":
                             f"Deployment {dep.id} {verb}. Automatic rollback is triggered with a DeploymentId {rb.id}."}
        rb.rollback_info = {"rollbackTriggeringDeploymentId": dep.id, "rollbackMessage":
                            f"Deployment {rb.id} is triggered to roll back deployment {dep.id}."}


def _rollback_step(rb: Deployment, now: float) -> None:
    """The rollback deployment: traffic back to the original task set, the replacement removed."""
    orig = rb.rollback_of
    assert orig is not None
    svc = rb.service()
    blue, green = rb.task_set(rb.blue_id), rb.task_set(rb.green_id)
    if orig.shifted:
        _route_prod(rb, 0.0)
    if orig.tested and rb.blue_tg is not None:
        _route_test(rb, rb.blue_tg[0])
    if svc is not None:
        if blue is not None and blue.status != "PRIMARY":
            ecs.set_primary_task_set(svc, blue)
        if green is not None:
            ecs.drain_task_set(svc, green)
            rb.task_sets_info()
    rb.weight = 0.0
    stamp = _now()
    for ev in rb.events:
        if ev["lifecycleEventName"] in ("AllowTestTraffic", "AllowTraffic"):
            ev.update(status="Succeeded", startTime=stamp, endTime=stamp)
        else:
            ev["status"] = "Skipped"
    _succeed(rb)


def _tick_deployment(dep: Deployment, now: float) -> None:
    if dep.status in DONE:
        return
    if dep.stop_request is not None:
        req, dep.stop_request = dep.stop_request, None
        _fail(dep, "MANUAL_STOP", MSG_MANUAL_STOP, status="Stopped", rollback=req["rollback"])
        return
    if dep.phase == "rollback-created":
        if now >= dep.due:
            dep.status, dep.start_time, dep.target_status = "InProgress", _now(), "InProgress"
            dep.phase, dep.due = "rollback", now + _step()
        return
    if dep.phase == "rollback":
        if now >= dep.due:
            _rollback_step(dep, now)
        return
    if dep.phase == "created":
        if now < dep.due:
            return
        dep.status, dep.start_time, dep.target_status = "InProgress", _now(), "InProgress"
        dep.touch()
        spec, why = _appspec(dep.revision or {})
        if spec is None:
            _fail(dep, "INVALID_REVISION", MSG_BAD_APPSPEC.format(detail=why))
            return
        dep.spec = spec
        _begin(dep, 0, now)
        return
    if dep.phase == "hook":
        _tick_hooks(dep, now)
    elif dep.phase == "simple":
        if now >= dep.due:
            _succeed_event(dep, now)
    elif dep.phase == "install":
        green = dep.task_set(dep.green_id)
        svc = dep.service()
        if green is not None and svc is not None and now >= dep.due and ecs.task_set_steady(green):
            _succeed_event(dep, now)
        elif now >= dep.deadline:
            _fail(dep, "TIMEOUT", MSG_INSTALL_TIMEOUT)
    elif dep.phase == "shift":
        if now >= dep.due:
            _shift(dep, now)
    elif dep.phase == "ready":
        if now >= dep.deadline:
            _fail(dep, "TIMEOUT", MSG_READY_TIMEOUT.format(n=_ready_minutes(dep)), status="Stopped", rollback=False)
    elif dep.phase == "termination":
        if now >= dep.due:
            _terminate_blue(dep)
            _succeed(dep)


def _tick_hooks(dep: Deployment, now: float) -> None:
    for h in dep.hooks:
        if h.status != "Pending":
            continue
        if h.auto is not None and now >= h.due:
            h.status = h.auto
        elif h.auto is None and now >= h.deadline:
            _fail(dep, "TIMEOUT", MSG_HOOK_TIMEOUT)
            return
    failed = next((h for h in dep.hooks if h.status == "Failed"), None)
    if failed is not None:
        _fail(dep, "HOOK_EXECUTION_FAILURE", MSG_HOOK_FAILED, diagnostics={
            "errorCode": "ScriptFailed", "scriptName": failed.function,
            "message": f"The lifecycle event hook function {failed.function} reported Failed.", "logTail": ""})
        return
    if all(h.status == "Succeeded" for h in dep.hooks) and now >= dep.due:
        _succeed_event(dep, now)


def _tick(now: float) -> None:
    for st in list(_STORES.values()):
        for dep in list(st.deployments.values()):
            try:
                _tick_deployment(dep, now)
            except Exception:  # noqa: BLE001 - one broken deployment must not stop the others
                import traceback

                traceback.print_exc()
                if dep.status not in DONE:
                    _fail(dep, "INTERNAL_ERROR", "An internal error occurred.", rollback=False)


# --------------------------------------------------------------------------- API handlers


def _st(resp: CodeDeployResponse) -> Store:
    return store(resp.current_account, resp.region)


def create_application_h(self: CodeDeployResponse) -> ActionResult:
    app = create_application(_st(self), self._get_param("applicationName"), self._get_param("computePlatform"),
                             self._get_param("tags"))
    return ActionResult({"applicationId": app.id})


def get_application_h(self: CodeDeployResponse) -> ActionResult:
    return ActionResult({"application": _st(self).app(self._get_param("applicationName")).info()})


def batch_get_applications_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    return ActionResult({"applicationsInfo": [st.app(n).info() for n in self._get_param("applicationNames") or []]})


def list_applications_h(self: CodeDeployResponse) -> ActionResult:
    return ActionResult({"applications": list(_st(self).applications)})


def delete_application_h(self: CodeDeployResponse) -> EmptyResult:
    delete_application(_st(self), self._get_param("applicationName"))
    return EmptyResult()


_GROUP_KEYS = ("deploymentConfigName", "ec2TagFilters", "onPremisesInstanceTagFilters", "autoScalingGroups",
               "serviceRoleArn", "triggerConfigurations", "alarmConfiguration", "autoRollbackConfiguration",
               "outdatedInstancesStrategy", "deploymentStyle", "blueGreenDeploymentConfiguration", "loadBalancerInfo",
               "ec2TagSet", "ecsServices", "onPremisesTagSet", "tags", "terminationHookEnabled")


def create_deployment_group_h(self: CodeDeployResponse) -> ActionResult:
    spec = {k: self._get_param(k) for k in _GROUP_KEYS}
    group = create_deployment_group(_st(self), self._get_param("applicationName"),
                                    self._get_param("deploymentGroupName"), spec)
    return ActionResult({"deploymentGroupId": group.id})


def update_deployment_group_h(self: CodeDeployResponse) -> ActionResult:
    spec = {k: self._get_param(k) for k in _GROUP_KEYS if k != "tags"}
    update_deployment_group(_st(self), self._get_param("applicationName"),
                            self._get_param("currentDeploymentGroupName"), self._get_param("newDeploymentGroupName"),
                            spec)
    return ActionResult({"hooksNotCleanedUp": []})


def get_deployment_group_h(self: CodeDeployResponse) -> ActionResult:
    group = _st(self).group(self._get_param("applicationName"), self._get_param("deploymentGroupName"))
    return ActionResult({"deploymentGroupInfo": group.info()})


def batch_get_deployment_groups_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    app = st.app(self._get_param("applicationName"))
    infos, missing = [], []
    for name in self._get_param("deploymentGroupNames") or []:
        group = st.groups.get((app.name, name))
        if group is None:
            missing.append(name)
        else:
            infos.append(group.info())
    result: dict[str, Any] = {"deploymentGroupsInfo": infos}
    if missing:
        result["errorMessage"] = f"Deployment groups not found: {', '.join(missing)}"
    return ActionResult(result)


def list_deployment_groups_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    app = st.app(self._get_param("applicationName"))
    return ActionResult({"applicationName": app.name,
                         "deploymentGroups": [g for a, g in st.groups if a == app.name]})


def delete_deployment_group_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    group = st.group(self._get_param("applicationName"), self._get_param("deploymentGroupName"))
    del st.groups[(group.app.name, group.name)]
    return ActionResult({"hooksNotCleanedUp": []})


def create_deployment_config_h(self: CodeDeployResponse) -> ActionResult:
    cfg = create_deployment_config(_st(self), self._get_param("deploymentConfigName"),
                                   self._get_param("computePlatform"), self._get_param("trafficRoutingConfig"),
                                   self._get_param("minimumHealthyHosts"))
    return ActionResult({"deploymentConfigId": cfg["deploymentConfigId"]})


def get_deployment_config_h(self: CodeDeployResponse) -> ActionResult:
    name = self._get_param("deploymentConfigName")
    if not name:
        raise _err("DeploymentConfigNameRequiredException", "The deployment configuration name was not specified.")
    return ActionResult({"deploymentConfigInfo": _st(self).config(name)})


def list_deployment_configs_h(self: CodeDeployResponse) -> ActionResult:
    return ActionResult({"deploymentConfigsList": list(PREDEFINED) + list(_st(self).configs)})


def delete_deployment_config_h(self: CodeDeployResponse) -> EmptyResult:
    st = _st(self)
    name = self._get_param("deploymentConfigName")
    if name in PREDEFINED:
        raise _err("InvalidOperationException", "Cannot delete a default deployment configuration.")
    st.config(name)
    st.configs.pop(name, None)
    return EmptyResult()


def create_deployment_h(self: CodeDeployResponse) -> ActionResult:
    params = {k: self._get_param(k) for k in ("applicationName", "deploymentGroupName", "revision",
                                               "deploymentConfigName", "description", "autoRollbackConfiguration")}
    return ActionResult({"deploymentId": create_deployment(_st(self), params).id})


def get_deployment_h(self: CodeDeployResponse) -> ActionResult:
    return ActionResult({"deploymentInfo": _st(self).deployment(self._get_param("deploymentId")).info()})


def batch_get_deployments_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    ids = self._get_param("deploymentIds") or []
    return ActionResult({"deploymentsInfo": [st.deployments[i].info() for i in ids if i in st.deployments]})


def list_deployments_h(self: CodeDeployResponse) -> ActionResult:
    st = _st(self)
    app_name, group_name = self._get_param("applicationName"), self._get_param("deploymentGroupName")
    if bool(app_name) != bool(group_name):
        if app_name:
            raise _err("DeploymentGroupNameRequiredException", "The deployment group name was not specified.")
        raise _err("ApplicationNameRequiredException",
                   "The minimum number of required application names was not specified.")
    if app_name:
        st.group(app_name, group_name)
    statuses = self._get_param("includeOnlyStatuses") or []
    rng = self._get_param("createTimeRange") or {}
    external = self._get_param("externalId")
    out = []
    for d in reversed(st.deployments.values()):
        if app_name and (d.app_name, d.group_name) != (app_name, group_name):
            continue
        if statuses and d.status not in statuses:
            continue
        if external:
            continue  # no deployment of the emulator is linked to an external resource
        start, end = rng.get("start"), rng.get("end")
        created = d.create_time.timestamp()
        if start is not None and created < _ts(start):
            continue
        if end is not None and created > _ts(end):
            continue
        out.append(d.id)
    return ActionResult({"deployments": out})


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return datetime.fromisoformat(str(value)).timestamp()


def _started(st: Store, dep_id: str | None) -> Deployment:
    dep = st.deployment(dep_id)
    if dep.status == "Created" and dep.start_time is None:
        raise _err("DeploymentNotStartedException", "The specified deployment has not started.")
    return dep


def list_deployment_targets_h(self: CodeDeployResponse) -> ActionResult:
    dep = _started(_st(self), self._get_param("deploymentId"))
    filters = self._get_param("targetFilters") or {}
    for key in filters:
        if key not in ("TargetStatus", "ServerInstanceLabel"):
            raise _err("InvalidTargetFilterNameException", "The target filter name is invalid.")
    wanted = filters.get("TargetStatus")
    ids = [dep.target_id] if not wanted or dep.target_status in wanted else []
    return ActionResult({"targetIds": ids})


def batch_get_deployment_targets_h(self: CodeDeployResponse) -> ActionResult:
    dep = _started(_st(self), self._get_param("deploymentId"))
    ids = self._get_param("targetIds") or []
    if not ids:
        raise _err("DeploymentTargetIdRequiredException", "A deployment target ID was not provided.")
    if len(ids) > 25:
        raise _err("DeploymentTargetListSizeExceededException",
                   "The maximum number of targets that can be associated with an Amazon ECS or Lambda deployment "
                   "was exceeded.")
    for target_id in ids:
        if target_id != dep.target_id:
            raise _err("DeploymentTargetDoesNotExistException",
                       "The provided target ID does not belong to the attempted deployment.")
    return ActionResult({"deploymentTargets": [dep.target() for _ in ids]})


def get_deployment_target_h(self: CodeDeployResponse) -> ActionResult:
    dep = _started(_st(self), self._get_param("deploymentId"))
    target_id = self._get_param("targetId")
    if not target_id:
        raise _err("DeploymentTargetIdRequiredException", "A deployment target ID was not provided.")
    if target_id != dep.target_id:
        raise _err("DeploymentTargetDoesNotExistException",
                   "The provided target ID does not belong to the attempted deployment.")
    return ActionResult({"deploymentTarget": dep.target()})


def stop_deployment_h(self: CodeDeployResponse) -> ActionResult:
    dep = _st(self).deployment(self._get_param("deploymentId"))
    if dep.status in DONE:
        raise _err("DeploymentAlreadyCompletedException", f"The deployment {dep.id} has already completed.")
    rollback = self._get_param("autoRollbackEnabled")
    if rollback is None:
        arc = dep.auto_rollback or {}
        rollback = bool(arc.get("enabled")) and "DEPLOYMENT_STOP_ON_REQUEST" in (arc.get("events") or [])
    dep.stop_request = {"rollback": bool(rollback)}
    return ActionResult({"status": "Pending", "statusMessage": MSG_STOP_PENDING})


def continue_deployment_h(self: CodeDeployResponse) -> EmptyResult:
    dep = _st(self).deployment(self._get_param("deploymentId"))
    wait = self._get_param("deploymentWaitType") or "READY_WAIT"
    if wait not in ("READY_WAIT", "TERMINATION_WAIT"):
        raise _err("InvalidDeploymentWaitTypeException", "The wait type is invalid.")
    if dep.status in DONE:
        raise _err("DeploymentAlreadyCompletedException", f"The deployment {dep.id} has already completed.")
    now = time.monotonic()
    if wait == "READY_WAIT":
        if dep.phase != "ready":
            raise _err("DeploymentIsNotInReadyStateException",
                       "The deployment does not have a status of Ready and can't continue yet.")
        dep.status, dep.target_status = "InProgress", "InProgress"
        _begin(dep, dep.index + 1, now)
    else:
        if dep.phase != "termination":
            raise _err("InvalidDeploymentStatusException",
                       "The deployment is not waiting to terminate the original task set.")
        dep.due = now
    return EmptyResult()


def put_lifecycle_event_hook_execution_status_h(self: CodeDeployResponse) -> ActionResult:
    dep = _st(self).deployment(self._get_param("deploymentId"))
    hook_id = self._get_param("lifecycleEventHookExecutionId")
    status = self._get_param("status")
    if status not in ("Succeeded", "Failed"):
        raise _err("InvalidLifecycleEventHookExecutionStatusException",
                   "The result of a Lambda validation function that verifies a lifecycle event is invalid. It should "
                   "return Succeeded or Failed.")
    hook = next((h for h in dep.all_hooks if h.id == hook_id), None)
    if hook is None:
        raise _err("InvalidLifecycleEventHookExecutionIdException",
                   f"A lifecycle event hook execution with id {hook_id} does not exist for deployment {dep.id}.")
    if hook.status != "Pending" or dep.status in DONE:
        raise _err("LifecycleEventAlreadyCompletedException",
                   f"The lifecycle event {hook.event} of deployment {dep.id} has already completed.")
    hook.status = status
    return ActionResult({"lifecycleEventHookExecutionId": hook.id})


HANDLERS = {
    "create_application": create_application_h, "get_application": get_application_h,
    "batch_get_applications": batch_get_applications_h, "list_applications": list_applications_h,
    "delete_application": delete_application_h,
    "create_deployment_group": create_deployment_group_h, "update_deployment_group": update_deployment_group_h,
    "get_deployment_group": get_deployment_group_h, "batch_get_deployment_groups": batch_get_deployment_groups_h,
    "list_deployment_groups": list_deployment_groups_h, "delete_deployment_group": delete_deployment_group_h,
    "create_deployment_config": create_deployment_config_h, "get_deployment_config": get_deployment_config_h,
    "list_deployment_configs": list_deployment_configs_h, "delete_deployment_config": delete_deployment_config_h,
    "create_deployment": create_deployment_h, "get_deployment": get_deployment_h,
    "batch_get_deployments": batch_get_deployments_h, "list_deployments": list_deployments_h,
    "list_deployment_targets": list_deployment_targets_h,
    "batch_get_deployment_targets": batch_get_deployment_targets_h,
    "get_deployment_target": get_deployment_target_h,
    "stop_deployment": stop_deployment_h, "continue_deployment": continue_deployment_h,
    "put_lifecycle_event_hook_execution_status": put_lifecycle_event_hook_execution_status_h,
}


# --------------------------------------------------------------------------- control endpoints


def _speed_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            payload = json.loads(body or b"{}")
            with LOCK:
                if "minuteSeconds" in payload:
                    minute = float(payload["minuteSeconds"])
                    if minute <= 0:
                        raise ValueError("minuteSeconds must be > 0")
                    SETTINGS.minute = minute
        except (ValueError, TypeError, AttributeError) as exc:
            return 400, "application/json", json.dumps({"error": str(exc)}).encode()
    return 200, "application/json", json.dumps(SETTINGS.as_dict()).encode()


def _hooks_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    """Every hook execution CodeDeploy 'invoked' (what a Lambda function would receive)."""
    with LOCK:
        out = [{"deploymentId": h.deployment.id, "lifecycleEventName": h.event, "functionArn": h.function,
                "lifecycleEventHookExecutionId": h.id, "status": h.status}
               for st in _STORES.values() for d in st.deployments.values() for h in d.all_hooks]
    return 200, "application/json", json.dumps(out).encode()


def _traffic_route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    """Every production traffic change, in order: what a poll of the listener can miss when a
    step lasts less than the poll."""
    with LOCK:
        out = [{"deploymentId": d.id, "time": change["time"], "weights": change["weights"]}
               for st in _STORES.values() for d in st.deployments.values() for change in d.traffic]
    out.sort(key=lambda change: change["time"])
    return 200, "application/json", json.dumps(out).encode()


# --------------------------------------------------------------------------- install

_installed: list[bool] = []


def _target_group_attr(self: Any, attribute_name: str) -> Any:
    """Fn::GetAtt of AWS::ElasticLoadBalancingV2::TargetGroup (moto has none)."""
    if attribute_name == "TargetGroupName":
        return self.name
    if attribute_name == "TargetGroupFullName":
        return self.arn.split(":")[-1]
    if attribute_name == "TargetGroupArn":
        return self.arn
    if attribute_name == "LoadBalancerArns":
        return list(getattr(self, "load_balancer_arns", []) or [])
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    raise UnformattedGetAttTemplateException()


def install() -> None:
    """Replace moto's CodeDeploy handlers and register the CloudFormation types (idempotent)."""
    if _installed:
        return
    _installed.append(True)
    from moto.cloudformation import parsing as cfn_parsing
    from moto.elbv2.models import FakeTargetGroup

    from emulator import cloudformation

    for name, fn in HANDLERS.items():
        setattr(CodeDeployResponse, name, fn)
    # Our CloudFormationModel subclasses exist now: refresh moto's cached type map.
    cfn_parsing.get_model_map.cache_clear()
    cfn_parsing.get_name_type_map.cache_clear()
    if "get_cfn_attribute" not in FakeTargetGroup.__dict__:
        FakeTargetGroup.get_cfn_attribute = _target_group_attr
    cloudformation.REPLACEMENT_PROPERTIES.update({
        "AWS::CodeDeploy::Application": {"ApplicationName", "ComputePlatform"},
        "AWS::CodeDeploy::DeploymentGroup": {"ApplicationName", "DeploymentGroupName"},
        "AWS::CodeDeploy::DeploymentConfig": "*",
    })
    ecs.TICKERS.append(_tick)
    for method in ("GET", "POST"):
        control.EXTRA_ROUTES[(method, "/_emulator/codedeploy-speed")] = _speed_route
    control.EXTRA_ROUTES[("GET", "/_emulator/codedeploy-hooks")] = _hooks_route
    control.EXTRA_ROUTES[("GET", "/_emulator/codedeploy-traffic")] = _traffic_route

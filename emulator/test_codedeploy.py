"""End-to-end tests for CodeDeploy ECS blue/green deployments (emulator/codedeploy.py and the
CODE_DEPLOY task sets of emulator/ecs.py): launcher.py over real HTTP with boto3."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from emulator.testing import client, running_emulator
from emulator.test_ecs import EXEC_ROLE, create_execution_role

ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsCodeDeployRole"
STEP, MINUTE = 0.05, 0.05
# A traffic change is stamped a little after the engine tick that made it.
SLACK = 0.01
EVENTS = ["BeforeInstall", "Install", "AfterInstall", "AllowTestTraffic", "AfterAllowTestTraffic",
          "BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"]
HOOK_FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"


def _post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    return json.loads(urllib.request.urlopen(req).read())


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        assert _post(url, "/_emulator/ecs-speed", {"stepSeconds": STEP})["stepSeconds"] == STEP
        assert _post(url, "/_emulator/codedeploy-speed", {"minuteSeconds": MINUTE}) == {
            "minuteSeconds": MINUTE, "stepSeconds": STEP}
        create_execution_role(url)  # the task definitions name it (private ECR images need one)
        yield url



@pytest.fixture(scope="module")
def ecs(endpoint):
    return client(endpoint, "ecs")


@pytest.fixture(scope="module")
def cd(endpoint):
    return client(endpoint, "codedeploy")


@pytest.fixture(scope="module")
def elb(endpoint):
    return client(endpoint, "elbv2")


@pytest.fixture(scope="module")
def network(endpoint):
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    return {"vpc": vpc, "subnets": [a, b]}


def _get(url, path):
    return json.loads(urllib.request.urlopen(url + path).read())


@contextlib.contextmanager
def engine_paused(url):
    """Hold the emulator's engine (ECS and CodeDeploy) while a one-step state is looked at."""
    assert _post(url, "/_emulator/ecs-speed", {"paused": True})["paused"] is True
    try:
        yield
    finally:
        _post(url, "/_emulator/ecs-speed", {"paused": False})


def hook_executions(url):
    return _get(url, "/_emulator/codedeploy-hooks")


def traffic_changes(url, dep):
    """(time, {target group ARN: weight}) of every production listener change the deployment made."""
    return [(c["time"], c["weights"]) for c in _get(url, "/_emulator/codedeploy-traffic") if c["deploymentId"] == dep]


def wait_for(fn, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Setup:
    """A CODE_DEPLOY service behind an ALB (production and test listener, two target groups), a
    CodeDeploy ECS application and deployment group."""

    def __init__(self, endpoint, ecs, cd, elb, network, config="CodeDeployDefault.ECSAllAtOnce", rollback=None,
                 ready=None, termination_wait=0, desired=2, test_listener=True):
        self.ecs, self.cd, self.elb = ecs, cd, elb
        tag = uuid.uuid4().hex[:6]
        self.cluster = "c-" + tag
        ecs.create_cluster(clusterName=self.cluster)
        lb = elb.create_load_balancer(Name="lb-" + tag, Subnets=network["subnets"])["LoadBalancers"][0]
        self.tg_names = ["blue-" + tag, "green-" + tag]
        self.tgs = [elb.create_target_group(Name=n, Protocol="HTTP", Port=80, VpcId=network["vpc"], TargetType="ip")[
            "TargetGroups"][0]["TargetGroupArn"] for n in self.tg_names]
        fwd = [{"Type": "forward", "TargetGroupArn": self.tgs[0]}]
        self.prod = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                        DefaultActions=fwd)["Listeners"][0]["ListenerArn"]
        self.test = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=8080,
                                        DefaultActions=fwd)["Listeners"][0]["ListenerArn"]
        self.net = {"awsvpcConfiguration": {"subnets": network["subnets"][:1], "assignPublicIp": "DISABLED"}}
        self.td1 = self.task_def("nginx:1")
        self.service = ecs.create_service(
            cluster=self.cluster, serviceName="svc", taskDefinition=self.td1, desiredCount=desired,
            launchType="FARGATE", networkConfiguration=self.net, deploymentController={"type": "CODE_DEPLOY"},
            loadBalancers=[{"targetGroupArn": self.tgs[0], "containerName": "app", "containerPort": 80}])["service"]
        self.app, self.group = "app-" + tag, "dg-" + tag
        cd.create_application(applicationName=self.app, computePlatform="ECS")
        pair = {"targetGroups": [{"name": n} for n in self.tg_names], "prodTrafficRoute": {"listenerArns": [self.prod]}}
        if test_listener:
            pair["testTrafficRoute"] = {"listenerArns": [self.test]}
        bg = {"terminateBlueInstancesOnDeploymentSuccess": {"action": "TERMINATE",
                                                            "terminationWaitTimeInMinutes": termination_wait},
              "deploymentReadyOption": ready or {"actionOnTimeout": "CONTINUE_DEPLOYMENT", "waitTimeInMinutes": 0}}
        kw = {"autoRollbackConfiguration": rollback} if rollback else {}
        cd.create_deployment_group(
            applicationName=self.app, deploymentGroupName=self.group, serviceRoleArn=ROLE, deploymentConfigName=config,
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            blueGreenDeploymentConfiguration=bg, ecsServices=[{"serviceName": "svc", "clusterName": self.cluster}],
            loadBalancerInfo={"targetGroupPairInfoList": [pair]}, **kw)
        wait_for(lambda: self.describe()["taskSets"][0]["stabilityStatus"] == "STEADY_STATE", what="blue steady")

    def task_def(self, image, labels=None, port=80):
        cdef = {"name": "app", "image": image, "memory": 128, "portMappings": [{"containerPort": port}]}
        if labels:
            cdef["dockerLabels"] = labels
        return self.ecs.register_task_definition(
            family="app-" + self.cluster, containerDefinitions=[cdef], requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc", cpu="256", memory="512",
            executionRoleArn=EXEC_ROLE)["taskDefinition"]["taskDefinitionArn"]

    def describe(self):
        return self.ecs.describe_services(cluster=self.cluster, services=["svc"])["services"][0]

    def appspec(self, td, hooks=None, container="app", port=80, yaml_form=False):
        props = {"TaskDefinition": td, "LoadBalancerInfo": {"ContainerName": container, "ContainerPort": port}}
        if yaml_form:
            text = ("version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n"
                    f"        TaskDefinition: \"{td}\"\n        LoadBalancerInfo:\n          ContainerName: \"{container}\"\n"
                    f"          ContainerPort: {port}\n")
            if hooks:
                text += "Hooks:\n" + "".join(f"  - {e}: \"{fn}\"\n" for e, fn in hooks)
            return text
        doc = {"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": props}}]}
        if hooks:
            doc["Hooks"] = [{e: fn} for e, fn in hooks]
        return json.dumps(doc)

    def deploy(self, td=None, content=None, sha=True, **kw):
        content = content or self.appspec(td, **kw)
        spec = {"content": content}
        if sha:
            spec["sha256"] = hashlib.sha256(content.encode()).hexdigest()
        return self.cd.create_deployment(applicationName=self.app, deploymentGroupName=self.group,
                                         revision={"revisionType": "AppSpecContent", "appSpecContent": spec}
                                         )["deploymentId"]

    def info(self, dep):
        return self.cd.get_deployment(deploymentId=dep)["deploymentInfo"]

    def target(self, dep):
        return self.cd.batch_get_deployment_targets(deploymentId=dep, targetIds=[f"{self.cluster}:svc"])[
            "deploymentTargets"][0]["ecsTarget"]

    def finish(self, dep, timeout=15.0):
        return wait_for(lambda: (lambda i: i if i["status"] in ("Succeeded", "Failed", "Stopped") else None)(
            self.info(dep)), timeout, what=f"deployment {dep} to finish")

    def prod_weights(self):
        action = self.elb.describe_listeners(ListenerArns=[self.prod])["Listeners"][0]["DefaultActions"][0]
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if not groups:
            return {action["TargetGroupArn"]: 100}
        return {g["TargetGroupArn"]: g["Weight"] for g in groups}

    def test_target(self):
        return self.elb.describe_listeners(ListenerArns=[self.test])["Listeners"][0]["DefaultActions"][0][
            "TargetGroupArn"]

    def targets(self, tg):
        return {(h["Target"]["Id"], h["TargetHealth"]["State"])
                for h in self.elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]}


@pytest.fixture()
def make(endpoint, ecs, cd, elb, network):
    return lambda **kw: Setup(endpoint, ecs, cd, elb, network, **kw)


def statuses(target):
    return {e["lifecycleEventName"]: e["status"] for e in target["lifecycleEvents"]}


def code(exc):
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


# ------------------------------------------------------------------ ECS side


def test_code_deploy_service_runs_a_primary_task_set_and_refuses_task_definition_updates(make, ecs):
    s = make(desired=2)
    svc = s.describe()
    assert svc["deployments"] == [] and svc["deploymentController"] == {"type": "CODE_DEPLOY"}
    [ts] = svc["taskSets"]
    assert ts["id"].startswith("ecs-svc/") and len(ts["id"]) == len("ecs-svc/") + 19
    assert ts["taskSetArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-set/{s.cluster}/svc/{ts['id']}"
    assert ts["status"] == "PRIMARY" and ts["taskDefinition"] == s.td1 and "externalId" not in ts
    assert ts["computedDesiredCount"] == 2 and ts["runningCount"] == 2 and ts["pendingCount"] == 0
    assert ts["scale"] == {"value": 100.0, "unit": "PERCENT"} and ts["stabilityStatus"] == "STEADY_STATE"
    assert ts["launchType"] == "FARGATE" and ts["platformVersion"] == "LATEST"
    assert ts["loadBalancers"] == [{"targetGroupArn": s.tgs[0], "containerName": "app", "containerPort": 80}]
    assert ts["networkConfiguration"] == s.net and svc["runningCount"] == 2
    # Its tasks are started by the task set and registered in the blue target group.
    tasks = ecs.describe_tasks(cluster=s.cluster, tasks=ecs.list_tasks(cluster=s.cluster, serviceName="svc")[
        "taskArns"])["tasks"]
    assert {t["startedBy"] for t in tasks} == {ts["id"]} and {t["group"] for t in tasks} == {"service:svc"}
    assert {state for _, state in s.targets(s.tgs[0])} == {"healthy"} and len(s.targets(s.tgs[0])) == 2
    assert ecs.describe_task_sets(cluster=s.cluster, service="svc")["taskSets"][0]["id"] == ts["id"]
    assert ecs.describe_task_sets(cluster=s.cluster, service="svc", taskSets=[ts["taskSetArn"]])["taskSets"][0][
        "taskSetArn"] == ts["taskSetArn"]
    assert any(f"(service svc, taskSet {ts['id']}) updated state to STEADY_STATE." == e["message"]
               for e in svc["events"])

    with pytest.raises(ClientError) as exc:
        ecs.update_service(cluster=s.cluster, service="svc", taskDefinition=s.task_def("nginx:2"))
    assert code(exc) == ("InvalidParameterException", "Unable to update task definition on services with a "
                         "CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment.")
    # desiredCount alone is allowed: the task set follows it.
    ecs.update_service(cluster=s.cluster, service="svc", desiredCount=3)
    ts = wait_for(lambda: (lambda t: t if t["runningCount"] == 3 else None)(s.describe()["taskSets"][0]))
    assert ts["computedDesiredCount"] == 3 and s.describe()["taskDefinition"] == s.td1


# ------------------------------------------------------------------ successful deployments


def test_all_at_once_deployment_end_to_end(endpoint, make, cd, ecs):
    s = make(termination_wait=1000)
    td2 = s.task_def("nginx:2")
    _post(endpoint, "/_emulator/requests/reset", {})
    # Created lasts one step: the engine is held while it is looked at.
    with engine_paused(endpoint):
        dep = s.deploy(td2, hooks=[("BeforeInstall", HOOK_FN + "pre"),
                                   ("AfterAllowTestTraffic", HOOK_FN + "check-manual")])
        assert len(dep) == 11 and dep.startswith("d-") and dep[2:].isalnum() and dep[2:].isupper()
        first = s.info(dep)
        assert first["status"] == "Created" and "deploymentOverview" not in first
        with pytest.raises(ClientError) as exc:
            s.deploy(td2)
        assert code(exc) == ("DeploymentLimitExceededException",
                             f"The Deployment Group '{s.group}' already has an active Deployment '{dep}'")
    blue_id = s.describe()["taskSets"][0]["id"]

    # The AfterAllowTestTraffic hook waits for its answer: the test listener is on green,
    # production has not moved.
    [hook] = wait_for(lambda: [h for h in hook_executions(endpoint) if h["deploymentId"] == dep
                               and h["lifecycleEventName"] == "AfterAllowTestTraffic"], what="test-traffic hook")
    target = s.target(dep)
    assert [(e["lifecycleEventName"], e["status"]) for e in target["lifecycleEvents"]] == [
        (e, "Succeeded") for e in EVENTS[:4]] + [("AfterAllowTestTraffic", "InProgress")] + [
        (e, "Pending") for e in EVENTS[5:]]
    [green_info] = [t for t in target["taskSetsInfo"] if t["taskSetLabel"] == "Green"]
    assert green_info["targetGroup"] == {"name": s.tg_names[1]} and green_info["trafficWeight"] == 0.0
    assert s.test_target() == s.tgs[1] and s.prod_weights() == {s.tgs[0]: 100}
    assert traffic_changes(endpoint, dep) == []
    cd.put_lifecycle_event_hook_execution_status(
        deploymentId=dep, lifecycleEventHookExecutionId=hook["lifecycleEventHookExecutionId"], status="Succeeded")

    seen_status = [first["status"]]

    def poll():
        info = s.info(dep)
        if seen_status[-1] != info["status"]:
            seen_status.append(info["status"])
        return info["instanceTerminationWaitTimeStarted"]

    wait_for(poll, what="termination wait")
    assert seen_status == ["Created", "InProgress"]
    # The events ran one after another, in order; production moved once, all at once, after the
    # test traffic was checked.
    events = s.target(dep)["lifecycleEvents"]
    assert all(a["endTime"] <= b["startTime"] for a, b in itertools.pairwise(events))
    [(shifted_at, weights)] = traffic_changes(endpoint, dep)
    assert weights == {s.tgs[0]: 0, s.tgs[1]: 100}
    assert events[4]["endTime"].timestamp() <= shifted_at <= events[6]["endTime"].timestamp()

    # Traffic shifted, termination wait started: still InProgress, both task sets running.
    info, target = s.info(dep), s.target(dep)
    assert info["status"] == "InProgress" and "deploymentOverview" not in info
    assert [(e["lifecycleEventName"], e["status"]) for e in target["lifecycleEvents"]] == [
        (e, "Succeeded") for e in EVENTS]
    assert all(e["startTime"] <= e["endTime"] for e in target["lifecycleEvents"])
    assert target["targetId"] == f"{s.cluster}:svc" and target["targetArn"] == s.service["serviceArn"]
    assert target["status"] == "InProgress"
    infos = {t["taskSetLabel"]: t for t in target["taskSetsInfo"]}
    assert infos["Blue"]["identifer"] == blue_id and infos["Blue"]["trafficWeight"] == 0.0
    assert infos["Blue"]["status"] == "ACTIVE" and infos["Blue"]["targetGroup"] == {"name": s.tg_names[0]}
    assert infos["Green"]["status"] == "PRIMARY" and infos["Green"]["trafficWeight"] == 100.0
    assert infos["Green"]["desiredCount"] == 2 and infos["Green"]["runningCount"] == 2
    assert s.prod_weights() == {s.tgs[0]: 0, s.tgs[1]: 100}
    svc = s.describe()
    sets = {t["status"]: t for t in svc["taskSets"]}
    assert sets["PRIMARY"]["externalId"] == dep and sets["PRIMARY"]["startedBy"] == "CODE_DEPLOY"
    assert sets["PRIMARY"]["taskDefinition"] == td2 and sets["ACTIVE"]["id"] == blue_id
    assert sets["PRIMARY"]["loadBalancers"] == [{"targetGroupArn": s.tgs[1], "containerName": "app",
                                                 "containerPort": 80}]
    assert svc["taskDefinition"] == td2 and svc["loadBalancers"] == sets["PRIMARY"]["loadBalancers"]
    assert len(s.targets(s.tgs[1])) == 2 and {st for _, st in s.targets(s.tgs[1])} == {"healthy"}

    # ContinueDeployment(TERMINATION_WAIT) ends the wait: blue drains, the deployment succeeds.
    with pytest.raises(ClientError) as exc:
        cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT")
    assert code(exc)[0] == "DeploymentIsNotInReadyStateException"
    cd.continue_deployment(deploymentId=dep, deploymentWaitType="TERMINATION_WAIT")
    info = s.finish(dep)
    assert info["status"] == "Succeeded" and info["creator"] == "user" and "errorInformation" not in info
    assert info["deploymentOverview"] == {"Pending": 0, "InProgress": 0, "Succeeded": 1, "Failed": 0, "Skipped": 0,
                                          "Ready": 0}
    assert info["deploymentConfigName"] == "CodeDeployDefault.ECSAllAtOnce" and info["computePlatform"] == "ECS"
    assert info["createTime"] <= info["startTime"] <= info["completeTime"]
    assert info["revision"]["appSpecContent"]["content"].startswith("{")
    svc = wait_for(lambda: (lambda x: x if len(x["taskSets"]) == 1 else None)(s.describe()), what="blue removed")
    assert svc["taskSets"][0]["externalId"] == dep and svc["runningCount"] == 2
    wait_for(lambda: not s.targets(s.tgs[0]), what="blue targets deregistered")
    target = s.target(dep)
    assert target["status"] == "Succeeded"
    assert {t["taskSetLabel"]: t["status"] for t in target["taskSetsInfo"]} == {"Blue": "DRAINING",
                                                                                 "Green": "PRIMARY"}
    assert cd.list_deployments(applicationName=s.app, deploymentGroupName=s.group,
                               includeOnlyStatuses=["Succeeded"])["deployments"] == [dep]
    group = cd.get_deployment_group(applicationName=s.app, deploymentGroupName=s.group)["deploymentGroupInfo"]
    assert group["lastSuccessfulDeployment"]["deploymentId"] == dep
    assert group["targetRevision"] == info["revision"]
    # The request log names CodeDeploy's calls.
    log = json.loads(urllib.request.urlopen(endpoint + "/_emulator/requests").read())
    actions = {e["action"] for e in log if e["service"] == "codedeploy"}
    assert {"CreateDeployment", "GetDeployment", "BatchGetDeploymentTargets", "ContinueDeployment"} <= actions

    # The next deployment replaces the task set the other way round (green -> blue target group).
    dep2 = s.deploy(s.task_def("nginx:3"), yaml_form=True)
    wait_for(lambda: s.info(dep2)["instanceTerminationWaitTimeStarted"], what="second deployment shifted")
    assert s.prod_weights() == {s.tgs[0]: 100, s.tgs[1]: 0} and s.test_target() == s.tgs[0]
    cd.continue_deployment(deploymentId=dep2, deploymentWaitType="TERMINATION_WAIT")
    assert s.finish(dep2)["status"] == "Succeeded"
    assert s.info(dep2)["previousRevision"] == info["revision"]


def test_canary_shifts_ten_percent_then_the_rest(endpoint, make):
    s = make(config="CodeDeployDefault.ECSCanary10Percent5Minutes")
    dep = s.deploy(s.task_def("nginx:2"))
    assert s.finish(dep)["status"] == "Succeeded"
    changes = traffic_changes(endpoint, dep)
    assert [w for _, w in changes] == [{s.tgs[0]: 90, s.tgs[1]: 10}, {s.tgs[0]: 0, s.tgs[1]: 100}]
    assert changes[1][0] - changes[0][0] >= 5 * MINUTE - SLACK  # the canary interval
    assert statuses(s.target(dep))["AllowTraffic"] == "Succeeded"
    assert s.prod_weights() == changes[-1][1]


def test_linear_shifts_ten_percent_every_minute(endpoint, make):
    s = make(config="CodeDeployDefault.ECSLinear10PercentEvery1Minutes")
    dep = s.deploy(s.task_def("nginx:2"))
    observed = []

    def poll():
        # What the API shows while traffic moves: the target's green weight is the listener's.
        target = s.target(dep) if s.info(dep)["status"] != "Created" else None
        if target:
            green = [t["trafficWeight"] for t in target["taskSetsInfo"] if t["taskSetLabel"] == "Green"]
            w = s.prod_weights().get(s.tgs[1], 0)
            if green and green[0] == w and (not observed or observed[-1] != w):
                observed.append(w)
        return s.info(dep)["status"] == "Succeeded"

    wait_for(poll)
    changes = traffic_changes(endpoint, dep)
    assert [w[s.tgs[1]] for _, w in changes] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert all(w[s.tgs[0]] + w[s.tgs[1]] == 100 for _, w in changes)
    # The schedule is a lower bound: a busy engine may shift late, never early.
    assert all(t - changes[0][0] >= i * MINUTE - SLACK for i, (t, _) in enumerate(changes))
    assert observed == sorted(observed) and set(observed) <= {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}


def test_custom_deployment_config_and_configs_listed(endpoint, make, cd):
    names = cd.list_deployment_configs()["deploymentConfigsList"]
    assert {"CodeDeployDefault.ECSAllAtOnce", "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
            "CodeDeployDefault.ECSLinear10PercentEvery3Minutes", "CodeDeployDefault.ECSCanary10Percent5Minutes",
            "CodeDeployDefault.ECSCanary10Percent15Minutes"} <= set(names)
    cfg = cd.get_deployment_config(deploymentConfigName="CodeDeployDefault.ECSCanary10Percent15Minutes")[
        "deploymentConfigInfo"]
    assert cfg["computePlatform"] == "ECS" and cfg["trafficRoutingConfig"] == {
        "type": "TimeBasedCanary", "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 15}}
    name = "Linear50-" + uuid.uuid4().hex[:4]
    cd.create_deployment_config(deploymentConfigName=name, computePlatform="ECS", trafficRoutingConfig={
        "type": "TimeBasedLinear", "timeBasedLinear": {"linearPercentage": 50, "linearInterval": 2}})
    assert name in cd.list_deployment_configs()["deploymentConfigsList"]
    with pytest.raises(ClientError) as exc:
        cd.create_deployment_config(deploymentConfigName=name, computePlatform="ECS",
                                    trafficRoutingConfig={"type": "AllAtOnce"})
    assert code(exc)[0] == "DeploymentConfigAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        cd.create_deployment_config(deploymentConfigName=name + "x", computePlatform="ECS",
                                    trafficRoutingConfig={"type": "TimeBasedLinear"})
    assert code(exc)[0] == "InvalidTrafficRoutingConfigurationException"
    with pytest.raises(ClientError) as exc:
        cd.get_deployment_config(deploymentConfigName="nope")
    assert code(exc) == ("DeploymentConfigDoesNotExistException", "No deployment configuration found for name: nope")

    s = make(config=name)
    dep = s.deploy(s.task_def("nginx:2"))
    assert s.finish(dep)["status"] == "Succeeded"
    changes = traffic_changes(endpoint, dep)
    assert [w[s.tgs[1]] for _, w in changes] == [50, 100]
    assert changes[1][0] - changes[0][0] >= 2 * MINUTE - SLACK
    assert s.info(dep)["deploymentConfigName"] == name


def test_ready_wait_and_continue_deployment(make, cd):
    s = make(ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 1000})
    dep = s.deploy(s.task_def("nginx:2"))
    with pytest.raises(ClientError) as exc:
        cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT")
    assert code(exc) == ("DeploymentIsNotInReadyStateException",
                         "The deployment does not have a status of Ready and can't continue yet.")
    wait_for(lambda: s.info(dep)["status"] == "Ready", what="Ready")
    target = s.target(dep)
    assert target["status"] == "Ready" and statuses(target)["AfterAllowTestTraffic"] == "Succeeded"
    assert statuses(target)["BeforeAllowTraffic"] == "Pending"
    assert s.test_target() == s.tgs[1] and s.prod_weights() == {s.tgs[0]: 100}
    time.sleep(5 * STEP)
    assert s.info(dep)["status"] == "Ready"  # waits for the reroute
    cd.continue_deployment(deploymentId=dep)  # READY_WAIT is the default
    info = s.finish(dep)
    assert info["status"] == "Succeeded" and s.prod_weights() == {s.tgs[0]: 0, s.tgs[1]: 100}


def test_ready_wait_timeout_stops_the_deployment(make):
    s = make(ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 3})
    dep = s.deploy(s.task_def("nginx:2"))
    info = s.finish(dep)
    assert info["status"] == "Stopped" and info["errorInformation"] == {
        "code": "TIMEOUT", "message": "The deployment timed out while waiting for a notification to continue. "
                                      "This time out period is 3 minutes."}
    assert statuses(s.target(dep))["BeforeAllowTraffic"] == "Skipped"
    assert s.prod_weights() == {s.tgs[0]: 100}


# ------------------------------------------------------------------ hooks


def test_failing_hook_fails_the_deployment_and_rolls_back(make, cd):
    s = make(rollback={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]})
    dep = s.deploy(s.task_def("nginx:2"), hooks=[("AfterAllowTestTraffic", HOOK_FN + "smoke-test-fail")])
    info = s.finish(dep)
    assert info["status"] == "Failed" and info["errorInformation"] == {
        "code": "HOOK_EXECUTION_FAILURE",
        "message": "The deployment failed because one or more of the lifecycle event validation functions failed."}
    assert info["deploymentOverview"]["Failed"] == 1
    events = {e["lifecycleEventName"]: e for e in s.target(dep)["lifecycleEvents"]}
    assert [events[e]["status"] for e in EVENTS] == ["Succeeded"] * 4 + ["Failed"] + ["Skipped"] * 3
    assert events["AfterAllowTestTraffic"]["diagnostics"]["errorCode"] == "ScriptFailed"
    assert events["AfterAllowTestTraffic"]["diagnostics"]["scriptName"] == HOOK_FN + "smoke-test-fail"
    rb_id = info["rollbackInfo"]["rollbackDeploymentId"]
    assert info["rollbackInfo"]["rollbackMessage"] == (
        f"Deployment {dep} failed. Automatic rollback is triggered with a DeploymentId {rb_id}.")
    rb = s.finish(rb_id)
    assert rb["status"] == "Succeeded" and rb["creator"] == "codeDeployRollback"
    assert rb["deploymentConfigName"] == "CodeDeployDefault.ECSAllAtOnce"
    assert rb["rollbackInfo"] == {"rollbackTriggeringDeploymentId": dep,
                                  "rollbackMessage": f"Deployment {rb_id} is triggered to roll back deployment {dep}."}
    # Production never moved; the test listener is back on blue; the replacement is gone.
    assert s.prod_weights() == {s.tgs[0]: 100} and s.test_target() == s.tgs[0]
    svc = wait_for(lambda: (lambda x: x if len(x["taskSets"]) == 1 else None)(s.describe()))
    assert svc["taskSets"][0]["taskDefinition"] == s.td1 and svc["taskSets"][0]["status"] == "PRIMARY"
    wait_for(lambda: not s.targets(s.tgs[1]), what="green targets deregistered")
    assert cd.list_deployments(applicationName=s.app, deploymentGroupName=s.group)["deployments"] == [rb_id, dep]


def test_manual_hook_waits_for_put_lifecycle_event_hook_execution_status(endpoint, make, cd):
    s = make()
    dep = s.deploy(s.task_def("nginx:2"), hooks=[("BeforeAllowTraffic", HOOK_FN + "approve-manual")])

    def pending():
        return [h for h in hook_executions(endpoint) if h["deploymentId"] == dep and h["status"] == "Pending"]

    [hook] = wait_for(pending, what="hook invoked")
    assert hook["lifecycleEventName"] == "BeforeAllowTraffic" and hook["functionArn"] == HOOK_FN + "approve-manual"
    time.sleep(5 * STEP)
    assert statuses(s.target(dep))["BeforeAllowTraffic"] == "InProgress"  # still waiting for the callback
    with pytest.raises(ClientError) as exc:
        cd.put_lifecycle_event_hook_execution_status(deploymentId=dep, lifecycleEventHookExecutionId=hook[
            "lifecycleEventHookExecutionId"], status="Skipped")
    assert code(exc)[0] == "InvalidLifecycleEventHookExecutionStatusException"
    with pytest.raises(ClientError) as exc:
        cd.put_lifecycle_event_hook_execution_status(deploymentId=dep, lifecycleEventHookExecutionId="bogus",
                                                     status="Succeeded")
    assert code(exc)[0] == "InvalidLifecycleEventHookExecutionIdException"
    out = cd.put_lifecycle_event_hook_execution_status(
        deploymentId=dep, lifecycleEventHookExecutionId=hook["lifecycleEventHookExecutionId"], status="Succeeded")
    assert out["lifecycleEventHookExecutionId"] == hook["lifecycleEventHookExecutionId"]
    with pytest.raises(ClientError) as exc:
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId=dep, lifecycleEventHookExecutionId=hook["lifecycleEventHookExecutionId"], status="Failed")
    assert code(exc)[0] == "LifecycleEventAlreadyCompletedException"
    assert s.finish(dep)["status"] == "Succeeded"


def test_manual_hook_without_callback_times_out(make):
    s = make()
    dep = s.deploy(s.task_def("nginx:2"), hooks=[("BeforeInstall", HOOK_FN + "never-manual")])
    info = s.finish(dep, timeout=20)
    assert info["status"] == "Failed" and info["errorInformation"] == {
        "code": "TIMEOUT", "message": "The deployment timed out while waiting for a status callback. CodeDeploy "
                                      "expects a status callback within one hour after a deployment hook is invoked."}
    assert statuses(s.target(dep))["BeforeInstall"] == "Failed" and statuses(s.target(dep))["Install"] == "Skipped"
    assert len(s.describe()["taskSets"]) == 1  # nothing was installed


# ------------------------------------------------------------------ failures, stop, rollback


def test_replacement_task_set_whose_image_cannot_be_pulled_times_out(endpoint, make, ecs):
    ecr = client(endpoint, "ecr")
    repo = "bg-" + uuid.uuid4().hex[:6]
    ecr.create_repository(repositoryName=repo)
    s = make()
    dep = s.deploy(s.task_def(f"{REGISTRY}/{repo}:missing"))
    wait_for(lambda: statuses(s.target(dep)).get("Install") == "InProgress" if s.info(dep)["status"] != "Created"
             else None)
    # ECS keeps replacing the failing tasks of the replacement task set.
    stopped = wait_for(lambda: [t for t in ecs.describe_tasks(cluster=s.cluster, tasks=ecs.list_tasks(
        cluster=s.cluster, serviceName="svc", desiredStatus="STOPPED")["taskArns"] or ["none"])["tasks"]
        if t.get("stopCode") == "TaskFailedToStart"], what="pull failures")
    assert stopped[0]["stoppedReason"].startswith("CannotPullContainerError: pull image manifest has been retried")
    green = [t for t in s.describe()["taskSets"] if t.get("externalId") == dep][0]
    assert green["stabilityStatus"] == "STABILIZING" and green["runningCount"] == 0
    info = s.finish(dep, timeout=20)  # 60 minutes of MINUTE seconds
    assert info["status"] == "Failed" and info["errorInformation"] == {
        "code": "TIMEOUT", "message": "The deployment timed out while waiting for the replacement task set to become "
                                      "healthy. This time out period is 60 minutes."}
    assert statuses(s.target(dep))["Install"] == "Failed" and statuses(s.target(dep))["AfterInstall"] == "Skipped"
    assert "rollbackInfo" not in info
    # Without rollback the components stay as they are: production still on blue, the replacement left.
    assert s.prod_weights() == {s.tgs[0]: 100}
    assert {t["status"] for t in s.describe()["taskSets"]} == {"PRIMARY", "ACTIVE"}
    # A later deployment removes the leftover replacement before installing its own.
    dep2 = s.deploy(s.task_def("nginx:2"))
    assert s.finish(dep2)["status"] == "Succeeded"
    svc = wait_for(lambda: (lambda x: x if len(x["taskSets"]) == 1 else None)(s.describe()))
    assert svc["taskSets"][0]["externalId"] == dep2


def test_failure_after_traffic_shift_rolls_production_back(make):
    s = make(rollback={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]})
    dep = s.deploy(s.task_def("nginx:2"), hooks=[("AfterAllowTraffic", HOOK_FN + "post-fail")])
    info = s.finish(dep)
    assert info["status"] == "Failed" and statuses(s.target(dep))["AllowTraffic"] == "Succeeded"
    rb = s.finish(info["rollbackInfo"]["rollbackDeploymentId"])
    assert rb["status"] == "Succeeded"
    assert s.prod_weights() == {s.tgs[0]: 100, s.tgs[1]: 0} and s.test_target() == s.tgs[0]
    svc = wait_for(lambda: (lambda x: x if len(x["taskSets"]) == 1 else None)(s.describe()))
    assert svc["taskDefinition"] == s.td1 and svc["taskSets"][0]["status"] == "PRIMARY"
    assert svc["loadBalancers"][0]["targetGroupArn"] == s.tgs[0]
    rb_target = s.target(rb["deploymentId"])
    assert statuses(rb_target)["AllowTraffic"] == "Succeeded" and statuses(rb_target)["Install"] == "Skipped"


def test_stop_deployment_without_and_with_rollback(make, cd):
    s = make(ready={"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 1000})
    dep = s.deploy(s.task_def("nginx:2"))
    wait_for(lambda: s.info(dep)["status"] == "Ready")
    out = cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=False)
    assert out["status"] == "Pending"
    assert out["statusMessage"] == "Stopping Pending. Stopping to schedule commands in the deployment instances"
    info = s.finish(dep)
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    assert "rollbackInfo" not in info and s.test_target() == s.tgs[1]  # left as it was
    with pytest.raises(ClientError) as exc:
        cd.stop_deployment(deploymentId=dep)
    assert code(exc)[0] == "DeploymentAlreadyCompletedException"

    dep2 = s.deploy(s.task_def("nginx:3"))
    wait_for(lambda: s.info(dep2)["status"] == "Ready")
    cd.stop_deployment(deploymentId=dep2, autoRollbackEnabled=True)
    info = s.finish(dep2)
    assert info["status"] == "Stopped"
    rb_id = info["rollbackInfo"]["rollbackDeploymentId"]
    assert info["rollbackInfo"]["rollbackMessage"] == (
        f"Deployment {dep2} terminated. Automatic rollback is triggered with a DeploymentId {rb_id}.")
    assert s.finish(rb_id)["status"] == "Succeeded"
    assert s.test_target() == s.tgs[0] and s.prod_weights() == {s.tgs[0]: 100}
    svc = wait_for(lambda: (lambda x: x if len(x["taskSets"]) == 1 else None)(s.describe()))
    assert svc["taskSets"][0]["taskDefinition"] == s.td1


# ------------------------------------------------------------------ validation


def test_api_errors_as_aws_words_them(make, cd, ecs):
    s = make()
    with pytest.raises(ClientError) as exc:
        cd.get_application(applicationName="nope")
    assert code(exc) == ("ApplicationDoesNotExistException", "No application found for name: nope")
    with pytest.raises(ClientError) as exc:
        cd.get_deployment_group(applicationName=s.app, deploymentGroupName="nope")
    assert code(exc) == ("DeploymentGroupDoesNotExistException", "No Deployment Group found for name: nope")
    with pytest.raises(ClientError) as exc:
        cd.create_deployment(applicationName=s.app, deploymentGroupName=s.group)
    assert code(exc) == ("RevisionRequiredException", "RevisionLocation must be specified")
    with pytest.raises(ClientError) as exc:
        cd.create_deployment(applicationName=s.app, deploymentGroupName=s.group, deploymentConfigName="nope",
                             revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}"}})
    assert code(exc)[0] == "DeploymentConfigDoesNotExistException"
    with pytest.raises(ClientError) as exc:
        cd.create_application(applicationName=s.app, computePlatform="ECS")
    assert code(exc)[0] == "ApplicationAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        cd.get_deployment(deploymentId="d-AAAAAAAAA")
    assert code(exc)[0] == "DeploymentDoesNotExistException"
    group = cd.get_deployment_group(applicationName=s.app, deploymentGroupName=s.group)["deploymentGroupInfo"]
    assert group["computePlatform"] == "ECS" and group["ecsServices"] == [{"serviceName": "svc",
                                                                          "clusterName": s.cluster}]
    assert group["deploymentStyle"] == {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert group["loadBalancerInfo"]["targetGroupPairInfoList"][0]["targetGroups"] == [
        {"name": n} for n in s.tg_names]
    assert cd.get_application(applicationName=s.app)["application"]["computePlatform"] == "ECS"
    tagged = "tagged-" + uuid.uuid4().hex[:6]
    cd.create_application(applicationName=tagged, computePlatform="ECS", tags=[{"Key": "team", "Value": "x"}])
    assert cd.list_tags_for_resource(ResourceArn=f"arn:aws:codedeploy:{REGION}:{ACCOUNT}:application:{tagged}")[
        "Tags"] == [{"Key": "team", "Value": "x"}]
    # One deployment group per ECS service; the service must use the CODE_DEPLOY controller.
    with pytest.raises(ClientError) as exc:
        cd.create_deployment_group(applicationName=s.app, deploymentGroupName="other", serviceRoleArn=ROLE,
                                   ecsServices=[{"serviceName": "svc", "clusterName": s.cluster}])
    assert code(exc)[0] == "ECSServiceMappingLimitExceededException"
    ecs.create_service(cluster=s.cluster, serviceName="rolling", taskDefinition=s.td1, desiredCount=0,
                       launchType="FARGATE", networkConfiguration=s.net)
    with pytest.raises(ClientError) as exc:
        cd.create_deployment_group(applicationName=s.app, deploymentGroupName="other", serviceRoleArn=ROLE,
                                   ecsServices=[{"serviceName": "rolling", "clusterName": s.cluster}])
    assert code(exc) == ("InvalidECSServiceException",
                         "Deployment group's ECS service must be configured for a CODE_DEPLOY deployment controller.")
    ecs.delete_service(cluster=s.cluster, service="rolling", force=True)


@pytest.mark.parametrize("case", ["yaml", "sha256", "container", "port", "inactive"])
def test_invalid_revision_fails_the_deployment(make, ecs, case):
    s = make()
    td2 = s.task_def("nginx:2")
    if case == "yaml":
        dep = s.deploy(content="Resources: [unclosed")
    elif case == "sha256":
        dep = s.cd.create_deployment(applicationName=s.app, deploymentGroupName=s.group, revision={
            "revisionType": "AppSpecContent", "appSpecContent": {"content": s.appspec(td2), "sha256": "0" * 64}})[
            "deploymentId"]
    elif case == "container":
        dep = s.deploy(td2, container="web")
    elif case == "port":
        dep = s.deploy(td2, port=8080)
    else:
        ecs.deregister_task_definition(taskDefinition=td2)
        dep = s.deploy(td2)
    info = s.finish(dep)
    assert info["status"] == "Failed"
    err = info["errorInformation"]
    if case in ("yaml", "sha256"):
        assert err["code"] == "INVALID_REVISION" and err["message"].startswith(
            "The deployment failed because the AppSpec file that specifies the deployment configuration is missing "
            "or has an invalid configuration.")
        if case == "yaml":
            assert err["message"].endswith("The input AppSpec file is a not well-formed yaml. The template cannot "
                                           "be parsed.")
        return
    expected = {"container": "The container web does not exist in the task definition.",
                "port": "The container app did not have a container port 8080 defined.",
                "inactive": "TaskDefinition is inactive"}[case]
    assert err["code"] == "ECS_UPDATE_ERROR"
    assert err["message"].startswith(f"The ECS service cannot be updated due to an unexpected error: {expected} "
                                     "(Service: AmazonECS; Status Code: 400; Error Code: InvalidParameterException; "
                                     "Request ID: ")
    assert err["message"].endswith("; Proxy: null). Check your ECS service status.")
    events = statuses(s.target(dep))
    assert events["BeforeInstall"] == "Succeeded" and events["Install"] == "Failed"
    assert len(s.describe()["taskSets"]) == 1


# ------------------------------------------------------------------ CloudFormation


def bg_template(image, config="CodeDeployDefault.ECSAllAtOnce", subnets=None):
    return {
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster"},
            "LB": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": subnets}},
            "Blue": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                     "Properties": {"Port": 80, "Protocol": "HTTP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"}}},
            "Green": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                      "Properties": {"Port": 80, "Protocol": "HTTP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"}}},
            "Prod": {"Type": "AWS::ElasticLoadBalancingV2::Listener",
                     "Properties": {"LoadBalancerArn": {"Ref": "LB"}, "Port": 80, "Protocol": "HTTP",
                                    "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Blue"}}]}},
            "Test": {"Type": "AWS::ElasticLoadBalancingV2::Listener",
                     "Properties": {"LoadBalancerArn": {"Ref": "LB"}, "Port": 8080, "Protocol": "HTTP",
                                    "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Blue"}}]}},
            "TaskDef": {"Type": "AWS::ECS::TaskDefinition",
                        "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                                       "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                                       "ContainerDefinitions": [{"Name": "app", "Image": image,
                                                                 "PortMappings": [{"ContainerPort": 80}]}]}},
            "Service": {"Type": "AWS::ECS::Service", "DependsOn": ["Prod", "Test"],
                        "Properties": {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"},
                                       "DesiredCount": 1, "LaunchType": "FARGATE",
                                       "DeploymentController": {"Type": "CODE_DEPLOY"},
                                       "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": subnets[:1]}},
                                       "LoadBalancers": [{"TargetGroupArn": {"Ref": "Blue"}, "ContainerName": "app",
                                                          "ContainerPort": 80}]}},
            "Config": {"Type": "AWS::CodeDeploy::DeploymentConfig",
                       "Properties": {"ComputePlatform": "ECS", "TrafficRoutingConfig": {
                           "Type": "TimeBasedCanary",
                           "TimeBasedCanary": {"CanaryPercentage": "25", "CanaryInterval": "1"}}}},
            "App": {"Type": "AWS::CodeDeploy::Application", "Properties": {"ComputePlatform": "ECS"}},
            "Group": {"Type": "AWS::CodeDeploy::DeploymentGroup",
                      "Properties": {
                          "ApplicationName": {"Ref": "App"}, "ServiceRoleArn": ROLE,
                          "DeploymentConfigName": {"Ref": "Config"} if config == "custom" else config,
                          "DeploymentStyle": {"DeploymentType": "BLUE_GREEN",
                                              "DeploymentOption": "WITH_TRAFFIC_CONTROL"},
                          "BlueGreenDeploymentConfiguration": {
                              "DeploymentReadyOption": {"ActionOnTimeout": "CONTINUE_DEPLOYMENT",
                                                        "WaitTimeInMinutes": 0},
                              "TerminateBlueInstancesOnDeploymentSuccess": {"Action": "TERMINATE",
                                                                            "TerminationWaitTimeInMinutes": "5"}},
                          "AutoRollbackConfiguration": {"Enabled": True, "Events": ["DEPLOYMENT_FAILURE"]},
                          "ECSServices": [{"ClusterName": {"Ref": "Cluster"},
                                           "ServiceName": {"Fn::GetAtt": ["Service", "Name"]}}],
                          "LoadBalancerInfo": {"TargetGroupPairInfoList": [{
                              "TargetGroups": [{"Name": {"Fn::GetAtt": ["Blue", "TargetGroupName"]}},
                                               {"Name": {"Fn::GetAtt": ["Green", "TargetGroupName"]}}],
                              "ProdTrafficRoute": {"ListenerArns": [{"Ref": "Prod"}]},
                              "TestTrafficRoute": {"ListenerArns": [{"Ref": "Test"}]}}]}}},
        },
        "Parameters": {"Vpc": {"Type": "String"}},
        "Outputs": {"App": {"Value": {"Ref": "App"}}, "Group": {"Value": {"Ref": "Group"}},
                    "Cluster": {"Value": {"Ref": "Cluster"}}, "Service": {"Value": {"Fn::GetAtt": ["Service", "Name"]}},
                    "Config": {"Value": {"Ref": "Config"}}},
    }


def run_stack(cf, name, template, params, update=False):
    fn = cf.update_stack if update else cf.create_stack
    fn(StackName=name, TemplateBody=json.dumps(template),
       Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    return wait_for(lambda: (lambda st: st if not st["StackStatus"].endswith("_IN_PROGRESS") else None)(
        cf.describe_stacks(StackName=name)["Stacks"][0]), 20, what="stack")


def test_cloudformation_declares_the_whole_blue_green_setup(endpoint, network, cd, ecs):
    cf = client(endpoint, "cloudformation")
    name = "bg-" + uuid.uuid4().hex[:8]
    params = {"Vpc": network["vpc"]}
    stack = run_stack(cf, name, bg_template("nginx:1", config="custom", subnets=network["subnets"]), params)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert out["App"].startswith(f"{name}-App-") and out["Group"].startswith(f"{name}-Group-")
    group = cd.get_deployment_group(applicationName=out["App"], deploymentGroupName=out["Group"])["deploymentGroupInfo"]
    assert group["deploymentConfigName"] == out["Config"] and group["serviceRoleArn"] == ROLE
    assert group["ecsServices"] == [{"clusterName": out["Cluster"], "serviceName": out["Service"]}]
    assert group["blueGreenDeploymentConfiguration"]["terminateBlueInstancesOnDeploymentSuccess"] == {
        "action": "TERMINATE", "terminationWaitTimeInMinutes": 5}
    assert group["autoRollbackConfiguration"] == {"enabled": True, "events": ["DEPLOYMENT_FAILURE"]}
    pair = group["loadBalancerInfo"]["targetGroupPairInfoList"][0]
    assert len(pair["targetGroups"]) == 2 and pair["prodTrafficRoute"]["listenerArns"][0].startswith("arn:aws:")
    cfg = cd.get_deployment_config(deploymentConfigName=out["Config"])["deploymentConfigInfo"]
    assert cfg["trafficRoutingConfig"] == {"type": "TimeBasedCanary",
                                           "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 1}}
    svc = ecs.describe_services(cluster=out["Cluster"], services=[out["Service"]])["services"][0]
    assert svc["deployments"] == [] and svc["taskSets"][0]["stabilityStatus"] == "STEADY_STATE"
    assert svc["taskSets"][0]["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == network["subnets"][:1]

    # A deployment through the stack's group works end to end.
    td2 = ecs.register_task_definition(
        family=f"{name}-app", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": "nginx:2", "memory": 128,
                               "portMappings": [{"containerPort": 80}]}])["taskDefinition"]["taskDefinitionArn"]
    content = json.dumps({"Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": {
        "TaskDefinition": td2, "LoadBalancerInfo": {"ContainerName": "app", "ContainerPort": 80}}}}]})
    dep = cd.create_deployment(applicationName=out["App"], deploymentGroupName=out["Group"], revision={
        "revisionType": "AppSpecContent", "appSpecContent": {"content": content}})["deploymentId"]
    info = wait_for(lambda: (lambda i: i if i["status"] in ("Succeeded", "Failed") else None)(
        cd.get_deployment(deploymentId=dep)["deploymentInfo"]), 15)
    assert info["status"] == "Succeeded"

    # A new TaskDefinition through CloudFormation is refused as ECS refuses it; the stack rolls back.
    stack = run_stack(cf, name, bg_template("nginx:3", config="custom", subnets=network["subnets"]), params,
                      update=True)
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failed = [e for e in cf.describe_stack_events(StackName=name)["StackEvents"]
              if e["LogicalResourceId"] == "Service" and e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed and failed[-1]["ResourceStatusReason"].startswith(
        "Resource handler returned message: \"Invalid request provided: UpdateService error: Unable to update task "
        "definition on services with a CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new "
        "deployment. (Service: AmazonECS; Status Code: 400; Error Code: InvalidParameterException; Request ID: ")
    assert failed[-1]["ResourceStatusReason"].endswith("HandlerErrorCode: InvalidRequest)")
    service_events = [e["ResourceStatus"] for e in reversed(cf.describe_stack_events(StackName=name)["StackEvents"])
                      if e["LogicalResourceId"] == "Service"]
    assert service_events[-3:] == ["UPDATE_FAILED", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]  # rolled back

    # Changing the group's deployment config updates it in place.
    stack = run_stack(cf, name, bg_template("nginx:1", subnets=network["subnets"]), params, update=True)
    assert stack["StackStatus"] == "UPDATE_COMPLETE", stack
    group = cd.get_deployment_group(applicationName=out["App"], deploymentGroupName=out["Group"])["deploymentGroupInfo"]
    assert group["deploymentConfigName"] == "CodeDeployDefault.ECSAllAtOnce"

    cf.delete_stack(StackName=name)
    wait_for(lambda: cf.describe_stacks(StackName=stack["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE",
             20)
    with pytest.raises(ClientError) as exc:
        cd.get_application(applicationName=out["App"])
    assert code(exc)[0] == "ApplicationDoesNotExistException"
    assert out["Config"] not in cd.list_deployment_configs()["deploymentConfigsList"]

"""End-to-end tests for ECS service deployments and the BLUE_GREEN / LINEAR / CANARY strategies
(emulator/ecs_deployments.py): start launcher.py like the Rust tests do and drive it with boto3."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from emulator.testing import client, running_emulator
from emulator.test_ecs import EXEC_ROLE, create_execution_role

ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
STEP, MINUTE = 0.05, 0.05
FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsInfrastructureRoleForLoadBalancers"
HOOK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsLambdaInvokeRole"
TERMINAL = ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
CB = "Service deployment rolled back because the circuit breaker threshold was exceeded."


def _post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    return json.loads(urllib.request.urlopen(req).read())


def _get(url, path):
    return json.loads(urllib.request.urlopen(url + path).read())


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        assert _post(url, "/_emulator/ecs-speed", {"stepSeconds": STEP})["stepSeconds"] == STEP
        assert _post(url, "/_emulator/codedeploy-speed", {"minuteSeconds": MINUTE})["minuteSeconds"] == MINUTE
        create_execution_role(url)  # the task definitions name it (private ECR images need one)
        yield url



@pytest.fixture(scope="module")
def ecs(endpoint):
    return client(endpoint, "ecs")


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


@pytest.fixture(scope="module")
def repo(endpoint):
    ecr = client(endpoint, "ecr")
    name = "app-" + uuid.uuid4().hex[:6]
    ecr.create_repository(repositoryName=name)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": "sha256:" + uuid.uuid4().hex * 2}, "layers": []}
    ecr.put_image(repositoryName=name, imageTag="v1", imageManifest=json.dumps(manifest))
    return name


def wait_for(fn, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def code(exc):
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


class Env:
    """A cluster, an ALB listener with a production rule (blue weight 1, green weight 0) and a test
    rule (header x-test → green), two ip target groups, and helpers around one service."""

    def __init__(self, ecs, elb, network, endpoint):
        self.ecs, self.elb, self.url = ecs, elb, endpoint
        tag = uuid.uuid4().hex[:6]
        self.cluster = "c-" + tag
        ecs.create_cluster(clusterName=self.cluster)
        lb = elb.create_load_balancer(Name="lb-" + tag, Subnets=network["subnets"])["LoadBalancers"][0]
        self.blue_tg, self.green_tg = [
            elb.create_target_group(Name=f"{n}-{tag}", Protocol="HTTP", Port=80, VpcId=network["vpc"],
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"] for n in ("blue", "green")]
        self.listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
        )["Listeners"][0]["ListenerArn"]
        self.prod = elb.create_rule(
            ListenerArn=self.listener, Priority=10, Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": self.blue_tg, "Weight": 1}, {"TargetGroupArn": self.green_tg, "Weight": 0}]}}],
        )["Rules"][0]["RuleArn"]
        self.test = elb.create_rule(
            ListenerArn=self.listener, Priority=5,
            Conditions=[{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "x-test", "Values": ["1"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": self.green_tg}])["Rules"][0]["RuleArn"]
        self.net = {"awsvpcConfiguration": {"subnets": network["subnets"][:1]}}

    def task_def(self, image="nginx:1", labels=None):
        cdef = {"name": "app", "image": image, "memory": 128, "portMappings": [{"containerPort": 80}]}
        if labels:
            cdef["dockerLabels"] = labels
        return self.ecs.register_task_definition(
            family="app-" + self.cluster, containerDefinitions=[cdef], requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc", cpu="256", memory="512",
            executionRoleArn=EXEC_ROLE)["taskDefinition"]["taskDefinitionArn"]

    def advanced(self, test=True):
        adv = {"alternateTargetGroupArn": self.green_tg, "productionListenerRule": self.prod, "roleArn": ROLE}
        if test:
            adv["testListenerRule"] = self.test
        return adv

    def create(self, strategy="BLUE_GREEN", desired=2, td=None, breaker=None, lb=True, **cfg):
        config = {"strategy": strategy, **cfg}
        if breaker:
            config["deploymentCircuitBreaker"] = {"enable": True, "rollback": breaker == "rollback"}
        kw = {}
        if lb:
            kw["loadBalancers"] = [{"targetGroupArn": self.blue_tg, "containerName": "app", "containerPort": 80,
                                    **({"advancedConfiguration": self.advanced()} if strategy != "ROLLING" else {})}]
        return self.ecs.create_service(cluster=self.cluster, serviceName="svc", taskDefinition=td or self.task_def(),
                                       desiredCount=desired, launchType="FARGATE", networkConfiguration=self.net,
                                       deploymentConfiguration=config, **kw)["service"]

    def describe(self):
        return self.ecs.describe_services(cluster=self.cluster, services=["svc"])["services"][0]

    def deployments(self, **kw):
        return self.ecs.list_service_deployments(cluster=self.cluster, service="svc", **kw)["serviceDeployments"]

    def sd(self, arn=None):
        arn = arn or self.deployments()[0]["serviceDeploymentArn"]
        return self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]

    def finish(self, arn=None, timeout=15.0):
        arn = arn or self.deployments()[0]["serviceDeploymentArn"]
        return wait_for(lambda: (lambda d: d if d["status"] in TERMINAL else None)(self.sd(arn)), timeout,
                        what=f"service deployment {arn}")

    def weights(self, rule=None):
        action = self.elb.describe_rules(RuleArns=[rule or self.prod])["Rules"][0]["Actions"][0]
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if not groups:
            return {action["TargetGroupArn"]: 1}
        return {g["TargetGroupArn"]: g["Weight"] for g in groups}

    def targets(self, tg):
        return self.elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]

    def watch(self, arn, timeout=15.0):
        """(seconds, status, lifecycleStage, production weights, test weights) at every change, until
        the service deployment finishes."""
        seen, t0 = [], time.monotonic()
        while True:
            d = self.sd(arn)
            key = (d["status"], d.get("lifecycleStage"), self.weights(), self.weights(self.test))
            if not seen or seen[-1][1:] != key:
                seen.append((time.monotonic() - t0, *key))
            if d["status"] in TERMINAL:
                return seen, d
            assert time.monotonic() - t0 < timeout, f"deployment did not finish: {seen[-3:]}"
            time.sleep(0.005)


@pytest.fixture()
def env(ecs, elb, network, endpoint):
    return Env(ecs, elb, network, endpoint)


def history(env, arn):
    """The emulator's record of a service deployment's status / stage / traffic changes."""
    return next(d for d in _get(env.url, "/_emulator/ecs-deployments") if d["serviceDeploymentArn"] == arn)["history"]


def stages_of(hist):
    stages = [e["lifecycleStage"] for e in hist if e["lifecycleStage"]]
    return [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]


def settle(env):
    """Create-time deployment of the service finished successfully."""
    d = env.finish()
    assert d["status"] == "SUCCESSFUL", d
    return d


# ------------------------------------------------------------------ ROLLING service deployments


def test_rolling_deployments_get_service_deployment_records(endpoint, env):
    urllib.request.urlopen(urllib.request.Request(endpoint + "/_emulator/requests/reset", data=b"", method="POST"))
    td1, td2 = env.task_def("nginx:1"), env.task_def("nginx:2")
    created = env.create("ROLLING", td=td1, breaker="rollback")
    assert created["deploymentConfiguration"]["strategy"] == "ROLLING"
    assert created["currentServiceDeployment"].startswith(
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{env.cluster}/svc/")
    first = settle(env)
    dep = env.describe()["deployments"][0]
    assert first["targetServiceRevision"]["arn"] == (f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/"
                                                     f"{env.cluster}/svc/{dep['id'].split('/')[1]}")
    assert first["targetServiceRevision"] == {"arn": first["targetServiceRevision"]["arn"], "requestedTaskCount": 2,
                                              "runningTaskCount": 2, "pendingTaskCount": 0}
    assert first["sourceServiceRevisions"] == [] and "lifecycleStage" not in first
    assert first["deploymentCircuitBreaker"] == {"status": "MONITORING_COMPLETE", "failureCount": 0, "threshold": 3}
    assert first["alarms"] == {"status": "DISABLED"}
    assert first["startedAt"] >= first["createdAt"] and first["finishedAt"] >= first["startedAt"]
    assert dep["rolloutState"] == "COMPLETED"  # SUCCESSFUL together with the rollout

    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=td2)
    in_progress = env.deployments(status=["IN_PROGRESS", "PENDING"])
    assert len(in_progress) == 1
    second = env.finish(in_progress[0]["serviceDeploymentArn"])
    assert second["status"] == "SUCCESSFUL"
    assert [s["arn"] for s in second["sourceServiceRevisions"]] == [first["targetServiceRevision"]["arn"]]
    listed = env.deployments()
    assert [d["serviceDeploymentArn"] for d in listed] == [second["serviceDeploymentArn"],
                                                          first["serviceDeploymentArn"]]  # newest first
    assert set(listed[0]) == {"serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt",
                              "finishedAt", "targetServiceRevisionArn", "status"}
    assert listed[0]["targetServiceRevisionArn"] == second["targetServiceRevision"]["arn"]
    assert [d["status"] for d in env.deployments(status=["SUCCESSFUL"])] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert env.deployments(status=["ROLLBACK_SUCCESSFUL"]) == []
    after = env.deployments(createdAt={"after": second["createdAt"] - timedelta(milliseconds=1)})
    assert [d["serviceDeploymentArn"] for d in after] == [second["serviceDeploymentArn"]]
    page = env.ecs.list_service_deployments(cluster=env.cluster, service="svc", maxResults=1)
    assert len(page["serviceDeployments"]) == 1 and page["nextToken"]
    svc = env.describe()
    assert svc["currentServiceDeployment"] == second["serviceDeploymentArn"]
    assert svc["currentServiceRevisions"] == [{"arn": second["targetServiceRevision"]["arn"], "requestedTaskCount": 2,
                                               "runningTaskCount": 2, "pendingTaskCount": 0}]
    rev = env.ecs.describe_service_revisions(serviceRevisionArns=[second["targetServiceRevision"]["arn"], "arn:x"])
    assert rev["serviceRevisions"][0]["taskDefinition"] == td2
    assert rev["serviceRevisions"][0]["containerImages"] == [{"containerName": "app", "image": "nginx:2"}]
    assert rev["failures"] == [{"arn": "arn:x", "reason": "MISSING"}]
    missing = env.ecs.describe_service_deployments(serviceDeploymentArns=["arn:nope"])
    assert missing == {"serviceDeployments": [], "failures": [{"arn": "arn:nope", "reason": "MISSING"}],
                       "ResponseMetadata": missing["ResponseMetadata"]}
    with pytest.raises(ClientError) as exc:
        env.ecs.stop_service_deployment(serviceDeploymentArn=second["serviceDeploymentArn"], stopType="ROLLBACK")
    assert code(exc)[0] == "ConflictException"
    with pytest.raises(ClientError) as exc:
        env.ecs.stop_service_deployment(serviceDeploymentArn=second["serviceDeploymentArn"] + "x")
    assert code(exc) == ("ServiceDeploymentNotFoundException", "The service deployment does not exist.")
    actions = {r["action"] for r in _get(endpoint, "/_emulator/requests") if r["service"] == "ecs"}
    assert {"ListServiceDeployments", "DescribeServiceDeployments", "DescribeServiceRevisions",
            "StopServiceDeployment"} <= actions


def test_rolling_circuit_breaker_rollback_and_first_deployment_without_candidate(env, repo):
    good = env.task_def(f"{REGISTRY}/{repo}:v1")
    bad = env.task_def(f"{REGISTRY}/{repo}:missing")
    env.create("ROLLING", td=bad, desired=1, breaker="rollback")
    first = env.finish()
    assert (first["status"], first["statusReason"]) == ("ROLLBACK_FAILED", "No rollback candidate was found to run the rollback.")
    assert first["rollback"]["reason"] == CB and "serviceRevisionArn" not in first["rollback"]
    assert first["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert first["deploymentCircuitBreaker"]["failureCount"] >= 3

    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=good)
    ok = env.finish()
    assert ok["status"] == "SUCCESSFUL"
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=bad)
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(arn)["status"] == "ROLLBACK_IN_PROGRESS", what="rollback in progress")
    done = env.finish(arn)
    assert (done["status"], done["statusReason"]) == ("ROLLBACK_SUCCESSFUL", CB)
    assert done["rollback"]["serviceRevisionArn"] == ok["targetServiceRevision"]["arn"]
    assert done["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    svc = env.describe()
    assert svc["taskDefinition"] == good
    assert [d["rolloutState"] for d in svc["deployments"]] == ["COMPLETED"]


def test_stop_service_deployment_rolls_a_rolling_deployment_back(env):
    td1, slow = env.task_def("nginx:1"), env.task_def("nginx:2", {"emulator.start-seconds": "30"})
    env.create("ROLLING", td=td1, desired=1)
    first = settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=slow)
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(arn)["status"] == "IN_PROGRESS", what="in progress")
    out = env.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert out["serviceDeploymentArn"] == arn
    assert env.sd(arn)["status"] == "ROLLBACK_REQUESTED"
    # Asking again while it rolls back is accepted (the rollback continues).
    env.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    done = env.finish(arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert done["rollback"]["serviceRevisionArn"] == first["targetServiceRevision"]["arn"]
    svc = env.describe()
    assert svc["taskDefinition"] == td1 and len(svc["deployments"]) == 1
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"


# ------------------------------------------------------------------ BLUE_GREEN / LINEAR / CANARY


def test_blue_green_success_moves_traffic_through_every_stage(env):
    hooks = [{"hookTargetArn": FN + "smoke-tests", "roleArn": HOOK_ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
              "hookDetails": {"S3_BUCKET_NAME": "approvals", "nested": {"KeepCase": [1, "two"]}}}]
    created = env.create("BLUE_GREEN", bakeTimeInMinutes=4, lifecycleHooks=hooks)
    assert created["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    assert created["deploymentConfiguration"]["lifecycleHooks"] == hooks
    assert created["loadBalancers"][0]["advancedConfiguration"] == env.advanced()
    first = settle(env)
    # The first deployment goes to the target group not serving production, which then takes it.
    assert env.weights() == {env.blue_tg: 0, env.green_tg: 100}
    assert len(env.targets(env.green_tg)) == 2 and env.targets(env.blue_tg) == []

    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"))
    arn = env.deployments()[0]["serviceDeploymentArn"]
    mid = wait_for(lambda: (lambda s: s if s["status"] == "IN_PROGRESS" and s.get("lifecycleStage") == "SCALE_UP"
                            else None)(env.sd(arn)), what="SCALE_UP")
    assert mid["sourceServiceRevisions"][0]["arn"] == first["targetServiceRevision"]["arn"]
    seen, done = env.watch(arn)
    assert done["status"] == "SUCCESSFUL"
    hist = history(env, arn)
    assert stages_of(hist) == ["PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT",
                               "POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT",
                               "BAKE_TIME", "CLEAN_UP"]
    assert [hist[0]["status"], hist[1]["status"], hist[-1]["status"]] == ["PENDING", "IN_PROGRESS", "SUCCESSFUL"]
    test_at = next(e for e in hist if e["testTrafficWeight"] == 100.0)
    prod_at = next(e for e in hist if e["productionTrafficWeight"] == 100.0)
    assert (test_at["lifecycleStage"], prod_at["lifecycleStage"]) == ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
    bake = next(e["time"] for e in hist if e["lifecycleStage"] == "BAKE_TIME")
    clean = next(e["time"] for e in hist if e["lifecycleStage"] == "CLEAN_UP")
    assert clean - bake >= 4 * MINUTE * 0.95
    # The listener rules as ELBv2 shows them (green is the blue target group now): test traffic
    # moves first, then production all at once; nothing moves while green scales up.
    test_shift = next(s for s in seen if s[4] == {env.green_tg: 0, env.blue_tg: 100})
    prod_shift = next(s for s in seen if s[3] == {env.blue_tg: 100, env.green_tg: 0})
    assert test_shift[0] < prod_shift[0]
    assert all(s[3] == {env.blue_tg: 0, env.green_tg: 100} for s in seen if s[2] in ("SCALE_UP", "POST_SCALE_UP"))
    assert done["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert done["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert done["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"] == 0.0
    hook = [h for h in done["lifecycleHookDetails"]][0]
    assert hook["hookId"].startswith("ecs-lambda-") and hook["status"] == "SUCCEEDED"
    assert hook["targetArn"] == FN + "smoke-tests"
    svc = env.describe()
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert {t["Target"]["Id"] for t in env.targets(env.blue_tg)} and env.targets(env.green_tg) == []
    rev = env.ecs.describe_service_revisions(serviceRevisionArns=[done["targetServiceRevision"]["arn"]])[
        "serviceRevisions"][0]
    assert rev["resolvedConfiguration"]["loadBalancers"] == [{"targetGroupArn": env.blue_tg,
                                                              "productionListenerRule": env.prod}]
    invoked = [h for h in _get(env.url, "/_emulator/ecs-hooks") if h["serviceDeploymentArn"] == arn]
    assert invoked[0]["payload"]["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert invoked[0]["payload"]["resourceArn"] == arn
    assert invoked[0]["payload"]["hookDetails"] == hooks[0]["hookDetails"]
    assert invoked[0]["payload"]["executionDetails"]["testTrafficWeights"] == {
        done["targetServiceRevision"]["arn"]: 100.0, first["targetServiceRevision"]["arn"]: 0.0}


def test_blue_green_keeps_blue_running_through_bake_time(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc", desiredCount=2,
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 60})
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"))
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(arn).get("lifecycleStage") == "BAKE_TIME", what="BAKE_TIME")
    svc = env.describe()
    assert [(d["status"], d["rolloutState"], d["runningCount"]) for d in svc["deployments"]] == [
        ("PRIMARY", "IN_PROGRESS", 2), ("ACTIVE", "COMPLETED", 2)]
    assert len(env.targets(env.blue_tg)) == 2 and len(env.targets(env.green_tg)) == 2
    assert env.weights() == {env.blue_tg: 100, env.green_tg: 0}
    # A rollback during the bake time is a weight flip back to blue, then green stops.
    env.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    done = env.finish(arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert env.weights() == {env.blue_tg: 0, env.green_tg: 100}
    assert env.weights(env.test) == {env.green_tg: 100, env.blue_tg: 0}
    assert env.targets(env.blue_tg) == [] and len(env.targets(env.green_tg)) == 2
    svc = env.describe()
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert svc["taskDefinition"].endswith(":1")


def test_new_deployment_during_blue_green_stops_it_and_reconciles(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    first = settle(env)
    slow = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 600}
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"),
                           deploymentConfiguration=slow)
    interrupted = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(interrupted).get("lifecycleStage") == "BAKE_TIME", what="BAKE_TIME")
    assert env.weights() == {env.blue_tg: 100, env.green_tg: 0}
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:3"),
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0})
    old = env.sd(interrupted)
    assert old["status"] == "STOPPED" and old["stoppedAt"] and old["statusReason"]
    arn = env.deployments()[0]["serviceDeploymentArn"]
    seen, done = env.watch(arn)
    assert done["status"] == "SUCCESSFUL"
    hist = history(env, arn)
    assert stages_of(hist)[:2] == ["RECONCILE_SERVICE", "PRE_SCALE_UP"]
    # Reconciling gives production back to the last completed revision, then the new one takes it.
    assert next(e for e in hist if e["lifecycleStage"] == "PRE_SCALE_UP")["productionTrafficWeight"] == 0.0
    assert env.weights() == {env.blue_tg: 100, env.green_tg: 0}
    assert len(done["sourceServiceRevisions"]) == 2
    assert first["targetServiceRevision"]["arn"] in [r["arn"] for r in done["sourceServiceRevisions"]]
    svc = env.describe()
    assert svc["taskDefinition"].endswith(":3") and len(svc["deployments"]) == 1


def test_stop_service_deployment_abort_stops_in_place(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"),
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 600})
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(arn).get("lifecycleStage") == "BAKE_TIME", what="BAKE_TIME")
    env.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    assert env.sd(arn)["status"] == "STOP_REQUESTED"
    done = env.finish(arn)
    assert done["status"] == "STOPPED" and done["stoppedAt"] >= done["startedAt"]
    time.sleep(10 * STEP)
    assert env.weights() == {env.blue_tg: 100, env.green_tg: 0}  # nothing moved back
    svc = env.describe()
    assert [(d["status"], d["rolloutState"], d["runningCount"]) for d in svc["deployments"]] == [
        ("PRIMARY", "FAILED", 2), ("ACTIVE", "COMPLETED", 2)]


def test_linear_shifts_step_percent_with_step_bake_time(env):
    env.create("LINEAR", linearConfiguration={"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}, bakeTimeInMinutes=0)
    arn = env.deployments()[0]["serviceDeploymentArn"]
    seen, done = env.watch(arn)
    assert done["status"] == "SUCCESSFUL"
    # The listener as polled (a poll may miss a step on a busy machine), then every step as
    # the emulator recorded it.
    greens = list(dict.fromkeys(s[3][env.green_tg] for s in seen))
    assert greens[0] == 0 and greens[-1] == 100 and greens == sorted(greens)
    assert set(greens) <= {0, 25, 50, 75, 100}
    shifts = []
    for e in history(env, arn):
        if not shifts or shifts[-1][1] != e["productionTrafficWeight"]:
            shifts.append((e["time"], e["productionTrafficWeight"]))
    assert [w for _, w in shifts] == [None, 0.0, 25.0, 50.0, 75.0, 100.0]
    gaps = [b[0] - a[0] for a, b in zip(shifts[2:], shifts[3:], strict=False)]
    assert all(g >= 2 * MINUTE * 0.95 for g in gaps), gaps
    assert done["deploymentConfiguration"]["linearConfiguration"] == {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}


def test_canary_shifts_canary_percent_then_the_rest(env):
    env.create("CANARY", canaryConfiguration={"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3},
               bakeTimeInMinutes=1, lifecycleHooks=[
                   {"hookTargetArn": FN + "each-step", "roleArn": HOOK_ROLE,
                    "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]}])
    arn = env.deployments()[0]["serviceDeploymentArn"]
    seen, done = env.watch(arn)
    assert done["status"] == "SUCCESSFUL"
    polled = list(dict.fromkeys((s[3][env.green_tg], s[3][env.blue_tg]) for s in seen))
    assert polled[0] == (0, 1) and polled[-1] == (100, 0) and set(polled) <= {(0, 1), (10, 90), (100, 0)}
    hist = history(env, arn)
    weights = [e["productionTrafficWeight"] for e in hist]
    assert [w for i, w in enumerate(weights) if i == 0 or weights[i - 1] != w] == [None, 0.0, 10.0, 100.0]
    times = {e["productionTrafficWeight"]: e["time"] for e in reversed(hist)}
    assert times[100.0] - times[10.0] >= 3 * MINUTE * 0.95
    # Both traffic hooks run at every step.
    assert len(done["lifecycleHookDetails"]) == 4
    stages = [h["lifecycleStage"] for h in _get(env.url, "/_emulator/ecs-hooks") if h["serviceDeploymentArn"] == arn]
    assert stages == ["PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] * 2


def test_blue_green_circuit_breaker_rolls_traffic_back_to_blue(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0, breaker="rollback")
    first = settle(env)
    crash = env.task_def("nginx:2", {"emulator.exit-code": "1"})
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=crash)
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.sd(arn)["status"] == "ROLLBACK_IN_PROGRESS", what="rollback")
    done = env.finish(arn)
    assert (done["status"], done["statusReason"]) == ("ROLLBACK_SUCCESSFUL", CB)
    assert done["lifecycleStage"] == "SCALE_UP"
    assert done["rollback"]["serviceRevisionArn"] == first["targetServiceRevision"]["arn"]
    assert done["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert done["deploymentCircuitBreaker"]["failureCount"] >= 3
    # Production never left blue (the old green target group); the new tasks are gone.
    assert env.weights() == {env.blue_tg: 0, env.green_tg: 100}
    assert env.targets(env.blue_tg) == [] and len(env.targets(env.green_tg)) == 2
    svc = env.describe()
    assert svc["taskDefinition"].endswith(":1")
    assert [(d["status"], d["rolloutState"]) for d in svc["deployments"]] == [("PRIMARY", "COMPLETED")]
    assert any("deployment failed: " + CB in e["message"] for e in svc["events"])


def test_blue_green_without_circuit_breaker_keeps_replacing_green(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc",
                           taskDefinition=env.task_def("nginx:2", {"emulator.exit-code": "1"}))
    arn = env.deployments()[0]["serviceDeploymentArn"]
    wait_for(lambda: env.describe()["deployments"][0]["failedTasks"] >= 6, what="failures", timeout=15)
    d = env.sd(arn)
    assert (d["status"], d["lifecycleStage"]) == ("IN_PROGRESS", "SCALE_UP")
    assert d["deploymentCircuitBreaker"]["status"] == "DISABLED"
    assert env.weights() == {env.blue_tg: 0, env.green_tg: 100}
    assert env.describe()["deployments"][0]["rolloutState"] == "IN_PROGRESS"


def test_failing_lambda_hook_rolls_back_with_aws_reason(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    first = settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"),
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
                               {"hookTargetArn": FN + "validate-fail", "roleArn": HOOK_ROLE,
                                "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]})
    arn = env.deployments()[0]["serviceDeploymentArn"]
    seen, done = env.watch(arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert done["statusReason"] == ("Service deployment rolled back because POST_TEST_TRAFFIC_SHIFT lifecycle hook(s) "
                                    f"failed. Lifecycle hook target {FN}validate-fail returned FAILED status.")
    assert done["rollback"]["serviceRevisionArn"] == first["targetServiceRevision"]["arn"]
    assert any(s[4] == {env.green_tg: 0, env.blue_tg: 100} for s in seen)  # test traffic had moved to green
    assert env.weights(env.test) == {env.green_tg: 100, env.blue_tg: 0}  # and is back on blue
    assert env.weights() == {env.blue_tg: 0, env.green_tg: 100}
    assert [h["status"] for h in done["lifecycleHookDetails"]] == ["FAILED"]


def test_pause_hook_waits_for_continue_service_deployment(env):
    pause = {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
             "timeoutConfiguration": {"timeoutInMinutes": 600, "action": "ROLLBACK"}}
    env.create("BLUE_GREEN", bakeTimeInMinutes=0, lifecycleHooks=[pause])
    arn = env.deployments()[0]["serviceDeploymentArn"]
    d = wait_for(lambda: (lambda s: s if s.get("lifecycleHookDetails") else None)(env.sd(arn)), what="pause")
    hook = d["lifecycleHookDetails"][0]
    assert hook["hookId"].startswith("ecs-pause-") and hook["targetType"] == "PAUSE" and "targetArn" not in hook
    assert (hook["status"], hook["timeoutAction"]) == ("AWAITING_ACTION", "ROLLBACK")
    assert hook["expiresAt"] > datetime.now(timezone.utc)
    time.sleep(10 * STEP)
    d = env.sd(arn)
    assert (d["status"], d["lifecycleStage"]) == ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT")
    assert env.weights() == {env.blue_tg: 1, env.green_tg: 0}
    for bad, expected in (("nope", "Invalid hookId: hookId must follow the format: ecs-{hookType}-{id}"),
                          ("ecs-pause-unknown", "Provided hookId is either completed, unavailable, or not associated "
                                                "with the given Resource ARN")):
        with pytest.raises(ClientError) as exc:
            env.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=bad, action="CONTINUE")
        assert code(exc) == ("InvalidParameterException", expected)
    with pytest.raises(ClientError) as exc:
        env.ecs.continue_service_deployment(serviceDeploymentArn=arn + "x", hookId=hook["hookId"])
    assert code(exc)[0] == "ServiceDeploymentNotFoundException"
    assert env.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"],
                                               action="CONTINUE")["serviceDeploymentArn"] == arn
    done = env.finish(arn)
    assert done["status"] == "SUCCESSFUL" and done["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"
    with pytest.raises(ClientError) as exc:
        env.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    assert code(exc) == ("InvalidParameterException",
                         "Continuing a service deployment is not allowed for service deployment in terminal states.")


def test_pause_hook_rollback_action_and_timeout(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    settle(env)
    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:2"),
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
                               {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"]}]})
    arn = env.deployments()[0]["serviceDeploymentArn"]
    d = wait_for(lambda: (lambda s: s if s.get("lifecycleHookDetails") else None)(env.sd(arn)), what="pause")
    assert d["lifecycleHookDetails"][0]["timeoutAction"] == "ROLLBACK"  # the default
    env.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=d["lifecycleHookDetails"][0]["hookId"],
                                        action="ROLLBACK")
    done = env.finish(arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL" and "POST_SCALE_UP" in done["statusReason"]
    assert env.describe()["taskDefinition"].endswith(":1")

    env.ecs.update_service(cluster=env.cluster, service="svc", taskDefinition=env.task_def("nginx:3"),
                           deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [
                               {"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                                "timeoutConfiguration": {"timeoutInMinutes": 2}}]})
    done = env.finish(timeout=20)
    assert (done["status"], done["statusReason"]) == (
        "ROLLBACK_SUCCESSFUL", "Service deployment rolled back because POST_TEST_TRAFFIC_SHIFT pause hook timed out.")
    assert done["lifecycleHookDetails"][0]["status"] == "TIMED_OUT"


def test_manual_lambda_hook_waits_for_the_control_endpoint(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0, lifecycleHooks=[
        {"hookTargetArn": FN + "approval-manual", "roleArn": HOOK_ROLE, "lifecycleStages": ["PRE_SCALE_UP"]}])
    arn = env.deployments()[0]["serviceDeploymentArn"]
    hook = wait_for(lambda: next((h for h in _get(env.url, "/_emulator/ecs-hooks")
                                  if h["serviceDeploymentArn"] == arn), None), what="hook")
    assert (hook["status"], hook["lifecycleStage"], hook["hookTargetArn"]) == ("IN_PROGRESS", "PRE_SCALE_UP",
                                                                               FN + "approval-manual")
    time.sleep(10 * STEP)
    assert env.sd(arn)["lifecycleStage"] == "PRE_SCALE_UP" and env.describe()["runningCount"] == 0
    # ContinueServiceDeployment is for PAUSE hooks only.
    with pytest.raises(ClientError) as exc:
        env.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"])
    assert code(exc)[0] == "InvalidParameterException"
    with pytest.raises(urllib.error.HTTPError):
        _post(env.url, "/_emulator/ecs-hooks", {"hookId": hook["hookId"], "hookStatus": "MAYBE"})
    _post(env.url, "/_emulator/ecs-hooks", {"hookId": hook["hookId"], "hookStatus": "SUCCEEDED"})
    assert env.finish(arn)["status"] == "SUCCESSFUL"


def test_create_failure_without_previous_revision_has_no_rollback_candidate(env):
    env.create("BLUE_GREEN", bakeTimeInMinutes=0, lifecycleHooks=[
        {"hookTargetArn": FN + "gate-fail", "roleArn": HOOK_ROLE, "lifecycleStages": ["PRE_SCALE_UP"]}])
    done = env.finish()
    assert (done["status"], done["statusReason"]) == ("ROLLBACK_FAILED",
                                                      "No rollback candidate was found to run the rollback.")
    assert done["rollback"]["reason"].startswith("Service deployment rolled back because PRE_SCALE_UP lifecycle hook")
    assert env.describe()["deployments"][0]["rolloutState"] == "FAILED"


def test_networking_configuration_is_checked_when_the_deployment_starts(env, elb):
    # The test rule forwards to blue: the alternate target group is in neither rule.
    elb.modify_rule(RuleArn=env.test, Actions=[{"Type": "forward", "TargetGroupArn": env.blue_tg}])
    elb.modify_rule(RuleArn=env.prod, Actions=[{"Type": "forward", "TargetGroupArn": env.blue_tg}])
    env.create("BLUE_GREEN", bakeTimeInMinutes=0)
    done = env.finish()
    assert done["status"] == "ROLLBACK_FAILED"
    assert done["rollback"]["reason"] == (
        "Service deployment rolled back because of invalid networking configuration: Target group "
        f"{env.green_tg} is not associated with either productionListenerRule or testListenerRule.")


@pytest.mark.parametrize("case", ["no_advanced", "mixed", "duplicate", "same_rule", "listener_arn", "pause_stage",
                                  "target_type", "test_rule_required", "elbv1"])
def test_strategy_validation_errors_as_aws_words_them(env, case):
    lb = {"targetGroupArn": env.blue_tg, "containerName": "app", "containerPort": 80,
          "advancedConfiguration": env.advanced()}
    cfg = {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}
    lbs = [lb]
    expected = {
        "no_advanced": "advancedConfiguration field is required for all loadBalancers when using a non-ROLLING "
                       "deployment strategy",
        "mixed": "Either all or none of the provided loadBalancers must have advancedConfiguration defined",
        "duplicate": f"Duplicate targetGroupArn found: {env.green_tg}",
        "same_rule": f"The following rules cannot be used as both production and test listener rules: {env.prod}",
        "listener_arn": "productionListenerRule has an invalid ARN format. Must be RuleArn for ALB or ListenerArn "
                        f"for NLB. Got: {env.listener}",
        "pause_stage": "Invalid lifecycle stage provided for Pause Hook",
        "target_type": "Invalid targetType. Valid values are: AWS_LAMBDA, PAUSE",
        "test_rule_required": "For Application LoadBalancer, testListenerRule is required when productionListenerRule "
                              "is not associated with both targetGroup and alternateTargetGroup",
        "elbv1": "advancedConfiguration field is not allowed with ELBv1 loadBalancers",
    }[case]
    if case == "no_advanced":
        lbs = [{k: v for k, v in lb.items() if k != "advancedConfiguration"}]
    elif case == "mixed":
        lbs = [lb, {"targetGroupArn": env.green_tg, "containerName": "app", "containerPort": 80}]
    elif case == "duplicate":
        lbs = [lb, {**lb, "targetGroupArn": env.green_tg}]
    elif case == "same_rule":
        lbs = [{**lb, "advancedConfiguration": {**env.advanced(), "testListenerRule": env.prod}}]
    elif case == "listener_arn":
        lbs = [{**lb, "advancedConfiguration": {**env.advanced(), "productionListenerRule": env.listener}}]
    elif case == "pause_stage":
        cfg["lifecycleHooks"] = [{"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}]
    elif case == "target_type":
        cfg["lifecycleHooks"] = [{"targetType": "SNS", "lifecycleStages": ["POST_SCALE_UP"]}]
    elif case == "test_rule_required":
        env.elb.modify_rule(RuleArn=env.prod, Actions=[{"Type": "forward", "TargetGroupArn": env.blue_tg}])
        lbs = [{**lb, "advancedConfiguration": env.advanced(test=False)}]
    elif case == "elbv1":
        lbs = [{"loadBalancerName": "classic", "containerName": "app", "containerPort": 80,
                "advancedConfiguration": env.advanced()}]
    with pytest.raises(ClientError) as exc:
        env.ecs.create_service(cluster=env.cluster, serviceName="svc", taskDefinition=env.task_def(), desiredCount=1,
                               launchType="FARGATE", networkConfiguration=env.net, loadBalancers=lbs,
                               deploymentConfiguration=cfg)
    assert code(exc) == ("InvalidParameterException", expected)
    assert env.ecs.list_services(cluster=env.cluster)["serviceArns"] == []
    # UpdateService checks the same, against what the service would become.
    if case == "no_advanced":
        env.create("ROLLING", desired=1)
        with pytest.raises(ClientError) as exc:
            env.ecs.update_service(cluster=env.cluster, service="svc", deploymentConfiguration=cfg)
        assert code(exc) == ("InvalidParameterException", expected)


# ------------------------------------------------------------------ CloudFormation


def bg_template(image, subnets, strategy="BLUE_GREEN", advanced=True):
    lb = {"TargetGroupArn": {"Ref": "Blue"}, "ContainerName": "app", "ContainerPort": "80"}
    if advanced:
        lb["AdvancedConfiguration"] = {"AlternateTargetGroupArn": {"Ref": "Green"},
                                       "ProductionListenerRule": {"Ref": "ProdRule"},
                                       "TestListenerRule": {"Ref": "TestRule"}, "RoleArn": ROLE}
    return {
        "Parameters": {"Vpc": {"Type": "String"}},
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster"},
            "LB": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": subnets}},
            "Blue": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                     "Properties": {"Port": 80, "Protocol": "HTTP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"}}},
            "Green": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                      "Properties": {"Port": 80, "Protocol": "HTTP", "TargetType": "ip", "VpcId": {"Ref": "Vpc"}}},
            "Listener": {"Type": "AWS::ElasticLoadBalancingV2::Listener",
                         "Properties": {"LoadBalancerArn": {"Ref": "LB"}, "Port": 80, "Protocol": "HTTP",
                                        "DefaultActions": [{"Type": "fixed-response",
                                                            "FixedResponseConfig": {"StatusCode": "404"}}]}},
            "ProdRule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
                         "Properties": {"ListenerArn": {"Ref": "Listener"}, "Priority": 10,
                                        "Conditions": [{"Field": "path-pattern", "Values": ["/*"]}],
                                        "Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
                                            {"TargetGroupArn": {"Ref": "Blue"}, "Weight": 1},
                                            {"TargetGroupArn": {"Ref": "Green"}, "Weight": 0}]}}]}},
            "TestRule": {"Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
                         "Properties": {"ListenerArn": {"Ref": "Listener"}, "Priority": 5,
                                        "Conditions": [{"Field": "path-pattern", "Values": ["/test/*"]}],
                                        "Actions": [{"Type": "forward", "TargetGroupArn": {"Ref": "Green"}}]}},
            "TaskDef": {"Type": "AWS::ECS::TaskDefinition",
                        "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                                       "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                                       "ContainerDefinitions": [{"Name": "app", "Image": image,
                                                                 "PortMappings": [{"ContainerPort": 80}]}]}},
            "Service": {"Type": "AWS::ECS::Service", "DependsOn": ["ProdRule", "TestRule"],
                        "Properties": {
                            "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"}, "DesiredCount": 1,
                            "LaunchType": "FARGATE",
                            "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": subnets[:1]}},
                            "DeploymentConfiguration": {
                                "Strategy": strategy, "BakeTimeInMinutes": "2",
                                "LinearConfiguration": {"StepPercent": "50", "StepBakeTimeInMinutes": "1"},
                                "LifecycleHooks": [{"HookTargetArn": FN + "cfn-hook", "RoleArn": HOOK_ROLE,
                                                    "LifecycleStages": ["POST_SCALE_UP"],
                                                    "HookDetails": {"CheckUrl": "/health", "retries": 3}}]},
                            "LoadBalancers": [lb]}},
        },
        "Outputs": {"Cluster": {"Value": {"Ref": "Cluster"}}, "Service": {"Value": {"Fn::GetAtt": ["Service", "Name"]}},
                    "ProdRule": {"Value": {"Ref": "ProdRule"}}, "Blue": {"Value": {"Ref": "Blue"}},
                    "Green": {"Value": {"Ref": "Green"}}},
    }


def run_stack(cf, name, template, params, update=False):
    fn = cf.update_stack if update else cf.create_stack
    fn(StackName=name, TemplateBody=json.dumps(template),
       Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    return wait_for(lambda: (lambda st: st if not st["StackStatus"].endswith("_IN_PROGRESS") else None)(
        cf.describe_stacks(StackName=name)["Stacks"][0]), 30, what="stack")


def test_cloudformation_declares_a_blue_green_service(endpoint, network, ecs, elb):
    cf = client(endpoint, "cloudformation")
    name = "bg-" + uuid.uuid4().hex[:8]
    params = {"Vpc": network["vpc"]}
    stack = run_stack(cf, name, bg_template("nginx:1", network["subnets"]), params)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    out = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    svc = ecs.describe_services(cluster=out["Cluster"], services=[out["Service"]])["services"][0]
    cfg = svc["deploymentConfiguration"]
    assert (cfg["strategy"], cfg["bakeTimeInMinutes"]) == ("BLUE_GREEN", 2)
    assert cfg["lifecycleHooks"] == [{"hookTargetArn": FN + "cfn-hook", "roleArn": HOOK_ROLE,
                                      "lifecycleStages": ["POST_SCALE_UP"],
                                      "hookDetails": {"CheckUrl": "/health", "retries": 3}}]
    assert svc["loadBalancers"][0]["advancedConfiguration"] == {
        "alternateTargetGroupArn": out["Green"], "productionListenerRule": out["ProdRule"],
        "testListenerRule": svc["loadBalancers"][0]["advancedConfiguration"]["testListenerRule"], "roleArn": ROLE}
    sds = ecs.list_service_deployments(cluster=out["Cluster"], service=out["Service"])["serviceDeployments"]
    assert [d["status"] for d in sds] == ["SUCCESSFUL"]  # CREATE_COMPLETE waited for it

    def prod_weights():
        action = elb.describe_rules(RuleArns=[out["ProdRule"]])["Rules"][0]["Actions"][0]
        return {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]}

    assert prod_weights() == {out["Blue"]: 0, out["Green"]: 100}
    stack = run_stack(cf, name, bg_template("nginx:2", network["subnets"]), params, update=True)
    assert stack["StackStatus"] == "UPDATE_COMPLETE", stack
    sds = ecs.list_service_deployments(cluster=out["Cluster"], service=out["Service"])["serviceDeployments"]
    assert [d["status"] for d in sds] == ["SUCCESSFUL", "SUCCESSFUL"]
    assert prod_weights() == {out["Blue"]: 100, out["Green"]: 0}

    # Switching the strategy to LINEAR in the template: the next deployment moves 50% at a time.
    stack = run_stack(cf, name, bg_template("nginx:3", network["subnets"], strategy="LINEAR"), params, update=True)
    assert stack["StackStatus"] == "UPDATE_COMPLETE", stack
    assert prod_weights() == {out["Blue"]: 0, out["Green"]: 100}

    bad = "bad-" + uuid.uuid4().hex[:8]
    stack = run_stack(cf, bad, bg_template("nginx:1", network["subnets"], advanced=False), params)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    failed = [e for e in cf.describe_stack_events(StackName=bad)["StackEvents"]
              if e["LogicalResourceId"] == "Service" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert failed[0]["ResourceStatusReason"].startswith(
        "Resource handler returned message: \"Invalid request provided: CreateService error: advancedConfiguration "
        "field is required for all loadBalancers when using a non-ROLLING deployment strategy (Service: AmazonECS; "
        "Status Code: 400; Error Code: InvalidParameterException; Request ID: ")
    assert failed[0]["ResourceStatusReason"].endswith("HandlerErrorCode: InvalidRequest)")

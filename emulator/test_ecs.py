"""End-to-end tests for the ECS patches (emulator/ecs.py): start launcher.py like the
Rust tests do and drive deployments over real HTTP with boto3."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import WaiterError

from emulator.test_emulator import start_emulator

ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CB_REASON = "ECS deployment circuit breaker: tasks failed to start."


@pytest.fixture(scope="module")
def endpoint():
    proc, url = start_emulator()
    # Faster steps keep the module quick; also proves the control endpoint.
    req = urllib.request.Request(url + "/_emulator/ecs-speed", data=json.dumps({"stepSeconds": 0.1}).encode(),
                                 method="POST")
    assert json.loads(urllib.request.urlopen(req).read())["stepSeconds"] == 0.1
    yield url
    proc.stdin.close()
    proc.wait(10)


def client(endpoint, service):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def ecs(endpoint):
    return client(endpoint, "ecs")


@pytest.fixture(scope="module")
def repo(endpoint):
    """An ECR repository holding tags v1 and v2 (v-missing is never pushed)."""
    ecr = client(endpoint, "ecr")
    name = "app-" + uuid.uuid4().hex[:6]
    ecr.create_repository(repositoryName=name)
    for tag in ("v1", "v2"):
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                               "digest": "sha256:" + uuid.uuid4().hex * 2},
                    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
                                "digest": "sha256:" + uuid.uuid4().hex * 2}]}
        ecr.put_image(repositoryName=name, imageTag=tag, imageManifest=json.dumps(manifest))
    return name


@pytest.fixture()
def cluster(ecs):
    name = "c-" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=name)
    return name


def task_def(ecs, image, labels=None, family=None):
    cdef = {"name": "app", "image": image, "memory": 128, "portMappings": [{"containerPort": 80}]}
    if labels:
        cdef["dockerLabels"] = labels
    return ecs.register_task_definition(
        family=family or "f-" + uuid.uuid4().hex[:6], containerDefinitions=[cdef], requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", cpu="256", memory="512")["taskDefinition"]["taskDefinitionArn"]


def create_service(ecs, cluster, td, desired=1, breaker=None, **kw):
    cfg = {"deploymentCircuitBreaker": {"enable": breaker is not None, "rollback": bool(breaker == "rollback")}}
    return ecs.create_service(cluster=cluster, serviceName="svc", taskDefinition=td, desiredCount=desired,
                              launchType="FARGATE", deploymentConfiguration=cfg, **kw)["service"]


def describe(ecs, cluster):
    return ecs.describe_services(cluster=cluster, services=["svc"])["services"][0]


def wait_for(fn, timeout=8.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def settled(ecs, cluster, td):
    """Service whose only deployment runs td and is COMPLETED, or None."""
    s = describe(ecs, cluster)
    deps = s["deployments"]
    if len(deps) == 1 and deps[0]["taskDefinition"] == td and deps[0]["rolloutState"] == "COMPLETED":
        return s
    return None


def tasks(ecs, cluster, status="RUNNING"):
    arns = ecs.list_tasks(cluster=cluster, serviceName="svc", desiredStatus=status)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def messages(service):
    return [e["message"] for e in reversed(service["events"])]  # oldest first


# ------------------------------------------------------------------ API deployments


def test_moto_baseline_is_gone_create_and_update_progress(ecs, cluster, repo):
    td1, td2 = task_def(ecs, f"{REGISTRY}/{repo}:v1"), task_def(ecs, f"{REGISTRY}/{repo}:v2")
    s = create_service(ecs, cluster, td1, desired=2)
    d = s["deployments"][0]
    assert (d["status"], d["rolloutState"], d["runningCount"], d["desiredCount"]) == ("PRIMARY", "IN_PROGRESS", 0, 2)
    assert d["id"].startswith("ecs-svc/") and d["id"][8:].isdigit()
    assert d["rolloutStateReason"] == f"ECS deployment {d['id']} in progress."
    assert s["deploymentConfiguration"]["minimumHealthyPercent"] == 100

    s = wait_for(lambda: settled(ecs, cluster, td1), what="first deployment")
    assert (s["runningCount"], s["pendingCount"], s["taskDefinition"]) == (2, 0, td1)
    first = s["deployments"][0]
    running = tasks(ecs, cluster)
    assert len(running) == 2
    for t in running:
        assert (t["lastStatus"], t["desiredStatus"], t["group"]) == ("RUNNING", "RUNNING", "service:svc")
        assert t["startedBy"] == first["id"] and t["taskDefinitionArn"] == td1
        assert t["containers"][0]["lastStatus"] == "RUNNING"
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=["svc"], WaiterConfig={"Delay": 1})

    s = ecs.update_service(cluster=cluster, service="svc", taskDefinition=td2)["service"]
    assert [(d["status"], d["taskDefinition"]) for d in s["deployments"]] == [("PRIMARY", td2), ("ACTIVE", td1)]
    assert s["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    # the old deployment keeps running until the new one's tasks are up, then drains
    assert describe(ecs, cluster)["deployments"][1]["runningCount"] == 2
    s = wait_for(lambda: settled(ecs, cluster, td2), what="second deployment")
    assert s["taskDefinition"] == td2 and s["runningCount"] == 2
    stopped = [t for t in tasks(ecs, cluster, "STOPPED") if t["startedBy"] == first["id"]]
    assert {t["taskArn"] for t in stopped} == {t["taskArn"] for t in running}
    for t in wait_for(lambda: all(t["lastStatus"] == "STOPPED" for t in tasks(ecs, cluster, "STOPPED"))
                      and tasks(ecs, cluster, "STOPPED")):
        assert t["stopCode"] == "ServiceSchedulerInitiated" and "stoppedAt" in t
    msgs = messages(s)
    assert msgs[0].startswith("(service svc) has started 2 tasks: (task ")
    assert f"(service svc) (deployment {first['id']}) deployment completed." in msgs
    assert msgs[-1] == "(service svc) has reached a steady state."
    assert any(m.startswith("(service svc) has stopped 2 running tasks") for m in msgs)
    assert all({"id", "createdAt", "message"} <= set(e) for e in s["events"])

    # desiredCount alone scales the PRIMARY (no new deployment), forceNewDeployment starts one
    primary = s["deployments"][0]["id"]
    s = ecs.update_service(cluster=cluster, service="svc", desiredCount=1)["service"]
    assert [d["id"] for d in s["deployments"]] == [primary]
    wait_for(lambda: describe(ecs, cluster)["runningCount"] == 1 and len(tasks(ecs, cluster)) == 1)
    s = ecs.update_service(cluster=cluster, service="svc", forceNewDeployment=True)["service"]
    assert s["deployments"][0]["id"] != primary and s["deployments"][0]["taskDefinition"] == td2
    wait_for(lambda: settled(ecs, cluster, td2), what="forced deployment")


def test_missing_image_trips_circuit_breaker_and_rolls_back(ecs, cluster, repo):
    td1, bad = task_def(ecs, f"{REGISTRY}/{repo}:v1"), task_def(ecs, f"{REGISTRY}/{repo}:v-missing")
    create_service(ecs, cluster, td1, breaker="rollback")
    first = wait_for(lambda: settled(ecs, cluster, td1))["deployments"][0]["id"]
    s = ecs.update_service(cluster=cluster, service="svc", taskDefinition=bad)["service"]
    failing = s["deployments"][0]["id"]

    def failed_seen():
        deps = describe(ecs, cluster)["deployments"]
        return next((d for d in deps if d["id"] == failing and d["rolloutState"] == "FAILED"), None)

    d = wait_for(failed_seen, what="FAILED deployment")
    assert d["rolloutStateReason"] == CB_REASON and d["failedTasks"] >= 3
    s = wait_for(lambda: settled(ecs, cluster, td1), what="rollback deployment")
    assert s["taskDefinition"] == td1 and s["deployments"][0]["id"] not in (first, failing)
    msgs = messages(s)
    assert f"(service svc) deployment {failing} deployment failed: tasks failed to start." in msgs
    assert f"(service svc) rolling back to deployment {first}" in msgs
    pull = [t for t in tasks(ecs, cluster, "STOPPED") if t["startedBy"] == failing and t.get("stopCode") == "TaskFailedToStart"]
    assert pull
    expected = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                f"failed to resolve ref {REGISTRY}/{repo}:v-missing: not found")
    assert pull[0]["stoppedReason"] == expected
    assert pull[0]["containers"][0]["reason"] == expected and "exitCode" not in pull[0]["containers"][0]


def test_missing_image_without_rollback_stays_failed_and_keeps_old_tasks(ecs, cluster, repo):
    td1 = task_def(ecs, f"{REGISTRY}/{repo}:v1")
    bad = task_def(ecs, f"{REGISTRY}/{repo}@sha256:" + "0" * 64)
    create_service(ecs, cluster, td1, breaker="no-rollback")
    wait_for(lambda: settled(ecs, cluster, td1))
    ecs.update_service(cluster=cluster, service="svc", taskDefinition=bad)
    s = wait_for(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] == "FAILED" else None)(describe(ecs, cluster)))
    time.sleep(0.5)
    s = describe(ecs, cluster)
    assert [(d["status"], d["taskDefinition"], d["rolloutState"]) for d in s["deployments"]] == [
        ("PRIMARY", bad, "FAILED"), ("ACTIVE", td1, "COMPLETED")]
    assert s["taskDefinition"] == bad and s["runningCount"] == 1  # old task still serving
    assert s["deployments"][0]["pendingCount"] == 0  # failed deployments stop launching


def test_crash_loop_exit_code_is_visible(ecs, cluster):
    td = task_def(ecs, "public.ecr.aws/nginx/nginx:latest", {"emulator.exit-code": "3"})
    create_service(ecs, cluster, td, breaker="rollback")
    s = wait_for(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] == "FAILED" else None)(describe(ecs, cluster)))
    assert len(s["deployments"]) == 1  # nothing completed before: nothing to roll back to
    crashed = wait_for(lambda: [t for t in tasks(ecs, cluster, "STOPPED") if t.get("stopCode") == "EssentialContainerExited"])
    t = crashed[0]
    assert t["stoppedReason"] == "Essential container in task exited"
    assert t["containers"][0]["exitCode"] == 3 and "reason" not in t["containers"][0]
    assert "startedAt" in t  # it did run before crashing


def test_no_circuit_breaker_keeps_retrying_in_progress(ecs, cluster, repo):
    td = task_def(ecs, f"{REGISTRY}/{repo}:nope")
    create_service(ecs, cluster, td)
    wait_for(lambda: describe(ecs, cluster)["deployments"][0]["failedTasks"] >= 4, what="retries")
    d = describe(ecs, cluster)["deployments"][0]
    assert (d["rolloutState"], d["runningCount"]) == ("IN_PROGRESS", 0)
    with pytest.raises(WaiterError):
        ecs.get_waiter("services_stable").wait(cluster=cluster, services=["svc"],
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 2})


def test_start_seconds_keeps_task_pending_and_stop_task_is_replaced(ecs, cluster):
    td = task_def(ecs, "nginx:1", {"emulator.start-seconds": "0.8"})
    create_service(ecs, cluster, td)
    time.sleep(0.5)
    assert [t["lastStatus"] for t in tasks(ecs, cluster)] == ["PENDING"]
    assert describe(ecs, cluster)["pendingCount"] == 1
    t = wait_for(lambda: [t for t in tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"])[0]
    stopped = ecs.stop_task(cluster=cluster, task=t["taskArn"], reason="manual")["task"]
    assert (stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]) == ("STOPPED", "UserInitiated", "manual")
    wait_for(lambda: [x for x in tasks(ecs, cluster) if x["taskArn"] != t["taskArn"]], what="replacement")


def test_load_balancer_targets_and_unhealthy_tasks(endpoint, ecs, cluster):
    ec2, elb = client(endpoint, "ec2"), client(endpoint, "elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    tg = elb.create_target_group(Name="tg-" + uuid.uuid4().hex[:8], Protocol="HTTP", Port=80, VpcId=vpc,
                                 TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    lbs = [{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}]
    create_service(ecs, cluster, task_def(ecs, "nginx:1"), loadBalancers=lbs)
    health = wait_for(lambda: elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"])
    assert health[0]["TargetHealth"]["State"] == "healthy" and health[0]["Target"]["Port"] == 80

    ecs.update_service(cluster=cluster, service="svc", taskDefinition=task_def(ecs, "nginx:2", {"emulator.unhealthy": "true"}))
    wait_for(lambda: any(h["TargetHealth"]["State"] == "unhealthy" and h["TargetHealth"]["Reason"] == "Target.FailedHealthChecks"
                         for h in elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]))
    t = wait_for(lambda: [t for t in tasks(ecs, cluster, "STOPPED") if "health" in (t.get("stoppedReason") or "")])[0]
    assert t["stoppedReason"] == f"Task failed ELB health checks in (target-group {tg})"
    assert t["healthStatus"] == "UNHEALTHY"
    # with min healthy 100% the old healthy task keeps serving
    s = describe(ecs, cluster)
    assert s["runningCount"] >= 1 and s["deployments"][-1]["runningCount"] == 1


# ------------------------------------------------------------------ CloudFormation


def stack_template(image, breaker=True):
    return {
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster"},
            "TaskDef": {"Type": "AWS::ECS::TaskDefinition",
                        "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                                       "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                                       "ContainerDefinitions": [{"Name": "app", "Image": image}]}},
            "Service": {"Type": "AWS::ECS::Service",
                        "Properties": {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"},
                                       "DesiredCount": 1, "LaunchType": "FARGATE",
                                       "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": ["subnet-12345678"]}},
                                       "DeploymentConfiguration": {
                                           "DeploymentCircuitBreaker": {"Enable": breaker, "Rollback": breaker}}}},
        },
        "Outputs": {"ClusterName": {"Value": {"Ref": "Cluster"}}, "ServiceName": {"Value": {"Fn::GetAtt": ["Service", "Name"]}}},
    }


def run_stack(cf, name, template, update=False):
    fn = cf.update_stack if update else cf.create_stack
    fn(StackName=name, TemplateBody=json.dumps(template))
    seen = []
    deadline = time.monotonic() + 15
    while True:
        s = cf.describe_stacks(StackName=name)["Stacks"][0]
        seen.append(s["StackStatus"])
        if not s["StackStatus"].endswith("_IN_PROGRESS"):
            return s
        assert time.monotonic() < deadline, s["StackStatus"]
        time.sleep(0.05)


def service_events(cf, name):
    evs = reversed(cf.describe_stack_events(StackName=name)["StackEvents"])
    return [(e["ResourceStatus"], e.get("ResourceStatusReason"), e["Timestamp"]) for e in evs
            if e["LogicalResourceId"] == "Service"]


def test_cloudformation_waits_for_deployment_then_fails_on_circuit_breaker(endpoint, ecs, repo):
    cf = client(endpoint, "cloudformation")
    name = "ecs-" + uuid.uuid4().hex[:8]
    good = f"{REGISTRY}/{repo}:v1"
    s = run_stack(cf, name, stack_template(good))
    assert s["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in s["Outputs"]}
    cluster = outputs["ClusterName"]
    svc = ecs.describe_services(cluster=cluster, services=[outputs["ServiceName"]])["services"][0]
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED" and svc["runningCount"] == 1
    assert svc["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    evs = service_events(cf, name)
    assert [e[0] for e in evs] == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert (evs[-1][2] - evs[0][2]).total_seconds() >= 0.3  # held while ECS deployed
    good_td = svc["taskDefinition"]

    # Update to an image that was never pushed: the circuit breaker fails the update,
    # ECS rolls back, CloudFormation rolls the stack back.
    s = run_stack(cf, name, stack_template(f"{REGISTRY}/{repo}:v-missing"), update=True)
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failed = [e for e in service_events(cf, name) if e[0] == "UPDATE_FAILED"]
    assert failed and failed[0][1].startswith(
        "Resource handler returned message: \"Error occurred during operation "
        "'ECS Deployment Circuit Breaker was triggered'.\" (RequestToken: ")
    svc = wait_for(lambda: (lambda x: x if x["deployments"][0]["rolloutState"] == "COMPLETED" and len(x["deployments"]) == 1 else None)(
        ecs.describe_services(cluster=cluster, services=[outputs["ServiceName"]])["services"][0]))
    image = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]["containerDefinitions"][0]["image"]
    assert image == good, (good_td, svc["taskDefinition"])

    cf.delete_stack(StackName=name)
    wait_for(lambda: cf.describe_stacks(StackName=s["StackId"])["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE")
    wait_for(lambda: ecs.describe_services(cluster=cluster, services=[outputs["ServiceName"]])["services"][0]["status"] == "INACTIVE")
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []


def test_cloudformation_create_with_missing_image_fails_and_rolls_back(endpoint, repo):
    cf = client(endpoint, "cloudformation")
    name = "ecs-" + uuid.uuid4().hex[:8]
    s = run_stack(cf, name, stack_template(f"{REGISTRY}/{repo}:v-missing"))
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    statuses = [e[0] for e in service_events(cf, name)]
    assert statuses[:3] == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_FAILED"]
    assert statuses[-1] == "DELETE_COMPLETE"

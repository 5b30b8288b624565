"""End-to-end tests for the ECS patches (emulator/ecs.py): start launcher.py like the
Rust tests do and drive deployments over real HTTP with boto3."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import WaiterError

from emulator.testing import client, running_emulator


ACCOUNT, REGION = "123456789012", "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CB_REASON = "ECS deployment circuit breaker: tasks failed to start."
# The execution role the task definitions here name (a Fargate task pulling from a private ECR needs one):
# trusted by ECS tasks, with AWS's managed execution policy, as an account running Fargate tasks has it.
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsTaskExecutionRole"
EXEC_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
ECS_TASKS_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def create_execution_role(url, name="ecsTaskExecutionRole", trust=ECS_TASKS_TRUST, managed=(EXEC_POLICY,)):
    iam = client(url, "iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    for arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        # Faster steps keep the module quick; also proves the control endpoint.
        req = urllib.request.Request(url + "/_emulator/ecs-speed", data=json.dumps({"stepSeconds": 0.1}).encode(),
                                     method="POST")
        assert json.loads(urllib.request.urlopen(req).read())["stepSeconds"] == 0.1
        create_execution_role(url)
        yield url



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
        networkMode="awsvpc", cpu="256", memory="512", executionRoleArn=EXEC_ROLE)["taskDefinition"]["taskDefinitionArn"]


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


def default_subnet(endpoint):
    """A subnet of the default VPC: (subnet id, VPC id)."""
    subnet = client(endpoint, "ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    return subnet["SubnetId"], subnet["VpcId"]


def ip_target_group(endpoint, vpc, port=80):
    return client(endpoint, "elbv2").create_target_group(
        Name="tg-" + uuid.uuid4().hex[:8], Protocol="HTTP", Port=port, VpcId=vpc,
        TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]


def td_with(ecs, container):
    cdef = {"name": "app", "image": "nginx:1", "memory": 128, **container}
    return ecs.register_task_definition(
        family="f-" + uuid.uuid4().hex[:6], containerDefinitions=[cdef], requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc", cpu="256", memory="512")["taskDefinition"]["taskDefinitionArn"]


NO_PORT = "The container app did not have a container port 80 defined."
NO_CONTAINER = "The container app does not exist in the task definition."


def test_create_and_update_service_refuse_a_load_balancer_container_port_the_task_definition_lacks(
        endpoint, ecs, cluster):
    subnet, vpc = default_subnet(endpoint)
    tg = ip_target_group(endpoint, vpc)
    lbs = [{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}]
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    good = td_with(ecs, {"portMappings": [{"containerPort": 80}]})
    other_port = td_with(ecs, {"portMappings": [{"containerPort": 8080}]})
    no_ports = td_with(ecs, {})
    other_name = td_with(ecs, {"name": "web", "portMappings": [{"containerPort": 80}]})
    refusals = ((other_port, NO_PORT), (no_ports, NO_PORT), (other_name, NO_CONTAINER))
    for td, message in refusals:
        with pytest.raises(ecs.exceptions.InvalidParameterException) as err:
            create_service(ecs, cluster, td, loadBalancers=lbs, networkConfiguration=net)
        e = err.value.response
        assert (e["Error"]["Code"], e["Error"]["Message"]) == ("InvalidParameterException", message)
        assert e["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []

    s = create_service(ecs, cluster, good, loadBalancers=lbs, networkConfiguration=net)
    first = s["deployments"][0]["id"]
    for td, message in refusals:
        with pytest.raises(ecs.exceptions.InvalidParameterException) as err:
            ecs.update_service(cluster=cluster, service="svc", taskDefinition=td)
        assert err.value.response["Error"]["Message"] == message
    s = describe(ecs, cluster)
    assert [(d["id"], d["taskDefinition"]) for d in s["deployments"]] == [(first, good)]
    assert s["taskDefinition"] == good
    # a load balancer configuration given with the update is checked against the revision it runs
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="container port 8080"):
        ecs.update_service(cluster=cluster, service="svc",
                           loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 8080}])
    # a service without load balancers takes any of them
    plain = ecs.create_service(cluster=cluster, serviceName="plain", taskDefinition=good, desiredCount=0,
                               launchType="FARGATE", networkConfiguration=net)["service"]
    assert ecs.update_service(cluster=cluster, service="plain", taskDefinition=other_name)["service"][
        "taskDefinition"] == other_name != plain["taskDefinition"]


def register_vpc_event(tg, vpc, ip):
    return (f"(service svc) failed to register targets in (target-group {tg}) with (error The following targets are "
            f"not in the target group VPC '{vpc}': '{ip}')")


def task_ip(t):
    eni = next(a for a in t["attachments"] if a["type"] == "ElasticNetworkInterface")
    return next(d["value"] for d in eni["details"] if d["name"] == "privateIPv4Address")


def eleven_running(ecs, cluster):
    running = [t for t in tasks(ecs, cluster) if t["lastStatus"] == "RUNNING"]
    return running if len(running) == 11 else None


def test_live_tasks_never_share_a_private_ip_and_a_stopped_task_frees_its_own(endpoint, ecs, cluster):
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.62.0.0/16")["Vpc"]["VpcId"]
    # a /28: 16 addresses, AWS keeps the first four and the last, 11 for tasks
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.62.0.0/28")["Subnet"]["SubnetId"]
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    create_service(ecs, cluster, task_def(ecs, "nginx:1"), desired=11, networkConfiguration=net)
    running = wait_for(lambda: eleven_running(ecs, cluster), what="eleven running tasks")
    ips = sorted(task_ip(t) for t in running)
    usable = sorted(f"10.62.0.{n}" for n in range(4, 15))
    assert ips == usable  # every free address once: no two live ENIs with one address
    # scaled in and out again: the stopped tasks' addresses are free for the new ones
    ecs.update_service(cluster=cluster, service="svc", desiredCount=0)
    wait_for(lambda: not tasks(ecs, cluster) and all(t["lastStatus"] == "STOPPED" for t in tasks(ecs, cluster, "STOPPED")),
             what="all tasks stopped")
    ecs.update_service(cluster=cluster, service="svc", desiredCount=11)
    running = wait_for(lambda: eleven_running(ecs, cluster), what="eleven tasks again")
    assert sorted(task_ip(t) for t in running) == usable


def test_tasks_in_subnets_of_another_vpc_than_the_target_group_never_register(endpoint, ecs, cluster):
    ec2, elb = client(endpoint, "ec2"), client(endpoint, "elbv2")
    subnet, _ = default_subnet(endpoint)
    other_vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    tg = ip_target_group(endpoint, other_vpc)
    lbs = [{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}]
    td1 = task_def(ecs, "nginx:1")
    create_service(ecs, cluster, td1, desired=2, loadBalancers=lbs,
                   networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})

    def register_events(n):
        s = describe(ecs, cluster)
        found = [m for m in messages(s) if "failed to register targets" in m]
        return (s, found) if len(found) >= n else None

    # ECS starts the tasks; ELB refuses each one's IP, and ECS says so for every task
    s, found = wait_for(lambda: register_events(2), what="the register failures of both tasks")
    running = tasks(ecs, cluster)
    assert len(running) == 2 and all(t["lastStatus"] == "RUNNING" for t in running)
    assert sorted(found) == sorted(register_vpc_event(tg, other_vpc, task_ip(t)) for t in running)
    assert elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"] == []
    # the tasks never count as healthy: the deployment does not complete
    time.sleep(0.6)  # more than the steps a healthy deployment takes to complete
    s = describe(ecs, cluster)
    assert [d["rolloutState"] for d in s["deployments"]] == ["IN_PROGRESS"]
    assert not any("steady state" in m or "deployment completed" in m for m in messages(s))

    # a new revision: its tasks fail the same way, one event per task, and never replace the old ones
    td2 = task_def(ecs, "nginx:2")
    ecs.update_service(cluster=cluster, service="svc", taskDefinition=td2)
    s, found = wait_for(lambda: register_events(4), what="the register failures of the new tasks")
    new = [t for t in tasks(ecs, cluster) if t["taskDefinitionArn"] == td2]
    assert len(new) == 2 and all(register_vpc_event(tg, other_vpc, task_ip(t)) in found for t in new)
    time.sleep(0.6)
    s = describe(ecs, cluster)
    assert [(d["taskDefinition"], d["rolloutState"]) for d in s["deployments"]] == [
        (td2, "IN_PROGRESS"), (td1, "IN_PROGRESS")]
    assert s["runningCount"] == 4

    # tasks in a subnet of the target group's VPC register as before
    good_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.61.1.0/24")["Subnet"]["SubnetId"]
    ecs.create_cluster(clusterName=cluster + "-b")
    create_service(ecs, cluster + "-b", td1, loadBalancers=lbs,
                   networkConfiguration={"awsvpcConfiguration": {"subnets": [good_subnet]}})
    health = wait_for(lambda: elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"],
                      what="the task in the target group's VPC registered")
    assert health[0]["Target"]["Id"].startswith("10.61.1.")
    assert wait_for(lambda: settled(ecs, cluster + "-b", td1), what="that service's deployment completed")


# ------------------------------------------------------------------ transient (infrastructure) failures

CAPACITY_EVENT = ("(service svc) was unable to place a task. Reason: Capacity is unavailable at this time. Please try "
                  "again later or in a different availability zone. For more information, see the Troubleshooting "
                  "section of the Amazon ECS Developer Guide.")
ENI_REASON = "Timeout waiting for network interface provisioning to complete."
SPOT_REASON = "Your Spot Task was interrupted."
MAINTENANCE_REASON = "Service svc: ECS is performing maintenance on the underlying infrastructure hosting the task"


def transient_td(ecs, n, kind, **labels):
    return task_def(ecs, "nginx:1", {"emulator.transient-failures": str(n), "emulator.transient-reason": kind,
                                     **labels})


def stopped_of(ecs, cluster, dep_id):
    return [t for t in tasks(ecs, cluster, "STOPPED") if t["startedBy"] == dep_id]


def test_transient_capacity_is_a_placement_failure_counted_in_failed_tasks(ecs, cluster):
    td = transient_td(ecs, 3, "capacity")
    dep = create_service(ecs, cluster, td)["deployments"][0]["id"]
    s = wait_for(lambda: settled(ecs, cluster, td), what="deployment after 3 capacity failures")
    d = s["deployments"][0]
    assert (d["id"], d["failedTasks"], d["runningCount"]) == (dep, 3, 1)
    msgs = messages(s)
    # no task was ever created for the failed placements: the service event is the evidence, once
    # (ECS does not repeat an identical event), before the task that finally started
    assert msgs.count(CAPACITY_EVENT) == 1
    started = [m for m in msgs if m.startswith("(service svc) has started")]
    assert started == [started[0]] and msgs.index(CAPACITY_EVENT) < msgs.index(started[0])
    assert stopped_of(ecs, cluster, dep) == []
    assert [t["startedBy"] for t in tasks(ecs, cluster)] == [dep]


def test_transient_capacity_failures_count_toward_the_circuit_breaker(ecs, cluster):
    # desiredCount 1: threshold 3. Two placement failures stay under it, three trip it (AWS: a task the
    # scheduler can't launch counts as failed).
    td = transient_td(ecs, 2, "capacity")
    create_service(ecs, cluster, td, breaker="no-rollback")
    assert wait_for(lambda: settled(ecs, cluster, td))["deployments"][0]["failedTasks"] == 2
    bad = transient_td(ecs, 3, "capacity")
    dep = ecs.update_service(cluster=cluster, service="svc", taskDefinition=bad)["service"]["deployments"][0]["id"]
    s = wait_for(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] == "FAILED" else None)(describe(ecs, cluster)),
                 what="circuit breaker")
    d = s["deployments"][0]
    assert (d["id"], d["failedTasks"], d["rolloutStateReason"]) == (dep, 3, CB_REASON)
    assert f"(service svc) deployment {dep} deployment failed: tasks failed to start." in messages(s)
    assert ecs.list_tasks(cluster=cluster, startedBy=dep, desiredStatus="RUNNING")["taskArns"] == []
    assert stopped_of(ecs, cluster, dep) == []
    assert s["runningCount"] == 1  # the old deployment keeps serving


def test_transient_eni_timeout_stops_tasks_in_provisioning_then_completes(ecs, cluster):
    td = transient_td(ecs, 2, "eni")
    dep = create_service(ecs, cluster, td)["deployments"][0]["id"]
    s = wait_for(lambda: settled(ecs, cluster, td), what="deployment after 2 ENI timeouts")
    assert s["deployments"][0]["failedTasks"] == 2  # never RUNNING: failed tasks, as AWS counts them
    failed = wait_for(lambda: (lambda ts: ts if len(ts) == 2 and all(t["lastStatus"] == "STOPPED" for t in ts) else None)(
        stopped_of(ecs, cluster, dep)), what="stopped ENI tasks")
    for t in failed:
        assert (t["stopCode"], t["stoppedReason"], t["desiredStatus"]) == ("TaskFailedToStart", ENI_REASON, "STOPPED")
        assert not {"pullStartedAt", "startedAt", "executionStoppedAt"} & set(t), t  # nothing ever ran
        assert {"stoppingAt", "stoppedAt"} <= set(t)
        c = t["containers"][0]
        assert c["lastStatus"] == "STOPPED" and "exitCode" not in c and "reason" not in c
        eni = t["attachments"][0]
        assert eni["status"] == "DELETED"
        assert {x["name"] for x in eni["details"]} >= {"networkInterfaceId", "privateIPv4Address"}
    running = tasks(ecs, cluster)
    assert [t["startedBy"] for t in running] == [dep] and running[0]["lastStatus"] == "RUNNING"


def test_transient_spot_interruptions_are_replaced_and_not_counted(ecs, cluster):
    # Three interruptions with the breaker on (threshold 3): they are not failed tasks, so it completes.
    td = transient_td(ecs, 3, "spot")
    dep = create_service(ecs, cluster, td, breaker="rollback")["deployments"][0]["id"]
    s = wait_for(lambda: settled(ecs, cluster, td), what="deployment after 3 spot interruptions")
    assert s["deployments"][0]["failedTasks"] == 0
    interrupted = wait_for(lambda: (lambda ts: ts if len(ts) == 3 and all(t["lastStatus"] == "STOPPED" for t in ts)
                                    else None)(stopped_of(ecs, cluster, dep)), what="interrupted tasks")
    for t in interrupted:
        assert (t["stopCode"], t["stoppedReason"]) == ("SpotInterruption", SPOT_REASON)
        assert "startedAt" in t and t["stoppingAt"] > t["startedAt"]  # it was RUNNING when interrupted
        assert "exitCode" not in t["containers"][0]
    assert [t["startedBy"] for t in tasks(ecs, cluster)] == [dep]
    assert not any("unable to place" in m or "deployment failed" in m for m in messages(s))


def test_transient_maintenance_starts_the_replacement_before_retiring_the_task(ecs, cluster):
    td = transient_td(ecs, 1, "maintenance")
    dep = create_service(ecs, cluster, td, breaker="rollback")["deployments"][0]["id"]
    s = wait_for(lambda: settled(ecs, cluster, td), what="deployment after a task retirement")
    assert s["deployments"][0]["failedTasks"] == 0
    retired = wait_for(lambda: [t for t in stopped_of(ecs, cluster, dep) if t["lastStatus"] == "STOPPED"])
    assert len(retired) == 1
    t = retired[0]
    assert (t["stopCode"], t["stoppedReason"]) == ("ServiceSchedulerInitiated", MAINTENANCE_REASON)
    replacement = tasks(ecs, cluster)
    assert [r["startedBy"] for r in replacement] == [dep]
    # minimumHealthyPercent 100: the replacement was RUNNING before the retired task was stopped
    assert t["startedAt"] < replacement[0]["startedAt"] <= t["stoppingAt"]


def test_transient_maintenance_after_completion_keeps_the_deployment_completed(ecs, cluster):
    td = transient_td(ecs, 1, "maintenance", **{"emulator.transient-after-seconds": "1.0",
                                                "emulator.start-seconds": "0.5"})  # a replacement stays pending longer
    dep = create_service(ecs, cluster, td)["deployments"][0]["id"]
    first = wait_for(lambda: settled(ecs, cluster, td))
    original = tasks(ecs, cluster)[0]["taskArn"]
    assert "has reached a steady state." in messages(first)[-1]
    # retired about a second after RUNNING: the replacement starts next to it while it keeps running
    s = wait_for(lambda: (lambda s: s if s["pendingCount"] == 1 else None)(describe(ecs, cluster)),
                 what="replacement starting next to it")
    assert s["runningCount"] == 1 and original in ecs.list_tasks(cluster=cluster, serviceName="svc")["taskArns"]
    t = wait_for(lambda: [t for t in stopped_of(ecs, cluster, dep) if t["lastStatus"] == "STOPPED"])[0]
    assert (t["taskArn"], t["stopCode"], t["stoppedReason"]) == (original, "ServiceSchedulerInitiated", MAINTENANCE_REASON)
    assert tasks(ecs, cluster)[0]["startedAt"] <= t["stoppingAt"]
    s = wait_for(lambda: (lambda s: s if s["runningCount"] == 1 and s["pendingCount"] == 0 else None)(describe(ecs, cluster)))
    d = s["deployments"]
    assert [(x["id"], x["rolloutState"], x["failedTasks"]) for x in d] == [(dep, "COMPLETED", 0)]
    assert [x["startedBy"] for x in tasks(ecs, cluster)] == [dep]


# ------------------------------------------------------------------ CloudFormation


def stack_template(image, breaker=True):
    return {
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster"},
            "TaskDef": {"Type": "AWS::ECS::TaskDefinition",
                        "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                                       "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                                       "ExecutionRoleArn": EXEC_ROLE,
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


# ------------------------------------------------------------------ RunTask (standalone one-off tasks)

NET = {"awsvpcConfiguration": {"subnets": ["subnet-12345678"], "securityGroups": ["sg-12345678"]}}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecsInfrastructureRole"
STATES = ["PROVISIONING", "PENDING", "RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]
MSG_VOLUME = "Volume configuration provided but no matching configuredAtLaunch volume found in task definition."


def one_off_td(ecs, containers=None, volumes=None, family=None, tags=None, fargate=True):
    """A task definition for one-off tasks: by default `app` (essential) and `log-router` (not)."""
    containers = containers or [{"name": "app", "image": "nginx:1", "memory": 128},
                                {"name": "log-router", "image": "fluent/fluent-bit:3", "essential": False}]
    kw = ({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512",
           "executionRoleArn": EXEC_ROLE} if fargate else {})
    if volumes:
        kw["volumes"] = volumes
    if tags:
        kw["tags"] = tags
    family = family or "job-" + uuid.uuid4().hex[:6]
    return ecs.register_task_definition(family=family, containerDefinitions=containers, **kw)["taskDefinition"]


def run(ecs, cluster, td, **kw):
    kw.setdefault("launchType", "FARGATE")
    kw.setdefault("networkConfiguration", NET)
    return ecs.run_task(cluster=cluster, taskDefinition=td, **kw)


def env(**values):
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def task(ecs, cluster, arn, **kw):
    return ecs.describe_tasks(cluster=cluster, tasks=[arn], **kw)["tasks"][0]


def wait_task(ecs, cluster, arn, status="STOPPED", timeout=8.0):
    """The task once it reaches status, and the lastStatus values seen on the way."""
    seen = []

    def poll():
        t = task(ecs, cluster, arn)
        if not seen or seen[-1] != t["lastStatus"]:
            seen.append(t["lastStatus"])
        return t if t["lastStatus"] == status else None

    return wait_for(poll, timeout, f"task {status}"), seen


def containers(t):
    return {c["name"]: c for c in t["containers"]}


def test_run_task_answers_like_aws(ecs, cluster):
    td = one_off_td(ecs)
    family, arn = td["family"], td["taskDefinitionArn"]
    overrides = {"containerOverrides": [{"name": "app", "command": ["./manage.py", "migrate"]}]}
    r = run(ecs, cluster, family, overrides=overrides, startedBy="GitHub-Actions",
            tags=[{"key": "purpose", "value": "migration"}])
    assert r["failures"] == [] and len(r["tasks"]) == 1
    t = r["tasks"][0]
    assert (t["lastStatus"], t["desiredStatus"], t["version"]) == ("PROVISIONING", "RUNNING", 1)
    assert t["taskArn"].startswith(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/")
    assert t["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    assert t["taskDefinitionArn"] == arn  # the family resolved to its latest ACTIVE revision
    assert (t["group"], t["startedBy"], t["launchType"]) == (f"family:{family}", "GitHub-Actions", "FARGATE")
    assert (t["platformVersion"], t["platformFamily"], t["cpu"], t["memory"]) == ("1.4.0", "Linux", "256", "512")
    assert "capacityProviderName" not in t and "containerInstanceArn" not in t
    # AWS echoes every container, the ones without overrides by name only.
    assert t["overrides"] == {"containerOverrides": [overrides["containerOverrides"][0], {"name": "log-router"}],
                              "inferenceAcceleratorOverrides": []}
    assert t["tags"] == [{"key": "purpose", "value": "migration"}]
    assert t["ephemeralStorage"] == t["fargateEphemeralStorage"] == {"sizeInGiB": 20}
    assert t["attributes"] == [{"name": "ecs.cpu-architecture", "value": "x86_64"}]
    assert t["enableExecuteCommand"] is False
    [eni] = t["attachments"]
    assert (eni["type"], eni["status"]) == ("ElasticNetworkInterface", "PRECREATED")
    assert eni["details"] == [{"name": "subnetId", "value": "subnet-12345678"}]
    assert [(c["name"], c["lastStatus"], c["networkInterfaces"]) for c in t["containers"]] == [
        ("app", "PENDING", []), ("log-router", "PENDING", [])]
    assert all("exitCode" not in c for c in t["containers"])

    # group as given; startedBy up to 128 characters (the RunTask API reference's limit)
    t = run(ecs, cluster, arn, group="migrations", startedBy="s" * 128)["tasks"][0]
    assert (t["group"], t["startedBy"]) == ("migrations", "s" * 128)


def test_run_task_runs_its_command_then_stops_with_exit_code_zero(ecs, cluster):
    td = one_off_td(ecs)["taskDefinitionArn"]
    # both commands take 2 s, so RUNNING (every container) is seen even on a busy machine
    t0 = run(ecs, cluster, td, overrides={"containerOverrides": [
        {"name": name, "environment": env(EMULATOR_EXIT_AFTER_SECONDS=2)} for name in ("app", "log-router")]})[
        "tasks"][0]
    running, seen = wait_task(ecs, cluster, t0["taskArn"], "RUNNING")
    assert seen[0] in ("PROVISIONING", "PENDING")
    assert {c["lastStatus"] for c in running["containers"]} == {"RUNNING"}
    assert running["connectivity"] == "CONNECTED" and "startedAt" in running and "stoppedAt" not in running
    eni = running["attachments"][0]
    details = {d["name"]: d["value"] for d in eni["details"]}
    assert eni["status"] == "ATTACHED" and details["subnetId"] == "subnet-12345678"
    assert details["networkInterfaceId"].startswith("eni-") and details["privateIPv4Address"].startswith("10.")
    assert containers(running)["app"]["networkInterfaces"] == [
        {"attachmentId": eni["id"], "privateIpv4Address": details["privateIPv4Address"]}]
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["runningTasksCount"] == 1
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == [t0["taskArn"]]

    t, more = wait_task(ecs, cluster, t0["taskArn"])
    seen += more[1:] if more[0] == seen[-1] else more
    assert [STATES.index(s) for s in seen] == sorted(STATES.index(s) for s in seen)  # never backwards
    assert seen[-1] == "STOPPED" and "RUNNING" in seen
    assert (t["desiredStatus"], t["stopCode"], t["stoppedReason"]) == (
        "STOPPED", "EssentialContainerExited", "Essential container in task exited")
    for c in t["containers"]:  # a normal exit: an exit code, no reason
        assert (c["lastStatus"], c["exitCode"]) == ("STOPPED", 0) and "reason" not in c
    assert t["attachments"][0]["status"] == "DELETED"
    times = [t[k] for k in ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt", "executionStoppedAt", "stoppedAt")]
    assert times == sorted(times) and t["stoppingAt"] <= t["stoppedAt"]
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []  # ListTasks defaults to desiredStatus RUNNING
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == [t0["taskArn"]]
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["runningTasksCount"] == 0


def test_run_task_exit_code_from_label_or_override_environment(ecs, cluster):
    td = one_off_td(ecs, [{"name": "app", "image": "nginx:1", "memory": 128,
                           "dockerLabels": {"emulator.exit-code": "3"}}])["taskDefinitionArn"]
    labelled = run(ecs, cluster, td)["tasks"][0]["taskArn"]
    overridden = run(ecs, cluster, td, overrides={"containerOverrides": [
        {"name": "app", "environment": env(EMULATOR_EXIT_CODE=0)}]})["tasks"][0]["taskArn"]
    slow = run(ecs, cluster, td, overrides={"containerOverrides": [
        {"name": "app", "environment": env(EMULATOR_EXIT_CODE=42, EMULATOR_EXIT_AFTER_SECONDS=2.5)}]})["tasks"][0]["taskArn"]
    t = wait_task(ecs, cluster, labelled)[0]
    assert containers(t)["app"]["exitCode"] == 3 and t["stopCode"] == "EssentialContainerExited"
    assert "reason" not in containers(t)["app"]  # AWS gives no reason for a plain non-zero exit
    assert containers(wait_task(ecs, cluster, overridden)[0])["app"]["exitCode"] == 0
    wait_task(ecs, cluster, slow, "RUNNING")
    time.sleep(0.3)
    assert task(ecs, cluster, slow)["lastStatus"] == "RUNNING"  # its command takes 2.5 s
    t = wait_task(ecs, cluster, slow)[0]
    assert containers(t)["app"]["exitCode"] == 42
    assert (t["executionStoppedAt"] - t["startedAt"]).total_seconds() >= 2.4


def test_run_task_non_essential_container_exit_stops_only_that_container(ecs, cluster):
    td = one_off_td(ecs, [
        {"name": "app", "image": "nginx:1", "memory": 128, "dockerLabels": {"emulator.exit-after-seconds": "3"}},
        {"name": "log-router", "image": "fluent/fluent-bit:3", "essential": False,
         "dockerLabels": {"emulator.exit-code": "2"}}])["taskDefinitionArn"]
    arn = run(ecs, cluster, td)["tasks"][0]["taskArn"]
    t = wait_for(lambda: (lambda t: t if containers(t)["log-router"]["lastStatus"] == "STOPPED" else None)(
        task(ecs, cluster, arn)), what="log-router exit")
    assert (t["lastStatus"], t["desiredStatus"]) == ("RUNNING", "RUNNING")
    assert containers(t)["log-router"]["exitCode"] == 2
    assert containers(t)["app"]["lastStatus"] == "RUNNING" and "exitCode" not in containers(t)["app"]
    t = wait_task(ecs, cluster, arn)[0]
    assert [(c["name"], c["exitCode"]) for c in t["containers"]] == [("app", 0), ("log-router", 2)]
    assert t["stopCode"] == "EssentialContainerExited"


def test_run_task_with_image_missing_from_ecr_fails_to_start(ecs, cluster, repo):
    image = f"{REGISTRY}/{repo}:v-missing"
    td = one_off_td(ecs, [{"name": "app", "image": image, "memory": 128}])["taskDefinitionArn"]
    t = wait_task(ecs, cluster, run(ecs, cluster, td)["tasks"][0]["taskArn"])[0]
    expected = ("CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                f"failed to resolve ref {image}: not found")
    assert (t["stopCode"], t["stoppedReason"]) == ("TaskFailedToStart", expected)
    c = containers(t)["app"]
    assert c["lastStatus"] == "STOPPED" and "exitCode" not in c and c["reason"] == expected
    assert "startedAt" not in t and "pullStartedAt" in t

    ok = one_off_td(ecs, [{"name": "app", "image": f"{REGISTRY}/{repo}:v1", "memory": 128}])["taskDefinitionArn"]
    assert containers(wait_task(ecs, cluster, run(ecs, cluster, ok)["tasks"][0]["taskArn"])[0])["app"]["exitCode"] == 0


def test_run_task_seen_by_list_tasks_and_stopped_by_stop_task(ecs, cluster):
    a, b = one_off_td(ecs), one_off_td(ecs)
    # Both containers' commands outlive the test (a container without an override would finish a
    # step after it started, with an exit code of its own).
    long_run = {"containerOverrides": [{"name": name, "environment": env(EMULATOR_EXIT_AFTER_SECONDS=60)}
                                       for name in ("app", "log-router")]}
    ta = run(ecs, cluster, a["taskDefinitionArn"], startedBy="job-a", overrides=long_run)["tasks"][0]["taskArn"]
    tb = run(ecs, cluster, b["taskDefinitionArn"], startedBy="job-b", overrides=long_run)["tasks"][0]["taskArn"]

    def listed(**kw):
        return set(ecs.list_tasks(cluster=cluster, **kw)["taskArns"])

    assert listed() == {ta, tb}
    assert listed(startedBy="job-a") == {ta}
    assert listed(family=b["family"]) == {tb}
    assert listed(desiredStatus="STOPPED") == set()
    wait_task(ecs, cluster, ta, "RUNNING")
    stopped = ecs.stop_task(cluster=cluster, task=ta, reason="migration cancelled")["task"]
    assert (stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]) == (
        "STOPPED", "UserInitiated", "migration cancelled")
    t = wait_task(ecs, cluster, ta)[0]
    assert (t["stopCode"], t["stoppedReason"]) == ("UserInitiated", "migration cancelled")
    # stopped by the agent before its command finished: no exit of its own to report
    assert all(c["lastStatus"] == "STOPPED" and "exitCode" not in c for c in t["containers"])
    assert listed(desiredStatus="STOPPED") == {ta} and listed() == {tb}
    assert listed(family=a["family"], desiredStatus="STOPPED") == {ta}
    ecs.stop_task(cluster=cluster, task=tb.split("/")[-1])  # the task id works too
    assert listed() == set()
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="The referenced task was not found."):
        ecs.stop_task(cluster=cluster, task="0" * 32)


def _speed(url, body):
    req = urllib.request.Request(url + "/_emulator/ecs-speed", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_paused_engine_moves_nothing_until_it_resumes(endpoint, ecs, cluster):
    td = one_off_td(ecs)["taskDefinitionArn"]
    assert _speed(endpoint, {"paused": True}) == (200, {**_speed(endpoint, {})[1], "paused": True})
    try:
        arn = run(ecs, cluster, td)["tasks"][0]["taskArn"]
        time.sleep(5 * 0.1)  # five steps
        t = task(ecs, cluster, arn)
        assert (t["lastStatus"], t["desiredStatus"]) == ("PROVISIONING", "RUNNING")
    finally:
        assert _speed(endpoint, {"paused": False})[1]["paused"] is False
    # What fell due meanwhile happens now: the one-off task runs its command and stops.
    t, seen = wait_task(ecs, cluster, arn)
    assert t["stopCode"] == "EssentialContainerExited" and seen[-1] == "STOPPED"
    assert _speed(endpoint, {"paused": "yes"}) == (400, {"error": "paused must be true or false"})
    assert _speed(endpoint, {})[1]["paused"] is False


def test_run_task_client_token_retry_starts_no_second_task(ecs, cluster):
    td = one_off_td(ecs)["taskDefinitionArn"]
    token = uuid.uuid4().hex
    first = run(ecs, cluster, td, count=2, clientToken=token)["tasks"]
    retry = run(ecs, cluster, td, count=2, clientToken=token)["tasks"]
    assert len(first) == 2 and [t["taskArn"] for t in retry] == [t["taskArn"] for t in first]
    assert set(ecs.list_tasks(cluster=cluster)["taskArns"]) == {t["taskArn"] for t in first}

    # the same token with other parameters is a conflict naming the token's tasks
    with pytest.raises(ecs.exceptions.ConflictException) as err:
        run(ecs, cluster, td, count=1, clientToken=token)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert set(err.value.response["resourceIds"]) == {t["taskArn"] for t in first}

    # a token belongs to its cluster; without one (or with another) every call starts tasks
    other = "c-" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=other)
    elsewhere = run(ecs, other, td, count=2, clientToken=token)["tasks"]
    assert {t["taskArn"] for t in elsewhere}.isdisjoint(t["taskArn"] for t in first)
    assert run(ecs, cluster, td, clientToken=uuid.uuid4().hex)["tasks"][0]["taskArn"] not in {t["taskArn"] for t in first}
    # a one-off task may stop between the two reads (then it is in both): count each once
    running = set(ecs.list_tasks(cluster=cluster)["taskArns"])
    assert len(running | set(ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"])) == 3


def test_run_task_capacity_provider_ebs_volume_and_tags(ecs, cluster):
    td = one_off_td(ecs, volumes=[{"name": "scratch", "configuredAtLaunch": True}],
                    tags=[{"key": "team", "value": "data"}])
    volume = {"name": "scratch", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 10, "volumeType": "gp3"}}
    t = ecs.run_task(cluster=cluster, taskDefinition=td["taskDefinitionArn"], networkConfiguration=NET,
                     capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
                     volumeConfigurations=[volume], propagateTags="TASK_DEFINITION", enableECSManagedTags=True,
                     tags=[{"key": "run", "value": "1"}])["tasks"][0]
    assert (t["capacityProviderName"], t["launchType"]) == ("FARGATE_SPOT", "FARGATE")
    assert t["tags"] == [{"key": "run", "value": "1"}, {"key": "team", "value": "data"},
                         {"key": "aws:ecs:clusterName", "value": cluster}]
    ebs = next(a for a in t["attachments"] if a["type"] == "AmazonElasticBlockStorage")
    assert ebs["status"] == "CREATED" and ebs["details"] == [
        {"name": "roleArn", "value": ROLE}, {"name": "volumeName", "value": "scratch"},
        {"name": "deleteOnTermination", "value": "true"}]
    running = wait_task(ecs, cluster, t["taskArn"], "RUNNING")[0]
    ebs = next(a for a in running["attachments"] if a["type"] == "AmazonElasticBlockStorage")
    assert ebs["status"] == "ATTACHED" and any(d["name"] == "volumeId" and d["value"].startswith("vol-")
                                               for d in ebs["details"])
    assert "tags" not in running  # DescribeTasks shows tags only with include=TAGS
    assert task(ecs, cluster, t["taskArn"], include=["TAGS"])["tags"] == t["tags"]


def test_standalone_task_failing_health_checks_is_not_stopped_for_it(ecs, cluster):
    td = one_off_td(ecs, [{"name": "app", "image": "nginx:1", "memory": 128,
                           "dockerLabels": {"emulator.unhealthy": "true", "emulator.exit-after-seconds": "1.0"}}])
    arn = run(ecs, cluster, td["taskDefinitionArn"])["tasks"][0]["taskArn"]
    t = wait_task(ecs, cluster, arn, "RUNNING")[0]
    assert t["healthStatus"] == "UNHEALTHY"
    time.sleep(0.3)  # a service would have replaced it by now; a standalone task keeps running
    assert task(ecs, cluster, arn)["lastStatus"] == "RUNNING"
    t = wait_task(ecs, cluster, arn)[0]
    assert (t["stopCode"], containers(t)["app"]["exitCode"]) == ("EssentialContainerExited", 0)


# ------------------------------------------------------------------ RegisterTaskDefinition: Fargate task sizes

FARGATE_SIZE = ("No Fargate configuration exists for given values: {} CPU, {} memory. See the Amazon ECS "
                "documentation for the valid values.")


def sized_td(ecs, cpu, memory, compatibilities=("FARGATE",)):
    return ecs.register_task_definition(
        family="size-" + uuid.uuid4().hex[:6], containerDefinitions=[{"name": "app", "image": "nginx:1"}],
        requiresCompatibilities=list(compatibilities), networkMode="awsvpc", cpu=cpu,
        memory=memory)["taskDefinition"]


@pytest.mark.parametrize("cpu, memory, shown", [
    ("256", "4096", ("256", "4096")),
    ("512", "512", ("512", "512")),
    ("1024", "9216", ("1024", "9216")),
    ("8192", "18432", ("8192", "18432")),  # 8 vCPU takes 4 GB steps
    ("16384", "36864", ("16384", "36864")),  # 16 vCPU takes 8 GB steps
    ("300", "1024", ("300", "1024")),  # not a Fargate cpu at all
    ("1 vCPU", "1 GB", ("1024", "1024")),
    (".25 vcpu", "3GB", ("256", "3072")),
])
def test_register_task_definition_refuses_a_fargate_size_not_in_fargates_table(ecs, cpu, memory, shown):
    with pytest.raises(ecs.exceptions.ClientException) as err:
        sized_td(ecs, cpu, memory)
    e = err.value.response
    assert (e["Error"]["Code"], e["Error"]["Message"]) == ("ClientException", FARGATE_SIZE.format(*shown))
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_register_task_definition_takes_fargate_sizes_and_any_size_off_fargate(endpoint, ecs):
    for cpu, memory in (("256", "512"), ("256", "2048"), ("512", "4096"), ("1024", "8192"), ("2048", "16384"),
                        ("4096", "30720"), ("8192", "61440"), ("16384", "122880"), ("0.25 vCPU", "1 GB"),
                        ("2 vCPU", "16GB")):
        assert sized_td(ecs, cpu, memory)["revision"] == 1, (cpu, memory)
    assert sized_td(ecs, "256", "4096", compatibilities=("EC2",))["revision"] == 1
    # CloudFormation's AWS::ECS::TaskDefinition is refused the same way
    cf = client(endpoint, "cloudformation")
    name = "size-" + uuid.uuid4().hex[:8]
    cf.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": {"Task": {
        "Type": "AWS::ECS::TaskDefinition", "Properties": {
            "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc", "Cpu": "256", "Memory": "4096",
            "ContainerDefinitions": [{"Name": "app", "Image": "nginx:1"}]}}}}))
    s = wait_for(lambda: (lambda s: s if not s["StackStatus"].endswith("_IN_PROGRESS") else None)(
        cf.describe_stacks(StackName=name)["Stacks"][0]), 10.0, "stack settled")
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason") or "" for e in cf.describe_stack_events(StackName=name)["StackEvents"]
               if e["LogicalResourceId"] == "Task" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and FARGATE_SIZE.format("256", "4096") in reasons[0]


@pytest.fixture(scope="module")
def validation_tds(ecs):
    """Task definitions for the validation cases: Fargate with volumes, EC2-only bridge, inactive."""
    fargate = one_off_td(ecs, volumes=[{"name": "scratch", "configuredAtLaunch": True}, {"name": "tmp"}])
    bridge = one_off_td(ecs, [{"name": "app", "image": "nginx:1", "memory": 128}], fargate=False)
    inactive = one_off_td(ecs)
    ecs.deregister_task_definition(taskDefinition=inactive["taskDefinitionArn"])
    return {"fargate": fargate["taskDefinitionArn"], "bridge": bridge["taskDefinitionArn"],
            "inactive": inactive["taskDefinitionArn"]}


VALIDATION_CASES = {
    "unknown-cluster": ({"cluster": "no-such-cluster"}, "ClusterNotFoundException", "Cluster not found."),
    "unknown-task-definition": ({"taskDefinition": "no-such-family:1"}, "ClientException", "TaskDefinition not found."),
    "inactive-task-definition": ({"taskDefinition": "inactive"}, "InvalidParameterException", "TaskDefinition is inactive"),
    "launch-type-and-capacity-providers": (
        {"capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]}, "InvalidParameterException",
        "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again."),
    "awsvpc-without-network": ({"networkConfiguration": None}, "InvalidParameterException",
                               "Network Configuration must be provided when networkMode 'awsvpc' is specified."),
    "network-for-bridge-mode": ({"taskDefinition": "bridge", "launchType": "EC2"}, "InvalidParameterException",
                                "Network Configuration is not valid for the given networkMode of this task definition."),
    "unknown-container-override": (
        {"overrides": {"containerOverrides": [{"name": "ap", "command": ["x"]}]}}, "InvalidParameterException",
        "Override for container named ap is not a container in the TaskDefinition."),
    "count-above-10": ({"count": 11}, "InvalidParameterException", "Task count can not be greater than 10"),
    "count-below-1": ({"count": 0}, "InvalidParameterException", "Task count can not be less than 1"),
    "started-by-too-long": ({"startedBy": "s" * 129}, "InvalidParameterException", "startedBy longer than 128"),
    "volume-not-configured-at-launch": (
        {"volumeConfigurations": [{"name": "tmp", "managedEBSVolume": {"roleArn": ROLE}}]},
        "InvalidParameterException", MSG_VOLUME),
    "volume-not-in-task-definition": (
        {"volumeConfigurations": [{"name": "data", "managedEBSVolume": {"roleArn": ROLE}}]},
        "InvalidParameterException", MSG_VOLUME),
    "managed-ebs-volume-without-role": (
        {"volumeConfigurations": [{"name": "scratch", "managedEBSVolume": {"sizeInGiB": 10}}]},
        "InvalidParameterException", "managedEBSVolume.roleArn should not be null or empty."),
    "ec2-without-container-instances": (
        {"taskDefinition": "bridge", "launchType": "EC2", "networkConfiguration": None},
        "InvalidParameterException", "No Container Instances were found in your cluster."),
    "fargate-on-ec2-only-task-definition": (
        {"taskDefinition": "bridge", "networkConfiguration": None}, "InvalidParameterException",
        "Task definition does not support launch_type FARGATE."),
}


@pytest.mark.parametrize("case", list(VALIDATION_CASES))
def test_run_task_validation_errors(endpoint, cluster, validation_tds, case):
    changes, code, message = VALIDATION_CASES[case]
    # botocore's own checks would refuse a request without the required roleArn before sending it
    from botocore.config import Config

    raw = boto3.client("ecs", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing", config=Config(parameter_validation=False))
    kw = {"cluster": cluster, "taskDefinition": validation_tds["fargate"], "launchType": "FARGATE",
          "networkConfiguration": NET, **changes}
    kw["taskDefinition"] = validation_tds.get(kw["taskDefinition"], kw["taskDefinition"])
    kw = {k: v for k, v in kw.items() if v is not None}
    if "capacityProviderStrategy" in changes:
        kw["launchType"] = "FARGATE"
    with pytest.raises(raw.exceptions.ClientError) as err:
        raw.run_task(**kw)
    e = err.value.response
    assert (e["Error"]["Code"], e["Error"]["Message"]) == (code, message)
    assert e["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert raw.list_tasks(cluster=cluster)["taskArns"] == []  # nothing was started


# ------------------------------------------------------------------ UpdateService fields


def test_update_service_keeps_tag_settings_and_volume_configurations(ecs, cluster):
    vol_td = one_off_td(ecs, [{"name": "app", "image": "nginx:1", "memory": 128}],
                        volumes=[{"name": "data", "configuredAtLaunch": True}], family="svc-" + uuid.uuid4().hex[:6])
    td = vol_td["taskDefinitionArn"]
    s = create_service(ecs, cluster, td)
    assert (s["enableECSManagedTags"], s["propagateTags"]) == (False, "NONE")
    first = s["deployments"][0]["id"]
    assert "volumeConfigurations" not in s["deployments"][0]

    # tag settings are stored and shown; they start no deployment (only new tasks get them)
    s = ecs.update_service(cluster=cluster, service="svc", enableECSManagedTags=True, propagateTags="SERVICE")["service"]
    assert (s["enableECSManagedTags"], s["propagateTags"]) == (True, "SERVICE")
    s = describe(ecs, cluster)
    assert (s["enableECSManagedTags"], s["propagateTags"]) == (True, "SERVICE")
    assert [d["id"] for d in s["deployments"]] == [first]
    s = ecs.update_service(cluster=cluster, service="svc", desiredCount=1)["service"]  # not given: unchanged
    assert (s["enableECSManagedTags"], s["propagateTags"]) == (True, "SERVICE")

    # new volume configurations: a new PRIMARY deployment that carries them
    volumes = [{"name": "data", "managedEBSVolume": {"roleArn": ROLE, "sizeInGiB": 20, "volumeType": "gp3"}}]
    s = ecs.update_service(cluster=cluster, service="svc", volumeConfigurations=volumes)["service"]
    primary = s["deployments"][0]
    assert primary["id"] != first and primary["volumeConfigurations"] == volumes
    assert [d["status"] for d in s["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert describe(ecs, cluster)["deployments"][0]["volumeConfigurations"] == volumes
    # the same ones again start nothing; a forced deployment keeps them
    s = ecs.update_service(cluster=cluster, service="svc", volumeConfigurations=volumes)["service"]
    assert s["deployments"][0]["id"] == primary["id"]
    s = ecs.update_service(cluster=cluster, service="svc", forceNewDeployment=True)["service"]
    assert s["deployments"][0]["id"] != primary["id"] and s["deployments"][0]["volumeConfigurations"] == volumes

    # checked against the new task definition, and nothing changes when refused
    before = describe(ecs, cluster)["deployments"]
    plain = one_off_td(ecs, [{"name": "app", "image": "nginx:1", "memory": 128}])["taskDefinitionArn"]
    for kw in ({"volumeConfigurations": [{"name": "logs", "managedEBSVolume": {"roleArn": ROLE}}]},
               {"taskDefinition": plain, "volumeConfigurations": volumes}):
        with pytest.raises(ecs.exceptions.InvalidParameterException, match=MSG_VOLUME):
            ecs.update_service(cluster=cluster, service="svc", **kw)
    after = describe(ecs, cluster)["deployments"]  # older ones may have drained meanwhile
    assert after[0]["id"] == before[0]["id"] and {d["id"] for d in after} <= {d["id"] for d in before}

    # tasks launched after the update carry the managed and propagated tags and the EBS volume
    ecs.tag_resource(resourceArn=s["serviceArn"], tags=[{"key": "app", "value": "web"}])
    newest = ecs.update_service(cluster=cluster, service="svc", forceNewDeployment=True)["service"]["deployments"][0]["id"]
    arn = wait_for(lambda: ecs.list_tasks(cluster=cluster, startedBy=newest)["taskArns"], what="new task")[0]
    t = task(ecs, cluster, arn, include=["TAGS"])
    assert {"key": "app", "value": "web"} in t["tags"]
    assert {"key": "aws:ecs:serviceName", "value": "svc"} in t["tags"]
    assert any(a["type"] == "AmazonElasticBlockStorage" for a in t["attachments"])

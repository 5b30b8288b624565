"""End-to-end tests for ecs_references.py: a task starts only if what its task definition refers to
works, as on Fargate — the execution role (registration), the roles ECS assumes (launch), the
execution role's permissions and the secrets, images and log groups themselves (PENDING)."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest

from emulator.testing import running_emulator
from emulator.test_ecs import ACCOUNT, ECS_TASKS_TRUST, EXEC_POLICY, REGISTRY, client, wait_for

NET = {"awsvpcConfiguration": {"subnets": ["subnet-12345678"], "securityGroups": ["sg-12345678"]}}
RID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RETRIEVAL = ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
             "failed: ")
LOGGER = "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
ASSUME = ("ECS was unable to assume the role '{}' that was provided for this task. Please verify that the role "
          "being passed has the proper trust relationship and permissions and that your IAM user has permissions "
          "to pass this role.")


def _speed(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/_emulator/ecs-speed", data=data, method="POST" if body else "GET")
    return json.loads(urllib.request.urlopen(req).read())


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        assert _speed(url, {"stepSeconds": 0.1})["checkReferences"] is True  # on by default
        yield url


@pytest.fixture(scope="module")
def ecs(endpoint):
    return client(endpoint, "ecs")


@pytest.fixture(scope="module")
def image(endpoint):
    """A private ECR image that exists: <registry>/<repo>:v1 (one layer)."""
    ecr = client(endpoint, "ecr")
    name = "refs-" + uuid.uuid4().hex[:6]
    ecr.create_repository(repositoryName=name)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": "sha256:" + "c" * 64},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1,
                            "digest": "sha256:" + "1" * 64}]}
    ecr.put_image(repositoryName=name, imageTag="v1", imageManifest=json.dumps(manifest))
    return f"{REGISTRY}/{name}:v1"


@pytest.fixture()
def cluster(ecs):
    name = "c-" + uuid.uuid4().hex[:8]
    ecs.create_cluster(clusterName=name)
    return name


def role(endpoint, actions=(), managed=(EXEC_POLICY,), trust=ECS_TASKS_TRUST, resource="*"):
    """A role trusted by `trust`, with the managed policies and an inline Allow of `actions`."""
    iam = client(endpoint, "iam")
    name = "exec-" + uuid.uuid4().hex[:8]
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    for arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    if actions:
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}]}
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(doc))
    return f"arn:aws:iam::{ACCOUNT}:role/{name}", name


def register(ecs, image="nginx:1", exec_role=None, task_role=None, fargate=True, **container):
    cdef = {"name": "app", "image": image, "memory": 128, **container}
    kw = {"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "512"} if fargate else {}
    if exec_role:
        kw["executionRoleArn"] = exec_role
    if task_role:
        kw["taskRoleArn"] = task_role
    return ecs.register_task_definition(family="refs-" + uuid.uuid4().hex[:6], containerDefinitions=[cdef],
                                        **kw)["taskDefinition"]["taskDefinitionArn"]


def run_to_stop(ecs, cluster, td):
    arn = ecs.run_task(cluster=cluster, taskDefinition=td, launchType="FARGATE",
                       networkConfiguration=NET)["tasks"][0]["taskArn"]

    def stopped():
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "STOPPED" else None

    return wait_for(stopped, 8.0, "task STOPPED")


def assert_failed_to_start(t, pattern):
    """Stopped before running with exactly the text `pattern` ({rid}: a request id)."""
    regex = "^" + re.escape(pattern).replace(re.escape("{rid}"), RID) + "$"
    assert t["stopCode"] == "TaskFailedToStart", t
    assert re.match(regex, t["stoppedReason"]), (t["stoppedReason"], pattern)
    assert "startedAt" not in t
    for c in t["containers"]:
        assert c["lastStatus"] == "STOPPED" and "exitCode" not in c, c


def caller(role_name, t):
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{t['taskArn'].rsplit('/', 1)[-1]}"


def denied(who, action, resource):
    return (f"User: {who} is not authorized to perform: {action} on resource: {resource} because no identity-based "
            f"policy allows the {action} action")


# ------------------------------------------------------------------ RegisterTaskDefinition


@pytest.mark.parametrize("case", ["ecr", "awslogs", "secrets"])
def test_registration_refuses_a_task_definition_that_needs_an_execution_role_and_has_none(ecs, image, case):
    container = {
        "ecr": {"image": image},
        "awslogs": {"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/x",
                                                                            "awslogs-region": "us-east-1"}}},
        "secrets": {"secrets": [{"name": "DB", "valueFrom": "db"}]},
    }[case]
    message = {
        "ecr": "Fargate requires task definition to have execution role ARN to support ECR images.",
        "awslogs": "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
        "secrets": "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.",
    }[case]
    with pytest.raises(ecs.exceptions.ClientException) as err:
        register(ecs, fargate=case != "secrets", **container)
    assert err.value.response["Error"]["Message"] == message
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    if case != "secrets":  # an EC2 task definition pulls and logs with the instance's role: accepted
        assert register(ecs, fargate=False, **container).endswith(":1")


def test_cloudformation_task_definition_without_execution_role_fails(endpoint, image):
    cf = client(endpoint, "cloudformation")
    name = "refs-" + uuid.uuid4().hex[:8]
    cf.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": {"Task": {
        "Type": "AWS::ECS::TaskDefinition", "Properties": {
            "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc", "Cpu": "256", "Memory": "512",
            "ContainerDefinitions": [{"Name": "app", "Image": image, "Memory": 128}]}}}}))
    s = wait_for(lambda: (lambda s: s if not s["StackStatus"].endswith("_IN_PROGRESS") else None)(
        cf.describe_stacks(StackName=name)["Stacks"][0]), 10.0, "stack settled")
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason") for e in cf.describe_stack_events(StackName=name)["StackEvents"]
               if e["LogicalResourceId"] == "Task" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and "Fargate requires task definition to have execution role ARN to support ECR images." in reasons[0]


def test_nothing_needs_an_execution_role_public_image_no_secrets_no_awslogs_runs(ecs, cluster):
    t = run_to_stop(ecs, cluster, register(ecs, "public.ecr.aws/nginx/nginx:1.27"))
    assert (t["stopCode"], t["containers"][0]["exitCode"]) == ("EssentialContainerExited", 0)


# ------------------------------------------------------------------ roles ECS assumes (launch)


def test_run_task_refuses_roles_ecs_cannot_assume(endpoint, ecs, cluster, image):
    good, _ = role(endpoint)
    missing = f"arn:aws:iam::{ACCOUNT}:role/no-such-role"
    untrusted, _ = role(endpoint, trust=ECS_TASKS_TRUST.replace("ecs-tasks.amazonaws.com", "lambda.amazonaws.com"))
    for exec_role, task_role, named in ((missing, None, missing), (untrusted, None, untrusted),
                                        (missing, missing, missing), (good, untrusted, untrusted)):
        td = register(ecs, image, exec_role=exec_role, task_role=task_role)
        with pytest.raises(ecs.exceptions.ClientException) as err:
            ecs.run_task(cluster=cluster, taskDefinition=td, launchType="FARGATE", networkConfiguration=NET)
        assert err.value.response["Error"]["Message"] == ASSUME.format(named)
        assert ecs.list_tasks(cluster=cluster)["taskArns"] == []  # nothing was started


def test_service_cannot_launch_with_a_role_ecs_cannot_assume_and_the_breaker_trips(endpoint, ecs, cluster, image):
    missing = f"arn:aws:iam::{ACCOUNT}:role/gone-{uuid.uuid4().hex[:6]}"
    td = register(ecs, image, exec_role=missing)
    ecs.create_service(cluster=cluster, serviceName="svc", taskDefinition=td, desiredCount=1, launchType="FARGATE",
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}})
    svc = wait_for(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] == "FAILED" else None)(
        ecs.describe_services(cluster=cluster, services=["svc"])["services"][0]), 8.0, "breaker")
    assert svc["deployments"][0]["failedTasks"] >= 3
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == []  # no task was created
    assert f"(service svc) failed to launch a task with (error {ASSUME.format(missing)})." in [
        e["message"] for e in svc["events"]]


# ------------------------------------------------------------------ PENDING: permissions and existence


def test_execution_role_without_ecr_token_permission(endpoint, ecs, cluster, image):
    arn, name = role(endpoint, managed=())
    t = run_to_stop(ecs, cluster, register(ecs, image, exec_role=arn))
    assert_failed_to_start(t, RETRIEVAL + "unable to retrieve ecr registry auth: service call has been retried 1 "
                           "time(s): operation error ECR: GetAuthorizationToken, https response error StatusCode: 400, "
                           "RequestID: {rid}, api error AccessDeniedException: "
                           + denied(caller(name, t), "ecr:GetAuthorizationToken", "*"))
    assert "reason" not in t["containers"][0]


def test_execution_role_that_may_not_read_the_ssm_parameter(endpoint, ecs, cluster):
    arn, name = role(endpoint)
    param = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/prod/db-{uuid.uuid4().hex[:6]}"
    client(endpoint, "ssm").put_parameter(Name=param.split(":parameter")[1], Value="x", Type="SecureString")
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn, secrets=[{"name": "DB", "valueFrom": param}]))
    assert_failed_to_start(t, RETRIEVAL + "unable to retrieve secrets from ssm: service call has been retried 1 "
                           "time(s): operation error SSM: GetParameters, https response error StatusCode: 400, "
                           "RequestID: {rid}, api error AccessDeniedException: "
                           + denied(caller(name, t), "ssm:GetParameters", param))


def test_ssm_parameter_that_does_not_exist(endpoint, ecs, cluster):
    arn, _ = role(endpoint, actions=["ssm:GetParameters"])
    missing = "/prod/missing-" + uuid.uuid4().hex[:6]
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn, secrets=[{"name": "DB", "valueFrom": missing}]))
    assert_failed_to_start(t, RETRIEVAL + "unable to retrieve secrets from ssm: service call has been retried 1 "
                           f"time(s): invalid ssm parameters: {missing}")


def test_execution_role_that_may_not_read_the_secret(endpoint, ecs, cluster):
    arn, name = role(endpoint)
    secret = client(endpoint, "secretsmanager").create_secret(
        Name="db-" + uuid.uuid4().hex[:6], SecretString='{"password": "p"}')["ARN"]
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn, secrets=[{"name": "DB", "valueFrom": f"{secret}:password::"}]))
    assert_failed_to_start(t, RETRIEVAL + "unable to retrieve secret from asm: service call has been retried 1 "
                           f"time(s): failed to fetch secret {secret} from secrets manager: operation error Secrets "
                           "Manager: GetSecretValue, https response error StatusCode: 400, RequestID: {rid}, api error "
                           "AccessDeniedException: " + denied(caller(name, t), "secretsmanager:GetSecretValue", secret))


def test_secret_that_does_not_exist(endpoint, ecs, cluster):
    arn, _ = role(endpoint, actions=["secretsmanager:GetSecretValue"])
    secret = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:gone-AbCdEf"
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn, secrets=[{"name": "DB", "valueFrom": secret}]))
    assert_failed_to_start(t, RETRIEVAL + "unable to retrieve secret from asm: service call has been retried 1 "
                           f"time(s): failed to fetch secret {secret} from secrets manager: operation error Secrets "
                           "Manager: GetSecretValue, https response error StatusCode: 400, RequestID: {rid}, "
                           "ResourceNotFoundException: Secrets Manager can't find the specified secret.")


def test_execution_role_that_may_not_get_the_image_manifest_or_layers(endpoint, ecs, cluster, image):
    token_only, name = role(endpoint, actions=["ecr:GetAuthorizationToken"], managed=())
    t = run_to_stop(ecs, cluster, register(ecs, image, exec_role=token_only))
    registry, ref = image.split("/", 1)[0], image.rsplit(":", 1)[1]
    expected = (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
                f"{image}: pulling from host {registry} failed with status code [manifests {ref}]: 403 Forbidden")
    assert_failed_to_start(t, expected)
    assert t["containers"][0]["reason"] == expected

    no_layers, _ = role(endpoint, actions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage"], managed=())
    t = run_to_stop(ecs, cluster, register(ecs, image, exec_role=no_layers))
    repo = image.split("/", 1)[1].rsplit(":", 1)[0]
    assert_failed_to_start(t, "CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: "
                           f"httpReadSeeker: failed open: unexpected status code https://{registry}/v2/{repo}/blobs/"
                           f"sha256:{'1' * 64}: 403 Forbidden")


def test_image_missing_from_ecr_is_checked_after_the_permissions(endpoint, ecs, cluster, image):
    arn, _ = role(endpoint)
    missing = image.rsplit(":", 1)[0] + ":never-pushed"
    t = run_to_stop(ecs, cluster, register(ecs, missing, exec_role=arn))
    assert_failed_to_start(t, f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to "
                           f"resolve ref {missing}: not found")


def awslogs(group, **extra):
    return {"logDriver": "awslogs", "options": {"awslogs-group": group, "awslogs-region": "us-east-1",
                                                "awslogs-stream-prefix": "web", **extra}}


def test_log_group_that_does_not_exist(endpoint, ecs, cluster):
    arn, _ = role(endpoint)
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn, logConfiguration=awslogs("/ecs/missing")))
    assert_failed_to_start(t, LOGGER + "failed to create Cloudwatch log stream: operation error CloudWatch Logs: "
                           "CreateLogStream, https response error StatusCode: 400, RequestID: {rid}, "
                           "ResourceNotFoundException: The specified log group does not exist. : exit status 1")


def test_execution_role_that_may_not_create_the_log_stream_or_group(endpoint, ecs, cluster, image):
    arn, name = role(endpoint, actions=["ecr:GetAuthorizationToken", "ecr:BatchGetImage",
                                        "ecr:GetDownloadUrlForLayer"], managed=())
    group = "/ecs/refs-" + uuid.uuid4().hex[:6]
    client(endpoint, "logs").create_log_group(logGroupName=group)
    t = run_to_stop(ecs, cluster, register(ecs, image, exec_role=arn, logConfiguration=awslogs(group)))
    task_id = t["taskArn"].rsplit("/", 1)[-1]
    stream_arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}:log-stream:web/app/{task_id}"
    assert_failed_to_start(t, LOGGER + "failed to create Cloudwatch log stream: operation error CloudWatch Logs: "
                           "CreateLogStream, https response error StatusCode: 400, RequestID: {rid}, api error "
                           "AccessDeniedException: " + denied(caller(name, t), "logs:CreateLogStream", stream_arn)
                           + " : exit status 1")

    # awslogs-create-group: the group is created first, which the managed policy does not allow.
    arn, name = role(endpoint)
    new_group = "/ecs/created-" + uuid.uuid4().hex[:6]
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn,
                                           logConfiguration=awslogs(new_group, **{"awslogs-create-group": "true"})))
    assert_failed_to_start(t, LOGGER + "failed to create Cloudwatch log group: operation error CloudWatch Logs: "
                           "CreateLogGroup, https response error StatusCode: 400, RequestID: {rid}, api error "
                           "AccessDeniedException: " + denied(
                               caller(name, t), "logs:CreateLogGroup",
                               f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{new_group}:log-stream:")
                           + " : exit status 1")
    assert client(endpoint, "logs").describe_log_groups(logGroupNamePrefix=new_group)["logGroups"] == []


def test_fully_set_up_task_runs_and_gets_its_log_stream(endpoint, ecs, cluster, image):
    ssm, sm, logs = client(endpoint, "ssm"), client(endpoint, "secretsmanager"), client(endpoint, "logs")
    param = "/web/api-key-" + uuid.uuid4().hex[:6]
    ssm.put_parameter(Name=param, Value="k", Type="SecureString")
    secret = sm.create_secret(Name="web-db-" + uuid.uuid4().hex[:6], SecretString='{"password": "p"}')["ARN"]
    group = "/ecs/web-" + uuid.uuid4().hex[:6]
    logs.create_log_group(logGroupName=group)
    arn, _ = role(endpoint, actions=["ssm:GetParameters", "secretsmanager:GetSecretValue"])
    secrets = [{"name": "API_KEY", "valueFrom": param}, {"name": "DB", "valueFrom": f"{secret}:password::"}]
    t = run_to_stop(ecs, cluster, register(ecs, image, exec_role=arn, task_role=arn, secrets=secrets,
                                           logConfiguration=awslogs(group)))
    assert (t["stopCode"], t["containers"][0]["exitCode"]) == ("EssentialContainerExited", 0)
    assert "startedAt" in t
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]]
    assert streams == [f"web/app/{t['taskArn'].rsplit('/', 1)[-1]}"]

    # awslogs-create-group with a role allowed to: the driver creates the group and the stream.
    arn, _ = role(endpoint, actions=["logs:CreateLogGroup"])
    new_group = "/ecs/created-" + uuid.uuid4().hex[:6]
    t = run_to_stop(ecs, cluster, register(ecs, exec_role=arn,
                                           logConfiguration=awslogs(new_group, **{"awslogs-create-group": "true"})))
    assert t["stopCode"] == "EssentialContainerExited"
    assert len(logs.describe_log_streams(logGroupName=new_group)["logStreams"]) == 1


def test_service_tasks_that_fail_to_start_count_for_the_circuit_breaker(endpoint, ecs, cluster):
    arn, _ = role(endpoint)
    td = register(ecs, exec_role=arn, logConfiguration=awslogs("/ecs/never-created"))
    ecs.create_service(cluster=cluster, serviceName="svc", taskDefinition=td, desiredCount=1, launchType="FARGATE",
                       deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}})
    svc = wait_for(lambda: (lambda s: s if s["deployments"][0]["rolloutState"] == "FAILED" else None)(
        ecs.describe_services(cluster=cluster, services=["svc"])["services"][0]), 10.0, "breaker")
    assert svc["deployments"][0]["failedTasks"] >= 3
    stopped = ecs.describe_tasks(cluster=cluster, tasks=ecs.list_tasks(
        cluster=cluster, serviceName="svc", desiredStatus="STOPPED")["taskArns"])["tasks"]
    reason = (LOGGER + "failed to create Cloudwatch log stream: operation error CloudWatch Logs: CreateLogStream, "
              "https response error StatusCode: 400, RequestID: {rid}, ResourceNotFoundException: The specified log "
              "group does not exist. : exit status 1")
    assert stopped
    for t in stopped:
        assert_failed_to_start(t, reason)
    events = [e["message"] for e in svc["events"]]
    assert any(re.match("^" + re.escape("(service svc) was unable to place a task. Reason: " + reason + ".").replace(
        re.escape("{rid}"), RID) + "$", m) for m in events), events


def test_check_references_off_lets_tests_that_do_not_care_run(endpoint, ecs, cluster, image):
    assert _speed(endpoint, {"checkReferences": False})["checkReferences"] is False
    try:
        td = register(ecs, image, logConfiguration=awslogs("/ecs/not-there"))  # no role: not refused now
        t = run_to_stop(ecs, cluster, td)
        assert (t["stopCode"], t["containers"][0]["exitCode"]) == ("EssentialContainerExited", 0)
    finally:
        assert _speed(endpoint, {"checkReferences": True})["checkReferences"] is True
    assert _speed(endpoint)["checkReferences"] is True


def test_the_examples_ecs_template_creates_what_its_tasks_need_and_runs(endpoint, ecs, image):
    """examples/ecs/template.yml makes its own execution role (the managed policy) and log group."""
    from pathlib import Path

    ec2, cf, logs = client(endpoint, "ec2"), client(endpoint, "cloudformation"), client(endpoint, "logs")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks-" + uuid.uuid4().hex[:6], Description="t", VpcId=vpc)["GroupId"]
    env = "ex" + uuid.uuid4().hex[:6]
    template = (Path(__file__).resolve().parents[1] / "examples" / "ecs" / "template.yml").read_text()
    cf.create_stack(StackName=env, TemplateBody=template, Capabilities=["CAPABILITY_IAM"], Parameters=[
        {"ParameterKey": "ImageUri", "ParameterValue": image},
        {"ParameterKey": "EnvironmentName", "ParameterValue": env},
        {"ParameterKey": "PublicSubnets", "ParameterValue": subnet},
        {"ParameterKey": "TaskSecurityGroupId", "ParameterValue": group}])
    s = wait_for(lambda: (lambda s: s if not s["StackStatus"].endswith("_IN_PROGRESS") else None)(
        cf.describe_stacks(StackName=env)["Stacks"][0]), 20.0, "stack settled")
    assert s["StackStatus"] == "CREATE_COMPLETE", s.get("StackStatusReason")
    out = {o["OutputKey"]: o["OutputValue"] for o in s["Outputs"]}
    running = ecs.list_tasks(cluster=out["ClusterName"], serviceName=out["ServiceName"])["taskArns"]
    assert len(running) == 1
    streams = [x["logStreamName"] for x in logs.describe_log_streams(logGroupName=out["LogGroupName"])["logStreams"]]
    assert streams == [f"app/app/{running[0].rsplit('/', 1)[-1]}"]

"""End-to-end tests for a deploy tool's read-only checks (emulator/iam.py, access.py,
secretsmanager.py): IAM's policy simulator, access denial on demand, and the read calls the
tool makes (GetRole, DescribeParameters, DescribeSecret, DescribeLogGroups) — launcher.py over
real HTTP with boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

from emulator.testing import client, running_emulator
from emulator.test_emulator import change_set, err, wait_status

ACCOUNT, REGION = "123456789012", "us-east-1"
EXEC_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}
REPO = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/web"
GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/ecs/web"
STREAMS = f"{GROUP}:log-stream:*"


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        yield url



@pytest.fixture(scope="module")
def iam(endpoint):
    return client(endpoint, "iam")


def control(endpoint, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(endpoint + path, data=data, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture()
def deny(endpoint):
    """Set the denied actions for one test; always allowed again afterwards."""
    def set_(*actions):
        assert control(endpoint, "/_emulator/deny", {"actions": list(actions)}) == (200, {"actions": list(actions)})
    yield set_
    set_()


def raw_bodies(c):
    """The raw HTTP answers a client receives (status, body), newest last."""
    seen = []
    c.meta.events.register("before-parse", lambda response_dict, **_: seen.append(
        (response_dict["status_code"], response_dict["body"])))
    return seen


def role(iam, policies=None, managed=()):
    name = "r-" + uuid.uuid4().hex[:8]
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    for pname, statements in (policies or {}).items():
        iam.put_role_policy(RoleName=name, PolicyName=pname,
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    for policy_arn in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return name, arn


def decisions(iam, arn, actions, resources=None, **kw):
    if resources is not None:
        kw["ResourceArns"] = resources
    out = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, **kw)
    return {r["EvalActionName"]: r for r in out["EvaluationResults"]}


# --------------------------------------------------------------------------- simulator


def test_simulate_allowed_implicit_and_explicit_deny(iam):
    name, arn = role(iam, {"pull": [
        {"Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": REPO},
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
    ], "guard": [
        {"Effect": "Deny", "Action": "ecr:GetDownloadUrlForLayer", "Resource": "*"},
    ]})
    r = decisions(iam, arn, ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:PutImage"], [REPO])
    assert r["ecr:BatchGetImage"]["EvalDecision"] == "allowed"
    assert r["ecr:BatchGetImage"]["MatchedStatements"] == [
        {"SourcePolicyId": f"role_{name}_pull", "SourcePolicyType": "IAM Policy"}]
    # Explicit deny wins over the allow, and only the deny statement is shown.
    assert r["ecr:GetDownloadUrlForLayer"]["EvalDecision"] == "explicitDeny"
    assert r["ecr:GetDownloadUrlForLayer"]["MatchedStatements"] == [
        {"SourcePolicyId": f"role_{name}_guard", "SourcePolicyType": "IAM Policy"}]
    assert r["ecr:PutImage"]["EvalDecision"] == "implicitDeny"
    assert r["ecr:PutImage"]["MatchedStatements"] == []
    # Without ResourceArns the simulated resource is "*": a statement on the repository ARN
    # does not cover it, one on "*" does.
    r = decisions(iam, arn, ["ecr:BatchGetImage", "ecr:GetAuthorizationToken"])
    assert r["ecr:BatchGetImage"]["EvalResourceName"] == "*"
    assert r["ecr:BatchGetImage"]["EvalDecision"] == "implicitDeny"
    assert r["ecr:GetAuthorizationToken"]["EvalDecision"] == "allowed"
    assert "ResourceSpecificResults" not in r["ecr:GetAuthorizationToken"]
    assert "EvalDecisionDetails" not in r["ecr:GetAuthorizationToken"]


def test_simulate_wildcards_in_actions_and_resources(iam):
    _, arn = role(iam, {"logs": [
        {"Effect": "Allow", "Action": ["logs:Put*", "LOGS:createlogstrea?"], "Resource": f"{GROUP}:*"},
        {"Effect": "Allow", "Action": "ecr:*", "Resource": f"arn:aws:ecr:*:{ACCOUNT}:repository/we?"},
    ]})
    r = decisions(iam, arn, ["logs:PutLogEvents", "logs:CreateLogStream", "logs:CreateLogGroup"], [STREAMS])
    assert {a: v["EvalDecision"] for a, v in r.items()} == {
        "logs:PutLogEvents": "allowed", "logs:CreateLogStream": "allowed", "logs:CreateLogGroup": "implicitDeny"}
    # EvalActionName is the name as asked; action matching ignores case.
    assert decisions(iam, arn, ["logs:putlogevents"], [STREAMS])["logs:putlogevents"]["EvalDecision"] == "allowed"
    # `log-group:<name>:*` does not cover the log group's own ARN (resources match case-sensitively).
    assert decisions(iam, arn, ["logs:PutLogEvents"], [GROUP])["logs:PutLogEvents"]["EvalDecision"] == "implicitDeny"
    assert decisions(iam, arn, ["logs:PutLogEvents"], [STREAMS.replace("/ecs/web", "/ECS/web")])[
        "logs:PutLogEvents"]["EvalDecision"] == "implicitDeny"
    assert decisions(iam, arn, ["ecr:BatchGetImage"], [REPO])["ecr:BatchGetImage"]["EvalDecision"] == "allowed"
    assert decisions(iam, arn, ["ecr:BatchGetImage"], [REPO + "2"])["ecr:BatchGetImage"]["EvalDecision"] == \
        "implicitDeny"


def test_simulate_not_action_and_not_resource(iam):
    name, arn = role(iam, {"broad": [
        {"Effect": "Allow", "NotAction": ["iam:*", "kms:*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
         "NotResource": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/*"},
    ]})
    app = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app/db-AbCdEf"
    other = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:other-AbCdEf"
    assert decisions(iam, arn, ["ssm:GetParameters"])["ssm:GetParameters"]["EvalDecision"] == "allowed"
    assert decisions(iam, arn, ["kms:Decrypt"])["kms:Decrypt"]["EvalDecision"] == "implicitDeny"
    assert decisions(iam, arn, ["iam:GetRole"])["iam:GetRole"]["EvalDecision"] == "implicitDeny"
    got = decisions(iam, arn, ["secretsmanager:GetSecretValue"], [app, other])["secretsmanager:GetSecretValue"]
    assert [(x["EvalResourceName"], x["EvalResourceDecision"]) for x in got["ResourceSpecificResults"]] == [
        (app, "allowed"), (other, "explicitDeny")]
    assert got["ResourceSpecificResults"][1]["MatchedStatements"] == [
        {"SourcePolicyId": f"role_{name}_broad", "SourcePolicyType": "IAM Policy"}]


def test_simulate_conditions_and_missing_context_values(iam):
    key = "aws:ResourceTag/env"
    _, arn = role(iam, {"tagged": [
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*", "Condition": {"StringEquals": {key: "prod"}}},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}}},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]})
    # A condition on a key the simulation was not given: the statement does not apply, the key
    # is reported (top level without ResourceArns, per resource with them).
    r = decisions(iam, arn, ["ssm:GetParameters", "kms:Decrypt", "secretsmanager:GetSecretValue"])
    assert r["ssm:GetParameters"]["EvalDecision"] == "implicitDeny"
    assert r["ssm:GetParameters"]["MissingContextValues"] == [key]
    assert r["kms:Decrypt"]["EvalDecision"] == "allowed"  # ...IfExists holds without the key
    assert r["kms:Decrypt"]["MissingContextValues"] == []
    assert r["secretsmanager:GetSecretValue"]["EvalDecision"] == "allowed"  # the Deny's key is missing
    assert r["secretsmanager:GetSecretValue"]["MissingContextValues"] == ["aws:SecureTransport"]
    param = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/db"
    r = decisions(iam, arn, ["ssm:GetParameters"], [param])["ssm:GetParameters"]
    assert r["ResourceSpecificResults"][0]["MissingContextValues"] == [key]

    def ctx(name, values, kind="string"):
        return [{"ContextKeyName": name, "ContextKeyValues": values, "ContextKeyType": kind}]

    assert decisions(iam, arn, ["ssm:GetParameters"], ContextEntries=ctx("AWS:resourcetag/env", ["prod"]))[
        "ssm:GetParameters"] | {"MatchedStatements": None} == {
        "EvalActionName": "ssm:GetParameters", "EvalResourceName": "*", "EvalDecision": "allowed",
        "MatchedStatements": None, "MissingContextValues": []}
    wrong = decisions(iam, arn, ["ssm:GetParameters"], ContextEntries=ctx(key, ["dev"]))["ssm:GetParameters"]
    assert (wrong["EvalDecision"], wrong["MissingContextValues"]) == ("implicitDeny", [])
    insecure = decisions(iam, arn, ["secretsmanager:GetSecretValue"],
                         ContextEntries=ctx("aws:SecureTransport", ["false"], "boolean"))
    assert insecure["secretsmanager:GetSecretValue"]["EvalDecision"] == "explicitDeny"
    via_other = decisions(iam, arn, ["kms:Decrypt"], ContextEntries=ctx("kms:ViaService", ["s3.amazonaws.com"]))
    assert via_other["kms:Decrypt"]["EvalDecision"] == "implicitDeny"


def test_aws_managed_execution_role_policy(iam):
    name, arn = role(iam, managed=[EXEC_POLICY])
    policy = iam.get_policy(PolicyArn=EXEC_POLICY)["Policy"]
    assert (policy["PolicyName"], policy["Path"]) == ("AmazonECSTaskExecutionRolePolicy", "/service-role/")
    doc = iam.get_policy_version(PolicyArn=EXEC_POLICY, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert doc["Statement"] == [{"Effect": "Allow", "Resource": "*", "Action": [
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage", "logs:CreateLogStream", "logs:PutLogEvents"]}]
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == [
        {"PolicyName": "AmazonECSTaskExecutionRolePolicy", "PolicyArn": EXEC_POLICY}]
    r = decisions(iam, arn, ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], [REPO])
    r |= decisions(iam, arn, ["logs:CreateLogStream", "logs:PutLogEvents", "logs:CreateLogGroup"], [STREAMS])
    r |= decisions(iam, arn, ["ecr:GetAuthorizationToken", "ssm:GetParameters", "secretsmanager:GetSecretValue"])
    assert {a: v["EvalDecision"] for a, v in r.items()} == {
        "ecr:BatchGetImage": "allowed", "ecr:GetDownloadUrlForLayer": "allowed", "logs:CreateLogStream": "allowed",
        "logs:PutLogEvents": "allowed", "logs:CreateLogGroup": "implicitDeny", "ecr:GetAuthorizationToken": "allowed",
        "ssm:GetParameters": "implicitDeny", "secretsmanager:GetSecretValue": "implicitDeny"}
    assert r["ecr:BatchGetImage"]["MatchedStatements"] == [
        {"SourcePolicyId": "AmazonECSTaskExecutionRolePolicy", "SourcePolicyType": "IAM Policy"}]


def test_one_result_per_action_with_resource_specific_results(iam):
    _, arn = role(iam, {"params": [
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/*"},
    ]})
    ok = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/db"
    other = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/db"
    one = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ssm:GetParameters"], ResourceArns=[ok])
    (r,) = one["EvaluationResults"]
    assert (r["EvalResourceName"], r["EvalDecision"], r["EvalDecisionDetails"]) == (ok, "allowed", {})
    assert r["ResourceSpecificResults"] == [{"EvalResourceName": ok, "EvalResourceDecision": "allowed",
                                             "MatchedStatements": r["MatchedStatements"], "MissingContextValues": []}]
    both = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ssm:GetParameters"],
                                         ResourceArns=[ok, other])
    (r,) = both["EvaluationResults"]  # one result per action, the most restrictive decision on top
    assert (r["EvalResourceName"], r["EvalDecision"], r["MatchedStatements"]) == ("*", "implicitDeny", [])
    assert [(x["EvalResourceName"], x["EvalResourceDecision"]) for x in r["ResourceSpecificResults"]] == [
        (ok, "allowed"), (other, "implicitDeny")]
    # ResourceArns ["*"] is the same as none.
    star = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ssm:GetParameters"], ResourceArns=["*"])
    assert "ResourceSpecificResults" not in star["EvaluationResults"][0]


def test_user_with_groups_and_policy_input_list(iam):
    user, group = "u-" + uuid.uuid4().hex[:6], "g-" + uuid.uuid4().hex[:6]
    iam.create_user(UserName=user)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_group_policy(GroupName=group, PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:Describe*", "Resource": "*"}]}))
    iam.put_user_policy(UserName=user, PolicyName="logs", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "logs:Describe*", "Resource": "*"}}))
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    extra = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]})
    r = decisions(iam, arn, ["ssm:DescribeParameters", "logs:DescribeLogGroups", "secretsmanager:DescribeSecret"],
                  PolicyInputList=[extra])
    assert {a: (v["EvalDecision"], [m["SourcePolicyId"] for m in v["MatchedStatements"]]) for a, v in r.items()} == {
        "ssm:DescribeParameters": ("allowed", [f"group_{group}_read"]),
        "logs:DescribeLogGroups": ("allowed", [f"user_{user}_logs"]),
        "secretsmanager:DescribeSecret": ("allowed", ["PolicyInputList.1"]),
    }
    group_r = decisions(iam, f"arn:aws:iam::{ACCOUNT}:group/{group}", ["logs:DescribeLogGroups",
                                                                      "ssm:DescribeParameters"])
    assert {a: v["EvalDecision"] for a, v in group_r.items()} == {
        "logs:DescribeLogGroups": "implicitDeny", "ssm:DescribeParameters": "allowed"}


def test_simulate_errors(iam):
    seen = raw_bodies(iam)
    with pytest.raises(ClientError) as exc:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:role/nope", ActionNames=["s3:GetObject"])
    assert err(exc) == ("NoSuchEntity", "The role with name nope cannot be found.", 404)
    assert b"<Type>Sender</Type><Code>NoSuchEntity</Code>" in seen[-1][1]
    with pytest.raises(ClientError) as exc:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/nobody", ActionNames=["s3:GetObject"])
    assert err(exc)[:2] == ("NoSuchEntity", "The user with name nobody cannot be found.")
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci"
    with pytest.raises(ClientError) as exc:
        iam.simulate_principal_policy(PolicySourceArn=session, ActionNames=["s3:GetObject"])
    assert err(exc) == ("InvalidInput", f"Invalid Entity Arn: {session} does not clearly define entity type and name.",
                        400)


def test_simulate_paging(iam):
    _, arn = role(iam, {"p": [{"Effect": "Allow", "Action": "ecs:*", "Resource": "*"}]})
    actions = ["ecs:RegisterTaskDefinition", "ecs:DescribeServices", "ecs:UpdateService"]
    first = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2)
    assert [r["EvalActionName"] for r in first["EvaluationResults"]] == actions[:2]
    assert first["IsTruncated"] is True
    rest = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=actions, MaxItems=2, Marker=first["Marker"])
    assert [r["EvalActionName"] for r in rest["EvaluationResults"]] == actions[2:]
    assert rest["IsTruncated"] is False and "Marker" not in rest
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=arn, ActionNames=actions, PaginationConfig={"PageSize": 1})
    assert [r["EvalDecision"] for p in pages for r in p["EvaluationResults"]] == ["allowed"] * 3


def test_cloudformation_role_managed_policy_arns_and_update(endpoint, iam):
    cf = client(endpoint, "cloudformation")
    stack = "iam-" + uuid.uuid4().hex[:8]

    def template(policies, managed):
        props = {"AssumeRolePolicyDocument": TRUST, "ManagedPolicyArns": managed}
        if policies:
            props["Policies"] = policies
        return {"Resources": {"ExecutionRole": {"Type": "AWS::IAM::Role", "Properties": props}},
                "Outputs": {"Arn": {"Value": {"Fn::GetAtt": ["ExecutionRole", "Arn"]}}}}

    def deploy(name, body, cs_type="CREATE"):
        cs = change_set(cf, name, body, cs_type=cs_type, Capabilities=["CAPABILITY_IAM"])
        cf.execute_change_set(StackName=name, ChangeSetName=cs)
        return wait_status(cf, name)

    secrets = [{"PolicyName": "secrets", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": "*"}]}}]
    s = deploy(stack, template(secrets, [EXEC_POLICY]))
    assert s["StackStatus"] == "CREATE_COMPLETE", s
    arn = s["Outputs"][0]["OutputValue"]
    r = decisions(iam, arn, ["ecr:BatchGetImage", "ssm:GetParameters"])
    assert {a: v["EvalDecision"] for a, v in r.items()} == {"ecr:BatchGetImage": "allowed",
                                                            "ssm:GetParameters": "allowed"}
    name = arn.rsplit("/", 1)[1]
    assert name.startswith(f"{stack}-ExecutionRole-")
    assert iam.get_role_policy(RoleName=name, PolicyName="secrets")["PolicyDocument"]["Statement"][0]["Action"] == \
        "ssm:GetParameters"
    # An update drops the template's managed policy and inline policy in place (same role).
    s = deploy(stack, template(None, []), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE", s
    assert s["Outputs"][0]["OutputValue"] == arn
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == []
    r = decisions(iam, arn, ["ecr:BatchGetImage", "ssm:GetParameters"])
    assert {v["EvalDecision"] for v in r.values()} == {"implicitDeny"}
    # An unknown managed policy fails the update before the role changes; the stack rolls back.
    s = deploy(stack, template(secrets, [EXEC_POLICY, "arn:aws:iam::aws:policy/NoSuchPolicy"]), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE", s
    assert iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == []
    # Deleting the stack detaches what the template attached and deletes the role.
    s = deploy(stack, template(None, [EXEC_POLICY]), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE", s
    cf.delete_stack(StackName=stack)
    assert wait_status(cf, s["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName=name)
    assert err(exc)[0] == "NoSuchEntity"
    # A managed policy that does not exist fails the role, as on AWS.
    bad = "bad-" + uuid.uuid4().hex[:8]
    s = deploy(bad, template(None, ["arn:aws:iam::aws:policy/NoSuchPolicy"]))
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason", "") for e in cf.describe_stack_events(StackName=bad)["StackEvents"]
               if e["LogicalResourceId"] == "ExecutionRole" and e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and "Policy arn:aws:iam::aws:policy/NoSuchPolicy does not exist or is not attachable." in reasons[0]
    assert not [r for r in iam.list_roles(MaxItems=1000)["Roles"] if r["RoleName"].startswith(bad)]


# --------------------------------------------------------------------------- access denial


def test_deny_query_protocol_iam(endpoint, iam, deny):
    _, arn = role(iam)
    seen = raw_bodies(iam)
    deny("iam:SimulatePrincipalPolicy", "iam:GetRole")
    assert control(endpoint, "/_emulator/deny") == (200, {"actions": ["iam:SimulatePrincipalPolicy", "iam:GetRole"]})
    with pytest.raises(ClientError) as exc:
        iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ecr:BatchGetImage"])
    assert err(exc) == ("AccessDenied", f"User: arn:aws:iam::{ACCOUNT}:user/moto is not authorized to perform: "
                        f"iam:SimulatePrincipalPolicy on resource: {arn} because no identity-based policy allows "
                        "the iam:SimulatePrincipalPolicy action", 403)
    assert seen[-1][1].startswith(b'<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
                                  b"<Type>Sender</Type><Code>AccessDenied</Code><Message>User: ")
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName=arn.rsplit("/", 1)[1])
    assert f"iam:GetRole on resource: role {arn.rsplit('/', 1)[1]} because" in err(exc)[1]
    assert iam.list_roles()["Roles"]  # other actions still answer
    deny()
    assert iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["ecr:BatchGetImage"])["EvaluationResults"]


def test_deny_json_protocols(endpoint, deny):
    ssm, sm, logs, ecs = (client(endpoint, s) for s in ("ssm", "secretsmanager", "logs", "ecs"))
    seen = raw_bodies(ssm)
    deny("ssm:DescribeParameters", "ssm:PutParameter", "SecretsManager:describe*", "logs:DescribeLogGroups",
         "ecs:RegisterTaskDefinition")
    user = f"User: arn:aws:iam::{ACCOUNT}:user/moto is not authorized to perform:"
    with pytest.raises(ClientError) as exc:
        ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": ["/app/db"]}])
    assert err(exc) == ("AccessDeniedException", f"{user} ssm:DescribeParameters on resource: "
                        f"arn:aws:ssm:{REGION}:{ACCOUNT}:* because no identity-based policy allows the "
                        "ssm:DescribeParameters action", 400)
    assert json.loads(seen[-1][1])["__type"] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        sm.describe_secret(SecretId="app/db")
    assert err(exc) == ("AccessDeniedException", f"{user} secretsmanager:DescribeSecret on resource: app/db because "
                        "no identity-based policy allows the secretsmanager:DescribeSecret action", 400)
    with pytest.raises(ClientError) as exc:
        logs.describe_log_groups(logGroupNamePrefix="/ecs/web")
    assert err(exc)[1] == (f"{user} logs:DescribeLogGroups on resource: arn:aws:logs:{REGION}:{ACCOUNT}:log-group::"
                           "log-stream: because no identity-based policy allows the logs:DescribeLogGroups action")
    with pytest.raises(ClientError) as exc:
        ecs.register_task_definition(family="web", containerDefinitions=[{"name": "web", "image": "nginx"}])
    assert err(exc)[::2] == ("AccessDeniedException", 400)
    # A refused call never reaches moto.
    with pytest.raises(ClientError):
        ssm.put_parameter(Name="/denied/p", Value="v", Type="String")
    deny()
    assert ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": ["/denied/p"]}])["Parameters"] == []
    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == []
    # Refused calls are in the request log like any other.
    _, log = control(endpoint, "/_emulator/requests")
    assert {"service": "ssm", "action": "PutParameter"} in [{k: e[k] for k in ("service", "action")} for e in log]


def test_deny_endpoint_refuses_bad_input(endpoint):
    assert control(endpoint, "/_emulator/deny", {"actions": "ssm:DescribeParameters"})[0] == 400
    assert control(endpoint, "/_emulator/deny", {"actions": ["DescribeParameters"]})[0] == 400
    assert control(endpoint, "/_emulator/deny", {})[0] == 400
    assert control(endpoint, "/_emulator/deny") == (200, {"actions": []})


# --------------------------------------------------------------------------- the tool's read calls


def test_get_role_trust_policy_is_url_encoded_json(iam):
    name, _ = role(iam)
    seen = raw_bodies(iam)
    got = iam.get_role(RoleName=name)["Role"]
    assert got["AssumeRolePolicyDocument"] == TRUST  # boto3 decodes it
    raw = seen[-1][1].decode()
    encoded = raw.split("<AssumeRolePolicyDocument>")[1].split("</AssumeRolePolicyDocument>")[0]
    assert encoded.startswith("%7B%22Version%22") and json.loads(urllib.parse.unquote(encoded)) == TRUST
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName="no-such-role")
    assert err(exc) == ("NoSuchEntity", "The role with name no-such-role cannot be found.", 404)


def test_ssm_describe_parameters_by_name(endpoint):
    ssm = client(endpoint, "ssm")
    base = "/t" + uuid.uuid4().hex[:6]
    ssm.put_parameter(Name=f"{base}/db/password", Value="secret", Type="SecureString")
    ssm.put_parameter(Name=f"{base}/db/password-old", Value="x", Type="String")
    root = "root" + uuid.uuid4().hex[:6]
    ssm.put_parameter(Name=root, Value="x", Type="String")

    def names(value):
        out = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [value]}])
        assert all("Value" not in p for p in out["Parameters"])  # never the value
        return [p["Name"] for p in out["Parameters"]]

    assert names(f"{base}/db/password") == [f"{base}/db/password"]  # Equals: not the -old one
    assert names(root) == [root]
    assert names("/" + root) == [root]  # a root-level name with a leading slash is the same parameter
    assert names(f"{base}/db/missing") == []
    full = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [f"{base}/db/password"]}])
    assert full["Parameters"][0]["Type"] == "SecureString" and full["Parameters"][0]["Version"] == 1


def test_secretsmanager_describe_secret_by_arn_partial_arn_and_name(endpoint):
    sm = client(endpoint, "secretsmanager")
    name = "app/" + uuid.uuid4().hex[:6]
    arn = sm.create_secret(Name=name, SecretString="s")["ARN"]
    assert arn.startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-") and len(arn.rsplit("-", 1)[1]) == 6
    for secret_id in (arn, arn[:-7], name):
        got = sm.describe_secret(SecretId=secret_id)
        assert (got["ARN"], got["Name"]) == (arn, name)
        assert "SecretString" not in got
    seen = raw_bodies(sm)
    for missing in (name + "x", arn[:-6] + "zzzzzz", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:nope"):
        with pytest.raises(ClientError) as exc:
            sm.describe_secret(SecretId=missing)
        assert err(exc) == ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.", 400)
    assert json.loads(seen[-1][1])["__type"] == "ResourceNotFoundException"


def test_logs_describe_log_groups_by_prefix(endpoint):
    logs = client(endpoint, "logs")
    base = "/ecs/t" + uuid.uuid4().hex[:6]
    logs.create_log_group(logGroupName=f"{base}/web")
    logs.create_log_group(logGroupName=f"{base}/web-worker")
    logs.create_log_group(logGroupName=f"{base}/api")
    groups = logs.describe_log_groups(logGroupNamePrefix=f"{base}/web")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [f"{base}/web", f"{base}/web-worker"]  # a prefix, not a name
    assert groups[0]["arn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{base}/web:*"
    assert groups[0]["logGroupArn"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{base}/web"
    assert logs.describe_log_groups(logGroupNamePrefix=f"{base}/nope")["logGroups"] == []


def test_condition_operators_and_policy_variables():
    """The evaluator itself (emulator.iam.evaluate), for the operators the API tests above leave out."""
    from emulator.iam import Context, evaluate

    def decide(condition, entries, resource="*", resource_pattern="*"):
        doc = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": resource_pattern,
                              "Condition": condition}]}
        ctx = Context([{"ContextKeyName": k, "ContextKeyValues": v} for k, v in entries.items()])
        decision, _, missing = evaluate([("p", doc)], "s3:GetObject", resource, ctx)
        return decision, missing

    allowed, denied = ("allowed", []), ("implicitDeny", [])
    assert decide({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": ["10.1.2.3"]}) == allowed
    assert decide({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:SourceIp": ["10.1.2.3"]}) == denied
    assert decide({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": ["9"]}) == allowed
    assert decide({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
                  {"aws:CurrentTime": ["2021-06-01T00:00:00Z"]}) == allowed
    assert decide({"ArnLike": {"aws:SourceArn": "arn:aws:ecs:*:123456789012:task/*"}},
                  {"aws:SourceArn": ["arn:aws:ecs:us-east-1:123456789012:task/c/abc"]}) == allowed
    assert decide({"ArnLike": {"aws:SourceArn": "arn:aws:ecs:*:123456789012:task/*"}},
                  {"aws:SourceArn": ["arn:aws:ecs:us-east-1:999999999999:task/c/abc"]}) == denied
    assert decide({"StringNotEquals": {"aws:PrincipalTag/team": ["a", "b"]}}, {"aws:PrincipalTag/team": ["c"]}) == allowed
    assert decide({"StringNotEquals": {"aws:PrincipalTag/team": ["a", "b"]}}, {"aws:PrincipalTag/team": ["a"]}) == denied
    assert decide({"ForAnyValue:StringLike": {"aws:TagKeys": "env*"}}, {"aws:TagKeys": ["team", "environment"]}) == allowed
    assert decide({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}},
                  {"aws:TagKeys": ["env", "owner"]}) == denied
    assert decide({"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}, {}) == allowed  # no key: vacuously true
    assert decide({"Null": {"aws:TokenIssueTime": "true"}}, {}) == allowed
    assert decide({"Null": {"aws:TokenIssueTime": "false"}}, {}) == denied
    assert decide({"StringEquals": {"aws:username": "bob"}, "Bool": {"aws:MultiFactorAuthPresent": True}},
                  {"aws:username": ["bob"]}) == ("implicitDeny", ["aws:MultiFactorAuthPresent"])
    # Policy variables in Resource come from the context; a missing one is reported.
    var = "arn:aws:s3:::home/${aws:username}/*"
    assert decide({}, {"aws:username": ["bob"]}, "arn:aws:s3:::home/bob/f", var) == allowed
    assert decide({}, {"aws:username": ["bob"]}, "arn:aws:s3:::home/eve/f", var) == denied
    assert decide({}, {}, "arn:aws:s3:::home/bob/f", var) == ("implicitDeny", ["aws:username"])
    assert decide({}, {}, "arn:aws:s3:::a*b", "arn:aws:s3:::a${*}b") == allowed
    assert decide({}, {}, "arn:aws:s3:::axb", "arn:aws:s3:::a${*}b") == denied

"""End-to-end tests for the emulator: start launcher.py exactly as the Rust tests do and
check, over real HTTP with boto3, each CloudFormation fidelity point of the brief."""

from __future__ import annotations

import ast
import json
import signal
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator.testing import ready, running_emulator, spawn

NO_CHANGES = ("The submitted information didn't contain changes. "
              "Submit different information to create a change set.")




@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        yield url


@pytest.fixture()
def cf(endpoint):
    return boto3.client("cloudformation", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def name() -> str:
    return "st-" + uuid.uuid4().hex[:8]


def stack(cf, stack_name):
    return cf.describe_stacks(StackName=stack_name)["Stacks"][0]


def wait_status(cf, stack_name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = stack(cf, stack_name)
        if not s["StackStatus"].endswith("_IN_PROGRESS"):
            return s
        assert time.monotonic() < deadline, f"stuck in {s['StackStatus']}"
        time.sleep(0.05)


def events(cf, stack_name):
    """Chronological (oldest first) list of (logical id, status, reason)."""
    evs = cf.describe_stack_events(StackName=stack_name)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason")) for e in reversed(evs)]


def resource_events(cf, stack_name, lid):
    return [(s, r) for (logical, s, r) in events(cf, stack_name) if logical == lid]


def stack_events(cf, stack_name, logical=None):
    return [s for (lid, s, _) in events(cf, stack_name) if lid == (logical or stack_name)]


def change_set(cf, stack_name, template, params=None, cs_type="CREATE", cs_name=None, **kw):
    cs_name = cs_name or "cs-" + uuid.uuid4().hex[:6]
    cf.create_change_set(StackName=stack_name, ChangeSetName=cs_name, TemplateBody=json.dumps(template),
                         ChangeSetType=cs_type,
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {}).items()],
                         **kw)
    return cs_name


def deploy(cf, stack_name, template, params=None, cs_type="CREATE", **execute_kw):
    cs_name = change_set(cf, stack_name, template, params, cs_type)
    cf.execute_change_set(StackName=stack_name, ChangeSetName=cs_name, **execute_kw)
    return wait_status(cf, stack_name)


def base_template(extra_resources=None, cluster_meta=None):
    t = {
        "Parameters": {"Env": {"Type": "String"}, "Retention": {"Type": "Number", "Default": "7"}},
        "Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": {"Fn::Sub": "${AWS::StackName}-${Env}"}}},
            "Logs": {"Type": "AWS::Logs::LogGroup",
                     "Properties": {"LogGroupName": {"Fn::Sub": "/ecs/${Cluster}"},
                                    "RetentionInDays": {"Ref": "Retention"}}},
        },
        "Outputs": {
            "ClusterName": {"Value": {"Ref": "Cluster"}, "Description": "the cluster"},
            "ClusterArn": {"Value": {"Fn::GetAtt": ["Cluster", "Arn"]}, "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-arn"}}},
            "Joined": {"Value": {"Fn::Join": [":", [{"Ref": "Env"}, {"Ref": "AWS::Region"}]]}},
        },
    }
    if cluster_meta:
        t["Resources"]["Cluster"]["Metadata"] = {"Emulator": cluster_meta}
    t["Resources"].update(extra_resources or {})
    return t


def err(excinfo):
    e = excinfo.value.response["Error"]
    return e["Code"], e["Message"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ------------------------------------------------------------------ process contract


def test_process_contract_stdin_eof_and_signals():
    # started together: each launch spends most of its time importing moto
    starts = [spawn(), spawn("--no-stdin-watch"), spawn()]
    (p1, url1), (p2, _), (p3, _) = [ready(p) for p in starts]
    assert urllib.request.urlopen(url1 + "/_emulator/health").read() == b"ok"
    p1.stdin.close()  # parent "dies"
    assert p1.wait(5) == 0
    assert p1.stdout.read() == ""  # exactly one line on stdout

    p2.stdin.close()
    time.sleep(0.3)
    assert p2.poll() is None  # --no-stdin-watch ignores stdin EOF
    p2.send_signal(signal.SIGTERM)
    assert p2.wait(5) == 0

    p3.send_signal(signal.SIGINT)
    assert p3.wait(5) == 0


# ------------------------------------------------------------------ 1. change sets


def test_create_change_set_review_in_progress(cf):
    n = name()
    cs = change_set(cf, n, base_template(), {"Env": "dev"})
    s = stack(cf, n)
    assert s["StackStatus"] == "REVIEW_IN_PROGRESS"
    assert cf.list_stack_resources(StackName=n)["StackResourceSummaries"] == []
    d = cf.describe_change_set(StackName=n, ChangeSetName=cs)
    assert (d["Status"], d["ExecutionStatus"]) == ("CREATE_COMPLETE", "AVAILABLE")
    changes = sorted((c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"],
                      c["ResourceChange"]["ResourceType"]) for c in d["Changes"])
    assert changes == [("Add", "Cluster", "AWS::ECS::Cluster"), ("Add", "Logs", "AWS::Logs::LogGroup")]
    assert {"ParameterKey": "Retention", "ParameterValue": "7"} in d["Parameters"]
    assert [c["ChangeSetName"] for c in cf.list_change_sets(StackName=n)["Summaries"]] == [cs]


def test_update_change_set_modify_replacement_and_use_previous_value(cf):
    n = name()
    t = base_template(extra_resources={
        "Param": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": f"/{n}/p", "Type": "String", "Value": "v1"}},
        "Gone": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": f"/{n}/g", "Type": "String", "Value": "x"}},
    })
    deploy(cf, n, t, {"Env": "dev"})
    t2 = json.loads(json.dumps(t))
    t2["Resources"]["Param"]["Properties"]["Value"] = "v2"
    del t2["Resources"]["Gone"]
    cf.create_change_set(StackName=n, ChangeSetName="upd", TemplateBody=json.dumps(t2), ChangeSetType="UPDATE",
                         Parameters=[{"ParameterKey": "Env", "UsePreviousValue": True},
                                     {"ParameterKey": "Retention", "ParameterValue": "14"}])
    d = cf.describe_change_set(StackName=n, ChangeSetName="upd")
    assert d["Status"] == "CREATE_COMPLETE"
    rc = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in d["Changes"]}
    assert rc["Param"]["Action"] == "Modify" and rc["Param"]["Replacement"] == "False"
    assert rc["Logs"]["Action"] == "Modify" and rc["Logs"]["Replacement"] == "False"  # via Retention param
    assert rc["Gone"]["Action"] == "Remove"
    assert "Cluster" not in rc
    assert {"ParameterKey": "Env", "ParameterValue": "dev"} in d["Parameters"]

    # a replacement-requiring property change
    t3 = json.loads(json.dumps(t))
    t3["Resources"]["Logs"]["Properties"]["LogGroupName"] = "/other"
    change_set(cf, n, t3, {"Env": "dev"}, "UPDATE", cs_name="repl")
    d = cf.describe_change_set(StackName=n, ChangeSetName="repl")
    rc = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in d["Changes"]}
    assert rc["Logs"]["Replacement"] == "True"
    assert rc["Logs"]["PhysicalResourceId"]


# ------------------------------------------------------------------ 2. no-change change set


def test_no_change_update_change_set_fails_like_aws(cf):
    n = name()
    deploy(cf, n, base_template(), {"Env": "dev"})
    cf.create_change_set(StackName=n, ChangeSetName="same", TemplateBody=json.dumps(base_template()),
                         ChangeSetType="UPDATE", Parameters=[{"ParameterKey": "Env", "UsePreviousValue": True}])
    d = cf.describe_change_set(StackName=n, ChangeSetName="same")
    assert (d["Status"], d["ExecutionStatus"], d["StatusReason"]) == ("FAILED", "UNAVAILABLE", NO_CHANGES)
    assert [c["ChangeSetName"] for c in cf.list_change_sets(StackName=n)["Summaries"]] == ["same"]
    with pytest.raises(ClientError) as ei:
        cf.execute_change_set(StackName=n, ChangeSetName="same")
    assert err(ei)[0] == "InvalidChangeSetStatus"
    cf.delete_change_set(StackName=n, ChangeSetName="same")
    assert cf.list_change_sets(StackName=n)["Summaries"] == []


# ------------------------------------------------------------------ 3. async execution and events


def test_execute_is_async_with_aws_event_sequence(cf):
    n = name()
    cs = change_set(cf, n, base_template(cluster_meta={"HoldSeconds": 0.6}), {"Env": "dev"})
    cf.execute_change_set(StackName=n, ChangeSetName=cs)
    assert stack(cf, n)["StackStatus"] == "CREATE_IN_PROGRESS"
    assert cf.describe_change_set(StackName=n, ChangeSetName=cs)["ExecutionStatus"] == "EXECUTE_IN_PROGRESS"
    s = wait_status(cf, n)
    assert s["StackStatus"] == "CREATE_COMPLETE"
    assert cf.describe_change_set(StackName=n, ChangeSetName=cs)["ExecutionStatus"] == "EXECUTE_COMPLETE"
    assert resource_events(cf, n, "Cluster") == [
        ("CREATE_IN_PROGRESS", ""), ("CREATE_IN_PROGRESS", "Resource creation Initiated"), ("CREATE_COMPLETE", None)]
    assert stack_events(cf, n) == ["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    raw = cf.describe_stack_events(StackName=n)["StackEvents"]
    stamps = [e["Timestamp"] for e in raw]
    assert all(a > b for a, b in zip(stamps, stamps[1:], strict=False)), "newest first, strictly increasing"
    for e in raw:
        assert e["StackName"] == n and e["StackId"] == s["StackId"] and e["EventId"] and e["ResourceType"]
    complete = [e for e in raw if e["LogicalResourceId"] == "Cluster" and e["ResourceStatus"] == "CREATE_COMPLETE"][0]
    assert complete["PhysicalResourceId"] == f"{n}-dev"
    # Logs depends on Cluster (Fn::Sub ${Cluster}) so it starts only after Cluster completes
    order = [(lid, st) for (lid, st, _) in events(cf, n)]
    assert order.index(("Cluster", "CREATE_COMPLETE")) < order.index(("Logs", "CREATE_IN_PROGRESS"))
    # the ECS cluster really exists in moto's ECS backend
    ecs = boto3.client("ecs", region_name="us-east-1", endpoint_url=cf.meta.endpoint_url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert ecs.describe_clusters(clusters=[f"{n}-dev"])["clusters"][0]["status"] == "ACTIVE"

    # update: Modify + Add + Remove (removed ones deleted during cleanup)
    t2 = base_template(extra_resources={"New": {"Type": "AWS::SSM::Parameter",
                                                "Properties": {"Name": f"/{n}/new", "Type": "String", "Value": "n"}}})
    del t2["Resources"]["Logs"]
    t2["Outputs"]["ClusterName"]["Description"] = "changed"
    cs2 = change_set(cf, n, t2, {"Env": "dev", "Retention": "30"}, "UPDATE")
    cf.execute_change_set(StackName=n, ChangeSetName=cs2)
    s = wait_status(cf, n)
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    assert stack_events(cf, n)[-3:] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"]
    assert [x for x, _ in resource_events(cf, n, "New")] == ["CREATE_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert [x for x, _ in resource_events(cf, n, "Logs")][-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    ev = events(cf, n)
    cleanup_at = ev.index((n, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None))
    assert ev.index(("Logs", "DELETE_IN_PROGRESS", None)) > cleanup_at


# ------------------------------------------------------------------ 4. outputs and parameters


def test_outputs_and_new_parameters_after_execute(cf):
    n = name()
    s = deploy(cf, n, base_template(), {"Env": "dev"})
    outs = {o["OutputKey"]: o for o in s["Outputs"]}
    assert outs["ClusterName"]["OutputValue"] == f"{n}-dev"
    assert outs["ClusterName"]["Description"] == "the cluster"
    assert outs["ClusterArn"]["OutputValue"].endswith(f":cluster/{n}-dev")
    assert outs["ClusterArn"]["ExportName"] == f"{n}-arn"
    assert outs["Joined"]["OutputValue"] == "dev:us-east-1"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in s["Parameters"]}
    assert params == {"Env": "dev", "Retention": "7"}
    s = deploy(cf, n, base_template(), {"Env": "prod", "Retention": "14"}, "UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in s["Parameters"]}
    assert params == {"Env": "prod", "Retention": "14"}
    outs = {o["OutputKey"]: o["OutputValue"] for o in s["Outputs"]}
    assert outs["ClusterName"] == f"{n}-prod" and outs["Joined"] == "prod:us-east-1"


# ------------------------------------------------------------------ 5. failure injection and rollback


def test_create_failure_rolls_back(cf):
    n = name()
    t = base_template(cluster_meta={"Fail": "Boom: quota exceeded", "HoldSeconds": 0.2},
                      extra_resources={"Slow": {"Type": "AWS::SSM::Parameter",
                                                "Metadata": {"Emulator": {"HoldSeconds": 2}},
                                                "Properties": {"Name": f"/{n}/slow", "Type": "String", "Value": "v"}}})
    s = deploy(cf, n, t, {"Env": "dev"})
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    assert resource_events(cf, n, "Cluster")[2] == ("CREATE_FAILED", "Boom: quota exceeded")
    assert ("CREATE_FAILED", "Resource creation cancelled") in resource_events(cf, n, "Slow")
    assert [x for x, _ in resource_events(cf, n, "Slow")][-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert "Logs" not in [lid for lid, _, _ in events(cf, n)]  # never started: depends on Cluster
    ev = [e for e in events(cf, n) if e[0] == n]
    assert ev[-2] == (n, "ROLLBACK_IN_PROGRESS",
                      "The following resource(s) failed to create: [Cluster]. Rollback requested by user.")
    assert ev[-1][1] == "ROLLBACK_COMPLETE"
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "dev"}, "UPDATE")
    assert "ROLLBACK_COMPLETE state and can not be updated" in err(ei)[1]


def test_create_failure_with_disable_rollback(cf):
    n = name()
    s = deploy(cf, n, base_template(cluster_meta={"Fail": "nope"}), {"Env": "dev"}, DisableRollback=True)
    assert s["StackStatus"] == "CREATE_FAILED"
    assert s["DisableRollback"] is True
    assert "ROLLBACK_IN_PROGRESS" not in stack_events(cf, n)


def test_moto_exception_becomes_resource_failure(cf):
    n = name()
    t = {"Resources": {"Svc": {"Type": "AWS::ECS::Service", "Properties": {"DesiredCount": 1}}}}
    s = deploy(cf, n, t)
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    status, reason = [e for e in resource_events(cf, n, "Svc") if e[0] == "CREATE_FAILED"][0]
    assert "Cluster" in reason


def test_update_failure_rolls_back_parameters_and_outputs(cf):
    n = name()
    deploy(cf, n, base_template(), {"Env": "dev"})
    t2 = base_template(extra_resources={"Bad": {"Type": "AWS::SSM::Parameter",
                                                "Metadata": {"Emulator": {"Fail": "update exploded"}},
                                                "Properties": {"Name": f"/{n}/bad", "Type": "String", "Value": "v"}}})
    s = deploy(cf, n, t2, {"Env": "dev", "Retention": "30"}, "UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert stack_events(cf, n)[-4:] == ["UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
                                        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    assert ("CREATE_FAILED", "update exploded") in resource_events(cf, n, "Bad")
    params = {p["ParameterKey"]: p["ParameterValue"] for p in s["Parameters"]}
    assert params == {"Env": "dev", "Retention": "7"}
    assert {o["OutputKey"]: o["OutputValue"] for o in s["Outputs"]}["ClusterName"] == f"{n}-dev"
    # Modified resource failing -> UPDATE_FAILED, and with DisableRollback the stack stops at UPDATE_FAILED
    t3 = base_template(cluster_meta={"Fail": "cannot update"})
    s = deploy(cf, n, t3, {"Env": "dev"}, "UPDATE", DisableRollback=True)
    assert s["StackStatus"] == "UPDATE_FAILED"
    assert s["StackStatusReason"] == "The following resource(s) failed to update: [Cluster]. "
    assert ("UPDATE_FAILED", "cannot update") in resource_events(cf, n, "Cluster")


# ------------------------------------------------------------------ 6. time control


def test_hold_seconds_and_delete_hold_seconds(cf):
    n = name()
    # Held 2 s, looked at after 0.3 s: the look lands inside the hold even on a busy machine.
    t = base_template(cluster_meta={"HoldSeconds": 2, "DeleteHoldSeconds": 2})
    cs = change_set(cf, n, t, {"Env": "dev"})
    t0 = time.monotonic()
    cf.execute_change_set(StackName=n, ChangeSetName=cs)
    time.sleep(0.3)
    assert resource_events(cf, n, "Cluster")[-1][0] == "CREATE_IN_PROGRESS"
    wait_status(cf, n)
    assert time.monotonic() - t0 >= 2
    t0 = time.monotonic()
    cf.delete_stack(StackName=n)
    time.sleep(0.3)
    assert stack(cf, n)["StackStatus"] == "DELETE_IN_PROGRESS"
    with pytest.raises(ClientError):
        while True:
            stack(cf, n)
            assert time.monotonic() - t0 < 10
            time.sleep(0.05)
    assert time.monotonic() - t0 >= 2


# ------------------------------------------------------------------ 7. stack-level settings


def test_stack_settings_are_stored(cf, endpoint):
    n = name()
    topic = "arn:aws:sns:us-east-1:123456789012:deploy-events"
    boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_topic(Name="deploy-events")
    cs = change_set(cf, n, base_template(), {"Env": "dev"}, Capabilities=["CAPABILITY_IAM"],
                    NotificationARNs=[topic], RoleARN="arn:aws:iam::123456789012:role/cfn",
                    Tags=[{"Key": "team", "Value": "a"}])
    cf.execute_change_set(StackName=n, ChangeSetName=cs, DisableRollback=True)
    s = wait_status(cf, n)
    assert s["Capabilities"] == ["CAPABILITY_IAM"]
    assert s["NotificationARNs"] == [topic]
    assert s["RoleARN"] == "arn:aws:iam::123456789012:role/cfn"
    assert s["Tags"] == [{"Key": "team", "Value": "a"}]
    assert s["DisableRollback"] is True
    assert s["EnableTerminationProtection"] is False

    cf.update_termination_protection(StackName=n, EnableTerminationProtection=True)
    assert stack(cf, n)["EnableTerminationProtection"] is True
    with pytest.raises(ClientError) as ei:
        cf.delete_stack(StackName=n)
    assert err(ei)[:2] == ("ValidationError", f"Stack [{n}] cannot be deleted while TerminationProtection is enabled")
    cf.update_termination_protection(StackName=n, EnableTerminationProtection=False)
    cf.delete_stack(StackName=n)

    # CreateStack accepts TimeoutInMinutes / EnableTerminationProtection (CreateChangeSet does not)
    n2 = name()
    cf.create_stack(StackName=n2, TemplateBody=json.dumps(base_template()), TimeoutInMinutes=15,
                    EnableTerminationProtection=True, DisableRollback=True,
                    Parameters=[{"ParameterKey": "Env", "ParameterValue": "x"}])
    s = wait_status(cf, n2)
    assert (s["StackStatus"], s["TimeoutInMinutes"], s["EnableTerminationProtection"], s["DisableRollback"]) == (
        "CREATE_COMPLETE", 15, True, True)

    # IAM resources need capabilities, as on AWS
    with pytest.raises(ClientError) as ei:
        change_set(cf, name(), {"Resources": {"R": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "r", "AssumeRolePolicyDocument": {}}}}})
    assert err(ei)[:2] == ("InsufficientCapabilitiesException", "Requires capabilities : [CAPABILITY_NAMED_IAM]")


# ------------------------------------------------------------------ 8. validation


def test_change_set_validation_errors(cf):
    n = name()
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "dev", "Nope": "x"})
    assert err(ei) == ("ValidationError", "Parameters: [Nope] do not exist in the template", 400)
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {})
    assert err(ei) == ("ValidationError", "Parameters: [Env] must have values", 400)
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "dev"}, "UPDATE")
    assert err(ei) == ("ValidationError", f"Stack [{n}] does not exist", 400)

    deploy(cf, n, base_template(), {"Env": "dev"})
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "dev"}, "CREATE", cs_name="again")
    code, msg, status = err(ei)
    assert code == "AlreadyExistsException" and status == 400
    assert msg == f"Stack [{n}] already exists and cannot be created again with the changeSet [again]."

    # while an update is in progress every mutating call is refused
    held = base_template(cluster_meta={"HoldSeconds": 1.5})
    cs = change_set(cf, n, held, {"Env": "dev"}, "UPDATE")
    other = change_set(cf, n, base_template(), {"Env": "other"}, "UPDATE")
    cf.execute_change_set(StackName=n, ChangeSetName=cs)
    arn = stack(cf, n)["StackId"]
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "zzz"}, "UPDATE")
    assert err(ei) == ("ValidationError", f"Stack:{arn} is in UPDATE_IN_PROGRESS state and can not be updated.", 400)
    with pytest.raises(ClientError) as ei:
        cf.execute_change_set(StackName=n, ChangeSetName=other)
    assert err(ei)[0] == "ChangeSetNotFound"  # executing one change set deletes the others
    with pytest.raises(ClientError) as ei:
        cf.delete_stack(StackName=n)
    assert err(ei)[0] == "ValidationError" and "UPDATE_IN_PROGRESS" in err(ei)[1]
    assert wait_status(cf, n)["StackStatus"] == "UPDATE_COMPLETE"


# ------------------------------------------------------------------ 9. delete


def test_delete_stack_is_async(cf):
    n = name()
    s = deploy(cf, n, base_template(), {"Env": "del"})
    stack_id = s["StackId"]
    cf.delete_stack(StackName=n)
    deadline = time.monotonic() + 10
    while True:
        try:
            stack(cf, n)
        except ClientError as e:
            assert e.response["Error"]["Message"] == f"Stack with id {n} does not exist"
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gone = stack(cf, stack_id)
    assert gone["StackStatus"] == "DELETE_COMPLETE"
    assert "DeletionTime" in gone
    assert stack_events(cf, stack_id, n)[-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert [x for x, _ in resource_events(cf, stack_id, "Cluster")][-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert cf.list_stack_resources(StackName=stack_id)["StackResourceSummaries"] == []
    summaries = [x for x in cf.list_stacks()["StackSummaries"] if x["StackId"] == stack_id]
    assert summaries[0]["StackStatus"] == "DELETE_COMPLETE"


# ------------------------------------------------------------------ 10. control endpoints


def _post(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req)


def test_control_endpoints(cf, endpoint):
    n = name()
    deploy(cf, n, base_template(), {"Env": "dev"})
    assert urllib.request.urlopen(endpoint + "/_emulator/health").read() == b"ok"
    pending = change_set(cf, n, base_template(), {"Env": "next"}, "UPDATE")
    _post(endpoint + "/_emulator/stack-status", {"StackName": n, "StackStatus": "UPDATE_IN_PROGRESS"})
    arn = stack(cf, n)["StackId"]
    with pytest.raises(ClientError) as ei:
        cf.execute_change_set(StackName=n, ChangeSetName=pending)
    assert err(ei) == ("ValidationError", f"Stack:{arn} is in UPDATE_IN_PROGRESS state and can not be updated.", 400)
    _post(endpoint + "/_emulator/stack-status",
          {"StackName": n, "StackStatus": "UPDATE_ROLLBACK_FAILED", "StatusReason": "forced"})
    s = stack(cf, n)
    assert (s["StackStatus"], s["StackStatusReason"]) == ("UPDATE_ROLLBACK_FAILED", "forced")
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "x"}, "UPDATE")
    assert "UPDATE_ROLLBACK_FAILED state and can not be updated" in err(ei)[1]

    _post(endpoint + "/_emulator/requests/reset", {})
    before = time.time()
    cf.describe_stacks(StackName=n)
    ecs = boto3.client("ecs", region_name="eu-west-1", endpoint_url=endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ecs.list_clusters()
    after = time.time()
    log = json.loads(urllib.request.urlopen(endpoint + "/_emulator/requests").read())
    assert [(r["service"], r["action"]) for r in log] == [("cloudformation", "DescribeStacks"),
                                                           ("ecs", "ListClusters")]
    # Arrival times (bench/ measures start-up and waiting cadence with them): in
    # order, and within the window the calls were made in.
    times = [r["time"] for r in log]
    assert before <= times[0] <= times[1] <= after
    # A CloudFormation call names its stack in the log; others do not.
    assert log[0]["stack"] == n
    assert "stack" not in log[1]


def test_any_region_works(endpoint):
    cf = boto3.client("cloudformation", region_name="ap-southeast-2", endpoint_url=endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    n = name()
    s = deploy(cf, n, base_template(), {"Env": "syd"})
    assert s["StackStatus"] == "CREATE_COMPLETE"
    assert {o["OutputKey"]: o["OutputValue"] for o in s["Outputs"]}["Joined"] == "syd:ap-southeast-2"


def test_retries_with_the_same_token_succeed_again(cf):
    """A retried call whose first answer was lost: with the same token it succeeds
    (as on AWS); without one it is refused as a duplicate."""
    n = name()
    body = "Resources:\n  T:\n    Type: AWS::SNS::Topic\n"
    first = cf.create_change_set(StackName=n, ChangeSetName="cs", ChangeSetType="CREATE",
                                 TemplateBody=body, ClientToken="tok-1")
    again = cf.create_change_set(StackName=n, ChangeSetName="cs", ChangeSetType="CREATE",
                                 TemplateBody=body, ClientToken="tok-1")
    assert again["Id"] == first["Id"]
    with pytest.raises(ClientError) as err:
        cf.create_change_set(StackName=n, ChangeSetName="cs", ChangeSetType="CREATE",
                             TemplateBody=body, ClientToken="tok-2")
    assert err.value.response["Error"]["Code"] == "AlreadyExistsException"

    cf.execute_change_set(ChangeSetName=first["Id"], ClientRequestToken="run-1")
    cf.execute_change_set(ChangeSetName=first["Id"], ClientRequestToken="run-1")
    with pytest.raises(ClientError) as err:
        cf.execute_change_set(ChangeSetName=first["Id"], ClientRequestToken="run-2")
    assert err.value.response["Error"]["Code"] == "InvalidChangeSetStatus"

    direct = name()
    created = cf.create_stack(StackName=direct, TemplateBody=body, ClientRequestToken="create-1")
    assert cf.create_stack(StackName=direct, TemplateBody=body,
                           ClientRequestToken="create-1")["StackId"] == created["StackId"]
    with pytest.raises(ClientError) as err:
        cf.create_stack(StackName=direct, TemplateBody=body)
    assert err.value.response["Error"]["Code"] == "AlreadyExistsException"


# ------------------------------------------------------------------ 11. YAML short forms


def deploy_body(cf, stack_name, body, params=None):
    """deploy() for a template given as text (YAML)."""
    cs_name = "cs-" + uuid.uuid4().hex[:6]
    cf.create_change_set(StackName=stack_name, ChangeSetName=cs_name, TemplateBody=body, ChangeSetType="CREATE",
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {}).items()])
    cf.execute_change_set(StackName=stack_name, ChangeSetName=cs_name)
    return wait_status(cf, stack_name)


def outputs(s):
    return {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])}


EXPORTER = """
Resources:
  Topic:
    Type: AWS::SNS::Topic
Outputs:
  VpcId:
    Value: vpc-0abc123
    Export: {Name: !Sub "${AWS::StackName}-VpcId"}
  Names:
    Value: p,q,r
    Export: {Name: !Sub "${AWS::StackName}-Names"}
"""

IMPORTER = """
Parameters:
  Net: {Type: String}
Conditions:
  InUsEast1: !Equals [!Ref "AWS::Region", us-east-1]
  Never: !Not [!Condition InUsEast1]
  Both: !And [!Condition InUsEast1, !Not [!Equals [!Ref Net, ""]]]
  Either: !Or [!Condition Never, !Equals [a, b]]
Mappings:
  Sizes: {us-east-1: {Name: large}}
Resources:
  Topic:
    Type: AWS::SNS::Topic
  Imported:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub "/${AWS::StackName}/vpc"
      Type: String
      Value: !ImportValue
        Fn::Sub: "${Net}-VpcId"
Outputs:
  ImportOverSubBlock:
    Value: !ImportValue
      Fn::Sub: "${Net}-VpcId"
  ImportOverSubFlow:
    Value: !ImportValue {"Fn::Sub": "${Net}-VpcId"}
  LongImportOverShortSub:
    Value:
      Fn::ImportValue: !Sub "${Net}-VpcId"
  FirstAz:
    Value: !Select [0, !GetAZs {Ref: "AWS::Region"}]
  SecondAz:
    Value: !Select
      - 1
      - !GetAZs
        Ref: AWS::Region
  LongGetAzs:
    Value:
      Fn::Select: [0, {Fn::GetAZs: {Ref: AWS::Region}}]
  Mixed:
    Value: !Join ["", [!Sub "a-${AWS::Region}-", !Select [1, !Split [",", !ImportValue %(net)s-Names]]]]
  SubList:
    Value: !Sub
      - "${Name}/${Size}"
      - Name: !GetAtt Topic.TopicName
        Size: !FindInMap [Sizes, !Ref "AWS::Region", Name]
  GetAttList:
    Value: !GetAtt [Topic, TopicName]
  Chosen:
    Value: !If [Both, !If [Either, wrong, right], wrong]
  Encoded:
    Value: !Base64 hi
  Subnet:
    Value: !Select [1, !Cidr [10.0.0.0/16, 4, 8]]
  TopicArn:
    Value: !Ref Topic
  Year:
    Value: !Select [0, !Split ["-", 2012-10-17]]
"""


def test_yaml_short_forms_nested_resolve(cf, endpoint):
    """Short-form tags nested in any form become the long-form intrinsics CloudFormation
    reads (moto alone leaks parser nodes: "No export named [(ScalarNode(tag=...")."""
    net, app = name(), name()
    assert deploy_body(cf, net, EXPORTER)["StackStatus"] == "CREATE_COMPLETE"
    s = deploy_body(cf, app, IMPORTER % {"net": net}, {"Net": net})
    assert s["StackStatus"] == "CREATE_COMPLETE", events(cf, app)
    outs = outputs(s)
    assert outs["ImportOverSubBlock"] == outs["ImportOverSubFlow"] == outs["LongImportOverShortSub"] == "vpc-0abc123"
    assert (outs["FirstAz"], outs["SecondAz"], outs["LongGetAzs"]) == ("us-east-1a", "us-east-1b", "us-east-1a")
    assert outs["Mixed"] == "a-us-east-1-q"
    topic_name = outs["TopicArn"].rsplit(":", 1)[1]
    assert outs["SubList"] == f"{topic_name}/large"
    assert outs["GetAttList"] == topic_name
    assert outs["Chosen"] == "right"
    assert outs["Encoded"] == "aGk="
    assert outs["Subnet"] == "10.0.1.0/24"
    assert outs["Year"] == "2012"  # no YAML timestamps in CloudFormation: an unquoted date is a string
    # resource properties resolve too, not only outputs
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=endpoint,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    assert ssm.get_parameter(Name=f"/{app}/vpc")["Parameter"]["Value"] == "vpc-0abc123"


def test_get_azs_gives_the_stack_regions_zones(endpoint):
    cf = boto3.client("cloudformation", region_name="ap-southeast-2", endpoint_url=endpoint,
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    body = """
Resources:
  Topic: {Type: AWS::SNS::Topic}
Outputs:
  ShortRef: {Value: !Select [0, !GetAZs {Ref: "AWS::Region"}]}
  LongRef: {Value: {"Fn::Join": [",", {"Fn::GetAZs": {"Ref": "AWS::Region"}}]}}
  Empty: {Value: !Join [",", !GetAZs ""]}
  Named: {Value: !Select [1, !GetAZs ap-southeast-2]}
"""
    s = deploy_body(cf, name(), body)
    assert s["StackStatus"] == "CREATE_COMPLETE"
    zones = "ap-southeast-2a,ap-southeast-2b,ap-southeast-2c"
    assert outputs(s) == {"ShortRef": "ap-southeast-2a", "LongRef": zones, "Empty": zones, "Named": "ap-southeast-2b"}


def test_two_tags_on_one_node_is_a_template_format_error(cf):
    """`!ImportValue !Sub "..."` or `!GetAZs !Ref AWS::Region` put two tags on one YAML
    node, which YAML does not allow: CloudFormation refuses the template (its docs: "You
    can't use the short form of !ImportValue when it contains a !Sub"); so does the emulator."""
    for value, where in (('!ImportValue !Sub "${AWS::StackName}-VpcId"', "(line 6, column 27)"),
                         ('!Select [0, !GetAZs !Ref "AWS::Region"]', "(line 6, column 34)")):
        body = f"Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Type: String\n      Value: {value}\n"
        with pytest.raises(ClientError) as ei:
            cf.create_change_set(StackName=name(), ChangeSetName="cs", TemplateBody=body, ChangeSetType="CREATE")
        assert err(ei) == ("ValidationError", f"Template format error: YAML not well-formed. {where}", 400)


def test_get_template_summary_reads_nested_short_forms(cf):
    # GetTemplateSummary is moto's handler; it shares the emulator's tag reading.
    body = ("Metadata:\n  Probe:\n    Vpc: !ImportValue\n      Fn::Sub: \"${Net}-VpcId\"\n"
            "    Az: !Select [0, !GetAZs {Ref: \"AWS::Region\"}]\n    Host: !GetAtt Db.Endpoint.Address\n"
            "Parameters:\n  Net: {Type: String}\nResources:\n  T: {Type: AWS::SNS::Topic}\n")
    summary = cf.get_template_summary(TemplateBody=body)
    assert [p["ParameterKey"] for p in summary["Parameters"]] == ["Net"]
    raw = summary["Metadata"]
    try:
        metadata = json.loads(raw)
    except ValueError:
        metadata = ast.literal_eval(raw)  # moto 5.2.5 returns the dict's Python repr, not JSON
    assert metadata["Probe"] == {"Vpc": {"Fn::ImportValue": {"Fn::Sub": "${Net}-VpcId"}},
                                 "Az": {"Fn::Select": [0, {"Fn::GetAZs": {"Ref": "AWS::Region"}}]},
                                 "Host": {"Fn::GetAtt": ["Db", "Endpoint.Address"]}}


# ------------------------------------------------------------------ 12. change set names


def test_change_set_name_is_reusable_after_execution(cf):
    """aws-actions/aws-cloudformation-github-deploy names every deploy's change set
    `<stack>-CS`: on AWS an executed change set no longer holds its name."""
    n = name()
    cs_name = f"{n}-CS"
    first = cf.create_change_set(StackName=n, ChangeSetName=cs_name, ChangeSetType="CREATE",
                                 TemplateBody=json.dumps(base_template()),
                                 Parameters=[{"ParameterKey": "Env", "ParameterValue": "dev"}])["Id"]
    cf.execute_change_set(StackName=n, ChangeSetName=cs_name)
    assert wait_status(cf, n)["StackStatus"] == "CREATE_COMPLETE"
    assert cf.list_change_sets(StackName=n)["Summaries"] == []
    assert cf.describe_change_set(StackName=n, ChangeSetName=cs_name)["ExecutionStatus"] == "EXECUTE_COMPLETE"

    second = cf.create_change_set(StackName=n, ChangeSetName=cs_name, ChangeSetType="UPDATE",
                                  TemplateBody=json.dumps(base_template()),
                                  Parameters=[{"ParameterKey": "Env", "ParameterValue": "prod"}])["Id"]
    assert second != first
    # by name: the new change set; by ARN the executed one is still there
    d = cf.describe_change_set(StackName=n, ChangeSetName=cs_name)
    assert (d["ChangeSetId"], d["Status"], d["ExecutionStatus"]) == (second, "CREATE_COMPLETE", "AVAILABLE")
    assert cf.describe_change_set(ChangeSetName=first)["ExecutionStatus"] == "EXECUTE_COMPLETE"
    assert [c["ChangeSetId"] for c in cf.list_change_sets(StackName=n)["Summaries"]] == [second]

    # un-executed, it holds the name, as on AWS
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "other"}, "UPDATE", cs_name=cs_name)
    assert err(ei) == ("AlreadyExistsException", f"ChangeSet [{cs_name}] already exists", 400)

    cf.execute_change_set(StackName=n, ChangeSetName=cs_name)
    s = wait_status(cf, n)
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    assert (s["ChangeSetId"], outputs(s)["ClusterName"]) == (second, f"{n}-prod")
    # executing the second deleted the stack's other change sets, the first included
    with pytest.raises(ClientError) as ei:
        cf.describe_change_set(ChangeSetName=first)
    assert err(ei)[0] == "ChangeSetNotFound"
    assert cf.describe_change_set(StackName=n, ChangeSetName=cs_name)["ChangeSetId"] == second
    # and a third deploy may use the name again
    cf.create_change_set(StackName=n, ChangeSetName=cs_name, ChangeSetType="UPDATE",
                         TemplateBody=json.dumps(base_template()),
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "third"}])


def test_unexecuted_or_failed_change_set_holds_its_name(cf):
    n = name()
    change_set(cf, n, base_template(), {"Env": "dev"}, cs_name="x-CS")
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "dev"}, cs_name="x-CS")
    assert err(ei) == ("AlreadyExistsException", "ChangeSet [x-CS] already exists", 400)
    cf.execute_change_set(StackName=n, ChangeSetName="x-CS")
    wait_status(cf, n)
    # a FAILED (no changes) change set keeps the name too, until deleted
    change_set(cf, n, base_template(), {"Env": "dev"}, "UPDATE", cs_name="x-CS")
    assert cf.describe_change_set(StackName=n, ChangeSetName="x-CS")["Status"] == "FAILED"
    with pytest.raises(ClientError) as ei:
        change_set(cf, n, base_template(), {"Env": "prod"}, "UPDATE", cs_name="x-CS")
    assert err(ei)[0] == "AlreadyExistsException"
    cf.delete_change_set(StackName=n, ChangeSetName="x-CS")
    change_set(cf, n, base_template(), {"Env": "prod"}, "UPDATE", cs_name="x-CS")


def test_template_url_on_the_endpoint_is_read_by_path(cf, endpoint):
    """A deploy tool pointed at the emulator by IP (AWS_ENDPOINT_URL) sends
    TemplateURL as http://127.0.0.1:PORT/bucket/key: the template is read from
    the emulator's S3 as CloudFormation reads it from a bucket on AWS."""
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                      aws_access_key_id="x", aws_secret_access_key="x")
    bucket = f"tpl-{name()}".lower()
    _post(endpoint + "/_emulator/requests/reset", {})
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="cfn/t.template", Body=json.dumps(base_template()).encode())
    s3.head_object(Bucket=bucket, Key="cfn/t.template")
    # S3's REST calls are named like the other protocols' operations.
    log = json.loads(urllib.request.urlopen(endpoint + "/_emulator/requests").read())
    assert [(r["service"], r["action"]) for r in log] == [
        ("s3", "CreateBucket"), ("s3", "HeadBucket"), ("s3", "PutObject"), ("s3", "HeadObject")]
    n = name()
    url = f"{endpoint}/{bucket}/cfn/t.template"
    assert url.startswith("http://127.0.0.1:")
    cf.create_change_set(StackName=n, ChangeSetName="by-url", ChangeSetType="CREATE",
                         TemplateURL=url,
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "url"}])
    cf.execute_change_set(StackName=n, ChangeSetName="by-url")
    stack = wait_status(cf, n)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    assert outputs.get("Joined") == "url:us-east-1", outputs


def test_deployment_mode_is_kept_on_the_change_set(cf):
    """A drift-aware change set (DeploymentMode REVERT_DRIFT) shows its mode;
    the emulator keeps no drift, so its changes are the ordinary ones."""
    n = name()
    cf.create_change_set(StackName=n, ChangeSetName="drift", ChangeSetType="CREATE",
                         TemplateBody=json.dumps(base_template()), DeploymentMode="REVERT_DRIFT",
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "d"}])
    described = cf.describe_change_set(StackName=n, ChangeSetName="drift")
    assert described["DeploymentMode"] == "REVERT_DRIFT"
    plain = name()
    cf.create_change_set(StackName=plain, ChangeSetName="plain", ChangeSetType="CREATE",
                         TemplateBody=json.dumps(base_template()),
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "d"}])
    assert "DeploymentMode" not in cf.describe_change_set(StackName=plain, ChangeSetName="plain")


def test_include_nested_stacks_is_kept_on_the_change_set(cf):
    """IncludeNestedStacks given on CreateChangeSet is what DescribeChangeSet shows."""
    n = name()
    cf.create_change_set(StackName=n, ChangeSetName="nested", ChangeSetType="CREATE",
                         TemplateBody=json.dumps(base_template()), IncludeNestedStacks=True,
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "d"}])
    assert cf.describe_change_set(StackName=n, ChangeSetName="nested")["IncludeNestedStacks"] is True
    plain = name()
    cf.create_change_set(StackName=plain, ChangeSetName="plain", ChangeSetType="CREATE",
                         TemplateBody=json.dumps(base_template()),
                         Parameters=[{"ParameterKey": "Env", "ParameterValue": "d"}])
    assert cf.describe_change_set(StackName=plain, ChangeSetName="plain")["IncludeNestedStacks"] is False

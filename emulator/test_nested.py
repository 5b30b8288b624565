"""Nested stacks, AWS::Include and Lambda code from S3, as a packaging deploy tool uses them:
templates, snippets and zips uploaded to the emulator's S3, referenced by URL."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import time
import uuid
import zipfile

import pytest
from botocore.exceptions import ClientError

from emulator.testing import client, running_emulator
from emulator.test_emulator import NO_CHANGES, err, events, resource_events, wait_status

NESTED = "AWS::CloudFormation::Stack"


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        yield url



@pytest.fixture(scope="module")
def cf(endpoint):
    return client(endpoint, "cloudformation")


@pytest.fixture(scope="module")
def s3(endpoint):
    return client(endpoint, "s3")


@pytest.fixture(scope="module")
def bucket(s3):
    name = "pkg-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def upload(endpoint, s3, bucket):
    """Uploads a template (dict, or YAML text) the way a packager does: content-addressed key,
    path-style URL on the endpoint. Returns the TemplateURL."""
    def put(template, virtual_hosted=False):
        body = template if isinstance(template, str) else json.dumps(template)
        key = f"tpl/{hashlib.md5(body.encode()).hexdigest()}.template"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        if virtual_hosted:
            return f"https://{bucket}.s3.us-east-1.amazonaws.com/{key}"
        return f"{endpoint}/{bucket}/{key}"

    return put


def name() -> str:
    return "nst-" + uuid.uuid4().hex[:8]


def ssm_param(value, meta=None):
    """An SSM parameter named after its stack (moto's SSM cannot make a name up as AWS does)."""
    suffix = hashlib.md5(json.dumps([value, meta]).encode()).hexdigest()[:6]  # same template, same name
    r = {"Type": "AWS::SSM::Parameter", "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/" + suffix},
                                                       "Type": "String", "Value": value}}
    if meta:
        r["Metadata"] = {"Emulator": meta}
    return r


def change_set(cf, stack_name, template, params=None, cs_type="CREATE", nested=False, **kw):
    cs_name = "cs-" + uuid.uuid4().hex[:6]
    body = template if isinstance(template, str) else json.dumps(template)
    out = cf.create_change_set(StackName=stack_name, ChangeSetName=cs_name, TemplateBody=body, ChangeSetType=cs_type,
                               Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {}).items()],
                               IncludeNestedStacks=nested, **kw)
    return out["Id"]


def deploy(cf, stack_name, template, params=None, cs_type="CREATE", timeout=15.0, **kw):
    cs_id = change_set(cf, stack_name, template, params, cs_type, **kw)
    cf.execute_change_set(ChangeSetName=cs_id)
    return wait_status(cf, stack_name, timeout)


def describe(cf, stack_id):
    return cf.describe_stacks(StackName=stack_id)["Stacks"][0]


def physical(cf, stack_name, lid):
    rows = cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r for r in rows}[lid]["PhysicalResourceId"]


def stack_statuses(cf, stack_id):
    """The stack's own status sequence (its events for itself)."""
    evs = cf.describe_stack_events(StackName=stack_id)["StackEvents"]
    return [e["ResourceStatus"] for e in reversed(evs) if e["LogicalResourceId"] == e["StackName"]]


def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def wait_child(cf, stack_id, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        s = describe(cf, stack_id)
        if not s["StackStatus"].endswith("_IN_PROGRESS"):
            return s
        assert time.monotonic() < deadline, f"stuck in {s['StackStatus']}"
        time.sleep(0.05)


def leaf(extra_resources=None):
    """Grandchild: echoes its parameter, owns one SSM parameter."""
    t = {"Parameters": {"Greeting": {"Type": "String"}},
         "Resources": {"Param": ssm_param({"Ref": "Greeting"})},
         "Outputs": {"Echo": {"Value": {"Fn::Sub": "${Greeting}!"}}, "ParamName": {"Value": {"Ref": "Param"}}}}
    t["Resources"].update(extra_resources or {})
    return t


def middle(leaf_url, extra_resources=None):
    t = {"Parameters": {"Greeting": {"Type": "String"}},
         "Resources": {
             "Leaf": {"Type": NESTED, "Properties": {"TemplateURL": leaf_url,
                                                     "Parameters": {"Greeting": {"Ref": "Greeting"}}}},
             "Own": ssm_param({"Ref": "Greeting"})},
         "Outputs": {"Deep": {"Value": {"Fn::GetAtt": ["Leaf", "Outputs.Echo"]}}}}
    t["Resources"].update(extra_resources or {})
    return t


def root_yaml(child_url, extra=""):
    return f"""
Parameters:
  Greeting: {{Type: String}}
Resources:
  Child:
    Type: AWS::CloudFormation::Stack
    Properties:
      TemplateURL: {child_url}
      Parameters:
        Greeting: !Ref Greeting
      Tags:
        - {{Key: tier, Value: child}}
      TimeoutInMinutes: 5
      NotificationARNs: [arn:aws:sns:us-east-1:123456789012:deploys]
  Consumer:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /${{AWS::StackName}}/consumer
      Type: String
      Value: !GetAtt Child.Outputs.Deep
{extra}
Outputs:
  FromChild:
    Value: !GetAtt Child.Outputs.Deep
"""


def small_child(extra_resources=None):
    t = {"Parameters": {"Greeting": {"Type": "String", "Default": "hi"}},
         "Resources": {"Own": ssm_param({"Ref": "Greeting"})},
         "Outputs": {"Value": {"Value": {"Ref": "Greeting"}}}}
    t["Resources"].update(extra_resources or {})
    return t


def nested_parent(children):
    """Parent with one nested stack per (logical id, url, params)."""
    return {"Resources": {lid: {"Type": NESTED, "Properties": {"TemplateURL": url, "Parameters": params}}
                          for lid, url, params in children}}


# ------------------------------------------------------------------ nested stacks


def test_two_level_nested_create(cf, endpoint, upload):
    leaf_url = upload(leaf(), virtual_hosted=True)  # https://bucket.s3.region.amazonaws.com/key reads moto's S3
    child_url = upload(middle(leaf_url))
    n = name()
    root = deploy(cf, n, root_yaml(child_url), {"Greeting": "hello"}, Tags=[{"Key": "team", "Value": "blue"}])
    assert root["StackStatus"] == "CREATE_COMPLETE", root
    assert outputs(root) == {"FromChild": "hello!"}
    assert "ParentId" not in root and "RootId" not in root

    child_arn = physical(cf, n, "Child")
    child = describe(cf, child_arn)
    assert re.fullmatch(rf"{n}-Child-[A-Z0-9]{{12,13}}", child["StackName"]), child["StackName"]
    assert child["StackId"] == child_arn and child["StackStatus"] == "CREATE_COMPLETE"
    assert (child["ParentId"], child["RootId"]) == (root["StackId"], root["StackId"])
    assert {t["Key"]: t["Value"] for t in child["Tags"]} == {"team": "blue", "tier": "child"}
    assert {p["ParameterKey"]: p["ParameterValue"] for p in child["Parameters"]} == {"Greeting": "hello"}
    assert outputs(child) == {"Deep": "hello!"}
    assert (child["TimeoutInMinutes"], child["NotificationARNs"]) == (5, ["arn:aws:sns:us-east-1:123456789012:deploys"])

    leaf_arn = physical(cf, child_arn, "Leaf")
    grandchild = describe(cf, leaf_arn)
    assert re.fullmatch(rf"{child['StackName']}-Leaf-[A-Z0-9]{{12,13}}", grandchild["StackName"])
    assert (grandchild["ParentId"], grandchild["RootId"]) == (child_arn, root["StackId"])
    assert {t["Key"]: t["Value"] for t in grandchild["Tags"]} == {"team": "blue", "tier": "child"}

    # Each level has its own events; the parent's resource waits for its child.
    assert stack_statuses(cf, n) == ["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    for arn in (child_arn, leaf_arn):
        assert stack_statuses(cf, arn) == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE"]
    assert resource_events(cf, n, "Child") == [
        ("CREATE_IN_PROGRESS", ""), ("CREATE_IN_PROGRESS", "Resource creation Initiated"),
        ("CREATE_COMPLETE", None)]
    assert resource_events(cf, child_arn, "Leaf")[-1] == ("CREATE_COMPLETE", None)
    child_done = [e for e in cf.describe_stack_events(StackName=child_arn)["StackEvents"]
                  if e["LogicalResourceId"] == child["StackName"] and e["ResourceStatus"] == "CREATE_COMPLETE"][0]
    parent_saw = [e for e in cf.describe_stack_events(StackName=n)["StackEvents"]
                  if e["LogicalResourceId"] == "Child" and e["ResourceStatus"] == "CREATE_COMPLETE"][0]
    assert parent_saw["Timestamp"] > child_done["Timestamp"]
    assert parent_saw["PhysicalResourceId"] == child_arn
    rows = {r["LogicalResourceId"]: r for r in cf.list_stack_resources(StackName=n)["StackResourceSummaries"]}
    assert rows["Child"]["ResourceType"] == NESTED and rows["Child"]["ResourceStatus"] == "CREATE_COMPLETE"

    # A resource of the parent used the nested output (it waited for the nested stack).
    ssm = client(endpoint, "ssm")
    assert ssm.get_parameter(Name=physical(cf, n, "Consumer"))["Parameter"]["Value"] == "hello!"
    assert ssm.get_parameter(Name=outputs(grandchild)["ParamName"])["Parameter"]["Value"] == "hello"
    # DescribeStacks without a name lists nested stacks too.
    listed = {s["StackId"] for s in cf.describe_stacks()["Stacks"]}
    assert {root["StackId"], child_arn, leaf_arn} <= listed


def test_delete_removes_nested_stacks(cf, endpoint, upload):
    leaf_url = upload(leaf())
    n = name()
    root = deploy(cf, n, root_yaml(upload(middle(leaf_url))), {"Greeting": "bye"})
    child_arn = physical(cf, n, "Child")
    leaf_arn = physical(cf, child_arn, "Leaf")
    param_name = outputs(describe(cf, leaf_arn))["ParamName"]
    cf.delete_stack(StackName=n)
    assert wait_child(cf, root["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    # Deleted nested stacks stay describable by ARN, with their events and resources.
    for arn in (child_arn, leaf_arn):
        assert describe(cf, arn)["StackStatus"] == "DELETE_COMPLETE"
        assert stack_statuses(cf, arn)[-2:] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
        assert cf.list_stack_resources(StackName=arn)["StackResourceSummaries"] == []
    assert resource_events(cf, root["StackId"], "Child")[-2:] == [("DELETE_IN_PROGRESS", None),
                                                                  ("DELETE_COMPLETE", None)]
    # The child is deleted before the parent's resource completes.
    child_deleted = cf.describe_stack_events(StackName=child_arn)["StackEvents"][0]
    parent_saw = [e for e in cf.describe_stack_events(StackName=root["StackId"])["StackEvents"]
                  if e["LogicalResourceId"] == "Child"][0]
    assert parent_saw["Timestamp"] > child_deleted["Timestamp"]
    with pytest.raises(ClientError):
        client(endpoint, "ssm").get_parameter(Name=param_name)


def test_child_failure_on_create_rolls_back_both(cf, upload):
    failing = small_child({"Bad": ssm_param("x", {"Fail": "boom"})})
    n = name()
    root = deploy(cf, n, nested_parent([("Child", upload(failing), {"Greeting": "x"})]))
    assert root["StackStatus"] == "ROLLBACK_COMPLETE"
    failed = [e for e in cf.describe_stack_events(StackName=n)["StackEvents"]
              if e["LogicalResourceId"] == "Child" and e["ResourceStatus"] == "CREATE_FAILED"][0]
    child_arn = failed["PhysicalResourceId"]
    assert failed["ResourceStatusReason"] == (
        f"Embedded stack {child_arn} was not successfully created: "
        "The following resource(s) failed to create: [Bad]. ")
    assert stack_statuses(cf, n) == ["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS",
                                     "ROLLBACK_COMPLETE"]
    assert [r for (lid, s, r) in events(cf, n) if lid == n and s == "ROLLBACK_IN_PROGRESS"] == [
        "The following resource(s) failed to create: [Child]. Rollback requested by user."]
    # The child rolled itself back, then the parent's rollback deleted it.
    child = describe(cf, child_arn)
    assert child["StackStatus"] == "DELETE_COMPLETE"
    assert stack_statuses(cf, child_arn) == ["CREATE_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE",
                                             "DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert ("CREATE_FAILED", "boom") in resource_events(cf, child_arn, "Bad")
    assert resource_events(cf, n, "Child")[-2:] == [("DELETE_IN_PROGRESS", None), ("DELETE_COMPLETE", None)]


def test_child_failure_on_update_rolls_back_parent_and_children(cf, endpoint, upload):
    n = name()
    v1 = small_child()
    root = deploy(cf, n, nested_parent([("Failing", upload(v1), {"Greeting": "one"}),
                                        ("Sibling", upload(v1), {"Greeting": "one"})]))
    assert root["StackStatus"] == "CREATE_COMPLETE"
    failing_arn, sibling_arn = physical(cf, n, "Failing"), physical(cf, n, "Sibling")
    sibling_param = physical(cf, sibling_arn, "Own")

    v2 = small_child({"Bad": ssm_param("x", {"Fail": "nope", "HoldSeconds": 0.6})})
    s = deploy(cf, n, nested_parent([("Failing", upload(v2), {"Greeting": "two"}),
                                     ("Sibling", upload(v1), {"Greeting": "two"})]), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failed = [r for (st, r) in resource_events(cf, n, "Failing") if st == "UPDATE_FAILED"]
    assert failed == [f"Embedded stack {failing_arn} was not successfully updated. Currently in "
                      "UPDATE_ROLLBACK_IN_PROGRESS with reason: The following resource(s) failed to create: [Bad]."]
    assert [st for (lid, st, _) in events(cf, n) if lid == n][-4:] == [
        "UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE"]
    # The failing child rolled itself back.
    failing = wait_child(cf, failing_arn)
    assert failing["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in failing["Parameters"]} == {"Greeting": "one"}
    assert "Bad" not in {r["LogicalResourceId"]
                         for r in cf.list_stack_resources(StackName=failing_arn)["StackResourceSummaries"]}
    # The sibling had finished its update; it waited for the parent and rolled back with it.
    sibling = wait_child(cf, sibling_arn)
    assert sibling["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert stack_statuses(cf, sibling_arn)[-5:] == [
        "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"]
    assert outputs(sibling) == {"Value": "one"}
    assert client(endpoint, "ssm").get_parameter(Name=sibling_param)["Parameter"]["Value"] == "one"
    assert resource_events(cf, n, "Sibling")[-2:] == [("UPDATE_IN_PROGRESS", ""), ("UPDATE_COMPLETE", None)]


def test_successful_update_cleans_up_children_with_the_parent(cf, endpoint, upload):
    n = name()
    deploy(cf, n, nested_parent([("Child", upload(small_child()), {"Greeting": "a"})]))
    child_arn = physical(cf, n, "Child")
    s = deploy(cf, n, nested_parent([("Child", upload(small_child()), {"Greeting": "b"})]), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    child = describe(cf, child_arn)
    assert child["StackStatus"] == "UPDATE_COMPLETE" and outputs(child) == {"Value": "b"}
    assert stack_statuses(cf, child_arn)[-3:] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                                                  "UPDATE_COMPLETE"]
    child_done = cf.describe_stack_events(StackName=child_arn)["StackEvents"][0]
    root_done = cf.describe_stack_events(StackName=n)["StackEvents"][0]
    assert (root_done["ResourceStatus"], child_done["ResourceStatus"]) == ("UPDATE_COMPLETE", "UPDATE_COMPLETE")
    assert root_done["Timestamp"] > child_done["Timestamp"]
    # Removing the nested resource deletes the child stack.
    s = deploy(cf, n, {"Resources": {"Other": ssm_param("o")}}, cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    assert describe(cf, child_arn)["StackStatus"] == "DELETE_COMPLETE"


def test_cancel_update_rolls_back_the_tree(cf, upload):
    n = name()
    deploy(cf, n, nested_parent([("Child", upload(small_child()), {"Greeting": "a"})]))
    child_arn = physical(cf, n, "Child")
    slow = small_child({"Slow": ssm_param("s", {"HoldSeconds": 3})})
    cs_id = change_set(cf, n, nested_parent([("Child", upload(slow), {"Greeting": "b"})]), cs_type="UPDATE")
    cf.execute_change_set(ChangeSetName=cs_id)
    deadline = time.monotonic() + 5
    while ("CREATE_IN_PROGRESS", "Resource creation Initiated") not in resource_events(cf, child_arn, "Slow"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cf.cancel_update_stack(StackName=n)
    assert wait_child(cf, n)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert ("UPDATE_FAILED", "Resource update cancelled") in resource_events(cf, n, "Child")
    child = wait_child(cf, child_arn)
    assert child["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert ("CREATE_FAILED", "Resource creation cancelled") in resource_events(cf, child_arn, "Slow")
    assert outputs(child) == {"Value": "a"}


def test_nested_parameters_must_be_simple_values(cf, upload):
    with pytest.raises(ClientError) as ei:
        change_set(cf, name(), nested_parent([("Child", upload(small_child()), {"Greeting": ["a", "b"]})]))
    assert err(ei)[:2] == ("ValidationError", "Value of property Parameters must be an object with String "
                                              "(or simple type) properties")


# ------------------------------------------------------------------ change sets


def test_unchanged_redeploy_is_a_no_change_change_set(cf, upload):
    n = name()
    template = root_yaml(upload(middle(upload(leaf()))))
    deploy(cf, n, template, {"Greeting": "same"})
    child_arn = physical(cf, n, "Child")
    # A packager re-uploads unchanged sources to the same content-addressed keys.
    template_again = root_yaml(upload(middle(upload(leaf()))))
    assert template_again == template
    for nested in (False, True):
        cs_id = change_set(cf, n, template_again, {"Greeting": "same"}, "UPDATE", nested=nested)
        cs = cf.describe_change_set(ChangeSetName=cs_id)
        assert (cs["Status"], cs["StatusReason"], cs["Changes"]) == ("FAILED", NO_CHANGES, [])
        cf.delete_change_set(ChangeSetName=cs_id)
    assert cf.list_change_sets(StackName=child_arn)["Summaries"] == []


def test_parent_change_modifies_every_nested_stack(cf, upload):
    n = name()
    child_url = upload(small_child())
    deploy(cf, n, nested_parent([("A", child_url, {"Greeting": "a"}), ("B", child_url, {"Greeting": "b"})]))
    t = nested_parent([("A", child_url, {"Greeting": "a"}), ("B", child_url, {"Greeting": "b2"})])
    t["Resources"]["New"] = ssm_param("n")
    cs = cf.describe_change_set(ChangeSetName=change_set(cf, n, t, cs_type="UPDATE"))
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in cs["Changes"]}
    assert changes["A"] == {
        "Action": "Modify", "LogicalResourceId": "A", "PhysicalResourceId": physical(cf, n, "A"),
        "ResourceType": NESTED, "Replacement": "False", "Scope": ["Properties"],
        "Details": [{"Target": {"Attribute": "Properties", "RequiresRecreation": "Never"},
                     "Evaluation": "Dynamic", "ChangeSource": "Automatic"}]}
    assert changes["B"]["Details"] == [{"Target": {"Attribute": "Properties", "Name": "Parameters",
                                                   "RequiresRecreation": "Never"},
                                        "Evaluation": "Static", "ChangeSource": "DirectModification"}]
    assert changes["New"]["Action"] == "Add"
    assert "ChangeSetId" not in changes["A"] and cs["IncludeNestedStacks"] is False


def test_include_nested_stacks_change_sets_executed_from_the_root(cf, endpoint, upload):
    n = name()
    leaf_url = upload(leaf())
    deploy(cf, n, root_yaml(upload(middle(leaf_url))), {"Greeting": "v1"})
    root_id = describe(cf, n)["StackId"]
    child_arn = physical(cf, n, "Child")
    leaf_arn = physical(cf, child_arn, "Leaf")
    # The child gains a resource; the parent gains a nested stack; the leaf is unchanged.
    child_v2 = middle(leaf_url, {"Extra": ssm_param("extra")})
    added = "  Added:\n    Type: AWS::CloudFormation::Stack\n    Properties:\n" \
            f"      TemplateURL: {upload(small_child())}\n      Parameters: {{Greeting: !Ref Greeting}}\n"
    cs_id = change_set(cf, n, root_yaml(upload(child_v2), added), {"Greeting": "v1"}, "UPDATE", nested=True)

    root_cs = cf.describe_change_set(ChangeSetName=cs_id)
    assert (root_cs["Status"], root_cs["ExecutionStatus"], root_cs["IncludeNestedStacks"]) == (
        "CREATE_COMPLETE", "AVAILABLE", True)
    assert "ParentChangeSetId" not in root_cs and "RootChangeSetId" not in root_cs
    summary = [s for s in cf.list_change_sets(StackName=n)["Summaries"] if s["ChangeSetId"] == cs_id][0]
    assert summary["IncludeNestedStacks"] is True
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in root_cs["Changes"]}
    assert changes["Child"]["Action"] == "Modify" and changes["Added"]["Action"] == "Add"
    assert changes["Child"]["Details"][0]["Target"]["Name"] == "TemplateURL"

    child_cs = cf.describe_change_set(ChangeSetName=changes["Child"]["ChangeSetId"])
    assert (child_cs["StackId"], child_cs["ParentChangeSetId"], child_cs["RootChangeSetId"]) == (
        child_arn, cs_id, cs_id)
    assert (child_cs["Status"], child_cs["ExecutionStatus"], child_cs["StatusReason"]) == (
        "CREATE_COMPLETE", "UNAVAILABLE", "Executable from root change set")
    assert child_cs["IncludeNestedStacks"] is True
    child_changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in child_cs["Changes"]}
    assert child_changes["Extra"]["Action"] == "Add"
    assert child_changes["Leaf"]["Details"][0]["ChangeSource"] == "Automatic"
    assert set(child_changes) == {"Extra", "Leaf"}

    leaf_cs = cf.describe_change_set(ChangeSetName=child_changes["Leaf"]["ChangeSetId"])
    assert (leaf_cs["StackId"], leaf_cs["ParentChangeSetId"], leaf_cs["RootChangeSetId"]) == (
        leaf_arn, child_cs["ChangeSetId"], cs_id)
    assert leaf_cs["Changes"] == []

    added_cs = cf.describe_change_set(ChangeSetName=changes["Added"]["ChangeSetId"])
    review = describe(cf, added_cs["StackId"])
    assert review["StackStatus"] == "REVIEW_IN_PROGRESS" and review["ParentId"] == root_id
    assert [c["ResourceChange"]["Action"] for c in added_cs["Changes"]] == ["Add"]

    with pytest.raises(ClientError) as ei:
        cf.execute_change_set(ChangeSetName=child_cs["ChangeSetId"])
    assert err(ei)[0] == "ValidationError" and "Executable from root change set" in err(ei)[1]

    cf.execute_change_set(ChangeSetName=cs_id)
    root = wait_status(cf, n, 15)
    assert root["StackStatus"] == "UPDATE_COMPLETE"
    assert physical(cf, n, "Added") == review["StackId"]  # the reviewed stack is the one created
    assert describe(cf, review["StackId"])["StackStatus"] == "CREATE_COMPLETE"
    assert "Extra" in {r["LogicalResourceId"] for r in cf.list_stack_resources(StackName=child_arn)["StackResourceSummaries"]}
    assert describe(cf, leaf_arn)["StackStatus"] == "UPDATE_COMPLETE"
    for arn in (cs_id, child_cs["ChangeSetId"], leaf_cs["ChangeSetId"], added_cs["ChangeSetId"]):
        assert cf.describe_change_set(ChangeSetName=arn)["ExecutionStatus"] == "EXECUTE_COMPLETE"


def test_create_change_set_with_nested_stacks_reviews_the_whole_tree(cf, upload):
    n = name()
    cs_id = change_set(cf, n, root_yaml(upload(middle(upload(leaf())))), {"Greeting": "new"}, nested=True)
    root_cs = cf.describe_change_set(ChangeSetName=cs_id)
    child_cs = cf.describe_change_set(ChangeSetName=root_cs["Changes"][0]["ResourceChange"]["ChangeSetId"])
    assert root_cs["Changes"][0]["ResourceChange"]["LogicalResourceId"] == "Child"
    leaf_change = [c["ResourceChange"] for c in child_cs["Changes"] if c["ResourceChange"]["LogicalResourceId"] == "Leaf"][0]
    leaf_cs = cf.describe_change_set(ChangeSetName=leaf_change["ChangeSetId"])
    child_review, leaf_review = describe(cf, child_cs["StackId"]), describe(cf, leaf_cs["StackId"])
    assert (child_review["StackStatus"], child_review["ParentId"]) == ("REVIEW_IN_PROGRESS", root_cs["StackId"])
    assert (leaf_review["ParentId"], leaf_review["RootId"]) == (child_review["StackId"], root_cs["StackId"])
    assert {p["ParameterKey"]: p["ParameterValue"] for p in leaf_cs["Parameters"]} == {"Greeting": "new"}
    assert (leaf_cs["RootChangeSetId"], [c["ResourceChange"]["Action"] for c in leaf_cs["Changes"]]) == (cs_id, ["Add"])
    cf.execute_change_set(ChangeSetName=cs_id)
    root = wait_status(cf, n, 15)
    assert root["StackStatus"] == "CREATE_COMPLETE" and outputs(root) == {"FromChild": "new!"}
    assert physical(cf, n, "Child") == child_review["StackId"]
    assert physical(cf, child_review["StackId"], "Leaf") == leaf_review["StackId"]
    assert stack_statuses(cf, leaf_review["StackId"]) == ["REVIEW_IN_PROGRESS", "CREATE_IN_PROGRESS",
                                                          "CREATE_COMPLETE"]


def test_deleting_the_root_change_set_deletes_the_nested_ones(cf, upload):
    n = name()
    deploy(cf, n, nested_parent([("Child", upload(small_child()), {"Greeting": "a"})]))
    t = nested_parent([("Child", upload(small_child()), {"Greeting": "b"}),
                       ("Fresh", upload(small_child()), {})])
    cs_id = change_set(cf, n, t, cs_type="UPDATE", nested=True)
    changes = {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]
               for c in cf.describe_change_set(ChangeSetName=cs_id)["Changes"]}
    child_cs_id, fresh_cs_id = changes["Child"]["ChangeSetId"], changes["Fresh"]["ChangeSetId"]
    fresh_stack = cf.describe_change_set(ChangeSetName=fresh_cs_id)["StackId"]
    assert describe(cf, fresh_stack)["StackStatus"] == "REVIEW_IN_PROGRESS"
    with pytest.raises(ClientError) as ei:
        cf.delete_change_set(ChangeSetName=child_cs_id)
    assert err(ei)[0] == "ValidationError"
    cf.delete_change_set(ChangeSetName=cs_id)
    for arn in (cs_id, child_cs_id, fresh_cs_id):
        with pytest.raises(ClientError) as ei:
            cf.describe_change_set(ChangeSetName=arn)
        assert err(ei)[0] == "ChangeSetNotFound"
    assert describe(cf, fresh_stack)["StackStatus"] == "DELETE_COMPLETE"
    assert describe(cf, physical(cf, n, "Child"))["StackStatus"] == "CREATE_COMPLETE"


def test_nested_change_set_failure_fails_the_root(cf, endpoint, bucket, upload):
    n = name()
    deploy(cf, n, nested_parent([("Child", upload(small_child()), {"Greeting": "a"})]))
    missing = f"{endpoint}/{bucket}/tpl/missing.template"
    cs_id = change_set(cf, n, nested_parent([("Child", missing, {"Greeting": "a"})]), cs_type="UPDATE", nested=True)
    root_cs = cf.describe_change_set(ChangeSetName=cs_id)
    nested_id = root_cs["Changes"][0]["ResourceChange"]["ChangeSetId"]
    assert (root_cs["Status"], root_cs["StatusReason"]) == (
        "FAILED", f"Nested change set {nested_id} was not successfully created: Currently in FAILED.")
    nested_cs = cf.describe_change_set(ChangeSetName=nested_id)
    assert nested_cs["Status"] == "FAILED"
    assert nested_cs["StatusReason"].startswith("S3 error: The specified key does not exist.")


# ------------------------------------------------------------------ AWS::Include


def put_snippet(s3, bucket, key, text):
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
    return f"s3://{bucket}/{key}"


def test_aws_include_from_s3(cf, endpoint, s3, bucket):
    props = put_snippet(s3, bucket, "snip/props.yaml", "Type: String\nDescription: included\n")
    value = put_snippet(s3, bucket, "snip/value.json", json.dumps({"Fn::Sub": "${AWS::Region}-v"}))
    outs = put_snippet(s3, bucket, "snip/top.yaml", "Outputs:\n  Top:\n    Value: from-top\n")
    template = f"""
Transform:
  Name: AWS::Include
  Parameters: {{Location: {outs}}}
Resources:
  P:
    Type: AWS::SSM::Parameter
    Properties:
      Name: !Sub /${{AWS::StackName}}/p
      Value: !Transform {{Name: AWS::Include, Parameters: {{Location: {value}}}}}
      Fn::Transform:
        Name: AWS::Include
        Parameters:
          Location: {props}
Outputs:
  V:
    Value: !Ref P
"""
    n = name()
    s = deploy(cf, n, template)
    assert s["StackStatus"] == "CREATE_COMPLETE", s
    assert outputs(s) == {"V": f"/{n}/p", "Top": "from-top"}
    param = client(endpoint, "ssm").get_parameter(Name=physical(cf, n, "P"))["Parameter"]
    assert (param["Type"], param["Value"]) == ("String", "us-east-1-v")
    processed = cf.get_template(StackName=n, TemplateStage="Processed")["TemplateBody"]  # botocore parses JSON
    assert processed["Resources"]["P"]["Properties"] == {
        "Name": {"Fn::Sub": "/${AWS::StackName}/p"}, "Value": {"Fn::Sub": "${AWS::Region}-v"},
        "Type": "String", "Description": "included"}
    assert "Transform" not in processed
    assert "AWS::Include" in cf.get_template(StackName=n, TemplateStage="Original")["TemplateBody"]


def test_aws_include_failures_fail_the_change_set(cf, s3, bucket):
    short_form = put_snippet(s3, bucket, "snip/short.yaml", "Value: !Ref AWS::Region\n")
    cases = [
        (f"s3://{bucket}/snip/absent.yaml",
         f"Transform AWS::Include failed with: S3 object [s3://{bucket}/snip/absent.yaml] does not exist."),
        ("s3://no-such-bucket-x9/a.yaml", "Transform AWS::Include failed with: S3 bucket [no-such-bucket-x9] does not exist."),
        (short_form, "Transform AWS::Include failed with: The specified S3 object's content should be valid Yaml/JSON"),
        ("https://example.com/a.yaml", "Transform AWS::Include failed with: The location parameter is not a valid S3 uri."),
    ]
    for location, reason in cases:
        n = name()
        t = {"Resources": {"P": ssm_param("v")}}
        t["Resources"]["P"]["Properties"]["Fn::Transform"] = {"Name": "AWS::Include",
                                                              "Parameters": {"Location": location}}
        cs = cf.describe_change_set(ChangeSetName=change_set(cf, n, t))
        assert (cs["Status"], cs["ExecutionStatus"], cs["StatusReason"]) == ("FAILED", "UNAVAILABLE", reason)
        assert describe(cf, n)["StackStatus"] == "REVIEW_IN_PROGRESS"
    # CreateStack: nothing is created, the stack rolls back with the transform's reason.
    n = name()
    cf.create_stack(StackName=n, TemplateBody=json.dumps(t))
    s = wait_status(cf, n)
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    assert [r for (lid, st, r) in events(cf, n)] == [
        cases[-1][1], cases[-1][1].rstrip(".") + ". Rollback requested by user.", None]


# ------------------------------------------------------------------ Lambda code from S3


def zipped(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", source)
    return buf.getvalue()


def lambda_template(bucket, key):
    return {"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}}},
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"S3Bucket": bucket, "S3Key": key}}}},
        "Outputs": {"Name": {"Value": {"Ref": "Fn"}}}}


def test_lambda_function_from_an_s3_zip(cf, endpoint, s3, bucket):
    lam = client(endpoint, "lambda")
    v1, v2 = zipped("def handler(e, c):\n    return 1\n"), zipped("def handler(e, c):\n    return 2\n")
    s3.put_object(Bucket=bucket, Key="code/v1.zip", Body=v1)
    s3.put_object(Bucket=bucket, Key="code/v2.zip", Body=v2)
    n = name()
    s = deploy(cf, n, lambda_template(bucket, "code/v1.zip"), Capabilities=["CAPABILITY_IAM"])
    assert s["StackStatus"] == "CREATE_COMPLETE", s
    fn = lam.get_function(FunctionName=outputs(s)["Name"])["Configuration"]
    assert (fn["CodeSize"], fn["CodeSha256"]) == (len(v1), base64.b64encode(hashlib.sha256(v1).digest()).decode())
    s = deploy(cf, n, lambda_template(bucket, "code/v2.zip"), cs_type="UPDATE", Capabilities=["CAPABILITY_IAM"])
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    fn = lam.get_function(FunctionName=outputs(s)["Name"])["Configuration"]
    assert fn["CodeSha256"] == base64.b64encode(hashlib.sha256(v2).digest()).decode()

    # A zip that is not there fails the function (moto used to create it with no code).
    n = name()
    s = deploy(cf, n, lambda_template(bucket, "code/absent.zip"), Capabilities=["CAPABILITY_IAM"])
    assert s["StackStatus"] == "ROLLBACK_COMPLETE"
    assert ("CREATE_FAILED", 'Resource handler returned message: "Error occurred while GetObject. S3 Error Code: '
            'NoSuchKey. S3 Error Message: The specified key does not exist."') in resource_events(cf, n, "Fn")
    with pytest.raises(ClientError) as ei:
        lam.create_function(FunctionName="f-" + uuid.uuid4().hex[:6], Runtime="python3.12", Handler="index.handler",
                            Role="arn:aws:iam::123456789012:role/any", Code={"S3Bucket": bucket, "S3Key": "nope.zip"})
    assert err(ei)[0] == "InvalidParameterValueException"

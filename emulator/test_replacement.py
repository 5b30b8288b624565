"""Updates that require replacement, as CloudFormation runs them: the new physical resource is
created (Ref/GetAtt, outputs and the service itself see it), the old one is deleted during
UPDATE_COMPLETE_CLEANUP_IN_PROGRESS; a rollback deletes the new one instead; a custom name that
would stay the same fails the update."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid

import pytest

from emulator.testing import client, running_emulator
from emulator.test_emulator import wait_status

NESTED = "AWS::CloudFormation::Stack"
REQUESTED = "Requested update requires the creation of a new physical resource; hence creating one."
INITIATED = "Resource creation Initiated"


@pytest.fixture(scope="module")
def endpoint():
    with running_emulator() as url:
        # ECS services stabilise within a few steps: fast steps keep the ECS test short.
        req = urllib.request.Request(url + "/_emulator/ecs-speed", data=json.dumps({"stepSeconds": 0.05}).encode(),
                                     method="POST")
        urllib.request.urlopen(req).read()
        yield url



@pytest.fixture(scope="module")
def cf(endpoint):
    return client(endpoint, "cloudformation")


@pytest.fixture(scope="module")
def sqs(endpoint):
    return client(endpoint, "sqs")


def uid() -> str:
    return uuid.uuid4().hex[:8]


def deploy(cf, stack_name, template, params=None, cs_type="CREATE", timeout=20.0):
    """Change set + execute, as the deploy tool does; returns (stack, change set description)."""
    cs_name = "cs-" + uid()
    cf.create_change_set(StackName=stack_name, ChangeSetName=cs_name, TemplateBody=json.dumps(template),
                         ChangeSetType=cs_type,
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (params or {}).items()])
    described = cf.describe_change_set(StackName=stack_name, ChangeSetName=cs_name)
    cf.execute_change_set(StackName=stack_name, ChangeSetName=cs_name)
    return wait_status(cf, stack_name, timeout), described


def changes(described):
    return {c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"] for c in described["Changes"]}


def rows(cf, stack_name):
    """Chronological (logical id, status, physical id, reason) of the stack's events."""
    evs = cf.describe_stack_events(StackName=stack_name)["StackEvents"]
    return [(e["LogicalResourceId"], e["ResourceStatus"], e["PhysicalResourceId"], e.get("ResourceStatusReason"))
            for e in reversed(evs)]


def since(cf, stack_name, status):
    """The events after the stack's last event of that status."""
    ev = rows(cf, stack_name)
    own = cf.describe_stacks(StackName=stack_name)["Stacks"][0]["StackName"]  # stack_name may be an ARN
    at = max(i for i, e in enumerate(ev) if e[0] == own and e[1] == status)
    return ev[at + 1:]


def of(ev, lid):
    return [(status, physical, reason) for (logical, status, physical, reason) in ev if logical == lid]


def resource(cf, stack_name, lid):
    rows_ = cf.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r for r in rows_}[lid]


def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def queue_names(sqs, prefix):
    return sorted(url.rsplit("/", 1)[1] for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []))


def queue_template(queue_name, extra=None, queue_props=None):
    t = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": queue_name, **(queue_props or {})}},
                       # A dependent: its Value Refs the queue, so it follows the new URL.
                       "Url": {"Type": "AWS::SSM::Parameter",
                               "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/url"}, "Type": "String",
                                              "Value": {"Ref": "Queue"}}}},
         "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}, "Url": {"Value": {"Ref": "Queue"}}}}
    t["Resources"].update(extra or {})
    return t


# ------------------------------------------------------------------ replacement and cleanup


def test_renamed_queue_is_replaced_and_the_old_one_deleted_in_cleanup(endpoint, cf, sqs):
    n, q = "st-" + uid(), "q" + uid()
    s, _ = deploy(cf, n, queue_template(f"{q}-orders"))
    assert s["StackStatus"] == "CREATE_COMPLETE"
    old_url = outputs(s)["Url"]
    assert old_url.endswith(f"/{q}-orders") and resource(cf, n, "Queue")["PhysicalResourceId"] == old_url

    s, described = deploy(cf, n, queue_template(f"{q}-invoices"), cs_type="UPDATE")
    assert changes(described)["Queue"]["Replacement"] == "True"
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    new_url = outputs(s)["Url"]
    assert outputs(s) == {"QueueName": f"{q}-invoices", "Url": new_url} and new_url.endswith(f"/{q}-invoices")
    row = resource(cf, n, "Queue")
    assert (row["PhysicalResourceId"], row["ResourceStatus"]) == (new_url, "UPDATE_COMPLETE")
    # SQS has the new queue only; the dependent parameter was updated to the new URL.
    assert queue_names(sqs, q) == [f"{q}-invoices"]
    ssm = client(endpoint, "ssm")
    assert ssm.get_parameter(Name=f"/{n}/url")["Parameter"]["Value"] == new_url

    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    assert of(ev, "Queue") == [("UPDATE_IN_PROGRESS", old_url, REQUESTED), ("UPDATE_IN_PROGRESS", new_url, INITIATED),
                               ("UPDATE_COMPLETE", new_url, None),
                               ("DELETE_IN_PROGRESS", old_url, None), ("DELETE_COMPLETE", old_url, None)]
    order = [(lid, status) for lid, status, _, _ in ev]
    assert order.index((n, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")) < order.index(("Queue", "DELETE_IN_PROGRESS"))
    assert order.index(("Queue", "DELETE_COMPLETE")) < order.index((n, "UPDATE_COMPLETE"))
    assert order.index(("Url", "UPDATE_COMPLETE")) < order.index((n, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"))

    # The next update and the stack's deletion work on the new queue.
    s, _ = deploy(cf, n, queue_template(f"{q}-orders"), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE" and queue_names(sqs, q) == [f"{q}-orders"]
    cf.delete_stack(StackName=n)
    assert wait_status(cf, s["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert queue_names(sqs, q) == []


def test_conditional_replacement_follows_the_replaced_resource(endpoint, cf, sqs):
    """A property that requires replacement and GetAtts a replaced resource: the change set says
    Conditional; the resource is replaced when its value really changes, updated in place when not."""
    n, q = "st-" + uid(), "q" + uid()
    logs = client(endpoint, "logs")

    def template(queue, retention):
        return queue_template(queue, extra={
            "Logs": {"Type": "AWS::Logs::LogGroup",
                     "Properties": {"LogGroupName": {"Fn::Sub": "/app/${Queue.QueueName}"}}},
            "Other": {"Type": "AWS::Logs::LogGroup", "Metadata": {"Emulator": {"Replacement": "Conditional"}},
                      "Properties": {"LogGroupName": f"/other/{q}", "RetentionInDays": retention}}})

    deploy(cf, n, template(f"{q}-a", 7))
    s, described = deploy(cf, n, template(f"{q}-b", 14), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    ch = changes(described)
    assert ch["Logs"]["Replacement"] == "Conditional" and ch["Other"]["Replacement"] == "Conditional"
    groups = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/app/" + q)["logGroups"]]
    assert groups == [f"/app/{q}-b"]
    assert resource(cf, n, "Logs")["PhysicalResourceId"] == f"/app/{q}-b"
    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    assert of(ev, "Logs")[0] == ("UPDATE_IN_PROGRESS", f"/app/{q}-a", REQUESTED)
    assert of(ev, "Logs")[-2:] == [("DELETE_IN_PROGRESS", f"/app/{q}-a", None), ("DELETE_COMPLETE", f"/app/{q}-a", None)]
    # Other's name did not change: updated in place (no replacement events, same physical id).
    assert of(ev, "Other") == [("UPDATE_IN_PROGRESS", f"/other/{q}", ""), ("UPDATE_COMPLETE", f"/other/{q}", None)]
    other = logs.describe_log_groups(logGroupNamePrefix=f"/other/{q}")["logGroups"]
    assert [g["logGroupName"] for g in other] == [f"/other/{q}"]  # (moto's LogGroup has no in-place update)


def test_replaced_placeholder_gets_a_new_physical_id(endpoint, cf):
    """Types the emulator only pretends to create (Custom::...) get a new made-up id when replaced,
    so what Refs them changes too."""
    n = "st-" + uid()

    def template(size):
        return {"Resources": {
            "Thing": {"Type": "Custom::Thing", "Metadata": {"Emulator": {"Replacement": "True"}},
                      "Properties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f", "Size": size}},
            "Ref": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/thing"},
                                                                 "Type": "String", "Value": {"Ref": "Thing"}}}},
            "Outputs": {"Thing": {"Value": {"Ref": "Thing"}}}}

    s, _ = deploy(cf, n, template("1"))
    old = outputs(s)["Thing"]
    s, _ = deploy(cf, n, template("2"), cs_type="UPDATE")
    new = outputs(s)["Thing"]
    assert s["StackStatus"] == "UPDATE_COMPLETE" and new != old and new.startswith(f"{n}-Thing-")
    assert resource(cf, n, "Thing")["PhysicalResourceId"] == new
    assert client(endpoint, "ssm").get_parameter(Name=f"/{n}/thing")["Parameter"]["Value"] == new
    assert of(since(cf, n, "UPDATE_IN_PROGRESS"), "Thing") == [
        ("UPDATE_IN_PROGRESS", old, REQUESTED), ("UPDATE_IN_PROGRESS", new, INITIATED), ("UPDATE_COMPLETE", new, None),
        ("DELETE_IN_PROGRESS", old, None), ("DELETE_COMPLETE", old, None)]


# ------------------------------------------------------------------ rollback


def test_replacement_then_a_failing_resource_rolls_back_to_the_old_queue(endpoint, cf, sqs):
    n, q = "st-" + uid(), "q" + uid()
    s, _ = deploy(cf, n, queue_template(f"{q}-orders"))
    old_url = outputs(s)["Url"]
    bad = {"Bad": {"Type": "AWS::SSM::Parameter", "DependsOn": "Url",  # starts once the queue was replaced
                   "Metadata": {"Emulator": {"Fail": "Boom"}},
                   "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/bad"}, "Type": "String", "Value": "v"}}}
    s, _ = deploy(cf, n, queue_template(f"{q}-invoices", extra=bad), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert outputs(s) == {"QueueName": f"{q}-orders", "Url": old_url}
    row = resource(cf, n, "Queue")
    assert (row["PhysicalResourceId"], row["ResourceStatus"]) == (old_url, "UPDATE_COMPLETE")
    assert queue_names(sqs, q) == [f"{q}-orders"]  # the new queue was deleted
    assert client(endpoint, "ssm").get_parameter(Name=f"/{n}/url")["Parameter"]["Value"] == old_url

    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    queue = of(ev, "Queue")
    new_url = queue[1][1]
    assert new_url.endswith(f"/{q}-invoices")
    assert queue[:3] == [("UPDATE_IN_PROGRESS", old_url, REQUESTED), ("UPDATE_IN_PROGRESS", new_url, INITIATED),
                         ("UPDATE_COMPLETE", new_url, None)]
    assert queue[3:] == [("UPDATE_IN_PROGRESS", old_url, ""), ("UPDATE_COMPLETE", old_url, None),  # back to the old queue
                         ("DELETE_IN_PROGRESS", new_url, None), ("DELETE_COMPLETE", new_url, None)]
    order = [(lid, status) for lid, status, _, _ in ev]
    assert order.index((n, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")) < order.index(("Queue", "DELETE_IN_PROGRESS"))
    assert order.index(("Queue", "DELETE_COMPLETE")) < order.index((n, "UPDATE_ROLLBACK_COMPLETE"))

    # The stack is consistent: renaming again works and cleans up the old queue.
    s, _ = deploy(cf, n, queue_template(f"{q}-invoices"), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE" and queue_names(sqs, q) == [f"{q}-invoices"]


CUSTOM_NAME = ("CloudFormation cannot update a stack when a custom-named resource requires replacing. "
               "Rename {} and update the stack again.")


def test_custom_named_resource_cannot_be_replaced_under_the_same_name(endpoint, cf, sqs):
    n, q = "st-" + uid(), "q" + uid()
    s, _ = deploy(cf, n, queue_template(q))
    url = outputs(s)["Url"]
    # FifoQueue requires replacement; the QueueName stays: AWS refuses the update.
    s, described = deploy(cf, n, queue_template(q, queue_props={"FifoQueue": False}), cs_type="UPDATE")
    assert changes(described)["Queue"]["Replacement"] == "True"
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    assert [e for e in ev if e[0] == n][0] == (n, "UPDATE_ROLLBACK_IN_PROGRESS", s["StackId"],
                                              "The following resource(s) failed to update: [Queue]. ")
    assert of(ev, "Queue") == [("UPDATE_IN_PROGRESS", url, REQUESTED), ("UPDATE_FAILED", url, CUSTOM_NAME.format(q)),
                               ("UPDATE_IN_PROGRESS", url, ""), ("UPDATE_COMPLETE", url, None)]
    assert queue_names(sqs, q) == [q] and outputs(s)["Url"] == url

    # Any type with a custom name: a security group whose description (replacement) changes.
    ec2 = client(endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    g = "sg-" + uid()

    def sg(description):
        return {"Resources": {"Group": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupName": g, "GroupDescription": description, "VpcId": vpc}}}}

    n2 = "st-" + uid()
    deploy(cf, n2, sg("first"))
    group_id = resource(cf, n2, "Group")["PhysicalResourceId"]
    s, _ = deploy(cf, n2, sg("second"), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert ("UPDATE_FAILED", group_id, CUSTOM_NAME.format(g)) in of(rows(cf, n2), "Group")
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [g]}])["SecurityGroups"]
    assert [(x["GroupId"], x["Description"]) for x in found] == [(group_id, "first")]

    # A new name is fine.
    s, _ = deploy(cf, n, queue_template(q + "-2", queue_props={"FifoQueue": False}), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE" and queue_names(sqs, q) == [q + "-2"]


# ------------------------------------------------------------------ nested stacks


@pytest.fixture(scope="module")
def upload(endpoint):
    s3 = client(endpoint, "s3")
    bucket = "pkg-" + uid()
    s3.create_bucket(Bucket=bucket)

    def put(template):
        body = json.dumps(template)
        key = f"tpl/{hashlib.md5(body.encode()).hexdigest()}.template"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        return f"{endpoint}/{bucket}/{key}"

    return put


def test_queue_renamed_in_a_nested_grandchild(endpoint, cf, sqs, upload):
    """The deploy tool's case: the root passes the queue name down two nested stacks; renaming it
    replaces the grandchild's queue, the new name comes back up through the outputs, and the old
    queue is deleted when the tree cleans up."""
    leaf = {"Parameters": {"QueueName": {"Type": "String"}},
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "QueueName"}}}},
            "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Queue", "QueueName"]}},
                        "QueueUrl": {"Value": {"Ref": "Queue"}}}}
    middle = {"Parameters": {"QueueName": {"Type": "String"}},
              "Resources": {"Leaf": {"Type": NESTED, "Properties": {
                  "TemplateURL": upload(leaf), "Parameters": {"QueueName": {"Ref": "QueueName"}}}}},
              "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Leaf", "Outputs.QueueName"]}},
                          "QueueUrl": {"Value": {"Fn::GetAtt": ["Leaf", "Outputs.QueueUrl"]}}}}
    root = {"Parameters": {"QueueName": {"Type": "String"}},
            "Resources": {"Child": {"Type": NESTED, "Properties": {
                "TemplateURL": upload(middle), "Parameters": {"QueueName": {"Ref": "QueueName"}}}}},
            "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Child", "Outputs.QueueName"]}},
                        "QueueUrl": {"Value": {"Fn::GetAtt": ["Child", "Outputs.QueueUrl"]}}}}
    n, q = "nst-" + uid(), "q" + uid()
    s, _ = deploy(cf, n, root, {"QueueName": f"{q}-orders"})
    assert s["StackStatus"] == "CREATE_COMPLETE" and outputs(s)["QueueName"] == f"{q}-orders"
    old_url = outputs(s)["QueueUrl"]
    child = resource(cf, n, "Child")["PhysicalResourceId"]
    grandchild = resource(cf, child, "Leaf")["PhysicalResourceId"]

    s, _ = deploy(cf, n, root, {"QueueName": f"{q}-invoices"}, cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE"
    assert outputs(s)["QueueName"] == f"{q}-invoices"
    new_url = outputs(s)["QueueUrl"]
    assert new_url.endswith(f"/{q}-invoices")
    # By the time the root is UPDATE_COMPLETE the whole tree has cleaned up.
    for stack_id in (child, grandchild):
        assert cf.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    assert queue_names(sqs, q) == [f"{q}-invoices"]
    assert resource(cf, grandchild, "Queue")["PhysicalResourceId"] == new_url
    ev = since(cf, grandchild, "UPDATE_IN_PROGRESS")
    assert of(ev, "Queue") == [("UPDATE_IN_PROGRESS", old_url, REQUESTED), ("UPDATE_IN_PROGRESS", new_url, INITIATED),
                               ("UPDATE_COMPLETE", new_url, None),
                               ("DELETE_IN_PROGRESS", old_url, None), ("DELETE_COMPLETE", old_url, None)]
    # The nested stacks themselves are updated, never replaced.
    assert resource(cf, n, "Child")["PhysicalResourceId"] == child
    assert resource(cf, child, "Leaf")["PhysicalResourceId"] == grandchild
    assert all(reason != REQUESTED for _, _, _, reason in rows(cf, n) + rows(cf, child))


def test_nested_replacement_rolled_back_with_the_root(endpoint, cf, sqs, upload):
    """The root fails after the child replaced its queue: the child rolls back to the old queue
    and deletes the new one."""
    leaf = {"Parameters": {"QueueName": {"Type": "String"}},
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "QueueName"}}}},
            "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Queue", "QueueName"]},
                                      "Export": {"Name": {"Fn::Sub": "${AWS::StackName}-queue"}}}}}
    url = upload(leaf)

    def root(fail):
        t = {"Parameters": {"QueueName": {"Type": "String"}},
             "Resources": {"Child": {"Type": NESTED, "Properties": {
                 "TemplateURL": url, "Parameters": {"QueueName": {"Ref": "QueueName"}}}}},
             "Outputs": {"QueueName": {"Value": {"Fn::GetAtt": ["Child", "Outputs.QueueName"]}}}}
        if fail:
            t["Resources"]["Bad"] = {"Type": "AWS::SSM::Parameter", "DependsOn": "Child",
                                     "Metadata": {"Emulator": {"Fail": "Boom"}},
                                     "Properties": {"Name": {"Fn::Sub": "/${AWS::StackName}/bad"}, "Type": "String",
                                                    "Value": "v"}}
        return t

    n, q = "nst-" + uid(), "q" + uid()
    deploy(cf, n, root(False), {"QueueName": f"{q}-orders"})
    child = resource(cf, n, "Child")["PhysicalResourceId"]
    old_url = resource(cf, child, "Queue")["PhysicalResourceId"]
    s, _ = deploy(cf, n, root(True), {"QueueName": f"{q}-invoices"}, cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert outputs(s) == {"QueueName": f"{q}-orders"}
    c = wait_status(cf, child)
    assert c["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE" and outputs(c) == {"QueueName": f"{q}-orders"}
    # The child's export had the new name while it waited for the root: it is the old one again.
    exports = {e["Name"]: e["Value"] for e in cf.list_exports()["Exports"] if e["ExportingStackId"] == child}
    assert exports == {f"{c['StackName']}-queue": f"{q}-orders"}
    assert resource(cf, child, "Queue")["PhysicalResourceId"] == old_url
    assert queue_names(sqs, q) == [f"{q}-orders"]
    queue = of(since(cf, child, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"), "Queue")
    assert [x[0] for x in queue] == ["DELETE_IN_PROGRESS", "DELETE_COMPLETE"]
    assert queue[0][1].endswith(f"/{q}-invoices")


# ------------------------------------------------------------------ ECS task definitions


def test_task_definition_replaced_on_image_change(endpoint, cf):
    """The project's main use: every image change replaces the TaskDefinition (a new revision),
    the Service is modified to run it, and cleanup deregisters the old revision (INACTIVE, still
    describable), unless UpdateReplacePolicy retains it."""
    ecs = client(endpoint, "ecs")
    n = "ecs-" + uid()

    def template(image, retain=False):
        td = {"Type": "AWS::ECS::TaskDefinition",
              "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                             "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                             "ContainerDefinitions": [{"Name": "app", "Image": image}]}}
        if retain:
            td["UpdateReplacePolicy"] = "Retain"
        return {"Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster"},
            "TaskDef": td,
            "Service": {"Type": "AWS::ECS::Service",
                        "Properties": {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"},
                                       "DesiredCount": 1, "LaunchType": "FARGATE",
                                       "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": ["subnet-12345678"]}}}}},
            "Outputs": {"Cluster": {"Value": {"Ref": "Cluster"}}, "Service": {"Value": {"Fn::GetAtt": ["Service", "Name"]}},
                        "TaskDef": {"Value": {"Ref": "TaskDef"}}}}

    def status(arn):
        return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"]

    def service(s):
        out = outputs(s)
        return ecs.describe_services(cluster=out["Cluster"], services=[out["Service"]])["services"][0]

    s, _ = deploy(cf, n, template("nginx:1"))
    assert s["StackStatus"] == "CREATE_COMPLETE", s
    td1 = outputs(s)["TaskDef"]
    assert td1.endswith(f":task-definition/{n}-app:1") and service(s)["taskDefinition"] == td1
    service_arn = resource(cf, n, "Service")["PhysicalResourceId"]

    s, described = deploy(cf, n, template("nginx:2"), cs_type="UPDATE")
    ch = changes(described)
    assert (ch["TaskDef"]["Replacement"], ch["Service"]["Replacement"]) == ("True", "False")
    assert s["StackStatus"] == "UPDATE_COMPLETE", s
    td2 = outputs(s)["TaskDef"]
    assert td2.endswith(f":task-definition/{n}-app:2")
    assert resource(cf, n, "TaskDef")["PhysicalResourceId"] == td2
    assert resource(cf, n, "Service")["PhysicalResourceId"] == service_arn  # modified, not replaced
    assert service(s)["taskDefinition"] == td2
    assert (status(td1), status(td2)) == ("INACTIVE", "ACTIVE")
    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    assert of(ev, "TaskDef") == [("UPDATE_IN_PROGRESS", td1, REQUESTED), ("UPDATE_IN_PROGRESS", td2, INITIATED),
                                 ("UPDATE_COMPLETE", td2, None),
                                 ("DELETE_IN_PROGRESS", td1, None), ("DELETE_COMPLETE", td1, None)]
    order = [(lid, st) for lid, st, _, _ in ev]
    assert order.index(("Service", "UPDATE_COMPLETE")) < order.index(("TaskDef", "DELETE_IN_PROGRESS"))

    # UpdateReplacePolicy: Retain keeps the old revision ACTIVE (DELETE_SKIPPED).
    s, _ = deploy(cf, n, template("nginx:3", retain=True), cs_type="UPDATE")
    assert s["StackStatus"] == "UPDATE_COMPLETE", s
    td3 = outputs(s)["TaskDef"]
    assert (status(td2), status(td3)) == ("ACTIVE", "ACTIVE") and service(s)["taskDefinition"] == td3
    assert of(since(cf, n, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"), "TaskDef") == [("DELETE_SKIPPED", td2, None)]

    # Deleting the stack deregisters the revision it has.
    cf.delete_stack(StackName=n)
    assert wait_status(cf, s["StackId"])["StackStatus"] == "DELETE_COMPLETE"
    assert status(td3) == "INACTIVE"


def test_renamed_cluster_replaces_the_cluster_and_its_service(endpoint, cf):
    """A Service whose Cluster (a property that requires replacement) Refs a replaced cluster is
    Replacement Conditional in the change set and replaced when it runs: a new service in the new
    cluster, deployed before the stack goes on; cleanup deletes the old service, then the old cluster."""
    ecs = client(endpoint, "ecs")
    n = "ecs-" + uid()

    def template(cluster):
        return {"Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": cluster}},
            "TaskDef": {"Type": "AWS::ECS::TaskDefinition",
                        "Properties": {"Family": {"Fn::Sub": "${AWS::StackName}-app"}, "Memory": "512", "Cpu": "256",
                                       "RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc",
                                       "ContainerDefinitions": [{"Name": "app", "Image": "nginx:1"}]}},
            "Service": {"Type": "AWS::ECS::Service",
                        "Properties": {"Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "TaskDef"},
                                       "DesiredCount": 1, "LaunchType": "FARGATE",
                                       "NetworkConfiguration": {"AwsvpcConfiguration": {"Subnets": ["subnet-12345678"]}}}}},
            "Outputs": {"Service": {"Value": {"Fn::GetAtt": ["Service", "Name"]}}}}

    s, _ = deploy(cf, n, template(f"{n}-a"))
    old_service = outputs(s)["Service"]
    old_arn = resource(cf, n, "Service")["PhysicalResourceId"]
    s, described = deploy(cf, n, template(f"{n}-b"), cs_type="UPDATE")
    ch = changes(described)
    assert (ch["Cluster"]["Replacement"], ch["Service"]["Replacement"]) == ("True", "Conditional")
    assert s["StackStatus"] == "UPDATE_COMPLETE", s
    new_service = outputs(s)["Service"]
    new_arn = resource(cf, n, "Service")["PhysicalResourceId"]
    assert new_arn != old_arn and f":service/{n}-b/" in new_arn
    svc = ecs.describe_services(cluster=f"{n}-b", services=[new_service])["services"][0]
    assert svc["status"] == "ACTIVE" and svc["runningCount"] == 1  # deployed before UPDATE_COMPLETE
    old = ecs.describe_services(cluster=f"{n}-a", services=[old_service])["services"][0]
    assert old["status"] in ("DRAINING", "INACTIVE") and old["desiredCount"] == 0  # deleted: its tasks stop
    clusters = {c["clusterName"]: c["status"] for c in ecs.describe_clusters(clusters=[f"{n}-a", f"{n}-b"])["clusters"]}
    assert clusters == {f"{n}-a": "INACTIVE", f"{n}-b": "ACTIVE"}
    ev = since(cf, n, "UPDATE_IN_PROGRESS")
    assert of(ev, "Service")[0] == ("UPDATE_IN_PROGRESS", old_arn, REQUESTED)
    cleanup = [(lid, status, physical) for lid, status, physical, _ in
               since(cf, n, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS") if lid != n]
    assert cleanup == [("Service", "DELETE_IN_PROGRESS", old_arn), ("Service", "DELETE_COMPLETE", old_arn),
                       ("Cluster", "DELETE_IN_PROGRESS", f"{n}-a"), ("Cluster", "DELETE_COMPLETE", f"{n}-a")]

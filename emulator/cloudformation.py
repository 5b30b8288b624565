"""CloudFormation patches for moto 5.2.5 so stacks and change sets behave like real AWS.

moto executes change sets synchronously inside the API call, emits no per-resource
events, loses Outputs after ExecuteChangeSet, never computes Modify changes for
parameter-only updates, has no rollback, turns resource errors into HTTP 500s, and
does not implement UpdateTerminationProtection. The deployer under test depends on
all of those, so this module replaces moto's CloudFormation *response handlers* for
the stack lifecycle with a small engine that:

* reads templates as CloudFormation does (short-form YAML tags nested at any depth,
  Fn::GetAZs of the stack's region, Fn::Cidr), where moto leaks YAML parser nodes;
  TemplateURLs from moto's S3 (path-style on the endpoint, or AWS's virtual-hosted and
  path-style hosts), and the AWS::Include transform (``Fn::Transform`` anywhere, top-level
  ``Transform``) from S3 snippets before anything else,
* validates requests the way CloudFormation does (parameters, stack state, capabilities),
* computes change sets (Add/Modify/Remove with Replacement; every nested stack is
  re-evaluated when its parent changes; IncludeNestedStacks makes nested change sets),
* runs stack operations in a background thread, stepping every resource through the
  same event sequence AWS emits, and rolls back on failure,
* replaces resources as CloudFormation does (moto's models mostly mutate the old object):
  an update that requires replacement creates the new physical resource through moto's
  create path, so Ref/GetAtt, outputs and the service see it; cleanup deletes the old one
  (UpdateReplacePolicy Retain keeps it), a rollback restores it and deletes the new one; a
  ``Conditional`` replacement is settled when the resource's turn comes; a custom name the
  replacement would keep fails the resource (``CUSTOM_NAME_REPLACEMENT``),
* still creates the *real* moto resources (ECS clusters, services, ...) through moto's
  own ResourceMap machinery, so other services see what the stack created; resource
  types in ``TYPE_HANDLERS`` are run by their handler instead: nested.py runs each
  AWS::CloudFormation::Stack as a child stack of this engine (ParentId/RootId, its own
  events, updates that finish or roll back with the root's).

Test hooks live in the template, under each resource's ``Metadata.Emulator``:

* ``Fail: "<reason>"``         create/update of this resource fails with that reason
* ``HoldSeconds: <float>``     resource stays CREATE/UPDATE_IN_PROGRESS that long
* ``DeleteHoldSeconds: <float>`` resource stays DELETE_IN_PROGRESS that long
* ``DeleteFail: "<reason>"``   deleting this resource fails (stack -> DELETE_FAILED)
* ``Replacement: "True"|"False"|"Conditional"`` overrides the computed Replacement
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import unquote, urlparse

import yaml
from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing as cfn_parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import utils as cfn_utils
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import Stack, cloudformation_backends
from moto.cloudformation.parsing import (
    OutputMap,
    ResourceMap,
    parse_and_create_resource,
    parse_and_update_resource,
    resource_class_from_type,
    resource_name_property_from_type,
)
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudformation.utils import generate_changeset_id, generate_stack_id
from moto.core.responses import ActionResult, EmptyResult
from moto.moto_api._internal import mock_random
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends

from emulator.state import LOCK

NO_CHANGES_REASON = (
    "The submitted information didn't contain changes. "
    "Submit different information to create a change set."
)

# Properties whose change forces CloudFormation to replace the resource
# ("Update requires: Replacement" in the AWS resource reference). "*" = every property.
REPLACEMENT_PROPERTIES: dict[str, set[str] | str] = {
    "AWS::ECS::Cluster": {"ClusterName"},
    "AWS::ECS::Service": {"ServiceName", "Cluster", "LaunchType", "Role", "SchedulingStrategy", "DeploymentController"},
    "AWS::ECS::TaskDefinition": "*",
    "AWS::ECR::Repository": {"RepositoryName"},
    "AWS::Logs::LogGroup": {"LogGroupName"},
    "AWS::IAM::Role": {"RoleName", "Path"},
    "AWS::IAM::ManagedPolicy": {"ManagedPolicyName", "Path"},
    "AWS::S3::Bucket": {"BucketName"},
    "AWS::SQS::Queue": {"QueueName", "FifoQueue"},
    "AWS::SNS::Topic": {"TopicName", "FifoTopic"},
    "AWS::DynamoDB::Table": {"TableName"},
    "AWS::SSM::Parameter": {"Name"},
    "AWS::Lambda::Function": {"FunctionName"},
    "AWS::EC2::SecurityGroup": {"GroupName", "GroupDescription", "VpcId"},
    "AWS::ElasticLoadBalancingV2::TargetGroup": {"Name", "Port", "Protocol", "VpcId", "TargetType"},
    "AWS::ElasticLoadBalancingV2::LoadBalancer": {"Name", "Scheme", "Type"},
}

IAM_TYPES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::Policy": None,
    "AWS::IAM::AccessKey": None,
    "AWS::IAM::UserToGroupAddition": None,
}

# Statuses from which CloudFormation refuses any update.
NOT_UPDATABLE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "DELETE_COMPLETE"}


# --------------------------------------------------------------------------- errors


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFound"


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


class AlreadyExists(CloudFormationError):
    code = "AlreadyExistsException"


class InsufficientCapabilities(CloudFormationError):
    code = "InsufficientCapabilitiesException"


def _validation(message: str) -> ValidationError:
    return ValidationError(message=message)


class ResourceFailed(Exception):
    """A resource operation failure whose text is the resource's status reason as it is
    (no "Resource handler returned message" wrapping), e.g. a nested stack's
    ``Embedded stack ... was not successfully created: ...``."""


class TransformFailed(Exception):
    """A template transform (AWS::Include) that failed: CloudFormation reports it as the
    change set's (or the stack's) status reason, not as an API error."""


def _error_text(exc: Exception) -> str:
    """The message of a moto or emulator error, without moto's HTTP framing."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    return str(exc) or type(exc).__name__


# --------------------------------------------------------------------------- helpers

_ts_lock = threading.Lock()
_last_ts = [datetime(1970, 1, 1)]


def _now() -> datetime:
    """Strictly increasing, millisecond-granular naive-UTC timestamps (like moto's utcnow).

    Events are sorted by timestamp by clients; AWS never emits two events of one
    stack with the same timestamp, so neither do we.
    """
    with _ts_lock:
        t = datetime.now(timezone.utc).replace(tzinfo=None)
        t = t.replace(microsecond=(t.microsecond // 1000) * 1000)
        if t <= _last_ts[0]:
            t = _last_ts[0] + timedelta(milliseconds=1)
        _last_ts[0] = t
        return t


def short_form_tag(loader: yaml.BaseLoader, tag: str, node: yaml.Node) -> Any:
    """A CloudFormation short-form tag (``!Sub``, ``!GetAtt``, ...) as its long form.

    moto's own constructor returns the raw ``node.value`` of a mapping node (a list of
    parser ``(ScalarNode, Node)`` pairs) and builds sequences shallowly, so a nested
    short form such as ``!ImportValue {Fn::Sub: ...}`` or ``!GetAZs {Ref: AWS::Region}``
    leaked parser objects into the template. Here the tagged node is constructed
    deeply whatever its form (scalar, sequence or mapping), so any nesting works.
    Registered both on the emulator's loader and, in place of moto's
    ``yaml_tag_constructor``, on the loader moto's own handlers (GetTemplateSummary,
    ValidateTemplate) use; ``tag`` is ignored because its prefix differs between the two.
    """
    tag = node.tag
    if tag == "!":  # YAML's non-specific tag: the plain value
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_mapping(node, deep=True)
    if not tag.startswith("!"):
        raise yaml.constructor.ConstructorError(None, None, f"could not determine a constructor for the tag {tag!r}",
                                                node.start_mark)
    name = tag[1:]
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "GetAtt":
            value = value.split(".", 1)  # !GetAtt Db.Endpoint.Address -> ["Db", "Endpoint.Address"]
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name if name in ("Ref", "Condition") else f"Fn::{name}": value}


class TemplateLoader(yaml.SafeLoader):
    """YAML as CloudFormation reads it: short-form tags become long-form intrinsics, and
    there is no timestamp type (CloudFormation does not support it), so an unquoted
    ``2012-10-17`` stays the string it is on AWS. SafeLoader: no Python object tags."""


TemplateLoader.add_multi_constructor("!", short_form_tag)
TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse_template(body: str) -> dict[str, Any]:
    """Every template body the emulator's handlers receive (CreateChangeSet, CreateStack,
    UpdateStack, including TemplateURL and UsePreviousTemplate) is read here."""
    try:
        parsed = yaml.load(body, Loader=TemplateLoader)
    except yaml.YAMLError as exc:
        if body.lstrip().startswith("{"):
            try:
                parsed = json.loads(body)
            except json.JSONDecodeError as jexc:
                raise _validation(f"Template format error: JSON not well-formed. "
                                  f"(line {jexc.lineno}, column {jexc.colno})") from jexc
        else:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise _validation(f"Template format error: YAML not well-formed.{where}") from exc
    if not isinstance(parsed, dict):
        raise _validation("Template format error: unsupported structure.")
    # A top-level AWS::Include may bring the Resources: checked once transforms ran.
    if not parsed.get("Resources") and not _top_level_includes(parsed):
        _require_resources(parsed)
    return parsed


def _require_resources(template: dict[str, Any]) -> None:
    if not template.get("Resources"):
        raise _validation("Template format error: At least one Resources member must be defined.")


# --------------------------------------------------------------------------- S3 reads and AWS::Include

# Virtual-hosted S3 host of AWS: bucket.s3.region.amazonaws.com, bucket.s3-region..., bucket.s3.amazonaws.com.
_S3_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3[.-]")
S3_NO_SUCH_KEY = ("S3 error: The specified key does not exist. "
                  "For more information check http://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html")
S3_NO_SUCH_BUCKET = ("S3 error: The specified bucket does not exist. "
                     "For more information check http://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html")
BAD_TEMPLATE_URL = "TemplateURL must reference a valid S3 object to which you have access."


def s3_location(url: Any) -> tuple[str, str] | None:
    """(bucket, key) of a TemplateURL as CloudFormation reads it from S3: virtual-hosted
    (``https://bucket.s3.region.amazonaws.com/key``), path-style on an S3 host of AWS
    (``https://s3.region.amazonaws.com/bucket/key``), or path-style on any other host, an
    endpoint override such as the emulator's own (``http://127.0.0.1:PORT/bucket/key``, what
    a deploy tool builds from AWS_ENDPOINT_URL). moto alone reads path-style URLs only when
    the host says "localhost" and would take ``127`` for the bucket."""
    if not isinstance(url, str):
        return None
    parts = urlparse(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return None
    path = unquote(parts.path.lstrip("/"))
    virtual = _S3_VIRTUAL_HOST.match(host) if host.endswith((".amazonaws.com", ".amazonaws.com.cn")) else None
    if virtual:
        bucket, key = virtual["bucket"], path
    else:
        bucket, _, key = path.partition("/")
    return (bucket, key) if bucket and key else None


def read_template_url(url: str, account_id: str, partition: str) -> str:
    """The template behind a TemplateURL, from moto's S3 (ValidationError as AWS words it)."""
    location = s3_location(url)
    if location is None:
        raise _validation(BAD_TEMPLATE_URL)
    try:
        obj = s3_backends[account_id][partition].get_object(*location)
    except MissingBucket as exc:
        raise _validation(S3_NO_SUCH_BUCKET) from exc
    if obj is None:  # moto answers a missing key with None
        raise _validation(S3_NO_SUCH_KEY)
    return obj.value.decode("utf-8")


class _SnippetLoader(yaml.SafeLoader):
    """AWS::Include snippets are plain YAML or JSON: CloudFormation refuses short-form tags
    (``!Ref``) in them (`The specified S3 object's content should be valid Yaml/JSON`)."""


_SnippetLoader.yaml_implicit_resolvers = TemplateLoader.yaml_implicit_resolvers

INCLUDE_FAILED = "Transform AWS::Include failed with: "
INCLUDE_NOT_YAML = INCLUDE_FAILED + "The specified S3 object's content should be valid Yaml/JSON"


def _is_include(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("Name") == "AWS::Include"


def _top_level_includes(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template.get("Transform")
    return [t for t in (spec if isinstance(spec, list) else [spec]) if _is_include(t)]


def _include_snippet(spec: dict[str, Any], account_id: str, partition: str, params: dict[str, Any]) -> Any:
    location = (spec.get("Parameters") or {}).get("Location")
    if isinstance(location, dict) and list(location) == ["Ref"]:
        location = params.get(location["Ref"])  # the documented `Location: !Ref Param` form
    bucket, _, key = location[len("s3://"):].partition("/") if isinstance(location, str) else ("", "", "")
    if not (isinstance(location, str) and location.startswith("s3://") and bucket and key):
        raise TransformFailed(INCLUDE_FAILED + "The location parameter is not a valid S3 uri.")
    try:
        obj = s3_backends[account_id][partition].get_object(bucket, key)
    except MissingBucket as exc:
        raise TransformFailed(INCLUDE_FAILED + f"S3 bucket [{bucket}] does not exist.") from exc
    if obj is None:
        raise TransformFailed(INCLUDE_FAILED + f"S3 object [{location}] does not exist.")
    text = obj.value.decode("utf-8", errors="replace")
    try:
        return yaml.load(text, Loader=_SnippetLoader)
    except yaml.YAMLError as exc:
        raise TransformFailed(INCLUDE_NOT_YAML) from exc


def apply_includes(template: dict[str, Any], account_id: str, partition: str,
                   params: dict[str, Any]) -> dict[str, Any]:
    """The template with every AWS::Include transform replaced by its S3 snippet, as
    CloudFormation processes it before anything else (change set creation, CreateStack):
    ``Fn::Transform`` anywhere but in Parameters (alone: the value becomes the snippet; next
    to other keys: the snippet's keys join them), and the top-level ``Transform`` (the
    snippet's sections join the template's). Snippets are not transformed again (AWS does
    not nest includes). ``params``: values for a ``Location: {Ref: Param}``."""
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        spec = node.get("Fn::Transform")
        if not _is_include(spec):
            return {k: walk(v) for k, v in node.items()}
        rest = {k: walk(v) for k, v in node.items() if k != "Fn::Transform"}
        snippet = _include_snippet(spec, account_id, partition, params)
        if not rest:
            return snippet
        if not isinstance(snippet, dict):
            raise TransformFailed(INCLUDE_NOT_YAML)
        return {**rest, **snippet}

    out = {k: (v if k in ("Parameters", "AWSTemplateFormatVersion", "Transform") else walk(v))
           for k, v in template.items()}
    top = _top_level_includes(template)
    for spec in top:
        snippet = _include_snippet(spec, account_id, partition, params)
        if not isinstance(snippet, dict):
            raise TransformFailed(INCLUDE_NOT_YAML)
        for section, value in snippet.items():
            if isinstance(value, dict) and isinstance(out.get(section), dict):
                out[section] = {**out[section], **value}
            else:
                out[section] = value
    if top:
        spec = template["Transform"]
        others = [t for t in (spec if isinstance(spec, list) else [spec]) if not _is_include(t)]
        out.pop("Transform", None)
        if others:
            out["Transform"] = others if isinstance(spec, list) else others[0]
    _require_resources(out)
    return out


def _include_params(template: dict[str, Any], given: list[dict[str, Any]]) -> dict[str, Any]:
    """Parameter values an include Location may Ref (given, else the declared Default)."""
    values = {k: d.get("Default") for k, d in (template.get("Parameters") or {}).items() if isinstance(d, dict)}
    values.update({p["ParameterKey"]: p.get("ParameterValue") for p in given if "ParameterKey" in p})
    return values


# moto's clean_json (intrinsic function evaluation), wrapped by _clean_json at install().
_MOTO_CLEAN_JSON = cfn_parsing.clean_json


def _availability_zones(rm: ResourceMap, region: Any) -> list[str]:
    """Fn::GetAZs as CloudFormation answers it: the zones of the named region, or of the
    stack's region for "" (moto: always us-east-1 for "", garbage for {Ref: AWS::Region}).
    Zone names come from moto's EC2 (DescribeAvailabilityZones), alphabetically."""
    from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend

    name = str(region) if region else rm._region_name
    zones = sorted(z.name for z in RegionsAndZonesBackend.zones.get(name, []))
    return zones or [f"{name}{suffix}" for suffix in "abcd"]


def _cidr(block: Any, count: Any, cidr_bits: Any) -> list[str]:
    """Fn::Cidr (moto leaves it unevaluated): the first `count` subnets of `block` with
    `cidr_bits` host bits each."""
    net = ipaddress.ip_network(str(block), strict=False)
    prefix = net.max_prefixlen - int(cidr_bits)
    subnets = net.subnets(new_prefix=prefix)
    return [str(next(subnets)) for _ in range(int(count))]


def _clean_json(resource_json: Any, resources_map: ResourceMap) -> Any:
    """moto's clean_json plus the intrinsics it gets wrong. moto's own recursion calls
    the module-level name, so nested uses come back through here."""
    if isinstance(resource_json, dict) and len(resource_json) == 1:
        if isinstance(resource_json.get("Fn::GetAtt"), str):  # YAML's `Fn::GetAtt: Child.Outputs.Name`
            return _MOTO_CLEAN_JSON({"Fn::GetAtt": resource_json["Fn::GetAtt"].split(".", 1)}, resources_map)
        if "Fn::GetAZs" in resource_json:
            return _availability_zones(resources_map, _clean_json(resource_json["Fn::GetAZs"], resources_map))
        if "Fn::Cidr" in resource_json:
            args = _clean_json(resource_json["Fn::Cidr"], resources_map)
            return _cidr(*args)
    return _MOTO_CLEAN_JSON(resource_json, resources_map)


def _meta(resource_json: dict[str, Any]) -> dict[str, Any]:
    meta = resource_json.get("Metadata") or {}
    em = meta.get("Emulator") if isinstance(meta, dict) else None
    return em if isinstance(em, dict) else {}


_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def _refs(value: Any) -> set[str]:
    """Names referenced by Ref / Fn::GetAtt / Fn::Sub anywhere inside value."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                if isinstance(v, list) and v:
                    out.add(str(v[0]))
                elif isinstance(v, str):
                    out.add(v.split(".")[0])
            elif k == "Fn::Sub":
                s, variables = (v, {}) if isinstance(v, str) else (v[0], v[1] if len(v) > 1 else {})
                for name in _SUB_VAR.findall(s if isinstance(s, str) else ""):
                    name = name.split(".")[0].strip()
                    if name not in variables:
                        out.add(name)
                out |= _refs(variables)
            else:
                out |= _refs(v)
    elif isinstance(value, list):
        for item in value:
            out |= _refs(item)
    return out


def _deps(resource_json: dict[str, Any], resource_ids: set[str]) -> set[str]:
    d = resource_json.get("DependsOn") or []
    deps = {d} if isinstance(d, str) else set(d)
    deps |= _refs({k: v for k, v in resource_json.items() if k != "DependsOn"})
    return {x for x in deps if x in resource_ids}


def _param_display(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolved_params(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Declared parameters with given value or Default, as CloudFormation reports them."""
    out = {}
    for key, decl in (template.get("Parameters") or {}).items():
        if key in given:
            out[key] = given[key]
        elif isinstance(decl, dict) and "Default" in decl:
            out[key] = _param_display(decl["Default"])
    return out


def _param_list(template: dict[str, Any], given: dict[str, str]) -> list[dict[str, str]]:
    decls = template.get("Parameters") or {}
    result = []
    for key, value in _resolved_params(template, given).items():
        shown = "****" if (decls.get(key) or {}).get("NoEcho") in (True, "true", "True") else value
        result.append({"ParameterKey": key, "ParameterValue": shown})
    return result


def _condition_true(rm: ResourceMap | None, resource_json: dict[str, Any]) -> bool:
    cond = resource_json.get("Condition")
    if not cond or rm is None:
        return True
    try:
        return bool(rm.lazy_condition_map[cond])
    except Exception:  # noqa: BLE001
        return True


class _Placeholder:
    """Stand-in for resource types moto cannot create (and custom resources, which
    would need a Lambda): real CloudFormation would create them, so we pretend."""

    def __init__(self, stack_name: str, logical_id: str, rtype: str) -> None:
        self.logical_resource_id = logical_id
        self.cf_resource_type = rtype
        self.physical_resource_id = f"{stack_name}-{logical_id}-{mock_random.get_random_string(12).upper()}"

    def get_cfn_attribute(self, attr: str) -> str:
        return f"{self.physical_resource_id}.{attr}"

    def delete(self, account_id: str, region_name: str) -> None:
        return None


# --------------------------------------------------------------------------- state


class StackExtra:
    """What AWS tracks per stack that moto's Stack object does not."""

    def __init__(self) -> None:
        self.template_dict: dict[str, Any] = {}
        self.given_params: dict[str, str] = {}
        self.outputs: list[dict[str, Any]] = []
        self.capabilities: list[str] = []
        self.status_reason: str | None = None
        self.last_updated: datetime | None = None
        self.deletion_time: datetime | None = None
        self.change_set_id: str | None = None
        # ClientRequestTokens of the calls that worked, so a retry of the same
        # request succeeds again as on AWS.
        self.create_token: str | None = None
        self.cancel_token: str | None = None
        # logical id -> {"status", "physical", "type", "reason", "ts"}
        self.resources: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        # Nested stacks (AWS::CloudFormation::Stack): the parent's and the root's stack ARNs.
        self.parent_id: str | None = None
        self.root_id: str | None = None
        # Why the last create/update failed ("The following resource(s) failed to ..."),
        # what a parent quotes in its "Embedded stack ..." reason.
        self.failure_reason: str | None = None
        # The change set whose execution is running (a nested stack's operation finds its
        # own nested change set there).
        self.executing: ChangeSet | None = None
        # Child stack ARN -> gate of its finished update, waiting on this stack's outcome.
        self.child_gates: dict[str, Gate] = {}


class Gate:
    """CloudFormation finishes a stack tree together: a nested stack whose update is done
    stays UPDATE_COMPLETE_CLEANUP_IN_PROGRESS until its parent's update succeeds (then it
    cleans up: UPDATE_COMPLETE) or fails (then it rolls back: UPDATE_ROLLBACK_COMPLETE).
    ``decision`` is True to commit, False to roll back, None while the parent runs."""

    def __init__(self, parent: Stack) -> None:
        self.parent = parent
        self.decision: bool | None = None

    def wait(self) -> bool:
        """Called without LOCK. A parent no longer running (its worker died) commits."""
        while True:
            with LOCK:
                if self.decision is not None:
                    return self.decision
                if not self.parent.status.endswith("_IN_PROGRESS"):
                    return True
            time.sleep(CANCEL_POLL_SECONDS)


def _extra(stack: Stack) -> StackExtra:
    ex = getattr(stack, "emu", None)
    if ex is None:
        ex = StackExtra()
        stack.emu = ex  # type: ignore[attr-defined]
    return ex


class ChangeSet:
    def __init__(self, **kw: Any) -> None:
        self.parent_id: str | None = None
        self.root_id: str | None = None
        # Nested change sets (IncludeNestedStacks): logical id of the nested stack -> change set ARN.
        self.children: dict[str, str] = {}
        # The stack was created (REVIEW_IN_PROGRESS) for this nested change set only.
        self.review_stack = False
        self.__dict__.update(kw)
        self.creation_time = _now()
        self.status = "CREATE_COMPLETE"
        self.execution_status = "AVAILABLE"
        self.status_reason: str | None = None
        self.changes: list[dict[str, Any]] = []

    def _nesting(self, d: dict[str, Any]) -> None:
        d["IncludeNestedStacks"] = bool(getattr(self, "include_nested_stacks", False))
        if self.parent_id:
            d["ParentChangeSetId"] = self.parent_id
            d["RootChangeSetId"] = self.root_id

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ChangeSetName": self.name,
            "ChangeSetId": self.id,
            "StackId": self.stack_id,
            "StackName": self.stack_name,
            "Parameters": _param_list(self.template_dict, self.params),
            "CreationTime": self.creation_time,
            "ExecutionStatus": self.execution_status,
            "Status": self.status,
            "NotificationARNs": self.notification_arns or [],
            "RollbackConfiguration": {},
            "Capabilities": self.capabilities,
            "Tags": [{"Key": k, "Value": v} for k, v in (self.tags or {}).items()],
            "Changes": self.changes,
        }
        self._nesting(d)
        if self.description:
            d["Description"] = self.description
        if self.status_reason:
            d["StatusReason"] = self.status_reason
        if getattr(self, "deployment_mode", None):
            d["DeploymentMode"] = self.deployment_mode
        return d

    def summary(self) -> dict[str, Any]:
        d = {
            "StackId": self.stack_id,
            "StackName": self.stack_name,
            "ChangeSetId": self.id,
            "ChangeSetName": self.name,
            "ExecutionStatus": self.execution_status,
            "Status": self.status,
            "CreationTime": self.creation_time,
        }
        self._nesting(d)
        if self.description:
            d["Description"] = self.description
        if self.status_reason:
            d["StatusReason"] = self.status_reason
        return d


def _change_sets(backend: Any) -> dict[str, ChangeSet]:
    cs = getattr(backend, "emu_change_sets", None)
    if cs is None:
        cs = {}
        backend.emu_change_sets = cs
    return cs


# --------------------------------------------------------------------------- events


def _event(stack: Stack, logical_id: str, physical: str, rtype: str, status: str, reason: str | None,
           track: bool = True) -> None:
    """Record a stack event. ``track``: the event is about the stack's current resource of that
    logical id (ListStackResources follows it); False for a replaced resource's other physical
    resource (the old one deleted in cleanup, the new one deleted in a rollback's cleanup)."""
    ex = _extra(stack)
    ts = _now()
    ev = {
        "StackId": stack.stack_id,
        "EventId": str(mock_random.uuid4()),
        "StackName": stack.name,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical or "",
        "ResourceType": rtype,
        "Timestamp": ts,
        "ResourceStatus": status,
    }
    if reason is not None:
        ev["ResourceStatusReason"] = reason
    ex.events.append(ev)
    if track and (rtype != "AWS::CloudFormation::Stack" or logical_id != stack.name):
        ex.resources[logical_id] = {"status": status, "physical": physical or "", "type": rtype, "reason": reason, "ts": ts}


def _stack_status(stack: Stack, status: str, reason: str | None = None) -> None:
    stack.status = status
    _extra(stack).status_reason = reason
    _event(stack, stack.name, stack.stack_id, "AWS::CloudFormation::Stack", status, reason)


# --------------------------------------------------------------------------- resource engine


# Extension point (used by ecs.py): resource type -> factory(stack, op) called after a
# successful create/update, returning a poll function or None. Real CloudFormation keeps
# some resources (ECS services) *_IN_PROGRESS until they stabilise: the poll runs under
# LOCK after HoldSeconds and returns None while still waiting, "" when done, or a
# failure reason.
STABILIZERS: dict[str, Callable[[Stack, "_Op"], Callable[[], str | None] | None]] = {}
STABILIZE_POLL_SECONDS = 0.05


class _Op:
    """One resource operation. ``action(op)`` does the work and returns the physical id; it
    may set ``op.poll`` (the resource stays *_IN_PROGRESS until it answers, as for
    STABILIZERS) and ``op.cancel`` (called when CloudFormation cancels the running operation).
    ``replacement``: an update that creates a new physical resource; ``decide`` (a change set's
    ``Replacement: Conditional``) settles it when the operation starts, once what it references
    is done. ``track``: False for the delete of a replaced resource's other physical resource
    (its events do not change the stack's resource row)."""

    def __init__(self, lid: str, rtype: str, verb: str, action: Callable[[_Op], str | None], physical: str = "",
                 hold: float = 0.0, fail: str | None = None, deps: set[str] | None = None,
                 replacement: bool = False) -> None:
        self.lid, self.rtype, self.verb, self.action = lid, rtype, verb, action
        self.physical, self.hold, self.fail = physical, hold, fail
        self.deps = deps or set()
        self.replacement = replacement
        self.decide: Callable[[], bool] | None = None
        self.track = True
        self.poll: Callable[[], str | None] | None = None
        self.cancel: Callable[[], None] | None = None


# Extension point (used by nested.py): resource type -> handler for resources the engine runs
# itself instead of through moto's model classes (an AWS::CloudFormation::Stack is a child stack
# run by this engine). Its create/update/rollback/delete(stack, rm, lid, rjson, op) are the
# operations' actions (rollback: back to the previous template's rjson); review(stack, cs, lid,
# rjson, new_rm) returns the nested change set of a change; validate(lid, rjson) checks a template.
TYPE_HANDLERS: dict[str, Any] = {}


def _start(stack: Stack, op: _Op) -> str | None:
    """Emit the IN_PROGRESS events and do the moto call. Returns an error text."""
    status = f"{op.verb}_IN_PROGRESS"
    if op.decide is not None:
        try:
            op.replacement = op.decide()
        except Exception:  # noqa: BLE001 - undecidable: updated in place
            op.replacement = False
    if op.verb == "UPDATE" and op.replacement:
        _event(stack, op.lid, op.physical, op.rtype, status,
               "Requested update requires the creation of a new physical resource; hence creating one.")
    else:
        _event(stack, op.lid, op.physical if op.verb != "CREATE" else "", op.rtype, status,
               "" if op.verb != "DELETE" else None, track=op.track)
    if op.fail:
        if op.verb == "CREATE":
            _event(stack, op.lid, "", op.rtype, status, "Resource creation Initiated")
        return None
    try:
        phys = op.action(op)
    except ResourceFailed as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - moto errors become resource failures, like AWS
        text = _error_text(exc)
        return f"Resource handler returned message: \"{text}\"" if not text.startswith("Resource") else text
    if phys:
        op.physical = phys
    if op.verb == "CREATE" or (op.verb == "UPDATE" and op.replacement):
        _event(stack, op.lid, op.physical, op.rtype, status, "Resource creation Initiated")
    factory = STABILIZERS.get(op.rtype)
    if factory is not None and op.verb in ("CREATE", "UPDATE"):
        op.poll = factory(stack, op)
    return None


# Stacks whose running update CancelUpdateStack asked to stop (stack ids).
_CANCEL_REQUESTED: set[str] = set()

# How often a waiting operation looks for a cancellation request.
CANCEL_POLL_SECONDS = 0.05


def _cancel_running(stack: Stack, running: dict[str, tuple[float, _Op, str | None]], into: list[str]) -> None:
    for other in list(running):
        _, oop, _ = running.pop(other)
        if oop.cancel is not None:
            oop.cancel()
        noun = "creation" if oop.verb == "CREATE" else "update"
        _event(stack, oop.lid, oop.physical, oop.rtype, f"{oop.verb}_FAILED", f"Resource {noun} cancelled",
               track=oop.track)
        into.append(other)


def request_cancel(stack: Stack) -> None:
    """Stop the stack's running create/update (CancelUpdateStack, or a parent cancelling a
    nested stack): its running operations fail as cancelled and it rolls back."""
    _CANCEL_REQUESTED.add(stack.stack_id)


def _run_ops(stack: Stack, ops: list[_Op], stop_on_failure: bool = True) -> tuple[list[str], list[str], list[str], list[str]]:
    """Run resource operations with CloudFormation's parallelism: every resource whose
    dependencies are complete starts at once; the first failure cancels the rest.
    Returns (completed, failed, cancelled, started) logical ids. A forward phase
    (stop_on_failure) can be cancelled; rollbacks, cleanups and deletes run to the end."""
    ids = {op.lid for op in ops}
    for op in ops:
        op.deps = (op.deps & ids) - {op.lid}
    pending = {op.lid: op for op in ops}
    running: dict[str, tuple[float, _Op, str | None]] = {}
    done: list[str] = []
    failed: list[str] = []
    cancelled: list[str] = []
    started: list[str] = []
    while True:
        with LOCK:
            if not (failed and stop_on_failure):
                ready = [lid for lid, op in pending.items() if op.deps <= set(done) | set(failed)]
                if not ready and not running and pending:
                    ready = list(pending)  # dependency cycle: AWS would reject; just proceed
                for lid in ready:
                    op = pending.pop(lid)
                    started.append(lid)
                    err = _start(stack, op)
                    running[lid] = (time.monotonic() + max(op.hold, 0.0) + 0.002, op, err)
            if not running:
                break
        lid = min(running, key=lambda k: running[k][0])
        delay = running[lid][0] - time.monotonic()
        if delay > 0:
            # Sleep in slices so CancelUpdateStack takes effect promptly.
            time.sleep(min(delay, CANCEL_POLL_SECONDS))
            with LOCK:
                if stop_on_failure and stack.stack_id in _CANCEL_REQUESTED:
                    # Real CloudFormation stops the operation and rolls back.
                    _CANCEL_REQUESTED.discard(stack.stack_id)
                    _cancel_running(stack, running, failed)
                    pending.clear()
                    break
            continue
        with LOCK:
            _, op, err = running.pop(lid)
            reason = err or op.fail
            if not reason and op.poll is not None:
                outcome = op.poll()
                if outcome is None:  # still stabilising
                    running[lid] = (time.monotonic() + STABILIZE_POLL_SECONDS, op, None)
                    continue
                reason = outcome or None
            if reason:
                _event(stack, op.lid, op.physical, op.rtype, f"{op.verb}_FAILED", reason, track=op.track)
                failed.append(lid)
                if stop_on_failure:
                    _cancel_running(stack, running, cancelled)
                    pending.clear()
            else:
                _event(stack, op.lid, op.physical, op.rtype, f"{op.verb}_COMPLETE", None, track=op.track)
                done.append(lid)
    return done, failed, cancelled, started


def _physical(obj: Any) -> str:
    try:
        return str(getattr(obj, "physical_resource_id", "") or "")
    except Exception:  # noqa: BLE001
        return ""


def _is_placeholder_type(rtype: str) -> bool:
    if rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource":
        return True
    try:
        return resource_class_from_type(rtype) is None
    except Exception:  # noqa: BLE001
        return True


def _create_action(stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any]) -> Callable[[_Op], str]:
    handler = TYPE_HANDLERS.get(rjson["Type"])
    if handler is not None:
        return lambda op: handler.create(stack, rm, lid, rjson, op)

    def act(op: _Op) -> str:
        rtype = rjson["Type"]
        if _is_placeholder_type(rtype):
            obj: Any = _Placeholder(stack.name, lid, rtype)
            rm._parsed_resources[lid] = obj
            return obj.physical_resource_id
        obj = rm[lid]
        if obj is None:
            obj = _Placeholder(stack.name, lid, rtype)
            rm._parsed_resources[lid] = obj
        return _physical(obj)

    return act


# What CloudFormation answers when a replacement would create a resource under the custom name
# the old one still holds (the old one is deleted only in cleanup): the resource fails to update.
CUSTOM_NAME_REPLACEMENT = ("CloudFormation cannot update a stack when a custom-named resource requires replacing. "
                           "Rename {name} and update the stack again.")

# Name properties moto's models do not declare (``resource_name_property_from_type`` answers ""),
# and types whose "name" is no custom name (a TaskDefinition's Family: a replacement is a new
# revision of the same family).
CUSTOM_NAME_PROPERTIES: dict[str, str | None] = {
    "AWS::ECS::TaskDefinition": None,
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::CodeDeploy::Application": "ApplicationName",
    "AWS::CodeDeploy::DeploymentGroup": "DeploymentGroupName",
    "AWS::CodeDeploy::DeploymentConfig": "DeploymentConfigName",
}

_UNKNOWN = object()  # a property value that could not be evaluated


def _name_property(rtype: str) -> str | None:
    if rtype in CUSTOM_NAME_PROPERTIES:
        return CUSTOM_NAME_PROPERTIES[rtype]
    try:
        return resource_name_property_from_type(rtype) or None
    except Exception:  # noqa: BLE001
        return None


def _static_value(value: Any, rm: ResourceMap) -> tuple[bool, Any]:
    """(True, value) of a template value evaluated against the ResourceMap as it is, when all it
    references is there (never creating a resource as a side effect); (False, None) otherwise."""
    if not _refs(value) <= set(rm._parsed_resources):
        return False, None
    try:
        return True, _clean_json(copy.deepcopy(value), rm)
    except Exception:  # noqa: BLE001
        return False, None


def _watched_properties(rtype: str, props: dict[str, Any]) -> set[str]:
    """The properties whose values a replacement decision needs: those that require
    replacement, and the custom name."""
    repl = REPLACEMENT_PROPERTIES.get(rtype, set())
    keys = set(props) if repl == "*" else set(repl) & set(props)
    name = _name_property(rtype)
    if name and name in props:
        keys.add(name)
    return keys


def _values_before(rm: ResourceMap, template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per resource of the running template, the evaluated values of its watched properties
    (``_UNKNOWN`` where they cannot be evaluated). Taken before an update re-points the map."""
    out: dict[str, dict[str, Any]] = {}
    for lid, rj in (template.get("Resources") or {}).items():
        if not isinstance(rj, dict) or lid not in rm._parsed_resources or rj.get("Type") in TYPE_HANDLERS:
            continue
        props = rj.get("Properties") or {}
        values = {}
        for prop in _watched_properties(rj.get("Type", ""), props):
            ok, value = _static_value(props[prop], rm)
            values[prop] = value if ok else _UNKNOWN
        out[lid] = values
    return out


def _decide_replacement(rm: ResourceMap, rjson: dict[str, Any], before: dict[str, Any]) -> Callable[[], bool]:
    """A change set's ``Replacement: Conditional`` (a property that requires replacement Refs or
    GetAtts a resource being replaced) settled as CloudFormation settles it when the resource's
    turn comes: replaced if such a property's value has actually changed."""
    def decide() -> bool:
        rtype = rjson["Type"]
        props = rjson.get("Properties") or {}
        repl = REPLACEMENT_PROPERTIES.get(rtype, set())
        keys = (set(props) | set(before)) if repl == "*" else set(repl) & (set(props) | set(before))
        for prop in sorted(keys):
            if (prop in before) != (prop in props):
                return True  # set or left out
            if before[prop] is _UNKNOWN:
                continue
            ok, value = _static_value(props[prop], rm)
            if ok and value != before[prop]:
                return True
        return False

    return decide


def _replace(stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any], before: dict[str, Any]) -> str:
    """An update that requires replacement: the new physical resource is created through moto's
    create path (the old one stays until cleanup deletes it)."""
    rtype = rjson["Type"]
    props = rjson.get("Properties") or {}
    name_prop = _name_property(rtype)
    if name_prop and name_prop in props and before.get(name_prop, _UNKNOWN) is not _UNKNOWN:
        ok, new_name = _static_value(props[name_prop], rm)
        if ok and new_name == before[name_prop]:
            raise ResourceFailed(CUSTOM_NAME_REPLACEMENT.format(name=new_name))
    obj: Any = None
    if not _is_placeholder_type(rtype):
        obj = parse_and_create_resource(lid, copy.deepcopy(rjson), rm, account_id=stack.account_id,
                                        region_name=stack.region_name)
    if obj is None:
        obj = _Placeholder(stack.name, lid, rtype)  # a fresh made-up id: dependents see the change
    rm._parsed_resources[lid] = obj
    return _physical(obj)


def _update_action(stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any],
                   before: dict[str, Any] | None = None) -> Callable[[_Op], str]:
    """Update a resource to ``rjson``; when the operation turns out to be a replacement,
    ``before`` (the watched values of the running template) guards custom names."""
    handler = TYPE_HANDLERS.get(rjson["Type"])
    if handler is not None:
        return lambda op: handler.update(stack, rm, lid, rjson, op)

    def act(op: _Op) -> str:
        if op.replacement:
            return _replace(stack, rm, lid, rjson, before or {})
        current = rm._parsed_resources.get(lid)
        if isinstance(current, _Placeholder) or _is_placeholder_type(rjson["Type"]):
            return _physical(current)
        if current is None:
            return _physical(rm[lid])
        new = parse_and_update_resource(lid, copy.deepcopy(rjson), rm, account_id=stack.account_id,
                                        region_name=stack.region_name)
        if new is not None:
            rm._parsed_resources[lid] = new
            return _physical(new)
        return _physical(current)

    return act


def _rollback_action(stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any]) -> Callable[[_Op], str]:
    """Put an updated resource back as the previous template (``rjson``) has it."""
    handler = TYPE_HANDLERS.get(rjson["Type"])
    if handler is not None:
        return lambda op: handler.rollback(stack, rm, lid, rjson, op)
    return _update_action(stack, rm, lid, rjson)


def _restore_action(rm: ResourceMap, lid: str, previous: Any) -> Callable[[_Op], str]:
    def act(op: _Op) -> str:
        rm._parsed_resources[lid] = previous
        return _physical(previous)

    return act


def _delete_action(stack: Stack, rm: ResourceMap, lid: str, obj: Any, rjson: dict[str, Any]) -> Callable[[_Op], str]:
    handler = TYPE_HANDLERS.get(rjson["Type"])
    if handler is not None:
        return lambda op: handler.delete(stack, rm, lid, rjson, op)

    def act(op: _Op) -> str:
        if obj is None or isinstance(obj, (_Placeholder, str)):
            return ""
        rm._delete_resource(obj, copy.deepcopy(rjson))
        return ""

    return act


def _delete_ops(stack: Stack, rm: ResourceMap, items: dict[str, tuple[Any, dict[str, Any]]]) -> list[_Op]:
    """Delete operations in reverse dependency order (dependents go first)."""
    ids = set(items)
    dependents: dict[str, set[str]] = {lid: set() for lid in ids}
    for lid, (_, rjson) in items.items():
        for dep in _deps(rjson, ids):
            dependents[dep].add(lid)
    ops = []
    ex = _extra(stack)
    for lid, (obj, rjson) in items.items():
        meta = _meta(rjson)
        phys = _physical(obj) or ex.resources.get(lid, {}).get("physical", "")
        ops.append(_Op(lid, rjson["Type"], "DELETE", _delete_action(stack, rm, lid, obj, rjson), physical=phys,
                       hold=float(meta.get("DeleteHoldSeconds", 0) or 0), fail=meta.get("DeleteFail"),
                       deps=dependents[lid]))
    return ops


def _compute_outputs(stack: Stack, rm: ResourceMap, template: dict[str, Any]) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = []
    try:
        om = OutputMap(rm, copy.deepcopy(template), stack.stack_id)
    except Exception:  # noqa: BLE001
        return outputs
    stack.output_map = om
    for key, out_json in (template.get("Outputs") or {}).items():
        try:
            out = om[key]
        except Exception:  # noqa: BLE001 - an output moto cannot evaluate is left out
            continue
        if out is None or out.value is None:
            continue
        item: dict[str, Any] = {"OutputKey": key, "OutputValue": _param_display(out.value)}
        if out.description:
            item["Description"] = str(out.description)
        export = (out_json or {}).get("Export") if isinstance(out_json, dict) else None
        if export:
            try:
                item["ExportName"] = str(_clean_json(export.get("Name"), rm))
            except Exception:  # noqa: BLE001
                pass
        outputs.append(item)
    _sync_exports(stack, outputs)
    return outputs


def _sync_exports(stack: Stack, outputs: list[dict[str, Any]]) -> None:
    """Keep moto's export registry (ListExports / Fn::ImportValue) in step with the stack's outputs."""
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        del backend.exports[name]
    for item in outputs:
        if "ExportName" in item:
            backend.exports[item["ExportName"]] = cfn_models.Export(stack.stack_id, item["ExportName"], item["OutputValue"])


def _new_resource_map(stack: Stack, template: dict[str, Any], params: dict[str, str]) -> ResourceMap:
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    rm = ResourceMap(stack.stack_id, stack.name, dict(params), dict(stack.tags or {}),
                     region_name=stack.region_name, account_id=stack.account_id,
                     template=copy.deepcopy(template), cross_stack_resources=backend.exports)
    _load(rm)
    rm.tags.update({"aws:cloudformation:stack-name": stack.name, "aws:cloudformation:stack-id": stack.stack_id})
    return rm


def _load(rm: ResourceMap) -> None:
    """ResourceMap.load() minus moto's output validation (which crashes on types it
    does not model); CloudFormation errors surface as ValidationError."""
    try:
        rm.load_mapping()
        rm.transform_mapping()
        rm.load_parameters()
        rm.load_conditions()
    except CloudFormationError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _validation(f"Template format error: {exc}") from exc


def _create_ops(stack: Stack, rm: ResourceMap, template: dict[str, Any], lids: list[str]) -> list[_Op]:
    resources = template["Resources"]
    all_ids = set(resources)
    ops = []
    for lid in lids:
        rjson = resources[lid]
        meta = _meta(rjson)
        ops.append(_Op(lid, rjson["Type"], "CREATE", _create_action(stack, rm, lid, rjson),
                       hold=float(meta.get("HoldSeconds", 0) or 0), fail=meta.get("Fail"),
                       deps=_deps(rjson, all_ids)))
    return ops


def _failure_reason(failed: list[str], verb: str) -> str:
    return f"The following resource(s) failed to {verb}: [{', '.join(sorted(failed))}]. "


def _finish_delete(stack: Stack) -> None:
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    backend.stacks.pop(stack.stack_id, None)
    backend.deleted_stacks[stack.stack_id] = stack
    for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
        del backend.exports[name]
    for cs in [c for c in _change_sets(backend).values() if c.stack_id == stack.stack_id]:
        drop_change_set(backend, cs)


def _spawn(target: Callable[[], None], name: str, stack: Stack | None = None) -> None:
    def guarded() -> None:
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - never leave a stack stuck *_IN_PROGRESS
            import traceback

            traceback.print_exc()
            if stack is not None:
                with LOCK:
                    verb = stack.status.split("_IN_PROGRESS")[0] if stack.status.endswith("_IN_PROGRESS") else None
                    if verb:
                        _stack_status(stack, f"{verb}_FAILED", f"Internal emulator error: {exc}")

    threading.Thread(target=guarded, name=name, daemon=True).start()


# --------------------------------------------------------------------------- stack operations (worker threads)


def _run_create(stack: Stack, template: dict[str, Any], body: str, params: dict[str, str],
                disable_rollback: bool, on_done: Callable[[bool], None] | None = None,
                on_failure_delete: bool = False) -> None:
    ex = _extra(stack)
    with LOCK:
        rm = _new_resource_map(stack, template, params)
        stack.resource_map = rm
        stack.template = body
        stack.template_dict = copy.deepcopy(template)
        stack.description = template.get("Description")
        stack.parameters = dict(params)
        ex.template_dict = copy.deepcopy(template)
        ex.given_params = dict(params)
        ex.outputs = []
        _CANCEL_REQUESTED.discard(stack.stack_id)  # as in _run_update
        _stack_status(stack, "CREATE_IN_PROGRESS", "User Initiated")
        lids = [lid for lid, rj in template["Resources"].items() if _condition_true(rm, rj)]
        ops = _create_ops(stack, rm, template, lids)
    done, failed, cancelled, started = _run_ops(stack, ops)
    with LOCK:
        if not failed:
            ex.outputs = _compute_outputs(stack, rm, template)
            _stack_status(stack, "CREATE_COMPLETE")
            if on_done:
                on_done(True)
            return
        reason = ex.failure_reason = _failure_reason(failed, "create")
        if disable_rollback and not on_failure_delete:
            _stack_status(stack, "CREATE_FAILED", reason)
            if on_done:
                on_done(False)
            return
        if on_failure_delete:
            _stack_status(stack, "DELETE_IN_PROGRESS", reason)
        else:
            _stack_status(stack, "ROLLBACK_IN_PROGRESS", reason + "Rollback requested by user.")
        items = {lid: (rm._parsed_resources.get(lid), template["Resources"][lid]) for lid in started}
        ops = _delete_ops(stack, rm, items)
    _, del_failed, _, _ = _run_ops(stack, ops, stop_on_failure=False)
    with LOCK:
        if on_failure_delete:
            if del_failed:
                _stack_status(stack, "DELETE_FAILED", _failure_reason(del_failed, "delete"))
            else:
                _extra(stack).deletion_time = _now()
                _stack_status(stack, "DELETE_COMPLETE")
                _finish_delete(stack)
        elif del_failed:
            _stack_status(stack, "ROLLBACK_FAILED", _failure_reason(del_failed, "delete"))
        else:
            _stack_status(stack, "ROLLBACK_COMPLETE")
        if on_done:
            on_done(False)


def _add_reference_changes(changes: list[dict[str, Any]], old_res: dict[str, Any], new_res: dict[str, Any],
                           physical: dict[str, str]) -> None:
    """A replaced resource gets a new physical id, so every property that Refs/GetAtts it
    changes too: CloudFormation lists those resources as Modify (Evaluation Dynamic,
    ChangeSource ResourceReference), transitively (e.g. TaskDefinition -> Service)."""
    by_lid = {c["LogicalResourceId"]: c for c in changes}
    replaced = {lid for lid, c in by_lid.items() if c["Action"] == "Modify" and c["Replacement"] in ("True", "Conditional")}
    grew = True
    while grew:
        grew = False
        for lid, rj in new_res.items():
            if lid not in old_res or lid in replaced:
                continue
            repl_props = REPLACEMENT_PROPERTIES.get(rj["Type"], set())
            for prop, value in sorted((rj.get("Properties") or {}).items()):
                causes = sorted(_refs(value) & replaced)
                entry = by_lid.get(lid)
                if not causes or (entry and any(d["Target"].get("Name") == prop and d.get("CausingEntity") == causes[0]
                                                for d in entry["Details"])):
                    continue
                if entry is None:
                    entry = {"Action": "Modify", "LogicalResourceId": lid, "PhysicalResourceId": physical.get(lid, ""),
                             "ResourceType": rj["Type"], "Replacement": "False", "Scope": [], "Details": []}
                    changes.append(entry)
                    by_lid[lid] = entry
                recreate = repl_props == "*" or prop in repl_props
                if "Properties" not in entry["Scope"]:
                    entry["Scope"].append("Properties")
                entry["Details"].append({
                    "Target": {"Attribute": "Properties", "Name": prop,
                               "RequiresRecreation": "Conditionally" if recreate else "Never"},
                    "Evaluation": "Dynamic", "ChangeSource": "ResourceReference", "CausingEntity": causes[0]})
                if recreate and entry["Replacement"] == "False" and "Replacement" not in _meta(rj):
                    entry["Replacement"] = "Conditional"
                if entry["Replacement"] in ("True", "Conditional") and lid not in replaced:
                    replaced.add(lid)
                    grew = True


NESTED_STACK = "AWS::CloudFormation::Stack"


def _resource_diff(old_t: dict[str, Any], old_p: dict[str, str], old_rm: ResourceMap | None,
                   new_t: dict[str, Any], new_p: dict[str, str], new_rm: ResourceMap | None,
                   physical: dict[str, str], reevaluate_nested: bool = False) -> list[dict[str, Any]]:
    """Change set entries for moving from (old template, params) to (new ...).
    ``reevaluate_nested``: the stack is being updated at all, so CloudFormation updates every
    nested stack (their templates may have changed behind an unchanged TemplateURL)."""
    old_res = {k: v for k, v in (old_t.get("Resources") or {}).items() if _condition_true(old_rm, v)}
    new_res = {k: v for k, v in (new_t.get("Resources") or {}).items() if _condition_true(new_rm, v)}
    old_vals = _resolved_params(old_t, old_p)
    new_vals = _resolved_params(new_t, new_p)
    changed_params = {k for k in set(old_vals) | set(new_vals) if old_vals.get(k) != new_vals.get(k)}
    changes = []
    for lid, rj in new_res.items():
        if lid not in old_res:
            changes.append({"Action": "Add", "LogicalResourceId": lid, "ResourceType": rj["Type"],
                            "Scope": [], "Details": []})
            continue
        old = old_res[lid]
        scope: list[str] = []
        details: list[dict[str, Any]] = []
        op_props, np_props = old.get("Properties") or {}, rj.get("Properties") or {}
        repl_props = REPLACEMENT_PROPERTIES.get(rj["Type"], set())
        requires_replacement = False
        for prop in sorted(set(op_props) | set(np_props)):
            static = op_props.get(prop) != np_props.get(prop)
            via_param = bool(_refs(np_props.get(prop)) & changed_params)
            if not (static or via_param):
                continue
            recreate = repl_props == "*" or prop in repl_props
            requires_replacement |= recreate
            if "Properties" not in scope:
                scope.append("Properties")
            details.append({
                "Target": {"Attribute": "Properties", "Name": prop,
                           "RequiresRecreation": "Always" if recreate else "Never"},
                "Evaluation": "Static",
                "ChangeSource": "DirectModification" if static else "ParameterReference",
                **({} if static else {"CausingEntity": sorted(_refs(np_props.get(prop)) & changed_params)[0]}),
            })
        if old.get("Metadata") != rj.get("Metadata"):
            scope.append("Metadata")
        other = any(old.get(k) != rj.get(k) for k in set(old) | set(rj) if k not in ("Properties", "Metadata"))
        if not scope and not other:
            continue
        replacement = "True" if requires_replacement else "False"
        override = _meta(rj).get("Replacement")
        if override is not None:
            replacement = str(override) if str(override) in ("True", "False", "Conditional") else \
                ("True" if override is True else "False")
        entry = {"Action": "Modify", "LogicalResourceId": lid, "PhysicalResourceId": physical.get(lid, ""),
                 "ResourceType": rj["Type"], "Replacement": replacement, "Scope": scope, "Details": details}
        changes.append(entry)
    _add_reference_changes(changes, old_res, new_res, physical)
    if reevaluate_nested:
        listed = {c["LogicalResourceId"] for c in changes}
        for lid, rj in new_res.items():
            if rj["Type"] == NESTED_STACK and lid in old_res and lid not in listed:
                # AWS's DescribeChangeSet shape for a re-evaluated nested stack.
                changes.append({
                    "Action": "Modify", "LogicalResourceId": lid, "PhysicalResourceId": physical.get(lid, ""),
                    "ResourceType": NESTED_STACK, "Replacement": "False", "Scope": ["Properties"],
                    "Details": [{"Target": {"Attribute": "Properties", "RequiresRecreation": "Never"},
                                 "Evaluation": "Dynamic", "ChangeSource": "Automatic"}]})
    for lid, rj in old_res.items():
        if lid not in new_res:
            changes.append({"Action": "Remove", "LogicalResourceId": lid, "PhysicalResourceId": physical.get(lid, ""),
                            "ResourceType": rj["Type"], "Scope": [], "Details": []})
    for c in changes:
        if not c.get("PhysicalResourceId"):
            c.pop("PhysicalResourceId", None)
    return [{"Type": "Resource", "ResourceChange": c} for c in changes]


def settle_children(stack: Stack, commit: bool, wait: bool) -> None:
    """Tell the nested stacks whose updates wait on this stack's outcome to clean up
    (commit) or roll back; with ``wait``, return once they have cleaned up. Called without LOCK."""
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    with LOCK:
        gates = dict(_extra(stack).child_gates)
        _extra(stack).child_gates.clear()
        for gate in gates.values():
            gate.decision = commit
    while wait:
        with LOCK:
            children = [_find_stack(backend, child_id) for child_id in gates]
            if not any(c is not None and c.status in ("UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
                       for c in children):
                return
        time.sleep(STABILIZE_POLL_SECONDS)


def _replaced(ops: list[_Op], gone: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """Logical id -> the physical resource (of ``gone``) that a replacing update made redundant:
    after the update the old one (``kept`` = the new resources), after a rollback the new one
    (``kept`` = the old resources). Type handlers' resources (nested stacks) are never replaced."""
    out = {}
    for op in ops:
        if op.verb != "UPDATE" or not op.replacement or op.rtype in TYPE_HANDLERS:
            continue
        obj, other = gone.get(op.lid), kept.get(op.lid)
        if obj is None or obj is other or isinstance(obj, str):
            continue
        if other is not None and _physical(obj) == _physical(other):
            continue  # the same physical resource (never created anew)
        out[op.lid] = obj
    return out


def _run_update(stack: Stack, template: dict[str, Any], body: str, params: dict[str, str],
                disable_rollback: bool, on_done: Callable[[bool], None] | None = None,
                gate: Gate | None = None) -> None:
    """An update; ``gate``: this is a nested stack, whose finished update waits for the
    parent's outcome before it cleans up or rolls back."""
    ex = _extra(stack)
    with LOCK:
        rm: ResourceMap = stack.resource_map
        old = {
            "template": stack.template, "template_dict": copy.deepcopy(ex.template_dict),
            "params": dict(ex.given_params), "outputs": copy.deepcopy(ex.outputs),
            "rm_template": rm._template, "rm_json": rm._resource_json_map,
            "rm_input": rm.input_parameters, "rm_resolved": dict(rm.resolved_parameters),
            "rm_parsed": dict(rm._parsed_resources),
            "rm_conditions": getattr(rm, "lazy_condition_map", None),
            "description": stack.description,
        }
        old_t = old["template_dict"]
        physical = {lid: r["physical"] for lid, r in ex.resources.items()}
        before = _values_before(rm, old_t)  # custom names and replacement decisions
        old_rm_for_conditions = copy.copy(rm)
        ex.last_updated = _now()
        # A cancellation that came too late for an earlier operation must not stop this one.
        _CANCEL_REQUESTED.discard(stack.stack_id)
        _stack_status(stack, "UPDATE_IN_PROGRESS", "User Initiated")

        # Re-point moto's ResourceMap at the new template, as ResourceMap.update() does.
        new_t = copy.deepcopy(template)
        rm._template = new_t
        rm.input_parameters = dict(params)
        rm.resolved_parameters = {}
        _load(rm)
        rm._resource_json_map = new_t["Resources"]
        changes = [c["ResourceChange"] for c in
                   _resource_diff(old_t, old["params"], old_rm_for_conditions, template, params, rm, physical,
                                  reevaluate_nested=True)]
        all_ids = set(template["Resources"])
        ops: list[_Op] = []
        kinds: dict[str, str] = {}
        for ch in changes:
            lid = ch["LogicalResourceId"]
            kinds[lid] = ch["Action"]
            if ch["Action"] == "Remove":
                continue
            rj = template["Resources"][lid]
            meta = _meta(rj)
            common = dict(hold=float(meta.get("HoldSeconds", 0) or 0), fail=meta.get("Fail"),
                          deps=_deps(rj, all_ids))
            if ch["Action"] == "Add":
                ops.append(_Op(lid, rj["Type"], "CREATE", _create_action(stack, rm, lid, rj), **common))
            else:
                op = _Op(lid, rj["Type"], "UPDATE", _update_action(stack, rm, lid, rj, before.get(lid)),
                         physical=physical.get(lid, ""), replacement=ch.get("Replacement") == "True", **common)
                if ch.get("Replacement") == "Conditional" and rj["Type"] not in TYPE_HANDLERS:
                    op.decide = _decide_replacement(rm, rj, before.get(lid) or {})
                ops.append(op)
        stack.template = body
        stack.template_dict = copy.deepcopy(template)
        stack.parameters = dict(params)
        ex.template_dict = copy.deepcopy(template)
        ex.given_params = dict(params)
    done, failed, cancelled, started = _run_ops(stack, ops)
    reason: str | None = None
    with LOCK:
        if failed:
            reasons = []
            for verb, kind in (("create", "Add"), ("update", "Modify")):
                ids = [lid for lid in failed if kinds.get(lid) == kind]
                if ids:
                    reasons.append(_failure_reason(ids, verb))
            reason = ex.failure_reason = "".join(reasons)
        else:
            ex.outputs = _compute_outputs(stack, rm, template)
            stack.description = template.get("Description")
            _stack_status(stack, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    ok = not failed and (gate is None or gate.wait())
    if ok:
        settle_children(stack, commit=True, wait=True)
        with LOCK:
            items = {lid: (old["rm_parsed"].get(lid), old_t["Resources"][lid])
                     for lid, kind in kinds.items() if kind == "Remove"}
            for lid in items:
                rm._parsed_resources.pop(lid, None)
            # Replaced resources: the old physical resource is deleted during cleanup (with the
            # removed ones, dependents first), unless the template's UpdateReplacePolicy retains it.
            olds = _replaced(ops, old["rm_parsed"], rm._parsed_resources)
            for lid in list(olds):
                if template["Resources"][lid].get("UpdateReplacePolicy") == "Retain":
                    _event(stack, lid, physical.get(lid) or _physical(olds[lid]), template["Resources"][lid]["Type"],
                           "DELETE_SKIPPED", None, track=False)
                    del olds[lid]
            cleanup = _delete_ops(stack, rm, {**items, **{lid: (obj, old_t["Resources"][lid])
                                                          for lid, obj in olds.items()}})
            for op in cleanup:
                if op.lid in olds:
                    op.physical, op.track = physical.get(op.lid) or _physical(olds[op.lid]), False
        _run_ops(stack, cleanup, stop_on_failure=False)
        with LOCK:
            _stack_status(stack, "UPDATE_COMPLETE")
            if on_done:
                on_done(True)
        return
    if disable_rollback:
        settle_children(stack, commit=True, wait=False)  # no rollback: updated nested stacks stay so
        with LOCK:
            _stack_status(stack, "UPDATE_FAILED", reason)
            if on_done:
                on_done(False)
        return
    with LOCK:
        _stack_status(stack, "UPDATE_ROLLBACK_IN_PROGRESS", reason)
        new_parsed = dict(rm._parsed_resources)
        # Restore moto's ResourceMap to the previous template/parameters.
        rm._template = old["rm_template"]
        rm._resource_json_map = old["rm_json"]
        rm.input_parameters = old["rm_input"]
        rm.resolved_parameters = {}
        rm._parsed_resources = dict(old["rm_parsed"])
        try:
            _load(rm)
        except Exception:  # noqa: BLE001
            pass
        back_ops = []
        replaced = {op.lid for op in ops if op.replacement}
        for lid in started:
            if kinds.get(lid) != "Modify":
                continue
            orj = old_t["Resources"][lid]
            previous = old["rm_parsed"].get(lid)
            if lid in replaced and previous is not None:
                # A replaced resource rolls back to its previous physical resource (AWS keeps it until
                # cleanup), not to a third one made from the old template; the new one is deleted in
                # the rollback's cleanup.
                back_ops.append(_Op(lid, orj["Type"], "UPDATE", _restore_action(rm, lid, previous),
                                    physical=physical.get(lid) or _physical(previous)))
                continue
            if lid in new_parsed:
                rm._parsed_resources[lid] = new_parsed[lid]
            back_ops.append(_Op(lid, orj["Type"], "UPDATE", _rollback_action(stack, rm, lid, orj),
                                physical=_physical(new_parsed.get(lid)) or physical.get(lid, "")))
    _run_ops(stack, back_ops, stop_on_failure=False)
    with LOCK:
        _stack_status(stack, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        items = {lid: (new_parsed.get(lid), template["Resources"][lid]) for lid in started if kinds.get(lid) == "Add"}
        # The new physical resources of replaced ones go too: the stack has the old ones again.
        news = _replaced([op for op in ops if op.lid in started], new_parsed, old["rm_parsed"])
        items.update({lid: (obj, template["Resources"][lid]) for lid, obj in news.items()})
        cleanup = _delete_ops(stack, rm, items)
        for op in cleanup:
            if op.lid in news:
                op.physical, op.track = _physical(news[op.lid]), False
    _run_ops(stack, cleanup, stop_on_failure=False)
    with LOCK:
        stack.template = old["template"]
        stack.template_dict = copy.deepcopy(old["template_dict"])
        stack.parameters = dict(old["params"])
        stack.description = old["description"]
        ex.template_dict = old["template_dict"]
        ex.given_params = old["params"]
        ex.outputs = old["outputs"]
        _sync_exports(stack, ex.outputs)  # a nested stack rolled back with its parent had new ones
        _stack_status(stack, "UPDATE_ROLLBACK_COMPLETE")
        if on_done:
            on_done(False)


def _run_delete(stack: Stack) -> None:
    ex = _extra(stack)
    with LOCK:
        ex.deletion_time = _now()
        _stack_status(stack, "DELETE_IN_PROGRESS", "User Initiated")
        rm = getattr(stack, "resource_map", None)
        resources = (ex.template_dict.get("Resources") or {})
        items = {}
        for lid, rj in resources.items():
            if lid not in ex.resources or ex.resources[lid]["status"] in ("DELETE_COMPLETE",):
                continue
            if rj.get("DeletionPolicy") == "Retain":
                _event(stack, lid, ex.resources[lid]["physical"], rj["Type"], "DELETE_SKIPPED", None)
                continue
            items[lid] = ((rm._parsed_resources.get(lid) if rm is not None else None), rj)
        ops = _delete_ops(stack, rm, items) if items else []
    _, failed, _, _ = _run_ops(stack, ops, stop_on_failure=False)
    with LOCK:
        if failed:
            _stack_status(stack, "DELETE_FAILED", _failure_reason(failed, "delete"))
            return
        for lid in items:
            if rm is not None:
                rm._parsed_resources.pop(lid, None)
        ex.outputs = []
        _stack_status(stack, "DELETE_COMPLETE")
        _finish_delete(stack)


# --------------------------------------------------------------------------- validation helpers


def _find_stack(backend: Any, name_or_id: str, include_deleted: bool = False) -> Stack | None:
    for stack in backend.stacks.values():
        if stack.name == name_or_id or stack.stack_id == name_or_id:
            return stack
    if include_deleted and name_or_id in backend.deleted_stacks:
        return backend.deleted_stacks[name_or_id]
    return None


def _require_updatable(stack: Stack) -> None:
    s = stack.status
    if (s.endswith("_IN_PROGRESS") and s != "REVIEW_IN_PROGRESS") or s in NOT_UPDATABLE:
        raise _validation(f"Stack:{stack.stack_id} is in {s} state and can not be updated.")


def _resolve_params(template: dict[str, Any], given_list: list[dict[str, Any]],
                    previous: dict[str, str] | None) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    unknown = [p["ParameterKey"] for p in given_list if p.get("ParameterKey") not in declared]
    if unknown:
        raise _validation(f"Parameters: [{', '.join(unknown)}] do not exist in the template")
    params: dict[str, str] = {}
    for p in given_list:
        key = p["ParameterKey"]
        use_prev = str(p.get("UsePreviousValue", "false")).lower() == "true"
        if use_prev and p.get("ParameterValue") not in (None, ""):
            raise _validation(f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true "
                              "and non empty value for a parameter")
        if use_prev:
            if previous is None or key not in previous:
                raise _validation(f"Invalid input for parameter key {key}. Cannot specify usePreviousValue as true "
                                  "for a parameter key not in the previous template")
            params[key] = previous[key]
        else:
            params[key] = "" if p.get("ParameterValue") is None else str(p["ParameterValue"])
    missing = [k for k, d in declared.items() if k not in params and not (isinstance(d, dict) and "Default" in d)]
    if missing:
        raise _validation(f"Parameters: [{', '.join(missing)}] must have values")
    return params


def _check_capabilities(template: dict[str, Any], given: list[str]) -> None:
    # Real CloudFormation refuses IAM resources unless the caller acknowledges them.
    needed = None
    for rj in (template.get("Resources") or {}).values():
        rtype = rj.get("Type") if isinstance(rj, dict) else None
        if rtype in IAM_TYPES:
            name_prop = IAM_TYPES[rtype]
            if name_prop and name_prop in (rj.get("Properties") or {}):
                needed = "CAPABILITY_NAMED_IAM"
            elif needed is None:
                needed = "CAPABILITY_IAM"
    if needed == "CAPABILITY_NAMED_IAM" and needed not in given:
        raise InsufficientCapabilities(f"Requires capabilities : [{needed}]")
    if needed == "CAPABILITY_IAM" and not ({"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"} & set(given)):
        raise InsufficientCapabilities(f"Requires capabilities : [{needed}]")


def _validate_template_with_params(stack_id: str, stack_name: str, template: dict[str, Any],
                                   params: dict[str, str], account_id: str, region: str,
                                   backend: Any) -> ResourceMap:
    rm = ResourceMap(stack_id, stack_name, dict(params), {}, region_name=region, account_id=account_id,
                     template=copy.deepcopy(template), cross_stack_resources=backend.exports)
    _load(rm)
    for lid, rjson in (template.get("Resources") or {}).items():
        handler = TYPE_HANDLERS.get(rjson.get("Type")) if isinstance(rjson, dict) else None
        if handler is not None:
            handler.validate(lid, rjson)
    return rm


_EXECUTED = ("EXECUTE_IN_PROGRESS", "EXECUTE_COMPLETE", "EXECUTE_FAILED")


def _executed(cs: ChangeSet) -> bool:
    """On AWS an executed change set leaves the stack's change sets (ListChangeSets) and
    no longer holds its name: the next deploy may reuse it (e.g. `<stack>-CS`)."""
    return cs.execution_status in _EXECUTED


def _find_change_set(backend: Any, name_or_arn: str, stack_name: str | None) -> ChangeSet:
    """By ARN: any change set still kept, executed ones included (until the stack's next
    execution deletes them). By name: the un-executed change set of that name, else the
    executed one that last had it (until a new change set takes the name)."""
    sets = _change_sets(backend)
    if name_or_arn in sets:
        return sets[name_or_arn]
    named = [cs for cs in sets.values()
             if cs.name == name_or_arn and (not stack_name or stack_name in (cs.stack_name, cs.stack_id))]
    if named:
        return min(named, key=_executed)  # un-executed first
    raise ChangeSetNotFound(f"ChangeSet [{name_or_arn}] does not exist")


def _tags_given(resp: CloudFormationResponse) -> bool:
    return any(k == "Tags" or k.startswith("Tags.") for k in resp.querystring)


# --------------------------------------------------------------------------- response handlers


def create_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    cs_name = self._get_param("ChangeSetName")
    cs_type = self._get_param("ChangeSetType") or "UPDATE"
    body = self._get_param("TemplateBody")
    url = self._get_param("TemplateURL")
    use_prev_t = self._get_bool_param("UsePreviousTemplate", False)
    capabilities = self._get_param("Capabilities", []) or []
    given_list = self._get_param("Parameters", []) or []
    notification_arns = self._get_param("NotificationARNs") if any(
        k.startswith("NotificationARNs") for k in self.querystring) else None
    tags = ({t["Key"]: t["Value"] for t in (self._get_param("Tags", []) or [])}
            if _tags_given(self) else None)
    role_arn = self._get_param("RoleARN")
    description = self._get_param("Description")

    cfn_models.validate_create_change_set(cs_name)
    stack = _find_stack(backend, stack_name)
    if cs_type == "UPDATE":
        if stack is None:
            raise _validation(f"Stack [{stack_name}] does not exist")
        _require_updatable(stack)
        if stack.status == "REVIEW_IN_PROGRESS":
            raise _validation(f"Stack:{stack.stack_id} is in REVIEW_IN_PROGRESS state and can not be updated.")
    elif cs_type == "CREATE":
        if stack is not None and stack.status != "REVIEW_IN_PROGRESS":
            raise AlreadyExists(f"Stack [{stack_name}] already exists and cannot be created again "
                                f"with the changeSet [{cs_name}].")
    else:
        raise _validation(f"ChangeSetType {cs_type} is not supported by the emulator")

    if use_prev_t:
        if body or url:
            raise _validation("You cannot specify both usePreviousTemplate and Template Body/Template URL.")
        if stack is None or not _extra(stack).template_dict:
            raise _validation("UsePreviousTemplate can only be used with an existing stack")
        body = stack.template
    elif url:
        body = self._get_stack_from_s3_url(url)
    if not body:
        raise _validation("Either Template URL or Template Body must be specified.")
    template = _parse_template(body)
    # UsePreviousValue refers to what the stack reports, defaults included.
    previous = (_resolved_params(_extra(stack).template_dict, _extra(stack).given_params)
                if (stack is not None and cs_type == "UPDATE") else None)
    # Transforms run as the change set is made: a failure leaves it FAILED, not an API error.
    transform_failure = None
    try:
        template = apply_includes(template, backend.account_id, self.partition, _include_params(template, given_list))
    except TransformFailed as exc:
        transform_failure = str(exc)
    params = _resolve_params(template, given_list, previous)
    if transform_failure is None:
        _check_capabilities(template, capabilities)

    if stack is None:
        stack_id = generate_stack_id(stack_name, backend.region_name, backend.account_id)
        stack = Stack(stack_id=stack_id, name=stack_name, template={}, parameters={},
                      account_id=backend.account_id, region_name=backend.region_name,
                      notification_arns=notification_arns, tags=tags, role_arn=role_arn)
        stack.events = []
        backend.stacks[stack_id] = stack
        _extra(stack).capabilities = list(capabilities)
        _stack_status(stack, "REVIEW_IN_PROGRESS", "User Initiated")
    client_token = self._get_param("ClientToken")
    for cs in _change_sets(backend).values():
        # An executed change set no longer holds its name (AWS); an available or FAILED one does.
        if cs.stack_id == stack.stack_id and cs.name == cs_name and not _executed(cs):
            if client_token and cs.client_token == client_token:
                # AWS: a retry of a request that worked (same ClientToken) succeeds again.
                return ActionResult({"Id": cs.id, "StackId": stack.stack_id})
            raise AlreadyExists(f"ChangeSet [{cs_name}] already exists")

    ex = _extra(stack)
    cs = ChangeSet(
        id=generate_changeset_id(cs_name, backend.region_name, backend.account_id),
        name=cs_name, stack_id=stack.stack_id, stack_name=stack.name, type=cs_type,
        template_body=body, template_dict=template, params=params, description=description,
        capabilities=list(capabilities), notification_arns=notification_arns, tags=tags, role_arn=role_arn,
        client_token=client_token, execute_token=None,
        # Stored and shown as given; the emulator keeps no drift to revert.
        deployment_mode=self._get_param("DeploymentMode"),
        include_nested_stacks=str(self._get_param("IncludeNestedStacks", "false")).lower() == "true",
    )
    if transform_failure is not None:
        _fail_change_set(cs, transform_failure)
        _change_sets(backend)[cs.id] = cs
        return ActionResult({"Id": cs.id, "StackId": stack.stack_id})
    new_rm = _validate_template_with_params(stack.stack_id, stack.name, template, params,
                                            backend.account_id, backend.region_name, backend)
    same = cs_type == "UPDATE" and (
        ex.template_dict == template
        and _resolved_params(ex.template_dict, ex.given_params) == _resolved_params(template, params)
        and (tags is None or tags == (stack.tags or {}))
        and (notification_arns is None or list(notification_arns) == list(stack.notification_arns or []))
        and (role_arn is None or role_arn == stack.role_arn))
    cs.changes = diff_for_change_set(stack, cs, new_rm, reevaluate_nested=cs_type == "UPDATE" and not same)
    _change_sets(backend)[cs.id] = cs
    if same and not cs.changes:
        # Real AWS keeps the change set around in FAILED state until deleted.
        _fail_change_set(cs, NO_CHANGES_REASON)
    elif cs.include_nested_stacks:
        review_nested(stack, cs, new_rm)
    return ActionResult({"Id": cs.id, "StackId": stack.stack_id})


def _fail_change_set(cs: ChangeSet, reason: str) -> None:
    cs.status = "FAILED"
    cs.execution_status = "UNAVAILABLE"
    cs.status_reason = reason


def diff_for_change_set(stack: Stack, cs: ChangeSet, new_rm: ResourceMap, reevaluate_nested: bool) -> list[dict[str, Any]]:
    """The changes of a change set on ``stack`` (new template and parameters in ``cs``)."""
    ex = _extra(stack)
    old_rm = getattr(stack, "resource_map", None) if ex.template_dict else None
    physical = {lid: r["physical"] for lid, r in ex.resources.items()}
    return _resource_diff(ex.template_dict if cs.type == "UPDATE" else {}, ex.given_params, old_rm,
                          cs.template_dict, cs.params, new_rm, physical, reevaluate_nested=reevaluate_nested)


def review_nested(stack: Stack, cs: ChangeSet, new_rm: ResourceMap) -> None:
    """IncludeNestedStacks: a nested change set for every nested stack the change set adds
    or modifies (recursively); one that fails fails this one, as AWS words it."""
    backend = cloudformation_backends[stack.account_id][stack.region_name]
    for entry in cs.changes:
        change = entry["ResourceChange"]
        handler = TYPE_HANDLERS.get(change["ResourceType"])
        if handler is None or change["Action"] not in ("Add", "Modify"):
            continue
        lid = change["LogicalResourceId"]
        nested = handler.review(stack, cs, lid, cs.template_dict["Resources"][lid], new_rm)
        _change_sets(backend)[nested.id] = nested
        cs.children[lid] = nested.id
        change["ChangeSetId"] = nested.id
        if nested.status == "FAILED" and cs.status != "FAILED":
            _fail_change_set(cs, f"Nested change set {nested.id} was not successfully created: Currently in FAILED.")


def drop_change_set(backend: Any, cs: ChangeSet) -> None:
    """Delete a change set with its nested change sets; a stack made only for a nested
    change set (still REVIEW_IN_PROGRESS) goes with it, as AWS does."""
    sets = _change_sets(backend)
    for child_id in cs.children.values():
        child = sets.get(child_id)
        if child is not None:
            drop_change_set(backend, child)
    sets.pop(cs.id, None)
    if cs.review_stack:
        stack = _find_stack(backend, cs.stack_id)
        if stack is not None and stack.status == "REVIEW_IN_PROGRESS":
            _run_delete(stack)


def drop_other_change_sets(backend: Any, stack: Stack, keep: ChangeSet) -> None:
    """Executing a change set deletes the stack's other change sets (AWS behaviour)."""
    for other in [c for c in _change_sets(backend).values() if c.stack_id == stack.stack_id and c.id != keep.id]:
        if other.id in _change_sets(backend):
            drop_change_set(backend, other)


def describe_change_set(self: CloudFormationResponse) -> ActionResult:
    cs = _find_change_set(self.cloudformation_backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    return ActionResult(cs.describe())


def delete_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    cs = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if cs.execution_status == "EXECUTE_IN_PROGRESS":
        raise InvalidChangeSetStatus(f"Cannot delete ChangeSet in status {cs.execution_status}")
    if cs.parent_id:
        raise _validation(f"Cannot delete nested change set [{cs.id}]: "
                          f"delete its root change set [{cs.root_id}]")
    drop_change_set(backend, cs)
    return EmptyResult()


def list_change_sets(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    stack_name = self._get_param("StackName")
    stack = _find_stack(backend, stack_name, include_deleted=True)
    if stack is None:
        raise _validation(f"Stack [{stack_name}] does not exist")
    items = [cs.summary() for cs in _change_sets(backend).values()
             if cs.stack_id == stack.stack_id and cs.execution_status not in ("EXECUTE_COMPLETE", "EXECUTE_FAILED")]
    return ActionResult({"Summaries": items})


def execute_change_set(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    cs = _find_change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    disable_rollback = self._get_bool_param("DisableRollback", False)
    if cs.parent_id:
        raise _validation(f"Cannot execute nested change set [{cs.id}]: "
                          f"Executable from root change set [{cs.root_id}]")
    stack = _find_stack(backend, cs.stack_id)
    if stack is None:
        raise _validation(f"Stack [{cs.stack_name}] does not exist")
    if cs.status != "CREATE_COMPLETE":
        raise InvalidChangeSetStatus(f"ChangeSet [{cs.id}] cannot be executed in its current status of [{cs.status}]")
    token = self._get_param("ClientRequestToken")
    if token and cs.execute_token == token:
        # AWS: a retry of an execution that started (same ClientRequestToken) succeeds again.
        return EmptyResult()
    if cs.execution_status != "AVAILABLE":
        raise InvalidChangeSetStatus(
            f"ChangeSet [{cs.id}] cannot be executed in its current execution status of [{cs.execution_status}]")
    _require_updatable(stack)
    if cs.type == "UPDATE" and stack.status == "REVIEW_IN_PROGRESS":
        raise _validation(f"Stack:{stack.stack_id} is in REVIEW_IN_PROGRESS state and can not be updated.")

    drop_other_change_sets(backend, stack, cs)
    cs.execution_status = "EXECUTE_IN_PROGRESS"
    cs.execute_token = token
    ex = _extra(stack)
    ex.change_set_id = cs.id
    ex.executing = cs
    ex.capabilities = list(cs.capabilities)
    stack.disable_rollback = disable_rollback
    if cs.notification_arns is not None:
        stack.notification_arns = list(cs.notification_arns)
    if cs.tags is not None:
        stack.tags = dict(cs.tags)
    if cs.role_arn:
        stack.role_arn = cs.role_arn

    def done(ok: bool) -> None:
        cs.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"

    if cs.type == "CREATE":
        work = lambda: _run_create(stack, cs.template_dict, cs.template_body, cs.params, disable_rollback, done)  # noqa: E731
        # Status flips synchronously so a DescribeStacks right after the call never sees the old state.
        stack.status = "CREATE_IN_PROGRESS"
    else:
        work = lambda: _run_update(stack, cs.template_dict, cs.template_body, cs.params, disable_rollback, done)  # noqa: E731
        stack.status = "UPDATE_IN_PROGRESS"
    _spawn(work, f"cfn-{stack.name}", stack)
    return EmptyResult()


def create_stack(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    existing = _find_stack(backend, name)
    token = self._get_param("ClientRequestToken")
    if existing is not None and token and _extra(existing).create_token == token:
        # AWS: a retry of a CreateStack that worked (same ClientRequestToken) succeeds again.
        return ActionResult({"StackId": existing.stack_id})
    if existing is not None:
        raise AlreadyExists(f"Stack [{name}] already exists")
    body = self._get_param("TemplateBody")
    url = self._get_param("TemplateURL")
    if url:
        body = self._get_stack_from_s3_url(url)
    if not body:
        raise _validation("Either Template URL or Template Body must be specified.")
    template = _parse_template(body)
    given_list = self._get_param("Parameters", []) or []
    transform_failure = None
    try:
        template = apply_includes(template, backend.account_id, self.partition, _include_params(template, given_list))
    except TransformFailed as exc:
        transform_failure = str(exc)
    params = _resolve_params(template, given_list, None)
    capabilities = self._get_param("Capabilities", []) or []
    tags = {t["Key"]: t["Value"] for t in (self._get_param("Tags", []) or [])}
    on_failure = self._get_param("OnFailure")
    disable_rollback = self._get_bool_param("DisableRollback", False) or on_failure == "DO_NOTHING"
    stack_id = generate_stack_id(name, backend.region_name, backend.account_id)
    if transform_failure is None:
        _check_capabilities(template, capabilities)
        _validate_template_with_params(stack_id, name, template, params, backend.account_id, backend.region_name,
                                       backend)
    timeout = self._get_param("TimeoutInMinutes")
    stack = Stack(stack_id=stack_id, name=name, template={}, parameters={}, account_id=backend.account_id,
                  region_name=backend.region_name, notification_arns=self._get_param("NotificationARNs", []),
                  tags=tags, role_arn=self._get_param("RoleARN"),
                  enable_termination_protection=self._get_bool_param("EnableTerminationProtection", False),
                  timeout_in_mins=int(timeout) if timeout else None,
                  stack_policy_body=self._get_param("StackPolicyBody"))
    stack.events = []
    stack.disable_rollback = disable_rollback
    stack.status = "CREATE_IN_PROGRESS"
    _extra(stack).capabilities = list(capabilities)
    _extra(stack).create_token = token
    backend.stacks[stack_id] = stack
    if transform_failure is not None:
        _spawn(lambda: _run_failed_transform(stack, body, transform_failure), f"cfn-{name}", stack)
    else:
        _spawn(lambda: _run_create(stack, template, body, params, disable_rollback,
                                   on_failure_delete=on_failure == "DELETE"), f"cfn-{name}", stack)
    return ActionResult({"StackId": stack_id})


def _run_failed_transform(stack: Stack, body: str, reason: str) -> None:
    """CreateStack whose template transform failed: AWS creates nothing and rolls back, the
    transform's message as the status reason."""
    with LOCK:
        stack.template = body
        _extra(stack).failure_reason = reason
        _stack_status(stack, "CREATE_IN_PROGRESS", reason)
        _stack_status(stack, "ROLLBACK_IN_PROGRESS", reason.rstrip(".") + ". Rollback requested by user.")
        _stack_status(stack, "ROLLBACK_COMPLETE")


def update_stack(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name)
    if stack is None:
        raise _validation(f"Stack [{name}] does not exist")
    _require_updatable(stack)
    if stack.status == "REVIEW_IN_PROGRESS":
        raise _validation(f"Stack:{stack.stack_id} is in REVIEW_IN_PROGRESS state and can not be updated.")
    ex = _extra(stack)
    body = self._get_param("TemplateBody")
    url = self._get_param("TemplateURL")
    if self._get_bool_param("UsePreviousTemplate", False):
        body = stack.template
    elif url:
        body = self._get_stack_from_s3_url(url)
    if not body:
        raise _validation("Either Template URL or Template Body must be specified.")
    template = _parse_template(body)
    given_list = self._get_param("Parameters", []) or []
    try:
        template = apply_includes(template, backend.account_id, self.partition, _include_params(template, given_list))
    except TransformFailed as exc:
        raise _validation(str(exc)) from exc
    params = _resolve_params(template, given_list, _resolved_params(ex.template_dict, ex.given_params))
    capabilities = self._get_param("Capabilities", []) or []
    _check_capabilities(template, capabilities)
    _validate_template_with_params(stack.stack_id, stack.name, template, params, backend.account_id,
                                   backend.region_name, backend)
    tags = ({t["Key"]: t["Value"] for t in (self._get_param("Tags", []) or [])} if _tags_given(self) else None)
    same = (ex.template_dict == template
            and _resolved_params(ex.template_dict, ex.given_params) == _resolved_params(template, params)
            and (tags is None or tags == stack.tags))
    if same:
        raise _validation("No updates are to be performed.")
    if tags is not None:
        stack.tags = tags
    if self._get_param("RoleARN"):
        stack.role_arn = self._get_param("RoleARN")
    if any(k.startswith("NotificationARNs") for k in self.querystring):
        stack.notification_arns = self._get_param("NotificationARNs", []) or []
    ex.capabilities = list(capabilities)
    ex.executing = None
    disable_rollback = self._get_bool_param("DisableRollback", False)
    stack.disable_rollback = disable_rollback
    stack.status = "UPDATE_IN_PROGRESS"
    _spawn(lambda: _run_update(stack, template, body, params, disable_rollback), f"cfn-{name}", stack)
    return ActionResult({"StackId": stack.stack_id})


def delete_stack(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name)
    if stack is None:
        return EmptyResult()  # AWS: deleting a non-existent stack succeeds silently
    if stack.enable_termination_protection:
        raise _validation(f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled")
    if stack.status == "DELETE_IN_PROGRESS":
        return EmptyResult()
    if stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS":
        raise _validation(f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
    stack.status = "DELETE_IN_PROGRESS"
    _spawn(lambda: _run_delete(stack), f"cfn-delete-{stack.name}", stack)
    return EmptyResult()


def cancel_update_stack(self: CloudFormationResponse) -> ActionResult:
    """CancelUpdateStack: only an UPDATE_IN_PROGRESS stack can be cancelled;
    the running update then fails and rolls back (UPDATE_ROLLBACK_COMPLETE)."""
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name)
    if stack is None:
        raise _validation(f"Stack [{name}] does not exist")
    token = self._get_param("ClientRequestToken")
    if token and _extra(stack).cancel_token == token:
        return ActionResult({})  # AWS: a retried request (same token) succeeds again.
    if stack.status != "UPDATE_IN_PROGRESS":
        raise _validation(f"CancelUpdateStack cannot be called from current stack status {stack.status}")
    _extra(stack).cancel_token = token
    request_cancel(stack)
    return ActionResult({})


def update_termination_protection(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name)
    if stack is None:
        raise _validation(f"Stack [{name}] does not exist")
    stack.enable_termination_protection = self._get_bool_param("EnableTerminationProtection", False)
    return ActionResult({"StackId": stack.stack_id})


def _describe(stack: Stack) -> dict[str, Any]:
    ex = _extra(stack)
    d: dict[str, Any] = {
        "StackId": stack.stack_id,
        "StackName": stack.name,
        "CreationTime": stack.creation_time,
        "RollbackConfiguration": {},
        "StackStatus": stack.status,
        "DisableRollback": bool(stack.disable_rollback),
        "NotificationARNs": list(stack.notification_arns or []),
        "Tags": [{"Key": k, "Value": v} for k, v in (stack.tags or {}).items()],
        "EnableTerminationProtection": bool(stack.enable_termination_protection),
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    }
    if ex.template_dict:
        d["Parameters"] = _param_list(ex.template_dict, ex.given_params)
        if ex.template_dict.get("Description"):
            d["Description"] = ex.template_dict["Description"]
    if ex.change_set_id:
        d["ChangeSetId"] = ex.change_set_id
    if ex.parent_id:
        d["ParentId"] = ex.parent_id
        d["RootId"] = ex.root_id
    if ex.deletion_time and stack.status.startswith("DELETE"):
        d["DeletionTime"] = ex.deletion_time
    if ex.last_updated:
        d["LastUpdatedTime"] = ex.last_updated
    if ex.status_reason:
        d["StackStatusReason"] = ex.status_reason
    if stack.timeout_in_minutes:
        d["TimeoutInMinutes"] = int(stack.timeout_in_minutes)
    if ex.capabilities:
        d["Capabilities"] = list(ex.capabilities)
    if ex.outputs:
        d["Outputs"] = copy.deepcopy(ex.outputs)
    if stack.role_arn:
        d["RoleARN"] = stack.role_arn
    return d


def describe_stacks(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    if name:
        stack = _find_stack(backend, name)
        if stack is None and name in backend.deleted_stacks:
            stack = backend.deleted_stacks[name]  # by stack id, deleted stacks remain visible
        if stack is None:
            raise ValidationError(name)
        return ActionResult({"Stacks": [_describe(stack)]})
    return ActionResult({"Stacks": [_describe(s) for s in backend.stacks.values()]})


def describe_stack_events(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name) or backend.deleted_stacks.get(name)
    if stack is None:
        raise ValidationError(name)
    return ActionResult({"StackEvents": list(reversed(_extra(stack).events))})


def _resource_rows(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    return [(lid, r) for lid, r in _extra(stack).resources.items() if r["status"] != "DELETE_COMPLETE"]


def list_stack_resources(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name) or backend.deleted_stacks.get(name)
    if stack is None:
        raise ValidationError(name)
    rows = [{"LogicalResourceId": lid, "PhysicalResourceId": r["physical"], "ResourceType": r["type"],
             "LastUpdatedTimestamp": r["ts"], "ResourceStatus": r["status"],
             **({"ResourceStatusReason": r["reason"]} if r["reason"] else {}),
             "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
            for lid, r in _resource_rows(stack)]
    return ActionResult({"StackResourceSummaries": rows})


def _resource_detail(stack: Stack, lid: str, r: dict[str, Any]) -> dict[str, Any]:
    d = {"StackName": stack.name, "StackId": stack.stack_id, "LogicalResourceId": lid,
         "PhysicalResourceId": r["physical"], "ResourceType": r["type"], "Timestamp": r["ts"],
         "LastUpdatedTimestamp": r["ts"], "ResourceStatus": r["status"],
         "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
    if r["reason"]:
        d["ResourceStatusReason"] = r["reason"]
    return d


def describe_stack_resources(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name) or backend.deleted_stacks.get(name)
    if stack is None:
        raise ValidationError(name)
    lid_filter = self._get_param("LogicalResourceId")
    rows = [_resource_detail(stack, lid, r) for lid, r in _resource_rows(stack) if not lid_filter or lid == lid_filter]
    for row in rows:
        row.pop("LastUpdatedTimestamp")
    return ActionResult({"StackResources": rows})


def describe_stack_resource(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    stack = _find_stack(backend, name) or backend.deleted_stacks.get(name)
    if stack is None:
        raise ValidationError(name)
    lid = self._get_param("LogicalResourceId")
    for rlid, r in _resource_rows(stack):
        if rlid == lid:
            d = _resource_detail(stack, lid, r)
            d.pop("Timestamp")
            return ActionResult({"StackResourceDetail": d})
    raise _validation(f"Resource {lid} does not exist for stack {name}")


def get_template(self: CloudFormationResponse) -> ActionResult:
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    change_set = self._get_param("ChangeSetName")
    if change_set:
        return ActionResult({"TemplateBody": _find_change_set(backend, change_set, name).template_body,
                             "StagesAvailable": ["Original", "Processed"]})
    stack = _find_stack(backend, name) or backend.deleted_stacks.get(name)
    if stack is None:
        raise ValidationError(name)
    ex = _extra(stack)
    body = stack.template if ex.template_dict else "{}"
    if self._get_param("TemplateStage") == "Processed" and ex.template_dict and _parse_template(body) != ex.template_dict:
        body = json.dumps(ex.template_dict)  # after transforms (AWS::Include), as CloudFormation keeps it
    return ActionResult({"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]})


# --------------------------------------------------------------------------- control hook


def force_stack_status(name: str, status: str, reason: str | None, region: str | None = None,
                       account_id: str | None = None) -> dict[str, Any]:
    """Used by POST /_emulator/stack-status to reach states (UPDATE_ROLLBACK_FAILED,
    DELETE_FAILED, a stuck UPDATE_IN_PROGRESS, ...) that are hard to provoke."""
    for acct, regions in list(cloudformation_backends.items()):
        if account_id and acct != account_id:
            continue
        for reg, backend in list(regions.items()):
            if region and reg != region:
                continue
            stack = _find_stack(backend, name)
            if stack is None:
                continue
            _stack_status(stack, status, reason)
            if status == "DELETE_COMPLETE":
                _finish_delete(stack)
            return {"StackId": stack.stack_id, "StackStatus": status}
    raise LookupError(f"Stack [{name}] does not exist")


# --------------------------------------------------------------------------- install

_HANDLERS = {
    "cancel_update_stack": cancel_update_stack,
    "create_change_set": create_change_set,
    "describe_change_set": describe_change_set,
    "delete_change_set": delete_change_set,
    "list_change_sets": list_change_sets,
    "execute_change_set": execute_change_set,
    "create_stack": create_stack,
    "update_stack": update_stack,
    "delete_stack": delete_stack,
    "update_termination_protection": update_termination_protection,
    "describe_stacks": describe_stacks,
    "describe_stack_events": describe_stack_events,
    "list_stack_resources": list_stack_resources,
    "describe_stack_resources": describe_stack_resources,
    "describe_stack_resource": describe_stack_resource,
    "get_template": get_template,
}


def _template_from_s3_url(self: CloudFormationResponse, template_url: str) -> str:
    """TemplateURL of every handler (moto's GetTemplateSummary/ValidateTemplate too) read
    as CloudFormation reads it (``read_template_url``)."""
    return read_template_url(template_url, self.current_account, self.partition)


def install() -> None:
    """Monkeypatch moto's CloudFormation response class (idempotent)."""
    from emulator import nested  # nested.py builds on this module

    nested.install()
    for name, fn in _HANDLERS.items():
        setattr(CloudFormationResponse, name, fn)
    CloudFormationResponse._get_stack_from_s3_url = _template_from_s3_url
    # moto's own template readers (GetTemplateSummary, ValidateTemplate, ...) register
    # yaml_tag_constructor by the name each module imported: give them the deep one.
    for module in (cfn_utils, cfn_models, cfn_responses):
        module.yaml_tag_constructor = short_form_tag
    cfn_parsing.clean_json = _clean_json
    # moto post-processes these outputs assuming its own model objects; ours are
    # already in AWS shape.
    CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER = {
        k: v for k, v in CloudFormationResponse.RESPONSE_KEY_PATH_TO_TRANSFORMER.items()
        if not k.startswith(("DescribeChangeSetOutput", "DescribeStacksOutput"))
    }

"""Nested stacks (``AWS::CloudFormation::Stack``) as CloudFormation runs them.

moto creates a nested stack synchronously through its own backend: no events, its own
name, no ParentId/RootId, no update, no rollback. Here each such resource is a real child
stack run by the engine in cloudformation.py (registered in ``cloudformation.TYPE_HANDLERS``):

* create: the template behind ``TemplateURL`` (moto's S3), ``Parameters`` (strings or simple
  values), ``Tags`` (after the parent stack's, which propagate), ``NotificationARNs`` and
  ``TimeoutInMinutes`` make a child stack ``<parent>-<LogicalId>-<12|13 of A-Z0-9>`` with
  ParentId/RootId, created by the engine with its own events; the parent's resource stays
  CREATE_IN_PROGRESS until the child is done (physical id: the child's stack ARN;
  ``Fn::GetAtt <Id>.Outputs.<Key>`` its outputs). A child that fails fails the resource
  (``Embedded stack <arn> was not successfully created: <child's reason>``).
* update: the child is updated (the template is read again, so one changed behind an
  unchanged TemplateURL is picked up); a finished child update waits for the parent's
  outcome (``cloudformation.Gate``) and then cleans up with it or rolls back with it.
* delete: the child stack is deleted (after any operation of its own has ended).
* change sets with IncludeNestedStacks: ``review`` makes a nested change set per added or
  modified nested stack (an added one gets its stack in REVIEW_IN_PROGRESS), recursively.
"""

from __future__ import annotations

import copy
import string
from typing import Any, Callable

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudformation.models import Stack, cloudformation_backends
from moto.cloudformation.parsing import ResourceMap
from moto.cloudformation.utils import generate_changeset_id, generate_stack_id
from moto.moto_api._internal import mock_random
from moto.utilities.utils import get_partition

from emulator import cloudformation as cfn

PARAMS_NOT_SIMPLE = "Value of property Parameters must be an object with String (or simple type) properties"
EXECUTABLE_FROM_ROOT = "Executable from root change set"


class NestedStackRef:
    """The nested stack resource in the parent's ResourceMap: Ref is the child's stack ARN,
    ``Fn::GetAtt <Id>.Outputs.<Key>`` the child's output."""

    def __init__(self, child: Stack) -> None:
        self.child = child

    @property
    def physical_resource_id(self) -> str:
        return self.child.stack_id

    def get_cfn_attribute(self, attr: str) -> str:
        key = attr[len("Outputs."):] if attr.startswith("Outputs.") else None
        for output in cfn._extra(self.child).outputs:
            if output["OutputKey"] == key:
                return output["OutputValue"]
        raise UnformattedGetAttTemplateException()


def _backend(stack: Stack) -> Any:
    return cloudformation_backends[stack.account_id][stack.region_name]


def _child_name(parent: Stack, lid: str) -> str:
    """As AWS names nested stacks; stack names stop at 128 characters."""
    pool = string.ascii_uppercase + string.digits
    suffix = "".join(mock_random.choice(pool) for _ in range(mock_random.choice((12, 13))))
    return f"{parent.name}-{lid}"[:128 - len(suffix) - 1] + "-" + suffix


def _given_params(props: dict[str, Any]) -> list[dict[str, str]]:
    given = props.get("Parameters") or {}
    if not isinstance(given, dict) or any(isinstance(v, (dict, list)) for v in given.values()):
        raise cfn.ResourceFailed(PARAMS_NOT_SIMPLE)
    return [{"ParameterKey": k, "ParameterValue": cfn._param_display(v)} for k, v in given.items()]


def _child_template(parent: Stack, url: Any, given: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
    """(body, template after transforms) behind a nested stack's TemplateURL."""
    partition = get_partition(parent.region_name)
    try:
        body = cfn.read_template_url(url, parent.account_id, partition)
        template = cfn._parse_template(body)
        return body, cfn.apply_includes(template, parent.account_id, partition, cfn._include_params(template, given))
    except cfn.TransformFailed as exc:
        raise cfn.ResourceFailed(str(exc)) from exc
    except cfn.CloudFormationError as exc:
        raise cfn.ResourceFailed(cfn._error_text(exc)) from exc


def _checked_params(parent: Stack, template: dict[str, Any], given: list[dict[str, str]],
                    previous: dict[str, str] | None, stack_id: str, name: str) -> tuple[dict[str, str], ResourceMap]:
    """The child's parameters, checked as CreateStack checks them (the root's capabilities
    must cover the child's IAM resources)."""
    try:
        params = cfn._resolve_params(template, given, previous)
        cfn._check_capabilities(template, cfn._extra(parent).capabilities)
        rm = cfn._validate_template_with_params(stack_id, name, template, params, parent.account_id,
                                                parent.region_name, _backend(parent))
    except cfn.CloudFormationError as exc:
        raise cfn.ResourceFailed(cfn._error_text(exc)) from exc
    return params, rm


def _register_child(parent: Stack, name: str, stack_id: str) -> Stack:
    child = Stack(stack_id=stack_id, name=name, template={}, parameters={}, account_id=parent.account_id,
                  region_name=parent.region_name)
    child.events = []
    ex = cfn._extra(child)
    ex.parent_id = parent.stack_id
    ex.root_id = cfn._extra(parent).root_id or parent.stack_id
    _backend(parent).stacks[stack_id] = child
    return child


def _apply_settings(child: Stack, parent: Stack, props: dict[str, Any]) -> None:
    """What the child takes from the resource and from its parent (tags propagate; the
    root's role, capabilities and rollback setting apply to the whole tree)."""
    tags = props.get("Tags") or []
    child.tags = {**(parent.tags or {}), **{t["Key"]: t["Value"] for t in tags if isinstance(t, dict)}}
    child.notification_arns = list(props.get("NotificationARNs") or [])
    timeout = props.get("TimeoutInMinutes")
    child.timeout_in_minutes = int(timeout) if timeout not in (None, "") else None
    child.role_arn = parent.role_arn
    child.disable_rollback = bool(parent.disable_rollback)
    cfn._extra(child).capabilities = list(cfn._extra(parent).capabilities)


def _nested_change_set(parent: Stack, lid: str) -> cfn.ChangeSet | None:
    """The nested change set made for this resource by the change set being executed."""
    executing = cfn._extra(parent).executing
    if executing is None or lid not in executing.children:
        return None
    nested = cfn._change_sets(_backend(parent)).get(executing.children[lid])
    if nested is None or nested.status != "CREATE_COMPLETE" or nested.execution_status != "UNAVAILABLE":
        return None
    return nested


def _start_executing(child: Stack, nested: cfn.ChangeSet | None) -> Callable[[bool], None] | None:
    ex = cfn._extra(child)
    ex.executing = nested
    if nested is None:
        return None
    cfn.drop_other_change_sets(_backend(child), child, nested)
    nested.execution_status = "EXECUTE_IN_PROGRESS"
    ex.change_set_id = nested.id

    def done(ok: bool) -> None:
        nested.execution_status = "EXECUTE_COMPLETE" if ok else "EXECUTE_FAILED"

    return done


def _cancel(child: Stack) -> Callable[[], None]:
    def cancel() -> None:
        if child.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
            cfn.request_cancel(child)

    return cancel


def _reason(child: Stack) -> str:
    ex = cfn._extra(child)
    return ex.failure_reason or ex.status_reason or ""


def _created(child: Stack) -> Callable[[], str | None]:
    def poll() -> str | None:
        if child.status == "CREATE_COMPLETE":
            return ""
        if child.status == "CREATE_IN_PROGRESS":
            return None
        return f"Embedded stack {child.stack_id} was not successfully created: {_reason(child)}"

    return poll


def _failed_into(child: Stack) -> str:
    """The status the child's update failed into (UPDATE_ROLLBACK_IN_PROGRESS, or UPDATE_FAILED
    without rollback): what CloudFormation reports the moment it happens, even when the
    child's rollback is over by the time the parent's poll looks."""
    own = [e["ResourceStatus"] for e in cfn._extra(child).events if e["LogicalResourceId"] == child.name]
    last = len(own) - 1 - own[::-1].index("UPDATE_IN_PROGRESS") if "UPDATE_IN_PROGRESS" in own else len(own) - 1
    return own[last + 1] if last + 1 < len(own) else child.status


def _updated(child: Stack) -> Callable[[], str | None]:
    def poll() -> str | None:
        if child.status in ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_COMPLETE"):
            return ""  # done; it cleans up (or rolls back) with the parent
        if child.status == "UPDATE_IN_PROGRESS":
            return None
        return (f"Embedded stack {child.stack_id} was not successfully updated. "
                f"Currently in {_failed_into(child)} with reason: {_reason(child).rstrip()}")

    return poll


def _rolled_back(child: Stack) -> Callable[[], str | None]:
    def poll() -> str | None:
        if child.status == "UPDATE_ROLLBACK_FAILED":
            return (f"Embedded stack {child.stack_id} was not successfully updated. "
                    f"Currently in {child.status} with reason: {_reason(child).rstrip()}")
        return None if child.status.endswith("_IN_PROGRESS") else ""

    return poll


def _deleted(child: Stack) -> Callable[[], str | None]:
    started = []

    def poll() -> str | None:
        if child.status == "DELETE_COMPLETE":
            return ""
        if started:
            if child.status == "DELETE_FAILED":
                return f"Embedded stack {child.stack_id} was not successfully deleted: {_reason(child)}"
            return None
        if child.status.endswith("_IN_PROGRESS") and child.status != "REVIEW_IN_PROGRESS":
            return None  # its own operation (a rollback) ends first
        started.append(True)
        child.status = "DELETE_IN_PROGRESS"
        cfn._spawn(lambda: cfn._run_delete(child), f"cfn-delete-{child.name}", child)
        return None

    return poll


def _static(value: Any, rm: ResourceMap) -> tuple[bool, Any]:
    """(True, value) when a property value needs only parameters, pseudo parameters,
    mappings and exports, which a change set can evaluate; (False, None) when it needs
    resources that exist only once the change set runs."""
    if not cfn._refs(value) <= set(rm._parsed_resources):
        return False, None
    try:
        return True, cfn._clean_json(copy.deepcopy(value), rm)
    except Exception:  # noqa: BLE001 - left to execution time, as CloudFormation does
        return False, None


def _intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and (next(iter(value)) == "Ref"
                                                            or next(iter(value)).startswith("Fn::"))


class NestedStackHandler:
    """``cloudformation.TYPE_HANDLERS`` entry for AWS::CloudFormation::Stack."""

    def validate(self, lid: str, rjson: dict[str, Any]) -> None:
        """A literal Parameters value that is no simple value is refused with the template,
        as AWS does; what intrinsic functions give is checked when the stack runs."""
        given = (rjson.get("Properties") or {}).get("Parameters")
        if given is None or _intrinsic(given):
            return
        if not isinstance(given, dict) or any(isinstance(v, list) or (isinstance(v, dict) and not _intrinsic(v))
                                              for v in given.values()):
            raise cfn._validation(PARAMS_NOT_SIMPLE)

    @staticmethod
    def _properties(rm: ResourceMap, rjson: dict[str, Any]) -> dict[str, Any]:
        try:
            return cfn._clean_json(copy.deepcopy(rjson.get("Properties") or {}), rm) or {}
        except Exception as exc:  # noqa: BLE001 - e.g. an output the referenced stack lacks
            raise cfn.ResourceFailed(cfn._error_text(exc)) from exc

    def create(self, stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any], op: Any) -> str:
        props = self._properties(rm, rjson)
        given = _given_params(props)
        nested = _nested_change_set(stack, lid)
        review = cfn._find_stack(_backend(stack), nested.stack_id) if nested is not None else None
        if nested is not None:
            body, template = nested.template_body, nested.template_dict
        else:
            body, template = _child_template(stack, props.get("TemplateURL"), given)
        if review is not None and review.status == "REVIEW_IN_PROGRESS":
            name, stack_id = review.name, review.stack_id
        else:
            review = None
            name = _child_name(stack, lid)
            stack_id = generate_stack_id(name, stack.region_name, stack.account_id)
        params, _ = _checked_params(stack, template, given, None, stack_id, name)
        child = review or _register_child(stack, name, stack_id)
        _apply_settings(child, stack, props)
        done = _start_executing(child, nested)
        child.status = "CREATE_IN_PROGRESS"
        rm._parsed_resources[lid] = NestedStackRef(child)
        cfn._spawn(lambda: cfn._run_create(child, template, body, params, bool(child.disable_rollback), done),
                   f"cfn-{child.name}", child)
        op.poll, op.cancel = _created(child), _cancel(child)
        return child.stack_id

    def update(self, stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any], op: Any) -> str:
        child = cfn._find_stack(_backend(stack), op.physical)
        if child is None:
            raise cfn.ResourceFailed(f"Stack [{op.physical}] does not exist")
        if child.status.endswith("_IN_PROGRESS") or child.status in cfn.NOT_UPDATABLE:
            raise cfn.ResourceFailed(f"Stack:{child.stack_id} is in {child.status} state and can not be updated.")
        props = self._properties(rm, rjson)
        given = _given_params(props)
        nested = _nested_change_set(stack, lid)
        if nested is not None:
            body, template = nested.template_body, nested.template_dict
        else:
            body, template = _child_template(stack, props.get("TemplateURL"), given)
        cex = cfn._extra(child)
        previous = cfn._resolved_params(cex.template_dict, cex.given_params)
        params, _ = _checked_params(stack, template, given, previous, child.stack_id, child.name)
        _apply_settings(child, stack, props)
        done = _start_executing(child, nested)
        gate = cfn.Gate(stack)
        cfn._extra(stack).child_gates[child.stack_id] = gate
        child.status = "UPDATE_IN_PROGRESS"
        rm._parsed_resources[lid] = NestedStackRef(child)
        cfn._spawn(lambda: cfn._run_update(child, template, body, params, bool(child.disable_rollback), done, gate),
                   f"cfn-{child.name}", child)
        op.poll, op.cancel = _updated(child), _cancel(child)
        return child.stack_id

    def rollback(self, stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any], op: Any) -> str:
        """The parent rolls back: so does the child, whether its update failed (it is rolling
        back already), finished (it waits at its gate) or still runs (cancelled)."""
        child = cfn._find_stack(_backend(stack), op.physical)
        if child is None:
            return op.physical
        gate = cfn._extra(stack).child_gates.pop(child.stack_id, None)
        if gate is not None:
            gate.decision = False
        _cancel(child)()
        rm._parsed_resources[lid] = NestedStackRef(child)
        op.poll = _rolled_back(child)
        return child.stack_id

    def delete(self, stack: Stack, rm: ResourceMap, lid: str, rjson: dict[str, Any], op: Any) -> str:
        child = cfn._find_stack(_backend(stack), op.physical) if op.physical else None
        if child is None:
            return op.physical
        op.poll = _deleted(child)
        return child.stack_id

    def review(self, stack: Stack, cs: cfn.ChangeSet, lid: str, rjson: dict[str, Any],
               new_rm: ResourceMap) -> cfn.ChangeSet:
        """The nested change set of one added or modified nested stack: changes computed from
        the child's template as the change set would run it. Property values that need
        resources (known only at execution) keep the child's current values."""
        backend = _backend(stack)
        physical = cfn._extra(stack).resources.get(lid, {}).get("physical")
        child = cfn._find_stack(backend, physical) if physical else None
        cex = cfn._extra(child) if child is not None else None
        previous = cfn._resolved_params(cex.template_dict, cex.given_params) if cex is not None else None
        name = f"{cs.name}-{lid}"[:115] + "-" + mock_random.get_random_string(12).upper()
        nested = cfn.ChangeSet(
            id=generate_changeset_id(name, stack.region_name, stack.account_id), name=name,
            stack_id="", stack_name="", type="UPDATE" if child is not None else "CREATE",
            template_body="", template_dict={}, params={}, description=None, capabilities=list(cs.capabilities),
            notification_arns=None, tags=None, role_arn=None, client_token=None, execute_token=None,
            deployment_mode=None, include_nested_stacks=True, parent_id=cs.id, root_id=cs.root_id or cs.id)
        nested.execution_status = "UNAVAILABLE"
        nested.status_reason = EXECUTABLE_FROM_ROOT
        child_name = child.name if child is not None else _child_name(stack, lid)
        child_id = child.stack_id if child is not None else generate_stack_id(child_name, stack.region_name,
                                                                             stack.account_id)
        failure = child_rm = None
        try:
            props = rjson.get("Properties") or {}
            raw = props.get("Parameters") or {}
            if _intrinsic(raw):
                known, raw = _static(raw, new_rm)
                raw = raw if known else dict(previous or {})
            if not isinstance(raw, dict):
                raise cfn.ResourceFailed(PARAMS_NOT_SIMPLE)
            values = {}
            for key, value in raw.items():
                known, resolved = _static(value, new_rm)
                values[key] = resolved if known else (previous or {}).get(key, "")
            given = _given_params({"Parameters": values})
            known, url = _static(props.get("TemplateURL"), new_rm)
            if known or cex is None:
                body, template = _child_template(stack, url, given)
            else:
                body, template = child.template, cex.template_dict
            params, child_rm = _checked_params(stack, template, given, previous, child_id, child_name)
        except cfn.ResourceFailed as exc:
            failure = str(exc)
        if child is None:
            child = _register_child(stack, child_name, child_id)
            cfn._stack_status(child, "REVIEW_IN_PROGRESS", "User Initiated")
            nested.review_stack = True
        nested.stack_id, nested.stack_name = child.stack_id, child.name
        if failure is not None:
            cfn._fail_change_set(nested, failure)
            return nested
        nested.template_body, nested.template_dict, nested.params = body, template, params
        nested.changes = cfn.diff_for_change_set(child, nested, child_rm, reevaluate_nested=nested.type == "UPDATE")
        cfn.review_nested(child, nested, child_rm)
        return nested


def install() -> None:
    cfn.TYPE_HANDLERS[cfn.NESTED_STACK] = NestedStackHandler()

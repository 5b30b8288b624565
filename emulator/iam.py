"""IAM for a deploy tool's read-only permission checks, on top of moto 5.2.5's IAM.

moto has no policy simulator (SimulatePrincipalPolicy answered HTTP 500), loads AWS managed
policies only when MOTO_IAM_LOAD_MANAGED_POLICIES is set (so attaching
`arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy` failed with
NoSuchEntity), drops an AWS::IAM::Role's `ManagedPolicyArns` (and on update everything but
the description), and words a missing role `Role x not found`. This module:

* SimulatePrincipalPolicy: evaluates the identity-based policies of a role, user (with its
  groups) or group, plus `PolicyInputList`, per action and resource as IAM does (explicit
  deny, else allow, else implicit deny; Action/NotAction, Resource/NotResource, wildcards,
  conditions against `ContextEntries`). Permissions boundaries, SCPs, session and
  resource-based policies are not part of the evaluation.
* AWS managed policies: moto's copy of AWS's documents is loaded for every account (moto
  ships AmazonECSTaskExecutionRolePolicy with AWS's document).
* AWS::IAM::Role through CloudFormation: `ManagedPolicyArns` attached on create; an update
  applies AssumeRolePolicyDocument, Policies, ManagedPolicyArns, Description and
  MaxSessionDuration.
* NoSuchEntity texts as AWS words them (`The role with name x cannot be found.`).

AWS texts and shapes are as seen in real AWS answers unless the README says otherwise.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.iam import models as iam_models
from moto.iam.exceptions import NotFoundException
from moto.iam.models import IAMBackend, Role, iam_backends
from moto.iam.responses import IamResponse
from moto.utilities.utils import get_partition

# ------------------------------------------------------------------ errors


class InvalidInput(ServiceException):
    code = "InvalidInput"


def _no_role(name: str) -> NotFoundException:
    return NotFoundException(f"The role with name {name} cannot be found.")


# ------------------------------------------------------------------ policy documents


def _document(raw: Any) -> dict[str, Any] | None:
    """A policy document as a dict, whatever moto kept (JSON text, URL-encoded text, a dict)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return None
    for text in (raw, unquote(raw)):
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        return doc if isinstance(doc, dict) else None
    return None


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    stmts = doc.get("Statement", [])
    if isinstance(stmts, dict):
        stmts = [stmts]
    return [s for s in stmts if isinstance(s, dict)] if isinstance(stmts, list) else []


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _default_version(policy: Any) -> str:
    for version in policy.versions:
        if version.is_default:
            return version.document
    return policy.versions[0].document if policy.versions else ""


# ------------------------------------------------------------------ the principal's policies

_ENTITY_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):(role|user|group)/(?:[^/]+/)*([^/]+)")


def principal_policies(backend: IAMBackend, arn: str) -> list[tuple[str, dict[str, Any]]]:
    """(SourcePolicyId, document) of every identity-based policy of the entity `arn` names.

    SourcePolicyId is what AWS shows: an inline policy as `<role|user|group>_<entity>_<policy>`,
    a managed one by its name.
    """
    m = _ENTITY_ARN.fullmatch(arn or "")
    if not m:
        # AWS's answer for e.g. an assumed-role session ARN.
        raise InvalidInput(f"Invalid Entity Arn: {arn} does not clearly define entity type and name.")
    account, kind, name = m.group(2), m.group(3), m.group(4)
    if account != backend.account_id:
        raise InvalidInput(f"Invalid Policy Source Arn: caller's account {backend.account_id} does not have "
                           f"access to policies in account {account}")
    owners: list[tuple[str, str, Any]] = []
    if kind == "role":
        owners.append(("role", name, backend.get_role(name)))
    elif kind == "user":
        user = backend.get_user(name)
        owners.append(("user", name, user))
        owners.extend(("group", g.name, g) for g in backend.get_groups_for_user(name))
    else:
        owners.append(("group", name, backend.get_group(name)))
    out: list[tuple[str, dict[str, Any]]] = []
    for kind_, entity, obj in owners:
        for policy_name, raw in obj.policies.items():
            doc = _document(raw)
            if doc is not None:
                out.append((f"{kind_}_{entity}_{policy_name}", doc))
        for policy in obj.managed_policies.values():
            doc = _document(_default_version(policy))
            if doc is not None:
                out.append((policy.name, doc))
    return out


# ------------------------------------------------------------------ matching


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM wildcards: `*` any run of characters (`:` and `/` included), `?` exactly one.
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _resource_pattern(pattern: str, ctx: Context) -> tuple[str | None, set[str]]:
    """The Resource pattern with its policy variables (`${aws:username}`) filled in from the
    context; (None, {key}) when a variable's key is missing. `${*}`, `${?}`, `${$}` stand for
    the literal character: they come back marked with a NUL for `_resource_matches`."""
    missing: set[str] = set()
    out: list[str] = []
    pos = 0
    for m in _VARIABLE.finditer(pattern):
        out.append(pattern[pos:m.start()])
        pos = m.end()
        inner = m.group(1).strip()
        if inner in ("*", "?", "$"):
            out.append("\0" + inner)  # a literal, not a wildcard
            continue
        key, _, default = inner.partition(",")
        values = ctx.get(key.strip())
        if values:
            out.append(values[0])
        elif default.strip():
            out.append(default.strip().strip("'"))
        else:
            missing.add(key.strip())
    out.append(pattern[pos:])
    return ("".join(out) if not missing else None), missing


def _resource_matches(pattern: str, resource: str) -> bool:
    if "\0" not in pattern:
        return _like(pattern, resource)
    body = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\0":
            body.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        ch = pattern[i]
        body.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(body), resource, re.DOTALL) is not None


class Context:
    """ContextEntries by key, case-insensitively (condition keys are case-insensitive)."""

    def __init__(self, entries: list[dict[str, Any]] | None) -> None:
        self._values: dict[str, list[str]] = {}
        for entry in entries or []:
            key = str(entry.get("ContextKeyName") or "").strip()
            if key:
                self._values[key.lower()] = [str(v) for v in _as_list(entry.get("ContextKeyValues"))]

    def get(self, key: str) -> list[str] | None:
        return self._values.get(key.lower())


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _date(text: str) -> datetime | None:
    text = str(text).strip()
    epoch = _number(text)
    if epoch is not None:
        return datetime.fromtimestamp(epoch, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _arn_like(pattern: str, value: str) -> bool:
    # Each of the six colon-separated parts is matched on its own.
    p_parts, v_parts = pattern.split(":", 5), value.split(":", 5)
    return len(p_parts) == len(v_parts) == 6 and all(_like(p, v) for p, v in zip(p_parts, v_parts, strict=True))


def _ip_in(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value.strip()) in ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        return False


def _compare(op: str, actual: str, expected: str) -> bool | None:
    """The positive form of a condition operator for one value pair; None = unknown operator."""
    if op == "StringEquals":
        return actual == expected
    if op == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if op == "StringLike":
        return _like(expected, actual)
    if op in ("ArnEquals", "ArnLike"):
        return _arn_like(expected, actual)
    if op == "Bool":
        return actual.lower() == expected.lower()
    if op == "BinaryEquals":
        try:
            return base64.b64decode(actual) == base64.b64decode(expected)
        except ValueError:
            return False
    if op == "IpAddress":
        return _ip_in(actual, expected)
    for prefix, parse in (("Numeric", _number), ("Date", _date)):
        if op.startswith(prefix):
            a, e = parse(actual), parse(expected)
            if a is None or e is None:
                return False
            rel = op[len(prefix):]
            return {"Equals": a == e, "LessThan": a < e, "LessThanEquals": a <= e,  # type: ignore[operator]
                    "GreaterThan": a > e, "GreaterThanEquals": a >= e}.get(rel)  # type: ignore[operator]
    return None


# Negated operators and the positive operator they negate.
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
            "NumericNotEquals": "NumericEquals", "DateNotEquals": "DateEquals", "NotIpAddress": "IpAddress"}


def _condition(block: Any, ctx: Context) -> tuple[bool, set[str]]:
    """(all conditions hold, keys the context lacks). A key the simulation was not given makes
    its statement not apply, and is reported in MissingContextValues — except where absence is
    the point: `Null`, `...IfExists`, `ForAllValues:`."""
    if not isinstance(block, dict):
        return False, set()
    ok, missing = True, set()
    for raw_op, keys in block.items():
        if not isinstance(keys, dict):
            return False, missing
        op = str(raw_op)
        qualifier = ""
        if ":" in op:
            qualifier, _, op = op.partition(":")
        if_exists = op.endswith("IfExists") and op != "IfExists"
        if if_exists:
            op = op[: -len("IfExists")]
        for key, expected_raw in keys.items():
            expected = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(expected_raw)]
            actual = ctx.get(str(key))
            if op == "Null":
                want_absent = any(e.lower() == "true" for e in expected)
                if (actual is None) != want_absent:
                    ok = False
                continue
            if actual is None:
                if if_exists or qualifier == "ForAllValues":
                    continue
                missing.add(str(key))
                ok = False
                continue
            base = _NEGATED.get(op, op)
            negated = base != op

            def element_ok(value: str, base: str = base, negated: bool = negated,
                           expected: list[str] = expected) -> bool | None:
                hits = [_compare(base, value, e) for e in expected]
                if any(h is None for h in hits):
                    return None
                return not any(hits) if negated else any(hits)

            results = [element_ok(v) for v in actual]
            if any(r is None for r in results):
                ok = False  # an operator this emulator does not know never matches
                continue
            if qualifier == "ForAllValues" or (not qualifier and negated):
                holds = all(results)
            else:
                holds = any(results)
            if not holds:
                ok = False
    return ok, missing


def _applies(stmt: dict[str, Any], action: str, resource: str, ctx: Context) -> tuple[bool, set[str]]:
    """Whether the statement covers `action` on `resource` (conditions included), and the
    context keys it needed but did not get."""
    if "Action" in stmt:
        if not any(_like(str(p), action, ignore_case=True) for p in _as_list(stmt["Action"])):
            return False, set()
    elif "NotAction" in stmt:
        if any(_like(str(p), action, ignore_case=True) for p in _as_list(stmt["NotAction"])):
            return False, set()
    else:
        return False, set()
    if "Resource" in stmt:
        patterns, negate = _as_list(stmt["Resource"]), False
    elif "NotResource" in stmt:
        patterns, negate = _as_list(stmt["NotResource"]), True
    else:
        return False, set()
    missing: set[str] = set()
    hit = False
    for raw in patterns:
        pattern, lacking = _resource_pattern(str(raw), ctx)
        missing |= lacking
        if pattern is not None and _resource_matches(pattern, resource):
            hit = True
    if hit:
        if negate:
            return False, set()
    elif not negate or missing:
        # No pattern covers the resource; for NotResource an unresolved one might have.
        return False, missing
    if "Condition" in stmt:
        return _condition(stmt["Condition"], ctx)
    return True, set()


def evaluate(policies: list[tuple[str, dict[str, Any]]], action: str, resource: str,
             ctx: Context) -> tuple[str, list[str], list[str]]:
    """(EvalDecision, SourcePolicyIds of the deciding statements, missing context keys)."""
    denies: list[str] = []
    allows: list[str] = []
    missing: set[str] = set()
    for source_id, doc in policies:
        for stmt in _statements(doc):
            applies, lacking = _applies(stmt, action, resource, ctx)
            missing |= lacking
            if not applies:
                continue
            if str(stmt.get("Effect", "")).lower() == "deny":
                denies.append(source_id)
            elif str(stmt.get("Effect", "")).lower() == "allow":
                allows.append(source_id)
    if denies:
        return "explicitDeny", denies, sorted(missing)
    if allows:
        return "allowed", allows, sorted(missing)
    return "implicitDeny", [], sorted(missing)


def trusts_service(trust_policy: Any, service: str) -> bool:
    """Whether a role's trust policy (AssumeRolePolicyDocument, as moto keeps it) lets the AWS
    service principal `service` (e.g. ecs-tasks.amazonaws.com) call sts:AssumeRole: an Allow
    statement for the action whose Principal names the service (or `*`) and no Deny that does.
    Conditions (aws:SourceAccount, aws:SourceArn) are taken as met: the service supplies them."""
    doc = _document(trust_policy)
    if doc is None:
        return False

    def names_service(stmt: dict[str, Any]) -> bool:
        principal = stmt.get("Principal")
        if principal == "*":
            return True
        if not isinstance(principal, dict):
            return False
        return (service in [str(s) for s in _as_list(principal.get("Service"))]
                or "*" in [str(a) for a in _as_list(principal.get("AWS"))])

    def assumes(stmt: dict[str, Any]) -> bool:
        if "Action" in stmt:
            return any(_like(str(p), "sts:AssumeRole", ignore_case=True) for p in _as_list(stmt["Action"]))
        if "NotAction" in stmt:
            return not any(_like(str(p), "sts:AssumeRole", ignore_case=True) for p in _as_list(stmt["NotAction"]))
        return False

    applying = [s for s in _statements(doc) if names_service(s) and assumes(s)]
    if any(str(s.get("Effect", "")).lower() == "deny" for s in applying):
        return False
    return any(str(s.get("Effect", "")).lower() == "allow" for s in applying)


_SEVERITY = {"allowed": 0, "implicitDeny": 1, "explicitDeny": 2}


def _matched(source_ids: list[str]) -> list[dict[str, str]]:
    # AWS also gives the statement's Start/EndPosition in the policy text; its counting
    # could not be pinned down, so they are left out.
    seen: list[str] = []
    for sid in source_ids:
        if sid not in seen:
            seen.append(sid)
    return [{"SourcePolicyId": sid, "SourcePolicyType": "IAM Policy"} for sid in seen]


def simulate(policies: list[tuple[str, dict[str, Any]]], actions: list[str], resources: list[str] | None,
             ctx: Context) -> list[dict[str, Any]]:
    """One EvaluationResult per action, as IAM answers now: the top-level decision is the most
    restrictive over the resources, each resource's own in ResourceSpecificResults."""
    specific = bool(resources) and resources != ["*"]
    out = []
    for action in actions:
        if not specific:
            decision, sources, missing = evaluate(policies, action, "*", ctx)
            out.append({"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision,
                        "MatchedStatements": _matched(sources), "MissingContextValues": missing})
            continue
        per = [(r, *evaluate(policies, action, r, ctx)) for r in resources or []]
        decision = max((p[1] for p in per), key=_SEVERITY.__getitem__)
        sources = [s for p in per if p[1] == decision for s in p[2]]
        missing = sorted({k for p in per for k in p[3]})
        out.append({
            "EvalActionName": action,
            "EvalResourceName": per[0][0] if len(per) == 1 else "*",
            "EvalDecision": decision,
            "MatchedStatements": _matched(sources),
            "MissingContextValues": missing,
            # Same-account simulation with resources: present and empty (API reference).
            "EvalDecisionDetails": {},
            "ResourceSpecificResults": [
                {"EvalResourceName": r, "EvalResourceDecision": d, "MatchedStatements": _matched(s),
                 "MissingContextValues": m}
                for r, d, s, m in per
            ],
        })
    return out


# ------------------------------------------------------------------ the API action


def simulate_principal_policy(self: IamResponse) -> ActionResult:
    source_arn = self._get_param("PolicySourceArn")
    actions = [str(a) for a in self._get_param("ActionNames") or []]
    resources = [str(r) for r in self._get_param("ResourceArns") or []]
    extra = self._get_param("PolicyInputList") or []
    ctx = Context(self._get_param("ContextEntries"))
    policies = principal_policies(self.backend, source_arn)
    for i, raw in enumerate(extra, start=1):
        doc = _document(raw)
        if doc is None:
            raise InvalidInput("Syntax errors in policy.")
        policies.append((f"PolicyInputList.{i}", doc))
    results = simulate(policies, actions, resources or None, ctx)
    max_items = int(self._get_param("MaxItems") or 100)
    try:
        start = int(self._get_param("Marker") or 0)
    except ValueError:
        raise InvalidInput("Invalid Marker.") from None
    page = results[start:start + max_items]
    answer: dict[str, Any] = {"EvaluationResults": page, "IsTruncated": start + max_items < len(results)}
    if answer["IsTruncated"]:
        answer["Marker"] = str(start + max_items)
    return ActionResult(answer)


# ------------------------------------------------------------------ moto fixes

_MOTO_GET_ROLE = IAMBackend.get_role
_MOTO_GET_GROUP = IAMBackend.get_group
_MOTO_ROLE_CREATE = Role.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
_MOTO_ROLE_DELETE = Role.delete_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _get_role(self: IAMBackend, role_name: str) -> Role:
    try:
        return _MOTO_GET_ROLE(self, role_name)
    except NotFoundException:
        raise _no_role(role_name) from None


def _get_group(self: IAMBackend, group_name: str) -> Any:
    try:
        return _MOTO_GET_GROUP(self, group_name)
    except NotFoundException:
        raise NotFoundException(f"The group with name {group_name} cannot be found.") from None


def _text(doc: Any) -> str:
    return doc if isinstance(doc, str) else json.dumps(doc)


def _role_create(cls: type[Role], resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                 region_name: str, **kwargs: Any) -> Role:
    role = _MOTO_ROLE_CREATE(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    props = cloudformation_json.get("Properties", {})
    backend = iam_backends[account_id][get_partition(region_name)]
    # moto kept CloudFormation's PolicyDocument objects as dicts; IAM holds the JSON text.
    role.policies = {name: _text(doc) for name, doc in role.policies.items()}
    role.cfn_policy_names = set(role.policies)  # type: ignore[attr-defined]
    arns = [str(a) for a in _as_list(props.get("ManagedPolicyArns"))]
    try:
        for arn in arns:
            backend.attach_role_policy(arn, role.name)
    except Exception:
        # The resource failed: leave no half-made role behind (a retry would clash on the name).
        for policy in list(role.managed_policies.values()):
            policy.detach_from(role)
        backend.roles.pop(role.id, None)
        raise
    role.cfn_managed_arns = set(arns)  # type: ignore[attr-defined]
    return role


def _role_update(cls: type[Role], original_resource: Role, new_resource_name: str,
                 cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> Role:
    """In-place update (RoleName/Path changes replace the role, see cloudformation.py)."""
    props = cloudformation_json.get("Properties", {})
    backend = iam_backends[account_id][get_partition(region_name)]
    role = original_resource
    arns = {str(a) for a in _as_list(props.get("ManagedPolicyArns"))}
    for arn in sorted(arns - set(backend.managed_policies)):
        # Refused before anything changes (moto's text for AttachRolePolicy, AWS's too).
        raise NotFoundException(f"Policy {arn} does not exist or is not attachable.")
    if props.get("AssumeRolePolicyDocument") is not None:
        role.assume_role_policy_document = _text(props["AssumeRolePolicyDocument"])
    role.description = props.get("Description", "")
    role.max_session_duration = props.get("MaxSessionDuration", 3600)
    role.permissions_boundary_arn = props.get("PermissionsBoundary") or None
    # Only what the template's Policies/ManagedPolicyArns made is the template's to remove:
    # AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources also put policies on the role.
    wanted = {p["PolicyName"]: _text(p["PolicyDocument"]) for p in _as_list(props.get("Policies"))}
    for name in getattr(role, "cfn_policy_names", set()) - set(wanted):
        role.policies.pop(name, None)
    role.policies.update(wanted)
    role.cfn_policy_names = set(wanted)  # type: ignore[attr-defined]
    for arn in getattr(role, "cfn_managed_arns", set()) - arns:
        if arn in role.managed_policies:
            backend.detach_role_policy(arn, role.name)
    for arn in arns - set(role.managed_policies):
        backend.attach_role_policy(arn, role.name)
    role.cfn_managed_arns = arns  # type: ignore[attr-defined]
    return role


def _role_delete(cls: type[Role], resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                 region_name: str) -> None:
    # CloudFormation detaches the managed policies it attached before deleting the role (moto's
    # delete_role refuses a role with managed policies: DeleteConflict); one attached outside
    # the stack still blocks the delete, as on AWS.
    backend = iam_backends[account_id][get_partition(region_name)]
    for role in list(backend.roles.values()):
        if role.name == resource_name:
            for arn in getattr(role, "cfn_managed_arns", set()):
                if arn in role.managed_policies:
                    backend.detach_role_policy(arn, role.name)
    _MOTO_ROLE_DELETE(cls, resource_name, cloudformation_json, account_id, region_name)


_installed: list[bool] = []


def install() -> None:
    """Register SimulatePrincipalPolicy and the fixes above (idempotent)."""
    if _installed:
        return
    _installed.append(True)
    IamResponse.simulate_principal_policy = simulate_principal_policy  # type: ignore[attr-defined]
    # AWS managed policies exist in every account; moto's copy of their documents (~0.1 s
    # per account to load) is what AWS serves.
    iam_models.load_iam_aws_managed_policies = lambda: True
    IAMBackend.get_role = _get_role  # type: ignore[method-assign]
    IAMBackend.get_group = _get_group  # type: ignore[method-assign]
    Role.create_from_cloudformation_json = classmethod(_role_create)  # type: ignore[assignment]
    Role.update_from_cloudformation_json = classmethod(_role_update)  # type: ignore[assignment]
    Role.delete_from_cloudformation_json = classmethod(_role_delete)  # type: ignore[assignment]

"""What a task definition refers to must work before its task runs, as on Fargate (platform 1.4+).

ecs.py's scheduler asks this module at three points, each as AWS decides there:

* RegisterTaskDefinition (the API and AWS::ECS::TaskDefinition): ClientException for a task
  definition that cannot work without an execution role — a Fargate one with a private ECR image
  or the awslogs driver, any one with container secrets; and (always, fargate_size_error) for a
  Fargate one whose task-level cpu and memory are not a Fargate size.
* Launch (RunTask, a service's or task set's scheduler): the task role and the execution role
  must exist and trust ecs-tasks.amazonaws.com, else ECS cannot assume them (RunTask answers
  ClientException; a service launches no task and says so in an event).
* PENDING (Fargate tasks: the agent retrieves registry auth and secrets, pulls, starts the log
  driver): the execution role's identity policies, evaluated by iam.py's policy evaluator, must
  allow ecr:GetAuthorizationToken, ssm:GetParameters / secretsmanager:GetSecretValue on each
  secret, ecr:BatchGetImage / ecr:GetDownloadUrlForLayer on each private repository and
  logs:CreateLogStream (logs:CreateLogGroup with awslogs-create-group) on the log stream; the
  SSM parameters, secrets, images and log groups must exist. The first failure stops the task
  (TaskFailedToStart) with the agent's text. EC2/EXTERNAL tasks keep the image check only (the
  container instance's role pulls and logs there; not modelled).

`SETTINGS.check_references` (ecs.py; `/_emulator/ecs-speed {"checkReferences": false}`,
`EMULATOR_ECS_CHECK_REFERENCES=false`) turns all but the image-existence check off. Texts: see
the README (which are AWS's as seen in real answers, which are the emulator's own).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator import iam

# --------------------------------------------------------------------------- texts

MSG_ASSUME = ("ECS was unable to assume the role '{arn}' that was provided for this task. Please verify that the "
              "role being passed has the proper trust relationship and permissions and that your IAM user has "
              "permissions to pass this role.")
MSG_TD_ECR = "Fargate requires task definition to have execution role ARN to support ECR images."
MSG_TD_AWSLOGS = "Fargate requires task definition to have execution role ARN to support log driver awslogs."
MSG_TD_SECRETS = "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'."
MSG_FARGATE_SIZE = ("No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS "
                    "documentation for the valid values.")

_RETRIEVAL = "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
_LOGGER = "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
_NO_GROUP = "The specified log group does not exist."

ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-fA-F]+))?$"
)


def _sdk_error(service: str, operation: str, code: str, message: str, modeled: bool) -> str:
    """An AWS SDK for Go v2 error as the agent prints it: a modeled exception as `Code: message`, an
    unmodeled one (AccessDeniedException in ECR, SSM, Secrets Manager, Logs) as `api error Code: message`."""
    api = f"{code}: {message}" if modeled else f"api error {code}: {message}"
    return f"operation error {service}: {operation}, https response error StatusCode: 400, RequestID: {uuid.uuid4()}, {api}"


def _not_authorized(caller: str, action: str, resource: str, decision: str) -> str:
    why = ("with an explicit deny in an identity-based policy" if decision == "explicitDeny"
           else f"because no identity-based policy allows the {action} action")
    return f"User: {caller} is not authorized to perform: {action} on resource: {resource} {why}"


# --------------------------------------------------------------------------- the task definition's references


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def private_ecr(image: str | None) -> re.Match[str] | None:
    return ECR_IMAGE.match(image or "")


@dataclass
class SecretRef:
    kind: str  # "ssm" | "asm"
    value_from: str
    arn: str = ""  # the parameter's ARN / the secret's ARN as given (IAM's resource)
    account: str = ""
    region: str = ""
    version_stage: str | None = None
    version_id: str | None = None


def _secret_refs(cdefs: list[dict[str, Any]], account: str, region: str, partition: str) -> list[SecretRef]:
    """Every secret the containers name (`secrets[].valueFrom`, `repositoryCredentials`), in order,
    once each: an ARN of Secrets Manager or SSM, else an SSM parameter name in the task's region."""
    out: list[SecretRef] = []
    seen: set[str] = set()
    for c in cdefs:
        values = [_text(s.get("valueFrom")) for s in c.get("secrets") or [] if isinstance(s, dict)]
        values.append(_text((c.get("repositoryCredentials") or {}).get("credentialsParameter")))
        for value in values:
            if not value or value in seen:
                continue
            seen.add(value)
            parts = value.split(":")
            if value.startswith("arn:") and len(parts) >= 7 and parts[2] == "secretsmanager":
                # arn:aws:secretsmanager:<region>:<account>:secret:<name>[:json-key:version-stage:version-id]
                extra = parts[7:] + ["", "", ""]
                out.append(SecretRef("asm", value, arn=":".join(parts[:7]),
                                     account=parts[4], region=parts[3],
                                     version_stage=extra[1] or None, version_id=extra[2] or None))
            elif value.startswith("arn:") and len(parts) >= 6 and parts[2] == "ssm":
                out.append(SecretRef("ssm", value, arn=value, account=parts[4], region=parts[3]))
            else:
                out.append(SecretRef("ssm", value, arn=f"arn:{partition}:ssm:{region}:{account}:parameter/"
                                     f"{value.lstrip('/')}", account=account, region=region))
    return out


def _awslogs(cdefs: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    out = []
    for c in cdefs:
        log = c.get("logConfiguration") or {}
        if isinstance(log, dict) and log.get("logDriver") == "awslogs":
            options = {str(k): str(v) for k, v in (log.get("options") or {}).items()}
            out.append((str(c.get("name")), options))
    return out


# --------------------------------------------------------------------------- RegisterTaskDefinition


def registration_error(container_definitions: list[dict[str, Any]] | None,
                       requires_compatibilities: list[str] | None, execution_role_arn: str | None) -> str | None:
    """ECS's ClientException text for a task definition that needs an execution role and has none."""
    if _text(execution_role_arn):
        return None
    cdefs = [c for c in container_definitions or [] if isinstance(c, dict)]
    if "FARGATE" in (requires_compatibilities or []):
        if any(private_ecr(_text(c.get("image"))) for c in cdefs):
            return MSG_TD_ECR
        if _awslogs(cdefs):
            return MSG_TD_AWSLOGS
    if any(c.get("secrets") for c in cdefs):
        return MSG_TD_SECRETS
    return None


# Fargate's task sizes: cpu units -> the memory sizes (MiB) it takes.
FARGATE_SIZES: dict[int, frozenset[int]] = {
    256: frozenset((512, 1024, 2048)),
    512: frozenset(range(1024, 4096 + 1, 1024)),
    1024: frozenset(range(2048, 8192 + 1, 1024)),
    2048: frozenset(range(4096, 16384 + 1, 1024)),
    4096: frozenset(range(8192, 30720 + 1, 1024)),
    8192: frozenset(range(16384, 61440 + 1, 4096)),
    16384: frozenset(range(32768, 122880 + 1, 8192)),
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*$")


def _size(value: Any, unit: str, per_unit: int) -> int | None:
    """A task-level cpu or memory value as ECS takes it: a number of units (cpu units, MiB), or with
    its unit ("1 vCPU", "0.5 vcpu", "2 GB", "2GB"); None if it is neither."""
    if isinstance(value, bool) or value is None:
        return None
    m = _SIZE.match(str(value))
    if not m:
        return None
    number, suffix = float(m[1]), m[2].lower()
    if suffix == unit:
        number *= per_unit
    elif suffix:
        return None
    return int(number) if number == int(number) else None


def fargate_size_error(cpu: Any, memory: Any, requires_compatibilities: list[str] | None) -> str | None:
    """ECS's ClientException text for a Fargate task definition whose task-level cpu and memory are
    not a pair of Fargate's table; None when either is not given at task level, the definition is not
    for Fargate, or a value is not a size at all (ECS answers other errors for those)."""
    if "FARGATE" not in (requires_compatibilities or []) or not _text(str(cpu or "")) or not _text(str(memory or "")):
        return None
    units, mib = _size(cpu, "vcpu", 1024), _size(memory, "gb", 1024)
    if units is None or mib is None or mib in FARGATE_SIZES.get(units, ()):
        return None
    return MSG_FARGATE_SIZE.format(cpu=units, memory=mib)


# --------------------------------------------------------------------------- roles ECS assumes


def _role_arn(value: str, account: str) -> str:
    # A task definition may name a role by name; ECS assumes it in the task's account.
    return value if value.startswith("arn:") else f"arn:aws:iam::{account}:role/{value}"


def _iam_backend(role_arn: str) -> Any:
    from moto.iam.models import iam_backends

    parts = role_arn.split(":")
    return iam_backends[parts[4]][parts[1] or "aws"]


def _role(role_arn: str) -> Any | None:
    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[4] or not parts[5].startswith("role/"):
        return None
    try:
        return _iam_backend(role_arn).get_role(parts[5].rsplit("/", 1)[-1])
    except Exception:  # noqa: BLE001 - NoSuchEntity: not there
        return None


def launch_error(td: Any, account: str) -> str | None:
    """ECS's text when it cannot assume the task role or the execution role (missing, or not trusting
    ecs-tasks.amazonaws.com); the task role is named first when both fail, as users saw."""
    for value in (getattr(td, "task_role_arn", None), getattr(td, "execution_role_arn", None)):
        value = _text(value)
        if not value:
            continue
        role = _role(_role_arn(value, account))
        if role is None or not iam.trusts_service(role.assume_role_policy_document, "ecs-tasks.amazonaws.com"):
            return MSG_ASSUME.format(arn=value)
    return None


# --------------------------------------------------------------------------- PENDING


def image_not_found(image: str) -> str | None:
    """CannotPullContainerError text if image is an ECR reference missing from moto's ECR."""
    m = private_ecr(image)
    if not m:
        return None  # Docker Hub, public.ecr.aws, ...: the emulator cannot know; assume pullable
    if _ecr_image(m) is not None:
        return None
    return (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            f"failed to resolve ref {image}: not found")


def _ecr_image(m: re.Match[str]) -> Any | None:
    from moto.ecr.models import ecr_backends

    try:
        repo = ecr_backends[m["account"]][m["region"]].repositories.get(m["repo"])
    except Exception:  # noqa: BLE001 - unknown region: nothing to pull from
        repo = None
    if repo is None:
        return None
    tag = m["tag"] or "latest"
    for img in repo.images:
        if (img.get_image_digest() == m["digest"]) if m["digest"] else (tag in (img.image_tags or [])):
            return img
    return None


def _layer_digest(m: re.Match[str]) -> str:
    img = _ecr_image(m)
    try:
        manifest = json.loads(img.image_manifest) if img is not None else {}
        layers = manifest.get("layers") or []
        if layers and layers[0].get("digest"):
            return str(layers[0]["digest"])
    except (ValueError, AttributeError, TypeError):
        pass
    return str(m["digest"] or (img.get_image_digest() if img is not None else "sha256:"))


@dataclass
class StartFailure:
    """Why a task stops before running: the task's stoppedReason, the containers' reasons."""

    reason: str
    containers: dict[str, str] = field(default_factory=dict)

    @property
    def resource_initialization(self) -> bool:
        return self.reason.startswith("ResourceInitializationError")


def _images_missing(task: Any) -> StartFailure | None:
    failing = {c.name: msg for c in task.containers if (msg := image_not_found(c.image or ""))}
    if not failing:
        return None
    return StartFailure(next(iter(failing.values())), failing)


def start_failure(task: Any, td: Any, check: bool) -> StartFailure | None:
    """The first thing that stops `task` (an ecs.Task entering PENDING) before it runs, or None.
    Creates the log stream (and, with awslogs-create-group, the group) as the log driver does."""
    if not (check and getattr(task, "emu_fargate", False)):
        return _images_missing(task)
    account, region = task.account_id, task.region
    cdefs = [c for c in td.container_definitions or [] if isinstance(c, dict)]
    ecr = [(c, m) for c in task.containers if (m := private_ecr(c.image))]
    logs = _awslogs(cdefs)
    role_value = _text(getattr(td, "execution_role_arn", None))
    partition = _role_arn(role_value, account).split(":")[1] if role_value else "aws"
    refs = _secret_refs(cdefs, account, region, partition)
    if not role_value:
        # AWS refuses these task definitions at registration; reached only with the check off then.
        if ecr:
            return StartFailure(*_first({c.name: _pull_denied(c.image, m, "401 Unauthorized") for c, m in ecr}))
        if refs or logs:
            what = "retrieve its secrets" if refs else "create its log stream"
            return StartFailure(f"ResourceInitializationError: the task definition has no execution role to {what} "
                                "(emulator: AWS refuses such a task definition at registration)")
        return _images_missing(task)

    role_arn = _role_arn(role_value, account)
    try:
        policies = iam.principal_policies(_iam_backend(role_arn), role_arn)
    except Exception:  # noqa: BLE001 - the role went away after launch
        return StartFailure(MSG_ASSUME.format(arn=role_value))
    caller = f"arn:{partition}:sts::{role_arn.split(':')[4]}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{task.id}"
    ctx = iam.Context(None)

    def denied(action: str, resource: str) -> str | None:
        decision = iam.evaluate(policies, action, resource, ctx)[0]
        return None if decision == "allowed" else _not_authorized(caller, action, resource, decision)

    # 1. Execution resources: registry auth, then the secrets (SSM, then Secrets Manager).
    if ecr and (msg := denied("ecr:GetAuthorizationToken", "*")):
        return StartFailure(_RETRIEVAL + "unable to retrieve ecr registry auth: service call has been retried 1 "
                            "time(s): " + _sdk_error("ECR", "GetAuthorizationToken", "AccessDeniedException", msg, False))
    ssm = [r for r in refs if r.kind == "ssm"]
    ssm_prefix = _RETRIEVAL + "unable to retrieve secrets from ssm: service call has been retried 1 time(s): "
    for ref in ssm:
        if ref.arn and (msg := denied("ssm:GetParameters", ref.arn)):
            return StartFailure(ssm_prefix + _sdk_error("SSM", "GetParameters", "AccessDeniedException", msg, False))
    invalid = [r.value_from for r in ssm if not _parameter_exists(r)]
    if invalid:
        return StartFailure(ssm_prefix + "invalid ssm parameters: " + ",".join(invalid))
    for ref in (r for r in refs if r.kind == "asm"):
        prefix = (_RETRIEVAL + "unable to retrieve secret from asm: service call has been retried 1 time(s): "
                  f"failed to fetch secret {ref.arn} from secrets manager: ")
        if ref.arn and (msg := denied("secretsmanager:GetSecretValue", ref.arn)):
            return StartFailure(prefix + _sdk_error("Secrets Manager", "GetSecretValue", "AccessDeniedException",
                                                    msg, False))
        problem = _secret_problem(ref)
        if problem:
            return StartFailure(prefix + _sdk_error("Secrets Manager", "GetSecretValue", *problem, True))

    # 2. The images.
    pulls: dict[str, str] = {}
    for c, m in ecr:
        repo_arn = f"arn:{partition}:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"
        if denied("ecr:BatchGetImage", repo_arn):
            pulls[c.name] = _pull_denied(c.image, m, "403 Forbidden")
        elif msg := image_not_found(c.image or ""):
            pulls[c.name] = msg
        elif denied("ecr:GetDownloadUrlForLayer", repo_arn):
            registry = c.image.split("/", 1)[0]
            pulls[c.name] = ("CannotPullContainerError: ref pull has been retried 1 time(s): failed to copy: "
                             f"httpReadSeeker: failed open: unexpected status code https://{registry}/v2/{m['repo']}/"
                             f"blobs/{_layer_digest(m)}: 403 Forbidden")
    if pulls:
        return StartFailure(*_first(pulls))

    # 3. The log driver of each container: its stream (its group first, with awslogs-create-group).
    for name, options in logs:
        group = options.get("awslogs-group", "")
        if not group:
            continue
        log_region = options.get("awslogs-region") or region
        prefix = options.get("awslogs-stream-prefix", "")
        stream = f"{prefix}/{name}/{task.id}" if prefix else task.id
        group_arn = f"arn:{partition}:logs:{log_region}:{account}:log-group:{group}"
        if msg := denied("logs:CreateLogStream", f"{group_arn}:log-stream:{stream}"):
            return StartFailure(_LOGGER + "failed to create Cloudwatch log stream: " + _sdk_error(
                "CloudWatch Logs", "CreateLogStream", "AccessDeniedException", msg, False) + " : exit status 1")
        backend = _logs_backend(account, log_region)
        if group not in backend.groups:
            if options.get("awslogs-create-group", "").strip().lower() != "true":
                return StartFailure(_LOGGER + "failed to create Cloudwatch log stream: " + _sdk_error(
                    "CloudWatch Logs", "CreateLogStream", "ResourceNotFoundException", _NO_GROUP, True)
                    + " : exit status 1")
            if msg := denied("logs:CreateLogGroup", f"{group_arn}:log-stream:"):
                return StartFailure(_LOGGER + "failed to create Cloudwatch log group: " + _sdk_error(
                    "CloudWatch Logs", "CreateLogGroup", "AccessDeniedException", msg, False) + " : exit status 1")
            backend.create_log_group(group, {})
        try:
            backend.create_log_stream(group, stream)
        except Exception:  # noqa: BLE001 - already there
            pass
    return None


def _first(by_container: dict[str, str]) -> tuple[str, dict[str, str]]:
    return next(iter(by_container.values())), by_container


def _pull_denied(image: str, m: re.Match[str], status: str) -> str:
    registry = image.split("/", 1)[0]
    return (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
            f"{image}: pulling from host {registry} failed with status code [manifests "
            f"{m['digest'] or m['tag'] or 'latest'}]: {status}")


def _parameter_exists(ref: SecretRef) -> bool:
    from moto.ssm.models import ssm_backends

    try:
        backend = ssm_backends[ref.account][ref.region]
        return bool(backend.get_parameters([ref.value_from]))
    except Exception:  # noqa: BLE001 - an unknown region, a malformed name: nothing there
        return False


def _secret_problem(ref: SecretRef) -> tuple[str, str] | None:
    """(code, message) Secrets Manager answers GetSecretValue for the reference with, or None."""
    from moto.secretsmanager.exceptions import SecretsManagerClientError
    from moto.secretsmanager.models import secretsmanager_backends

    try:
        backend = secretsmanager_backends[ref.account][ref.region]
    except Exception:  # noqa: BLE001 - unknown region
        return "ResourceNotFoundException", "Secrets Manager can't find the specified secret."
    try:
        secret = backend.describe_secret(ref.arn)
    except SecretsManagerClientError:
        return "ResourceNotFoundException", "Secrets Manager can't find the specified secret."
    if getattr(secret, "is_deleted", lambda: False)():
        return ("InvalidRequestException",
                "You can't perform this operation on the secret because it was marked for deletion.")
    try:
        backend.get_secret_value(ref.arn, ref.version_id, ref.version_stage)
    except SecretsManagerClientError as exc:
        return exc.error_type, exc.message
    return None


def _logs_backend(account: str, region: str) -> Any:
    from moto.logs.models import logs_backends

    return logs_backends[account][region]

"""Access denial on demand: chosen API actions answer as AWS answers a caller without permission.

A deploy tool's read-only checks must tell "not allowed to look" (a SKIP) from "not there"
(a failure); the emulator allows everything, so tests name the actions to refuse:

    POST /_emulator/deny {"actions": ["iam:SimulatePrincipalPolicy", "ssm:DescribeParameters"]}
    POST /_emulator/deny {"actions": []}        # allow everything again
    GET  /_emulator/deny                        # {"actions": [...]}

Actions are IAM action names (`<service prefix>:<Action>`, case-insensitive, `*`/`?` wildcards).
The check runs in control.py's middleware for every AWS request (after the request log, before
moto), so it works for any service; the refusal has the protocol's error shape:

* Query (IAM, CloudFormation, ...): HTTP 403 `<ErrorResponse><Error><Type>Sender</Type>
  <Code>AccessDenied</Code><Message>...`
* EC2: HTTP 403 `<Response><Errors><Error><Code>UnauthorizedOperation</Code>...`
* JSON (SSM, Secrets Manager, CloudWatch Logs, ECS, ECR, KMS, ...): HTTP 400
  `{"__type": "AccessDeniedException", "message": "..."}`
* REST-JSON (Lambda, ...): HTTP 403, `x-amzn-ErrorType: AccessDeniedException`
* REST-XML (S3): HTTP 403 `<Error><Code>AccessDenied</Code>...` (no body for HEAD)

The message is AWS's: `User: <caller> is not authorized to perform: <action> on resource:
<resource> because no identity-based policy allows the <action> action`, the caller being who
moto's GetCallerIdentity says the access key is (an IAM user's ARN for moto's default
`user/moto`) and the resource what AWS names for the action (README lists which are confirmed).
"""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import os
import re
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from emulator import control, state

_LOCK = threading.Lock()
DENIED: list[str] = []

_CRED = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")

# Signing name -> botocore service name / IAM action prefix, where they differ.
_BOTOCORE_NAME = {"monitoring": "cloudwatch", "email": "ses", "elasticloadbalancing": "elbv2",
                  "states": "stepfunctions", "execute-api": "apigateway"}
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}

# S3 operations whose IAM action has another name (the rest are the same).
_S3_ACTION = {"HeadObject": "GetObject", "HeadBucket": "ListBucket", "ListObjects": "ListBucket",
              "ListObjectsV2": "ListBucket", "CopyObject": "PutObject", "ListBuckets": "ListAllMyBuckets",
              "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
              "CompleteMultipartUpload": "PutObject"}


# ------------------------------------------------------------------ the control endpoint


def _route(environ: dict[str, Any], body: bytes) -> tuple[int, str, bytes]:
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            payload = json.loads(body or b"{}")
            actions = payload["actions"]
            if not isinstance(actions, list) or not all(isinstance(a, str) and ":" in a for a in actions):
                raise ValueError('"actions" must be a list of "<service>:<Action>" names')
        except (KeyError, TypeError, ValueError) as exc:
            return 400, "application/json", json.dumps({"error": str(exc)}).encode()
        with _LOCK:
            DENIED[:] = actions
    with _LOCK:
        return 200, "application/json", json.dumps({"actions": list(DENIED)}).encode()


def _denied(name: str) -> bool:
    with _LOCK:
        patterns = list(DENIED)
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


# ------------------------------------------------------------------ what the request is


@functools.lru_cache(maxsize=None)
def _model(signing_name: str) -> Any:
    from moto.core.utils import get_service_model

    try:
        return get_service_model(_BOTOCORE_NAME.get(signing_name, signing_name))
    except Exception:  # noqa: BLE001 - a service botocore does not know: guess from the request
        return None


@functools.lru_cache(maxsize=None)
def _router(service_name: str) -> Any:
    from moto.core.routing import get_service_router

    return get_service_router(service_name)


def _protocol(model: Any, environ: dict[str, Any]) -> str:
    content_type = environ.get("CONTENT_TYPE", "")
    if model is not None:
        from moto.core.request import determine_request_protocol

        try:
            return determine_request_protocol(model, content_type)
        except NotImplementedError:
            return str(model.protocol)
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    return "query" if "x-www-form-urlencoded" in content_type else "rest-json"


def _rest_operation(model: Any, environ: dict[str, Any], body: bytes) -> str:
    """The operation of a REST request, found the way moto routes it."""
    from moto.core.request import Request

    copy = dict(environ)
    copy["wsgi.input"] = io.BytesIO(body)  # the router must not consume moto's body
    try:
        operation, _ = _router(model.service_name).match(Request(copy))
    except Exception:  # noqa: BLE001 - unroutable: moto will answer it as it does
        return ""
    return str(operation.name)


def _params(protocol: str, environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    if protocol in ("query", "ec2"):
        form = parse_qs(environ.get("QUERY_STRING", ""))
        form.update(parse_qs(body.decode("utf-8", "replace")))
        return {k: v[0] for k, v in form.items()}
    if protocol == "json":
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _caller(environ: dict[str, Any], access_key: str, region: str) -> tuple[str, str]:
    """(caller ARN, account) as moto's STS GetCallerIdentity sees the access key."""
    from moto.iam.models import get_account_id_from
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    account = (os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
               or get_account_id_from(access_key))
    with state.LOCK:
        _, arn, _ = sts_backends[account][get_partition(region)].get_caller_identity(access_key, region)
    # moto's default identity is `arn:aws:sts::<account>:user/moto`; an IAM user's ARN is an iam one.
    return re.sub(r"^arn:([^:]+):sts::(\d+):user/", r"arn:\1:iam::\2:user/", arn), account


def _resource(prefix: str, operation: str, params: dict[str, Any], region: str, account: str,
              partition: str, environ: dict[str, Any]) -> str | None:
    """The resource AWS names in the refusal (None: AWS leaves the `on resource` part out)."""
    if prefix == "iam":
        if operation in ("SimulatePrincipalPolicy", "GetContextKeysForPrincipalPolicy"):
            return str(params.get("PolicySourceArn", "*"))
        if params.get("RoleName"):
            return f"role {params['RoleName']}"
        if params.get("UserName"):
            return f"user {params['UserName']}"
        return "*"
    if prefix == "ssm":
        names = params.get("Names") or ([params["Name"]] if params.get("Name") else [])
        if names:
            name = str(names[0])
            return name if name.startswith("arn:") else \
                f"arn:{partition}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"
        return f"arn:{partition}:ssm:{region}:{account}:*"
    if prefix == "secretsmanager":
        # The SecretId as the caller gave it (name, partial or full ARN); ListSecrets names none.
        return str(params["SecretId"]) if params.get("SecretId") else None
    if prefix == "logs":
        base = f"arn:{partition}:logs:{region}:{account}:log-group:"
        group, stream = params.get("logGroupName"), params.get("logStreamName")
        if group and stream:
            return f"{base}{group}:log-stream:{stream}"
        return f"{base}{group or ''}:log-stream:"
    if prefix == "s3":
        path = unquote(environ.get("PATH_INFO", "")).lstrip("/")
        return f'"arn:{partition}:s3:::{path}"' if path else "*"
    return "*"


# ------------------------------------------------------------------ the refusal


def _answer(protocol: str, model: Any, message: str, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
    request_id = str(uuid.uuid4())
    if protocol == "json":
        version = (model.metadata.get("jsonVersion") if model is not None else None) or "1.1"
        body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
        return 400, [("Content-Type", f"application/x-amz-json-{version}"), ("x-amzn-RequestId", request_id)], body
    if protocol == "rest-json":
        body = json.dumps({"Message": message}).encode()
        return 403, [("Content-Type", "application/json"), ("x-amzn-ErrorType", "AccessDeniedException"),
                     ("x-amzn-RequestId", request_id)], body
    if protocol == "ec2":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation"
                f"</Code><Message>{escape(message)}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
                f"</Response>").encode()
        return 403, [("Content-Type", "text/xml;charset=UTF-8")], body
    if protocol == "rest-xml":
        body = b"" if method == "HEAD" else (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>{escape(message)}"
            f"</Message><RequestId>{request_id}</RequestId></Error>").encode()
        return 403, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
    namespace = model.metadata.get("xmlNamespace", "") if model is not None else ""
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = (f"<ErrorResponse{xmlns}><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{escape(message)}"
            f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
    return 403, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body


def check(environ: dict[str, Any], body: bytes, service: str, action: str) -> tuple[int, list[tuple[str, str]],
                                                                                    bytes] | None:
    """control.REQUEST_HOOKS entry: the refusal when the request's action is denied, else None."""
    with _LOCK:
        if not DENIED:
            return None
    model = _model(service)
    protocol = _protocol(model, environ)
    operation = action
    if protocol in ("rest-json", "rest-xml") and (" " in action or not action) and model is not None:
        operation = _rest_operation(model, environ, body)
    if not operation or " " in operation:
        return None
    prefix = _IAM_PREFIX.get(service, service)
    iam_action = f"{prefix}:{_S3_ACTION.get(operation, operation) if prefix == 's3' else operation}"
    if not _denied(iam_action):
        return None
    m = _CRED.search(environ.get("HTTP_AUTHORIZATION", ""))
    access_key, region = (m.group(1), m.group(2)) if m else ("", "us-east-1")
    caller, account = _caller(environ, access_key, region)
    partition = caller.split(":")[1] if caller.count(":") > 1 else "aws"
    reason = f"because no identity-based policy allows the {iam_action} action"
    if protocol == "ec2":
        message = (f"You are not authorized to perform this operation. User: {caller} is not authorized to perform: "
                   f"{iam_action} {reason}")
    else:
        resource = _resource(prefix, operation, _params(protocol, environ, body), region, account, partition,
                             environ)
        on = f" on resource: {resource}" if resource else ""
        message = f"User: {caller} is not authorized to perform: {iam_action}{on} {reason}"
    return _answer(protocol, model, message, environ.get("REQUEST_METHOD", ""))


_installed: list[bool] = []


def install() -> None:
    """Register the denial check and `/_emulator/deny` (idempotent)."""
    if _installed:
        return
    _installed.append(True)
    control.REQUEST_HOOKS.append(check)
    for method in ("GET", "POST"):
        control.EXTRA_ROUTES[(method, "/_emulator/deny")] = _route

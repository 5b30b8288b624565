"""WSGI middleware in front of moto: test-control endpoints and an API request log.

Endpoints (all under ``/_emulator/``, never forwarded to moto):

* ``GET  /_emulator/health``          -> 200 ``ok``
* ``GET  /_emulator/requests``        -> JSON list of ``{"service": ..., "action": ..., "time": ...}``
                                        (plus ``"stack"``: the StackName of a CloudFormation call)
  for every AWS API request received, in arrival order; ``time`` is the arrival as Unix
  seconds (float), so a benchmark can tell when a client first called or how soon it
  noticed a status change
* ``POST /_emulator/requests/reset``  -> clears that list
* ``POST /_emulator/stack-status``    -> JSON ``{"StackName", "StackStatus", "StatusReason"?}``
  forces a CloudFormation stack into a status (e.g. UPDATE_ROLLBACK_FAILED), which is
  otherwise impossible to reach on demand.
* ``GET|POST /_emulator/ecs-speed``  -> ECS timing settings (registered by ecs.py through
  EXTRA_ROUTES; see README.md)
* ``GET|POST /_emulator/codedeploy-speed``, ``GET /_emulator/codedeploy-hooks`` -> CodeDeploy
  timing and hook executions (registered by codedeploy.py)
* ``GET|POST /_emulator/ecs-hooks`` -> ECS lifecycle hook invocations, and the answer of a
  ``-manual`` Lambda hook; ``GET /_emulator/ecs-deployments`` -> ECS service deployments with
  their stage/traffic history (registered by ecs_deployments.py)
* ``GET|POST /_emulator/deny`` -> API actions answered with AWS's access denial (access.py)

``REQUEST_HOOKS`` see every AWS request after it is logged and may answer it instead of moto
(access.py refuses denied actions there).

The middleware also serialises every AWS request behind ``state.LOCK``: moto's
backends are plain dicts without locking, and the CloudFormation worker threads
(see cloudformation.py) mutate the same backends concurrently.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from http import HTTPStatus
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs

from emulator import state

_CRED_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")

# Extension point: other modules (ecs.py) register extra control
# routes: path -> handler(environ, body_bytes) -> (status_code, content_type, body)
EXTRA_ROUTES: dict[tuple[str, str], Callable[[dict[str, Any], bytes], tuple[int, str, bytes]]] = {}

# Extension point: hook(environ, body, service, action) -> (status, headers, body) to answer
# the request instead of moto, or None to pass it on.
RequestHook = Callable[[dict[str, Any], bytes, str, str], "tuple[int, list[tuple[str, str]], bytes] | None"]
REQUEST_HOOKS: list[RequestHook] = []


class RequestLog:
    """Thread-safe ordered record of AWS API calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[dict[str, str | float]] = []

    def add(self, service: str, action: str, stack: str | None = None) -> None:
        # Stamped on arrival, before waiting for state.LOCK, so a busy emulator does
        # not make a client look slower than it is.
        arrived = time.time()
        item: dict[str, str | float] = {"service": service, "action": action, "time": arrived}
        if stack:
            # Which stack a CloudFormation call was about: a system's stacks can then be
            # told apart (and their overlap in time seen) in the log.
            item["stack"] = stack
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[dict[str, str | float]]:
        with self._lock:
            return list(self._items)

    def reset(self) -> None:
        with self._lock:
            self._items.clear()


# S3's REST operations on a path-style request (`/bucket` or `/bucket/key`),
# by method and whether a key is named: enough to tell the calls a deploy
# tool makes, so the request log names operations as the other protocols do.
_S3_OPERATIONS = {
    ("HEAD", False): "HeadBucket",
    ("HEAD", True): "HeadObject",
    ("GET", False): "ListObjects",
    ("GET", True): "GetObject",
    ("PUT", False): "CreateBucket",
    ("PUT", True): "PutObject",
    ("DELETE", False): "DeleteBucket",
    ("DELETE", True): "DeleteObject",
}


def _s3_operation(environ: dict[str, Any]) -> str:
    """The S3 operation of a path-style request ("" when it is not one)."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    # The AWS SDKs name some operations themselves (`?x-id=PutObject`).
    if "x-id" in query:
        return query["x-id"][0]
    path = environ.get("PATH_INFO", "").lstrip("/")
    if not path or query:
        return ""  # ListBuckets, or a sub-resource call (?location, ?acl, ...)
    bucket, _, key = path.partition("/")
    return _S3_OPERATIONS.get((environ.get("REQUEST_METHOD", ""), bool(key)), "") if bucket else ""


def _service_and_action(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
    """Work out (service, operation) the way AWS routes the request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    service = ""
    m = _CRED_SCOPE.search(auth)
    if m:
        service = m.group(1)
    action = ""
    if target:
        # JSON protocol (ECS, ECR, ...): "AmazonEC2ContainerServiceV20141113.ListClusters"
        prefix, _, action = target.rpartition(".")
        if not service:
            service = prefix
    else:
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" in qs:
            action = qs["Action"][0]
        elif body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            form = parse_qs(body.decode("utf-8", "replace"))
            if "Action" in form:
                action = form["Action"][0]
        if not action and service == "s3":
            action = _s3_operation(environ)
        if not action:
            # REST protocols carry the operation in method + path.
            action = f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')}"
    if not service:
        service = environ.get("HTTP_HOST", "").split(".")[0] or "unknown"
    return service, action


def _stack_name(service: str, environ: dict[str, Any], body: bytes) -> str | None:
    """The StackName of a CloudFormation query call, if it names one."""
    if service != "cloudformation" or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    names = parse_qs(body.decode("utf-8", "replace")).get("StackName")
    return names[0] if names else None


class ControlMiddleware:
    def __init__(self, app: Callable[..., Iterable[bytes]], verbose: bool = False) -> None:
        self.app = app
        self.log = RequestLog()
        self.verbose = verbose

    def _respond(self, start_response: Callable[..., Any], code: int, ctype: str, body: bytes) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(code, "Error")
        start_response(
            f"{code} {reason}",
            [("Content-Type", ctype), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _control(self, environ: dict[str, Any], body: bytes, start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path == "/_emulator/health" and method == "GET":
            return self._respond(start_response, 200, "text/plain", b"ok")
        if path == "/_emulator/requests" and method == "GET":
            return self._respond(start_response, 200, "application/json", json.dumps(self.log.snapshot()).encode())
        if path == "/_emulator/requests/reset" and method == "POST":
            self.log.reset()
            return self._respond(start_response, 200, "application/json", b"{}")
        if path == "/_emulator/stack-status" and method == "POST":
            from emulator import cloudformation

            try:
                payload = json.loads(body or b"{}")
                with state.LOCK:
                    result = cloudformation.force_stack_status(
                        payload["StackName"],
                        payload["StackStatus"],
                        payload.get("StatusReason"),
                        region=payload.get("Region"),
                        account_id=payload.get("AccountId"),
                    )
            except (KeyError, ValueError, LookupError) as exc:
                return self._respond(
                    start_response, 400, "application/json", json.dumps({"error": str(exc)}).encode()
                )
            return self._respond(start_response, 200, "application/json", json.dumps(result).encode())
        handler = EXTRA_ROUTES.get((method, path))
        if handler:
            code, ctype, out = handler(environ, body)
            return self._respond(start_response, code, ctype, out)
        return self._respond(start_response, 404, "text/plain", b"unknown emulator endpoint")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Buffer the body so we can both inspect it and hand it on to moto.
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))

        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self._control(environ, body, start_response)
        if not path.startswith("/moto-api"):
            service, action = _service_and_action(environ, body)
            self.log.add(service, action, _stack_name(service, environ, body))
            for hook in REQUEST_HOOKS:
                answer = hook(environ, body, service, action)
                if answer is not None:
                    code, headers, out = answer
                    start_response(f"{code} {HTTPStatus(code).phrase}", [*headers, ("Content-Length", str(len(out)))])
                    return [out]
        with state.LOCK:
            result = self.app(environ, start_response)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close:
                    close()
        return chunks

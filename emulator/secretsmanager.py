"""Secrets Manager patch for moto 5.2.5: a missing secret is HTTP 400, as on AWS.

moto answers ResourceNotFoundException (`Secrets Manager can't find the specified secret.`,
`... secret value for staging label: <stage>`) and a VersionStage/VersionId mismatch
(InvalidRequestException) with HTTP 404; Secrets Manager, a JSON-protocol service, sends its errors with HTTP 400 (API
reference, Common Errors and each operation's Errors). SDKs go by the code, but a client that
looks at the status (or logs it) sees what AWS sends. DescribeSecret already resolves a name, a
full ARN and a partial ARN without the 6-character suffix as AWS does (tests in test_iam.py).
"""

from __future__ import annotations

from typing import Any

from moto.secretsmanager import exceptions

_installed: list[bool] = []


def _status_400(cls: type) -> None:
    moto_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        moto_init(self, *args, **kwargs)
        self.code = 400

    cls.__init__ = __init__


def install() -> None:
    if _installed:
        return
    _installed.append(True)
    for cls in (exceptions.ResourceNotFoundException, exceptions.SecretNotFoundException,
                exceptions.SecretHasNoValueException, exceptions.SecretStageVersionMismatchException):
        _status_400(cls)

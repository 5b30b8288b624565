"""Lambda patch for moto 5.2.5: function code from S3 that is not there.

moto's S3 ``get_object`` answers a missing key with None instead of raising, so moto's
Lambda (CreateFunction, UpdateFunctionCode, and AWS::Lambda::Function through
CloudFormation) took a missing ``S3Bucket``/``S3Key`` for an empty package and created the
function with CodeSize 0. AWS refuses it; so does this patch, with AWS's text
(CloudFormation reports it as the resource's failure reason).
"""

from __future__ import annotations

from typing import Any

from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaFunction
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends

NO_SUCH_KEY = ("Error occurred while GetObject. S3 Error Code: NoSuchKey. "
               "S3 Error Message: The specified key does not exist.")
NO_SUCH_BUCKET = ("Error occurred while GetObject. S3 Error Code: NoSuchBucket. "
                  "S3 Error Message: The specified bucket does not exist")

_MOTO_SET_FUNCTION_CODE = LambdaFunction._set_function_code


def _set_function_code(self: LambdaFunction, updated_spec: dict[str, Any]) -> None:
    if ("ZipFile" not in updated_spec and "S3Bucket" in updated_spec and "S3Key" in updated_spec
            and not updated_spec.get("DryRun")):
        try:
            key = s3_backends[self.account_id][self.partition].get_object(
                updated_spec["S3Bucket"], updated_spec["S3Key"], version_id=updated_spec.get("S3ObjectVersion"))
        except MissingBucket as exc:
            raise InvalidParameterValueException(NO_SUCH_BUCKET) from exc
        if key is None:
            raise InvalidParameterValueException(NO_SUCH_KEY)
    _MOTO_SET_FUNCTION_CODE(self, updated_spec)


def install() -> None:
    LambdaFunction._set_function_code = _set_function_code

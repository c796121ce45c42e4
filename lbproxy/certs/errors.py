"""ACM's error codes, one class each (moto's shape), with AWS's wording where AWS has one."""

from __future__ import annotations

from lbproxy.awsapi.errors import AwsError
from lbproxy.awsapi.errors import ValidationException as ValidationException
from lbproxy.core.principals import ACCOUNT_ID


class AccessDeniedException(AwsError):
    code = "AccessDeniedException"


class ConflictException(AwsError):
    code = "ConflictException"


class InvalidArgsException(AwsError):
    code = "InvalidArgsException"


class InvalidArnException(AwsError):
    code = "InvalidArnException"


class InvalidDomainValidationOptionsException(AwsError):
    code = "InvalidDomainValidationOptionsException"


class InvalidParameterException(AwsError):
    code = "InvalidParameterException"


class InvalidStateException(AwsError):
    code = "InvalidStateException"


class InvalidTagException(AwsError):
    code = "InvalidTagException"


class LimitExceededException(AwsError):
    code = "LimitExceededException"


class RequestInProgressException(AwsError):
    code = "RequestInProgressException"


class ResourceInUseException(AwsError):
    code = "ResourceInUseException"


class ResourceNotFoundException(AwsError):
    code = "ResourceNotFoundException"


class TagPolicyException(AwsError):
    code = "TagPolicyException"


class ThrottlingException(AwsError):
    code = "ThrottlingException"


class TooManyTagsException(AwsError):
    code = "TooManyTagsException"


def not_found(arn: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"Certificate with arn {arn} not found in account {ACCOUNT_ID}")


def in_use(arn: str) -> ResourceInUseException:
    return ResourceInUseException(f"Certificate {arn} in account {ACCOUNT_ID} is in use.")


def in_progress(arn: str) -> RequestInProgressException:
    return RequestInProgressException(f"Certificate {arn} in account {ACCOUNT_ID} is not yet issued.")

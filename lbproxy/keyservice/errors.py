"""KMS error codes (``botocore`` model names), AWS's wording in the messages built by the service."""

from __future__ import annotations

from lbproxy.awsapi.errors import AwsError, ValidationException

__all__ = ["ValidationException"]


class NotFoundException(AwsError):
    code = "NotFoundException"


class AccessDeniedException(AwsError):
    code = "AccessDeniedException"


class DisabledException(AwsError):
    code = "DisabledException"


class KMSInvalidStateException(AwsError):
    code = "KMSInvalidStateException"


class InvalidCiphertextException(AwsError):
    code = "InvalidCiphertextException"


class IncorrectKeyException(AwsError):
    code = "IncorrectKeyException"


class InvalidKeyUsageException(AwsError):
    code = "InvalidKeyUsageException"


class InvalidArnException(AwsError):
    code = "InvalidArnException"


class InvalidAliasNameException(AwsError):
    code = "InvalidAliasNameException"


class AlreadyExistsException(AwsError):
    code = "AlreadyExistsException"


class InvalidGrantIdException(AwsError):
    code = "InvalidGrantIdException"


class InvalidGrantTokenException(AwsError):
    code = "InvalidGrantTokenException"


class InvalidMarkerException(AwsError):
    code = "InvalidMarkerException"


class MalformedPolicyDocumentException(AwsError):
    code = "MalformedPolicyDocumentException"


class UnsupportedOperationException(AwsError):
    code = "UnsupportedOperationException"


class LimitExceededException(AwsError):
    code = "LimitExceededException"


class TagException(AwsError):
    code = "TagException"


class KMSInvalidSignatureException(AwsError):
    code = "KMSInvalidSignatureException"


class KMSInvalidMacException(AwsError):
    code = "KMSInvalidMacException"


class CustomKeyStoreNotFoundException(AwsError):
    code = "CustomKeyStoreNotFoundException"


class KMSInternalException(AwsError):
    code = "KMSInternalException"
    status = 500


class DryRunOperationException(AwsError):
    code = "DryRunOperationException"


def access_denied(principal_arn: str, action: str, resource: str, why: str = "resource-based") -> AccessDeniedException:
    """No policy allows ``action``: ``why`` is ``resource-based`` (key policy, grants) or ``identity-based``."""
    return AccessDeniedException(
        f"User: {principal_arn} is not authorized to perform: kms:{action} on resource: {resource} "
        f"because no {why} policy allows the kms:{action} action"
    )


def explicitly_denied(principal_arn: str, action: str, resource: str) -> AccessDeniedException:
    return AccessDeniedException(
        f"User: {principal_arn} is not authorized to perform: kms:{action} on resource: {resource} "
        f"with an explicit deny in a resource-based policy"
    )


def check_dry_run(dry_run: bool) -> None:
    """``DryRun``: every check has passed; stop before acting."""
    if dry_run:
        raise DryRunOperationException("The request would have succeeded, but the DryRun option is set.")

"""AWS errors as the wire shows them: an error code, AWS's message, an HTTP status.

Each service module defines one subclass per AWS error code it can return (moto's shape), in AWS's
own wording. The protocol layer turns any ``AwsError`` into an AWS JSON 1.1 error body.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class AwsError(Exception):
    code: ClassVar[str] = "InternalFailure"
    status: ClassVar[int] = 400

    def __init__(self, message: str = "", **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"__type": self.code, "message": self.message}
        out.update(self.extra)
        return out


# Errors common to every AWS JSON service (the "common errors" of the API references).


class UnrecognizedClientException(AwsError):
    code = "UnrecognizedClientException"


class InvalidSignatureException(AwsError):
    code = "InvalidSignatureException"


class MissingAuthenticationTokenException(AwsError):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureException(AwsError):
    code = "IncompleteSignatureException"


class UnknownOperationException(AwsError):
    code = "UnknownOperationException"


class SerializationException(AwsError):
    code = "SerializationException"


class ValidationException(AwsError):
    code = "ValidationException"


class InternalFailure(AwsError):
    code = "InternalFailure"
    status = 500


class NotEmulatedException(InternalFailure):
    """An operation that is in the service's botocore model but that lbproxy does not emulate.

    On the wire it is the common error ``InternalFailure`` (every SDK accepts it without a model class, and it
    is what LocalStack answers for an operation it has not emulated) with HTTP 501 Not Implemented: that says
    what is true, and 501 is not among the statuses the SDKs retry (500, 502, 503, 504), so a client fails at
    once instead of backing off and trying again. The message names the operation and the ones lbproxy does
    emulate. A target that is in no model stays ``UnknownOperationException`` (what AWS answers)."""

    status = 501

    @classmethod
    def for_operation(cls, prefix: str, operation: str, model: str, emulated: Iterable[str]) -> NotEmulatedException:
        return cls(
            f"lbproxy does not emulate {prefix}.{operation}: it is an operation of the {model} API, but not one "
            f"lbproxy implements. Operations lbproxy emulates for {model}: {', '.join(sorted(emulated))}."
        )


class RequestEntityTooLargeException(ValidationException):
    """An oversized request body: AWS's common ``ValidationException`` (HTTP 400), named for what it is."""


class RequestTimeoutException(AwsError):
    """The request body did not arrive within ``body_timeout``: HTTP 408, and the connection is closed."""

    code = "RequestTimeoutException"
    status = 408

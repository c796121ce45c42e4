"""Lightsail's errors, in its own shape: ``{"__type", "code", "docs", "message", "tip"}``.

One class per error code the Lightsail API reference lists for the operations lbproxy serves. ``code``, ``docs``
and ``tip`` are members of every Lightsail exception in the model; ``code`` is the exception's own name
(``NotFoundException``, ``InvalidInputException``, ...), the same as ``__type`` and ``X-Amzn-ErrorType``, so every
SDK classifies the error as the modeled exception:

- botocore (boto3, the AWS CLI) reads ``__type`` only;
- aws-sdk-go-v2 (Terraform, OpenTofu) prefers the body's ``code`` over ``__type`` and over the header
  (``restjson.GetErrorInfo``): any other ``code`` turns ``*types.NotFoundException`` into a generic error;
- the AWS SDK for JavaScript v3 reads the header, then ``code``, then ``__type`` (``loadRestJsonErrorCode``), or,
  since its schema-based clients, ``__type`` first (``loadJsonRpcErrorCode``).

Real Lightsail puts another value in ``code``: ``DoesNotExist`` for a missing resource (every Lightsail resource
of grucloud, a JS v3 tool run against AWS, ignores the error name ``DoesNotExist``; aws-sdk-js-v3 #6606 and
Terraform's ``IsANotFoundError`` fallback on "DoesNotExist" record the same misclassification). lbproxy does
not copy that: with its ``code`` a missing load balancer is ``NotFoundException`` in all four clients, which is
what Terraform's ``IsANotFoundError`` tests first.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lbproxy.awsapi.errors import AwsError

DOCS_URL = "https://docs.aws.amazon.com/lightsail/2016-11-28/api-reference/"


class LightsailError(AwsError):
    code: ClassVar[str] = "ServiceException"
    status: ClassVar[int] = 400
    tip: ClassVar[str] = ""

    def __init__(self, message: str = "", *, tip: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.extra.setdefault("code", self.code)
        self.extra.setdefault("docs", DOCS_URL)
        self.extra.setdefault("tip", tip if tip is not None else self.tip)


class InvalidInputException(LightsailError):
    code = "InvalidInputException"
    tip = "Check the request parameters against the Lightsail API reference."


class NotFoundException(LightsailError):
    code = "NotFoundException"
    tip = "Check the name of the resource, and that it exists in this Region."


class OperationFailureException(LightsailError):
    code = "OperationFailureException"
    tip = "The resource is not in a state that allows this operation; check its state and try again."


class AccessDeniedException(LightsailError):
    code = "AccessDeniedException"
    status = 403
    tip = "The caller's principal is not allowed to perform this operation on this resource."


class ServiceException(LightsailError):
    code = "ServiceException"
    status = 500


def not_found(kind: str, name: str) -> NotFoundException:
    """Lightsail's wording: ``The LoadBalancer does not exist: NAME``."""
    return NotFoundException(f"The {kind} does not exist: {name}")

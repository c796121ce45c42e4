"""Lightsail's errors, in its own shape: ``{"__type", "code", "docs", "message", "tip"}``.

One class per error code the Lightsail API reference lists for the operations lbproxy serves.
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
        self.extra.setdefault("code", self.code.removesuffix("Exception"))
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

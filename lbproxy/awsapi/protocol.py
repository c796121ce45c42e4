"""AWS JSON 1.1 on the wire: which service an ``X-Amz-Target`` names, the request context a handler
gets, and how results and errors are serialized (timestamps as epoch seconds, blobs as base64)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lbproxy.awsapi.errors import AwsError
from lbproxy.core.principals import Principal

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(slots=True)
class RequestContext:
    """One API call: who made it, and what the audit record should say about it."""

    principal: Principal
    request_id: str
    region: str
    source_ip: str = ""
    user_agent: str = ""
    #: Filled by handlers: resources touched, grant used, context keys... (never secret values).
    audit: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[RequestContext, dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


class AwsJsonService(Protocol):
    #: ``X-Amz-Target`` prefix, e.g. ``TrentService``.
    target_prefix: str
    #: botocore service model name and SigV4 signing name, e.g. ``kms``.
    model_name: str
    #: CloudTrail ``eventSource``, e.g. ``kms.amazonaws.com``.
    event_source: str
    #: The error class this service uses for input validation failures.
    validation_error: type[AwsError]

    def handlers(self) -> Mapping[str, Handler]: ...


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def encode(result: Any) -> bytes:
    return json.dumps(result, default=_default, separators=(",", ":")).encode()


def error_body(exc: AwsError) -> bytes:
    return encode(exc.body())

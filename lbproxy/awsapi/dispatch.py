"""One AWS operation, run the way the AWS API runs it, and the one CloudTrail-style audit record.

- ``invoke``: look the operation up, validate its parameters against botocore's model, call the handler,
  and audit the outcome (success or error; an unexpected exception becomes ``InternalFailure``). A target in
  no model is ``UnknownOperationException`` (AWS's answer); an operation in the service's model that lbproxy
  does not emulate is ``NotEmulatedException`` (``InternalFailure``, HTTP 501, naming the operation). The
  SigV4 route, lbproxy's own routes and the dashboard all call it, so an action taken anywhere is checked
  and audited exactly like the same call from the AWS CLI.
- ``audit_record``: the record every audited call writes (CloudTrail's field names: ``eventSource``,
  ``eventName``, ``awsRegion``, ``requestID``, ``sourceIPAddress``, ``userAgent``, ``userIdentity``,
  ``requestParameters``, ``errorCode``/``errorMessage``, plus what the handler put in ``ctx.audit``:
  resources, grant used, encryption-context *keys*; never plaintext or context values).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lbproxy.awsapi.errors import AwsError, InternalFailure, NotEmulatedException, UnknownOperationException
from lbproxy.awsapi.protocol import AwsJsonService, RequestContext
from lbproxy.awsapi.shapes import operation_model, validate_input

log = logging.getLogger("lbproxy.control")


class AuditSink(Protocol):
    def record(self, rec: dict[str, Any]) -> None: ...


def audit_record(
    source: str,
    operation: str,
    ctx: RequestContext,
    error: AwsError | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit record of one call (see the module docstring)."""
    rec: dict[str, Any] = {
        "eventSource": source,
        "eventName": operation,
        "awsRegion": ctx.region,
        "requestID": ctx.request_id,
        "sourceIPAddress": ctx.source_ip,
        "userAgent": ctx.user_agent,
        "userIdentity": {"arn": ctx.principal.arn, "accessKeyId": ctx.principal.access_key_id},
    }
    if parameters is not None:
        rec["requestParameters"] = dict(parameters)
    rec.update(ctx.audit)
    if error is not None:
        rec["errorCode"] = error.code
        rec["errorMessage"] = error.message
    return rec


async def invoke(
    audit: AuditSink,
    service: AwsJsonService,
    operation: str,
    ctx: RequestContext,
    params: Callable[[], Any],
) -> Any:
    """Run one operation (see the module docstring). Raises ``AwsError``."""
    try:
        handlers = service.handlers()
        handler = handlers.get(operation)
        op = operation_model(service.model_name, operation)
        if op is None:
            raise UnknownOperationException("")
        if handler is None:
            raise NotEmulatedException.for_operation(service.target_prefix, operation, service.model_name, handlers)
        validated = validate_input(op, params(), service.validation_error)
        result: Any = handler(ctx, validated)
        if inspect.isawaitable(result):
            result = await result
    except AwsError as exc:
        audit.record(audit_record(service.event_source, operation, ctx, exc))
        raise
    except Exception:
        log.exception("internal error in %s.%s", service.target_prefix, operation)
        failure = InternalFailure("The request processing has failed because of an unknown error.")
        audit.record(audit_record(service.event_source, operation, ctx, failure))
        raise failure from None
    audit.record(audit_record(service.event_source, operation, ctx))
    return result

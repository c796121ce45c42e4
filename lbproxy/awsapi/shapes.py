"""Request validation against botocore's own service models.

A request body is checked against the operation's input shape from the same ``service-2.json`` the
AWS SDKs use: JSON types (a mismatch is a ``SerializationException``, as AWS answers), required
members, lengths, ranges and enums (a ``ValidationException``-style report in AWS's wording). Blob
members arrive base64-encoded and leave as ``bytearray`` (wipeable), never ``bytes``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from lbproxy.awsapi.errors import AwsError, SerializationException, ValidationException


@lru_cache(maxsize=8)
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def operation_model(service: str, operation: str) -> OperationModel | None:
    model = service_model(service)
    if operation not in model.operation_names:
        return None
    return model.operation_model(operation)


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, shape: Shape, value: Any, path: str) -> Any:
        t = shape.type_name
        if t == "structure":
            if not isinstance(value, dict):
                raise SerializationException("Start of structure or map found where not expected.")
            out = {}
            for name in shape.required_members:
                if value.get(name) is None:
                    self.problems.append(
                        f"Value null at '{_join(path, name)}' failed to satisfy constraint: Member must not be null"
                    )
            for name, member in shape.members.items():
                if name in value and value[name] is not None:
                    out[name] = self.check(member, value[name], _join(path, name))
            return out
        if t == "map":
            if not isinstance(value, dict):
                raise SerializationException("Start of structure or map found where not expected.")
            self._length(shape, len(value), path, "map")
            return {self.check(shape.key, k, path): self.check(shape.value, v, path) for k, v in value.items()}
        if t == "list":
            if not isinstance(value, list):
                raise SerializationException("Start of list found where not expected")
            self._length(shape, len(value), path, "list")
            return [self.check(shape.member, v, f"{path}.{i + 1}.member") for i, v in enumerate(value)]
        if t == "string":
            if not isinstance(value, str):
                raise SerializationException(f"{_json_kind(value)} can not be converted to a String")
            self._length(shape, len(value), path, "string", value)
            enum = shape.metadata.get("enum")
            if enum and value not in enum:
                self.problems.append(
                    f"Value '{value}' at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy enum value set: [{', '.join(enum)}]"
                )
            return value
        if t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SerializationException(f"{_json_kind(value)} can not be converted to an Integer")
            lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
            if lo is not None and value < lo:
                self.problems.append(
                    f"Value '{value}' at '{path}' failed to satisfy constraint: "
                    f"Member must have value greater than or equal to {lo}"
                )
            if hi is not None and value > hi:
                self.problems.append(
                    f"Value '{value}' at '{path}' failed to satisfy constraint: "
                    f"Member must have value less than or equal to {hi}"
                )
            return value
        if t in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SerializationException(f"{_json_kind(value)} can not be converted to a Double")
            return float(value)
        if t == "boolean":
            if not isinstance(value, bool):
                raise SerializationException(f"{_json_kind(value)} can not be converted to a Boolean")
            return value
        if t == "blob":
            if not isinstance(value, str):
                raise SerializationException(f"{_json_kind(value)} can not be converted to a Blob")
            try:
                raw = bytearray(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                raise SerializationException(f"Value at '{path}' is not a valid base64-encoded binary value") from None
            self._length(shape, len(raw), path, "blob")
            return raw
        if t == "timestamp":
            if isinstance(value, bool):
                raise SerializationException("Boolean can not be converted to a Timestamp")
            if isinstance(value, int | float):
                return dt.datetime.fromtimestamp(value, dt.UTC)
            if isinstance(value, str):
                try:
                    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    raise SerializationException(f"Could not parse timestamp '{value}'") from None
            raise SerializationException(f"{_json_kind(value)} can not be converted to a Timestamp")
        return value

    def _length(self, shape: Shape, n: int, path: str, kind: str, value: str | None = None) -> None:
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        shown = f"'{value}'" if value is not None and kind == "string" and n <= 256 else "null" if n == 0 else "'...'"
        if lo is not None and n < lo:
            self.problems.append(
                f"Value {shown} at '{path}' failed to satisfy constraint: "
                f"Member must have length greater than or equal to {lo}"
            )
        if hi is not None and n > hi:
            self.problems.append(
                f"Value {shown} at '{path}' failed to satisfy constraint: "
                f"Member must have length less than or equal to {hi}"
            )


def _join(path: str, name: str) -> str:
    return f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "NUMBER_VALUE"
    if isinstance(value, str):
        return "STRING_VALUE"
    if isinstance(value, list):
        return "Start of list"
    if isinstance(value, dict):
        return "Start of structure or map"
    return "null"


def validate_input(op: OperationModel, params: Any, error: type[AwsError] = ValidationException) -> dict[str, Any]:
    """Check ``params`` (parsed JSON) against ``op``'s input shape; return them with blobs decoded."""
    shape = op.input_shape
    if shape is None:
        if params is not None and not isinstance(params, dict):
            raise SerializationException("Start of structure or map found where not expected.")
        return {}
    checker = _Checker()
    out = checker.check(shape, params, "")
    if checker.problems:
        n = len(checker.problems)
        noun = "error" if n == 1 else "errors"
        raise error(f"{n} validation {noun} detected: " + "; ".join(checker.problems))
    return out

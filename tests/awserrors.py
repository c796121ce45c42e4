"""What an AWS client error says, read the same way by every test that drives a control API with boto3."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The error's AWS code (``ValidationException``, ``NotFoundException``, ...)."""
    return str(exc.value.response["Error"]["Code"])


def message(exc: pytest.ExceptionInfo[ClientError]) -> str:
    """The error's message."""
    return str(exc.value.response["Error"]["Message"])

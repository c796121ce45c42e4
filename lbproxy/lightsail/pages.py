"""Lightsail's pagination, pure: ``pageToken`` in, one page and ``nextPageToken`` out.

A token is opaque to the caller: base64 of where the previous page stopped (a name, or an operation's
sequence number), so a page never repeats or skips an item that was there before and after. A token this
control plane did not hand out is ``InvalidInputException``.

Page sizes: ``GetOperations`` returns at most 200 operations, as its API reference says ("up to a maximum of
200"); the reference gives no size for ``GetOperationsForResource``, ``GetLoadBalancers`` or ``GetInstances``,
so lbproxy uses 200 for operations and ``PAGE_SIZE`` for the rest.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from lbproxy.lightsail.errors import InvalidInputException

T = TypeVar("T")

#: ``GetOperations`` / ``GetOperationsForResource``: "up to a maximum of 200" (the API reference).
OPERATIONS_PAGE_SIZE = 200
#: ``GetLoadBalancers`` / ``GetInstances`` (no size documented).
PAGE_SIZE = 100


def encode_token(after: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode("ascii")


def decode_token(token: str | None) -> Any:
    """Where the previous page stopped (None: start at the beginning)."""
    if token is None:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        return doc["after"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidInputException(f"The page token is not valid: {token}") from None


def page(items: Sequence[T], token: str | None, size: int, key: Callable[[T], Any]) -> tuple[list[T], str | None]:
    """The items after the token's position (``items`` sorted by ``key``), at most ``size``, and the next token."""
    after = decode_token(token)
    if after is not None:
        if not isinstance(after, type(key(items[0]) if items else after)):
            raise InvalidInputException(f"The page token is not valid: {token}")
        items = [i for i in items if key(i) > after]
    chunk = list(items[:size])
    more = len(items) > size
    return chunk, (encode_token(key(chunk[-1])) if more and chunk else None)

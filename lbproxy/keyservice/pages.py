"""KMS pagination, pure: ``Limit`` and ``Marker`` over an ordered list, and the ``Truncated``/``NextMarker``
answer (ListKeys, ListAliases, ListGrants, ListRetirableGrants).

A marker is the base64 of the next item's offset; a marker that is not one is ``InvalidMarkerException``.
"""

from __future__ import annotations

import base64
from typing import Any

from lbproxy.keyservice.errors import InvalidMarkerException


def paginate(items: list[dict[str, Any]], limit: int, marker: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``items`` and the marker of the next page (``None`` on the last one)."""
    start = 0
    if marker is not None:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidMarkerException(f"Invalid marker: {marker}") from None
        if start < 0 or start > len(items):
            raise InvalidMarkerException(f"Invalid marker: {marker}")
    end = start + limit
    nxt = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], nxt


def page(field: str, items: list[dict[str, Any]], limit: int, marker: str | None) -> dict[str, Any]:
    """The List* answer: ``{field: page, "Truncated": ..., "NextMarker": ...}``."""
    items_page, next_marker = paginate(items, limit, marker)
    out: dict[str, Any] = {field: items_page, "Truncated": next_marker is not None}
    if next_marker:
        out["NextMarker"] = next_marker
    return out

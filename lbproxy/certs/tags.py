"""Certificate tags, pure: ACM's rules (no ``aws:`` keys, at most ``MAX_TAGS``) over the ``{key: value}``
map a certificate keeps in its ``meta``; a value may be absent (``None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbproxy.certs.errors import InvalidTagException, TooManyTagsException

MAX_TAGS = 50


def check_tag_key(key: str) -> None:
    if key.lower().startswith("aws:"):
        raise InvalidTagException(
            "One or both of the values that make up the key-value pair is not valid. For example, you cannot "
            "specify a tag value that begins with aws:."
        )


def with_tags(tags: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``tags`` (``[{"Key", "Value"?}]``) added or replaced (AddTagsToCertificate)."""
    out = dict(current)
    for t in tags:
        key = str(t["Key"])
        check_tag_key(key)
        out[key] = t.get("Value")
    if len(out) > MAX_TAGS:
        shown = ", ".join(f"{k}={v or ''}" for k, v in out.items())
        raise TooManyTagsException(f"the TagSet: '{{{shown}}}' contains too many Tags")
    return out


def without_tags(tags: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` less ``tags`` (RemoveTagsFromCertificate): a tag given with a value goes only if the
    value matches."""
    out = dict(current)
    for t in tags:
        k = str(t["Key"])
        check_tag_key(k)
        if k in out and ("Value" not in t or t["Value"] == out[k]):
            del out[k]
    return out


def tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    """The map as ACM lists it: ``[{"Key", "Value"?}]``."""
    return [{"Key": k} if v is None else {"Key": k, "Value": v} for k, v in tags.items()]

"""Certificate tags, pure: ACM's rules over the ``{key: value}`` map a certificate keeps in its ``meta``; a value
may be absent (``None``).

- At most ``MAX_TAGS`` (50) tags on a certificate: ``TooManyTagsException``.
- The ``aws:`` prefix is reserved: a key or value that begins with it is ``InvalidTagException`` ("you cannot
  specify a tag value that begins with aws:", the exception's own documentation; the ACM guide: "you cannot add,
  edit, or delete tags whose key begins with aws:"), adding or removing.
- Keys and values are letters, separators, digits and ``_ . : / = + - @`` (the model's pattern
  ``[\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*``): anything else is a ``ValidationException`` in the model's wording. Lengths
  (key 1-128, value 0-256) are the model's, checked before any of this.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from lbproxy.certs.errors import InvalidTagException, TooManyTagsException, ValidationException

MAX_TAGS = 50
RESERVED_PREFIX = "aws:"
TAG_PATTERN = r"[\p{L}\p{Z}\p{N}_.:\/=+\-@]*"
_PUNCTUATION = frozenset("_.:/=+-@")


def _allowed(text: str) -> bool:
    return all(c in _PUNCTUATION or unicodedata.category(c)[0] in "LZN" for c in text)


def _check(position: int, tag: Mapping[str, Any]) -> str:
    key, value = str(tag["Key"]), tag.get("Value")
    for member, text in (("key", key), ("value", value)):
        if text is not None and not _allowed(str(text)):
            raise ValidationException(
                f"1 validation error detected: Value '{text}' at 'tags.{position}.member.{member}' failed to satisfy "
                f"constraint: Member must satisfy regular expression pattern: {TAG_PATTERN}"
            )
    if key.lower().startswith(RESERVED_PREFIX) or str(value or "").lower().startswith(RESERVED_PREFIX):
        raise InvalidTagException(
            "One or both of the values that make up the key-value pair is not valid. For example, you cannot "
            "specify a tag value that begins with aws:."
        )
    return key


def with_tags(tags: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with ``tags`` (``[{"Key", "Value"?}]``) added or replaced (AddTagsToCertificate)."""
    out = dict(current)
    for position, t in enumerate(tags, start=1):
        out[_check(position, t)] = t.get("Value")
    if len(out) > MAX_TAGS:
        shown = ", ".join(f"{k}={v or ''}" for k, v in out.items())
        raise TooManyTagsException(f"the TagSet: '{{{shown}}}' contains too many Tags")
    return out


def without_tags(tags: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` less ``tags`` (RemoveTagsFromCertificate): a tag given with a value goes only if the
    value matches."""
    out = dict(current)
    for position, t in enumerate(tags, start=1):
        k = _check(position, t)
        if k in out and ("Value" not in t or t["Value"] == out[k]):
            del out[k]
    return out


def tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    """The map as ACM lists it: ``[{"Key", "Value"?}]``."""
    return [{"Key": k} if v is None else {"Key": k, "Value": v} for k, v in tags.items()]

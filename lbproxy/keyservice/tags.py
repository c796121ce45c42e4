"""KMS tags, pure: the rules of CreateKey's ``Tags``, TagResource and UntagResource over a key's tag list
(``[{"TagKey", "TagValue"}]``, in the order the keys were first set).

As KMS: a key has at most ``MAX_TAGS`` (50) tags; a request may not name a tag key twice; tag keys beginning
with ``aws:`` are reserved for AWS (no user adds or removes one); setting an existing key replaces its value;
removing a key the key does not have is not an error. Each is ``TagException`` with the message AWS gives
(as LocalStack's AWS-validated snapshots record them). Lengths (key 1-128, value 0-256) are the model's,
checked before any of this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lbproxy.keyservice.errors import TagException

MAX_TAGS = 50
RESERVED_PREFIX = "aws:"


def _check_key(key: str) -> None:
    if key.lower().startswith(RESERVED_PREFIX):
        raise TagException("Tags beginning with aws: are reserved")


def with_tags(current: Sequence[Mapping[str, str]], new: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """``current`` with ``new`` added or replaced (CreateKey, TagResource)."""
    keys = [t["TagKey"] for t in new]
    if len(set(keys)) != len(keys):
        raise TagException("Duplicate tag keys")
    for key in keys:
        _check_key(key)
    out = {t["TagKey"]: t["TagValue"] for t in current}
    out.update({t["TagKey"]: t["TagValue"] for t in new})
    if len(out) > MAX_TAGS:
        raise TagException("Too many tags")
    return [{"TagKey": k, "TagValue": v} for k, v in out.items()]


def without_tags(current: Sequence[Mapping[str, str]], keys: Sequence[str]) -> list[dict[str, str]]:
    """``current`` less the tags with these keys (UntagResource)."""
    for key in keys:
        _check_key(key)
    gone = set(keys)
    return [dict(t) for t in current if t["TagKey"] not in gone]

"""Tag operations: TagResource, UntagResource, ListResourceTags (a key's tags are the ``tags`` column of
``kms_keys``; the rules are pure, in ``tags``).

Each needs the permission through the key policy (``kms:TagResource``, ...): AWS managed keys, whose policy gives
the account only ``Describe*``, ``Get*``, ``List*`` and ``RevokeGrant``, cannot be tagged. A key pending deletion
takes no tag change (``KMSInvalidStateException``). ListResourceTags pages with ``Limit`` (at most 50 a page, the
operation's documented maximum and its default) and ``Marker``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import pages, tags
from lbproxy.keyservice.keys import Key, refuse_pending_deletion
from lbproxy.keyservice.keystore import KeyStore

#: ListResourceTags' page size: "between 1 and 50, inclusive ... defaults to 50" (its documentation).
MAX_TAGS_PAGE = 50


class TagOperations(KeyStore):
    def _set_tags(self, key: Key, new: list[dict[str, str]]) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET tags = ? WHERE key_id = ?", (json.dumps(new), key.key_id))

    def tag_resource(self, principal: Principal, key_id: str, new: Sequence[Mapping[str, str]]) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "TagResource")
        refuse_pending_deletion(key)
        self._set_tags(key, tags.with_tags(key.tags, new))

    def untag_resource(self, principal: Principal, key_id: str, keys: Sequence[str]) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "UntagResource")
        refuse_pending_deletion(key)
        self._set_tags(key, tags.without_tags(key.tags, keys))

    def list_resource_tags(
        self, principal: Principal, key_id: str, limit: int = MAX_TAGS_PAGE, marker: str | None = None
    ) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "ListResourceTags")
        return pages.page("Tags", [dict(t) for t in key.tags], min(limit, MAX_TAGS_PAGE), marker)

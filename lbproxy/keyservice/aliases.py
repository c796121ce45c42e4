"""Aliases: CreateAlias, DeleteAlias, ListAliases (rows of ``kms_aliases``; the name rules are in ``names``).

Creating or deleting an alias takes permission on the alias (a user's IAM permissions) and on the key
(its key policy). AWS managed keys' aliases (``alias/aws/...``) are reserved, and an AWS managed key takes
no customer alias.
"""

from __future__ import annotations

from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import names, pages
from lbproxy.keyservice.errors import AlreadyExistsException, NotFoundException
from lbproxy.keyservice.keys import refuse_pending_deletion, utc
from lbproxy.keyservice.keystore import KeyStore


class AliasOperations(KeyStore):
    def create_alias(self, principal: Principal, alias_name: str, target_key_id: str) -> None:
        names.check_alias_name(alias_name)
        self._require_iam(principal, "CreateAlias", self.alias_arn(alias_name))
        key = self._resolve(target_key_id)
        self._authorize(principal, key, "CreateAlias")
        if key.key_manager == "AWS":
            raise NotFoundException(f"Cannot create an alias for AWS managed key {key.arn}")
        refuse_pending_deletion(key)
        now = self._clock.time()
        with self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM kms_aliases WHERE name = ?", (alias_name,)).fetchone():
                raise AlreadyExistsException(f"An alias with the name {self.alias_arn(alias_name)} already exists")
            self._insert_alias(tx, alias_name, key.key_id, now)

    def delete_alias(self, principal: Principal, alias_name: str) -> None:
        names.refuse_reserved_alias(alias_name)
        self._require_iam(principal, "DeleteAlias", self.alias_arn(alias_name))
        row = self._db.query_one("SELECT key_id FROM kms_aliases WHERE name = ?", (alias_name,))
        if row is None:
            raise NotFoundException(f"Alias {self.alias_arn(alias_name)} is not found.")
        key = self._resolve(row["key_id"])
        self._authorize(principal, key, "DeleteAlias")
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM kms_aliases WHERE name = ?", (alias_name,))

    def list_aliases(
        self, principal: Principal, key_id: str | None = None, limit: int = 100, marker: str | None = None
    ) -> dict[str, Any]:
        self._require_iam(principal, "ListAliases")
        if key_id is not None:
            key = self._resolve(key_id)
            rows = self._db.query("SELECT * FROM kms_aliases WHERE key_id = ? ORDER BY name", (key.key_id,))
        else:
            rows = self._db.query("SELECT * FROM kms_aliases ORDER BY name")
        items = [
            {
                "AliasName": r["name"],
                "AliasArn": self.alias_arn(r["name"]),
                "TargetKeyId": r["key_id"],
                "CreationDate": utc(r["creation_date"]),
                "LastUpdatedDate": utc(r["last_updated"]),
            }
            for r in rows
        ]
        return pages.page("Aliases", items, limit, marker)

"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases (rows of ``kms_aliases``; the name rules are in
``names``).

Creating, moving or deleting an alias takes permission on the alias (a user's IAM permissions) and on the key
(its key policy; UpdateAlias: on the key it leaves and the key it moves to). AWS managed keys' aliases
(``alias/aws/...``) are reserved, and an AWS managed key takes no customer alias. UpdateAlias moves an alias only
to a key of the same type (symmetric, HMAC or asymmetric) with the same key usage, as the model documents.
"""

from __future__ import annotations

from typing import Any

from lbproxy.core.principals import Principal
from lbproxy.keyservice import keyspecs, names, pages
from lbproxy.keyservice.errors import AlreadyExistsException, NotFoundException, ValidationException
from lbproxy.keyservice.keys import Key, refuse_pending_deletion, utc
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

    def update_alias(self, principal: Principal, alias_name: str, target_key_id: str) -> None:
        names.refuse_reserved_alias(alias_name)
        self._require_iam(principal, "UpdateAlias", self.alias_arn(alias_name))
        row = self._db.query_one("SELECT key_id FROM kms_aliases WHERE name = ?", (alias_name,))
        if row is None:
            raise NotFoundException(f"Alias {self.alias_arn(alias_name)} is not found.")
        current = self._resolve(row["key_id"])
        target = self._resolve(target_key_id)
        self._authorize(principal, current, "UpdateAlias")
        self._authorize(principal, target, "UpdateAlias")
        if target.key_manager == "AWS":
            raise NotFoundException(f"Cannot associate an alias with AWS managed key {target.arn}")
        refuse_pending_deletion(target)
        if _key_type(target) != _key_type(current) or target.key_usage != current.key_usage:
            raise ValidationException(
                f"{target.arn} is a {_key_type(target)} key with key usage {target.key_usage}; the alias "
                f"{alias_name} points at a {_key_type(current)} key with key usage {current.key_usage}. The new "
                "target must be the same type of KMS key, with the same key usage."
            )
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_aliases SET key_id = ?, last_updated = ? WHERE name = ?",
                (target.key_id, self._clock.time(), alias_name),
            )

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


def _key_type(key: Key) -> str:
    """What UpdateAlias compares: symmetric, HMAC or asymmetric (whatever the key spec)."""
    return {"symmetric": "symmetric", "hmac": "HMAC"}.get(keyspecs.SPECS[key.key_spec].family, "asymmetric")

"""``KeyStore``: the key service's tables and what every operation does first.

The tables (``SCHEMA``): ``kms_keys`` (one row per key), ``kms_key_material`` (a key's material, one
version per rotation, wrapped under the root key: 32 random bytes for a symmetric key, the spec's length for an
HMAC key, a PKCS#8 DER private key for an asymmetric one), ``kms_public_keys`` (an asymmetric key's public key),
``kms_aliases`` and ``kms_grants``. The steps every
operation shares live here: resolve an identifier to its ``Key`` (``_resolve``), authorize the caller
through the key policy or a grant (``_authorize``; the decisions themselves are pure, in ``policy`` and
``grants``), unwrap the material for one operation and wipe it after (``_material``), publish the event a
change causes to the key's grantees (``_publish_key_event``).

The operation classes (``management``, ``aliases``, ``crypto``, ``keypairs``, ``signing``, ``macs``,
``grantops``, ``tagops``, ``schedule``) build on this one; ``service.KeyService`` is all of them together.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from lbproxy.contract.vocabulary import ACM_KEY_ALIAS
from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import ACCOUNT_ID, ACM_SERVICE_PRINCIPAL, Principal
from lbproxy.core.store import Database
from lbproxy.keyservice import asymmetric, envelope, keyspecs, names
from lbproxy.keyservice.errors import (
    InvalidCiphertextException,
    NotFoundException,
    access_denied,
    explicitly_denied,
)
from lbproxy.keyservice.grants import Grant, grant_allows
from lbproxy.keyservice.keys import (
    ACM_KEY_DESCRIPTION,
    DAY,
    DEFAULT_ROTATION_DAYS,
    ENABLED,
    SYMMETRIC_DEFAULT,
    Key,
    check_usable,
    utc,
)
from lbproxy.keyservice.keyspecs import ENCRYPT_DECRYPT
from lbproxy.keyservice.policy import CONTEXT_KEY_PREFIX, Caller, acm_managed_key_policy, evaluate

SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_keys (
    key_id TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    key_manager TEXT NOT NULL,
    state TEXT NOT NULL,
    creation_date REAL NOT NULL,
    deletion_date REAL,
    pending_window INTEGER,
    policy TEXT NOT NULL,
    rotation_enabled INTEGER NOT NULL DEFAULT 0,
    rotation_period INTEGER,
    next_rotation REAL,
    tags TEXT NOT NULL DEFAULT '[]',
    current_version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS kms_key_material (
    key_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS kms_public_keys (
    key_id TEXT PRIMARY KEY,
    der BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS kms_aliases (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    creation_date REAL NOT NULL,
    last_updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kms_grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    name TEXT NOT NULL,
    grantee TEXT NOT NULL,
    retiring TEXT,
    operations TEXT NOT NULL,
    constraints TEXT,
    creation_date REAL NOT NULL,
    issuing_account TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    seq INTEGER NOT NULL
);
"""


def caller(principal: Principal) -> Caller:
    return Caller(principal.arn, principal.kind)


def policy_values(principal: Principal) -> dict[str, str | list[str]]:
    """The condition keys every key-policy evaluation knows about the caller."""
    return {"kms:CallerAccount": ACCOUNT_ID, "aws:PrincipalArn": principal.arn}


class KeyStore:
    """The tables, the root key, and the steps every KMS operation shares (see the module docstring)."""

    region: str
    _db: Database
    _events: EventLog
    _clock: Clock
    _root: bytearray

    # ---------------------------------------------------------------- naming

    def arn_for(self, key_id: str) -> str:
        return names.key_arn(self.region, key_id)

    def alias_arn(self, name: str) -> str:
        return names.alias_arn(self.region, name)

    def key_arn(self, key_id: str) -> str:
        """Resolve any key identifier to the key's ARN, without authorization."""
        return self._resolve(key_id).arn

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        envelope.wipe(self._root)

    def _ensure_acm_key(self) -> None:
        """The AWS managed key ``alias/aws/acm`` exists from the first start on."""
        if self._db.query_one("SELECT key_id FROM kms_aliases WHERE name = ?", (ACM_KEY_ALIAS,)):
            return
        with self._db.transaction() as tx:
            key_id = self._insert_key(
                description=ACM_KEY_DESCRIPTION,
                policy=acm_managed_key_policy(ACM_SERVICE_PRINCIPAL),
                key_manager="AWS",
                tags=[],
                rotation_enabled=True,
            )
            self._insert_alias(tx, ACM_KEY_ALIAS, key_id, self._clock.time())

    # ---------------------------------------------------------------- rows

    def _insert_key(
        self,
        description: str,
        policy: dict[str, Any],
        key_manager: str,
        tags: list[dict[str, str]],
        rotation_enabled: bool = False,
        key_spec: str = SYMMETRIC_DEFAULT,
        key_usage: str = ENCRYPT_DECRYPT,
    ) -> str:
        key_id = str(uuid.uuid4())
        now = self._clock.time()
        wrapped, public = self._new_material(key_id, 1, key_spec)
        next_rotation = now + DEFAULT_ROTATION_DAYS * DAY if rotation_enabled else None
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO kms_keys (key_id, description, key_usage, key_spec, origin, key_manager, state,"
                " creation_date, policy, rotation_enabled, rotation_period, next_rotation, tags,"
                " current_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
                (
                    key_id,
                    description,
                    key_usage,
                    key_spec,
                    "AWS_KMS",
                    key_manager,
                    ENABLED,
                    now,
                    json.dumps(policy, indent=2),
                    int(rotation_enabled),
                    DEFAULT_ROTATION_DAYS if rotation_enabled else None,
                    next_rotation,
                    json.dumps(tags),
                ),
            )
            self._insert_material(tx, key_id, 1, wrapped, now)
            if public is not None:
                tx.execute("INSERT INTO kms_public_keys (key_id, der) VALUES (?,?)", (key_id, public))
        return key_id

    def _new_material(self, key_id: str, version: int, key_spec: str = SYMMETRIC_DEFAULT) -> tuple[bytes, bytes | None]:
        """Fresh material for ``version`` of a key, wrapped under the root key (the plaintext is wiped), and the
        public key of an asymmetric key."""
        spec = keyspecs.SPECS[key_spec]
        if spec.family in ("symmetric", "hmac"):
            assert isinstance(spec.size, int)
            material, public = envelope.random_bytes(spec.size), None
        else:
            material, public = asymmetric.new_key_pair(key_spec)
        try:
            return envelope.wrap_material(self._root, key_id, version, material), public
        finally:
            envelope.wipe(material)

    @staticmethod
    def _insert_material(tx: sqlite3.Connection, key_id: str, version: int, wrapped: bytes, now: float) -> None:
        tx.execute(
            "INSERT INTO kms_key_material (key_id, version, wrapped, created) VALUES (?,?,?,?)",
            (key_id, version, wrapped, now),
        )

    @staticmethod
    def _insert_alias(tx: sqlite3.Connection, name: str, key_id: str, now: float) -> None:
        tx.execute(
            "INSERT INTO kms_aliases (name, key_id, creation_date, last_updated) VALUES (?,?,?,?)",
            (name, key_id, now, now),
        )

    def _row_to_key(self, row: sqlite3.Row) -> Key:
        return Key(
            key_id=row["key_id"],
            arn=self.arn_for(row["key_id"]),
            description=row["description"],
            key_usage=row["key_usage"],
            key_spec=row["key_spec"],
            origin=row["origin"],
            key_manager=row["key_manager"],
            state=row["state"],
            creation_date=utc(row["creation_date"]),  # type: ignore[arg-type]
            deletion_date=utc(row["deletion_date"]),
            pending_window=row["pending_window"],
            policy=json.loads(row["policy"]),
            policy_text=row["policy"],
            rotation_enabled=bool(row["rotation_enabled"]),
            rotation_period=row["rotation_period"],
            next_rotation=utc(row["next_rotation"]),
            tags=json.loads(row["tags"]),
            current_version=row["current_version"],
        )

    def _row_to_grant(self, r: sqlite3.Row) -> Grant:
        return Grant(
            grant_id=r["grant_id"],
            key_id=r["key_id"],
            name=r["name"],
            grantee=r["grantee"],
            retiring=r["retiring"],
            operations=tuple(json.loads(r["operations"])),
            constraints=json.loads(r["constraints"]) if r["constraints"] else None,
            creation_date=utc(r["creation_date"]),  # type: ignore[arg-type]
            issuing_account=r["issuing_account"],
            token=r["token"],
        )

    # ---------------------------------------------------------------- lookups

    def _resolve(self, ident: str) -> Key:
        """The key a key id, key ARN, alias name or alias ARN names (``NotFoundException`` otherwise)."""
        name = names.identifier_name(self.region, ident)
        if names.is_alias(name):
            row = self._db.query_one("SELECT key_id FROM kms_aliases WHERE name = ?", (name,))
            if row is None:
                raise NotFoundException(f"Alias {self.alias_arn(name)} is not found.")
            name = row["key_id"]
        if not names.is_key_id(name):
            raise NotFoundException(f"Invalid keyId '{ident}'")
        row = self._db.query_one("SELECT * FROM kms_keys WHERE key_id = ?", (name,))
        if row is None:
            raise NotFoundException(f"Key '{self.arn_for(name)}' does not exist")
        return self._row_to_key(row)

    def _grants_for(self, key_id: str) -> list[Grant]:
        rows = self._db.query("SELECT * FROM kms_grants WHERE key_id = ? ORDER BY seq", (key_id,))
        return [self._row_to_grant(r) for r in rows]

    # ---------------------------------------------------------------- authorization

    def _authorize(
        self,
        principal: Principal,
        key: Key,
        action: str,
        context: Mapping[str, str] | None = None,
        audit: dict[str, Any] | None = None,
    ) -> Grant | None:
        """Allow through the key policy (returns None) or a grant (returns it); else AccessDenied."""
        values = policy_values(principal)
        for k, v in (context or {}).items():
            values[CONTEXT_KEY_PREFIX + k] = v
        decision = evaluate(key.policy, caller(principal), action, key.arn, values)
        if decision == "deny":
            raise explicitly_denied(principal.arn, action, key.arn)
        if decision == "allow":
            return None
        for grant in self._grants_for(key.key_id):
            if grant_allows(grant, principal.arn, action, context or {}):
                if audit is not None:
                    audit.setdefault("additionalEventData", {})["grantId"] = grant.grant_id
                return grant
        raise access_denied(principal.arn, action, key.arn)

    def _require_iam(self, principal: Principal, action: str, resource: str = "*") -> None:
        """Account-wide operations (CreateKey, ListKeys, ...): users only (roles have no IAM permissions)."""
        if not caller(principal).has_iam_permissions:
            raise access_denied(principal.arn, action, resource, why="identity-based")

    def _usable(self, key: Key) -> None:
        check_usable(key)

    # ---------------------------------------------------------------- material

    @contextmanager
    def _material(self, key: Key, version: int | None = None) -> Iterator[tuple[bytearray, int]]:
        """A version of the key's material (the current one by default), wiped when the block ends."""
        v = version or key.current_version
        row = self._db.query_one(
            "SELECT wrapped FROM kms_key_material WHERE key_id = ? AND version = ?", (key.key_id, v)
        )
        if row is None:
            raise InvalidCiphertextException("")
        material = envelope.unwrap_material(self._root, key.key_id, v, row["wrapped"])
        try:
            yield material, v
        finally:
            envelope.wipe(material)

    def _public_key(self, key: Key) -> bytes:
        """An asymmetric key's public key (DER SubjectPublicKeyInfo)."""
        row = self._db.query_one("SELECT der FROM kms_public_keys WHERE key_id = ?", (key.key_id,))
        if row is None:
            raise InvalidCiphertextException("")
        return bytes(row["der"])

    # ---------------------------------------------------------------- events

    def _publish_key_event(self, event: str, key: Key, state: str, **extra: Any) -> None:
        """A change of the key, addressed to everyone who holds or may retire a grant on it."""
        audience = set()
        for g in self._grants_for(key.key_id):
            audience.add(g.grantee)
            if g.retiring:
                audience.add(g.retiring)
        self._events.publish(event, {"keyId": key.key_id, "keyArn": key.arn, "keyState": state, **extra}, audience)

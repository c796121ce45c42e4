"""``KeyService``: KMS operations with authorization on every call, state in SQLite, events.

Every operation (1) resolves the key (id, ARN, alias name or alias ARN), (2) authorizes the caller
through the key policy or a grant (``policy``, ``grants``), (3) checks the key's state, (4) acts inside
one database transaction that also appends the event it causes. Master key material is unwrapped
from the root key into a ``bytearray`` for the length of one operation and wiped after it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbproxy.contract.vocabulary import (
    ACM_KEY_ALIAS,
    GRANT_CREATED,
    GRANT_RETIRED,
    GRANT_REVOKED,
    KEY_DELETED,
    KEY_DISABLED,
    KEY_ENABLED,
    KEY_PENDING_DELETION,
    KEY_ROTATED,
)
from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import ACCOUNT_ID, ACM_SERVICE_PRINCIPAL, Principal, account_root_arn
from lbproxy.core.store import Database
from lbproxy.keyservice import envelope
from lbproxy.keyservice.errors import (
    AccessDeniedException,
    AlreadyExistsException,
    DisabledException,
    DryRunOperationException,
    IncorrectKeyException,
    InvalidAliasNameException,
    InvalidCiphertextException,
    InvalidGrantIdException,
    InvalidGrantTokenException,
    InvalidMarkerException,
    KMSInvalidStateException,
    MalformedPolicyDocumentException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from lbproxy.keyservice.grants import (
    Grant,
    can_retire,
    child_is_as_constrained,
    grant_allows,
    same_parameters,
)
from lbproxy.keyservice.policy import (
    CONTEXT_KEY_PREFIX,
    Caller,
    PolicyError,
    acm_managed_key_policy,
    default_key_policy,
    evaluate,
    parse_policy,
)
from lbproxy.keyservice.rootkey import load_root_key

ACM_KEY_DESCRIPTION = "Default key that protects my ACM private keys when no other key is defined"
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
DEFAULT_ROTATION_DAYS = 365
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9:/_-]+$")
_GRANT_NAME_RE = re.compile(r"^[a-zA-Z0-9:/_-]+$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

_SCHEMA = """
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


@dataclass(slots=True)
class DataKey:
    plaintext: bytearray
    ciphertext_blob: bytes
    key_arn: str


@dataclass(slots=True)
class Decrypted:
    plaintext: bytearray
    key_arn: str
    grant_id: str | None


@dataclass(frozen=True, slots=True)
class Key:
    key_id: str
    arn: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str
    state: str
    creation_date: dt.datetime
    deletion_date: dt.datetime | None
    pending_window: int | None
    policy: dict[str, Any]
    policy_text: str
    rotation_enabled: bool
    rotation_period: int | None
    next_rotation: dt.datetime | None
    tags: list[dict[str, str]]
    current_version: int


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _caller(principal: Principal) -> Caller:
    return Caller(principal.arn, principal.kind)


def _denied(principal: Principal, action: str, resource: str, why: str = "resource-based") -> AccessDeniedException:
    return AccessDeniedException(
        f"User: {principal.arn} is not authorized to perform: kms:{action} on resource: {resource} "
        f"because no {why} policy allows the kms:{action} action"
    )


class KeyService:
    def __init__(self, db: Database, events: EventLog, clock: Clock, data_dir: Path, region: str) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self.region = region
        self._root = load_root_key(data_dir)
        db.ensure_schema(_SCHEMA)
        self._ensure_acm_key()

    # ---------------------------------------------------------------- naming

    def arn_for(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:key/{key_id}"

    def alias_arn(self, name: str) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:{name}"

    def key_arn(self, key_id: str) -> str:
        """Resolve any key identifier to the key's ARN, without authorization."""
        return self._resolve(key_id).arn

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        envelope.wipe(self._root)

    def _ensure_acm_key(self) -> None:
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
            now = self._clock.time()
            tx.execute("INSERT INTO kms_aliases VALUES (?,?,?,?)", (ACM_KEY_ALIAS, key_id, now, now))

    def _insert_key(
        self,
        description: str,
        policy: dict[str, Any],
        key_manager: str,
        tags: list[dict[str, str]],
        rotation_enabled: bool = False,
    ) -> str:
        key_id = str(uuid.uuid4())
        now = self._clock.time()
        material = envelope.random_bytes(32)
        try:
            wrapped = envelope.wrap_material(self._root, key_id, 1, material)
        finally:
            envelope.wipe(material)
        next_rotation = now + DEFAULT_ROTATION_DAYS * 86400 if rotation_enabled else None
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO kms_keys (key_id, description, key_usage, key_spec, origin, key_manager, state,"
                " creation_date, policy, rotation_enabled, rotation_period, next_rotation, tags,"
                " current_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
                (
                    key_id,
                    description,
                    "ENCRYPT_DECRYPT",
                    SYMMETRIC_DEFAULT,
                    "AWS_KMS",
                    key_manager,
                    "Enabled",
                    now,
                    json.dumps(policy, indent=2),
                    int(rotation_enabled),
                    DEFAULT_ROTATION_DAYS if rotation_enabled else None,
                    next_rotation,
                    json.dumps(tags),
                ),
            )
            tx.execute("INSERT INTO kms_key_material VALUES (?,?,?,?)", (key_id, 1, wrapped, now))
        return key_id

    # ---------------------------------------------------------------- lookups

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
            creation_date=_ts(row["creation_date"]),  # type: ignore[arg-type]
            deletion_date=_ts(row["deletion_date"]),
            pending_window=row["pending_window"],
            policy=json.loads(row["policy"]),
            policy_text=row["policy"],
            rotation_enabled=bool(row["rotation_enabled"]),
            rotation_period=row["rotation_period"],
            next_rotation=_ts(row["next_rotation"]),
            tags=json.loads(row["tags"]),
            current_version=row["current_version"],
        )

    def _resolve(self, ident: str) -> Key:
        prefix = f"arn:aws:kms:{self.region}:{ACCOUNT_ID}:"
        name = ident
        if ident.startswith("arn:"):
            if not ident.startswith(prefix):
                raise NotFoundException(f"Invalid arn {ident}")
            name = ident[len(prefix) :]
            if name.startswith("key/"):
                name = name[4:]
            elif not name.startswith("alias/"):
                raise NotFoundException(f"Invalid arn {ident}")
        if name.startswith("alias/"):
            row = self._db.query_one("SELECT key_id FROM kms_aliases WHERE name = ?", (name,))
            if row is None:
                raise NotFoundException(f"Alias {self.alias_arn(name)} is not found.")
            name = row["key_id"]
        if not _UUID_RE.match(name):
            raise NotFoundException(f"Invalid keyId '{ident}'")
        row = self._db.query_one("SELECT * FROM kms_keys WHERE key_id = ?", (name,))
        if row is None:
            raise NotFoundException(f"Key '{self.arn_for(name)}' does not exist")
        return self._row_to_key(row)

    def _grants_for(self, key_id: str) -> list[Grant]:
        rows = self._db.query("SELECT * FROM kms_grants WHERE key_id = ? ORDER BY seq", (key_id,))
        return [self._row_to_grant(r) for r in rows]

    def _row_to_grant(self, r: sqlite3.Row) -> Grant:
        return Grant(
            grant_id=r["grant_id"],
            key_id=r["key_id"],
            name=r["name"],
            grantee=r["grantee"],
            retiring=r["retiring"],
            operations=tuple(json.loads(r["operations"])),
            constraints=json.loads(r["constraints"]) if r["constraints"] else None,
            creation_date=_ts(r["creation_date"]),  # type: ignore[arg-type]
            issuing_account=r["issuing_account"],
            token=r["token"],
        )

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
        values: dict[str, str | list[str]] = {
            "kms:CallerAccount": ACCOUNT_ID,
            "aws:PrincipalArn": principal.arn,
        }
        for k, v in (context or {}).items():
            values[CONTEXT_KEY_PREFIX + k] = v
        decision = evaluate(key.policy, _caller(principal), action, key.arn, values)
        if decision == "deny":
            raise AccessDeniedException(
                f"User: {principal.arn} is not authorized to perform: kms:{action} on resource: {key.arn} "
                f"with an explicit deny in a resource-based policy"
            )
        if decision == "allow":
            return None
        for grant in self._grants_for(key.key_id):
            if grant_allows(grant, principal.arn, action, context or {}):
                if audit is not None:
                    audit.setdefault("additionalEventData", {})["grantId"] = grant.grant_id
                return grant
        raise _denied(principal, action, key.arn)

    def _require_iam(self, principal: Principal, action: str, resource: str = "*") -> None:
        if not Caller(principal.arn, principal.kind).has_iam_permissions:
            raise _denied(principal, action, resource, why="identity-based")

    def _usable(self, key: Key) -> None:
        if key.state == "Disabled":
            raise DisabledException(f"{key.arn} is disabled.")
        if key.state == "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        if key.state != "Enabled":
            raise KMSInvalidStateException(f"{key.arn} is {key.state}.")

    @contextmanager
    def _material(self, key: Key, version: int | None = None) -> Iterator[tuple[bytearray, int]]:
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

    # ---------------------------------------------------------------- key management

    def create_key(
        self,
        principal: Principal,
        description: str = "",
        policy: str | None = None,
        key_usage: str = "ENCRYPT_DECRYPT",
        key_spec: str = SYMMETRIC_DEFAULT,
        origin: str = "AWS_KMS",
        tags: list[dict[str, str]] | None = None,
        bypass_lockout_check: bool = False,
        multi_region: bool = False,
    ) -> dict[str, Any]:
        self._require_iam(principal, "CreateKey")
        if key_spec != SYMMETRIC_DEFAULT or key_usage != "ENCRYPT_DECRYPT":
            raise UnsupportedOperationException(
                f"lbproxy's key service supports KeySpec SYMMETRIC_DEFAULT with KeyUsage ENCRYPT_DECRYPT only, "
                f"not {key_spec}/{key_usage}."
            )
        if origin != "AWS_KMS":
            raise UnsupportedOperationException(f"Origin {origin} is not supported; use AWS_KMS.")
        if multi_region:
            raise UnsupportedOperationException("Multi-Region keys are not supported.")
        doc = default_key_policy()
        if policy is not None:
            doc = self._checked_policy(policy, principal, bypass_lockout_check)
        key_id = self._insert_key(description, doc, "CUSTOMER", tags or [])
        return self._metadata(self._resolve(key_id))

    def _checked_policy(self, text: str, principal: Principal, bypass: bool) -> dict[str, Any]:
        try:
            doc = parse_policy(text)
        except PolicyError as exc:
            raise MalformedPolicyDocumentException(str(exc)) from None
        if (
            not bypass
            and evaluate(
                doc,
                _caller(principal),
                "PutKeyPolicy",
                "*",
                {
                    "kms:CallerAccount": ACCOUNT_ID,
                    "aws:PrincipalArn": principal.arn,
                },
            )
            != "allow"
        ):
            raise MalformedPolicyDocumentException(
                "The new key policy will not allow you to update the key policy in the future."
            )
        return doc

    def _metadata(self, key: Key) -> dict[str, Any]:
        md: dict[str, Any] = {
            "AWSAccountId": ACCOUNT_ID,
            "KeyId": key.key_id,
            "Arn": key.arn,
            "CreationDate": key.creation_date,
            "Enabled": key.state == "Enabled",
            "Description": key.description,
            "KeyUsage": key.key_usage,
            "KeyState": key.state,
            "Origin": key.origin,
            "KeyManager": key.key_manager,
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
            "MultiRegion": False,
        }
        if key.state == "PendingDeletion":
            md["DeletionDate"] = key.deletion_date
            md["PendingDeletionWindowInDays"] = key.pending_window
        return md

    def describe_key(self, principal: Principal, key_id: str, audit: dict[str, Any] | None = None) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "DescribeKey", audit=audit)
        return self._metadata(key)

    def list_keys(self, principal: Principal, limit: int = 100, marker: str | None = None) -> dict[str, Any]:
        self._require_iam(principal, "ListKeys")
        rows = self._db.query("SELECT key_id FROM kms_keys ORDER BY creation_date, key_id")
        items = [{"KeyId": r["key_id"], "KeyArn": self.arn_for(r["key_id"])} for r in rows]
        page, next_marker = _paginate(items, limit, marker)
        out: dict[str, Any] = {"Keys": page, "Truncated": next_marker is not None}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def _set_state(
        self, principal: Principal, key_id: str, action: str, new_state: str, event: str, **fields: Any
    ) -> Key:
        key = self._resolve(key_id)
        self._authorize(principal, key, action)
        if key.state == "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        with self._db.transaction() as tx:
            sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in fields])
            tx.execute(f"UPDATE kms_keys SET {sets} WHERE key_id = ?", (new_state, *fields.values(), key.key_id))
            if key.state != new_state:
                self._publish_key_event(event, key, new_state)
        return self._resolve(key.key_id)

    def _publish_key_event(self, event: str, key: Key, state: str, **extra: Any) -> None:
        audience = set()
        for g in self._grants_for(key.key_id):
            audience.add(g.grantee)
            if g.retiring:
                audience.add(g.retiring)
        self._events.publish(event, {"keyId": key.key_id, "keyArn": key.arn, "keyState": state, **extra}, audience)

    def enable_key(self, principal: Principal, key_id: str) -> None:
        self._set_state(principal, key_id, "EnableKey", "Enabled", KEY_ENABLED)

    def disable_key(self, principal: Principal, key_id: str) -> None:
        self._set_state(principal, key_id, "DisableKey", "Disabled", KEY_DISABLED)

    def schedule_key_deletion(self, principal: Principal, key_id: str, pending_days: int = 30) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "ScheduleKeyDeletion")
        if key.state == "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        when = self._clock.time() + pending_days * 86400
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET state = 'PendingDeletion', deletion_date = ?, pending_window = ? WHERE key_id = ?",
                (when, pending_days, key.key_id),
            )
            self._publish_key_event(KEY_PENDING_DELETION, key, "PendingDeletion", deletionDate=when)
        return {
            "KeyId": key.arn,
            "DeletionDate": _ts(when),
            "KeyState": "PendingDeletion",
            "PendingWindowInDays": pending_days,
        }

    def cancel_key_deletion(self, principal: Principal, key_id: str) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "CancelKeyDeletion")
        if key.state != "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET state = 'Disabled', deletion_date = NULL, pending_window = NULL WHERE key_id = ?",
                (key.key_id,),
            )
            self._publish_key_event("key.deletion_cancelled", key, "Disabled")
        return {"KeyId": key.arn}

    def get_key_policy(self, principal: Principal, key_id: str, policy_name: str = "default") -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "GetKeyPolicy")
        if policy_name != "default":
            raise NotFoundException(f"Policy {policy_name} not found for key {key.arn}")
        return {"Policy": key.policy_text, "PolicyName": "default"}

    def put_key_policy(
        self,
        principal: Principal,
        key_id: str,
        policy: str,
        policy_name: str = "default",
        bypass_lockout_check: bool = False,
    ) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "PutKeyPolicy")
        if policy_name != "default":
            raise NotFoundException(f"Policy {policy_name} not found for key {key.arn}")
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; its policy cannot be changed.")
        if key.state == "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        doc = self._checked_policy(policy, principal, bypass_lockout_check)
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET policy = ? WHERE key_id = ?", (json.dumps(doc, indent=2), key.key_id))
            self._publish_key_event("key.policy_changed", key, key.state)

    def enable_key_rotation(self, principal: Principal, key_id: str, period_days: int | None = None) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "EnableKeyRotation")
        self._usable(key)
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; it rotates every year.")
        period = period_days or key.rotation_period or DEFAULT_ROTATION_DAYS
        base = (
            key.next_rotation.timestamp()
            if key.rotation_enabled and key.next_rotation and not period_days
            else self._clock.time() + period * 86400
        )
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE kms_keys SET rotation_enabled = 1, rotation_period = ?, next_rotation = ? WHERE key_id = ?",
                (period, base, key.key_id),
            )

    def disable_key_rotation(self, principal: Principal, key_id: str) -> None:
        key = self._resolve(key_id)
        self._authorize(principal, key, "DisableKeyRotation")
        self._usable(key)
        if key.key_manager == "AWS":
            raise UnsupportedOperationException(f"{key.arn} is an AWS managed key; its rotation cannot be changed.")
        with self._db.transaction() as tx:
            tx.execute("UPDATE kms_keys SET rotation_enabled = 0, next_rotation = NULL WHERE key_id = ?", (key.key_id,))

    def get_key_rotation_status(self, principal: Principal, key_id: str) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "GetKeyRotationStatus")
        out: dict[str, Any] = {"KeyRotationEnabled": key.rotation_enabled, "KeyId": key.arn}
        if key.rotation_enabled:
            out["RotationPeriodInDays"] = key.rotation_period
            out["NextRotationDate"] = key.next_rotation
        return out

    # ---------------------------------------------------------------- aliases

    def create_alias(self, principal: Principal, alias_name: str, target_key_id: str) -> None:
        self._check_alias_name(alias_name)
        self._require_iam(principal, "CreateAlias", self.alias_arn(alias_name))
        key = self._resolve(target_key_id)
        self._authorize(principal, key, "CreateAlias")
        if key.key_manager == "AWS":
            raise NotFoundException(f"Cannot create an alias for AWS managed key {key.arn}")
        if key.state == "PendingDeletion":
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        now = self._clock.time()
        with self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM kms_aliases WHERE name = ?", (alias_name,)).fetchone():
                raise AlreadyExistsException(f"An alias with the name {self.alias_arn(alias_name)} already exists")
            tx.execute("INSERT INTO kms_aliases VALUES (?,?,?,?)", (alias_name, key.key_id, now, now))

    def _check_alias_name(self, alias_name: str) -> None:
        if not alias_name.startswith("alias/"):
            raise InvalidAliasNameException('Alias must start with the prefix "alias/".')
        if alias_name.startswith("alias/aws/"):
            raise InvalidAliasNameException('Alias must not begin with the reserved prefix "alias/aws/".')
        if not _ALIAS_RE.match(alias_name) or len(alias_name) > 256:
            raise InvalidAliasNameException(
                f"Alias {alias_name} contains characters other than alphanumerics, '/', '_', '-' and ':'."
            )

    def delete_alias(self, principal: Principal, alias_name: str) -> None:
        if alias_name.startswith("alias/aws/"):
            raise InvalidAliasNameException('Alias must not begin with the reserved prefix "alias/aws/".')
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
                "CreationDate": _ts(r["creation_date"]),
                "LastUpdatedDate": _ts(r["last_updated"]),
            }
            for r in rows
        ]
        page, next_marker = _paginate(items, limit, marker)
        out: dict[str, Any] = {"Aliases": page, "Truncated": next_marker is not None}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    # ---------------------------------------------------------------- cryptography

    def encrypt(
        self,
        principal: Principal,
        key_id: str,
        plaintext: bytes | bytearray,
        context: Mapping[str, str] | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> bytes:
        key = self._resolve(key_id)
        self._authorize(principal, key, "Encrypt", context, audit)
        self._usable(key)
        _dry(dry_run)
        with self._material(key) as (material, version):
            return envelope.seal(material, key.key_id, version, plaintext, context)

    def generate_data_key(
        self,
        principal: Principal,
        key_id: str,
        context: Mapping[str, str] | None = None,
        *,
        number_of_bytes: int = 32,
        audit: dict[str, Any] | None = None,
        action: str = "GenerateDataKey",
        dry_run: bool = False,
    ) -> DataKey:
        key = self._resolve(key_id)
        self._authorize(principal, key, action, context, audit)
        self._usable(key)
        _dry(dry_run)
        plaintext = envelope.random_bytes(number_of_bytes)
        with self._material(key) as (material, version):
            blob = envelope.seal(material, key.key_id, version, plaintext, context)
        return DataKey(plaintext, blob, key.arn)

    def decrypt(
        self,
        principal: Principal,
        ciphertext_blob: bytes | bytearray,
        context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
        action: str = "Decrypt",
    ) -> Decrypted:
        try:
            header = envelope.parse_header(ciphertext_blob)
        except envelope.InvalidBlob:
            raise InvalidCiphertextException("") from None
        if not _UUID_RE.match(header.key_id):
            raise InvalidCiphertextException("")
        try:
            key = self._resolve(header.key_id)
        except NotFoundException:
            raise InvalidCiphertextException("") from None
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
        if key_id is not None and self._resolve(key_id).key_id != key.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        grant = self._authorize(principal, key, action, context, audit)
        self._usable(key)
        _dry(dry_run)
        with self._material(key, header.version) as (material, _):
            try:
                plaintext = envelope.open_blob(material, ciphertext_blob, context)
            except envelope.InvalidBlob:
                raise InvalidCiphertextException("") from None
        return Decrypted(plaintext, key.arn, grant.grant_id if grant else None)

    def re_encrypt(
        self,
        principal: Principal,
        blob: bytes | bytearray,
        destination_key_id: str,
        source_context: Mapping[str, str] | None = None,
        destination_context: Mapping[str, str] | None = None,
        source_key_id: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        dest = self._resolve(destination_key_id)
        self._authorize(principal, dest, "ReEncryptTo", destination_context, audit)
        self._usable(dest)
        source = self.decrypt(principal, blob, source_context, source_key_id, audit, action="ReEncryptFrom")
        try:
            _dry(dry_run)
            with self._material(dest) as (material, version):
                out = envelope.seal(material, dest.key_id, version, source.plaintext, destination_context)
        finally:
            envelope.wipe(source.plaintext)
        return {
            "CiphertextBlob": out,
            "SourceKeyId": source.key_arn,
            "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
        }

    # ---------------------------------------------------------------- grants

    def create_grant(
        self,
        principal: Principal,
        key_id: str,
        grantee: str,
        operations: list[str],
        *,
        retiring_principal: str | None = None,
        constraints: Mapping[str, Mapping[str, str]] | None = None,
        name: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[str, str]:
        key = self._resolve(key_id)
        via = self._authorize(principal, key, "CreateGrant", audit=audit)
        if via is not None and not child_is_as_constrained(via.constraints, constraints):
            raise _denied(principal, "CreateGrant", key.arn)
        self._usable(key)
        if not operations:
            raise ValidationException(
                "1 validation error detected: Value '[]' at 'operations' failed to "
                "satisfy constraint: Member must have length greater than or equal to 1"
            )
        if constraints:
            constraints = {k: dict(v) for k, v in constraints.items() if v is not None}
            if len(constraints) > 1:
                raise ValidationException(
                    "Grant constraints may contain EncryptionContextEquals or EncryptionContextSubset, not both."
                )
        if name is not None and not _GRANT_NAME_RE.match(name):
            raise ValidationException(
                f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
            )
        ops = tuple(dict.fromkeys(operations))
        _dry(dry_run)
        with self._db.transaction() as tx:
            if name:
                for g in self._grants_for(key.key_id):
                    if g.name == name and same_parameters(g, grantee, retiring_principal, ops, constraints):
                        return g.grant_id, g.token
            grant_id = hashlib.sha256(envelope.random_bytes(32)).hexdigest()
            token = base64.urlsafe_b64encode(bytes(envelope.random_bytes(96))).decode().rstrip("=")
            seq_row = tx.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM kms_grants").fetchone()
            tx.execute(
                "INSERT INTO kms_grants VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    grant_id,
                    key.key_id,
                    name or "",
                    grantee,
                    retiring_principal,
                    json.dumps(list(ops)),
                    json.dumps(constraints) if constraints else None,
                    self._clock.time(),
                    account_root_arn(),
                    token,
                    seq_row[0],
                ),
            )
            grant = self._row_to_grant(
                tx.execute("SELECT * FROM kms_grants WHERE grant_id = ?", (grant_id,)).fetchone()
            )
            self._publish_grant_event(GRANT_CREATED, key, grant, principal)
        if audit is not None:
            audit.setdefault("responseElements", {})["grantId"] = grant_id
        return grant_id, token

    def _publish_grant_event(self, event: str, key: Key, grant: Grant, by: Principal) -> None:
        audience = {grant.grantee} | ({grant.retiring} if grant.retiring else set())
        self._events.publish(
            event,
            {
                "keyId": key.key_id,
                "keyArn": key.arn,
                "grantId": grant.grant_id,
                "name": grant.name,
                "granteePrincipal": grant.grantee,
                "retiringPrincipal": grant.retiring,
                "operations": list(grant.operations),
                "constraints": grant.constraints,
                "by": by.arn,
            },
            audience,
        )

    def grant_entry(self, grant: Grant) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "KeyId": self.arn_for(grant.key_id),
            "GrantId": grant.grant_id,
            "Name": grant.name,
            "CreationDate": grant.creation_date,
            "GranteePrincipal": grant.grantee,
            "IssuingAccount": grant.issuing_account,
            "Operations": list(grant.operations),
        }
        if grant.retiring:
            entry["RetiringPrincipal"] = grant.retiring
        if grant.constraints:
            entry["Constraints"] = grant.constraints
        return entry

    def list_grants(
        self,
        principal: Principal,
        key_id: str,
        grant_id: str | None = None,
        grantee: str | None = None,
        limit: int = 50,
        marker: str | None = None,
    ) -> dict[str, Any]:
        key = self._resolve(key_id)
        self._authorize(principal, key, "ListGrants")
        grants = self._grants_for(key.key_id)
        if grant_id is not None:
            grants = [g for g in grants if g.grant_id == grant_id]
        if grantee is not None:
            grants = [g for g in grants if g.grantee == grantee]
        page, next_marker = _paginate([self.grant_entry(g) for g in grants], limit, marker)
        out: dict[str, Any] = {"Grants": page, "Truncated": next_marker is not None}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def list_retirable_grants(
        self, principal: Principal, retiring_principal: str, limit: int = 50, marker: str | None = None
    ) -> dict[str, Any]:
        self._require_iam(principal, "ListRetirableGrants")
        rows = self._db.query("SELECT * FROM kms_grants WHERE retiring = ? ORDER BY seq", (retiring_principal,))
        page, next_marker = _paginate([self.grant_entry(self._row_to_grant(r)) for r in rows], limit, marker)
        out: dict[str, Any] = {"Grants": page, "Truncated": next_marker is not None}
        if next_marker:
            out["NextMarker"] = next_marker
        return out

    def grants_for_key(self, key_id: str) -> list[Grant]:
        """All grants on a key, unauthenticated (for the control plane's own use: dashboard, Lightsail)."""
        return self._grants_for(self._resolve(key_id).key_id)

    def retire_grant(
        self,
        principal: Principal,
        *,
        key_id: str | None = None,
        grant_id: str | None = None,
        grant_token: str | None = None,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        if grant_token is not None:
            row = self._db.query_one("SELECT * FROM kms_grants WHERE token = ?", (grant_token,))
            if row is None:
                raise InvalidGrantTokenException("Invalid grant token.")
        elif key_id is not None and grant_id is not None:
            key = self._resolve(key_id)
            if not re.fullmatch(r"[0-9a-f]{64}", grant_id):
                raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")
            row = self._db.query_one(
                "SELECT * FROM kms_grants WHERE grant_id = ? AND key_id = ?", (grant_id, key.key_id)
            )
            if row is None:
                raise NotFoundException(f"Grant ID {grant_id} not found")
        else:
            raise ValidationException("Either GrantToken, or both KeyId and GrantId, must be specified.")
        grant = self._row_to_grant(row)
        key = self._resolve(grant.key_id)
        if audit is not None:
            audit["resources"] = [{"ARN": key.arn, "type": "AWS::KMS::Key"}]
            audit.setdefault("requestParameters", {})["grantId"] = grant.grant_id
        if not can_retire(grant, principal.arn):
            raise _denied(principal, "RetireGrant", key.arn)
        _dry(dry_run)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM kms_grants WHERE grant_id = ?", (grant.grant_id,))
            self._publish_grant_event(GRANT_RETIRED, key, grant, principal)

    def revoke_grant(
        self,
        principal: Principal,
        key_id: str,
        grant_id: str,
        audit: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> None:
        key = self._resolve(key_id)
        # RevokeGrant needs key-policy permission; a grant can never confer it.
        values = {"kms:CallerAccount": ACCOUNT_ID, "aws:PrincipalArn": principal.arn}
        if evaluate(key.policy, _caller(principal), "RevokeGrant", key.arn, values) != "allow":
            raise _denied(principal, "RevokeGrant", key.arn)
        if not re.fullmatch(r"[0-9a-f]{64}", grant_id):
            raise InvalidGrantIdException(f"Invalid grant ID {grant_id}")
        row = self._db.query_one("SELECT * FROM kms_grants WHERE grant_id = ? AND key_id = ?", (grant_id, key.key_id))
        if row is None:
            raise NotFoundException(f"Grant ID {grant_id} not found")
        grant = self._row_to_grant(row)
        _dry(dry_run)
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM kms_grants WHERE grant_id = ?", (grant.grant_id,))
            self._publish_grant_event(GRANT_REVOKED, key, grant, principal)

    # ---------------------------------------------------------------- time-driven work

    def tick(self) -> None:
        """Delete keys whose waiting period is over; rotate keys whose rotation date has come."""
        now = self._clock.time()
        for row in self._db.query(
            "SELECT * FROM kms_keys WHERE state = 'PendingDeletion' AND deletion_date <= ?", (now,)
        ):
            key = self._row_to_key(row)
            with self._db.transaction() as tx:
                self._publish_key_event(KEY_DELETED, key, "Deleted")
                tx.execute("DELETE FROM kms_grants WHERE key_id = ?", (key.key_id,))
                tx.execute("DELETE FROM kms_aliases WHERE key_id = ?", (key.key_id,))
                tx.execute("DELETE FROM kms_key_material WHERE key_id = ?", (key.key_id,))
                tx.execute("DELETE FROM kms_keys WHERE key_id = ?", (key.key_id,))
        for row in self._db.query(
            "SELECT * FROM kms_keys WHERE rotation_enabled = 1 AND state = 'Enabled' AND next_rotation <= ?",
            (now,),
        ):
            key = self._row_to_key(row)
            self.rotate_now(key)

    def rotate_now(self, key: Key) -> None:
        version = key.current_version + 1
        material = envelope.random_bytes(32)
        try:
            wrapped = envelope.wrap_material(self._root, key.key_id, version, material)
        finally:
            envelope.wipe(material)
        now = self._clock.time()
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO kms_key_material VALUES (?,?,?,?)", (key.key_id, version, wrapped, now))
            tx.execute(
                "UPDATE kms_keys SET current_version = ?, next_rotation = ? WHERE key_id = ?",
                (version, now + (key.rotation_period or DEFAULT_ROTATION_DAYS) * 86400, key.key_id),
            )
            self._publish_key_event(KEY_ROTATED, key, key.state, version=version)


def _dry(dry_run: bool) -> None:
    if dry_run:
        raise DryRunOperationException("The request would have succeeded, but the DryRun option is set.")


def _paginate(items: list[dict[str, Any]], limit: int, marker: str | None) -> tuple[list[dict[str, Any]], str | None]:
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

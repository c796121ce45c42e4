"""``KeyService``: KMS operations with authorization on every call, state in SQLite, events.

Every operation (1) resolves the key (id, ARN, alias name or alias ARN), (2) authorizes the caller
through the key policy or a grant (``policy``, ``grants``), (3) checks the key's state, (4) acts inside
one database transaction that also appends the event it causes. Master key material is unwrapped
from the root key into a ``bytearray`` for the length of one operation and wiped after it.

The operations live with their kind: ``management`` (keys, descriptions and key policies), ``aliases``,
``crypto`` (encrypt, data keys, decrypt, re-encrypt, random bytes), ``keypairs`` (data key pairs), ``signing``
(sign, verify, public keys), ``macs`` (HMAC), ``grantops`` (grants), ``tagops`` (tags), ``schedule`` (deletion,
rotation and the sweep); the steps they share and the tables are in ``keystore``. ``KeyService`` is all of them.
"""

from __future__ import annotations

from pathlib import Path

from lbproxy.contract.vocabulary import ACM_KEY_ALIAS
from lbproxy.core.clock import Clock
from lbproxy.core.events import EventLog
from lbproxy.core.store import Database
from lbproxy.keyservice.aliases import AliasOperations
from lbproxy.keyservice.crypto import CryptoOperations
from lbproxy.keyservice.grantops import GrantOperations
from lbproxy.keyservice.keypairs import DataKeyPairOperations
from lbproxy.keyservice.keys import (
    ACM_KEY_DESCRIPTION,
    DEFAULT_ROTATION_DAYS,
    SYMMETRIC_DEFAULT,
    DataKey,
    DataKeyPair,
    Decrypted,
    Key,
)
from lbproxy.keyservice.keystore import SCHEMA
from lbproxy.keyservice.macs import MacOperations
from lbproxy.keyservice.management import KeyManagement
from lbproxy.keyservice.rootkey import load_root_key
from lbproxy.keyservice.schedule import KeySchedule
from lbproxy.keyservice.signing import SigningOperations
from lbproxy.keyservice.tagops import TagOperations

__all__ = [
    "ACM_KEY_ALIAS",
    "ACM_KEY_DESCRIPTION",
    "DEFAULT_ROTATION_DAYS",
    "SYMMETRIC_DEFAULT",
    "DataKey",
    "DataKeyPair",
    "Decrypted",
    "Key",
    "KeyService",
]


class KeyService(
    KeyManagement,
    AliasOperations,
    CryptoOperations,
    DataKeyPairOperations,
    SigningOperations,
    MacOperations,
    GrantOperations,
    TagOperations,
    KeySchedule,
):
    def __init__(self, db: Database, events: EventLog, clock: Clock, data_dir: Path, region: str) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self.region = region
        self._root = load_root_key(data_dir)
        db.ensure_schema(SCHEMA)
        self._ensure_acm_key()

    # ---------------------------------------------------------------- the control plane's own reads

    def all_keys(self) -> list[Key]:
        """Every key, oldest first, without authorization (for the control plane's own dashboard)."""
        rows = self._db.query("SELECT * FROM kms_keys ORDER BY creation_date, key_id")
        return [self._row_to_key(r) for r in rows]

    def alias_names(self) -> dict[str, list[str]]:
        """Alias names by key id, in name order, without authorization (for the control plane's own dashboard)."""
        out: dict[str, list[str]] = {}
        for r in self._db.query("SELECT name, key_id FROM kms_aliases ORDER BY name"):
            out.setdefault(r["key_id"], []).append(r["name"])
        return out

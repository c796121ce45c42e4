"""``CertificateStore``: the certificate manager's tables and the steps its operations share.

The tables (``SCHEMA``): ``acm_certificates`` (one row per certificate: its metadata as JSON, its PEM
certificate and chain once issued, its private key as a ``SealedKey``, never a plaintext field),
``acm_in_use`` (who uses a certificate, and the KMS grant its load balancer decrypts with) and
``acm_idempotency`` (RequestCertificate's idempotency tokens).

The shared steps: load a certificate by ARN and bring it up to date (``_get``: transitions are applied
lazily on every read, and by the sweep), save it, mint a new key and certificate (``_mint``: issuance and
renewal), tell its users it was renewed (``_publish_renewed``: renewal and re-import).

The operation classes (``issuance``, ``renewal``, ``importexport``, ``associations``) build on this one;
``manager.CertificateManager`` is all of them together.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from lbproxy.certs import certinfo, keys
from lbproxy.certs.ca import LocalCA
from lbproxy.certs.errors import ResourceInUseException, not_found
from lbproxy.certs.records import (
    AMAZON_ISSUED,
    ISSUED,
    Certificate,
    check_arn,
    key_context,
    new_arn,
    status_at,
)
from lbproxy.certs.vault import KeyServiceLike, KeyVault
from lbproxy.config import ControlSettings
from lbproxy.contract.sealed import SealedKey
from lbproxy.contract.vocabulary import CERTIFICATE_RENEWED
from lbproxy.core.clock import Clock
from lbproxy.core.principals import ACCOUNT_ID
from lbproxy.core.store import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS acm_certificates (
    arn TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    meta TEXT NOT NULL,
    certificate_pem TEXT,
    chain_pem TEXT,
    sealed_key TEXT
);
CREATE TABLE IF NOT EXISTS acm_in_use (
    certificate_arn TEXT NOT NULL REFERENCES acm_certificates(arn) ON DELETE CASCADE,
    resource_arn TEXT NOT NULL,
    principal_arn TEXT,
    grant_id TEXT,
    added_at REAL NOT NULL,
    PRIMARY KEY (certificate_arn, resource_arn)
);
CREATE TABLE IF NOT EXISTS acm_idempotency (
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    certificate_arn TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (token, fingerprint)
);
"""


class EventSink(Protocol):
    def publish(self, type_: str, detail: dict[str, Any], audience: Iterable[str] = ()) -> int: ...


def from_row(row: sqlite3.Row) -> Certificate:
    sealed = SealedKey.from_json(json.loads(row["sealed_key"])) if row["sealed_key"] else None
    return Certificate(
        arn=row["arn"],
        type=row["type"],
        status=row["status"],
        created_at=row["created_at"],
        meta=json.loads(row["meta"]),
        certificate_pem=row["certificate_pem"],
        chain_pem=row["chain_pem"],
        sealed=sealed,
    )


class CertificateStore:
    """The tables, the key vault and the CA, and the steps every ACM operation shares (see the module
    docstring). Every public operation holds ``_lock``: the sweep and requests run on different threads."""

    region: str
    kms: KeyServiceLike
    vault: KeyVault
    ca: LocalCA
    _db: Database
    _events: EventSink
    _clock: Clock
    _settings: ControlSettings
    _lock: threading.RLock

    # == rows =====================================================================================

    def _new_arn(self) -> str:
        return new_arn(self.region)

    def _check_arn(self, arn: str) -> None:
        check_arn(arn, self.region)

    def _load(self, arn: str) -> Certificate | None:
        row = self._db.query_one("SELECT * FROM acm_certificates WHERE arn = ?", (arn,))
        return from_row(row) if row is not None else None

    def _require(self, arn: str) -> Certificate:
        self._check_arn(arn)
        cert = self._load(arn)
        if cert is None:
            raise not_found(arn)
        return cert

    def _get(self, arn: str) -> Certificate:
        """Load and bring up to date (lazy transitions)."""
        cert = self._require(arn)
        if self._advance(cert):
            cert = self._require(arn)
        return cert

    def _advance(self, cert: Certificate) -> int:
        """Apply the transition that is due, if any; returns how many (``CertificateManager`` knows them)."""
        raise NotImplementedError

    def _save(self, cert: Certificate, *, insert: bool = False) -> None:
        sealed = json.dumps(cert.sealed.to_json()) if cert.sealed else None
        values = (
            cert.type,
            cert.status,
            cert.created_at,
            json.dumps(cert.meta),
            cert.certificate_pem,
            cert.chain_pem,
            sealed,
            cert.arn,
        )
        with self._db.transaction() as tx:
            if insert:
                tx.execute(
                    "INSERT INTO acm_certificates (type, status, created_at, meta, certificate_pem, chain_pem, "
                    "sealed_key, arn) VALUES (?,?,?,?,?,?,?,?)",
                    values,
                )
            else:
                tx.execute(
                    "UPDATE acm_certificates SET type=?, status=?, created_at=?, meta=?, certificate_pem=?, "
                    "chain_pem=?, sealed_key=? WHERE arn=?",
                    values,
                )

    def _in_use_rows(self, arn: str) -> list[sqlite3.Row]:
        return self._db.query(
            "SELECT * FROM acm_in_use WHERE certificate_arn=? ORDER BY added_at, resource_arn", (arn,)
        )

    def _refuse_owned(self, cert: Certificate, what: str) -> None:
        """The account's ACM operations read a certificate another service owns, never change it: in AWS a Lightsail
        load-balancer certificate is Lightsail's (``ResourceInUseException``, naming the owner)."""
        if cert.owner is not None:
            raise ResourceInUseException(
                f"Certificate {cert.arn} in account {ACCOUNT_ID} is in use: it is managed by {cert.owner} and cannot "
                f"be {what} through ACM (use {cert.owner}'s own operations, e.g. "
                "lightsail delete-load-balancer-tls-certificate)."
            )

    # == state ====================================================================================

    def _status(self, cert: Certificate) -> str:
        return status_at(cert, self._clock.now())

    def _eligible(self, cert: Certificate) -> bool:
        """Managed renewal applies: issued by ACM, not expired, and in use or exported."""
        return (
            cert.type == AMAZON_ISSUED
            and self._status(cert) == ISSUED
            and (bool(self._in_use_rows(cert.arn)) or bool(cert.meta.get("exported")))
        )

    # == shared steps =============================================================================

    def _mint(self, cert: Certificate) -> None:
        """A new key pair and certificate for ``cert``'s names; the key leaves only sealed."""
        key = keys.generate(cert.key_algorithm)
        sealed = self.vault.seal_key(key, label=cert.arn, context=key_context(cert.arn))
        leaf = self.ca.issue(key.public_key(), cert.domain_name, cert.names)
        del key
        cert.sealed = sealed
        cert.certificate_pem = certinfo.to_pem(leaf)
        cert.chain_pem = self.ca.chain_pem
        cert._info = None

    def _publish_renewed(self, cert: Certificate, reason: str) -> None:
        """``certificate.renewed``, addressed to the principals of the resources that use it."""
        rows = self._in_use_rows(cert.arn)
        ci = cert.info
        assert ci is not None
        self._events.publish(
            CERTIFICATE_RENEWED,
            {
                "certificateArn": cert.arn,
                "serial": ci.serial,
                "notBefore": ci.not_before.timestamp(),
                "notAfter": ci.not_after.timestamp(),
                "inUseBy": [r["resource_arn"] for r in rows],
                "reason": reason,
            },
            [r["principal_arn"] for r in rows if r["principal_arn"]],
        )

"""``CertificateManager``: ACM's state and lifecycle, with no HTTP in sight.

A certificate is one row of ``acm_certificates``: its metadata (JSON), its PEM certificate and chain
once issued, and its private key as a ``SealedKey`` (ciphertext, nonce, encrypted data key: never a
plaintext field). Time comes from the injected ``Clock``; transitions are applied lazily whenever a
certificate is read and by ``tick()``, the sweep the control plane runs every ``sweep_interval``:

- ``PENDING_VALIDATION`` -> ``ISSUED`` once ``validation_delay`` has passed: the key pair is generated
  then, signed by the local CA, sealed under ``alias/aws/acm`` with ``{"aws:acm:arn": arn}``.
- managed renewal: an ``ISSUED`` certificate that is in use (or was exported) gets
  ``RenewalSummary.RenewalStatus = PENDING_AUTO_RENEWAL`` when it enters the renewal window
  (``renewal_window_days`` before NotAfter), and ``SUCCESS`` ``validation_delay`` later with a new key
  and certificate under the same ARN; the ``certificate.renewed`` event tells its users to rotate.
- ``EXPIRED`` is computed from NotAfter.

Associations (``add_in_use`` / ``associate``) record who uses a certificate (``InUseBy``) and, with
``associate``, create the KMS grant a load balancer decrypts with. ``seal_for`` gives that load balancer
its bundle: the sealed key with the data key re-wrapped under ``{"aws:acm:arn", "aws:lightsail:arn"}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lbproxy.awsapi.errors import AwsError
from lbproxy.certs import certinfo, domains, keys
from lbproxy.certs.ca import LocalCA
from lbproxy.certs.errors import (
    InvalidArgsException,
    InvalidArnException,
    InvalidParameterException,
    InvalidStateException,
    InvalidTagException,
    TooManyTagsException,
    ValidationException,
    in_progress,
    in_use,
    not_found,
)
from lbproxy.certs.vault import KeyServiceLike, KeyVault
from lbproxy.config import ControlSettings
from lbproxy.contract.sealed import SealedKey, bundle_to_json, wipe
from lbproxy.contract.vocabulary import (
    CERTIFICATE_DELETED,
    CERTIFICATE_IMPORTED,
    CERTIFICATE_ISSUED,
    CERTIFICATE_RENEWED,
)
from lbproxy.core.clock import Clock
from lbproxy.core.principals import ACCOUNT_ID, ACM_SERVICE_PRINCIPAL
from lbproxy.core.store import Database

log = logging.getLogger("lbproxy.certs")

_SCHEMA = """
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

ACM_ARN_CONTEXT = "aws:acm:arn"
LIGHTSAIL_ARN_CONTEXT = "aws:lightsail:arn"
GRANT_NAME = "IssuedThroughACM"
GRANT_OPERATIONS = ["Decrypt", "DescribeKey"]
IDEMPOTENCY_WINDOW = 3600.0
#: After a failed managed renewal, wait this long (seconds) before trying again.
RENEWAL_RETRY = 3600.0
MAX_TAGS = 50
#: ``Arn``'s pattern from the ACM model, and the shape of a certificate ARN.
ARN_PATTERN = r"arn:[\w+=/,.@-]+:acm:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*"
_ARN_RE = re.compile(ARN_PATTERN)
_CERT_ARN_RE = re.compile(r"arn:aws:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}")

# Event types on the event stream.

# Reasons carried by ``certificate.renewed``.
REASON_MANAGED = "MANAGED_RENEWAL"
REASON_REQUESTED = "RENEW_CERTIFICATE"
REASON_REIMPORTED = "REIMPORT"


class EventSink(Protocol):
    def publish(self, type_: str, detail: dict[str, Any], audience: Iterable[str] = ()) -> int: ...


@dataclass(slots=True)
class Certificate:
    """One certificate as stored (``meta`` holds what has no column of its own)."""

    arn: str
    type: str  # AMAZON_ISSUED | IMPORTED
    status: str  # PENDING_VALIDATION | ISSUED | FAILED   (EXPIRED is computed)
    created_at: float
    meta: dict[str, Any] = field(default_factory=dict)
    certificate_pem: str | None = None
    chain_pem: str | None = None
    sealed: SealedKey | None = None
    _info: certinfo.CertInfo | None = None

    @property
    def info(self) -> certinfo.CertInfo | None:
        if self._info is None and self.certificate_pem:
            self._info = certinfo.info(x509.load_pem_x509_certificate(self.certificate_pem.encode()))
        return self._info

    @property
    def names(self) -> list[str]:
        return list(self.meta.get("names", []))

    @property
    def domain_name(self) -> str:
        return str(self.meta.get("domain_name", ""))

    @property
    def key_algorithm(self) -> str:
        return str(self.meta.get("key_algorithm", keys.DEFAULT_KEY_ALGORITHM))

    @property
    def export_option(self) -> str:
        return str(self.meta.get("options", {}).get("Export", "DISABLED"))


class CertificateManager:
    def __init__(
        self,
        db: Database,
        kms: KeyServiceLike,
        events: EventSink,
        clock: Clock,
        data_dir: Path,
        settings: ControlSettings,
    ) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._settings = settings
        self.region = settings.region
        self.kms = kms
        self.vault = KeyVault(kms)
        self._lock = threading.RLock()
        db.ensure_schema(_SCHEMA)
        self.ca = LocalCA.open_or_create(data_dir, self.vault, clock)

    # == the sweep ================================================================================

    def tick(self) -> int:
        """Apply every transition that is due (validation, managed renewal); returns how many."""
        with self._lock:
            rows = self._db.query("SELECT arn FROM acm_certificates WHERE status IN ('PENDING_VALIDATION','ISSUED')")
            done = 0
            for row in rows:
                cert = self._load(row["arn"])
                if cert is not None:
                    done += self._advance(cert)
            return done

    # == requests =================================================================================

    def request_certificate(
        self,
        domain_name: str,
        *,
        subject_alternative_names: Sequence[str] | None = None,
        validation_method: str | None = None,
        idempotency_token: str | None = None,
        domain_validation_options: Sequence[dict[str, Any]] | None = None,
        options: Mapping[str, Any] | None = None,
        certificate_authority_arn: str | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
        key_algorithm: str | None = None,
        managed_by: str | None = None,
    ) -> str:
        names = domains.request_names(domain_name, subject_alternative_names)
        if len(names) > domains.MAX_NAMES:
            raise InvalidParameterException(
                f"Too many domain names: {len(names)}. A certificate can have at most {domains.MAX_NAMES}."
            )
        method = validation_method or "DNS"
        if method == "HTTP" and managed_by != "CLOUDFRONT":
            raise InvalidParameterException("HTTP validation is only available for CloudFront-managed certificates")
        if certificate_authority_arn:
            raise InvalidArnException(
                f"Private CA {certificate_authority_arn} not found: lbproxy issues from its local CA only"
            )
        algorithm = key_algorithm or keys.DEFAULT_KEY_ALGORITHM
        if algorithm not in keys.REQUESTABLE:
            raise InvalidParameterException(f"The key algorithm {algorithm} is not supported for public certificates.")
        opts = {
            "CertificateTransparencyLoggingPreference": "ENABLED",
            "Export": "DISABLED",
        }
        opts.update({k: v for k, v in dict(options or {}).items() if k in opts})
        tag_map = _tag_map(tags or [], {})
        now = self._clock.time()
        overrides = list(domain_validation_options or [])
        domains.validation_options(ACCOUNT_ID, names, method, "PENDING_VALIDATION", overrides)  # checks
        fingerprint = _fingerprint(names, method, algorithm, opts, tag_map)
        with self._lock, self._db.transaction() as tx:
            if idempotency_token:
                row = tx.execute(
                    "SELECT certificate_arn FROM acm_idempotency WHERE token=? AND fingerprint=? AND expires>?",
                    (idempotency_token, fingerprint, now),
                ).fetchone()
                if row is not None and self._load(row["certificate_arn"]) is not None:
                    return str(row["certificate_arn"])
            arn = self._new_arn()
            meta = {
                "domain_name": names[0],
                "names": names,
                "key_algorithm": algorithm,
                "validation_method": method,
                "validation_overrides": overrides,
                "options": opts,
                "tags": tag_map,
                "exported": False,
                "managed_by": managed_by,
            }
            self._save(Certificate(arn, "AMAZON_ISSUED", "PENDING_VALIDATION", now, meta), insert=True)
            if idempotency_token:
                tx.execute(
                    "INSERT OR REPLACE INTO acm_idempotency VALUES (?,?,?,?)",
                    (idempotency_token, fingerprint, arn, now + IDEMPOTENCY_WINDOW),
                )
                tx.execute("DELETE FROM acm_idempotency WHERE expires <= ?", (now,))
        return arn

    def import_certificate(
        self,
        certificate: bytes | bytearray,
        private_key: bytearray,
        *,
        certificate_chain: bytes | bytearray | None = None,
        certificate_arn: str | None = None,
        tags: Sequence[Mapping[str, Any]] | None = None,
    ) -> str:
        """Import (or re-import over ``certificate_arn``) a certificate and its key; the key is sealed and
        ``private_key`` is zeroed before this returns, whatever happens."""
        try:
            return self._import(certificate, private_key, certificate_chain, certificate_arn, tags)
        finally:
            wipe(private_key)

    def _import(
        self,
        certificate: bytes | bytearray,
        private_key: bytearray,
        certificate_chain: bytes | bytearray | None,
        certificate_arn: str | None,
        tags: Sequence[Mapping[str, Any]] | None,
    ) -> str:
        try:
            certs = certinfo.load_pem_chain(bytes(certificate))
        except ValueError:
            raise ValidationException(
                "Unable to parse certificate. Please ensure the certificate is in PEM format."
            ) from None
        if len(certs) != 1:
            raise ValidationException(
                "The certificate field contains more than one certificate. You can specify only one certificate "
                "in this field."
            )
        cert = certs[0]
        chain: list[x509.Certificate] = []
        if certificate_chain:
            try:
                chain = certinfo.load_pem_chain(bytes(certificate_chain))
            except ValueError:
                raise ValidationException(
                    "Unable to parse certificate chain. Please ensure the chain is in PEM format."
                ) from None
        try:
            key = serialization.load_pem_private_key(private_key, password=None)
        except (ValueError, TypeError):
            raise ValidationException("The private key is not supported.") from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValidationException("The private key is not supported.")
        try:
            algorithm = keys.algorithm_of(key)
        except keys.UnsupportedKey:
            raise ValidationException("The private key length is not supported.") from None
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, pub) != cert.public_key().public_bytes(
            serialization.Encoding.DER, pub
        ):
            raise ValidationException("The private key does not match the public key in the certificate.")
        now_dt = self._clock.now()
        if cert.not_valid_after_utc < now_dt:
            raise ValidationException("The certificate has expired, is not valid.")
        if cert.not_valid_before_utc > now_dt:
            raise ValidationException("The certificate is not in effect yet, is not valid.")
        ci = certinfo.info(cert)
        names = list(dict.fromkeys([n.lower() for n in ci.dns_names]))
        domain = (ci.common_name or (names[0] if names else "")).lower()
        if domain and domain not in names:
            names.insert(0, domain)
        now = self._clock.time()
        with self._lock:
            if certificate_arn:
                existing = self._require(certificate_arn)
                if existing.type != "IMPORTED":
                    raise ValidationException(
                        f"Certificate {certificate_arn} is not an imported certificate and cannot be re-imported."
                    )
                if tags:
                    raise ValidationException("Tags cannot be specified when re-importing a certificate.")
                rec = existing
                arn = existing.arn
            else:
                arn = self._new_arn()
                rec = Certificate(arn, "IMPORTED", "ISSUED", now, {"tags": _tag_map(tags or [], {})})
            sealed = self.vault.seal_key(key, label=arn, context={ACM_ARN_CONTEXT: arn})
            del key
            rec.status = "ISSUED"
            rec.meta.update(
                {
                    "domain_name": domain,
                    "names": names,
                    "key_algorithm": algorithm,
                    "imported_at": now,
                    "options": {"CertificateTransparencyLoggingPreference": "DISABLED", "Export": "DISABLED"},
                    "exported": False,
                }
            )
            rec.certificate_pem = certinfo.to_pem(cert)
            rec.chain_pem = "".join(certinfo.to_pem(c) for c in chain) or None
            rec.sealed = sealed
            rec._info = None
            with self._db.transaction():
                self._save(rec, insert=certificate_arn is None)
                if certificate_arn is None:
                    self._events.publish(CERTIFICATE_IMPORTED, {"certificateArn": arn, "serial": ci.serial})
                elif self._in_use_rows(arn):
                    self._publish_renewed(rec, REASON_REIMPORTED)
        return arn

    # == reads ====================================================================================

    def describe_certificate(self, arn: str) -> dict[str, Any]:
        with self._lock:
            return self._detail(self._get(arn))

    def get_certificate(self, arn: str) -> dict[str, str]:
        with self._lock:
            cert = self._get(arn)
            if cert.certificate_pem is None:
                raise in_progress(arn)
            out = {"Certificate": cert.certificate_pem}
            if cert.chain_pem:
                out["CertificateChain"] = cert.chain_pem
            return out

    def list_certificates(
        self,
        *,
        statuses: Sequence[str] | None = None,
        includes: Mapping[str, Any] | None = None,
        max_items: int | None = None,
        next_token: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self.tick()
            inc = dict(includes or {})
            key_types = set(inc.get("keyTypes") or ["RSA_2048"])
            export_opt = inc.get("exportOption")
            usages = set(inc.get("keyUsage") or [])
            ekus = set(inc.get("extendedKeyUsage") or [])
            certs = []
            for row in self._db.query("SELECT arn FROM acm_certificates ORDER BY created_at, rowid"):
                cert = self._load(row["arn"])
                if cert is None:
                    continue
                if statuses and self._status(cert) not in statuses:
                    continue
                if cert.key_algorithm not in key_types:
                    continue
                if export_opt and cert.export_option != export_opt:
                    continue
                if inc.get("managedBy") and cert.meta.get("managed_by") != inc["managedBy"]:
                    continue
                ci = cert.info
                if usages and not (ci and usages & set(ci.key_usages)):
                    continue
                if ekus and not (ci and ekus & {n for n, _ in ci.extended_key_usages}):
                    continue
                certs.append(cert)
            if sort_order == "DESCENDING":
                certs.reverse()
            start = _decode_token(next_token) if next_token else 0
            end = len(certs) if not max_items else start + max_items
            out: dict[str, Any] = {"CertificateSummaryList": [self._summary(c) for c in certs[start:end]]}
            if end < len(certs):
                out["NextToken"] = _encode_token(end)
            return out

    def in_use_by(self, arn: str) -> list[str]:
        return [r["resource_arn"] for r in self._in_use_rows(arn)]

    def used_by_principal(self, arn: str, principal_arn: str) -> bool:
        """Whether a resource whose own principal is ``principal_arn`` uses the certificate (a load balancer's
        role and the certificate attached to it): what a role may read in ACM."""
        return any(r["principal_arn"] == principal_arn for r in self._in_use_rows(arn))

    # == changes ==================================================================================

    def delete_certificate(self, arn: str) -> None:
        with self._lock:
            cert = self._get(arn)
            if self._in_use_rows(arn):
                raise in_use(arn)
            with self._db.transaction() as tx:
                tx.execute("DELETE FROM acm_certificates WHERE arn = ?", (cert.arn,))
                tx.execute("DELETE FROM acm_idempotency WHERE certificate_arn = ?", (cert.arn,))
                self._events.publish(CERTIFICATE_DELETED, {"certificateArn": cert.arn})

    def export_certificate(self, arn: str, passphrase: bytearray) -> dict[str, str]:
        """Certificate, chain and the key as encrypted PKCS#8 PEM; only with ``Options.Export = ENABLED``."""
        try:
            with self._lock:
                cert = self._get(arn)
                if cert.export_option != "ENABLED" or cert.type != "AMAZON_ISSUED":
                    raise ValidationException(
                        f"Certificate {arn} is not exportable. Only certificates requested with "
                        "Options.Export set to ENABLED can be exported."
                    )
                if cert.sealed is None or cert.certificate_pem is None:
                    raise in_progress(arn)
                with self.vault.private_key(cert.sealed) as key:
                    pem = keys.encrypted_pem(key, passphrase)
                if not cert.meta.get("exported"):
                    cert.meta["exported"] = True
                    self._save(cert)
                return {
                    "Certificate": cert.certificate_pem,
                    "CertificateChain": cert.chain_pem or "",
                    "PrivateKey": pem,
                }
        finally:
            wipe(passphrase)

    def renew_certificate(self, arn: str) -> None:
        """Renew now (ACM's RenewCertificate): a new key and certificate under the same ARN."""
        with self._lock:
            cert = self._get(arn)
            if cert.type != "AMAZON_ISSUED":
                raise ValidationException(f"Certificate {arn} is not eligible for renewal: it is imported.")
            if cert.status != "ISSUED":
                raise in_progress(arn)
            self._renew(cert, REASON_REQUESTED)

    def add_tags(self, arn: str, tags: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            cert = self._get(arn)
            cert.meta["tags"] = _tag_map(tags, dict(cert.meta.get("tags", {})))
            self._save(cert)

    def remove_tags(self, arn: str, tags: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            cert = self._get(arn)
            current: dict[str, Any] = dict(cert.meta.get("tags", {}))
            for t in tags:
                k = str(t["Key"])
                _check_tag_key(k)
                if k in current and ("Value" not in t or t["Value"] == current[k]):
                    del current[k]
            cert.meta["tags"] = current
            self._save(cert)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        with self._lock:
            cert = self._get(arn)
            return _tag_list(cert.meta.get("tags", {}))

    # == associations (called by the Lightsail service) ===========================================

    def add_in_use(self, cert_arn: str, resource_arn: str, *, principal_arn: str | None = None) -> None:
        """Record that ``resource_arn`` uses the certificate (it shows in ``InUseBy``). ``principal_arn``
        (the resource's own principal) is who ``certificate.renewed`` events are addressed to."""
        with self._lock:
            self._get(cert_arn)
            with self._db.transaction() as tx:
                tx.execute(
                    "INSERT INTO acm_in_use (certificate_arn, resource_arn, principal_arn, grant_id, added_at) "
                    "VALUES (?,?,?,NULL,?) ON CONFLICT (certificate_arn, resource_arn) "
                    "DO UPDATE SET principal_arn = COALESCE(excluded.principal_arn, principal_arn)",
                    (cert_arn, resource_arn, principal_arn, self._clock.time()),
                )

    def remove_in_use(self, cert_arn: str, resource_arn: str) -> None:
        """Forget an association (and retire its grant, if ``associate`` made one)."""
        with self._lock:
            row = self._db.query_one(
                "SELECT * FROM acm_in_use WHERE certificate_arn=? AND resource_arn=?", (cert_arn, resource_arn)
            )
            if row is None:
                return
            if row["grant_id"]:
                cert = self._load(cert_arn)
                key_id = cert.sealed.key_arn if cert and cert.sealed else self.kms.key_arn(self.vault.key_id)
                try:
                    self.kms.retire_grant(self.vault.principal, key_id=key_id, grant_id=row["grant_id"])
                except AwsError as exc:  # already revoked or retired: the association goes anyway
                    log.info("grant %s for %s already gone: %s", row["grant_id"], resource_arn, exc.code)
            with self._db.transaction() as tx:
                tx.execute(
                    "DELETE FROM acm_in_use WHERE certificate_arn=? AND resource_arn=?", (cert_arn, resource_arn)
                )

    def associate(self, cert_arn: str, resource_arn: str, principal_arn: str) -> str:
        """ACM's side of attaching a certificate to a load balancer: ``add_in_use`` plus the KMS grant
        ``IssuedThroughACM`` (grantee ``principal_arn``; Decrypt, DescribeKey; EncryptionContextEquals
        ``{aws:acm:arn, aws:lightsail:arn}``; retiring principal ACM). Returns the grant id."""
        with self._lock:
            cert = self._get(cert_arn)
            if cert.sealed is None:
                raise in_progress(cert_arn)
            existing = self._db.query_one(
                "SELECT grant_id FROM acm_in_use WHERE certificate_arn=? AND resource_arn=?", (cert_arn, resource_arn)
            )
            if existing is not None and existing["grant_id"]:
                return str(existing["grant_id"])
            grant_id, _token = self.kms.create_grant(
                self.vault.principal,
                cert.sealed.key_arn,
                principal_arn,
                list(GRANT_OPERATIONS),
                retiring_principal=ACM_SERVICE_PRINCIPAL,
                constraints={"EncryptionContextEquals": association_context(cert_arn, resource_arn)},
                name=GRANT_NAME,
            )
            self.add_in_use(cert_arn, resource_arn, principal_arn=principal_arn)
            with self._db.transaction() as tx:
                tx.execute(
                    "UPDATE acm_in_use SET grant_id=? WHERE certificate_arn=? AND resource_arn=?",
                    (grant_id, cert_arn, resource_arn),
                )
            return grant_id

    def disassociate(self, cert_arn: str, resource_arn: str) -> None:
        self.remove_in_use(cert_arn, resource_arn)

    def seal_for(self, cert_arn: str, lightsail_arn: str) -> dict[str, Any]:
        """The bundle a load balancer loads: certificate + chain PEM and the sealed key, its data key
        re-wrapped under ``{"aws:acm:arn": cert_arn, "aws:lightsail:arn": lightsail_arn}``.

        The load balancer must be in ``InUseBy`` (``add_in_use``/``associate`` first). Open it with
        ``lbproxy.contract.sealed.open_sealed_key`` after a KMS Decrypt of ``EncryptedDataKey`` under
        ``EncryptionContext``."""
        with self._lock:
            cert = self._get(cert_arn)
            if cert.sealed is None or cert.certificate_pem is None:
                raise in_progress(cert_arn)
            if not self._db.query_one(
                "SELECT 1 FROM acm_in_use WHERE certificate_arn=? AND resource_arn=?", (cert_arn, lightsail_arn)
            ):
                raise InvalidStateException(f"Certificate {cert_arn} is not associated with {lightsail_arn}.")
            rewrapped = self.vault.rewrap(cert.sealed, association_context(cert_arn, lightsail_arn))
            ci = cert.info
            assert ci is not None
            return bundle_to_json(
                rewrapped,
                certificate_arn=cert.arn,
                certificate_pem=cert.certificate_pem,
                chain_pem=cert.chain_pem or "",
                key_algorithm=cert.key_algorithm,
                serial=ci.serial,
                not_after=ci.not_after.timestamp(),
            )

    # == internals: storage =======================================================================

    def _new_arn(self) -> str:
        return f"arn:aws:acm:{self.region}:{ACCOUNT_ID}:certificate/{uuid.uuid4()}"

    def _check_arn(self, arn: str) -> None:
        if not _ARN_RE.fullmatch(arn):
            raise ValidationException(
                f"1 validation error detected: Value '{arn}' at 'certificateArn' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {ARN_PATTERN}"
            )
        if not _CERT_ARN_RE.fullmatch(arn):
            raise InvalidArnException(f"String '{arn}' is not a valid ARN.")
        if not arn.startswith(f"arn:aws:acm:{self.region}:{ACCOUNT_ID}:"):
            raise not_found(arn)

    def _load(self, arn: str) -> Certificate | None:
        row = self._db.query_one("SELECT * FROM acm_certificates WHERE arn = ?", (arn,))
        return _from_row(row) if row is not None else None

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

    # == internals: lifecycle =====================================================================

    def _status(self, cert: Certificate) -> str:
        ci = cert.info
        if cert.status == "ISSUED" and ci is not None and ci.not_after < self._clock.now():
            return "EXPIRED"
        return cert.status

    def _eligible(self, cert: Certificate) -> bool:
        return (
            cert.type == "AMAZON_ISSUED"
            and self._status(cert) == "ISSUED"
            and (bool(self._in_use_rows(cert.arn)) or bool(cert.meta.get("exported")))
        )

    def _advance(self, cert: Certificate) -> int:
        now = self._clock.time()
        if cert.status == "PENDING_VALIDATION":
            if now >= cert.created_at + self._settings.validation_delay:
                self._issue(cert)
                return 1
            return 0
        if cert.status != "ISSUED" or not self._eligible(cert):
            return 0
        ci = cert.info
        assert ci is not None
        window_start = ci.not_after.timestamp() - self._settings.renewal_window_days * 86400
        renewal = cert.meta.get("renewal") or {}
        if renewal.get("RenewalStatus") == "PENDING_AUTO_RENEWAL":
            if now >= float(renewal.get("due", 0)):
                try:
                    self._renew(cert, REASON_MANAGED)
                except AwsError as exc:  # e.g. aws/acm disabled: FAILED now, retried from the window check
                    log.warning("managed renewal of %s failed: %s %s", cert.arn, exc.code, exc.message)
                    cert.meta["renewal"] = {"RenewalStatus": "FAILED", "UpdatedAt": now, "RenewalStatusReason": "OTHER"}
                    self._save(cert)
                return 1
            return 0
        if now >= window_start and (
            renewal.get("RenewalStatus") != "FAILED" or now >= float(renewal["UpdatedAt"]) + RENEWAL_RETRY
        ):
            cert.meta["renewal"] = {
                "RenewalStatus": "PENDING_AUTO_RENEWAL",
                "UpdatedAt": now,
                "due": now + self._settings.validation_delay,
            }
            self._save(cert)
            return 1
        return 0

    def _issue(self, cert: Certificate) -> None:
        """PENDING_VALIDATION -> ISSUED: key pair, certificate from the local CA, sealed key."""
        try:
            self._mint(cert)
        except AwsError as exc:
            log.warning("issuing %s failed: %s %s", cert.arn, exc.code, exc.message)
            cert.status = "FAILED"
            cert.meta["failure_reason"] = "OTHER"
            self._save(cert)
            return
        cert.status = "ISSUED"
        cert.meta["issued_at"] = self._clock.time()
        with self._db.transaction():
            self._save(cert)
            ci = cert.info
            assert ci is not None
            self._events.publish(
                CERTIFICATE_ISSUED,
                {"certificateArn": cert.arn, "serial": ci.serial, "notAfter": ci.not_after.timestamp()},
            )

    def _mint(self, cert: Certificate) -> None:
        """A new key pair and certificate for ``cert``'s names; the key leaves only sealed."""
        key = keys.generate(cert.key_algorithm)
        sealed = self.vault.seal_key(key, label=cert.arn, context={ACM_ARN_CONTEXT: cert.arn})
        leaf = self.ca.issue(key.public_key(), cert.domain_name, cert.names)
        del key
        cert.sealed = sealed
        cert.certificate_pem = certinfo.to_pem(leaf)
        cert.chain_pem = self.ca.chain_pem
        cert._info = None

    def _renew(self, cert: Certificate, reason: str) -> None:
        self._mint(cert)
        now = self._clock.time()
        cert.meta["issued_at"] = now
        cert.meta["renewal"] = {"RenewalStatus": "SUCCESS", "UpdatedAt": now}
        with self._db.transaction():
            self._save(cert)
            self._publish_renewed(cert, reason)
        log.info("renewed %s (%s)", cert.arn, reason)

    def _publish_renewed(self, cert: Certificate, reason: str) -> None:
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

    # == internals: AWS shapes ====================================================================

    def _validation(self, cert: Certificate, status: str) -> list[dict[str, Any]]:
        return domains.validation_options(
            ACCOUNT_ID,
            cert.names,
            str(cert.meta.get("validation_method", "DNS")),
            status,
            cert.meta.get("validation_overrides") or None,
        )

    def _detail(self, cert: Certificate) -> dict[str, Any]:
        status = self._status(cert)
        d: dict[str, Any] = {
            "CertificateArn": cert.arn,
            "DomainName": cert.domain_name,
            "SubjectAlternativeNames": cert.names,
        }
        if cert.type == "AMAZON_ISSUED":
            vstatus = {"PENDING_VALIDATION": "PENDING_VALIDATION", "FAILED": "FAILED"}.get(cert.status, "SUCCESS")
            d["DomainValidationOptions"] = self._validation(cert, vstatus)
        ci = cert.info
        if ci is not None:
            d["Serial"] = ci.serial
            d["Subject"] = ci.subject
            d["Issuer"] = ci.issuer
        d.update(_lifecycle_times(cert))
        d["Status"] = status
        if ci is not None:
            d["NotBefore"] = ci.not_before
            d["NotAfter"] = ci.not_after
        d["KeyAlgorithm"] = keys.describe_name(cert.key_algorithm)
        if ci is not None:
            d["SignatureAlgorithm"] = ci.signature_algorithm
        d["InUseBy"] = self.in_use_by(cert.arn)
        if cert.status == "FAILED":
            d["FailureReason"] = cert.meta.get("failure_reason", "OTHER")
        d["Type"] = cert.type
        renewal = cert.meta.get("renewal")
        if cert.type == "AMAZON_ISSUED" and renewal:
            r_status = renewal["RenewalStatus"]
            d["RenewalSummary"] = {
                "RenewalStatus": r_status,
                "DomainValidationOptions": self._validation(
                    cert, "SUCCESS" if r_status in ("SUCCESS", "PENDING_AUTO_RENEWAL") else "PENDING_VALIDATION"
                ),
                "UpdatedAt": _ts(renewal["UpdatedAt"]),
            }
            if renewal.get("RenewalStatusReason"):
                d["RenewalSummary"]["RenewalStatusReason"] = renewal["RenewalStatusReason"]
        if ci is not None:
            d["KeyUsages"] = [{"Name": n} for n in ci.key_usages]
            d["ExtendedKeyUsages"] = [{"Name": n, "OID": o} for n, o in ci.extended_key_usages]
        d["RenewalEligibility"] = "ELIGIBLE" if self._eligible(cert) else "INELIGIBLE"
        d["Options"] = dict(cert.meta.get("options", {}))
        if cert.meta.get("managed_by"):
            d["ManagedBy"] = cert.meta["managed_by"]
        return d

    def _summary(self, cert: Certificate) -> dict[str, Any]:
        ci = cert.info
        s: dict[str, Any] = {
            "CertificateArn": cert.arn,
            "DomainName": cert.domain_name,
            "SubjectAlternativeNameSummaries": cert.names[:100],
            "HasAdditionalSubjectAlternativeNames": len(cert.names) > 100,
            "Status": self._status(cert),
            "Type": cert.type,
            "KeyAlgorithm": cert.key_algorithm,
            "KeyUsages": list(ci.key_usages) if ci else [],
            "ExtendedKeyUsages": [n for n, _ in ci.extended_key_usages] if ci else [],
            "ExportOption": cert.export_option,
            "InUse": bool(self._in_use_rows(cert.arn)),
            "Exported": bool(cert.meta.get("exported")),
            "RenewalEligibility": "ELIGIBLE" if self._eligible(cert) else "INELIGIBLE",
        }
        if ci is not None:
            s["NotBefore"] = ci.not_before
            s["NotAfter"] = ci.not_after
        s.update(_lifecycle_times(cert))
        if cert.meta.get("managed_by"):
            s["ManagedBy"] = cert.meta["managed_by"]
        return s


# == helpers ======================================================================================


def association_context(cert_arn: str, lightsail_arn: str) -> dict[str, str]:
    """The encryption context of a load balancer's data key (and of its grant's constraint)."""
    return {ACM_ARN_CONTEXT: cert_arn, LIGHTSAIL_ARN_CONTEXT: lightsail_arn}


def _from_row(row: sqlite3.Row) -> Certificate:
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


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(float(value), dt.UTC) if value is not None else None


def _check_tag_key(key: str) -> None:
    if key.lower().startswith("aws:"):
        raise InvalidTagException(
            "One or both of the values that make up the key-value pair is not valid. For example, you cannot "
            "specify a tag value that begins with aws:."
        )


def _tag_map(tags: Sequence[Mapping[str, Any]], current: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    for t in tags:
        key = str(t["Key"])
        _check_tag_key(key)
        out[key] = t.get("Value")
    if len(out) > MAX_TAGS:
        shown = ", ".join(f"{k}={v or ''}" for k, v in out.items())
        raise TooManyTagsException(f"the TagSet: '{{{shown}}}' contains too many Tags")
    return out


def _tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": k} if v is None else {"Key": k, "Value": v} for k, v in tags.items()]


def _fingerprint(names: list[str], method: str, algorithm: str, opts: dict[str, str], tags: dict[str, Any]) -> str:
    doc = json.dumps([names, method, algorithm, opts, sorted(tags.items())], sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise InvalidArgsException("One or more of request parameters specified is not valid.")


def _lifecycle_times(cert: Certificate) -> dict[str, Any]:
    """``ImportedAt`` for imported certificates; ``CreatedAt`` (and ``IssuedAt`` once issued) otherwise."""
    if cert.type == "IMPORTED":
        return {"ImportedAt": _ts(cert.meta.get("imported_at"))}
    out = {"CreatedAt": _ts(cert.created_at)}
    if cert.meta.get("issued_at"):
        out["IssuedAt"] = _ts(cert.meta["issued_at"])
    return out

"""``CertificateManager``: ACM's state and lifecycle, with no HTTP in sight.

A certificate is one row of ``acm_certificates`` (``certstore``): its metadata, its PEM certificate and
chain once issued, and its private key as a ``SealedKey`` (never a plaintext field). Time comes from the
injected ``Clock``; transitions (``lifecycle``) are applied lazily whenever a certificate is read and by
``tick()``, the sweep the control plane runs every ``sweep_interval``:

- ``PENDING_VALIDATION`` -> ``ISSUED`` once ``validation_delay`` has passed (``issuance``).
- managed renewal of a certificate in use or exported: ``PENDING_AUTO_RENEWAL`` when it enters the renewal
  window, a new key and certificate under the same ARN ``validation_delay`` later, and the
  ``certificate.renewed`` event that tells its users to rotate (``renewal``).
- ``EXPIRED`` is computed from NotAfter.

The operations live with their kind: ``issuance`` (RequestCertificate), ``renewal`` (RenewCertificate),
``importexport`` (ImportCertificate, ExportCertificate), ``associations`` (``InUseBy``, the load balancer's
grant and bundle); the reads, deletion and tags are here, over the pure ``details`` and ``tags``.

Certificates another service owns (``owner``: Lightsail's load-balancer certificates) are protected from the
account's ACM operations, not hidden: the ACM API (``for_account=True``) lists, describes, gets and tags them, but
DeleteCertificate, RenewCertificate and ExportCertificate are ``ResourceInUseException`` naming the owner (and
ImportCertificate never re-imports over a certificate ACM issued). The owner itself calls these methods without
``for_account``: Lightsail deletes its certificate when its load-balancer certificate goes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lbproxy.certs import details
from lbproxy.certs.associations import GRANT_NAME, GRANT_OPERATIONS, Associations
from lbproxy.certs.ca import LocalCA
from lbproxy.certs.certstore import SCHEMA, EventSink
from lbproxy.certs.errors import in_progress, in_use
from lbproxy.certs.importexport import ImportExport
from lbproxy.certs.issuance import IDEMPOTENCY_WINDOW, Issuance
from lbproxy.certs.lifecycle import REASON_MANAGED, REASON_REIMPORTED, REASON_REQUESTED, RENEWAL_RETRY
from lbproxy.certs.records import (
    ACM_ARN_CONTEXT,
    ARN_PATTERN,
    LIGHTSAIL_ARN_CONTEXT,
    LIGHTSAIL_OWNER,
    PENDING_VALIDATION,
    Certificate,
    association_context,
)
from lbproxy.certs.renewal import Renewal
from lbproxy.certs.tags import MAX_TAGS, tag_list, with_tags, without_tags
from lbproxy.certs.vault import KeyServiceLike, KeyVault
from lbproxy.config import ControlSettings
from lbproxy.contract.vocabulary import CERTIFICATE_DELETED
from lbproxy.core.clock import Clock
from lbproxy.core.store import Database

__all__ = [
    "ACM_ARN_CONTEXT",
    "ARN_PATTERN",
    "GRANT_NAME",
    "GRANT_OPERATIONS",
    "IDEMPOTENCY_WINDOW",
    "LIGHTSAIL_ARN_CONTEXT",
    "LIGHTSAIL_OWNER",
    "MAX_TAGS",
    "REASON_MANAGED",
    "REASON_REIMPORTED",
    "REASON_REQUESTED",
    "RENEWAL_RETRY",
    "Certificate",
    "CertificateManager",
    "EventSink",
    "association_context",
]


class CertificateManager(Issuance, Renewal, ImportExport, Associations):
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
        db.ensure_schema(SCHEMA)
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

    def _advance(self, cert: Certificate) -> int:
        now = self._clock.time()
        if cert.status == PENDING_VALIDATION:
            return self._validate(cert, now)
        return self._managed_renewal(cert, now)

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
            wanted = details.ListFilter.of(statuses, includes)
            now = self._clock.now()
            certs = []
            for row in self._db.query("SELECT arn FROM acm_certificates ORDER BY created_at, rowid"):
                cert = self._load(row["arn"])
                if cert is not None and wanted.matches(cert, now):
                    certs.append(cert)
            if sort_order == "DESCENDING":
                certs.reverse()
            start = details.decode_token(next_token) if next_token else 0
            end = len(certs) if not max_items else start + max_items
            out: dict[str, Any] = {"CertificateSummaryList": [self._summary(c) for c in certs[start:end]]}
            if end < len(certs):
                out["NextToken"] = details.encode_token(end)
            return out

    def _detail(self, cert: Certificate) -> dict[str, Any]:
        return details.detail(cert, self._status(cert), self.in_use_by(cert.arn), self._eligible(cert))

    def _summary(self, cert: Certificate) -> dict[str, Any]:
        in_use_now = bool(self._in_use_rows(cert.arn))
        return details.summary(cert, self._status(cert), in_use_now, self._eligible(cert))

    # == changes ==================================================================================

    def delete_certificate(self, arn: str, *, for_account: bool = False) -> None:
        """Delete (DeleteCertificate). ``for_account``: the account asks, so another service's certificate is
        refused."""
        with self._lock:
            cert = self._get(arn)
            if for_account:
                self._refuse_owned(cert, "deleted")
            if self._in_use_rows(arn):
                raise in_use(arn)
            with self._db.transaction() as tx:
                tx.execute("DELETE FROM acm_certificates WHERE arn = ?", (cert.arn,))
                tx.execute("DELETE FROM acm_idempotency WHERE certificate_arn = ?", (cert.arn,))
                self._events.publish(CERTIFICATE_DELETED, {"certificateArn": cert.arn})

    def assign_owner(self, arn: str, owner: str | None) -> None:
        """Make a certificate ``owner``'s (for certificates a service requested before it passed ``owner`` to
        ``request_certificate``), or the account's again (None or ""); idempotent."""
        with self._lock:
            cert = self._require(arn)
            if cert.owner != (owner or None):
                if owner:
                    cert.meta["owner"] = owner
                else:
                    cert.meta.pop("owner", None)
                self._save(cert)

    # == tags =====================================================================================

    def add_tags(self, arn: str, tags: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            cert = self._get(arn)
            cert.meta["tags"] = with_tags(tags, dict(cert.meta.get("tags", {})))
            self._save(cert)

    def remove_tags(self, arn: str, tags: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            cert = self._get(arn)
            cert.meta["tags"] = without_tags(tags, dict(cert.meta.get("tags", {})))
            self._save(cert)

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        with self._lock:
            cert = self._get(arn)
            return tag_list(cert.meta.get("tags", {}))

    # == the control plane's own reads ============================================================

    def sealing_key_arn(self, arn: str) -> str:
        """The KMS key that wraps the certificate's private key (ACM's API does not say; its record does); before
        the certificate has a key, the one it will be sealed under (``alias/aws/acm``)."""
        with self._lock:
            cert = self._require(arn)
            return cert.sealed.key_arn if cert.sealed is not None else self.kms.key_arn(self.vault.key_id)

"""Issuance: RequestCertificate, and validation (``PENDING_VALIDATION`` -> ``ISSUED``).

A request is checked (names, validation method, key algorithm: ``RSA_2048``, ``EC_prime256v1`` or
``EC_secp384r1``, as ACM issues; options, tags) and recorded as ``PENDING_VALIDATION``; the same request with the
same ``IdempotencyToken`` within an hour returns the same ARN. Once ``validation_delay`` has passed
(``lifecycle.validation_due``) the key pair is generated, the local CA signs the certificate and the key is sealed
under ``alias/aws/acm`` with ``{"aws:acm:arn": arn}``; a key-service error on the way makes the certificate
``FAILED``.

A certificate another service requests for itself names that service as its ``owner`` (Lightsail's load-balancer
certificates: ``LIGHTSAIL_OWNER``): the account's ACM operations may read it but not delete, renew, export or
re-import over it (``CertificateManager``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lbproxy.awsapi.errors import AwsError
from lbproxy.certs import domains, keys
from lbproxy.certs.certstore import CertificateStore
from lbproxy.certs.errors import InvalidArnException, InvalidParameterException, ValidationException
from lbproxy.certs.lifecycle import validation_due
from lbproxy.certs.records import AMAZON_ISSUED, FAILED, ISSUED, PENDING_VALIDATION, Certificate
from lbproxy.certs.tags import with_tags
from lbproxy.contract.vocabulary import CERTIFICATE_ISSUED
from lbproxy.core.principals import ACCOUNT_ID

log = logging.getLogger("lbproxy.certs")

#: How long (seconds) an ``IdempotencyToken`` returns the certificate it first requested.
IDEMPOTENCY_WINDOW = 3600.0


def request_fingerprint(
    names: list[str], method: str, algorithm: str, opts: dict[str, str], tags: dict[str, Any]
) -> str:
    """What makes two requests with the same idempotency token the same request."""
    doc = json.dumps([names, method, algorithm, opts, sorted(tags.items())], sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


class Issuance(CertificateStore):
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
        owner: str | None = None,
    ) -> str:
        """Request a certificate; ``owner`` names the service it is for (None: the account's)."""
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
        if algorithm not in keys.REQUESTABLE:  # the message real ACM gives (research: floci-io/floci#3027)
            raise ValidationException(f"Encryption Algorithm {algorithm} is not supported in {self.region} region")
        opts = {
            "CertificateTransparencyLoggingPreference": "ENABLED",
            "Export": "DISABLED",
        }
        opts.update({k: v for k, v in dict(options or {}).items() if k in opts})
        tag_map = with_tags(tags or [], {})
        now = self._clock.time()
        overrides = list(domain_validation_options or [])
        domains.validation_options(ACCOUNT_ID, names, method, PENDING_VALIDATION, overrides)  # checks
        fingerprint = request_fingerprint(names, method, algorithm, opts, tag_map)
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
            if owner is not None:
                meta["owner"] = owner
            self._save(Certificate(arn, AMAZON_ISSUED, PENDING_VALIDATION, now, meta), insert=True)
            if idempotency_token:
                tx.execute(
                    "INSERT OR REPLACE INTO acm_idempotency (token, fingerprint, certificate_arn, expires) "
                    "VALUES (?,?,?,?)",
                    (idempotency_token, fingerprint, arn, now + IDEMPOTENCY_WINDOW),
                )
                tx.execute("DELETE FROM acm_idempotency WHERE expires <= ?", (now,))
        return arn

    def _validate(self, cert: Certificate, now: float) -> int:
        """Issue ``cert`` if its validation is due; returns 1 if it moved on."""
        if not validation_due(cert, now, self._settings.validation_delay):
            return 0
        self._issue(cert)
        return 1

    def _issue(self, cert: Certificate) -> None:
        """PENDING_VALIDATION -> ISSUED: key pair, certificate from the local CA, sealed key."""
        try:
            self._mint(cert)
        except AwsError as exc:
            log.warning("issuing %s failed: %s %s", cert.arn, exc.code, exc.message)
            cert.status = FAILED
            cert.meta["failure_reason"] = "OTHER"
            self._save(cert)
            return
        cert.status = ISSUED
        cert.meta["issued_at"] = self._clock.time()
        with self._db.transaction():
            self._save(cert)
            ci = cert.info
            assert ci is not None
            self._events.publish(
                CERTIFICATE_ISSUED,
                {"certificateArn": cert.arn, "serial": ci.serial, "notAfter": ci.not_after.timestamp()},
            )

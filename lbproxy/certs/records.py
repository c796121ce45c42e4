"""ACM certificates as records, pure: the ``Certificate`` as stored, its ARN, and the encryption contexts
its private key is sealed under.

A certificate is ``AMAZON_ISSUED`` (requested, issued by the local CA) or ``IMPORTED``. Its stored status
is ``PENDING_VALIDATION``, ``ISSUED`` or ``FAILED``; ``EXPIRED`` is computed from NotAfter (``status_at``).
What has no column of its own (names, key algorithm, options, tags, renewal, timestamps) is in ``meta``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from lbproxy.certs import certinfo, keys
from lbproxy.certs.errors import InvalidArnException, ValidationException, not_found
from lbproxy.contract.sealed import SealedKey
from lbproxy.core.principals import ACCOUNT_ID

AMAZON_ISSUED = "AMAZON_ISSUED"
IMPORTED = "IMPORTED"

PENDING_VALIDATION = "PENDING_VALIDATION"
ISSUED = "ISSUED"
FAILED = "FAILED"
EXPIRED = "EXPIRED"

#: The encryption context of a certificate's sealed key, and (with the load balancer) of a load
#: balancer's copy of its data key and of that load balancer's grant.
ACM_ARN_CONTEXT = "aws:acm:arn"
LIGHTSAIL_ARN_CONTEXT = "aws:lightsail:arn"

#: The ``owner`` of a certificate Lightsail requests for a load balancer (``request_certificate(owner=...)``).
LIGHTSAIL_OWNER = "lightsail"

#: ``Arn``'s pattern from the ACM model, and the shape of a certificate ARN.
ARN_PATTERN = r"arn:[\w+=/,.@-]+:acm:[\w+=/,.@-]*:[0-9]+:[\w+=,.@-]+(/[\w+=,.@-]+)*"
_ARN_RE = re.compile(ARN_PATTERN)
_CERT_ARN_RE = re.compile(r"arn:aws:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}")


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
    def owner(self) -> str | None:
        """The service the certificate is for (``LIGHTSAIL_OWNER``), or None: the account's own."""
        owner = self.meta.get("owner")
        return str(owner) if owner else None

    @property
    def export_option(self) -> str:
        return str(self.meta.get("options", {}).get("Export", "DISABLED"))


def status_at(cert: Certificate, now: dt.datetime) -> str:
    """The status ACM shows: the stored one, or ``EXPIRED`` for an issued certificate past NotAfter."""
    ci = cert.info
    if cert.status == ISSUED and ci is not None and ci.not_after < now:
        return EXPIRED
    return cert.status


def new_arn(region: str) -> str:
    return f"arn:aws:acm:{region}:{ACCOUNT_ID}:certificate/{uuid.uuid4()}"


def check_arn(arn: str, region: str) -> None:
    """A malformed ARN is a ValidationException, an ARN of something else InvalidArnException, a certificate
    ARN of another account or region not found."""
    if not _ARN_RE.fullmatch(arn):
        raise ValidationException(
            f"1 validation error detected: Value '{arn}' at 'certificateArn' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {ARN_PATTERN}"
        )
    if not _CERT_ARN_RE.fullmatch(arn):
        raise InvalidArnException(f"String '{arn}' is not a valid ARN.")
    if not arn.startswith(f"arn:aws:acm:{region}:{ACCOUNT_ID}:"):
        raise not_found(arn)


def key_context(cert_arn: str) -> dict[str, str]:
    """The encryption context a certificate's private key is sealed under."""
    return {ACM_ARN_CONTEXT: cert_arn}


def association_context(cert_arn: str, lightsail_arn: str) -> dict[str, str]:
    """The encryption context of a load balancer's data key (and of its grant's constraint)."""
    return {ACM_ARN_CONTEXT: cert_arn, LIGHTSAIL_ARN_CONTEXT: lightsail_arn}


def ts(value: Any) -> dt.datetime | None:
    """A stored timestamp (seconds) as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(float(value), dt.UTC) if value is not None else None

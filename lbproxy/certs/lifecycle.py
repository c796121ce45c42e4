"""When a certificate moves on, pure: validation (``PENDING_VALIDATION`` -> ``ISSUED``) and managed
renewal, decided on values (the record, the time, the settings); ``issuance`` and ``renewal`` act on it.

- Validation: a requested certificate is issued ``validation_delay`` seconds after it was requested.
- Managed renewal of an eligible certificate (``AMAZON_ISSUED``, ``ISSUED``, in use or exported): when it
  enters the renewal window (``renewal_window_days`` before NotAfter) its ``RenewalSummary`` becomes
  ``PENDING_AUTO_RENEWAL``, due ``validation_delay`` later; when due it is renewed (``SUCCESS``) or, if
  that fails, ``FAILED``, tried again ``RENEWAL_RETRY`` seconds later.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from lbproxy.certs.records import ISSUED, PENDING_VALIDATION, Certificate

#: After a failed managed renewal, wait this long (seconds) before trying again.
RENEWAL_RETRY = 3600.0

PENDING_AUTO_RENEWAL = "PENDING_AUTO_RENEWAL"
SUCCESS = "SUCCESS"
RENEWAL_FAILED = "FAILED"

# Reasons carried by ``certificate.renewed``.
REASON_MANAGED = "MANAGED_RENEWAL"
REASON_REQUESTED = "RENEW_CERTIFICATE"
REASON_REIMPORTED = "REIMPORT"


class RenewalStep(Enum):
    """What managed renewal does next to an eligible certificate."""

    NOTHING = "nothing"
    #: Enter the renewal window: ``PENDING_AUTO_RENEWAL``, due ``validation_delay`` later.
    START = "start"
    #: The pending renewal is due: a new key and certificate under the same ARN.
    RENEW = "renew"


def validation_due(cert: Certificate, now: float, validation_delay: float) -> bool:
    return cert.status == PENDING_VALIDATION and now >= cert.created_at + validation_delay


def renewal_step(cert: Certificate, now: float, renewal_window_days: float) -> RenewalStep:
    """The next managed-renewal step of an issued certificate (eligibility is the caller's to check)."""
    ci = cert.info
    if cert.status != ISSUED or ci is None:
        return RenewalStep.NOTHING
    renewal = cert.meta.get("renewal") or {}
    if renewal.get("RenewalStatus") == PENDING_AUTO_RENEWAL:
        return RenewalStep.RENEW if now >= float(renewal.get("due", 0)) else RenewalStep.NOTHING
    window_start = ci.not_after.timestamp() - renewal_window_days * 86400
    if now >= window_start and (
        renewal.get("RenewalStatus") != RENEWAL_FAILED or now >= float(renewal["UpdatedAt"]) + RENEWAL_RETRY
    ):
        return RenewalStep.START
    return RenewalStep.NOTHING


def renewal_pending(now: float, validation_delay: float) -> dict[str, Any]:
    return {"RenewalStatus": PENDING_AUTO_RENEWAL, "UpdatedAt": now, "due": now + validation_delay}


def renewal_succeeded(now: float) -> dict[str, Any]:
    return {"RenewalStatus": SUCCESS, "UpdatedAt": now}


def renewal_failed(now: float) -> dict[str, Any]:
    return {"RenewalStatus": RENEWAL_FAILED, "UpdatedAt": now, "RenewalStatusReason": "OTHER"}

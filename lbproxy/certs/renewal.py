"""Renewal: managed renewal (the steps ``lifecycle.renewal_step`` decides) and RenewCertificate.

A renewal keeps the ARN and gives the certificate a new key pair and a new certificate from the local
CA; ``certificate.renewed`` tells the resources that use it (their principals) to load the new one. A
managed renewal that fails (the key service refuses, e.g. ``alias/aws/acm`` disabled) is ``FAILED`` and
tried again later.

RenewCertificate "renews an eligible ACM certificate" (its documentation): one DescribeCertificate shows as
``RenewalEligibility: ELIGIBLE``, the certificates ACM renews itself: issued by ACM, not expired, and in use or
exported. An imported, failed, expired, or unused and never exported certificate is a ``ValidationException``; one
still ``PENDING_VALIDATION`` is ``RequestInProgressException``. (The ACM guide words it more narrowly, "only
certificates that have been previously exported"; lbproxy also renews a certificate in use, as managed renewal
would.) A certificate another service owns (Lightsail's) is renewed by ACM's managed renewal, never on the
account's request.
"""

from __future__ import annotations

import logging

from lbproxy.awsapi.errors import AwsError
from lbproxy.certs.certstore import CertificateStore
from lbproxy.certs.errors import ValidationException, in_progress
from lbproxy.certs.lifecycle import (
    REASON_MANAGED,
    REASON_REQUESTED,
    RenewalStep,
    renewal_failed,
    renewal_pending,
    renewal_step,
    renewal_succeeded,
)
from lbproxy.certs.records import AMAZON_ISSUED, ISSUED, PENDING_VALIDATION, Certificate

log = logging.getLogger("lbproxy.certs")


class Renewal(CertificateStore):
    def renew_certificate(self, arn: str, *, for_account: bool = False) -> None:
        """Renew now (ACM's RenewCertificate): a new key and certificate under the same ARN. ``for_account``: the
        account asks (the ACM API), so a certificate another service owns is refused."""
        with self._lock:
            cert = self._get(arn)
            if for_account:
                self._refuse_owned(cert, "renewed")
            if cert.type != AMAZON_ISSUED:
                raise ValidationException(f"Certificate {arn} is not eligible for renewal: it is imported.")
            if cert.status == PENDING_VALIDATION:
                raise in_progress(arn)
            if not self._eligible(cert):
                raise ValidationException(
                    f"Certificate {arn} is not eligible for renewal (RenewalEligibility INELIGIBLE): only an issued, "
                    "unexpired certificate that is in use or has been exported can be renewed."
                )
            self._renew(cert, REASON_REQUESTED)

    def _managed_renewal(self, cert: Certificate, now: float) -> int:
        """Take the managed-renewal step that is due for ``cert``, if any; returns 1 if it moved on."""
        if cert.status != ISSUED or not self._eligible(cert):
            return 0
        step = renewal_step(cert, now, self._settings.renewal_window_days)
        if step is RenewalStep.RENEW:
            try:
                self._renew(cert, REASON_MANAGED)
            except AwsError as exc:  # e.g. aws/acm disabled: FAILED now, retried from the window check
                log.warning("managed renewal of %s failed: %s %s", cert.arn, exc.code, exc.message)
                cert.meta["renewal"] = renewal_failed(now)
                self._save(cert)
            return 1
        if step is RenewalStep.START:
            cert.meta["renewal"] = renewal_pending(now, self._settings.validation_delay)
            self._save(cert)
            return 1
        return 0

    def _renew(self, cert: Certificate, reason: str) -> None:
        self._mint(cert)
        now = self._clock.time()
        cert.meta["issued_at"] = now
        cert.meta["renewal"] = renewal_succeeded(now)
        with self._db.transaction():
            self._save(cert)
            self._publish_renewed(cert, reason)
        log.info("renewed %s (%s)", cert.arn, reason)

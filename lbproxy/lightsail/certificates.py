"""``CertificateBroker``: Lightsail's thin adapter over ACM's ``CertificateManager``.

A Lightsail load-balancer TLS certificate wraps an ACM certificate: Lightsail asks ACM for it (as ACM
does for Lightsail), mirrors its status (``PENDING_VALIDATION`` -> ``ISSUED``), and on attach asks ACM
to associate it with the load balancer, which creates the KMS grant ``IssuedThroughACM``:

- created by the ACM service principal on ``alias/aws/acm``,
- grantee the load balancer's principal, operations ``Decrypt`` and ``DescribeKey``,
- constraint ``EncryptionContextEquals {"aws:acm:arn": <cert>, "aws:lightsail:arn": <load balancer>}``,
- retiring principal ACM; ``disassociate`` retires it.

The ACM certificates Lightsail requests are Lightsail's (``owner`` ``LIGHTSAIL_OWNER``): the account's ACM API
reads and tags them but cannot delete, renew or export them from under a load balancer; Lightsail deletes its
own. Certificates requested before owners existed are made Lightsail's when the control plane starts
(``assign_owner``).

Everything ACM-specific goes through here, so a change in the certificate manager's API is a change in
one file. ACM errors are turned into Lightsail's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from lbproxy.awsapi.errors import AwsError
from lbproxy.certs.manager import GRANT_NAME, LIGHTSAIL_OWNER, CertificateManager, association_context
from lbproxy.keyservice.service import KeyService
from lbproxy.lightsail.errors import InvalidInputException, NotFoundException, OperationFailureException

T = TypeVar("T")

#: ACM ``Status`` -> Lightsail ``LoadBalancerTlsCertificateStatus``.
_STATUS = {
    "PENDING_VALIDATION": "PENDING_VALIDATION",
    "ISSUED": "ISSUED",
    "INACTIVE": "INACTIVE",
    "EXPIRED": "EXPIRED",
    "VALIDATION_TIMED_OUT": "VALIDATION_TIMED_OUT",
    "REVOKED": "REVOKED",
    "FAILED": "FAILED",
}


@dataclasses.dataclass(frozen=True, slots=True)
class GrantRef:
    grant_id: str
    token: str
    key_arn: str
    active: bool = True


@contextmanager
def _as_lightsail(what: str) -> Iterator[None]:
    """ACM errors -> Lightsail's (not found -> NotFoundException, in progress -> OperationFailure, ...)."""
    try:
        yield
    except AwsError as exc:
        if exc.code.startswith(("InvalidInput", "NotFound", "OperationFailure", "AccessDenied")):
            raise
        if exc.code == "ResourceNotFoundException":
            raise NotFoundException(f"The {what} does not exist: {exc.message}") from None
        if exc.code in ("RequestInProgressException", "InvalidStateException", "ResourceInUseException"):
            raise OperationFailureException(exc.message) from None
        raise InvalidInputException(exc.message) from None


class CertificateBroker:
    def __init__(self, manager: CertificateManager, kms: KeyService) -> None:
        self.manager = manager
        self.kms = kms

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with _as_lightsail(what):
            return fn()

    def request(self, domain_name: str, alternative_names: list[str]) -> str:
        """Request an ACM certificate (DNS validation, as Lightsail does); returns its ARN."""
        return self._call(
            "Certificate",
            lambda: self.manager.request_certificate(
                domain_name,
                subject_alternative_names=[domain_name, *alternative_names],
                validation_method="DNS",
                owner=LIGHTSAIL_OWNER,
            ),
        )

    def assign_owner(self, acm_arn: str) -> None:
        """Make a certificate Lightsail requested before owners existed Lightsail's (idempotent)."""
        self._call("Certificate", lambda: self.manager.assign_owner(acm_arn, LIGHTSAIL_OWNER))

    def describe(self, acm_arn: str) -> dict[str, Any]:
        """ACM's ``Certificate`` detail (``DescribeCertificate``)."""
        return self._call("Certificate", lambda: self.manager.describe_certificate(acm_arn))

    def exists(self, acm_arn: str) -> bool:
        try:
            self.describe(acm_arn)
        except NotFoundException:
            return False
        return True

    @staticmethod
    def status(detail: dict[str, Any]) -> str:
        return _STATUS.get(str(detail.get("Status", "")), "UNKNOWN")

    def associate(self, acm_arn: str, lb_arn: str, principal_arn: str) -> GrantRef:
        """Record the load balancer in ``InUseBy`` and create (or return) its grant."""
        grant_id = self._call("Certificate", lambda: self.manager.associate(acm_arn, lb_arn, principal_arn))
        ref = self.grant(acm_arn, lb_arn, grant_id)
        if ref is None or not ref.active:
            # The association's grant was revoked behind ACM's back: retire the association, grant anew.
            self.disassociate(acm_arn, lb_arn)
            grant_id = self._call("Certificate", lambda: self.manager.associate(acm_arn, lb_arn, principal_arn))
            ref = self.grant(acm_arn, lb_arn, grant_id)
        if ref is None:
            raise OperationFailureException(f"The grant for {acm_arn} on {lb_arn} could not be created.")
        return ref

    def disassociate(self, acm_arn: str, lb_arn: str) -> None:
        """Drop the association and retire its grant (as ACM, the retiring principal)."""
        self._call("Certificate", lambda: self.manager.remove_in_use(acm_arn, lb_arn))

    def grant(self, acm_arn: str, lb_arn: str, grant_id: str) -> GrantRef | None:
        """The grant's id, token and key, if it still exists (``active=False`` when it was revoked)."""
        key_arn = self.key_arn()
        for g in self.kms.grants_for_key(key_arn):
            if g.grant_id == grant_id:
                expected = {"EncryptionContextEquals": association_context(acm_arn, lb_arn)}
                ok = g.name == GRANT_NAME and dict(g.constraints or {}) == expected
                return GrantRef(g.grant_id, g.token, self.kms.key_arn(g.key_id), active=ok)
        return GrantRef(grant_id, "", key_arn, active=False)

    def key_arn(self) -> str:
        """The master key ACM seals under (``alias/aws/acm``)."""
        return self.kms.key_arn(self.manager.vault.key_id)

    def bundle(self, acm_arn: str, lb_arn: str) -> dict[str, Any]:
        """The sealed bundle for the load balancer (data key wrapped under the two-key context)."""
        return self._call("Certificate", lambda: self.manager.seal_for(acm_arn, lb_arn))

    def delete(self, acm_arn: str) -> None:
        self._call("Certificate", lambda: self.manager.delete_certificate(acm_arn))

    @staticmethod
    def context(acm_arn: str, lb_arn: str) -> dict[str, str]:
        return association_context(acm_arn, lb_arn)

"""Associations: who uses a certificate (``InUseBy``), the KMS grant a load balancer decrypts with, and
the bundle it loads (called by the Lightsail service, not on the wire).

``add_in_use`` records a user; ``associate`` also creates the grant ``IssuedThroughACM`` (grantee the load
balancer's principal; Decrypt, DescribeKey; ``EncryptionContextEquals {aws:acm:arn, aws:lightsail:arn}``;
retiring principal ACM). ``seal_for`` gives that load balancer its bundle: the sealed key with the data key
re-wrapped under ``{"aws:acm:arn", "aws:lightsail:arn"}``, which only its grant can unwrap.
"""

from __future__ import annotations

import logging
from typing import Any

from lbproxy.awsapi.errors import AwsError
from lbproxy.certs.certstore import CertificateStore
from lbproxy.certs.errors import InvalidStateException, in_progress
from lbproxy.certs.records import association_context
from lbproxy.contract.sealed import bundle_to_json
from lbproxy.core.principals import ACM_SERVICE_PRINCIPAL

log = logging.getLogger("lbproxy.certs")

GRANT_NAME = "IssuedThroughACM"
GRANT_OPERATIONS = ["Decrypt", "DescribeKey"]


class Associations(CertificateStore):
    def in_use_by(self, arn: str) -> list[str]:
        return [r["resource_arn"] for r in self._in_use_rows(arn)]

    def used_by_principal(self, arn: str, principal_arn: str) -> bool:
        """Whether a resource whose own principal is ``principal_arn`` uses the certificate (a load balancer's
        role and the certificate attached to it): what a role may read in ACM."""
        return any(r["principal_arn"] == principal_arn for r in self._in_use_rows(arn))

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

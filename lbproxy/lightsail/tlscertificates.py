"""Load-balancer TLS certificates: CreateLoadBalancerTlsCertificate, GetLoadBalancerTlsCertificates,
AttachLoadBalancerTlsCertificate, DeleteLoadBalancerTlsCertificate, and lbproxy's two extensions (attach an
existing ACM certificate, detach without deleting).

A Lightsail certificate wraps an ACM certificate (``certificates.CertificateBroker``). Attaching asks ACM for the
association and its KMS grant (``IssuedThroughACM``); swapping creates the new grant before the old one is
retired; detaching, deleting the certificate and deleting the load balancer retire it.

Operations as AWS answers them (the AWS CLI's captured examples): creating and attaching answer two
``Succeeded`` operations (the certificate's and the load balancer's); deleting answers two that stay
``Started`` for ``lb_operation_delay`` seconds. A load balancer holds at most ``max_certificates_per_lb``
certificates (Lightsail: 2, the CreateLoadBalancerTlsCertificate API reference).

Events (audience: the load balancer's principal): ``loadbalancer.certificate_attached`` (``swapped`` when it
replaced another), ``loadbalancer.certificate_detached``. The key service adds ``grant.created`` /
``grant.retired`` / ``grant.revoked`` (the principal is the grantee) and ACM ``certificate.renewed`` (the
principal is in the certificate's ``InUseBy`` audience).
"""

from __future__ import annotations

from typing import Any

from lbproxy.contract.vocabulary import LB_CERTIFICATE_ATTACHED
from lbproxy.lightsail import attributes as attrs_mod
from lbproxy.lightsail import wire
from lbproxy.lightsail.errors import InvalidInputException, not_found
from lbproxy.lightsail.rows import CERT_TYPE, LB_TYPE, ORIGIN_ACM, LbCertificate
from lbproxy.lightsail.store import LightsailStore


class TlsCertificateOperations(LightsailStore):
    def create_certificate(
        self,
        lb_name: str,
        cert_name: str,
        domain_name: str,
        alternative_names: list[str] | None,
        tags: list[dict[str, str]] | None,
    ) -> list[dict[str, Any]]:
        """CreateLoadBalancerTlsCertificate: ACM is asked for a certificate (DNS validation)."""
        with self._lock, self._db.transaction():
            self._new_certificate(lb_name, cert_name, domain_name, alternative_names, tags)
            return [
                self._operation(cert_name, CERT_TYPE, "CreateLoadBalancerTlsCertificate", lb_name, lb_name=lb_name),
                self._operation(lb_name, LB_TYPE, "CreateLoadBalancerTlsCertificate", cert_name, lb_name=lb_name),
            ]

    def add_acm_certificate(self, lb_name: str, cert_name: str, acm_arn: str) -> dict[str, Any]:
        """The lbproxy extension: wrap an existing (e.g. imported) ACM certificate as a load-balancer
        TLS certificate, so it can be attached like any other. Real Lightsail cannot do this."""
        attrs_mod.check_resource_name(cert_name, "certificate name")
        with self._lock, self._db.transaction():
            self._require_lb(lb_name)
            self._check_certificate_slot(lb_name, cert_name)
            if not self.certificates.exists(acm_arn):
                raise not_found("Certificate", acm_arn)
            self._insert_certificate(lb_name, cert_name, acm_arn, ORIGIN_ACM, [])
        return self._cert_shape(self._require_cert(lb_name, cert_name))

    def get_certificates(self, lb_name: str) -> list[dict[str, Any]]:
        self._require_lb(lb_name)
        return [self._cert_shape(c) for c in self._certs(lb_name)]

    def _cert_shape(self, cert: LbCertificate) -> dict[str, Any]:
        lb = self._require_lb(cert.lb_name)
        detail = self.certificates.describe(cert.acm_arn)
        status = self.certificates.status(detail)
        return wire.tls_certificate(self.region, cert, lb.attached_certificate == cert.name, detail, status)

    def attach_certificate(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        """Attach (or swap to) a certificate: its grant is created first, then the previous one's retired."""
        with self._lock, self._db.transaction() as tx:
            lb = self._require_lb(lb_name)
            cert = self._require_cert(lb_name, cert_name)
            detail = self.certificates.describe(cert.acm_arn)
            status = self.certificates.status(detail)
            if status != "ISSUED":
                raise InvalidInputException(
                    f"The certificate {cert_name} is not valid (status {status}); only an ISSUED certificate can "
                    "be attached."
                )
            previous = self._cert_or_none(lb_name, lb.attached_certificate) if lb.attached_certificate else None
            lb_arn = self._lb_arn(lb)
            if previous is not None and previous.name == cert.name:
                ref = self.certificates.grant(cert.acm_arn, lb_arn, lb.grant_id or "")
                if ref is not None and ref.active:
                    return self._attach_ops(lb_name, cert_name)
            ref = self.certificates.associate(cert.acm_arn, lb_arn, lb.principal_arn)
            tx.execute(
                "UPDATE ls_load_balancers SET attached_certificate = ?, grant_id = ? WHERE name = ?",
                (cert.name, ref.grant_id, lb_name),
            )
            swapped = previous is not None and previous.name != cert.name
            self._events.publish(
                LB_CERTIFICATE_ATTACHED,
                {
                    **self._lb_ref(lb),
                    **wire.cert_ref(self.region, cert),
                    "grantId": ref.grant_id,
                    "keyArn": ref.key_arn,
                    "swapped": swapped,
                    "previousCertificateName": previous.name if swapped and previous else None,
                },
                [lb.principal_arn],
            )
            if swapped and previous is not None:
                self.certificates.disassociate(previous.acm_arn, lb_arn)
        return self._attach_ops(lb_name, cert_name)

    def _attach_ops(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        return [
            self._operation(lb_name, LB_TYPE, "AttachLoadBalancerTlsCertificate", cert_name, lb_name=lb_name),
            self._operation(cert_name, CERT_TYPE, "AttachLoadBalancerTlsCertificate", lb_name, lb_name=lb_name),
        ]

    def detach_certificate(self, lb_name: str, cert_name: str) -> list[dict[str, Any]]:
        """The lbproxy extension: detach the attached certificate without deleting it (grant retired)."""
        with self._lock, self._db.transaction():
            lb = self._require_lb(lb_name)
            self._require_cert(lb_name, cert_name)
            if lb.attached_certificate != cert_name:
                raise InvalidInputException(f"The certificate {cert_name} is not attached to {lb_name}.")
            self._detach(lb, reason="detached")
            details = f"detached {cert_name}"
            return [self._operation(lb_name, LB_TYPE, "AttachLoadBalancerTlsCertificate", details, lb_name=lb_name)]

    def delete_certificate(self, lb_name: str, cert_name: str, force: bool) -> list[dict[str, Any]]:
        with self._lock, self._db.transaction():
            lb = self._require_lb(lb_name)
            cert = self._require_cert(lb_name, cert_name)
            if lb.attached_certificate == cert_name:
                if not force:
                    raise InvalidInputException(
                        f"The certificate {cert_name} is attached to the load balancer {lb_name}. Use force to "
                        "delete it anyway (HTTPS stops)."
                    )
                self._detach(lb, reason="deleted")
            self._drop_certificate(cert)
            delay = self.limits.lb_operation_delay
            return [
                self._operation(cert_name, CERT_TYPE, "DeleteLoadBalancerTlsCertificate", lb_name=lb_name, delay=delay),
                self._operation(lb_name, LB_TYPE, "DeleteLoadBalancerTlsCertificate", lb_name=lb_name, delay=delay),
            ]

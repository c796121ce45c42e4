"""ACM on the wire: ``X-Amz-Target: CertificateManager.<Operation>`` handlers over ``CertificateManager``.

Requests arrive validated against botocore's ``acm`` model (blobs as ``bytearray``). Each handler
checks the caller may call the operation, records what the audit trail should say (ARNs and names,
never a key, a passphrase or a certificate body), and calls the manager.

Who may call what: users (``admin`` and declared users) every operation. A role (a load balancer's principal)
may only read (``DescribeCertificate``, ``GetCertificate``, ``ListTagsForCertificate``) a certificate its load
balancer uses (the association in ``InUseBy`` names the role), as if IAM scoped its policy to that certificate:
any other ARN, existing or not, and ``ListCertificates`` (account-wide) are ``AccessDeniedException``. A load
balancer gets its key through ``seal_for`` and its grant, never here.

These are the account's operations (``for_account=True``): a certificate another service owns (a Lightsail
load-balancer certificate) can be read and tagged here, never deleted, renewed or exported (``CertificateManager``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbproxy.awsapi.errors import AwsError
from lbproxy.awsapi.protocol import Handler, RequestContext
from lbproxy.certs.errors import AccessDeniedException, ValidationException
from lbproxy.certs.manager import CertificateManager
from lbproxy.core.principals import ACCOUNT_ID

READ_ONLY = frozenset({"DescribeCertificate", "GetCertificate", "ListCertificates", "ListTagsForCertificate"})
#: What a role may call, on a certificate its load balancer uses.
ROLE_SCOPED = frozenset({"DescribeCertificate", "GetCertificate", "ListTagsForCertificate"})
RESOURCE_TYPE = "AWS::ACM::Certificate"


class AcmApi:
    target_prefix = "CertificateManager"
    model_name = "acm"
    event_source = "acm.amazonaws.com"
    validation_error: type[AwsError] = ValidationException

    def __init__(self, manager: CertificateManager) -> None:
        self.manager = manager
        self._handlers: dict[str, Handler] = {
            "RequestCertificate": self.request_certificate,
            "DescribeCertificate": self.describe_certificate,
            "ListCertificates": self.list_certificates,
            "GetCertificate": self.get_certificate,
            "DeleteCertificate": self.delete_certificate,
            "ImportCertificate": self.import_certificate,
            "ExportCertificate": self.export_certificate,
            "RenewCertificate": self.renew_certificate,
            "AddTagsToCertificate": self.add_tags_to_certificate,
            "ListTagsForCertificate": self.list_tags_for_certificate,
            "RemoveTagsFromCertificate": self.remove_tags_from_certificate,
        }

    def handlers(self) -> Mapping[str, Handler]:
        return self._handlers

    # -- helpers ---------------------------------------------------------------------------------

    def _authorize(self, ctx: RequestContext, operation: str, resource: str = "*") -> None:
        p = ctx.principal
        if p.kind == "user":
            return
        if p.kind == "role" and operation in ROLE_SCOPED and self.manager.used_by_principal(resource, p.arn):
            return
        raise AccessDeniedException(
            f"User: {p.arn} is not authorized to perform: acm:{operation} on resource: {resource}"
        )

    @staticmethod
    def _audit(ctx: RequestContext, arn: str | None, **request: Any) -> None:
        params = {k: v for k, v in request.items() if v is not None}
        if arn is not None:
            params = {"certificateArn": arn, **params}
            ctx.audit["resources"] = [{"ARN": arn, "accountId": ACCOUNT_ID, "type": RESOURCE_TYPE}]
        ctx.audit["requestParameters"] = params or None

    # -- operations ------------------------------------------------------------------------------

    def request_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._authorize(ctx, "RequestCertificate")
        self._audit(
            ctx,
            None,
            domainName=params["DomainName"],
            subjectAlternativeNames=params.get("SubjectAlternativeNames"),
            validationMethod=params.get("ValidationMethod"),
            keyAlgorithm=params.get("KeyAlgorithm"),
            idempotencyToken=params.get("IdempotencyToken"),
            options=params.get("Options"),
        )
        arn = self.manager.request_certificate(
            params["DomainName"],
            subject_alternative_names=params.get("SubjectAlternativeNames"),
            validation_method=params.get("ValidationMethod"),
            idempotency_token=params.get("IdempotencyToken"),
            domain_validation_options=params.get("DomainValidationOptions"),
            options=params.get("Options"),
            certificate_authority_arn=params.get("CertificateAuthorityArn"),
            tags=params.get("Tags"),
            key_algorithm=params.get("KeyAlgorithm"),
            managed_by=params.get("ManagedBy"),
        )
        ctx.audit["responseElements"] = {"certificateArn": arn}
        ctx.audit["resources"] = [{"ARN": arn, "accountId": ACCOUNT_ID, "type": RESOURCE_TYPE}]
        return {"CertificateArn": arn}

    def describe_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "DescribeCertificate", arn)
        self._audit(ctx, arn)
        return {"Certificate": self.manager.describe_certificate(arn)}

    def list_certificates(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._authorize(ctx, "ListCertificates")
        self._audit(ctx, None, certificateStatuses=params.get("CertificateStatuses"), includes=params.get("Includes"))
        return self.manager.list_certificates(
            statuses=params.get("CertificateStatuses"),
            includes=params.get("Includes"),
            max_items=params.get("MaxItems"),
            next_token=params.get("NextToken"),
            sort_by=params.get("SortBy"),
            sort_order=params.get("SortOrder"),
        )

    def get_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "GetCertificate", arn)
        self._audit(ctx, arn)
        return self.manager.get_certificate(arn)

    def delete_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "DeleteCertificate", arn)
        self._audit(ctx, arn)
        self.manager.delete_certificate(arn, for_account=True)
        return {}

    def import_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        private_key: bytearray = params.pop("PrivateKey")
        try:
            arn = params.get("CertificateArn")
            self._authorize(ctx, "ImportCertificate", arn or "*")
            # CloudTrail shows no certificate body, chain or key for ImportCertificate either.
            self._audit(ctx, arn, tags=params.get("Tags"))
            new_arn = self.manager.import_certificate(
                params["Certificate"],
                private_key,
                certificate_chain=params.get("CertificateChain"),
                certificate_arn=arn,
                tags=params.get("Tags"),
            )
        finally:
            private_key[:] = bytes(len(private_key))
        ctx.audit["responseElements"] = {"certificateArn": new_arn}
        ctx.audit["resources"] = [{"ARN": new_arn, "accountId": ACCOUNT_ID, "type": RESOURCE_TYPE}]
        return {"CertificateArn": new_arn}

    def export_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        passphrase: bytearray = params.pop("Passphrase")
        try:
            arn = params["CertificateArn"]
            self._authorize(ctx, "ExportCertificate", arn)
            self._audit(ctx, arn)
            return self.manager.export_certificate(arn, passphrase, for_account=True)
        finally:
            passphrase[:] = bytes(len(passphrase))

    def renew_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "RenewCertificate", arn)
        self._audit(ctx, arn)
        self.manager.renew_certificate(arn, for_account=True)
        return {}

    def add_tags_to_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "AddTagsToCertificate", arn)
        self._audit(ctx, arn, tags=params["Tags"])
        self.manager.add_tags(arn, params["Tags"])
        return {}

    def list_tags_for_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "ListTagsForCertificate", arn)
        self._audit(ctx, arn)
        return {"Tags": self.manager.list_tags(arn)}

    def remove_tags_from_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["CertificateArn"]
        self._authorize(ctx, "RemoveTagsFromCertificate", arn)
        self._audit(ctx, arn, tags=params["Tags"])
        self.manager.remove_tags(arn, params["Tags"])
        return {}

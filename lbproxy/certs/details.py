"""What ACM shows of a certificate, pure: DescribeCertificate's ``CertificateDetail``, ListCertificates'
``CertificateSummary``, its ``Includes`` filter and ``NextToken``.

The caller passes in what is not in the record: the status at this moment (``records.status_at``), who
uses the certificate (``InUseBy``) and whether it is eligible for managed renewal.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lbproxy.certs import domains, keys
from lbproxy.certs.errors import InvalidArgsException
from lbproxy.certs.lifecycle import PENDING_AUTO_RENEWAL, SUCCESS
from lbproxy.certs.records import AMAZON_ISSUED, FAILED, IMPORTED, PENDING_VALIDATION, Certificate, status_at, ts
from lbproxy.core.principals import ACCOUNT_ID

#: ``SubjectAlternativeNameSummaries`` lists at most this many names.
MAX_SUMMARY_NAMES = 100


def validation(cert: Certificate, status: str) -> list[dict[str, Any]]:
    """``DomainValidationOptions`` of a requested certificate, each with ``status``."""
    return domains.validation_options(
        ACCOUNT_ID,
        cert.names,
        str(cert.meta.get("validation_method", "DNS")),
        status,
        cert.meta.get("validation_overrides") or None,
    )


def lifecycle_times(cert: Certificate) -> dict[str, Any]:
    """``ImportedAt`` for imported certificates; ``CreatedAt`` (and ``IssuedAt`` once issued) otherwise."""
    if cert.type == IMPORTED:
        return {"ImportedAt": ts(cert.meta.get("imported_at"))}
    out = {"CreatedAt": ts(cert.created_at)}
    if cert.meta.get("issued_at"):
        out["IssuedAt"] = ts(cert.meta["issued_at"])
    return out


def eligibility(eligible: bool) -> str:
    return "ELIGIBLE" if eligible else "INELIGIBLE"


def detail(cert: Certificate, status: str, in_use_by: list[str], eligible: bool) -> dict[str, Any]:
    """``CertificateDetail`` (DescribeCertificate), in ACM's field order."""
    d: dict[str, Any] = {
        "CertificateArn": cert.arn,
        "DomainName": cert.domain_name,
        "SubjectAlternativeNames": cert.names,
    }
    if cert.type == AMAZON_ISSUED:
        vstatus = {PENDING_VALIDATION: PENDING_VALIDATION, FAILED: FAILED}.get(cert.status, SUCCESS)
        d["DomainValidationOptions"] = validation(cert, vstatus)
    ci = cert.info
    if ci is not None:
        d["Serial"] = ci.serial
        d["Subject"] = ci.subject
        d["Issuer"] = ci.issuer
    d.update(lifecycle_times(cert))
    d["Status"] = status
    if ci is not None:
        d["NotBefore"] = ci.not_before
        d["NotAfter"] = ci.not_after
    d["KeyAlgorithm"] = keys.describe_name(cert.key_algorithm)
    if ci is not None:
        d["SignatureAlgorithm"] = ci.signature_algorithm
    d["InUseBy"] = in_use_by
    if cert.status == FAILED:
        d["FailureReason"] = cert.meta.get("failure_reason", "OTHER")
    d["Type"] = cert.type
    renewal = cert.meta.get("renewal")
    if cert.type == AMAZON_ISSUED and renewal:
        r_status = renewal["RenewalStatus"]
        d["RenewalSummary"] = {
            "RenewalStatus": r_status,
            "DomainValidationOptions": validation(
                cert, SUCCESS if r_status in (SUCCESS, PENDING_AUTO_RENEWAL) else PENDING_VALIDATION
            ),
            "UpdatedAt": ts(renewal["UpdatedAt"]),
        }
        if renewal.get("RenewalStatusReason"):
            d["RenewalSummary"]["RenewalStatusReason"] = renewal["RenewalStatusReason"]
    if ci is not None:
        d["KeyUsages"] = [{"Name": n} for n in ci.key_usages]
        d["ExtendedKeyUsages"] = [{"Name": n, "OID": o} for n, o in ci.extended_key_usages]
    d["RenewalEligibility"] = eligibility(eligible)
    d["Options"] = dict(cert.meta.get("options", {}))
    if cert.meta.get("managed_by"):
        d["ManagedBy"] = cert.meta["managed_by"]
    return d


def summary(cert: Certificate, status: str, in_use: bool, eligible: bool) -> dict[str, Any]:
    """``CertificateSummary`` (ListCertificates)."""
    ci = cert.info
    s: dict[str, Any] = {
        "CertificateArn": cert.arn,
        "DomainName": cert.domain_name,
        "SubjectAlternativeNameSummaries": cert.names[:MAX_SUMMARY_NAMES],
        "HasAdditionalSubjectAlternativeNames": len(cert.names) > MAX_SUMMARY_NAMES,
        "Status": status,
        "Type": cert.type,
        "KeyAlgorithm": cert.key_algorithm,
        "KeyUsages": list(ci.key_usages) if ci else [],
        "ExtendedKeyUsages": [n for n, _ in ci.extended_key_usages] if ci else [],
        "ExportOption": cert.export_option,
        "InUse": in_use,
        "Exported": bool(cert.meta.get("exported")),
        "RenewalEligibility": eligibility(eligible),
    }
    if ci is not None:
        s["NotBefore"] = ci.not_before
        s["NotAfter"] = ci.not_after
    s.update(lifecycle_times(cert))
    if cert.meta.get("managed_by"):
        s["ManagedBy"] = cert.meta["managed_by"]
    return s


@dataclass(frozen=True, slots=True)
class ListFilter:
    """ListCertificates' ``CertificateStatuses`` and ``Includes``. Without ``keyTypes``, only ``RSA_1024`` and
    ``RSA_2048`` certificates that have at least one domain, as the API reference's ``Filters.keyTypes`` says (the
    operation's own summary says "only RSA_2048"; the more precise member documentation wins)."""

    statuses: frozenset[str]
    key_types: frozenset[str]
    default_key_types: bool
    export_option: str | None
    managed_by: str | None
    key_usages: frozenset[str]
    extended_key_usages: frozenset[str]

    @classmethod
    def of(cls, statuses: Sequence[str] | None, includes: Mapping[str, Any] | None) -> ListFilter:
        inc = dict(includes or {})
        return cls(
            statuses=frozenset(statuses or ()),
            key_types=frozenset(inc.get("keyTypes") or keys.DEFAULT_LIST_KEY_TYPES),
            default_key_types=not inc.get("keyTypes"),
            export_option=inc.get("exportOption"),
            managed_by=inc.get("managedBy"),
            key_usages=frozenset(inc.get("keyUsage") or []),
            extended_key_usages=frozenset(inc.get("extendedKeyUsage") or []),
        )

    def matches(self, cert: Certificate, now: dt.datetime) -> bool:
        if self.statuses and status_at(cert, now) not in self.statuses:
            return False
        if cert.key_algorithm not in self.key_types:
            return False
        if self.default_key_types and not cert.domain_name and not cert.names:
            return False
        if self.export_option and cert.export_option != self.export_option:
            return False
        if self.managed_by and cert.meta.get("managed_by") != self.managed_by:
            return False
        ci = cert.info
        if self.key_usages and not (ci and self.key_usages & set(ci.key_usages)):
            return False
        ekus = {n for n, _ in ci.extended_key_usages} if ci else set()
        return not self.extended_key_usages or bool(self.extended_key_usages & ekus)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_token(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise InvalidArgsException("One or more of request parameters specified is not valid.")

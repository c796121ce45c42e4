"""Domain names in certificate requests: ACM's syntax rules and its validation records.

DNS validation in ACM asks for one CNAME per domain (a wildcard ``*.example.com`` shares the record
of ``example.com``); the record is the same for the same domain in the same account, so it is derived
here from the account and the domain. Validation itself "succeeds" after the configured delay: lbproxy
has no public DNS to check.

lbproxy extension: ACM refuses the single-label name ``localhost`` (its pattern wants at least two
labels); lbproxy's local CA accepts exactly ``localhost`` and ``*.localhost`` besides, so a certificate
for the machine itself can be requested (``demo.localhost`` already satisfies ACM's pattern). RFC 6761
reserves ``localhost`` for loopback, so no public name is ever affected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from lbproxy.certs.errors import InvalidDomainValidationOptionsException, ValidationException

#: ``DomainNameString``'s pattern from the ACM model.
DOMAIN_PATTERN = r"(\*\.)?(((?!-)[A-Za-z0-9-]{0,62}[A-Za-z0-9])\.)+((?!-)[A-Za-z0-9-]{1,62}[A-Za-z0-9])"
_DOMAIN_RE = re.compile(DOMAIN_PATTERN)
#: RFC 5280's ub-common-name: the first name (the CN) is at most 64 octets.
MAX_COMMON_NAME = 64
#: Names ACM's pattern rejects that lbproxy's local CA issues anyway (see the module docstring).
LOCAL_NAMES = frozenset({"localhost", "*.localhost"})
#: Names per certificate (DomainName plus SubjectAlternativeNames), ACM's quota ceiling.
MAX_NAMES = 100
VALIDATION_EMAIL_USERS = ("admin", "administrator", "hostmaster", "postmaster", "webmaster")


def check_domain(name: str, where: str) -> str:
    """``name`` lower-cased, or the ValidationException AWS's front door answers."""
    if name.lower() not in LOCAL_NAMES and not _DOMAIN_RE.fullmatch(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at '{where}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {DOMAIN_PATTERN}"
        )
    return name.lower()


def request_names(domain_name: str, sans: Sequence[str] | None) -> list[str]:
    """DomainName first, then the SANs, deduplicated (as ACM lists SubjectAlternativeNames)."""
    first = check_domain(domain_name, "domainName")
    if len(first) > MAX_COMMON_NAME:
        raise ValidationException(
            f"The first domain name can't exceed {MAX_COMMON_NAME} octets (characters), including periods: "
            f"{domain_name}"
        )
    names = [first]
    for i, san in enumerate(sans or ()):
        n = check_domain(san, f"subjectAlternativeNames.{i + 1}.member")
        if n not in names:
            names.append(n)
    return names


def base_domain(name: str) -> str:
    return name[2:] if name.startswith("*.") else name


def _token(*parts: str, size: int) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:size]


def dns_record(account: str, domain: str) -> dict[str, str]:
    base = base_domain(domain)
    return {
        "Name": f"_{_token('name', account, base, size=32)}.{base}.",
        "Type": "CNAME",
        "Value": f"_{_token('value', account, base, size=32)}.{_token('zone', account, size=10)}.acm-validations.aws.",
    }


def validation_options(
    account: str,
    names: Sequence[str],
    method: str,
    status: str,
    overrides: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``DomainValidationOptions`` for ``names`` in ``status`` (PENDING_VALIDATION, SUCCESS, FAILED)."""
    validation_domain = {}
    for o in overrides or ():
        dn = str(o.get("DomainName", "")).lower()
        if dn not in names:
            raise InvalidDomainValidationOptionsException(
                f"The domain name {o.get('DomainName')} in DomainValidationOptions is not in the request"
            )
        validation_domain[dn] = str(o.get("ValidationDomain", dn)).lower()
    out = []
    for n in names:
        entry: dict[str, Any] = {
            "DomainName": n,
            "ValidationDomain": validation_domain.get(n, base_domain(n)),
            "ValidationStatus": status,
            "ValidationMethod": method,
        }
        if method == "DNS":
            entry["ResourceRecord"] = dns_record(account, n)
        else:
            vd = entry["ValidationDomain"]
            entry["ValidationEmails"] = [f"{u}@{vd}" for u in VALIDATION_EMAIL_USERS]
        out.append(entry)
    return out

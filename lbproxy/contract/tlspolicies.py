"""Lightsail load balancer TLS security policies, by name (``GetLoadBalancerTlsPolicies``).

Pure data, no I/O: the control plane imports this table to answer ``GetLoadBalancerTlsPolicies`` and to
validate ``TlsPolicyName``; the data plane turns a policy into an ``ssl.SSLContext`` (``tls.py``).

Names, protocols and cipher lists follow AWS's documentation of Lightsail's three policies (which mirror
the ELB policies ``ELBSecurityPolicy-2016-08``, ``ELBSecurityPolicy-FS-1-1-2019-08`` and
``ELBSecurityPolicy-FS-1-2-Res-2019-08``). Cipher names are OpenSSL's, in order of preference.

Two documented lbproxy choices:
- ``TLSv1`` / ``TLSv1.1`` need ``@SECLEVEL=0`` on OpenSSL 3 (it refuses them at its default level).
- Every policy also offers TLS 1.3 (``EXTENSION_TLS13``) so session resumption uses TLS 1.3 tickets, as
  the data-plane issue asks; AWS's Lightsail policies list TLS 1.2 as their highest version.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_POLICY_NAME = "TLS-2016-08"

#: lbproxy offers TLS 1.3 on top of every policy (see the module docstring).
EXTENSION_TLS13 = True


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    name: str
    is_default: bool
    description: str
    #: Lightsail's spelling: ``TLSv1``, ``TLSv1.1``, ``TLSv1.2``.
    protocols: tuple[str, ...]
    #: OpenSSL cipher names for TLS 1.2 and below, in order of preference.
    ciphers: tuple[str, ...]

    def to_api(self) -> dict[str, object]:
        """The ``LoadBalancerTlsPolicy`` shape of the Lightsail API."""
        return {
            "name": self.name,
            "isDefault": self.is_default,
            "description": self.description,
            "protocols": list(self.protocols),
            "ciphers": list(self.ciphers),
        }


_FS_GCM_AND_CBC_SHA2 = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
)
_FS_SHA1 = ("ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA")
_FS_256 = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
)
_FS_256_SHA1 = ("ECDHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES256-SHA")

TLS_POLICIES: dict[str, TlsPolicy] = {
    p.name: p
    for p in (
        TlsPolicy(
            name="TLS-2016-08",
            is_default=True,
            description="This policy supports TLS 1.0, 1.1 and 1.2, for the widest client compatibility.",
            protocols=("TLSv1", "TLSv1.1", "TLSv1.2"),
            ciphers=(
                *_FS_GCM_AND_CBC_SHA2,
                *_FS_SHA1,
                *_FS_256,
                *_FS_256_SHA1,
                "AES128-GCM-SHA256",
                "AES128-SHA256",
                "AES128-SHA",
                "AES256-GCM-SHA384",
                "AES256-SHA256",
                "AES256-SHA",
            ),
        ),
        TlsPolicy(
            name="TLS-FS-Res-1-1-2019-08",
            is_default=False,
            description="This policy supports TLS 1.1 and 1.2 with forward-secrecy ciphers only.",
            protocols=("TLSv1.1", "TLSv1.2"),
            ciphers=(*_FS_GCM_AND_CBC_SHA2, *_FS_SHA1, *_FS_256, *_FS_256_SHA1),
        ),
        TlsPolicy(
            name="TLS-FS-Res-1-2-2019-08",
            is_default=False,
            description="This policy supports only TLS 1.2 with forward-secrecy ciphers.",
            protocols=("TLSv1.2",),
            ciphers=(
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-SHA256",
                "ECDHE-RSA-AES128-SHA256",
                "ECDHE-ECDSA-AES256-SHA384",
                "ECDHE-RSA-AES256-SHA384",
            ),
        ),
    )
}

#: Lightsail protocol spelling -> position in ascending order (for min/max version).
PROTOCOL_ORDER = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def get_policy(name: str) -> TlsPolicy:
    try:
        return TLS_POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown TLS policy: {name!r} (expected one of {', '.join(TLS_POLICIES)})") from None


def needs_seclevel0(policy: TlsPolicy) -> bool:
    """OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) unless the security level is 0."""
    return "TLSv1" in policy.protocols or "TLSv1.1" in policy.protocols


def openssl_cipher_string(policy: TlsPolicy) -> str:
    """The ``SSLContext.set_ciphers`` string for a policy (TLS 1.3 suites are configured separately)."""
    text = ":".join(policy.ciphers)
    return text + ":@SECLEVEL=0" if needs_seclevel0(policy) else text

"""Lightsail load balancer TLS security policies, by name (``GetLoadBalancerTlsPolicies``).

Pure data, no I/O: the control plane imports this table to answer ``GetLoadBalancerTlsPolicies`` and to
validate ``TlsPolicyName``; the data plane turns a policy into an ``ssl.SSLContext`` (``tls.py``).

What Lightsail offers (``LIGHTSAIL_POLICY_NAMES``), from its developer guide ("Configure TLS security policies
for your Lightsail load balancer"): ``TLS-2016-08``, the default ("TLS version 1.0, 1.1, and 1.2", the most
compatible) and ``TLS-FS-1-2-Res-2019-08`` ("TLS version 1.2", the most secure); the guide's AWS CLI section names
exactly these two, and no Lightsail source names another or mentions TLS 1.3. They mirror the ELB policies
``ELBSecurityPolicy-2016-08`` and ``ELBSecurityPolicy-FS-1-2-Res-2019-08``, whose protocols and ciphers they take,
in the ELB table's order (server order preference). Cipher names are OpenSSL's.

Names lbproxy used before, so that a data dir made then keeps working:

- ``TLS-FS-Res-1-2-2019-08`` is an alias of ``TLS-FS-1-2-Res-2019-08`` (``POLICY_ALIASES``): the same policy under
  a word order no AWS source uses. ``TLS_POLICIES[old]``, ``old in TLS_POLICIES`` and ``get_policy(old)`` find the
  new one; the control plane stores and shows the new name.
- ``TLS-FS-Res-1-1-2019-08`` (TLS 1.1 and 1.2, forward secrecy only; ``ELBSecurityPolicy-FS-1-1-2019-08``'s
  ciphers) has no Lightsail counterpart: it is ``LEGACY_POLICY_NAMES``, still served for a load balancer that
  holds it but neither listed nor accepted by the API.

Two documented lbproxy choices:
- ``TLSv1`` / ``TLSv1.1`` need ``@SECLEVEL=0`` on OpenSSL 3 (it refuses them at its default level).
- TLS 1.3 is not part of any policy, as in Lightsail: a load balancer offers at most TLS 1.2. The data
  plane's ``offer_tls13`` setting adds TLS 1.3 on top of every policy (off by default; on for the benchmark,
  which compares with HAProxy and nginx on TLS 1.3).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

DEFAULT_POLICY_NAME = "TLS-2016-08"


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

_POLICIES = (
    TlsPolicy(
        name="TLS-2016-08",
        is_default=True,
        description="TLS 1.0, 1.1 and 1.2: the most compatible with browsers (Lightsail's default).",
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
        name="TLS-FS-1-2-Res-2019-08",
        is_default=False,
        description="TLS 1.2 only, forward-secrecy ciphers only: the most secure; older browsers may not connect.",
        protocols=("TLSv1.2",),
        ciphers=(*_FS_GCM_AND_CBC_SHA2, *_FS_256),
    ),
    TlsPolicy(
        name="TLS-FS-Res-1-1-2019-08",
        is_default=False,
        description="lbproxy's former TLS 1.1 and 1.2 forward-secrecy policy (not a Lightsail policy).",
        protocols=("TLSv1.1", "TLSv1.2"),
        ciphers=(*_FS_GCM_AND_CBC_SHA2, *_FS_SHA1, *_FS_256, *_FS_256_SHA1),
    ),
)

#: The policies Lightsail offers: what GetLoadBalancerTlsPolicies lists and ``TlsPolicyName`` accepts.
LIGHTSAIL_POLICY_NAMES = ("TLS-2016-08", "TLS-FS-1-2-Res-2019-08")
#: Served when a load balancer holds it (a data dir from before), never offered.
LEGACY_POLICY_NAMES = ("TLS-FS-Res-1-1-2019-08",)
#: Former name -> the policy's name now.
POLICY_ALIASES = {"TLS-FS-Res-1-2-2019-08": "TLS-FS-1-2-Res-2019-08"}


class PolicyTable(Mapping[str, TlsPolicy]):
    """Every policy the data plane can serve, by name; a former name (``POLICY_ALIASES``) finds the policy it
    became (``in``, ``[]``, ``get``), while iterating yields each policy's own name once."""

    def __init__(self, policies: tuple[TlsPolicy, ...], aliases: Mapping[str, str]) -> None:
        self._by_name = {p.name: p for p in policies}
        self._aliases = dict(aliases)

    def canonical(self, name: str) -> str:
        """The policy's name now (``name`` itself unless it is a former one)."""
        return self._aliases.get(name, name)

    def __getitem__(self, name: str) -> TlsPolicy:
        return self._by_name[self.canonical(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


TLS_POLICIES = PolicyTable(_POLICIES, POLICY_ALIASES)

#: Lightsail protocol spelling -> position in ascending order (for min/max version).
PROTOCOL_ORDER = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def get_policy(name: str) -> TlsPolicy:
    """The policy by its name or a former name (``POLICY_ALIASES``)."""
    try:
        return TLS_POLICIES[name]
    except KeyError:
        raise KeyError(f"unknown TLS policy: {name!r} (expected one of {', '.join(TLS_POLICIES)})") from None


def canonical_policy_name(name: str) -> str:
    """``name``, or the name a former name (``POLICY_ALIASES``) stands for."""
    return TLS_POLICIES.canonical(name)


def needs_seclevel0(policy: TlsPolicy) -> bool:
    """OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) unless the security level is 0."""
    return "TLSv1" in policy.protocols or "TLSv1.1" in policy.protocols


def openssl_cipher_string(policy: TlsPolicy) -> str:
    """The ``SSLContext.set_ciphers`` string for a policy (TLS 1.3 suites are configured separately)."""
    text = ":".join(policy.ciphers)
    return text + ":@SECLEVEL=0" if needs_seclevel0(policy) else text

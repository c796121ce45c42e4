"""Load-balancer attributes, names, ARNs and limits: pure values, no I/O.

Lightsail stores five attributes per load balancer and reports them as strings in
``configurationOptions``; lbproxy keeps them typed (``Attributes``) and converts at the edges:

============================================  ======================  ==============================
attribute                                     default                 accepted value
============================================  ======================  ==============================
``HealthCheckPath``                           ``/``                   a path starting with ``/``
``SessionStickinessEnabled``                  ``false``               ``true`` / ``false``
``SessionStickiness_LB_CookieDurationSeconds``  ``86400`` (1 day)     integer, 1 s to 7 days (ALB)
``HttpsRedirectionEnabled``                   ``false``               ``true`` / ``false`` (``true``
                                                                      needs a valid attached cert)
``TlsPolicyName``                             ``TLS-2016-08``         a name GetLoadBalancerTlsPolicies
                                                                      lists
============================================  ======================  ==============================

TLS policies come from ``lbproxy.contract.tlspolicies`` (one table for control and data plane): Lightsail's two
(``TLS-2016-08``, ``TLS-FS-1-2-Res-2019-08``). A former lbproxy name of one (``TLS-FS-Res-1-2-2019-08``) is
accepted and stored as the policy's name now, and one read from a data dir made before shows that name too. The
former third policy (``TLS-FS-Res-1-1-2019-08``) is not accepted, but a load balancer that holds it keeps it.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from lbproxy.contract import dataplane as dataplane_contract
from lbproxy.contract.tlspolicies import (
    DEFAULT_POLICY_NAME,
    LIGHTSAIL_POLICY_NAMES,
    POLICY_ALIASES,
    TLS_POLICIES,
    canonical_policy_name,
)
from lbproxy.core.principals import ACCOUNT_ID
from lbproxy.lightsail.errors import InvalidInputException

HEALTH_CHECK_PATH = "HealthCheckPath"
STICKINESS_ENABLED = "SessionStickinessEnabled"
COOKIE_DURATION = "SessionStickiness_LB_CookieDurationSeconds"
HTTPS_REDIRECTION = "HttpsRedirectionEnabled"
TLS_POLICY = "TlsPolicyName"
ATTRIBUTE_NAMES = (HEALTH_CHECK_PATH, STICKINESS_ENABLED, COOKIE_DURATION, HTTPS_REDIRECTION, TLS_POLICY)

DEFAULT_COOKIE_DURATION = 86400
MAX_COOKIE_DURATION = 7 * 86400

#: Limits as Lightsail documents them (the per-Region load balancer and per-load-balancer certificate limits are
#: ``lbproxy control`` settings: ``max_load_balancers``, ``max_certificates_per_lb``).
MAX_ALTERNATIVE_NAMES = 9
#: Tags (Lightsail developer guide, "Tag restrictions"; TagResource's API reference): at most 50 per resource,
#: keys 1-128 and values 0-256 Unicode characters (letters, numbers, spaces, ``+ - = . _ : / @``), case-sensitive,
#: and the ``aws:`` prefix reserved for keys and values (AWS's tagging guide: in any upper- or lowercase).
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
TAG_PUNCTUATION = frozenset("+-=._:/@")
RESERVED_TAG_PREFIX = "aws:"

#: Lightsail's ``IpAddressType`` values (the data-plane contract's), and a load balancer's default (AWS's).
IP_ADDRESS_TYPES = dataplane_contract.IP_ADDRESS_TYPES
DEFAULT_IP_ADDRESS_TYPE = dataplane_contract.DEFAULT_IP_ADDRESS_TYPE

#: ``ResourceName``'s pattern in the Lightsail model (botocore does not enforce it client-side).
RESOURCE_NAME_RE = re.compile(r"\w[\w\-]*\w")
_DOMAIN_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

HTTP_PORT = 80
HTTPS_PORT = 443


@dataclasses.dataclass(frozen=True, slots=True)
class Attributes:
    health_check_path: str = "/"
    session_stickiness_enabled: bool = False
    cookie_duration_seconds: int = DEFAULT_COOKIE_DURATION
    https_redirection_enabled: bool = False
    tls_policy_name: str = DEFAULT_POLICY_NAME

    def typed(self) -> dict[str, Any]:
        """Attribute name -> typed value (the data-plane contract's ``attributes``)."""
        return {
            HEALTH_CHECK_PATH: self.health_check_path,
            STICKINESS_ENABLED: self.session_stickiness_enabled,
            COOKIE_DURATION: self.cookie_duration_seconds,
            HTTPS_REDIRECTION: self.https_redirection_enabled,
            TLS_POLICY: self.tls_policy_name,
        }

    def configuration_options(self) -> dict[str, str]:
        """Attribute name -> string (``LoadBalancer.configurationOptions``)."""
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in self.typed().items()}

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Attributes:
        """As stored; a former TLS policy name reads as the policy's name now."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in fields}
        if isinstance(values.get("tls_policy_name"), str):
            values["tls_policy_name"] = canonical_policy_name(values["tls_policy_name"])
        return cls(**values)


def check_health_check_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value) or len(value) > 256:
        raise InvalidInputException(
            f"The health check path must start with a forward slash (/) and contain no spaces: {value}"
        )
    return value


def check_tls_policy(value: str) -> str:
    """One of Lightsail's policies (or a former lbproxy name of one: ``POLICY_ALIASES``); its name now."""
    name = canonical_policy_name(value)
    if name not in LIGHTSAIL_POLICY_NAMES:
        raise InvalidInputException(
            f"The TLS policy name is not valid: {value}. Valid names: {', '.join(LIGHTSAIL_POLICY_NAMES)}"
        )
    return name


def tls_policies() -> list[dict[str, Any]]:
    """GetLoadBalancerTlsPolicies: Lightsail's policies (``LIGHTSAIL_POLICY_NAMES``), the default first."""
    return [TLS_POLICIES[name].to_api() for name in LIGHTSAIL_POLICY_NAMES]


assert set(POLICY_ALIASES.values()) <= set(LIGHTSAIL_POLICY_NAMES)


def parse_bool(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise InvalidInputException(f"The value of {name} must be true or false, got: {value}")


def parse_cookie_duration(value: str) -> int:
    try:
        seconds = int(value.strip())
    except ValueError:
        raise InvalidInputException(f"The value of {COOKIE_DURATION} must be an integer, got: {value}") from None
    if not 1 <= seconds <= MAX_COOKIE_DURATION:
        raise InvalidInputException(
            f"The value of {COOKIE_DURATION} must be between 1 and {MAX_COOKIE_DURATION} seconds, got: {seconds}"
        )
    return seconds


def updated(attrs: Attributes, name: str, value: str) -> Attributes:
    """``attrs`` with one attribute set from its string form (validated; preconditions are the caller's)."""
    if name == HEALTH_CHECK_PATH:
        return dataclasses.replace(attrs, health_check_path=check_health_check_path(value))
    if name == STICKINESS_ENABLED:
        return dataclasses.replace(attrs, session_stickiness_enabled=parse_bool(name, value))
    if name == COOKIE_DURATION:
        return dataclasses.replace(attrs, cookie_duration_seconds=parse_cookie_duration(value))
    if name == HTTPS_REDIRECTION:
        return dataclasses.replace(attrs, https_redirection_enabled=parse_bool(name, value))
    if name == TLS_POLICY:
        return dataclasses.replace(attrs, tls_policy_name=check_tls_policy(value))
    raise InvalidInputException(f"The attribute name is not valid: {name}")


def check_resource_name(value: str, what: str = "name") -> str:
    if not RESOURCE_NAME_RE.fullmatch(value) or len(value) > 255:
        raise InvalidInputException(
            f"The {what} is not valid: {value}. It must start and end with a letter or number and contain only "
            "letters, numbers, underscores and hyphens."
        )
    return value


def check_domain_name(value: str) -> str:
    """A certificate domain name: Lightsail load-balancer certificates do not support wildcards.

    lbproxy extension: exactly ``localhost`` (one label, which Lightsail rejects) is accepted too, for
    certificates from the local CA; ``NAME.localhost`` names pass the ordinary check.
    """
    name = value.strip().lower().rstrip(".")
    if name == "localhost":
        return name
    if "*" in name:
        raise InvalidInputException(f"Wildcard domain names are not supported for load balancer certificates: {value}")
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL_RE.fullmatch(x) for x in labels):
        raise InvalidInputException(f"The domain name is not valid: {value}")
    return name


def certificate_names(domain_name: str, alternative_names: list[str] | None) -> tuple[str, list[str]]:
    """The primary domain and the de-duplicated alternative names (at most 9 besides the primary)."""
    primary = check_domain_name(domain_name)
    alts: list[str] = []
    for raw in alternative_names or []:
        name = check_domain_name(raw)
        if name != primary and name not in alts:
            alts.append(name)
    if len(alts) > MAX_ALTERNATIVE_NAMES:
        raise InvalidInputException(
            f"You can have a maximum of {MAX_ALTERNATIVE_NAMES} alternative names (in addition to the primary "
            f"domain); got {len(alts)}."
        )
    return primary, alts


def _tag_text(text: str) -> bool:
    return all(c.isalnum() or c in TAG_PUNCTUATION or unicodedata.category(c) == "Zs" for c in text)


def _check_tag(key: Any, value: Any) -> dict[str, str]:
    if not isinstance(key, str) or not key:
        raise InvalidInputException("Each tag needs a key.")
    if value is None:
        value = ""
    if len(key) > MAX_TAG_KEY or not _tag_text(key):
        raise InvalidInputException(
            f"The tag key is not valid: {key}. A tag key has 1 to {MAX_TAG_KEY} letters, numbers, spaces or "
            "+ - = . _ : / @"
        )
    if len(value) > MAX_TAG_VALUE or not _tag_text(value):
        raise InvalidInputException(
            f"The tag value for the key {key} is not valid. A tag value has up to {MAX_TAG_VALUE} letters, numbers, "
            "spaces or + - = . _ : / @"
        )
    for what, text in (("key", key), ("value", value)):
        if text.lower().startswith(RESERVED_TAG_PREFIX):
            raise InvalidInputException(
                f"The tag {what} {text} is not valid: the {RESERVED_TAG_PREFIX} prefix is reserved for AWS use."
            )
    return {"key": key, "value": value}


def check_tags(tags: Iterable[dict[str, Any]] | None) -> list[dict[str, str]]:
    """Lightsail's ``tags`` (a value may be absent or empty: a key-only tag), each checked against the tag rules,
    keys unique, at most ``MAX_TAGS``."""
    out = [_check_tag(t.get("key"), t.get("value")) for t in tags or []]
    keys = [t["key"] for t in out]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise InvalidInputException(f"Tag keys must be unique per resource: {', '.join(duplicates)}")
    if len(out) > MAX_TAGS:
        raise InvalidInputException(f"A resource can have a maximum of {MAX_TAGS} tags.")
    return out


def tagged(current: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """TagResource: ``new`` (checked) added to ``current``, a key already there taking the new value; the result
    may not exceed ``MAX_TAGS``."""
    merged = {t["key"]: t["value"] for t in current}
    merged.update({t["key"]: t["value"] for t in new})
    if len(merged) > MAX_TAGS:
        raise InvalidInputException(f"A resource can have a maximum of {MAX_TAGS} tags; this would make {len(merged)}.")
    return [{"key": k, "value": v} for k, v in merged.items()]


def untagged(current: list[dict[str, str]], keys: Iterable[str]) -> list[dict[str, str]]:
    """UntagResource: the tags whose key is not in ``keys`` (a key that is not there is no error)."""
    for key in keys:
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise InvalidInputException(
                f"The tag key {key} is not valid: the {RESERVED_TAG_PREFIX} prefix is reserved for AWS use."
            )
    gone = set(keys)
    return [t for t in current if t["key"] not in gone]


def check_ip_address_type(value: str) -> str:
    if value not in IP_ADDRESS_TYPES:
        raise InvalidInputException(
            f"The IP address type is not valid: {value}. Valid types: {', '.join(IP_ADDRESS_TYPES)}"
        )
    return value


def lightsail_arn(region: str, resource_type: str, resource_id: str) -> str:
    """``arn:aws:lightsail:REGION:ACCOUNT:TYPE/ID`` (TYPE: LoadBalancer, LoadBalancerTlsCertificate, Instance)."""
    return f"arn:aws:lightsail:{region}:{ACCOUNT_ID}:{resource_type}/{resource_id}"


def support_code(resource_id: str) -> str:
    return f"{ACCOUNT_ID}/{resource_id}"

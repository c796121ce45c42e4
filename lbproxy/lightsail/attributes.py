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

TLS policies come from ``lbproxy.contract.tlspolicies`` (one table for control and data plane).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from lbproxy.contract.tlspolicies import DEFAULT_POLICY_NAME, TLS_POLICIES
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

#: Limits as Lightsail documents them.
MAX_CERTIFICATES_PER_LOAD_BALANCER = 2
MAX_ALTERNATIVE_NAMES = 9
MAX_TAGS = 50

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
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in fields})


def check_health_check_path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value) or len(value) > 256:
        raise InvalidInputException(
            f"The health check path must start with a forward slash (/) and contain no spaces: {value}"
        )
    return value


def check_tls_policy(value: str) -> str:
    if value not in TLS_POLICIES:
        raise InvalidInputException(
            f"The TLS policy name is not valid: {value}. Valid names: {', '.join(TLS_POLICIES)}"
        )
    return value


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


def check_tags(tags: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """Lightsail's ``tags``: each needs a key (the value defaults to ""), at most ``MAX_TAGS``."""
    out = []
    for t in tags or []:
        key = t.get("key")
        if not key:
            raise InvalidInputException("Each tag needs a key.")
        out.append({"key": key, "value": t.get("value", "")})
    if len(out) > MAX_TAGS:
        raise InvalidInputException(f"A resource can have at most {MAX_TAGS} tags.")
    return out


def lightsail_arn(region: str, resource_type: str, resource_id: str) -> str:
    """``arn:aws:lightsail:REGION:ACCOUNT:TYPE/ID`` (TYPE: LoadBalancer, LoadBalancerTlsCertificate, Instance)."""
    return f"arn:aws:lightsail:{region}:{ACCOUNT_ID}:{resource_type}/{resource_id}"


def support_code(resource_id: str) -> str:
    return f"{ACCOUNT_ID}/{resource_id}"

"""The documents the two planes exchange, as typed values (pure: JSON in, values out, and back).

- ``DataPlaneConfig``: what ``GET /dataplane/v1/load-balancers/{name}`` answers: the load balancer, its
  attributes (Lightsail's names), its IP address type (``ipAddressType``: ``dualstack`` also listens on the IPv6
  loopback, ``ipv4`` does not), its instances, and the attached certificate with its sealed bundle and
  grant (``CertificateEntry``, ``GrantEntry``). The control plane builds one and sends ``to_json()``; the
  data plane's agent and its key source read ``from_json()``.
- ``DataPlaneReport``: what the data plane posts to ``.../report``: instance health (``InstanceHealthReport``,
  Lightsail's states and reason codes), metric counters (increments since the last report) and gauges, and
  the key state (``KeyStateReport``: never key material; with the worker processes serving and asked for,
  the exits nobody asked for, and why the data plane is degraded).

``from_json`` refuses what does not fit with ``DocumentError`` (a ``ValueError``) whose message names the
field and the value, like the configuration files do; the control plane answers it as
``InvalidInputException``. ``to_json(from_json(doc)) == doc`` for every document that passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from lbproxy.contract.vocabulary import (
    COUNTERS,
    GAUGES,
    HEALTH_REASONS,
    HEALTH_STATES,
    HEALTHY,
    KEY_STATES,
    METRIC_NAMES,
    RESPONSE_TIME_FIELDS,
)

#: The longest text a data plane may report in a key-state field (a reason, an ARN).
MAX_REPORTED_TEXT = 1024
#: Lightsail's ``IpAddressType`` values; a load balancer is ``dualstack`` unless told otherwise (as AWS).
IP_ADDRESS_TYPES = ("dualstack", "ipv4", "ipv6")
DEFAULT_IP_ADDRESS_TYPE = "dualstack"


class DocumentError(ValueError):
    """A document that does not have the contract's shape; the message names the field."""


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DocumentError(f"invalid {where}: expected an object")
    return raw


def _known(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise DocumentError(f"unknown {where} field(s): {', '.join(unknown)}")


def _text(raw: Mapping[str, Any], name: str, where: str, *, optional: bool = False, limit: int = 0) -> Any:
    value = raw.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DocumentError(f"invalid {where}{name}: {value!r} (expected a string)")
    if limit and len(value) > limit:
        raise DocumentError(f"invalid {where}{name}: longer than {limit} characters")
    return value


def _count(raw: Mapping[str, Any], name: str, where: str) -> int:
    value = raw.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DocumentError(f"invalid {where}{name}: {value!r} (expected a non-negative integer)")
    return value


# -- the configuration -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceEntry:
    """An attached instance: Lightsail's name, where its HTTP port answers, its health as last reported."""

    name: str
    host: str
    port: int
    state: str
    reason_code: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "address": f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}",
            "state": self.state,
            "reasonCode": self.reason_code,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> InstanceEntry:
        doc = _object(raw, where)
        port = doc.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
            raise DocumentError(f"invalid {where}.port: {port!r} (expected 1-65535)")
        return cls(
            _text(doc, "name", where + "."),
            _text(doc, "host", where + "."),
            port,
            _text(doc, "state", where + "."),
            _text(doc, "reasonCode", where + ".", optional=True),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class GrantEntry:
    """The KMS grant that lets the load balancer's principal decrypt its certificate's key."""

    grant_id: str
    grant_token: str | None
    key_arn: str
    name: str
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "grantId": self.grant_id,
            "grantToken": self.grant_token,
            "keyArn": self.key_arn,
            "name": self.name,
            "active": self.active,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> GrantEntry:
        doc = _object(raw, where)
        return cls(
            _text(doc, "grantId", where + "."),
            _text(doc, "grantToken", where + ".", optional=True),
            _text(doc, "keyArn", where + "."),
            _text(doc, "name", where + ".", optional=True) or "",
            bool(doc.get("active", True)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateEntry:
    """The attached certificate: its PEMs, the sealed bundle (``contract.sealed``), the encryption context a
    ``Decrypt`` of the bundle's data key needs, and the grant."""

    name: str
    arn: str
    acm_certificate_arn: str
    certificate_pem: str
    chain_pem: str
    encryption_context: dict[str, str]
    bundle: dict[str, Any]
    grant: GrantEntry | None
    kms_key_arn: str | None

    @property
    def serial(self) -> str:
        return str(self.bundle.get("Serial", ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "acmCertificateArn": self.acm_certificate_arn,
            "certificatePem": self.certificate_pem,
            "chainPem": self.chain_pem,
            "encryptionContext": dict(self.encryption_context),
            "bundle": dict(self.bundle),
            "grant": self.grant.to_json() if self.grant is not None else None,
            "kmsKeyArn": self.kms_key_arn,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> CertificateEntry:
        doc = _object(raw, where)
        context = _object(doc.get("encryptionContext"), where + ".encryptionContext")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
            raise DocumentError(f"invalid {where}.encryptionContext: expected strings")
        grant = doc.get("grant")
        return cls(
            _text(doc, "name", where + "."),
            _text(doc, "arn", where + "."),
            _text(doc, "acmCertificateArn", where + "."),
            _text(doc, "certificatePem", where + "."),
            _text(doc, "chainPem", where + ".", optional=True) or "",
            dict(context),
            dict(_object(doc.get("bundle"), where + ".bundle")),
            GrantEntry.from_json(grant, where + ".grant") if grant is not None else None,
            _text(doc, "kmsKeyArn", where + ".", optional=True),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DataPlaneConfig:
    """One load balancer as its data plane needs it (see the module docstring)."""

    name: str
    arn: str
    principal_arn: str
    state: str
    instance_port: int
    http_port: int
    https_port: int
    #: An issued certificate is attached: the HTTPS listener terminates TLS (``certificate`` is set).
    https_enabled: bool
    #: Lightsail's attribute names (``HealthCheckPath``, ``SessionStickinessEnabled``, ...).
    attributes: dict[str, Any]
    instances: tuple[InstanceEntry, ...]
    certificate: CertificateEntry | None
    #: Subscribe to the event stream after this id and nothing is missed.
    last_event_id: int
    #: Lightsail's ``ipAddressType``: ``dualstack`` (IPv4 and IPv6), ``ipv4`` or ``ipv6``.
    ip_address_type: str = DEFAULT_IP_ADDRESS_TYPE

    def __post_init__(self) -> None:
        if self.ip_address_type not in IP_ADDRESS_TYPES:
            raise DocumentError(
                f"invalid ipAddressType: {self.ip_address_type!r} (expected one of {', '.join(IP_ADDRESS_TYPES)})"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "principalArn": self.principal_arn,
            "state": self.state,
            "instancePort": self.instance_port,
            "listeners": {
                "http": {"port": self.http_port, "enabled": True},
                "https": {"port": self.https_port, "enabled": self.https_enabled},
            },
            "attributes": dict(self.attributes),
            "instances": [i.to_json() for i in self.instances],
            "certificate": self.certificate.to_json() if self.certificate is not None else None,
            "lastEventId": self.last_event_id,
            "ipAddressType": self.ip_address_type,
        }

    @classmethod
    def from_json(cls, raw: Any) -> DataPlaneConfig:
        doc = _object(raw, "configuration")
        listeners = _object(doc.get("listeners") or {}, "listeners")
        http = _object(listeners.get("http") or {}, "listeners.http")
        https = _object(listeners.get("https") or {}, "listeners.https")
        raw_instances = doc.get("instances") or []
        if not isinstance(raw_instances, list):
            raise DocumentError("invalid instances: expected a list")
        cert = doc.get("certificate")
        certificate = CertificateEntry.from_json(cert, "certificate") if cert else None
        return cls(
            name=_text(doc, "name", ""),
            arn=_text(doc, "arn", "", optional=True) or "",
            principal_arn=_text(doc, "principalArn", "", optional=True) or "",
            state=_text(doc, "state", "", optional=True) or "active",
            instance_port=_count(doc, "instancePort", ""),
            http_port=_count(http, "port", "listeners.http."),
            https_port=_count(https, "port", "listeners.https."),
            https_enabled=bool(https.get("enabled")) and certificate is not None,
            attributes=dict(_object(doc.get("attributes") or {}, "attributes")),
            instances=tuple(InstanceEntry.from_json(item, f"instances[{n}]") for n, item in enumerate(raw_instances)),
            certificate=certificate,
            last_event_id=_count(doc, "lastEventId", ""),
            ip_address_type=_text(doc, "ipAddressType", "", optional=True) or DEFAULT_IP_ADDRESS_TYPE,
        )


# -- the report --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceHealthReport:
    """An instance's health as the data plane's checks see it (Lightsail's state and reason code)."""

    name: str
    state: str
    reason_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "reasonCode": self.reason_code}

    @classmethod
    def from_json(cls, raw: Any, where: str) -> InstanceHealthReport:
        doc = _object(raw, where)
        _known(doc, {"name", "state", "reasonCode"}, where)
        name, state, reason = doc.get("name"), doc.get("state"), doc.get("reasonCode")
        if not isinstance(name, str) or not name:
            raise DocumentError(f"invalid {where}.name: {name!r}")
        if state not in HEALTH_STATES:
            raise DocumentError(f"invalid {where}.state: {state!r} (expected one of {', '.join(HEALTH_STATES)})")
        if reason is not None and reason not in HEALTH_REASONS:
            raise DocumentError(f"invalid {where}.reasonCode: {reason!r}")
        return cls(name, str(state), reason if state != HEALTHY else None)


_KEY_STATE_FIELDS = (
    "state", "since", "certificateArn", "serial", "fingerprint", "workers", "workersExpected", "restarts",
    "lastExit", "degraded", "leasedOut", "listeners",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class KeyStateReport:
    """What a data plane says about its key and the processes that hold it (never key material)."""

    #: ``loaded`` (a live worker process holds it), ``wiped`` or ``none``.
    state: str
    #: Since when (epoch seconds).
    since: float
    certificate_arn: str | None = None
    serial: str | None = None
    #: SHA-256 of the certificate's DER, hex.
    fingerprint: str | None = None
    #: Worker processes serving now, and asked for.
    workers: int = 0
    workers_expected: int = 0
    #: Worker processes that exited without being asked to, since the data plane started; the last one.
    restarts: int = 0
    last_exit: str | None = None
    #: Why the data plane is degraded (fewer workers than asked for, a key it should hold), or None.
    degraded: str | None = None
    #: The key lease expired (the control plane was unreachable too long): the key was dropped.
    leased_out: bool = False
    #: Where the data plane listens (``http://127.0.0.1:8080``, ``https://[::1]:8443``...): the real ports
    #: behind Lightsail's ``publicPorts`` 80 and 443.
    listeners: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "certificateArn": self.certificate_arn,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "workers": self.workers,
            "workersExpected": self.workers_expected,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "degraded": self.degraded,
            "leasedOut": self.leased_out,
            "listeners": list(self.listeners),
        }

    @classmethod
    def from_json(cls, raw: Any) -> KeyStateReport:
        doc = _object(raw, "keyState")
        _known(doc, set(_KEY_STATE_FIELDS), "keyState")
        state = doc.get("state")
        if state not in KEY_STATES:
            raise DocumentError(f"invalid keyState.state: {state!r} (expected one of {', '.join(KEY_STATES)})")
        since = doc.get("since")
        if isinstance(since, bool) or not isinstance(since, int | float):
            raise DocumentError(f"invalid keyState.since: {since!r} (expected epoch seconds)")
        texts = {
            name: _text(doc, name, "keyState.", optional=True, limit=MAX_REPORTED_TEXT)
            for name in ("certificateArn", "serial", "fingerprint", "lastExit", "degraded")
        }
        return cls(
            state=str(state),
            since=float(since),
            certificate_arn=texts["certificateArn"],
            serial=texts["serial"],
            fingerprint=texts["fingerprint"],
            workers=_count(doc, "workers", "keyState."),
            workers_expected=_count(doc, "workersExpected", "keyState."),
            restarts=_count(doc, "restarts", "keyState."),
            last_exit=texts["lastExit"],
            degraded=texts["degraded"],
            leased_out=bool(doc.get("leasedOut", False)),
            listeners=_listeners(doc.get("listeners", [])),
        )


#: The most listening addresses a data plane may report.
MAX_REPORTED_LISTENERS = 16


def _listeners(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_REPORTED_LISTENERS:
        raise DocumentError(f"invalid keyState.listeners: expected a list of at most {MAX_REPORTED_LISTENERS} URLs")
    for item in raw:
        if not isinstance(item, str) or len(item) > 200 or not item.startswith(("http://", "https://")):
            raise DocumentError(f"invalid keyState.listeners entry: {item!r} (expected http(s)://HOST:PORT)")
    return tuple(raw)


@dataclasses.dataclass(frozen=True, slots=True)
class DataPlaneReport:
    """One report from a data plane (see the module docstring)."""

    instances: tuple[InstanceHealthReport, ...] = ()
    #: Lightsail metric name -> counter increment since the last report, or gauge value now.
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    key_state: KeyStateReport | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instances": [i.to_json() for i in self.instances], "metrics": dict(self.metrics)}
        if self.key_state is not None:
            out["keyState"] = self.key_state.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Any) -> DataPlaneReport:
        doc = _object(raw, "report")
        _known(doc, {"instances", "metrics", "keyState"}, "report")
        raw_instances = doc.get("instances", [])
        if not isinstance(raw_instances, list):
            raise DocumentError("invalid instances: expected a list of {name, state, reasonCode}")
        metrics = _object(doc.get("metrics", {}), "metrics")
        allowed = {*COUNTERS, *GAUGES, *RESPONSE_TIME_FIELDS}
        unknown = sorted(set(metrics) - allowed)
        if unknown:
            raise DocumentError(f"unknown metric(s): {', '.join(unknown)} (expected {', '.join(METRIC_NAMES)})")
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise DocumentError(f"invalid metrics.{name}: {value!r} (expected a number >= 0)")
        key_state = doc.get("keyState")
        return cls(
            instances=tuple(
                InstanceHealthReport.from_json(item, f"instances[{n}]") for n, item in enumerate(raw_instances)
            ),
            metrics={k: float(v) for k, v in metrics.items()},
            key_state=KeyStateReport.from_json(key_state) if key_state is not None else None,
        )

"""What the data plane serves, as frozen values: the load balancer (``LoadBalancerSpec``) and the knobs.

- ``InstanceSpec`` / ``LoadBalancerSpec``: the load balancer as the control plane describes it, in
  Lightsail's nouns (instances, ``HealthCheckPath``, ``SessionStickinessEnabled``,
  ``SessionStickiness_LB_CookieDurationSeconds``, ``HttpsRedirectionEnabled``, ``TlsPolicyName``).
  The control-plane client builds one from ``GetLoadBalancer``; tests and ``python -m lbproxy.proxy``
  build one from TOML/JSON through ``spec_from_mapping``.
- ``ProxySettings``: every limit and timeout of the data plane as a named field with its default (built
  from TOML/CLI through ``lbproxy.config.settings_from_mapping``).

Pure: no I/O. ``spec_to_mapping``/``spec_from_mapping`` round-trip through JSON (the supervisor hands the
spec to its worker processes that way).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lbproxy.config import ConfigError, parse_hostport, settings_from_mapping
from lbproxy.contract.dataplane import DEFAULT_IP_ADDRESS_TYPE, IP_ADDRESS_TYPES
from lbproxy.contract.tlspolicies import DEFAULT_POLICY_NAME, TLS_POLICIES


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One attached instance: Lightsail's instance name and the address its HTTP port answers on."""

    name: str
    host: str
    port: int = 80

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("invalid instance name: '' (empty)")
        if not 0 < self.port <= 65535:
            raise ConfigError(f"invalid instance port: {self.port!r} (expected 1-65535)")


@dataclasses.dataclass(frozen=True, slots=True)
class LoadBalancerSpec:
    """One load balancer's configuration, as the control plane reports it (Lightsail attribute names)."""

    name: str
    instances: tuple[InstanceSpec, ...] = ()
    #: ``HealthCheckPath`` (Lightsail default ``/``).
    health_check_path: str = "/"
    #: ``SessionStickinessEnabled``.
    session_stickiness_enabled: bool = False
    #: ``SessionStickiness_LB_CookieDurationSeconds`` (Lightsail default: 1 day).
    stickiness_cookie_duration: int = 86400
    #: ``HttpsRedirectionEnabled``: the HTTP listener answers 301 to https.
    https_redirection_enabled: bool = False
    #: ``TlsPolicyName`` (see ``tlspolicies``).
    tls_policy_name: str = DEFAULT_POLICY_NAME
    #: A certificate is attached and valid: the HTTPS listener terminates TLS (else it refuses handshakes).
    https_enabled: bool = False
    #: Lightsail's ``ipAddressType``: ``dualstack`` (also the same ports on the other IP family), ``ipv4``,
    #: ``ipv6`` (see ``listeners``).
    ip_address_type: str = DEFAULT_IP_ADDRESS_TYPE

    def __post_init__(self) -> None:
        if not self.health_check_path.startswith("/"):
            raise ConfigError(f"invalid health_check_path: {self.health_check_path!r} (must start with /)")
        if self.tls_policy_name not in TLS_POLICIES:
            raise ConfigError(
                f"invalid tls_policy_name: {self.tls_policy_name!r} (expected one of {', '.join(sorted(TLS_POLICIES))})"
            )
        if not 1 <= self.stickiness_cookie_duration <= 7 * 86400:
            raise ConfigError(
                f"invalid stickiness_cookie_duration: {self.stickiness_cookie_duration!r} (1 s to 7 days)"
            )
        if self.ip_address_type not in IP_ADDRESS_TYPES:
            raise ConfigError(
                f"invalid ip_address_type: {self.ip_address_type!r} (expected one of {', '.join(IP_ADDRESS_TYPES)})"
            )
        names = [i.name for i in self.instances]
        if len(set(names)) != len(names):
            raise ConfigError(f"invalid instances: duplicate names in {names!r}")


def spec_to_mapping(spec: LoadBalancerSpec) -> dict[str, Any]:
    """A JSON-able mapping (the inverse of ``spec_from_mapping``)."""
    out = dataclasses.asdict(spec)
    out["instances"] = [dataclasses.asdict(i) for i in spec.instances]
    return out


def spec_from_mapping(table: dict[str, Any], where: str = "") -> LoadBalancerSpec:
    """Build a spec from a TOML/JSON table; unknown keys are errors that name the field."""
    table = dict(table)
    raw_instances = table.pop("instances", [])
    if not isinstance(raw_instances, list | tuple):
        raise ConfigError(f"invalid {where}instances: {raw_instances!r} (expected a list)")
    instances = []
    for n, item in enumerate(raw_instances):
        if not isinstance(item, dict):
            raise ConfigError(f"invalid {where}instances[{n}]: {item!r} (expected a table)")
        item = dict(item)
        if "address" in item:  # ``address = "HOST:PORT"`` shorthand, as in the control plane's instances file
            host, port = parse_hostport(item.pop("address"), field=f"{where}instances[{n}].address")
            item.setdefault("host", host)
            item.setdefault("port", port)
        instances.append(settings_from_mapping(InstanceSpec, item, f"{where}instances[{n}]."))
    spec: LoadBalancerSpec = settings_from_mapping(LoadBalancerSpec, table, where)
    return dataclasses.replace(spec, instances=tuple(instances))


@dataclasses.dataclass(frozen=True, slots=True)
class ProxySettings:
    """Every limit and timeout of ``lbproxy lb``, with its default (and where the default comes from)."""

    #: HTTP listener ``HOST:PORT`` (port 0: any free port, reported by ``LoadBalancer.http_port``).
    http_listen: str = "127.0.0.1:8080"
    #: HTTPS listener ``HOST:PORT``.
    https_listen: str = "127.0.0.1:8443"
    #: Admin listener for Prometheus ``/metrics`` and ``/health``; empty: off.
    admin_listen: str = ""
    #: Worker processes per generation (each holds the key while it serves TLS).
    workers: int = 1
    #: Seconds a downstream connection may stay idle between requests (Lightsail/ALB: 60).
    idle_timeout: float = 60.0
    #: Seconds to receive a complete request head once it started (slowloris): 408 after that.
    header_timeout: float = 10.0
    #: Seconds a closed HTTPS connection waits, after its close_notify and the half-close, for the client to
    #: close its side before it is reset (asyncio's ``ssl_shutdown_timeout``: 30).
    tls_shutdown_timeout: float = 30.0
    #: Largest request line (bytes): 414 above it (ALB: 16 KiB).
    max_request_line: int = 16384
    #: Largest request head, request line included (bytes): 431 above it (ALB: 64 KiB).
    max_header_bytes: int = 65536
    #: Most header fields in one request: 431 above it.
    max_header_count: int = 100
    #: Largest request body (bytes): 413 above it; 0: unlimited (Lightsail/ALB have no limit).
    max_body: int = 0
    #: Seconds to connect to an instance: 502 (and the next instance, when safe) after that (ALB: 10).
    upstream_connect_timeout: float = 10.0
    #: Seconds to wait for an instance's response head once the request went out: 504 after that.
    upstream_response_timeout: float = 60.0
    #: Seconds an idle pooled upstream connection is kept (keep it under the instances' keep-alive).
    upstream_idle_timeout: float = 15.0
    #: Idle pooled connections kept per instance.
    upstream_pool_size: int = 64
    #: Bytes of pipelined requests buffered before the downstream is paused.
    pipeline_buffer_bytes: int = 65536
    #: With several workers: one ``SO_REUSEPORT`` listening socket per worker slot (the kernel spreads new
    #: connections; no worker wakes for another's) instead of one socket all workers share.
    listen_reuseport: bool = False
    #: ``TCP_DEFER_ACCEPT`` seconds on the listeners: a connection reaches a worker once its first bytes came
    #: (0: off).
    tcp_defer_accept: int = 0
    #: Simultaneous downstream connections per worker; more are closed and counted as RejectedConnectionCount.
    max_connections: int = 10000
    #: Revocation/shutdown: seconds in-flight requests may take before connections are aborted.
    drain_timeout: float = 10.0
    #: Rotation: seconds the old generation keeps its open connections (each closes after its next
    #: response, ``Connection: close``) before it exits.
    rotation_grace: float = 60.0
    #: Seconds between health checks of one instance (ALB: 30).
    health_check_interval: float = 30.0
    #: Seconds a health check may take (ALB: 5).
    health_check_timeout: float = 5.0
    #: Consecutive successes that make an unhealthy instance healthy (ALB: 5).
    healthy_threshold: int = 5
    #: Consecutive failures that make an instance unhealthy (ALB: 2).
    unhealthy_threshold: int = 2
    #: Seconds an instance that refused a connection is skipped before it is tried again.
    refused_backoff: float = 5.0
    #: A worker process that exits unasked is replaced at once; a second failure within
    #: ``restart_backoff_reset`` seconds waits this long, doubling with each further one (crash loops).
    restart_backoff: float = 0.5
    #: The longest wait between replacement attempts (a crash loop settles at one attempt per this many s).
    restart_backoff_max: float = 30.0
    #: Seconds without a failure after which the backoff starts over.
    restart_backoff_reset: float = 60.0
    #: Seconds between metric reports from workers to the supervisor.
    metrics_interval: float = 1.0
    #: Access log in ALB's format on logger ``lbproxy.access`` (off: no per-request logging at all).
    access_log: bool = False
    #: Also offer TLS 1.3 on the HTTPS listener. Lightsail's policies stop at TLS 1.2, and so does lbproxy by
    #: default; on: TLS 1.3 (and its session tickets) on top of every policy.
    offer_tls13: bool = False
    #: Key holders: no core dumps, not dumpable (off only for debugging).
    harden_key_holders: bool = True

    def __post_init__(self) -> None:
        for name in ("http_listen", "https_listen"):
            parse_hostport(getattr(self, name), field=name)
        if self.admin_listen:
            parse_hostport(self.admin_listen, field="admin_listen")
        if self.workers < 1:
            raise ConfigError(f"invalid workers: {self.workers!r} (at least 1)")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"invalid {f.name}: {value!r} (must not be negative)")
        for name in (
            "header_timeout",
            "idle_timeout",
            "tls_shutdown_timeout",
            "health_check_interval",
            "health_check_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"invalid {name}: {getattr(self, name)!r} (must be positive)")
        if self.restart_backoff_reset <= self.restart_backoff_max:
            raise ConfigError(
                f"invalid restart_backoff_reset: {self.restart_backoff_reset!r} (must exceed restart_backoff_max)"
            )
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1:
            raise ConfigError("invalid healthy_threshold/unhealthy_threshold (at least 1)")


def settings_to_mapping(settings: ProxySettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def proxy_settings_from_mapping(table: dict[str, Any], where: str = "") -> ProxySettings:
    return settings_from_mapping(ProxySettings, table, where)

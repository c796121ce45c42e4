"""Settings, parsed once into frozen dataclasses.

Every limit and default is a named field here, documented in the README's configuration reference.
``settings_from_mapping`` builds any of these dataclasses from a TOML table (or CLI overrides):
unknown keys are rejected and every error names the field and the bad value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def default_data_dir() -> Path:
    """``$LBPROXY_DATA_DIR``, else the user's data directory (``~/.local/share/lbproxy`` on Linux)."""
    env = os.environ.get("LBPROXY_DATA_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir("lbproxy", appauthor=False))


def parse_hostport(value: str, *, default_host: str = "127.0.0.1", field: str = "listen") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[::1]:PORT``; the error names the field and the value."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port_s = text[1:].partition("]:")
    else:
        host, sep, port_s = text.rpartition(":")
    if not sep:
        raise ConfigError(f"invalid {field}: {value!r} (expected HOST:PORT)")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"invalid {field}: {value!r} (port is not a number)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"invalid {field}: {value!r} (port out of range 0-65535)")
    return (host or default_host), port


@dataclasses.dataclass(frozen=True, slots=True)
class ControlSettings:
    """``lbproxy control``: every knob, with its default."""

    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 4599
    region: str = "us-east-1"
    #: Largest request body accepted on the AWS API (bytes); ACM's ImportCertificate chain needs MiBs.
    max_request_body: int = 4 * 1024 * 1024
    #: Seconds a connection may take to send a complete request head (request line and headers), counted from
    #: when it opens or from the end of its previous response; also how long an idle keep-alive connection is
    #: kept. A client that trickles its head is cut.
    header_timeout: float = 10.0
    #: Seconds an authenticated request may take to send its whole body once its head is in; past it the answer
    #: is 408 ``RequestTimeoutException`` and the connection is closed.
    body_timeout: float = 30.0
    #: Optional TOML file declaring principals (``[principals.NAME]``).
    principals_file: Path | None = None
    #: Optional TOML file registering instances (``[instances.NAME] address = "HOST:PORT"``).
    instances_file: Path | None = None
    #: Seconds a requested certificate stays PENDING_VALIDATION before DNS validation "succeeds".
    validation_delay: float = 2.0
    #: Managed renewal starts this many days before expiry (ACM: 60).
    renewal_window_days: int = 60
    #: Seconds a new Lightsail load balancer stays ``provisioning`` (its CreateLoadBalancer operation ``Started``).
    lb_provisioning_delay: float = 2.0
    #: Seconds the other Lightsail operations AWS answers ``Started`` (attach/detach instances, delete a
    #: certificate, SetIpAddressType) stay ``Started`` before ``Succeeded``; their change is made at once.
    lb_operation_delay: float = 1.0
    #: Load balancers per region (Lightsail's CreateLoadBalancer: "up to 10 load balancers per AWS Region").
    max_load_balancers: int = 10
    #: Certificates per load balancer (Lightsail's CreateLoadBalancerTlsCertificate: "up to 2 certificates").
    max_certificates_per_lb: int = 2
    #: How often the renewal/validation sweep runs (seconds).
    sweep_interval: float = 1.0
    #: Seconds between keep-alive comments on the event stream.
    event_heartbeat: float = 15.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"invalid port: {self.port!r} (out of range 0-65535)")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"invalid {f.name}: {value!r} (must not be negative)")
        for name in ("max_request_body", "header_timeout", "body_timeout", "sweep_interval", "event_heartbeat"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"invalid {name}: {getattr(self, name)!r} (must be positive)")
        for name in ("lb_provisioning_delay", "lb_operation_delay"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) > 3600:
                raise ConfigError(f"invalid {name}: {getattr(self, name)!r} (seconds, 0 to 3600)")
        for name in ("max_load_balancers", "max_certificates_per_lb"):
            if getattr(self, name) < 1:
                raise ConfigError(f"invalid {name}: {getattr(self, name)!r} (must be at least 1)")


def settings_from_mapping(cls: type[T], table: dict[str, Any], where: str = "") -> T:
    """Build frozen settings ``cls`` from a mapping; unknown keys and wrong types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, raw in table.items():
        values[name] = _coerce(hints[name], raw, f"{where}{name}")
    return cls(**values)


def _coerce(hint: Any, raw: Any, field: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None:
            return None
        return _coerce(args[0], raw, field)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        raise ConfigError(f"invalid {field}: {raw!r} (expected true or false)")
    if hint is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        raise ConfigError(f"invalid {field}: {raw!r} (expected an integer)")
    if hint is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        raise ConfigError(f"invalid {field}: {raw!r} (expected a number)")
    if hint is str:
        if isinstance(raw, str):
            return raw
        raise ConfigError(f"invalid {field}: {raw!r} (expected a string)")
    if hint is Path:
        if isinstance(raw, str | Path):
            return Path(raw)
        raise ConfigError(f"invalid {field}: {raw!r} (expected a path)")
    if origin is tuple:
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"invalid {field}: {raw!r} (expected a list)")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(item, v, field) for v in raw)
    return raw


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc

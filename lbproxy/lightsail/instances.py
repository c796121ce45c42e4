"""The instances file (``lbproxy control --instances FILE``): pure parsing, no state.

::

    [instances.web-1]
    address = "127.0.0.1:8001"

    [instances.web-2]
    address = "10.0.0.12"        # no port: the load balancer's instancePort is used

Every table needs ``address`` (``HOST``, ``HOST:PORT`` or ``[v6]:PORT``); any other key is an error that
names the field. The file is read at start and again on SIGHUP.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from lbproxy.config import ConfigError, parse_hostport
from lbproxy.lightsail.attributes import RESOURCE_NAME_RE

KNOWN_KEYS = frozenset({"address"})


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceAddress:
    host: str
    #: ``None``: the address gave no port; the load balancer's ``instancePort`` applies.
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_address(value: Any, field: str = "address") -> InstanceAddress:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f'invalid {field}: {value!r} (expected "HOST:PORT" or "HOST")')
    text = value.strip()
    bracketed = text.startswith("[")
    if (bracketed and "]:" in text) or (not bracketed and text.count(":") == 1):
        host, port = parse_hostport(text, field=field)
        if port == 0:
            raise ConfigError(f"invalid {field}: {value!r} (port must be 1-65535)")
        if not host:
            raise ConfigError(f"invalid {field}: {value!r} (no host)")
        return InstanceAddress(host, port)
    host = text[1:-1] if bracketed and text.endswith("]") else text
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(f'invalid {field}: {value!r} (expected "HOST:PORT" or "HOST")')
    return InstanceAddress(host, None)


def check_instance_name(name: str, where: str = "") -> str:
    if not RESOURCE_NAME_RE.fullmatch(name) or len(name) > 255:
        raise ConfigError(
            f"invalid {where}instance name: {name!r} (letters, numbers, '_' and '-', starting and ending with a "
            "letter or number)"
        )
    return name


def parse_instances(doc: dict[str, Any], where: str = "") -> dict[str, InstanceAddress]:
    """``{"instances": {NAME: {"address": ...}}}`` -> name -> address; errors name the field."""
    unknown = sorted(set(doc) - {"instances"})
    if unknown:
        raise ConfigError(f"{where}unknown top-level key(s): {', '.join(unknown)}")
    tables = doc.get("instances", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{where}instances must be a table")
    out: dict[str, InstanceAddress] = {}
    for name, table in tables.items():
        check_instance_name(name, where)
        field = f"instances.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}{field} must be a table")
        bad = sorted(set(table) - KNOWN_KEYS)
        if bad:
            raise ConfigError(f"{where}{field}: unknown key(s): {', '.join(bad)}")
        if "address" not in table:
            raise ConfigError(f"{where}{field}.address: missing")
        out[name] = parse_address(table["address"], f"{where}{field}.address")
    return out


def load_instances_file(path: Path) -> dict[str, InstanceAddress]:
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_instances(doc, f"{path}: ")

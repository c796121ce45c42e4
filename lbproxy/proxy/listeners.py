"""The listening sockets a load balancer serves on, held by the supervisor (workers get them as inherited fds).

Each scheme (HTTP, HTTPS) has its configured address (``http_listen`` / ``https_listen``) and, for Lightsail's
``ipAddressType``, the same port on the other IP family: ``dualstack`` listens on both, ``ipv4`` on the IPv4
address only, ``ipv6`` on the IPv6 one only. The other family's address is the counterpart of the configured
one: the loopback for the loopback (``127.0.0.1`` <-> ``::1``), the wildcard for the wildcard (``0.0.0.0``
<-> ``::``); any other address has none (that listener then stays on its own family). An IPv6 socket is
``IPV6_V6ONLY``, so it never collides with the IPv4 one on the same port. A host without IPv6 (no ``::1``)
keeps serving IPv4 and says so once.

The sockets outlive generations of workers: a worker that dies leaves its accept queue to its successor.
"""

from __future__ import annotations

import dataclasses
import logging
import socket

from lbproxy.config import parse_hostport
from lbproxy.contract.dataplane import DEFAULT_IP_ADDRESS_TYPE

log = logging.getLogger("lbproxy.proxy")

_COUNTERPARTS = {"127.0.0.1": "::1", "::1": "127.0.0.1", "0.0.0.0": "::", "::": "0.0.0.0"}
HTTP, HTTPS = "http", "https"


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (non-blocking, ``SO_REUSEADDR``; IPv6 only for an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def counterpart(host: str) -> str | None:
    """The same kind of address on the other IP family, or None."""
    return _COUNTERPARTS.get(host)


def is_ipv6(host: str) -> bool:
    return ":" in host


@dataclasses.dataclass(slots=True)
class Listeners:
    """The sockets of both schemes, for one ``ipAddressType`` at a time (see the module docstring)."""

    http_listen: str
    https_listen: str
    ip_address_type: str = DEFAULT_IP_ADDRESS_TYPE
    #: (scheme, host) -> socket, for the addresses in use.
    sockets: dict[tuple[str, str], socket.socket] = dataclasses.field(default_factory=dict)
    http_port: int = 0
    https_port: int = 0
    _warned: set[str] = dataclasses.field(default_factory=set)

    def open(self) -> None:
        """Bind the configured addresses (their ports are the load balancer's), then the counterparts."""
        for scheme, listen in ((HTTP, self.http_listen), (HTTPS, self.https_listen)):
            host, port = parse_hostport(listen, field=f"{scheme}_listen")
            sock = bind_listener(host, port)
            self.sockets[(scheme, host)] = sock
            if scheme == HTTP:
                self.http_port = sock.getsockname()[1]
            else:
                self.https_port = sock.getsockname()[1]
        self.apply(self.ip_address_type)

    def apply(self, ip_address_type: str) -> bool:
        """Listen as ``ip_address_type`` says; whether the set of sockets changed."""
        self.ip_address_type = ip_address_type
        changed = False
        for scheme, listen, port in (
            (HTTP, self.http_listen, self.http_port),
            (HTTPS, self.https_listen, self.https_port),
        ):
            host, _ = parse_hostport(listen, field=f"{scheme}_listen")
            other = counterpart(host)
            wanted = {host} if other is None else {h for h in (host, other) if self._family_wanted(h)}
            for h in sorted(wanted | {h for (s, h) in self.sockets if s == scheme}):
                key = (scheme, h)
                if h in wanted and key not in self.sockets:
                    try:
                        self.sockets[key] = bind_listener(h, port)
                        changed = True
                    except OSError as exc:
                        if h not in self._warned:
                            self._warned.add(h)
                            log.warning("cannot listen on [%s]:%d (%s): serving on the other IP family only", h,
                                        port, exc.strerror)  # fmt: skip
                elif h not in wanted and key in self.sockets:
                    self.sockets.pop(key).close()
                    changed = True
        return changed

    def _family_wanted(self, host: str) -> bool:
        if self.ip_address_type == "ipv4":
            return not is_ipv6(host)
        if self.ip_address_type == "ipv6":
            return is_ipv6(host)
        return True

    def of(self, scheme: str) -> list[socket.socket]:
        """The sockets of one scheme, the configured address first."""
        configured, _ = parse_hostport(self.http_listen if scheme == HTTP else self.https_listen, field=scheme)
        hosts = sorted((h for (s, h) in self.sockets if s == scheme), key=lambda h: h != configured)
        return [self.sockets[(scheme, h)] for h in hosts]

    def addresses(self) -> list[str]:
        """``scheme://host:port`` of every socket (for the log and ``/health``)."""
        out = []
        for (scheme, host), sock in sorted(self.sockets.items()):
            port = sock.getsockname()[1]
            out.append(f"{scheme}://[{host}]:{port}" if is_ipv6(host) else f"{scheme}://{host}:{port}")
        return out

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

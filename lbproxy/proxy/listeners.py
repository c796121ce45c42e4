"""The listening sockets a load balancer serves on, held by the supervisor (workers get them as inherited fds).

Each scheme (HTTP, HTTPS) has its configured address (``http_listen`` / ``https_listen``) and, for Lightsail's
``ipAddressType``, the same port on the other IP family: ``dualstack`` listens on both, ``ipv4`` on the IPv4
address only, ``ipv6`` on the IPv6 one only. The other family's address is the counterpart of the configured
one: the loopback for the loopback (``127.0.0.1`` <-> ``::1``), the wildcard for the wildcard (``0.0.0.0``
<-> ``::``); any other address has none (that listener then stays on its own family). An IPv6 socket is
``IPV6_V6ONLY``, so it never collides with the IPv4 one on the same port. A host without IPv6 (no ``::1``)
keeps serving IPv4 and says so once.

The sockets outlive generations of workers: a worker that dies leaves its accept queue to its successor. With
several workers they can be one socket per address shared by all (any idle worker accepts; every worker wakes
for every connection) or, with ``SO_REUSEPORT``, one per worker slot (the kernel spreads connections; worker
``i`` of each generation inherits slot ``i``, so a queue never outlives its acceptors).
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


def bind_listener(
    host: str, port: int, backlog: int = 1024, *, reuseport: bool = False, defer_accept: int = 0
) -> socket.socket:
    """A listening TCP socket (non-blocking, ``SO_REUSEADDR``; IPv6 only for an IPv6 address). ``reuseport``:
    ``SO_REUSEPORT``, so several sockets share the port and the kernel spreads new connections among them;
    ``defer_accept``: ``TCP_DEFER_ACCEPT`` seconds (a connection is handed over once its first bytes came)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if defer_accept:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)
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
    #: Worker slots: with more than one, every address has one ``SO_REUSEPORT`` socket per slot (worker ``i`` of
    #: every generation serves on slot ``i``'s sockets); with one, every worker shares one socket per address.
    slots: int = 1
    #: ``TCP_DEFER_ACCEPT`` seconds on every socket (0: off).
    defer_accept: int = 0
    #: (scheme, host) -> its sockets, one per slot, for the addresses in use.
    sockets: dict[tuple[str, str], list[socket.socket]] = dataclasses.field(default_factory=dict)
    http_port: int = 0
    https_port: int = 0
    _warned: set[str] = dataclasses.field(default_factory=set)

    def open(self) -> None:
        """Bind the configured addresses (their ports are the load balancer's), then the counterparts."""
        for scheme, listen in ((HTTP, self.http_listen), (HTTPS, self.https_listen)):
            host, port = parse_hostport(listen, field=f"{scheme}_listen")
            socks = self._bind(host, port)
            self.sockets[(scheme, host)] = socks
            if scheme == HTTP:
                self.http_port = socks[0].getsockname()[1]
            else:
                self.https_port = socks[0].getsockname()[1]
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
                        self.sockets[key] = self._bind(h, port)
                        changed = True
                    except OSError as exc:
                        if h not in self._warned:
                            self._warned.add(h)
                            log.warning("cannot listen on [%s]:%d (%s): serving on the other IP family only", h,
                                        port, exc.strerror)  # fmt: skip
                elif h not in wanted and key in self.sockets:
                    for sock in self.sockets.pop(key):
                        sock.close()
                    changed = True
        return changed

    def _bind(self, host: str, port: int) -> list[socket.socket]:
        """One socket per slot on ``host:port`` (the first one picks the port when it is 0)."""
        reuseport = self.slots > 1
        first = bind_listener(host, port, reuseport=reuseport, defer_accept=self.defer_accept)
        socks = [first]
        try:
            for _ in range(self.slots - 1):
                socks.append(
                    bind_listener(host, first.getsockname()[1], reuseport=True, defer_accept=self.defer_accept)
                )
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return socks

    def _family_wanted(self, host: str) -> bool:
        if self.ip_address_type == "ipv4":
            return not is_ipv6(host)
        if self.ip_address_type == "ipv6":
            return is_ipv6(host)
        return True

    def of(self, scheme: str, slot: int = 0) -> list[socket.socket]:
        """The sockets of one scheme for one worker slot, the configured address first."""
        configured, _ = parse_hostport(self.http_listen if scheme == HTTP else self.https_listen, field=scheme)
        hosts = sorted((h for (s, h) in self.sockets if s == scheme), key=lambda h: h != configured)
        return [self.sockets[(scheme, h)][slot] for h in hosts]

    def all(self) -> list[socket.socket]:
        return [sock for socks in self.sockets.values() for sock in socks]

    def addresses(self) -> list[str]:
        """``scheme://host:port`` of every socket (for the log and ``/health``)."""
        out = []
        for (scheme, host), socks in sorted(self.sockets.items()):
            port = socks[0].getsockname()[1]
            out.append(f"{scheme}://[{host}]:{port}" if is_ipv6(host) else f"{scheme}://{host}:{port}")
        return out

    def close(self) -> None:
        for sock in self.all():
            sock.close()
        self.sockets.clear()

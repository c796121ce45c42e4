"""One process's data plane: the listeners, the routing state they share, the sweeper.

``Dataplane`` is what a worker process serves with, and what tests run in-process. It owns:
- the listeners (HTTP always; HTTPS through a ``TlsTerminator``, refusing handshakes without a key,
  each connection's TLS driven by a ``tlsconnection.TlsConnection``), serving sockets that were bound
  elsewhere (the supervisor's ``listeners``, or a test's ``listeners.bind_listener``);
- the shared routing state the protocols read on the hot path (``balancer``, ``pool``, ``metrics``,
  ``signer``, settings copied to plain attributes);
- the sweeper: a ``call_later`` chain (no task) every ``tick`` seconds that refreshes the coarse clock
  ``now`` and enforces the header (408), idle, and upstream response (504) timeouts, the TLS handshake
  and close deadlines (``tls_deadlines``), expires refusal marks and closes stale pooled connections;
- the lifecycle: ``start`` / ``update(spec)`` / ``set_healthy`` / ``revoke_tls`` / ``stop(mode)``, where
  ``stop`` is the written shutdown order: stop accepting, answer every next response with ``Connection:
  close`` (a rotation's clients move to the successor one exchange at a time), refuse handshakes
  (revoke/shutdown), let in-flight exchanges and TLS handshakes finish (and closed TLS connections finish
  sending) within the drain time (a rotation: ``rotation_grace``), close idle connections (TLS ones with
  close_notify; ``TlsConnection.close`` drops the SSL object at once), abort the rest.
- the access log (ALB's format, logger ``lbproxy.access``; None when off: no per-request cost).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from lbproxy.proxy.balancer import Balancer
from lbproxy.proxy.downstream import Downstream
from lbproxy.proxy.forwarding import forwarded_tail
from lbproxy.proxy.framing import RequestHead
from lbproxy.proxy.metrics import Metrics
from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings
from lbproxy.proxy.stickiness import StickinessSigner
from lbproxy.proxy.tlsconnection import TlsConnection
from lbproxy.proxy.upstream import Pool

if TYPE_CHECKING:
    from lbproxy.proxy.tls import TlsTerminator

log = logging.getLogger("lbproxy.proxy")

STOP_REVOKE = "revoke"
STOP_ROTATE = "rotate"
STOP_SHUTDOWN = "shutdown"


class Dataplane:
    def __init__(
        self,
        spec: LoadBalancerSpec,
        settings: ProxySettings,
        *,
        terminator: TlsTerminator | None = None,
        stickiness_secret: bytes,
        name: str = "worker",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.settings = settings
        self.name = name
        self.terminator = terminator
        self.metrics = Metrics()
        self.signer = StickinessSigner(stickiness_secret)
        self.balancer = Balancer(spec.instances)
        self.pool = Pool(
            self.loop,
            connect_timeout=settings.upstream_connect_timeout,
            idle_timeout=settings.upstream_idle_timeout,
            max_idle=settings.upstream_pool_size,
        )
        self.connections: set[Downstream] = set()
        #: TLS connections in their handshake or their close, and when they are reset (loop time).
        self.tls_deadlines: dict[TlsConnection, float] = {}
        #: Request heads already parsed, by their bytes (``framing.remember_head``).
        self.parsed_heads: dict[bytes, RequestHead] = {}
        #: Response heads already judged, by their bytes (``upstream.whole_response``).
        self.judged_heads: dict[bytes, tuple[int, int, int]] = {}
        #: By a listener's constant lines (``forwarding.forwarded_tail``, so the HTTP and the HTTPS listener
        #: never share), the client address lines by client address (``forwarding.remember_client``).
        self.client_lines: dict[bytes, dict[str, tuple[bytes, bytes]]] = {}
        self.now = self.loop.time()
        #: A stop began: every next response says ``Connection: close``; no upstream is pooled.
        self.draining = False
        #: New connections, and handshakes that complete, are refused: a revocation or shutdown began, or
        #: the stop ended. (A rotation keeps serving whatever the listener accepted before it closed.)
        self.refusing = False
        #: None while serving; the stop mode once ``stop`` began (``escalate`` can upgrade a rotation).
        self.stop_mode: str | None = None
        # Settings the hot path reads, as plain attributes.
        s = settings
        self.max_request_line = s.max_request_line
        self.max_header_bytes = s.max_header_bytes
        self.max_header_count = s.max_header_count
        self.max_body = s.max_body
        self.pipeline_limit = s.pipeline_buffer_bytes
        self.max_connections = s.max_connections
        self.refused_backoff = s.refused_backoff
        self.handshake_timeout = s.header_timeout
        self.tls_shutdown_timeout = s.tls_shutdown_timeout
        self.access_log: logging.Logger | None = logging.getLogger("lbproxy.access") if s.access_log else None
        self.https_port = 443
        self.http_port = 80
        self._servers: list[asyncio.AbstractServer] = []
        self._sweep_handle: asyncio.TimerHandle | None = None
        timeouts = (s.header_timeout, s.idle_timeout, s.upstream_response_timeout, s.tls_shutdown_timeout)
        self.tick = max(0.02, min(1.0, *(t / 4 for t in timeouts)))
        self.spec = spec
        self._apply(spec)

    # -- configuration -----------------------------------------------------------------------------
    def _apply(self, spec: LoadBalancerSpec) -> None:
        self.spec = spec
        self.sticky = spec.session_stickiness_enabled
        self.sticky_duration = spec.stickiness_cookie_duration
        self.redirect = spec.https_redirection_enabled
        #: One flag for the hot path: anything but plain round robin (redirect, stickiness).
        self.special_routing = self.redirect or self.sticky

    def update(self, spec: LoadBalancerSpec) -> None:
        """Swap instances and attributes; open connections and pooled upstreams to kept instances stay."""
        self.balancer.set_instances(spec.instances)
        self._apply(spec)

    def set_healthy(self, names: Iterable[str]) -> None:
        self.balancer.set_healthy(names)

    def revoke_tls(self) -> None:
        if self.terminator is not None:
            self.terminator.revoke()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, http_socks: Sequence[socket.socket], https_socks: Sequence[socket.socket]) -> None:
        """Serve on sockets bound elsewhere (``listeners``): the configured address first, then the same port
        on the other IP family. HTTPS only with a ``terminator`` (a key-less one refuses handshakes)."""
        loop = self.loop
        if http_socks:
            self.http_port = http_socks[0].getsockname()[1]
        tail = forwarded_tail("http", self.http_port)
        self.client_lines[tail] = {}
        for sock in http_socks:
            self._servers.append(
                await loop.create_server(functools.partial(Downstream, self, False, tail), sock=sock, backlog=1024)
            )
        if https_socks:
            self.https_port = https_socks[0].getsockname()[1]
        if self.terminator is not None:
            tail_s = forwarded_tail("https", self.https_port)
            self.client_lines[tail_s] = {}
            for sock in https_socks:
                self._servers.append(
                    await loop.create_server(
                        # (a partial, not a lambda: one Python frame less per accepted connection)
                        functools.partial(TlsConnection, self, self.terminator.base, tail_s),
                        sock=sock,
                        backlog=1024,
                    )
                )
        self._sweep_handle = loop.call_later(self.tick, self._sweep)

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()

    def escalate(self, mode: str) -> None:
        """A rotation in progress becomes a revocation or shutdown: refuse handshakes, drain, abort.

        (The key of a rotated-out generation is revoked while it still serves its last connections.)"""
        if mode == STOP_ROTATE or self.stop_mode not in (None, STOP_ROTATE):
            return
        self.stop_mode = mode
        self.revoke_tls()
        self.draining = self.refusing = True
        for conn in list(self.connections):
            if conn.idle():
                conn.close_idle()

    async def stop(self, mode: str = STOP_SHUTDOWN) -> None:
        """Stop in the written order (see the module docstring); returns when no connection is left.

        ``escalate`` may turn a rotation into a revocation while this waits."""
        self.stop_accepting()
        self.stop_mode = STOP_ROTATE
        # Every open connection finishes the exchange in progress and, at its next response, says
        # ``Connection: close`` and closes: its client reconnects to the successor. An idle one is not closed
        # under a client that may be sending (no close race); it goes with its next request, or at the end.
        self.draining = True
        self.escalate(mode)
        await asyncio.sleep(0)  # (connections the listener accepted just before it closed are made now)
        s = self.settings
        started = time.monotonic()
        while True:
            tls_busy = self._tls_busy()
            if not self.connections and not tls_busy:
                break
            rotating = self.stop_mode == STOP_ROTATE
            grace = s.rotation_grace if rotating else s.drain_timeout
            if time.monotonic() - started >= grace:
                break
            if not rotating and not tls_busy and all(c.idle() for c in self.connections):
                break
            await asyncio.sleep(0.02)
        self.refusing = True  # (a connection made after this is refused)
        for conn in list(self.connections):
            conn.closing = True
            conn.transport.abort()
        self.connections.clear()
        for tls in list(self.tls_deadlines):  # handshakes in progress, closes waiting for the client's FIN
            tls.expire()
        self.tls_deadlines.clear()
        self.pool.close_all()
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        self.terminator = None
        await asyncio.sleep(0)

    def _tls_busy(self) -> bool:
        """A TLS connection is in its handshake, or closed and still sending its last response (``stop``
        lets both finish, within the grace)."""
        return any(tls.busy() for tls in self.tls_deadlines)

    # -- the sweeper -------------------------------------------------------------------------------
    def _sweep(self) -> None:
        now = self.now = self.loop.time()
        settings = self.settings
        try:
            monotonic_now = time.monotonic()
            for connection in list(self.connections):
                if connection.closing:
                    continue
                if connection.request is None:
                    if connection.tunnel:
                        if now - connection.last_active > settings.idle_timeout:
                            connection.close_idle()
                    elif connection.head_started and now - connection.head_started > settings.header_timeout:
                        connection.header_timed_out()
                    elif now - connection.last_active > settings.idle_timeout:
                        connection.close_idle()
                elif connection.upstream is not None and not connection.status and connection.request_done:
                    if monotonic_now - connection.sent_at > settings.upstream_response_timeout:
                        connection.response_timed_out()
                elif now - connection.last_active > settings.idle_timeout:
                    connection.close_idle()
            if self.tls_deadlines:
                for tls, deadline in list(self.tls_deadlines.items()):
                    if now > deadline:
                        tls.expire()
            self.balancer.expire_refusals(now)
            self.pool.sweep(now, set(self.balancer.instances))
        finally:
            self._sweep_handle = self.loop.call_later(self.tick, self._sweep)

    # -- access log --------------------------------------------------------------------------------
    def log_access(self, connection: Downstream) -> None:
        """One line in ALB's access log format (only called when the access log is on)."""
        logger = self.access_log
        if logger is None:
            return
        head = connection.request
        instance = connection.instance
        target = f"{instance.host}:{instance.port}" if instance is not None else "-"
        port = self.https_port if connection.tls else self.http_port
        if head is not None:
            host = (head.host or b"-").decode("latin-1")
            scheme = "https" if connection.tls else "http"
            request_line = f"{head.method.decode()} {scheme}://{host}:{port}{head.target.decode('latin-1')} HTTP/1.1"
            user_agent = "-"
            for line in head.kept:
                if line[:11].lower() == b"user-agent:":
                    user_agent = line[11:].strip().decode("latin-1")
        else:
            request_line, user_agent = "- - -", "-"
        took = time.monotonic() - connection.sent_at if connection.sent_at else -1
        cipher, proto = "-", "-"
        if connection.tls and connection.transport is not None:
            info = connection.transport.get_extra_info("cipher")
            if info:
                cipher, proto = info[0], info[1]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        logger.info(
            '%s %s %s %s:0 %s -1 %.3f -1 %d %s %d %d "%s" "%s" %s %s',
            "https" if connection.tls else "http",
            stamp,
            self.spec.name,
            connection.client.decode(),
            target,
            took,
            connection.status,
            connection.status if instance is not None and connection.status else "-",
            head.raw_size if head is not None else 0,
            connection.sent,
            request_line,
            user_agent,
            cipher,
            proto,
        )

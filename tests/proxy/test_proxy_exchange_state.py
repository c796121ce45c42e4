"""The hot path's state by lifetime, over real sockets (in-process ``Dataplane``).

- Every kind of exchange leaves both connections as a new one would be: the client connection's exchange
  fields (``Downstream.EXCHANGE_STATE``) and the pooled instance connection's (``Upstream.EXCHANGE_STATE``)
  are back at their initial values, whichever of the fast, rare or local paths the exchange took (the
  ``rare`` flags skip resets on the common path: this is what makes that safe).
- A pooled connection the instance closed while it was idle is retried once on a new connection, for an
  idempotent request without a body only; a new connection that fails is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import pytest
from proxy_helpers import read_response

from lbproxy.proxy.downstream import Downstream
from lbproxy.proxy.spec import InstanceSpec
from lbproxy.proxy.upstream import Upstream

pytestmark = pytest.mark.timeout(30)

# (request bytes, a HEAD request) in the order sent on one keep-alive connection.
_EXCHANGES: list[tuple[str, bytes, bool]] = [
    ("whole response", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", False),
    ("HEAD", b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n", True),
    ("Content-Length body", b"POST /sink HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", False),
    (
        "chunked body",
        b"POST /sink HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        False,
    ),
    ("chunked response", b"GET /chunked?n=3 HTTP/1.1\r\nHost: h\r\n\r\n", False),
    ("instance error", b"GET /status/404 HTTP/1.1\r\nHost: h\r\n\r\n", False),
    (
        "100-continue",
        b"POST /sink HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        False,
    ),
    ("HTTP/1.0 keep-alive", b"GET /a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", False),
    ("forwarded-for", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n", False),
]


def _state(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _check_as_new(lb: Any, what: str) -> None:
    dataplane = lb.dp
    (conn,) = dataplane.connections
    fresh = Downstream(dataplane, conn.tls, conn.forwarded_tail)
    assert _state(conn, Downstream.EXCHANGE_STATE) == _state(fresh, Downstream.EXCHANGE_STATE), what
    assert not conn.closing and not conn.buffer and not conn.paused, what
    pooled = [upstream for idle in dataplane.pool.idle.values() for upstream in idle]
    assert pooled, what
    for upstream in pooled:
        new = Upstream(dataplane.pool, upstream.instance)
        assert _state(upstream, Upstream.EXCHANGE_STATE) == _state(new, Upstream.EXCHANGE_STATE), what


async def _read_past_interim(reader: asyncio.StreamReader, head: bool) -> Any:
    response = await read_response(reader, head=head)
    while response.status == 100:
        response = await read_response(reader, head=head)
    return response


async def test_every_kind_of_exchange_leaves_the_connections_as_new(
    backend_factory, dataplane_factory, listener
) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    try:
        for what, data, head in _EXCHANGES:
            writer.write(data)
            response = await _read_past_interim(reader, head)
            assert response.status in (200, 404), what
            _check_as_new(lb, what)
        # A local response on a kept connection (no instance routable), then stickiness (a cookie to set).
        lb.dp.set_healthy([])
        writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await read_response(reader)).status == 503
        (conn,) = lb.dp.connections
        assert _state(conn, Downstream.EXCHANGE_STATE) == _state(
            Downstream(lb.dp, conn.tls, conn.forwarded_tail), Downstream.EXCHANGE_STATE
        )
        lb.dp.set_healthy(["a"])
        lb.dp.update(replace(lb.dp.spec, session_stickiness_enabled=True))
        writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 200 and (response.header("Set-Cookie") or "").startswith("AWSALB=")
        _check_as_new(lb, "stickiness")
    finally:
        writer.close()


async def test_a_pooled_connection_closed_while_idle_is_retried_once(dataplane_factory, listener) -> None:
    """The instance drops every connection's second request unanswered (as a keep-alive connection it
    closed while idle looks to the proxy), and any request for /gone at once."""
    connections = 0

    async def instance(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            for served in range(1000):
                head = await reader.readuntil(b"\r\n\r\n")
                if served == 1 or b" /gone " in head:
                    writer.transport.abort()
                    return
                if b"Content-Length: 4" in head:
                    await reader.readexactly(4)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = await asyncio.start_server(instance, "127.0.0.1", 0)
    try:
        spec = InstanceSpec("s", "127.0.0.1", server.sockets[0].getsockname()[1])
        lb = await dataplane_factory([spec], keyed=listener.keyed)
        reader, writer = await listener.open(lb)
        writer.write(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (await read_response(reader)).status == 200
        writer.write(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")  # dropped by the pooled connection: retried
        assert (await read_response(reader)).status == 200
        assert connections == 2
        writer.write(b"POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody")  # dropped: not retried
        assert (await read_response(reader)).status == 502
        writer.write(b"GET /gone HTTP/1.1\r\nHost: h\r\n\r\n")  # a new connection that fails: not retried
        assert (await read_response(reader)).status == 502
        assert connections == 3
        writer.close()
    finally:
        server.close()

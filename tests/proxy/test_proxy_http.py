"""HTTP behaviour of the data plane over real sockets (in-process ``Dataplane``, aiohttp instances)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from typing import Any

import pytest
from aiohttp import ClientSession, WSMsgType
from proxy_helpers import raw, read_response, request

from lbproxy.proxy.spec import InstanceSpec
from lbproxy.proxy.stickiness import COOKIE_NAME

pytestmark = pytest.mark.timeout(30)


async def test_round_robin_and_forwarding_headers(backend_factory, dataplane_factory) -> None:
    a, b = await backend_factory("a"), await backend_factory("b")
    lb = await dataplane_factory([a.spec, b.spec])
    seen = []
    for _ in range(4):
        r = await request(lb.http_port, "/x?q=1", headers={"X-Forwarded-For": "10.1.1.1", "Host": "site.test"})
        assert r.status == 200
        info = r.json()
        seen.append(info["instance"])
        h = info["headers"]
        assert h["X-Forwarded-For"] == "10.1.1.1, 127.0.0.1"
        assert h["X-Forwarded-Proto"] == "http"
        assert h["X-Forwarded-Port"] == str(lb.http_port)
        assert h["Host"] == "site.test"
        assert info["path"] == "/x?q=1"
    assert seen == ["a", "b", "a", "b"]


async def test_forwarding_headers_per_listener_and_client_address(
    backend_factory, dataplane_factory, tls_files
) -> None:
    """The X-Forwarded-* lines a connection adds are its own listener's and its own client's, whichever
    listener and address the connections before it came from (they are shared per listener and client
    address: ``Dataplane.client_lines``)."""
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    ports = {"http": lb.http_port, "https": lb.https_port}
    for i in range(12):
        scheme = ("http", "https")[i % 2]
        client = ("127.0.0.1", "127.0.0.2", "127.0.0.3")[i % 3]
        tls = tls_files.client_context() if scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", ports[scheme], ssl=tls, server_hostname="localhost" if tls else None, local_addr=(client, 0)
        )
        writer.write(b"GET /f HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        headers = (await read_response(reader)).json()["headers"]
        writer.close()
        assert headers["X-Forwarded-For"] == client, (i, headers)
        assert headers["X-Forwarded-Proto"] == scheme and headers["X-Forwarded-Port"] == str(ports[scheme]), (
            i,
            headers,
        )
    assert len(lb.dp.client_lines) == 2  # one memo per listener
    assert all(set(lines) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"} for lines in lb.dp.client_lines.values())


async def test_keep_alive_both_sides(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    for i in range(5):
        writer.write(f"GET /k{i} HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n".encode())
        r = await read_response(reader)
        assert r.status == 200 and r.json()["path"] == f"/k{i}"
    writer.close()
    assert len(a.peers) == 1  # one pooled upstream connection served all five


async def test_responses_whole_or_in_pieces_reach_the_client_alike(dataplane_factory, listener) -> None:
    """A response that arrives whole in one read skips httptools (``upstream.whole_response``); one in
    pieces, a HEAD's, or one that closes goes through it. The client sees the same bytes either way
    (nginx's ``Connection: keep-alive`` cut), and the instance connection is reused unless it closed."""
    head = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    accepted: list[asyncio.StreamWriter] = []

    async def instance(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                method, path = (await reader.readuntil(b"\r\n\r\n")).split(b" ")[:2]
                if method == b"HEAD":
                    writer.write(head)
                elif path == b"/pieces":
                    for piece in (head[:20], head[20:] + b"he", b"llo"):
                        writer.write(piece)
                        await writer.drain()
                        await asyncio.sleep(0.05)
                elif path == b"/extra":  # a confused instance: more than the response, in one write
                    writer.write(head + b"hello" + b"HTTP/1.1 200 OK\r\nContent-Le")
                elif path == b"/close":
                    writer.write(head.replace(b"keep-alive", b"close") + b"hello")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(head + b"hello")

    server = await asyncio.start_server(instance, "127.0.0.1", 0)
    try:
        instance_spec = InstanceSpec("s", "127.0.0.1", server.sockets[0].getsockname()[1])
        lb = await dataplane_factory([instance_spec], keyed=listener.keyed)
        reader, writer = await listener.open(lb)
        out = b"HTTP/1.1 200 OK\r\nServer: scripted\r\nContent-Length: 5\r\n\r\n"
        exchanges = [("GET", "/whole"), ("GET", "/pieces"), ("HEAD", "/"), ("GET", "/whole"), ("GET", "/close")]
        exchanges += [("GET", "/extra"), ("GET", "/whole")]  # the bytes after /extra's response are no answer
        for method, path in exchanges:
            writer.write(f"{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            want = out if method == "HEAD" else out + b"hello"
            assert await asyncio.wait_for(reader.readexactly(len(want)), 5) == want, path
        assert len(accepted) == 3  # /close ended the first instance connection, /extra the second
        writer.write(b"GET /whole HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        want = out[:-2] + b"Connection: close\r\n\r\nhello"
        assert await asyncio.wait_for(reader.read(), 5) == want  # and then the client connection closes
        writer.close()
        assert len(accepted) == 3
        assert lb.dp.metrics.instance_2xx == 8 and lb.dp.metrics.response_time_count == 8
        # An answer before the request body is all there: the rest of that body cannot be framed, so the
        # response says the connection closes, and it does.
        reader, writer = await listener.open(lb)
        writer.write(b"POST /whole HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        assert await asyncio.wait_for(reader.read(), 5) == want
        writer.close()
    finally:
        server.close()


async def test_slow_client_leaves_no_paused_connection_in_the_pool(dataplane_factory, listener) -> None:
    """A client that does not read pauses reading on the instance connection that serves it; that
    connection must go back to the pool reading again, or the next client to get it waits for a 504.

    Made deterministic: the client connection's write buffer takes the first megabyte of the response
    without pausing (the client reads nothing, the kernel buffers are full), then its limit is lowered to
    what is buffered, so the response's last bytes pause it, and the exchange ends while it is paused."""
    first = 1 << 20
    last = b"z" * 100
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (first + len(last))
    go_on = asyncio.Event()

    async def instance(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if b" /big " in request:
                    writer.write(head + b"x" * first)
                    await writer.drain()
                    await go_on.wait()
                    writer.write(last)
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall")
                await writer.drain()

    server = await asyncio.start_server(instance, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        lb = await dataplane_factory(
            [InstanceSpec("a", "127.0.0.1", port)], keyed=listener.keyed, upstream_response_timeout=2.0
        )
        _, writer = await listener.open(lb)
        writer.transport.pause_reading()  # (the client reads nothing from now on)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await _until(lambda: len(lb.dp.connections) == 1)
        (conn,) = lb.dp.connections
        conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn.transport.set_write_buffer_limits(high=64 << 20)
        writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        await _until(lambda: conn.sent == len(head) + first)  # the first megabyte, in the write buffer
        sizes = [-1]
        while sizes[-5:] != [sizes[-1]] * 5:  # until the kernel takes no more
            await asyncio.sleep(0.02)
            sizes.append(conn.transport.get_write_buffer_size())
        assert not conn.write_paused and sizes[-1] > 0
        conn.transport.set_write_buffer_limits(high=sizes[-1])
        go_on.set()
        instance_a = lb.dp.balancer.get("a")
        await _until(lambda: bool(lb.dp.pool.idle.get(instance_a)))
        assert conn.write_paused and conn.request is None  # the exchange ended while the client was paused
        (pooled,) = lb.dp.pool.idle[instance_a]
        assert pooled.transport.is_reading()
        r = await asyncio.wait_for(request(lb.http_port, "/small"), 5)
        assert r.status == 200 and r.body == b"small"
        assert lb.dp.pool.idle[instance_a] == [pooled]  # (it served the next client)
        writer.transport.abort()
    finally:
        server.close()


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_hop_by_hop_stripped(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    r = await request(
        lb.http_port,
        headers={"Keep-Alive": "timeout=5", "TE": "trailers", "Connection": "X-Hop", "X-Hop": "1", "X-Keep": "2"},
    )
    names = {k.lower() for k, _ in r.json()["header_list"]}
    assert "x-keep" in names and not names & {"keep-alive", "te", "x-hop"}


async def test_chunked_and_content_length_bodies_both_ways(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    for part in (b"hello ", b"chunked ", b"world"):
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        await asyncio.sleep(0.01)
    writer.write(b"0\r\n\r\n")
    r = await read_response(reader)
    assert r.json()["body_len"] == len(b"hello chunked world")
    writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde")
    r = await read_response(reader)
    assert r.json()["body_len"] == 5 and r.json()["body_head"] == "abcde"
    writer.write(b"GET /chunked?n=4 HTTP/1.1\r\nHost: h\r\n\r\n")
    r = await read_response(reader)
    assert r.header("Transfer-Encoding") == "chunked" and r.body == b"part0;part1;part2;part3;"
    writer.close()


async def test_http10_client_gets_close_delimited_body(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    out = await raw(listener.port(lb), b"GET /chunked?n=2 HTTP/1.0\r\n\r\n", ssl_ctx=listener.ssl_ctx)
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"part0;part1;"


async def test_large_bodies_stream_with_backpressure(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    size = 48 * 1024 * 1024
    # Download: read slowly at first; the proxy must not buffer the whole body.
    reader, writer = await listener.open(lb, limit=1 << 16)
    writer.write(f"GET /big?size={size} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: %d" % size in head
    await asyncio.sleep(0.3)
    conn = next(iter(lb.dp.connections))
    buffered = conn.transport.get_write_buffer_size()
    assert buffered < 8 * 1024 * 1024, buffered
    got = 0
    try:
        async with asyncio.timeout(60):  # about 1.5 s on an idle machine; generous for loaded CI runners
            while got < size:
                chunk = await reader.read(1 << 20)
                assert chunk
                got += len(chunk)
    except TimeoutError:
        up = conn.upstream
        raise AssertionError(
            f"download stalled at {got} of {size} bytes: downstream write_paused={conn.write_paused} "
            f"paused={conn.paused} buffer={conn.transport.get_write_buffer_size()} "
            f"upstream={'none' if up is None else ('closed' if up.closed else 'open')}"
        ) from None
    assert got == size
    # Upload through the sink: Content-Length streamed.
    block = os.urandom(1 << 20)
    writer.write(f"POST /sink HTTP/1.1\r\nHost: h\r\nContent-Length: {16 * len(block)}\r\n\r\n".encode())
    for _ in range(16):
        writer.write(block)
        await writer.drain()
    r = await read_response(reader)
    assert r.json()["received"] == 16 * len(block)
    writer.close()


async def test_head_request(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    writer.write(b"HEAD /big?size=1000 HTTP/1.1\r\nHost: h\r\n\r\n")
    r = await read_response(reader, head=True)
    assert r.status == 200 and r.header("Content-Length") == "1000"
    writer.write(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")  # the same connections stay in sync
    r = await read_response(reader)
    assert r.json()["path"] == "/after"
    writer.close()


async def test_expect_100_continue(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    writer.write(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    interim = await read_response(reader)
    assert interim.status == 100
    writer.write(b"data")
    r = await read_response(reader)
    assert r.status == 200 and r.json()["body_len"] == 4
    writer.close()


async def test_pipelined_requests_answered_in_order(backend_factory, dataplane_factory, listener) -> None:
    a, b = await backend_factory("a"), await backend_factory("b")
    lb = await dataplane_factory([a.spec, b.spec], keyed=listener.keyed)
    reader, writer = await listener.open(lb)
    batch = (
        b"".join(
            b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: h\r\n\r\n"
            if i == 0
            else b"GET /p%d HTTP/1.1\r\nHost: h\r\n\r\n" % i
            for i in range(6)
        )
        + b"POST /p6 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
    )
    writer.write(batch)
    first = await read_response(reader)
    assert first.body == b"slow"
    for i in range(1, 7):
        r = await read_response(reader)
        assert r.json()["path"] == f"/p{i}"
    writer.close()


async def test_websocket_tunnel(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    url = f"{listener.scheme}://127.0.0.1:{listener.port(lb)}/ws"
    tls = {"ssl": listener.ssl_ctx, "server_hostname": "localhost"} if listener.ssl_ctx else {}
    async with ClientSession() as s, s.ws_connect(url, **tls) as ws:
        for i in range(3):
            await ws.send_str(f"m{i}")
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == WSMsgType.TEXT and msg.data == f"a:m{i}"


REJECTED = [
    (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: h\n\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET http://other/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
]


@pytest.mark.parametrize(("data", "status"), REJECTED, ids=[repr(d[:40]) for d, _ in REJECTED])
async def test_rejected_framing_never_forwarded(backend_factory, dataplane_factory, data, status, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    out = await raw(listener.port(lb), data, ssl_ctx=listener.ssl_ctx)
    assert out.startswith(b"HTTP/1.1 %d " % status), out[:100]
    assert b"Connection: close" in out
    assert a.requests == []  # nothing reached the instance
    assert lb.dp.metrics.lb_4xx + lb.dp.metrics.lb_5xx == 1


async def test_oversized_head_in_one_read_and_413(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed, max_header_bytes=1024, max_body=10)
    out = await raw(
        listener.port(lb), b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 2000 + b"\r\n\r\n", ssl_ctx=listener.ssl_ctx
    )
    assert out.startswith(b"HTTP/1.1 431 ")
    out = await raw(
        listener.port(lb),
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n01234567890",
        ssl_ctx=listener.ssl_ctx,
    )
    assert out.startswith(b"HTTP/1.1 413 ")
    chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n"
    out = await raw(listener.port(lb), chunked, ssl_ctx=listener.ssl_ctx)
    assert out.startswith(b"HTTP/1.1 413 ")
    assert a.requests == []


async def test_slowloris_gets_408(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed, header_timeout=0.3)
    reader, writer = await listener.open(lb)
    writer.write(b"GET / HTTP/1.1\r\n")
    async with asyncio.timeout(3):
        for _ in range(20):
            await asyncio.sleep(0.05)
            writer.write(b"X-Slow: 1\r\n")
            if reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
                break
        out = await reader.read()
    assert out.startswith(b"HTTP/1.1 408 ")


async def test_idle_timeout_closes(backend_factory, dataplane_factory) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], idle_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.http_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await read_response(reader)).status == 200
    async with asyncio.timeout(3):
        assert await reader.read() == b""


async def test_502_when_connect_refused_and_next_instance_used(backend_factory, dataplane_factory) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    a = await backend_factory("a")
    dead = InstanceSpec("dead", "127.0.0.1", dead_port)
    lb = await dataplane_factory([dead])
    r = await request(lb.http_port)
    assert r.status == 502 and b"502 Bad Gateway" in r.body
    await lb.dp.stop()
    lb = await dataplane_factory([dead, a.spec])
    names = [(await request(lb.http_port)).json()["instance"] for _ in range(4)]
    assert names == ["a"] * 4  # refused instance skipped at once (and the request retried)
    assert lb.dp.balancer.routable == (lb.dp.balancer.get("a"),)


async def test_backend_death_mid_request(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed)
    r = await request(listener.port(lb), "/die", ssl_ctx=listener.ssl_ctx)
    assert r.status == 502
    # Death after the response head: the client connection is aborted (truncation visible).
    reader, writer = await listener.open(lb)
    writer.write(b"GET /die?after_head=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        await read_response(reader)
    writer.close()
    # The proxy lives on.
    assert (await request(listener.port(lb), "/ok", ssl_ctx=listener.ssl_ctx)).status == 200


async def test_503_when_nothing_healthy(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed, healthy=[])
    r = await request(listener.port(lb), ssl_ctx=listener.ssl_ctx)
    assert r.status == 503 and r.header("Content-Type") == "text/html"
    lb.dp.set_healthy(["a"])
    assert (await request(listener.port(lb), ssl_ctx=listener.ssl_ctx)).status == 200


async def test_504_on_upstream_timeout(backend_factory, dataplane_factory, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed, upstream_response_timeout=0.3)
    r = await request(listener.port(lb), "/slow?delay=3", ssl_ctx=listener.ssl_ctx)
    assert r.status == 504
    assert lb.dp.metrics.lb_5xx == 1


async def test_stickiness_pins_and_ignores_tampered_cookie(backend_factory, dataplane_factory) -> None:
    a, b = await backend_factory("a"), await backend_factory("b")
    lb = await dataplane_factory([a.spec, b.spec], session_stickiness_enabled=True, stickiness_cookie_duration=120)
    r = await request(lb.http_port)
    first = r.json()["instance"]
    cookie = r.header("Set-Cookie")
    assert cookie is not None and cookie.startswith(COOKIE_NAME.decode() + "=") and "Max-Age=120" in cookie
    value = cookie.split(";")[0]
    for _ in range(4):
        assert (await request(lb.http_port, headers={"Cookie": value})).json()["instance"] == first
    # Tampered: name swapped to the other instance, tag kept.
    other = "b" if first == "a" else "a"
    expiry, _, tag = value.split("=", 1)[1].split(".")
    forged = f"{COOKIE_NAME.decode()}={expiry}.{base64.urlsafe_b64encode(other.encode()).decode().rstrip('=')}.{tag}"
    got = [(await request(lb.http_port, headers={"Cookie": forged})).json()["instance"] for _ in range(4)]
    assert set(got) == {"a", "b"}  # ignored: round robin again
    # Pinned instance unhealthy: re-pinned elsewhere.
    lb.dp.set_healthy([other])
    r = await request(lb.http_port, headers={"Cookie": value})
    assert r.json()["instance"] == other and r.header("Set-Cookie") is not None


async def test_https_redirect(backend_factory, dataplane_factory) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], https_redirection_enabled=True)
    r = await request(lb.http_port, "/p?q=1", headers={"Host": "example.com:8080"})
    assert r.status == 301
    assert r.header("Location") == f"https://example.com:{lb.https_port}/p?q=1"
    assert a.requests == []


async def test_live_update_keeps_connections(backend_factory, dataplane_factory) -> None:
    a, b = await backend_factory("a"), await backend_factory("b")
    lb = await dataplane_factory([a.spec])
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.http_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await read_response(reader)).json()["instance"] == "a"
    from dataclasses import replace

    lb.dp.update(replace(lb.dp.spec, instances=(b.spec,)))
    lb.dp.set_healthy(["b"])
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await read_response(reader)).json()["instance"] == "b"  # same client connection
    writer.close()


async def test_access_log_alb_format(backend_factory, dataplane_factory, caplog, listener) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=listener.keyed, access_log=True)
    with caplog.at_level("INFO", logger="lbproxy.access"):
        await request(listener.port(lb), "/logged", headers={"User-Agent": "ua/1"}, ssl_ctx=listener.ssl_ctx)
    lines = [r.getMessage() for r in caplog.records if r.name == "lbproxy.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(f"{listener.scheme} ") and " 200 200 " in line and '"ua/1"' in line
    assert f'"GET {listener.scheme}://localhost:{listener.port(lb)}/logged HTTP/1.1"' in line
    if listener.ssl_ctx is not None:  # ALB's ssl_cipher and ssl_protocol fields
        assert line.endswith(" TLSv1.2") and "ECDHE-ECDSA-AES128-GCM-SHA256" in line  # (no TLS 1.3: as Lightsail)
    else:
        assert line.endswith(" - -")

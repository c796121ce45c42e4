"""``TlsConnection``: the HTTPS listener's hand-driven TLS, seen from a client that drives its own TLS over
a plain socket (so close_notify, FIN and reset can be told apart): the close (close_notify, half-close,
the client's late bytes discarded, its FIN awaited within ``tls_shutdown_timeout``), the handshake
deadline, a client's close_notify with a request in flight, broken records, plain HTTP on the HTTPS port,
session resumption counted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

import pytest

pytestmark = pytest.mark.timeout(30)

REQUEST = b"GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n"
CLOSE_REQUEST = b"GET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class RawTlsClient:
    """A TLS client on memory BIOs over a non-blocking socket, driven step by step."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost", session=session)
        self.tcp_eof = False

    @classmethod
    async def connect(
        cls, port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None, rcvbuf: int = 0
    ) -> RawTlsClient:
        """Connected to 127.0.0.1:``port``; ``rcvbuf``: a small receive buffer (a client slow to read)."""
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock, ctx, session)

    async def flush(self) -> None:
        data = self.out.read()
        if data:
            await self.loop.sock_sendall(self.sock, data)

    async def feed(self) -> bool:
        """Receive once into the TLS object; False on the server's FIN."""
        data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), 5)
        if not data:
            self.tcp_eof = True
            return False
        self.inc.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self.flush()
                assert await self.feed(), "the server closed during the handshake"
        await self.flush()

    async def send(self, data: bytes) -> None:
        self.obj.write(data)
        await self.flush()

    async def read_to_close_notify(self) -> bytes:
        """Plaintext up to the server's close_notify (which must come before its FIN)."""
        got = b""
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                assert await self.feed(), f"FIN without close_notify after {got[:60]!r}"
                continue
            except ssl.SSLZeroReturnError:
                return got
            if not chunk:
                return got
            got += chunk

    def close(self) -> None:
        self.sock.close()


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_close_sends_close_notify_half_closes_and_waits_for_the_client(
    backend_factory, dataplane_factory, tls_files
) -> None:
    """A response with ``Connection: close`` reaches the client whole, then close_notify, then FIN. The
    request the client had already sent behind it meets no reset; the server waits for the client's FIN."""
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context())
    try:
        await client.handshake()
        await client.send(CLOSE_REQUEST + REQUEST)  # the second request will not be answered
        got = await client.read_to_close_notify()
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in got and got.endswith(b"}")
        assert not await client.feed() and client.tcp_eof  # FIN: the server's write side is shut
        assert len(lb.dp.tls_deadlines) == 1 and not lb.dp.connections  # the Downstream is done already
        await client.loop.sock_sendall(client.sock, b"\x15\x03\x03\x00\x02\x01\x00late bytes")  # discarded
        await asyncio.sleep(0.1)
        assert len(lb.dp.tls_deadlines) == 1
    finally:
        client.close()
    await _until(lambda: not lb.dp.tls_deadlines)
    assert lb.dp.metrics.tls_full_handshakes == 1 and lb.dp.metrics.tls_negotiation_errors == 0
    assert [r["path"] for r in a.requests] == ["/c"]


async def test_client_that_never_closes_is_reset_after_tls_shutdown_timeout(
    backend_factory, dataplane_factory, tls_files
) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed(), tls_shutdown_timeout=0.2)
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context())
    try:
        await client.handshake()
        await client.send(CLOSE_REQUEST)
        assert (await client.read_to_close_notify()).startswith(b"HTTP/1.1 200 OK")
        assert lb.dp.tls_deadlines
        await _until(lambda: not lb.dp.tls_deadlines, timeout=3)  # the sweeper reset it
    finally:
        client.close()


async def test_silent_client_is_dropped_at_the_handshake_deadline(dataplane_factory, tls_files) -> None:
    lb = await dataplane_factory([], keyed=tls_files.keyed(), header_timeout=0.2)
    sock = socket.socket()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, ("127.0.0.1", lb.https_port))
        await _until(lambda: bool(lb.dp.tls_deadlines), timeout=2)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(loop.sock_recv(sock, 100), 3) == b""
    finally:
        sock.close()
    await _until(lambda: not lb.dp.tls_deadlines)
    assert lb.dp.metrics.tls_negotiation_errors == 1 and lb.dp.metrics.tls_full_handshakes == 0


async def test_client_close_notify_with_a_request_in_flight_still_gets_the_answer(
    backend_factory, dataplane_factory, tls_files
) -> None:
    """TLS 1.3 allows the half-close: the request and the client's close_notify in one flight; the
    response comes, then the server's close_notify."""
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context())
    try:
        await client.handshake()
        client.obj.write(b"GET /slow?delay=0.1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with contextlib.suppress(ssl.SSLWantReadError):
            client.obj.unwrap()  # close_notify, queued behind the request
        await client.flush()
        got = await client.read_to_close_notify()
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in got and got.endswith(b"slow")
        assert not await client.feed()
    finally:
        client.close()


async def test_broken_record_resets_only_that_connection(backend_factory, dataplane_factory, tls_files) -> None:
    from proxy_helpers import request

    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context())
    try:
        await client.handshake()
        await client.loop.sock_sendall(client.sock, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # fails its AEAD tag
        with contextlib.suppress(ConnectionError):
            while await client.feed():
                pass
    finally:
        client.close()
    await _until(lambda: not lb.dp.connections)
    r = await request(lb.https_port, ssl_ctx=tls_files.client_context())
    assert r.status == 200


async def test_plain_http_on_the_https_port_is_a_negotiation_error(dataplane_factory, tls_files) -> None:
    from proxy_helpers import raw

    lb = await dataplane_factory([], keyed=tls_files.keyed())
    out = await raw(lb.https_port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert not out.startswith(b"HTTP/")  # a TLS alert at most
    await _until(lambda: lb.dp.metrics.tls_negotiation_errors == 1)
    assert not lb.dp.tls_deadlines


async def test_session_resumption_is_counted(backend_factory, dataplane_factory, tls_files) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    ctx = tls_files.client_context()
    session = None
    for _ in range(2):
        client = await RawTlsClient.connect(lb.https_port, ctx, session)
        try:
            await client.handshake()
            await client.send(CLOSE_REQUEST)
            assert (await client.read_to_close_notify()).startswith(b"HTTP/1.1 200 OK")
            session = client.obj.session  # with the tickets read after the handshake
        finally:
            client.close()
    m = lb.dp.metrics
    assert (m.tls_full_handshakes, m.tls_resumed_handshakes, m.tls_negotiation_errors) == (1, 1, 0)


def _tls_connections(lb):  # type: ignore[no-untyped-def]
    """The open connections' TlsConnections (the Downstreams' transports)."""
    return [conn.transport for conn in lb.dp.connections]


async def test_nothing_is_read_after_a_kept_close_notify(backend_factory, dataplane_factory, tls_files) -> None:
    """A client that sends close_notify in the middle of a request body and then keeps sending: reading
    stops at the close_notify (nothing may follow it), so the bytes pile up nowhere in the proxy. (The
    unfinished request then ends at the idle timeout.)"""
    a = await backend_factory("a")
    lb = await dataplane_factory(
        [a.spec],
        keyed=tls_files.keyed(tls13=True),
        offer_tls13=True,  # (TLS 1.3's half-close)
        idle_timeout=0.5,
    )
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context())
    try:
        await client.handshake()
        client.obj.write(b"POST /sink HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345")
        with contextlib.suppress(ssl.SSLWantReadError):
            client.obj.unwrap()
        await client.flush()
        await _until(lambda: any(t.reading_paused for t in _tls_connections(lb)))
        junk = b"\x17\x03\x03\x40\x00" + b"j" * 16384
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(1):
                for _ in range(64):  # 1 MiB, or as much as the socket buffers take
                    await client.loop.sock_sendall(client.sock, junk)
        (tls,) = _tls_connections(lb)
        assert tls.incoming.pending < 1024
    finally:
        client.close()
    await _until(lambda: not lb.dp.connections and not lb.dp.tls_deadlines)


async def test_close_after_the_client_fin_has_a_deadline(backend_factory, dataplane_factory, tls_files) -> None:
    """A client that half-closes TCP after its request and never reads: the response is answered into the
    buffers, the close waits at most ``tls_shutdown_timeout``, then the connection is aborted."""
    a = await backend_factory("a")
    lb = await dataplane_factory(
        [a.spec],
        keyed=tls_files.keyed(tls13=True),
        offer_tls13=True,  # (TLS 1.3's half-close)
        tls_shutdown_timeout=0.3,
    )
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context(), rcvbuf=4096)
    try:
        await client.handshake()
        await client.send(b"GET /big?size=3000000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        client.sock.shutdown(socket.SHUT_WR)
        await _until(lambda: bool(lb.dp.tls_deadlines) and not lb.dp.connections)  # answered, closed, draining
        await _until(lambda: not lb.dp.tls_deadlines, timeout=5)  # then aborted at the deadline
    finally:
        client.close()


async def test_stop_lets_a_closed_connection_finish_sending(backend_factory, dataplane_factory, tls_files) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed(), drain_timeout=5.0)
    size = 2_000_000
    client = await RawTlsClient.connect(lb.https_port, tls_files.client_context(), rcvbuf=4096)
    try:
        await client.handshake()
        await _until(lambda: bool(lb.dp.connections))
        for tls in _tls_connections(lb):  # the response waits in the proxy's buffer, not the kernel's
            tls.set_write_buffer_limits(high=4 * size)  # (and without backpressure)
            tls.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await client.send(b"GET /big?size=%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % size)
        # Not reading: the response fills the buffers, the Downstream closes, bytes are left to send.
        await _until(
            lambda: any(t.busy() and t.secure for t in lb.dp.tls_deadlines) and not lb.dp.connections, timeout=10
        )
        stopping = asyncio.create_task(lb.dp.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()
        got = await client.read_to_close_notify()
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and len(body) == size
        await asyncio.wait_for(stopping, 5)
    finally:
        client.close()


async def test_handshakes_in_progress_count_toward_max_connections(dataplane_factory, tls_files) -> None:
    lb = await dataplane_factory([], keyed=tls_files.keyed(), max_connections=2)
    loop = asyncio.get_running_loop()
    socks = []
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", lb.https_port))
            socks.append(sock)
        await _until(lambda: lb.dp.metrics.rejected_connections == 1)
        assert len(lb.dp.tls_deadlines) == 2 and lb.dp.metrics.tls_negotiation_errors == 0
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(loop.sock_recv(socks[2], 100), 3) == b""
    finally:
        for sock in socks:
            sock.close()

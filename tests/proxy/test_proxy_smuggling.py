"""Request smuggling through hop-by-hop headers, upgrades other than WebSocket, and fragments (issue 12 §3).

The values side (``parse_request_head`` and the forwarded head) and the end-to-end side: the reported
attack (``Connection: Content-Length`` with a body that is itself a request) through a real data plane to
an instance that records the exact bytes it receives (``recording_backend.RecordingBackend``), over HTTP and
HTTPS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from proxy_helpers import raw, read_response
from recording_backend import RecordingBackend

from lbproxy.proxy.forwarding import forwarded_tail, upstream_request_head
from lbproxy.proxy.framing import FramingError, parse_request_head


def forwarded(head: bytes) -> bytes:
    return upstream_request_head(parse_request_head(head), b"10.0.0.9", forwarded_tail("http", 80))


def names(fwd: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in fwd.split(b"\r\n")[1:] if line]


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"

# -- values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "connection",
    [
        b"Content-Length",
        b"content-length",
        b"close, Content-Length",
        b"keep-alive,CONTENT-LENGTH",
        b"Transfer-Encoding",
        b"Host",
        b"X-Forwarded-For",
        b"x-forwarded-proto",
        b"X-Forwarded-Port",
        b"Content_Length",
        b"Transfer_Encoding",
        b"upgrade, Transfer-Encoding",
    ],
)
def test_connection_naming_a_framing_or_routing_header_is_refused(connection: bytes) -> None:
    for body_headers in (b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b""):
        head = b"POST / HTTP/1.1\r\nHost: h\r\nConnection: " + connection + b"\r\n" + body_headers + b"\r\n"
        with pytest.raises(FramingError) as info:
            parse_request_head(head)
        assert info.value.status == 400
        assert "Connection" in info.value.reason


def test_connection_content_length_keeps_the_body_framed_or_refuses() -> None:
    # The reported defect: the restated Content-Length line was dropped as hop-by-hop, the body kept.
    head = b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
    with pytest.raises(FramingError) as info:
        parse_request_head(head)
    assert info.value.status == 400


def test_second_connection_line_naming_a_framing_header_is_refused() -> None:
    head = b"POST / HTTP/1.1\r\nConnection: close\r\nHost: h\r\nContent-Length: 3\r\nConnection: Content-Length\r\n\r\n"
    with pytest.raises(FramingError):
        parse_request_head(head)


def test_other_connection_listed_names_are_still_dropped() -> None:
    fwd = forwarded(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Foo, Cookie, close\r\nX-Foo: 1\r\nCookie: a=b\r\n"
        b"X-Bar: 2\r\nContent-Length: 0\r\n\r\n"
    )
    got = names(fwd)
    assert b"x-foo" not in got and b"cookie" not in got
    assert b"x-bar" in got and got.count(b"host") == 1 and got.count(b"content-length") == 1


@pytest.mark.parametrize("target", [b"/a#frag", b"/#", b"/a?b=1#c", b"http://h/x#y", b"#"])
def test_fragment_in_target_is_refused(target: bytes) -> None:
    with pytest.raises(FramingError) as info:
        parse_request_head(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert info.value.status == 400
    assert "#" in info.value.reason or "fragment" in info.value.reason


@pytest.mark.parametrize(
    ("upgrade", "connection"),
    [
        (b"h2c", b"Upgrade, HTTP2-Settings"),
        (b"H2C", b"upgrade"),
        (b"foo/1", b"Upgrade"),
        (b"websocketx", b"Upgrade"),
        (b"TLS/1.2", b"Upgrade"),
    ],
)
def test_upgrades_other_than_websocket_are_dropped(upgrade: bytes, connection: bytes) -> None:
    head = (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: " + connection + b"\r\nUpgrade: " + upgrade + b"\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Ok: 1\r\n\r\n"
    )
    req = parse_request_head(head)
    assert req.upgrade is None
    fwd = upstream_request_head(req, b"10.0.0.9", forwarded_tail("http", 80))
    got = names(fwd)
    assert not {b"upgrade", b"connection", b"http2-settings"} & set(got), fwd
    assert b"x-ok" in got


def test_http2_settings_never_forwarded() -> None:
    fwd = forwarded(b"GET / HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    assert b"http2-settings" not in names(fwd)


@pytest.mark.parametrize(
    ("upgrade", "kept"),
    [
        (b"websocket", b"websocket"),
        (b"WebSocket", b"WebSocket"),
        (b"h2c, websocket", b"websocket"),
        (b"websocket , foo/1", b"websocket"),
    ],
)
def test_websocket_upgrade_is_the_only_one_offered(upgrade: bytes, kept: bytes) -> None:
    head = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: " + upgrade + b"\r\n\r\n"
    req = parse_request_head(head)
    assert req.upgrade == kept
    fwd = upstream_request_head(req, b"10.0.0.9", forwarded_tail("http", 80))
    assert fwd.count(b"\r\nUpgrade: ") == 1 and b"\r\nUpgrade: " + kept + b"\r\n" in fwd
    assert b"h2c" not in fwd and b"foo/1" not in fwd


# -- end to end --------------------------------------------------------------------------------------


@pytest.fixture
async def recording() -> AsyncIterator[RecordingBackend]:
    backend = await RecordingBackend().start()
    yield backend
    await backend.close()


async def _collect(listener, lb, data: bytes, quiet: float = 0.3) -> bytes:
    """Send ``data``; everything received until the proxy closes or stays quiet for ``quiet`` seconds."""
    reader, writer = await listener.open(lb)
    writer.write(data)
    out = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), quiet):
            out += chunk
    except TimeoutError:
        pass
    finally:
        writer.transport.abort()
    return out


async def _exchange(listener, lb, data: bytes):
    reader, writer = await listener.open(lb)
    try:
        writer.write(data)
        return await read_response(reader)
    finally:
        writer.transport.abort()


async def test_connection_content_length_attack_is_refused_end_to_end(dataplane_factory, recording, listener) -> None:
    """The reported attack: the body is a full request; the proxy must not let the instance see it."""
    lb = await dataplane_factory([recording.spec()], keyed=listener.keyed)
    # The victim's request first, so a poisoned keep-alive instance connection would be in the pool.
    first = await _exchange(listener, lb, b"GET /before HTTP/1.1\r\nHost: h\r\n\r\n")
    assert first.status == 200 and first.body == b"GET /before"
    attack = (
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
        + SMUGGLED
    )
    out = await raw(listener.port(lb), attack, ssl_ctx=listener.ssl_ctx)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"Connection: close" in out and b"/smuggled" not in out
    victim = await _exchange(listener, lb, b"GET /victim HTTP/1.1\r\nHost: h\r\n\r\n")
    assert victim.status == 200 and victim.body == b"GET /victim"
    await asyncio.sleep(0.05)
    assert [r.target for r in recording.requests] == [b"/before", b"/victim"]
    assert b"/smuggled" not in recording.all_bytes and b"POST" not in recording.all_bytes
    assert recording.errors == []


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: close, Content-Length\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Host\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
    ],
    ids=["cl", "te", "host", "xff", "fragment"],
)
async def test_refused_end_to_end(dataplane_factory, recording, listener, data: bytes) -> None:
    lb = await dataplane_factory([recording.spec()], keyed=listener.keyed)
    out = await raw(listener.port(lb), data, ssl_ctx=listener.ssl_ctx)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    await asyncio.sleep(0.05)
    assert recording.received == [] and recording.requests == []


async def test_h2c_upgrade_is_served_as_plain_http(dataplane_factory, recording, listener) -> None:
    lb = await dataplane_factory([recording.spec()], keyed=listener.keyed)
    resp = await _exchange(
        listener,
        lb,
        b"GET /h2c HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    assert resp.status == 200 and resp.body == b"GET /h2c"
    [rec] = recording.requests
    got = {k.lower() for k, _ in rec.headers}
    assert not {b"upgrade", b"connection", b"http2-settings"} & got
    assert recording.errors == []


@pytest.mark.parametrize(
    ("request_head", "answer"),
    [
        (  # an h2c upgrade, dropped: the instance's 101 is an answer to a request it never got
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        ),
        (  # no upgrade asked at all
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        (  # WebSocket offered, another protocol chosen
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        ),
    ],
    ids=["h2c", "none", "websocket-answered-h2c"],
)
async def test_101_for_an_upgrade_not_forwarded_is_502(
    dataplane_factory, listener, request_head: bytes, answer: bytes
) -> None:
    backend = await RecordingBackend(answer_101=answer + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").start()
    try:
        lb = await dataplane_factory([backend.spec()], keyed=listener.keyed)
        out = await _collect(listener, lb, request_head + b"tunnelled bytes")
        assert out.startswith(b"HTTP/1.1 502 "), out[:200]
        assert b"101" not in out.split(b"\r\n", 1)[1] and b"PRI" not in out
        await asyncio.sleep(0.05)
        assert b"tunnelled bytes" not in backend.all_bytes
        [rec] = backend.requests
        assert not {b"http2-settings"} & {k.lower() for k, _ in rec.headers}
    finally:
        await backend.close()

"""Property-based tests of request framing (issue 12 §3): whatever the head, the instance frames it as we did.

One generator of request heads (``requests``): random hop-by-hop tokens in ``Connection`` (framing and
routing names among them), header order and name casing, optional whitespace, Content-Length or chunked
bodies (or both), bodies that are themselves a request, X-Forwarded-*, Upgrade (WebSocket, h2c, others),
HTTP2-Settings, Keep-Alive, TE, Trailer, Expect, HTTP/1.0, absolute-form, ``*`` and ``#`` targets.

- ``test_forwarded_head_frames_the_body_as_parsed`` (values): ``parse_request_head`` refuses exactly the
  heads it must (``expected_refusal``), and for every other one the head the instance gets
  (``upstream_request_head``) is read by h11, an independent parser, with the same method, target, body
  framing and body, exactly one Host equal to the parsed one, the proxy's X-Forwarded-* and nothing named
  in ``Connection``; the set of forwarded header names is predicted from the sent ones.
- ``test_real_proxy_forwards_exactly_one_request`` (sockets, HTTP and HTTPS): the same heads through an
  in-process data plane to ``RecordingBackend``: an accepted request arrives as exactly one request with
  the same body and nothing after it, a refused one gets a 4xx and nothing reaches the instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import TypeVar

import h11
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from proxy_helpers import read_response
from recording_backend import RecordingBackend

from lbproxy.proxy.forwarding import forwarded_tail, upstream_request_head
from lbproxy.proxy.framing import FramingError, RequestHead, parse_request_head

T = TypeVar("T")
CLIENT = b"10.1.2.3"
TAIL = forwarded_tail("https", 443)
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
PROBE = b"GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n"

#: ``Connection`` tokens: hop-by-hop names the proxy drops, and (rarer) names it must refuse there.
CONNECTION_TOKENS = [
    b"close",
    b"keep-alive",
    b"Upgrade",
    b"X-Foo",
    b"Cookie",
    b"Keep-Alive",
    b"TE",
    b"Trailer",
    b"HTTP2-Settings",
    b"Expect",
    b"Proxy-Connection",
    b"X-Bar",
    b"Connection",
]
CONNECTION_REFUSED_TOKENS = [
    b"Content-Length",
    b"Transfer-Encoding",
    b"Host",
    b"X-Forwarded-For",
    b"X-Forwarded-Proto",
    b"X-Forwarded-Port",
    b"Content_Length",
    b"Transfer_Encoding",
]
#: Names whose presence in ``Connection`` must be a 400 (after ``_`` -> ``-``).
REFUSED_IN_CONNECTION = {
    b"content-length",
    b"transfer-encoding",
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-port",
}
STANDARD_TOKENS = {b"close", b"keep-alive", b"upgrade", b""}
UPGRADES = [b"websocket", b"WebSocket", b"h2c", b"foo/1", b"h2c, websocket", b"websocket, foo/1", b"TLS/1.2"]
OPTIONAL: list[tuple[bytes, list[bytes]]] = [
    (b"Upgrade", UPGRADES),
    (b"HTTP2-Settings", [b"AAMAAABkAAQAAP__"]),
    (b"Keep-Alive", [b"timeout=5"]),
    (b"TE", [b"trailers"]),
    (b"Trailer", [b"X-T"]),
    (b"X-Forwarded-Proto", [b"http"]),
    (b"X-Forwarded-Port", [b"80"]),
    (b"X-Foo", [b"foo"]),
    (b"X-Bar", [b"bar"]),
    (b"Cookie", [b"a=b"]),
    (b"Expect", [b"100-continue"]),
    (b"Proxy-Connection", [b"keep-alive"]),
    (b"User-Agent", [b"prop/1"]),
]
#: Request header names the proxy never forwards as sent (hop-by-hop, or replaced by its own).
NEVER_FORWARDED_AS_SENT = {
    b"connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"proxy-connection",
    b"http2-settings",
    b"upgrade",
    b"transfer-encoding",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-port",
}


@dataclasses.dataclass
class Gen:
    method: bytes
    target: bytes
    http10: bool
    host: bytes
    hosts: int
    kind: str  # "none", "cl", "chunked" or "both"
    body: bytes
    wire_body: bytes
    lines: list[tuple[bytes, bytes]]  # (name as sent, value as sent), in order
    connection: list[bytes]  # the Connection tokens, lower-cased and stripped

    @property
    def head(self) -> bytes:
        version = b"HTTP/1.0" if self.http10 else b"HTTP/1.1"
        return (
            b"%s %s %s\r\n" % (self.method, self.target, version)
            + b"".join(n + b":" + v + b"\r\n" for n, v in self.lines)
            + b"\r\n"
        )

    @property
    def data(self) -> bytes:
        return self.head + self.wire_body

    def values(self, name: bytes) -> list[bytes]:
        return [v.strip(b" \t") for n, v in self.lines if n.lower() == name]

    @property
    def names(self) -> set[bytes]:
        return {n.lower() for n, _ in self.lines}


def _recase(draw: st.DrawFn, name: bytes) -> bytes:
    style = draw(st.sampled_from(["keep", "lower", "upper", "mixed"]))
    if style == "lower":
        return name.lower()
    if style == "upper":
        return name.upper()
    if style == "mixed":
        flips = draw(st.integers(0, (1 << len(name)) - 1))
        return bytes(c ^ 0x20 if (flips >> i) & 1 and chr(c).isalpha() else c for i, c in enumerate(name))
    return name


def _ows(draw: st.DrawFn, value: bytes) -> bytes:
    return draw(st.sampled_from([b"", b" ", b"\t", b"  "])) + value + draw(st.sampled_from([b"", b" ", b"\t"]))


def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    out = b""
    pos = 0
    while pos < len(body):
        size = draw(st.integers(1, 24))
        piece = body[pos : pos + size]
        ext = draw(st.sampled_from([b"", b"", b";x=1"]))
        out += b"%x%s\r\n%s\r\n" % (len(piece), ext, piece)
        pos += len(piece)
    trailer = draw(st.sampled_from([b"", b"", b"X-T: 1\r\n"]))
    return out + b"0\r\n" + trailer + b"\r\n"


def _pick(draw: st.DrawFn, common: list[T], rare: list[T], one_in: int) -> T:
    """A value from ``rare`` once in ``one_in`` draws, else from ``common`` (so most heads are accepted)."""
    return draw(st.sampled_from(rare if draw(st.sampled_from([False] * (one_in - 1) + [True])) else common))


@st.composite
def requests(draw: st.DrawFn) -> Gen:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"]))
    target = _pick(draw, [b"/", b"/a?b=1", b"/smuggled", b"http://h/abs?q"], [b"/x#frag", b"*", b"/p#"], 8)
    http10 = draw(st.integers(1, 8)) == 1
    host = _pick(draw, [b"h"], [b"example.com:8080"], 8)
    hosts = _pick(draw, [1], [0, 2], 12)
    kind = _pick(draw, ["none", "cl", "chunked"], ["both"], 12)
    body = b""
    if kind != "none":
        body = draw(
            st.one_of(
                st.just(SMUGGLED),
                st.binary(min_size=1, max_size=48),
                st.binary(max_size=8).map(lambda b: SMUGGLED + b),
            )
        )
    lines: list[tuple[bytes, bytes]] = []
    for _ in range(hosts):
        lines.append((_recase(draw, b"Host"), _ows(draw, host)))
    if kind in ("cl", "both"):
        lines.append((_recase(draw, b"Content-Length"), _ows(draw, b"%d" % len(body))))
    if kind in ("chunked", "both"):
        lines.append((_recase(draw, b"Transfer-Encoding"), _ows(draw, _recase(draw, b"chunked"))))
    connection: list[bytes] = []
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        tokens = [
            _recase(draw, _pick(draw, CONNECTION_TOKENS, CONNECTION_REFUSED_TOKENS, 10))
            for _ in range(draw(st.integers(1, 3)))
        ]
        sep = draw(st.sampled_from([b",", b", ", b" , "]))
        lines.append((_recase(draw, b"Connection"), _ows(draw, sep.join(tokens))))
        connection += [t.lower() for t in tokens]
    for _ in range(draw(st.integers(0, 2))):
        lines.append((_recase(draw, b"X-Forwarded-For"), _ows(draw, draw(st.sampled_from([b"1.2.3.4", b"5.6.7.8"])))))
    for name, values in OPTIONAL:
        if draw(st.integers(1, 3)) == 1:
            lines.append((_recase(draw, name), _ows(draw, draw(st.sampled_from(values)))))
    lines = draw(st.permutations(lines))
    wire_body = _chunked(draw, body) if kind in ("chunked", "both") else body
    return Gen(method, target, http10, host, hosts, kind, body, wire_body, lines, connection)


def expected_refusal(g: Gen) -> bool:
    """Whether ``parse_request_head`` must refuse ``g`` (every refusal the generator can cause is a 400)."""
    return (
        b"#" in g.target
        or g.hosts > 1
        or (g.hosts == 0 and not g.http10)
        or g.kind == "both"
        or (g.kind == "chunked" and g.http10)
        or any(t.replace(b"_", b"-") in REFUSED_IN_CONNECTION for t in g.connection)
        or (g.target == b"*" and g.method != b"OPTIONS")
        or (g.target.startswith(b"http://") and g.hosts == 1 and g.host != b"h")
    )


def expected_upgrade(g: Gen) -> bytes | None:
    """The WebSocket token the instance is offered, or None (any other upgrade is not forwarded)."""
    if g.http10 or b"upgrade" not in g.connection:
        return None
    for value in g.values(b"upgrade"):
        for token in value.split(b","):
            if token.strip(b" \t").lower() == b"websocket":
                return token.strip(b" \t")
    return None


def parse(g: Gen) -> RequestHead | FramingError:
    try:
        req = parse_request_head(g.head)
    except FramingError as exc:
        event(f"refused: {exc.reason.partition(':')[0]}")
        assert expected_refusal(g), f"refused ({exc}) a head that must be accepted:\n{g.head!r}"
        assert exc.status == 400, exc
        return exc
    event(f"accepted: {'chunked' if req.chunked else 'length' if req.content_length else 'no body'}")
    if req.upgrade is not None:
        event("accepted: websocket upgrade")
    assert not expected_refusal(g), f"accepted a head that must be refused:\n{g.head!r}"
    # The parser framed the body the way the client did.
    if g.kind == "chunked":
        assert req.chunked and req.content_length == -1
    elif g.kind == "cl":
        assert not req.chunked and req.content_length == len(g.body)
    else:
        assert not req.chunked and req.content_length == 0
    assert req.method == g.method
    assert (req.upgrade is None) == (expected_upgrade(g) is None) and req.upgrade == expected_upgrade(g)
    return req


def values_of(fwd: bytes, name: bytes) -> list[bytes]:
    return [v for n, v in _header_lines(fwd) if n == name]


def _header_lines(fwd: bytes) -> list[tuple[bytes, bytes]]:
    """The forwarded head's header lines, split by hand (a second, trivial view besides h11's)."""
    assert fwd.endswith(b"\r\n\r\n") and fwd.count(b"\r\n\r\n") == 1
    out = []
    for line in fwd[:-4].split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        assert sep and name and name == name.strip(), line
        out.append((name.lower(), value.strip(b" \t")))
    return out


def check_head(g: Gen, req: RequestHead, fwd: bytes, client: bytes, proto: bytes, host: bytes) -> None:
    """The head an instance got (``fwd``) for the client's ``g``, parsed as ``req``: request line, framing,
    Host, X-Forwarded-*, nothing named in Connection, every end-to-end header as often as it was sent."""
    assert fwd.startswith(b"%s %s HTTP/1.1\r\n" % (req.method, req.target)), fwd
    lines = _header_lines(fwd)
    names = [n for n, _ in lines]

    def values(name: bytes) -> list[bytes]:
        return [v for n, v in lines if n == name]

    # Framing, by hand.
    assert values(b"host") == [host]
    if req.chunked:
        assert values(b"transfer-encoding") == [b"chunked"] and values(b"content-length") == []
    elif g.kind == "cl":
        assert values(b"content-length") == [b"%d" % len(g.body)] and values(b"transfer-encoding") == []
    else:
        assert values(b"content-length") == [] and values(b"transfer-encoding") == []
    # X-Forwarded-*: the proxy's own, the client's For chain kept in front of the client address.
    assert values(b"x-forwarded-for") == [b", ".join([*g.values(b"x-forwarded-for"), client])]
    assert values(b"x-forwarded-proto") == [proto] and len(values(b"x-forwarded-port")) == 1
    # Hop-by-hop: nothing named in Connection survives (the proxy's own ``Connection: upgrade`` aside).
    listed = set(g.connection) - STANDARD_TOKENS
    upgrade = req.upgrade
    allowed = {b"connection"} if upgrade is not None else set()
    assert not (listed & set(names)) - allowed, fwd
    if upgrade is not None:
        assert values(b"upgrade") == [upgrade] and values(b"connection") == [b"upgrade"]
    else:
        assert b"upgrade" not in names and b"connection" not in names
    assert b"http2-settings" not in names
    # Every other name: forwarded exactly as often as it was sent.
    end_to_end = g.names - NEVER_FORWARDED_AS_SENT - listed - {b"host", b"content-length"}
    if g.http10:
        end_to_end.discard(b"expect")
    for name in end_to_end:
        assert names.count(name) == sum(1 for n, _ in g.lines if n.lower() == name), (name, fwd)
    expected = end_to_end | {b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port"}
    if req.chunked:
        expected.add(b"transfer-encoding")
    if g.kind == "cl":
        expected.add(b"content-length")
    if upgrade is not None:
        expected |= {b"upgrade", b"connection"}
    assert set(names) == expected, fwd


def check_forwarded(g: Gen, req: RequestHead) -> None:
    if req.host is None:  # HTTP/1.0 without Host: ``Downstream._attach`` adds the instance's address
        req.host = b"10.0.0.1:80"
        req.add_field(b"Host: " + req.host)
    fwd = upstream_request_head(req, CLIENT, TAIL)
    if req.plain:  # ``Downstream``'s shortcut for the common case must be the same bytes
        assert fwd == req.prefix + b"\r\nX-Forwarded-For: " + CLIENT + b"\r\n" + TAIL + b"\r\n"
    assert values_of(fwd, b"x-forwarded-port") == [b"443"]
    check_head(g, req, fwd, CLIENT, b"https", req.host)
    # The referee: h11 reads the forwarded head, the body as the proxy sends it, and one more request.
    wire = b"%x\r\n%s\r\n0\r\n\r\n" % (len(g.body), g.body) if req.chunked and g.body else g.wire_body
    if req.chunked and not g.body:
        wire = b"0\r\n\r\n"
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(fwd + wire + PROBE)
    event = conn.next_event()
    assert isinstance(event, h11.Request), event
    assert event.method == req.method and event.target == req.target and event.http_version == b"1.1"
    assert [v for n, v in event.headers if n == b"host"] == [req.host]
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    assert body == g.body
    # The message ended exactly where the proxy's did: what is left is the next request, untouched.
    assert conn.next_event() is h11.PAUSED and conn.trailing_data == (PROBE, False)


#: The reported attack (``Connection: Content-Length``, a body that is a request) and an h2c upgrade: always
#: among the examples, whatever the generator draws.
EXAMPLES = [
    Gen(
        b"POST",
        b"/",
        False,
        b"h",
        1,
        "cl",
        SMUGGLED,
        SMUGGLED,
        [(b"Host", b" h"), (b"Connection", b" Content-Length"), (b"Content-Length", b" %d" % len(SMUGGLED))],
        [b"content-length"],
    ),
    Gen(
        b"GET",
        b"/",
        False,
        b"h",
        1,
        "none",
        b"",
        b"",
        [
            (b"Host", b" h"),
            (b"Connection", b" Upgrade, HTTP2-Settings"),
            (b"Upgrade", b" h2c"),
            (b"HTTP2-Settings", b" AAMAAABkAAQAAP__"),
        ],
        [b"upgrade", b"http2-settings"],
    ),
]


@settings(max_examples=200, deadline=None, database=None)
@given(g=requests())
@example(g=EXAMPLES[0])
@example(g=EXAMPLES[1])
def test_forwarded_head_frames_the_body_as_parsed(g: Gen) -> None:
    req = parse(g)
    if isinstance(req, RequestHead):
        check_forwarded(g, req)


# -- through a real proxy ----------------------------------------------------------------------------


@pytest.fixture
async def recording() -> AsyncIterator[RecordingBackend]:
    backend = await RecordingBackend().start()
    yield backend
    await backend.close()


@pytest.fixture
async def lb(dataplane_factory, recording, listener):
    return await dataplane_factory([recording.spec()], keyed=listener.keyed)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(g=requests())
@example(g=EXAMPLES[0])
@example(g=EXAMPLES[1])
async def test_real_proxy_forwards_exactly_one_request(lb, recording, listener, g: Gen) -> None:
    req = parse(g)
    mark = recording.mark()
    reader, writer = await listener.open(lb)
    try:
        writer.write(g.data)
        resp = await read_response(reader)
    finally:
        writer.transport.abort()
    await asyncio.sleep(0.02)  # anything smuggled after the request would have arrived by now
    got, chunks = recording.since(mark)
    assert recording.errors == []
    if isinstance(req, FramingError):
        assert resp.status == req.status
        assert got == [] and chunks == [], chunks
        return
    assert resp.status == 200 and resp.body == b"%s %s" % (req.method, req.target), resp
    assert len(got) == 1 and len(chunks) == 1, chunks
    [rec] = got
    assert (rec.method, rec.target, rec.body) == (req.method, req.target, g.body)
    received = chunks[0]
    host = req.host if req.host is not None else b"127.0.0.1:%d" % recording.port
    check_head(g, req, received[: received.find(b"\r\n\r\n") + 4], b"127.0.0.1", listener.scheme.encode(), host)
    # The referee once more, over the exact bytes the instance got: one request, nothing after it.
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(chunks[0])
    assert isinstance(conn.next_event(), h11.Request)
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data), event
        body += event.data
    assert body == g.body
    assert conn.trailing_data == (b"", False)

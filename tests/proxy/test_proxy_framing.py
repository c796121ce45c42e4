"""Strict request framing, on values (no sockets)."""

from __future__ import annotations

import collections
import random
import re

import pytest

from lbproxy.proxy.framing import (
    FIELD_VALUE,
    REMEMBERED_HEAD_BYTES,
    REMEMBERED_HEADS,
    TOKEN,
    ChunkedDecoder,
    FramingError,
    check_partial_head,
    parse_request_head,
    remember_head,
)
from lbproxy.proxy.upstream import REMEMBERED_RESPONSE_HEAD_BYTES, REMEMBERED_RESPONSE_HEADS, whole_response


def parse(head: bytes, **kw: int):  # type: ignore[no-untyped-def]
    return parse_request_head(head, **kw)


def test_simple_get() -> None:
    req = parse(b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n")
    assert req.method == b"GET" and req.target == b"/a?b=1"
    assert req.host == b"example.com"
    assert req.keep_alive and not req.has_body and not req.http10
    assert req.kept == [b"Host: example.com", b"User-Agent: t"]


def test_content_length_and_chunked() -> None:
    req = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")
    assert req.content_length == 12 and not req.chunked
    req = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert req.chunked and req.content_length == -1
    assert not any(line.lower().startswith(b"transfer-encoding") for line in req.kept)


def test_hop_by_hop_dropped_and_connection_tokens() -> None:
    req = parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
        b"X-Secret: 1\r\nX-Forwarded-Proto: evil\r\nX-Forwarded-For: 1.2.3.4\r\nX-Ok: 2\r\n\r\n"
    )
    assert not req.keep_alive
    assert req.kept == [b"Host: a", b"X-Ok: 2"]
    assert req.xff == b"1.2.3.4"


@pytest.mark.parametrize(
    ("connection", "keep_alive"),
    [(b"close", False), (b"Close ", False), (b"keep-alive", True), (b"\tKEEP-ALIVE", True)],
)
def test_lone_connection_header_is_dropped_and_obeyed(connection: bytes, keep_alive: bool) -> None:
    # The near-fast path: one Connection line with a single standard token, nothing else to act on.
    req = parse(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection:" + connection + b"\r\nX-Ok: 1\r\n\r\n")
    assert req.keep_alive is keep_alive and req.plain and req.target == b"/x"
    assert req.prefix == b"GET /x HTTP/1.1\r\nHost: a\r\nX-Ok: 1"
    # ... and the same line with anything else special still goes through the full rules.
    req = parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n")
    assert not req.keep_alive and req.xff == b"9.9.9.9" and req.kept == [b"Host: a"]
    req = parse(b"GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    assert not req.keep_alive and req.content_length == 2
    with pytest.raises(FramingError) as info:
        parse(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nHost: b\r\n\r\n")
    assert info.value.status == 400


def test_http10_keep_alive_rules() -> None:
    assert not parse(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive


def test_upgrade_needs_connection_upgrade() -> None:
    req = parse(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert req.upgrade == b"websocket"
    req = parse(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")
    assert req.upgrade is None


def test_expect_100_continue() -> None:
    req = parse(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert req.expect_continue
    with pytest.raises(FramingError) as e:
        parse(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n")
    assert e.value.status == 417


def test_absolute_form_rewritten_when_authority_matches() -> None:
    req = parse(b"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n")
    assert req.target == b"/x?y"
    req = parse(b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n")
    assert req.target == b"/"
    assert parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target == b"*"


BAD: list[tuple[bytes, int]] = [
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400),
    (b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
]


@pytest.mark.parametrize(("head", "status"), BAD, ids=[repr(h[:48]) for h, _ in BAD])
def test_rejected(head: bytes, status: int) -> None:
    with pytest.raises(FramingError) as e:
        parse(head)
    assert e.value.status == status


def test_limits() -> None:
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 5000 + b"\r\n\r\n"
    with pytest.raises(FramingError) as e:
        parse(big, max_header_bytes=4096)
    assert e.value.status == 431
    with pytest.raises(FramingError) as e:
        parse(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n", max_request_line=100)
    assert e.value.status == 414
    many = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X%d: 1\r\n" % i for i in range(20)) + b"\r\n"
    with pytest.raises(FramingError) as e:
        parse(many, max_header_count=10)
    assert e.value.status == 431


def test_partial_head_checks() -> None:
    check_partial_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 100, 1000)
    for buf, status in [
        (b"GET / HTTP/1.1\nHost", 400),
        (b"GET /" + b"a" * 200, 414),
        (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 300, 431),
    ]:
        with pytest.raises(FramingError) as e:
            check_partial_head(buf, 100, 1000)
        assert e.value.status == status


def test_chunked_decoder_incremental() -> None:
    body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    for step in (1, 2, 3, 7, len(body)):
        dec = ChunkedDecoder()
        out = b""
        consumed_total = 0
        pos = 0
        while not dec.done:
            piece = body[pos : pos + step]
            data, used = dec.feed(piece)
            out += b"".join(data)
            pos += used
            consumed_total += used
            if used < len(piece):
                break
        assert out == b"hello world"
        assert body[consumed_total:] == b"NEXT"


@pytest.mark.parametrize(
    "body",
    [
        b"x\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n",
        b" 5\r\nhello\r\n",
        b"fffffffffffffffff\r\n",
        b"0\r\nbad trailer\r\n\r\n",
    ],
)
def test_chunked_decoder_rejects(body: bytes) -> None:
    with pytest.raises(FramingError):
        ChunkedDecoder().feed(body)


def test_remembered_heads_are_bounded_and_never_completed_later() -> None:
    memo: dict[bytes, object] = {}
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    req = parse_request_head(head)
    remember_head(memo, head, req)  # type: ignore[arg-type]
    assert memo[head] is req
    no_host = b"GET / HTTP/1.0\r\n\r\n"  # Downstream._attach adds a Host to this one: not shared
    remember_head(memo, no_host, parse_request_head(no_host))  # type: ignore[arg-type]
    big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * REMEMBERED_HEAD_BYTES + b"\r\n\r\n"
    remember_head(memo, big, parse_request_head(big))  # type: ignore[arg-type]
    assert list(memo) == [head]
    for i in range(REMEMBERED_HEADS):
        h = b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i
        remember_head(memo, h, parse_request_head(h))  # type: ignore[arg-type]
    assert 0 < len(memo) <= REMEMBERED_HEADS and head not in memo  # emptied when full


_WHOLE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Connection: keep-alive\r\n\r\nhello"
)


def test_whole_response_cuts_nginx_keep_alive_line() -> None:
    status, cut, end = whole_response(_WHOLE, {})  # type: ignore[misc]
    assert status == 200 and _WHOLE[:cut] + _WHOLE[end:] == _WHOLE.replace(b"Connection: keep-alive\r\n", b"")
    plain = _WHOLE.replace(b"Connection: keep-alive", b"X-A: b")
    assert whole_response(plain, {}) == (200, plain.index(b"\r\n\r\n"), plain.index(b"\r\n\r\n"))
    assert whole_response(_WHOLE.replace(b"Content-Length: 5", b"content-length:5 "), {}) is not None
    assert whole_response(_WHOLE.replace(b"200 OK", b"404 Not Found"), {})[0] == 404  # type: ignore[index]
    # Names that only start like a hop-by-hop or framing header are ordinary lines.
    assert whole_response(_WHOLE.replace(b"Server: nginx", b"Tex: 1\r\nContent-Lengthy: 2"), {}) is not None


@pytest.mark.parametrize(
    "old, new",
    [
        (b"5\r\nConnection", b"6\r\nConnection"),  # the body is not all there
        (b"hello", b"hello!"),  # more than the body (never forwarded as part of it)
        (b"Server: nginx", b"Content-Length: 5"),  # two Content-Lengths
        (b"Content-Length: 5", b"Content-Length: +5"),
        (b"Content-Length: 5", b"Content-Length: 5, 5"),
        (b"Server: nginx", b"Transfer-Encoding: chunked"),
        (b"Server: nginx", b"connection: close"),
        (b"Connection: keep-alive", b"Connection: close"),
        (b"Server: nginx", b"TE: x"),
        (b"Server: nginx", b"Upgrade: h2c"),
        (b"Server: nginx", b"Keep-Alive: timeout=5"),
        (b"Server: nginx", b"Server: ng\nx"),  # bare LF
        (b"Server: nginx", b"Server: ng\rx"),
        (b"Server: nginx", b"Server: nginx\r\n folded"),  # obs-fold
        (b"Server", b"Ser ver"),
        (b"HTTP/1.1", b"HTTP/1.0"),  # the general path restates the status line
        (b"200 OK", b"204 No Content"),
        (b"200 OK", b"304 Not Modified"),
        (b"200 OK", b"101 Switching Protocols"),
        (b"200 OK", b"100 Continue"),
    ],
)
def test_whole_response_leaves_everything_else_to_httptools(old: bytes, new: bytes) -> None:
    assert old in _WHOLE
    assert whole_response(_WHOLE.replace(old, new), {}) is None


# ``whole_response``'s first form, one case-insensitive regex over the raw head: the reference its
# remembered, lower-cased judgement must agree with, response for response.
_HOP = rb"connection|keep-alive|proxy-(?:connection|authenticate)|t(?:ransfer-encoding|e|railer)|upgrade"
_REF_LINE = rb"\r\n(?!(?i:" + _HOP + rb"|content-length):)" + TOKEN + rb":" + FIELD_VALUE
_REFERENCE_RE = re.compile(
    rb"HTTP/1\.1 ([2-5][0-9][0-9]) " + FIELD_VALUE + rb"(?:" + _REF_LINE + rb")*"
    rb"\r\n(?i:content-length):[ \t]*([0-9]{1,18})[ \t]*(?:" + _REF_LINE + rb")*(\r\nConnection: keep-alive)?"
)


def _reference_whole_response(data: bytes) -> tuple[int, int, int] | None:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    match = _REFERENCE_RE.fullmatch(data, 0, end)
    if match is None or int(match.group(2)) != len(data) - end - 4:
        return None
    status = int(match.group(1))
    if status in (204, 304):
        return None
    cut = match.start(3)
    return status, end if cut < 0 else cut, end


def _random_response(rng: random.Random) -> bytes:
    """A response built from pieces that sit on every edge of the grammar (half of them from the
    well-formed pieces only, so that both outcomes are common)."""
    if rng.random() < 0.5:
        line = b"X-%d: v %d" % (rng.randrange(10), rng.randrange(10))
        lines = [line] * rng.randrange(3) + [b"Content-Length: 5"] + [b"Date: d"] * rng.randrange(2)
        if rng.random() < 0.5:
            lines.append(b"Connection: keep-alive")
        return b"\r\n".join([rng.choice([b"HTTP/1.1 200 OK", b"HTTP/1.1 503 x"]), *lines]) + b"\r\n\r\nhello"
    status_line = rng.choice(
        [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 x",
         b"HTTP/1.1 101 Switching", b"HTTP/1.0 200 OK", b"http/1.1 200 OK", b"HTTP/1.1 599 ", b"HTTP/1.1 200",
         b"HTTP/1.1 600 Big", b"HTTP/1.1 200 \xe9t\xe9", b"HTTP/1.1 200 O\x00K"]
    )  # fmt: skip
    names = [b"Server", b"Date", b"X-A", b"Content-Type", b"Content-Lengthy", b"Tex", b"TE", b"Trailer",
             b"Connection", b"Keep-Alive", b"Upgrade", b"Transfer-Encoding", b"Proxy-Connection",
             b"Proxy-Authenticate", b"Proxy-Authorization", b"X y", b"", b"X:Y", b"Conn\xe9ction",
             b"\xc4\xb0"]  # fmt: skip
    values = [b" v", b"", b" \t v \t", b" \xff\x80", b" a\x7fb", b" a\rb", b" a\nb", b" keep-alive", b" close"]
    lengths = [b"5", b" 5 ", b"\t5", b"05", b"+5", b"5, 5", b"", b"1234567890123456789", b"4", b"6", b"5 x"]
    lines = [_mixed_case(rng, rng.choice(names)) + b":" + rng.choice(values) for _ in range(rng.randrange(4))]
    for _ in range(rng.choice([0, 1, 1, 1, 2])):
        name = _mixed_case(rng, rng.choice([b"Content-Length", b"Content_Length"]))
        lines.insert(rng.randrange(len(lines) + 1), name + b":" + rng.choice(lengths))
    for _ in range(rng.choice([0, 1, 1, 2])):  # mostly last, as nginx sends it; anywhere else, refused
        keep_alive = rng.choice(
            [b"Connection: keep-alive", _mixed_case(rng, b"Connection: keep-alive"), b"Connection: keep-alive "]
        )
        lines.insert(len(lines) if rng.random() < 0.7 else rng.randrange(len(lines) + 1), keep_alive)
    body = b"hello"[: rng.choice([5, 5, 5, 4])] + rng.choice([b"", b"", b"!", b"\r\n\r\n"])
    return b"\r\n".join([status_line, *lines]) + rng.choice([b"\r\n\r\n", b"\r\n\r\n", b"\r\n"]) + body


def _mixed_case(rng: random.Random, text: bytes) -> bytes:
    """``text`` as sent, or with each letter's case flipped at random."""
    if rng.random() < 0.6:
        return text
    return bytes(c ^ 0x20 if chr(c).isalpha() and c < 0x80 and rng.random() < 0.5 else c for c in text)


def test_whole_response_agrees_with_its_reference_regex_remembered_or_not() -> None:
    rng = random.Random(1505)
    judged: dict[bytes, tuple[int, int, int]] = {}
    seen = collections.Counter()
    for _ in range(20000):
        data = _random_response(rng)
        expected = _reference_whole_response(data)
        assert whole_response(data, {}) == expected, data
        assert whole_response(data, judged) == expected, data  # the memo's first or a later judgement
        seen[expected is not None] += 1
    assert seen[True] > 5000 and seen[False] > 5000  # both outcomes covered


@pytest.mark.parametrize(
    "data",
    [
        # CPython before 3.11.5 mismatched some possessive repeats (gh-106052): with ``(?:line)*+`` these were
        # judged wrongly there, a normal response refused and hop-by-hop or framing lines let through.
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nServer: x\r\nTransfer-Encoding:\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nConnection:\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length:\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nX:\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n\r\nhello",
    ],
)
def test_whole_response_pinned_cases(data: bytes) -> None:
    assert whole_response(data, {}) == _reference_whole_response(data)


def test_judged_heads_keep_the_length_check_and_their_bounds() -> None:
    judged: dict[bytes, tuple[int, int, int]] = {}
    assert whole_response(_WHOLE, judged) is not None
    assert len(judged) == 1
    # The same head, remembered, with a body that does not fill its Content-Length, or overfills it.
    assert whole_response(_WHOLE[:-1], judged) is None
    assert whole_response(_WHOLE + b"!", judged) is None
    # A head that is not a whole response's is remembered as such, and stays refused.
    chunked = _WHOLE.replace(b"Content-Length: 5", b"Transfer-Encoding: chunked")
    assert whole_response(chunked, judged) is None and whole_response(chunked, judged) is None
    assert len(judged) == 2
    # Heads of exactly the longest size kept, and one byte over (judged, not kept).
    pad = REMEMBERED_RESPONSE_HEAD_BYTES - _WHOLE.index(b"\r\n\r\n") + len(b"nginx")
    longest = _WHOLE.replace(b"nginx", b"n" * pad)
    assert longest.index(b"\r\n\r\n") == REMEMBERED_RESPONSE_HEAD_BYTES
    assert whole_response(longest, judged) is not None and len(judged) == 3
    over = _WHOLE.replace(b"nginx", b"n" * (pad + 1))
    assert whole_response(over, judged) is not None and len(judged) == 3
    for i in range(2 * REMEMBERED_RESPONSE_HEADS):
        varied = _WHOLE.replace(b"nginx", b"n%d" % i)
        assert whole_response(varied, judged) == whole_response(varied, {})  # right before and after a clear
        assert 0 < len(judged) <= REMEMBERED_RESPONSE_HEADS  # emptied when full
    assert all(len(head) <= REMEMBERED_RESPONSE_HEAD_BYTES for head in judged)
    assert whole_response(chunked, judged) is None and whole_response(_WHOLE, judged) is not None

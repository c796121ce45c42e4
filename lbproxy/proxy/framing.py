"""Strict HTTP/1.1 request framing: the request head and chunked bodies, bytes in, values out (sans-IO).

Why not httptools for requests: design.md lists what httptools (and h11) wrongly accept from a client: a
missing or duplicate Host, a double space in the request line, absolute-form and ``GET *``,
``Transfer_Encoding``, oversized heads arriving in one read; llhttp also cannot be stopped between
pipelined requests, so a per-head check on top of it would miss the second request of a read. A front
proxy must refuse ambiguous framing before anything is forwarded, so the request side is parsed here,
with one compiled regex over the whole head (C speed, linear, no backtracking) plus a single pass over the
header lines. Responses from instances are parsed by httptools (``upstream.py``).

Parts:
- ``find_head_end`` / ``check_partial_head``: where a head ends in a buffer; limits (414/431) and bare LF
  while it is still incomplete.
- ``parse_request_head``: one head -> ``RequestHead`` or ``FramingError(status, reason)``. Rules (after
  RFC 9112 and AWS's ``http_desync_guardian`` that ALB uses): request line ``METHOD SP target SP
  HTTP/1.x`` with single spaces; CRLF line ends only (bare LF, bare CR, NUL -> 400); no obs-fold; header
  names are tokens; names that normalise to ``content-length``/``transfer-encoding`` (``Transfer_Encoding``)
  -> 400; Content-Length and Transfer-Encoding together -> 400; more than one Content-Length -> 400;
  Transfer-Encoding other than ``chunked`` (or on HTTP/1.0) -> 400/501; HTTP/1.1 without exactly one Host
  -> 400; absolute-form only when it names the same authority as Host (rewritten to origin-form);
  asterisk-form only for OPTIONS; CONNECT -> 405; ``Expect`` other than ``100-continue`` -> 417.
- ``ChunkedDecoder``: a strict incremental chunked-body decoder (hex sizes only, bounded size lines and
  trailers) that reports how many bytes it consumed, so pipelined bytes after the body stay untouched.
"""

from __future__ import annotations

import re

__all__ = [
    "ChunkedDecoder",
    "FramingError",
    "RequestHead",
    "check_partial_head",
    "find_head_end",
    "parse_request_head",
]


class FramingError(Exception):
    """A request the load balancer refuses; ``status`` is the response it gets (the connection closes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# A field value: any octet but controls (HTAB allowed); CR and LF only as the line end.
_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
_HEAD_RE = re.compile(
    rb"(?:" + _TOKEN + rb") [\x21-\x7e]+ HTTP/1\.[01]\r\n(?:" + _TOKEN + rb":" + _VALUE + rb"\r\n)*\r\n"
)
_HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_~!$&'()*+,;=%]*)(?::[0-9]{1,5})?")
_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[\t\x20-\x7e\x80-\xff]*)?")

# Lower-cased names handled by the parser instead of being forwarded verbatim.
_CONNECTION = b"connection"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_HOST = b"host"
_EXPECT = b"expect"
_UPGRADE = b"upgrade"
_COOKIE = b"cookie"
_XFF = b"x-forwarded-for"
#: Hop-by-hop (RFC 9110 7.6.1 and RFC 2616 13.5.1) plus the X-Forwarded-* set the load balancer rewrites.
_DROPPED = frozenset(
    {
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"proxy-authorization",
        b"x-forwarded-proto",
        b"x-forwarded-port",
    }
)
_SPECIAL = frozenset({_CONNECTION, _CONTENT_LENGTH, _TRANSFER_ENCODING, _HOST, _EXPECT, _UPGRADE, _COOKIE, _XFF})
_SMUGGLING_NAMES = frozenset({_CONTENT_LENGTH, _TRANSFER_ENCODING})


class RequestHead:
    """One parsed request head: what the load balancer needs to route, frame and forward it."""

    __slots__ = (
        "chunked",
        "content_length",
        "cookie",
        "expect_continue",
        "host",
        "http10",
        "keep_alive",
        "kept",
        "method",
        "raw_size",
        "target",
        "upgrade",
        "xff",
    )

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.http10 = False
        #: Header lines forwarded unchanged (everything but hop-by-hop and X-Forwarded-*).
        self.kept: list[bytes] = []
        self.host: bytes | None = None
        #: Body length; -1 when chunked or when there is no body framing (no body).
        self.content_length = 0
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        #: The ``Upgrade`` header value when the request asks for a protocol switch (WebSocket).
        self.upgrade: bytes | None = None
        self.cookie: bytes | None = None
        #: Incoming X-Forwarded-For values, appended to.
        self.xff: bytes | None = None
        self.raw_size = 0

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT


_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


def find_head_end(buf: bytes | bytearray, start: int = 0) -> int:
    """Index just past the head's blank line, or -1 when the head is not complete yet."""
    idx = buf.find(b"\r\n\r\n", start)
    return -1 if idx < 0 else idx + 4


def check_partial_head(buf: bytes | bytearray, max_request_line: int, max_header_bytes: int) -> None:
    """Refuse an incomplete head early: too long (414/431), or a bare LF that can never end it."""
    line_end = buf.find(b"\r\n")
    if (line_end < 0 and len(buf) > max_request_line) or line_end > max_request_line:
        raise FramingError(414, "request line too long")
    if len(buf) > max_header_bytes:
        raise FramingError(431, "request header fields too large")
    if buf.count(b"\n") != buf.count(b"\r\n"):
        raise FramingError(400, "bare LF in request head")


def parse_request_head(
    head: bytes, *, max_request_line: int = 16384, max_header_bytes: int = 65536, max_header_count: int = 100
) -> RequestHead:
    """Parse and police one complete head (``head`` ends with the blank line)."""
    if len(head) > max_header_bytes:
        raise FramingError(431, "request header fields too large")
    if _HEAD_RE.fullmatch(head) is None:
        raise FramingError(400, _diagnose(head))
    lines = head[:-4].split(b"\r\n")
    if len(lines[0]) > max_request_line:
        raise FramingError(414, "request line too long")
    if len(lines) - 1 > max_header_count:
        raise FramingError(431, "too many header fields")
    method, target, version = lines[0].split(b" ")
    req = RequestHead()
    req.method = method
    req.http10 = version == b"HTTP/1.0"
    req.raw_size = len(head)
    kept = req.kept
    connection_tokens: list[bytes] = []
    te: bytes | None = None
    cl: bytes | None = None
    host_count = 0
    for i in range(1, len(lines)):
        line = lines[i]
        colon = line.find(b":")
        name = line[:colon].lower()
        if name not in _SPECIAL:
            if name in _DROPPED:
                continue
            if b"_" in name and name.replace(b"_", b"-") in _SMUGGLING_NAMES:
                raise FramingError(400, "header name that normalises to a framing header")
            kept.append(line)
            continue
        value = line[colon + 1 :].strip(b" \t")
        if name == _HOST:
            host_count += 1
            req.host = value
            kept.append(line)
        elif name == _CONTENT_LENGTH:
            if cl is not None:
                raise FramingError(400, "more than one Content-Length")
            cl = value
        elif name == _TRANSFER_ENCODING:
            if te is not None:
                raise FramingError(400, "more than one Transfer-Encoding")
            te = value
        elif name == _CONNECTION:
            connection_tokens.extend(t.strip(b" \t").lower() for t in value.split(b","))
        elif name == _COOKIE:
            req.cookie = value if req.cookie is None else req.cookie + b"; " + value
            kept.append(line)
        elif name == _XFF:
            req.xff = value if req.xff is None else req.xff + b", " + value
        elif name == _EXPECT:
            if req.http10:
                continue
            if value.lower() != b"100-continue":
                raise FramingError(417, "unsupported expectation")
            req.expect_continue = True
            kept.append(line)
        else:  # upgrade
            req.upgrade = value
    # Framing: exactly one of Content-Length, chunked, or no body.
    if te is not None:
        if cl is not None:
            raise FramingError(400, "both Content-Length and Transfer-Encoding")
        if req.http10:
            raise FramingError(400, "Transfer-Encoding on HTTP/1.0")
        codings = [c.strip(b" \t").lower() for c in te.split(b",")]
        if codings[-1] != b"chunked":
            raise FramingError(400, "final transfer coding is not chunked")
        if len(codings) > 1:
            raise FramingError(501, "transfer codings other than chunked")
        req.chunked = True
        req.content_length = -1
    elif cl is not None:
        if not cl.isdigit() or len(cl) > 18:
            raise FramingError(400, "invalid Content-Length")
        req.content_length = int(cl)
        kept.append(b"Content-Length: " + cl)
    # Host
    if host_count > 1:
        raise FramingError(400, "more than one Host")
    if req.host is not None and _HOST_RE.fullmatch(req.host) is None:
        raise FramingError(400, "invalid Host")
    if host_count == 0 and not req.http10:
        raise FramingError(400, "missing Host")
    # Request target forms.
    if target[:1] != b"/":
        target = _other_target_form(req, method, target)
    req.target = target
    # Connection management.
    if connection_tokens:
        if b"close" in connection_tokens:
            req.keep_alive = False
        elif req.http10:
            req.keep_alive = b"keep-alive" in connection_tokens
        extra = [t for t in connection_tokens if t not in (b"close", b"keep-alive", b"upgrade", b"")]
        if extra:  # Connection-listed names are hop-by-hop too (rare: the slow path).
            drop = frozenset(extra) - {_HOST}
            req.kept = [ln for ln in kept if ln[: ln.find(b":")].lower() not in drop]
    elif req.http10:
        req.keep_alive = False
    if req.upgrade is not None and (b"upgrade" not in connection_tokens or req.http10):
        req.upgrade = None  # an Upgrade header without ``Connection: upgrade`` is just dropped
    return req


def _other_target_form(req: RequestHead, method: bytes, target: bytes) -> bytes:
    if method == b"CONNECT":
        raise FramingError(405, "CONNECT is not supported")
    if target == b"*":
        if method != b"OPTIONS":
            raise FramingError(400, "asterisk-form is only for OPTIONS")
        return target
    lower = target[:8].lower()
    if lower.startswith(b"http://") or lower.startswith(b"https://"):
        rest = target[target.find(b"//") + 2 :]
        slash = rest.find(b"/")
        query = rest.find(b"?")
        cut = min(x for x in (slash, query, len(rest)) if x >= 0)
        authority, path = rest[:cut], rest[cut:]
        if not authority or b"@" in authority:
            raise FramingError(400, "invalid absolute-form target")
        if req.host is not None and authority.lower() != req.host.lower():
            raise FramingError(400, "absolute-form authority differs from Host")
        if req.host is None:
            req.host = authority
            req.kept.append(b"Host: " + authority)
        return path if path[:1] == b"/" else b"/" + path
    raise FramingError(400, "invalid request target")


def _diagnose(head: bytes) -> str:
    """Why the head regex refused ``head`` (error path only)."""
    first, _, rest = head.partition(b"\r\n")
    if b"\n" in first or b"\n" in rest.replace(b"\r\n", b""):
        return "bare LF in request head"
    if b"\r" in rest.replace(b"\r\n", b""):
        return "bare CR in request head"
    if first.count(b" ") != 2 or not re.fullmatch(_TOKEN + rb" [\x21-\x7e]+ HTTP/1\.[01]", first):
        return "malformed request line"
    for line in rest.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding"
        if line and not re.fullmatch(_TOKEN + rb":" + _VALUE, line):
            return "malformed header field"
    return "malformed request head"


class ChunkedDecoder:
    """Incremental strict decoder of a chunked body; ``feed`` returns (data pieces, bytes consumed)."""

    __slots__ = ("_line", "_remaining", "_state", "_trailer_bytes", "done", "max_line", "max_trailer")

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self, max_line: int = 4096, max_trailer: int = 16384) -> None:
        self._state = self._SIZE
        self._line = b""
        self._remaining = 0
        self._trailer_bytes = 0
        self.done = False
        self.max_line = max_line
        self.max_trailer = max_trailer

    def feed(self, data: bytes | memoryview) -> tuple[list[bytes], int]:
        """Decode from ``data``; stops at the end of the body. Raises ``FramingError`` on bad framing."""
        out: list[bytes] = []
        pos = 0
        n = len(data)
        while pos < n and not self.done:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, n - pos)
                out.append(bytes(data[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self._DATA_END
                continue
            # Line-oriented states: collect one CRLF-terminated line.
            end = bytes(data[pos : pos + self.max_line + 2]).find(b"\n")
            if end < 0:
                self._line += bytes(data[pos:])
                if len(self._line) > self.max_line:
                    raise FramingError(400, "chunk line too long")
                pos = n
                break
            line = self._line + bytes(data[pos : pos + end + 1])
            pos += end + 1
            self._line = b""
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                raise FramingError(400, "bare LF or CR in chunked body")
            line = line[:-2]
            if len(line) > self.max_line:
                raise FramingError(400, "chunk line too long")
            if state == self._SIZE:
                m = _CHUNK_SIZE_RE.fullmatch(line)
                if m is None:
                    raise FramingError(400, "invalid chunk size")
                size = int(m.group(1), 16)
                if size == 0:
                    self._state = self._TRAILER
                else:
                    self._remaining = size
                    self._state = self._DATA
            elif state == self._DATA_END:
                if line:
                    raise FramingError(400, "chunk data longer than its size")
                self._state = self._SIZE
            else:  # trailer section: dropped, but it must be well formed and bounded
                if not line:
                    self.done = True
                    break
                self._trailer_bytes += len(line)
                if self._trailer_bytes > self.max_trailer or not re.fullmatch(_TOKEN + rb":" + _VALUE, line):
                    raise FramingError(400, "invalid chunked trailer")
        return out, pos

"""Strict HTTP/1.1 request framing: the request head and chunked bodies, bytes in, values out (sans-IO).

Why not httptools for requests: design.md lists what httptools (and h11) wrongly accept from a client: a
missing or duplicate Host, a double space in the request line, absolute-form and ``GET *``,
``Transfer_Encoding``, oversized heads arriving in one read; llhttp also cannot be stopped between
pipelined requests, so a per-head check on top of it would miss the second request of a read. A front
proxy must refuse ambiguous framing before anything is forwarded, so the request side is parsed here.
Responses from instances are parsed by httptools (``upstream.py``).

Speed (measured: a wrk head 2.7 -> ~2.3 us, a 480-byte browser head 15 -> ~9 us; opcodes per proxied
request 1223 -> ~950): every step is a C-level call over the raw bytes, never a Python loop over all lines.
One compiled regex validates the whole head's grammar (linear, no backtracking); then ``bytes.find``
locates Host, and one ``search`` loop over the lower-cased head visits only the few lines that need work
(framing, hop-by-hop, X-Forwarded-*). Everything else is forwarded as a *slice* of the raw head
(``RequestHead.prefix``): the upstream head is ``prefix`` plus a per-connection constant, not a
re-serialisation. A head with nothing special (wrk, curl, most API clients) leaves through an early return.

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
  asterisk-form only for OPTIONS; CONNECT -> 405; ``Expect`` other than ``100-continue`` -> 417; a ``#``
  in the request-target (a fragment is never sent) -> 400.
- Hop-by-hop (RFC 9110 7.6.1): ``Connection``, ``Keep-Alive``, ``TE``, ``Trailer``, ``Proxy-*``,
  ``Upgrade`` and ``HTTP2-Settings`` are never forwarded as sent, and neither is a header the client names in
  ``Connection`` (``Connection: X-Foo`` or ``Cookie``: dropped). Except a header that frames or routes the
  request or that the load balancer sets itself: ``Content-Length``, ``Transfer-Encoding``, ``Host``,
  ``X-Forwarded-For``/``-Proto``/``-Port`` (also spelled with ``_``) named in ``Connection`` -> 400.
  Dropping it would unframe the body (the instance then reads the body as a second request: smuggling past
  the load balancer and a poisoned response for the next client); keeping it would ignore what the client
  asked. Desync guardians in the style of HAProxy's and ALB's (``http_desync_guardian``) treat such a
  request as ambiguous; a 400 is safer than guessing which reading the instance will make.
- Upgrades: only WebSocket is tunnelled (as ALB). ``Upgrade`` counts only with ``Connection: upgrade`` on
  HTTP/1.1, and the instance is offered only the ``websocket`` token of the list (``h2c, websocket`` ->
  ``websocket``); an upgrade to anything else (``h2c``, ``TLS/1.2``, ``foo/1``) is dropped with its
  ``Connection`` token and ``HTTP2-Settings``, and the request is served as plain HTTP/1.1 (h2c upgrades
  are a known way to tunnel past a proxy's rules). A 101 for an upgrade that was not forwarded, or to a
  protocol other than WebSocket, is a 502, never a tunnel (``upstream.py``).
- ``remember_head``: keeps a parse for the next identical head (``Dataplane.parsed_heads``; bounded).
- ``ChunkedDecoder``: a strict incremental chunked-body decoder (hex sizes only, bounded size lines and
  trailers) that reports how many bytes it consumed, so pipelined bytes after the body stay untouched.
"""

from __future__ import annotations

import re

__all__ = [
    "FIELD_VALUE",
    "TOKEN",
    "ChunkedDecoder",
    "FramingError",
    "RequestHead",
    "check_partial_head",
    "find_head_end",
    "parse_request_head",
    "remember_head",
]


class FramingError(Exception):
    """A request the load balancer refuses; ``status`` is the response it gets (the connection closes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


#: A header name (RFC 9110 token), as a regex pattern.
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
#: A field value: any octet but controls (HTAB allowed); CR and LF only as the line end.
FIELD_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
# The whole head's grammar in one compiled regex (C speed, linear, no backtracking): single spaces in the
# request line, HTTP/1.0 or 1.1, token names directly followed by ``:``, no control characters, CRLF only
# (so no bare LF, bare CR, NUL or obs-fold can pass). The request-target is visible ASCII but ``#``: a
# fragment is never sent (RFC 9112 3.2); refusing it here costs nothing on the hot path.
_TARGET = rb"[\x21\x22\x24-\x7e]+"
_HEAD_RE = re.compile(
    rb"(?:" + TOKEN + rb") " + _TARGET + rb" HTTP/1\.[01]\r\n(?:" + TOKEN + rb":" + FIELD_VALUE + rb"\r\n)*\r\n"
)
_HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_~!$&'()*+,;=%]*)(?::[0-9]{1,5})?")
_CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[\t\x20-\x7e\x80-\xff]*)?")
# Speed: the parser never loops over every header line in Python. Once ``_HEAD_RE`` has validated the
# grammar, every CRLF inside the head starts a header line, so one ``finditer`` over the lower-cased head
# (a single C call) finds the few lines that need attention: the framing and routing headers, the
# hop-by-hop ones and the ``X-Forwarded-*`` set the load balancer rewrites, and names that normalise to a
# framing header (``Transfer_Encoding``). Every other line is forwarded as part of a slice of the raw head.
# The alternatives are written as a trie (shared prefixes factored out) because sre tries them in turn.
# Host (in every request) is found with ``bytes.find`` instead; a head with nothing else special (wrk,
# curl, most API clients) costs one failed ``search``.
_SPECIAL_RE = re.compile(
    rb"\r\n(co(?:nnection|ntent[-_]length|okie)|t(?:ransfer[-_]encoding|e|railers?)"
    rb"|x-forwarded-(?:for|proto|port)|expect|upgrade|keep-alive|proxy-(?:connection|authorization)"
    rb"|http2-settings):"
)
# Validated Host values (a per-process memo: clients send the same few hosts over and over; bounded).
_HOST_OK: dict[bytes, bool] = {}
_HOST_OK_MAX = 1024

# Lower-cased names the parser acts on (``_SPECIAL_RE`` group 1).
_CONNECTION = b"connection"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_EXPECT = b"expect"
_UPGRADE = b"upgrade"
_COOKIE = b"cookie"
_XFF = b"x-forwarded-for"
_SMUGGLING_NAMES = frozenset({b"content_length", b"transfer_encoding"})
_CONNECTION_STANDARD = frozenset({b"close", b"keep-alive", b"upgrade", b""})
#: Header names that frame or route the request, or that the load balancer itself sets: a client that lists
#: one in ``Connection`` gets a 400 instead of having it dropped as hop-by-hop (compared after ``_`` -> ``-``).
_CONNECTION_REFUSED = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port"}
)
#: The only protocol a request may switch to through the load balancer (as ALB: WebSocket).
_WEBSOCKET = b"websocket"


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
        "method",
        "plain",
        "prefix",
        "raw_size",
        "target",
        "upgrade",
        "xff",
    )

    def __init__(self, method: bytes = b"", http10: bool = False, raw_size: int = 0) -> None:
        self.method = method
        self.target = b""
        self.http10 = http10
        #: The head forwarded to the instance, up to (not including) the X-Forwarded-* lines: the request
        #: line (origin-form, HTTP/1.1) and every header line kept, each *preceded* by CRLF, no final CRLF.
        #: In the common case it is one slice of the client's raw head (nothing re-serialised).
        self.prefix = b""
        self.host: bytes | None = None
        #: Body length; -1 when chunked or when there is no body framing (no body).
        self.content_length = 0
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        #: The ``websocket`` token (as the client spelled it) when the request asks to switch to WebSocket,
        #: the only upgrade forwarded; None otherwise.
        self.upgrade: bytes | None = None
        self.cookie: bytes | None = None
        #: Incoming X-Forwarded-For values, appended to.
        self.xff: bytes | None = None
        self.raw_size = raw_size
        #: No X-Forwarded-For from the client, not chunked, no upgrade: the upstream head is
        #: ``prefix`` + the connection's constant suffix (``Downstream.forwarded_suffix``).
        self.plain = True

    @property
    def kept(self) -> list[bytes]:
        """Header lines forwarded unchanged (everything but hop-by-hop and X-Forwarded-*); built on demand."""
        return self.prefix.split(b"\r\n")[1:]

    def add_field(self, line: bytes) -> None:
        """Forward one more header line (without CRLF)."""
        self.prefix += b"\r\n" + line

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
    head: bytes, max_request_line: int = 16384, max_header_bytes: int = 65536, max_header_count: int = 100
) -> RequestHead:
    """Parse and police one complete head (``head`` ends with the blank line)."""
    n = len(head)
    if n > max_header_bytes:
        raise FramingError(431, "request header fields too large")
    if _HEAD_RE.fullmatch(head) is None:
        raise FramingError(400, _diagnose(head))
    line_end = head.find(b"\r\n")
    if line_end > max_request_line:
        raise FramingError(414, "request line too long")
    # A header line takes at least 4 bytes (``a:`` CRLF): a short head cannot hold too many; skip the count.
    if n > 4 * max_header_count and head.count(b"\r\n") - 2 > max_header_count:
        raise FramingError(431, "too many header fields")
    method, target, version = head[:line_end].split(b" ")
    http10 = version == b"HTTP/1.0"
    req = RequestHead(method, http10, n)
    end = n - 4  # where the last header line ends
    lower = head.lower()
    find = head.find
    host_count = 0
    pos = lower.find(b"\r\nhost:", line_end)
    if pos >= 0:
        host_count = 1
        pos += 7
        req.host = head[pos : find(b"\r\n", pos)].strip(b" \t")
        if lower.find(b"\r\nhost:", pos) >= 0:
            raise FramingError(400, "more than one Host")
    m = _SPECIAL_RE.search(lower, line_end)
    if not http10 and target[:1] == b"/" and host_count:
        if m is None:
            # Fast path (wrk, curl, most API clients): origin-form HTTP/1.1, a Host, nothing else to act
            # on. No body framing, persistent, and forwarded as it came: the prefix is one slice.
            _check_host(req.host)  # type: ignore[arg-type]
            req.target = target
            req.prefix = head[:end]
            return req
        if m.group(1) == _CONNECTION:
            # Nearly as common (a client closing after this request): the same, less that one line,
            # when its value is a single ``close``/``keep-alive`` and no other line needs work.
            stop = find(b"\r\n", m.end())
            value = lower[m.end() : stop].strip(b" \t")
            if (value == b"close" or value == b"keep-alive") and _SPECIAL_RE.search(lower, stop) is None:
                _check_host(req.host)  # type: ignore[arg-type]
                req.target = target
                req.keep_alive = value != b"close"
                req.prefix = head[: m.start()] + head[stop:end]
                return req
    # Spans [start, stop) of header lines not forwarded (each span starts at the CRLF before its line).
    drops: list[int] | None = None
    connection_tokens: list[bytes] | None = None
    te: bytes | None = None
    cl: bytes | None = None
    search = _SPECIAL_RE.search
    while m is not None:
        name = m.group(1)
        start = m.start()
        vstart = m.end()
        stop = find(b"\r\n", vstart)
        value = head[vstart:stop].strip(b" \t")
        m = search(lower, stop)
        if name == _COOKIE:
            req.cookie = value if req.cookie is None else req.cookie + b"; " + value
            continue
        if name == _CONNECTION:
            lv = value.lower()
            if connection_tokens is None:
                connection_tokens = []
            if b"," in lv:
                connection_tokens.extend(t.strip(b" \t") for t in lv.split(b","))
            else:
                connection_tokens.append(lv)
        elif name == _CONTENT_LENGTH:
            if cl is not None:
                raise FramingError(400, "more than one Content-Length")
            cl = value
        elif name == _TRANSFER_ENCODING:
            if te is not None:
                raise FramingError(400, "more than one Transfer-Encoding")
            te = value
        elif name == _XFF:
            req.xff = value if req.xff is None else req.xff + b", " + value
        elif name == _EXPECT:
            if not http10:
                if value.lower() != b"100-continue":
                    raise FramingError(417, "unsupported expectation")
                req.expect_continue = True
                continue  # forwarded
        elif name == _UPGRADE:
            req.upgrade = value if req.upgrade is None else req.upgrade + b", " + value
        elif name in _SMUGGLING_NAMES:
            raise FramingError(400, "header name that normalises to a framing header")
        # Everything that reaches here is not forwarded as the client sent it.
        if drops is None:
            drops = [start, stop]
        else:
            drops += (start, stop)
    # The forwarded header lines: one slice of the raw head, or the slices between dropped lines.
    fields: bytes | None = None
    if drops is not None:
        pieces = []
        pos = line_end
        for i in range(0, len(drops), 2):
            pieces.append(head[pos : drops[i]])
            pos = drops[i + 1]
        pieces.append(head[pos:end])
        fields = b"".join(pieces)
    # Framing: exactly one of Content-Length, chunked, or no body.
    if te is not None:
        if cl is not None:
            raise FramingError(400, "both Content-Length and Transfer-Encoding")
        if http10:
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
        fields += b"\r\nContent-Length: " + cl  # type: ignore[operator]  # restated: its line was dropped
    # Host
    if req.host is not None:
        _check_host(req.host)
    if host_count == 0 and not http10:
        raise FramingError(400, "missing Host")
    # Connection management.
    if connection_tokens is not None:
        if b"close" in connection_tokens:
            req.keep_alive = False
        elif http10:
            req.keep_alive = b"keep-alive" in connection_tokens
        extra = [t for t in connection_tokens if t not in _CONNECTION_STANDARD]
        if extra:  # Connection-listed names are hop-by-hop too (rare: the slow path).
            drop = frozenset(extra)
            for t in drop:
                if t.replace(b"_", b"-") in _CONNECTION_REFUSED:
                    raise FramingError(400, "Connection lists a framing or routing header: " + t.decode("latin-1"))
            lines = (head[line_end:end] if fields is None else fields).split(b"\r\n")
            fields = b"".join([b"\r\n" + ln for ln in lines[1:] if ln[: ln.find(b":")].lower() not in drop])
    elif http10:
        req.keep_alive = False
    if req.upgrade is not None:
        if connection_tokens is None or b"upgrade" not in connection_tokens or http10:
            req.upgrade = None  # an Upgrade header without ``Connection: upgrade`` is just dropped
        else:
            req.upgrade = _websocket_offer(req.upgrade)
    req.plain = req.xff is None and not req.chunked and req.upgrade is None
    # Request target forms; the request line the instance gets.
    origin_form = target[:1] == b"/"
    if not origin_form:
        target, extra_field = _other_target_form(req, method, target)
        if extra_field:
            fields = (head[line_end:end] if fields is None else fields) + extra_field
    req.target = target
    if fields is None and origin_form and not http10:
        req.prefix = head[:end]  # the common case: request line and headers forwarded as they came
    else:
        req.prefix = b"%s %s HTTP/1.1%s" % (method, target, head[line_end:end] if fields is None else fields)
    return req


#: ``remember_head``'s bounds: heads kept per process, and the longest head kept.
REMEMBERED_HEADS = 256
REMEMBERED_HEAD_BYTES = 2048


def remember_head(memo: dict[bytes, RequestHead], head: bytes, req: RequestHead) -> None:
    """Keep ``req`` as the parse of every later identical ``head`` (``Dataplane.parsed_heads``).

    ``parse_request_head`` is a pure function of the head's bytes and the limits (fixed per process), so a
    head seen before (a client repeating a request: a browser's asset reloads, health checkers, API
    polling, benchmarks) skips the parse. A remembered ``RequestHead`` is shared by every exchange that
    sent those bytes, so it must never change: a head without Host (HTTP/1.0, completed by
    ``Downstream._attach``) is not kept. Bounded: a full memo is emptied, heads over
    ``REMEMBERED_HEAD_BYTES`` are not kept. The memo is per worker and shared by its clients; a hit is a
    little faster than a parse, which tells a client at most that someone sent exactly the bytes it sent.
    """
    if req.host is None or len(head) > REMEMBERED_HEAD_BYTES:
        return
    if len(memo) >= REMEMBERED_HEADS:
        memo.clear()
    memo[head] = req


def _websocket_offer(upgrade: bytes) -> bytes | None:
    """The ``websocket`` token of an Upgrade list (as the client spelled it), or None: only WebSocket is
    tunnelled, any other protocol in the list (``h2c``, ``TLS/1.2``, ...) is not offered to the instance."""
    for token in upgrade.split(b","):
        token = token.strip(b" \t")
        if token.lower() == _WEBSOCKET:
            return token
    return None


def _check_host(host: bytes) -> None:
    if host not in _HOST_OK:
        if _HOST_RE.fullmatch(host) is None:
            raise FramingError(400, "invalid Host")
        if len(_HOST_OK) >= _HOST_OK_MAX:
            _HOST_OK.clear()
        _HOST_OK[host] = True


def _other_target_form(req: RequestHead, method: bytes, target: bytes) -> tuple[bytes, bytes]:
    """(origin-form target, extra header line to forward) for a target not in origin-form."""
    if method == b"CONNECT":
        raise FramingError(405, "CONNECT is not supported")
    if target == b"*":
        if method != b"OPTIONS":
            raise FramingError(400, "asterisk-form is only for OPTIONS")
        return target, b""
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
        extra = b""
        if req.host is None:
            req.host = authority
            extra = b"\r\nHost: " + authority
        return (path if path[:1] == b"/" else b"/" + path), extra
    raise FramingError(400, "invalid request target")


def _diagnose(head: bytes) -> str:
    """Why the head regex refused ``head`` (error path only)."""
    first, _, rest = head.partition(b"\r\n")
    if b"\n" in first or b"\n" in rest.replace(b"\r\n", b""):
        return "bare LF in request head"
    if b"\r" in rest.replace(b"\r\n", b""):
        return "bare CR in request head"
    if first.count(b" ") == 2 and b"#" in first.split(b" ")[1]:
        return "fragment (#) in request target"
    if first.count(b" ") != 2 or not re.fullmatch(TOKEN + rb" " + _TARGET + rb" HTTP/1\.[01]", first):
        return "malformed request line"
    for line in rest.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding"
        if line and not re.fullmatch(TOKEN + rb":" + FIELD_VALUE, line):
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
                if self._trailer_bytes > self.max_trailer or not re.fullmatch(TOKEN + rb":" + FIELD_VALUE, line):
                    raise FramingError(400, "invalid chunked trailer")
        return out, pos

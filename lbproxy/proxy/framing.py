"""Strict HTTP/1.1 request framing: the request head and chunked bodies, bytes in, values out (sans-IO).

Why not httptools for requests: llhttp (httptools) and h11 accept from a client what a front proxy must
refuse: a missing or duplicate Host, a double space in the request line, absolute-form and ``GET *``,
``Transfer_Encoding``, oversized heads arriving in one read; llhttp also cannot be stopped between
pipelined requests, so a per-head check on top of it would miss the second request of a read. A front
proxy must refuse ambiguous framing before anything is forwarded, so the request side is parsed here.
Responses from instances are parsed by httptools (``upstream.py``).

Speed (measured in bench/README.md): every step is a C-level call over the raw bytes, never a Python loop
over all lines, because a parse runs for every new head a client sends and the interpreter's per-line
work would dominate it. One compiled regex validates the whole head's grammar (linear, no backtracking);
then ``bytes.find`` locates Host, and one ``search`` loop over the lower-cased head visits only the few
lines that need work (framing, hop-by-hop, X-Forwarded-*). Everything else is forwarded as a *slice* of
the raw head (``RequestHead.prefix``): the upstream head is ``prefix`` plus a per-connection constant, not
a re-serialisation. A head with nothing special (wrk, curl, most API clients) leaves through an early
return after the regex, the Host ``find`` and one failed ``search``; the named steps below run only for
the others (HAProxy's ``h1.c`` also gives each framing header its own function).

Parts:
- ``find_head_end`` / ``check_partial_head``: where a head ends in a buffer; limits (414/431) and bare LF
  while it is still incomplete.
- ``parse_request_head``: one head -> ``RequestHead`` or ``FramingError(status, reason)``, in steps:
  ``_scan`` (grammar, limits), Host and the fast path, ``_special_lines``, ``_framing_headers``,
  ``_connection_tokens``, ``_assemble``. Rules (after RFC 9112 and AWS's ``http_desync_guardian`` that
  ALB uses): request line ``METHOD SP target SP HTTP/1.x`` with single spaces; CRLF line ends only (bare
  LF, bare CR, NUL -> 400); no obs-fold; header names are tokens; names that normalise to
  ``content-length``/``transfer-encoding`` (``Transfer_Encoding``) -> 400; Content-Length and
  Transfer-Encoding together -> 400; more than one Content-Length -> 400; Transfer-Encoding other than
  ``chunked`` (or on HTTP/1.0) -> 400/501; HTTP/1.1 without exactly one Host -> 400; absolute-form only
  when it names the same authority as Host (rewritten to origin-form); asterisk-form only for OPTIONS;
  CONNECT -> 405; ``Expect`` other than ``100-continue`` -> 417; a ``#`` in the request-target (a
  fragment is never sent) -> 400.
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
from typing import Final

from lbproxy.proxy.memo import remember

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
    """Parse and police one complete head (``head`` ends with the blank line).

    The steps: ``_scan`` (the grammar and the limits), Host, then either a fast path (nothing else to act
    on: the prefix is one slice) or ``_special_lines`` (the few lines that need work), ``_framing_headers``
    (Content-Length, Transfer-Encoding), the Host value, ``_connection_tokens`` (persistence, hop-by-hop
    names, the upgrade) and ``_assemble`` (the request line and the lines forwarded). The order of the
    checks decides which error a head with several faults gets, and is kept.
    """
    line_end = _scan(head, max_request_line, max_header_bytes, max_header_count)
    method, target, version = head[:line_end].split(b" ")
    http10 = version == b"HTTP/1.0"
    request = RequestHead(method, http10, len(head))
    lower = head.lower()
    # Host, in every request: found with ``find`` rather than by the special-lines search.
    host_at = lower.find(b"\r\nhost:", line_end)
    if host_at >= 0:
        host_at += 7
        request.host = head[host_at : head.find(b"\r\n", host_at)].strip(b" \t")
        if lower.find(b"\r\nhost:", host_at) >= 0:
            raise FramingError(400, "more than one Host")
    special = _SPECIAL_RE.search(lower, line_end)
    if host_at >= 0 and not http10 and target[:1] == b"/":
        host: bytes = request.host  # type: ignore[assignment]
        if special is None:
            # Fast path (wrk, curl, most API clients): origin-form HTTP/1.1, a Host, nothing else to act
            # on. No body framing, persistent, and forwarded as it came: the prefix is one slice.
            if host not in _HOST_OK:  # (the memo inline: no call for a host seen before)
                _check_host(host)
            request.target = target
            request.prefix = head[:-4]
            return request
        if special.group(1) == _CONNECTION:
            # Nearly as common (a client closing after this request): the same, less that one line,
            # when its value is a single ``close``/``keep-alive`` and no other line needs work.
            stop = head.find(b"\r\n", special.end())
            value = lower[special.end() : stop].strip(b" \t")
            if (value == b"close" or value == b"keep-alive") and _SPECIAL_RE.search(lower, stop) is None:
                if host not in _HOST_OK:
                    _check_host(host)
                request.target = target
                request.keep_alive = value != b"close"
                request.prefix = head[: special.start()] + head[stop:-4]
                return request
    drops, tokens, transfer_encoding, content_length = _special_lines(request, head, lower, special)
    restated = _framing_headers(request, transfer_encoding, content_length)
    if request.host is not None:
        _check_host(request.host)
    elif not http10:
        raise FramingError(400, "missing Host")
    dropped_names = _connection_tokens(request, tokens)
    _assemble(request, head, method, target, line_end, drops, restated, dropped_names)
    return request


def _scan(head: bytes, max_request_line: int, max_header_bytes: int, max_header_count: int) -> int:
    """The whole head's grammar (one regex) and the size limits; returns where the request line ends."""
    size = len(head)
    if size > max_header_bytes:
        raise FramingError(431, "request header fields too large")
    if _HEAD_RE.fullmatch(head) is None:
        raise FramingError(400, _diagnose(head))
    line_end = head.find(b"\r\n")
    if line_end > max_request_line:
        raise FramingError(414, "request line too long")
    # A header line takes at least 4 bytes (``a:`` CRLF): a short head cannot hold too many; skip the count.
    if size > 4 * max_header_count and head.count(b"\r\n") - 2 > max_header_count:
        raise FramingError(431, "too many header fields")
    return line_end


def _special_lines(
    request: RequestHead, head: bytes, lower: bytes, match: re.Match[bytes] | None
) -> tuple[list[int] | None, list[bytes] | None, bytes | None, bytes | None]:
    """Read the lines ``_SPECIAL_RE`` finds (from ``match`` on), never every line.

    Cookie and Expect (``100-continue``) are kept and forwarded; X-Forwarded-For and Upgrade are kept
    (appended to, offered again by ``_connection_tokens``); Content-Length, Transfer-Encoding and
    Connection are kept for the next steps; all but Cookie and Expect are dropped from the forwarded head,
    as are the other hop-by-hop lines. A second Content-Length or Transfer-Encoding, an expectation other
    than ``100-continue`` (417) and a name that normalises to a framing header are refused here.

    Returns the spans of the dropped lines ([start, stop) pairs, each from the CRLF before its line), the
    Connection tokens (lower-cased), and the Transfer-Encoding and Content-Length values.
    """
    drops: list[int] | None = None
    tokens: list[bytes] | None = None
    transfer_encoding: bytes | None = None
    content_length: bytes | None = None
    find = head.find
    search = _SPECIAL_RE.search
    while match is not None:
        name = match.group(1)
        start = match.start()
        value_start = match.end()
        stop = find(b"\r\n", value_start)
        value = head[value_start:stop].strip(b" \t")
        match = search(lower, stop)
        if name == _COOKIE:
            request.cookie = value if request.cookie is None else request.cookie + b"; " + value
            continue
        if name == _CONNECTION:
            lowered = value.lower()
            if tokens is None:
                tokens = []
            if b"," in lowered:
                tokens.extend(token.strip(b" \t") for token in lowered.split(b","))
            else:
                tokens.append(lowered)
        elif name == _CONTENT_LENGTH:
            if content_length is not None:
                raise FramingError(400, "more than one Content-Length")
            content_length = value
        elif name == _TRANSFER_ENCODING:
            if transfer_encoding is not None:
                raise FramingError(400, "more than one Transfer-Encoding")
            transfer_encoding = value
        elif name == _XFF:
            request.xff = value if request.xff is None else request.xff + b", " + value
        elif name == _EXPECT:
            if not request.http10:
                if value.lower() != b"100-continue":
                    raise FramingError(417, "unsupported expectation")
                request.expect_continue = True
                continue  # forwarded
        elif name == _UPGRADE:
            request.upgrade = value if request.upgrade is None else request.upgrade + b", " + value
        elif name in _SMUGGLING_NAMES:
            raise FramingError(400, "header name that normalises to a framing header")
        # Everything that reaches here is not forwarded as the client sent it.
        if drops is None:
            drops = [start, stop]
        else:
            drops += (start, stop)
    return drops, tokens, transfer_encoding, content_length


def _framing_headers(request: RequestHead, transfer_encoding: bytes | None, content_length: bytes | None) -> bytes:
    """The body's framing: exactly one of Content-Length, chunked, or no body. Returns the Content-Length
    line to forward (its own line was dropped), or nothing."""
    if transfer_encoding is not None:
        if content_length is not None:
            raise FramingError(400, "both Content-Length and Transfer-Encoding")
        if request.http10:
            raise FramingError(400, "Transfer-Encoding on HTTP/1.0")
        codings = [coding.strip(b" \t").lower() for coding in transfer_encoding.split(b",")]
        if codings[-1] != b"chunked":
            raise FramingError(400, "final transfer coding is not chunked")
        if len(codings) > 1:
            raise FramingError(501, "transfer codings other than chunked")
        request.chunked = True
        request.content_length = -1
        return b""
    if content_length is not None:
        if not content_length.isdigit() or len(content_length) > 18:
            raise FramingError(400, "invalid Content-Length")
        request.content_length = int(content_length)
        return b"\r\nContent-Length: " + content_length
    return b""


def _connection_tokens(request: RequestHead, tokens: list[bytes] | None) -> frozenset[bytes] | None:
    """Connection management: persistence (``close``, HTTP/1.0's ``keep-alive``), the upgrade (only to
    WebSocket, only with ``Connection: upgrade`` on HTTP/1.1), and the header names the client lists as
    hop-by-hop: returned, to be dropped (a framing or routing header among them is refused)."""
    http10 = request.http10
    dropped_names = None
    if tokens is not None:
        if b"close" in tokens:
            request.keep_alive = False
        elif http10:
            request.keep_alive = b"keep-alive" in tokens
        extra = [token for token in tokens if token not in _CONNECTION_STANDARD]
        if extra:  # Connection-listed names are hop-by-hop too (rare: the slow path).
            dropped_names = frozenset(extra)
            for token in dropped_names:
                if token.replace(b"_", b"-") in _CONNECTION_REFUSED:
                    raise FramingError(400, "Connection lists a framing or routing header: " + token.decode("latin-1"))
    elif http10:
        request.keep_alive = False
    if request.upgrade is not None:
        if tokens is None or b"upgrade" not in tokens or http10:
            request.upgrade = None  # an Upgrade header without ``Connection: upgrade`` is just dropped
        else:
            request.upgrade = _websocket_offer(request.upgrade)
    request.plain = request.xff is None and not request.chunked and request.upgrade is None
    return dropped_names


def _assemble(
    request: RequestHead,
    head: bytes,
    method: bytes,
    target: bytes,
    line_end: int,
    drops: list[int] | None,
    restated: bytes,
    dropped_names: frozenset[bytes] | None,
) -> None:
    """The head the instance gets (``request.prefix``): the request line in origin-form and HTTP/1.1,
    then the header lines kept, as slices of the raw head between the dropped spans, the restated
    Content-Length, without the Connection-listed names, with the Host an absolute-form target implies."""
    end = len(head) - 4  # where the last header line ends
    fields: bytes | None = None  # None: every header line, as it came
    if drops is not None:
        pieces = []
        pos = line_end
        for i in range(0, len(drops), 2):
            pieces.append(head[pos : drops[i]])
            pos = drops[i + 1]
        pieces.append(head[pos:end])
        fields = b"".join(pieces) + restated
    if dropped_names is not None:
        lines = (head[line_end:end] if fields is None else fields).split(b"\r\n")
        fields = b"".join(
            [b"\r\n" + line for line in lines[1:] if line[: line.find(b":")].lower() not in dropped_names]
        )
    origin_form = target[:1] == b"/"
    if not origin_form:
        target, extra_field = _other_target_form(request, method, target)
        if extra_field:
            fields = (head[line_end:end] if fields is None else fields) + extra_field
    request.target = target
    if fields is None and origin_form and not request.http10:
        request.prefix = head[:end]  # request line and headers forwarded as they came
    else:
        request.prefix = b"%s %s HTTP/1.1%s" % (method, target, head[line_end:end] if fields is None else fields)


#: ``remember_head``'s bounds: heads kept per process, and the longest head kept.
REMEMBERED_HEADS = 256
REMEMBERED_HEAD_BYTES = 2048


def remember_head(memo: dict[bytes, RequestHead], head: bytes, request: RequestHead) -> None:
    """Keep ``request`` as the parse of every later identical ``head`` (``Dataplane.parsed_heads``).

    ``parse_request_head`` is a pure function of the head's bytes and the limits (fixed per process), so a
    head seen before (a client repeating a request: a browser's asset reloads, health checkers, API
    polling, benchmarks) skips the parse. A remembered ``RequestHead`` is shared by every exchange that
    sent those bytes, so it must never change: a head without Host (HTTP/1.0, completed by
    ``Downstream._attach``) is not kept. Bounded: a full memo is emptied, heads over
    ``REMEMBERED_HEAD_BYTES`` are not kept. The memo is per worker and shared by its clients; a hit is a
    little faster than a parse, which tells a client at most that someone sent exactly the bytes it sent.
    """
    if request.host is None or len(head) > REMEMBERED_HEAD_BYTES:
        return
    remember(memo, head, request, REMEMBERED_HEADS)


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
        remember(_HOST_OK, host, True, _HOST_OK_MAX)


def _other_target_form(request: RequestHead, method: bytes, target: bytes) -> tuple[bytes, bytes]:
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
        if request.host is not None and authority.lower() != request.host.lower():
            raise FramingError(400, "absolute-form authority differs from Host")
        extra = b""
        if request.host is None:
            request.host = authority
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

    _SIZE: Final = 0
    _DATA: Final = 1
    _DATA_END: Final = 2
    _TRAILER: Final = 3

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

"""The upstream side: one ``asyncio.Protocol`` per connection to an instance, and the keep-alive pool.

- ``Upstream``: a connection to an instance, owned by at most one downstream exchange at a time. The
  response is framed by httptools (callbacks, no coroutine), the head is forwarded as the instance sent it
  minus the hop-by-hop lines, body pieces are relayed as they arrive, 1xx relayed (100-continue), 101
  switches both sides to a byte tunnel. Backpressure: when the instance reads the request body slower
  than the client sends it, ``pause_writing`` pauses the downstream's reading.
- ``Pool``: idle keep-alive connections per instance (LIFO, bounded, closed after
  ``upstream_idle_timeout``); ``connect`` opens a new one within ``upstream_connect_timeout`` (the only
  coroutine on the request path, and only when the pool has nothing idle).

Speed (the response side is most of the per-request work):
- The common response, small enough to arrive whole in one read (``whole_response``: an HTTP/1.1 head,
  one Content-Length that the read fills exactly, no hop-by-hop line but nginx's closing ``Connection:
  keep-alive``), is checked by one regex (each head's judgement is remembered: instances repeat their
  heads) and handed over in one call (``Downstream.response_whole``: one write, the exchange ends).
  httptools never sees it and stays at a message boundary. Anything else sets ``rare`` and goes through
  httptools for the rest of the exchange, as below.
- No ``on_header`` callback: httptools installs only the callbacks the protocol object defines, so a
  response head costs one Python call (``on_headers_complete``) instead of one per header line. The head
  is taken from the raw bytes instead (``head_data``/``head_start``: the bytes being parsed and where the
  current head starts; a head split over several reads is kept in ``head_buffer``). llhttp (httptools >=
  0.6) is strict about responses (CRLF only, no obs-fold, no bare CR), so the head it accepted is exactly
  the bytes up to the first blank line.
- The head is rewritten with slices: one ``search`` loop over the lower-cased head finds the hop-by-hop
  lines (``Connection: keep-alive`` from nginx, usually the only one) and the framing headers; the status
  line and every other line are forwarded unchanged (HAProxy does the same).
- The downstream holds the rewritten head back (``Downstream.pending_head``) until the first body piece of
  the same read arrives, so head and body leave in one ``transport.write``: one TLS record and one send
  instead of two. Whatever is still held when ``data_received`` returns is flushed then.

An ``Upstream``'s state, by lifetime (as ``Downstream``'s): the connection's (``pool``, ``instance``,
``transport``, ``parser``, ``closed``, ``tunnel``, ``idle_since``) and the exchange's
(``downstream`` and the response being read). The exchange's fields keep their initial values unless
``rare`` is set, so ``Pool.release`` resets them only after a rare exchange. ``attach`` (by the
``Downstream``) and ``Pool.release`` are the only ways in and out of an exchange.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, ClassVar

import httptools

from lbproxy.proxy.balancer import Instance
from lbproxy.proxy.forwarding import status_line
from lbproxy.proxy.framing import FIELD_VALUE, TOKEN
from lbproxy.proxy.memo import remember

if TYPE_CHECKING:
    from lbproxy.proxy.downstream import Downstream

# Response body framing as the instance sent it.
FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE = range(4)

#: Response header names never relayed (``forwarding.RESPONSE_HOP_BY_HOP``), as a regex trie.
_HOP_NAMES = rb"connection|keep-alive|proxy-(?:connection|authenticate)|t(?:ransfer-encoding|e|railer)|upgrade"
#: Those lines, matched on the lower-cased head; every CRLF in a head llhttp accepted starts a header line.
_HOP_RE = re.compile(rb"\r\n(" + _HOP_NAMES + rb"):")
_NGINX_KEEP_ALIVE = b"\r\nconnection: keep-alive"
_TRANSFER_ENCODING = b"transfer-encoding"
_UPGRADE = b"upgrade"
_WEBSOCKET = b"websocket"
#: A response head split over reads larger than this is refused (502): instances are trusted, not unbounded.
MAX_RESPONSE_HEAD = 65536
# ``whole_response``'s grammar, one regex over the lower-cased head (without its blank line, and without
# nginx's closing ``Connection: keep-alive``, which ``_judge_head`` cuts first): as strict as llhttp
# (HTTP/1.1, a final status, token names, no control characters, CRLF only), no hop-by-hop line (a negative
# look-ahead at every line), exactly one Content-Length (group 2; the look-ahead also refuses a second).
# Linear: no line can match two of the alternatives, so nothing backtracks. Matching the lower-cased head
# keeps the look-ahead case-sensitive, which sre runs far faster than a case-insensitive one. (No possessive
# quantifiers: CPython before 3.11.5 mismatches some ``*+`` repeats, gh-106052.)
_NOT_SPECIAL = rb"(?!(?:" + _HOP_NAMES + rb"|content-length):)"
_LINE = rb"\r\n" + _NOT_SPECIAL + TOKEN + rb":" + FIELD_VALUE
_WHOLE_HEAD_RE = re.compile(
    rb"http/1\.1 ([2-5][0-9][0-9]) " + FIELD_VALUE
    + rb"(?:" + _LINE + rb")*"
    + rb"\r\ncontent-length:[ \t]*([0-9]{1,18})[ \t]*"
    + rb"(?:" + _LINE + rb")*"
)  # fmt: skip
#: nginx's last header line on a keep-alive response: the one hop-by-hop line a whole response may have.
_NGINX_KEEP_ALIVE_LINE = b"\r\nConnection: keep-alive"
#: ``whole_response``'s memo bounds (``Dataplane.judged_heads``, per worker): heads kept, longest head kept.
REMEMBERED_RESPONSE_HEADS = 256
REMEMBERED_RESPONSE_HEAD_BYTES = 2048
#: The judgement of a head that is not a whole response's (``_judge_head``).
_NOT_WHOLE = (0, 0, -1)


def whole_response(data: bytes, judged: dict[bytes, tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """The common response, arrived whole in one read: ``(status, cut, end)``, or None for anything else
    (httptools then parses it).

    Whole means: an HTTP/1.1 head with a final status other than 204/304, exactly one Content-Length that
    the rest of ``data`` fills exactly, and no hop-by-hop line but nginx's closing ``Connection:
    keep-alive``. ``end`` is where the head's blank line starts, ``cut`` where that keep-alive line starts
    (``end`` when there is none): the client gets ``data[:cut] + data[end:]``, and the instance connection
    stays reusable (an HTTP/1.1 response without ``Connection: close``).

    ``judged`` remembers each head's judgement (``_judge_head``, a pure function of the head's bytes), as
    ``framing.remember_head`` does for requests: an instance sends the same few heads over and over (only
    its ``Date`` changes, once a second), and the regex costs several times what a dictionary lookup does
    (bench/RESULTS.md). Bounded: a full memo is emptied; heads over ``REMEMBERED_RESPONSE_HEAD_BYTES`` are
    judged every time.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    judgement = judged.get(head)
    if judgement is None:
        judgement = _judge_head(head)
        if end <= REMEMBERED_RESPONSE_HEAD_BYTES:
            remember(judged, head, judgement, REMEMBERED_RESPONSE_HEADS)
    status, cut, length = judgement
    if length != len(data) - end - 4:  # (never true for _NOT_WHOLE)
        return None
    return status, cut, end


def _judge_head(head: bytes) -> tuple[int, int, int]:
    """A response head (without its blank line) as ``(status, cut, content_length)``, or ``_NOT_WHOLE``."""
    cut = len(head)
    if head.endswith(_NGINX_KEEP_ALIVE_LINE):
        cut -= len(_NGINX_KEEP_ALIVE_LINE)
    match = _WHOLE_HEAD_RE.fullmatch(head.lower(), 0, cut)
    if match is None or not head.startswith(b"HTTP/1.1 "):  # (the regex saw the status line lower-cased)
        return _NOT_WHOLE
    status = int(match.group(1))
    if status == 204 or status == 304:
        return _NOT_WHOLE
    return status, cut, int(match.group(2))


class Upstream(asyncio.Protocol):
    #: The connection's fields (``__init__`` documents each).
    CONNECTION_STATE: ClassVar[tuple[str, ...]] = (
        "pool",
        "instance",
        "transport",
        "parser",
        "closed",
        "tunnel",
        "idle_since",
    )
    #: The exchange's fields: at their initial values while the connection is idle (``Pool.release``).
    EXCHANGE_STATE: ClassVar[tuple[str, ...]] = (
        "downstream",
        "head_start",
        "rare",
        "framing",
        "is_head",
        "status",
        "informational",
        "got_data",
        "reset_parser",
        "upgrade_value",
        "awaiting",
        "head_buffer",
        "head_data",
    )
    __slots__ = CONNECTION_STATE + EXCHANGE_STATE

    def __init__(self, pool: Pool, instance: Instance) -> None:
        # -- per connection
        self.pool = pool
        self.instance = instance
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: A 101 switched this connection to a byte tunnel: it is never pooled again.
        self.tunnel = False
        #: When it last went idle in the pool (loop time); 0.0 for a new connection, never pooled.
        self.idle_since = 0.0
        # -- per exchange
        #: The exchange this connection serves (``attach``), None while it is idle in the pool.
        self.downstream: Downstream | None = None
        self._reset()

    def _reset(self) -> None:
        """The exchange's fields only a rare exchange changes, at their initial values."""
        #: This exchange left the fast path (a response for httptools to parse, a HEAD request, a fresh
        #: parser, a split head, an upgrade, a 1xx): ``Pool.release`` calls ``_reset_rare`` when it ends.
        #: While it is clear, every field below has its initial value.
        self.rare = False
        #: Where the current response head starts in ``head_data``.
        self.head_start = 0
        self.framing = FRAMING_CLOSE
        self.is_head = False
        self.status = 0
        self.informational = False
        self.got_data = False
        self.reset_parser = False
        self.upgrade_value: bytes | None = None
        #: A response head is expected next (and ``head_buffer`` holds its first part if it came in pieces).
        self.awaiting = True
        self.head_buffer = b""
        self.head_data = b""

    def _reset_rare(self) -> None:
        """Back to a clean state after an exchange that left the fast path (``rare``)."""
        if self.reset_parser:
            self.parser = httptools.HttpResponseParser(self)
        self._reset()

    # -- ownership ---------------------------------------------------------------------------------
    def attach(self, downstream: Downstream, head_request: bool) -> None:
        """Serve ``downstream``'s exchange (a connection taken from the pool or just opened). A response to
        HEAD has no body whatever its head says: httptools frames it (``rare``)."""
        self.downstream = downstream
        if head_request:
            self.is_head = True
            self.rare = True

    @property
    def stale(self) -> bool:
        """A connection taken from the pool that has not answered at all: the instance may have closed it
        while it was idle (the request may be retried once on a new connection)."""
        return self.idle_since != 0.0 and not self.got_data

    def pause_reading(self) -> None:
        """The client cannot take more of the response (``Downstream.pause_writing``)."""
        if not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        """Abort (never linger): the connection is not reusable."""
        self.downstream = None
        if not self.closed:
            self.closed = True
            self.transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        downstream = self.downstream
        if downstream is None:  # an idle connection must not speak: drop it
            self.pool.forget(self)
            self.close()
            return
        if not self.rare:
            # The common case, a small response in one read: no parser, one write (httptools is left at
            # a message boundary, ready for the next response).
            whole = whole_response(data, downstream.dataplane.judged_heads)
            if whole is not None and downstream.response_whole(data, whole):
                return
            self.rare = True  # httptools parses this response
        downstream.last_active = downstream.dataplane.now
        if self.tunnel:
            downstream.tunnel_to_client(data)
            return
        self.got_data = True
        if self.awaiting:  # these bytes start (or continue) a response head: keep them for the raw head
            self.head_data = self.head_buffer + data if self.head_buffer else data
            self.head_start = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if downstream.pending_head is not None:
                downstream.flush()
            self._switch(data[exc.args[0] :])
            return
        except httptools.HttpParserError:
            self._fail()
            return
        if self.awaiting:  # the head is not complete yet (or the exchange just ended): keep what came of it
            head_buffer = self.head_buffer = self.head_data[self.head_start :]
            if head_buffer:
                self.rare = True
                if len(head_buffer) > MAX_RESPONSE_HEAD:
                    self._fail()
                    return
        if downstream.pending_head is not None:  # the head came without body bytes in this read
            downstream.flush()

    def _fail(self) -> None:
        self.reset_parser = True
        self.rare = True
        downstream = self.downstream
        if downstream is not None:
            self.downstream = None
            downstream.upstream_failed(self, 502)
        self.close()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        downstream = self.downstream
        self.downstream = None
        if downstream is None:
            self.pool.forget(self)
            return
        if self.tunnel:
            downstream.tunnel_closed()
        elif self.status and not self.informational and self.framing == FRAMING_CLOSE:
            downstream.response_complete(False)  # a close-delimited body ends with the connection
        else:
            downstream.upstream_failed(self, 502)

    def pause_writing(self) -> None:
        downstream = self.downstream
        if downstream is not None:
            downstream.pause(downstream.PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        downstream = self.downstream
        if downstream is not None:
            downstream.resume(downstream.PAUSE_UPSTREAM)

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.downstream is None:
            # Bytes after the response this connection owed, in the same read (an idle connection that
            # speaks later is caught by ``data_received``): whatever they are, the next exchange must not
            # read them as its response. The connection leaves the pool and closes.
            self.pool.forget(self)
            self.close()

    def on_headers_complete(self) -> None:
        downstream = self.downstream
        if downstream is None:
            return
        buf = self.head_data
        start = self.head_start
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:  # cannot happen with llhttp's strict response parsing; refuse rather than guess
            self.head_start = len(buf)
            self._fail()
            return
        self.head_start = end + 4
        head = buf[start:end]  # status line + header lines, no final CRLF
        status = self.parser.get_status_code()
        self.status = status
        if not head.startswith(b"HTTP/1.1 "):  # the client gets HTTP/1.1 semantics whatever the instance spoke
            eol = head.find(b"\r\n")
            head = status_line(status)[:-2] + (head[eol:] if eol >= 0 else b"")
        lower = head.lower()
        framing = FRAMING_LENGTH if b"\r\ncontent-length:" in lower else FRAMING_CLOSE
        # Drop the hop-by-hop lines. nginx ends every keep-alive head with ``Connection: keep-alive``: cut
        # it with one slice, then look for any other (one failed search in the common case).
        if lower.endswith(_NGINX_KEEP_ALIVE):
            head = head[:-24]
            lower = lower[:-24]
        match = _HOP_RE.search(lower)
        if match is not None:
            head, framing = self._strip_hop_by_hop(head, lower, match, framing)
        if status == 200 and not self.is_head:
            # The common case: a body follows, framed as the head says.
            self.awaiting = False
            self.framing = framing
            downstream.response_head(200, head, framing, None)
            return
        if status < 200 and status != 101:
            self.informational = True  # the final response's head follows (awaiting stays set)
            self.rare = True
            downstream.response_informational(status, head)
            return
        self.awaiting = False
        if self.is_head or status == 204 or status == 304:
            framing = FRAMING_NONE
        elif status == 101:
            # Only a switch to the WebSocket the request offered (``framing`` forwards no other upgrade):
            # a 101 to anything else (h2c, no Upgrade asked) is a 502, never a tunnel.
            value = self.upgrade_value
            if (
                downstream.request is None
                or downstream.request.upgrade is None
                or value is None
                or value.lower() != _WEBSOCKET
            ):
                self.reset_parser = True
                self.rare = True
                self.downstream = None
                downstream.upstream_failed(self, 502)
                self.close()
                return
            framing = FRAMING_CLOSE  # what follows is the tunnel, whatever the head said
        self.framing = framing
        downstream.response_head(status, head, framing, self.upgrade_value)
        if framing == FRAMING_NONE and status != 101:
            # HEAD/204/304: no body follows, whatever Content-Length says; start a fresh parser next time.
            self.reset_parser = True
            self.rare = True
            self._complete(self.parser.should_keep_alive())

    def _strip_hop_by_hop(
        self, head: bytes, lower: bytes, match: re.Match[bytes] | None, framing: int
    ) -> tuple[bytes, int]:
        """``head`` without its hop-by-hop lines; Transfer-Encoding makes the framing chunked."""
        pieces = []
        pos = 0
        find = head.find
        search = _HOP_RE.search
        while match is not None:
            name = match.group(1)
            stop = find(b"\r\n", match.end())
            if stop < 0:
                stop = len(head)
            if name == _TRANSFER_ENCODING:
                framing = FRAMING_CHUNKED
            elif name == _UPGRADE:
                self.upgrade_value = head[match.end() : stop].strip(b" \t")
                self.rare = True
            pieces.append(head[pos : match.start()])
            pos = stop
            match = search(lower, stop)
        pieces.append(head[pos:])
        return b"".join(pieces), framing

    def on_body(self, body: bytes) -> None:
        downstream = self.downstream
        if downstream is not None and not self.informational:
            downstream.response_body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            self.status = 0
            return
        downstream = self.downstream
        framing = self.framing
        if downstream is None or framing == FRAMING_NONE or self.status == 101:
            return
        downstream.response_complete(framing != FRAMING_CLOSE and self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        downstream = self.downstream
        if downstream is not None:
            downstream.response_complete(keep_alive)

    def _switch(self, rest: bytes) -> None:
        downstream = self.downstream
        if downstream is None:
            self.close()
            return
        self.tunnel = True
        downstream.start_tunnel(rest)


class Pool:
    """Idle keep-alive connections per instance.

    ``acquire`` and ``release`` are the per-request fast path, the only copy of it: ``Downstream`` calls
    them (a call each per request; bench/README.md measures them against the inlined copies they
    replaced, about 1 % of a request's interpreter work)."""

    __slots__ = ("connect_timeout", "idle", "idle_timeout", "loop", "max_idle")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, connect_timeout: float, idle_timeout: float, max_idle: int
    ) -> None:
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        #: Instance -> idle connections (LIFO: the last one released is the warmest).
        self.idle: dict[Instance, list[Upstream]] = {}

    def acquire(self, instance: Instance) -> Upstream | None:
        """The last idle connection to ``instance`` (closed ones are dropped), or None: ``connect``."""
        idle = self.idle.get(instance)
        while idle:
            upstream = idle.pop()
            if not upstream.closed:
                return upstream
        return None

    async def connect(self, instance: Instance) -> Upstream:
        async with asyncio.timeout(self.connect_timeout):
            _, upstream = await self.loop.create_connection(
                lambda: Upstream(self, instance), instance.host, instance.port
            )
        return upstream

    def release(self, upstream: Upstream, now: float) -> None:
        """Take back a connection whose exchange ended with the response complete: detached from it and
        kept idle, or closed (a tunnel, closed already, or the instance's list is full)."""
        upstream.downstream = None
        if upstream.rare:
            upstream._reset_rare()
        if upstream.closed or upstream.tunnel:
            upstream.close()
            return
        idle = self.idle.get(upstream.instance)
        if idle is None:
            idle = self.idle[upstream.instance] = []
        if len(idle) < self.max_idle:
            upstream.idle_since = now
            idle.append(upstream)
        else:
            upstream.close()

    def forget(self, upstream: Upstream) -> None:
        idle = self.idle.get(upstream.instance)
        if idle and upstream in idle:
            idle.remove(upstream)

    def sweep(self, now: float, live: Any = None) -> None:
        """Close connections idle too long, and every idle one to an instance no longer attached."""
        for instance, idle in list(self.idle.items()):
            gone = live is not None and instance not in live
            keep = []
            for upstream in idle:
                if gone or upstream.closed or now - upstream.idle_since > self.idle_timeout:
                    upstream.close()
                else:
                    keep.append(upstream)
            if keep:
                self.idle[instance] = keep
            else:
                del self.idle[instance]

    def close_all(self) -> None:
        for idle in self.idle.values():
            for upstream in idle:
                upstream.close()
        self.idle.clear()

    def idle_count(self) -> int:
        return sum(len(v) for v in self.idle.values())

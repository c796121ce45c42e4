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
  keep-alive``), is checked by one regex and handed over in one call (``Downstream.response_whole``: one
  write, the exchange ends). httptools never sees it and stays at a message boundary. Anything else sets
  ``rare`` and goes through httptools for the rest of the exchange, as below.
- No ``on_header`` callback: httptools installs only the callbacks the protocol object defines, so a
  response head costs one Python call (``on_headers_complete``) instead of one per header line. The head
  is taken from the raw bytes instead (``hdata``/``hpos``: the bytes being parsed and where the current
  head starts; a head split over several reads is kept in ``hbuf``). llhttp (httptools >= 0.6) is strict
  about responses (CRLF only, no obs-fold, no bare CR), so the head it accepted is exactly the bytes up to
  the first blank line.
- The head is rewritten with slices: one ``search`` loop over the lower-cased head finds the hop-by-hop
  lines (``Connection: keep-alive`` from nginx, usually the only one) and the framing headers; the status
  line and every other line are forwarded unchanged (HAProxy does the same).
- The downstream holds the rewritten head back (``Downstream.pending``) until the first body piece of the
  same read arrives, so head and body leave in one ``transport.write``: one TLS record and one send
  instead of two. Whatever is still held when ``data_received`` returns is flushed then.

State grouped by lifetime: per connection (``pool``, ``instance``, ``transport``, ``closed``, ``parser``),
per exchange (``ds``, ``framing``, ``is_head``, ``status``, ``informational``, ``got_data``, ``awaiting``,
``hbuf``, ``hdata``; all at their initial values unless ``rare`` is set).
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import httptools

from lbproxy.proxy.balancer import Instance
from lbproxy.proxy.forwarding import status_line
from lbproxy.proxy.framing import FIELD_VALUE, TOKEN

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
# ``whole_response``'s grammar, one regex over the head (without its blank line): as strict as llhttp
# (HTTP/1.1, a final status, token names, no control characters, CRLF only), no hop-by-hop line (a negative
# look-ahead at every line) but nginx's closing ``Connection: keep-alive`` (group 3, its start is the cut),
# exactly one Content-Length (group 2; the look-ahead also refuses a second). Linear: no line can match
# two of the alternatives, so nothing backtracks.
_NOT_SPECIAL = rb"(?!(?i:" + _HOP_NAMES + rb"|content-length):)"
_LINE = rb"\r\n" + _NOT_SPECIAL + TOKEN + rb":" + FIELD_VALUE
_WHOLE_HEAD_RE = re.compile(
    rb"HTTP/1\.1 ([2-5][0-9][0-9]) " + FIELD_VALUE
    + rb"(?:" + _LINE + rb")*"
    + rb"\r\n(?i:content-length):[ \t]*([0-9]{1,18})[ \t]*"
    + rb"(?:" + _LINE + rb")*"
    + rb"(\r\nConnection: keep-alive)?"
)  # fmt: skip


def whole_response(data: bytes) -> tuple[int, int, int] | None:
    """The common response, arrived whole in one read: ``(status, cut, end)``, or None for anything else
    (httptools then parses it).

    Whole means: an HTTP/1.1 head with a final status other than 204/304, exactly one Content-Length that
    the rest of ``data`` fills exactly, and no hop-by-hop line but nginx's closing ``Connection:
    keep-alive``. ``end`` is where the head's blank line starts, ``cut`` where that keep-alive line starts
    (``end`` when there is none): the client gets ``data[:cut] + data[end:]``, and the instance connection
    stays reusable (an HTTP/1.1 response without ``Connection: close``).
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    m = _WHOLE_HEAD_RE.fullmatch(data, 0, end)
    if m is None or int(m.group(2)) != len(data) - end - 4:
        return None
    status = int(m.group(1))
    if status == 204 or status == 304:
        return None
    cut = m.start(3)
    return status, end if cut < 0 else cut, end


class Upstream(asyncio.Protocol):
    __slots__ = (
        "awaiting",
        "closed",
        "ds",
        "framing",
        "got_data",
        "hbuf",
        "hdata",
        "hpos",
        "idle_since",
        "informational",
        "instance",
        "is_head",
        "parser",
        "pool",
        "rare",
        "reset_parser",
        "status",
        "transport",
        "tunnel",
        "upgrade_value",
        "uses",
    )

    def __init__(self, pool: Pool, instance: Instance) -> None:
        self.pool = pool
        self.instance = instance
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.tunnel = False
        self.uses = 0
        self.idle_since = 0.0
        self.ds: Downstream | None = None
        self.hpos = 0
        self._reset()

    def _reset(self) -> None:
        self.framing = FRAMING_CLOSE
        self.is_head = False
        self.status = 0
        self.informational = False
        self.got_data = False
        self.reset_parser = False
        self.upgrade_value: bytes | None = None
        #: A response head is expected next (and ``hbuf`` holds its first part if it came in pieces).
        self.awaiting = True
        self.hbuf = b""
        self.hdata = b""
        #: This exchange left the fast path (a response for httptools to parse, a HEAD request, a fresh
        #: parser, a split head, an upgrade, a 1xx): ``reset_rare`` is due when it ends. While it is clear,
        #: every field above has its initial value.
        self.rare = False

    # -- ownership ---------------------------------------------------------------------------------
    # ``Downstream._attach`` hands a connection to an exchange (``ds``, ``is_head``, ``uses``) and
    # ``Downstream._finish`` takes it back: both inline, once per request.
    def reset_rare(self) -> None:
        """Back to a clean state after an exchange that left the fast path (``rare``), called by
        ``Downstream._finish`` when it detaches the connection from its exchange."""
        if self.reset_parser:
            self.parser = httptools.HttpResponseParser(self)
        self._reset()

    def close(self) -> None:
        """Abort (never linger): the connection is not reusable."""
        self.ds = None
        if not self.closed:
            self.closed = True
            self.transport.abort()

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ds = self.ds
        if ds is None:  # an idle connection must not speak: drop it
            self.pool.forget(self)
            self.close()
            return
        if not self.rare:
            # The common case, a small response in one read: no parser, one write (httptools is left at
            # a message boundary, ready for the next response).
            whole = whole_response(data)
            if whole is not None and ds.response_whole(data, whole):
                return
            self.rare = True  # httptools parses this response
        ds.last_active = ds.dp.now
        if self.tunnel:
            ds.tunnel_to_client(data)
            return
        self.got_data = True
        if self.awaiting:  # these bytes start (or continue) a response head: keep them for the raw head
            self.hdata = self.hbuf + data if self.hbuf else data
            self.hpos = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if ds.pending is not None:
                ds.flush()
            self._switch(data[exc.args[0] :])
            return
        except httptools.HttpParserError:
            self._fail()
            return
        if self.awaiting:  # the head is not complete yet (or the exchange just ended): keep what came of it
            hbuf = self.hbuf = self.hdata[self.hpos :]
            if hbuf:
                self.rare = True
                if len(hbuf) > MAX_RESPONSE_HEAD:
                    self._fail()
                    return
        if ds.pending is not None:  # the head came without body bytes in this read
            ds.flush()

    def _fail(self) -> None:
        self.reset_parser = True
        self.rare = True
        ds = self.ds
        if ds is not None:
            self.ds = None
            ds.upstream_failed(self, 502)
        self.close()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ds = self.ds
        self.ds = None
        if ds is None:
            self.pool.forget(self)
            return
        if self.tunnel:
            ds.tunnel_closed()
        elif self.status and not self.informational and self.framing == FRAMING_CLOSE:
            ds.response_complete(False)  # a close-delimited body ends with the connection
        else:
            ds.upstream_failed(self, 502)

    def pause_writing(self) -> None:
        ds = self.ds
        if ds is not None:
            ds.pause(ds.PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        ds = self.ds
        if ds is not None:
            ds.resume(ds.PAUSE_UPSTREAM)

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.ds is None:
            # Bytes after the response this connection owed, in the same read (an idle connection that
            # speaks later is caught by ``data_received``): whatever they are, the next exchange must not
            # read them as its response. The connection leaves the pool and closes.
            self.pool.forget(self)
            self.close()

    def on_headers_complete(self) -> None:
        ds = self.ds
        if ds is None:
            return
        buf = self.hdata
        start = self.hpos
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:  # cannot happen with llhttp's strict response parsing; refuse rather than guess
            self.hpos = len(buf)
            self._fail()
            return
        self.hpos = end + 4
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
        m = _HOP_RE.search(lower)
        if m is not None:
            head, framing = self._strip_hop_by_hop(head, lower, m, framing)
        if status == 200 and not self.is_head:
            # The common case: a body follows, framed as the head says.
            self.awaiting = False
            self.framing = framing
            ds.response_head(200, head, framing, None)
            return
        if status < 200 and status != 101:
            self.informational = True  # the final response's head follows (awaiting stays set)
            self.rare = True
            ds.response_informational(status, head)
            return
        self.awaiting = False
        if self.is_head or status == 204 or status == 304:
            framing = FRAMING_NONE
        elif status == 101:
            # Only a switch to the WebSocket the request offered (``framing`` forwards no other upgrade):
            # a 101 to anything else (h2c, no Upgrade asked) is a 502, never a tunnel.
            value = self.upgrade_value
            if ds.req is None or ds.req.upgrade is None or value is None or value.lower() != _WEBSOCKET:
                self.reset_parser = True
                self.rare = True
                self.ds = None
                ds.upstream_failed(self, 502)
                self.close()
                return
            framing = FRAMING_CLOSE  # what follows is the tunnel, whatever the head said
        self.framing = framing
        ds.response_head(status, head, framing, self.upgrade_value)
        if framing == FRAMING_NONE and status != 101:
            # HEAD/204/304: no body follows, whatever Content-Length says; start a fresh parser next time.
            self.reset_parser = True
            self.rare = True
            self._complete(self.parser.should_keep_alive())

    def _strip_hop_by_hop(
        self, head: bytes, lower: bytes, m: re.Match[bytes] | None, framing: int
    ) -> tuple[bytes, int]:
        """``head`` without its hop-by-hop lines; Transfer-Encoding makes the framing chunked."""
        pieces = []
        pos = 0
        find = head.find
        search = _HOP_RE.search
        while m is not None:
            name = m.group(1)
            stop = find(b"\r\n", m.end())
            if stop < 0:
                stop = len(head)
            if name == _TRANSFER_ENCODING:
                framing = FRAMING_CHUNKED
            elif name == _UPGRADE:
                self.upgrade_value = head[m.end() : stop].strip(b" \t")
                self.rare = True
            pieces.append(head[pos : m.start()])
            pos = stop
            m = search(lower, stop)
        pieces.append(head[pos:])
        return b"".join(pieces), framing

    def on_body(self, body: bytes) -> None:
        ds = self.ds
        if ds is not None and not self.informational:
            ds.response_body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            self.status = 0
            return
        ds = self.ds
        framing = self.framing
        if ds is None or framing == FRAMING_NONE or self.status == 101:
            return
        ds.response_complete(framing != FRAMING_CLOSE and self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        ds = self.ds
        if ds is not None:
            ds.response_complete(keep_alive)

    def _switch(self, rest: bytes) -> None:
        ds = self.ds
        if ds is None:
            self.close()
            return
        self.tunnel = True
        ds.start_tunnel(rest)


class Pool:
    """Idle keep-alive connections per instance."""

    __slots__ = ("connect_timeout", "idle", "idle_timeout", "loop", "max_idle")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, connect_timeout: float, idle_timeout: float, max_idle: int
    ) -> None:
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        #: Instance -> idle connections (LIFO). Public: ``Downstream`` pops from it inline on the hot path.
        self.idle: dict[Instance, list[Upstream]] = {}

    def acquire(self, inst: Instance) -> Upstream | None:
        idle = self.idle.get(inst)
        while idle:
            up = idle.pop()
            if not up.closed:
                return up
        return None

    async def connect(self, inst: Instance) -> Upstream:
        async with asyncio.timeout(self.connect_timeout):
            _, up = await self.loop.create_connection(lambda: Upstream(self, inst), inst.host, inst.port)
        return up

    def release(self, up: Upstream, now: float) -> None:
        if up.closed or up.tunnel:
            up.close()
            return
        idle = self.idle.get(up.instance)
        if idle is None:
            idle = self.idle[up.instance] = []
        if len(idle) >= self.max_idle:
            up.close()
            return
        up.idle_since = now
        idle.append(up)

    def forget(self, up: Upstream) -> None:
        idle = self.idle.get(up.instance)
        if idle and up in idle:
            idle.remove(up)

    def sweep(self, now: float, live: Any = None) -> None:
        """Close connections idle too long, and every idle one to an instance no longer attached."""
        for inst, idle in list(self.idle.items()):
            gone = live is not None and inst not in live
            keep = []
            for up in idle:
                if gone or up.closed or now - up.idle_since > self.idle_timeout:
                    up.close()
                else:
                    keep.append(up)
            if keep:
                self.idle[inst] = keep
            else:
                del self.idle[inst]

    def close_all(self) -> None:
        for idle in self.idle.values():
            for up in idle:
                up.close()
        self.idle.clear()

    def idle_count(self) -> int:
        return sum(len(v) for v in self.idle.values())

"""The downstream side: one ``asyncio.Protocol`` per client connection (the hot path).

No task or coroutine per request: bytes arrive in ``data_received``, a complete head is policed by
``framing.parse_request_head`` (or found among the heads already parsed, ``Dataplane.parsed_heads``),
an instance is picked (``Balancer.rotation``), a pooled ``Upstream`` is attached (a coroutine runs only to
open a new upstream connection), the rewritten head is written once, the body streams through
(Content-Length counted, chunked decoded strictly and re-chunked), and the response comes back through
``response_whole`` (a small response in one read: one call, one write) or
``response_head``/``response_body``/``response_complete``, called by the upstream.

Rules kept here:
- Pipelined requests are buffered (bounded by ``pipeline_buffer_bytes``, then reading pauses) and
  answered strictly in order: the next head is parsed only when the previous exchange has finished.
- Backpressure both ways through one pause mask: the client's reading pauses while the instance cannot
  take more body (``PAUSE_UPSTREAM``), while pipelined bytes pile up (``PAUSE_PIPELINE``), while an
  upstream connection is being opened (``PAUSE_CONNECT``); the instance's reading pauses while the client
  cannot take more response (``pause_writing``).
- Errors: framing -> 400/405/413/414/417/431/501 and close; no healthy instance -> 503; connect failure ->
  the next instance (nothing was sent yet), else 502 (504 on connect timeout); a reused keep-alive
  connection that dies before answering an idempotent body-less request is retried once on a new
  connection; an instance dying before the response head -> 502, after it -> the client connection is
  aborted (the truncation must show). The proxy itself lives on.
- Timeouts are checked by ``Dataplane``'s sweeper against a coarse clock (``dp.now``), so no timer is
  armed per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from lbproxy.proxy.forwarding import error_response, redirect_response, upstream_request_head
from lbproxy.proxy.framing import (
    REMEMBERED_HEAD_BYTES,
    ChunkedDecoder,
    FramingError,
    RequestHead,
    check_partial_head,
    parse_request_head,
    remember_head,
)
from lbproxy.proxy.stickiness import find_cookie
from lbproxy.proxy.upstream import FRAMING_CHUNKED, FRAMING_LENGTH, FRAMING_NONE, Upstream

if TYPE_CHECKING:
    from lbproxy.proxy.balancer import Instance
    from lbproxy.proxy.dataplane import Dataplane

# Lines appended to a forwarded response head, each *preceded* by CRLF (the head comes without its end).
_CLOSE_LINE = b"\r\nConnection: close"
_KEEP_ALIVE_LINE = b"\r\nConnection: keep-alive"
_CHUNKED_LINE = b"\r\nTransfer-Encoding: chunked"
_UPGRADE_LINE = b"\r\nConnection: upgrade"
_END = b"\r\n\r\n"
_CLOSE_END = _CLOSE_LINE + _END
_LAST_CHUNK = b"0\r\n\r\n"
_HEAD = b"HEAD"
# A module-level name is one dict lookup; ``time.monotonic`` would be two.
_monotonic = time.monotonic


class Downstream(asyncio.Protocol):
    PAUSE_UPSTREAM = 1
    PAUSE_PIPELINE = 2
    PAUSE_CONNECT = 4
    PAUSE_DRAIN = 8

    __slots__ = (
        "body_left",
        "body_seen",
        "buf",
        "client",
        "closing",
        "decoder",
        "dp",
        "fwd",
        "head_started",
        "instance",
        "last_active",
        "paused",
        "pending",
        "rare",
        "req",
        "req_done",
        "resp_chunked",
        "resp_close",
        "resp_done",
        "resp_started",
        "retried",
        "sent",
        "sent_at",
        "set_cookie",
        "status",
        "tail",
        "tls",
        "transport",
        "tunnel",
        "upstream",
        "write_paused",
    )

    def __init__(self, dp: Dataplane, tls: bool, tail: bytes) -> None:
        self.dp = dp
        self.tls = tls
        #: The listener's constant X-Forwarded-Proto/Port lines.
        self.tail = tail
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client = b"-"
        #: The constant end of every upstream request head on this connection (X-Forwarded-For/Proto/Port
        #: and the blank line), built once per connection (``connection_made``): the common head is
        #: ``req.prefix + fwd``.
        self.fwd = b""
        self.buf = bytearray()
        self.paused = 0
        self.write_paused = False
        self.closing = False
        self.tunnel = False
        self.head_started = 0.0
        self.last_active = dp.now
        self.upstream: Upstream | None = None
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self.req: RequestHead | None = None
        self.instance: Instance | None = None
        self.req_done = True
        self.resp_started = False
        self.resp_done = False
        self.resp_chunked = False
        self.resp_close = False
        self.body_left = 0
        self.body_seen = 0
        self.decoder: ChunkedDecoder | None = None
        self.set_cookie: bytes | None = None
        #: A response head held back to leave in one write with the first body bytes (see ``upstream``).
        self.pending: bytes | None = None
        self.status = 0
        self.sent = 0
        self.sent_at = 0.0
        self.retried = False
        #: This exchange used a rare path (chunked request body, stickiness cookie, retry, chunked
        #: response): ``_finish`` then resets every per-exchange field, not only the common ones.
        self.rare = False

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # On the HTTPS listener: called by ``TlsConnection`` once the handshake completed, with itself
        # as the transport.
        self.transport = transport  # type: ignore[assignment]
        dp = self.dp
        if len(dp.connections) >= dp.max_connections or dp.refusing:
            dp.metrics.rejected_connections += 1
            self.transport.abort()
            return
        dp.connections.add(self)
        peer = transport.get_extra_info("peername")
        if peer:
            self.client = peer[0].encode()
        self.fwd = b"\r\nX-Forwarded-For: %b\r\n%b\r\n" % (self.client, self.tail)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.dp.connections.discard(self)
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.close()

    def eof_received(self) -> bool | None:
        if self.closing:  # (the usual case: the client's close_notify after the last response)
            return None
        if self.req is not None and not self.tunnel:
            self.resp_close = True  # answer what is in flight, then close
            return True
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        up = self.upstream
        if up is not None and not up.closed:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        up = self.upstream
        if up is not None and not up.closed:
            up.transport.resume_reading()

    def pause(self, bit: int) -> None:
        if not self.paused and not self.closing:
            self.transport.pause_reading()
        self.paused |= bit

    def resume(self, bit: int) -> None:
        if self.paused & bit:
            self.paused &= ~bit
            if not self.paused and not self.closing:
                self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        dp = self.dp
        self.last_active = dp.now
        if self.req is None:
            if not self.buf:
                # Fast paths: a head parsed before (``framing.remember_head``), or one whole head (and
                # nothing else) in this read, parsed straight from ``data``.
                # (the length check first: a long read, a head with its body, is not worth hashing)
                req = dp.parsed_heads.get(data) if len(data) <= REMEMBERED_HEAD_BYTES else None
                if req is not None:
                    self._exchange(req)
                    return
                end = data.find(b"\r\n\r\n")
                if end > 0 and end == len(data) - 4 and data[:2] != b"\r\n":
                    self._parse_head(data)
                    return
            self.buf += data
            self._next_request()
            return
        if self.tunnel:
            up = self.upstream
            if up is not None:
                up.transport.write(data)
            return
        if not self.req_done and self.upstream is not None and not self.buf:
            rest = self._body(data)
            if rest:
                self.buf += rest
                self._check_pipeline()
            return
        self.buf += data
        self._check_pipeline()

    # -- requests ----------------------------------------------------------------------------------
    def _check_pipeline(self) -> None:
        if len(self.buf) > self.dp.pipeline_limit and (self.req_done or self.upstream is None):
            self.pause(self.PAUSE_PIPELINE)

    def _next_request(self) -> None:
        """Parse the next complete head in ``buf`` (only when no exchange is in flight)."""
        if self.req is not None or self.closing:
            return
        buf = self.buf
        while buf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        dp = self.dp
        if end < 0:
            if buf:
                if not self.head_started:
                    self.head_started = dp.now
                try:
                    check_partial_head(buf, dp.max_request_line, dp.max_header_bytes)
                except FramingError as exc:
                    self._reject(exc.status)
                    return
            self.resume(self.PAUSE_PIPELINE)
            return
        end += 4
        head = bytes(buf[:end])
        del buf[:end]
        self._head(head)

    def _head(self, head: bytes) -> None:
        """A complete head from the buffer: found in ``dp.parsed_heads`` or parsed, then ``_exchange``."""
        self.head_started = 0.0
        req = self.dp.parsed_heads.get(head)
        if req is None:
            self._parse_head(head)
        else:
            self._exchange(req)

    def _parse_head(self, head: bytes) -> None:
        """A head not seen before: parsed, policed, remembered, then ``_exchange``."""
        dp = self.dp
        try:
            # Positional arguments: a call with keywords costs more in CPython.
            req = parse_request_head(head, dp.max_request_line, dp.max_header_bytes, dp.max_header_count)
        except FramingError as exc:
            self._reject(exc.status)
            return
        remember_head(dp.parsed_heads, head, req)
        self._exchange(req)

    def _exchange(self, req: RequestHead) -> None:
        """Start the exchange for a parsed head: body framing, routing, an instance connection."""
        dp = self.dp
        dp.metrics.request_count += 1
        self.req = req
        if req.http10:
            self.rare = True
        if req.content_length:  # -1: chunked, > 0: a Content-Length body
            if req.chunked:
                self.decoder = ChunkedDecoder()
                self.rare = True
                self.req_done = False
            else:
                if dp.max_body and req.content_length > dp.max_body:
                    self._local(413, close=True)
                    return
                self.body_left = req.content_length
                self.req_done = False
        if dp.special_routing:  # redirect or stickiness on (one flag read on the common path)
            self._head_special(req)
            return
        bal = dp.balancer
        if not bal.routable:
            self._local(503, close=self._must_close())
            return
        inst = self.instance = next(bal.rotation)
        # Pool.acquire, inlined: the last idle connection to this instance (LIFO: the warmest).
        idle = dp.pool.idle.get(inst)
        while idle:
            up = idle.pop()
            if not up.closed:
                self._attach(up)
                return
        self._connect(inst)

    def _head_special(self, req: RequestHead) -> None:
        """Routing with an HTTPS redirect or session stickiness (the slow path of ``_head``)."""
        dp = self.dp
        if dp.redirect and not self.tls:
            self._respond_local(redirect_response(req.host, req.target, dp.https_port, close=self._must_close()), 301)
            return
        pinned = None
        if dp.sticky:
            value = find_cookie(req.cookie)
            if value is not None:
                pinned = dp.signer.verify(value, time.time())
        inst = dp.balancer.pick(dp.now, pinned)
        if inst is None:
            self._local(503, close=self._must_close())
            return
        if dp.sticky and inst.name != pinned:
            self.set_cookie = dp.signer.set_cookie_header(inst.name, time.time(), dp.sticky_duration)
            self.rare = True
        self.instance = inst
        self._route(inst)

    def _must_close(self) -> bool:
        req = self.req
        return req is None or not req.keep_alive or not self.req_done or self.resp_close

    def _route(self, inst: Instance) -> None:
        up = self.dp.pool.acquire(inst)
        if up is not None:
            self._attach(up)
            return
        self._connect(inst)

    def _connect(self, inst: Instance) -> None:
        self.pause(self.PAUSE_CONNECT)
        self.dp.loop.create_task(self._open(inst))

    async def _open(self, inst: Instance) -> None:
        dp = self.dp
        try:
            up = await dp.pool.connect(inst)
        except (OSError, TimeoutError) as exc:
            if self.closing:
                return
            self._connect_failed(inst, exc)
            return
        if self.closing or self.req is None:
            up.close()
            return
        self.resume(self.PAUSE_CONNECT)
        self._attach(up)

    def _connect_failed(self, inst: Instance, exc: BaseException) -> None:
        dp = self.dp
        timed_out = isinstance(exc, TimeoutError)
        dp.balancer.mark_refused(inst, dp.now + dp.refused_backoff)
        nxt = dp.balancer.pick(dp.now, None, exclude=inst)
        if nxt is not None and nxt is not inst:
            # Nothing reached the instance: any request may go to the next one.
            self.instance = nxt
            if self.set_cookie is not None:
                self.set_cookie = dp.signer.set_cookie_header(nxt.name, time.time(), dp.sticky_duration)
            self._route(nxt)
            return
        self.resume(self.PAUSE_CONNECT)
        self._local(504 if timed_out else 502, close=self._must_close())

    def _attach(self, up: Upstream) -> None:
        req: RequestHead = self.req  # type: ignore[assignment]  # (no assert: it runs per request)
        self.upstream = up
        up.ds = self  # the instance connection now serves this exchange
        if req.method == _HEAD:
            up.is_head = True
            up.rare = True
        up.uses += 1
        if req.host is None:  # HTTP/1.0 without Host: the instance gets an HTTP/1.1 request, which needs one
            req.host = b"%s:%d" % (up.instance.host.encode(), up.instance.port)
            req.add_field(b"Host: " + req.host)
        # The common case (``plain``) is the raw head's slice plus the connection's constant suffix.
        head = req.prefix + self.fwd if req.plain else upstream_request_head(req, self.client, self.tail)
        self.sent_at = _monotonic()
        if self.write_paused:
            up.transport.pause_reading()
        if not self.req_done and self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            up.transport.write(head)
            rest = self._body(data)
            if rest:
                self.buf += rest
        else:
            up.transport.write(head)

    def _body(self, data: bytes) -> bytes:
        """Forward request body bytes; returns what follows the body (the next pipelined request)."""
        up = self.upstream
        assert up is not None
        dec = self.decoder
        if dec is None:
            n = self.body_left
            if len(data) < n:
                self.body_left = n - len(data)
                up.transport.write(data)
                return b""
            up.transport.write(data[:n] if len(data) > n else data)
            self.body_left = 0
            rest = data[n:]
            self._request_complete()
            return rest
        try:
            pieces, used = dec.feed(data)
        except FramingError as exc:
            self._body_error(exc.status)
            return b""
        if pieces:
            size = sum(map(len, pieces))
            self.body_seen += size
            if self.dp.max_body and self.body_seen > self.dp.max_body:
                self._body_error(413)
                return b""
            out = []
            for p in pieces:
                out.append(b"%x\r\n" % len(p))
                out.append(p)
                out.append(b"\r\n")
            if dec.done:
                out.append(_LAST_CHUNK)
            up.transport.write(b"".join(out))
        elif dec.done:
            up.transport.write(_LAST_CHUNK)
        if dec.done:
            rest = data[used:]
            self._request_complete()
            return rest
        return b""

    def _body_error(self, status: int) -> None:
        up = self.upstream
        self.upstream = None
        if up is not None:
            up.close()
        if self.resp_started:
            self._abort()
        else:
            self._local(status, close=True)

    def _request_complete(self) -> None:
        self.req_done = True

    # -- responses (called by Upstream) ------------------------------------------------------------

    def response_informational(self, status: int, head: bytes) -> None:
        req = self.req
        if req is not None and not req.http10:
            self.transport.write(head + _END)

    def response_head(self, status: int, head: bytes, framing: int, upgrade: bytes | None) -> None:
        """``head``: the instance's status line and kept header lines, without the final CRLFs."""
        req: RequestHead = self.req  # type: ignore[assignment]  # (no assert: it runs per request)
        dp = self.dp
        self.resp_started = True
        self.status = status
        dp.metrics.instance_response(status, _monotonic() - self.sent_at)
        close = not req.keep_alive or not self.req_done or self.resp_close or dp.draining
        if framing == FRAMING_LENGTH and not req.http10 and self.set_cookie is None:
            # The common case: the head goes out as the instance sent it (hop-by-hop lines cut), plus
            # ``Connection: close`` when this exchange ends the connection. Held back: the body bytes of
            # the same read join it in one write (one TLS record, one send).
            if close:
                head += _CLOSE_END
                self.resp_close = True
            else:
                head += _END
            self.sent += len(head)
            self.pending = head
            return
        if status == 101:
            head += _UPGRADE_LINE
            if upgrade is not None:
                head += b"\r\nUpgrade: " + upgrade
        elif framing >= FRAMING_CHUNKED:  # chunked or close-delimited from the instance
            if req.http10:
                close = True  # HTTP/1.0 client: the body ends with the connection
            else:
                self.resp_chunked = True
                self.rare = True
                head += _CHUNKED_LINE
        if self.set_cookie is not None:
            head += b"\r\n" + self.set_cookie[:-2]
        if status != 101:
            if close:
                head += _CLOSE_LINE
            elif req.http10:
                head += _KEEP_ALIVE_LINE
        self.resp_close = close
        head += _END
        self.sent += len(head)
        if framing == FRAMING_NONE or status == 101:
            self.transport.write(head)
        else:
            self.pending = head

    def response_whole(self, data: bytes, whole: tuple[int, int, int]) -> bool:
        """A whole response in one read (``upstream.whole_response``), forwarded in one write and the
        exchange finished. False when this exchange needs the general path (``rare``: an HTTP/1.0 client,
        a stickiness cookie to add, a chunked request body, a retry)."""
        if self.rare:
            return False
        status, cut, end = whole
        req: RequestHead = self.req  # type: ignore[assignment]
        dp = self.dp
        self.resp_started = True
        self.status = status
        dp.metrics.instance_response(status, _monotonic() - self.sent_at)
        if not req.keep_alive or not self.req_done or self.resp_close or dp.draining:  # (as in response_head)
            data = data[:cut] + _CLOSE_LINE + data[end:]
            self.resp_close = True
        elif cut != end:
            data = data[:cut] + data[end:]
        self.sent += len(data)
        self.transport.write(data)
        if self.req_done:
            self._finish(True)
        else:  # the instance answered before the request body ended: that body cannot be framed
            self.resp_close = True
            self._finish(False)
        return True

    def flush(self) -> None:
        """Write a held-back response head (the read that carried it had no body bytes)."""
        head = self.pending
        if head is not None:
            self.pending = None
            self.transport.write(head)

    def response_body(self, data: bytes) -> None:
        self.sent += len(data)
        if self.resp_chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        head = self.pending
        if head is not None:
            self.pending = None
            data = head + data
        self.transport.write(data)

    def response_complete(self, keep_alive: bool) -> None:
        if self.resp_done:
            return
        head = self.pending
        if self.resp_chunked:
            if head is not None:
                self.pending = None
                self.transport.write(head + _LAST_CHUNK)
            else:
                self.transport.write(_LAST_CHUNK)
        elif head is not None:  # a Content-Length: 0 response: the head alone
            self.pending = None
            self.transport.write(head)
        self.resp_done = True
        if self.req_done:
            self._finish(keep_alive)
        else:
            # The instance answered before the body ended: the rest of the body cannot be framed.
            self.resp_close = True
            self._finish(False)

    def upstream_failed(self, up: Upstream, status: int) -> None:
        """The instance connection broke (or sent garbage, or timed out) during this exchange."""
        if self.upstream is up:
            self.upstream = None
        if self.closing:
            return
        req = self.req
        if req is None:
            return
        if self.resp_started:
            self._abort()  # the client must see the truncation
            return
        if (
            status == 502
            and not self.retried
            and up.uses > 1
            and not up.got_data
            and req.idempotent
            and not req.has_body
            and self.instance is not None
        ):
            # A keep-alive connection the instance closed while idle: retry once on a new connection.
            self.retried = True
            self.rare = True
            self.pause(self.PAUSE_CONNECT)
            self.dp.loop.create_task(self._open(self.instance))
            return
        self._local(status, close=self._must_close())

    def response_timed_out(self) -> None:
        up = self.upstream
        if up is None:
            return
        self.upstream = None
        up.close()
        self.upstream_failed(up, 504)

    # -- tunnel (after 101) ------------------------------------------------------------------------
    def start_tunnel(self, rest: bytes) -> None:
        self.tunnel = True
        if rest:
            self.transport.write(rest)
        up = self.upstream
        if self.buf and up is not None:
            up.transport.write(bytes(self.buf))
            self.buf.clear()
        self.resume(self.PAUSE_PIPELINE)

    def tunnel_to_client(self, data: bytes) -> None:
        self.transport.write(data)

    def tunnel_closed(self) -> None:
        self.upstream = None
        if not self.closing:
            self.closing = True
            self.transport.close()

    # -- local responses and the end of an exchange ------------------------------------------------
    def _reject(self, status: int) -> None:
        """A request refused before routing: the connection closes (its framing cannot be trusted)."""
        self.dp.metrics.count_lb_status(status)
        self.status = status
        self.dp.log_access(self)
        self.closing = True
        self.transport.write(error_response(status, close=True))
        self.transport.close()

    def _local(self, status: int, *, close: bool) -> None:
        req = self.req
        self.dp.metrics.count_lb_status(status)
        self._respond_local(
            error_response(status, close=close, head_only=req is not None and req.method == b"HEAD"), status
        )

    def _respond_local(self, data: bytes, status: int) -> None:
        self.status = status
        self.resp_started = True
        self.resp_close = self._must_close()
        self.sent += len(data)
        self.transport.write(data)
        self.resp_done = True
        self._finish(False)

    def _abort(self) -> None:
        self.closing = True
        up = self.upstream
        self.upstream = None
        if up is not None:
            up.close()
        self.transport.abort()

    def _finish(self, reusable: bool) -> None:
        dp = self.dp
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.ds = None  # detached from this exchange; ``reset_rare`` when httptools or a rare path was used
            if up.rare:
                up.reset_rare()
            if reusable and not dp.draining and not up.closed and not up.tunnel:
                if self.write_paused:  # reading was paused for this slow client: not for the next one
                    up.transport.resume_reading()
                # Pool.release, inlined for the common case (a list for this instance exists, not full).
                pool = dp.pool
                idle = pool.idle.get(up.instance)
                if idle is not None and len(idle) < pool.max_idle:
                    up.idle_since = dp.now
                    idle.append(up)
                else:
                    pool.release(up, dp.now)
            else:
                up.close()
        if dp.access_log is not None:
            dp.log_access(self)
        self.last_active = dp.now
        if self.resp_close or not self.req_done or (dp.draining and not self.buf):
            # The connection ends here: nothing to reset (the sweeper and callbacks skip a closing one).
            self.closing = True
            self.transport.close()
            return
        # _reset_exchange, with the rarely used fields reset only when they were used.
        if self.rare:
            self._reset_exchange()
        else:
            self.req = None
            self.instance = None
            self.resp_started = False
            self.resp_done = False
            self.sent = 0
            self.sent_at = 0.0
        if self.buf:
            # The next pipelined request: parsed on the next loop turn, after this response's bytes left.
            dp.loop.call_soon(self._next_request)
        elif self.paused & self.PAUSE_PIPELINE:
            self.resume(self.PAUSE_PIPELINE)

    # -- sweeper hooks -----------------------------------------------------------------------------
    def idle(self) -> bool:
        return self.req is None and not self.tunnel

    def header_timed_out(self) -> None:
        self._reject(408)

    def close_idle(self) -> None:
        # (HTTPS: close_notify and a half-close, then the SSL object, and the key it references, is dropped
        # at once: ``TlsConnection.close``)
        self.closing = True
        self.transport.close()

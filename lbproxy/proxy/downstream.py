"""The downstream side: one ``asyncio.Protocol`` per client connection (the hot path).

No task or coroutine per request: bytes arrive in ``data_received``, a complete head is policed by
``framing.parse_request_head`` (or found among the heads already parsed, ``Dataplane.parsed_heads``),
an instance is picked (``Balancer.rotation``), a pooled ``Upstream`` is attached (a coroutine runs only to
open a new upstream connection), the rewritten head is written once, the body streams through
(Content-Length counted, chunked decoded strictly and re-chunked), and the response comes back through
``response_whole`` (a small response in one read: one call, one write) or
``response_head``/``response_body``/``response_complete``, called by the upstream.

State by lifetime, as HAProxy's ``mux_h1.c`` splits a connection (``h1c``) from the stream on it (``h1s``)
and uvicorn's protocols split per-connection from per-request state: ``Downstream.__init__`` sets the
connection's fields, then the exchange's. Every exchange ends in ``_end_exchange``, the one place that
hands the instance connection back (``Pool.release``) and resets the exchange's fields for the next
request; an exchange that ends the connection instead (``_reject``, ``_abort``, a tunnel, the client
leaving) resets nothing: the connection is done.

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
- Timeouts are checked by ``Dataplane``'s sweeper against a coarse clock (``Dataplane.now``), so no timer
  is armed per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, ClassVar, Final

from lbproxy.proxy import failures
from lbproxy.proxy.forwarding import error_response, redirect_response, remember_client, upstream_request_head
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
    """One client connection and the exchange in progress on it (at most one: pipelined requests wait)."""

    PAUSE_UPSTREAM: Final = 1
    PAUSE_PIPELINE: Final = 2
    PAUSE_CONNECT: Final = 4
    PAUSE_DRAIN: Final = 8

    #: The connection's fields (``__init__`` documents each).
    CONNECTION_STATE: ClassVar[tuple[str, ...]] = (
        "dataplane",
        "tls",
        "forwarded_tail",
        "forwarded_suffix",
        "transport",
        "client",
        "buffer",
        "paused",
        "write_paused",
        "closing",
        "tunnel",
        "head_started",
        "last_active",
    )
    #: The exchange's fields: at their initial values between exchanges (``_end_exchange``).
    EXCHANGE_STATE: ClassVar[tuple[str, ...]] = (
        "request",
        "instance",
        "upstream",
        "status",
        "sent",
        "sent_at",
        "request_done",
        "body_left",
        "response_close",
        "pending_head",
        "rare",
        "decoder",
        "body_seen",
        "set_cookie",
        "response_chunked",
        "retried",
    )
    __slots__ = CONNECTION_STATE + EXCHANGE_STATE

    def __init__(self, dataplane: Dataplane, tls: bool, forwarded_tail: bytes) -> None:
        # -- the connection ------------------------------------------------------------------------
        self.dataplane = dataplane
        self.tls = tls
        #: The listener's constant X-Forwarded-Proto/Port lines.
        self.forwarded_tail = forwarded_tail
        #: The constant end of every upstream request head on this connection (X-Forwarded-For/Proto/Port
        #: and the blank line), shared by the client address's connections (``connection_made``): the common
        #: head is ``request.prefix + forwarded_suffix``.
        self.forwarded_suffix = b""
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.client = b"-"
        #: Bytes received and not used yet: a partial head, pipelined requests, body bytes that wait for
        #: an instance connection.
        self.buffer = bytearray()
        #: Why the client's reading is paused (``PAUSE_*`` bits); 0 while it reads.
        self.paused = 0
        #: The client cannot take more response now (``pause_writing``).
        self.write_paused = False
        #: The connection is ending: nothing more is read, answered or reset.
        self.closing = False
        #: A 101 made this connection a byte tunnel to its instance.
        self.tunnel = False
        #: When the incomplete head in ``buffer`` began to arrive (0.0: none): the header timeout.
        self.head_started = 0.0
        #: The coarse clock at the last read or response: the idle timeout.
        self.last_active = dataplane.now
        # -- the exchange (the request in progress and its response) -------------------------------
        # Reset by ``_end_exchange`` at the end of every exchange:
        #: The request's head; None between exchanges.
        self.request: RequestHead | None = None
        self.instance: Instance | None = None
        #: The instance connection serving this exchange (it goes back to the pool when the exchange ends).
        self.upstream: Upstream | None = None
        #: The status of the response forwarded (its head left, or is held in ``pending_head``); 0 until then.
        self.status = 0
        #: Response bytes written to the client (the access log).
        self.sent = 0
        #: When the request head went to the instance (``time.monotonic``; the response timeout and time).
        self.sent_at = 0.0
        # Back at these values by the end of every exchange that keeps the connection, by themselves:
        #: The request body has been forwarded whole (an exchange that ends before closes the connection).
        self.request_done = True
        #: Content-Length body bytes still to forward.
        self.body_left = 0
        #: This response ends the connection (``Connection: close`` sent).
        self.response_close = False
        #: A response head held back to leave in one write with the first body bytes (``upstream``).
        self.pending_head: bytes | None = None
        # Set only on a rare path, which sets ``rare``:
        self._reset_rare()

    def _reset_rare(self) -> None:
        """The exchange's fields only a rare path sets, at their initial values (``__init__``, and
        ``_end_exchange`` after an exchange that set ``rare``)."""
        #: This exchange took a rare path (an HTTP/1.0 client, a chunked request body, a stickiness
        #: cookie, a retry, a chunked response): its fields below are reset when it ends, and the response
        #: cannot take the whole-response shortcut.
        self.rare = False
        self.decoder: ChunkedDecoder | None = None
        #: Chunked request body bytes decoded so far (``max_body``).
        self.body_seen = 0
        #: The ``Set-Cookie`` line that pins the client to its instance (stickiness).
        self.set_cookie: bytes | None = None
        #: The response is re-chunked for the client (chunked or close-delimited from the instance).
        self.response_chunked = False
        #: The request was already retried on a new instance connection.
        self.retried = False

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # On the HTTPS listener: called by ``TlsConnection`` once the handshake completed, with itself
        # as the transport.
        self.transport = transport  # type: ignore[assignment]
        dataplane = self.dataplane
        if len(dataplane.connections) >= dataplane.max_connections or dataplane.refusing:
            dataplane.metrics.rejected_connections += 1
            self.transport.abort()
            return
        dataplane.connections.add(self)
        peer = transport.get_extra_info("peername")
        address = peer[0] if peer else "-"  # (its lines are shared by its connections: Dataplane.client_lines)
        lines = dataplane.client_lines[self.forwarded_tail]  # (one memo per listener: Dataplane.start)
        self.client, self.forwarded_suffix = lines.get(address) or remember_client(lines, address, self.forwarded_tail)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.dataplane.connections.discard(self)
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.close()

    def eof_received(self) -> bool | None:
        if self.closing:  # (the usual case: the client's close_notify after the last response)
            return None
        if self.request is not None and not self.tunnel:
            self.response_close = True  # answer what is in flight, then close
            return True
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        upstream = self.upstream
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        upstream = self.upstream
        if upstream is not None:
            upstream.resume_reading()

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
        dataplane = self.dataplane
        self.last_active = dataplane.now
        if self.request is None:
            if not self.buffer:
                # Fast paths: a head parsed before (``framing.remember_head``), or one whole head (and
                # nothing else) in this read, parsed straight from ``data``.
                # (the length check first: a long read, a head with its body, is not worth hashing)
                request = dataplane.parsed_heads.get(data) if len(data) <= REMEMBERED_HEAD_BYTES else None
                if request is not None:
                    self._exchange(request)
                    return
                end = data.find(b"\r\n\r\n")
                if end > 0 and end == len(data) - 4 and data[:2] != b"\r\n":
                    self._parse_head(data)
                    return
            self.buffer += data
            self._next_request()
            return
        if self.tunnel:
            upstream = self.upstream
            if upstream is not None:
                upstream.transport.write(data)
            return
        if not self.request_done and self.upstream is not None and not self.buffer:
            rest = self._body(data)
            if rest:
                self.buffer += rest
                self._check_pipeline()
            return
        self.buffer += data
        self._check_pipeline()

    # -- requests ----------------------------------------------------------------------------------
    def _check_pipeline(self) -> None:
        if len(self.buffer) > self.dataplane.pipeline_limit and (self.request_done or self.upstream is None):
            self.pause(self.PAUSE_PIPELINE)

    def _next_request(self) -> None:
        """Parse the next complete head in ``buffer`` (only when no exchange is in flight)."""
        if self.request is not None or self.closing:
            return
        buffer = self.buffer
        while buffer[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        dataplane = self.dataplane
        if end < 0:
            if buffer:
                if not self.head_started:
                    self.head_started = dataplane.now
                try:
                    check_partial_head(buffer, dataplane.max_request_line, dataplane.max_header_bytes)
                except FramingError as exc:
                    self._reject(exc.status)
                    return
            self.resume(self.PAUSE_PIPELINE)
            return
        end += 4
        head = bytes(buffer[:end])
        del buffer[:end]
        self._head(head)

    def _head(self, head: bytes) -> None:
        """A complete head from the buffer: found in ``parsed_heads`` or parsed, then ``_exchange``."""
        self.head_started = 0.0
        request = self.dataplane.parsed_heads.get(head)
        if request is None:
            self._parse_head(head)
        else:
            self._exchange(request)

    def _parse_head(self, head: bytes) -> None:
        """A head not seen before: parsed, policed, remembered, then ``_exchange``."""
        dataplane = self.dataplane
        try:
            # Positional arguments: a call with keywords costs more in CPython.
            request = parse_request_head(
                head, dataplane.max_request_line, dataplane.max_header_bytes, dataplane.max_header_count
            )
        except FramingError as exc:
            self._reject(exc.status)
            return
        remember_head(dataplane.parsed_heads, head, request)
        self._exchange(request)

    def _exchange(self, request: RequestHead) -> None:
        """Start the exchange for a parsed head: body framing, routing, an instance connection."""
        dataplane = self.dataplane
        dataplane.metrics.request_count += 1
        self.request = request
        if request.http10:
            self.rare = True
        if request.content_length:  # -1: chunked, > 0: a Content-Length body
            if request.chunked:
                self.decoder = ChunkedDecoder()
                self.rare = True
                self.request_done = False
            else:
                if dataplane.max_body and request.content_length > dataplane.max_body:
                    self._local(413, close=True)
                    return
                self.body_left = request.content_length
                self.request_done = False
        if dataplane.special_routing:  # redirect or stickiness on (one flag read on the common path)
            self._head_special(request)
            return
        balancer = dataplane.balancer
        if not balancer.routable:
            self._local(503, close=self._must_close())
            return
        instance = self.instance = next(balancer.rotation)
        upstream = dataplane.pool.acquire(instance)
        if upstream is not None:
            self._attach(upstream)
        else:
            self._connect(instance)

    def _head_special(self, request: RequestHead) -> None:
        """Routing with an HTTPS redirect or session stickiness (the slow path of ``_exchange``)."""
        dataplane = self.dataplane
        if dataplane.redirect and not self.tls:
            response = redirect_response(request.host, request.target, dataplane.https_port, close=self._must_close())
            self._respond_local(response, 301)
            return
        pinned = None
        if dataplane.sticky:
            value = find_cookie(request.cookie)
            if value is not None:
                pinned = dataplane.signer.verify(value, time.time())
        instance = dataplane.balancer.pick(dataplane.now, pinned)
        if instance is None:
            self._local(503, close=self._must_close())
            return
        if dataplane.sticky and instance.name != pinned:
            self.set_cookie = dataplane.signer.set_cookie_header(instance.name, time.time(), dataplane.sticky_duration)
            self.rare = True
        self.instance = instance
        self._route(instance)

    def _must_close(self) -> bool:
        request = self.request
        return request is None or not request.keep_alive or not self.request_done or self.response_close

    def _route(self, instance: Instance) -> None:
        upstream = self.dataplane.pool.acquire(instance)
        if upstream is not None:
            self._attach(upstream)
            return
        self._connect(instance)

    def _connect(self, instance: Instance) -> None:
        self.pause(self.PAUSE_CONNECT)
        self.dataplane.loop.create_task(self._open(instance))

    async def _open(self, instance: Instance) -> None:
        try:
            upstream = await self.dataplane.pool.connect(instance)
        except (OSError, TimeoutError) as exc:
            if self.closing:
                return
            self._connect_failed(instance, exc)
            return
        if self.closing or self.request is None:
            upstream.close()
            return
        self.resume(self.PAUSE_CONNECT)
        self._attach(upstream)

    def _attach(self, upstream: Upstream) -> None:
        """Send the request to ``upstream``, which serves this exchange from now on."""
        request: RequestHead = self.request  # type: ignore[assignment]  # (no assert: it runs per request)
        self.upstream = upstream
        upstream.attach(self, request.method == _HEAD)
        if request.host is None:  # HTTP/1.0 without Host: the instance gets an HTTP/1.1 request, which needs one
            request.host = b"%s:%d" % (upstream.instance.host.encode(), upstream.instance.port)
            request.add_field(b"Host: " + request.host)
        # The common case (``plain``) is the raw head's slice plus the connection's constant suffix.
        if request.plain:
            head = request.prefix + self.forwarded_suffix
        else:
            head = upstream_request_head(request, self.client, self.forwarded_tail)
        self.sent_at = _monotonic()
        if self.write_paused:
            upstream.pause_reading()
        if not self.request_done and self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            upstream.transport.write(head)
            rest = self._body(data)
            if rest:
                self.buffer += rest
        else:
            upstream.transport.write(head)

    def _body(self, data: bytes) -> bytes:
        """Forward request body bytes; returns what follows the body (the next pipelined request)."""
        upstream = self.upstream
        assert upstream is not None
        decoder = self.decoder
        if decoder is None:
            left = self.body_left
            if len(data) < left:
                self.body_left = left - len(data)
                upstream.transport.write(data)
                return b""
            upstream.transport.write(data[:left] if len(data) > left else data)
            self.body_left = 0
            self.request_done = True
            return data[left:]
        try:
            pieces, used = decoder.feed(data)
        except FramingError as exc:
            self._body_error(exc.status)
            return b""
        if pieces:
            self.body_seen += sum(map(len, pieces))
            if self.dataplane.max_body and self.body_seen > self.dataplane.max_body:
                self._body_error(413)
                return b""
            chunks = []
            for piece in pieces:
                chunks.append(b"%x\r\n" % len(piece))
                chunks.append(piece)
                chunks.append(b"\r\n")
            if decoder.done:
                chunks.append(_LAST_CHUNK)
            upstream.transport.write(b"".join(chunks))
        elif decoder.done:
            upstream.transport.write(_LAST_CHUNK)
        if decoder.done:
            self.request_done = True
            return data[used:]
        return b""

    # -- responses (called by Upstream) ------------------------------------------------------------

    def response_informational(self, status: int, head: bytes) -> None:
        request = self.request
        if request is not None and not request.http10:
            self.transport.write(head + _END)

    def response_head(self, status: int, head: bytes, framing: int, upgrade: bytes | None) -> None:
        """``head``: the instance's status line and kept header lines, without the final CRLFs."""
        request: RequestHead = self.request  # type: ignore[assignment]  # (no assert: it runs per request)
        dataplane = self.dataplane
        self.status = status
        dataplane.metrics.instance_response(status, _monotonic() - self.sent_at)
        close = not request.keep_alive or not self.request_done or self.response_close or dataplane.draining
        if framing == FRAMING_LENGTH and not request.http10 and self.set_cookie is None:
            # The common case: the head goes out as the instance sent it (hop-by-hop lines cut), plus
            # ``Connection: close`` when this exchange ends the connection. Held back: the body bytes of
            # the same read join it in one write (one TLS record, one send).
            if close:
                head += _CLOSE_END
                self.response_close = True
            else:
                head += _END
            self.sent += len(head)
            self.pending_head = head
            return
        if status == 101:
            head += _UPGRADE_LINE
            if upgrade is not None:
                head += b"\r\nUpgrade: " + upgrade
        elif framing >= FRAMING_CHUNKED:  # chunked or close-delimited from the instance
            if request.http10:
                close = True  # HTTP/1.0 client: the body ends with the connection
            else:
                self.response_chunked = True
                self.rare = True
                head += _CHUNKED_LINE
        if self.set_cookie is not None:
            head += b"\r\n" + self.set_cookie[:-2]
        if status != 101:
            if close:
                head += _CLOSE_LINE
            elif request.http10:
                head += _KEEP_ALIVE_LINE
        self.response_close = close
        head += _END
        self.sent += len(head)
        if framing == FRAMING_NONE or status == 101:
            self.transport.write(head)
        else:
            self.pending_head = head

    def response_whole(self, data: bytes, whole: tuple[int, int, int]) -> bool:
        """A whole response in one read (``upstream.whole_response``), forwarded in one write and the
        exchange ended. False when this exchange needs the general path (``rare``: an HTTP/1.0 client,
        a stickiness cookie to add, a chunked request body, a retry)."""
        if self.rare:
            return False
        status, cut, end = whole
        request: RequestHead = self.request  # type: ignore[assignment]
        dataplane = self.dataplane
        self.status = status
        dataplane.metrics.instance_response(status, _monotonic() - self.sent_at)
        # (as in response_head)
        if not request.keep_alive or not self.request_done or self.response_close or dataplane.draining:
            data = data[:cut] + _CLOSE_LINE + data[end:]
            self.response_close = True
        elif cut != end:
            data = data[:cut] + data[end:]
        self.sent += len(data)
        self.transport.write(data)
        if self.request_done:
            self._end_exchange(True)
        else:  # the instance answered before the request body ended: that body cannot be framed
            self.response_close = True
            self._end_exchange(False)
        return True

    def flush(self) -> None:
        """Write a held-back response head (the read that carried it had no body bytes)."""
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            self.transport.write(head)

    def response_body(self, data: bytes) -> None:
        self.sent += len(data)
        if self.response_chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            data = head + data
        self.transport.write(data)

    def response_complete(self, keep_alive: bool) -> None:
        head = self.pending_head
        if self.response_chunked:
            if head is not None:
                self.pending_head = None
                self.transport.write(head + _LAST_CHUNK)
            else:
                self.transport.write(_LAST_CHUNK)
        elif head is not None:  # a Content-Length: 0 response: the head alone
            self.pending_head = None
            self.transport.write(head)
        if self.request_done:
            self._end_exchange(keep_alive)
        else:
            # The instance answered before the body ended: the rest of the body cannot be framed.
            self.response_close = True
            self._end_exchange(False)

    # -- tunnel (after 101) ------------------------------------------------------------------------
    def start_tunnel(self, rest: bytes) -> None:
        self.tunnel = True
        if rest:
            self.transport.write(rest)
        upstream = self.upstream
        if self.buffer and upstream is not None:
            upstream.transport.write(bytes(self.buffer))
            self.buffer.clear()
        self.resume(self.PAUSE_PIPELINE)

    def tunnel_to_client(self, data: bytes) -> None:
        self.transport.write(data)

    def tunnel_closed(self) -> None:
        self.upstream = None
        if not self.closing:
            self.closing = True
            self.transport.close()

    # -- local responses and the end of an exchange ------------------------------------------------
    def _local(self, status: int, *, close: bool) -> None:
        request = self.request
        self.dataplane.metrics.count_lb_status(status)
        head_only = request is not None and request.method == _HEAD
        self._respond_local(error_response(status, close=close, head_only=head_only), status)

    def _respond_local(self, data: bytes, status: int) -> None:
        self.status = status
        self.response_close = self._must_close()
        self.sent += len(data)
        self.transport.write(data)
        self._end_exchange(False)

    def _end_exchange(self, reusable: bool) -> None:
        """The end of every exchange: the instance connection goes back to the pool (``reusable``: its
        response is complete and it may serve another) or closes, the access log line, then the client
        connection closes, or the exchange's fields go back to their initial values (``__init__``) for the
        next request."""
        dataplane = self.dataplane
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            if reusable and not dataplane.draining:
                if self.write_paused:  # reading was paused for this slow client: not for the next one
                    upstream.resume_reading()
                dataplane.pool.release(upstream, dataplane.now)
            else:
                upstream.close()
        if dataplane.access_log is not None:
            dataplane.log_access(self)
        self.last_active = dataplane.now
        if self.response_close or not self.request_done or (dataplane.draining and not self.buffer):
            # The connection ends here: nothing to reset (the sweeper and callbacks skip a closing one).
            self.closing = True
            self.transport.close()
            return
        # The fields every exchange sets; the rest are back at their initial values already, and those
        # only a rare path sets are reset only after one ran (three stores per field saved on the
        # common path).
        self.request = None
        self.instance = None
        self.status = 0
        self.sent = 0
        self.sent_at = 0.0
        if self.rare:
            self._reset_rare()
        if self.buffer:
            # The next pipelined request: parsed on the next loop turn, after this response's bytes left.
            dataplane.loop.call_soon(self._next_request)
        elif self.paused:  # (``resume`` checks the bit: one test less per request)
            self.resume(self.PAUSE_PIPELINE)

    def _abort(self) -> None:
        self.closing = True
        upstream = self.upstream
        self.upstream = None
        if upstream is not None:
            upstream.close()
        self.transport.abort()

    # -- failures (``failures``: off the hot path) --------------------------------------------------
    def upstream_failed(self, upstream: Upstream, status: int) -> None:
        """The instance connection broke (or sent garbage, or timed out) during this exchange."""
        failures.upstream_failed(self, upstream, status)

    def response_timed_out(self) -> None:
        failures.response_timed_out(self)

    def _connect_failed(self, instance: Instance, exc: BaseException) -> None:
        failures.connect_failed(self, instance, exc)

    def _body_error(self, status: int) -> None:
        failures.body_error(self, status)

    def _reject(self, status: int) -> None:
        failures.reject(self, status)

    # -- sweeper hooks -----------------------------------------------------------------------------
    def idle(self) -> bool:
        return self.request is None and not self.tunnel

    def header_timed_out(self) -> None:
        self._reject(408)

    def close_idle(self) -> None:
        # (HTTPS: close_notify and a half-close, then the SSL object, and the key it references, is dropped
        # at once: ``TlsConnection.close``)
        self.closing = True
        self.transport.close()

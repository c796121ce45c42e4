"""One HTTPS client connection's TLS, driven by hand: OpenSSL on memory BIOs over a plain TCP transport.

``TlsConnection`` is the ``asyncio.Protocol`` of an accepted TCP connection on the HTTPS listener, and,
once the handshake is done, the transport its ``Downstream`` sees (``write``, ``close``, ``abort``,
``pause_reading``/``resume_reading``, ``get_extra_info``). It does what uvloop's ``SSLProtocol`` did for
this listener with less per connection, measured (``bench/profile.py --what samples``, bench/README.md):
no timer per connection (the dataplane's sweeper checks ``Dataplane.tls_deadlines``), no weak reference,
no 256 KiB read buffer, no empty first handshake step, no draining reads and no second shutdown step that
raise ``SSLWantReadError`` from C, and HAProxy's close.

The life of a connection:

- **Accept**: refused at once (``RejectedConnectionCount``) when ``max_connections`` are open or in their
  handshake or close, or when the data plane drains (revocation, shutdown); otherwise an SSL object on
  the listener's key-less base context (the SNI callback lends the keyed one, ``tls.TlsTerminator``),
  with a handshake deadline of ``header_timeout``.
- **Handshake**: records are fed to OpenSSL as they come and its answers written at once. When it
  completes it is counted (full or resumed), a ``Downstream`` is made, application data that came with
  the client's Finished is delivered at once, then the session tickets are written. A handshake that
  fails (alert, timeout, the client leaving) is counted as ``ClientTLSNegotiationErrorCount``.
- **Records**: each read decrypts every complete record and hands the plaintext to the ``Downstream`` in
  one ``data_received``; what OpenSSL answers by itself (a KeyUpdate, a refused renegotiation) is written
  with the next write, or at once when the read carried no data. Each write is encrypted and written at
  once, so the TCP transport's buffer and its ``pause_writing``/``resume_writing`` (passed on to the
  ``Downstream``) are the flow control.
- **The client's close_notify or FIN**: the ``Downstream``'s ``eof_received``; when it keeps the
  connection to answer what is in flight (TLS 1.3 allows the half-close), writes still go out, and after
  a close_notify reading stops (nothing may follow it) until the close.
- **Close** (HAProxy's way): close_notify, then the TCP write side is shut, and whatever the client still
  sends is discarded unread until its FIN; the ``Downstream`` is done at once (``connection_lost``), and
  the SSL object (with the keyed context it references) is dropped. The client thus reads the whole
  response and a clean end (RFC 8446 6.1), and a request it had already sent cannot turn into a reset
  that destroys the response (RFC 9112 9.6). The close has a deadline, ``tls_shutdown_timeout``, for the
  response to drain and the client's FIN to come; then the connection is aborted. ``Dataplane.stop``
  waits (within its drain time) for closed connections to finish sending.
- **Abort**: the TCP connection is closed at once, without close_notify or the unsent bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from lbproxy.proxy.downstream import Downstream

if TYPE_CHECKING:
    from lbproxy.proxy.dataplane import Dataplane

#: The most plaintext one TLS record carries (RFC 8446 5.1): one ``read`` never returns more.
RECORD_BYTES = 16384

_WantRead = ssl.SSLWantReadError
_ZeroReturn = ssl.SSLZeroReturnError
_SSLError = ssl.SSLError
#: ``get_extra_info`` names answered by the SSL object.
_TLS_INFO = frozenset({"ssl_object", "sslcontext", "cipher", "peercert"})


class TlsConnection(asyncio.Protocol, asyncio.Transport):
    __slots__ = (
        "closing",
        "context",
        "dataplane",
        "downstream",
        "eof_told",
        "forwarded_tail",
        "incoming",
        "outgoing",
        "peer_eof",
        "reading_paused",
        "secure",
        "ssl_object",
        "tcp_transport",
        "write_paused",
    )

    def __init__(self, dataplane: Dataplane, context: ssl.SSLContext, forwarded_tail: bytes) -> None:
        self.dataplane = dataplane
        #: The listener's key-less base context (``TlsTerminator.base``).
        self.context = context
        self.forwarded_tail = forwarded_tail
        self.downstream: Downstream | None = None
        #: The handshake completed.
        self.secure = False
        #: ``close``/``abort`` was called (or the handshake failed): nothing more is read or written.
        self.closing = False
        #: The client's FIN came.
        self.peer_eof = False
        #: The client's close_notify or FIN was told to the ``Downstream`` (``eof_received``, once).
        self.eof_told = False
        self.reading_paused = False
        #: The TCP transport asked to stop writing (kept for the Downstream made after the handshake).
        self.write_paused = False

    # -- asyncio.Protocol (the TCP side) -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp_transport: asyncio.Transport = transport  # type: ignore[assignment]
        dataplane = self.dataplane
        if dataplane.refusing or len(dataplane.connections) + len(dataplane.tls_deadlines) >= dataplane.max_connections:
            dataplane.metrics.rejected_connections += 1
            self.secure = self.closing = True  # (not a negotiation error)
            self.tcp_transport.abort()
            return
        incoming = self.incoming = ssl.MemoryBIO()
        outgoing = self.outgoing = ssl.MemoryBIO()
        # The C object itself, with no ``ssl.SSLObject`` around it (and no owner: no weak reference); the
        # SNI callback receives it (``TlsTerminator._select``).
        self.ssl_object = self.context._wrap_bio(incoming, outgoing, server_side=True, owner=None, session=None)  # type: ignore[attr-defined]
        dataplane.tls_deadlines[self] = dataplane.now + dataplane.handshake_timeout

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # (the client's last bytes after our close: discarded unread)
        incoming = self.incoming
        incoming.write(data)
        if not self.secure:
            self._handshake()
            return
        # The common case: one whole record in this read. (A KeyUpdate answer OpenSSL queues along with
        # data leaves with the next write, as RFC 8446 4.6.3 allows.)
        try:
            plain = self.ssl_object.read(RECORD_BYTES)
        except _WantRead:  # part of a record (the rest comes with the next read), or no data in it
            outgoing = self.outgoing
            if outgoing.pending:
                self.tcp_transport.write(outgoing.read())
            return
        except _ZeroReturn:
            plain = b""
        except (_SSLError, ValueError):  # a forged or broken record: nothing more from this client
            self.abort()
            return
        if incoming.pending:
            self._read_records([plain] if plain else [], not plain)
        elif plain:
            self.downstream.data_received(plain)  # type: ignore[union-attr]  # (set while secure and not closing)
        else:
            self._eof()

    def eof_received(self) -> bool | None:
        self.peer_eof = True
        if self.closing or not self.secure:
            return None  # the TCP transport closes (a close in progress: it has its deadline)
        if self._tell_eof():
            return True  # the Downstream answers what is in flight, then closes
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        dataplane = self.dataplane
        dataplane.tls_deadlines.pop(self, None)
        self.closing = True
        downstream = self.downstream
        if downstream is not None:
            self.downstream = None
            downstream.connection_lost(exc)
        elif not self.secure:
            dataplane.metrics.tls_negotiation_errors += 1

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.downstream is not None:
            self.downstream.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.downstream is not None:
            self.downstream.resume_writing()

    # -- TLS ---------------------------------------------------------------------------------------
    def _handshake(self) -> None:
        ssl_object = self.ssl_object
        outgoing = self.outgoing
        try:
            ssl_object.do_handshake()
        except _WantRead:
            if outgoing.pending:
                self.tcp_transport.write(outgoing.read())  # this step's flight
            return
        except (_SSLError, ValueError):
            self._fail()
            return
        self.secure = True
        dataplane = self.dataplane
        del dataplane.tls_deadlines[self]
        metrics = dataplane.metrics
        if ssl_object.session_reused:
            metrics.tls_resumed_handshakes += 1
        else:
            metrics.tls_full_handshakes += 1
        downstream = self.downstream = Downstream(dataplane, True, self.forwarded_tail)
        downstream.connection_made(self)
        if self.write_paused and not self.closing:  # (a long certificate chain filled the buffer)
            downstream.pause_writing()
        if self.incoming.pending and not self.closing:
            self.data_received(b"")  # the request that came with the client's Finished: the common path
        if outgoing.pending and not self.closing:
            self.tcp_transport.write(
                outgoing.read()
            )  # the last flight (the session tickets), unless a response took it

    def _fail(self) -> None:
        """A failed handshake: OpenSSL's alert goes out, then the TCP connection closes."""
        self.closing = True
        self.ssl_object = None
        outgoing = self.outgoing
        if outgoing.pending:
            self.tcp_transport.write(outgoing.read())
        self.tcp_transport.close()

    def _read_records(self, chunks: list[bytes], eof: bool) -> None:
        """Decrypt every complete record left in the incoming BIO and hand the plaintext (``chunks`` and
        what follows) to the Downstream in one call; ``eof``: the client's close_notify came."""
        read = self.ssl_object.read
        incoming = self.incoming
        try:
            while incoming.pending and not eof:
                data = read(RECORD_BYTES)
                if data:
                    chunks.append(data)
                else:
                    eof = True
        except _WantRead:
            pass
        except _ZeroReturn:
            eof = True
        except (_SSLError, ValueError):
            self.abort()
            return
        downstream = self.downstream
        if chunks and downstream is not None and not self.closing:
            downstream.data_received(b"".join(chunks))
        if eof:
            self._eof()

    def _eof(self) -> None:
        """The client's close_notify: the Downstream answers what is in flight, or the connection closes."""
        if self.closing:
            return
        if not self._tell_eof():
            self.close()
        elif not self.reading_paused:  # nothing may follow a close_notify: read again only to close
            self.reading_paused = True
            self.tcp_transport.pause_reading()

    def _tell_eof(self) -> bool:
        """The client's close_notify or FIN, told once to the Downstream: whether it keeps the connection."""
        if self.eof_told:
            return True
        self.eof_told = True
        downstream = self.downstream
        return downstream is not None and bool(downstream.eof_received())

    # -- asyncio.Transport (the Downstream's side) -------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing or not data:
            return
        try:
            self.ssl_object.write(data)
        except (_SSLError, ValueError):  # (an SSL object in an error state: this connection is done)
            self.abort()
            return
        self.tcp_transport.write(self.outgoing.read())

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        tcp_transport = self.tcp_transport
        try:  # noqa: SIM105  (contextlib.suppress would cost an object and two calls per connection)
            self.ssl_object.shutdown()  # queues close_notify (and, on a memory BIO, raises: the client's is not in)
        except (_SSLError, ValueError):
            pass
        self.ssl_object = None  # (the keyed context it references is not needed any more)
        outgoing = self.outgoing
        if outgoing.pending:
            tcp_transport.write(outgoing.read())
        if self.peer_eof:
            tcp_transport.close()
        else:
            tcp_transport.write_eof()
            if self.reading_paused:
                tcp_transport.resume_reading()  # (to see the client's FIN)
        dataplane = self.dataplane
        dataplane.tls_deadlines[self] = dataplane.now + dataplane.tls_shutdown_timeout
        downstream = self.downstream
        if downstream is not None:
            self.downstream = None
            downstream.connection_lost(None)

    def abort(self) -> None:
        self.closing = True
        self.ssl_object = None
        self.tcp_transport.abort()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.tcp_transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.eof_told:
            self.reading_paused = False
            self.tcp_transport.resume_reading()

    def is_reading(self) -> bool:
        return not self.reading_paused

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.tcp_transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.tcp_transport.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name not in _TLS_INFO:  # (peername, socket, ...: the TCP transport's)
            return self.tcp_transport.get_extra_info(name, default)
        ssl_object = self.ssl_object
        if ssl_object is None:  # (closed)
            return default
        if name == "ssl_object":
            return ssl_object
        if name == "sslcontext":
            return ssl_object.context
        if name == "cipher":
            return ssl_object.cipher()
        return ssl_object.getpeercert()

    def busy(self) -> bool:
        """In its handshake, or closed with response bytes still to send (``Dataplane.stop`` waits for both:
        a client mid-handshake when a rotation begins gets its response from the old generation)."""
        if not self.secure:
            return not self.closing
        return self.closing and self.tcp_transport.get_write_buffer_size() > 0

    def expire(self) -> None:
        """The handshake or the close took too long (``Dataplane``'s sweeper), or the data plane stops:
        the connection is aborted."""
        self.abort()

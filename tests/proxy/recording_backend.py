"""A raw-socket instance for the request-smuggling tests: it records the exact bytes it receives.

``RecordingBackend`` listens on 127.0.0.1 (port 0) and keeps, per accepted connection, every byte that
arrived (``received``). It frames requests with h11 (an HTTP/1.1 parser independent of the proxy's) the way
a real instance would, records each one (``requests``: method, target, headers, body, connection) and
answers it with a fixed-format response whose body names the request (``b"<METHOD> <target>"``), so a
client that got someone else's response can tell. Protocol errors h11 finds are kept in ``errors`` (the
connection then gets a 400 and closes).

``answer_101``: raw bytes written (instead of the normal answer) once a request's head has been read, for
the tests that check a ``101 Switching Protocols`` the proxy did not ask for is never tunnelled; the
connection then only records what else arrives.

``mark``/``since``: what arrived after a point in time, to check one exchange at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import h11

from lbproxy.proxy.spec import InstanceSpec


@dataclasses.dataclass
class Recorded:
    conn: int
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]  # as received (original casing, order)
    body: bytes

    def values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


@dataclasses.dataclass
class Mark:
    requests: int
    sizes: list[int]


class RecordingBackend:
    def __init__(self, answer_101: bytes | None = None) -> None:
        self.answer_101 = answer_101
        self.received: list[bytearray] = []
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> RecordingBackend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def spec(self, name: str = "rec") -> InstanceSpec:
        return InstanceSpec(name, "127.0.0.1", self.port)

    async def close(self) -> None:
        for w in self._writers:
            w.transport.abort()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    @property
    def all_bytes(self) -> bytes:
        return b"".join(bytes(r) for r in self.received)

    def mark(self) -> Mark:
        return Mark(len(self.requests), [len(r) for r in self.received])

    def since(self, mark: Mark) -> tuple[list[Recorded], list[bytes]]:
        """Requests recorded and bytes received (per connection that got any) after ``mark``."""
        chunks = []
        for i, raw in enumerate(self.received):
            start = mark.sizes[i] if i < len(mark.sizes) else 0
            if len(raw) > start:
                chunks.append(bytes(raw[start:]))
        return self.requests[mark.requests :], chunks

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        conn_id = len(self.received)
        raw = bytearray()
        self.received.append(raw)
        conn = h11.Connection(h11.SERVER)
        req: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    self.errors.append(f"connection {conn_id}: {exc}")
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    await writer.drain()
                    break
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    data = await reader.read(65536)
                    raw += data
                    if not data:
                        break
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    req = event
                    body = bytearray()
                    if self.answer_101 is not None:
                        self.requests.append(
                            Recorded(conn_id, event.method, event.target, list(event.headers.raw_items()), b"")
                        )
                        writer.write(self.answer_101)
                        await writer.drain()
                        while data := await reader.read(65536):  # a tunnel, if anyone opened one
                            raw += data
                        break
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert req is not None
                    self.requests.append(
                        Recorded(conn_id, req.method, req.target, list(req.headers.raw_items()), bytes(body))
                    )
                    answer = b"%s %s" % (req.method, req.target)
                    out = conn.send(h11.Response(status_code=200, headers=[(b"Content-Length", b"%d" % len(answer))]))
                    if req.method != b"HEAD":
                        out = (out or b"") + (conn.send(h11.Data(data=answer)) or b"")
                    out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
                    writer.write(out)
                    await writer.drain()
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                    else:
                        break
                elif isinstance(event, h11.ConnectionClosed):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

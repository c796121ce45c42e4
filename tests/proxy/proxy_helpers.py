"""Client helpers for the data-plane tests (bounded in time; 127.0.0.1 only).

- ``raw``: send bytes, read what comes back until the peer closes or a timeout.
- ``request``: one request on a fresh connection, parsed.
- ``read_response``: read one HTTP/1.1 response (Content-Length, chunked or close) from a stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
from typing import Any


async def raw(
    port: int, data: bytes, *, timeout: float = 3.0, ssl_ctx: ssl.SSLContext | None = None, wait_close: bool = True
) -> bytes:
    """Send ``data``; return everything received until the server closes (or ``timeout``)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
    )
    writer.write(data)
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
                if not wait_close and b"\r\n\r\n" in out:
                    break
    except TimeoutError:
        pass
    finally:
        writer.transport.abort()
    return out


@dataclasses.dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


async def read_response(reader: asyncio.StreamReader, *, head: bool = False, timeout: float = 5.0) -> Response:
    async with asyncio.timeout(timeout):
        line = await reader.readline()
        if not line:
            raise EOFError("connection closed before a response")
        status = int(line.split()[1])
        headers: list[tuple[str, str]] = []
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        resp = Response(status, headers, b"")
        if head or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            resp.body = body
        elif cl is not None:
            resp.body = await reader.readexactly(int(cl))
        else:
            resp.body = await reader.read()
        return resp


async def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    ssl_ctx: ssl.SSLContext | None = None,
) -> Response:
    """One request on a fresh connection."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
    )
    try:
        hdrs = {"Host": "localhost", **(headers or {})}
        if body:
            hdrs.setdefault("Content-Length", str(len(body)))
        writer.write(
            f"{method} {path} HTTP/1.1\r\n".encode()
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in hdrs.items())
            + b"\r\n"
            + body
        )
        return await read_response(reader, head=method == "HEAD")
    finally:
        writer.transport.abort()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

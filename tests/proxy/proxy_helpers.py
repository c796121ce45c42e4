"""Client helpers for the data-plane tests (bounded in time; 127.0.0.1 only).

- ``raw``: send bytes, read what comes back until the peer closes or a timeout.
- ``request``: one request on a fresh connection, parsed.
- ``read_response``: read one HTTP/1.1 response (Content-Length, chunked or close) from a stream.
- ``running`` / ``multiprocess_settings``: a real ``LoadBalancer`` (supervisor and worker processes).
- ``server_pid_for``: which worker process holds the server side of a client's connection (via /proc).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings
from lbproxy.proxy.supervisor import LoadBalancer


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


# -- multi-process -----------------------------------------------------------------------------------


def multiprocess_settings(**kw: Any) -> ProxySettings:
    """Settings for a ``LoadBalancer`` on port 0 with short intervals (tests)."""
    base = dict(
        http_listen="127.0.0.1:0",
        https_listen="127.0.0.1:0",
        metrics_interval=0.2,
        health_check_interval=0.5,
        health_check_timeout=0.5,
        drain_timeout=2.0,
        rotation_grace=5.0,
    )
    base.update(kw)
    return ProxySettings(**base)


@contextlib.asynccontextmanager
async def running(spec: LoadBalancerSpec, settings: ProxySettings, key_source: Any) -> AsyncIterator[LoadBalancer]:
    """A ``LoadBalancer`` (supervisor + worker processes) for the duration of the block."""
    lb = LoadBalancer(spec, settings, key_source)
    await lb.start()
    try:
        yield lb
    finally:
        await lb.stop()


def server_pid_for(client_port: int, pids: list[int]) -> int | None:
    """Which worker holds the server side of the connection from ``client_port`` (via /proc)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        remote = parts[2]
        if int(remote.split(":")[1], 16) == client_port and parts[3] == "01":
            inode = parts[9]
            break
    if inode is None:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().name == f"socket:[{inode}]" or str(fd.readlink()) == f"socket:[{inode}]":
                        return pid
    return None

"""Shared fixtures for the data-plane tests: real sockets on 127.0.0.1, port 0, trustme CAs, no mocks.

- ``backend_factory``: small aiohttp instances (echo, streaming, slow, dying, WebSocket echo) that record
  the client ports they saw (to prove upstream keep-alive).
- ``dataplane_factory``: an in-process ``Dataplane`` on port 0 in the test's loop (fast; used for HTTP
  behaviour and TLS policies), with every instance marked healthy unless told otherwise.
- ``listener``: each test that takes it runs twice, against the HTTP listener and against the HTTPS one
  (the same behaviour through ``TlsConnection``).
- ``tls_files``: a trustme CA and a certificate for ``localhost`` written to a temp dir (for the TEST ONLY
  file key source of the multi-process tests).
Client helpers (``raw``, ``request``, ``read_response``) live in ``proxy_helpers.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import WSMsgType, web

from lbproxy.contract.tlspolicies import get_policy
from lbproxy.proxy.dataplane import Dataplane
from lbproxy.proxy.listeners import bind_listener
from lbproxy.proxy.spec import InstanceSpec, LoadBalancerSpec, ProxySettings
from lbproxy.proxy.tls import TlsTerminator, keyed_context

SECRET = b"s" * 32


@dataclasses.dataclass
class Backend:
    name: str
    port: int
    runner: web.AppRunner
    peers: list[int]
    requests: list[dict[str, Any]]

    @property
    def spec(self) -> InstanceSpec:
        return InstanceSpec(self.name, "127.0.0.1", self.port)


def _backend_app(name: str, peers: list[int], requests: list[dict[str, Any]]) -> web.Application:
    async def record(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            peer = transport.get_extra_info("peername")
            if peer and peer[1] not in peers:
                peers.append(peer[1])

    async def echo(request: web.Request) -> web.StreamResponse:
        await record(request)
        body = await request.read()
        info = {
            "instance": name,
            "method": request.method,
            "path": request.path_qs,
            "headers": {k: v for k, v in request.headers.items()},
            "header_list": [[k.decode(), v.decode()] for k, v in request.raw_headers],
            "body_len": len(body),
            "body_head": body[:64].decode("latin-1"),
        }
        requests.append(info)
        return web.json_response(info)

    async def chunked(request: web.Request) -> web.StreamResponse:
        await record(request)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(int(request.query.get("n", "3"))):
            await resp.write(f"part{i};".encode())
        await resp.write_eof()
        return resp

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        size = int(request.query["size"])
        resp = web.StreamResponse()
        resp.content_length = size
        await resp.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < size:
            n = min(len(block), size - sent)
            await resp.write(block[:n])
            sent += n
        return resp

    async def sink(request: web.Request) -> web.StreamResponse:
        await record(request)
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"instance": name, "received": total})

    async def slow(request: web.Request) -> web.StreamResponse:
        await record(request)
        await asyncio.sleep(float(request.query.get("delay", "1")))
        return web.Response(text="slow")

    async def die(request: web.Request) -> web.StreamResponse:
        await record(request)
        if request.query.get("after_head"):
            resp = web.StreamResponse()
            resp.content_length = 1000
            await resp.prepare(request)
            await resp.write(b"partial")
            await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(0.1)
        return web.Response(text="never")

    async def status(request: web.Request) -> web.StreamResponse:
        await record(request)
        return web.Response(status=int(request.match_info["code"]), text=name)

    async def ws(request: web.Request) -> web.StreamResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.TEXT:
                await sock.send_str(f"{name}:{msg.data}")
        return sock

    app = web.Application(client_max_size=1 << 30)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/big", big)
    app.router.add_post("/sink", sink)
    app.router.add_get("/slow", slow)
    app.router.add_get("/die", die)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def backend_factory() -> AsyncIterator[Callable[[str], Awaitable[Backend]]]:
    runners: list[web.AppRunner] = []

    async def make(name: str) -> Backend:
        peers: list[int] = []
        requests: list[dict[str, Any]] = []
        runner = web.AppRunner(_backend_app(name, peers, requests), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return Backend(name, port, runner, peers, requests)

    yield make
    for runner in runners:
        await runner.cleanup()


@dataclasses.dataclass
class Running:
    dp: Dataplane
    http_port: int
    https_port: int


@pytest.fixture
async def dataplane_factory() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    planes: list[Dataplane] = []

    async def make(
        instances: list[InstanceSpec],
        *,
        healthy: list[str] | None = None,
        keyed: ssl.SSLContext | None = None,
        policy: str = "TLS-2016-08",
        **kwargs: Any,
    ) -> Running:
        spec_fields = {f.name for f in dataclasses.fields(LoadBalancerSpec)}
        spec_kwargs = {k: v for k, v in kwargs.items() if k in spec_fields}
        settings_kwargs = {k: v for k, v in kwargs.items() if k not in spec_fields}
        spec = LoadBalancerSpec(name="test-lb", instances=tuple(instances), tls_policy_name=policy, **spec_kwargs)
        settings = ProxySettings(http_listen="127.0.0.1:0", https_listen="127.0.0.1:0", **settings_kwargs)
        terminator = TlsTerminator(get_policy(policy), keyed, tls13=settings.offer_tls13)
        dp = Dataplane(spec, settings, terminator=terminator, stickiness_secret=SECRET)
        dp.set_healthy([i.name for i in instances] if healthy is None else healthy)
        http = bind_listener("127.0.0.1", 0)
        https = bind_listener("127.0.0.1", 0)
        await dp.start([http], [https])
        planes.append(dp)
        return Running(dp, http.getsockname()[1], https.getsockname()[1])

    yield make
    for dp in planes:
        await dp.stop()


@dataclasses.dataclass
class Listener:
    """The listener a test talks to: plain HTTP, or HTTPS with ``keyed`` as the load balancer's key."""

    scheme: str
    keyed: ssl.SSLContext | None
    ssl_ctx: ssl.SSLContext | None

    def port(self, lb: Running) -> int:
        return lb.https_port if self.ssl_ctx is not None else lb.http_port

    async def open(self, lb: Running, **kw: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host = "localhost" if self.ssl_ctx is not None else None
        return await asyncio.open_connection("127.0.0.1", self.port(lb), ssl=self.ssl_ctx, server_hostname=host, **kw)


@pytest.fixture(params=["http", "https"])
def listener(request: pytest.FixtureRequest, tls_files: TlsFiles) -> Listener:
    if request.param == "http":
        return Listener("http", None, None)
    return Listener("https", tls_files.keyed(), tls_files.client_context())


@dataclasses.dataclass
class TlsFiles:
    ca: trustme.CA
    cert: trustme.LeafCert
    cert_path: Path
    key_path: Path

    def client_context(self, **kw: Any) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx

    def keyed(self, policy: str = "TLS-2016-08", tls13: bool = False) -> ssl.SSLContext:
        chain = b"".join(b.bytes() for b in self.cert.cert_chain_pems)
        return keyed_context(get_policy(policy), chain, bytearray(self.cert.private_key_pem.bytes()), tls13=tls13)

    def key_source(self) -> Any:
        from lbproxy.proxy.keys import KeySourceRef

        return KeySourceRef(
            "lbproxy.proxy.keys:TestFileKeySource",
            {"cert_path": str(self.cert_path), "key_path": str(self.key_path)},
        )


def _write_tls(directory: Path, name: str = "localhost", key_type: Any = None) -> TlsFiles:
    ca = trustme.CA() if key_type is None else trustme.CA(key_type=key_type)
    cert = ca.issue_cert(name) if key_type is None else ca.issue_cert(name, key_type=key_type)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "chain.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())
    os.chmod(key_path, 0o600)
    return TlsFiles(ca, cert, cert_path, key_path)


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return _write_tls(tmp_path / "tls")


@pytest.fixture
def tls_factory(tmp_path: Path) -> Callable[..., TlsFiles]:
    counter = iter(range(1000))

    def make(name: str = "localhost", key_type: Any = None) -> TlsFiles:
        return _write_tls(tmp_path / f"tls{next(counter)}", name, key_type)

    return make

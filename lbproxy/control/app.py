"""The control plane over HTTP: an aiohttp app factory and ``ControlServer`` (start / stop / port).

Routes:
- ``POST /``            AWS JSON 1.1: ``X-Amz-Target: <Service>.<Operation>``, SigV4-signed.
- ``GET /healthz``      200 once the control plane is ready (unauthenticated).
- ``GET /events``       the event stream (server-sent events), SigV4-signed (service ``lbproxy``).

Cheap abuse is refused early (settings in ``ControlSettings``):
- ``header_timeout``: aiohttp's keep-alive timer runs from the moment a connection opens (and again after each
  response) and closes a connection whose request head is not complete when it fires; it is set to
  ``header_timeout``, so a client that trickles its head (or idles) is cut. aiohttp has no separate head timeout.
- A body is read only after its head passed everything SigV4 can check without it (``sigv4.check_head``: a
  known access key, the credential scope, the clock, ``host``/``x-amz-date``/``x-amz-target`` signed) and after
  ``Content-Length`` was checked against ``max_request_body``: an unauthenticated caller never makes the
  server buffer a body. aiohttp then drains (and drops) the unread body for at most its lingering time (10 s),
  through a per-connection read buffer of ``READ_BUFSIZE`` (16 KiB here; aiohttp's default is 256 KiB).
- ``body_timeout``: aiohttp has no body read timeout, so ``read_body`` bounds the read itself; past it the answer
  is 408 ``RequestTimeoutException`` and the connection is closed at once (``_cut_after_response``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

from aiohttp import web

from lbproxy.awsapi import sigv4
from lbproxy.awsapi.dispatch import invoke
from lbproxy.awsapi.errors import (
    AwsError,
    InternalFailure,
    RequestEntityTooLargeException,
    RequestTimeoutException,
    SerializationException,
    UnknownOperationException,
)
from lbproxy.awsapi.protocol import JSON_CONTENT_TYPE, RequestContext, encode, error_body
from lbproxy.contract.vocabulary import SIGNING_NAME
from lbproxy.control.plane import ControlPlane
from lbproxy.core.principals import Principal

log = logging.getLogger("lbproxy.control")

PLANE = web.AppKey("plane", ControlPlane)
#: Extra route installers (ACM, Lightsail, dashboard) add their own routes to the app.
RouteInstaller = Callable[[web.Application, ControlPlane], None]


def aws_error_response(exc: AwsError, request_id: str) -> web.Response:
    return web.Response(
        status=exc.status,
        body=error_body(exc),
        content_type=JSON_CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": exc.code},
    )


#: aiohttp's per-connection read buffer (its default is 256 KiB): an unread body is buffered up to about twice
#: this before reading pauses, so it bounds what a refused (unauthenticated) body can hold while it is drained.
READ_BUFSIZE = 16 * 1024
#: Set on a request whose body timed out: the connection is closed once the answer is sent.
_CUT = web.RequestKey("cut", bool)


def check_length(request: web.Request, limit: int) -> None:
    """Refuse by ``Content-Length`` alone, before anything is read."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLargeException(
            f"Request body of {request.content_length} bytes exceeds the limit of {limit} bytes"
        )


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``timeout`` seconds (default ``body_timeout``)."""
    check_length(request, limit)
    if timeout is None:
        timeout = request.app[PLANE].settings.body_timeout
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(65536):
                body += chunk
                if len(body) > limit:
                    raise RequestEntityTooLargeException(f"Request body exceeds the limit of {limit} bytes")
    except TimeoutError:
        request[_CUT] = True
        raise RequestTimeoutException(
            f"Your socket connection to the server was not read from or written to within the timeout period "
            f"({timeout:g} s for the request body)."
        ) from None
    return bytes(body)


@web.middleware
async def _cut_after_response(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Send the answer to a request whose body timed out, then close the connection at once (aiohttp would
    otherwise linger, reading the rest of a trickled body)."""
    resp = await handler(request)
    if request.get(_CUT) and not resp.prepared:
        resp.force_close()
        await resp.prepare(request)
        await resp.write_eof()
        request.protocol.force_close()
    return resp


def signed_request(request: web.Request, body: bytes) -> sigv4.SignedRequest:
    host = request.headers.get("Host", request.host)
    return sigv4.SignedRequest(
        method=request.method,
        url=f"{request.scheme}://{host}{request.raw_path}",
        headers=list(request.headers.items()),
        body=body,
    )


async def authenticated_body(
    request: web.Request, service: str = SIGNING_NAME, required: tuple[str, ...] = sigv4.SIGNED_ALWAYS
) -> tuple[Principal, bytes]:
    """Authenticate a request and return its body (raises ``AwsError``). Everything that needs no body is
    checked first (``Content-Length``, the ``Authorization`` head); only then is the body read."""
    plane = request.app[PLANE]
    check_length(request, plane.settings.max_request_body)
    plane.check_head(list(request.headers.items()), service, required)
    body = await read_body(request, plane.settings.max_request_body)
    return plane.authenticate(signed_request(request, body), service, required), body


async def authenticate(request: web.Request, service: str = SIGNING_NAME) -> Principal:
    """Authenticate one of lbproxy's own endpoints (raises ``AwsError``)."""
    principal, _ = await authenticated_body(request, service)
    return principal


def parse_json_body(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise SerializationException("Unexpected character or malformed JSON in request body") from None


async def handle_aws(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    request_id = str(uuid.uuid4())
    target = request.headers.get("X-Amz-Target", "")
    prefix, _, operation = target.partition(".")
    service = plane.services.get(prefix)
    try:
        check_length(request, plane.settings.max_request_body)
        if service is None or not operation:
            # No signing name to check against: a 400 before anything is read.
            raise UnknownOperationException("")
        principal, body = await authenticated_body(request, service.model_name, sigv4.SIGNED_AWS_JSON)
        ctx = RequestContext(
            principal=principal,
            request_id=request_id,
            region=plane.settings.region,
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
        )
        result = await invoke(plane.audit, service, operation, ctx, lambda: parse_json_body(body))
        payload = encode(result or {})
        _wipe_plaintexts(result)
        return web.Response(
            body=payload,
            content_type=JSON_CONTENT_TYPE,
            headers={"x-amzn-RequestId": request_id},
        )
    except AwsError as exc:
        return aws_error_response(exc, request_id)
    except Exception:
        log.exception("internal error in %s", target)
        exc2 = InternalFailure("The request processing has failed because of an unknown error.")
        return aws_error_response(exc2, request_id)


def _wipe_plaintexts(value: Any) -> None:
    """Zero every ``bytearray`` (plaintexts) in a result once it has been serialized."""
    if isinstance(value, bytearray):
        value[:] = bytes(len(value))
    elif isinstance(value, dict):
        for v in value.values():
            _wipe_plaintexts(v)
    elif isinstance(value, list):
        for v in value:
            _wipe_plaintexts(v)


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@contextlib.contextmanager
def stream_until_disconnect() -> Iterator[None]:
    """Around a server-sent event stream's loop: the client going away ends the stream quietly, but a
    cancellation of the handler's own task (the server shutting down) is not swallowed. As aiohttp's request
    handling does, a ``CancelledError`` is re-raised when ``asyncio.current_task().cancelling()`` says this task
    is being cancelled, and taken as the end of the stream only when it came from something the task awaited."""
    try:
        yield
    except ConnectionResetError:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def handle_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events from ``Last-Event-ID`` / ``?after=`` on, filtered to the caller."""
    plane = request.app[PLANE]
    try:
        principal = await authenticate(request)
    except AwsError as exc:
        return aws_error_response(exc, str(uuid.uuid4()))
    raw_after = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        after = int(raw_after)
    except ValueError:
        return web.json_response({"message": f"invalid event id: {raw_after!r}"}, status=400)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    await resp.write(f": lbproxy events for {principal.arn}; last id {plane.events.last_id()}\n\n".encode())
    with stream_until_disconnect():
        while True:
            events = plane.events.since(after, principal)
            scanned = plane.events.scanned_until(after)
            for ev in events:
                data = json.dumps(ev.to_json(), separators=(",", ":"))
                await resp.write(f"id: {ev.id}\nevent: {ev.type}\ndata: {data}\n\n".encode())
            if scanned != after:
                after = scanned
                continue
            await plane.events.wait(plane.settings.event_heartbeat)
            if plane.events.last_id() <= after:
                await resp.write(b": keep-alive\n\n")
    return resp


def make_app(plane: ControlPlane, installers: list[RouteInstaller] | None = None) -> web.Application:
    app = web.Application(client_max_size=plane.settings.max_request_body + 1024, middlewares=[_cut_after_response])
    app[PLANE] = plane
    app.router.add_post("/", handle_aws)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/events", handle_events)
    for install in installers or []:
        install(app, plane)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        plane.events.bind_loop(asyncio.get_running_loop())
        await plane.start()
        yield
        await plane.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


def bound_port(site: web.TCPSite) -> int:
    """The port a started site listens on (port 0 picks a free one)."""
    server = cast(asyncio.Server, site._server)
    return int(server.sockets[0].getsockname()[1])


class ControlServer:
    """The control plane listening on a socket. ``start()`` binds (port 0 picks one), ``stop()`` ends."""

    def __init__(self, plane: ControlPlane, installers: list[RouteInstaller] | None = None) -> None:
        self.plane = plane
        self._installers = installers
        self._runner: web.AppRunner | None = None
        self.port: int = 0
        self.host: str = plane.settings.host

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def browser_url(self) -> str:
        """``url`` as a browser can open it: a wildcard listen address (``0.0.0.0``, ``::``, as in a container
        that publishes the port) becomes ``localhost``."""
        if self.host in ("", "0.0.0.0", "::"):
            return f"http://localhost:{self.port}"
        return self.url

    async def start(self) -> None:
        app = make_app(self.plane, self._installers)
        # aiohttp's keep-alive timer starts when a connection opens and again after each response, and closes a
        # connection whose next request head has not fully arrived: with header_timeout it is the head timeout.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            keepalive_timeout=self.plane.settings.header_timeout,
            read_bufsize=READ_BUFSIZE,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.plane.settings.port, reuse_address=True)
        await site.start()
        self.port = bound_port(site)
        log.info("control plane listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

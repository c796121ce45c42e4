"""The tiny demo backend (``lbproxy backend``): one "instance" behind the load balancer.

Answers every request with its instance name, the request's method and path, and the X-Forwarded-*
headers it received (JSON, or a line of text for ``curl``), so round robin and header rewriting are
visible. ``GET /health`` is the health-check route; ``POST /health/fail`` and ``/health/ok`` flip it
(for drills: watch the load balancer take the instance out and put it back).

The drill switch answers only callers that reach the backend directly: the load balancer stamps
``X-Forwarded-For`` on every request it forwards, so a ``POST /health/fail`` or ``/health/ok`` carrying
``X-Forwarded-For`` (or ``Forwarded``) is refused with 403 and changes nothing. Anyone on the internet side of the
load balancer therefore cannot take instances out; run the drill against the backend's own address
(``curl -X POST http://127.0.0.1:9001/health/fail``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket

from aiohttp import web

from lbproxy.control.app import bound_port

NAME = web.AppKey("name", str)
HEALTHY = web.AppKey("healthy", list)
FORWARDED = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port")


async def handle_any(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    info = {
        "instance": request.app[NAME],
        "hostname": socket.gethostname(),
        "method": request.method,
        "path": request.path_qs,
        "host": request.headers.get("Host", ""),
        "received_bytes": len(body),
        "headers": {h: request.headers[h] for h in FORWARDED if h in request.headers},
    }
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(info)
    forwarded = {h: request.headers[h] for h in FORWARDED if h in request.headers}
    fwd = " ".join(f"{k}={v}" for k, v in forwarded.items())
    text = f"{info['instance']}: {request.method} {request.path_qs} {fwd}\n"
    return web.Response(text=text, headers={"X-Instance": request.app[NAME]})


async def handle_health(request: web.Request) -> web.Response:
    if request.app[HEALTHY][0]:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="unhealthy\n")


#: Headers a proxy adds: a drill request carrying one came through the load balancer, not from the operator.
PROXIED = ("X-Forwarded-For", "Forwarded")


async def handle_health_set(request: web.Request) -> web.Response:
    if any(h in request.headers for h in PROXIED):
        return web.json_response(
            {"instance": request.app[NAME], "message": "the health switch is not reachable through a proxy"},
            status=403,
        )
    request.app[HEALTHY][0] = request.match_info["state"] == "ok"
    return web.json_response({"instance": request.app[NAME], "healthy": request.app[HEALTHY][0]})


def make_app(name: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[NAME] = name
    app[HEALTHY] = [True]
    app.router.add_get("/health", handle_health)
    app.router.add_post("/health/{state:(ok|fail)}", handle_health_set)
    app.router.add_route("*", "/{tail:.*}", handle_any)
    return app


async def run_backend(name: str, host: str, port: int) -> int:
    runner = web.AppRunner(make_app(name), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"lbproxy backend: cannot listen on {host}:{port}: {exc.strerror}", flush=True)
        return 2
    bound = bound_port(site)
    print(json.dumps({"backend": name, "listening": f"{host}:{bound}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0

"""The supervisor: ``LoadBalancer``, the process that owns the listeners and never touches key material.

It binds the HTTP and HTTPS listening sockets (and the admin listener), runs health checks, aggregates
metrics, and runs *generations* of worker processes (``worker.py``) that serve on the shared sockets.
Key material exists only inside a generation; the supervisor only passes a ``KeySourceRef`` (an
importable factory name and non-secret parameters).

Lifecycle, in order:
- ``start()``: bind, one health-check round (so the first generation knows who is healthy), start the
  checker, start generation 1 (with the key source, if any), open the admin listener.
- ``update(spec)``: instances and attributes go to the workers live (no connection dropped); a changed
  ``TlsPolicyName`` or ``https_enabled`` rotates to a new generation (the policy lives in the contexts).
- ``rotate(key_source)``: start the successor generation with the new key; once it is ready, the old one
  stops accepting, keeps serving its open connections for up to ``rotation_grace`` and exits.
- ``revoke()``: tell the current generation to refuse handshakes *now*, start a key-less successor (plain
  HTTP and redirects keep working; HTTPS handshakes fail), then stop the old generation: drain in-flight
  requests within ``drain_timeout``, abort its TLS transports, exit. Returns when it has exited.
- ``stop()``: the same as revoke without a successor, then the sockets close.

In-process control: the control-plane client lives in the supervisor's event loop and calls
``await lb.update(spec)``, ``await lb.rotate(ref)``, ``await lb.revoke()``, ``lb.metrics_snapshot()``,
``lb.health_snapshot()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any, cast

from aiohttp import web

from lbproxy.config import parse_hostport
from lbproxy.proxy.dataplane import STOP_REVOKE, STOP_ROTATE, STOP_SHUTDOWN, bind_listener
from lbproxy.proxy.health import HealthChecker
from lbproxy.proxy.keys import KeySourceRef
from lbproxy.proxy.metrics import MetricsAggregator, render_prometheus
from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings, settings_to_mapping, spec_to_mapping

log = logging.getLogger("lbproxy.proxy")


def _forget(generations: set[Generation], gen: Generation, _task: object) -> None:
    generations.discard(gen)


#: ``update(spec)`` without ``key_source``: keep the current key source.
_KEEP = object()


class GenerationError(RuntimeError):
    pass


@dataclasses.dataclass(slots=True)
class WorkerHandle:
    key: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int = 0
    tls: bool = False
    ready: asyncio.Future[None] | None = None
    stopped: bool = False
    task: asyncio.Task[None] | None = None

    def send(self, msg: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(msg).encode() + b"\n")


@dataclasses.dataclass(slots=True, eq=False)
class Generation:
    number: int
    process: subprocess.Popen[bytes]
    workers: list[WorkerHandle]
    has_key: bool
    errors: list[str] = dataclasses.field(default_factory=list)

    def send(self, msg: dict[str, Any]) -> None:
        for w in self.workers:
            w.send(msg)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid]


class LoadBalancer:
    """One load balancer's data plane: supervisor + generations of workers."""

    def __init__(
        self,
        spec: LoadBalancerSpec,
        settings: ProxySettings,
        key_source: KeySourceRef | None = None,
        *,
        python: str = sys.executable,
        generation_timeout: float = 30.0,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self._key_source = key_source
        self._python = python
        self._generation_timeout = generation_timeout
        self._secret = os.urandom(32)  # stickiness HMAC key: shared by every worker, forgotten at exit
        self._http: socket.socket | None = None
        self._https: socket.socket | None = None
        self._admin: web.AppRunner | None = None
        self._gen: Generation | None = None
        self._generations = 0
        self._retiring: set[asyncio.Task[None]] = set()
        #: Rotated-out generations still serving their last connections (with the previous key).
        self._rotated_out: set[Generation] = set()
        self._healthy: frozenset[str] = frozenset()
        self._health: HealthChecker | None = None
        self._metrics = MetricsAggregator()
        self._lock = asyncio.Lock()
        self.http_port = 0
        self.https_port = 0
        self.admin_port = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        host, port = parse_hostport(s.http_listen, field="http_listen")
        self._http = bind_listener(host, port)
        self.http_port = self._http.getsockname()[1]
        host, port = parse_hostport(s.https_listen, field="https_listen")
        self._https = bind_listener(host, port)
        self.https_port = self._https.getsockname()[1]
        self._health = HealthChecker(self.spec, s, self._on_health)
        await self._health.check_all()
        self._health.start()
        self._gen = await self._spawn(self._key_source)
        if s.admin_listen:
            await self._start_admin(*parse_hostport(s.admin_listen, field="admin_listen"))

    async def stop(self) -> None:
        async with self._lock:
            if self._health is not None:
                await self._health.stop()
            gen, self._gen = self._gen, None
            for rotated in list(self._rotated_out):
                rotated.send({"op": "stop", "mode": STOP_SHUTDOWN})
            if gen is not None:
                gen.send({"op": "revoke"})
                await self._retire(gen, STOP_SHUTDOWN)
            for task in list(self._retiring):
                with contextlib.suppress(Exception):
                    await task
            for sock in (self._http, self._https):
                if sock is not None:
                    sock.close()
            if self._admin is not None:
                await self._admin.cleanup()
                self._admin = None

    async def update(self, spec: LoadBalancerSpec, key_source: KeySourceRef | object | None = _KEEP) -> None:
        """Apply a new spec. With ``key_source`` given, the new spec and key start one new generation
        together (a certificate attached, swapped or renewed); ``None`` means no key from now on."""
        async with self._lock:
            old, self.spec = self.spec, spec
            if self._health is not None:
                self._health.update(spec)
            policy_changed = (old.tls_policy_name, old.https_enabled) != (spec.tls_policy_name, spec.https_enabled)
            if key_source is not _KEEP and (key_source is not None or self.has_key or policy_changed):
                await self._rotate_locked(key_source)  # type: ignore[arg-type]
            elif policy_changed:
                await self._rotate_locked(self._key_source)
            elif self._gen is not None:
                self._gen.send({"op": "update", "spec": spec_to_mapping(spec)})

    async def rotate(self, key_source: KeySourceRef | None) -> None:
        """New key (or the renewed certificate) for new handshakes; open connections stay on the old one."""
        async with self._lock:
            await self._rotate_locked(key_source)

    async def revoke(self) -> None:
        """The grant is gone: refuse handshakes now, serve plain HTTP from a key-less generation."""
        async with self._lock:
            self._key_source = None
            old = self._gen
            if old is not None:
                old.send({"op": "revoke"})
            for rotated in list(self._rotated_out):  # they hold the previous key: it goes too
                rotated.send({"op": "stop", "mode": STOP_REVOKE})
            try:
                self._gen = await self._spawn(None)
            finally:
                if old is not None:
                    await self._retire(old, STOP_REVOKE)

    async def _rotate_locked(self, key_source: KeySourceRef | None) -> None:
        self._key_source = key_source
        old = self._gen
        self._gen = await self._spawn(key_source)
        if old is not None:
            self._rotated_out.add(old)
            task = asyncio.get_running_loop().create_task(self._retire(old, STOP_ROTATE))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
            task.add_done_callback(functools.partial(_forget, self._rotated_out, old))

    # -- observation -------------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        return self._gen is not None and self._gen.has_key

    @property
    def generation(self) -> Generation | None:
        return self._gen

    def worker_pids(self) -> list[int]:
        return list(self._gen.pids) if self._gen else []

    def metrics_snapshot(self) -> dict[str, float]:
        total = len(self.spec.instances)
        healthy = len(self._healthy & {i.name for i in self.spec.instances})
        self._metrics.set_health(healthy, total - healthy)
        return self._metrics.snapshot()

    def health_snapshot(self) -> list[dict[str, Any]]:
        return self._health.snapshot() if self._health else []

    # -- generations -------------------------------------------------------------------------------
    def _on_health(self, healthy: frozenset[str]) -> None:
        self._healthy = healthy
        if self._gen is not None:
            self._gen.send({"op": "health", "healthy": sorted(healthy)})

    async def _spawn(self, key_source: KeySourceRef | None) -> Generation:
        assert self._http is not None and self._https is not None
        self._generations += 1
        number = self._generations
        n = self.settings.workers
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(n)]
        child_fds = [b.fileno() for _, b in pairs]
        cmd = [
            self._python, "-m", "lbproxy.proxy.worker",
            "--http", str(self._http.fileno()),
            "--https", str(self._https.fileno()),
            "--ctrl", ",".join(map(str, child_fds)),
            "--generation", str(number),
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, pass_fds=[self._http.fileno(), self._https.fileno(), *child_fds], stdin=subprocess.DEVNULL
        )
        for _, b in pairs:
            b.close()
        loop = asyncio.get_running_loop()
        workers: list[WorkerHandle] = []
        for i, (a, _) in enumerate(pairs):
            reader, writer = await asyncio.open_unix_connection(sock=a)
            w = WorkerHandle(f"g{number}w{i}", reader, writer, ready=loop.create_future())
            workers.append(w)
        gen = Generation(number, proc, workers, has_key=False)
        cfg = {
            "settings": settings_to_mapping(self.settings),
            "spec": spec_to_mapping(self.spec),
            "secret": self._secret.hex(),
            "healthy": sorted(self._healthy),
            "key_source": key_source.to_mapping() if key_source else None,
        }
        workers[0].send(cfg)
        for w in workers:
            w.task = loop.create_task(self._listen(gen, w))
        ready = [w.ready for w in workers if w.ready is not None]
        exited = loop.create_task(self._wait_exit(proc))
        try:
            all_ready: asyncio.Future[Any] = asyncio.gather(*ready)
            _done, _ = await asyncio.wait(
                [all_ready, exited], timeout=self._generation_timeout, return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            if not all(f.done() for f in ready):
                raise GenerationError(f"generation {number} did not start (exit code {proc.poll()})")
        except BaseException:
            proc.kill()
            await self._wait_exit(proc)
            raise
        finally:
            exited.cancel()
        gen.has_key = all(w.tls for w in workers)
        for err in gen.errors:
            log.error("generation %d: %s", number, err)
        # Health may have changed while the generation started.
        gen.send({"op": "health", "healthy": sorted(self._healthy)})
        return gen

    async def _listen(self, gen: Generation, w: WorkerHandle) -> None:
        try:
            while True:
                line = await w.reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                op = msg.get("op")
                if op == "metrics":
                    self._metrics.report(w.key, msg["counters"])
                elif op == "ready":
                    w.pid = int(msg["pid"])
                    w.tls = bool(msg["tls"])
                    if w.ready is not None and not w.ready.done():
                        w.ready.set_result(None)
                elif op == "error":
                    gen.errors.append(str(msg.get("message")))
                elif op == "stopped":
                    w.stopped = True
        except (OSError, ValueError):
            pass
        finally:
            self._metrics.retire(w.key)
            w.writer.close()

    @staticmethod
    async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while proc.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.01)
        return proc.returncode

    async def _retire(self, gen: Generation, mode: str) -> None:
        """Stop a generation and wait for its processes to exit (killed if they overstay)."""
        gen.send({"op": "stop", "mode": mode})
        s = self.settings
        grace = (s.rotation_grace if mode == STOP_ROTATE else s.drain_timeout) + 5.0
        if await self._wait_exit(gen.process, grace) is None:
            log.error("generation %d did not exit in time: killing it", gen.number)
            gen.process.kill()
            await self._wait_exit(gen.process)
        for w in gen.workers:
            if w.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(w.task, 1.0)

    # -- admin listener ----------------------------------------------------------------------------
    async def _start_admin(self, host: str, port: int) -> None:
        async def metrics(_: web.Request) -> web.Response:
            body = render_prometheus(self.metrics_snapshot(), self.spec.name)
            return web.Response(body=body, content_type="text/plain", charset="utf-8")

        async def health(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "loadBalancerName": self.spec.name,
                    "instanceHealthSummary": self.health_snapshot(),
                    "tls": self.has_key,
                }
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._admin = runner
        server = cast(asyncio.Server | None, site._server)
        if server is not None and server.sockets:
            self.admin_port = int(server.sockets[0].getsockname()[1])

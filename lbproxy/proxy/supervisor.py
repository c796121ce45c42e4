"""The supervisor: ``LoadBalancer``, the process that owns the listeners and never touches key material.

It binds the HTTP and HTTPS listening sockets (and the admin listener), runs health checks, aggregates
metrics, and runs *generations* of worker processes (``worker.py``) that serve on the shared sockets.
Key material exists only inside a generation; the supervisor only passes a ``KeySourceRef`` (an
importable factory name and non-secret parameters).

What is asked for, and what serves: the supervisor keeps one *current* generation that should match what
it was asked for (the key source, the TLS policy, ``workers`` live processes). Whenever it does not, the
supervisor starts a successor and, once the successor is ready, retires the current one:

- ``update(spec)``: instances and attributes go to the workers live (no connection dropped); a changed
  ``TlsPolicyName`` or ``https_enabled`` rotates to a new generation (the policy lives in the contexts).
- ``rotate(key_source)``: start the successor generation with the new key; once it is ready, the old one
  stops accepting, keeps serving its open connections for up to ``rotation_grace`` and exits. If the
  successor could not load its key because the control plane was unreachable, the current keyed
  generation keeps serving and the rotation is retried with backoff (only revocation takes a key away).
- A worker process that exits unasked (``kill -9``, a crash) is logged at WARNING with its pid and
  signal or status, counted (``restarts``), and its generation is replaced at once: the successor loads
  its key through the key source exactly as at start (never from the supervisor). Surviving workers of
  the damaged generation keep serving until the successor is ready, then drain like a rotation. A dead
  generation leader does not take its siblings with it: the supervisor adopts them
  (``PR_SET_CHILD_SUBREAPER``) and they drain too; a sibling whose adoptive parent is not its supervisor
  exits at once (no orphaned key holders). Repeated failures back off (``restarts.RestartBackoff``);
  ``status()`` says how many workers serve, whether the key is held by a live process, and why not.
- ``revoke()``: tell every generation to refuse handshakes *now* (before anything else), start a key-less
  successor (plain HTTP and redirects keep working; HTTPS handshakes fail), then stop the old generation:
  drain in-flight requests within ``drain_timeout``, abort its TLS transports, exit. Returns when it has
  exited. A generation still starting is killed.
- ``stop()``: the same as revoke without a successor, then the sockets close.

In-process control: the control-plane client lives in the supervisor's event loop and calls
``await lb.update(spec)``, ``await lb.rotate(ref)``, ``await lb.revoke()``, ``lb.metrics_snapshot()``,
``lb.health_snapshot()``, ``lb.status()``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from lbproxy.proxy import HOT_PATH
from lbproxy.proxy.dataplane import STOP_REVOKE, STOP_ROTATE, STOP_SHUTDOWN
from lbproxy.proxy.generation import Generation, GenerationError, WorkerHandle
from lbproxy.proxy.health import HealthChecker
from lbproxy.proxy.keys import KEY_UNAVAILABLE, KeySourceRef, become_subreaper
from lbproxy.proxy.listeners import HTTP, HTTPS, Listeners
from lbproxy.proxy.metrics import MetricsAggregator, render_prometheus, render_worker_status
from lbproxy.proxy.restarts import RestartBackoff, describe_exit, returncode_from_wait_status
from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings, settings_to_mapping, spec_to_mapping

log = logging.getLogger("lbproxy.proxy")

#: ``update(spec)`` without ``key_source``: keep the current key source.
_KEEP = object()
#: How long the supervisor waits to learn a dead worker's exit status before it logs without one.
_EXIT_STATUS_WAIT = 2.0


def _shape(spec: LoadBalancerSpec) -> tuple[str, bool, str]:
    """What a generation is built with and cannot change live: the TLS policy (in its SSL contexts), whether
    HTTPS is on, and the IP families it listens on (the sockets it inherited)."""
    return spec.tls_policy_name, spec.https_enabled, spec.ip_address_type


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
        #: The listening sockets (both schemes, both IP families as ``ipAddressType`` says); workers inherit them.
        self._listeners = Listeners(
            settings.http_listen,
            settings.https_listen,
            spec.ip_address_type,
            slots=settings.workers if settings.listen_reuseport else 1,
            defer_accept=settings.tcp_defer_accept,
        )
        self._admin: web.AppRunner | None = None
        self._gen: Generation | None = None
        self._generations = 0
        #: Every generation that still has a process (starting, current, retiring).
        self._live: set[Generation] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._healthy: frozenset[str] = frozenset()
        self._health: HealthChecker | None = None
        self._metrics = MetricsAggregator()
        self._lock = asyncio.Lock()
        # Keeping the current generation what is asked for.
        self._backoff = RestartBackoff(settings.restart_backoff, settings.restart_backoff_max,
                                       settings.restart_backoff_reset)  # fmt: skip
        self._converge_wanted = asyncio.Event()
        #: Set whenever what ``status()`` says may have changed (the agent reports soon after).
        self.status_changed = asyncio.Event()
        self._healer: asyncio.Task[None] | None = None
        self._next_attempt: float | None = None
        #: The control plane refused the key (not just unreachable): serve without it, do not retry.
        self._key_refused = False
        #: Bumped by every ``revoke()``: a generation started before it must not be installed.
        self._revocations = 0
        self._stopping = False
        #: Worker processes that exited unasked, since start.
        self.restarts = 0
        #: The last of them, in words ("worker g2w0 (pid 123) killed by SIGKILL").
        self.last_exit: str | None = None
        #: Why the asked-for key is not held by a live process (None when it is, or none is asked for).
        self.key_error: str | None = None
        self.http_port = 0
        self.https_port = 0
        self.admin_port = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        become_subreaper()  # orphaned siblings of a dead leader are adopted here, to drain and be reaped
        self._listeners.open()
        self.http_port = self._listeners.http_port
        self.https_port = self._listeners.https_port
        log.info("listening on %s", ", ".join(self._listeners.addresses()))
        log.log(logging.WARNING if HOT_PATH.ignored else logging.INFO, "hot path: %s", HOT_PATH.describe())
        self._health = HealthChecker(self.spec, s, self._on_health)
        await self._health.check_all()
        self._health.start()
        first = await self._spawn(self._key_source)
        self._judge_key(first)
        self._install(first)
        self._healer = asyncio.get_running_loop().create_task(self._heal(), name="lb-heal")
        self._converge_wanted.set()  # (the key may have been unavailable at start: the healer retries)
        if s.admin_listen:
            await self._start_admin(*parse_hostport(s.admin_listen, field="admin_listen"))

    async def stop(self) -> None:
        self._stopping = True
        if self._healer is not None:
            self._healer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._healer
        for starting in list(self._live):
            if starting.starting:
                starting.kill()
        async with self._lock:
            if self._health is not None:
                await self._health.stop()
            current, self._gen = self._gen, None
            for other in list(self._live):
                if other is not current and other.retiring:
                    other.send({"op": "stop", "mode": STOP_SHUTDOWN})
            if current is not None:
                current.send({"op": "revoke"})
                await self._retire(current, STOP_SHUTDOWN)
            for task in list(self._retiring):
                with contextlib.suppress(Exception):
                    await task
            for task in list(self._background):
                task.cancel()
            self._listeners.close()
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
            if self._listeners.apply(spec.ip_address_type):
                log.info("listening on %s", ", ".join(self._listeners.addresses()))
            policy_changed = _shape(old) != _shape(spec)
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
        # Before waiting for anything (a replacement may be starting): every process refuses handshakes now,
        # and a generation still starting (maybe loading the key) is killed.
        self._revocations += 1
        self._key_source = None
        self._key_refused = False
        self.key_error = None
        for gen in list(self._live):
            if gen.starting:
                gen.kill()
            else:
                gen.send({"op": "revoke"})
        async with self._lock:
            old, self._gen = self._gen, None
            for other in list(self._live):  # rotated-out generations hold the previous key: it goes too
                if other is not old and other.retiring:
                    other.send({"op": "stop", "mode": STOP_REVOKE})
            try:
                self._gen = await self._spawn(None)
                self._gen.starting = False
                self._gen.send({"op": "serve"})
            except GenerationError as exc:
                self._failed(str(exc))  # nothing serves plain HTTP: the healer keeps trying
            finally:
                if old is not None:
                    await self._retire(old, STOP_REVOKE)

    async def _rotate_locked(self, key_source: KeySourceRef | None) -> None:
        self._key_source = key_source
        self._key_refused = False
        await self._replace_locked()

    async def _replace_locked(self) -> None:
        """One attempt to make the current generation what is asked for (the caller holds the lock).

        The successor replaces the current generation once it is ready, unless it could not load the key it
        was asked to load because the control plane was unreachable while the current generation still
        holds a key: then the current one keeps serving and the healer tries again later."""
        key_source = self._key_source
        revocations = self._revocations
        old = self._gen
        try:
            new = await self._spawn(key_source)
        except GenerationError as exc:
            if revocations == self._revocations:
                self._failed(str(exc))
            return
        if revocations != self._revocations:  # revoked while it started: it must not serve
            await self._discard(new)
            return
        if not self._judge_key(new) and old is not None and old.holds_key:
            # The control plane could not be reached: the current key keeps serving (only revocation,
            # detach, deletion or an expired lease take a key away); the healer tries again later.
            await self._discard(new)
            return
        self._install(new)

    def _judge_key(self, gen: Generation) -> bool:
        """Whether ``gen`` has what it was asked to load; a key the control plane refused (rather than
        could not be asked for) is not retried: the generation serves without it (fail closed)."""
        if gen.key_source is None or gen.has_key:
            return True
        if gen.key_error_kind == KEY_UNAVAILABLE:
            self._failed(f"the key could not be loaded: {gen.key_error}")
        else:
            self._key_refused = True
            log.warning("serving without a key: %s", gen.key_error)
        return False

    def _install(self, new: Generation) -> None:
        """``new`` becomes the current generation; the previous one drains like a rotation."""
        old, self._gen = self._gen, new
        new.starting = False
        new.send({"op": "serve"})
        self.status_changed.set()
        self.key_error = None
        if new.key_source is not None and not new.has_key:
            self.key_error = new.key_error or "the key was not loaded"
        if self._converged() and self._backoff.reason is not None:
            log.info("generation %d serves as asked (after: %s)", new.number, self._backoff.reason)
            self._backoff.reason = None
        if old is not None:
            task = asyncio.get_running_loop().create_task(self._retire(old, STOP_ROTATE))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    # -- healing -----------------------------------------------------------------------------------
    def _converged(self) -> bool:
        """The current generation is what is asked for: intact, the asked-for policy and key."""
        gen = self._gen
        if gen is None or not gen.intact:
            return False
        if (gen.tls_policy_name, gen.https_enabled, gen.ip_address_type) != _shape(self.spec):
            return False
        if gen.key_source != self._key_source:
            return False
        return self._key_source is None or gen.has_key or self._key_refused

    def _failed(self, reason: str, *, logged: bool = False) -> None:
        """A failure to keep the asked-for generation serving: back off, and let the healer try again.
        Logged once per change of reason (``logged``: the caller logs it itself)."""
        before = self._backoff.reason
        self._backoff.failed(time.monotonic(), reason)
        self.status_changed.set()
        if reason != before and not logged:
            log.warning("%s", reason)
        self._converge_wanted.set()

    async def _heal(self) -> None:
        """Bring the current generation back to what is asked for, with backoff (a task for the lifetime)."""
        while not self._stopping:
            await self._converge_wanted.wait()
            self._converge_wanted.clear()
            while not self._stopping and not self._converged():
                wait = self._backoff.wait(time.monotonic())
                if wait > 0:
                    self._next_attempt = time.monotonic() + wait
                    log.info("next attempt in %.1fs (%s)", wait, self._backoff.reason)
                    await asyncio.sleep(wait)
                self._next_attempt = None
                async with self._lock:
                    if self._stopping or self._converged():
                        break
                    await self._replace_locked()

    def _worker_exited(self, gen: Generation, w: WorkerHandle) -> None:
        """A worker's control channel ended: account for the exit, and replace the generation if it was
        the current one and the exit was not asked for."""
        unasked = not w.stopped and not gen.killed
        self.status_changed.set()
        task = asyncio.get_running_loop().create_task(self._account_exit(gen, w, unasked))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if not unasked:
            return
        self.restarts += 1
        if gen.starting:
            return  # ``_spawn`` fails it
        what = f"worker {w.key} (pid {w.pid}) exited unasked"
        self.last_exit = what
        if gen is self._gen and not gen.retiring and not self._stopping and not gen.damaged:
            gen.damaged = True  # (one failure per generation: its other workers may die with it)
            self._failed(what, logged=True)  # (``_account_exit`` logs it, with the exit status)

    async def _account_exit(self, gen: Generation, w: WorkerHandle, unasked: bool) -> None:
        """Learn (and reap, where the supervisor adopted it) a worker's exit status; log an unasked exit."""
        deadline = time.monotonic() + _EXIT_STATUS_WAIT
        code: int | None = None
        while code is None:
            if w is gen.workers[0]:
                code = gen.process.poll()
            else:
                code = gen.sibling_exits.get(w.pid)
                if code is None:
                    with contextlib.suppress(ChildProcessError):  # adopted after its leader died
                        pid, status = os.waitpid(w.pid, os.WNOHANG)
                        if pid:
                            code = returncode_from_wait_status(status)
            if code is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        if unasked:
            what = f"worker {w.key} (pid {w.pid}) of generation {gen.number} {describe_exit(code)}"
            self.last_exit = what
            if gen is self._gen or gen.starting:
                log.warning("%s: replacing the generation", what)
            else:
                log.warning("%s (the generation was already being replaced)", what)

    # -- observation -------------------------------------------------------------------------------
    @property
    def has_key(self) -> bool:
        """A live process of the current generation holds the key (new handshakes can complete)."""
        return self._gen is not None and self._gen.holds_key

    @property
    def generation(self) -> Generation | None:
        return self._gen

    def worker_pids(self) -> list[int]:
        return list(self._gen.pids) if self._gen else []

    def status(self) -> dict[str, Any]:
        """The processes behind the data plane, for reports, ``/health`` and ``/metrics`` (no key material).

        ``degraded`` is None while the current generation is what was asked for (every worker serving, the
        asked-for key and policy loaded), else the reasons in words."""
        gen = self._gen
        serving = gen.serving if gen is not None else 0
        expected = self.settings.workers
        reasons: list[str] = []
        if serving < expected:
            reasons.append(f"{serving} of {expected} workers serving")
        if self.key_error is not None and self._key_source is not None:
            reasons.append(f"key not held: {self.key_error}")
        elif gen is not None and not self._converged() and self._backoff.reason:
            reasons.append("a change waits (the current generation serves meanwhile)")
        if reasons and self._backoff.reason:
            reasons.append(f"last failure: {self._backoff.reason}")
        if self._next_attempt is not None:
            reasons.append(f"next attempt in {max(0.0, self._next_attempt - time.monotonic()):.1f}s")
        reason = "; ".join(reasons) or None
        return {
            "workers": serving,
            "workersExpected": expected,
            "pids": gen.pids if gen is not None else [],
            "listeners": self._listeners.addresses(),
            "keyHeld": self.has_key,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "degraded": reason,
        }

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
        """Start a generation and wait until every worker is ready (it is then not yet current)."""
        self._generations += 1
        number = self._generations
        n = self.settings.workers
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(n)]
        child_fds = [b.fileno() for _, b in pairs]
        cmd = [
            self._python, "-m", "lbproxy.proxy.worker",
            "--http", self._slot_fds(HTTP),
            "--https", self._slot_fds(HTTPS),
            "--ctrl", ",".join(map(str, child_fds)),
            "--generation", str(number),
            "--supervisor", str(os.getpid()),
        ]  # fmt: skip
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=[sock.fileno() for sock in self._listeners.all()] + child_fds,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            for a, b in pairs:
                a.close()
                b.close()
            raise GenerationError(f"generation {number} could not be started: {exc}") from exc
        for _, b in pairs:
            b.close()
        loop = asyncio.get_running_loop()
        workers: list[WorkerHandle] = []
        for i, (a, _) in enumerate(pairs):
            reader, writer = await asyncio.open_unix_connection(sock=a)
            w = WorkerHandle(f"g{number}w{i}", reader, writer, loop.create_future(), ready=loop.create_future())
            workers.append(w)
        spec = self.spec
        gen = Generation(number, proc, workers, key_source, *_shape(spec))
        self._live.add(gen)
        cfg = {
            "settings": settings_to_mapping(self.settings),
            "spec": spec_to_mapping(spec),
            "secret": self._secret.hex(),
            "healthy": sorted(self._healthy),
            "key_source": key_source.to_mapping() if key_source else None,
        }
        workers[0].send(cfg)
        for w in workers:
            w.task = loop.create_task(self._listen(gen, w))
        ready = [w.ready for w in workers if w.ready is not None]
        all_ready: asyncio.Future[Any] = asyncio.gather(*ready)
        any_closed = [w.closed for w in workers]
        exited = loop.create_task(self._wait_exit(proc))
        try:
            await asyncio.wait(
                [all_ready, exited, *any_closed], timeout=self._generation_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
            if not all(f.done() for f in ready) or not gen.intact:
                code = proc.poll()
                raise GenerationError(
                    f"generation {number} did not start"
                    + (f" (leader {describe_exit(code)})" if code is not None else "")
                    + (f": {'; '.join(gen.errors)}" if gen.errors else "")
                )
        except BaseException:
            gen.kill()
            await self._wait_exit(proc)
            raise
        finally:
            exited.cancel()
            if not all_ready.done():
                all_ready.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await all_ready
        gen.has_key = all(w.tls for w in workers)
        for err in gen.errors:  # (a key that could not be loaded is logged by ``_judge_key``, once per change)
            if err != gen.key_error:
                log.error("generation %d: %s", number, err)
        for w in workers:
            with contextlib.suppress(OSError):
                w.pidfd = os.pidfd_open(w.pid)
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
                    if msg.get("key"):
                        gen.key_error = str(msg.get("message"))
                        gen.key_error_kind = msg.get("kind")
                elif op == "exited":  # the leader reaped a sibling
                    gen.sibling_exits[int(msg["pid"])] = int(msg["returncode"])
                elif op == "serving":
                    w.serving = True
                    self.status_changed.set()
                elif op == "stopped":
                    w.stopped = True
        except (OSError, ValueError, KeyError, TypeError):
            pass
        finally:
            w.closed.set_result(None)
            self._metrics.retire(w.key)
            w.writer.close()
            if w.pidfd >= 0:
                os.close(w.pidfd)
                w.pidfd = -1
            if gen.gone:
                self._live.discard(gen)
            self._worker_exited(gen, w)

    def _slot_fds(self, scheme: str) -> str:
        """``--http``/``--https`` for a worker: each slot's fds comma-separated, slots separated by ``/``."""
        slots = range(self._listeners.slots)
        return "/".join(",".join(str(sock.fileno()) for sock in self._listeners.of(scheme, i)) for i in slots)

    @staticmethod
    async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while proc.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.01)
        return proc.returncode

    async def _wait_gone(self, gen: Generation, timeout: float | None = None) -> bool:
        """Every worker's channel closed and the leader reaped, within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for w in gen.workers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(asyncio.shield(w.closed), remaining)
            except TimeoutError:
                return False
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if await self._wait_exit(gen.process, remaining) is None:
            return False
        self._live.discard(gen)
        return True

    async def _discard(self, gen: Generation) -> None:
        """A generation that never served: kill it and wait for its processes."""
        gen.kill()
        await self._wait_gone(gen, 10.0)

    async def _retire(self, gen: Generation, mode: str) -> None:
        """Stop a generation and wait for its processes to exit (killed if they overstay)."""
        gen.retiring = True
        gen.send({"op": "stop", "mode": mode})
        s = self.settings
        grace = (s.rotation_grace if mode == STOP_ROTATE else s.drain_timeout) + 5.0
        if not await self._wait_gone(gen, grace):
            log.error("generation %d did not exit in time: killing it", gen.number)
            gen.kill()
            await self._wait_gone(gen, 10.0)
        for w in gen.workers:
            if w.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(w.task, 1.0)

    # -- admin listener ----------------------------------------------------------------------------
    async def _start_admin(self, host: str, port: int) -> None:
        async def metrics(_: web.Request) -> web.Response:
            body = render_prometheus(self.metrics_snapshot(), self.spec.name)
            body += render_worker_status(self.status(), self.spec.name)
            return web.Response(body=body, content_type="text/plain", charset="utf-8")

        async def health(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "loadBalancerName": self.spec.name,
                    "instanceHealthSummary": self.health_snapshot(),
                    "tls": self.has_key,
                    "workers": self.status(),
                    "hotPath": HOT_PATH.describe(),
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

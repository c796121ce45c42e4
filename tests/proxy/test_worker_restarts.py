"""A data plane that heals itself: ``kill -9`` of a key-holding worker process (the only one, a generation
leader, a forked sibling, all of them) is noticed, logged with the pid and signal, counted, and the
generation replaced with the key loaded again through the key source; HTTPS answers again within 1 s; under
load only the requests the dead process held fail; crash loops back off and say so.

Real processes (``LoadBalancer`` with its worker generations), real sockets on 127.0.0.1, trustme keys."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import ssl
import time
from pathlib import Path

import pytest
from proxy_helpers import multiprocess_settings, read_response, request, running, server_pid_for

from lbproxy.proxy.keys import KeySourceRef
from lbproxy.proxy.spec import LoadBalancerSpec
from lbproxy.proxy.supervisor import LoadBalancer

pytestmark = pytest.mark.timeout(90)


async def _https_ok(lb: LoadBalancer, ctx: ssl.SSLContext) -> bool:
    try:
        r = await asyncio.wait_for(request(lb.https_port, "/", ssl_ctx=ctx), 0.5)
    except (OSError, ssl.SSLError, EOFError, TimeoutError, asyncio.IncompleteReadError):
        return False
    return r.status == 200


async def _until(predicate, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``predicate()`` (an async callable) is true; fails the test after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {timeout}s")


async def _serving(lb: LoadBalancer, workers: int) -> bool:
    return bool(lb.status()["workers"] == workers)


async def _restored(lb: LoadBalancer, victims: list[int], workers: int) -> bool:
    pids = lb.worker_pids()
    return len(pids) == workers and set(pids).isdisjoint(victims) and lb.status()["degraded"] is None


@pytest.mark.parametrize(
    ("workers", "which"), [(1, "only"), (2, "leader"), (2, "sibling"), (2, "all")], ids=lambda v: str(v)
)
async def test_killed_worker_is_replaced(
    backend_factory, tls_files, caplog: pytest.LogCaptureFixture, workers: int, which: str
) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    settings = multiprocess_settings(workers=workers, admin_listen="127.0.0.1:0")
    ctx = tls_files.client_context()
    caplog.set_level(logging.WARNING, logger="lbproxy.proxy")
    before = _children(os.getpid())
    async with running(spec, settings, tls_files.key_source()) as lb:
        await _until(lambda: _serving(lb, workers))
        pids = lb.worker_pids()
        victims = {"only": pids, "leader": pids[:1], "sibling": pids[1:], "all": pids}[which]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        # HTTPS answers again within 1 s of the kill (served by a live key holder: a survivor or a replacement).
        took = await _until(lambda: _https_ok(lb, ctx), timeout=5.0)
        assert took < 1.0, f"HTTPS answered again only after {took:.2f}s"
        # The worker count comes back, with new processes that loaded the key again.
        await _until(lambda: _restored(lb, victims, workers), timeout=5.0)
        status = lb.status()
        assert status["keyHeld"] and lb.has_key and status["workers"] == workers
        assert status["restarts"] == len(victims)
        assert "SIGKILL" in (status["lastExit"] or "")
        # Logged at WARNING with the pid and the signal, one line per dead process.
        for pid in victims:
            assert any(
                r.levelno == logging.WARNING
                and f"(pid {pid})" in r.getMessage()
                and "killed by SIGKILL" in r.getMessage()
                for r in caplog.records
            ), [r.getMessage() for r in caplog.records]
        # Counted on /metrics.
        metrics = (await request(lb.admin_port, "/metrics")).body.decode()
        assert f'lbproxy_worker_restarts_total{{load_balancer="lb"}} {len(victims)}' in metrics
        assert f'lbproxy_workers{{load_balancer="lb"}} {workers}' in metrics
        assert 'lbproxy_key_held{load_balancer="lb"} 1' in metrics
        # Plain HTTP works too, and no process of the old generation is left (no zombie either).
        assert (await request(lb.http_port, "/")).status == 200
        await _until(lambda: _no_children_but(lb, before), timeout=settings.rotation_grace + 5)


async def _no_children_but(lb: LoadBalancer, before: set[int]) -> bool:
    """The supervisor's only children are the current generation's leader (and adopted live workers).
    ``before``: the test process's children from before the load balancer started (other tests' subprocesses
    still exiting), which are not the supervisor's."""
    children = _children(os.getpid()) - before
    current = set(lb.worker_pids())
    return children <= current


async def _until_or_children(lb: LoadBalancer, before: set[int], timeout: float) -> dict[int, str]:
    """{} once ``_no_children_but``; else, after ``timeout``, each leftover child's pid and command line."""
    try:
        await _until(lambda: _no_children_but(lb, before), timeout=timeout)
    except AssertionError:
        extra = _children(os.getpid()) - before - set(lb.worker_pids())
        return {pid: _cmdline(pid) for pid in extra}
    return {}


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "(zombie)"
    except OSError:
        return "(gone)"


def _children(pid: int) -> set[int]:
    out = set()
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out |= {int(c) for c in f.read().split()}
    return out


@pytest.mark.parametrize("which", ["sibling", "leader"])
async def test_under_load_only_the_dead_process_requests_fail(backend_factory, tls_files, which: str) -> None:
    """Keep-alive HTTPS clients (at least two on each worker) run while one worker is killed: only the
    connections it held see an error, each once; every other client carries on without one, and the ones
    that failed reconnect and succeed."""
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    ctx = tls_files.client_context()
    async with running(spec, multiprocess_settings(workers=2), tls_files.key_source()) as lb:
        pids = lb.worker_pids()
        victim = pids[0] if which == "leader" else pids[1]
        # Open connections until each worker holds at least two (bounded).
        conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, int | None]] = []
        for _ in range(60):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost"
            )
            owner = await asyncio.to_thread(server_pid_for, writer.get_extra_info("sockname")[1], pids)
            if sum(1 for c in conns if c[2] == owner) >= 3:
                writer.transport.abort()
            else:
                conns.append((reader, writer, owner))
            if all(sum(1 for c in conns if c[2] == pid) >= 2 for pid in pids):
                break
        held = sum(1 for c in conns if c[2] == victim)
        assert held >= 2 and len(conns) - held >= 2, [c[2] for c in conns]
        killed = asyncio.Event()
        results: list[dict[str, object]] = []
        deadline = time.monotonic() + 30

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, owner: int | None) -> None:
            stats: dict[str, object] = {"owner": owner, "ok": 0, "failed": 0, "after_kill_ok": 0}
            results.append(stats)
            requests = 0
            while time.monotonic() < deadline and requests < 3000:
                try:
                    while time.monotonic() < deadline and requests < 3000:
                        requests += 1
                        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        r = await read_response(reader, timeout=3)
                        assert r.status == 200
                        stats["ok"] = int(stats["ok"]) + 1  # type: ignore[call-overload]
                        if (r.header("connection") or "").lower() == "close":  # (a retiring generation's)
                            writer.transport.abort()
                            reader, writer = await asyncio.open_connection(
                                "127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost"
                            )
                        if killed.is_set():
                            stats["after_kill_ok"] = int(stats["after_kill_ok"]) + 1  # type: ignore[call-overload]
                            if int(stats["after_kill_ok"]) >= 50:  # type: ignore[call-overload]
                                return
                        await asyncio.sleep(0.002)
                except (OSError, EOFError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
                    stats["failed"] = int(stats["failed"]) + 1  # type: ignore[call-overload]
                    writer.transport.abort()
                    reader, writer = await asyncio.open_connection(  # reconnect: a live worker answers
                        "127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost"
                    )
            writer.transport.abort()

        clients = [asyncio.create_task(client(*c)) for c in conns]
        await asyncio.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        killed.set()
        await asyncio.wait_for(asyncio.gather(*clients), 40)
        for c in conns:
            c[1].transport.abort()
        failed = {id(s): int(s["failed"]) for s in results}  # type: ignore[call-overload]
        # Only connections the dead process held failed, each exactly once; everyone carried on afterwards.
        assert all(s["failed"] == (1 if s["owner"] == victim else 0) for s in results), results
        assert all(int(s["after_kill_ok"]) >= 50 for s in results), results  # type: ignore[call-overload]
        total = sum(int(s["ok"]) for s in results)  # type: ignore[call-overload]
        print(
            f"\nkill -9 of the {which} under load ({len(conns)} keep-alive clients, {held} on it): "
            f"{sum(failed.values())} of {total + sum(failed.values())} requests failed, all on its connections"
        )


async def test_crash_loop_backs_off_and_says_why(backend_factory, tls_files) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    settings = multiprocess_settings(workers=1, restart_backoff=0.4, restart_backoff_max=1.6, restart_backoff_reset=5)
    ctx = tls_files.client_context()
    async with running(spec, settings, tls_files.key_source()) as lb:
        killed: list[int] = []
        for _ in range(3):  # kill each replacement as soon as it serves
            pid = lb.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            await _until(lambda: _restored(lb, killed, 1), timeout=10)
        # The fourth crash in a row waits (0.4 * 2**(4-2) = 1.6 s, the cap): degraded, no key held, and why.
        os.kill(lb.worker_pids()[0], signal.SIGKILL)
        await asyncio.sleep(0.3)
        status = lb.status()
        assert status["workers"] == 0 and not status["keyHeld"] and not lb.has_key
        assert status["restarts"] == 4
        assert "0 of 1 workers serving" in status["degraded"] and "next attempt in" in status["degraded"], status
        assert not await _https_ok(lb, ctx)
        took = await _until(lambda: _https_ok(lb, ctx), timeout=10)
        assert took + 0.3 > 0.8, took  # it did wait (about 1.6 s after the crash)
        await _until(lambda: _restored(lb, [], 1), timeout=5)


async def test_revoke_while_a_replacement_starts(backend_factory, tls_files) -> None:
    """A revocation that arrives while a crashed generation is being replaced wins: no key survives."""
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    ctx = tls_files.client_context()
    before = _children(os.getpid())
    async with running(spec, multiprocess_settings(workers=2), tls_files.key_source()) as lb:
        os.kill(lb.worker_pids()[0], signal.SIGKILL)
        await asyncio.sleep(0.05)  # the replacement is starting (loading the key)
        await lb.revoke()
        assert not lb.has_key
        await asyncio.sleep(1.0)  # whatever was starting is gone, and nothing brings the key back
        assert not lb.has_key and not await _https_ok(lb, ctx)
        assert (await request(lb.http_port, "/")).status == 200
        leftover = await _until_or_children(lb, before, timeout=10)
        assert not leftover, f"processes the supervisor started are still there: {leftover}"


async def test_a_generation_without_its_key_never_takes_a_connection(
    backend_factory, tls_files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation whose key cannot be loaded keeps the current generation and says so; the candidate
    generations that each attempt starts (and discards) never accept a client's connection: a generation
    accepts only once the supervisor made it the current one."""
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    settings = multiprocess_settings(workers=1, restart_backoff=0.05, restart_backoff_max=0.1, restart_backoff_reset=1)
    unavailable = KeySourceRef("unavailable_keysource:UnavailableKeySource")
    async with running(spec, settings, tls_files.key_source()) as lb:
        serving = lb.worker_pids()
        await lb.rotate(unavailable)
        assert lb.has_key and lb.worker_pids() == serving  # the current generation keeps its key
        assert "a change waits" in (lb.status()["degraded"] or ""), lb.status()
        # A candidate, started but not made current; the current generation frozen: a connection made now
        # can only be accepted by the candidate, and must not be.
        candidate = await lb._spawn(unavailable)
        os.kill(serving[0], signal.SIGSTOP)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", lb.http_port)
            writer.write(b"GET /waiting HTTP/1.1\r\nHost: localhost\r\n\r\n")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(1), 1.0)
        finally:
            os.kill(serving[0], signal.SIGCONT)
        r = await read_response(reader, timeout=5)  # the current generation answers it once it runs again
        assert r.status == 200 and r.json()["path"] == "/waiting"
        writer.transport.abort()
        await lb._discard(candidate)
        assert lb.restarts == 0 and lb.worker_pids() == serving


async def test_a_generation_that_never_served_dies_whole_with_its_leader(backend_factory, tls_files) -> None:
    """Until its generation serves, a forked sibling dies with its leader: a candidate discarded while it started
    (a revocation, a failed start) never leaves a key holder behind, adopted or orphaned."""
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    async with running(spec, multiprocess_settings(workers=2), tls_files.key_source()) as lb:
        serving = lb.worker_pids()
        candidate = await lb._spawn(tls_files.key_source())  # started, holding the key, never made current
        leader, sibling = candidate.pids
        os.kill(leader, signal.SIGKILL)

        async def sibling_gone() -> bool:
            return not _running(sibling)

        await _until(sibling_gone, timeout=5)
        await lb._discard(candidate)
        assert lb.has_key and lb.worker_pids() == serving  # the current generation did not notice


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

"""The listening-socket settings: ``listen_reuseport`` (one ``SO_REUSEPORT`` socket per worker slot, held by
the supervisor) and ``tcp_defer_accept`` (``TCP_DEFER_ACCEPT`` on every listener).

With ``listen_reuseport`` the kernel spreads new connections over the slots, so every worker serves some;
a worker that is killed leaves its slot's socket (and the connections queued on it) to its successor, so no
connection made while it was dead is lost. Real processes, real sockets on 127.0.0.1, trustme keys."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import time

import pytest
from proxy_helpers import multiprocess_settings, request, running, server_pid_for

from lbproxy.proxy.listeners import Listeners
from lbproxy.proxy.spec import LoadBalancerSpec

pytestmark = pytest.mark.timeout(90)


def test_one_reuseport_socket_per_slot_on_one_port() -> None:
    listeners = Listeners("127.0.0.1:0", "127.0.0.1:0", "ipv4", slots=3, defer_accept=2)
    listeners.open()
    try:
        for scheme in ("http", "https"):
            socks = [listeners.of(scheme, slot)[0] for slot in range(3)]
            assert len({s.fileno() for s in socks}) == 3
            assert len({s.getsockname() for s in socks}) == 1  # one port
            for s in socks:
                assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
                assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
    finally:
        listeners.close()
    shared = Listeners("127.0.0.1:0", "127.0.0.1:0", "ipv4")
    shared.open()
    try:
        (sock,) = shared.of("http", 0)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0
    finally:
        shared.close()


async def _owners(port: int, pids: list[int], count: int, ctx: ssl.SSLContext) -> set[int | None]:
    """Which workers accepted ``count`` new HTTPS connections."""
    owners: set[int | None] = set()
    for _ in range(count):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        owners.add(await asyncio.to_thread(server_pid_for, writer.get_extra_info("sockname")[1], pids))
        writer.transport.abort()
    return owners


@pytest.mark.parametrize("which", ["sibling", "leader", "all"])
async def test_reuseport_every_slot_serves_and_a_killed_worker_loses_no_queued_connection(
    backend_factory, tls_files, which: str
) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    settings = multiprocess_settings(workers=2, listen_reuseport=True)
    ctx = tls_files.client_context()
    async with running(spec, settings, tls_files.key_source()) as lb:
        pids = lb.worker_pids()
        assert len(pids) == 2
        # The kernel spreads new connections over both slots: both workers accept some (bounded tries).
        owners = await _owners(lb.https_port, pids, 40, ctx)
        assert set(pids) <= owners, (pids, owners)
        victims = {"sibling": pids[1:], "leader": pids[:1], "all": pids}[which]
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        # New connections right after the kill: some land on a dead worker's slot and wait in its queue for
        # the successor; every one of them is answered.
        start = time.monotonic()
        results = await asyncio.gather(
            *(asyncio.wait_for(request(lb.http_port, "/"), 10) for _ in range(30)),
            *(asyncio.wait_for(request(lb.https_port, "/", ssl_ctx=ctx), 10) for _ in range(10)),
            return_exceptions=True,
        )
        took = time.monotonic() - start
        assert all(not isinstance(r, BaseException) and r.status == 200 for r in results), results
        # The worker count comes back with new processes, and both slots serve again.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = lb.worker_pids()
            if len(now) == 2 and set(now).isdisjoint(victims) and lb.status()["degraded"] is None:
                break
            await asyncio.sleep(0.02)
        now = lb.worker_pids()
        assert len(now) == 2 and set(now).isdisjoint(victims), (now, victims)
        owners = await _owners(lb.https_port, now, 40, ctx)
        assert set(now) <= owners, (now, owners)
        print(f"\nkill -9 of the {which} with listen_reuseport: 40 new connections answered in {took:.2f}s")


async def test_defer_accept_hands_over_a_connection_only_once_it_sent_something(backend_factory) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,))
    async with running(spec, multiprocess_settings(workers=1, tcp_defer_accept=5), None) as lb:
        pids = lb.worker_pids()
        silent = socket.create_connection(("127.0.0.1", lb.http_port))
        try:
            await asyncio.sleep(0.3)
            # Connected as far as the client knows, but no worker holds it yet: it costs the proxy nothing.
            assert await asyncio.to_thread(server_pid_for, silent.getsockname()[1], pids) is None
            silent.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            silent.settimeout(5)
            # (In a thread: the instance answering it runs in this test's event loop.)
            assert (await asyncio.to_thread(silent.recv, 64)).startswith(b"HTTP/1.1 200")
        finally:
            silent.close()
        assert (await request(lb.http_port, "/")).status == 200

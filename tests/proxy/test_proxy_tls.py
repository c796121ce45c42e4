"""TLS: policy versions (in-process), and the multi-process key lifecycle (``LoadBalancer``): session
resumption across workers, revocation, rotation without dropping an open connection."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from pathlib import Path

import pytest
from proxy_helpers import multiprocess_settings, read_response, request, running, server_pid_for

from lbproxy.proxy.spec import LoadBalancerSpec

pytestmark = pytest.mark.timeout(60)


def _client(tls_files, version: ssl.TLSVersion) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    ctx = tls_files.client_context()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


async def _handshake(port: int, ctx: ssl.SSLContext) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    try:
        version = writer.get_extra_info("ssl_object").version()
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = await read_response(reader)
        assert r.status == 200
        return str(version)
    finally:
        writer.transport.abort()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    ("policy", "tls13", "accepted", "refused"),
    [
        # Lightsail's policies, exactly: TLS 1.3 is in none of them.
        ("TLS-2016-08", False, ["TLSv1", "TLSv1_1", "TLSv1_2"], ["TLSv1_3"]),
        ("TLS-FS-1-2-Res-2019-08", False, ["TLSv1_2"], ["TLSv1", "TLSv1_1", "TLSv1_3"]),
        ("TLS-FS-Res-1-2-2019-08", False, ["TLSv1_2"], ["TLSv1", "TLSv1_1", "TLSv1_3"]),  # (the old name)
        ("TLS-FS-Res-1-1-2019-08", False, ["TLSv1_1", "TLSv1_2"], ["TLSv1", "TLSv1_3"]),  # (legacy)
        # offer_tls13: TLS 1.3 on top of the policy.
        ("TLS-2016-08", True, ["TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3"], []),
        ("TLS-FS-1-2-Res-2019-08", True, ["TLSv1_2", "TLSv1_3"], ["TLSv1", "TLSv1_1"]),
    ],
)
async def test_policy_versions(  # type: ignore[no-untyped-def]
    backend_factory, dataplane_factory, tls_files, policy, tls13, accepted, refused
) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed(policy, tls13=tls13), policy=policy, offer_tls13=tls13)
    for name in accepted:
        assert await _handshake(lb.https_port, _client(tls_files, ssl.TLSVersion[name])) == name.replace("_", ".")
    for name in refused:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await _handshake(lb.https_port, _client(tls_files, ssl.TLSVersion[name]))
    await asyncio.sleep(0.05)  # (a failed handshake is counted when its TCP connection is gone)
    assert lb.dp.metrics.tls_negotiation_errors >= len(refused)


async def test_alpn_and_forwarded_proto(backend_factory, dataplane_factory, tls_files) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    ctx = tls_files.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost")
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    h = (await read_response(reader)).json()["headers"]
    assert h["X-Forwarded-Proto"] == "https" and h["X-Forwarded-Port"] == str(lb.https_port)
    writer.close()


async def test_keyless_listener_refuses_handshakes(backend_factory, dataplane_factory, tls_files) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    assert (await request(lb.https_port, ssl_ctx=tls_files.client_context())).status == 200
    lb.dp.revoke_tls()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await request(lb.https_port, ssl_ctx=tls_files.client_context())
    assert (await request(lb.http_port)).status == 200


# -- multi-process -----------------------------------------------------------------------------------


def _tls_get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None, pids: list[int]):  # type: ignore[no-untyped-def]
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw_sock,
        ctx.wrap_socket(raw_sock, server_hostname="localhost", session=session) as s,
    ):
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        owner = server_pid_for(s.getsockname()[1], pids)
        assert data.startswith(b"HTTP/1.1 200")
        time.sleep(0.02)  # let the TLS 1.3 tickets arrive
        with contextlib.suppress(ssl.SSLError, OSError):
            s.setblocking(False)
            s.recv(65536)
        return s.session, s.session_reused, owner


async def test_session_resumption_across_workers(backend_factory, tls_files) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    async with running(spec, multiprocess_settings(workers=2), tls_files.key_source()) as lb:
        pids = lb.worker_pids()
        assert len(pids) == 2
        ctx = tls_files.client_context()
        session, reused, _first_owner = await asyncio.to_thread(_tls_get, lb.https_port, ctx, None, pids)
        assert not reused and session is not None
        owners: dict[int, bool] = {}
        for _ in range(60):
            _, reused, owner = await asyncio.to_thread(_tls_get, lb.https_port, ctx, session, pids)
            if owner is not None:
                owners[owner] = owners.get(owner, True) and reused
            if len(owners) == 2:
                break
        assert set(owners) == set(pids), owners  # both workers served resumed sessions
        assert all(owners.values())
        # The handshake counters are summed over workers like the Lightsail ones (reported every 0.2 s).
        for _ in range(50):
            snap = lb.metrics_snapshot()
            if snap["TLSResumedHandshakeCount"] >= 2:
                break
            await asyncio.sleep(0.1)
        assert snap["TLSFullHandshakeCount"] >= 1 and snap["TLSResumedHandshakeCount"] >= 2, snap


async def test_handshake_counters_full_and_resumed(backend_factory, dataplane_factory, tls_files) -> None:
    a = await backend_factory("a")
    lb = await dataplane_factory([a.spec], keyed=tls_files.keyed())
    m = lb.dp.metrics
    ctx = tls_files.client_context()
    session, reused, _ = await asyncio.to_thread(_tls_get, lb.https_port, ctx, None, [])
    assert not reused and session is not None
    assert (m.tls_full_handshakes, m.tls_resumed_handshakes) == (1, 0)
    for n in (1, 2):
        _, reused, _ = await asyncio.to_thread(_tls_get, lb.https_port, ctx, session, [])
        assert reused
        assert (m.tls_full_handshakes, m.tls_resumed_handshakes) == (1, n)  # once per connection
    assert m.as_dict()["TLSResumedHandshakeCount"] == 2 and m.as_dict()["TLSFullHandshakeCount"] == 1
    assert m.request_count == 3


async def test_revocation_refuses_tls_keeps_http(backend_factory, tls_files) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    async with running(spec, multiprocess_settings(workers=1), tls_files.key_source()) as lb:
        old_pids = lb.worker_pids()
        ctx = tls_files.client_context()
        assert (await request(lb.https_port, ssl_ctx=ctx)).status == 200
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost")
        writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await read_response(reader)).status == 200
        started = time.monotonic()
        await lb.revoke()
        assert time.monotonic() - started < 1.5
        assert not lb.has_key and set(lb.worker_pids()).isdisjoint(old_pids)
        for pid in old_pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        # The open TLS connection was aborted with its generation.
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with pytest.raises((EOFError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
            await read_response(reader, timeout=2)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await request(lb.https_port, ssl_ctx=ctx)
        assert (await request(lb.http_port)).status == 200
        await asyncio.sleep(0.5)
        snap = lb.metrics_snapshot()
        assert snap["RequestCount"] >= 3 and snap["ClientTLSNegotiationErrorCount"] >= 1


async def test_rotation_keeps_open_connection(backend_factory, tls_files, tls_factory) -> None:
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True)
    new = tls_factory()
    async with running(spec, multiprocess_settings(workers=1), tls_files.key_source()) as lb:
        ctx = tls_files.client_context()
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.https_port, ssl=ctx, server_hostname="localhost")
        writer.write(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await read_response(reader)).status == 200
        old_cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        await lb.rotate(new.key_source())
        assert lb.has_key
        # The existing keep-alive connection still works (served by the old generation).
        writer.write(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = await read_response(reader)
        assert r.status == 200 and r.json()["path"] == "/after"
        writer.close()
        # New handshakes get the new certificate.
        reader2, writer2 = await asyncio.open_connection(
            "127.0.0.1", lb.https_port, ssl=new.client_context(), server_hostname="localhost"
        )
        new_cert = writer2.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert new_cert != old_cert
        writer2.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await read_response(reader2)).status == 200
        writer2.close()


async def test_supervisor_health_and_update(backend_factory, tls_files) -> None:
    a, b = await backend_factory("a"), await backend_factory("b")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), health_check_path="/status/200")
    async with running(spec, multiprocess_settings(admin_listen="127.0.0.1:0"), None) as lb:
        assert lb.health_snapshot() == [
            {"instanceName": "a", "instanceHealth": "healthy", "instanceHealthReason": None}
        ]
        await lb.update(LoadBalancerSpec(name="lb", instances=(a.spec, b.spec), health_check_path="/status/500"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = {h["instanceName"]: h for h in lb.health_snapshot()}
            if all(h["instanceHealth"] == "unhealthy" for h in states.values()):
                break
            await asyncio.sleep(0.1)
        assert states["b"]["instanceHealthReason"] == "Instance.ResponseCodeMismatch"
        await asyncio.sleep(0.2)
        assert (await request(lb.http_port)).status == 503
        r = await request(lb.admin_port, "/metrics")
        assert b"lbproxy_UnhealthyHostCount" in r.body and b"lbproxy_HTTPCode_LB_5XX_Count_total" in r.body

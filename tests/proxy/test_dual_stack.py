"""Lightsail's ``ipAddressType`` in the data plane: ``dualstack`` serves the same ports on the IPv6 loopback
(X-Forwarded-For then carries the IPv6 client address), ``ipv4`` stops that, ``ipv6`` serves IPv6 only; a change
is applied by a new generation of workers with the new set of sockets. Checked with curl ``-4``/``-6`` and with
Python clients; loopback only."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess

import pytest
from proxy_helpers import multiprocess_settings, running

from lbproxy.proxy.listeners import Listeners, counterpart
from lbproxy.proxy.spec import LoadBalancerSpec

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not socket.has_ipv6, reason="this Python has no IPv6"),
]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_counterparts() -> None:
    assert counterpart("127.0.0.1") == "::1" and counterpart("::1") == "127.0.0.1"
    assert counterpart("0.0.0.0") == "::" and counterpart("::") == "0.0.0.0"
    assert counterpart("10.1.2.3") is None


def test_listeners_follow_the_ip_address_type() -> None:
    if not _ipv6_loopback():
        pytest.skip("no ::1 on this host")
    listeners = Listeners("127.0.0.1:0", "127.0.0.1:0", "ipv4")
    listeners.open()
    try:
        assert [s.family for s in listeners.of("http")] == [socket.AF_INET]
        assert listeners.apply("dualstack")
        http = listeners.of("http")
        assert [s.family for s in http] == [socket.AF_INET, socket.AF_INET6]
        assert http[1].getsockname()[1] == listeners.http_port  # the same port
        assert http[1].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        assert not listeners.apply("dualstack")  # nothing to change
        assert listeners.apply("ipv6")
        assert [s.family for s in listeners.of("https")] == [socket.AF_INET6]
        assert listeners.apply("ipv4")
        assert [s.family for s in listeners.of("https")] == [socket.AF_INET]
    finally:
        listeners.close()


async def test_dualstack_serves_ipv6_and_ipv4_stops_it(backend_factory, tls_files) -> None:
    if not _ipv6_loopback():
        pytest.skip("no ::1 on this host")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    a = await backend_factory("a")
    spec = LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True, ip_address_type="dualstack")
    cacert = str(tls_files.cert_path.parent / "ca.pem")
    tls_files.ca.cert_pem.write_to_path(cacert)
    async with running(spec, multiprocess_settings(workers=2), tls_files.key_source()) as lb:
        # https://localhost resolves to both families: pin them with --resolve so the certificate name matches.
        def get(family: str, scheme: str, port: int) -> subprocess.CompletedProcess[str]:
            host = "::1" if family == "-6" else "127.0.0.1"
            url = f"{scheme}://localhost:{port}/who"
            argv = ["curl", family, "-sS", "--max-time", "5", "--resolve", f"localhost:{port}:{host}",
                    "-H", "Accept: application/json", "--cacert", cacert, url]  # fmt: skip
            return subprocess.run(argv, capture_output=True, text=True, timeout=15)

        for scheme, port in (("http", lb.http_port), ("https", lb.https_port)):
            v6 = await asyncio.to_thread(get, "-6", scheme, port)
            assert v6.returncode == 0, v6.stderr
            seen = json.loads(v6.stdout)["headers"]
            assert seen["X-Forwarded-For"] == "::1" and seen["X-Forwarded-Proto"] == scheme
            v4 = await asyncio.to_thread(get, "-4", scheme, port)
            assert v4.returncode == 0 and json.loads(v4.stdout)["headers"]["X-Forwarded-For"] == "127.0.0.1"
        pids = lb.worker_pids()
        await lb.update(LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True, ip_address_type="ipv4"))
        assert set(lb.worker_pids()).isdisjoint(pids) and lb.has_key  # a new generation, the key loaded again
        refused = await asyncio.to_thread(get, "-6", "https", lb.https_port)
        assert refused.returncode != 0  # nothing listens on [::1] any more
        assert (await asyncio.to_thread(get, "-4", "https", lb.https_port)).returncode == 0
        await lb.update(LoadBalancerSpec(name="lb", instances=(a.spec,), https_enabled=True, ip_address_type="ipv6"))
        assert (await asyncio.to_thread(get, "-6", "https", lb.https_port)).returncode == 0
        assert (await asyncio.to_thread(get, "-4", "http", lb.http_port)).returncode != 0

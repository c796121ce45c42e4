"""THE MEMORY-SCAN PROOF: run the data plane as a subprocess with a key the test knows, serve HTTPS, and
read the memory of every process of the data plane (supervisor + generation, found through
``/proc/PID/task/*/children``) from outside via ``/proc/PID/maps`` + ``/proc/PID/mem``.

Needles: every base64 body line of the PEM, the DER encodings (PKCS#8 and traditional), and the raw
private scalar (EC) or primes (RSA) in both byte orders. Before revocation the scan must find the key
(the live scalar/primes inside OpenSSL), which shows the scan works; after revocation it must find
nothing in any process. Key holders are hardened (not dumpable); reading works as root with
CAP_SYS_PTRACE, which this test needs: without it ``memscan.scan`` raises and the test fails saying so
(it never passes without having looked).
"""

from __future__ import annotations

import asyncio
import json
import select
import ssl
import subprocess
import sys
import time

import pytest
import trustme
from proxy_helpers import request

from lbproxy.memscan import needles, scan_tree

pytestmark = pytest.mark.timeout(90)


class Proc:
    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)

    def send(self, msg: dict[str, object]) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(json.dumps(msg).encode() + b"\n")
        self.p.stdin.flush()

    def event(self, timeout: float = 20.0) -> dict[str, object]:
        assert self.p.stdout is not None
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        assert ready, "no event from the data plane"
        line = self.p.stdout.readline()
        assert line, "data plane exited"
        return json.loads(line)  # type: ignore[no-any-return]


@pytest.mark.parametrize("key_type", [trustme.KeyType.ECDSA, trustme.KeyType.RSA], ids=["ecdsa", "rsa"])
async def test_key_is_gone_from_every_process_after_revocation(backend_factory, tmp_path, key_type) -> None:
    a = await backend_factory("a")
    ca = trustme.CA(key_type=key_type)
    cert = ca.issue_cert("localhost", key_type=key_type)
    key_pem = cert.private_key_pem.bytes()
    (tmp_path / "chain.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    (tmp_path / "key.pem").write_bytes(key_pem)
    (tmp_path / "lb.toml").write_text(
        f"""
[load_balancer]
name = "scan-lb"
https_enabled = true
instances = [{{ name = "a", address = "127.0.0.1:{a.port}" }}]

[settings]
http_listen = "127.0.0.1:0"
https_listen = "127.0.0.1:0"
workers = 2
drain_timeout = 2.0
health_check_interval = 1.0
"""
    )
    proc = Proc([
        sys.executable, "-m", "lbproxy.proxy", "--config", str(tmp_path / "lb.toml"),
        "--key-source", "lbproxy.proxy.keys:TestFileKeySource",
        "--key-param", f"cert_path={tmp_path / 'chain.pem'}", "--key-param", f"key_path={tmp_path / 'key.pem'}",
        "--control-stdin",
    ])  # fmt: skip
    try:
        started = await asyncio.to_thread(proc.event)
        assert started["event"] == "started" and started["tls"] is True
        client = ssl.create_default_context()
        ca.configure_trust(client)
        for _ in range(3):
            assert (await request(int(started["https_port"]), ssl_ctx=client)).status == 200  # type: ignore[arg-type]
        patterns = needles(key_pem)
        supervisor = proc.p.pid
        before = await asyncio.to_thread(scan_tree, supervisor, patterns)
        assert len(before) >= 3  # supervisor + two workers
        assert not before[supervisor], f"the supervisor must never hold key material: {before[supervisor]}"
        holders = {pid: f for pid, f in before.items() if f}
        assert set(holders) >= set(started["worker_pids"])  # type: ignore[arg-type]
        for found in holders.values():
            assert any(n.startswith(("scalar", "prime")) for n in found), found  # the live key in OpenSSL

        t0 = time.monotonic()
        proc.send({"op": "revoke"})
        revoked = await asyncio.to_thread(proc.event)
        assert revoked["event"] == "revoked"
        assert time.monotonic() - t0 < 2.0
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await request(int(started["https_port"]), ssl_ctx=client)  # type: ignore[arg-type]
        assert (await request(int(started["http_port"]))).status == 200  # type: ignore[arg-type]
        after = await asyncio.to_thread(scan_tree, supervisor, patterns)
        assert set(after).isdisjoint(started["worker_pids"])  # type: ignore[arg-type]
        assert {pid: f for pid, f in after.items() if f} == {}, "key material found after revocation"
    finally:
        if proc.p.poll() is None:
            proc.send({"op": "stop"})
            try:
                proc.p.wait(10)
            except subprocess.TimeoutExpired:
                proc.p.kill()
                proc.p.wait()

"""A rotation while the control plane blinks: the current keyed generation keeps serving until its successor
has loaded its key (retried with backoff); HTTPS never fails. The control plane is a real process, killed
with SIGKILL at several points of a ``TlsPolicyName`` rotation and restarted 2 s later."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
from stack import ControlProcess, Stack, handshake_ok, wait_until

pytestmark = pytest.mark.timeout(240)

#: Two policies a TLS 1.1 client tells apart: TLS-2016-08 accepts it, TLS-FS-Res-1-2-2019-08 refuses it.
OLD_CLIENTS_WELCOME = "TLS-2016-08"
TLS12_ONLY = "TLS-FS-Res-1-2-2019-08"


class HandshakeProbe:
    """Handshakes and one request every ~20 ms in a thread; counts the failures (bounded: 60 s at most)."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.port, self.ctx = port, ctx
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=3) as raw,
                    self.ctx.wrap_socket(raw, server_hostname="localhost") as s,
                ):
                    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    if not s.recv(64).startswith(b"HTTP/1.1 200"):
                        raise OSError("no 200")
                self.ok += 1
            except (OSError, ssl.SSLError) as exc:
                self.failures.append(f"{time.monotonic():.3f} {type(exc).__name__}: {exc}")
            time.sleep(0.02)

    def __enter__(self) -> HandshakeProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _tls11_client(ctx: ssl.SSLContext) -> ssl.SSLContext:
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_control_plane_killed_during_a_rotation(stack: Stack) -> None:
    cert = stack.serve_https("blink-cert")
    ctx = cert.client_context()
    tls11 = _tls11_client(cert.client_context())
    assert handshake_ok(stack.https_port, tls11)  # TLS-2016-08 (the default) lets TLS 1.1 in
    # The control plane becomes a real process on the same port and data dir.
    port = int(stack.control.url.rsplit(":", 1)[1])
    data_dir = stack.control.settings.data_dir
    stack.control.stop()
    control = ControlProcess(data_dir, port).start()
    try:
        policy = OLD_CLIENTS_WELCOME
        for delay in (0.0, 0.05, 0.15, 0.3):  # when the kill lands: before, during the fetch, during the key load
            policy = TLS12_ONLY if policy == OLD_CLIENTS_WELCOME else OLD_CLIENTS_WELCOME
            with HandshakeProbe(stack.https_port, ctx) as probe:
                control.client("lightsail").update_load_balancer_attribute(
                    loadBalancerName=stack.lb_name, attributeName="TlsPolicyName", attributeValue=policy
                )
                time.sleep(delay)
                control.kill()
                time.sleep(2.0)
                control.start()
                # The rotation completes once the control plane is back (the new policy decides TLS 1.1).
                back = time.monotonic()
                wait_until(
                    lambda p=policy: handshake_ok(stack.https_port, tls11) == (p == OLD_CLIENTS_WELCOME),
                    timeout=40,
                    interval=0.2,
                )
                print(f"kill after {delay}s: the rotation completed {time.monotonic() - back:.1f}s after the restart")
                time.sleep(0.3)
            assert probe.failures == [], f"kill after {delay}s: HTTPS failed {probe.failures[:5]} ({probe.ok} ok)"
            assert probe.ok > 50
    finally:
        control.kill()

"""The control plane under cheap abuse, over real sockets on 127.0.0.1 (bounded loops):

- a client that trickles its request head, or its body, is cut (``header_timeout`` / ``body_timeout``);
- an unauthenticated request is answered before its body is read, so many big unauthenticated bodies at once
  do not make the server buffer them (RSS measured);
- ``X-Amz-Target`` (and ``host``, ``x-amz-date``) must be among ``SignedHeaders``: a signed DescribeKey cannot
  be re-targeted to DisableKey (InvalidSignatureException, AWS's wording).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from lbproxy.config import ConfigError, ControlSettings
from lbproxy.control.dataplane import install_routes
from lbproxy.core.clock import ManualClock
from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread

pytestmark = pytest.mark.timeout(120)

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MIB = 1024 * 1024


@pytest.fixture
def hardened(tmp_path: Path, clock: ManualClock) -> Iterator[ControlThread]:
    """A control plane (with the data-plane routes) whose head and body timeouts are short."""
    ct = ControlThread(
        tmp_path / "data",
        clock=clock,
        validation_delay=0.0,
        installers=[install_routes],
        header_timeout=HEADER_TIMEOUT,
        body_timeout=BODY_TIMEOUT,
    ).start()
    try:
        yield ct
    finally:
        ct.stop()


def _addr(ct: ControlThread) -> tuple[str, int]:
    host, port = ct.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _closed(s: socket.socket) -> bool:
    """Whether the peer has closed the non-blocking ``s`` (EOF or reset); drops any response that came first."""
    try:
        while True:
            if not s.recv(65536, socket.MSG_DONTWAIT):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _amz_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _authorization(access_key_id: str, signed_headers: str, service: str = "kms") -> str:
    scope = f"{access_key_id}/{_amz_now()[:8]}/us-east-1/{service}/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed_headers}, Signature={'0' * 64}"


def _head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(s: socket.socket, timeout: float) -> tuple[int, dict[str, object]]:
    """Status and JSON body of one response (``Content-Length`` framed) read within ``timeout``."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, json.loads(body[:length] or b"{}")


# == head and body timeouts =========================================================================


def test_slow_heads_are_cut_and_the_server_still_serves(hardened: ControlThread) -> None:
    """1,000 connections trickle a request head one byte at a time: every one is cut near header_timeout."""
    addr = _addr(hardened)
    socks: list[socket.socket] = []
    try:
        for _ in range(1000):
            s = socket.create_connection(addr, timeout=5)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.setblocking(False)
            socks.append(s)
        started = time.monotonic()
        open_ = set(socks)
        deadline = started + HEADER_TIMEOUT + 6
        while open_ and time.monotonic() < deadline:
            for s in list(open_):
                try:
                    s.send(b"a")
                except OSError:
                    open_.discard(s)
                    continue
                if _closed(s):
                    open_.discard(s)
            time.sleep(0.2)
        assert not open_, f"{len(open_)} of {len(socks)} slow connections still open after {deadline - started:.1f}s"
        # The control plane answers ordinary callers all along.
        assert hardened.client("kms").list_keys()["Keys"] is not None
    finally:
        for s in socks:
            s.close()


def test_an_idle_connection_is_cut(hardened: ControlThread) -> None:
    with socket.create_connection(_addr(hardened), timeout=5) as s:
        t0 = time.monotonic()
        s.settimeout(HEADER_TIMEOUT + 5)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1) == b""
        assert time.monotonic() - t0 < HEADER_TIMEOUT + 4


def test_a_trickled_body_is_cut(hardened: ControlThread) -> None:
    """A correctly signed request whose body arrives a byte at a time: 408 RequestTimeoutException, closed."""
    admin = hardened.admin
    body = b'{"Limit": 5}' + b" " * 2000
    req = AWSRequest(
        method="POST",
        url=hardened.url + "/",
        data=body,
        headers={"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(admin.access_key_id, admin.secret_access_key), "kms", "us-east-1").add_auth(req)
    p = req.prepare()
    with socket.create_connection(_addr(hardened), timeout=5) as s:
        netloc = hardened.url.removeprefix("http://")
        s.sendall(_head("/", {"Host": netloc, **dict(p.headers.items())}) + body[:10])
        t0 = time.monotonic()
        sent = 10
        s.setblocking(False)
        while not _readable(s) and sent < len(body) and time.monotonic() - t0 < BODY_TIMEOUT + 6:
            s.sendall(body[sent : sent + 1])
            sent += 1
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        status, out = _read_response(s, 5)
        assert status == 408 and out["__type"] == "RequestTimeoutException", (status, out)
        assert elapsed < BODY_TIMEOUT + 3
        s.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(1) == b""  # and the connection is closed, not kept for lingering
    assert hardened.client("kms").list_keys()["Keys"] is not None


def _readable(s: socket.socket) -> bool:
    """Whether the non-blocking ``s`` has something to read (or was closed)."""
    try:
        s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def test_control_settings_validate_the_timeouts(tmp_path: Path) -> None:
    for bad in ({"header_timeout": 0}, {"body_timeout": -1.0}, {"max_request_body": 0}):
        with pytest.raises(ConfigError) as e:
            ControlSettings(data_dir=tmp_path, **bad)
        assert next(iter(bad)) in str(e.value)
    s = ControlSettings(data_dir=tmp_path)
    assert s.header_timeout == 10.0 and s.body_timeout == 30.0
    from lbproxy.cli import build_parser, control_settings, main

    args = build_parser().parse_args(["control", "--header-timeout", "2.5", "--body-timeout", "4"])
    assert (control_settings(args).header_timeout, control_settings(args).body_timeout) == (2.5, 4.0)
    assert main(["control", "--data-dir", str(tmp_path), "--body-timeout", "0"]) == 2


# == refused before the body is read ================================================================


def _refused_without_body(ct: ControlThread, path: str, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    """Send a head announcing 4 MiB and no body at all: the answer must come anyway, within 2 s."""
    with socket.create_connection(_addr(ct), timeout=5) as s:
        s.sendall(_head(path, {"Host": "x", "Content-Length": str(4 * MIB - 1), **headers}))
        return _read_response(s, 2.0)


def test_unauthenticated_requests_are_answered_before_their_body(hardened: ControlThread) -> None:
    known = hardened.admin.access_key_id
    kms = {"X-Amz-Target": "TrentService.ListKeys", "X-Amz-Date": _amz_now()}
    cases = [
        ({**kms}, 403, "MissingAuthenticationTokenException"),
        ({**kms, "Authorization": "AWS4-HMAC-SHA256 garbage"}, 400, "IncompleteSignatureException"),
        (
            {**kms, "Authorization": _authorization("AKIAUNKNOWNUNKNOWN00", "host;x-amz-date;x-amz-target")},
            400,
            "UnrecognizedClientException",
        ),
        ({**kms, "Authorization": _authorization(known, "host;x-amz-date")}, 400, "InvalidSignatureException"),
        (
            {**kms, "Authorization": _authorization(known, "host;x-amz-date;x-amz-target", service="s3")},
            400,
            "InvalidSignatureException",
        ),
    ]
    for headers, status, code in cases:
        got, out = _refused_without_body(hardened, "/", headers)
        assert (got, out.get("__type")) == (status, code), headers
    # lbproxy's own endpoints (the data-plane report) too.
    got, out = _refused_without_body(hardened, "/dataplane/v1/load-balancers/lb/report", {"X-Amz-Date": _amz_now()})
    assert (got, out["__type"]) == (403, "MissingAuthenticationTokenException")
    lbp = {
        "X-Amz-Date": _amz_now(),
        "Authorization": _authorization("AKIAUNKNOWNUNKNOWN00", "host;x-amz-date", service="lbproxy"),
    }
    got, out = _refused_without_body(hardened, "/dataplane/v1/load-balancers/lb/report", lbp)
    assert (got, out["__type"]) == (400, "UnrecognizedClientException")
    # Over the limit by Content-Length: refused before anything else, signed or not.
    with socket.create_connection(_addr(hardened), timeout=5) as s:
        s.sendall(_head("/", {"Host": "x", "Content-Length": str(64 * MIB), **kms}))
        status, out = _read_response(s, 2.0)
    assert status == 400 and out["__type"] == "ValidationException" and "exceeds the limit" in str(out["message"])


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: The attacking clients, in their own process so that this one's RSS is the control plane's alone: ``clients``
#: connections at once, ``rounds`` times, each sending its head then the whole body, then reading the answer.
_FLOOD = r"""
import asyncio, json, sys

async def one(host, port, head, body):
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return -2
    try:
        writer.write(head)
        writer.write(body)
        try:
            await asyncio.wait_for(writer.drain(), 30)
        except (OSError, asyncio.TimeoutError):
            pass  # refused and closed while still sending: fine
        line = await asyncio.wait_for(reader.readline(), 30)
        return int(line.split()[1]) if line else -1
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return -1
    finally:
        writer.close()

async def main():
    host, port, clients, rounds, size = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
    head = sys.stdin.buffer.read()
    body = b"{" + b" " * (size - 2) + b"}"
    out = []
    for _ in range(rounds):
        out += await asyncio.gather(*(one(host, port, head, body) for _ in range(clients)))
    print(json.dumps(out))

asyncio.run(main())
"""


def test_big_unauthenticated_bodies_are_not_buffered(hardened: ControlThread) -> None:
    """40 clients at once, 3 rounds, each sending a 4 MiB body with an unknown access key: the control plane
    (this process; the clients run in another) must not grow by their size. The measure is printed (``-s``)."""
    import subprocess
    import sys

    clients, rounds, size = 40, 3, 4 * MIB - 64
    head = _head(
        "/",
        {
            "Host": "x",
            "Content-Type": "application/x-amz-json-1.1",
            "Content-Length": str(size),
            "X-Amz-Target": "TrentService.ListKeys",
            "X-Amz-Date": _amz_now(),
            "Authorization": _authorization("AKIAUNKNOWNUNKNOWN00", "host;x-amz-date;x-amz-target"),
        },
    )
    hardened.client("kms").list_keys()  # warm up the server's code paths first
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.005)

    host, port = _addr(hardened)
    baseline = _rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        flood = subprocess.run(
            [sys.executable, "-c", _FLOOD, host, str(port), str(clients), str(rounds), str(size)],
            input=head,
            capture_output=True,
            timeout=100,
            check=True,
        )
    finally:
        stop.set()
        sampler.join(5)
    results = json.loads(flood.stdout)
    growth = peak[0] - baseline
    print(
        f"\nRSS growth under {clients} x {size / MIB:.1f} MiB unauthenticated bodies x {rounds}: "
        f"{growth / MIB:.1f} MiB (baseline {baseline / MIB:.1f} MiB)"
    )
    assert len(results) == clients * rounds
    answered = [r for r in results if r != -1]
    assert answered and all(r == 400 for r in answered), results
    # Buffering them would take clients x size = 160 MiB (before the head check: 150-176 MiB); what remains is aiohttp's
    # bounded per-connection read buffer while it drains a refused body.
    assert growth < clients * size / 4, f"RSS grew by {growth / MIB:.1f} MiB"
    assert hardened.client("kms").list_keys()["Keys"] is not None


# == X-Amz-Target must be signed ====================================================================


class _WithoutTarget(SigV4Auth):
    """botocore's signer, leaving ``x-amz-target`` out of ``SignedHeaders`` (as a forger would want)."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = super().headers_to_sign(request)
        del headers["x-amz-target"]
        return headers


def _send_prepared(url: str, req: AWSRequest) -> tuple[int, dict[str, object]]:
    import urllib.error
    import urllib.request

    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method=p.method)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_an_unsigned_target_cannot_be_changed(control: ControlThread) -> None:
    kms = control.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    admin: Principal = control.admin
    req = AWSRequest(
        method="POST",
        url=control.url + "/",
        data=json.dumps({"KeyId": key_id}).encode(),
        headers={"X-Amz-Target": "TrentService.DescribeKey", "Content-Type": "application/x-amz-json-1.1"},
    )
    _WithoutTarget(Credentials(admin.access_key_id, admin.secret_access_key), "kms", "us-east-1").add_auth(req)
    assert "x-amz-target" not in req.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    req.headers.replace_header("X-Amz-Target", "TrentService.DisableKey")
    status, out = _send_prepared(control.url, req)
    assert 400 <= status < 500 and out["__type"] == "InvalidSignatureException", (status, out)
    assert "'X-Amz-Target' must be a 'SignedHeader'" in str(out["message"])
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True
    # Signed as botocore signs (target included), the same call works.
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_lbproxy_endpoints_need_host_and_date_signed(control: ControlThread) -> None:
    admin = control.admin

    class _WithoutHost(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
            headers = super().headers_to_sign(request)
            del headers["host"]
            return headers

    req = AWSRequest(method="GET", url=control.url + "/events")
    _WithoutHost(Credentials(admin.access_key_id, admin.secret_access_key), "lbproxy", "us-east-1").add_auth(req)
    status, out = _send_prepared(control.url, req)
    assert status == 400 and out["__type"] == "InvalidSignatureException", (status, out)
    assert "'Host' or ':authority' must be a 'SignedHeader'" in str(out["message"])

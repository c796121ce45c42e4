#!/usr/bin/env python3
"""Resident memory per idle connection, lbproxy vs HAProxy: ``python bench/memory.py``.

Each proxy runs in front of the same nginx backend with the same certificate (lbproxy exactly as in
production: ``lbproxy lb`` set up through its control plane, the key decrypted through its grant; HAProxy
``nbthread 1``). For each kind of connection, ``--connections`` clients (default 10,000) connect one after
the other, make one request and keep the connection open, idle:

- ``http``: a keep-alive HTTP connection after its first response;
- ``tls``: a keep-alive HTTPS connection after its handshake and first response (TLS 1.3, resumption off).

The figure is the growth of the resident memory (VmRSS, ``/proc/PID/status``) of the proxy's processes (lbproxy:
the supervisor and its workers) from before the connections to while they are all open, divided by their
number; the connections are then closed. One worker for lbproxy, one thread for HAProxy. The client needs a file
descriptor per connection (``ulimit -n`` above the count; raised up to the hard limit). Loopback only; every
step bounded.
Writes ``bench/MEMORY-<date>-<time>.md`` (or ``--out``). Dependencies: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import resource
import ssl
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/run.py: the same stack, certificates and proxies as the throughput benchmark)


async def open_idle(
    port: int, count: int, ctx: ssl.SSLContext | None, parallel: int = 64
) -> list[asyncio.StreamWriter]:
    """``count`` connections, each after one keep-alive request and its response."""
    writers: list[asyncio.StreamWriter] = []
    left = iter(range(count))

    async def one() -> None:
        for _ in left:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(run.LOOPBACK, port, ssl=ctx, server_hostname="localhost" if ctx else None),
                15,
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 15)
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(parallel)))
    return writers


async def measure(name: str, pids: list[int], port: int, count: int, ctx: ssl.SSLContext | None) -> dict[str, float]:
    await asyncio.sleep(1.0)
    before = run.rss_kib(pids)
    started = time.monotonic()
    writers = await open_idle(port, count, ctx)
    await asyncio.sleep(2.0)  # let the proxy settle (buffers shrink, the sweeper runs)
    during = run.rss_kib(pids)
    took = time.monotonic() - started
    for w in writers:
        w.transport.abort()
    await asyncio.sleep(2.0)
    after = run.rss_kib(pids)
    per = (during - before) * 1024 / count
    print(f"  {name}: {count} idle connections in {took:.0f} s: RSS {before / 1024:.1f} -> {during / 1024:.1f} MiB "
          f"({per / 1024:.1f} KiB each), {after / 1024:.1f} MiB after they closed", flush=True)  # fmt: skip
    return {"before": before / 1024, "during": during / 1024, "after": after / 1024, "per_kib": per / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=10_000, help="idle connections of each kind (default 10000)")
    ap.add_argument("--key", choices=("ec", "rsa"), default="ec", help="certificate key type (default ec)")
    ap.add_argument("--out", type=Path, default=None, help="report file (default: a new bench/MEMORY-<date>-<time>.md)")
    args = ap.parse_args()
    out = args.out or HERE / f"MEMORY-{dt.datetime.now():%Y%m%d-%H%M%S}.md"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # HAProxy reserves two descriptors per connection of its maxconn (client and server side) and refuses to
    # start when the limit is lower, so the hard limit bounds the count for both proxies alike.
    haproxy_maxconn = min(args.connections + 1000, (hard - 100) // 2)
    if args.connections + 200 > hard or args.connections > haproxy_maxconn - 100:
        sys.exit(
            f"bench: {args.connections} connections need a hard `ulimit -n` of at least "
            f"{2 * (args.connections + 100) + 100} (HAProxy reserves two descriptors per connection); it is {hard}: "
            f"use --connections {max(0, haproxy_maxconn - 100)} or raise the hard limit"
        )
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run.ensure_tools()
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.options |= ssl.OP_NO_TICKET
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lbproxy-memory-") as tmp:
        workdir = Path(tmp)
        certs = run.make_certs(args.key)
        backend = run.free_port()
        nginx = run.start_nginx_backend(workdir, backend)
        config = workdir / "lb.toml"
        config.write_text(f"[settings]\nmax_connections = {args.connections + 1000}\noffer_tls13 = true\n")
        try:
            stack = run.start_control(workdir / "lbproxy")
            try:
                run.setup_load_balancer(stack, "memory", certs, [backend])
                http, https, admin = run.free_port(), run.free_port(), run.free_port()
                lb = run.start_lb(stack, "memory", http, https, 1, admin, ("--config", str(config)))
                try:
                    pids = run.descendants(lb.popen.pid)
                    print("lbproxy (1 worker):", flush=True)
                    results[("lbproxy", "http")] = asyncio.run(measure("http", pids, http, args.connections, None))
                    results[("lbproxy", "tls")] = asyncio.run(measure("tls", pids, https, args.connections, client))
                finally:
                    lb.stop()
            finally:
                stack.control.stop()
            http, https = run.free_port(), run.free_port()
            cfg = run.haproxy_config(workdir, certs, http, https, [backend])
            cfg.write_text(cfg.read_text().replace("maxconn 8000", f"maxconn {haproxy_maxconn}\n    ulimit-n {hard}"))
            command = ["haproxy", "-f", str(cfg), "-db"]
            with (workdir / "haproxy.log").open("wb") as log:
                ha = run.Proc("haproxy", run.subprocess.Popen(command, stdout=log, stderr=log))
            try:
                run.wait_port(https)
            except TimeoutError:
                ha.stop()
                sys.exit(f"bench: HAProxy did not start: {(workdir / 'haproxy.log').read_text()[-2000:]}")
            try:
                pids = run.descendants(ha.popen.pid)
                print("HAProxy (nbthread 1):", flush=True)
                results[("haproxy", "http")] = asyncio.run(measure("http", pids, http, args.connections, None))
                results[("haproxy", "tls")] = asyncio.run(measure("tls", pids, https, args.connections, client))
            finally:
                ha.stop()
        finally:
            nginx.stop()
    lines = [
        f"# Memory per idle connection, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python bench/memory.py --connections {args.connections} --key {args.key}`. {run.environment()}",
        "",
        "| proxy | connection | RSS before (MiB) | with the connections open (MiB) | per connection (KiB) | "
        "after they closed (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for (proxy, kind), r in results.items():
        lines.append(f"| {proxy} | idle {kind} | {r['before']:.1f} | {r['during']:.1f} | {r['per_kib']:.1f} | "
                     f"{r['after']:.1f} |")  # fmt: skip
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

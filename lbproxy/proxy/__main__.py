"""``python -m lbproxy.proxy``: run one load balancer's data plane from a TOML file (no control plane).

``run_load_balancer`` is what ``lbproxy lb`` calls once it has a spec and a key source; this module's
``main`` is the stand-alone form used by tests and demos::

    python -m lbproxy.proxy --config lb.toml [--key-source MODULE:CALLABLE --key-param NAME=VALUE ...]
                            [--control-stdin]

The TOML file has a ``[load_balancer]`` table (``LoadBalancerSpec`` fields, ``[[load_balancer.instances]]``
with ``name`` and ``address = "HOST:PORT"``) and a ``[settings]`` table (``ProxySettings`` fields).
With ``--control-stdin``, JSON lines on stdin drive it as the control plane's event stream would:
``{"op": "revoke"}``, ``{"op": "rotate", "key_source": {"factory": ..., "params": {...}}}``,
``{"op": "update", "load_balancer": {...}}``, ``{"op": "stop"}``; each is acknowledged on stdout
(``{"event": "revoked"}`` ...). The first stdout line is
``{"event": "started", "pid", "http_port", "https_port", "admin_port"}``. SIGTERM/SIGINT stop it
(revocation order: handshakes refused, drain, key holders exit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from lbproxy.config import ConfigError, load_toml, settings_from_mapping
from lbproxy.proxy.keys import KeySourceRef
from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings, spec_from_mapping
from lbproxy.proxy.supervisor import LoadBalancer


async def run_load_balancer(
    spec: LoadBalancerSpec,
    settings: ProxySettings,
    key_source: KeySourceRef | None,
    *,
    control: Callable[[LoadBalancer], Awaitable[None]] | None = None,
    on_started: Callable[[LoadBalancer], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT or until ``control`` returns; always stops in revocation order.

    ``control(lb)`` is the in-process control-plane client: it follows the event stream and calls
    ``lb.update(spec)``, ``lb.rotate(KeySourceRef)``, ``lb.revoke()``.
    """
    lb = LoadBalancer(spec, settings, key_source)
    await lb.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if on_started is not None:
            on_started(lb)
        waiters = [loop.create_task(stop.wait())]
        if control is not None:
            waiters.append(loop.create_task(control(lb)))  # type: ignore[arg-type]
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        for t in done:
            t.result()
    finally:
        await lb.stop()


def _stdin_control(out: Callable[[dict[str, object]], None]) -> Callable[[LoadBalancer], Awaitable[None]]:
    async def control(lb: LoadBalancer) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            msg = json.loads(line)
            op = msg.get("op")
            if op == "revoke":
                await lb.revoke()
                out({"event": "revoked", "pids": lb.worker_pids()})
            elif op == "rotate":
                ref = KeySourceRef.from_mapping(msg["key_source"]) if msg.get("key_source") else None
                await lb.rotate(ref)
                out({"event": "rotated", "pids": lb.worker_pids(), "tls": lb.has_key})
            elif op == "update":
                await lb.update(spec_from_mapping(msg["load_balancer"]))
                out({"event": "updated"})
            elif op == "metrics":
                out({"event": "metrics", "metrics": lb.metrics_snapshot(), "health": lb.health_snapshot()})
            elif op == "stop":
                return

    return control


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbproxy.proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--key-source", help="MODULE:CALLABLE returning a KeySource")
    parser.add_argument("--key-param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--control-stdin", action="store_true")
    args = parser.parse_args(argv)
    try:
        doc = load_toml(args.config)
        spec = spec_from_mapping(doc.get("load_balancer", {}), "load_balancer.")
        settings = settings_from_mapping(ProxySettings, doc.get("settings", {}), "settings.")
        params = dict(p.split("=", 1) for p in args.key_param)
    except (ConfigError, ValueError) as exc:
        print(f"lbproxy: {exc}", file=sys.stderr)
        return 2
    key_source = KeySourceRef(args.key_source, params) if args.key_source else None

    def out(msg: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def started(lb: LoadBalancer) -> None:
        import os

        out(
            {
                "event": "started",
                "pid": os.getpid(),
                "http_port": lb.http_port,
                "https_port": lb.https_port,
                "admin_port": lb.admin_port,
                "worker_pids": lb.worker_pids(),
                "tls": lb.has_key,
            }
        )

    import uvloop

    uvloop.run(
        run_load_balancer(
            spec, settings, key_source,
            control=_stdin_control(out) if args.control_stdin else None, on_started=started,
        )
    )  # fmt: skip
    out({"event": "stopped"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

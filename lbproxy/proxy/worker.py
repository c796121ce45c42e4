"""A generation of key-holding worker processes (``python -m lbproxy.proxy.worker``, started by the supervisor).

Why a generation *leader*: two requirements pull apart. The supervisor must never touch key
material (so its memory never needs wiping), yet the workers should be forked *after* the SSLContext is
built so they share session-ticket keys (separate contexts never resume each other's tickets). Both hold
when a fresh process leads each generation:

1. The supervisor spawns the leader (a new interpreter: nothing of the supervisor's heap, and nothing of a
   previous generation's freed key copies) with the listening sockets and one control socketpair per
   worker (``--http``/``--https``/``--ctrl`` fds), and sends the generation's config (spec, settings,
   stickiness secret, a ``KeySourceRef``, the healthy set) as one JSON line on the first control socket.
2. The leader hardens itself (``RLIMIT_CORE`` 0, not dumpable), resolves the key source and loads the key
   *inside this process*, builds the keyed context (key through a memfd, buffers zeroed) and the key-less
   base context whose ticket keys all workers will share.
3. It forks ``workers - 1`` siblings (single-threaded, no event loop yet), each dying with the leader
   (``PR_SET_PDEATHSIG``), itself dying with the supervisor. Every process then runs its own uvloop
   ``Dataplane`` on the listening sockets it inherited and talks to the supervisor over its own socketpair.
   Once the generation serves, a sibling outlives a dead leader as the supervisor's adopted child (it keeps
   its connections and drains when told; see ``LEADER_GONE``).
4. ``stop`` (revocation, rotation, shutdown) ends the generation: stop accepting, refuse handshakes,
   drain, abort TLS transports, report final counters, exit. The leader waits for its siblings before it
   exits; the supervisor waits for every worker's channel to close. Process exit is the wipe guarantee.

A generation accepts connections only once the supervisor made it the current one (``serve``): a generation
that is discarded (its key could not be loaded while the current one holds it; a revocation arrived while
it started) never held a client's connection.

Messages (JSON lines). Supervisor -> worker: ``serve``, ``update {spec}``, ``health {healthy}``, ``revoke``,
``stop {mode}``. Worker -> supervisor: ``ready {pid, worker, tls}``, ``serving``, ``metrics {counters}``,
``error {message, key, kind}``, ``exited {pid, returncode}`` (the leader reaped a sibling), ``stopped``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
from typing import Any

from lbproxy.config import settings_from_mapping
from lbproxy.contract.tlspolicies import get_policy
from lbproxy.proxy.dataplane import STOP_REVOKE, STOP_SHUTDOWN, Dataplane
from lbproxy.proxy.keys import (
    KEY_REFUSED,
    KEY_UNAVAILABLE,
    KeyRefused,
    KeySourceRef,
    KeyUnavailable,
    die_with_parent,
    harden_key_holder,
    zero,
)
from lbproxy.proxy.spec import LoadBalancerSpec, ProxySettings, spec_from_mapping
from lbproxy.proxy.tls import TlsTerminator, keyed_context

log = logging.getLogger("lbproxy.proxy")


def _read_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("supervisor closed the control channel")
        data += chunk
        if len(data) > limit:
            raise ValueError("control message too large")
    return bytes(data)


#: A serving sibling's parent-death signal: its leader died. It stays (and drains when told) only if the
#: supervisor adopted it; any other new parent means the supervisor is gone too, and a key holder never
#: outlives it. Until its generation serves, a sibling dies with its leader (SIGKILL): a generation discarded
#: while it started leaves nothing behind.
LEADER_GONE = signal.SIGUSR1


def _load_keyed(
    key_source: dict[str, Any] | None, spec: LoadBalancerSpec, tls13: bool
) -> tuple[ssl.SSLContext | None, dict[str, Any] | None]:
    """(keyed context or None, the ``error`` message for the supervisor or None). The key never leaves this
    function but in OpenSSL."""
    if not key_source:
        return None, None
    try:
        loaded = KeySourceRef.from_mapping(key_source).resolve().load()
    except KeyUnavailable as exc:  # the supervisor keeps the key it has and tries again later
        return None, _key_error(KEY_UNAVAILABLE, f"key unavailable: {exc}")
    except KeyRefused as exc:  # an expected outcome (a revoked grant): said in words
        return None, _key_error(KEY_REFUSED, str(exc))
    except Exception as exc:  # the generation then serves without a key (fail closed), and says why
        return None, _key_error(KEY_REFUSED, f"key source failed: {type(exc).__name__}: {exc}")
    if loaded is None:
        return None, None
    chain, key = loaded
    try:
        return keyed_context(get_policy(spec.tls_policy_name), chain, key, tls13=tls13), None
    except (ssl.SSLError, OSError, ValueError) as exc:
        return None, _key_error(KEY_REFUSED, f"certificate or key refused: {exc}")
    finally:
        zero(key)


def _key_error(kind: str, message: str) -> dict[str, Any]:
    return {"op": "error", "key": True, "kind": kind, "message": message}


def _stay_only_with_supervisor(supervisor: int) -> None:
    """Exit now unless this process's parent is the supervisor (see ``LEADER_GONE``)."""
    if os.getppid() != supervisor:
        os._exit(1)


async def _serve(
    index: int,
    generation: int,
    ctrl: socket.socket,
    http_socks: list[socket.socket],
    https_socks: list[socket.socket],
    cfg: dict[str, Any],
    settings: ProxySettings,
    spec: LoadBalancerSpec,
    terminator: TlsTerminator,
    error: dict[str, Any] | None,
    siblings: list[int],
    supervisor: int,
) -> None:
    dp = Dataplane(
        spec,
        settings,
        terminator=terminator,
        stickiness_secret=bytes.fromhex(cfg["secret"]),
        name=f"g{generation}w{index}",
    )
    dp.set_healthy(frozenset(cfg.get("healthy", ())))
    reader, writer = await asyncio.open_unix_connection(sock=ctrl)

    def send(msg: dict[str, Any]) -> None:
        writer.write(json.dumps(msg).encode() + b"\n")

    if error and index == 0:  # (the siblings were forked after the load: the leader speaks for them)
        send(error)
    send({"op": "ready", "pid": os.getpid(), "worker": index, "tls": terminator.has_key})
    del terminator  # the Dataplane holds the only reference (dropped at stop)
    stop_mode = STOP_SHUTDOWN
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if index != 0:
        loop.add_signal_handler(LEADER_GONE, _stay_only_with_supervisor, supervisor)
    for pid in siblings:  # the leader reaps its siblings as they exit and tells the supervisor how
        _watch_sibling(loop, pid, send)

    async def report() -> None:
        while True:
            await asyncio.sleep(settings.metrics_interval)
            send({"op": "metrics", "counters": dp.metrics.as_dict()})

    reporter = loop.create_task(report())
    stop_wait = loop.create_task(stopping.wait())
    try:
        while True:
            read = loop.create_task(reader.readline())
            done, _ = await asyncio.wait({read, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if stop_wait in done:
                read.cancel()
                break
            line = read.result()
            if not line:
                break  # supervisor gone: shut down
            msg = json.loads(line)
            op = msg.get("op")
            if op == "serve":  # the supervisor made this generation the current one: accept connections now
                if index != 0:  # from now on, outlive a dead leader only as the supervisor's adopted child
                    die_with_parent(LEADER_GONE)  # (had the leader died before this line, SIGKILL came first)
                await dp.start(http_socks, https_socks)
                send({"op": "serving"})
            elif op == "update":
                dp.update(spec_from_mapping(msg["spec"]))
            elif op == "health":
                dp.set_healthy(frozenset(msg["healthy"]))
            elif op == "revoke":
                dp.revoke_tls()
            elif op == "stop":
                stop_mode = msg.get("mode", STOP_SHUTDOWN)
                break
    finally:
        reporter.cancel()
        stop_wait.cancel()

    async def follow_while_stopping() -> None:
        # A rotated-out generation keeps listening: a revocation (or shutdown) of its key escalates the stop.
        with contextlib.suppress(Exception):
            while True:
                line = await reader.readline()
                if not line:
                    dp.escalate(STOP_SHUTDOWN)
                    return
                msg = json.loads(line)
                if msg.get("op") == "revoke":
                    dp.escalate(STOP_REVOKE)
                elif msg.get("op") == "stop":
                    dp.escalate(msg.get("mode", STOP_SHUTDOWN))

    follower = loop.create_task(follow_while_stopping())
    try:
        await dp.stop(stop_mode)
    finally:
        follower.cancel()
    with contextlib.suppress(OSError):
        send({"op": "metrics", "counters": dp.metrics.as_dict()})
        send({"op": "stopped"})
        await writer.drain()
        writer.close()


def _watch_sibling(loop: asyncio.AbstractEventLoop, pid: int, send: Any) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return

    def reap() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                with contextlib.suppress(OSError, RuntimeError):
                    send({"op": "exited", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})

    loop.add_reader(fd, reap)


def _slot_sockets(arg: str, index: int) -> list[socket.socket]:
    """This worker's listening sockets from ``--http``/``--https``: with one group every worker shares it; with
    a group per slot (``SO_REUSEPORT``), worker ``index`` takes its own and closes the others' fds."""
    groups = [[int(fd) for fd in group.split(",") if fd] for group in arg.split("/")] if arg else []
    mine = groups[index] if len(groups) > 1 else (groups[0] if groups else [])
    for group in groups:
        if group is not mine:
            for fd in group:
                os.close(fd)
    return [socket.socket(fileno=fd) for fd in mine]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbproxy.proxy.worker")
    parser.add_argument(
        "--http", default="", help="listening socket fds (HTTP): comma-separated, one group per worker slot split by /"
    )
    parser.add_argument("--https", default="", help="listening socket fds (HTTPS), as --http")
    parser.add_argument("--ctrl", required=True, help="comma-separated control socket fds, one per worker")
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--supervisor", type=int, default=0, help="the supervisor's pid (default: the parent)")
    args = parser.parse_args(argv)
    die_with_parent()
    supervisor = args.supervisor or os.getppid()
    _stay_only_with_supervisor(supervisor)  # (it may have died before the line above)
    ctrl_fds = [int(x) for x in args.ctrl.split(",")]
    ctrl0 = socket.socket(fileno=ctrl_fds[0])
    cfg = json.loads(_read_line(ctrl0))
    settings = settings_from_mapping(ProxySettings, cfg["settings"])
    spec = spec_from_mapping(cfg["spec"])
    logging.basicConfig(
        level=logging.INFO if settings.access_log else logging.WARNING, stream=sys.stderr, format="%(message)s"
    )
    if cfg.get("key_source") and settings.harden_key_holders:
        harden_key_holder()
    keyed, error = _load_keyed(cfg.get("key_source"), spec, settings.offer_tls13)
    terminator = TlsTerminator(get_policy(spec.tls_policy_name), keyed, tls13=settings.offer_tls13)
    del keyed
    # Fork the siblings now: they share the base context's session-ticket keys and the keyed context.
    index = 0
    children: list[int] = []
    leader = os.getpid()
    for i in range(1, len(ctrl_fds)):
        pid = os.fork()
        if pid == 0:
            index = i
            children = []
            die_with_parent()  # (until the generation serves: see LEADER_GONE)
            if os.getppid() != leader:  # orphaned before the line above
                os._exit(1)
            break
        children.append(pid)
    if index != 0:
        ctrl0.detach()  # the sibling's copy of the leader's channel: leave it to the leader
    for i, fd in enumerate(ctrl_fds):
        if i != index and i != 0:
            os.close(fd)
    ctrl = ctrl0 if index == 0 else socket.socket(fileno=ctrl_fds[index])
    if index != 0:
        os.close(ctrl_fds[0])
    http_socks = _slot_sockets(args.http, index)
    https_socks = _slot_sockets(args.https, index)
    import uvloop

    try:
        uvloop.run(
            _serve(
                index, args.generation, ctrl, http_socks, https_socks, cfg, settings, spec, terminator, error,
                children, supervisor,
            )
        )  # fmt: skip
    except Exception:
        log.exception("worker %d of generation %d failed", index, args.generation)
        rc = 1
    else:
        rc = 0
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where a proxied connection's CPU goes, counted exactly: ``python bench/profile.py``.

Wall-clock benchmarks on this shared 2-core machine swing by 15-30 % from round to round, so an
optimisation worth 5 % cannot be seen in ``bench/run.py``. This tool counts instead of timing:

- ``--what instructions`` (default): the lbproxy worker runs under valgrind's callgrind; after a warm-up
  the counters are zeroed, wrk drives ``--seconds`` of load, and the dump is split per connection (or per
  request, for ``https``) by shared object: libcrypto/libssl (the TLS work), libpython (the interpreter),
  uvloop, httptools, libc. ``--peer haproxy`` runs HAProxy (nbthread 1) under callgrind the same way, so
  the two can be compared object by object (OpenSSL's share is the same code in both).
- ``--what opcodes``: the worker runs with a tracer that counts executed Python bytecodes per function
  (sys.settrace with opcode events) over the same load: which Python functions a request costs.
- ``--what cpu``: user and system CPU time of the worker (and of HAProxy with ``--peer haproxy``) per
  connection, from /proc, nothing attached (wall-clock noise applies: compare runs made back to back).
- ``--what samples``: ``perf record -e cpu-clock`` attached to the worker (and to HAProxy) during the
  load: where the *time* goes, kernel included, by shared object and by function (sampling, so cache
  misses and the kernel count as they do in wall-clock runs; needs ``perf``, no hardware counters).
- ``--what syscalls``: ``strace -c`` attached to the worker (and, with ``--peer haproxy``, to HAProxy)
  during the load: system calls per connection, which callgrind does not see (kernel time counts in
  ``bench/run.py``'s req/CPU-s).

Counts are deterministic but instructions are not cycles: interpreter code runs at a far lower IPC than
OpenSSL's arithmetic (see bench/README.md), so a Python instruction saved is worth several OpenSSL ones.

The load balancer runs stand-alone (``LoadBalancer`` with ``TestFileKeySource``, no control plane) in
front of two nginx backends; only loopback is used and every wrk run is bounded by ``--seconds``.
Needs valgrind (``apt-get install valgrind``) for ``instructions``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (bench/run.py: nginx backends, certificates, wrk)

#: wrk arguments, and whether wrk runs with the no-resume shim (a full handshake per connection).
SCENARIOS: dict[str, tuple[list[str], bool]] = {
    "resumed": (["-H", "Connection: close"], False),
    "full": (["-H", "Connection: close"], True),
    "https": ([], False),
    "http": ([], False),  # keep-alive plain HTTP (the HTTP listener)
    "close": (["-H", "Connection: close"], False),  # a new plain TCP connection per request (the HTTP listener)
}
#: The scenarios that load the HTTP listener.
PLAIN = ("http", "close")

# The opcode tracer, run as the worker's interpreter: counts per function, toggled by SIGUSR2, written
# as JSON next to the worker when switched off.
_OPCOUNT = r"""
import collections, json, os, runpy, signal, sys
counts = collections.Counter()
state = {"on": False}
def tracer(frame, event, arg):
    if event == "call":
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
    elif event == "opcode":
        co = frame.f_code
        counts[f"{co.co_filename.rsplit('/', 1)[-1]}:{co.co_firstlineno}:{co.co_name}"] += 1
    return tracer
def toggle(*_):
    if not state["on"]:
        counts.clear(); state["on"] = True; sys.settrace(tracer)
    else:
        sys.settrace(None); state["on"] = False
        out = os.environ["LBPROXY_OPCOUNT_OUT"]
        with open(out + ".part", "w") as f:  # (renamed when whole: the reader waits for the name)
            json.dump(counts.most_common(), f)
        os.replace(out + ".part", out)
signal.signal(signal.SIGUSR2, toggle)
sys.argv = sys.argv[2:]  # drop "-m lbproxy.proxy.worker"
runpy.run_module("lbproxy.proxy.worker", run_name="__main__", alter_sys=True)
"""


#: callgrind's cycle estimate (as KCachegrind's "CEst"): an L1 miss costs ~10 cycles, a last-level miss ~100.
CYCLE_WEIGHTS = {"Ir": 1, "I1mr": 10, "D1mr": 10, "D1mw": 10, "ILmr": 100, "DLmr": 100, "DLmw": 100}


def parse_callgrind(path: Path) -> tuple[collections.Counter[str], collections.Counter[tuple[str, str]]]:
    """Self cost per object and per (object, function) from a callgrind dump: instructions, or estimated
    cycles when the dump has cache-simulation events (``--cache-sim``)."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    per_ob: collections.Counter[str] = collections.Counter()
    per_fn: collections.Counter[tuple[str, str]] = collections.Counter()
    ob = fn = "?"
    skip = False
    weights = [1]

    def name(kind: str, val: str) -> str:
        m = re.match(r"\((\d+)\)(?: (.*))?", val)
        if not m:
            return val
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), val)

    for line in path.read_text(errors="replace").splitlines():
        if not line:
            continue
        if line[0].isdigit() or line[0] in "+-*":
            if skip:  # the inclusive cost of a call: not this function's own
                skip = False
                continue
            parts = line.split()
            cost = sum(w * int(v) for w, v in zip(weights, parts[1:], strict=False))  # trailing zeros are omitted
            per_ob[ob] += cost
            per_fn[(ob, fn)] += cost
            continue
        key, _, val = line.partition("=")
        if key == "ob":
            ob = name("ob", val).rsplit("/", 1)[-1]
        elif key == "fn":
            fn = name("fn", val)
        elif key == "cob":
            name("ob", val)
        elif key == "cfn":
            name("fn", val)
        elif key == "calls":
            skip = True
        elif line.startswith("events:"):
            weights = [CYCLE_WEIGHTS.get(e, 0) for e in line.split()[1:]]
    return per_ob, per_fn


def wrk(port: int, scenario: str, seconds: float) -> int:
    """Requests made by wrk in ``scenario`` against ``port`` (the HTTP listener's for ``PLAIN`` scenarios)."""
    extra, no_resume = SCENARIOS[scenario]
    url = f"{'http' if scenario in PLAIN else 'https'}://{bench.LOOPBACK}:{port}/"
    cmd = ["wrk", "-t1", "-c4", f"-d{seconds:g}s", "--timeout", "10s", *extra, url]
    with tempfile.TemporaryDirectory(prefix="lbproxy-wrk-") as tmp:
        env = dict(os.environ)
        if no_resume:
            env["LD_PRELOAD"] = str(bench.build_shim(Path(tmp)))
        out = subprocess.run(cmd, capture_output=True, text=True, env=env).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise SystemExit(f"wrk failed: {out}")
    return int(m.group(1))


def warm_up(port: int) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 600  # a worker under valgrind starts slowly
    while True:
        try:
            urllib.request.urlopen(f"https://{bench.LOOPBACK}:{port}/", context=ctx, timeout=30).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def report(title: str, dump: Path, units: int, unit: str, top: int) -> None:
    per_ob, per_fn = parse_callgrind(dump)
    cycles = "I1mr" in dump.read_text(errors="replace")[:4096]
    total = sum(per_ob.values())
    what = "estimated cycles" if cycles else "instructions"
    print(f"\n## {title}: {total / units / 1e3:,.0f}k {what} per {unit} ({units} {unit}s)")
    for ob, v in per_ob.most_common(8):
        print(f"{v / units / 1e3:9,.1f}k  {100 * v / total:5.1f} %  {ob}")
    print(f"-- top {top} functions (self)")
    for (ob, fn), v in per_fn.most_common(top):
        print(f"{v / units / 1e3:9,.1f}k  {ob[:24]:24s} {fn[:80]}")


def callgrind(out: str, cache_sim: bool) -> list[str]:
    sim = "yes" if cache_sim else "no"
    return ["valgrind", "-q", "--tool=callgrind", f"--cache-sim={sim}", f"--callgrind-out-file={out}"]


def callgrind_wrapper(workdir: Path, out: str, cache_sim: bool) -> Path:
    wrapper = workdir / "python-under-callgrind"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(callgrind(out, cache_sim))} "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def opcount_wrapper(workdir: Path) -> Path:
    script = workdir / "opcount.py"
    script.write_text(_OPCOUNT)
    wrapper = workdir / "python-counting-opcodes"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


async def profile_lbproxy(args: argparse.Namespace, workdir: Path, backends: list[int]) -> None:
    from lbproxy.proxy.keys import KeySourceRef
    from lbproxy.proxy.spec import ProxySettings, spec_from_mapping
    from lbproxy.proxy.supervisor import LoadBalancer

    certs = bench.make_certs(args.key)
    (workdir / "chain.pem").write_bytes(certs.cert_pem + certs.chain_pem)
    (workdir / "key.pem").write_bytes(certs.key_pem)
    port, http_port = bench.free_port(), bench.free_port()
    spec = spec_from_mapping(
        {
            "name": "profile-lb",
            "https_enabled": True,
            "instances": [{"name": f"b{i}", "address": f"{bench.LOOPBACK}:{p}"} for i, p in enumerate(backends)],
        }
    )
    settings = ProxySettings(  # (TLS 1.3, as HAProxy speaks it: compared on the same protocol)
        http_listen=f"{bench.LOOPBACK}:{http_port}", https_listen=f"{bench.LOOPBACK}:{port}", workers=args.workers,
        offer_tls13=True,
    )  # fmt: skip
    key = KeySourceRef(
        "lbproxy.proxy.keys:TestFileKeySource",
        {"cert_path": str(workdir / "chain.pem"), "key_path": str(workdir / "key.pem")},
    )
    python: str | Path
    if args.what in ("syscalls", "cpu", "samples"):
        python = sys.executable
    elif args.what == "instructions":
        python = callgrind_wrapper(workdir, str(workdir / "lbproxy.%p.callgrind"), args.cache_sim)
    else:
        python = opcount_wrapper(workdir)
        os.environ["LBPROXY_OPCOUNT_OUT"] = str(workdir / "opcodes.json")
    lb = LoadBalancer(spec, settings, key, python=str(python), generation_timeout=600)
    await lb.start()
    try:
        await asyncio.to_thread(warm_up, port)
        workers = lb.worker_pids()
        worker = workers[0]  # the wrapper execs valgrind/python: the same pid
        load_port = http_port if args.scenario in PLAIN else port
        title = "lbproxy worker" if len(workers) == 1 else f"lbproxy's {len(workers)} workers"
        if args.what == "cpu":
            n, user, system = await asyncio.to_thread(cpu_during_load, workers, load_port, args)
            print_cpu(title, n, user, system, _unit(args.scenario))
        elif args.what == "samples":
            n, text = await asyncio.to_thread(perf_during_load, workers, load_port, args)
            print_samples(title, n, text, _unit(args.scenario))
        elif args.what == "syscalls":
            n, table = await asyncio.to_thread(strace_during_load, workers, load_port, args)
            print(f"\n## {title}: system calls per {_unit(args.scenario)} ({n})")
            print_syscalls(table, n)
        elif args.what == "instructions":
            subprocess.run(["callgrind_control", "-z", str(worker)], capture_output=True, check=True)
            n = await asyncio.to_thread(wrk, load_port, args.scenario, args.seconds)
            subprocess.run(["callgrind_control", "-d", str(worker)], capture_output=True, check=True)
            dump = max(workdir.glob(f"lbproxy.{worker}.callgrind.*"), key=lambda p: p.stat().st_mtime)
            report("lbproxy worker", dump, n, _unit(args.scenario), args.top)
            if args.keep:
                shutil.copy(dump, args.keep)
        else:
            os.kill(worker, signal.SIGUSR2)
            await asyncio.sleep(0.5)
            n = await asyncio.to_thread(wrk, load_port, args.scenario, args.seconds)
            os.kill(worker, signal.SIGUSR2)
            out = workdir / "opcodes.json"
            for _ in range(50):
                if out.exists():
                    break
                await asyncio.sleep(0.1)
            counts = json.loads(out.read_text())
            total = sum(v for _, v in counts)
            print(f"\n## lbproxy worker: {total / n:,.0f} Python bytecodes per {_unit(args.scenario)} ({n})")
            for name, v in counts[: args.top]:
                print(f"{v / n:9,.1f}  {name}")
    finally:
        await lb.stop()


def _unit(scenario: str) -> str:
    return "request" if scenario in ("https", "http") else "connection"


def strace_during_load(pids: list[int], port: int, args: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """``strace -c -f`` attached to ``pids`` while wrk runs: (requests, calls per system call)."""
    out = Path(tempfile.mkstemp(prefix="lbproxy-strace-")[1])
    attach = [a for pid in pids for a in ("-p", str(pid))]
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), *attach], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # attached
        faults = sum(map(_minor_faults, pids))
        n = wrk(port, args.scenario, args.seconds)
        faults = sum(map(_minor_faults, pids)) - faults
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    table: dict[str, int] = {"(minor page faults, not a system call)": faults}
    for line in out.read_text().splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            table[parts[-1]] = int(parts[3])
    out.unlink()
    return n, table


def perf_during_load(pids: list[int], port: int, args: argparse.Namespace) -> tuple[int, str]:
    """``perf record -e cpu-clock`` attached to ``pids`` while wrk runs: (requests, ``perf report`` text:
    the share of samples per shared object, then per function)."""
    data = Path(tempfile.mkstemp(prefix="lbproxy-perf-")[1])
    rec = subprocess.Popen(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-o", str(data), "-p", ",".join(map(str, pids))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        u0, s0 = _cpu_ticks(pids)
        n = wrk(port, args.scenario, args.seconds)
        u1, s1 = _cpu_ticks(pids)
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    cpu_us = 1e6 * (u1 - u0 + s1 - s0) / os.sysconf("SC_CLK_TCK") / n
    text = f"{cpu_us:,.1f} us CPU per unit\n"
    for sort in ("dso", "dso,sym"):
        out = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "-q", "--sort", sort, "--percent-limit", "0.4"],
            capture_output=True,
            text=True,
        ).stdout
        text += out + "\n"
    if args.keep:
        shutil.copy(data, f"{args.keep}.haproxy" if getattr(args, "haproxy_pid", None) in pids else args.keep)
    data.unlink()
    return n, text


def print_samples(title: str, n: int, text: str, unit: str) -> None:
    print(f"\n## {title}: {n} {unit}s, {text.replace(' unit', ' ' + unit, 1)}")


def _cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """(user, system) clock ticks of ``pids``, summed."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def cpu_during_load(pids: list[int], port: int, args: argparse.Namespace) -> tuple[int, float, float]:
    """(requests, user seconds, system seconds) of ``pids`` while wrk runs."""
    u0, s0 = _cpu_ticks(pids)
    n = wrk(port, args.scenario, args.seconds)
    u1, s1 = _cpu_ticks(pids)
    tick = os.sysconf("SC_CLK_TCK")
    return n, (u1 - u0) / tick, (s1 - s0) / tick


def print_cpu(title: str, n: int, user: float, system: float, unit: str) -> None:
    print(
        f"## {title}: {n} {unit}s, {1e6 * (user + system) / n:,.1f} us CPU per {unit} "
        f"(user {1e6 * user / n:,.1f}, system {1e6 * system / n:,.1f}); {n / (user + system):,.0f} per CPU-s"
    )


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def print_syscalls(table: dict[str, int], units: int) -> None:
    print(f"{sum(v for k, v in table.items() if k[0] != '(') / units:9.2f}  total")
    for name, calls in sorted(table.items(), key=lambda kv: -kv[1]):
        print(f"{calls / units:9.2f}  {name}")


def profile_haproxy(args: argparse.Namespace, workdir: Path, backends: list[int]) -> None:
    certs = bench.make_certs(args.key)
    http_port, https_port = bench.free_port(), bench.free_port()
    out = workdir / "haproxy.%p.callgrind"
    cfg = bench.haproxy_config(workdir, certs, http_port, https_port, backends)
    under = callgrind(str(out), args.cache_sim) if args.what == "instructions" else []
    cmd = [*under, "haproxy", "-f", str(cfg), "-db"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        warm_up(https_port)
        load_port = http_port if args.scenario in PLAIN else https_port
        if args.what == "cpu":
            n, user, system = cpu_during_load([p.pid], load_port, args)
            print_cpu("HAProxy (nbthread 1)", n, user, system, _unit(args.scenario))
            return
        if args.what == "samples":
            args.haproxy_pid = p.pid
            n, text = perf_during_load([p.pid], load_port, args)
            print_samples("HAProxy (nbthread 1)", n, text, _unit(args.scenario))
            return
        if args.what == "syscalls":
            n, table = strace_during_load([p.pid], load_port, args)
            print(f"\n## HAProxy (nbthread 1): system calls per {_unit(args.scenario)} ({n})")
            print_syscalls(table, n)
            return
        subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True, check=True)
        n = wrk(load_port, args.scenario, args.seconds)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True, check=True)
        dump = max(workdir.glob(f"haproxy.{p.pid}.callgrind.*"), key=lambda x: x.stat().st_mtime)
        report("HAProxy (nbthread 1)", dump, n, _unit(args.scenario), args.top)
        if args.keep:
            shutil.copy(dump, f"{args.keep}.haproxy")
    finally:
        p.terminate()
        p.wait(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--what",
        choices=("instructions", "opcodes", "syscalls", "cpu", "samples"),
        default="instructions",
        help="instructions (callgrind, per function), opcodes (Python bytecodes per function), syscalls (strace -c), "
        "cpu (user/system split), samples (perf CPU-clock sampling, kernel included) (default instructions)",
    )
    ap.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default="resumed",
        help="full / resumed: a TLS handshake per request; https / http: keep-alive requests; close: a new plain TCP "
        "connection per request (default resumed)",
    )
    ap.add_argument("--key", choices=("ec", "rsa"), default="ec", help="the certificate's key type (default ec)")
    ap.add_argument("--seconds", type=float, default=15.0, help="wrk duration (default 15)")
    ap.add_argument("--peer", choices=("none", "haproxy"), default="none", help="also profile HAProxy in the same run")
    ap.add_argument(
        "--workers", type=int, default=1, help="lbproxy workers (cpu, syscalls, samples: all of them are measured)"
    )
    ap.add_argument("--top", type=int, default=25, help="functions to list (default 25)")
    ap.add_argument(
        "--cache-sim",
        action="store_true",
        help="simulate the caches: report estimated cycles (instructions + 10 per L1 miss + 100 per LL miss)",
    )
    ap.add_argument(
        "--keep",
        metavar="FILE",
        help="copy lbproxy's callgrind dump or perf data there (HAProxy's to FILE.haproxy), for "
        "callgrind_annotate or perf report",
    )
    args = ap.parse_args()
    if args.what == "instructions" and shutil.which("valgrind") is None:
        raise SystemExit("bench/profile.py: valgrind is needed (apt-get install valgrind)")
    if args.what == "syscalls" and shutil.which("strace") is None:
        raise SystemExit("bench/profile.py: strace is needed (apt-get install strace)")
    if args.workers != 1 and args.what in ("instructions", "opcodes"):
        raise SystemExit("bench/profile.py: --workers applies to cpu, syscalls and samples")
    if args.what == "samples" and shutil.which("perf") is None:
        raise SystemExit("bench/profile.py: perf is needed (apt-get install linux-perf)")
    bench.ensure_tools()
    with tempfile.TemporaryDirectory(prefix="lbproxy-profile-") as tmp:
        workdir = Path(tmp)
        backends = [bench.free_port(), bench.free_port()]
        nginxes = [bench.start_nginx_backend(workdir, p) for p in backends]
        try:
            asyncio.run(profile_lbproxy(args, workdir, backends))
            if args.peer == "haproxy" and args.what != "opcodes":
                profile_haproxy(args, workdir, backends)
        finally:
            for n in nginxes:
                n.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

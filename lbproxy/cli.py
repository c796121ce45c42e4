"""``lbproxy``: argparse subcommands only; each hands off to the module that does the work.

- ``control``  the control plane (KMS, ACM, Lightsail APIs, events, dashboard)
- ``lb``       one load balancer's data plane
- ``backend``  the tiny demo backend
- ``setup``    set a load balancer up through the public API (docker compose's one-shot service)
- ``demo``     everything at once on 127.0.0.1: control, three backends, setup, one load balancer
- ``ca``       the local certificate authority (``ca export``)
- ``audit``    print (and follow) the audit trail
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from lbproxy import __version__
from lbproxy.config import ConfigError, ControlSettings, default_data_dir, parse_hostport


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"state directory (default: $LBPROXY_DATA_DIR or {default_data_dir()})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbproxy",
        description=(
            "A local, runnable AWS Lightsail load balancer, with the key service (like KMS) and the certificate "
            "manager (like ACM) that make its HTTPS possible. Point curl, a browser, the AWS CLI or boto3 at it."
        ),
        epilog=(
            "Start here: `lbproxy demo` runs everything on 127.0.0.1 and prints what to try. "
            "`lbproxy COMMAND --help` gives each command's flags; the README has the whole reference."
        ),
    )
    parser.add_argument("--version", action="version", version=f"lbproxy {__version__}")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("control", help="run the control plane (KMS, ACM, Lightsail APIs)")
    c.add_argument("--listen", default="127.0.0.1:4599", help="HOST:PORT to serve the API on (default 127.0.0.1:4599)")
    _add_data_dir(c)
    c.add_argument("--region", default="us-east-1", help="AWS region this endpoint serves (default us-east-1)")
    c.add_argument("--principals", type=Path, default=None, help="TOML file declaring extra principals")
    c.add_argument(
        "--instances",
        type=Path,
        default=None,
        help='TOML file of [instances.NAME] address = "HOST:PORT" (re-read on SIGHUP)',
    )
    c.add_argument(
        "--validation-delay",
        type=float,
        default=2.0,
        help="seconds a requested certificate stays PENDING_VALIDATION (default 2)",
    )
    c.add_argument(
        "--renewal-window-days",
        type=int,
        default=60,
        help="managed renewal starts this many days before expiry (default 60, as ACM)",
    )
    c.add_argument(
        "--lb-provisioning-delay",
        type=float,
        default=2.0,
        help="seconds a new load balancer stays provisioning, its CreateLoadBalancer operation Started (default 2)",
    )
    c.add_argument(
        "--lb-operation-delay",
        type=float,
        default=1.0,
        help="seconds the Lightsail operations AWS completes later stay Started (default 1)",
    )
    c.add_argument(
        "--max-load-balancers", type=int, default=10, help="load balancers per region (default 10, as Lightsail)"
    )
    c.add_argument(
        "--max-certificates-per-lb",
        type=int,
        default=2,
        help="TLS certificates per load balancer (default 2, as Lightsail)",
    )
    c.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send a request head, also the idle keep-alive limit (default 10)",
    )
    c.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="seconds an authenticated request may take to send its body (default 30)",
    )

    lb = sub.add_parser("lb", help="run one load balancer's data plane (TLS termination, round robin)")
    lb.add_argument("--name", required=True, help="the Lightsail load balancer's name")
    lb.add_argument(
        "--control", default="http://127.0.0.1:4599", help="control plane URL (default http://127.0.0.1:4599)"
    )
    lb.add_argument("--config", type=Path, default=None, help="TOML file with a [settings] table (every limit)")
    lb.add_argument("--http-listen", default=None, help="HTTP listener HOST:PORT (default 127.0.0.1:8080)")
    lb.add_argument("--https-listen", default=None, help="HTTPS listener HOST:PORT (default 127.0.0.1:8443)")
    lb.add_argument("--admin-listen", default=None, help="Prometheus /metrics HOST:PORT (default: off)")
    lb.add_argument("--workers", type=int, default=None, help="key-holding worker processes (default 1)")
    lb.add_argument("--access-log", action="store_true", default=None, help="ALB-format access log on stderr")
    lb.add_argument("--health-check-interval", type=float, default=None, help="seconds (default 30, as ALB)")
    lb.add_argument(
        "--report-interval",
        type=float,
        default=10.0,
        help="seconds between health/metrics reports to the control plane (default 10)",
    )
    lb.add_argument(
        "--key-lease",
        type=float,
        default=0.0,
        help="fail closed (wipe the key) after this many seconds without the control plane (0: off)",
    )

    b = sub.add_parser("backend", help="run the tiny demo backend (one instance)")
    b.add_argument("--name", required=True, help="instance name it answers with")
    b.add_argument("--listen", default="127.0.0.1:9001", help="HOST:PORT (default 127.0.0.1:9001)")

    s = sub.add_parser("setup", help="set a load balancer up with HTTPS through the public API (idempotent)")
    s.add_argument(
        "--control", default="http://127.0.0.1:4599", help="control plane URL (default http://127.0.0.1:4599)"
    )
    _add_data_dir(s)
    s.add_argument("--name", default="demo-lb", help="load balancer name, also its AWS profile (default demo-lb)")
    s.add_argument(
        "--instance",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        required=True,
        help="an instance to register and attach (repeat the flag)",
    )
    s.add_argument(
        "--domain",
        action="append",
        default=None,
        help="certificate domain, first one primary (repeat; default localhost and demo.localhost)",
    )
    s.add_argument("--health-check-path", default="/health", help="HealthCheckPath attribute (default /health)")
    s.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the control plane and issuance (default 60)"
    )

    d = sub.add_parser("demo", help="run control, three backends and a load balancer; set them up; narrate")
    _add_data_dir(d)
    d.add_argument("--fresh", action="store_true", help="delete the data dir first (only an lbproxy data dir)")
    d.add_argument(
        "--control-listen", default="127.0.0.1:4599", help="control API and dashboard (default 127.0.0.1:4599)"
    )
    d.add_argument("--http-listen", default="127.0.0.1:8080", help="the load balancer's HTTP (default 127.0.0.1:8080)")
    d.add_argument(
        "--https-listen", default="127.0.0.1:8443", help="the load balancer's HTTPS (default 127.0.0.1:8443)"
    )
    d.add_argument(
        "--backend-ports",
        default="9001,9002,9003",
        help="ports of web-1,web-2,web-3 on 127.0.0.1 (default 9001,9002,9003)",
    )
    d.add_argument("--workers", type=int, default=1, help="the load balancer's key-holding workers (default 1)")

    ca = sub.add_parser("ca", help="the local certificate authority")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True)
    ce = ca_sub.add_parser("export", help="print the root certificate (PEM), or write it with -o")
    _add_data_dir(ce)
    ce.add_argument("-o", "--output", type=Path, default=None, help="write the PEM to FILE")

    a = sub.add_parser("audit", help="print the audit trail (JSON lines)")
    _add_data_dir(a)
    a.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    return parser


def control_settings(args: argparse.Namespace) -> ControlSettings:
    host, port = parse_hostport(args.listen, field="--listen")
    return ControlSettings(
        data_dir=args.data_dir or default_data_dir(),
        host=host,
        port=port,
        region=args.region,
        principals_file=args.principals,
        instances_file=args.instances,
        validation_delay=args.validation_delay,
        renewal_window_days=args.renewal_window_days,
        lb_provisioning_delay=args.lb_provisioning_delay,
        lb_operation_delay=args.lb_operation_delay,
        max_load_balancers=args.max_load_balancers,
        max_certificates_per_lb=args.max_certificates_per_lb,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
    )


async def run_control(settings: ControlSettings) -> int:
    from lbproxy.control import dashboard
    from lbproxy.control.app import ControlServer
    from lbproxy.control.dataplane import install_routes
    from lbproxy.control.plane import ControlPlane

    plane = ControlPlane(settings)
    server = ControlServer(plane, installers=[install_routes, dashboard.install])
    try:
        await server.start()
    except OSError as exc:
        plane.close()
        print(f"lbproxy control: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if hasattr(plane, "reload_instances"):
        loop.add_signal_handler(signal.SIGHUP, plane.reload_instances)
    print(f"lbproxy control listening on {server.url} (data dir {settings.data_dir})", flush=True)
    print(f"dashboard: {dashboard.dashboard_url(plane, server.browser_url)}", flush=True)
    await stop.wait()
    logging.getLogger("lbproxy.control").info("stopping")
    await server.stop()
    plane.close()
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from lbproxy.core.audit import AUDIT_FILE, read_records

    path = (args.data_dir or default_data_dir()) / AUDIT_FILE
    try:
        for rec in read_records(path, follow=args.follow):
            print(json.dumps(rec, sort_keys=True), flush=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        pass
    return 0


def lb_settings(args: argparse.Namespace) -> Any:
    from lbproxy.config import load_toml
    from lbproxy.proxy.spec import proxy_settings_from_mapping

    table: dict[str, Any] = {}
    if args.config is not None:
        doc = load_toml(args.config)
        unknown = set(doc) - {"settings"}
        if unknown:
            raise ConfigError(f"{args.config}: unknown table(s): {', '.join(sorted(unknown))} (expected [settings])")
        table.update(doc.get("settings", {}))
    flags = {
        "http_listen": args.http_listen,
        "https_listen": args.https_listen,
        "admin_listen": args.admin_listen,
        "workers": args.workers,
        "access_log": args.access_log,
        "health_check_interval": args.health_check_interval,
    }
    table.update({k: v for k, v in flags.items() if v is not None})
    return proxy_settings_from_mapping(table, f"{args.config}: " if args.config else "")


async def run_lb(args: argparse.Namespace, settings: Any) -> int:
    from lbproxy.proxy.agent import DataPlaneAgent
    from lbproxy.proxy.controllink import ControlError

    try:
        agent = DataPlaneAgent(
            args.control, args.name, settings, report_interval=args.report_interval, key_lease=args.key_lease
        )
        await agent.start()
    except ControlError as exc:
        print(f"lbproxy lb: {exc.code}: {exc.message or exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"lbproxy lb: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2
    lb = agent.lb
    host_http = settings.http_listen.rsplit(":", 1)[0]
    host_https = settings.https_listen.rsplit(":", 1)[0]
    print(
        json.dumps(
            {
                "lb": args.name,
                "pid": os.getpid(),
                "http": f"{host_http}:{lb.http_port}",
                "https": f"{host_https}:{lb.https_port}",
                "admin_port": lb.admin_port,
                "key": agent.key_state,
                "workers": lb.worker_pids(),
            }
        ),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiters = [loop.create_task(stop.wait()), loop.create_task(agent.deleted.wait())]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    logging.getLogger("lbproxy.proxy").info("stopping: refusing handshakes, draining, wiping the key")
    await agent.stop()
    return 0


def parse_instances(values: list[str]) -> dict[str, str]:
    """``NAME=HOST:PORT`` flags -> {name: address}; the error names the flag and the value."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, address = value.partition("=")
        if not sep or not name or not address:
            raise ConfigError(f"invalid --instance: {value!r} (expected NAME=HOST:PORT)")
        parse_hostport(address, field="--instance")
        out[name] = address
    return out


def run_setup(args: argparse.Namespace) -> int:
    from lbproxy.demo.setup import SetupError, export_ca, set_up_load_balancer, wait_for_control

    data_dir = args.data_dir or default_data_dir()
    instances = parse_instances(args.instance)
    credentials = data_dir / "credentials"
    try:
        wait_for_control(args.control, credentials, timeout=args.timeout)
        set_up_load_balancer(
            args.control,
            credentials,
            args.name,
            instances,
            domains=args.domain or ("localhost", "demo.localhost"),
            health_check_path=args.health_check_path,
            timeout=args.timeout,
        )
        export_ca(data_dir)
    except SetupError as exc:
        print(f"lbproxy setup: {exc}", file=sys.stderr)
        return 1
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lbproxy.demo.runner import DemoOptions, run_demo

    bad_ports = ConfigError(f"invalid --backend-ports: {args.backend_ports!r} (expected three ports: 9001,9002,9003)")
    try:
        ports = tuple(int(p) for p in args.backend_ports.split(","))
    except ValueError:
        raise bad_ports from None
    if len(ports) != 3 or not all(0 <= p <= 65535 for p in ports):
        raise bad_ports
    for flag, value in (
        ("--control-listen", args.control_listen),
        ("--http-listen", args.http_listen),
        ("--https-listen", args.https_listen),
    ):
        parse_hostport(value, field=flag)
    if args.workers < 1:
        raise ConfigError(f"invalid --workers: {args.workers} (at least 1)")
    opts = DemoOptions(
        data_dir=(args.data_dir or default_data_dir()).expanduser().resolve(),
        fresh=args.fresh,
        control_listen=args.control_listen,
        http_listen=args.http_listen,
        https_listen=args.https_listen,
        backend_ports=ports,
        workers=args.workers,
    )
    return run_demo(opts)


def run_ca_export(args: argparse.Namespace) -> int:
    from lbproxy.certs.ca import CAError, export_root

    try:
        pem = export_root(args.data_dir or default_data_dir())
    except CAError as exc:
        print(f"lbproxy ca export: {exc}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(pem)
        print(f"wrote the root CA certificate to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(pem)
    return 0


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "control":
            return _run(run_control(control_settings(args)))
        if args.command == "audit":
            return run_audit(args)
        if args.command == "lb":
            return _run(run_lb(args, lb_settings(args)))
        if args.command == "setup":
            return run_setup(args)
        if args.command == "demo":
            return run_demo(args)
        if args.command == "ca":
            return run_ca_export(args)
        if args.command == "backend":
            from lbproxy.backend import run_backend

            host, port = parse_hostport(args.listen, field="--listen")
            return _run(run_backend(args.name, host, port))
    except ConfigError as exc:
        print(f"lbproxy {args.command}: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

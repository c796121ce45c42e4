"""Metrics under Lightsail's names: per-worker counters, aggregation, Prometheus text.

- ``Metrics``: one worker's counters as slotted attributes (an increment on the hot path is one
  attribute add). ``as_dict`` names them as Lightsail does.
- ``MetricsAggregator``: the supervisor's sum over workers: the latest report of each live worker plus
  the final totals of workers that exited (counters never go backwards across generations), and the
  gauges ``HealthyHostCount`` / ``UnhealthyHostCount`` from health checking.
- ``render_prometheus``: the ``/metrics`` text exposition (``lbproxy_<LightsailName>``).
- ``render_worker_status``: the supervisor's own gauges and counters on ``/metrics``: worker processes
  serving and asked for, ``lbproxy_worker_restarts_total`` (exits nobody asked for), whether a live
  process holds the key, whether the data plane is degraded.
"""

from __future__ import annotations

from collections.abc import Mapping

from lbproxy.contract import vocabulary

#: Metric name (``contract.vocabulary``) -> ``Metrics`` attribute. The last two are not Lightsail metrics
#: (the proxy's own, for /metrics and the benchmark, ``LOCAL_COUNTERS``): TLS handshakes completed, split
#: into full ones and session resumptions (``ssl_object.session_reused``, once per connection).
COUNTERS: dict[str, str] = dict(
    zip(
        (*vocabulary.COUNTERS, *vocabulary.RESPONSE_TIME_FIELDS[:2], *vocabulary.LOCAL_COUNTERS),
        (
            "request_count", "lb_4xx", "lb_5xx", "instance_2xx", "instance_3xx", "instance_4xx", "instance_5xx",
            "tls_negotiation_errors", "rejected_connections", "response_time_sum", "response_time_count",
            "tls_full_handshakes", "tls_resumed_handshakes",
        ),
        strict=True,
    )
)  # fmt: skip
GAUGES = vocabulary.GAUGES
#: The counters the proxy keeps that Lightsail does not know: left out of the control plane's reports.
LOCAL_COUNTERS = frozenset(vocabulary.LOCAL_COUNTERS)


class Metrics:
    __slots__ = (*COUNTERS.values(), "active_connections")
    # The counters (plain int attributes: one increment per event on the hot path).
    request_count: int
    lb_4xx: int
    lb_5xx: int
    instance_2xx: int
    instance_3xx: int
    instance_4xx: int
    instance_5xx: int
    tls_negotiation_errors: int
    rejected_connections: int
    response_time_sum: float
    response_time_count: int
    tls_full_handshakes: int
    tls_resumed_handshakes: int
    active_connections: int

    def __init__(self) -> None:
        for attr in COUNTERS.values():
            setattr(self, attr, 0)
        self.response_time_sum = 0.0
        self.active_connections = 0

    def instance_response(self, status: int, seconds: float) -> None:
        """An instance's response head arrived ``seconds`` after the request was sent."""
        self.response_time_sum += seconds
        self.response_time_count += 1
        if status < 300:
            self.instance_2xx += 1
        elif status < 400:
            self.instance_3xx += 1
        elif status < 500:
            self.instance_4xx += 1
        else:
            self.instance_5xx += 1

    def count_lb_status(self, status: int) -> None:
        if status >= 500:
            self.lb_5xx += 1
        elif status >= 400:
            self.lb_4xx += 1

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, attr) for name, attr in COUNTERS.items()}


class MetricsAggregator:
    def __init__(self) -> None:
        self._live: dict[str, dict[str, float]] = {}
        self._retired: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        self.gauges: dict[str, int] = dict.fromkeys(GAUGES, 0)

    def report(self, worker: str, counters: Mapping[str, float]) -> None:
        self._live[worker] = {k: float(counters.get(k, 0)) for k in COUNTERS}

    def retire(self, worker: str) -> None:
        last = self._live.pop(worker, None)
        if last:
            for k, v in last.items():
                self._retired[k] += v

    def set_health(self, healthy: int, unhealthy: int) -> None:
        self.gauges["HealthyHostCount"] = healthy
        self.gauges["UnhealthyHostCount"] = unhealthy

    def snapshot(self) -> dict[str, float]:
        """Every Lightsail metric, summed over workers (``InstanceResponseTime`` as its mean, seconds)."""
        total = dict(self._retired)
        for counters in self._live.values():
            for k, v in counters.items():
                total[k] += v
        out: dict[str, float] = {k: v for k, v in total.items() if not k.startswith("InstanceResponseTime")}
        n = total["InstanceResponseTime_Count"]
        out["InstanceResponseTime"] = total["InstanceResponseTime_Sum"] / n if n else 0.0
        out["InstanceResponseTime_Sum"] = total["InstanceResponseTime_Sum"]
        out["InstanceResponseTime_Count"] = n
        out.update(self.gauges)
        return out


def _label(lb_name: str) -> str:
    return '{{load_balancer="{}"}}'.format(lb_name.replace("\\", "\\\\").replace('"', '\\"'))


def render_prometheus(snapshot: Mapping[str, float], lb_name: str) -> bytes:
    label = _label(lb_name)
    lines: list[str] = []
    for name, value in snapshot.items():
        if name == "InstanceResponseTime":
            continue
        if name.startswith("InstanceResponseTime_"):
            metric = "lbproxy_InstanceResponseTime_seconds_" + name.rsplit("_", 1)[1].lower()
            kind = None
        elif name in GAUGES:
            metric, kind = f"lbproxy_{name}", "gauge"
        else:
            metric, kind = f"lbproxy_{name}_total", "counter"
        if kind:
            lines.append(f"# TYPE {metric} {kind}")
        lines.append(f"{metric}{label} {value:g}")
    lines.insert(0, "# TYPE lbproxy_InstanceResponseTime_seconds summary")
    return ("\n".join(lines) + "\n").encode()


def render_worker_status(status: Mapping[str, object], lb_name: str) -> bytes:
    """``LoadBalancer.status()`` as Prometheus text (appended to ``render_prometheus``'s)."""
    label = _label(lb_name)
    rows = (
        ("lbproxy_workers", "gauge", status["workers"]),
        ("lbproxy_workers_expected", "gauge", status["workersExpected"]),
        ("lbproxy_worker_restarts_total", "counter", status["restarts"]),
        ("lbproxy_key_held", "gauge", 1 if status["keyHeld"] else 0),
        ("lbproxy_degraded", "gauge", 1 if status["degraded"] else 0),
    )
    return "".join(f"# TYPE {name} {kind}\n{name}{label} {value}\n" for name, kind, value in rows).encode()

"""Load-balancer metrics: what a data plane reports, and how GetLoadBalancerMetricData aggregates it.

Pure: samples in, datapoints out. A report from the data plane carries, per Lightsail metric name:

- counters (``RequestCount``, ``HTTPCode_LB_4XX_Count``, ``HTTPCode_LB_5XX_Count``,
  ``HTTPCode_Instance_2XX_Count`` .. ``_5XX_Count``, ``ClientTLSNegotiationErrorCount``,
  ``RejectedConnectionCount``): the increase since the previous report. Each counted event is one
  sample of value 1, as AWS publishes them, so ``Sum`` is the count and ``Minimum`` / ``Maximum`` /
  ``Average`` are 1.
- ``InstanceResponseTime_Sum`` (seconds) and ``InstanceResponseTime_Count`` (responses) since the previous
  report, optionally ``InstanceResponseTime_Min`` / ``_Max``; one sample per response.
- gauges (``HealthyHostCount``, ``UnhealthyHostCount``): the value now; one sample per report.

Datapoints follow CloudWatch's GetMetricStatistics: ``startTime`` rounded down as CloudWatch rounds it
(``round_start``: to the whole minute when it is less than 15 days ago, to 5 minutes up to 63 days, to the
hour before), whole periods from there (a datapoint's ``timestamp`` is its period's start), only periods with
samples, the requested statistics only, and no data when the requested ``unit`` is not the metric's published
unit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

from lbproxy.contract.vocabulary import COUNTERS, GAUGES, METRIC_NAMES, RESPONSE_TIME, RESPONSE_TIME_FIELDS
from lbproxy.lightsail.errors import InvalidInputException

#: The published unit of each metric (the API reference's "Unit: The published unit is ...").
UNITS: dict[str, str] = {**dict.fromkeys(COUNTERS, "Count"), **dict.fromkeys(GAUGES, "Count"), RESPONSE_TIME: "Seconds"}
STATISTICS = {
    "Sum": "sum",
    "SampleCount": "sampleCount",
    "Average": "average",
    "Minimum": "minimum",
    "Maximum": "maximum",
}
#: CloudWatch answers at most this many datapoints per request.
MAX_DATAPOINTS = 1440
#: How long samples are kept (CloudWatch keeps 1-minute data 15 days).
RETENTION_SECONDS = 15 * 86400


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    metric: str
    time: float
    sum: float
    count: float
    minimum: float
    maximum: float


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInputException(f"invalid metrics.{name}: {value!r} (expected a number >= 0)")
    return float(value)


def samples_from_report(metrics: Mapping[str, Any], when: float) -> list[Sample]:
    """One report's ``metrics`` object -> samples; unknown names and bad values name the field."""
    unknown = sorted(set(metrics) - set(COUNTERS) - set(GAUGES) - set(RESPONSE_TIME_FIELDS))
    if unknown:
        raise InvalidInputException(f"unknown metric(s): {', '.join(unknown)} (expected {', '.join(METRIC_NAMES)})")
    values = {k: _number(k, v) for k, v in metrics.items()}
    out: list[Sample] = []
    for name in COUNTERS:
        n = values.get(name, 0.0)
        if n > 0:
            out.append(Sample(name, when, n, n, 1.0, 1.0))
    for name in GAUGES:
        if name in values:
            v = values[name]
            out.append(Sample(name, when, v, 1.0, v, v))
    count = values.get("InstanceResponseTime_Count", 0.0)
    if count > 0:
        total = values.get("InstanceResponseTime_Sum", 0.0)
        mean = total / count
        out.append(
            Sample(
                RESPONSE_TIME,
                when,
                total,
                count,
                values.get("InstanceResponseTime_Min", mean),
                values.get("InstanceResponseTime_Max", mean),
            )
        )
    return out


def round_start(start: float, now: float) -> float:
    """CloudWatch's rounding of ``StartTime`` (its GetMetricStatistics reference): "Start time less than 15 days
    ago - Round down to the nearest whole minute ... between 15 and 63 days ago - ... 5-minute clock interval ...
    greater than 63 days ago - ... 1-hour clock interval"."""
    age = now - start
    step = 60 if age < 15 * 86400 else 300 if age <= 63 * 86400 else 3600
    return math.floor(start / step) * step


def check_query(metric: str, period: int, start: float, end: float) -> None:
    if metric not in UNITS:
        raise InvalidInputException(f"The metric name is not valid: {metric}")
    if period < 60 or period % 60:
        raise InvalidInputException(f"The period must be a multiple of 60 seconds, got: {period}")
    if end <= start:
        raise InvalidInputException("The start time must be before the end time.")
    if math.ceil((end - start) / period) > MAX_DATAPOINTS:
        raise InvalidInputException(
            f"The requested time range and period would return more than {MAX_DATAPOINTS} datapoints."
        )


def aggregate(
    samples: Iterable[Sample],
    *,
    metric: str,
    period: int,
    start: float,
    end: float,
    unit: str,
    statistics: Iterable[str],
) -> list[dict[str, Any]]:
    """Datapoints (``MetricDatapoint`` shape, ``timestamp`` as epoch seconds) in ascending time order."""
    check_query(metric, period, start, end)
    stats = list(dict.fromkeys(statistics))
    for s in stats:
        if s not in STATISTICS:
            raise InvalidInputException(f"The statistic is not valid: {s}")
    if unit != UNITS[metric]:
        return []
    buckets: dict[int, list[float]] = {}
    for smp in samples:
        if smp.metric != metric or not start <= smp.time < end:
            continue
        i = int((smp.time - start) // period)
        b = buckets.get(i)
        if b is None:
            buckets[i] = [smp.sum, smp.count, smp.minimum, smp.maximum]
        else:
            b[0] += smp.sum
            b[1] += smp.count
            b[2] = min(b[2], smp.minimum)
            b[3] = max(b[3], smp.maximum)
    out = []
    for i in sorted(buckets):
        total, count, lo, hi = buckets[i]
        values = {
            "Sum": total,
            "SampleCount": count,
            "Average": total / count if count else 0.0,
            "Minimum": lo,
            "Maximum": hi,
        }
        point: dict[str, Any] = {STATISTICS[s]: values[s] for s in stats}
        point["timestamp"] = start + i * period
        point["unit"] = unit
        out.append(point)
    return out

"""The pure parts of Lightsail: attributes, names, the instances file, metric aggregation; and every
INSERT its SQL writes names its columns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lbproxy.config import ConfigError
from lbproxy.lightsail import attributes as A
from lbproxy.lightsail import metrics as M
from lbproxy.lightsail.errors import InvalidInputException
from lbproxy.lightsail.instances import InstanceAddress, parse_address, parse_instances


def test_attribute_updates_are_typed_and_validated() -> None:
    a = A.Attributes()
    assert a.configuration_options() == {
        "HealthCheckPath": "/",
        "SessionStickinessEnabled": "false",
        "SessionStickiness_LB_CookieDurationSeconds": "86400",
        "HttpsRedirectionEnabled": "false",
        "TlsPolicyName": "TLS-2016-08",
    }
    a = A.updated(a, A.STICKINESS_ENABLED, "TRUE")
    a = A.updated(a, A.COOKIE_DURATION, "3600")
    a = A.updated(a, A.TLS_POLICY, "TLS-FS-1-2-Res-2019-08")
    a = A.updated(a, A.HEALTH_CHECK_PATH, "/health?x=1")
    assert a.typed()[A.STICKINESS_ENABLED] is True and a.cookie_duration_seconds == 3600
    assert A.Attributes.from_json(a.to_json()) == a
    for name, bad in [
        (A.HEALTH_CHECK_PATH, "health"),
        (A.HEALTH_CHECK_PATH, "/a b"),
        (A.STICKINESS_ENABLED, "yes"),
        (A.COOKIE_DURATION, "0"),
        (A.COOKIE_DURATION, str(7 * 86400 + 1)),
        (A.COOKIE_DURATION, "1.5"),
        (A.TLS_POLICY, "TLS-1999"),
        (A.TLS_POLICY, "TLS-FS-Res-1-1-2019-08"),  # lbproxy's former third policy: not Lightsail's
        ("Nope", "x"),
    ]:
        with pytest.raises(InvalidInputException):
            A.updated(a, name, bad)


def test_names_and_certificate_limits() -> None:
    assert A.check_resource_name("demo-lb") == "demo-lb"
    for bad in ("-x", "x-", "a b", "x", "é"):
        with pytest.raises(InvalidInputException):
            A.check_resource_name(bad)
    primary, alts = A.certificate_names("Example.com", ["www.example.com", "example.com", "WWW.example.com"])
    assert primary == "example.com" and alts == ["www.example.com"]
    A.certificate_names("a.example", [f"n{i}.example" for i in range(9)])
    with pytest.raises(InvalidInputException, match="maximum of 9"):
        A.certificate_names("a.example", [f"n{i}.example" for i in range(10)])
    with pytest.raises(InvalidInputException, match="Wildcard"):
        A.certificate_names("*.example.com", None)
    # lbproxy extension for the local CA: exactly "localhost" besides the two-label names.
    assert A.certificate_names("LocalHost", ["demo.localhost"]) == ("localhost", ["demo.localhost"])
    for bad in ("example", "localhostx", "*.localhost"):
        with pytest.raises(InvalidInputException):
            A.certificate_names(bad, None)
    arn = A.lightsail_arn("us-east-1", "LoadBalancer", "u")
    assert arn == "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/u"


def test_instances_file_parsing_names_the_field() -> None:
    got = parse_instances(
        {
            "instances": {
                "web-1": {"address": "127.0.0.1:8001"},
                "web-2": {"address": "db.local"},
                "v6": {"address": "[::1]:9000"},
            }
        }
    )
    assert got == {
        "web-1": InstanceAddress("127.0.0.1", 8001),
        "web-2": InstanceAddress("db.local", None),
        "v6": InstanceAddress("::1", 9000),
    }
    assert str(got["v6"]) == "[::1]:9000" and str(got["web-2"]) == "db.local"
    with pytest.raises(ConfigError, match=r"instances\.web-1: unknown key\(s\): port"):
        parse_instances({"instances": {"web-1": {"address": "h:1", "port": 2}}})
    with pytest.raises(ConfigError, match=r"instances\.web-1\.address: missing"):
        parse_instances({"instances": {"web-1": {}}})
    with pytest.raises(ConfigError, match="unknown top-level"):
        parse_instances({"instance": {}})
    with pytest.raises(ConfigError, match=r"invalid instances\.w1\.address: 'h:99999'"):
        parse_instances({"instances": {"w1": {"address": "h:99999"}}})
    with pytest.raises(ConfigError, match="instance name"):
        parse_instances({"instances": {"-bad": {"address": "h:1"}}})
    with pytest.raises(ConfigError):
        parse_address("")


def test_metric_aggregation_as_cloudwatch() -> None:
    t0 = 1_700_000_000.0
    samples = [
        *M.samples_from_report(
            {
                "RequestCount": 3,
                "InstanceResponseTime_Sum": 0.3,
                "InstanceResponseTime_Count": 3,
                "HealthyHostCount": 2,
            },
            t0 + 5,
        ),
        *M.samples_from_report(
            {
                "RequestCount": 2,
                "InstanceResponseTime_Sum": 1.0,
                "InstanceResponseTime_Count": 2,
                "InstanceResponseTime_Max": 0.9,
                "HealthyHostCount": 3,
            },
            t0 + 30,
        ),
        *M.samples_from_report({"RequestCount": 0, "HealthyHostCount": 1}, t0 + 70),
    ]
    req = M.aggregate(
        samples,
        metric="RequestCount",
        period=60,
        start=t0,
        end=t0 + 120,
        unit="Count",
        statistics=["Sum", "SampleCount", "Average", "Minimum", "Maximum"],
    )
    assert req == [
        {
            "sum": 5.0,
            "sampleCount": 5.0,
            "average": 1.0,
            "minimum": 1.0,
            "maximum": 1.0,
            "timestamp": t0,
            "unit": "Count",
        }
    ]
    healthy = M.aggregate(
        samples,
        metric="HealthyHostCount",
        period=60,
        start=t0,
        end=t0 + 120,
        unit="Count",
        statistics=["Minimum", "Maximum", "Average"],
    )
    assert [(p["minimum"], p["maximum"], p["average"]) for p in healthy] == [(2.0, 3.0, 2.5), (1.0, 1.0, 1.0)]
    rt = M.aggregate(
        samples,
        metric="InstanceResponseTime",
        period=60,
        start=t0,
        end=t0 + 60,
        unit="Seconds",
        statistics=["Average", "Maximum", "Minimum"],
    )
    assert rt[0]["average"] == pytest.approx(0.26) and rt[0]["maximum"] == 0.9
    assert rt[0]["minimum"] == pytest.approx(0.1)
    # A unit other than the published one: no data, as CloudWatch.
    assert (
        M.aggregate(
            samples, metric="RequestCount", period=60, start=t0, end=t0 + 60, unit="Seconds", statistics=["Sum"]
        )
        == []
    )
    with pytest.raises(InvalidInputException):
        M.aggregate(samples, metric="RequestCount", period=90, start=t0, end=t0 + 60, unit="Count", statistics=["Sum"])
    with pytest.raises(InvalidInputException):
        M.aggregate(samples, metric="RequestCount", period=60, start=t0, end=t0, unit="Count", statistics=["Sum"])
    with pytest.raises(InvalidInputException, match="1440"):
        M.check_query("RequestCount", 60, t0, t0 + 60 * 1441)
    with pytest.raises(InvalidInputException, match="unknown metric"):
        M.samples_from_report({"Requests": 1}, t0)
    with pytest.raises(InvalidInputException, match="RequestCount"):
        M.samples_from_report({"RequestCount": -1}, t0)


def test_every_insert_names_its_columns() -> None:
    """A table that gains a column must not shift what an INSERT writes into it (``VALUES`` in column order)."""
    package = Path(A.__file__).parent
    statements = []
    for path in sorted(package.glob("*.py")):
        for m in re.finditer(r"INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)\s*(\(?)", path.read_text()):
            statements.append((path.name, m.group(1), m.group(2)))
    tables = {t for _, t, _ in statements}
    assert tables == {
        "ls_instances",
        "ls_load_balancers",
        "ls_lb_instances",
        "ls_lb_certificates",
        "ls_metric_samples",
        "ls_key_states",
        "ls_operations",
    }
    assert [s for s in statements if s[2] != "("] == []


def test_tls_policies_are_lightsails_and_former_names_still_work() -> None:
    """Lightsail's guide names two policies (TLS-2016-08, the default, and TLS-FS-1-2-Res-2019-08) with the
    protocols and ciphers of ELB's ELBSecurityPolicy-2016-08 and -FS-1-2-Res-2019-08, in the ELB table's order."""
    from lbproxy.contract import tlspolicies as T

    assert [p["name"] for p in A.tls_policies()] == ["TLS-2016-08", "TLS-FS-1-2-Res-2019-08"]
    strict = T.get_policy("TLS-FS-1-2-Res-2019-08")
    assert strict.protocols == ("TLSv1.2",)
    assert strict.ciphers == (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES256-SHA384",
    )
    assert len(T.get_policy("TLS-2016-08").ciphers) == 18
    assert all("TLSv1.3" not in p["protocols"] for p in A.tls_policies())
    # The former name of the strict policy: accepted, stored and shown as the name now; the data plane finds it.
    assert A.check_tls_policy("TLS-FS-Res-1-2-2019-08") == "TLS-FS-1-2-Res-2019-08"
    assert "TLS-FS-Res-1-2-2019-08" in T.TLS_POLICIES and T.get_policy("TLS-FS-Res-1-2-2019-08") is strict
    stored = A.Attributes.from_json({"tls_policy_name": "TLS-FS-Res-1-2-2019-08"})
    assert stored.tls_policy_name == "TLS-FS-1-2-Res-2019-08"
    # The former third policy: not offered, not accepted, but a load balancer that holds it keeps serving it.
    with pytest.raises(InvalidInputException, match="Valid names: TLS-2016-08, TLS-FS-1-2-Res-2019-08"):
        A.check_tls_policy("TLS-FS-Res-1-1-2019-08")
    kept = A.Attributes.from_json({"tls_policy_name": "TLS-FS-Res-1-1-2019-08"})
    assert kept.tls_policy_name == "TLS-FS-Res-1-1-2019-08"
    assert T.get_policy(kept.tls_policy_name).protocols == ("TLSv1.1", "TLSv1.2")
    assert set(T.TLS_POLICIES) == {"TLS-2016-08", "TLS-FS-1-2-Res-2019-08", "TLS-FS-Res-1-1-2019-08"}

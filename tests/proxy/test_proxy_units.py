"""Pure parts on values: header rewriting, redirects, stickiness, balancing, health states, spec, policies."""

from __future__ import annotations

import pytest

from lbproxy.config import ConfigError
from lbproxy.contract.tlspolicies import TLS_POLICIES, get_policy, openssl_cipher_string
from lbproxy.contract.vocabulary import (
    HEALTHY,
    INITIAL,
    INITIAL_HEALTH_CHECKING,
    REGISTRATION_IN_PROGRESS,
    RESPONSE_CODE_MISMATCH,
    UNHEALTHY,
)
from lbproxy.proxy.balancer import Balancer
from lbproxy.proxy.forwarding import (
    REMEMBERED_CLIENTS,
    error_response,
    forwarded_suffix,
    forwarded_tail,
    redirect_response,
    remember_client,
    upstream_request_head,
)
from lbproxy.proxy.framing import parse_request_head
from lbproxy.proxy.health import HealthTracker
from lbproxy.proxy.metrics import Metrics, MetricsAggregator, render_prometheus
from lbproxy.proxy.spec import (
    InstanceSpec,
    LoadBalancerSpec,
    ProxySettings,
    proxy_settings_from_mapping,
    spec_from_mapping,
    spec_to_mapping,
)
from lbproxy.proxy.stickiness import StickinessSigner, find_cookie


def test_upstream_head_rewrites_forwarding_headers() -> None:
    req = parse_request_head(
        b"POST /p HTTP/1.1\r\nHost: site\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Port: 1\r\n"
        b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nAccept: */*\r\n\r\n"
    )
    head = upstream_request_head(req, b"127.0.0.9", forwarded_tail("https", 8443))
    assert head == (
        b"POST /p HTTP/1.1\r\nHost: site\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.9\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def test_upstream_head_upgrade_and_http10() -> None:
    req = parse_request_head(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    head = upstream_request_head(req, b"1.1.1.1", b"")
    assert b"Connection: upgrade\r\nUpgrade: websocket\r\n" in head
    req = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
    assert upstream_request_head(req, b"1.1.1.1", b"").startswith(b"GET / HTTP/1.1\r\n")


def test_redirect_response() -> None:
    r = redirect_response(b"example.com:8080", b"/a?b=c", 443, close=False)
    assert r.startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
    assert b"Location: https://example.com/a?b=c\r\n" in r
    r = redirect_response(b"[::1]:80", b"/", 8443, close=True)
    assert b"Location: https://[::1]:8443/\r\n" in r and b"Connection: close" in r


def test_error_responses_small_html() -> None:
    r = error_response(503, close=False)
    assert r.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"<h1>503 Service Unavailable</h1>" in r
    assert error_response(502, head_only=True).endswith(b"\r\n\r\n")


def test_stickiness_cookie_roundtrip_and_tamper() -> None:
    signer = StickinessSigner(b"k" * 32)
    value = signer.cookie_value("inst-1", now=1000.0, duration=60)
    assert signer.verify(value, now=1001.0) == "inst-1"
    assert signer.verify(value, now=1061.0) is None  # expired
    expiry, name, tag = value.split(b".")
    assert signer.verify(b"9999999999." + name + b"." + tag, now=1001.0) is None  # extended expiry
    other = StickinessSigner(b"o" * 32).cookie_value("inst-2", 1000.0, 60)
    assert signer.verify(expiry + b"." + other.split(b".")[1] + b"." + tag, 1001.0) is None
    assert signer.verify(b"garbage", 1001.0) is None
    header = signer.set_cookie_header("inst-1", 1000.0, 60)
    assert header.startswith(b"Set-Cookie: AWSALB=") and b"Max-Age=60" in header
    assert find_cookie(b"a=1; AWSALB=" + value + b"; b=2") == value
    assert find_cookie(b"a=1") is None


def test_round_robin_and_refusals() -> None:
    specs = [InstanceSpec(n, "127.0.0.1", 1000 + i) for i, n in enumerate("abc")]
    b = Balancer(specs)
    assert b.pick(0.0) is None  # nothing healthy yet
    b.set_healthy({"a", "b", "c"})
    assert [b.pick(0.0).name for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]  # type: ignore[union-attr]
    b.mark_refused(b.get("b"), until=10.0)  # type: ignore[arg-type]
    assert {b.pick(1.0).name for _ in range(4)} == {"a", "c"}  # type: ignore[union-attr]
    assert {b.pick(11.0).name for _ in range(6)} == {"a", "b", "c"}  # type: ignore[union-attr]
    assert b.pick(0.0, pinned="c").name == "c"  # type: ignore[union-attr]
    b.set_healthy({"a"})
    assert b.pick(0.0, pinned="c").name == "a"  # type: ignore[union-attr]
    assert b.pick(0.0, exclude=b.get("a")) is None


def test_rotation_round_robin_survives_repeated_health_reports() -> None:
    b = Balancer([InstanceSpec(n, "127.0.0.1", 1000 + i) for i, n in enumerate("abc")])
    assert not b.routable
    b.set_healthy({"a", "b", "c"})
    names = [next(b.rotation).name]
    b.set_healthy({"a", "b", "c"})  # the same report again: the rotation goes on where it was
    names += [next(b.rotation).name for _ in range(5)]
    assert names == ["a", "b", "c", "a", "b", "c"]
    b.mark_refused(b.get("b"), until=10.0)  # type: ignore[arg-type]
    assert [next(b.rotation).name for _ in range(3)] == ["a", "c", "a"]
    b.expire_refusals(11.0)  # the data plane's sweeper does this
    assert [next(b.rotation).name for _ in range(4)] == ["b", "c", "a", "b"]  # on after the last pick (a)
    # A change between every two requests (a flapping instance) must not pin the rotation to one.
    picks = []
    for i in range(6):
        b.set_healthy({"a", "b"} if i % 2 else {"a", "b", "c"})
        picks.append(next(b.rotation).name)
    assert picks == ["c", "a", "b", "a", "b", "a"]  # c whenever it is routable and its turn comes
    b.set_healthy(set())
    assert not b.routable
    b.set_healthy({"b"})
    assert [next(b.rotation).name for _ in range(2)] == ["b", "b"]


def test_balancer_update_keeps_instance_objects() -> None:
    b = Balancer([InstanceSpec("a", "h", 1), InstanceSpec("b", "h", 2)])
    a = b.get("a")
    b.set_instances([InstanceSpec("a", "h", 1), InstanceSpec("b", "h", 3)])
    assert b.get("a") is a and b.get("b").port == 3  # type: ignore[union-attr]


def test_health_states() -> None:
    t = HealthTracker(healthy_threshold=2, unhealthy_threshold=2)
    t.set_instances(["a"])
    assert t.get("a").state == INITIAL and t.get("a").reason == REGISTRATION_IN_PROGRESS  # type: ignore[union-attr]
    t.begin("a")
    assert t.get("a").reason == INITIAL_HEALTH_CHECKING  # type: ignore[union-attr]
    t.observe("a", True)
    assert t.healthy() == {"a"}
    t.observe("a", False, RESPONSE_CODE_MISMATCH)
    assert t.get("a").state == HEALTHY  # type: ignore[union-attr]
    t.observe("a", False, RESPONSE_CODE_MISMATCH)
    assert t.get("a").state == UNHEALTHY and t.get("a").reason == RESPONSE_CODE_MISMATCH  # type: ignore[union-attr]
    t.observe("a", True)
    assert t.get("a").state == UNHEALTHY  # type: ignore[union-attr]
    t.observe("a", True)
    assert t.get("a").state == HEALTHY  # type: ignore[union-attr]
    assert t.snapshot() == [{"instanceName": "a", "instanceHealth": "healthy", "instanceHealthReason": None}]


def test_spec_roundtrip_and_errors() -> None:
    spec = spec_from_mapping(
        {"name": "lb", "instances": [{"name": "i1", "address": "127.0.0.1:81"}], "https_enabled": True}
    )
    assert spec.instances == (InstanceSpec("i1", "127.0.0.1", 81),)
    assert spec_from_mapping(spec_to_mapping(spec)) == spec
    with pytest.raises(ConfigError, match="tls_policy_name"):
        LoadBalancerSpec(name="x", tls_policy_name="nope")
    with pytest.raises(ConfigError, match="unknown setting"):
        spec_from_mapping({"name": "x", "colour": 1})
    with pytest.raises(ConfigError, match="instances"):
        LoadBalancerSpec(name="x", instances=(InstanceSpec("a", "h", 1), InstanceSpec("a", "h", 2)))


def test_settings_defaults_and_errors() -> None:
    s = ProxySettings()
    assert (s.http_listen, s.https_listen, s.idle_timeout, s.workers) == ("127.0.0.1:8080", "127.0.0.1:8443", 60.0, 1)
    assert (s.health_check_interval, s.health_check_timeout, s.healthy_threshold, s.unhealthy_threshold) == (
        30.0, 5.0, 5, 2,
    )  # fmt: skip
    assert not s.access_log and s.max_body == 0
    assert proxy_settings_from_mapping({"workers": 2, "idle_timeout": 5}).idle_timeout == 5.0
    with pytest.raises(ConfigError, match="workers"):
        proxy_settings_from_mapping({"workers": 0})
    with pytest.raises(ConfigError, match="http_listen"):
        proxy_settings_from_mapping({"http_listen": "nope"})
    with pytest.raises(ConfigError, match="header_timeout"):
        proxy_settings_from_mapping({"header_timeout": "x"})
    with pytest.raises(ConfigError, match="tls_shutdown_timeout"):
        proxy_settings_from_mapping({"tls_shutdown_timeout": 0})


def test_tls_policies_table() -> None:
    assert set(TLS_POLICIES) == {"TLS-2016-08", "TLS-FS-1-2-Res-2019-08", "TLS-FS-Res-1-1-2019-08"}
    default = [p for p in TLS_POLICIES.values() if p.is_default]
    assert [p.name for p in default] == ["TLS-2016-08"]
    assert openssl_cipher_string(get_policy("TLS-2016-08")).endswith("@SECLEVEL=0")
    assert "@SECLEVEL" not in openssl_cipher_string(get_policy("TLS-FS-Res-1-2-2019-08"))
    assert get_policy("TLS-FS-Res-1-2-2019-08").to_api()["protocols"] == ["TLSv1.2"]


def test_metrics_aggregation_and_prometheus() -> None:
    m = Metrics()
    m.request_count += 3
    m.instance_response(204, 0.25)
    m.instance_response(404, 0.5)
    m.count_lb_status(503)
    agg = MetricsAggregator()
    agg.report("w1", m.as_dict())
    agg.report("w2", m.as_dict())
    agg.retire("w1")
    agg.report("w2", {**m.as_dict(), "RequestCount": 5})
    snap = agg.snapshot()
    assert snap["RequestCount"] == 8 and snap["HTTPCode_LB_5XX_Count"] == 2
    assert (m.instance_2xx, m.instance_4xx, m.response_time_count, m.response_time_sum) == (1, 1, 2, 0.75)
    text = render_prometheus(snap, "lb").decode()
    assert 'lbproxy_RequestCount_total{load_balancer="lb"} 8' in text
    assert "lbproxy_HealthyHostCount" in text


def test_tls_handshake_counters_stay_out_of_lightsail_reports() -> None:
    import types

    from lbproxy.lightsail.metrics import samples_from_report
    from lbproxy.proxy.agent import DataPlaneAgent

    m = Metrics()
    m.request_count = 3
    m.tls_full_handshakes = 2
    m.tls_resumed_handshakes = 5
    agg = MetricsAggregator()
    agg.report("w1", m.as_dict())
    agg.report("w2", m.as_dict())
    snap = agg.snapshot()
    assert snap["TLSFullHandshakeCount"] == 4 and snap["TLSResumedHandshakeCount"] == 10
    text = render_prometheus(snap, "lb").decode()
    assert 'lbproxy_TLSResumedHandshakeCount_total{load_balancer="lb"} 10' in text
    agent = DataPlaneAgent("http://127.0.0.1:1", "lb", ProxySettings(), signer=object())  # type: ignore[arg-type]
    status = {
        "workers": 1,
        "workersExpected": 1,
        "keyHeld": False,
        "restarts": 0,
        "lastExit": None,
        "degraded": None,
        "listeners": [],
    }
    agent.lb = types.SimpleNamespace(metrics_snapshot=agg.snapshot, health_snapshot=list, status=lambda: status)
    metrics = agent.report_body().metrics
    assert metrics["RequestCount"] == 6 and not any(k.startswith("TLS") for k in metrics)
    assert samples_from_report(metrics, 0.0)  # the control plane accepts it (it refuses unknown names)


def test_remembered_client_lines_are_the_formatted_ones_and_bounded() -> None:
    memo: dict[str, tuple[bytes, bytes]] = {}
    tail = forwarded_tail("https", 8443)
    client, suffix = remember_client(memo, "::1", tail)
    assert client == b"::1" and suffix == forwarded_suffix(b"::1", tail)
    assert suffix == b"\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 8443\r\n\r\n"
    assert memo["::1"] == (client, suffix)
    for i in range(REMEMBERED_CLIENTS):
        remember_client(memo, f"10.0.{i // 256}.{i % 256}", tail)
    assert 0 < len(memo) <= REMEMBERED_CLIENTS and "::1" not in memo  # emptied when full

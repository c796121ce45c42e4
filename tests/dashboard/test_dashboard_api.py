"""The dashboard's HTTP API against a real control plane: token, snapshot (and the relations it works out),
actions, event streams; the data plane is a stand-in that reports through the control plane's report endpoint
as its load balancer's principal."""

from __future__ import annotations

import json
import os
import stat
import threading
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lbproxy.contract.dataplane import KeyStateReport
from lbproxy.control import dashboard
from lbproxy.testing import wait_until

if TYPE_CHECKING:
    from tests.dashboard.conftest import Dash


def make_key_and_grant(d: Dash, role: str = "demo-lb") -> tuple[str, str, str]:
    kms = d.ct.client("kms")
    key_id = kms.create_key(Description="dashboard test")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/dash-test", TargetKeyId=key_id)
    grantee = d.role(role).arn
    grant_id = kms.create_grant(
        KeyId=key_id,
        GranteePrincipal=grantee,
        Operations=["Decrypt", "DescribeKey"],
        Constraints={"EncryptionContextEquals": {"aws:lightsail:arn": "arn:aws:lightsail:lb/demo"}},
        RetiringPrincipal="acm.amazonaws.com",
        Name="IssuedThroughACM",
    )["GrantId"]
    return key_id, grant_id, grantee


def test_token_file_and_url(dash: Dash) -> None:
    plane = dash.ct.plane
    assert plane is not None
    path = plane.data_dir / dashboard.TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().strip() == dash.token and len(dash.token) >= 40
    assert dash.url == f"{dash.ct.url}/?token={dash.token}"
    # The same token on the next start.
    assert dashboard.load_or_create_token(plane.data_dir) == dash.token


@pytest.mark.parametrize("path", ["/dashboard/api/state", "/dashboard/api/events"])
@pytest.mark.parametrize("how", ["missing", "wrong", "longer"])
def test_token_required(dash: Dash, path: str, how: str) -> None:
    token = {"missing": None, "wrong": "wrong", "longer": dash.token + "x"}[how]
    reply = dash.request("GET", path, token=token)
    assert reply.status == 401
    assert "token" in reply.body["message"]


def test_call_requires_token(dash: Dash) -> None:
    kms = dash.ct.client("kms")
    before = len(kms.list_keys()["Keys"])
    reply = dash.request("POST", "/dashboard/api/call", {"target": "TrentService.CreateKey", "params": {}}, token=None)
    assert reply.status == 401
    reply = dash.request("POST", "/dashboard/api/call", {"target": "TrentService.CreateKey", "params": {}}, token="no")
    assert reply.status == 401
    assert len(kms.list_keys()["Keys"]) == before


def test_page_and_static_files(dash: Dash) -> None:
    page = dash.request("GET", "/", token=None)
    assert page.status == 200 and "<title>lbproxy dashboard</title>" in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    for name in ("app.js", "style.css"):
        assert dash.request("GET", f"/static/{name}", token=None).status == 200
    assert dash.request("GET", "/static/..%2Fdashboard.py", token=None).status == 404
    assert dash.request("GET", "/static/nope.js", token=None).status == 404


def test_state_snapshot(dash: Dash) -> None:
    key_id, grant_id, grantee = make_key_and_grant(dash)
    state = dash.state()

    keys = {k["keyId"]: k for k in state["keys"]}
    key = keys[key_id]
    assert key["aliases"] == ["alias/dash-test"] and key["manager"] == "CUSTOMER" and key["state"] == "Enabled"
    assert key["rotation"] is False and key["nextRotation"] is None and key["description"] == "dashboard test"
    assert key["deletionDate"] is None and key["creationDate"] == pytest.approx(dash.ct.clock.time())
    [grant] = key["grants"]
    assert grant == {
        "grantId": grant_id,
        "keyArn": key["arn"],
        "name": "IssuedThroughACM",
        "grantee": grantee,
        "retiringPrincipal": "acm.amazonaws.com",
        "operations": ["Decrypt", "DescribeKey"],
        "constraints": {"EncryptionContextEquals": {"aws:lightsail:arn": "arn:aws:lightsail:lb/demo"}},
        "creationDate": grant["creationDate"],
        # A role that is no load balancer's, a context that names none and no certificate: related to nothing.
        "loadBalancer": None,
        "certificateArn": None,
    }
    acm_key = next(k for k in state["keys"] if "alias/aws/acm" in k["aliases"])
    assert acm_key["manager"] == "AWS" and acm_key["rotation"] is True and acm_key["nextRotation"] > 0
    # No certificate: the diagram tells the customer key's grant.
    assert state["flow"] == {"keyArn": key["arn"], "certificateArn": None, "grantId": grant_id, "loadBalancer": None}

    events = [r["eventName"] for r in state["audit"]]
    assert events[-3:] == ["CreateKey", "CreateAlias", "CreateGrant"]
    assert state["eventId"] > 0 and state["auditSeq"] >= 3
    # Reading the snapshot is not an action: no audit records for it.
    assert [r["eventName"] for r in dash.state()["audit"]] == events


def test_state_of_a_new_control_plane(dash: Dash) -> None:
    """Nothing but ACM's key, which every control plane makes on its first start."""
    state = dash.state()
    [acm_key] = state["keys"]
    assert acm_key["aliases"] == ["alias/aws/acm"] and acm_key["manager"] == "AWS" and acm_key["grants"] == []
    assert state["certificates"] == [] and state["loadBalancers"] == [] and state["audit"] == []
    assert state["flow"] == {"keyArn": acm_key["arn"], "certificateArn": None, "grantId": None, "loadBalancer": None}
    assert state["region"] == dash.ct.settings.region and state["generatedAt"] == dash.ct.clock.time()


def test_call_revokes_grant_and_audits_it(dash: Dash) -> None:
    key_id, grant_id, _ = make_key_and_grant(dash)
    reply = dash.call("TrentService.RevokeGrant", {"KeyId": key_id, "GrantId": grant_id})
    assert reply.status == 200, reply.body
    assert reply.body == {}
    assert dash.ct.client("kms").list_grants(KeyId=key_id)["Grants"] == []
    assert next(k for k in dash.state()["keys"] if k["keyId"] == key_id)["grants"] == []

    plane = dash.ct.plane
    assert plane is not None
    records = [json.loads(line) for line in plane.audit.path.read_text().splitlines()]
    rec = next(r for r in records if r["eventName"] == "RevokeGrant")
    assert rec["eventName"] == "RevokeGrant" and rec["eventSource"] == "kms.amazonaws.com"
    assert rec["userAgent"] == dashboard.USER_AGENT == "lbproxy-dashboard"
    assert rec["userIdentity"]["arn"] == plane.admin.arn
    assert rec["sourceIPAddress"] == "127.0.0.1" and "errorCode" not in rec
    # The same record the API writes: the handler's audit details are there too.
    api_rec = next(r for r in records if r["eventName"] == "CreateGrant")
    assert set(api_rec) - {"responseElements"} <= set(rec) | {"requestParameters", "resources"}
    # And the dashboard's own trail has it.
    assert "RevokeGrant" in [r["eventName"] for r in dash.state()["audit"]]


def test_call_errors_are_the_api_errors(dash: Dash) -> None:
    kms = dash.ct.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]

    def api(target: str, body: bytes) -> tuple[int, Any]:
        # The same request through the AWS API, signed as the admin, for comparison.
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials

        admin = dash.ct.admin
        req = botocore.awsrequest.AWSRequest(
            method="POST",
            url=dash.ct.url + "/",
            data=body,
            headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        )
        creds = botocore.credentials.Credentials(admin.access_key_id, admin.secret_access_key)
        botocore.auth.SigV4Auth(creds, "kms", dash.ct.settings.region).add_auth(req)
        r = urllib.request.Request(req.url, data=body, headers=dict(req.headers.items()), method="POST")
        try:
            with urllib.request.urlopen(r, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    cases = [
        ("TrentService.RevokeGrant", {"KeyId": key_id, "GrantId": "0" * 64}),  # NotFoundException
        ("TrentService.RevokeGrant", {"KeyId": key_id}),  # ValidationException (GrantId missing)
        ("TrentService.RevokeGrant", {"KeyId": key_id, "GrantId": 5}),  # SerializationException
        ("TrentService.NoSuchThing", {}),  # UnknownOperationException
        ("TrentService.DescribeKey", {"KeyId": "alias/none"}),  # NotFoundException
    ]
    for target, params in cases:
        mine = dash.call(target, params)
        theirs = api(target, json.dumps(params).encode())
        assert (mine.status, mine.body) == theirs, target
        assert mine.status >= 400 and "__type" in mine.body

    unknown_service = dash.call("NoSuchService.Op", {})
    assert unknown_service.status == 400 and unknown_service.body["__type"] == "UnknownOperationException"
    not_json = dash.request("POST", "/dashboard/api/call", b"{not json")
    assert not_json.status == 400 and not_json.body["__type"] == "SerializationException"


def test_key_material_is_refused(dash: Dash) -> None:
    key_id = dash.ct.client("kms").create_key()["KeyMetadata"]["KeyId"]
    reply = dash.call("TrentService.GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256"})
    assert reply.status == 400 and reply.body["__type"] == "AccessDeniedException"
    assert "Plaintext" not in reply.body
    assert dash.state()["audit"][-1]["errorCode"] == "AccessDeniedException"


def test_event_stream_pushes_events_audit_and_key_states(dash: Dash) -> None:
    dash.ct.client("lightsail").create_load_balancer(loadBalancerName="demo-lb", instancePort=80)
    key_id, grant_id, _ = make_key_and_grant(dash, role="demo-lb")  # a grant for the load balancer's principal
    assert next(k for k in dash.state()["keys"] if k["keyId"] == key_id)["grants"][0]["loadBalancer"] == "demo-lb"
    req = urllib.request.Request(f"{dash.ct.url}/dashboard/api/events?token={dash.token}")
    resp = urllib.request.urlopen(req, timeout=10)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    got: list[tuple[str, dict[str, Any]]] = []
    done = threading.Event()

    def reader() -> None:
        event = ""
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                got.append((event, json.loads(line[6:])))
                kinds = {e for e, _ in got}
                if {"control", "audit", "keystate"} <= kinds:
                    done.set()
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert dash.call("TrentService.RevokeGrant", {"KeyId": key_id, "GrantId": grant_id}).status == 200
    # The data plane learns of it on its own event stream and reports that its key is gone.
    dp = dash.data_plane("demo-lb")
    assert [e["type"] for e in dp.events(after=0, want=3)] == ["loadbalancer.created", "grant.created", "grant.revoked"]
    dp.report(key_state=KeyStateReport(state="wiped", since=dash.ct.clock.time()))
    assert done.wait(10), got
    resp.close()
    control = [d for e, d in got if e == "control"]
    assert control[0]["type"] == "grant.revoked" and control[0]["detail"]["grantId"] == grant_id
    audit = [d for e, d in got if e == "audit"]
    assert audit[0]["eventName"] == "RevokeGrant" and audit[0]["userAgent"] == "lbproxy-dashboard"
    [keystate] = [d for e, d in got if e == "keystate"]
    assert keystate["state"] == "WIPED" and keystate["loadBalancer"] == "demo-lb" and keystate["reported"] is True
    assert not [d for d in control if d["type"] == "loadbalancer.key_state_changed"]  # (sent as keystate only)


def _stream(dash: Dash, path: str) -> Any:
    """Open an event stream (the control plane's, signed as the admin; or the dashboard's, with its token)."""
    if path == "/events":
        admin = dash.ct.admin
        signed = AWSRequest(method="GET", url=dash.ct.url + path)
        SigV4Auth(Credentials(admin.access_key_id, admin.secret_access_key), "lbproxy", "us-east-1").add_auth(signed)
        headers = dict(signed.prepare().headers)
    else:
        headers = {dashboard.TOKEN_HEADER: dash.token}
    resp = urllib.request.urlopen(urllib.request.Request(dash.ct.url + path, headers=headers), timeout=10)
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp


@pytest.mark.parametrize("path", ["/events", "/dashboard/api/events"])
def test_an_event_stream_is_cancelled_with_its_task(dash: Dash, path: str) -> None:
    """A cancelled handler task (what aiohttp does to a handler still running at shutdown) ends cancelled: its
    stream does not swallow the ``CancelledError`` and carry on as if the client had gone."""
    resp = _stream(dash, path)
    wait_until("the stream's request", lambda: dash.streams)
    task = dash.streams[-1].task
    dash.ct.call(task.cancel)
    wait_until("the handler's task to end", lambda: dash.ct.call(task.done), timeout=5)
    assert dash.ct.call(task.cancelled)
    resp.close()


@pytest.mark.parametrize("path", ["/events", "/dashboard/api/events"])
def test_an_event_stream_ends_when_its_client_goes(dash: Dash, path: str) -> None:
    resp = _stream(dash, path)
    wait_until("the stream's request", lambda: dash.streams)
    task = dash.streams[-1].task
    resp.close()
    # Something to send (an event): the write finds the connection gone.
    dash.ct.client("lightsail").create_load_balancer(loadBalancerName="lb-1", instancePort=80)
    wait_until("the handler's task to end", lambda: dash.ct.call(task.done), timeout=10)
    assert not dash.ct.call(task.cancelled) and dash.ct.call(task.exception) is None


def test_load_balancer_state_and_actions(dash: Dash) -> None:
    key_id, grant_id = dash.set_up_demo("demo-lb")
    state = dash.state()
    [lb] = state["loadBalancers"]
    assert lb["name"] == "demo-lb" and lb["tlsPolicyName"] and lb["publicPorts"] == [80, 443]
    health = {
        i["instanceName"]: (i["instanceHealth"], i.get("instanceHealthReason")) for i in lb["instanceHealthSummary"]
    }
    assert health["web-1"] == ("healthy", None) and health["web-3"] == ("unhealthy", "Instance.ResponseCodeMismatch")
    assert [c["name"] for c in lb["tlsCertificates"] if c["isAttached"]] == ["demo-cert"]
    assert lb["keyState"]["state"] == "LOADED" and lb["keyState"]["certificateName"] == "demo-cert"
    series = lb["requests"]["series"]
    assert sum(series["2xx"]) == 4 * 52 and sum(series["4xx"]) == 4 * 5 and sum(series["5xx"]) == 4 * 3
    assert len(lb["requests"]["minutes"]) == dashboard.METRIC_MINUTES

    # How they relate, worked out on the server: the certificate, the key that seals it, the grant made for it.
    [cert] = state["certificates"]
    acm_key = next(k for k in state["keys"] if k["keyId"] == key_id)
    assert cert["sealedUnder"] == acm_key["arn"] and cert["sealedUnderAliases"] == ["alias/aws/acm"]
    assert cert["inUseBy"] == [lb["arn"]] and cert["usedBy"] == [{"arn": lb["arn"], "loadBalancer": "demo-lb"}]
    assert cert["status"] == "ISSUED" and cert["domain"] == "demo.lbproxy.test"
    [grant] = acm_key["grants"]
    assert (
        grant["grantId"] == grant_id and grant["loadBalancer"] == "demo-lb" and grant["certificateArn"] == cert["arn"]
    )
    assert (lb["certificateArn"], lb["grantId"], lb["keyArn"]) == (cert["arn"], grant_id, acm_key["arn"])
    assert lb["tlsCertificates"][0]["acmCertificateArn"] == cert["arn"]
    assert lb["keyState"]["certificateArn"] == cert["arn"]
    assert state["flow"] == {
        "keyArn": acm_key["arn"],
        "certificateArn": cert["arn"],
        "grantId": grant_id,
        "loadBalancer": "demo-lb",
    }

    # Toggle HTTPS redirect, as the button does.
    reply = dash.call(
        "Lightsail_20161128.UpdateLoadBalancerAttribute",
        {"loadBalancerName": "demo-lb", "attributeName": "HttpsRedirectionEnabled", "attributeValue": "true"},
    )
    assert reply.status == 200, reply.body
    assert dash.state()["loadBalancers"][0]["httpsRedirectionEnabled"] is True

    # Detach (lbproxy's extension): the certificate stays, the grant is retired.
    reply = dash.call(
        "lbproxy.DetachLoadBalancerTlsCertificate", {"loadBalancerName": "demo-lb", "certificateName": "demo-cert"}
    )
    assert reply.status == 200, reply.body
    after = dash.state()
    [lb] = after["loadBalancers"]
    assert [c["isAttached"] for c in lb["tlsCertificates"]] == [False]
    assert (lb["certificateArn"], lb["grantId"], lb["keyArn"]) == (None, None, None)
    assert next(k for k in after["keys"] if k["keyId"] == key_id)["grants"] == []
    assert after["certificates"][0]["usedBy"] == [] and after["flow"]["grantId"] is None
    rec = after["audit"][-1]
    assert rec["eventName"] == "lbproxy:DetachLoadBalancerTlsCertificate" and rec["userAgent"] == "lbproxy-dashboard"
    again = dash.call(
        "lbproxy.DetachLoadBalancerTlsCertificate", {"loadBalancerName": "demo-lb", "certificateName": "demo-cert"}
    )
    assert again.status == 400 and again.body["__type"] == "InvalidInputException"
    unknown = dash.call("lbproxy.DeleteEverything", {})
    assert unknown.status == 400 and unknown.body["__type"] == "UnknownOperationException"

    # And attach it again: a new grant, related as the first one was.
    reply = dash.call(
        "Lightsail_20161128.AttachLoadBalancerTlsCertificate",
        {"loadBalancerName": "demo-lb", "certificateName": "demo-cert"},
    )
    assert reply.status == 200, reply.body
    again_state = dash.state()
    [new_grant] = next(k for k in again_state["keys"] if k["keyId"] == key_id)["grants"]
    assert new_grant["grantId"] != grant_id and new_grant["loadBalancer"] == "demo-lb"
    assert again_state["loadBalancers"][0]["grantId"] == new_grant["grantId"]


def test_key_state_shows_the_worker_processes_as_reported(dash: Dash) -> None:
    dash.ct.client("lightsail").create_load_balancer(loadBalancerName="quiet-lb", instancePort=80)
    dash.set_up_demo(
        "demo-lb",
        workers=1,
        workers_expected=2,
        restarts=3,
        last_exit="worker 2 (pid 4242) killed by SIGKILL",
        degraded="1 of 2 workers serving; next attempt in 2.0s",
    )
    lbs = {lb["name"]: lb for lb in dash.state()["loadBalancers"]}
    # A data plane that never reported: no key, and said so.
    assert lbs["quiet-lb"]["keyState"] == {"loadBalancer": "quiet-lb", "state": "NONE", "reported": False}
    shown = lbs["demo-lb"]["keyState"]
    assert (shown["state"], shown["workers"], shown["workersExpected"], shown["restarts"]) == ("LOADED", 1, 2, 3)
    assert shown["lastExit"] == "worker 2 (pid 4242) killed by SIGKILL"
    assert shown["degraded"] == "1 of 2 workers serving; next attempt in 2.0s"
    assert len(shown["fingerprint"]) == 64 and shown["serial"] and shown["reportedAt"] == dash.ct.clock.time()

    # Healed: the next report says so.
    dp = dash.data_plane("demo-lb")
    dp.report(key_state=dp.loaded(dash.ct.clock.time(), workers=2, workers_expected=2, restarts=3))
    shown = next(lb for lb in dash.state()["loadBalancers"] if lb["name"] == "demo-lb")["keyState"]
    assert (shown["state"], shown["workers"], shown["degraded"], shown["restarts"]) == ("LOADED", 2, None, 3)


def test_the_page_opened_with_its_token_carries_its_first_state(dash: Dash) -> None:
    """The first paint needs no fetch: opened with its token, the page carries the state as a JSON data block
    (escaped so that nothing in it can end the block); without the token it carries nothing."""
    import html.parser

    kms = dash.ct.client("kms")
    hostile = "</script><script>alert(1)</script>"
    key_id = kms.create_key(Description=hostile)["KeyMetadata"]["KeyId"]
    bare = dash.request("GET", "/", token=None)
    assert bare.status == 200 and "initial-state" not in bare.body
    page = dash.request("GET", f"/?token={dash.token}", token=None)
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"

    class Blocks(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.inside = False
            self.data: list[str] = []
            self.scripts = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "script":
                self.scripts += 1
                self.inside = ("id", "initial-state") in attrs
                assert ("type", "application/json") in attrs or ("src", "/static/app.js") in attrs, attrs

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.data.append(data)

        def handle_endtag(self, tag: str) -> None:
            self.inside = False

    blocks = Blocks()
    blocks.feed(page.body)
    assert blocks.scripts == 2  # app.js and the data block: the hostile description opened no script
    state = json.loads("".join(blocks.data))
    described = {k["keyId"]: k for k in state["keys"]}
    assert described[key_id]["description"] == hostile
    wrong = dash.request("GET", "/?token=not-the-token", token=None)
    assert "initial-state" not in wrong.body

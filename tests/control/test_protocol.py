"""The AWS JSON 1.1 front door: SigV4, bad input, the event stream — over real sockets."""

from __future__ import annotations

import datetime as dt
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from lbproxy.core.principals import Principal
from lbproxy.testing import ControlThread, read_events


class _SignAt(SigV4Auth):
    """botocore's signer with a chosen timestamp (to test clock skew)."""

    def __init__(self, creds: Credentials, service: str, region: str, when: dt.datetime) -> None:
        super().__init__(creds, service, region)
        self._when = when

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._when.strftime("%Y%m%dT%H%M%SZ")
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        sts = self.string_to_sign(request, canonical)
        self._inject_signature_to_request(request, self.signature(sts, request))


def send(
    url: str,
    principal: Principal | None,
    target: str | None,
    body: bytes,
    *,
    service: str = "kms",
    when: dt.datetime | None = None,
    method: str = "POST",
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    h = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
    if target:
        h["X-Amz-Target"] = target
    req = AWSRequest(method=method, url=url + path, data=body, headers=h)
    if principal is not None:
        creds = Credentials(principal.access_key_id, principal.secret_access_key)
        _SignAt(creds, service, "us-east-1", when or dt.datetime.now(dt.UTC)).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method=method)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_wrong_secret_unknown_key_and_skew(control: ControlThread) -> None:
    admin = control.admin
    bad = Principal("x", admin.arn, admin.access_key_id, "wrong" * 8, "user")
    with pytest.raises(ClientError) as e:
        control.client("kms", bad).list_keys()
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    unknown = Principal("x", admin.arn, "AKIAUNKNOWNUNKNOWN00", "s" * 40, "user")
    with pytest.raises(ClientError) as e:
        control.client("kms", unknown).list_keys()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"

    status, body = send(
        control.url, admin, "TrentService.ListKeys", b"{}", when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    )
    assert status == 400 and body["__type"] == "InvalidSignatureException"
    assert "Signature expired" in body["message"]
    status, body = send(
        control.url, admin, "TrentService.ListKeys", b"{}", when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=4)
    )
    assert status == 200 and "Keys" in body
    status, body = send(control.url, admin, "TrentService.ListKeys", b"{}", service="s3")
    assert status == 400 and body["__type"] == "InvalidSignatureException"


def test_unsigned_and_claimed_identity_are_refused(control: ControlThread) -> None:
    status, body = send(control.url, None, "TrentService.ListKeys", b"{}", headers={"X-Principal": control.admin.arn})
    assert status == 403 and body["__type"] == "MissingAuthenticationTokenException"


def test_body_tampered_after_signing(control: ControlThread) -> None:
    req = AWSRequest(
        method="POST",
        url=control.url + "/",
        data=b"{}",
        headers={"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(control.admin.access_key_id, control.admin.secret_access_key), "kms", "us-east-1").add_auth(
        req
    )
    p = req.prepare()
    headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}
    r = urllib.request.Request(p.url, data=b'{"Limit":1}', headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=10)
    assert json.loads(e.value.read())["__type"] == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("target", "body", "code"),
    [
        ("TrentService.ListKeys", b"{not json", "SerializationException"),
        ("TrentService.ListKeys", b"[1,2]", "SerializationException"),
        ("TrentService.DescribeKey", b'{"KeyId": 5}', "SerializationException"),
        ("TrentService.DescribeKey", b"{}", "ValidationException"),
        ("TrentService.DescribeKey", json.dumps({"KeyId": "x" * 3000}).encode(), "ValidationException"),
        ("TrentService.ListKeys", b'{"Limit": "ten"}', "SerializationException"),
        ("TrentService.ListKeys", b'{"Limit": 0}', "ValidationException"),
        ("TrentService.Encrypt", b'{"KeyId": "alias/aws/acm", "Plaintext": "!!notbase64"}', "SerializationException"),
        (
            "TrentService.CreateGrant",
            b'{"KeyId":"k","GranteePrincipal":"p","Operations":["Fly"]}',
            "ValidationException",
        ),
        ("TrentService.NoSuchOperation", b"{}", "UnknownOperationException"),
        ("NoSuchService.ListKeys", b"{}", "UnknownOperationException"),
        ("TrentService.DescribeKey", b'{"KeyId": "alias/nope"}', "NotFoundException"),
        ("TrentService.DescribeKey", b'{"KeyId": "not-a-key"}', "NotFoundException"),
    ],
)
def test_bad_input_gets_aws_errors(control: ControlThread, target: str, body: bytes, code: str) -> None:
    status, out = send(control.url, control.admin, target, body)
    assert status == 400, out
    assert out["__type"] == code
    assert out["message"] is not None


def test_oversized_body_is_refused_and_server_lives(control: ControlThread) -> None:
    big = b'{"KeyId": "' + b"x" * (control.settings.max_request_body + 10) + b'"}'
    status, out = send(control.url, control.admin, "TrentService.DescribeKey", big)
    assert status == 400 and out["__type"] == "ValidationException"
    assert "exceeds the limit" in out["message"]
    assert control.client("kms").list_keys()["Keys"]


def test_garbage_on_the_socket_does_not_kill_the_server(control: ControlThread) -> None:
    host, port = control.url.removeprefix("http://").split(":")
    for junk in (b"\x00\xff garbage\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", b"GET"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.recv(4096)
    assert control.client("kms").list_keys()


def test_event_stream_is_ordered_filtered_and_resumable(control: ControlThread) -> None:
    kms = control.client("kms")
    role = control.call(lambda: control.plane.principals.ensure_role("lb-ev"))  # type: ignore[union-attr]
    other = control.call(lambda: control.plane.principals.ensure_role("lb-other"))  # type: ignore[union-attr]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    g1 = kms.create_grant(KeyId=key_id, GranteePrincipal=role.arn, Operations=["Decrypt"])
    g2 = kms.create_grant(KeyId=key_id, GranteePrincipal=other.arn, Operations=["Decrypt"])
    kms.disable_key(KeyId=key_id)
    kms.revoke_grant(KeyId=key_id, GrantId=g1["GrantId"])

    mine = read_events(control.url, role, want=3)
    assert [e["type"] for e in mine] == ["grant.created", "key.disabled", "grant.revoked"]
    assert all(e["data"]["detail"].get("grantId") in (None, g1["GrantId"]) for e in mine)
    assert mine[0]["id"] < mine[1]["id"] < mine[2]["id"]

    # Resume after the first event: nothing missed, nothing repeated.
    resumed = read_events(control.url, role, after=mine[0]["id"], want=2)
    assert [e["id"] for e in resumed] == [mine[1]["id"], mine[2]["id"]]

    # An event published while nobody listens is delivered on the next connection (to grantees only).
    kms.enable_key(KeyId=key_id)
    later = read_events(control.url, other, after=mine[2]["id"], want=1)
    assert later[0]["type"] == "key.enabled"
    admin_view = read_events(control.url, control.admin, want=5)
    assert {e["data"]["detail"].get("grantId") for e in admin_view} >= {g1["GrantId"], g2["GrantId"]}


# -- what lbproxy does not emulate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "call", "target"),
    [
        ("kms", lambda c: c.describe_custom_key_stores(), "TrentService.DescribeCustomKeyStores"),
        ("acm", lambda c: c.get_account_configuration(), "CertificateManager.GetAccountConfiguration"),
        ("lightsail", lambda c: c.get_relational_databases(), "Lightsail_20161128.GetRelationalDatabases"),
    ],
)
def test_an_operation_of_the_model_that_lbproxy_lacks_says_so(
    control: ControlThread, service: str, call: Callable[[Any], Any], target: str
) -> None:
    """boto3 calls an operation its model has and lbproxy does not emulate: InternalFailure, HTTP 501 (not retried),
    a message that names the operation and lists the ones lbproxy emulates; audited like any error."""
    client = control.client(service)
    with pytest.raises(ClientError) as e:
        call(client)
    err, meta = e.value.response["Error"], e.value.response["ResponseMetadata"]
    assert err["Code"] == "InternalFailure"
    assert meta["HTTPStatusCode"] == 501 and meta["RetryAttempts"] == 0
    operation = target.split(".")[1]
    assert err["Message"].startswith(f"lbproxy does not emulate {target}:"), err["Message"]
    emulated = err["Message"].split("Operations lbproxy emulates for ")[1]
    assert service in emulated and operation not in emulated
    assert {"kms": "DescribeKey", "acm": "DescribeCertificate", "lightsail": "GetLoadBalancer"}[service] in emulated
    records = [json.loads(x) for x in (control.settings.data_dir / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["eventName"] == operation and records[-1]["errorCode"] == "InternalFailure"


@pytest.mark.parametrize(
    ("target", "service"),
    [
        ("TrentService.MakeCoffee", "kms"),
        ("CertificateManager.MakeCoffee", "acm"),
        ("Lightsail_20161128.MakeCoffee", "lightsail"),
        ("Lightsail_20161128.", "lightsail"),
        ("NoSuchService.MakeCoffee", "kms"),
    ],
)
def test_a_made_up_target_stays_unknown(control: ControlThread, target: str, service: str) -> None:
    """A target in no model is what AWS answers for it: UnknownOperationException, HTTP 400."""
    status, out = send(control.url, control.admin, target, b"{}", service=service)
    assert (status, out["__type"]) == (400, "UnknownOperationException"), out
    assert "lbproxy does not emulate" not in (out.get("message") or "")

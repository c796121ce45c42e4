"""Signature Version 4 verification with botocore's own signer.

The server recomputes the signature the way the client did: the same canonical request over exactly
the headers the client listed in ``SignedHeaders``, the client's timestamp and credential scope, and
the SHA-256 of the body it received. Only the comparison and the clock-skew rule are ours.

``check_head`` is everything that needs no body (a known access key, the credential scope, the clock skew, and
``host``, ``x-amz-date`` -- and on the AWS JSON API ``x-amz-target`` -- among ``SignedHeaders``); the server runs
it before reading a body. ``verify`` runs it again with the body and compares the signature.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

from lbproxy.awsapi.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from lbproxy.core.principals import Principal

MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
_ALGORITHM = "AWS4-HMAC-SHA256"
_TS_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the verifier needs of an HTTP request (no framework types)."""

    method: str
    url: str  # scheme://host/path?query exactly as received
    headers: Iterable[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != _ALGORITHM:
        raise IncompleteSignatureException(f"Unsupported AWS 'algorithm': '{algorithm}'")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        k, sep, v = part.strip().partition("=")
        if sep:
            fields[k] = v
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise IncompleteSignatureException(
            f"Authorization header requires '{missing[0]}' parameter. Authorization={value[:200]}"
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise IncompleteSignatureException(
            f"Credential should be scoped to a valid region, not '{fields['Credential'][:120]}'. "
        )
    signed = tuple(h.strip().lower() for h in fields["SignedHeaders"].split(";") if h.strip())
    return Authorization(scope[0], scope[1], scope[2], scope[3], signed, fields["Signature"])


class _Recompute(SigV4Auth):
    """botocore's SigV4Auth, restricted to the headers the client signed."""

    def __init__(self, credentials: Credentials, auth: Authorization) -> None:
        super().__init__(credentials, auth.service, auth.region)
        self._signed = auth.signed_headers

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        header_map = HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self._signed:
                header_map[name.lower()] = value
        return header_map


#: What every SigV4 request must sign (botocore and the other SDKs always do).
SIGNED_ALWAYS: tuple[str, ...] = ("host", "x-amz-date")
#: What an AWS JSON 1.1 request must sign on top: the operation it names (the body alone does not say which).
SIGNED_AWS_JSON: tuple[str, ...] = (*SIGNED_ALWAYS, "x-amz-target")
#: How the error names a header that must be signed (AWS's wording for ``host``).
_SIGNED_NAMES = {"host": "'Host' or ':authority'", "x-amz-date": "'X-Amz-Date'", "x-amz-target": "'X-Amz-Target'"}


@dataclass(frozen=True, slots=True)
class Credentialed:
    """What the request head proves before any body byte is read: a known principal, a well-formed
    ``Authorization`` for this endpoint with the required headers signed, a timestamp within the skew."""

    principal: Principal
    auth: Authorization
    amz_date: str


def check_head(
    headers: Iterable[tuple[str, str]],
    lookup: Callable[[str], Principal | None],
    now: dt.datetime,
    service: str | None = None,
    region: str | None = None,
    required: tuple[str, ...] = SIGNED_ALWAYS,
) -> Credentialed:
    """Everything SigV4 checks that needs no body; raise the AWS error a real endpoint would.

    Run before the body is read, so an unauthenticated caller never makes the server buffer one."""
    lower: dict[str, str] = {}
    for k, v in headers:
        lower.setdefault(k.lower(), v)
    value = lower.get("authorization")
    if not value:
        raise MissingAuthenticationTokenException("Missing Authentication Token")
    auth = parse_authorization(value)
    if service is not None and auth.service != service:
        raise InvalidSignatureException(f"Credential should be scoped to correct service: '{service}'. ")
    if region is not None and auth.region != region:
        raise InvalidSignatureException(
            f"Credential should be scoped to a valid region, not '{auth.region}'. This endpoint serves '{region}'."
        )
    principal = lookup(auth.access_key_id)
    if principal is None or not principal.secret_access_key:
        raise UnrecognizedClientException("The security token included in the request is invalid.")

    amz_date = lower.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, _TS_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise IncompleteSignatureException(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        ) from None
    for name in required:
        if name not in auth.signed_headers:
            shown = _SIGNED_NAMES.get(name, f"'{name}'")
            raise InvalidSignatureException(f"{shown} must be a 'SignedHeader' in the AWS Authorization.")
    if auth.date != amz_date[:8]:
        raise InvalidSignatureException(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if abs(now - when) > MAX_CLOCK_SKEW:
        fmt = now.strftime(_TS_FORMAT)
        if when < now:
            limit = (now - MAX_CLOCK_SKEW).strftime(_TS_FORMAT)
            msg = f"Signature expired: {amz_date} is now earlier than {limit} ({fmt} - 5 min.)"
        else:
            limit = (now + MAX_CLOCK_SKEW).strftime(_TS_FORMAT)
            msg = f"Signature not yet current: {amz_date} is still later than {limit} ({fmt} + 5 min.)"
        raise InvalidSignatureException(msg)
    return Credentialed(principal, auth, amz_date)


def verify(
    request: SignedRequest,
    lookup: Callable[[str], Principal | None],
    now: dt.datetime,
    service: str | None = None,
    region: str | None = None,
    required: tuple[str, ...] = SIGNED_ALWAYS,
) -> Principal:
    """Return the authenticated principal, or raise the AWS error a real endpoint would."""
    headers: list[tuple[str, str]] = list(request.headers)
    checked = check_head(headers, lookup, now, service, region, required)
    principal, auth, amz_date = checked.principal, checked.auth, checked.amz_date

    body_hash = hashlib.sha256(request.body).hexdigest()
    claimed = next((v for k, v in headers if k.lower() == "x-amz-content-sha256"), None)
    if claimed is not None and claimed != body_hash:
        raise InvalidSignatureException("The provided 'x-amz-content-sha256' header does not match what was computed.")

    aws_request = AWSRequest(method=request.method, url=request.url, data=request.body)
    aws_request.headers = _multi_headers(headers, auth.signed_headers)
    aws_request.context["timestamp"] = amz_date
    signer = _Recompute(Credentials(principal.access_key_id, principal.secret_access_key), auth)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, auth.signature):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. "
            "Consult the service documentation for details."
        )
    return principal


def _multi_headers(headers: Iterable[tuple[str, str]], signed: tuple[str, ...]) -> HTTPHeaders:
    out = HTTPHeaders()
    for k, v in headers:
        if k.lower() in signed:
            out[k.lower()] = v  # HTTPHeaders appends repeated names (email.message semantics)
    return out


def sign_headers(
    method: str,
    url: str,
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
    extra_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Client side: the headers that sign a request (used by the data plane and tools)."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(extra_headers or {}))
    SigV4Auth(credentials, service, region).add_auth(req)
    return dict(req.headers.items())

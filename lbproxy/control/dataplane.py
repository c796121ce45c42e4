"""The data-plane contract and lbproxy's extensions to Lightsail, as aiohttp routes (``install_routes``).

Every route is SigV4-signed with signing name ``lbproxy`` (region as the control plane's). Errors are AWS
JSON bodies (``{"__type", "message", ...}``) with ``x-amzn-ErrorType``: 403 ``AccessDeniedException``,
400 ``NotFoundException`` (the admin asking for a load balancer that does not exist), 400
``InvalidInputException``.

The data-plane contract (caller: the load balancer's own principal, profile NAME in ``DATA_DIR/credentials``;
the admin may call it too; any other principal gets 403, whether or not the load balancer exists)
-----------------------------------------------------------------------------------------------------

``GET /dataplane/v1/load-balancers/{name}`` -> 200::

    {
      "name": "demo-lb",
      "arn": "arn:aws:lightsail:us-east-1:000000000000:LoadBalancer/<uuid>",
      "principalArn": "arn:aws:iam::000000000000:role/demo-lb",
      "state": "active" | "provisioning",
      "instancePort": 80,
      "listeners": {"http": {"port": 80, "enabled": true}, "https": {"port": 443, "enabled": false}},
      "attributes": {"HealthCheckPath": "/", "SessionStickinessEnabled": false,
                     "SessionStickiness_LB_CookieDurationSeconds": 86400, "HttpsRedirectionEnabled": false,
                     "TlsPolicyName": "TLS-2016-08"},
      "instances": [{"name": "web-1", "host": "127.0.0.1", "port": 8001, "address": "127.0.0.1:8001",
                     "state": "initial", "reasonCode": "Lb.RegistrationInProgress"}],
      "certificate": null | {
          "name": "demo-cert", "arn": "arn:aws:lightsail:...:LoadBalancerTlsCertificate/<uuid>",
          "acmCertificateArn": "arn:aws:acm:...:certificate/<uuid>",
          "certificatePem": "...", "chainPem": "...",
          "encryptionContext": {"aws:acm:arn": "<acm arn>", "aws:lightsail:arn": "<load balancer arn>"},
          "bundle": {... lbproxy.contract.sealed bundle: Certificate, CertificateChain, EncryptedDataKey,
                     EncryptionContext, KeyCiphertext, Nonce, KeyId, Label, CertificateArn, Serial, ...},
          "grant": {"grantId": "...", "grantToken": "...", "keyArn": "arn:aws:kms:...", "active": true,
                    "name": "IssuedThroughACM"},
          "kmsKeyArn": "arn:aws:kms:...:key/<id>"
      },
      "lastEventId": 42,
      "ipAddressType": "dualstack" | "ipv4" | "ipv6"
    }

``listeners.https.enabled`` is true exactly when an ISSUED certificate is attached; ``certificate`` is
null otherwise. ``lastEventId`` is read before the snapshot is taken: subscribe to ``GET /events`` with
``Last-Event-ID: lastEventId`` and nothing is missed (at worst an event already reflected is replayed).
``ipAddressType`` is Lightsail's (SetIpAddressType): ``dualstack`` listens on the IPv6 loopback too, ``ipv4``
does not; a document without it means ``dualstack``.
To use the key: KMS ``Decrypt`` of ``bundle.EncryptedDataKey`` with ``EncryptionContext`` =
``encryptionContext`` (optionally ``GrantTokens: [grant.grantToken]``), then
``lbproxy.contract.sealed.open_sealed_key(bundle, plaintext_data_key)``.

``POST /dataplane/v1/load-balancers/{name}/report`` (push, e.g. every 10-60 s), body::

    {"instances": [{"name": "web-1", "state": "healthy", "reasonCode": null}, ...],
     "metrics": {"RequestCount": 12, "HTTPCode_Instance_2XX_Count": 11, "HTTPCode_LB_5XX_Count": 1,
                 "InstanceResponseTime_Sum": 0.42, "InstanceResponseTime_Count": 11,
                 "HealthyHostCount": 3, "UnhealthyHostCount": 0, ...}}

``state``/``reasonCode``: Lightsail's ``InstanceHealthState``/``InstanceHealthReason``. Counters are the
increase since the previous report; gauges the value now (see ``lightsail.metrics``). Answer 200
``{"accepted": {"instances": n, "samples": m}, "ignoredInstances": [...], "lastEventId": N}``.
GetLoadBalancer's ``instanceHealthSummary`` and GetLoadBalancerMetricData answer from these reports.

Events for the data plane (``GET /events``, audience the load balancer's principal; detail always has
``loadBalancerName``, ``loadBalancerArn``, ``principalArn``): ``loadbalancer.instances_changed``
(``attached``, ``detached``, ``changed``, ``instances``), ``loadbalancer.attribute_changed``
(``attributeName``, ``value``, ``attributes``; ``attributeName`` ``IpAddressType`` with ``ipAddressType`` after
SetIpAddressType), ``loadbalancer.certificate_attached`` (``certificateName``,
``certificateArn``, ``acmCertificateArn``, ``grantId``, ``keyArn``, ``swapped``, ``previousCertificateName``),
``loadbalancer.certificate_detached`` (same, ``reason``: detached | deleted | loadbalancer_deleted),
``loadbalancer.health_changed``, ``loadbalancer.deleted``; plus ``grant.created/retired/revoked``,
``key.disabled/...`` from the key service and ``certificate.renewed`` from ACM (``certificateArn``).

lbproxy extensions (admin only; real Lightsail has no equivalent)
-----------------------------------------------------------------

- ``GET /lbproxy/v1/instances`` -> ``{"instances": [{"name", "address", "source": "file"|"api"}]}``
- ``PUT /lbproxy/v1/instances/{name}`` ``{"address": "HOST:PORT" | "HOST"}`` -> ``{"instance": <Instance>}``
  registers (or re-addresses) an instance; one from the ``--instances`` file is edited there instead.
- ``DELETE /lbproxy/v1/instances/{name}`` -> ``{}`` (detached from every load balancer first).
- ``POST /lbproxy/v1/load-balancers/{lb}/tls-certificates`` ``{"certificateName", "acmCertificateArn"}``
  -> ``{"tlsCertificate": <LoadBalancerTlsCertificate>}``: wraps an existing ACM certificate (e.g. one
  made with ``acm import-certificate``, whose key the caller knows) as a load-balancer certificate; attach it
  with the ordinary ``AttachLoadBalancerTlsCertificate``. Deleting it leaves the ACM certificate in ACM.
- ``POST /lbproxy/v1/load-balancers/{lb}/tls-certificates/{cert}/detach`` -> ``{"operations": [...]}``:
  detach without deleting (the grant is retired). Lightsail itself only detaches by deleting with
  ``force`` or by attaching the other certificate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lbproxy.awsapi.dispatch import audit_record
from lbproxy.awsapi.errors import AwsError
from lbproxy.awsapi.protocol import RequestContext, encode
from lbproxy.contract.vocabulary import SIGNING_NAME
from lbproxy.control.app import PLANE, authenticated_body, aws_error_response
from lbproxy.control.plane import ControlPlane
from lbproxy.core.principals import Principal
from lbproxy.lightsail.errors import AccessDeniedException, InvalidInputException
from lbproxy.lightsail.service import LightsailService

DATAPLANE_PREFIX = "/dataplane/v1"
EXTENSION_PREFIX = "/lbproxy/v1"


async def _authenticated(request: web.Request) -> tuple[ControlPlane, Principal, bytes]:
    """The caller and the body; the body is read only once the signed head is good (``authenticated_body``)."""
    principal, body = await authenticated_body(request, SIGNING_NAME)
    return request.app[PLANE], principal, body


def _service(plane: ControlPlane) -> LightsailService:
    return plane.lightsail


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputException("The request body is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise InvalidInputException("The request body must be a JSON object.")
    return doc


def _ok(result: Any) -> web.Response:
    return web.Response(body=encode(result), content_type="application/json")


def _require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise AccessDeniedException(f"User: {principal.arn} is not authorized to perform: lbproxy:{action}")


def _audit(
    plane: ControlPlane,
    request: web.Request,
    principal: Principal,
    name: str,
    params: dict[str, Any],
    request_id: str,
    exc: AwsError | None,
) -> None:
    ctx = RequestContext(
        principal, request_id, plane.settings.region, request.remote or "", request.headers.get("User-Agent", "")
    )
    plane.audit.record(audit_record("lightsail.amazonaws.com", name, ctx, exc, params))


RouteFn = Callable[[LightsailService, Principal, web.Request, bytes], Any]
AiohttpHandler = Callable[[web.Request], Awaitable[web.Response]]


def _route(name: str, *, audit: bool = True) -> Callable[[RouteFn], AiohttpHandler]:
    """Wrap a handler ``(service, principal, request, body) -> result``: auth, errors, audit."""

    def wrap(fn: RouteFn) -> AiohttpHandler:
        async def handler(request: web.Request) -> web.Response:
            request_id = str(uuid.uuid4())
            principal: Principal | None = None
            plane = request.app[PLANE]
            params = dict(request.match_info)
            try:
                plane, principal, body = await _authenticated(request)
                result = fn(_service(plane), principal, request, body)
                if audit:
                    _audit(plane, request, principal, name, params, request_id, None)
                return _ok(result)
            except AwsError as exc:
                if principal is not None and audit:
                    _audit(plane, request, principal, name, params, request_id, exc)
                return aws_error_response(exc, request_id)

        return handler

    return wrap


@_route("lbproxy:GetDataPlaneConfiguration")
def get_config(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    return service.data_plane_config(principal, request.match_info["name"]).to_json()


@_route("lbproxy:ReportDataPlaneState", audit=False)
def post_report(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    return service.report(principal, request.match_info["name"], _json_body(body))


@_route("lbproxy:ListInstances")
def list_instances(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    _require_admin(principal, "ListInstances")
    return {"instances": service.list_instances_plain()}


@_route("lbproxy:RegisterInstance")
def put_instance(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    _require_admin(principal, "RegisterInstance")
    doc = _json_body(body)
    unknown = sorted(set(doc) - {"address"})
    if unknown:
        raise InvalidInputException(f"unknown field(s): {', '.join(unknown)} (expected address)")
    return {"instance": service.register_instance(request.match_info["name"], doc.get("address"))}  # type: ignore[arg-type]


@_route("lbproxy:DeregisterInstance")
def delete_instance(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    _require_admin(principal, "DeregisterInstance")
    service.deregister_instance(request.match_info["name"])
    return {}


@_route("lbproxy:AddAcmCertificateToLoadBalancer")
def post_certificate(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    _require_admin(principal, "AddAcmCertificateToLoadBalancer")
    doc = _json_body(body)
    unknown = sorted(set(doc) - {"certificateName", "acmCertificateArn"})
    if unknown:
        raise InvalidInputException(f"unknown field(s): {', '.join(unknown)}")
    name, arn = doc.get("certificateName"), doc.get("acmCertificateArn")
    if not isinstance(name, str) or not isinstance(arn, str):
        raise InvalidInputException("certificateName and acmCertificateArn are required strings.")
    return {"tlsCertificate": service.add_acm_certificate(request.match_info["lb"], name, arn)}


@_route("lbproxy:DetachLoadBalancerTlsCertificate")
def post_detach(service: LightsailService, principal: Principal, request: web.Request, body: bytes) -> Any:
    _require_admin(principal, "DetachLoadBalancerTlsCertificate")
    return {"operations": service.detach_certificate(request.match_info["lb"], request.match_info["cert"])}


def install_routes(app: web.Application, plane: ControlPlane) -> None:
    """The route installer for ``ControlServer(plane, installers=[install_routes])``."""
    app.router.add_get(DATAPLANE_PREFIX + "/load-balancers/{name}", get_config)
    app.router.add_post(DATAPLANE_PREFIX + "/load-balancers/{name}/report", post_report)
    app.router.add_get(EXTENSION_PREFIX + "/instances", list_instances)
    app.router.add_put(EXTENSION_PREFIX + "/instances/{name}", put_instance)
    app.router.add_delete(EXTENSION_PREFIX + "/instances/{name}", delete_instance)
    app.router.add_post(EXTENSION_PREFIX + "/load-balancers/{lb}/tls-certificates", post_certificate)
    app.router.add_post(EXTENSION_PREFIX + "/load-balancers/{lb}/tls-certificates/{cert}/detach", post_detach)

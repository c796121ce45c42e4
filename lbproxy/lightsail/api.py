"""Lightsail on the wire: ``X-Amz-Target: Lightsail_20161128.<Operation>`` handlers over ``LightsailService``.

Requests arrive validated against botocore's ``lightsail`` model (types, required members, enums, ranges);
the rest (name patterns, attribute values, limits) is checked by the service, with Lightsail's error codes.
Who may call: users (``admin`` and declared users) every operation. A role (a load balancer's own principal)
reads its own load balancer, the instances attached to it, its certificates and its metrics, as if IAM gave it a
policy scoped to those resources: anything else (another load balancer, an instance that is not its own, a name
that does not exist, the account-wide listings ``GetLoadBalancers`` / ``GetInstances``, every change) is
``AccessDeniedException``, and the answer does not say whether the other resource exists.
``GetLoadBalancerTlsPolicies`` (the fixed catalogue of TLS policies, about no resource) stays open to roles.
The operation log (``GetOperation``, ``GetOperations``, ``GetOperationsForResource``) is the account's: users
only.

Operations served (the Lightsail coverage table in the README says what each enforces): load balancers
(Create, Get, GetLoadBalancers, Delete, Attach/DetachInstances, UpdateLoadBalancerAttribute,
GetLoadBalancerTlsPolicies, GetLoadBalancerMetricData), their TLS certificates (Create, Get, Attach, Delete),
GetInstance(s), GetOperation(s), GetOperationsForResource, TagResource, UntagResource, SetIpAddressType.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from lbproxy.awsapi.errors import AwsError
from lbproxy.awsapi.protocol import Handler, RequestContext
from lbproxy.core.principals import ACCOUNT_ID, Principal
from lbproxy.lightsail.errors import AccessDeniedException, InvalidInputException
from lbproxy.lightsail.service import LightsailService

#: What a role may call on its own load balancer (``loadBalancerName``) or an instance attached to it.
ROLE_SCOPED = frozenset(
    {"GetLoadBalancer", "GetLoadBalancerTlsCertificates", "GetLoadBalancerMetricData", "GetInstance"}
)
#: What a role may call that concerns no resource of the account.
ROLE_UNSCOPED = frozenset({"GetLoadBalancerTlsPolicies"})
#: Every read-only operation (a role gets ``ROLE_SCOPED`` on its own resources and ``ROLE_UNSCOPED``).
READ_ONLY = ROLE_SCOPED | ROLE_UNSCOPED | {"GetLoadBalancers", "GetInstances"}


def _epoch(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    return float(value)


class LightsailApi:
    target_prefix = "Lightsail_20161128"
    model_name = "lightsail"
    event_source = "lightsail.amazonaws.com"
    validation_error: type[AwsError] = InvalidInputException

    def __init__(self, service: LightsailService) -> None:
        self.service = service
        self._handlers: dict[str, Handler] = {
            "CreateLoadBalancer": self.create_load_balancer,
            "GetLoadBalancer": self.get_load_balancer,
            "GetLoadBalancers": self.get_load_balancers,
            "DeleteLoadBalancer": self.delete_load_balancer,
            "AttachInstancesToLoadBalancer": self.attach_instances,
            "DetachInstancesFromLoadBalancer": self.detach_instances,
            "CreateLoadBalancerTlsCertificate": self.create_certificate,
            "GetLoadBalancerTlsCertificates": self.get_certificates,
            "AttachLoadBalancerTlsCertificate": self.attach_certificate,
            "DeleteLoadBalancerTlsCertificate": self.delete_certificate,
            "UpdateLoadBalancerAttribute": self.update_attribute,
            "GetLoadBalancerTlsPolicies": self.get_tls_policies,
            "GetLoadBalancerMetricData": self.get_metric_data,
            "GetInstance": self.get_instance,
            "GetInstances": self.get_instances,
            "GetOperation": self.get_operation,
            "GetOperations": self.get_operations,
            "GetOperationsForResource": self.get_operations_for_resource,
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "SetIpAddressType": self.set_ip_address_type,
        }

    def handlers(self) -> Mapping[str, Handler]:
        return self._handlers

    # -- helpers ---------------------------------------------------------------------------------

    def _authorize(self, ctx: RequestContext, operation: str, lb_name: str | None, instance_name: str | None) -> None:
        p = ctx.principal
        if p.kind == "user":
            return
        if p.kind == "role":
            if operation in ROLE_UNSCOPED:
                return
            if operation in ROLE_SCOPED and self._role_owns(p, lb_name, instance_name):
                return
        resource = lb_name or instance_name
        on = f" on resource: {resource}" if resource else ""
        raise AccessDeniedException(f"User: {p.arn} is not authorized to perform: lightsail:{operation}{on}")

    def _role_owns(self, role: Principal, lb_name: str | None, instance_name: str | None) -> bool:
        """Whether ``lb_name`` is the role's own load balancer, or ``instance_name`` is attached to it."""
        own = lb_name if lb_name is not None else role.name  # a load balancer's role bears its name
        try:
            self.service.authorize_data_plane(role, own)  # its principal, or AccessDenied (also when absent)
        except AwsError:
            return False
        if instance_name is None:
            return lb_name is not None
        attached = self.service.get_load_balancer(own)["instanceHealthSummary"]
        return any(entry["instanceName"] == instance_name for entry in attached)

    def _audit(self, ctx: RequestContext, operation: str, **request: Any) -> None:
        self._authorize(ctx, operation, request.get("loadBalancerName"), request.get("instanceName"))
        params = {k: v for k, v in request.items() if v is not None}
        ctx.audit["requestParameters"] = params or None
        lb = params.get("loadBalancerName")
        if lb:
            self._audit_resource(ctx, lb)

    def _audit_resource(self, ctx: RequestContext, lb_name: str) -> None:
        """The load balancer in the audit record's ``resources``, by its ARN (CloudTrail's ``ARN``), when it
        exists (a new one's once it was created)."""
        arn = self.service.load_balancer_arn(lb_name)
        if arn is not None:
            ctx.audit["resources"] = [{"ARN": arn, "accountId": ACCOUNT_ID, "type": "AWS::Lightsail::LoadBalancer"}]

    # -- load balancers --------------------------------------------------------------------------

    def create_load_balancer(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "CreateLoadBalancer",
            loadBalancerName=params["loadBalancerName"],
            instancePort=params["instancePort"],
            certificateName=params.get("certificateName"),
            ipAddressType=params.get("ipAddressType"),
            tlsPolicyName=params.get("tlsPolicyName"),
            tagKeys=[t.get("key") for t in params.get("tags") or []] or None,
        )
        ops = self.service.create_load_balancer(
            params["loadBalancerName"],
            params["instancePort"],
            health_check_path=params.get("healthCheckPath"),
            certificate_name=params.get("certificateName"),
            certificate_domain_name=params.get("certificateDomainName"),
            certificate_alternative_names=params.get("certificateAlternativeNames"),
            tags=params.get("tags"),
            ip_address_type=params.get("ipAddressType"),
            tls_policy_name=params.get("tlsPolicyName"),
        )
        self._audit_resource(ctx, params["loadBalancerName"])
        return {"operations": ops}

    def get_load_balancer(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetLoadBalancer", loadBalancerName=params["loadBalancerName"])
        return {"loadBalancer": self.service.get_load_balancer(params["loadBalancerName"])}

    def get_load_balancers(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetLoadBalancers", pageToken=params.get("pageToken"))
        lbs, token = self.service.get_load_balancers(params.get("pageToken"))
        return _paged({"loadBalancers": lbs}, token)

    def delete_load_balancer(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "DeleteLoadBalancer", loadBalancerName=params["loadBalancerName"])
        return {"operations": self.service.delete_load_balancer(params["loadBalancerName"])}

    def attach_instances(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "AttachInstancesToLoadBalancer",
            loadBalancerName=params["loadBalancerName"],
            instanceNames=params["instanceNames"],
        )
        return {"operations": self.service.attach_instances(params["loadBalancerName"], params["instanceNames"])}

    def detach_instances(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "DetachInstancesFromLoadBalancer",
            loadBalancerName=params["loadBalancerName"],
            instanceNames=params["instanceNames"],
        )
        return {"operations": self.service.detach_instances(params["loadBalancerName"], params["instanceNames"])}

    def update_attribute(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "UpdateLoadBalancerAttribute",
            loadBalancerName=params["loadBalancerName"],
            attributeName=params["attributeName"],
            attributeValue=params["attributeValue"],
        )
        return {
            "operations": self.service.update_attribute(
                params["loadBalancerName"], params["attributeName"], params["attributeValue"]
            )
        }

    def get_tls_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetLoadBalancerTlsPolicies")
        return {"tlsPolicies": self.service.tls_policies()}

    def get_metric_data(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "GetLoadBalancerMetricData",
            loadBalancerName=params["loadBalancerName"],
            metricName=params["metricName"],
            period=params["period"],
            unit=params["unit"],
            statistics=params["statistics"],
        )
        data = self.service.metric_data(
            params["loadBalancerName"],
            params["metricName"],
            params["period"],
            _epoch(params["startTime"]),
            _epoch(params["endTime"]),
            params["unit"],
            params["statistics"],
        )
        return {"metricName": params["metricName"], "metricData": data}

    # -- TLS certificates ------------------------------------------------------------------------

    def create_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "CreateLoadBalancerTlsCertificate",
            loadBalancerName=params["loadBalancerName"],
            certificateName=params["certificateName"],
            certificateDomainName=params["certificateDomainName"],
            certificateAlternativeNames=params.get("certificateAlternativeNames"),
        )
        return {
            "operations": self.service.create_certificate(
                params["loadBalancerName"],
                params["certificateName"],
                params["certificateDomainName"],
                params.get("certificateAlternativeNames"),
                params.get("tags"),
            )
        }

    def get_certificates(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetLoadBalancerTlsCertificates", loadBalancerName=params["loadBalancerName"])
        return {"tlsCertificates": self.service.get_certificates(params["loadBalancerName"])}

    def attach_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "AttachLoadBalancerTlsCertificate",
            loadBalancerName=params["loadBalancerName"],
            certificateName=params["certificateName"],
        )
        return {"operations": self.service.attach_certificate(params["loadBalancerName"], params["certificateName"])}

    def delete_certificate(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "DeleteLoadBalancerTlsCertificate",
            loadBalancerName=params["loadBalancerName"],
            certificateName=params["certificateName"],
            force=params.get("force"),
        )
        return {
            "operations": self.service.delete_certificate(
                params["loadBalancerName"], params["certificateName"], bool(params.get("force"))
            )
        }

    # -- instances -------------------------------------------------------------------------------

    def get_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetInstance", instanceName=params["instanceName"])
        return {"instance": self.service.get_instance(params["instanceName"])}

    def get_instances(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetInstances", pageToken=params.get("pageToken"))
        instances, token = self.service.get_instances(params.get("pageToken"))
        return _paged({"instances": instances}, token)

    # -- operations ------------------------------------------------------------------------------

    def get_operation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetOperation", operationId=params["operationId"])
        return {"operation": self.service.get_operation(params["operationId"])}

    def get_operations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(ctx, "GetOperations", pageToken=params.get("pageToken"))
        ops, token = self.service.get_operations(params.get("pageToken"))
        return _paged({"operations": ops}, token)

    def get_operations_for_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx, "GetOperationsForResource", resourceName=params["resourceName"], pageToken=params.get("pageToken")
        )
        ops, token = self.service.get_operations_for_resource(params["resourceName"], params.get("pageToken"))
        return _paged({"operations": ops}, token)

    # -- resources: tags, IP address type ----------------------------------------------------------

    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "TagResource",
            resourceName=params["resourceName"],
            resourceArn=params.get("resourceArn"),
            tagKeys=[t.get("key") for t in params["tags"]],
        )
        ops = self.service.tag_resource(params["resourceName"], params.get("resourceArn"), params["tags"])
        return {"operations": ops}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "UntagResource",
            resourceName=params["resourceName"],
            resourceArn=params.get("resourceArn"),
            tagKeys=params["tagKeys"],
        )
        ops = self.service.untag_resource(params["resourceName"], params.get("resourceArn"), params["tagKeys"])
        return {"operations": ops}

    def set_ip_address_type(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        self._audit(
            ctx,
            "SetIpAddressType",
            resourceType=params["resourceType"],
            resourceName=params["resourceName"],
            ipAddressType=params["ipAddressType"],
        )
        ops = self.service.set_ip_address_type(params["resourceType"], params["resourceName"], params["ipAddressType"])
        return {"operations": ops}


def _paged(result: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        result["nextPageToken"] = token
    return result

"""The names both planes must agree on, said once (pure constants, no I/O).

- ``SIGNING_NAME``: the SigV4 signing name of lbproxy's own (non-AWS) endpoints: the event stream and the
  data-plane API.
- ``ACM_KEY_ALIAS``: the AWS-managed KMS key the certificate manager seals private keys under.
- Instance health: Lightsail's ``InstanceHealthState`` values and ``InstanceHealthReason`` codes.
- Metrics: Lightsail's load-balancer metric names (counters, gauges, response time), and the data plane's
  own counters that Lightsail does not know (kept off the control plane's reports).
- Event types published on ``GET /events`` (key service, certificate manager, Lightsail) and followed by
  the data plane's agent.
- Key states a data plane reports.
"""

from __future__ import annotations

SIGNING_NAME = "lbproxy"
ACM_KEY_ALIAS = "alias/aws/acm"

# -- instance health (Lightsail's InstanceHealthState / InstanceHealthReason) ------------------------------
INITIAL, HEALTHY, UNHEALTHY, UNUSED, DRAINING, UNAVAILABLE = (
    "initial", "healthy", "unhealthy", "unused", "draining", "unavailable",
)  # fmt: skip
HEALTH_STATES = (INITIAL, HEALTHY, UNHEALTHY, UNUSED, DRAINING, UNAVAILABLE)

REGISTRATION_IN_PROGRESS = "Lb.RegistrationInProgress"
INITIAL_HEALTH_CHECKING = "Lb.InitialHealthChecking"
LB_INTERNAL_ERROR = "Lb.InternalError"
RESPONSE_CODE_MISMATCH = "Instance.ResponseCodeMismatch"
TIMEOUT = "Instance.Timeout"
FAILED_HEALTH_CHECKS = "Instance.FailedHealthChecks"
NOT_REGISTERED = "Instance.NotRegistered"
NOT_IN_USE = "Instance.NotInUse"
DEREGISTRATION_IN_PROGRESS = "Instance.DeregistrationInProgress"
INVALID_STATE = "Instance.InvalidState"
IP_UNUSABLE = "Instance.IpUnusable"
HEALTH_REASONS = (
    REGISTRATION_IN_PROGRESS,
    INITIAL_HEALTH_CHECKING,
    LB_INTERNAL_ERROR,
    RESPONSE_CODE_MISMATCH,
    TIMEOUT,
    FAILED_HEALTH_CHECKS,
    NOT_REGISTERED,
    NOT_IN_USE,
    DEREGISTRATION_IN_PROGRESS,
    INVALID_STATE,
    IP_UNUSABLE,
)

# -- metrics (Lightsail's load-balancer metric names) -------------------------------------------------------
#: Counters: a report carries the increase since the previous report.
COUNTERS = (
    "RequestCount",
    "HTTPCode_LB_4XX_Count",
    "HTTPCode_LB_5XX_Count",
    "HTTPCode_Instance_2XX_Count",
    "HTTPCode_Instance_3XX_Count",
    "HTTPCode_Instance_4XX_Count",
    "HTTPCode_Instance_5XX_Count",
    "ClientTLSNegotiationErrorCount",
    "RejectedConnectionCount",
)
#: Gauges: a report carries the value now.
GAUGES = ("HealthyHostCount", "UnhealthyHostCount")
RESPONSE_TIME = "InstanceResponseTime"
#: How a report carries the response time: sum and count since the previous report (min and max optional).
RESPONSE_TIME_FIELDS = (
    "InstanceResponseTime_Sum",
    "InstanceResponseTime_Count",
    "InstanceResponseTime_Min",
    "InstanceResponseTime_Max",
)
METRIC_NAMES = (*COUNTERS, *GAUGES, RESPONSE_TIME)
#: The data plane's own counters (``/metrics``, the benchmark); never reported to the control plane.
LOCAL_COUNTERS = ("TLSFullHandshakeCount", "TLSResumedHandshakeCount")

# -- events (``GET /events``) --------------------------------------------------------------------------------
GRANT_CREATED = "grant.created"
GRANT_RETIRED = "grant.retired"
GRANT_REVOKED = "grant.revoked"
KEY_ENABLED = "key.enabled"
KEY_DISABLED = "key.disabled"
KEY_PENDING_DELETION = "key.pending_deletion"
KEY_DELETED = "key.deleted"
KEY_ROTATED = "key.rotated"
CERTIFICATE_ISSUED = "certificate.issued"
CERTIFICATE_RENEWED = "certificate.renewed"
CERTIFICATE_IMPORTED = "certificate.imported"
CERTIFICATE_DELETED = "certificate.deleted"
LB_CREATED = "loadbalancer.created"
LB_INSTANCES_CHANGED = "loadbalancer.instances_changed"
LB_ATTRIBUTE_CHANGED = "loadbalancer.attribute_changed"
LB_CERTIFICATE_ATTACHED = "loadbalancer.certificate_attached"
LB_CERTIFICATE_DETACHED = "loadbalancer.certificate_detached"
LB_HEALTH_CHANGED = "loadbalancer.health_changed"
LB_DELETED = "loadbalancer.deleted"
LB_KEY_STATE_CHANGED = "loadbalancer.key_state_changed"
#: Key events that take a key away from every data plane whose certificate is sealed under it.
KEY_REVOKING_EVENTS = frozenset({KEY_DISABLED, KEY_PENDING_DELETION, KEY_DELETED})
#: Grant events that take the key away from the grantee.
GRANT_REVOKING_EVENTS = frozenset({GRANT_REVOKED, GRANT_RETIRED})

# -- key state (what a data plane reports about its key: never key material) -------------------------------
KEY_LOADED, KEY_WIPED, KEY_NONE = "loaded", "wiped", "none"
KEY_STATES = (KEY_LOADED, KEY_WIPED, KEY_NONE)

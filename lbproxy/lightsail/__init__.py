"""Lightsail: load balancers, instances, load-balancer TLS certificates, attributes and metrics.

The parts:

- ``errors``      Lightsail's error codes (``InvalidInputException``, ``NotFoundException``, ...), with the
                  ``code`` / ``docs`` / ``message`` / ``tip`` body Lightsail answers with.
- ``attributes``  pure: the five load-balancer attributes (defaults, validation, typed values), TLS policies
                  (the table lives in ``lbproxy.contract.tlspolicies``), names, ARNs and limits.
- ``instances``   pure: the ``--instances`` TOML file (``[instances.NAME] address = "HOST:PORT"``).
- ``metrics``     pure: the metric names, their units, report samples and AWS-style aggregation.
- ``certificates`` ``CertificateBroker``: the thin adapter over ACM's ``CertificateManager`` (request, status,
                  association, grant ``IssuedThroughACM``, sealed bundle).
- ``model``       ``LightsailService``: state in SQLite, every operation, events for the data plane.
- ``api``         ``LightsailApi``: ``Lightsail_20161128.*`` over AWS JSON 1.1.
- ``dataplane``   ``install_routes``: the data-plane contract (``/dataplane/v1/...``) and the lbproxy
                  extensions (``/lbproxy/v1/...``), SigV4 signing name ``lbproxy``.
"""

"""Lightsail: load balancers, instances, load-balancer TLS certificates, attributes and metrics.

Pure (no I/O):

- ``errors``          Lightsail's error codes (``InvalidInputException``, ``NotFoundException``, ...), with the
                      ``code`` / ``docs`` / ``message`` / ``tip`` body Lightsail answers with (``code`` is the
                      exception's name, so every SDK classifies it).
- ``attributes``      the five load-balancer attributes (defaults, validation, typed values), TLS policies (the
                      table lives in ``lbproxy.contract.tlspolicies``), names, tag rules, IP address types, ARNs
                      and limits.
- ``pages``           ``pageToken`` / ``nextPageToken`` and the page sizes.
- ``instances``       the ``--instances`` TOML file (``[instances.NAME] address = "HOST:PORT"``).
- ``metrics``         the metric names, their units, report samples and AWS-style aggregation.
- ``rows``            what one row of each table holds, typed (load balancer, instance, attachment, certificate,
                      operation, key-state report).
- ``wire``            Lightsail's wire shapes (``LoadBalancer``, ``LoadBalancerTlsCertificate``, ``Instance``,
                      ``Operation``) and the references events carry.

State and operations:

- ``certificates``    ``CertificateBroker``: the thin adapter over ACM's ``CertificateManager`` (request, status,
                      association, grant ``IssuedThroughACM``, sealed bundle).
- ``store``           the tables, and the steps every operation shares (read a load balancer, HTTPS on or off,
                      create / detach / drop a certificate, publish a change, record an operation: ``Started``
                      for ``lb_provisioning_delay`` / ``lb_operation_delay`` where AWS's is, else ``Succeeded``).
- ``instanceops``     the instances file, the instance registry extension, GetInstance(s).
- ``loadbalancers``   load balancers, attached instances, attributes, TLS policies, metric data.
- ``tlscertificates`` certificates: create, attach (the grant), swap, detach, delete.
- ``resources``       TagResource / UntagResource (load balancers; certificates refused as AWS refuses them) and
                      SetIpAddressType (load balancers: ``dualstack`` / ``ipv4`` / ``ipv6``, told to the data plane).
- ``operationlog``    GetOperation, GetOperations, GetOperationsForResource.
- ``dataplane``       the data plane's side without HTTP: who may read, the configuration document, reports
                      (health, metric samples, key state).
- ``service``         ``LightsailService``: all of the above on one object (what the control plane builds), and
                      ``overview`` (what the dashboard shows).
- ``api``             ``LightsailApi``: ``Lightsail_20161128.*`` over AWS JSON 1.1.

The data-plane routes (``/dataplane/v1/...``, ``/lbproxy/v1/...``) are ``lbproxy.control.dataplane``.
"""

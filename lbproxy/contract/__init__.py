"""What the control plane and the data plane agree on, imported by both (pure: no I/O, no service code).

- ``vocabulary``   the names: signing name, ``alias/aws/acm``, health states and reasons, metric names,
  event types, key states.
- ``dataplane``    the documents they exchange, typed: the data-plane configuration and the data plane's report.
- ``sealed``       the sealed-bundle format: how a certificate's private key travels envelope-encrypted, and
  how a key holder opens it into a wipeable ``bytearray``.
- ``tlspolicies``  Lightsail's TLS security policies by name (protocols, ciphers).

The data plane (``lbproxy.proxy``) imports nothing outside itself but this package and ``lbproxy.config``.
"""

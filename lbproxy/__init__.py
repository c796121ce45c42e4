"""lbproxy: a local, runnable AWS Lightsail load balancer.

The parts, each a subpackage named in its domain's words:

- ``keyservice``  the key service (KMS): keys, aliases, key policies, grants, envelope encryption.
- ``certs``       the certificate manager (ACM) and the local certificate authority.
- ``lightsail``   the Lightsail load-balancer model: load balancers, instances, TLS certificates.
- ``control``     the control plane process: AWS JSON 1.1 over HTTP, SigV4, events, audit, dashboard.
- ``proxy``       the data plane: listeners, TLS termination, balancing, health checks, upstream pools.
- ``backend``     the tiny demo backend.
"""

__version__ = "0.1.0"

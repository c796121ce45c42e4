"""The control plane process (``lbproxy control``).

- ``app``         the aiohttp application factory and ``ControlServer`` (start/stop, bound port).
- ``plane``       ``ControlPlane``: the services wired together (database, principals, KMS, ACM, Lightsail).
- ``protocol``    AWS JSON 1.1 on the wire: ``X-Amz-Target`` dispatch, error bodies, request context.
- ``shapes``      request validation against botocore's own service models (types, required, lengths).
- ``sigv4``       Signature Version 4 verification (botocore's signer, never hand-rolled).
- ``principals``  who can call: ARNs, access keys, the shared-credentials file.
- ``events``      the ordered, resumable event stream (server-sent events) the data planes follow.
- ``audit``       the CloudTrail-like audit trail (JSON lines) and ``lbproxy audit``.
"""

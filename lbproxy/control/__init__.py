"""The control-plane process (``lbproxy control``): the composition root.

- ``plane``      ``ControlPlane``: the services wired together (database, principals, events, audit, KMS,
  ACM, Lightsail), with no HTTP in sight.
- ``app``        the aiohttp application: the AWS JSON 1.1 route (``X-Amz-Target``), ``/healthz``,
  ``/events``; ``ControlServer`` (start / stop / bound port).
- ``dataplane``  the data-plane contract's routes (``/dataplane/v1/...``) and lbproxy's admin extensions.
- ``dashboard``  the browser dashboard: its page, its state API and its buttons (which call the public API).

It imports the services; nothing imports it but the command line and the tests.
"""

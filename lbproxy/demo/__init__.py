"""The first minute with lbproxy: set a load balancer up through the public API, or run the whole demo.

- ``setup``   ``set_up_load_balancer``: what a user would do with the AWS APIs, idempotently (register the
              instances, create the load balancer, request and attach a certificate for ``localhost``,
              set the health check), narrating the key flow. ``lbproxy setup`` (compose's one-shot
              service) and ``lbproxy demo`` both run it.
- ``runner``  ``lbproxy demo``: starts ``lbproxy control``, three ``lbproxy backend``s and ``lbproxy lb``
              as subprocesses (the same commands docker compose runs), sets them up, prints what to try,
              and stops everything in order on Ctrl-C.
"""

"""The data plane: a TLS-terminating HTTP/1.1 load balancer whose private key lives only in memory.

Parts (one module per concept):
- ``spec``: what is served (``LoadBalancerSpec``, ``InstanceSpec``) and every limit (``ProxySettings``).
- ``framing``: strict request framing (head + chunked bodies), sans-IO.
- ``forwarding``: header rewriting (X-Forwarded-*, hop-by-hop) and the load balancer's own responses.
- ``balancer``: round robin over healthy instances, refusal marks.
- ``stickiness``: the tamper-proof ``AWSALB`` cookie.
- ``health``: the health checker and its state machine (states and reason codes: ``contract.vocabulary``).
- ``metrics``: per-worker counters, their aggregation, Prometheus text.
- ``downstream`` / ``upstream``: the hot path (``asyncio.Protocol`` per connection, httptools for
  responses, keep-alive pool, backpressure, pipelining, tunnels); ``failures``: how an exchange ends other
  than with the instance's response (the next instance, one retry, 502/504, refusals).
- ``listeners``: the listening sockets (both schemes, both IP families, one per worker slot with
  ``SO_REUSEPORT``).
- ``tls`` / ``tlsconnection`` / ``keys``: SSL contexts per policy (``contract.tlspolicies``), each HTTPS
  connection's TLS on memory BIOs, key loading through memfd, the key-less listener context, the
  ``KeySource`` protocol and hardening of key holders.
- ``dataplane``: one process's listeners, shared routing state, timeouts sweeper, drain order.
- ``worker``: a generation of key-holding worker processes (leader decrypts, builds contexts, forks).
- ``supervisor``: ``LoadBalancer``, the key-less process owning sockets, health, metrics, generations;
  it replaces a generation whose worker died and retries a key the control plane could not hand out.
- ``generation``: a generation of worker processes as the supervisor sees it (``WorkerHandle``,
  ``Generation``).
- ``restarts``: the crash-loop backoff and exit descriptions the supervisor uses (pure).
- ``agent``: follows the control plane (configuration, event stream, reports, key lease) and drives the
  supervisor; ``controllink`` (SigV4-signed HTTP client), ``eventstream`` (``GET /events``) and
  ``grantkey`` (the key through the grant, in a key-holding worker) are its parts.
- ``__main__``: ``python -m lbproxy.proxy`` / ``run_load_balancer`` for the CLI.

- ``compiled``: whether the hot path runs as compiled by mypyc at install time or as its source (decided
  here, once per process, before any of it is imported: ``HOT_PATH``).

Nothing else is imported here: a worker process (``python -m lbproxy.proxy.worker``) imports only what it
serves with, which keeps a replacement generation's start fast (no aiohttp).
"""

from lbproxy.proxy.compiled import choose

HOT_PATH = choose()

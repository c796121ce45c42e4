"""How an exchange ends other than with the instance's response (``Downstream``'s failure paths, off the hot path).

- an instance that refused or did not answer the connect: the next instance (nothing was sent yet), else
  502 (504 on a connect timeout);
- an instance connection that broke before the response head: one retry on a new connection for a reused
  keep-alive connection and an idempotent request without a body (it was closed while idle), else 502, 504
  on the response timeout; after the head: the client connection is aborted (the truncation must show);
- a request body that cannot be framed or forwarded: its status (400/413/502) or an abort;
- a request refused before it became an exchange (framing, the header timeout): its status, and the
  connection closes.

Functions of a ``Downstream``; its methods of the same names call them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lbproxy.proxy.forwarding import error_response

if TYPE_CHECKING:
    from lbproxy.proxy.balancer import Instance
    from lbproxy.proxy.downstream import Downstream
    from lbproxy.proxy.upstream import Upstream


def connect_failed(downstream: Downstream, instance: Instance, exc: BaseException) -> None:
    dataplane = downstream.dataplane
    timed_out = isinstance(exc, TimeoutError)
    dataplane.balancer.mark_refused(instance, dataplane.now + dataplane.refused_backoff)
    next_instance = dataplane.balancer.pick(dataplane.now, None, exclude=instance)
    if next_instance is not None and next_instance is not instance:
        # Nothing reached the instance: any request may go to the next one.
        downstream.instance = next_instance
        if downstream.set_cookie is not None:
            downstream.set_cookie = dataplane.signer.set_cookie_header(
                next_instance.name, time.time(), dataplane.sticky_duration
            )
        downstream._route(next_instance)
        return
    downstream.resume(downstream.PAUSE_CONNECT)
    downstream._local(504 if timed_out else 502, close=downstream._must_close())


def upstream_failed(downstream: Downstream, upstream: Upstream, status: int) -> None:
    """The instance connection broke (or sent garbage, or timed out) during this exchange."""
    if downstream.upstream is upstream:
        downstream.upstream = None
    if downstream.closing:
        return
    request = downstream.request
    if request is None:
        return
    if downstream.status:
        downstream._abort()  # the response began: the client must see the truncation
        return
    if (
        status == 502
        and not downstream.retried
        and upstream.stale
        and request.idempotent
        and not request.has_body
        and downstream.instance is not None
    ):
        # A keep-alive connection the instance closed while idle: retry once on a new connection.
        downstream.retried = True
        downstream.rare = True
        downstream.pause(downstream.PAUSE_CONNECT)
        downstream.dataplane.loop.create_task(downstream._open(downstream.instance))
        return
    downstream._local(status, close=downstream._must_close())


def response_timed_out(downstream: Downstream) -> None:
    upstream = downstream.upstream
    if upstream is None:
        return
    downstream.upstream = None
    upstream.close()
    downstream.upstream_failed(upstream, 504)


def body_error(downstream: Downstream, status: int) -> None:
    upstream = downstream.upstream
    downstream.upstream = None
    if upstream is not None:
        upstream.close()
    if downstream.status:  # the response began: the client must see the truncation
        downstream._abort()
    else:
        downstream._local(status, close=True)


def reject(downstream: Downstream, status: int) -> None:
    """A request refused before it became an exchange: the connection closes (its framing cannot be
    trusted)."""
    downstream.dataplane.metrics.count_lb_status(status)
    downstream.status = status
    downstream.dataplane.log_access(downstream)
    downstream.closing = True
    downstream.transport.write(error_response(status, close=True))
    downstream.transport.close()

"""Header rewriting between downstream and upstream, and the responses the load balancer makes itself.

Pure functions and byte tables, no I/O; everything constant is built once at import.

- ``upstream_request_head``: the head sent to an instance: the request line (origin-form, HTTP/1.1), the
  client's header lines minus hop-by-hop ones (done by ``framing.parse_request_head``), Host kept,
  ``X-Forwarded-For`` appended with the client address, ``X-Forwarded-Proto`` and ``X-Forwarded-Port``
  set by the listener, body framing re-stated (``Transfer-Encoding: chunked`` or ``Content-Length``),
  ``Connection: upgrade`` only for a switch to WebSocket (the only upgrade ``framing`` forwards).
- ``RESPONSE_HOP_BY_HOP``: response header names never relayed to the client.
- ``status_line``: ``HTTP/1.1 <code> <reason>\\r\\n`` from a table built at import (uvicorn's STATUS_LINE).
- ``error_response`` / ``redirect_response``: the load balancer's own small responses (ALB style HTML).
"""

from __future__ import annotations

import http

from lbproxy.proxy.framing import RequestHead
from lbproxy.proxy.memo import remember

SERVER = b"lbproxy"

RESPONSE_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"te",
        b"trailer",
        b"proxy-authenticate",
    }
)


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


STATUS_LINES: dict[int, bytes] = {code: _status_line(code) for code in range(100, 600)}


def status_line(code: int) -> bytes:
    line = STATUS_LINES.get(code)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % code


_CHUNKED_LINE = b"Transfer-Encoding: chunked\r\n"
_UPGRADE_LINES = b"Connection: upgrade\r\nUpgrade: "


def upstream_request_head(req: RequestHead, client_ip: bytes, forwarded_tail: bytes) -> bytes:
    """The request head for the instance.

    ``forwarded_tail`` is the listener's constant ``X-Forwarded-Proto: ...\\r\\nX-Forwarded-Port: ...\\r\\n``
    (built once per listener by ``forwarded_tail``). ``req.prefix`` already holds the request line and the
    kept header lines (usually one slice of the client's raw head), so this is a few concatenations; the
    downstream connection caches the whole suffix for the common case (``Downstream.forwarded_suffix``).
    """
    xff = client_ip if req.xff is None else req.xff + b", " + client_ip
    head = req.prefix + b"\r\nX-Forwarded-For: " + xff + b"\r\n" + forwarded_tail
    if req.chunked:
        head += _CHUNKED_LINE
    if req.upgrade is not None:
        head += _UPGRADE_LINES + req.upgrade + b"\r\n"
    return head + b"\r\n"


def forwarded_tail(proto: str, port: int) -> bytes:
    return b"X-Forwarded-Proto: %s\r\nX-Forwarded-Port: %d\r\n" % (proto.encode(), port)


def forwarded_suffix(client: bytes, tail: bytes) -> bytes:
    """The end of a plain request's upstream head (``Downstream.forwarded_suffix``): X-Forwarded-For, the
    listener's ``forwarded_tail`` and the blank line."""
    return b"\r\nX-Forwarded-For: %b\r\n%b\r\n" % (client, tail)


#: ``remember_client``'s bound: client addresses kept per listener (a full memo is emptied).
REMEMBERED_CLIENTS = 4096


def remember_client(memo: dict[str, tuple[bytes, bytes]], address: str, tail: bytes) -> tuple[bytes, bytes]:
    """``(client, forwarded_suffix)`` for connections from ``address`` to the listener whose constant lines are
    ``tail``, kept in ``memo`` (``Dataplane.client_lines``, one per listener) for that address's next
    connections. Bounded: a full memo is emptied."""
    client = address.encode()
    return remember(memo, address, (client, forwarded_suffix(client, tail)), REMEMBERED_CLIENTS)


def error_body(code: int) -> bytes:
    phrase = STATUS_LINES[code][13:-2].decode()
    return (
        f"<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{code} {phrase}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _error_response(code: int, close: bool) -> bytes:
    body = error_body(code)
    return (
        status_line(code)
        + b"Server: %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n" % (SERVER, len(body))
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + body
    )


#: (code, close) -> complete response bytes, for every status the load balancer answers itself.
_ERRORS: dict[tuple[int, bool], bytes] = {
    (code, close): _error_response(code, close)
    for code in (400, 403, 404, 405, 408, 413, 414, 417, 431, 500, 501, 502, 503, 504)
    for close in (False, True)
}


def error_response(code: int, *, close: bool = True, head_only: bool = False) -> bytes:
    data = _ERRORS.get((code, close)) or _error_response(code, close)
    if head_only:
        return data[: data.find(b"\r\n\r\n") + 4]
    return data


def redirect_response(host: bytes | None, target: bytes, https_port: int, *, close: bool) -> bytes:
    """``HttpsRedirectionEnabled``: 301 to https with the same host (port swapped), path and query."""
    name = host or b"localhost"
    if name.startswith(b"["):
        name = name[: name.find(b"]") + 1]
    else:
        name = name.rpartition(b":")[0] or name if b":" in name else name
    authority = name if https_port == 443 else name + b":%d" % https_port
    location = b"https://" + authority + (target if target != b"*" else b"/")
    body = error_body(301)
    return (
        STATUS_LINES[301]
        + b"Server: %s\r\nLocation: %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
        % (SERVER, location, len(body))
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + body
    )

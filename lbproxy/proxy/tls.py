"""TLS termination: Lightsail policies as ``SSLContext``s, and a listener context that holds no key.

- ``policy_context(policy)``: a server context for a ``TlsPolicy`` (``tlspolicies.py``): protocol range,
  cipher order (``@SECLEVEL=0`` where TLS 1.0/1.1 are allowed), server cipher preference, no
  renegotiation, ALPN ``http/1.1``, TLS 1.3 session tickets.
- ``keyed_context(policy, chain_pem, key)``: the same plus the certificate and private key, loaded from
  memory (``keys.load_cert_chain_from_memory``; ``key`` is zeroed).
- ``TlsTerminator``: owns the listening socket's *base* context, which carries the policy but no key, and
  an ``sni_callback`` (OpenSSL calls it for every ClientHello, with or without SNI) that swaps the keyed
  context into the connection. ``revoke()`` drops the keyed context so the very next handshake is refused
  with a ``handshake_failure`` alert. Session tickets are sealed with the *base* context's ticket keys
  (OpenSSL keeps the initial context as the session context), so workers forked after the base context
  exists resume each other's sessions.

Failed handshakes are counted by the protocol layer (``downstream.TlsDownstream``) as
``ClientTLSNegotiationErrorCount``.
"""

from __future__ import annotations

import ssl
import warnings

from lbproxy.proxy.keys import load_cert_chain_from_memory
from lbproxy.proxy.tlspolicies import EXTENSION_TLS13, PROTOCOL_ORDER, TlsPolicy, openssl_cipher_string

_VERSIONS = {
    "TLSv1": ssl.TLSVersion["TLSv1"],
    "TLSv1.1": ssl.TLSVersion["TLSv1_1"],
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


class LeanSSLObject(ssl.SSLObject):
    """The ``ssl.SSLObject`` that uvloop drives for each TLS connection, its methods bound straight to
    the C ones of ``_ssl._SSLSocket`` (by ``LeanSSLContext.wrap_bio``).

    uvloop calls ``read``/``write``/``pending`` for every TLS record, ``do_handshake``/``unwrap`` a few
    times per connection and ``getpeercert``/``cipher``/``compression`` once; ``ssl.SSLObject`` forwards
    each through a Python method that only calls the C method (about 120 bytecodes and 15 Python frames
    per connection: ``bench/profile.py --what opcodes``). The C methods take the same arguments, return the
    same values and raise the same exceptions (``unwrap`` is ``shutdown``).
    """


class LeanSSLContext(ssl.SSLContext):
    """A server context whose ``wrap_bio`` builds a ``LeanSSLObject`` in one step (``ssl.py`` takes three
    Python calls: ``wrap_bio``, ``_encode_hostname``, ``SSLObject._create``)."""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if server_hostname is not None:  # (a client-side use: the standard path encodes the name)
            return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
        obj = LeanSSLObject.__new__(LeanSSLObject)
        c = obj._sslobj = self._wrap_bio(  # type: ignore[attr-defined]
            incoming, outgoing, server_side=server_side, owner=obj, session=session
        )
        obj.read = c.read  # type: ignore[method-assign]
        obj.write = c.write  # type: ignore[method-assign]
        obj.pending = c.pending  # type: ignore[method-assign]
        obj.do_handshake = c.do_handshake  # type: ignore[method-assign]
        obj.unwrap = c.shutdown  # type: ignore[method-assign]
        obj.getpeercert = c.getpeercert  # type: ignore[method-assign]
        obj.cipher = c.cipher  # type: ignore[method-assign]
        obj.compression = c.compression  # type: ignore[method-assign]
        return obj


def policy_context(policy: TlsPolicy) -> ssl.SSLContext:
    ctx = LeanSSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sslobject_class = LeanSSLObject
    ctx.set_ciphers(openssl_cipher_string(policy))
    versions = sorted(policy.protocols, key=PROTOCOL_ORDER.index)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated, and TLS-2016-08 still allows them
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[versions[0]]
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if EXTENSION_TLS13 else _VERSIONS[versions[-1]]
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.num_tickets = 2
    return ctx


def keyed_context(policy: TlsPolicy, chain_pem: bytes, key: bytearray) -> ssl.SSLContext:
    """A policy context holding the certificate chain and the key (``key`` is zeroed, even on error)."""
    ctx = policy_context(policy)
    load_cert_chain_from_memory(ctx, chain_pem, key)
    return ctx


class TlsTerminator:
    """The HTTPS listener's TLS: a key-less base context whose ``sni_callback`` lends the keyed one."""

    __slots__ = ("_keyed", "base")

    def __init__(self, policy: TlsPolicy, keyed: ssl.SSLContext | None) -> None:
        self._keyed = keyed
        self.base = policy_context(policy)
        self.base.sni_callback = self._select

    @property
    def has_key(self) -> bool:
        return self._keyed is not None

    def revoke(self) -> None:
        """Refuse every handshake from now on and drop this object's reference to the keyed context."""
        self._keyed = None

    def _select(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        keyed = self._keyed
        if keyed is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        sslobj._sslobj.context = keyed  # type: ignore[attr-defined]  # (the C setter, not ssl.py's property)
        return None

"""TLS termination: Lightsail policies as ``SSLContext``s, and a listener context that holds no key.

- ``policy_context(policy)``: a server context for a ``TlsPolicy`` (``tlspolicies.py``): protocol range,
  cipher order (``@SECLEVEL=0`` where TLS 1.0/1.1 are allowed), server cipher preference, no
  renegotiation, ALPN ``http/1.1``; TLS 1.3 (with its session tickets) only when ``offer_tls13`` asks for it.
- ``keyed_context(policy, chain_pem, key)``: the same plus the certificate and private key, loaded from
  memory (``keys.load_cert_chain_from_memory``; ``key`` is zeroed).
- ``TlsTerminator``: owns the listening socket's *base* context, which carries the policy but no key, and
  an ``sni_callback`` (OpenSSL calls it for every ClientHello, with or without SNI) that swaps the keyed
  context into the connection. ``revoke()`` drops the keyed context so the very next handshake is refused
  with a ``handshake_failure`` alert. Session tickets are sealed with the *base* context's ticket keys
  (OpenSSL keeps the initial context as the session context), so workers forked after the base context
  exists resume each other's sessions.

Each connection's handshake and records are driven by ``tlsconnection.TlsConnection``, which counts
failed handshakes as ``ClientTLSNegotiationErrorCount``.
"""

from __future__ import annotations

import ssl
import warnings

from lbproxy.contract.tlspolicies import PROTOCOL_ORDER, TlsPolicy, openssl_cipher_string
from lbproxy.proxy.keys import load_cert_chain_from_memory

_VERSIONS = {
    "TLSv1": ssl.TLSVersion["TLSv1"],
    "TLSv1.1": ssl.TLSVersion["TLSv1_1"],
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def policy_context(policy: TlsPolicy, *, tls13: bool = False) -> ssl.SSLContext:
    """A server context for ``policy``: its protocols and ciphers; ``tls13``: TLS 1.3 as well (beyond what
    Lightsail's policies offer: ``ProxySettings.offer_tls13``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(openssl_cipher_string(policy))
    versions = sorted(policy.protocols, key=PROTOCOL_ORDER.index)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated, and TLS-2016-08 still allows them
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[versions[0]]
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if tls13 else _VERSIONS[versions[-1]]
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.num_tickets = 2
    return ctx


def keyed_context(policy: TlsPolicy, chain_pem: bytes, key: bytearray, *, tls13: bool = False) -> ssl.SSLContext:
    """A policy context holding the certificate chain and the key (``key`` is zeroed, even on error)."""
    ctx = policy_context(policy, tls13=tls13)
    load_cert_chain_from_memory(ctx, chain_pem, key)
    return ctx


class TlsTerminator:
    """The HTTPS listener's TLS: a key-less base context whose ``sni_callback`` lends the keyed one."""

    __slots__ = ("_keyed", "base")

    def __init__(self, policy: TlsPolicy, keyed: ssl.SSLContext | None, *, tls13: bool = False) -> None:
        self._keyed = keyed
        self.base = policy_context(policy, tls13=tls13)
        self.base.sni_callback = self._select

    @property
    def has_key(self) -> bool:
        return self._keyed is not None

    def revoke(self) -> None:
        """Refuse every handshake from now on and drop this object's reference to the keyed context."""
        self._keyed = None

    def _select(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        # ``sslobj``: the C object ``TlsConnection`` made (``ssl.SSLObject`` forwards ``context`` to it).
        keyed = self._keyed
        if keyed is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        sslobj.context = keyed
        return None

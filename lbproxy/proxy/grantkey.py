"""``ControlKeySource``: the certificate's private key, from the control plane, through the grant.

A generation leader (``worker.py``) resolves it from a ``KeySourceRef`` and calls ``load()``; nothing else
does. It authenticates as the load balancer's own principal (credentials from the environment the worker
inherited, botocore's chain), fetches the load balancer's configuration with the sealed bundle, calls KMS
``Decrypt`` on the data key under the grant's encryption context, and opens the private key into a
``bytearray`` (every intermediate buffer wiped). An unreachable or failing control plane raises
``keys.KeyUnavailable`` (the supervisor keeps the key it has and retries); a refusal raises anything else.
Kept small so that a replacement worker starts fast (no aiohttp).
"""

from __future__ import annotations

import base64

from lbproxy.contract.dataplane import DataPlaneConfig, DocumentError
from lbproxy.proxy.controllink import ControlClient, ControlError, Signer, load_credentials
from lbproxy.proxy.keys import KeyRefused, KeyUnavailable


def config_path(name: str) -> str:
    return f"/dataplane/v1/load-balancers/{name}"


class KeySourceError(KeyRefused):
    """The key could not be loaded (the message says why; it never contains key material)."""


class ControlKeySource:
    """``KeySource`` for a generation leader: the key through the grant, straight into a ``bytearray``.

    Runs only in the key-holding process; credentials come from the environment it inherited
    (botocore's chain). ``expect_certificate`` pins the ACM certificate the supervisor decided on: if the
    control plane now answers with another (or none), nothing is loaded and the supervisor refetches.
    """

    def __init__(self, control_url: str, name: str, expect_certificate: str | None = None) -> None:
        self.control_url = control_url
        self.name = name
        self.expect_certificate = expect_certificate

    def load(self) -> tuple[bytes, bytearray] | None:
        try:
            return self._load()
        except ControlError as exc:
            if exc.code == "Unreachable" or exc.status >= 500:  # unreachable or failing: nothing was refused
                raise KeyUnavailable(str(exc)) from None
            if exc.code == "AccessDeniedException":
                raise KeySourceError(
                    f"grant revoked: the key service refused Decrypt ({exc.code}); serving without a key"
                ) from None
            raise KeySourceError(f"the control plane refused the key: {exc.code}: {exc.message}") from None

    def _load(self) -> tuple[bytes, bytearray] | None:
        from lbproxy.contract.sealed import open_sealed_key, pem_private_key, wipe

        creds, region = load_credentials()
        client = ControlClient(self.control_url, Signer(creds, region))
        try:
            cfg = DataPlaneConfig.from_json(client.get_json(config_path(self.name)))
        except DocumentError as exc:
            raise KeySourceError(f"the control plane's configuration is not usable: {exc}") from None
        cert = cfg.certificate
        if cert is None or not cfg.https_enabled:
            raise KeySourceError("no issued certificate is attached to the load balancer any more")
        if self.expect_certificate and cert.acm_certificate_arn != self.expect_certificate:
            # Not a refusal: the supervisor keeps the key it has until the agent's refresh (which follows the
            # same change) asks for the new certificate, or a revocation takes the key away.
            raise KeyUnavailable(
                f"the attached certificate changed ({cert.acm_certificate_arn}, expected "
                f"{self.expect_certificate}); the supervisor will load the new one"
            )
        bundle = cert.bundle
        token = cert.grant.grant_token if cert.grant else None
        data_key = client.decrypt_data_key(
            base64.b64decode(bundle["EncryptedDataKey"]),
            cert.encryption_context or bundle["EncryptionContext"],
            [token] if token else None,
        )
        try:
            der = open_sealed_key(bundle, data_key)
        finally:
            wipe(data_key)
        try:
            pem = pem_private_key(der)
        finally:
            wipe(der)
        chain = (cert.certificate_pem or bundle["Certificate"]).rstrip("\n") + "\n"
        chain += (cert.chain_pem or bundle.get("CertificateChain") or "").rstrip("\n") + "\n"
        return chain.encode(), pem

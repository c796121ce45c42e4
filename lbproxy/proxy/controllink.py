"""The data plane's link to the control plane, over HTTP like any client (no ``lbproxy.control`` imports).

- ``Credentials`` come from botocore's standard chain (``AWS_SHARED_CREDENTIALS_FILE`` + ``AWS_PROFILE``
  naming the load balancer's profile, or ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``).
- Every request is SigV4-signed by botocore: lbproxy's own endpoints with signing name ``lbproxy``,
  KMS calls as ``kms`` with ``X-Amz-Target: TrentService.Decrypt``.
- ``EventSubscription`` (in ``eventstream``) follows ``GET /events``.
- ``decrypt_data_key`` is the one call that yields key material: the KMS Decrypt response is parsed
  and its plaintext decoded into a ``bytearray``; the JSON text it came in is an unwipeable copy, which
  is why only key-holding worker processes (which exit to wipe) ever call it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.session import Session

from lbproxy.contract.vocabulary import SIGNING_NAME

log = logging.getLogger("lbproxy.proxy")


class ControlError(Exception):
    """The control plane answered with an error (``code`` is the AWS error code)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def load_credentials(profile: str | None = None) -> tuple[ReadOnlyCredentials, str]:
    """Credentials and region from botocore's standard chain (env vars, shared file + profile)."""
    session = Session(profile=profile or os.environ.get("AWS_PROFILE"))
    creds = session.get_credentials()
    if creds is None:
        raise ControlError(
            0, "NoCredentials", "no AWS credentials found (set AWS_PROFILE / AWS_SHARED_CREDENTIALS_FILE)"
        )
    region = session.get_config_variable("region") or "us-east-1"
    return creds.get_frozen_credentials(), region


@dataclass(frozen=True, slots=True)
class Signer:
    credentials: ReadOnlyCredentials
    region: str

    def headers(
        self, method: str, url: str, body: bytes, service: str, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        creds = Credentials(self.credentials.access_key, self.credentials.secret_key, self.credentials.token)
        req = AWSRequest(method=method, url=url, data=body, headers=dict(extra or {}))
        SigV4Auth(creds, service, self.region).add_auth(req)
        return {k: v for k, v in req.headers.items()}


class ControlClient:
    """Blocking calls (used by workers at start-up and by tools); the supervisor uses the async ones."""

    def __init__(self, base_url: str, signer: Signer, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.timeout = timeout

    def _send(self, method: str, path: str, body: bytes, service: str, headers: Mapping[str, str]) -> bytes:
        url = self.base_url + path
        signed = self.signer.headers(method, url, body, service, headers)
        req = urllib.request.Request(url, data=body or None, headers=signed, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)
            except ValueError:
                err = {}
            code = str(err.get("__type") or err.get("code") or exc.reason).rsplit("#", 1)[-1]
            raise ControlError(exc.code, code, str(err.get("message") or err.get("Message") or "")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ControlError(0, "Unreachable", f"{self.base_url}: {exc}") from None

    def get_json(self, path: str) -> Any:
        return json.loads(self._send("GET", path, b"", SIGNING_NAME, {}))

    def post_json(self, path: str, payload: Any) -> Any:
        return self.call_json("POST", path, payload)

    def call_json(self, method: str, path: str, payload: Any = None) -> Any:
        """A signed JSON call to one of lbproxy's own endpoints (e.g. the admin extensions)."""
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        raw = self._send(method, path, body, SIGNING_NAME, headers)
        return json.loads(raw or b"{}")

    def decrypt_data_key(
        self, ciphertext_blob: bytes, context: Mapping[str, str], grant_tokens: list[str] | None = None
    ) -> bytearray:
        """KMS Decrypt under the grant's encryption context; the plaintext as a ``bytearray``."""
        body: dict[str, Any] = {
            "CiphertextBlob": base64.b64encode(ciphertext_blob).decode(),
            "EncryptionContext": dict(context),
        }
        if grant_tokens:
            body["GrantTokens"] = grant_tokens
        raw = bytearray(
            self._send(
                "POST",
                "/",
                json.dumps(body).encode(),
                "kms",
                {
                    "X-Amz-Target": "TrentService.Decrypt",
                    "Content-Type": "application/x-amz-json-1.1",
                },
            )
        )
        try:
            start = raw.index(b'"Plaintext":"') + len(b'"Plaintext":"')
            end = raw.index(b'"', start)
            view = memoryview(raw)[start:end]
            out = bytearray(len(view) * 3 // 4)
            n = _b64decode_into(view, out)
            del view
            return out[:n] if n != len(out) else out
        except (ValueError, binascii.Error):
            raise ControlError(500, "InvalidResponse", "KMS Decrypt response has no Plaintext") from None
        finally:
            raw[:] = bytes(len(raw))


_B64 = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64decode_into(src: memoryview, out: bytearray) -> int:
    """Decode base64 from ``src`` into ``out`` without creating a ``bytes`` copy of the plaintext."""
    acc = 0
    bits = 0
    n = 0
    for c in src:
        if c == 0x3D:  # '='
            break
        v = _B64.get(c)
        if v is None:
            raise binascii.Error("invalid base64")
        acc = ((acc << 6) | v) & 0xFFFFFF
        bits += 6
        if bits >= 8:
            bits -= 8
            out[n] = (acc >> bits) & 0xFF
            n += 1
    acc = 0
    return n

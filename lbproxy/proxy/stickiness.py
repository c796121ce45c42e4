"""Session stickiness: a tamper-proof cookie that pins a client to its instance.

The cookie is named ``AWSALB``, as ALB names its duration-based stickiness cookie (Lightsail's
``SessionStickiness_LB_CookieDurationSeconds`` sets its lifetime). Its value is
``<expiry>.<instance name, base64url>.<HMAC-SHA256 tag, base64url, 128 bits>``: the tag covers the expiry
and the instance name under a per-process random secret. The supervisor generates the secret and hands it
to every worker, so all workers of all generations accept each other's cookies; a restart forgets it
(cookies then simply re-pin). A cookie that is expired, malformed or fails the tag is ignored.

Pure: the clock is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

COOKIE_NAME = b"AWSALB"
_PREFIX = COOKIE_NAME + b"="
_TAG_BYTES = 16


class StickinessSigner:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("stickiness secret must be at least 16 bytes")
        self._secret = secret

    def _tag(self, expiry: bytes, name: bytes) -> bytes:
        mac = hmac.new(self._secret, expiry + b"." + name, hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.urlsafe_b64encode(mac).rstrip(b"=")

    def cookie_value(self, instance: str, now: float, duration: int) -> bytes:
        expiry = b"%d" % int(now + duration)
        name = instance.encode()
        return expiry + b"." + base64.urlsafe_b64encode(name).rstrip(b"=") + b"." + self._tag(expiry, name)

    def set_cookie_header(self, instance: str, now: float, duration: int) -> bytes:
        """The ``Set-Cookie`` header line (with CRLF) that pins the client to ``instance``."""
        return (
            b"Set-Cookie: "
            + _PREFIX
            + self.cookie_value(instance, now, duration)
            + b"; Max-Age=%d; Path=/; HttpOnly\r\n" % duration
        )

    def verify(self, value: bytes, now: float) -> str | None:
        """The instance name a valid, unexpired cookie value names, else None."""
        parts = value.split(b".")
        if len(parts) != 3:
            return None
        expiry, name_b64, tag = parts
        if not expiry.isdigit() or int(expiry) <= now:
            return None
        try:
            name = base64.urlsafe_b64decode(name_b64 + b"=" * (-len(name_b64) % 4))
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(tag, self._tag(expiry, name)):
            return None
        try:
            return name.decode()
        except UnicodeDecodeError:
            return None


def find_cookie(cookie_header: bytes | None) -> bytes | None:
    """The ``AWSALB`` value in a Cookie header, if any."""
    if not cookie_header or _PREFIX not in cookie_header:
        return None
    for part in cookie_header.split(b";"):
        part = part.strip(b" \t")
        if part.startswith(_PREFIX):
            return part[len(_PREFIX) :]
    return None

"""The root key: encrypts every master key's material at rest.

From ``$LBPROXY_ROOT_KEY`` (base64 of 32 bytes) if set, else ``DATA_DIR/root.key`` (mode 0600,
created on first start). Held in a ``bytearray`` the service wipes on close.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from lbproxy.keyservice.envelope import random_bytes

ROOT_KEY_ENV = "LBPROXY_ROOT_KEY"
ROOT_KEY_FILE = "root.key"
ROOT_KEY_LEN = 32


class RootKeyError(ValueError):
    pass


def load_root_key(data_dir: Path, environ: dict[str, str] | None = None) -> bytearray:
    env = os.environ if environ is None else environ
    encoded = env.get(ROOT_KEY_ENV)
    if encoded:
        try:
            raw = bytearray(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise RootKeyError(f"{ROOT_KEY_ENV} is not valid base64") from None
        if len(raw) != ROOT_KEY_LEN:
            raise RootKeyError(f"{ROOT_KEY_ENV} must decode to {ROOT_KEY_LEN} bytes, got {len(raw)}")
        return raw
    path = data_dir / ROOT_KEY_FILE
    if not path.exists():
        key = random_bytes(ROOT_KEY_LEN)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return key
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise RootKeyError(f"{path} must not be readable by group or others (mode {mode:o}); chmod 600 it")
    buf = bytearray(ROOT_KEY_LEN)
    with path.open("rb", buffering=0) as f:
        n = f.readinto(buf)
    if n != ROOT_KEY_LEN:
        raise RootKeyError(f"{path} must hold exactly {ROOT_KEY_LEN} bytes")
    return buf

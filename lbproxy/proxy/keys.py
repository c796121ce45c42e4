"""Key material in a key-holding worker: where it comes from, how it reaches OpenSSL, how it is wiped.

- ``KeySource`` (Protocol): ``load() -> (cert_chain_pem, private_key_pem) | None``. The private key is a
  ``bytearray`` the caller zeroes after use; None means "no certificate" (serve plain HTTP only). The
  control-plane client implements this (authenticate as the load balancer, fetch the sealed bundle,
  Decrypt under the grant, ``AESGCM.decrypt_into`` a bytearray). It runs only inside a generation leader
  process (see ``worker.py``), never in the supervisor.
- ``KeySourceRef``: how the supervisor names a key source across the process boundary: an importable
  ``"module:callable"`` and JSON-able keyword arguments; the leader calls ``callable(**params)`` and then
  ``.load()``. Nothing secret travels in a ref.
- ``load_cert_chain_from_memory``: chain + key written to an ``os.memfd_create`` file (never a path on
  disk), loaded with ``SSLContext.load_cert_chain('/proc/self/fd/N')``, then the memfd is overwritten with
  zeros, truncated and closed, and the key bytearray zeroed.
- ``KeyUnavailable``: raised by a key source when the key cannot be fetched *now* (control plane
  unreachable): the supervisor keeps the current key and retries; ``KeyRefused`` (the grant no longer
  holds, the certificate is gone) and any other error fail closed.
- ``harden_key_holder``: no core dumps (``RLIMIT_CORE`` 0) and not dumpable (``PR_SET_DUMPABLE`` 0:
  other users' ptrace and ``/proc/PID/mem`` are refused; root with ``CAP_SYS_PTRACE`` can still read it,
  which is what the memory-scan test relies on).
- ``TestFileKeySource``: TEST ONLY. Reads a certificate chain and a PEM key from files named by a test
  (the key straight into a bytearray with ``readinto``). A real deployment never has the key in a file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import importlib
import os
import resource
import signal
import ssl
from typing import Any, Protocol, runtime_checkable


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, arg: int) -> None:
    if _libc().prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

#: ``KeyUnavailable``'s kind, as a worker reports it to the supervisor: trying again later may help.
KEY_UNAVAILABLE = "unavailable"
#: Any other failure to load a key (refused by the control plane, a bad certificate): fail closed.
KEY_REFUSED = "refused"


class KeyRefused(Exception):
    """The key source was refused, for a reason in words (the grant was revoked, the certificate detached):
    the generation serves without a key and says so; nothing is retried until the configuration changes."""


class KeyUnavailable(Exception):
    """The key could not be fetched *right now* (the control plane is unreachable or failing); nothing
    was refused, so the supervisor keeps the key it has and tries again later. Any other exception from
    ``KeySource.load`` means the key was refused (the generation serves without one)."""


@runtime_checkable
class KeySource(Protocol):
    def load(self) -> tuple[bytes, bytearray] | None:
        """(certificate chain PEM, private key PEM in a bytearray the caller zeroes), or None."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class KeySourceRef:
    """An importable factory (``"package.module:callable"``) and its JSON-able keyword arguments."""

    factory: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_mapping(self) -> dict[str, Any]:
        return {"factory": self.factory, "params": dict(self.params)}

    @classmethod
    def from_mapping(cls, table: dict[str, Any]) -> KeySourceRef:
        return cls(str(table["factory"]), dict(table.get("params") or {}))

    def resolve(self) -> KeySource:
        module, _, name = self.factory.partition(":")
        if not module or not name:
            raise ValueError(f"invalid key source factory: {self.factory!r} (expected module:callable)")
        factory = getattr(importlib.import_module(module), name)
        source: KeySource = factory(**self.params)
        return source


def zero(buf: bytearray) -> None:
    """Overwrite a bytearray in place (its storage is not reallocated)."""
    n = len(buf)
    if n:
        ctypes.memset((ctypes.c_char * n).from_buffer(buf), 0, n)


def load_cert_chain_from_memory(ctx: ssl.SSLContext, chain_pem: bytes, key: bytearray) -> None:
    """Load cert chain + key into ``ctx`` through a memfd; zero the memfd and ``key`` afterwards."""
    fd = os.memfd_create("lbproxy-tls", os.MFD_CLOEXEC)
    try:
        view = memoryview(key)
        try:
            _write_all(fd, memoryview(chain_pem))
            if not chain_pem.endswith(b"\n"):
                _write_all(fd, memoryview(b"\n"))
            _write_all(fd, view)
        finally:
            view.release()
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        try:
            size = os.fstat(fd).st_size
            os.pwrite(fd, bytes(size), 0)
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
            zero(key)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def harden_key_holder() -> None:
    """No core dumps; not dumpable (``/proc/PID/mem`` and ptrace refused to non-root)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _prctl(PR_SET_DUMPABLE, 0)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (no orphaned key holders)."""
    _prctl(PR_SET_PDEATHSIG, sig)


def become_subreaper() -> None:
    """Adopt orphaned descendants (``PR_SET_CHILD_SUBREAPER``): the supervisor inherits the siblings of a
    generation leader that died, so they can drain and be reaped instead of going to init."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


class TestFileKeySource:
    """TEST ONLY: a certificate chain and PEM private key read from files a test wrote.

    Real key sources decrypt the key into memory; this one exists so tests (and the memory-scan proof)
    can run the data plane with a key they know. Use as ``KeySourceRef("lbproxy.proxy.keys:
    TestFileKeySource", {"cert_path": ..., "key_path": ...})``.
    """

    __test__ = False  # not a pytest class

    def __init__(self, cert_path: str, key_path: str) -> None:
        self.cert_path = cert_path
        self.key_path = key_path

    def load(self) -> tuple[bytes, bytearray] | None:
        with open(self.cert_path, "rb") as f:
            chain = f.read()
        size = os.stat(self.key_path).st_size
        key = bytearray(size)
        with open(self.key_path, "rb", buffering=0) as raw:
            n = raw.readinto(key)
        if n != size:
            zero(key)
            raise OSError(f"short read of {self.key_path}")
        return chain, key

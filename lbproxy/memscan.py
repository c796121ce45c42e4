"""Look for a private key in process memory, from outside: the proof behind "the key is wiped".

``needles(key_pem)`` lists what a copy of the key can look like: every base64 line of the PEM body, the
DER encodings (PKCS#8 and traditional), and the raw private scalar (EC) or primes (RSA) in both byte
orders. ``scan_tree(pid, needles)`` reads every readable mapping of a process and its descendants through
``/proc/PID/maps`` + ``/proc/PID/mem`` and says which needles each process holds. Reading another
process's memory needs root (CAP_SYS_PTRACE): key holders are not dumpable.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

_SKIP = ("[vvar]", "[vsyscall]", "[vvar_vclock]")


def needles(key_pem: bytes) -> dict[str, bytes]:
    key = serialization.load_pem_private_key(key_pem, password=None)
    out: dict[str, bytes] = {}
    for i, line in enumerate(key_pem.splitlines()):
        if line and not line.startswith(b"-----") and len(line) >= 32:
            out[f"pem line {i}"] = line
    out["der pkcs8"] = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    out["der traditional"] = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scalars = {"scalar": key.private_numbers().private_value}
        size = (key.curve.key_size + 7) // 8
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        n = key.private_numbers()
        scalars = {"prime p": n.p, "prime q": n.q}
        size = (key.key_size // 2 + 7) // 8
    for name, value in scalars.items():
        raw = value.to_bytes(size, "big")
        out[f"{name} big-endian"] = raw
        out[f"{name} little-endian"] = raw[::-1]
    return out


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (through ``/proc/PID/task/*/children``)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return pids


def scan(pid: int, patterns: dict[str, bytes]) -> set[str]:
    """The names of the patterns found anywhere in ``pid``'s readable memory (none if the process is gone).

    Raises ``PermissionError`` when the memory of a live process cannot be read (not root, or no
    CAP_SYS_PTRACE): a scan that could not look must never pass for one that found nothing."""
    found: set[str] = set()
    try:
        maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)  # noqa: SIM115
    except (FileNotFoundError, ProcessLookupError):
        return found  # exited: its memory is gone
    except PermissionError as exc:
        raise PermissionError(f"cannot read the memory of process {pid} (needs root with CAP_SYS_PTRACE)") from exc
    with mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and parts[5] in _SKIP):
                continue
            start, end = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if not data:
                continue
            for name, needle in patterns.items():
                if name not in found and needle in data:
                    found.add(name)
    return found


def scan_tree(root: int, patterns: dict[str, bytes]) -> dict[int, set[str]]:
    return {pid: scan(pid, patterns) for pid in process_tree(root)}

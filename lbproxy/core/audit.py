"""The audit trail, shaped like CloudTrail records, as JSON lines in ``DATA_DIR/audit.jsonl``.

A record names who (principal ARN, access key id), what (event source and name), on what (key id,
grant id, certificate, load balancer), the encryption context's *keys* (never values of secrets,
never plaintext) and the outcome (error code and message). ``lbproxy audit`` prints it, ``-f`` follows.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lbproxy.core.clock import Clock

AUDIT_FILE = "audit.jsonl"


class AuditLog:
    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.path = data_dir / AUDIT_FILE
        self._clock = clock
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._listeners: list[Any] = []

    def subscribe(self, callback: Any) -> None:
        """``callback(record)`` for every record (the dashboard's live trail)."""
        self._listeners.append(callback)

    def record(self, rec: dict[str, Any]) -> None:
        rec = {"eventTime": self._clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"), **rec}
        line = json.dumps(rec, sort_keys=True, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
        for cb in list(self._listeners):
            cb(rec)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_records(path: Path, follow: bool = False, poll: float = 0.5) -> Iterator[dict[str, Any]]:
    """Yield records from an audit file; with ``follow``, keep waiting for new ones (like tail -f)."""
    while not path.exists():
        if not follow:
            return
        time.sleep(poll)
    with path.open(encoding="utf-8") as f:
        buf = ""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    line, buf = buf.strip(), ""
                    if line:
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError:
                            continue
                continue
            if not follow:
                return
            time.sleep(poll)

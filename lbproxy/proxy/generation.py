"""A generation of worker processes as the supervisor sees it (``supervisor.LoadBalancer`` runs them).

- ``WorkerHandle``: one worker process: its control channel (a socketpair: it closes when the process
  exits, whatever the cause), its pid (and a pidfd to signal it without pid-reuse races), whether it said
  it was ready (and holds the key), and whether it said ``stopped`` (the exit that follows was asked for).
- ``Generation``: the leader process (a child of the supervisor) and its workers; what it was started with
  (key source, TLS policy), whether it loaded its key (or why not), and its lifecycle flags: starting,
  retiring (told to stop), killed (its exits were asked for), damaged (a worker exited unasked).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
from typing import Any

from lbproxy.proxy.keys import KeySourceRef


class GenerationError(RuntimeError):
    pass


@dataclasses.dataclass(slots=True, eq=False)
class WorkerHandle:
    """One worker process as the supervisor sees it: its control channel, and what it said."""

    key: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: Resolved when the control channel ends: the process exited (only the process holds its end).
    closed: asyncio.Future[None]
    pid: int = 0
    tls: bool = False
    ready: asyncio.Future[None] | None = None
    #: It said ``serving``: it accepts connections.
    serving: bool = False
    #: It said ``stopped``: the exit that follows was asked for.
    stopped: bool = False
    #: A pidfd for signalling it without pid-reuse races (-1: none).
    pidfd: int = -1
    task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.closed.done()

    def send(self, msg: dict[str, Any]) -> None:
        if self.alive and not self.writer.is_closing():
            self.writer.write(json.dumps(msg).encode() + b"\n")

    def kill(self) -> None:
        if not self.alive or not self.pid:
            return
        with contextlib.suppress(OSError):
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


@dataclasses.dataclass(slots=True, eq=False)
class Generation:
    number: int
    #: The leader (a child of the supervisor); its siblings are its children until it dies.
    process: subprocess.Popen[bytes]
    workers: list[WorkerHandle]
    #: What it was started with (the supervisor compares it with what is asked for).
    key_source: KeySourceRef | None
    tls_policy_name: str
    https_enabled: bool
    ip_address_type: str
    has_key: bool = False
    #: Why the key was not loaded, and whether trying again may help (``keys.KEY_UNAVAILABLE``).
    key_error: str | None = None
    key_error_kind: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    starting: bool = True
    #: Told to stop (rotation, revocation, shutdown).
    retiring: bool = False
    #: Killed or discarded by the supervisor: its exits were asked for.
    killed: bool = False
    #: A worker exited unasked (the generation is being replaced).
    damaged: bool = False
    #: Exit statuses of siblings, as their parent (the leader) reported them: pid -> returncode.
    sibling_exits: dict[int, int] = dataclasses.field(default_factory=dict)

    def send(self, msg: dict[str, Any]) -> None:
        for w in self.workers:
            w.send(msg)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid and w.alive]

    @property
    def serving(self) -> int:
        """Workers that accept connections (they said ``serving``) and are alive."""
        return sum(1 for w in self.workers if w.alive and w.serving)

    @property
    def intact(self) -> bool:
        return all(w.alive for w in self.workers)

    @property
    def holds_key(self) -> bool:
        """A live process of this generation holds the key."""
        return self.has_key and any(w.alive for w in self.workers)

    @property
    def gone(self) -> bool:
        return not any(w.alive for w in self.workers) and self.process.poll() is not None

    def kill(self) -> None:
        self.killed = True
        for w in self.workers:
            w.kill()
        with contextlib.suppress(OSError):
            self.process.kill()

"""How the supervisor paces replacements: crash-loop backoff and exit descriptions (pure, no I/O).

A worker process that exits without being asked to (``kill -9``, a crash), a generation that fails to start,
and a key that could not be loaded because the control plane was unreachable are all *failures* of the
supervisor's effort to keep the asked-for generation serving. ``RestartBackoff`` decides how long to wait
before the next attempt:

- the first failure after a calm period is retried at once (a killed worker is replaced immediately);
- each further failure within ``reset_after`` seconds of the previous one doubles the wait, starting at
  ``initial`` and capped at ``cap`` (a crash loop settles at one attempt per ``cap`` seconds);
- ``reset_after`` seconds without a failure forget the streak.

Times are the caller's monotonic clock, passed in, so tests never sleep.
"""

from __future__ import annotations

import dataclasses
import os
import signal


@dataclasses.dataclass(slots=True)
class RestartBackoff:
    """Consecutive failures and the wait they earn (see the module docstring)."""

    initial: float
    cap: float
    reset_after: float
    #: Consecutive failures, each within ``reset_after`` of the previous one.
    streak: int = 0
    #: When the last failure happened (the caller's clock), and what it was.
    last_failure: float | None = None
    reason: str | None = None

    def failed(self, now: float, reason: str) -> None:
        if self.last_failure is None or now - self.last_failure > self.reset_after:
            self.streak = 0
        self.streak += 1
        self.last_failure = now
        self.reason = reason

    def wait(self, now: float) -> float:
        """Seconds to wait, from ``now``, before the next attempt (0: go now)."""
        if self.last_failure is None or now - self.last_failure > self.reset_after or self.streak <= 1:
            return 0.0
        earned = min(self.cap, self.initial * 2 ** (self.streak - 2))
        return max(0.0, self.last_failure + earned - now)

    @property
    def crash_looping(self) -> bool:
        """More than one failure in a row: attempts are being spaced out."""
        return self.streak > 1


def describe_exit(returncode: int | None) -> str:
    """``Popen.returncode`` style (negative: killed by that signal) -> words for a log line or a report."""
    if returncode is None:
        return "exit status unknown"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


def returncode_from_wait_status(status: int) -> int:
    """An ``os.waitpid`` status -> ``Popen.returncode`` style."""
    return os.waitstatus_to_exitcode(status)

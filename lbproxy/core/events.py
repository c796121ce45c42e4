"""The event stream: every state change a data plane (or the dashboard) must follow, in order.

Events are rows in the same SQLite file, written in the same transaction as the change they report,
so an event exists exactly when its change does. Each has a monotonically increasing id; a subscriber
resumes with ``Last-Event-ID`` (or ``?after=``) and misses nothing. Each event names its audience (the
principal ARNs it concerns); the admin sees every event, other principals only their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lbproxy.core.clock import Clock
from lbproxy.core.principals import Principal
from lbproxy.core.store import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    type TEXT NOT NULL,
    detail TEXT NOT NULL,
    audience TEXT NOT NULL
);
"""

EVERYONE = "*"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    time: float
    type: str
    detail: dict[str, Any]
    audience: tuple[str, ...]

    def visible_to(self, principal: Principal) -> bool:
        return principal.is_admin or EVERYONE in self.audience or principal.arn in self.audience

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "type": self.type, "detail": self.detail}


class EventLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        db.ensure_schema(_SCHEMA)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, type_: str, detail: dict[str, Any], audience: Iterable[str] = ()) -> int:
        """Append an event (joins the caller's transaction, if any) and wake the subscribers."""
        aud = sorted(set(audience))
        with self._db.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO events (time, type, detail, audience) VALUES (?,?,?,?)",
                (self._clock.time(), type_, json.dumps(detail, sort_keys=True), json.dumps(aud)),
            )
            event_id = int(cur.lastrowid or 0)
        self._wake()
        return event_id

    def last_id(self) -> int:
        row = self._db.query_one("SELECT MAX(id) AS m FROM events")
        return int(row["m"] or 0) if row else 0

    def since(self, after: int, principal: Principal | None = None, limit: int = 500) -> list[Event]:
        rows = self._db.query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        out = []
        for r in rows:
            ev = Event(r["id"], r["time"], r["type"], json.loads(r["detail"]), tuple(json.loads(r["audience"])))
            if principal is None or ev.visible_to(principal):
                out.append(ev)
        return out

    def scanned_until(self, after: int, limit: int = 500) -> int:
        """The highest id a ``since(after, limit=limit)`` scan looked at (visible or not)."""
        row = self._db.query_one(
            "SELECT MAX(id) AS m FROM (SELECT id FROM events WHERE id > ? ORDER BY id LIMIT ?)",
            (after, limit),
        )
        return int(row["m"]) if row and row["m"] is not None else after

    async def wait(self, timeout: float) -> None:
        """Wait until something is published (or ``timeout`` passes)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(fut)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for fut in waiters:
            loop = fut.get_loop()
            if self._loop is None or loop is _running_loop():
                if not fut.done():
                    fut.set_result(None)
            else:
                loop.call_soon_threadsafe(_resolve, fut)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)

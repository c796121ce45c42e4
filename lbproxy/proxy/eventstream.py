"""The control plane's event stream, followed by the data plane's agent (``GET /events``).

``EventSubscription`` is an async iterator of ``Event``s (server-sent events, SigV4-signed with signing name
``lbproxy``) that resumes from the last event id after any disconnect, with capped exponential backoff; it
never gives up, and reports contact times (``last_contact``, ``connected``) so a key lease can fail closed.
Kept apart from ``controllink`` so that a key-holding worker never imports aiohttp's client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from lbproxy.contract.vocabulary import SIGNING_NAME
from lbproxy.proxy.controllink import ControlError, Signer

log = logging.getLogger("lbproxy.proxy")


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    detail: dict[str, Any]


class EventSubscription:
    """``GET /events`` as an async iterator that reconnects and resumes; ``last_contact`` for leases."""

    def __init__(
        self, base_url: str, signer: Signer, after: int = 0, *, min_backoff: float = 0.2, max_backoff: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.last_id = after
        self.last_contact = time.monotonic()
        self.connected = False
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff

    async def __aiter__(self) -> AsyncIterator[Event]:
        backoff = self._min_backoff
        failures = 0
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                url = f"{self.base_url}/events"
                headers = self.signer.headers("GET", url, b"", SIGNING_NAME, {"Last-Event-ID": str(self.last_id)})
                try:
                    async with session.get(url, headers=headers) as resp:
                        if resp.status != 200:
                            raise ControlError(resp.status, "EventStream", (await resp.text())[:200])
                        if failures:
                            log.info("event stream: connected again after %d failed attempts", failures)
                        failures = 0
                        self.connected = True
                        self.last_contact = time.monotonic()
                        backoff = self._min_backoff
                        async for event in _parse_sse(resp, self):
                            yield event
                except (aiohttp.ClientError, ControlError, TimeoutError, ConnectionError) as exc:
                    # The first failure at WARNING, the retries that follow at DEBUG (once per state change).
                    log.log(logging.DEBUG if failures else logging.WARNING,
                            "event stream: %s; reconnecting in %.1fs", exc, backoff)  # fmt: skip
                    failures += 1
                self.connected = False
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self._max_backoff)


async def _parse_sse(resp: aiohttp.ClientResponse, sub: EventSubscription) -> AsyncIterator[Event]:
    fields: dict[str, str] = {}
    async for raw in resp.content:
        sub.last_contact = time.monotonic()
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if "data" in fields:
                data = json.loads(fields["data"])
                ev = Event(
                    int(fields.get("id", data.get("id", 0))),
                    fields.get("event", data.get("type", "")),
                    data.get("detail", {}),
                )
                sub.last_id = max(sub.last_id, ev.id)
                yield ev
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value

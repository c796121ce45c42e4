"""Round robin over healthy instances, stickiness pins, and instances skipped after a refused connection.

Pure (the clock is passed in). The set of routable instances is recomputed only when health, the
instance list or a refusal mark changes (and only then is the round robin, ``rotation``, rebuilt, going
on after the last pick), so a pick is one C-level ``next``.

- ``Instance``: an attached instance as the data plane routes to it (name, address, pool key).
- ``Balancer``: ``pick(now, pinned)`` -> the next healthy instance (or the pinned one while it is
  routable), None when nothing is healthy (503); ``mark_refused`` skips an instance at once for
  ``refused_backoff`` seconds (a health check or the backoff brings it back).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from lbproxy.proxy.spec import InstanceSpec


class Instance:
    __slots__ = ("host", "name", "port")

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name = name
        self.host = host
        self.port = port

    @classmethod
    def from_spec(cls, spec: InstanceSpec) -> Instance:
        return cls(spec.name, spec.host, spec.port)

    def __repr__(self) -> str:
        return f"Instance({self.name!r}, {self.host}:{self.port})"


class Balancer:
    __slots__ = ("_by_name", "_healthy", "_instances", "_refused", "rotation", "routable")

    def __init__(self, instances: Iterable[InstanceSpec] = ()) -> None:
        self._instances: tuple[Instance, ...] = ()
        self._by_name: dict[str, Instance] = {}
        self._healthy: frozenset[str] = frozenset()
        self._refused: dict[str, float] = {}
        #: Instances a request may go to now, in registration order.
        self.routable: tuple[Instance, ...] = ()
        #: Round robin over ``routable``: ``next(rotation)`` when ``routable`` is not empty (the per-request
        #: pick when stickiness is off, and ``pick``'s; refusal marks expire through ``expire_refusals``,
        #: called by the data plane's sweeper and by ``pick``).
        self.rotation: Iterator[Instance] = iter(())
        self.set_instances(instances)

    # -- configuration -----------------------------------------------------------------------------
    def set_instances(self, specs: Iterable[InstanceSpec]) -> None:
        """Swap the instance list; an instance whose address did not change keeps its object (and pool)."""
        new: list[Instance] = []
        for spec in specs:
            old = self._by_name.get(spec.name)
            if old is not None and old.host == spec.host and old.port == spec.port:
                new.append(old)
            else:
                new.append(Instance.from_spec(spec))
        self._instances = tuple(new)
        self._by_name = {i.name: i for i in new}
        self._refused = {k: v for k, v in self._refused.items() if k in self._by_name}
        self._recompute()

    def set_healthy(self, names: Iterable[str]) -> None:
        self._healthy = frozenset(names)
        # A passing health check clears a refusal mark.
        self._refused = {k: v for k, v in self._refused.items() if k not in self._healthy}
        self._recompute()

    @property
    def instances(self) -> tuple[Instance, ...]:
        return self._instances

    def get(self, name: str) -> Instance | None:
        return self._by_name.get(name)

    # -- routing -----------------------------------------------------------------------------------
    def pick(self, now: float, pinned: str | None = None, exclude: Instance | None = None) -> Instance | None:
        if self._refused:
            self.expire_refusals(now)
        routable = self.routable
        if not routable:
            return None
        if pinned is not None:
            instance = self._by_name.get(pinned)
            if instance is not None and instance in routable and instance is not exclude:
                return instance
        instance = next(self.rotation)
        if instance is exclude:
            if len(routable) == 1:
                return None
            instance = next(self.rotation)
        return instance

    def mark_refused(self, instance: Instance, until: float) -> None:
        """An instance refused a connection: skip it now, until ``until`` or its next passing check."""
        if instance.name in self._by_name:
            self._refused[instance.name] = until
            self._recompute()

    def expire_refusals(self, now: float) -> None:
        expired = [k for k, until in self._refused.items() if until <= now]
        if expired:
            for k in expired:
                del self._refused[k]
            self._recompute()

    def _recompute(self) -> None:
        routable = tuple(i for i in self._instances if i.name in self._healthy and i.name not in self._refused)
        if routable == self.routable:  # (a repeated health report must not restart the rotation)
            return
        # The new rotation goes on where the old one was: at the first instance, in registration order,
        # after the one picked last (restarting at the first instance on every change would send a low
        # request rate to it alone while health or refusal marks change).
        start = 0
        old = self.routable
        if old and routable:
            upcoming = next(self.rotation)  # (this rotation is being replaced: taking one from it costs nothing)
            last = old[(old.index(upcoming) - 1) % len(old)]
            order = self._instances
            i = order.index(last) if last in order else -1
            for step in range(1, len(order) + 1):
                instance = order[(i + step) % len(order)]
                if instance in routable:
                    start = routable.index(instance)
                    break
        self.routable = routable
        self.rotation = itertools.cycle(routable[start:] + routable[:start])

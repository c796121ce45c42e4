"""Instances: the ``--instances`` file (read at start and on SIGHUP; parsing is pure, in ``instances``),
lbproxy's extension that registers instances by API, and GetInstance / GetInstances.

The file wins: an instance it names cannot be changed or removed through the API, and one the API
registered is taken over when the file names it. An instance that moves (new host or port) or goes is
announced to every load balancer it is attached to (``loadbalancer.instances_changed``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lbproxy.config import ConfigError
from lbproxy.lightsail import pages, wire
from lbproxy.lightsail.errors import InvalidInputException, not_found
from lbproxy.lightsail.instances import InstanceAddress, check_instance_name, load_instances_file, parse_address
from lbproxy.lightsail.rows import SOURCE_API, SOURCE_FILE, Instance
from lbproxy.lightsail.store import LightsailStore, log


class InstanceOperations(LightsailStore):
    _instances_file: Path | None

    def reload_instances(self) -> None:
        """SIGHUP: re-read the instances file; a bad file is logged and changes nothing."""
        if self._instances_file is None:
            return
        try:
            entries = load_instances_file(self._instances_file)
        except ConfigError as exc:
            log.error("instances file not reloaded: %s", exc)
            return
        self.apply_instances_file(entries)
        log.info("instances reloaded from %s: %d instance(s)", self._instances_file, len(entries))

    def apply_instances_file(self, entries: Mapping[str, InstanceAddress]) -> None:
        """Make the file-sourced instances exactly ``entries`` (API-registered ones stay, unless the file
        names them: the file wins)."""
        with self._lock, self._db.transaction() as tx:
            current = {r["name"] for r in tx.execute("SELECT name FROM ls_instances WHERE source = ?", (SOURCE_FILE,))}
            for name in sorted(current - set(entries)):
                self._remove_instance(name)
            for name, addr in entries.items():
                self._put_instance(name, addr, SOURCE_FILE)

    def register_instance(self, name: str, address: str) -> dict[str, Any]:
        """The lbproxy extension: register (or re-address) an instance by name."""
        try:
            check_instance_name(name)
            addr = parse_address(address)
        except ConfigError as exc:
            raise InvalidInputException(str(exc)) from None
        with self._lock, self._db.transaction():
            found = self._instance_or_none(name)
            if found is not None and found.source == SOURCE_FILE:
                raise InvalidInputException(f"The instance {name} is defined in the instances file; edit it there.")
            self._put_instance(name, addr, SOURCE_API)
        return self.get_instance(name)

    def deregister_instance(self, name: str) -> None:
        with self._lock, self._db.transaction():
            found = self._instance_or_none(name)
            if found is None:
                raise not_found("Instance", name)
            if found.source == SOURCE_FILE:
                raise InvalidInputException(f"The instance {name} is defined in the instances file; edit it there.")
            self._remove_instance(name)

    def get_instance(self, name: str) -> dict[str, Any]:
        found = self._instance_or_none(name)
        if found is None:
            raise not_found("Instance", name)
        return wire.instance(self.region, found)

    def get_instances(self, page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of instances in name order, and the token of the next (None: that was the last)."""
        chunk, token = pages.page(self._instances(), page_token, pages.PAGE_SIZE, key=lambda i: i.name)
        return [wire.instance(self.region, i) for i in chunk], token

    def list_instances_plain(self) -> list[dict[str, Any]]:
        """The extension's listing: name, address, where it came from."""
        return [
            {"name": i.name, "address": str(InstanceAddress(i.host, i.port)), "source": i.source}
            for i in self._instances()
        ]

    # -- rows ------------------------------------------------------------------------------------

    def _instances(self) -> list[Instance]:
        return [Instance.from_row(r) for r in self._db.query("SELECT * FROM ls_instances ORDER BY name")]

    def _instance_or_none(self, name: str) -> Instance | None:
        row = self._db.query_one("SELECT * FROM ls_instances WHERE name = ?", (name,))
        return Instance.from_row(row) if row is not None else None

    def _put_instance(self, name: str, addr: InstanceAddress, source: str) -> None:
        found = self._instance_or_none(name)
        with self._db.transaction() as tx:
            if found is None:
                tx.execute(
                    "INSERT INTO ls_instances (name, id, host, port, source, created_at) VALUES (?,?,?,?,?,?)",
                    (name, str(uuid.uuid4()), addr.host, addr.port, source, self._clock.time()),
                )
                return
            if (found.host, found.port, found.source) == (addr.host, addr.port, source):
                return
            tx.execute(
                "UPDATE ls_instances SET host = ?, port = ?, source = ? WHERE name = ?",
                (addr.host, addr.port, source, name),
            )
            if (found.host, found.port) != (addr.host, addr.port):
                for lb in self._lbs_with_instance(name):
                    self._publish_instances(lb, changed=[name])

    def _remove_instance(self, name: str) -> None:
        with self._db.transaction() as tx:
            lbs = self._lbs_with_instance(name)
            tx.execute("DELETE FROM ls_lb_instances WHERE instance_name = ?", (name,))
            tx.execute("DELETE FROM ls_instances WHERE name = ?", (name,))
            for lb in lbs:
                self._publish_instances(lb, detached=[name])

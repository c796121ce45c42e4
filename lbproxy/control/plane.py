"""``ControlPlane``: the control plane's services wired together, with no HTTP in sight.

Construction order is dependency order: database -> principals -> events/audit -> key service ->
certificate manager -> Lightsail. ``close()`` undoes it. The aiohttp layer (``app``) only routes
requests to the services registered here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from lbproxy.awsapi import sigv4
from lbproxy.awsapi.protocol import AwsJsonService
from lbproxy.certs.api import AcmApi
from lbproxy.certs.manager import CertificateManager
from lbproxy.config import ControlSettings
from lbproxy.core.audit import AuditLog
from lbproxy.core.clock import Clock, SystemClock
from lbproxy.core.events import EventLog
from lbproxy.core.principals import Principal, Principals
from lbproxy.core.store import Database
from lbproxy.keyservice.api import KmsApi
from lbproxy.keyservice.service import KeyService
from lbproxy.lightsail.api import LightsailApi
from lbproxy.lightsail.certificates import CertificateBroker
from lbproxy.lightsail.service import LightsailService

log = logging.getLogger("lbproxy.control")

DATABASE_FILE = "state.sqlite3"
CREDENTIALS_FILE = "credentials"


class ControlPlane:
    def __init__(self, settings: ControlSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        #: Domain time (key deletion, rotation, certificate validity, renewal): injectable.
        self.clock: Clock = clock or SystemClock()
        #: Wall time for SigV4: clients sign with the real clock, so skew is judged against it.
        self.wall_clock: Clock = SystemClock()
        self.data_dir: Path = settings.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.db = Database(self.data_dir / DATABASE_FILE)
        self.principals = Principals(self.db, self.data_dir / CREDENTIALS_FILE, settings.region)
        self.admin: Principal = self.principals.bootstrap()
        if settings.principals_file is not None:
            self.principals.load_file(settings.principals_file)
        self.events = EventLog(self.db, self.clock)
        self.audit = AuditLog(self.data_dir, self.clock)
        self.services: dict[str, AwsJsonService] = {}
        self.tickers: list[Any] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._build_services()

    def _build_services(self) -> None:
        self.kms = KeyService(self.db, self.events, self.clock, self.data_dir, self.settings.region)
        self.register(KmsApi(self.kms))
        self.tickers.append(self.kms)
        self.acm = CertificateManager(self.db, self.kms, self.events, self.clock, self.data_dir, self.settings)
        self.register(AcmApi(self.acm))
        self.tickers.append(self.acm)
        self.lightsail = LightsailService(
            self.db, self.principals, self.events, self.clock, CertificateBroker(self.acm, self.kms), self.settings
        )
        self.register(LightsailApi(self.lightsail))
        self.tickers.append(self.lightsail)

    def reload_instances(self) -> None:
        """SIGHUP: re-read the ``--instances`` file (a bad file is logged and changes nothing)."""
        self.lightsail.reload_instances()

    def register(self, service: AwsJsonService) -> None:
        self.services[service.target_prefix] = service

    def check_head(
        self, headers: list[tuple[str, str]], service: str, required: tuple[str, ...] = sigv4.SIGNED_ALWAYS
    ) -> Principal:
        """What SigV4 can check before the body arrives (see ``sigv4.check_head``); raises ``AwsError``."""
        return sigv4.check_head(
            headers,
            self.principals.by_access_key,
            self.wall_clock.now().astimezone(dt.UTC),
            service=service,
            region=self.settings.region,
            required=required,
        ).principal

    def authenticate(
        self, request: sigv4.SignedRequest, service: str, required: tuple[str, ...] = sigv4.SIGNED_ALWAYS
    ) -> Principal:
        return sigv4.verify(
            request,
            self.principals.by_access_key,
            self.wall_clock.now().astimezone(dt.UTC),
            service=service,
            region=self.settings.region,
            required=required,
        )

    def tick(self) -> None:
        """One sweep of time-driven work: key deletion and rotation, certificate validation and renewal."""
        for service in self.tickers:
            try:
                service.tick()
            except Exception:
                log.exception("sweep failed in %s", type(service).__name__)

    async def start(self) -> None:
        """Background work (the sweep loop) begins here."""
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="lbproxy-sweep")

    async def _sweep_loop(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.settings.sweep_interval)

    async def stop(self) -> None:
        """Background work ends here; the database stays open until ``close``."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def close(self) -> None:
        self.kms.close()
        self.audit.close()
        self.db.close()

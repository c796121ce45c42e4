"""Operations: GetOperation, GetOperations, GetOperationsForResource.

Every change answers with ``operations`` (recorded by ``store.LightsailStore._operation``); these read them
back as they stand now: ``Started`` until due, then ``Succeeded`` (``statusChangedAt`` is when it became so),
or ``Failed`` with ``errorCode`` and ``errorDetails``. Operations are kept after their resource is gone, as
Lightsail keeps them.

- ``GetOperation``: one by id; an id that was never handed out is ``NotFoundException``.
- ``GetOperations``: all of them, oldest first, at most 200 a page (its API reference: "Results are returned
  from oldest to newest, up to a maximum of 200"), ``pageToken`` -> ``nextPageToken``.
- ``GetOperationsForResource``: those whose ``resourceName`` is the name, newest first (as the AWS CLI's
  captured example shows), 200 a page.
"""

from __future__ import annotations

from typing import Any

from lbproxy.lightsail import pages, wire
from lbproxy.lightsail.errors import InvalidInputException, not_found
from lbproxy.lightsail.rows import OperationRecord
from lbproxy.lightsail.store import LightsailStore


class OperationLog(LightsailStore):
    def get_operation(self, operation_id: str) -> dict[str, Any]:
        row = self._db.query_one("SELECT * FROM ls_operations WHERE id = ?", (operation_id,))
        if row is None:
            raise not_found("Operation", operation_id)
        return wire.operation(self.region, OperationRecord.from_row(row), self._clock.time())

    def get_operations(self, page_token: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        after = self._after(page_token)
        rows = self._db.query(
            "SELECT * FROM ls_operations WHERE seq > ? ORDER BY seq LIMIT ?",
            (after if after is not None else 0, pages.OPERATIONS_PAGE_SIZE + 1),
        )
        return self._page(rows)

    def get_operations_for_resource(
        self, resource_name: str, page_token: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        after = self._after(page_token)
        rows = self._db.query(
            "SELECT * FROM ls_operations WHERE resource_name = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            (resource_name, after if after is not None else 2**62, pages.OPERATIONS_PAGE_SIZE + 1),
        )
        return self._page(rows)

    @staticmethod
    def _after(page_token: str | None) -> int | None:
        after = pages.decode_token(page_token)
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise InvalidInputException(f"The page token is not valid: {page_token}")
        return after

    def _page(self, rows: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
        now = self._clock.time()
        records = [OperationRecord.from_row(r) for r in rows]
        chunk = records[: pages.OPERATIONS_PAGE_SIZE]
        token = pages.encode_token(chunk[-1].seq) if len(records) > len(chunk) else None
        return [wire.operation(self.region, rec, now) for rec in chunk], token

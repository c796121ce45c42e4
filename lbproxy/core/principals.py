"""Principals: who may call the control plane, and the shared-credentials file that names them.

A principal is an IAM-style ARN with one access key. ``admin`` is created on first start; every load
balancer gets a role of its own later. Service principals (ACM) exist only inside the process: they
have no access key, so nobody can sign a request as them.
"""

from __future__ import annotations

import configparser
import os
import secrets
import sqlite3
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lbproxy.core.store import Database

ACCOUNT_ID = "000000000000"
ADMIN_NAME = "admin"
ACM_SERVICE_PRINCIPAL = "acm.amazonaws.com"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS principals (
    name TEXT PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    access_key_id TEXT NOT NULL UNIQUE,
    secret_access_key TEXT NOT NULL,
    kind TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    arn: str
    access_key_id: str
    secret_access_key: str
    kind: str  # "user" | "role" | "service"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.name == ADMIN_NAME


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"


def account_root_arn() -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:root"


def new_access_key_id() -> str:
    alphabet = string.ascii_uppercase + "234567"
    return "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))


def new_secret_access_key() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


ACM_PRINCIPAL = Principal(name="acm", arn=ACM_SERVICE_PRINCIPAL, access_key_id="", secret_access_key="", kind="service")


class PrincipalError(ValueError):
    pass


class Principals:
    """The principal registry (SQLite) and the credentials file it keeps in step."""

    def __init__(self, db: Database, credentials_path: Path, region: str) -> None:
        self._db = db
        self._credentials_path = credentials_path
        self._region = region
        db.ensure_schema(_SCHEMA)

    def bootstrap(self) -> Principal:
        """Create the admin principal on first start; (re)write the credentials file."""
        admin = self.get(ADMIN_NAME)
        if admin is None:
            admin = self.create(ADMIN_NAME, user_arn(ADMIN_NAME), kind="user")
        else:
            self.write_credentials_file()
        return admin

    def create(
        self,
        name: str,
        arn: str,
        kind: str,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> Principal:
        p = Principal(
            name=name,
            arn=arn,
            access_key_id=access_key_id or new_access_key_id(),
            secret_access_key=secret_access_key or new_secret_access_key(),
            kind=kind,
        )
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO principals VALUES (?,?,?,?,?)",
                (p.name, p.arn, p.access_key_id, p.secret_access_key, p.kind),
            )
        self.write_credentials_file()
        return p

    def ensure_role(self, name: str) -> Principal:
        existing = self.get(name)
        if existing is not None:
            return existing
        return self.create(name, role_arn(name), kind="role")

    def delete(self, name: str) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM principals WHERE name = ?", (name,))
        self.write_credentials_file()

    def get(self, name: str) -> Principal | None:
        row = self._db.query_one("SELECT * FROM principals WHERE name = ?", (name,))
        return _row(row) if row else None

    def by_access_key(self, access_key_id: str) -> Principal | None:
        row = self._db.query_one("SELECT * FROM principals WHERE access_key_id = ?", (access_key_id,))
        return _row(row) if row else None

    def by_arn(self, arn: str) -> Principal | None:
        if arn == ACM_SERVICE_PRINCIPAL:
            return ACM_PRINCIPAL
        row = self._db.query_one("SELECT * FROM principals WHERE arn = ?", (arn,))
        return _row(row) if row else None

    def all(self) -> list[Principal]:
        return [_row(r) for r in self._db.query("SELECT * FROM principals ORDER BY name")]

    def load_file(self, path: Path) -> list[Principal]:
        """Declare principals from TOML: ``[principals.NAME]`` with ``arn``, ``access_key_id``,
        ``secret_access_key`` (all optional but the table; ``kind`` = user | role)."""
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PrincipalError(f"{path}: {exc}") from exc
        unknown = set(doc) - {"principals"}
        if unknown:
            raise PrincipalError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
        out = []
        for name, table in doc.get("principals", {}).items():
            if not isinstance(table, dict):
                raise PrincipalError(f"{path}: principals.{name} must be a table")
            bad = set(table) - {"arn", "access_key_id", "secret_access_key", "kind"}
            if bad:
                raise PrincipalError(f"{path}: principals.{name}: unknown key(s): {', '.join(sorted(bad))}")
            kind = table.get("kind", "user")
            if kind not in ("user", "role"):
                raise PrincipalError(f"{path}: principals.{name}.kind: must be 'user' or 'role', got {kind!r}")
            arn = table.get("arn") or (user_arn(name) if kind == "user" else role_arn(name))
            out.append(self.create(name, arn, kind, table.get("access_key_id"), table.get("secret_access_key")))
        return out

    def write_credentials_file(self) -> None:
        """Write ``DATA_DIR/credentials`` (0600): one profile per principal, region included."""
        cp = configparser.ConfigParser(interpolation=None)
        for p in self.all():
            cp[p.name] = {
                "aws_access_key_id": p.access_key_id,
                "aws_secret_access_key": p.secret_access_key,
                "region": self._region,
            }
        tmp = self._credentials_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# lbproxy principals (ARNs in the control plane); region {self._region}\n")
            cp.write(f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._credentials_path)


def _row(row: sqlite3.Row) -> Principal:
    return Principal(
        name=row["name"],
        arn=row["arn"],
        access_key_id=row["access_key_id"],
        secret_access_key=row["secret_access_key"],
        kind=row["kind"],
    )

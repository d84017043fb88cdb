"""Settings, read once from the environment, with the defaults a newcomer needs.

Every setting is a `CASETRAIL_*` variable; the README lists them. Nothing secret has a
default value: keys are files created by `casetrail keys init` (or the demo) with
owner-only permissions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_DATABASE_URL = "sqlite:///./var/casetrail.sqlite"


class SettingsError(ValueError):
    """A setting has a value the ledger cannot use."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the ledger lives: a SQLite file or a PostgreSQL database."""

    backend: str  # "sqlite" or "postgres"
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def describe(self) -> str:
        """A human description without the password."""
        if self.is_sqlite:
            return f"SQLite {self.path}"
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.dbname}"


def parse_database_url(url: str) -> DatabaseTarget:
    """Read `sqlite:///relative/path`, `sqlite:////absolute/path` or `postgresql://…`."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise SettingsError("CASETRAIL_DATABASE_URL: a sqlite URL needs a file path")
        return DatabaseTarget(backend="sqlite", path=path)

    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not dbname or not parts.hostname:
            raise SettingsError(
                "CASETRAIL_DATABASE_URL: a postgresql URL needs a host and a database, "
                "e.g. postgresql://user@127.0.0.1:5432/casetrail"
            )
        return DatabaseTarget(
            backend="postgres",
            host=parts.hostname,
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=dbname,
        )

    raise SettingsError(
        "CASETRAIL_DATABASE_URL must start with sqlite:/// or postgresql:// "
        f"(got a URL with scheme {parts.scheme!r})"
    )


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = 1024 * 1024
    body_timeout_seconds: float = 10.0
    signing_key_path: str = "./var/signing-key.pem"
    master_key_path: str = "./var/master.key"
    master_key: str = ""
    seal_every_events: int = 256
    seal_every_seconds: float = 1.0
    policy: str = "cn-baseline"
    reveal_roles: tuple[str, ...] = ("compliance", "agent")
    desk_secure_cookie: bool = False

    @property
    def database(self) -> DatabaseTarget:
        return parse_database_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(f"CASETRAIL_{name}", "").strip() or default

        def number(name: str, default: float, *, minimum: float) -> float:
            raw = env.get(f"CASETRAIL_{name}", "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"CASETRAIL_{name} must be a number, got {raw!r}") from None
            if value < minimum:
                raise SettingsError(f"CASETRAIL_{name} must be at least {minimum}, got {raw}")
            return value

        def flag(name: str, default: bool) -> bool:
            raw = env.get(f"CASETRAIL_{name}", "").strip().lower()
            if not raw:
                return default
            if raw in ("1", "true", "yes", "on"):
                return True
            if raw in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"CASETRAIL_{name} must be true or false, got {raw!r}")

        settings = cls(
            database_url=text("DATABASE_URL", defaults.database_url),
            max_body_bytes=int(number("MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024)),
            body_timeout_seconds=number(
                "BODY_TIMEOUT_SECONDS", defaults.body_timeout_seconds, minimum=0.1
            ),
            signing_key_path=text("SIGNING_KEY_PATH", defaults.signing_key_path),
            master_key_path=text("MASTER_KEY_PATH", defaults.master_key_path),
            master_key=env.get("CASETRAIL_MASTER_KEY", "").strip(),
            seal_every_events=int(
                number("SEAL_EVERY_EVENTS", defaults.seal_every_events, minimum=1)
            ),
            seal_every_seconds=number(
                "SEAL_EVERY_SECONDS", defaults.seal_every_seconds, minimum=0.01
            ),
            policy=text("POLICY", defaults.policy),
            reveal_roles=tuple(
                role.strip()
                for role in text("REVEAL_ROLES", ",".join(defaults.reveal_roles)).split(",")
                if role.strip()
            ),
            desk_secure_cookie=flag("DESK_SECURE_COOKIE", defaults.desk_secure_cookie),
        )
        parse_database_url(settings.database_url)  # fail at start-up, not on first use
        return settings

    def ensure_var_dir(self) -> None:
        """Create the folders of file-based settings (SQLite file, key files)."""
        paths = [self.signing_key_path, self.master_key_path]
        if self.database.is_sqlite:
            paths.append(self.database.path)
        for path in paths:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if self.database.is_sqlite:
            # Owner-only from the start: SQLite gives its -wal and -shm files the same mode.
            descriptor = os.open(self.database.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(descriptor)

"""Shared fixtures. Each real server lives in its own module under tests/servers/."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.servers.sftp",
    "tests.servers.s3",
    "tests.servers.azure",
    "tests.servers.gcs",
    "tests.servers.webdav",
    "tests.remotes",
]


PG_URL = os.environ.get("CDIR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, as a catalog URL whose search_path points at it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every catalog test runs on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        with pg_schema() as url:
            yield url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated cdir home: catalog, vault, state; a cheap vault KDF for speed."""
    import cdir.vault

    h = tmp_path / "home"
    monkeypatch.setenv("CDIR_HOME", str(h))
    monkeypatch.setenv("CDIR_VAULT_PASSPHRASE", "test passphrase")
    monkeypatch.delenv("CDIR_CATALOG_URL", raising=False)
    monkeypatch.setattr(cdir.vault, "SCRYPT_N", 2**10)
    return h


@pytest.fixture
def vdir(home: Path, catalog_url: str, tmp_path: Path) -> Iterator[object]:
    """A VDir with two local providers, `laptop` and `archive`, on SQLite and PostgreSQL."""
    from cdir.config import Settings
    from cdir.vdir import VDir

    v = VDir(Settings(catalog_url=catalog_url))
    v.add_provider("laptop", "local", str(tmp_path / "laptop"), {})
    v.add_provider("archive", "local", str(tmp_path / "archive"), {})
    yield v
    v.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run the real `cdir` entry point in-process: cli("ls", "/") → CliResult."""
    from cdir.cli import main as climain

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["cdir", *args])
        climain.G.__init__()  # type: ignore[misc]
        code = 0
        try:
            climain.run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root

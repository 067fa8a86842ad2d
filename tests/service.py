"""A cdir service running in this process, on a home's own catalog: the CLI's client mode and
the API tests use it (a uvicorn thread, so a test drives it with real HTTP)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.serve import serve_asgi


@dataclass
class Running:
    url: str
    token: str
    vdir: Any
    app: Any


@contextmanager
def running_service(
    home: Path, *, register: bool = True, catalog_url: str | None = None, **app_options: Any
) -> Iterator[Running]:
    """Serve `home`'s catalog (or `catalog_url`'s); with `register`, later `cdir` commands of
    that home find it (as after `cdir service start`) and become its clients."""
    from cdir import service
    from cdir.api import create_app
    from cdir.config import Settings
    from cdir.vdir import VDir

    files = service.Files(home)
    token = service.token(files, create=True)
    assert token
    settings = Settings(home=home, catalog_url=catalog_url) if catalog_url else Settings(home=home)
    vdir = VDir(settings, interactive=False)
    options = {"inline_reads": vdir.settings.catalog.startswith("sqlite"), **app_options}
    app = create_app(vdir, service.CurrentToken(files), uploads_dir=home / "uploads", **options)
    try:
        with serve_asgi(app) as url:
            if register:
                service.write_state(files, {"url": url, "pid": os.getpid()})
            try:
                yield Running(url, token, vdir, app)
            finally:
                service.clear_state(files)
    finally:
        vdir.close()

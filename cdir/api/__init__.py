"""The REST service: a FastAPI shell over `vdir` (DESIGN.md §4). `create_app(vdir, token)`
builds it; `cdir service start` runs it under uvicorn."""

from cdir.api.app import create_app

__all__ = ["create_app"]

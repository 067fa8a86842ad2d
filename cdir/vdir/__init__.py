"""The virtual directory: the one layer that writes the catalog and calls providers.

    base        what every part shares: settings, catalog, vault, open providers
    plan        pure planning: jobs, skip/target/read-order rules
    transfers   put and the shared write path: run a plan through the engine, record it
    copies      cp, replicate
    verify      reads that check what they deliver; replicas found missing or changed
    localtree   walking a local source tree
    progress    the progress bar
    reads       get
    streams     read and write byte streams (REST API, fsspec)
    moves       mv, rm
    scan        import what a provider holds
    namespace   cd, ls, stat, search, status, mkdir, prefer
    providers   register, change, re-pin, list, test, forget providers
    gc          purge old tombstones and journal events (cdir gc, and once a day on its own)
    engine      the parallel transfer engine (no catalog)
    state       the current directory (no catalog: `cdir pwd` stays cheap)
    protocol    the public operations, for a REST client to implement too
    facade      VDir, all of the above

Importing this package is cheap; VDir and Listing are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdir.vdir.facade import VDir
    from cdir.vdir.namespace import Listing

__all__ = ["Listing", "VDir"]


def __getattr__(name: str) -> Any:
    if name == "VDir":
        from cdir.vdir.facade import VDir

        return VDir
    if name == "Listing":
        from cdir.vdir.namespace import Listing

        return Listing
    raise AttributeError(name)

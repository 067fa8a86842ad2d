"""`VDir`: the virtual directory, one object over all its parts (see each module)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdir.vdir.daemonops import DaemonOps
from cdir.vdir.gc import GcOps
from cdir.vdir.jobs import JobOps
from cdir.vdir.moves import MoveOps
from cdir.vdir.observe import ObserveOps
from cdir.vdir.providers import ProviderOps
from cdir.vdir.reads import ReadOps
from cdir.vdir.scan import ScanOps
from cdir.vdir.streams import StreamOps
from cdir.vdir.sync import SyncOps

if TYPE_CHECKING:
    from cdir.vdir.protocol import VirtualDirectory


class VDir(
    StreamOps,
    SyncOps,
    JobOps,
    ReadOps,
    MoveOps,
    ScanOps,
    ProviderOps,
    GcOps,
    DaemonOps,
    ObserveOps,
):
    """The one layer that writes the catalog and calls providers; front ends (CLI, API,
    daemon) call its methods (`cdir.vdir.protocol.VirtualDirectory`) and nothing below."""


if TYPE_CHECKING:

    def _implements(v: VDir) -> VirtualDirectory:
        return v  # mypy checks here, in CI, that VDir keeps to its Protocol

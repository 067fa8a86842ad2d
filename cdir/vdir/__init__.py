"""The virtual directory: the one layer that writes the catalog and calls providers."""

from cdir.vdir.core import Listing
from cdir.vdir.ops import VDir

__all__ = ["Listing", "VDir"]

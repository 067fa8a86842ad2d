"""Storage providers behind one interface, found through the `cdir.providers` entry points."""

from cdir.providers.base import Capabilities, Provider, RemoteStat
from cdir.providers.options import OptionSpec
from cdir.providers.registry import available_kinds, load_provider_class, open_provider

__all__ = [
    "Capabilities",
    "OptionSpec",
    "Provider",
    "RemoteStat",
    "available_kinds",
    "load_provider_class",
    "open_provider",
]

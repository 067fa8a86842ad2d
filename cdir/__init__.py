"""cdir: a multi-cloud virtual directory."""

__version__ = "0.1.0"

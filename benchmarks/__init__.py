"""Benchmarks of the `cdir` CLI against rclone (not pytest tests): `python -m benchmarks.run`.

Every timed command is a real subprocess, as a user would run it; see docs/benchmarks.md.
"""

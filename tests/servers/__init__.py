"""Real storage servers started on free loopback ports for the tests (see docs/testing.md)."""

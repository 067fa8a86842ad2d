"""azure test server fixture (to be written)."""

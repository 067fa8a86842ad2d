"""webdav test server fixture (to be written)."""

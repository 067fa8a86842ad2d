"""sftp test server fixture (to be written)."""

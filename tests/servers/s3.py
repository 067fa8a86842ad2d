"""s3 test server fixture (to be written)."""

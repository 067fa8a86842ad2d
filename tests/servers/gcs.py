"""gcs test server fixture (to be written)."""

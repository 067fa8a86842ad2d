"""Contract fakes of the consumer drives' APIs, written from the vendors' published references."""

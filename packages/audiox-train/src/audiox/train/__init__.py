"""audiox.train."""

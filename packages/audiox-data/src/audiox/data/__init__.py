"""audiox.data."""

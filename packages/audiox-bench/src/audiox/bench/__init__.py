"""audiox.bench."""

"""audiox.core."""

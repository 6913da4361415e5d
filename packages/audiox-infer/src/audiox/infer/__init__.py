"""audiox.infer."""

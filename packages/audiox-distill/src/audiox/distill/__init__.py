"""audiox.distill."""

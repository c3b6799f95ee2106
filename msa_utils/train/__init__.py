"""The training loop, its resumable state and the classification metrics."""

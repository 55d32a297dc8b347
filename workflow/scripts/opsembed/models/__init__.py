"""Embedding methods: non-learned baselines and learned models."""

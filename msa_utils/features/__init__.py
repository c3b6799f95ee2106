"""Frozen encoders (backbones), their pass over the posts, feature sets and the on-disk feature cache."""

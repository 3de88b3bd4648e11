"""Squashed image downloads (issue #10): a tag's image flattened into one layer for `docker load`.

``flatten`` merges layer tars top-down into one tar; ``tarball`` wraps it in a docker-archive
with an exact size known before the first byte. docs/SQUASH.md is the contract between the parts.
"""

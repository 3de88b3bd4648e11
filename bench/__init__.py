"""The benchmark harness of issue #3: ``python -m bench --help``."""

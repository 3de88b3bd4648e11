"""Health endpoints (/health/instance, /health/endtoend) and Prometheus metrics (/metrics)."""
